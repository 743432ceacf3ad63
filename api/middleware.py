"""For API paths only: refuse oversized bodies before they are read, give every error the JSON format,
and log one line per request with the key id, status and timings (never the question, unless opted in)."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.utils.decorators import sync_and_async_middleware

from api.errors import as_json_error
from api.exceptions import PayloadTooLarge
from ragsite.errors import error_response
from ragsite.logs import log_event

logger = logging.getLogger("api.requests")

API_PREFIXES = ("/api/", "/v1/")
_MULTIPART_OVERHEAD = 1024 * 1024


def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith(API_PREFIXES)


def _oversized(request: HttpRequest) -> HttpResponse | None:
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    multipart = request.content_type == "multipart/form-data"
    limit = settings.MAX_UPLOAD_BYTES + _MULTIPART_OVERHEAD if multipart else settings.API_MAX_BODY_BYTES
    if length <= limit:
        return None
    what = "upload" if multipart else "JSON body"
    return error_response(PayloadTooLarge(f"The {what} is {length} bytes; the limit is {limit}: send less"))


def _fields(request: HttpRequest, response: HttpResponse | StreamingHttpResponse) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "key": getattr(request, "api_key_id", None) or "-", "method": request.method, "path": request.path,
        "status": response.status_code,
    }
    if settings.API_LOG_QUESTIONS and getattr(request, "api_question", None):
        fields["question"] = request.api_question  # type: ignore[attr-defined]
    return fields


def _log(fields: dict[str, Any], started: float, **more: Any) -> None:
    log_event(logger, "api_request", **fields, ms=round((time.perf_counter() - started) * 1000, 1), **more)


def _finish(request: HttpRequest, response: HttpResponse, started: float) -> HttpResponse:
    response = as_json_error(response)
    fields = _fields(request, response)
    if not isinstance(response, StreamingHttpResponse):
        _log(fields, started)
        return response
    # A stream is logged when it ends, with the time its headers took as well.
    first_ms = round((time.perf_counter() - started) * 1000, 1)
    content = response.streaming_content
    if response.is_async:
        response.streaming_content = _logged_async(content, fields, started, first_ms)  # type: ignore[arg-type]
    else:
        response.streaming_content = _logged_sync(content, fields, started, first_ms)  # type: ignore[arg-type]
    return response


async def _logged_async(content: AsyncIterator[bytes], fields: dict[str, Any], started: float, first_ms: float) -> AsyncIterator[bytes]:
    try:
        async for part in content:
            yield part
    finally:
        _log(fields, started, headers_ms=first_ms, streamed=True)


def _logged_sync(content: Iterator[bytes], fields: dict[str, Any], started: float, first_ms: float) -> Iterator[bytes]:
    try:
        yield from content
    finally:
        _log(fields, started, headers_ms=first_ms, streamed=True)


@sync_and_async_middleware
def ApiRequestMiddleware(
    get_response: Callable[[HttpRequest], HttpResponse] | Callable[[HttpRequest], Awaitable[HttpResponse]],
) -> Callable[[HttpRequest], Any]:
    if iscoroutinefunction(get_response):

        async def async_middleware(request: HttpRequest) -> HttpResponse:
            if not _is_api(request):
                return await get_response(request)  # type: ignore[no-any-return, misc]
            started = time.perf_counter()
            response = _oversized(request) or await get_response(request)  # type: ignore[misc]
            return _finish(request, response, started)

        markcoroutinefunction(async_middleware)
        return async_middleware

    def middleware(request: HttpRequest) -> HttpResponse:
        if not _is_api(request):
            return get_response(request)  # type: ignore[return-value]
        started = time.perf_counter()
        response = _oversized(request) or get_response(request)
        return _finish(request, response, started)  # type: ignore[arg-type]

    return middleware
