"""Following an answer while a gpu worker writes it into its row: for the blocking endpoints (wait for the
final record) and for server-sent events (text as it grows, then the final record, then its grounding).

The worker strips the final text, so deltas are taken from the stripped text as it grows: their
concatenation is then exactly the final answer.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

from django.conf import settings

from api.exceptions import AnswerTimeout, ApiError
from chat.models import Answer
from ragsite.errors import error_status

logger = logging.getLogger(__name__)

POLL_S = 0.1
WAIT_POLL_S = 0.25
# A comment line this often keeps proxies and clients from closing a stream that waits in the queue.
KEEPALIVE_S = 15.0
_FINAL = (Answer.Status.DONE, Answer.Status.FAILED)


@dataclass(frozen=True)
class Step:
    kind: Literal["token", "done", "grounding", "ping"]
    text: str = ""
    answer: Answer | None = None


def answer_timeout(answer_id: int, timeout_s: float) -> AnswerTimeout:
    return AnswerTimeout(
        f"Answer {answer_id} is not ready after {timeout_s:.0f} s (the model is busy or slow): "
        f"fetch it later with GET /api/v1/answers/{answer_id}",
        details={"answer_id": answer_id},
    )


def _delta(answer: Answer, sent: str) -> str:
    text = answer.text if answer.status == Answer.Status.DONE else answer.text.strip()
    return text[len(sent) :] if text.startswith(sent) else ""


async def answer_follow(*, answer_id: int, timeout_s: float, poll_s: float = POLL_S) -> AsyncIterator[Step]:
    """Deltas of text, the final row once (DONE or FAILED), then the row again once grounding is scored.

    Raises AnswerTimeout when the answer is not final by the deadline. Once it is final, grounding gets
    at most RAG_API_GROUNDING_WAIT more seconds; without it the follow ends quietly (the answer is what
    was asked for; its grounding can be read later with GET answers/{id}).
    """
    deadline = time.monotonic() + timeout_s
    sent = ""
    final = False
    quiet_since = time.monotonic()
    while True:
        answer = await Answer.objects.aget(id=answer_id)
        if answer.status != Answer.Status.PENDING and (delta := _delta(answer, sent)):
            sent += delta
            quiet_since = time.monotonic()
            yield Step("token", text=delta)
        if not final and answer.status in _FINAL:
            final = True
            # Grounding is scored right after the answer; a scorer that is slow or down must not hold it.
            deadline = min(deadline, time.monotonic() + settings.API_GROUNDING_WAIT)
            yield Step("done", answer=answer)
            if answer.status == Answer.Status.FAILED:
                return
        if final and answer.grounding_score is not None:
            yield Step("grounding", answer=answer)
            return
        now = time.monotonic()
        if now >= deadline:
            if not final:
                raise answer_timeout(answer_id, timeout_s)
            return
        if now - quiet_since >= KEEPALIVE_S:
            quiet_since = now
            yield Step("ping")
        await asyncio.sleep(min(poll_s, max(deadline - now, 0.0)))


async def answer_wait(*, answer_id: int, timeout_s: float) -> Answer:
    """The final row (with grounding when it comes in time); AnswerTimeout when it is not final in time."""
    last: Answer | None = None
    async for step in answer_follow(answer_id=answer_id, timeout_s=timeout_s, poll_s=WAIT_POLL_S):
        last = step.answer or last
    assert last is not None  # answer_follow either yields a final row or raises
    return last


def error_payload(exc: Exception) -> dict[str, object]:
    """The JSON error body, for errors that happen after a stream's 200 has been sent."""
    status_code = error_status(exc)
    if status_code is None:
        return {"error": {"code": "internal", "message": "Internal error; it has been logged"}}
    return {"error": {"code": status_code[1], "message": str(exc), **getattr(exc, "details", {})}}


def sse(event: str | None, data: object) -> str:
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {json.dumps(data, default=str)}\n\n"


async def ask_events(
    *, answer: Answer, timeout_s: float, render: Callable[[Answer], Awaitable[dict[str, object]]]
) -> AsyncIterator[str]:
    """SSE of the ask endpoint: start, token..., done, grounding; or error (timeout) instead of a dropped stream."""
    yield sse("start", {"answer_id": answer.id, "conversation": answer.conversation_id})
    try:
        async for step in answer_follow(answer_id=answer.id, timeout_s=timeout_s):
            if step.kind == "ping":
                yield ": keep-alive\n\n"
            elif step.kind == "token":
                yield sse("token", {"text": step.text})
            elif step.answer is not None:
                yield sse(step.kind, await render(step.answer))
    except ApiError as exc:
        yield sse("error", error_payload(exc))
    except Exception as exc:  # the 200 is sent: end with an error event, never a dropped stream
        logger.exception("event=api_stream_crashed answer=%s", answer.id)
        yield sse("error", error_payload(exc))
