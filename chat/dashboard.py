"""Staff view of grounding over time, its JSON data, and the Prometheus metrics endpoint."""

from __future__ import annotations

import hmac
from collections.abc import Iterator
from datetime import timedelta

from django.conf import settings
from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric

from chat import reports
from chat.charts import rate_chart_svg
from chat.exceptions import SignInRequired


def _days(request: HttpRequest) -> int:
    try:
        return max(1, min(365, int(request.GET.get("days", "30"))))
    except ValueError:
        return 30


@staff_member_required
@require_GET
def dashboard(request: HttpRequest) -> HttpResponse:
    days = _days(request)
    since = timezone.now() - timedelta(days=days)
    daily = reports.hallucination_rates(since=since, by_collection=False, by_adapter=True)
    totals = reports.hallucination_rates(since=since, by_day=False, by_collection=False, by_backend=False)
    groups = reports.hallucination_rates(since=since, by_day=False, by_adapter=True)
    end = timezone.localdate()
    return render(
        request,
        "chat/dashboard.html",
        {
            "days": days,
            "chart": rate_chart_svg(daily, start=end - timedelta(days=days - 1), end=end),
            "total": totals[0] if totals else None,
            "groups": groups,
            "adapters": any(g.adapter for g in groups),
            "worst": reports.worst_answers(since=since, limit=15),
        },
    )


@staff_member_required
@require_GET
def dashboard_data(request: HttpRequest) -> JsonResponse:
    since = timezone.now() - timedelta(days=_days(request))
    rows = reports.hallucination_rates(since=since, by_adapter=True)
    return JsonResponse(
        {
            "since": since.isoformat(),
            "rows": [
                {
                    "day": r.day.isoformat() if r.day else None, "collection": r.collection, "backend": r.backend,
                    "adapter": r.adapter,
                    "answers": r.answers, "flagged": r.flagged, "rate": r.rate, "ci95": [r.low, r.high],
                    "unscored": r.unscored,
                    "thumbs_up": r.up, "thumbs_down": r.down,
                }
                for r in rows
            ],
        }
    )


class _AnswerCollector:
    """Reads the totals from the database at scrape time, so every web process reports the same numbers."""

    def collect(self) -> Iterator[Metric]:
        since = timezone.now() - timedelta(days=3650)
        # adapter: the LoRA adapter that wrote the answers ('' = the base model).
        labels_of = ["collection", "backend", "adapter"]
        answers = CounterMetricFamily("rag_answers", "Answers written by the model and scored for grounding", labels=labels_of)
        flagged = CounterMetricFamily("rag_answers_flagged", "Answers flagged as not grounded", labels=labels_of)
        unscored = CounterMetricFamily(
            "rag_answers_unscored", "Answers the grounding scorer gave no verdict on (in neither count above)",
            labels=labels_of,
        )
        for row in reports.hallucination_rates(since=since, by_day=False, by_adapter=True):
            labels = [row.collection or "", row.backend or "", row.adapter or ""]
            answers.add_metric(labels, row.answers)
            flagged.add_metric(labels, row.flagged)
            unscored.add_metric(labels, row.unscored)
        buckets, count, total = reports.score_histogram()
        histogram = HistogramMetricFamily("rag_grounding_score", "Grounding score of answers (1 = fully supported)")
        histogram.add_metric([], [(str(b), c) for b, c in buckets] + [("+Inf", count)], total)
        yield from (answers, flagged, unscored, histogram)


def _metrics_allowed(request: HttpRequest) -> bool:
    token = settings.METRICS_TOKEN
    given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    if token and given and hmac.compare_digest(given, token):
        return True
    return bool(request.user.is_authenticated and request.user.is_staff)


@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    if not _metrics_allowed(request):
        raise SignInRequired("Send 'Authorization: Bearer <RAG_METRICS_TOKEN>' or sign in as staff")
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_AnswerCollector())  # type: ignore[arg-type]
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
