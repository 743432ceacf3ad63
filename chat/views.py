"""Chat pages for signed-in users: conversations, asking, the streamed answer (SSE), passages, feedback."""

from __future__ import annotations

from collections.abc import AsyncIterator

from asgiref.sync import sync_to_async
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import AnonymousUser, User
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from chat import services
from chat.exceptions import ChatError, ConversationNotFound
from chat.follow import KEEPALIVE_COMMENT, answer_follow, sse
from chat.models import Answer
from chat.rendering import answer_html
from ingestion.models import Chunk, Collection
from ingestion.services import collections_visible

# An SSE stream gives up after this long without the answer finishing (the worker may be down).
STREAM_TIMEOUT_S = 600.0


def _collection_for(user: User | AnonymousUser, collection_id: int) -> Collection:
    for collection in collections_visible(user=user):
        if collection.id == collection_id:
            return collection
    raise Http404("No such collection")


def answer_payload(answer: Answer) -> dict[str, object]:
    """What the browser needs to show a finished answer: safe HTML, citations, grounding."""
    urls = {int(p["n"]): reverse("passage", args=[p["chunk_id"]]) + f"?answer={answer.id}" for p in answer.passages}  # type: ignore[call-overload, index]
    return {
        "id": answer.id,
        "status": answer.status,
        "html": answer_html(text=answer.text, passage_urls=urls, unsupported=answer.grounding_spans or []),
        "error": answer.error,
        "citations": [p for p in answer.passages if p["n"] in answer.citations],  # type: ignore[index, operator]
        # Every passage the model was given, cited or not: the reader can always check the sources.
        "sources": [{**p, "cited": p["n"] in answer.citations} for p in answer.passages],  # type: ignore[dict-item, index, operator]
        "grounding": None
        if answer.grounding_score is None
        else {
            "score": round(answer.grounding_score, 3),
            "flagged": answer.grounding_flagged,
            "threshold": answer.grounding_threshold,
            "unsupported": answer.grounding_spans,
        },
        "feedback": answer.feedback,
    }


@login_required
@require_GET
def chat_page(request: HttpRequest, conversation_id: int | None = None) -> HttpResponse:
    conversation = None
    answers: list[dict[str, object]] = []
    if conversation_id is not None:
        try:
            conversation = services.conversation_get(conversation_id=conversation_id, user=request.user)
        except ConversationNotFound as exc:
            raise Http404(str(exc)) from exc
        answers = [{"answer": a, "payload": answer_payload(a)} for a in conversation.answers.all()]
    return render(
        request,
        "chat/chat.html",
        {
            "conversation": conversation,
            "conversations": services.conversations_for(user=request.user),
            "collections": collections_visible(user=request.user),
            "answers": answers,
        },
    )


@login_required
@require_POST
def ask(request: HttpRequest) -> JsonResponse:
    """Ask in an existing conversation (conversation id) or start one (collection id); returns the answer id."""
    try:
        if request.POST.get("conversation"):
            conversation = services.conversation_get(conversation_id=int(request.POST["conversation"]), user=request.user)
        else:
            collection = _collection_for(request.user, int(request.POST.get("collection") or 0))
            conversation = services.conversation_create(collection=collection, user=request.user)  # type: ignore[arg-type]
        answer = services.answer_ask(conversation=conversation, question=request.POST.get("question", ""))
    except (ChatError, ValueError) as exc:
        return JsonResponse({"error": {"code": "bad_request", "message": str(exc)}}, status=400)
    return JsonResponse(
        {
            "answer": answer.id,
            "conversation": conversation.id,
            "conversation_url": reverse("conversation", args=[conversation.id]),
            "stream_url": reverse("answer-stream", args=[answer.id]),
        }
    )


def _owned_answer(answer_id: int, user_id: object) -> Answer:
    return get_object_or_404(Answer.objects.select_related("conversation"), id=answer_id, conversation__user_id=user_id)


async def _answer_events(answer_id: int) -> AsyncIterator[str]:
    async for step in answer_follow(answer_id=answer_id, timeout_s=STREAM_TIMEOUT_S, grounding_wait_s=STREAM_TIMEOUT_S):
        if step.kind == "ping":
            yield KEEPALIVE_COMMENT
        elif step.kind == "token":
            yield sse("token", {"text": step.text})
        elif step.kind == "timeout":
            yield sse("error", {"message": "The answer is taking too long; the workers may be busy: ask again later"})
        elif step.answer is not None:
            yield sse(step.kind, await sync_to_async(answer_payload)(step.answer))


async def answer_stream(request: HttpRequest, answer_id: int) -> HttpResponseBase:
    user = await request.auser()
    if not user.is_authenticated:
        return JsonResponse({"error": {"code": "unauthenticated", "message": "Sign in first"}}, status=401)
    exists = await Answer.objects.filter(id=answer_id, conversation__user_id=user.pk).aexists()
    if not exists:
        raise Http404("No such answer")
    response = StreamingHttpResponse(_answer_events(answer_id), content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # proxies must not buffer the stream
    return response


@login_required
@require_GET
def answer_detail(request: HttpRequest, answer_id: int) -> JsonResponse:
    return JsonResponse(answer_payload(_owned_answer(answer_id, request.user.pk)))


@login_required
@require_GET
def passage(request: HttpRequest, chunk_id: int) -> HttpResponse:
    chunk = get_object_or_404(Chunk.objects.select_related("document__collection"), id=chunk_id)
    _collection_for(request.user, chunk.document.collection_id)  # 404 unless the user may see it
    return render(request, "chat/passage.html", {"chunk": chunk, "document": chunk.document})


@login_required
@require_POST
def feedback(request: HttpRequest, answer_id: int) -> JsonResponse:
    answer = _owned_answer(answer_id, request.user.pk)
    value = {"up": 1, "down": -1}.get(request.POST.get("value", ""))
    if value is None:
        return JsonResponse({"error": {"code": "bad_request", "message": "value must be 'up' or 'down'"}}, status=400)
    Answer.objects.filter(id=answer.id).update(feedback=value, feedback_comment=request.POST.get("comment", "")[:2000])
    return JsonResponse({"ok": True, "feedback": value})
