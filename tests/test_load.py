"""Concurrent load: 20 uploads and 50 asks (REST API and browser chat) at once against the real server.

Nothing may answer 5xx, no answer may be lost (every row ends DONE), every document ends READY, and the
worker's memory stays bounded. SmolLM2 stops after a few tokens here: the point is concurrency, not prose.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from api.keys import api_key_create
from chat.models import Answer
from ingestion.models import Collection, Document
from ingestion.services import document_upload
from tests.conftest import WorkerProcess, asgi_server_running, purge_broker, wait_for, worker_env
from tests.grants import SYSTEM, grant
from tests.pdf_factory import make_text_pdf

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

ASKS_PER_SIDE = 25
UPLOADS = 20
DEADLINE_S = 900


def _rss_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+)", status).group(1))  # type: ignore[union-attr]


@pytest.fixture(scope="module")
def load_stack(
    django_db_setup: None, django_db_blocker: object, data_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, WorkerProcess]]:
    purge_broker()
    with django_db_blocker.unblock():  # type: ignore[attr-defined]
        env = worker_env(
            data_dir, RAG_LLM_MAX_NEW_TOKENS="8", RAG_ANSWER_REWRITE_WITH_LLM="0",
            RAG_API_ANSWER_TIMEOUT=str(DEADLINE_S), RAG_API_MAX_QUEUE="1000",
        )
    logs = tmp_path_factory.mktemp("load")
    worker = WorkerProcess(env, logs / "worker.log", name="load").start()
    try:
        with asgi_server_running(env, logs / "uvicorn.log") as url:
            yield url, worker
    finally:
        worker.stop()


def _chat_session(base: str, collection: Collection) -> httpx.Client:
    """A signed-in browser-like session: the session cookie and the CSRF token of the chat form."""
    user = get_user_model().objects.create_user("loadtester", password="pw-load-123456")
    grant(collection, user=user)
    client = Client()
    client.force_login(user)
    http = httpx.Client(base_url=base, timeout=DEADLINE_S, cookies={"sessionid": client.cookies["sessionid"].value})
    page = http.get("/")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    http.headers["X-CSRFToken"] = token
    return http


def test_uploads_and_asks_at_once_lose_nothing_and_never_5xx(
    load_stack: tuple[str, WorkerProcess], tmp_path: Path
) -> None:
    base, worker = load_stack
    collection = Collection.objects.create(name="Load")
    handbook = make_text_pdf(tmp_path / "handbook.pdf", ["Employees receive 27 days of paid annual leave per year."] * 2)
    document_upload(collection=collection, upload=SimpleUploadedFile("handbook.pdf", handbook.read_bytes()), actor=SYSTEM)
    wait_for(lambda: Document.objects.filter(status="ready").exists(), timeout=300, what="the handbook")
    key = api_key_create(name="load", collections=[collection], rate_limit_per_minute=0, can_manage_documents=True, actor=SYSTEM).secret
    api = httpx.Client(base_url=base, timeout=DEADLINE_S, headers={"Authorization": f"Bearer {key}"})
    chat = _chat_session(base, collection)
    pdfs = [make_text_pdf(tmp_path / f"memo-{i}.pdf", [f"Memo {i} about quarterly shipping volumes. " * 30]) for i in range(UPLOADS)]
    rss_before = _rss_kib(worker.proc.pid)  # type: ignore[union-attr]

    def upload(path: Path) -> int:
        with open(path, "rb") as fh:
            return api.post("/api/v1/documents", data={"collection": "load"}, files={"file": (path.name, fh, "application/pdf")}).status_code

    def ask_api(i: int) -> int:
        return api.post("/api/v1/ask", json={"question": f"How many days of leave? ({i})", "collection": "load"}).status_code

    def ask_chat(i: int) -> int:
        return chat.post("/ask/", data={"collection": collection.id, "question": f"Paid leave days? ({i})"}).status_code

    with ThreadPoolExecutor(max_workers=60) as pool:
        futures = [pool.submit(upload, p) for p in pdfs]
        futures += [pool.submit(ask_api, i) for i in range(ASKS_PER_SIDE)]
        futures += [pool.submit(ask_chat, i) for i in range(ASKS_PER_SIDE)]
        codes = [f.result(timeout=DEADLINE_S) for f in futures]

    assert all(code < 500 for code in codes), sorted(codes)
    assert codes.count(201) + codes.count(200) == len(codes), sorted(codes)
    # Nothing lost: every ask has its answer row, and every row ends DONE.
    wait_for(
        lambda: Answer.objects.count() == 2 * ASKS_PER_SIDE and not Answer.objects.exclude(status="done").exists(),
        timeout=DEADLINE_S, interval=2, what="every answer to be done",
    )
    wait_for(lambda: Document.objects.filter(status="ready").count() == UPLOADS + 1, timeout=DEADLINE_S, interval=2, what="uploads")
    listed = api.get("/api/v1/documents", params={"collection": "load", "status": "ready", "limit": 100}).json()
    assert len(listed["items"]) == UPLOADS + 1
    growth_mib = (_rss_kib(worker.proc.pid) - rss_before) / 1024  # type: ignore[union-attr]
    assert growth_mib < 1024, f"worker memory grew by {growth_mib:.0f} MiB under load"
