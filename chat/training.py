"""What adapter training learns from: answers people approved, rebuilt as the model saw them.

An example is an answer with a thumbs up (feedback +1) that the grounding scorer did not flag, with the
passages it was given (the answer's own snapshots: the texts the model saw, whatever happened to the
documents since) and the conversation turns before it. Training itself (llm.lora) never sees a model row.
"""

from __future__ import annotations

from datetime import datetime

from chat.models import Answer
from chat.services import answer_history
from ingestion.models import Collection
from llm.lora import FeedbackExample
from llm.prompts import PromptPassage


def approved_answers(*, collection: Collection, since: datetime) -> list[Answer]:
    return list(
        Answer.objects.filter(
            conversation__collection=collection, created_at__gte=since, status=Answer.Status.DONE,
            model_called=True, feedback=1, grounding_flagged=False,
        )
        .exclude(text="")
        .exclude(passages=[])
        .order_by("id")
    )


def feedback_examples(*, collection: Collection, since: datetime) -> tuple[FeedbackExample, ...]:
    return tuple(
        FeedbackExample(
            question=answer.question,
            passages=tuple(
                PromptPassage(
                    chunk_id=r.chunk_id, document_title=r.document_name, page_start=r.page_start,
                    page_end=r.page_end, text=r.text, score=r.score,
                )
                for r in answer.passage_records()
            ),
            answer=answer.text,
            history=tuple(answer_history(answer=answer)),
            answer_id=answer.id,
        )
        for answer in approved_answers(collection=collection, since=since)
    )
