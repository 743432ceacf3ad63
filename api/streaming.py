"""The API's side of following an answer (chat.follow): a timeout becomes AnswerTimeout, the blocking
endpoints wait for the final record, and server-sent events carry each step.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from django.conf import settings

from api.exceptions import AnswerTimeout, ApiError
from chat import follow
from chat.follow import KEEPALIVE_COMMENT, Step, shown_steps, sse
from chat.models import Answer
from ragsite.errors import error_status

logger = logging.getLogger(__name__)


def answer_timeout(answer_id: int, timeout_s: float) -> AnswerTimeout:
    return AnswerTimeout(
        f"Answer {answer_id} is not ready after {timeout_s:.0f} s (the model is busy or slow): "
        f"fetch it later with GET /api/v1/answers/{answer_id}",
        details={"answer_id": answer_id},
    )


async def answer_follow(*, answer_id: int, timeout_s: float) -> AsyncIterator[Step]:
    """chat.follow.answer_follow with RAG_API_GROUNDING_WAIT; raises AnswerTimeout when not final in time."""
    async for step in follow.answer_follow(
        answer_id=answer_id, timeout_s=timeout_s, grounding_wait_s=settings.API_GROUNDING_WAIT
    ):
        if step.kind == "timeout":
            raise answer_timeout(answer_id, timeout_s)
        yield step


async def answer_wait(*, answer_id: int, timeout_s: float) -> Answer:
    """The final row (with grounding when it comes in time); AnswerTimeout when it is not final in time."""
    last: Answer | None = None
    async for step in answer_follow(answer_id=answer_id, timeout_s=timeout_s):
        last = step.answer or last
    assert last is not None  # answer_follow either yields a final row or raises
    return last


def error_payload(exc: Exception) -> dict[str, object]:
    """The JSON error body, for errors that happen after a stream's 200 has been sent."""
    status_code = error_status(exc)
    if status_code is None:
        return {"error": {"code": "internal", "message": "Internal error; it has been logged"}}
    return {"error": {"code": status_code[1], "message": str(exc), **getattr(exc, "details", {})}}


async def ask_events(
    *, answer: Answer, timeout_s: float, render: Callable[[Answer], Awaitable[dict[str, object]]]
) -> AsyncIterator[str]:
    """SSE of the ask endpoint: start, token..., done, grounding; or error (timeout) instead of a dropped stream."""
    yield sse("start", {"answer_id": answer.id, "conversation": answer.conversation_id})
    try:
        async for step in shown_steps(answer_follow(answer_id=answer.id, timeout_s=timeout_s)):
            if step.kind == "ping":
                yield KEEPALIVE_COMMENT
            elif step.kind == "token":
                if step.text:
                    yield sse("token", {"text": step.text})
            elif step.answer is not None:
                yield sse(step.kind, await render(step.answer))
    except ApiError as exc:
        yield sse("error", error_payload(exc))
    except Exception as exc:  # the 200 is sent: end with an error event, never a dropped stream
        logger.exception("event=api_stream_crashed answer=%s", answer.id)
        yield sse("error", error_payload(exc))
