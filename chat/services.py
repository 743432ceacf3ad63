"""Asking and answering: conversations, retrieval for answering, generation, and the answer record.

`answer_ask` runs in web processes (it only records the question and queues work). `answer_generate`
runs on the `gpu` queue, in the one process per GPU that holds the model.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

from django.conf import settings
from django.contrib.auth.models import AnonymousUser, User
from django.db import models, transaction
from django.db.models import QuerySet
from django.utils import timezone

from audit.models import AuditEvent
from audit.services import Actor, audit_record
from chat.evidence import evidence_for, evidence_unchecked
from chat.exceptions import AccessDenied, ConversationNotFound, QuestionInvalid
from chat.models import Answer, Conversation, PassageRecord
from chat.push import answer_push
from chat.records import FEEDBACK_VALUES, Feedback
from ingestion.access import collections_readable
from ingestion.locate import PassageLocation, passage_locate
from ingestion.models import Collection, Document
from llm.citations import citations_parse
from llm.generators import ChatMessage, GenerationParams, Generator, generator_get
from llm.grounding import scorer_get
from llm.prompts import (
    NOT_IN_DOCUMENTS,
    BuiltPrompt,
    PromptPassage,
    prompt_build,
    standalone_query_build,
    standalone_query_heuristic,
    standalone_query_select,
)
from ragsite.logs import log_event
from retrieval.services import Passage, chunks_search

logger = logging.getLogger(__name__)

M = TypeVar("M", bound=models.Model)

MAX_QUESTION_CHARS = 4000
HISTORY_TURNS = 3
# How often streamed text is written to the database (and pushed, with Redis) for readers (SSE views) to pick up.
FLUSH_SECONDS = 0.1


@dataclass(frozen=True)
class Retrieved:
    query: str
    passages: tuple[Passage, ...]
    ms: float


def conversation_create(*, collection: Collection, user: User | None = None, title: str = "") -> Conversation:
    return Conversation.objects.create(collection=collection, user=user, title=title[:200])


def _users(rows: QuerySet[M], *, user: User | AnonymousUser, via: str = "") -> QuerySet[M]:
    """The rows of the user's own conversations (`via` leads from a row to its conversation) in collections
    the user may still read: a user removed from a collection loses its old conversations with it."""
    # An anonymous pk is None, which would match the API's conversations (they have no user): refuse first.
    if not isinstance(user, User):
        return rows.none()
    return rows.filter(**{f"{via}user_id": user.pk, f"{via}collection__in": collections_readable(user=user)})


def conversations_for(*, user: User | AnonymousUser) -> list[Conversation]:
    return list(_users(Conversation.objects.select_related("collection"), user=user)[:100])


def conversation_get(*, conversation_id: int, user: User | AnonymousUser) -> Conversation:
    conversation = _users(Conversation.objects.select_related("collection"), user=user).filter(id=conversation_id).first()
    if conversation is None:
        raise ConversationNotFound(f"Conversation {conversation_id} does not exist or is not yours")
    return conversation


def answer_of_user(*, answer_id: int, user: User | AnonymousUser) -> Answer:
    """An answer in one of the user's conversations; any other id looks the same as a missing one."""
    answer = _users(Answer.objects.select_related("conversation"), user=user, via="conversation__").filter(id=answer_id).first()
    if answer is None:
        raise AccessDenied(f"Answer {answer_id} does not exist or is not yours")
    return answer


def answer_feedback_set(*, answer: Answer, value: Feedback, comment: str) -> Answer:
    """Thumbs up or down, with an optional comment (kept beside the answer's grounding score)."""
    Answer.objects.filter(id=answer.id).update(feedback=FEEDBACK_VALUES[value], feedback_comment=comment[:2000])
    answer.refresh_from_db()
    log_event(logger, "answer_feedback", answer=answer.id, value=value, comment_chars=len(comment))
    return answer


def question_clean(question: str) -> str:
    question = " ".join(question.split())
    if not question:
        raise QuestionInvalid("The question is empty: type a question about the documents")
    if len(question) > MAX_QUESTION_CHARS:
        raise QuestionInvalid(
            f"The question is {len(question)} characters long; the limit is {MAX_QUESTION_CHARS}: shorten it"
        )
    return question


def _enqueue_generate(answer_id: int, top_k: int | None = None) -> None:
    from chat.tasks import generate_answer

    transaction.on_commit(lambda: generate_answer.delay(answer_id, top_k))


def answer_ask(
    *, conversation: Conversation, question: str, actor: Actor, source: str = Answer.Source.CHAT, top_k: int | None = None
) -> Answer:
    """Record the question and queue its answer; the answer streams into the returned row. The ask is
    audited (answer id and collection; the question text only with RAG_AUDIT_QUESTIONS)."""
    question = question_clean(question)
    with transaction.atomic():
        answer = Answer.objects.create(conversation=conversation, question=question, source=source)
        if not conversation.title:
            Conversation.objects.filter(id=conversation.id).update(title=question[:200])
        else:
            Conversation.objects.filter(id=conversation.id).update(updated_at=timezone.now())
        audit_record(
            action=AuditEvent.Action.ASK, actor=actor, collection=conversation.collection.slug, target_type="answer",
            target_id=answer.id, details={
                "conversation": conversation.id, "source": source,
                **({"question": question} if settings.AUDIT_QUESTIONS else {}),
            },
        )
        _enqueue_generate(answer.id, top_k)  # top_k: API callers may ask for fewer or more passages
    log_event(logger, "answer_asked", answer=answer.id, conversation=conversation.id, source=source)
    return answer


def answer_history(*, answer: Answer) -> list[ChatMessage]:
    """The conversation's last finished exchanges before `answer`, as chat messages (oldest first)."""
    earlier = (
        Answer.objects.filter(conversation_id=answer.conversation_id, id__lt=answer.id, status=Answer.Status.DONE)
        .order_by("-id")
        .values_list("question", "text", "evidence_text", "shown")[:HISTORY_TURNS]
    )
    messages: list[ChatMessage] = []
    for question, text, evidence, shown in reversed(list(earlier)):
        # What the asker saw is what a follow-up refers to: the evidence where it replaced the answer.
        said = evidence if shown == Answer.Shown.EVIDENCE else text
        messages += [ChatMessage(role="user", content=question), ChatMessage(role="assistant", content=said)]
    return messages


def standalone_query(
    *, question: str, history: Sequence[ChatMessage], generator: Generator | None, adapter: str | None = None
) -> str:
    """A search query that stands on its own: follow-ups ("and in 2023?") get the context they refer to."""
    if not history:
        return question
    if generator is None or not settings.ANSWER_REWRITE_WITH_LLM:
        return standalone_query_heuristic(question=question, history=history)
    # The collection's adapter rewrites too: one adapter per question keeps the worker from switching twice.
    params = GenerationParams(max_new_tokens=64, temperature=0.0, adapter=adapter)
    rewrite = "".join(generator.stream(messages=standalone_query_build(question=question, history=history), params=params))
    return standalone_query_select(rewrite=rewrite, question=question, history=history)


def passages_retrieve(*, collection_id: int, query: str, k: int, min_score: float) -> Retrieved:
    t0 = time.perf_counter()
    passages = tuple(p for p in chunks_search(collection_id=collection_id, query=query, k=k) if p.score >= min_score)
    return Retrieved(query=query, passages=passages, ms=(time.perf_counter() - t0) * 1000)


class _Flusher:
    """Appends streamed text to the answer row at most every FLUSH_SECONDS."""

    def __init__(self, answer_id: int) -> None:
        self.answer_id = answer_id
        self.parts: list[str] = []
        self._last = 0.0

    def add(self, piece: str) -> None:
        self.parts.append(piece)
        now = time.monotonic()
        if now - self._last >= FLUSH_SECONDS:
            self._last = now
            Answer.objects.filter(id=self.answer_id).update(text="".join(self.parts))
            answer_push(answer_id=self.answer_id)

    @property
    def text(self) -> str:
        return "".join(self.parts)


@dataclass(frozen=True)
class Generated:
    text: str
    ttft_ms: float | None
    total_ms: float
    completion_tokens: int

    def fields(self) -> dict[str, object]:
        decode_s = max((self.total_ms - (self.ttft_ms or 0.0)) / 1000, 1e-6)
        return {
            "ttft_ms": self.ttft_ms, "generation_ms": self.total_ms, "completion_tokens": self.completion_tokens,
            "tokens_per_second": (self.completion_tokens - 1) / decode_s if self.completion_tokens > 1 else None,
        }


def _generate(answer_id: int, generator: Generator, built: BuiltPrompt, adapter: str | None) -> Generated:
    """Stream the model's answer into the row (written by the collection's adapter, if any); its text,
    timings and token count."""
    params = GenerationParams(
        max_new_tokens=settings.LLM_MAX_NEW_TOKENS, temperature=settings.LLM_TEMPERATURE, adapter=adapter
    )
    flusher = _Flusher(answer_id)
    t0 = time.perf_counter()
    ttft: float | None = None
    pieces = 0
    for piece in generator.stream(messages=built.messages, params=params):
        ttft = (time.perf_counter() - t0) * 1000 if ttft is None else ttft
        pieces += 1
        flusher.add(piece)
    total_ms = (time.perf_counter() - t0) * 1000
    text = flusher.text.strip()
    # The answer appended to the conversation, minus the prompt: a lone assistant message is not a valid
    # conversation for every chat template (Mistral's insists on alternating user/assistant turns).
    appended = [*built.messages, ChatMessage(role="assistant", content=text)]
    completion = generator.count_tokens(appended) - built.prompt_tokens if text else 0
    return Generated(text=text, ttft_ms=ttft, total_ms=total_ms, completion_tokens=max(completion, pieces))


def _prompt(answer: Answer, found: Retrieved, history: Sequence[ChatMessage], generator: Generator) -> BuiltPrompt:
    return prompt_build(
        question=answer.question,
        passages=[PromptPassage(p.chunk_id, p.document_name, p.page_start, p.page_end, p.text, p.score, p.section)
            for p in found.passages],
        history=history,
        generator=generator,
        max_new_tokens=settings.LLM_MAX_NEW_TOKENS,
        guardrail=settings.LLM_GUARDRAIL,
    )


def _records(found: Retrieved, built: BuiltPrompt) -> list[PassageRecord]:
    """The passages the prompt kept, in its numbering ([n] in the answer is records[n - 1]), with the text
    the model saw and where that text sits on its page: a snapshot that no re-indexing or deletion changes."""
    by_id = {p.chunk_id: p for p in found.passages}
    documents = Document.objects.in_bulk({p.document_id for p in found.passages})
    records = []
    for n, kept in enumerate(built.passages, start=1):
        document = documents.get(by_id[kept.chunk_id].document_id)
        located = (
            passage_locate(document=document, page_start=kept.page_start, page_end=kept.page_end, text=kept.text)
            if document is not None
            else PassageLocation("", ())
        )
        records.append(
            PassageRecord(
                n=n, chunk_id=kept.chunk_id, document_id=by_id[kept.chunk_id].document_id,
                document_name=kept.document_title, page_start=kept.page_start, page_end=kept.page_end,
                score=round(kept.score, 4), text=kept.text, section=kept.section, media_type=located.media_type,
                boxes=located.boxes,
            )
        )
    return records


def _answer_claim(answer_id: int) -> Answer | None:
    """The answer, now STREAMING; None when it is already final (a redelivered task)."""
    answer = Answer.objects.select_related("conversation__collection").get(id=answer_id)
    if answer.status in (Answer.Status.DONE, Answer.Status.FAILED):
        return None
    Answer.objects.filter(id=answer_id).update(status=Answer.Status.STREAMING, text="")
    return answer


def answer_generate(*, answer_id: int, top_k: int | None = None) -> Answer:
    """Retrieve, prompt, generate (streaming into the row), record citations and timings; scoring follows."""
    answer = _answer_claim(answer_id)
    if answer is None:
        return Answer.objects.get(id=answer_id)
    generator = generator_get()
    generator.warm_up()
    history = answer_history(answer=answer)
    adapter = answer.conversation.collection.adapter or None
    query = standalone_query(question=answer.question, history=history, generator=generator, adapter=adapter)
    found = passages_retrieve(
        collection_id=answer.conversation.collection_id, query=query, k=top_k or settings.ANSWER_TOP_K,
        min_score=settings.ANSWER_MIN_SCORE,
    )
    fields: dict[str, object] = {
        "standalone_query": query, "retrieval_ms": found.ms, "backend": generator.backend,
        "model_name": generator.model_name, "quantization": generator.quantization, "adapter": adapter or "",
    }
    if not found.passages:
        # Nothing relevant: say so without spending the model's time on a guess.
        return _finish(answer_id, {**fields, "text": NOT_IN_DOCUMENTS, "model_called": False, "passages": [], "citations": []})
    built = _prompt(answer, found, history, generator)
    records = _records(found, built)
    passages = [r.to_json() for r in records]
    Answer.objects.filter(id=answer_id).update(passages=passages, prompt_tokens=built.prompt_tokens)
    generated = _generate(answer_id, generator, built, adapter)
    cited = citations_parse(answer=generated.text, passage_count=len(records))
    fields.update(
        text=generated.text or NOT_IN_DOCUMENTS, model_called=True, passages=passages, citations=list(cited),
        **generated.fields(),
    )
    return _finish(answer_id, fields)


def _finish(answer_id: int, fields: dict[str, object]) -> Answer:
    Answer.objects.filter(id=answer_id).update(status=Answer.Status.DONE, finished_at=timezone.now(), **fields)
    answer_push(answer_id=answer_id)
    answer = Answer.objects.get(id=answer_id)
    log_event(
        logger, "answer_generated", answer=answer.id, backend=answer.backend, adapter=answer.adapter or "base",
        model_called=answer.model_called,
        passages=len(answer.passages), citations=len(answer.citations), prompt_tokens=answer.prompt_tokens,
        completion_tokens=answer.completion_tokens, retrieval_ms=answer.retrieval_ms, ttft_ms=answer.ttft_ms,
        generation_ms=answer.generation_ms, tokens_per_second=answer.tokens_per_second,
    )
    return answer


def answer_fail(*, answer_id: int, message: str) -> None:
    Answer.objects.filter(id=answer_id).update(status=Answer.Status.FAILED, error=message, finished_at=timezone.now())
    answer_push(answer_id=answer_id)
    log_event(logger, "answer_failed", level=logging.WARNING, answer=answer_id)


def grounding_warm_up() -> None:
    scorer_get().warm_up()


def answer_ground(*, answer_id: int) -> Answer:
    """Score how well the answer is supported by its passages and store the result beside it."""
    answer = Answer.objects.select_related("conversation").get(id=answer_id)
    if answer.status != Answer.Status.DONE or answer.grounding_status != Answer.Grounding.PENDING:
        return answer
    t0 = time.perf_counter()
    passages = [record.text for record in answer.passage_records()]
    result = scorer_get().score(answer=answer.text, passages=passages, question=answer.question)
    ms = (time.perf_counter() - t0) * 1000
    scored = result.status == "scored"
    spans = [
        {"start": s.start, "end": s.end, "text": s.text, "support": round(s.support, 4)} for s in result.unsupported
    ]
    # Stored with the verdict, in one update: whoever reads the verdict reads its evidence with it.
    evidence = evidence_for(answer=answer, flagged=result.flagged if scored else None)
    # Unscored: no score and no flag, so nothing counts it as grounded (or as a hallucination).
    Answer.objects.filter(id=answer_id).update(
        grounding_status=Answer.Grounding.SCORED if scored else Answer.Grounding.UNSCORED,
        grounding_score=result.score if scored else None, grounding_flagged=result.flagged if scored else None,
        grounding_threshold=result.threshold, grounding_scorer=result.scorer, grounding_version=result.version,
        grounding_spans=spans if scored else [], grounding_ms=ms, **evidence.fields(),
    )
    answer_push(answer_id=answer_id)
    log_event(
        logger, "answer_grounded", answer=answer_id, collection=answer.conversation.collection_id,
        backend=answer.backend, status=result.status, score=round(result.score, 4) if scored else None,
        flagged=result.flagged if scored else None, threshold=result.threshold, scorer=result.scorer,
        version=result.version, unsupported=len(spans), ms=round(ms, 1),
    )
    answer.refresh_from_db()
    return answer


def answer_ground_fail(*, answer_id: int, reason: str) -> None:
    """Scoring failed: say so, so that nobody waits for a score that will not come. Under withhold the
    unchecked answer is not shown either: its evidence is, when the extractive answer can be made."""
    answer = Answer.objects.filter(id=answer_id, grounding_status=Answer.Grounding.PENDING).first()
    if answer is None:
        return  # settled meanwhile, or deleted
    evidence = evidence_unchecked(answer=answer)
    Answer.objects.filter(id=answer_id, grounding_status=Answer.Grounding.PENDING).update(
        grounding_status=Answer.Grounding.FAILED, **evidence.fields()
    )
    answer_push(answer_id=answer_id)
    log_event(logger, "answer_grounding_failed", level=logging.WARNING, answer=answer_id, reason=reason)
