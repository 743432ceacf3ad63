"""The staff page of answers with their thumbs, comments and grounding, filtered for review."""

from __future__ import annotations

from django import forms
from django.contrib.admin.views.decorators import staff_member_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from chat.exceptions import RequestInvalid
from chat.feedback import FLAGGED_CHOICES, THUMBS_CHOICES, FeedbackFilter, feedback_answers
from chat.records import answer_view
from ingestion.models import Collection
from ragsite.filters import PeriodForm

PAGE_SIZE = 50


class FeedbackFilterForm(PeriodForm):
    collection = forms.ChoiceField(required=False)
    thumbs = forms.ChoiceField(choices=list(THUMBS_CHOICES.items()), required=False)
    flagged = forms.ChoiceField(label="Grounding", choices=list(FLAGGED_CHOICES.items()), required=False)
    field_order = ["collection", "thumbs", "flagged", "since", "until"]

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        slugs = [("", "any"), *Collection.objects.values_list("slug", "name")]
        self.fields["collection"].choices = slugs  # type: ignore[attr-defined]


@staff_member_required
@require_GET
def feedback_page(request: HttpRequest) -> HttpResponse:
    form = FeedbackFilterForm(request.GET)
    if not form.is_valid():
        raise RequestInvalid(form.problems())
    data = form.cleaned_data
    since, until = form.period()
    filters = FeedbackFilter(
        collection=data["collection"], thumbs=data["thumbs"], flagged=data["flagged"], since=since, until=until
    )
    page = Paginator(feedback_answers(filters=filters), PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request, "chat/feedback.html",
        {"form": form, "page": page, "views": [answer_view(a) for a in page], "query": query.urlencode()},
    )
