"""The OpenAI-compatible chat completions endpoint's bodies and logic, on top of the same ask service.

The collection is the `model` when it names one of the key's collections, otherwise the key's only
collection (so a bot framework that sends "gpt-4o" works unchanged). The last message must be the user's
question; earlier user/assistant pairs are recorded as the conversation's history, so follow-ups get a
standalone search query as in the browser. Citations and grounding ride along as extra top-level fields.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, Literal

from django.db import transaction
from ninja import Schema
from pydantic import ConfigDict, Field

from api.exceptions import AnswerFailed, ApiError, CollectionForbidden, InvalidRequest
from api.keys import Caller
from api.schemas import (
    MAX_ID,
    MAX_TOP_K,
    NO_NUL,
    CitationOut,
    EvidenceOut,
    GroundingOut,
    citations_out,
    evidence_out,
    grounding_out,
)
from api.services import answer_admit, conversation_start_for_key
from api.streaming import answer_follow, error_payload
from chat.follow import KEEPALIVE_COMMENT, shown_steps, sse
from chat.models import Answer
from chat.records import AnswerView
from chat.services import answer_ask, question_clean
from ingestion.models import Collection
from llm.generators.base import ChatMessage
from llm.prompts import history_pairs

logger = logging.getLogger(__name__)


class ContentPart(Schema):
    model_config = ConfigDict(extra="allow", strict=True)
    type: str = Field(max_length=50)
    text: str | None = Field(None, max_length=20000, pattern=NO_NUL)


class MessageIn(Schema):
    model_config = ConfigDict(extra="allow", strict=True)  # name, tool_calls, ...: accepted and ignored
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: Annotated[str, Field(max_length=20000, pattern=NO_NUL)] | list[ContentPart] | None = None


class ChatCompletionIn(Schema):
    # temperature, max_tokens, top_p, ...: accepted and ignored; the server's generation settings apply.
    model_config = ConfigDict(extra="allow", strict=True)
    model: str = Field(max_length=200, pattern=NO_NUL, description="A collection slug (see GET /v1/models)")
    messages: list[MessageIn] = Field(min_length=1, max_length=200)
    stream: bool = False
    top_k: int | None = Field(None, ge=1, le=MAX_TOP_K, description="Extension: passages given to the model")


class AssistantMessage(Schema):
    role: Literal["assistant"]
    content: str


class Choice(Schema):
    index: int
    message: AssistantMessage
    finish_reason: Literal["stop"]


class Usage(Schema):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ChatCompletionOut(Schema):
    id: str
    object: Literal["chat.completion"]
    created: int
    model: str
    choices: list[Choice]
    usage: Usage
    citations: list[CitationOut] = Field(description="Extension: the passages the answer cites")
    passages: list[CitationOut] = Field(description="Extension: every passage the model was given")
    grounding: GroundingOut | None = Field(description="Extension: grounding score and flag")
    shown: Literal["answer", "evidence"] = Field(
        description="Extension: which text the message holds (evidence replaces a flagged answer under withhold)"
    )
    text: str = Field(description="Extension: the model's answer, whichever text was shown")
    evidence: EvidenceOut | None = Field(description="Extension: what the documents say, under a flagged answer")
    answer_id: int = Field(ge=1, le=MAX_ID, description="Extension: GET /api/v1/answers/{id}")


class ModelOut(Schema):
    id: str
    object: Literal["model"]
    created: int
    owned_by: str


class ModelList(Schema):
    object: Literal["list"]
    data: list[ModelOut]


def collection_for_model(*, caller: Caller, model: str) -> Collection:
    for collection in caller.collections:
        if collection.slug == model:
            return collection
    if len(caller.collections) == 1:
        return caller.collections[0]
    allowed = ", ".join(c.slug for c in caller.collections) or "none"
    raise CollectionForbidden(f"model {model!r} is not a collection this key may use: set model to one of {allowed}")


def _text(content: str | list[ContentPart] | None) -> str:
    if isinstance(content, list):
        return "\n".join(part.text or "" for part in content if part.type == "text")
    return content or ""


def completion_turns(messages: list[MessageIn]) -> tuple[str, list[tuple[ChatMessage, ChatMessage]]]:
    """The question (the last message, the user's) and the earlier completed user/assistant exchanges."""
    if messages[-1].role != "user":
        raise InvalidRequest("The last message must be the user's question (role 'user')")
    turns = [
        ChatMessage(role="user" if m.role == "user" else "assistant", content=_text(m.content))
        for m in messages[:-1]
        if m.role in ("user", "assistant")
    ]
    return _text(messages[-1].content), history_pairs(turns)


def completion_ask(*, caller: Caller, payload: ChatCompletionIn) -> Answer:
    collection = collection_for_model(caller=caller, model=payload.model)
    question, history = completion_turns(payload.messages)
    question = question_clean(question)
    answer_admit()
    with transaction.atomic():
        pairs = [(q.content, a.content) for q, a in history]
        conversation = conversation_start_for_key(caller=caller, collection=collection, history=pairs)
        return answer_ask(
            conversation=conversation, question=question, actor=caller.actor, source=Answer.Source.API,
            top_k=payload.top_k,
        )


def _created(answer: Answer) -> int:
    return int(answer.created_at.timestamp())


def completion_extras(view: AnswerView) -> dict[str, object]:
    answer = view.answer
    grounding, evidence = grounding_out(view), evidence_out(view)
    return {
        "citations": [c.model_dump() for c in citations_out(view.citations)],
        "passages": [p.model_dump() for p in citations_out(view.sources)],
        "grounding": grounding.model_dump() if grounding else None,
        "shown": view.shown,
        "text": answer.text,
        "evidence": evidence.model_dump() if evidence else None,
        "answer_id": answer.id,
        "usage": _usage(answer).model_dump(),
    }


def _usage(answer: Answer) -> Usage:
    prompt, completion = answer.prompt_tokens or 0, answer.completion_tokens or 0
    return Usage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion)


def completion_out(*, view: AnswerView, model: str) -> ChatCompletionOut:
    answer = view.answer
    if answer.status == Answer.Status.FAILED:
        raise AnswerFailed(answer.error or "The answer failed: ask again", details={"answer_id": answer.id})
    return ChatCompletionOut.model_validate(
        {
            "id": f"chatcmpl-{answer.id}", "object": "chat.completion", "created": _created(answer), "model": model,
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": answer.shown_text}, "finish_reason": "stop"}
            ],
            **completion_extras(view),
        }
    )


def _chunk(answer: Answer, model: str, delta: dict[str, str], finish: str | None = None) -> dict[str, object]:
    return {
        "id": f"chatcmpl-{answer.id}", "object": "chat.completion.chunk", "created": _created(answer), "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


async def completion_chunks(
    *, answer: Answer, model: str, timeout_s: float, extras: Callable[[Answer], Awaitable[dict[str, object]]]
) -> AsyncIterator[str]:
    """`chat.completion.chunk`s as the answer streams, a last chunk with the extensions, then `[DONE]`.

    A failure or timeout after the 200 is sent becomes a `data: {"error": ...}` event, which OpenAI
    clients raise as an APIError: the stream never just stops.
    """
    yield sse(None, _chunk(answer, model, {"role": "assistant", "content": ""}))
    final: Answer | None = None
    try:
        async for step in shown_steps(answer_follow(answer_id=answer.id, timeout_s=timeout_s)):
            if step.kind == "ping":
                yield KEEPALIVE_COMMENT
            elif step.kind == "token":
                if step.text:
                    yield sse(None, _chunk(answer, model, {"content": step.text}))
            elif step.answer is not None:
                final = step.answer
                if final.status == Answer.Status.FAILED:
                    raise AnswerFailed(final.error or "The answer failed: ask again", details={"answer_id": answer.id})
    except ApiError as exc:
        yield sse(None, error_payload(exc))
        return
    except Exception as exc:  # the 200 is sent: end with an error the client raises, never a dropped stream
        logger.exception("event=api_stream_crashed answer=%s", answer.id)
        yield sse(None, error_payload(exc))
        return
    assert final is not None
    yield sse(None, {**_chunk(final, model, {}, finish="stop"), **await extras(final)})
    yield "data: [DONE]\n\n"


def models_list(*, caller: Caller) -> ModelList:
    created = int(time.time())
    return ModelList(
        object="list",
        data=[ModelOut(id=c.slug, object="model", created=created, owned_by="groundrag") for c in caller.collections],
    )
