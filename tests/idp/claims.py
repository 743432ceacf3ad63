"""What the test provider says about a user: name and e-mail, and the `groups` claim with the scope of that name."""

from typing import Any

from oidc_provider.lib.claims import ScopeClaims


def userinfo(claims: dict[str, Any], user: Any) -> dict[str, Any]:
    claims.update(
        preferred_username=user.username, email=user.email, given_name=user.first_name, family_name=user.last_name,
        name=f"{user.first_name} {user.last_name}".strip() or user.username,
    )
    return claims


class GroupClaims(ScopeClaims):
    info_groups = ("Groups", "The groups you belong to")

    def scope_groups(self) -> dict[str, Any]:
        return {"groups": sorted(self.user.groups.values_list("name", flat=True))}
