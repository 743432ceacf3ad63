"""/v1/: the OpenAI-compatible routes, so existing bot frameworks and the `openai` client plug in unchanged."""

from __future__ import annotations

from asgiref.sync import sync_to_async
from django.conf import settings
from django.http import HttpRequest, StreamingHttpResponse
from ninja import Router

from api.completions import (
    ChatCompletionIn,
    ChatCompletionOut,
    ModelList,
    completion_ask,
    completion_chunks,
    completion_extras,
    completion_out,
    models_list,
)
from api.streaming import answer_wait
from api.views import caller_of, errors, event_stream
from chat.follow import db_call
from chat.models import Answer
from chat.records import answer_view

router = Router(tags=["OpenAI-compatible"])

SSE_200 = {
    "responses": {
        200: {
            "description": "A chat.completion; with `stream: true` server-sent `chat.completion.chunk`s, "
            "the last one carrying `citations`, `grounding` and `usage`, then `data: [DONE]`",
            # OpenAPI 3.1: the schema of an event stream describes one event (a chunk, an error, or [DONE]).
            "content": {
                "text/event-stream": {
                    "schema": {
                        "type": "object",
                        "properties": {"data": {"type": "string", "description": "a JSON chunk, or [DONE]"}},
                        "required": ["data"],
                    }
                }
            },
        }
    }
}


async def _extras(answer: Answer) -> dict[str, object]:
    return await db_call(lambda: completion_extras(answer_view(answer)))()


def _completion(answer: Answer, model: str) -> ChatCompletionOut:
    return completion_out(view=answer_view(answer), model=model)


@router.post(
    "/chat/completions", response={200: ChatCompletionOut, **errors(400, 403, 413, 422, 502, 503, 504)},
    openapi_extra=SSE_200, summary="Chat completion (OpenAI-compatible), with citations",
)
async def chat_completions(request: HttpRequest, payload: ChatCompletionIn) -> tuple[int, ChatCompletionOut] | StreamingHttpResponse:
    """`model` is a collection slug (any name works for a key with one collection); the last message is the question."""
    request.api_question = payload.messages[-1].content  # type: ignore[attr-defined]  # logged only if opted in
    answer = await sync_to_async(completion_ask)(caller=caller_of(request), payload=payload)
    timeout = settings.API_ANSWER_TIMEOUT
    if payload.stream:
        chunks = completion_chunks(answer=answer, model=payload.model, timeout_s=timeout, extras=_extras)
        return event_stream(chunks, answer_id=answer.id)
    final = await answer_wait(answer_id=answer.id, timeout_s=timeout)
    return 200, await sync_to_async(_completion)(final, payload.model)


@router.get("/models", response={200: ModelList, **errors()}, summary="The collections this key may use, as models")
def models(request: HttpRequest) -> ModelList:
    return models_list(caller=caller_of(request))
