"""Start the whole service on one machine: the web server (ASGI) and the two Celery workers.

- `ingest` worker: parses, chunks and embeds uploaded PDFs.
- `gpu` worker: one process that loads the generator once and answers questions. On the embedded default
  it runs on the CPU (solo pool); with RAG_LLM_BACKEND=transformers it needs a GPU and answers up to
  RAG_GPU_CONCURRENCY questions at once (threads pool, batched on the GPU). The pool comes from the
  settings (GPU_POOL, GPU_CONCURRENCY), read like every other setting, from the environment or `.env`.

If one process dies, the others are stopped too, so the service never runs half up. Ctrl-C stops all.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
sys.path.insert(0, str(ROOT))


def gpu_pool() -> list[str]:
    """The answering queue, and one question at a time (solo) or many (threads, batched on the GPU by the
    transformers backend)."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ragsite.settings")
    from django.conf import settings

    if settings.GPU_POOL == "threads":
        return ["-Q", settings.GPU_QUEUE, "-P", "threads", "-c", str(settings.GPU_CONCURRENCY)]
    return ["-Q", settings.GPU_QUEUE, "-P", "solo"]


def commands(host: str, port: int) -> dict[str, list[str]]:
    celery = [str(BIN / "celery"), "-A", "ragsite", "worker", "--loglevel", "INFO", "--without-gossip", "--without-mingle"]
    return {
        "worker-ingest": [*celery, "-Q", "ingest", "-P", "prefork", "-c", "1", "-n", "ingest@%h"],
        "worker-gpu": [*celery, *gpu_pool(), "-n", "gpu@%h"],
        "web": [str(BIN / "uvicorn"), "ragsite.asgi:application", "--host", host, "--port", str(port), "--no-access-log"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    procs = {name: subprocess.Popen(cmd, cwd=ROOT, env=env) for name, cmd in commands(args.host, args.port).items()}
    print(f"GroundRAG is starting on http://{args.host}:{args.port}/ (Ctrl-C stops it)", flush=True)
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    code = 0
    while not stopping:
        for name, proc in procs.items():
            if proc.poll() is not None:
                print(f"{name} exited with code {proc.returncode}; stopping the others", file=sys.stderr, flush=True)
                code = proc.returncode or 1
                stopping = True
        time.sleep(0.5)
    for proc in procs.values():
        if proc.poll() is None:
            proc.terminate()
    deadline = time.monotonic() + 20
    for proc in procs.values():
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
    return code


if __name__ == "__main__":
    sys.exit(main())
