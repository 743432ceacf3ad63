"""What adapter training learns from: answers people approved, rebuilt as the model saw them.

An example is an answer with a thumbs up (feedback +1) that the grounding scorer did not flag, with the
passages it was given (texts read back from the chunks) and the conversation turns before it. Training
itself (llm.lora) never sees a model row.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from chat.models import Answer
from chat.services import answer_history
from ingestion.models import Chunk, Collection
from llm.lora import FeedbackExample
from llm.prompts import PromptPassage


@dataclass(frozen=True)
class FeedbackSet:
    examples: tuple[FeedbackExample, ...]
    # Approved answers left out because a passage they were given is gone (document deleted or
    # re-indexed): their prompt can no longer be rebuilt as the model saw it.
    skipped: int


def approved_answers(*, collection: Collection, since: datetime) -> list[Answer]:
    return list(
        Answer.objects.filter(
            conversation__collection=collection, created_at__gte=since, status=Answer.Status.DONE,
            model_called=True, feedback=1, grounding_flagged=False,
        )
        .exclude(text="")
        .order_by("id")
    )


def feedback_examples(*, collection: Collection, since: datetime) -> FeedbackSet:
    answers = approved_answers(collection=collection, since=since)
    ids = {int(p["chunk_id"]) for a in answers for p in a.passages}  # type: ignore[call-overload, index]
    texts = dict(Chunk.objects.filter(id__in=ids).values_list("id", "text"))
    examples: list[FeedbackExample] = []
    skipped = 0
    for answer in answers:
        records = list(answer.passages)
        if not records or any(int(p["chunk_id"]) not in texts for p in records):  # type: ignore[call-overload, index]
            skipped += 1
            continue
        passages = tuple(
            PromptPassage(
                chunk_id=int(p["chunk_id"]), document_title=str(p["document_name"]),  # type: ignore[call-overload, index]
                page_start=int(p["page_start"]), page_end=int(p["page_end"]),  # type: ignore[call-overload, index]
                text=texts[int(p["chunk_id"])], score=float(p["score"]),  # type: ignore[call-overload, index, arg-type]
            )
            for p in records
        )
        examples.append(
            FeedbackExample(
                question=answer.question, passages=passages, answer=answer.text,
                history=tuple(answer_history(answer=answer)), answer_id=answer.id,
            )
        )
    return FeedbackSet(examples=tuple(examples), skipped=skipped)
