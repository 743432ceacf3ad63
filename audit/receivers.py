"""Sign-ins, failed sign-ins and sign-outs, from Django's auth signals: every way of signing in (password,
single sign-on, the admin) goes through django.contrib.auth, so none is missed."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.http import HttpRequest

from audit.models import AuditEvent
from audit.services import Actor, audit_record, request_ip


def _ip(request: HttpRequest | None) -> str | None:
    return request_ip(request) if request is not None else None


def _signed_in(*, request: HttpRequest | None, user: Any, **_: Any) -> None:
    audit_record(
        action=AuditEvent.Action.SIGN_IN, actor=Actor.of_user(user, ip=_ip(request)),
        details={"method": _method(getattr(user, "backend", ""))},
    )


def _signed_out(*, request: HttpRequest | None, user: Any, **_: Any) -> None:
    if user is not None and user.is_authenticated:  # signing out without a session is no event
        audit_record(action=AuditEvent.Action.SIGN_OUT, actor=Actor.of_user(user, ip=_ip(request)))


def _sign_in_failed(*, credentials: dict[str, Any], request: HttpRequest | None = None, **_: Any) -> None:
    # Django has already masked the password; the name tried is what an investigator needs.
    tried = str(credentials.get("username") or credentials.get("sso_subject") or "")
    method = "sso" if "sso_claims" in credentials or "sso_subject" in credentials else "password"
    audit_record(
        action=AuditEvent.Action.SIGN_IN_FAILED, actor=Actor(kind="anonymous", id=None, name=tried, ip=_ip(request)),
        details={"method": method, **({"reason": credentials["reason"]} if credentials.get("reason") else {})},
    )


def _method(backend: str) -> str:
    return "sso" if "oidc" in backend.lower() or "sso" in backend.lower() else "password"


def connect() -> None:
    user_logged_in.connect(_signed_in, dispatch_uid="audit.signed_in")
    user_logged_out.connect(_signed_out, dispatch_uid="audit.signed_out")
    user_login_failed.connect(_sign_in_failed, dispatch_uid="audit.sign_in_failed")
