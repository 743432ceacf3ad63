"""Single sign-on users: found by the identity provider's subject, created at first sign-in, and brought
in line with the provider's claims at every sign-in: profile, staff status and, above all, groups.

Django groups of a single sign-on user mirror the provider's group claim: a group the provider no longer
sends is left at the next sign-in, and with it every collection granted to that group.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.contrib.auth.models import Group, User
from django.db import transaction
from django.utils import timezone

from accounts.exceptions import SsoRefused
from accounts.models import SsoIdentity
from audit.models import AuditEvent
from audit.services import Actor, audit_record
from ragsite.logs import log_event

logger = logging.getLogger(__name__)

_USERNAME_UNSAFE = re.compile(r"[^\w.@+-]")


def claim_lookup(claims: Mapping[str, Any], path: str) -> Any:
    """A claim by name, or by a dotted path into nested claims (Keycloak's 'realm_access.roles')."""
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def claim_groups(claims: Mapping[str, Any]) -> list[str]:
    """The group names the provider sent (a list, or one name); none when the claim is absent."""
    value = claim_lookup(claims, settings.OIDC_GROUPS_CLAIM)
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple):
        return []
    return sorted({str(g).strip()[:150] for g in value if str(g).strip()})


def _username_free(claims: Mapping[str, Any]) -> str:
    wanted = str(claim_lookup(claims, settings.OIDC_USERNAME_CLAIM) or claims.get("email") or claims["sub"])
    base = _USERNAME_UNSAFE.sub("_", wanted)[:140] or "user"
    name, n = base, 1
    # A local account of the same name is a different person until an administrator says otherwise.
    while User.objects.filter(username=name).exists():
        n += 1
        name = f"{base}-{n}"
    return name


def _profile(user: User, claims: Mapping[str, Any], groups: list[str]) -> dict[str, object]:
    """Copy the profile claims; staff status follows RAG_OIDC_STAFF_GROUPS when set. The changed fields."""
    fields: dict[str, object] = {
        "email": str(claims.get("email") or user.email)[:254],
        "first_name": str(claims.get("given_name") or user.first_name)[:150],
        "last_name": str(claims.get("family_name") or user.last_name)[:150],
    }
    if settings.OIDC_STAFF_GROUPS:
        staff = bool(set(groups) & set(settings.OIDC_STAFF_GROUPS))
        fields.update(is_staff=staff, is_superuser=staff)
    changed = {k: v for k, v in fields.items() if getattr(user, k) != v}
    for key, value in changed.items():
        setattr(user, key, value)
    return changed


def _groups_mirror(user: User, groups: list[str]) -> tuple[list[str], list[str]]:
    current = set(user.groups.values_list("name", flat=True))
    added, removed = sorted(set(groups) - current), sorted(current - set(groups))
    if removed:
        user.groups.remove(*Group.objects.filter(name__in=removed))
    if added:
        user.groups.add(*(Group.objects.get_or_create(name=name)[0] for name in added))
    return added, removed


def sso_user_sync(*, claims: Mapping[str, Any], issuer: str, ip: str | None) -> User:
    """The user these verified claims belong to (created at first sign-in), updated from them."""
    subject = str(claims.get("sub") or "")
    if not subject:
        raise SsoRefused("The identity provider sent no subject ('sub' claim): check its client configuration")
    groups = claim_groups(claims)
    with transaction.atomic():
        identity = SsoIdentity.objects.select_for_update().filter(issuer=issuer, subject=subject).first()
        if identity is None:
            user = User.objects.create_user(username=_username_free(claims))  # no usable password
            identity = SsoIdentity.objects.create(user=user, issuer=issuer, subject=subject)
        user = identity.user
        changed = _profile(user, claims, groups)
        if changed:
            user.save(update_fields=list(changed))
        added, removed = _groups_mirror(user, groups)
        SsoIdentity.objects.filter(id=identity.id).update(groups=groups, last_sign_in=timezone.now())
        if added or removed or {"is_staff", "is_superuser"} & set(changed):
            audit_record(
                action=AuditEvent.Action.GROUPS_SYNCED, actor=Actor.of_user(user, ip=ip), target_type="user",
                target_id=user.id, target_name=user.get_username(),
                details={"added": ",".join(added), "removed": ",".join(removed), "staff": user.is_staff},
            )
    log_event(logger, "sso_user_synced", user=user.id, groups=len(groups), added=len(added), removed=len(removed))
    return user
