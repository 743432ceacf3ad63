"""Errors of the REST API. `ragsite.errors` maps them to a status and the one JSON error format.

`details` adds fields to the error body (e.g. the answer id of a timed-out answer, so the client can
fetch it later); `retry_after` (seconds) becomes the Retry-After header.
"""

from __future__ import annotations

from collections.abc import Mapping


class ApiError(Exception):
    """Base of the api app's errors."""

    def __init__(
        self, message: str, *, details: Mapping[str, object] | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.details = dict(details or {})
        self.retry_after = retry_after


class KeyMissing(ApiError):
    """No key in `Authorization: Bearer` or `X-API-Key`."""


class KeyInvalid(ApiError):
    """Not a key, or a key that does not match any we issued."""


class KeyRevoked(ApiError):
    """A staff member revoked the key."""


class KeyExpired(ApiError):
    """The key is past its expiry date."""


class CollectionForbidden(ApiError):
    """The key is valid but not for that collection (existing or not: the answer is the same)."""


class PermissionDenied(ApiError):
    """The key may not do this (e.g. manage documents)."""


class NotFound(ApiError):
    """No such object among the key's collections: another collection's ids look the same as missing ones."""


class InvalidRequest(ApiError):
    """The request is malformed or inconsistent."""


class ValidationFailed(InvalidRequest):
    """The body, query or path does not match the schema; `details.errors` says where."""


class PayloadTooLarge(ApiError):
    """The request body or an uploaded file is over the limit."""


class RateLimited(ApiError):
    """The key has used its requests for this minute."""


class Overloaded(ApiError):
    """Too many answers are waiting for the gpu workers: come back later rather than wait."""


class AnswerTimeout(ApiError):
    """The answer did not finish in time; it is still being worked on and can be fetched by id."""


class AnswerFailed(ApiError):
    """The worker could not produce the answer."""


# (exception, HTTP status, stable code), registered with ragsite.errors when the app loads.
API_ERRORS: list[tuple[type[Exception], int, str]] = [
    (KeyMissing, 401, "missing_api_key"),
    (KeyInvalid, 401, "invalid_api_key"),
    (KeyRevoked, 401, "api_key_revoked"),
    (KeyExpired, 401, "api_key_expired"),
    (CollectionForbidden, 403, "collection_forbidden"),
    (PermissionDenied, 403, "permission_denied"),
    (NotFound, 404, "not_found"),
    (ValidationFailed, 422, "validation_error"),
    (InvalidRequest, 400, "invalid_request"),
    (PayloadTooLarge, 413, "payload_too_large"),
    (RateLimited, 429, "rate_limited"),
    (Overloaded, 503, "overloaded"),
    (AnswerTimeout, 504, "answer_timeout"),
    (AnswerFailed, 502, "answer_failed"),
]
