"""How requests present a key: `Authorization: Bearer <key>` (what OpenAI clients send) or `X-API-Key`."""

from __future__ import annotations

from django.http import HttpRequest
from ninja.security import HttpBearer

from api.keys import Caller, api_key_authenticate, api_key_throttle
from audit.services import request_ip


def presented_key(request: HttpRequest) -> str | None:
    if key := request.headers.get("X-API-Key"):
        return key
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return (token.strip() or None) if scheme.lower() == "bearer" else None


class ApiKeyAuth(HttpBearer):
    """Authenticates the key and counts the request against its rate limit.

    It raises (never returns None) so the client learns why: missing, invalid, revoked or expired.
    """

    openapi_description = "An API key from an administrator: `Authorization: Bearer grk_...` (or `X-API-Key: grk_...`)"

    def __call__(self, request: HttpRequest) -> Caller:
        caller = api_key_authenticate(raw=presented_key(request), ip=request_ip(request))
        request.api_key_id = caller.key.id  # type: ignore[attr-defined]  # for the request log, even on a 429
        api_key_throttle(key=caller.key)
        return caller

    def authenticate(self, request: HttpRequest, token: str) -> Caller:
        return self(request)
