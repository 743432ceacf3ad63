"""Feedback read back: the answers people rated (or that were flagged), for the staff page and for the JSONL
export that becomes evaluation sets and fine-tuning data. A record carries the passages the model was given
as it saw them (the PassageRecord snapshots), so it stays true after documents are re-indexed or deleted."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import Q, QuerySet

from chat.models import Answer
from chat.records import AnswerView, answer_view

THUMBS_CHOICES = {"": "any", "rated": "rated", "up": "thumbs up", "down": "thumbs down", "unrated": "not rated"}
FLAGGED_CHOICES = {"": "any", "yes": "flagged", "no": "not flagged"}


@dataclass(frozen=True)
class FeedbackFilter:
    collection: str = ""  # a slug
    thumbs: str = ""  # a key of THUMBS_CHOICES
    flagged: str = ""  # a key of FLAGGED_CHOICES
    since: datetime | None = None
    until: datetime | None = None


_THUMBS = {
    "rated": Q(feedback__isnull=False), "up": Q(feedback=1), "down": Q(feedback=-1), "unrated": Q(feedback__isnull=True),
}
_FLAGGED = {"yes": Q(grounding_flagged=True), "no": Q(grounding_flagged=False)}


def feedback_answers(*, filters: FeedbackFilter) -> QuerySet[Answer]:
    """Finished answers, newest first, narrowed by the filters."""
    answers = Answer.objects.filter(status=Answer.Status.DONE).select_related("conversation__collection")
    if filters.collection:
        answers = answers.filter(conversation__collection__slug=filters.collection)
    if filters.thumbs in _THUMBS:
        answers = answers.filter(_THUMBS[filters.thumbs])
    if filters.flagged in _FLAGGED:
        answers = answers.filter(_FLAGGED[filters.flagged])
    if filters.since is not None:
        answers = answers.filter(created_at__gte=filters.since)
    if filters.until is not None:
        answers = answers.filter(created_at__lt=filters.until)
    return answers.order_by("-created_at", "-id")


def feedback_record(view: AnswerView) -> dict[str, Any]:
    """One JSONL line: the question, the passages as the model saw them (cited or not), the answer, its
    grounding and the feedback it got."""
    answer = view.answer
    grounding = view.grounding
    return {
        "answer_id": answer.id,
        "created_at": answer.created_at.isoformat(),
        "collection": answer.conversation.collection.slug,
        "source": answer.source,
        "question": answer.question,
        "standalone_query": answer.standalone_query or answer.question,
        "passages": [{**s.record.to_json(), "cited": s.cited} for s in view.sources],
        "answer": answer.text,
        "citations": list(answer.citations),
        "grounding": None if grounding is None else {
            "score": grounding.score, "flagged": grounding.flagged, "threshold": grounding.threshold,
            "scorer": answer.grounding_scorer, "unsupported": [dict(span) for span in grounding.unsupported],
        },
        "feedback": {"value": view.feedback, "comment": answer.feedback_comment},
        "backend": answer.backend,
        "model": answer.model_name,
    }


def feedback_records(*, filters: FeedbackFilter) -> Iterator[dict[str, Any]]:
    """The export's records, oldest first (a chronological file appends cleanly)."""
    answers = feedback_answers(filters=filters).order_by("created_at", "id")
    return (feedback_record(answer_view(a)) for a in answers.iterator(chunk_size=500))
