"""API overhead: wall time of POST /api/v1/ask minus the answer's own generation_ms, at 1, 10 and 50 clients.

In-process: Django's ASGI handler through `AsyncClient` (real routing, auth, rate limiting, validation,
DB rows and polling in `answer_wait`), and one worker thread standing in for the gpu Celery worker: it
runs `answer_generate` on each answer the API enqueues, one at a time, as one gpu worker does. With
more clients than workers, the overhead therefore includes the wait in the queue; we report it both
with and without that wait (queue wait = time from the request's start to its generation's start).
The API waits for the grounding score too (up to RAG_API_GROUNDING_WAIT), so the worker scores each
answer after generating it, as the real one does; grounding_ms is reported beside the overhead.
"Web only" leaves the worker's whole turn out (retrieval, generation, grounding): the time from the request
to its answer being queued, plus the time from the worker's last write to the response, i.e. what the web
process and its wait on the answer's row add. With a Redis URL the run is repeated with the worker's writes
pushed through Redis pub/sub (chat.push) instead of polled.
"""

from __future__ import annotations

import asyncio
import os
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from bench.common import percentile


def _stats(values: list[float]) -> dict[str, float]:
    return {"p50_ms": round(percentile(values, 50), 1), "p99_ms": round(percentile(values, 99), 1)}


def api_overhead_bench(
    *, collection_id: int, clients: list[int], max_new_tokens: int, log: Callable[[str], None], redis_url: str = ""
) -> dict[str, Any]:
    from django.conf import settings
    from django.db import close_old_connections
    from django.test import AsyncClient, override_settings

    import chat.services as chat_services
    from api.keys import api_key_create
    from audit.services import Actor
    from chat.models import Answer
    from ingestion.models import Collection
    from llm.generators import generator_get

    settings.LLM_MAX_NEW_TOKENS = max_new_tokens  # the overhead is the figure here, not the generation
    settings.API_MAX_QUEUE = max(clients) + 1
    generator_get().warm_up()
    collection = Collection.objects.get(id=collection_id)
    secret = api_key_create(
        name="bench", collections=[collection], rate_limit_per_minute=1_000_000, actor=Actor.system("bench")
    ).secret
    jobs: queue.Queue[int | None] = queue.Queue()
    queued: dict[int, float] = {}
    started: dict[int, float] = {}
    ended: dict[int, float] = {}

    def worker() -> None:
        while (answer_id := jobs.get()) is not None:
            started[answer_id] = time.perf_counter()
            try:
                chat_services.answer_generate(answer_id=answer_id)
                chat_services.answer_ground(answer_id=answer_id)  # as the gpu worker's score_answer task does
            except Exception as exc:  # noqa: BLE001 - a bench worker reports and goes on
                chat_services.answer_fail(answer_id=answer_id, message=str(exc))
            finally:
                ended[answer_id] = time.perf_counter()
                close_old_connections()

    def put(answer_id: int) -> None:
        queued[answer_id] = time.perf_counter()
        jobs.put(answer_id)

    def enqueue(answer_id: int, top_k: int | None = None) -> None:
        from django.db import transaction

        transaction.on_commit(lambda: put(answer_id))

    original = chat_services._enqueue_generate
    chat_services._enqueue_generate = enqueue
    thread = threading.Thread(target=worker, daemon=True)
    thread.start()
    questions = ["What were total net sales?", "How did gross margin change?", "What are the main risk factors?",
                 "How much cash and cash equivalents were there?", "What was operating income?"]

    async def one(client: AsyncClient, n: int) -> tuple[float, float, int, int]:
        t0 = time.perf_counter()
        response = await client.post(
            "/api/v1/ask", {"question": questions[n % len(questions)], "collection": collection.slug},
            content_type="application/json", headers={"Authorization": f"Bearer {secret}"},
        )
        return t0, time.perf_counter(), response.status_code, int(response.json().get("id", 0) or 0)

    async def burst(n: int) -> list[tuple[float, float, int, int]]:
        client = AsyncClient()
        return await asyncio.gather(*(one(client, i) for i in range(n)))

    def measure(mode: str) -> None:
        for n in clients:
            rows = asyncio.run(burst(n))
            total, overhead, own, web, grounding, statuses = [], [], [], [], [], []
            for t0, t1, status, answer_id in rows:
                statuses.append(status)
                answer = Answer.objects.filter(id=answer_id).first()
                if status != 200 or answer is None or answer.generation_ms is None:
                    continue
                wall = (t1 - t0) * 1000
                waited = max(0.0, (started.get(answer_id, t0) - t0) * 1000)
                total.append(wall)
                overhead.append(wall - answer.generation_ms)
                own.append(wall - answer.generation_ms - waited)
                web.append(((queued[answer_id] - t0) + (t1 - ended[answer_id])) * 1000)
                grounding.append(answer.grounding_ms or 0.0)
            result[mode][str(n)] = {
                "ok": len(total), "statuses": sorted(set(statuses)), "request": _stats(total),
                "overhead_incl_queue": _stats(overhead), "overhead_excl_queue": _stats(own), "web_only": _stats(web),
                "grounding": _stats(grounding),
            }
            log(f"  api {mode} {n} clients: {result[mode][str(n)]}")

    result: dict[str, Any] = {"max_new_tokens": max_new_tokens, "clients": {}, "push": {}}
    try:
        asyncio.run(burst(1))  # warm: first request imports and compiles the API's schemas
        measure("clients")  # the embedded default: the API's wait polls the answer's row
        if redis_url:
            # The publisher (chat.push) is built on its first push, which comes only now, from these settings.
            with override_settings(REDIS_URL=redis_url, BROKER_KEYPREFIX=f"bench{os.getpid()}:"):
                measure("push")
        else:
            result["push"] = {"skipped": "no Redis URL (--redis)"}
    finally:
        jobs.put(None)
        thread.join(timeout=60)
        chat_services._enqueue_generate = original
    return result
