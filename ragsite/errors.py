"""The one place where application exceptions become HTTP status codes and a JSON error body.

Each app raises its own exceptions with messages a person can act on; this module decides the status.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, JsonResponse

from ingestion.exceptions import IngestionError, PdfRejected
from ragsite.logs import log_event
from retrieval.exceptions import EmbedderUnavailable, IndexUnavailable, RetrievalError

logger = logging.getLogger(__name__)

# (exception type, HTTP status, stable error code). The first matching entry wins: specific ones first.
ERROR_MAP: list[tuple[type[Exception], int, str]] = [
    (PdfRejected, 422, "document_rejected"),
    (IngestionError, 400, "ingestion_error"),
    (EmbedderUnavailable, 503, "embedder_unavailable"),
    (IndexUnavailable, 503, "index_unavailable"),
    (RetrievalError, 500, "retrieval_error"),
]


def register_errors(entries: list[tuple[type[Exception], int, str]]) -> None:
    """Apps that load later (llm, chat) add their exceptions here, most specific first."""
    for entry in entries:
        if entry not in ERROR_MAP:
            ERROR_MAP.insert(0, entry)


def error_status(exc: Exception) -> tuple[int, str] | None:
    for kind, status, code in ERROR_MAP:
        if isinstance(exc, kind):
            return status, getattr(exc, "code", None) or code
    return None


def error_body(*, status: int, code: str, message: str) -> JsonResponse:
    return JsonResponse({"error": {"code": code, "message": message}}, status=status)


def _wants_json(request: HttpRequest) -> bool:
    return request.path.startswith(("/api/", "/v1/")) or "application/json" in request.headers.get("Accept", "")


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
            return error_body(status=status, code=code, message=str(exc))
        return HttpResponse(str(exc), status=status, content_type="text/plain; charset=utf-8")
