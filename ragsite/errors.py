"""The one place where application exceptions become HTTP status codes and a JSON error body.

Each app raises its own exceptions with messages a person can act on, and registers their status and
stable code here from its AppConfig.ready (this module imports no app). A request that fails with a
registered exception gets that status: JSON for the API and for pages' fetch calls, text otherwise.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from django.http import HttpRequest, HttpResponse, JsonResponse

from ragsite.logs import log_event

logger = logging.getLogger(__name__)

# (exception type, HTTP status, stable error code). The first matching entry wins: specific ones first.
ERROR_MAP: list[tuple[type[Exception], int, str]] = []


def register_errors(entries: list[tuple[type[Exception], int, str]]) -> None:
    """An app's exceptions, most specific first (called from its AppConfig.ready)."""
    # Ahead of the existing entries, in the order given (inserting each at 0 would reverse them).
    for position, entry in enumerate(e for e in entries if e not in ERROR_MAP):
        ERROR_MAP.insert(position, entry)


def error_status(exc: Exception) -> tuple[int, str] | None:
    for kind, status, code in ERROR_MAP:
        if isinstance(exc, kind):
            return status, getattr(exc, "code", None) or code
    return None


def error_body(*, status: int, code: str, message: str, details: Mapping[str, object] | None = None) -> JsonResponse:
    return JsonResponse({"error": {"code": code, "message": message, **(details or {})}}, status=status)


def error_response(exc: Exception) -> JsonResponse | None:
    """The JSON error for a mapped exception; `details` and `retry_after` on it reach the client too."""
    mapped = error_status(exc)
    if mapped is None:
        return None
    status, code = mapped
    response = error_body(status=status, code=code, message=str(exc), details=getattr(exc, "details", None))
    retry_after = getattr(exc, "retry_after", None)
    if retry_after is not None:
        response["Retry-After"] = str(max(1, math.ceil(retry_after)))
    return response


V = TypeVar("V", bound=Callable[..., Any])


def json_errors(view: V) -> V:
    """Mark a view that pages call with fetch: its errors are JSON whatever the request's Accept header."""

    @functools.wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        request.json_errors = True  # type: ignore[attr-defined]
        return view(request, *args, **kwargs)

    if asyncio.iscoroutinefunction(view):

        @functools.wraps(view)
        async def wrapped_async(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
            request.json_errors = True  # type: ignore[attr-defined]
            return await view(request, *args, **kwargs)

        return wrapped_async  # type: ignore[return-value]
    return wrapped  # type: ignore[return-value]


def _wants_json(request: HttpRequest) -> bool:
    return (
        getattr(request, "json_errors", False)
        or request.path.startswith(("/api/", "/v1/"))
        or "application/json" in request.headers.get("Accept", "")
    )


class ErrorMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exc: Exception) -> HttpResponse | None:
        mapped = error_status(exc)
        if mapped is None:
            if _wants_json(request):
                logger.exception("event=request_crashed path=%s", request.path)
                return error_body(status=500, code="internal", message="Internal error; it has been logged")
            return None
        status, code = mapped
        log_event(logger, "request_error", level=logging.WARNING, path=request.path, status=status, code=code)
        if _wants_json(request):
            return error_response(exc)
        return HttpResponse(str(exc), status=status, content_type="text/plain; charset=utf-8")
