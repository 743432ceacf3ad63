"""What an answer shows, built once for the browser (chat.views) and for the API (api.schemas): the passages
it was given (cited or not), its citations in order, its grounding and its feedback."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from chat.models import Answer, PassageRecord
from ingestion.models import Document

Feedback = Literal["up", "down"]
FEEDBACK_VALUES: dict[Feedback, int] = {"up": 1, "down": -1}


DOCUMENT_DELETED = "The document was deleted after this answer; this is the passage as the answer was given it."
GroundingState = Literal["scored", "unscored", "failed"]


@dataclass(frozen=True)
class Source:
    record: PassageRecord
    cited: bool
    document_deleted: bool = False  # the snapshot stays; the page images and the file went with the document

    @property
    def has_page_images(self) -> bool:
        return self.record.has_page_images and not self.document_deleted


@dataclass(frozen=True)
class GroundingView:
    status: GroundingState  # "unscored": the scorer gave no verdict; neither grounded nor flagged
    score: float | None  # None unless scored
    flagged: bool | None
    threshold: float | None
    unsupported: tuple[Mapping[str, object], ...]  # start, end, text, support of each unsupported sentence


@dataclass(frozen=True)
class EvidenceView:
    """"What the documents say": the extractive answer over the same passages, under a flagged answer."""

    text: str
    citations: tuple[Source, ...]  # the passages it quotes, in order of first use


Shown = Literal["answer", "evidence"]


@dataclass(frozen=True)
class AnswerView:
    answer: Answer
    sources: tuple[Source, ...]  # every passage the model was given, in prompt order: the reader can check all
    citations: tuple[Source, ...]  # the cited ones, in order of first citation
    grounding: GroundingView | None  # None while grounding is pending (and for answers never scored)
    feedback: Feedback | None
    evidence: EvidenceView | None = None  # None unless grounding flagged the answer under an evidence policy
    shown: Shown = "answer"  # "evidence": the evidence replaced the flagged answer (RAG_GROUNDING_POLICY=withhold)


def _grounding_view(answer: Answer) -> GroundingView | None:
    if answer.grounding_status == Answer.Grounding.PENDING and answer.grounding_score is None:
        return None
    if answer.grounding_status == Answer.Grounding.UNSCORED:
        return GroundingView("unscored", None, None, answer.grounding_threshold, ())
    if answer.grounding_score is None:
        return GroundingView("failed", None, None, answer.grounding_threshold, ())
    return GroundingView(
        "scored", round(answer.grounding_score, 4), answer.grounding_flagged, answer.grounding_threshold,
        tuple(answer.grounding_spans or ()),
    )


def answer_view(answer: Answer) -> AnswerView:
    cited = set(answer.citations)
    records = answer.passage_records()
    present = set(Document.objects.filter(id__in={r.document_id for r in records}).values_list("id", flat=True))
    sources = tuple(
        Source(record=r, cited=r.n in cited, document_deleted=r.document_id not in present) for r in records
    )
    by_n = {s.record.n: s for s in sources}
    grounding = _grounding_view(answer)
    feedback = next((name for name, value in FEEDBACK_VALUES.items() if value == answer.feedback), None)
    evidence = (
        EvidenceView(answer.evidence_text, tuple(by_n[n] for n in answer.evidence_citations if n in by_n))
        if answer.evidence_text
        else None
    )
    return AnswerView(
        answer=answer, sources=sources, citations=tuple(by_n[n] for n in answer.citations if n in by_n),
        grounding=grounding, feedback=feedback, evidence=evidence,
        shown="evidence" if evidence is not None and answer.shown == Answer.Shown.EVIDENCE else "answer",
    )
