"""What an answer shows, built once for the browser (chat.views) and for the API (api.schemas): the passages
it was given (cited or not), its citations in order, its grounding and its feedback."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from chat.models import Answer, PassageRecord

Feedback = Literal["up", "down"]
FEEDBACK_VALUES: dict[Feedback, int] = {"up": 1, "down": -1}


@dataclass(frozen=True)
class Source:
    record: PassageRecord
    cited: bool


@dataclass(frozen=True)
class GroundingView:
    score: float
    flagged: bool | None
    threshold: float | None
    unsupported: tuple[Mapping[str, object], ...]  # start, end, text, support of each unsupported sentence


@dataclass(frozen=True)
class AnswerView:
    answer: Answer
    sources: tuple[Source, ...]  # every passage the model was given, in prompt order: the reader can check all
    citations: tuple[Source, ...]  # the cited ones, in order of first citation
    grounding: GroundingView | None  # None until scored (or when scoring failed: see answer.grounding_status)
    feedback: Feedback | None


def answer_view(answer: Answer) -> AnswerView:
    cited = set(answer.citations)
    sources = tuple(Source(record=r, cited=r.n in cited) for r in answer.passage_records())
    by_n = {s.record.n: s for s in sources}
    grounding = None
    if answer.grounding_score is not None:
        grounding = GroundingView(
            score=round(answer.grounding_score, 4), flagged=answer.grounding_flagged,
            threshold=answer.grounding_threshold, unsupported=tuple(answer.grounding_spans or ()),
        )
    feedback = next((name for name, value in FEEDBACK_VALUES.items() if value == answer.feedback), None)
    return AnswerView(
        answer=answer, sources=sources, citations=tuple(by_n[n] for n in answer.citations if n in by_n),
        grounding=grounding, feedback=feedback,
    )
