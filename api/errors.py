"""Every API error leaves in the one JSON format of `ragsite.errors`: this module only translates what
django-ninja and Django raise or answer on their own (validation, unknown URLs, wrong methods) into it."""

from __future__ import annotations

import logging

from django.core.exceptions import BadRequest, ObjectDoesNotExist, RequestDataTooBig, SuspiciousOperation
from django.http import Http404, HttpRequest, HttpResponse
from django.http.multipartparser import MultiPartParserError
from ninja.errors import HttpError
from ninja.errors import ValidationError as NinjaValidationError

from api.exceptions import InvalidRequest, KeyMissing, NotFound, PayloadTooLarge, ValidationFailed
from ragsite.errors import error_body, error_response
from ragsite.logs import log_event

logger = logging.getLogger(__name__)

# Responses Django or ninja produce without an exception (e.g. 405): their status picks the code.
_STATUS_CODES = {
    400: "invalid_request", 401: "missing_api_key", 403: "forbidden", 404: "not_found",
    405: "method_not_allowed", 413: "payload_too_large", 415: "unsupported_media_type", 500: "internal",
}
_KEPT_HEADERS = ("Allow", "Retry-After")


def _validation_failed(exc: NinjaValidationError) -> ValidationFailed:
    errors = [
        {"loc": [str(part) for part in e.get("loc", ())], "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))}
        for e in exc.errors
    ]
    where = "; ".join(f"{'.'.join(e['loc'][1:]) or e['loc'][0]}: {e['msg']}" for e in errors[:5])  # type: ignore[index]
    return ValidationFailed(f"The request does not match the schema: {where}", details={"errors": errors})


def _translated(exc: Exception) -> Exception:
    if isinstance(exc, NinjaValidationError):
        return _validation_failed(exc)
    if isinstance(exc, Http404 | ObjectDoesNotExist):  # e.g. an answer deleted while a request waited for it
        return NotFound(str(exc) or "Not found")
    if isinstance(exc, RequestDataTooBig):
        return PayloadTooLarge("The request body is too large: send less (files go to POST documents, one per request)")
    if isinstance(exc, MultiPartParserError):
        return InvalidRequest(f"The multipart body cannot be read ({exc}): send the form fields `collection` and `file`")
    if isinstance(exc, BadRequest | SuspiciousOperation):
        return InvalidRequest(str(exc) or "Bad request")
    if isinstance(exc, HttpError):
        if exc.status_code == 401:
            return KeyMissing("No API key: send it as `Authorization: Bearer grk_...` or `X-API-Key: grk_...`")
        if exc.status_code == 400:
            return InvalidRequest(f"{exc}: send a JSON body (Content-Type: application/json)")
    return exc


def api_exception_response(request: HttpRequest, exc: Exception) -> HttpResponse:
    """ninja's exception handler for every API route."""
    exc = _translated(exc)
    response = error_response(exc)
    if response is None:
        if isinstance(exc, HttpError):
            return error_body(status=exc.status_code, code=_STATUS_CODES.get(exc.status_code, "error"), message=str(exc))
        logger.error("event=api_crashed path=%s", request.path, exc_info=exc)
        return error_body(status=500, code="internal", message="Internal error; it has been logged")
    if response.status_code >= 500:
        log_event(logger, "api_error", level=logging.WARNING, path=request.path, status=response.status_code)
    return response


def as_json_error(response: HttpResponse) -> HttpResponse:
    """A plain error response (Django's 404 for an unknown URL, 405, ...) in the JSON error format."""
    if response.status_code < 400 or response.streaming or response.get("Content-Type", "").startswith("application/json"):
        return response
    status = response.status_code
    reason = response.reason_phrase or "Error"
    message = f"{reason}: allowed methods are {response['Allow']}" if response.has_header("Allow") else reason
    converted = error_body(status=status, code=_STATUS_CODES.get(status, "error"), message=message)
    for header in _KEPT_HEADERS:
        if response.has_header(header):
            converted[header] = response[header]
    return converted
