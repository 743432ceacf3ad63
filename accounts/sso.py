"""The OpenID Connect client of the identity provider, through authlib: discovery from the issuer's
/.well-known/openid-configuration, the authorization code flow with PKCE, state and nonce kept in the
session, and the ID token's signature, issuer, audience, expiry and nonce checked against the provider's
published keys. Built once per process (ragsite.components.shared), on first use, never at import."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from authlib.integrations.base_client import OAuthError
from authlib.integrations.django_client import OAuth
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from requests import RequestException

from accounts.exceptions import SsoRefused, SsoUnavailable
from ragsite.components import shared


class SsoClient:
    def __init__(self) -> None:
        if not settings.OIDC_ISSUER:
            raise SsoUnavailable("Single sign-on is not configured (RAG_OIDC_ISSUER)")
        self.app: Any = OAuth().register(
            name="idp",
            client_id=settings.OIDC_CLIENT_ID,
            client_secret=settings.OIDC_CLIENT_SECRET,
            server_metadata_url=settings.OIDC_ISSUER.rstrip("/") + "/.well-known/openid-configuration",
            client_kwargs={
                "scope": settings.OIDC_SCOPES, "code_challenge_method": "S256", "timeout": settings.OIDC_TIMEOUT,
            },
        )

    def redirect(self, request: HttpRequest, *, callback_url: str) -> HttpResponse:
        """To the provider's sign-in page; it sends the browser back to `callback_url` with a code."""
        try:
            return self.app.authorize_redirect(request, callback_url)  # type: ignore[no-any-return]
        except (RequestException, ValueError, KeyError) as exc:
            raise SsoRefused(f"The identity provider cannot be reached ({type(exc).__name__}): try again later") from exc

    def claims(self, request: HttpRequest) -> tuple[str, dict[str, Any]]:
        """The issuer and the verified claims of the person the provider sent back (ID token, then userinfo)."""
        try:
            token = self.app.authorize_access_token(request)
            claims = dict(token.get("userinfo") or {})
            metadata: Mapping[str, Any] = self.app.load_server_metadata()
            if not claims:
                raise SsoRefused("The identity provider returned no ID token: request the 'openid' scope")
            if metadata.get("userinfo_endpoint"):
                # Many providers send groups only from userinfo; its subject must be the ID token's.
                info = dict(self.app.userinfo(token=token))
                if str(info.get("sub")) == str(claims.get("sub")):
                    claims = {**claims, **info}
        except OAuthError as exc:
            raise SsoRefused(f"The identity provider refused the sign-in: {exc.error or exc}") from exc
        except (RequestException, ValueError, KeyError) as exc:
            raise SsoRefused(f"The identity provider's answer could not be verified ({type(exc).__name__})") from exc
        return str(metadata.get("issuer") or settings.OIDC_ISSUER), claims


def sso_client() -> SsoClient:
    return shared(SsoClient)
