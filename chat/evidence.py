"""What a flagged answer gets (RAG_GROUNDING_POLICY): "What the documents say", the extractive answer to the
same question over the same passage snapshots, shown under the answer (evidence) or instead of it (withhold).

It runs where grounding runs (the gpu worker), right after the score and before it is stored, so whoever
sees the grounding verdict sees its evidence with it: the API's withholding stream relies on that.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from django.conf import settings

from chat.models import Answer
from llm.exceptions import LlmError
from llm.generators import NumberedPassage, extractor_get
from ragsite.logs import log_event

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Evidence:
    text: str
    citations: tuple[int, ...]
    shown: str  # Answer.Shown

    def fields(self) -> dict[str, object]:
        return {"evidence_text": self.text, "evidence_citations": list(self.citations), "shown": self.shown}


NO_EVIDENCE = Evidence(text="", citations=(), shown=Answer.Shown.ANSWER)


def evidence_for(*, answer: Answer, flagged: bool | None) -> Evidence:
    """The evidence a grounding verdict calls for under the policy: none for a grounded answer or under
    `annotate`; under `withhold` an answer without a verdict (`flagged` None) is not shown either: a bot
    that promises checked answers must not pass on an unchecked one."""
    policy = settings.GROUNDING_POLICY
    needed = flagged is True or (flagged is None and policy == "withhold")
    if policy == "annotate" or not needed or not answer.model_called:
        return NO_EVIDENCE
    t0 = time.perf_counter()
    passages = [NumberedPassage(n=r.n, text=r.text) for r in answer.passage_records()]
    extract = extractor_get().extract(question=answer.question, passages=passages)
    shown = Answer.Shown.EVIDENCE if policy == "withhold" else Answer.Shown.ANSWER
    log_event(
        logger,
        "answer_evidence",
        answer=answer.id,
        policy=policy,
        shown=shown,
        citations=len(extract.citations),
        score=round(extract.score, 4),
        ms=round((time.perf_counter() - t0) * 1000, 1),
    )
    if extract.text == answer.text and shown == Answer.Shown.ANSWER:
        return NO_EVIDENCE  # an extractive answer flagged: the same sentences again would add nothing
    return Evidence(text=extract.text, citations=extract.citations, shown=shown)


def evidence_unchecked(*, answer: Answer) -> Evidence:
    """The evidence for an answer whose grounding failed: under withhold, as for one without a verdict;
    if the extractive answer cannot be made either, none (the answer stays, its grounding "failed")."""
    if settings.GROUNDING_POLICY != "withhold":
        return NO_EVIDENCE
    try:
        return evidence_for(answer=answer, flagged=None)
    except LlmError as exc:
        log_event(
            logger,
            "answer_evidence_failed",
            level=logging.WARNING,
            answer=answer.id,
            error=type(exc).__name__,
        )
        return NO_EVIDENCE
