from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("documents/", include("ingestion.urls")),
    path("", include("chat.urls")),
    # The REST API: /api/v1/... and the OpenAI-compatible /v1/... (one schema, docs at /api/v1/docs).
    path("", include("api.urls")),
]
