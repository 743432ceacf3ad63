"""Signing in: the password form (unless RAG_PASSWORD_LOGIN=0) and single sign-on through the identity
provider. Both end in django.contrib.auth.login, whose signals write the audit trail."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import authenticate, login
from django.contrib.auth.views import LoginView
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET

from accounts.exceptions import PasswordSignInOff, SsoRefused, SsoUnavailable
from accounts.sso import sso_client
from audit.models import AuditEvent
from audit.services import Actor, audit_record, request_ip

_NEXT = "sso_next"


class SignInView(LoginView):
    template_name = "registration/login.html"

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not settings.PASSWORD_LOGIN:
            raise PasswordSignInOff(f"Password sign-in is turned off: sign in with {settings.OIDC_PROVIDER_NAME}")
        return super().post(request, *args, **kwargs)

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        return {
            **super().get_context_data(**kwargs),
            "password_login": settings.PASSWORD_LOGIN,
            "sso_enabled": bool(settings.OIDC_ISSUER),
            "sso_name": settings.OIDC_PROVIDER_NAME,
        }


def _safe_next(request: HttpRequest, url: str | None) -> str:
    if url and url_has_allowed_host_and_scheme(url, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        return url
    return settings.LOGIN_REDIRECT_URL


@require_GET
def sso_start(request: HttpRequest) -> HttpResponse:
    """Off to the identity provider; it sends the person back to sso_callback."""
    if not settings.OIDC_ISSUER:
        raise SsoUnavailable("Single sign-on is not configured here")
    request.session[_NEXT] = _safe_next(request, request.GET.get("next"))
    return sso_client().redirect(request, callback_url=request.build_absolute_uri(reverse("sso-callback")))


def _refused(request: HttpRequest, reason: str) -> HttpResponse:
    audit_record(
        action=AuditEvent.Action.SIGN_IN_FAILED, actor=Actor(kind="anonymous", id=None, name="", ip=request_ip(request)),
        details={"method": "sso", "reason": reason[:300]},
    )
    messages.error(request, f"Single sign-on failed: {reason}")
    return redirect("login")


@require_GET
def sso_callback(request: HttpRequest) -> HttpResponse:
    if not settings.OIDC_ISSUER:
        raise SsoUnavailable("Single sign-on is not configured here")
    try:
        issuer, claims = sso_client().claims(request)
        user = authenticate(request, sso_claims=claims, sso_issuer=issuer)
    except SsoRefused as exc:
        return _refused(request, str(exc))
    if user is None:  # refused by the backend (an inactive account): Django's signal has recorded it
        messages.error(request, "Your account here is disabled: ask an administrator")
        return redirect("login")
    next_url = _safe_next(request, request.session.pop(_NEXT, None))
    login(request, user, backend="accounts.backends.SsoBackend")
    return redirect(next_url)
