"""The staff page of the audit trail, with filters, and the same selection as CSV."""

from __future__ import annotations

import csv
from collections.abc import Iterator

from django import forms
from django.contrib.admin.views.decorators import staff_member_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from audit.exceptions import FilterInvalid
from audit.models import AuditEvent
from audit.services import AuditFilter, audit_csv_rows, audit_events
from ragsite.filters import PeriodForm

PAGE_SIZE = 100


class AuditFilterForm(PeriodForm):
    action = forms.ChoiceField(choices=[("", "any action"), *AuditEvent.Action.choices], required=False)
    actor = forms.CharField(required=False, max_length=300, help_text="part of a user name or key name")
    collection = forms.CharField(required=False, max_length=200, help_text="a collection's slug")
    field_order = ["action", "actor", "collection", "since", "until"]


def _filters(request: HttpRequest) -> tuple[AuditFilterForm, AuditFilter]:
    form = AuditFilterForm(request.GET)
    if not form.is_valid():
        raise FilterInvalid(form.problems())
    data = form.cleaned_data
    since, until = form.period()
    return form, AuditFilter(
        action=data["action"], actor=data["actor"].strip(), collection=data["collection"].strip(), since=since,
        until=until,
    )


@staff_member_required
@require_GET
def audit_page(request: HttpRequest) -> HttpResponse:
    form, filters = _filters(request)
    page = Paginator(audit_events(filters=filters), PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(request, "audit/events.html", {"form": form, "page": page, "query": query.urlencode()})


class _Echo:
    def write(self, value: str) -> str:
        return value


@staff_member_required
@require_GET
def audit_export(request: HttpRequest) -> StreamingHttpResponse:
    _, filters = _filters(request)
    writer = csv.writer(_Echo())
    rows: Iterator[str] = (writer.writerow(row) for row in audit_csv_rows(audit_events(filters=filters).iterator()))
    response = StreamingHttpResponse(rows, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="audit-{timezone.now():%Y%m%d-%H%M%S}.csv"'
    return response
