"""Chat pages for signed-in users: conversations, asking, the streamed answer (SSE), passages, feedback.

Thin: services decide; errors are the chat app's exceptions, mapped to a status by ragsite.errors.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from asgiref.sync import sync_to_async
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import AnonymousUser, User
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.http.response import HttpResponseBase
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from audit.services import actor_of_request
from chat import services
from chat.exceptions import AccessDenied, RequestInvalid, SignInRequired
from chat.follow import KEEPALIVE_COMMENT, answer_follow, db_call, shown_steps, sse, sse_response
from chat.records import FEEDBACK_VALUES, AnswerView, answer_view
from chat.rendering import answer_html
from chat.viewer import source_viewer
from ingestion.access import collections_visible
from ingestion.models import Chunk, Collection
from ragsite.errors import json_errors

# An SSE stream gives up after this long without the answer finishing (the worker may be down).
STREAM_TIMEOUT_S = 600.0


def _collection_for(user: User | AnonymousUser, collection_id: int) -> Collection:
    for collection in collections_visible(user=user):
        if collection.id == collection_id:
            return collection
    raise AccessDenied(f"Collection {collection_id} does not exist or is not yours to use")


def _int(value: str | None, what: str) -> int:
    try:
        return int(value or "")
    except ValueError:
        raise RequestInvalid(f"{what} must be a number, not {value!r}") from None


def source_url(answer_id: int, n: int) -> str:
    """The viewer of passage [n] of an answer: it shows the answer's own snapshot, so it outlives re-indexing."""
    return reverse("answer-source", args=[answer_id, n])


def answer_payload(view: AnswerView) -> dict[str, object]:
    """What the browser needs to show an answer (chat.js draws every card from it): safe HTML, sources,
    grounding, feedback."""
    answer = view.answer
    urls = {s.record.n: source_url(answer.id, s.record.n) for s in view.sources}
    grounding = view.grounding
    return {
        "id": answer.id,
        "question": answer.question,
        "status": answer.status,
        "html": answer_html(text=answer.text, passage_urls=urls, unsupported=grounding.unsupported if grounding else ()),
        "error": answer.error,
        "sources": [
            {
                **s.record.to_json(), "where": s.record.where, "cited": s.cited, "url": urls[s.record.n],
                "document_deleted": s.document_deleted,
            }
            for s in view.sources
        ],
        "grounding": None if grounding is None else {
            "status": grounding.status, "score": None if grounding.score is None else round(grounding.score, 3),
            "flagged": grounding.flagged, "threshold": grounding.threshold,
        },
        "grounding_status": answer.grounding_status,
        "feedback": view.feedback,
        # "What the documents say" under a flagged answer, or instead of it (shown "evidence": withhold).
        "evidence": None if view.evidence is None else {
            "html": answer_html(text=view.evidence.text, passage_urls=urls),
            "citations": [s.record.n for s in view.evidence.citations],
        },
        "shown": view.shown,
    }


@login_required
@require_GET
def chat_page(request: HttpRequest, conversation_id: int | None = None) -> HttpResponse:
    conversation = None
    payloads: list[dict[str, object]] = []
    if conversation_id is not None:
        conversation = services.conversation_get(conversation_id=conversation_id, user=request.user)
        payloads = [answer_payload(answer_view(a)) for a in conversation.answers.all()]
    return render(
        request,
        "chat/chat.html",
        {
            "conversation": conversation,
            "conversations": services.conversations_for(user=request.user),
            "collections": collections_visible(user=request.user),
            "answers": payloads,
            "max_question_chars": services.MAX_QUESTION_CHARS,
        },
    )


@json_errors
@login_required
@require_POST
def ask(request: HttpRequest) -> JsonResponse:
    """Ask in an existing conversation (conversation id) or start one (collection id); returns the answer id."""
    if request.POST.get("conversation"):
        conversation_id = _int(request.POST["conversation"], "conversation")
        conversation = services.conversation_get(conversation_id=conversation_id, user=request.user)
    else:
        collection = _collection_for(request.user, _int(request.POST.get("collection"), "collection"))
        conversation = services.conversation_create(collection=collection, user=request.user)  # type: ignore[arg-type]
    answer = services.answer_ask(
        conversation=conversation, question=request.POST.get("question", ""), actor=actor_of_request(request)
    )
    return JsonResponse(
        {
            "answer": answer.id,
            "conversation": conversation.id,
            "conversation_url": reverse("conversation", args=[conversation.id]),
            "stream_url": reverse("answer-stream", args=[answer.id]),
        }
    )


async def _answer_events(answer_id: int) -> AsyncIterator[str]:
    steps = answer_follow(answer_id=answer_id, timeout_s=STREAM_TIMEOUT_S, grounding_wait_s=STREAM_TIMEOUT_S)
    async for step in shown_steps(steps):
        if step.kind == "ping":
            yield KEEPALIVE_COMMENT
        elif step.kind == "token":
            if step.text:
                yield sse("token", {"text": step.text})
        elif step.kind == "timeout":
            yield sse("error", {"message": "The answer is taking too long; the workers may be busy: ask again later"})
        elif step.answer is not None:
            yield sse(step.kind, await db_call(lambda a: answer_payload(answer_view(a)))(step.answer))


@json_errors
async def answer_stream(request: HttpRequest, answer_id: int) -> HttpResponseBase:
    user = await request.auser()
    if not user.is_authenticated:
        raise SignInRequired("Sign in first")
    await sync_to_async(services.answer_of_user)(answer_id=answer_id, user=user)
    return sse_response(_answer_events(answer_id))


@json_errors
@login_required
@require_GET
def answer_detail(request: HttpRequest, answer_id: int) -> JsonResponse:
    answer = services.answer_of_user(answer_id=answer_id, user=request.user)
    return JsonResponse(answer_payload(answer_view(answer)))


@login_required
@require_GET
def passage(request: HttpRequest, chunk_id: int) -> HttpResponse:
    chunk = Chunk.objects.select_related("document__collection").filter(id=chunk_id).first()
    if chunk is None:
        raise AccessDenied(f"Passage {chunk_id} does not exist")
    _collection_for(request.user, chunk.document.collection_id)  # 404 unless the user may see it
    return render(request, "chat/passage.html", {"chunk": chunk, "document": chunk.document})


@login_required
@require_GET
def answer_source(request: HttpRequest, answer_id: int, n: int) -> HttpResponse:
    """The citation viewer: passage [n] of an answer on its page (image and highlight), with the file to download."""
    answer = services.answer_of_user(answer_id=answer_id, user=request.user)
    source = next((s for s in answer_view(answer).sources if s.record.n == n), None)
    if source is None:
        raise AccessDenied(f"Answer {answer_id} has no passage [{n}]")
    page = _int(request.GET["page"], "page") if request.GET.get("page") else None
    return render(request, "chat/viewer.html", {"viewer": source_viewer(answer=answer, source=source, page=page)})


@json_errors
@login_required
@require_POST
def feedback(request: HttpRequest, answer_id: int) -> JsonResponse:
    answer = services.answer_of_user(answer_id=answer_id, user=request.user)
    value = request.POST.get("value", "")
    if value not in FEEDBACK_VALUES:
        raise RequestInvalid("value must be 'up' or 'down'")
    services.answer_feedback_set(answer=answer, value=value, comment=request.POST.get("comment", ""))  # type: ignore[arg-type]
    return JsonResponse({"ok": True, "feedback": value})

