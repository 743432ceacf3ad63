"""The authentication backend of single sign-on users: it signs in whoever the identity provider vouched
for (claims already verified by accounts.sso), never anyone presenting a password."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import User
from django.http import HttpRequest

from accounts.services import sso_user_sync
from audit.services import request_ip


class SsoBackend(ModelBackend):
    def authenticate(  # type: ignore[override]
        self, request: HttpRequest | None, sso_claims: Mapping[str, Any] | None = None, sso_issuer: str = "",
        **_: Any,
    ) -> User | None:
        if sso_claims is None or not sso_issuer:
            return None  # a password or another backend's credentials: not ours
        user = sso_user_sync(claims=sso_claims, issuer=sso_issuer, ip=request_ip(request) if request else None)
        return user if self.user_can_authenticate(user) else None
