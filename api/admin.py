"""Staff create keys here (the key is shown once, on the page after saving) and revoke them."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from api.keys import api_key_create, api_key_revoke
from api.models import ApiKey
from audit.services import actor_of_request


class ApiKeyCreateForm(forms.ModelForm):
    class Meta:
        model = ApiKey
        fields = ["name", "collections", "expires_at", "rate_limit_per_minute", "can_manage_documents"]


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ["name", "prefix", "state", "expires_at", "last_used_at", "rate_limit_per_minute", "created_at"]
    list_filter = ["revoked_at", "can_manage_documents"]
    search_fields = ["name", "prefix"]
    filter_horizontal = ["collections"]
    readonly_fields = ["prefix", "created_by", "created_at", "last_used_at", "revoked_at"]
    exclude = ["key_hash"]
    actions = ["revoke"]

    def get_form(self, request: HttpRequest, obj: ApiKey | None = None, change: bool = False, **kwargs: Any) -> Any:
        if obj is None:
            kwargs["form"] = ApiKeyCreateForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_readonly_fields(self, request: HttpRequest, obj: ApiKey | None = None) -> list[str]:
        return self.readonly_fields if obj is not None else []

    @admin.display(description="state")
    def state(self, obj: ApiKey) -> str:
        return "revoked" if obj.revoked_at else "active"

    def save_model(self, request: HttpRequest, obj: ApiKey, form: Any, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        # New keys go through the service: random secret, stored hashed. Collections are set there too.
        issued = api_key_create(
            name=obj.name, collections=form.cleaned_data["collections"], expires_at=obj.expires_at,
            rate_limit_per_minute=obj.rate_limit_per_minute, can_manage_documents=obj.can_manage_documents,
            actor=actor_of_request(request),
        )
        obj.pk = issued.key.pk
        obj.prefix = issued.key.prefix
        request._issued_key = issued.secret  # type: ignore[attr-defined]  # for response_add, this request only

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        if change:
            super().save_related(request, form, formsets, change)

    def response_add(self, request: HttpRequest, obj: ApiKey, post_url_continue: str | None = None) -> HttpResponse:
        # Rendered, not redirected: the key must not sit in a message cookie or the session.
        secret = getattr(request, "_issued_key", None)
        if secret is None:
            return super().response_add(request, obj, post_url_continue)
        context = {**self.admin_site.each_context(request), "key": obj, "secret": secret, "opts": self.model._meta}
        response = TemplateResponse(request, "api/key_created.html", context)
        response["Cache-Control"] = "no-store"
        return response

    @admin.action(description="Revoke selected keys")
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        actor = actor_of_request(request)
        for key in queryset.filter(revoked_at__isnull=True):
            api_key_revoke(key=key, actor=actor)
        self.message_user(request, "Selected keys revoked: they stop working at once", messages.SUCCESS)
