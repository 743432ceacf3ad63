"""/api/v1/: ask, answers, conversations, collections. Thin: parse, call a service, render."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from asgiref.sync import sync_to_async
from django.conf import settings
from django.http import HttpRequest, StreamingHttpResponse
from ninja import Path, Query, Router

from api import services
from api.keys import Caller
from api.schemas import (
    MAX_ID,
    AnswerOut,
    AskIn,
    CollectionOut,
    ConversationDetailOut,
    ConversationFilter,
    ConversationOut,
    ConversationPage,
    ErrorOut,
    FeedbackIn,
    PassageOut,
    SearchIn,
    SearchOut,
    answer_out,
    collection_out,
)
from api.streaming import answer_wait, ask_events
from chat.follow import db_call, sse_response
from chat.models import Answer, Conversation
from chat.records import answer_view
from chat.services import answer_feedback_set

router = Router()
IdPath = Annotated[int, Path(ge=1, le=MAX_ID)]


def errors(*statuses: int) -> dict[int, type[ErrorOut]]:
    """Document the error statuses an operation can answer (every one carries ErrorOut)."""
    return dict.fromkeys((401, 429, *statuses), ErrorOut)


def caller_of(request: HttpRequest) -> Caller:
    caller = getattr(request, "auth", None)
    assert isinstance(caller, Caller), "every API route is authenticated"
    return caller


def answer_model(answer: Answer) -> AnswerOut:
    return answer_out(answer_view(answer))


async def answer_json(answer: Answer) -> dict[str, object]:
    return (await db_call(answer_model)(answer)).model_dump(mode="json")


def event_stream(events: AsyncIterator[str], *, answer_id: int) -> StreamingHttpResponse:
    response = sse_response(events)
    response["X-Answer-Id"] = str(answer_id)
    return response


SSE_200 = {
    "responses": {
        200: {
            "description": "The answer (JSON); with `stream: true` server-sent events: `start`, `token`..., "
            "`done` and `grounding` (each an Answer), or `error`",
            # OpenAPI 3.1: the schema of an event stream describes one event; `data` is JSON text.
            "content": {
                "text/event-stream": {
                    "schema": {
                        "type": "object",
                        "properties": {
                            "event": {"enum": ["start", "token", "done", "grounding", "error"]},
                            "data": {"type": "string", "contentMediaType": "application/json"},
                        },
                        "required": ["event", "data"],
                    }
                }
            },
        }
    }
}


@router.post(
    "/ask", response={200: AnswerOut, **errors(400, 403, 404, 413, 422, 503, 504)}, openapi_extra=SSE_200,
    tags=["answers"], summary="Ask a question about a collection",
)
async def ask(request: HttpRequest, payload: AskIn) -> tuple[int, AnswerOut] | StreamingHttpResponse:
    """Answers with citations (document, page, passage text, score), grounding and timings.

    Waits up to RAG_API_ANSWER_TIMEOUT seconds; past it, 504 with the answer id to fetch later.
    """
    request.api_question = payload.question  # type: ignore[attr-defined]  # logged only if RAG_API_LOG_QUESTIONS
    answer = await sync_to_async(services.answer_ask_for_key)(
        caller=caller_of(request), question=payload.question, collection=payload.collection,
        conversation_id=payload.conversation, top_k=payload.top_k,
        history=[(turn.question, turn.answer) for turn in payload.history or []],
    )
    timeout = settings.API_ANSWER_TIMEOUT
    if payload.stream:
        return event_stream(ask_events(answer=answer, timeout_s=timeout, render=answer_json), answer_id=answer.id)
    final = await answer_wait(answer_id=answer.id, timeout_s=timeout)
    return 200, await sync_to_async(answer_model)(final)


@router.get("/answers/{answer_id}", response={200: AnswerOut, **errors(404, 422)}, tags=["answers"])
def answer_get(request: HttpRequest, answer_id: IdPath) -> AnswerOut:
    """An answer asked with this key: poll it after a 504, or read it again later."""
    return answer_model(services.answer_for_key(caller=caller_of(request), answer_id=answer_id))


@router.post(
    "/answers/{answer_id}/feedback", response={200: AnswerOut, **errors(404, 413, 422)}, tags=["answers"],
    summary="Thumbs up or down, with an optional comment",
)
def answer_feedback(request: HttpRequest, answer_id: IdPath, payload: FeedbackIn) -> AnswerOut:
    answer = services.answer_for_key(caller=caller_of(request), answer_id=answer_id)
    return answer_model(answer_feedback_set(answer=answer, value=payload.value, comment=payload.comment))


def _conversation_out(conversation: Conversation) -> ConversationOut:
    return ConversationOut(
        id=conversation.id, collection=conversation.collection.slug, title=conversation.title,
        created_at=conversation.created_at, updated_at=conversation.updated_at,
    )


@router.get("/conversations", response={200: ConversationPage, **errors(403, 422)}, tags=["conversations"])
def conversations_list(request: HttpRequest, filters: Query[ConversationFilter]) -> ConversationPage:
    """Conversations started with this key, newest first."""
    qs = services.conversations_for_key(caller=caller_of(request), collection=filters.collection)
    page = qs[filters.offset : filters.offset + filters.limit]
    return ConversationPage(count=qs.count(), items=[_conversation_out(c) for c in page])


@router.get("/conversations/{conversation_id}", response={200: ConversationDetailOut, **errors(404, 422)}, tags=["conversations"])
def conversation_get(request: HttpRequest, conversation_id: IdPath) -> ConversationDetailOut:
    conversation = services.conversation_for_key(caller=caller_of(request), conversation_id=conversation_id)
    answers = conversation.answers.select_related("conversation__collection")
    return ConversationDetailOut(
        **_conversation_out(conversation).model_dump(), answers=[answer_model(a) for a in answers]
    )


@router.get("/collections", response={200: list[CollectionOut], **errors()}, tags=["collections"])
def collections_list(request: HttpRequest) -> list[CollectionOut]:
    """The collections this key may use: their slugs go in `collection` (and in `model` for chat/completions)."""
    return [collection_out(c) for c in caller_of(request).collections]


@router.post(
    "/search", response={200: SearchOut, **errors(400, 403, 413, 422, 503)}, tags=["collections"],
    summary="The passages that best match a question (no answer)",
)
def search(request: HttpRequest, payload: SearchIn) -> SearchOut:
    """Passages of one of the key's collections, best first, scored by cosine similarity: what the model
    would be given for this question (before the answer's minimum score). For a client's own retriever,
    e.g. LangChain's (see `groundrag_langchain`)."""
    request.api_question = payload.question  # type: ignore[attr-defined]  # logged only if RAG_API_LOG_QUESTIONS
    found = services.passages_search_for_key(
        caller=caller_of(request), question=payload.question, collection=payload.collection, top_k=payload.top_k
    )
    return SearchOut(
        collection=payload.collection,
        passages=[
            PassageOut(
                chunk_id=p.chunk_id, document_id=p.document_id, document=p.document_name, page=p.page_start,
                page_end=p.page_end, text=p.text, score=p.score,
            )
            for p in found
        ],
    )
