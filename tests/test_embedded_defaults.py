"""The README's first command path: no Redis, no PostgreSQL. SQLite, the filesystem broker, a real worker."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, WorkerProcess, wait_for

pytestmark = pytest.mark.slow


def _env(data: Path) -> dict[str, str]:
    drop = ("DATABASE_URL", "REDIS_URL", "RAG_INDEX_DIR", "DJANGO_SETTINGS_MODULE")
    env = {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("PYTEST")}
    env.update(RAG_DATA_DIR=str(data), PYTHONUNBUFFERED="1")
    return env


def _manage(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_demo_collection_is_ingested_and_searchable_without_servers(tmp_path: Path) -> None:
    env = _env(tmp_path)
    _manage(env, "migrate", "--noinput")
    worker = WorkerProcess(env, tmp_path / "worker.log", queues="ingest").start()
    try:
        assert "filesystem" in worker.log_text()  # the broker really is the serverless one
        out = _manage(env, "seed_demo")
        assert out.count("queued") == 3

        def statuses() -> list[str] | None:
            with sqlite3.connect(tmp_path / "db.sqlite3") as db:
                rows = [r[0] for r in db.execute("SELECT status FROM ingestion_document")]
            return rows if rows and all(s in ("ready", "failed") for s in rows) else None

        assert wait_for(statuses, timeout=240, what="the demo documents") == ["ready"] * 3
    finally:
        worker.stop()
    out = _manage(
        env, "search", "How many days of paid annual leave do employees get?", "--collection", "demo"
    )
    first = out.splitlines()[0]
    assert "Northwind Employee Handbook.pdf" in first and "p. 2" in first
    assert "27 days" in out
