"""Shared fixtures: real parts only. A session-wide data dir, a real Celery worker process, the eval data."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from tests.llm_fixtures import free_port

ROOT = Path(__file__).resolve().parent.parent
EVAL_DIR = ROOT.parent / "shared" / "eval"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def eval_dir(*parts: str) -> Path:
    """A folder of ../shared/eval, or a skip naming what is missing."""
    path = EVAL_DIR.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is absent: this test needs the shared evaluation data beside the checkout")
    return path


# Three pages with facts on known pages: the questions the answering tests ask are about page 2.
HANDBOOK = [
    "Welcome to Northwind Robotics. Core working hours are 10:00 to 15:00 Central European Time.",
    "Every full-time employee receives 27 days of paid annual leave per calendar year. Up to 5 unused "
    "leave days may be carried over into the first quarter of the next year.",
    "The daily meal allowance on business trips is 450 Danish kroner.",
]


def sse_events(body: str) -> list[tuple[str, dict[str, object]]]:
    """Server-sent events as (event name, JSON data); comments (keep-alives) are skipped."""
    events = []
    for block in body.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line and not line.startswith(":"))
        if "data" in lines:
            events.append((lines.get("event", ""), json.loads(lines["data"])))
    return events


def wait_for(
    check: Callable[[], Any], *, timeout: float, interval: float = 0.25, what: str = "condition"
) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


@pytest.fixture(scope="session", autouse=True)
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every test process and worker shares one temporary data dir: uploaded files and FAISS indexes."""
    root = tmp_path_factory.mktemp("ragdata")
    settings.DATA_DIR = root
    settings.MEDIA_ROOT = root / "media"
    settings.INDEX_DIR = root / "indexes"
    return root


def database_url() -> str:
    from django.db import connection

    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def worker_env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST") and k != "DJANGO_ALLOW_ASYNC_UNSAFE"}
    env.update(
        DATABASE_URL=database_url(),
        RAG_DATA_DIR=str(data_dir),
        RAG_INDEX_DIR=str(settings.INDEX_DIR),
        PYTHONUNBUFFERED="1",
        DJANGO_SETTINGS_MODULE="ragsite.settings",
    )
    if settings.REDIS_URL:
        env["REDIS_URL"] = settings.REDIS_URL
    env.update(extra)
    return env


def transformers_worker_env(data_dir: Path, *, model: Path, batching: str, max_new_tokens: int, **extra: str) -> dict[str, str]:
    """The environment of a gpu worker answering with a local transformers model (the tests' tiny random ones),
    without the LLM rewrite of follow-up questions (a random model's rewrite is noise)."""
    options = {"model": str(model), "local_files_only": True, "batching": batching}
    return worker_env(
        data_dir, RAG_LLM_BACKEND="transformers", RAG_LLM_OPTIONS=json.dumps(options),
        RAG_LLM_MAX_NEW_TOKENS=str(max_new_tokens), RAG_ANSWER_REWRITE_WITH_LLM="false", **extra,
    )


class WorkerProcess:
    """A real `celery worker` subprocess; its log is kept for assertions and failure reports."""

    def __init__(
        self,
        env: dict[str, str],
        log: Path,
        queues: str = "ingest,gpu",
        name: str = "test",
        pool: tuple[str, ...] = ("-P", "solo"),
    ) -> None:
        self.log = log
        self.cmd = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "ragsite",
            "worker",
            "-Q",
            queues,
            *pool,
            "--loglevel",
            "INFO",
            "-n",
            f"{name}-{os.getpid()}-{time.monotonic_ns()}@%h",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ]
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, *, timeout: float = 180) -> WorkerProcess:
        fh = open(self.log, "ab")
        self.proc = subprocess.Popen(self.cmd, cwd=ROOT, env=self.env, stdout=fh, stderr=subprocess.STDOUT)
        wait_for(self._ready, timeout=timeout, interval=0.5, what=f"the worker to be ready (log: {self.log})")
        return self

    def _ready(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"worker exited with {self.proc.returncode}:\n{self.log_text()[-4000:]}")
        return " ready." in self.log_text()

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def purge_broker() -> None:
    """Drop queued messages left by an earlier run of this test session's key prefix (never other runs')."""
    if settings.REDIS_URL:
        import redis

        client = redis.Redis.from_url(settings.REDIS_URL)
        prefix = settings.CELERY_BROKER_TRANSPORT_OPTIONS.get("global_keyprefix", "")
        keys = list(client.scan_iter(match=f"{prefix}*")) if prefix else []
        if not prefix:
            client.flushdb()
        elif keys:
            client.delete(*keys)


@pytest.fixture(scope="session")
def celery_worker_process(
    django_db_setup: None, django_db_blocker: Any, data_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WorkerProcess]:
    """One worker for the session, consuming both queues, against the test database and the real broker."""
    if not settings.REDIS_URL:
        pytest.fail("REDIS_URL is not set: run the tests with `make test` (Redis on 127.0.0.1:6379)")
    purge_broker()
    with django_db_blocker.unblock():
        env = worker_env(data_dir)
    worker = WorkerProcess(env, tmp_path_factory.mktemp("worker") / "worker.log").start()
    yield worker
    worker.stop()


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup: None, django_db_blocker: Any) -> Iterator[None]:
    """The test database, whose teardown first closes connections other threads and processes left open
    (the ORM's async calls run in executor threads that keep their own connection)."""
    yield
    with django_db_blocker.unblock():
        from django.db import connection

        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                    [connection.settings_dict["NAME"]],
                )


@contextlib.contextmanager
def process_serving(cmd: list[str], *, env: dict[str, str], log: Path, ready_url: str, what: str) -> Iterator[None]:
    """A server subprocess, up once `ready_url` answers 200; stopped (and killed if need be) at the end."""
    import urllib.request

    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)

    def up() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"{what} exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            return urllib.request.urlopen(ready_url, timeout=2).status == 200
        except OSError:
            return False

    try:
        wait_for(up, timeout=60, what=f"{what} to answer")
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


@contextlib.contextmanager
def asgi_server_running(env: dict[str, str], log: Path) -> Iterator[str]:
    """uvicorn serving the project (SSE and async views need a real ASGI server); yields its base URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "uvicorn", "ragsite.asgi:application", "--host", "127.0.0.1", "--port", str(port)]
    with process_serving(cmd, env=env, log=log, ready_url=f"{url}/accounts/login/", what="uvicorn"):
        yield url


CHROMIUM = "/usr/bin/chromium"


@pytest.fixture
def browser_page() -> Iterator[object]:
    """A page of Debian's chromium through Playwright (never a browser Playwright downloads)."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium (scripts/system-deps.sh)")
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; the ORM calls the tests make beside it are
    # ordinary blocking calls, which Django would otherwise refuse inside a running loop.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
            )
            page = browser.new_page()
            yield page
            browser.close()
    finally:
        # Only for this process's blocking ORM calls: never for the servers and commands tests start.
        del os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked `gpu` run where CUDA is, and are skipped with the reason elsewhere."""
    gpu_tests = [item for item in items if item.get_closest_marker("gpu")]
    if not gpu_tests:
        return
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (torch.cuda.is_available() is False here)")
    for item in gpu_tests:
        item.add_marker(skip)
