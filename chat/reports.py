"""The hallucination log read back: rates over time with confidence intervals, worst answers, metrics.

Only answers the model actually wrote count: "the documents do not contain the answer" replies given
without calling the model cannot hallucinate and would only dilute the rate. Answers the scorer could give
no verdict ("unscored": a judge that replied nothing usable) are counted apart, never in the rate.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from django.db.models import Count, Q, QuerySet, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from chat.models import Answer

SCORE_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
_SINCE = re.compile(r"^(\d+)\s*([hdw])$")


@dataclass(frozen=True)
class RateRow:
    day: date | None
    collection: str | None
    backend: str | None
    answers: int  # scored: the rate's denominator
    flagged: int
    rate: float
    low: float
    high: float
    adapter: str | None = None  # set when grouped by adapter; '' = the base model
    unscored: int = 0  # model answers the scorer gave no verdict on: in neither count above
    up: int = 0  # thumbs up and down given to these answers
    down: int = 0


def wilson_interval(flagged: int, total: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval for a proportion: honest at small counts, unlike the normal approximation."""
    if total == 0:
        return 0.0, 0.0
    p = flagged / total
    denom = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denom
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def since_parse(text: str) -> datetime:
    """'7d', '24h' or '2w' before now."""
    match = _SINCE.match(text.strip())
    if not match:
        raise ValueError(f"Cannot read {text!r} as a period: use a number and h, d or w, e.g. 7d")
    amount, unit = int(match.group(1)), match.group(2)
    hours = {"h": 1, "d": 24, "w": 24 * 7}[unit] * amount
    return timezone.now() - timedelta(hours=hours)


def scored_answers(
    *, since: datetime, collection_id: int | None = None, backend: str | None = None, unscored: bool = False
) -> QuerySet[Answer]:
    """Model answers with a grounding verdict (and with `unscored`, those the scorer gave none too)."""
    settled = Q(grounding_flagged__isnull=False)
    if unscored:
        settled |= Q(grounding_status=Answer.Grounding.UNSCORED)
    qs = Answer.objects.filter(settled, created_at__gte=since, model_called=True)
    if collection_id is not None:
        qs = qs.filter(conversation__collection_id=collection_id)
    if backend:
        qs = qs.filter(backend=backend)
    return qs


def hallucination_rates(
    *, since: datetime, by_day: bool = True, by_collection: bool = True, by_backend: bool = True,
    by_adapter: bool = False, collection_id: int | None = None, backend: str | None = None,
) -> list[RateRow]:
    """Share of flagged answers per group, with counts and a 95% interval, oldest day first."""
    keys: list[str] = []
    qs = scored_answers(since=since, collection_id=collection_id, backend=backend, unscored=True)
    if by_day:
        qs = qs.annotate(day=TruncDate("created_at"))
        keys.append("day")
    if by_collection:
        keys.append("conversation__collection__name")
    if by_backend:
        keys.append("backend")
    if by_adapter:
        keys.append("adapter")
    counts = {
        "n": Count("id", filter=Q(grounding_flagged__isnull=False)),
        "f": Count("id", filter=Q(grounding_flagged=True)),
        "u": Count("id", filter=Q(grounding_status=Answer.Grounding.UNSCORED)),
        "up": Count("id", filter=Q(feedback=1)), "down": Count("id", filter=Q(feedback=-1)),
    }
    if keys:
        grouped = list(qs.values(*keys).annotate(**counts).order_by(*keys))
    else:
        totals = qs.aggregate(**counts)
        grouped = [totals] if totals["n"] or totals["u"] else []
    rows = []
    for g in grouped:
        low, high = wilson_interval(g["f"], g["n"])
        rows.append(
            RateRow(
                day=g.get("day"), collection=g.get("conversation__collection__name"), backend=g.get("backend"),
                answers=g["n"], flagged=g["f"], rate=g["f"] / g["n"] if g["n"] else 0.0, low=low, high=high,
                adapter=g.get("adapter"),
                unscored=g["u"],
                up=g["up"], down=g["down"],
            )
        )
    return rows


def worst_answers(*, since: datetime, limit: int = 20) -> list[Answer]:
    return list(
        scored_answers(since=since).select_related("conversation__collection").order_by("grounding_score", "-id")[:limit]
    )


def score_histogram(*, since: datetime | None = None) -> tuple[list[tuple[float, int]], int, float]:
    """Cumulative counts per upper bound (Prometheus style), the total count and the sum of scores."""
    qs = Answer.objects.filter(model_called=True, grounding_score__isnull=False)
    if since is not None:
        qs = qs.filter(created_at__gte=since)
    aggregates = qs.aggregate(
        total=Count("id"), **{f"le_{i}": Count("id", filter=Q(grounding_score__lte=b)) for i, b in enumerate(SCORE_BUCKETS)}
    )
    scores_sum = qs.aggregate(total=Sum("grounding_score"))["total"] or 0.0
    return [(b, aggregates[f"le_{i}"]) for i, b in enumerate(SCORE_BUCKETS)], aggregates["total"], float(scores_sum)
