from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    # Sign-in, sign-out and single sign-on; first, so that it also takes over the admin's login page.
    path("", include("accounts.urls")),
    path("admin/", admin.site.urls),
    path("documents/", include("ingestion.urls")),
    path("audit/", include("audit.urls")),
    path("", include("chat.urls")),
    # The REST API: /api/v1/... and the OpenAI-compatible /v1/... (one schema, docs at /api/v1/docs).
    path("", include("api.urls")),
]
