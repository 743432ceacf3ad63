"""Following an answer while a gpu worker writes it into its row: text as it grows, the final row, then
its grounding. The browser's stream (chat.views) and the API's (api.streaming) both read it this way.

Between two reads of the row a follower waits on chat.push's waker: the worker's push on the answer's
Redis channel when Redis is configured (a read at least every RAG_STREAM_PUSH_FALLBACK_S), else a sleep of
RAG_STREAM_POLL_S. Either way the wait is a coroutine, and an open stream holds no thread: Django's ASGI
handler keeps one thread per request for its synchronous calls (middleware, the async ORM) until the
request ends, a stream's whole life, so a stream hands it back once its response has left the middleware
(`stream_thread_release`) and its reads then borrow a thread of the shared pool (`db_call`) for each read.

The worker strips the final text, so deltas are taken from the stripped text as it grows: their
concatenation is then exactly the final answer. Under RAG_GROUNDING_POLICY=withhold (`shown_steps`) no
token leaves before grounding is known: the answer may yet be replaced by its evidence.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Literal, ParamSpec, TypeVar

from asgiref.sync import SyncToAsync, sync_to_async
from django.conf import settings
from django.db import close_old_connections, connections
from django.http import StreamingHttpResponse

from chat.models import Answer
from chat.push import AnswerWaker

# A comment line this often keeps proxies and clients from closing a stream that waits in the queue.
KEEPALIVE_S = 15.0
KEEPALIVE_COMMENT = ": keep-alive\n\n"  # an SSE comment: clients ignore it, proxies see traffic
_FINAL = (Answer.Status.DONE, Answer.Status.FAILED)
# True once this request's thread is handed back: its synchronous calls then go to the shared pool.
_POOLED: ContextVar[bool] = ContextVar("stream_pooled", default=False)
P = ParamSpec("P")
R = TypeVar("R")


def stream_thread_release() -> None:
    """Hand back the thread Django's ASGI handler holds for this request (no-op outside one, as in tests).

    Called when the stream starts: the view and the middleware have run, and nothing of the request waits
    on that thread any more. A call to a synchronous function after it would start a new thread for the
    request, so streams make them through `db_call`.
    """
    context = SyncToAsync.thread_sensitive_context.get(None)
    if context is None or getattr(context, "_executor", None) is not None:  # a caller-owned executor stays
        return
    executor = SyncToAsync.context_to_thread_executor.pop(context, None)
    if executor is not None:
        executor.shutdown(wait=False)
    _POOLED.set(True)


def _fresh(fn: Callable[P, R]) -> Callable[P, R]:
    def call(*args: P.args, **kwargs: P.kwargs) -> R:
        # A pool thread's connection is dropped when broken or past CONN_MAX_AGE, as at a request's start; with
        # CONN_MAX_AGE=0 (SQLite's) it is kept across reads: reconnecting for each read cost more than the read
        # (200 streams waiting took 0.39 of a core).
        for connection in connections.all(initialized_only=True):
            if connection.settings_dict["CONN_MAX_AGE"] == 0:
                connection.close_at = None
        close_old_connections()
        return fn(*args, **kwargs)

    return call


def db_call(fn: Callable[P, R]) -> Callable[P, Awaitable[R]]:
    """`fn` run off the event loop: on a thread of the shared pool once the stream released its own thread;
    else as sync_to_async does (on the request's thread, or the caller's in tests, which see its transaction)."""
    if _POOLED.get():
        return sync_to_async(_fresh(fn), thread_sensitive=False)
    return sync_to_async(fn)


def _answer_read(answer_id: int) -> Answer:
    return Answer.objects.get(id=answer_id)


@dataclass(frozen=True)
class Step:
    kind: Literal["token", "done", "grounding", "ping", "timeout"]
    text: str = ""
    answer: Answer | None = None


def sse(event: str | None, data: object) -> str:
    """One server-sent event: an optional event name and JSON data."""
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {json.dumps(data, default=str)}\n\n"


async def _released(events: AsyncIterator[str]) -> AsyncIterator[str]:
    stream_thread_release()
    async for event in events:
        yield event


def sse_response(events: AsyncIterator[str]) -> StreamingHttpResponse:
    """An SSE response whose stream holds no thread of its own while it is open (see the module's doc)."""
    response = StreamingHttpResponse(_released(events), content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # proxies must not buffer the stream
    return response


def _delta(answer: Answer, sent: str) -> str:
    text = answer.text if answer.status == Answer.Status.DONE else answer.text.strip()
    return text[len(sent) :] if text.startswith(sent) else ""


async def answer_follow(
    *, answer_id: int, timeout_s: float, grounding_wait_s: float, poll_s: float | None = None
) -> AsyncIterator[Step]:
    """Deltas of text, the final row once (DONE or FAILED), then the row again once grounding is settled.

    Ends with a "timeout" step when the answer is not final after `timeout_s`. Once it is final,
    grounding gets at most `grounding_wait_s` more seconds (and none for a failed or empty answer,
    which is never scored); without it the follow ends quietly: its grounding can be read later.
    `poll_s` (default RAG_STREAM_POLL_S) is the interval between reads when no push wakes the follower.
    """
    async with AnswerWaker(answer_id) as waker:
        async for step in _follow(
            answer_id, timeout_s, grounding_wait_s, waker, poll_s or settings.STREAM_POLL_S
        ):
            yield step


async def _follow(
    answer_id: int, timeout_s: float, grounding_wait_s: float, waker: AnswerWaker, poll_s: float
) -> AsyncIterator[Step]:
    deadline = time.monotonic() + timeout_s
    sent = ""
    final = False
    quiet_since = time.monotonic()
    while True:
        answer = await db_call(_answer_read)(answer_id)
        if answer.status != Answer.Status.PENDING and (delta := _delta(answer, sent)):
            sent += delta
            quiet_since = time.monotonic()
            yield Step("token", text=delta)
        if not final and answer.status in _FINAL:
            final = True
            # Grounding is scored right after the answer; a scorer that is slow or down must not hold it.
            deadline = min(deadline, time.monotonic() + grounding_wait_s)
            yield Step("done", answer=answer)
            if answer.status == Answer.Status.FAILED or not answer.text:
                return
        if final and answer.grounding_status != Answer.Grounding.PENDING:
            yield Step("grounding", answer=answer)  # scored, or scoring failed: either way it is settled
            return
        now = time.monotonic()
        if now >= deadline:
            if not final:
                yield Step("timeout")
            return
        if now - quiet_since >= KEEPALIVE_S:
            quiet_since = now
            yield Step("ping")
        # Pushed: the fallback read; polling (no Redis, or its subscription lost): the poll interval.
        interval = settings.STREAM_PUSH_FALLBACK_S if waker.pushed else poll_s
        await waker.wait(min(interval, deadline - now, max(quiet_since + KEEPALIVE_S - now, 0.0)))


def tokens_held() -> bool:
    """Under RAG_GROUNDING_POLICY=withhold no token leaves before grounding: the text may yet be replaced."""
    return settings.GROUNDING_POLICY == "withhold"


async def shown_steps(steps: AsyncIterator[Step]) -> AsyncIterator[Step]:
    """`steps` as they come; under withhold, the tokens held back and the shown text sent as one token just
    before `done`, which is itself held until grounding is settled (or the grounding wait ends)."""
    if not tokens_held():
        async for step in steps:
            yield step
        return
    held: Answer | None = None
    async for step in steps:
        if step.kind == "token":
            continue
        if step.kind == "done" and step.answer is not None and step.answer.status == Answer.Status.DONE:
            held = step.answer
            continue
        if step.kind == "grounding" and step.answer is not None and held is not None:
            held = None
            yield Step("token", text=step.answer.shown_text)
            yield Step("done", answer=step.answer)
        yield step
    if held is not None:  # grounding did not come in time: the answer as it stands, unchecked
        yield Step("token", text=held.shown_text)
        yield Step("done", answer=held)
