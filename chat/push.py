"""A push from the worker to the streams that follow an answer: Redis pub/sub, one channel per answer.

The gpu worker publishes whenever it writes the answer's row (text flushed, answer final, grounding
settled); a stream (chat.follow) subscribes before its first read and re-reads the row when woken. The
message carries no text: the database stays the one source of truth, and a lost message (pub/sub is
fire-and-forget) only delays a stream until its next fallback read. Each open stream holds one Redis
connection (a socket, no thread) while it is open. Without Redis (the embedded default) nothing is published
and streams poll the database.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from django.conf import settings
from django.db import transaction

from ragsite.components import shared

logger = logging.getLogger(__name__)


def push_enabled() -> bool:
    return bool(settings.REDIS_URL)


def answer_channel(answer_id: int) -> str:
    # The broker's key prefix keeps deployments (and test runs) that share one Redis apart.
    return f"{settings.BROKER_KEYPREFIX}groundrag:answer:{answer_id}"


class _Publisher:
    """This process's Redis client for publishing (thread-safe: the gpu worker may run a threads pool)."""

    def __init__(self) -> None:
        import redis

        self.client: Any = redis.Redis.from_url(
            settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2
        )

    def close(self) -> None:
        self.client.close()


def _publish(answer_id: int) -> None:
    import redis

    try:
        shared(_Publisher).client.publish(answer_channel(answer_id), b"1")
    except redis.RedisError as exc:
        # The row is written: followers still see it at their next fallback read, so the answer goes on.
        logger.warning("event=answer_push_failed answer=%s error=%s", answer_id, type(exc).__name__)


def answer_push(*, answer_id: int) -> None:
    """Wake the streams following `answer_id`, once the row's change is committed (at once outside a transaction)."""
    if push_enabled():
        transaction.on_commit(lambda: _publish(answer_id))


class AnswerWaker:
    """What a follower waits on between two reads of the row: the answer's channel, or a plain sleep.

    `async with AnswerWaker(answer_id) as waker:` subscribes (before the first read, so no change is missed);
    `await waker.wait(timeout)` returns when a push came or `timeout` passed.
    """

    def __init__(self, answer_id: int) -> None:
        self.answer_id = answer_id
        self._client: Any = None
        self._pubsub: Any = None

    async def __aenter__(self) -> AnswerWaker:
        if push_enabled():
            import redis.asyncio as aredis
            from redis.exceptions import RedisError

            try:
                self._client = aredis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2)
                self._pubsub = self._client.pubsub(ignore_subscribe_messages=True)
                await self._pubsub.subscribe(answer_channel(self.answer_id))
            except (RedisError, OSError) as exc:
                logger.warning(
                    "event=answer_subscribe_failed answer=%s error=%s", self.answer_id, type(exc).__name__
                )
                await self._close()
        return self

    @property
    def pushed(self) -> bool:
        """Whether pushes wake this follower (else it polls)."""
        return self._pubsub is not None

    async def wait(self, timeout: float) -> None:
        if self._pubsub is None:
            await asyncio.sleep(timeout)
            return
        from redis.exceptions import RedisError

        try:
            message = await self._pubsub.get_message(timeout=timeout)
            while message is not None:  # several flushes while we read the row: one read serves them all
                message = await self._pubsub.get_message(timeout=0)
        except (RedisError, OSError) as exc:
            logger.warning(
                "event=answer_subscription_lost answer=%s error=%s", self.answer_id, type(exc).__name__
            )
            await self._close()  # from now on this follower polls

    async def _close(self) -> None:
        pubsub, client, self._pubsub, self._client = self._pubsub, self._client, None, None
        if pubsub is not None:
            await pubsub.aclose()
        if client is not None:
            await client.aclose()

    async def __aexit__(self, *_: object) -> None:
        await self._close()
