"""Many browser answer streams on one web process (uvicorn, as scripts/serve.py runs it).

N streams (GET /answers/<id>/stream/, signed in) are opened at once and held while their answers wait in
the queue, then a writer thread in this process plays the gpu worker on all N answers at once through the
worker's own functions (chat.services: `_Flusher` flushes of text, `_finish`, then `answer_ground_fail`
to settle grounding without loading a scorer; the LLM is left out: the web process's cost is measured here).
Measured on the web process: RSS growth per open stream, CPU while idle-waiting and while streaming, its
thread count, statuses, and whether every stream got its whole text, "done" and "grounding". Run twice in
one go: polling (the embedded default) and pushed through Redis pub/sub (when a Redis URL is given).
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from bench.common import ROOT, Skipped, percentile

PIECES = 20  # flushes per answer, FLUSH_SECONDS apart, as a gpu worker writes a ~100-word answer
IDLE_S = 10.0  # streams open, answers still queued: its second half (all open by then) is what waiting costs


def _proc(pid: int) -> tuple[float, float, int]:
    """(RSS in MB, CPU seconds, threads) of a process, from /proc."""
    with open(f"/proc/{pid}/status", encoding="ascii") as fh:
        status = dict(line.split(":", 1) for line in fh if ":" in line)
    with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return int(status["VmRSS"].split()[0]) / 1024, cpu, int(status["Threads"])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _web(port: int, redis_url: str, prefix: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "REDIS_URL": redis_url, "RAG_BROKER_KEYPREFIX": prefix, "LOG_LEVEL": "WARNING"}
    cmd = [
        sys.executable,
        "-m",
        "uvicorn",
        "ragsite.asgi:application",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-access-log",
        "--log-level",
        "warning",
    ]
    return subprocess.Popen(cmd, cwd=ROOT, env=env)


def _fixtures(n: int) -> tuple[str, list[int]]:
    """A signed-in reader's session cookie and n queued answers in its conversation."""
    from django.contrib.auth.models import User
    from django.test import Client

    from audit.services import Actor
    from chat.models import Answer, Conversation
    from ingestion.access import grant_set
    from ingestion.models import Collection

    tag = f"streams-{time.monotonic_ns()}"
    user = User.objects.create_user(tag, password="bench-password-123")
    collection = Collection.objects.create(name=tag, slug=tag)
    grant_set(collection=collection, role="reader", actor=Actor.system("bench"), user=user)
    conversation = Conversation.objects.create(collection=collection, user=user, title="bench")
    answers = Answer.objects.bulk_create(
        [Answer(conversation=conversation, question=f"q{i}") for i in range(n)]
    )
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value, [a.id for a in answers]


def _writer(ids: list[int], finished: dict[int, float]) -> threading.Thread:
    """The gpu worker's writes for all answers at once (one flush of each per round), then final rows."""
    from django.db import close_old_connections

    from chat import services

    def run() -> None:
        try:
            flushers = [services._Flusher(i) for i in ids]
            for r in range(PIECES):
                t0 = time.monotonic()
                for f in flushers:
                    f._last = 0.0  # one flush per answer per round
                    f.add(f"word{r} and more words, ")
                time.sleep(max(0.0, services.FLUSH_SECONDS - (time.monotonic() - t0)))
            for f in flushers:
                services._finish(f.answer_id, {"text": f.text.strip(), "model_called": True})
                finished[f.answer_id] = time.monotonic()
            for f in flushers:
                services.answer_ground_fail(answer_id=f.answer_id, reason="bench: not scored")
        finally:
            close_old_connections()

    return threading.Thread(target=run, daemon=True)


async def _stream(client: Any, answer_id: int, received: dict[int, float]) -> dict[str, Any]:
    import json

    events: list[str] = []
    text: list[str] = []
    async with client.stream("GET", f"/answers/{answer_id}/stream/") as response:
        event = ""
        async for line in response.aiter_lines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                events.append(event or "message")
                if event == "token":
                    text.append(json.loads(line[6:])["text"])
                elif event == "done":
                    received[answer_id] = time.monotonic()
                event = ""
        return {"status": response.status_code, "events": events, "text": "".join(text)}


def _run(*, n: int, redis_url: str, log: Callable[[str], None]) -> dict[str, Any]:
    import httpx
    from django.test import override_settings

    from chat.models import Answer
    from ragsite.components import components_reset

    prefix = f"bench{os.getpid()}:"
    port = _free_port()
    cookie, ids = _fixtures(n)
    web = _web(port, redis_url, prefix)
    finished: dict[int, float] = {}
    received: dict[int, float] = {}
    samples: list[tuple[float, float, float, int]] = []
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                httpx.get(f"{base}/accounts/login/", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        httpx.get(f"{base}/answers/{ids[0]}/", cookies={"sessionid": cookie}, timeout=30)  # warm the app up
        rss0, cpu0, threads0 = _proc(web.pid)

        async def main() -> list[Any]:
            limits = httpx.Limits(max_connections=n + 10, max_keepalive_connections=n + 10)
            async with httpx.AsyncClient(
                base_url=base, cookies={"sessionid": cookie}, limits=limits, timeout=120
            ) as client:
                tasks = [asyncio.create_task(_stream(client, i, received)) for i in ids]
                t0 = time.monotonic()
                while time.monotonic() - t0 < IDLE_S or not all(t.done() for t in tasks):
                    samples.append((time.monotonic(), *_proc(web.pid)))
                    if time.monotonic() - t0 >= IDLE_S and writer.ident is None:
                        writer.start()  # streams open and idle for IDLE_S: now the "worker" answers
                    await asyncio.sleep(0.25)
                return await asyncio.gather(*tasks, return_exceptions=True)

        with override_settings(REDIS_URL=redis_url, BROKER_KEYPREFIX=prefix):
            components_reset()  # the publisher is built from these settings
            writer = _writer(ids, finished)
            t_start = time.monotonic()
            results = asyncio.run(main())
            writer.join(timeout=60)
            components_reset()
        wall = time.monotonic() - t_start
        rss1, cpu1, _ = _proc(web.pid)
    finally:
        web.terminate()
        web.wait(timeout=30)
    finals = dict(Answer.objects.filter(id__in=ids).values_list("id", "text"))
    ok = [r for r in results if isinstance(r, dict)]
    complete = sum(
        1
        for i, r in zip(ids, results, strict=True)
        if isinstance(r, dict)
        and r["status"] == 200
        and r["events"][-2:] == ["done", "grounding"]
        and r["text"] == finals[i]
    )
    idle = [s for s in samples if IDLE_S / 2 <= s[0] - samples[0][0] <= IDLE_S - 0.25]
    peak_rss = max(s[1] for s in samples)
    delivery = [(received[i] - finished[i]) * 1000 for i in ids if i in received and i in finished]
    return {
        "streams": n,
        "complete": complete,
        "statuses": sorted({r["status"] for r in ok}),
        "errors": [f"{type(r).__name__}: {r}" for r in results if not isinstance(r, dict)][:3],
        "server_5xx": sum(1 for r in ok if r["status"] >= 500),
        "rss_mb_before": round(rss0, 1),
        "rss_mb_peak": round(peak_rss, 1),
        "rss_kb_per_stream": round((peak_rss - rss0) * 1024 / n, 1),
        "rss_mb_after": round(rss1, 1),
        "threads_before": threads0,
        "threads_peak": max(s[3] for s in samples),
        # Once every stream is open and waiting (the requests' own threads handed back after their middleware).
        "threads_while_open": idle[-1][3] if idle else None,
        "cpu_share_idle_waiting": round((idle[-1][2] - idle[0][2]) / max(idle[-1][0] - idle[0][0], 1e-9), 3)
        if len(idle) > 1
        else None,
        "cpu_share_overall": round((cpu1 - cpu0) / wall, 3),
        "cpu_seconds": round(cpu1 - cpu0, 2),
        "wall_s": round(wall, 1),
        "done_delivery_ms": {
            "p50": round(percentile(delivery, 50), 1),
            "p99": round(percentile(delivery, 99), 1),
        }
        if delivery
        else None,
    }


def streams_bench(*, n: int, redis_url: str, log: Callable[[str], None]) -> dict[str, Any]:
    """Polling (the embedded default) and, with `redis_url`, pushed: the same N streams each way."""
    if not sys.platform.startswith("linux"):
        raise Skipped("reads the web process's memory and CPU from /proc")
    out: dict[str, Any] = {"idle_s": IDLE_S, "pieces": PIECES}
    for mode, url in (("poll", ""), ("push", redis_url)):
        if mode == "push" and not url:
            out[mode] = {"skipped": "no Redis URL (--redis)"}
            continue
        out[mode] = _run(n=n, redis_url=url, log=log)
        log(f"  streams {mode}: {out[mode]}")
    return out
