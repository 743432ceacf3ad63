from django.contrib.auth import views as auth_views
from django.urls import path
from django.views.generic import RedirectView

from accounts import views

urlpatterns = [
    path("accounts/login/", views.SignInView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/sso/", views.sso_start, name="sso-start"),
    path("accounts/sso/callback/", views.sso_callback, name="sso-callback"),
    # One sign-in page for everyone: the admin's own password form would bypass single sign-on and
    # RAG_PASSWORD_LOGIN=0.
    path("admin/login/", RedirectView.as_view(pattern_name="login", query_string=True)),
]
