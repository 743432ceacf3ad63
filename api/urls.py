"""One NinjaAPI for /api/v1/ and the OpenAI-compatible /v1/: one OpenAPI schema, one docs page (/api/v1/docs)."""

from __future__ import annotations

from django.http import Http404
from django.urls import path
from ninja import NinjaAPI
from ninja.errors import HttpError
from ninja.errors import ValidationError as NinjaValidationError

from api import completion_views, document_views, views
from api.auth import ApiKeyAuth
from api.errors import api_exception_response

DESCRIPTION = """Cited answers from your documents, for support bots.

Authenticate with an API key from an administrator (`manage.py create_api_key` or the admin):
`Authorization: Bearer grk_...` (or `X-API-Key: grk_...`). A key sees only its collections.

Every error is `{"error": {"code": "...", "message": "..."}}` with a stable `code`. 429 (rate limit) and
503 (the model's queue is full) carry `Retry-After`; 504 (answer not ready in time) carries `answer_id`,
to fetch with `GET /api/v1/answers/{id}`.
"""

ninja_api = NinjaAPI(
    title="GroundRAG API",
    version="1",
    description=DESCRIPTION,
    auth=ApiKeyAuth(),
    urls_namespace="api",
    docs_url="/api/v1/docs",
    openapi_url="/api/v1/openapi.json",
)
for kind in (Exception, Http404, HttpError, NinjaValidationError):
    ninja_api.add_exception_handler(kind, api_exception_response)  # type: ignore[arg-type]
ninja_api.add_router("/api/v1/", views.router)
ninja_api.add_router("/api/v1/", document_views.router)
ninja_api.add_router("/v1/", completion_views.router)

urlpatterns = [path("", ninja_api.urls)]
