"""Answer streams woken by the worker's push (Redis pub/sub): a follower sees each write of the worker well
before its fallback read; without Redis it polls; a push that never comes only delays it. Real database, real
Redis, the worker's own service functions writing the row from another thread."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from django.conf import settings
from django.db import close_old_connections
from django.test import override_settings

from chat import services
from chat.follow import answer_follow
from chat.models import Answer, Conversation
from chat.push import AnswerWaker, answer_channel
from ingestion.models import Collection

LONG_S = 30.0  # a fallback read (or poll) this far apart: only a push can wake the follower in time


def _answer() -> Answer:
    collection = Collection.objects.create(name=f"Handbook {Collection.objects.count()}")
    conversation = Conversation.objects.create(collection=collection, title="t")
    return Answer.objects.create(
        conversation=conversation, question="How many days?", status=Answer.Status.STREAMING
    )


def _worker(answer_id: int, pieces: list[str], gap_s: float) -> threading.Thread:
    """The gpu worker's writes, through its own code: text flushed piece by piece, then the final row."""

    def run() -> None:
        try:
            flusher = services._Flusher(answer_id)
            for piece in pieces:
                time.sleep(gap_s)
                flusher._last = 0.0  # every piece is a flush (the worker flushes at most every FLUSH_SECONDS)
                flusher.add(piece)
            time.sleep(gap_s)
            services._finish(answer_id, {"text": flusher.text.strip(), "model_called": True})
        finally:
            close_old_connections()

    return threading.Thread(target=run, daemon=True)


async def _timed_steps(answer_id: int) -> list[tuple[str, str, float]]:
    t0 = time.monotonic()
    steps: list[tuple[str, str, float]] = []
    async for step in answer_follow(answer_id=answer_id, timeout_s=LONG_S, grounding_wait_s=0.0):
        steps.append((step.kind, step.text, time.monotonic() - t0))
    return steps


@pytest.mark.django_db(transaction=True)
def test_pushes_wake_the_stream_long_before_its_fallback_read() -> None:
    """Fails if the follower waits for its (30 s) fallback read instead of the worker's push."""
    assert settings.REDIS_URL, "the tests run with Redis (see conftest)"
    answer = _answer()
    pieces = ["Employees ", "receive 27 days ", "of paid leave."]
    with override_settings(STREAM_PUSH_FALLBACK_S=LONG_S, STREAM_POLL_S=LONG_S):
        worker = _worker(answer.id, pieces, gap_s=0.3)
        worker.start()
        steps = asyncio.run(_timed_steps(answer.id))
        worker.join(timeout=10)
    kinds = [kind for kind, _, _ in steps]
    assert kinds[-1] == "done" and kinds.count("token") == len(pieces), steps
    assert "".join(text for kind, text, _ in steps if kind == "token") == "".join(pieces).strip()
    # 4 writes 0.3 s apart: the whole answer arrives in about 1.2 s, not after a 30 s wait.
    assert steps[-1][2] < 6.0, steps


@pytest.mark.django_db(transaction=True)
def test_a_push_reaches_only_its_answers_followers() -> None:
    """Fails if channels are shared between answers (or between deployments sharing a Redis)."""
    first, second = _answer(), _answer()
    assert answer_channel(first.id) != answer_channel(second.id)
    assert answer_channel(first.id).startswith(settings.BROKER_KEYPREFIX)

    async def woken(answer_id: int) -> float:
        async with AnswerWaker(answer_id) as waker:
            assert waker.pushed
            await waker.wait(0.3)  # may return on the subscription's own confirmation: consume it
            await asyncio.to_thread(services.answer_push, answer_id=first.id)
            t0 = time.monotonic()
            await waker.wait(1.5)
            return time.monotonic() - t0

    assert asyncio.run(woken(second.id)) >= 1.4  # nothing for it: it slept its whole timeout
    assert asyncio.run(woken(first.id)) < 1.0


@pytest.mark.django_db(transaction=True)
def test_without_a_push_the_fallback_read_still_finishes_the_stream() -> None:
    """Fails if a lost push (a write nobody published) leaves the stream waiting until its timeout."""
    answer = _answer()
    with override_settings(STREAM_PUSH_FALLBACK_S=0.3):

        def write_silently() -> None:
            time.sleep(0.2)
            Answer.objects.filter(id=answer.id).update(status=Answer.Status.DONE, text="27 days.")
            close_old_connections()

        thread = threading.Thread(target=write_silently, daemon=True)
        thread.start()
        steps = asyncio.run(_timed_steps(answer.id))
        thread.join(timeout=5)
    assert [kind for kind, _, _ in steps] == ["token", "done"] and steps[-1][2] < 5.0, steps


@pytest.mark.django_db(transaction=True)
def test_without_redis_the_stream_polls_and_nothing_is_published() -> None:
    """The embedded default: no Redis, so the follower polls the row at RAG_STREAM_POLL_S."""
    answer = _answer()
    with override_settings(REDIS_URL="", STREAM_POLL_S=0.05, STREAM_PUSH_FALLBACK_S=LONG_S):

        async def pushed() -> bool:
            async with AnswerWaker(answer.id) as waker:
                return waker.pushed

        assert asyncio.run(pushed()) is False
        worker = _worker(answer.id, ["27 days."], gap_s=0.2)
        worker.start()
        steps = asyncio.run(_timed_steps(answer.id))
        worker.join(timeout=10)
    assert [kind for kind, _, _ in steps] == ["token", "done"] and steps[-1][2] < 5.0, steps
