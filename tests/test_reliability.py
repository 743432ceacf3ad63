"""Reliability: a worker killed mid-ingestion, a broker restarted with tasks queued, a damaged index, hostile
PDFs in a real worker, and the stalled-job service. The broker tests run their own redis-server on a free
port, so the shared Redis is never restarted and no other worker sees these messages."""

from __future__ import annotations

import hashlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
import zlib
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core.files.base import ContentFile
from django.test import Client
from django.utils import timezone
from kombu import Connection

from ingestion.maintenance import STALLED_STAGE, documents_requeue_stalled
from ingestion.models import Chunk, Collection, Document
from ingestion.services import MAX_INGEST_ATTEMPTS
from ingestion.tasks import ingest_document
from ragsite.components import components_reset
from retrieval import faiss_store
from retrieval.models import IndexState
from retrieval.services import chunks_search, index_sync
from tests.conftest import ROOT, WorkerProcess, free_port, wait_for, worker_env
from tests.pdf_factory import _pdf_assemble, make_text_pdf

VISIBILITY_S = 6  # the restarted worker redelivers a dead worker's unacked message after this long
FINISH_S = 300  # generous: two cores shared with other test runs


class RedisServer:
    """A throwaway redis-server without persistence: killing it loses every queued message."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.url = f"redis://127.0.0.1:{port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> RedisServer:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_for(self._up, timeout=20, what=f"redis-server on {self.port}")
        return self

    def _up(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return True
        except OSError:
            return False

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer(free_port()).start()
    yield server
    server.kill()


def _env(data_dir: Path, redis: RedisServer, **extra: str) -> dict[str, str]:
    return worker_env(
        data_dir, REDIS_URL=redis.url, RAG_BROKER_KEYPREFIX="", RAG_BROKER_VISIBILITY_TIMEOUT=str(VISIBILITY_S),
        **extra,
    )


def _worker(data_dir: Path, redis: RedisServer, log: Path, **extra: str) -> WorkerProcess:
    return WorkerProcess(_env(data_dir, redis, **extra), log, queues="ingest", name="rel").start()


def _document(collection: Collection, path: Path) -> Document:
    """A stored, QUEUED document, without enqueueing on the test session's broker."""
    data = path.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    document = Document(collection=collection, original_name=path.name, sha256=sha, size=len(data))
    document.file.save(f"{sha}.pdf", ContentFile(data), save=False)
    document.save()
    return document


def _publish(redis: RedisServer, *document_ids: int) -> None:
    with Connection(redis.url, transport_options={"visibility_timeout": VISIBILITY_S}) as conn:
        for document_id in document_ids:
            ingest_document.apply_async((document_id,), connection=conn)  # type: ignore[call-arg]


def _finished(*document_ids: int) -> bool:
    return not Document.objects.filter(id__in=document_ids).exclude(status__in=["ready", "failed"]).exists()


def _assert_index_matches_database(collection: Collection) -> None:
    state = IndexState.objects.get(collection=collection)
    index = faiss_store.index_load(
        path=faiss_store.index_path(root=settings.INDEX_DIR, collection_id=collection.id, version=state.version)
    )
    ids = faiss_store.index_ids(index).tolist()
    assert sorted(ids) == sorted(Chunk.objects.filter(document__collection=collection).values_list("id", flat=True))
    assert len(ids) == len(set(ids)) == state.vector_count


def _long_text(page: int) -> str:
    return "\n".join(
        f"Section {page}.{line}: the maintenance schedule for turbine {page * 100 + line} requires inspecting "
        f"bearing {line} every {page + line} days and logging vibration readings in register {page}-{line}."
        for line in range(24)
    )


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_while_embedding_is_redelivered_and_the_document_is_ready_once(
    data_dir: Path, redis_server: RedisServer, tmp_path: Path
) -> None:
    """Fails without acks_late/reject_on_worker_lost (the message is gone with the worker), if a re-run
    duplicated chunks, or if the index drifted from the database."""
    collection = Collection.objects.create(name="Manuals")
    document = _document(collection, make_text_pdf(tmp_path / "manual.pdf", [_long_text(p) for p in range(1, 61)]))
    first = _worker(data_dir, redis_server, tmp_path / "w1.log")
    try:
        _publish(redis_server, document.id)
        wait_for(
            lambda: Document.objects.filter(id=document.id, stage="embedding").exists(), timeout=FINISH_S,
            interval=0.05, what="the worker to start embedding",
        )
        assert first.proc is not None
        os.kill(first.proc.pid, signal.SIGKILL)
        first.proc.wait()
    finally:
        first.stop()
    assert Document.objects.get(id=document.id).status == Document.Status.PROCESSING
    assert not Chunk.objects.filter(document=document).exists()
    second = _worker(data_dir, redis_server, tmp_path / "w2.log")
    try:
        wait_for(lambda: _finished(document.id), timeout=FINISH_S, what="the redelivered ingestion")
    finally:
        second.stop()
    document.refresh_from_db()
    assert document.status == Document.Status.READY, document.error
    assert document.attempts == 2
    ordinals = list(Chunk.objects.filter(document=document).values_list("ordinal", flat=True))
    assert len(ordinals) > 20 and sorted(ordinals) == list(range(len(ordinals)))
    _assert_index_matches_database(collection)
    logs = first.log_text() + second.log_text()
    # Celery's own log format drops the event's fields; this worker pair only ever saw this one document.
    assert logs.count("event=document_ingested") == 1


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_queued_documents_survive_a_broker_restart_through_requeue_stalled(
    data_dir: Path, redis_server: RedisServer, tmp_path: Path
) -> None:
    """Fails if the stalled-job service is missing or does not re-enqueue: the restarted Redis has lost the
    messages, so the documents would stay QUEUED forever."""
    collection = Collection.objects.create(name="Policies")
    documents = [
        _document(collection, make_text_pdf(tmp_path / f"policy{n}.pdf", [f"Policy {n}: badges are renewed every {n + 2} years."]))
        for n in range(3)
    ]
    ids = [d.id for d in documents]
    _publish(redis_server, *ids)  # no worker yet: the messages wait in Redis
    redis_server.kill()
    redis_server.start()  # same port, empty: the queue is gone
    worker = _worker(data_dir, redis_server, tmp_path / "w.log")
    try:
        time.sleep(3)
        assert set(Document.objects.filter(id__in=ids).values_list("status", flat=True)) == {"queued"}
        command = subprocess.run(
            [sys.executable, "manage.py", "requeue_stalled", "--older-than", "0"], cwd=ROOT,
            env=_env(data_dir, redis_server), capture_output=True, text=True, timeout=120,
        )
        assert command.returncode == 0, command.stderr
        assert "requeued=3 failed=0" in command.stdout
        wait_for(lambda: _finished(*ids), timeout=FINISH_S, what="the re-queued documents")
    finally:
        worker.stop()
    assert set(Document.objects.filter(id__in=ids).values_list("status", flat=True)) == {"ready"}
    _assert_index_matches_database(collection)


def _flate_bomb_pdf(path: Path, *, inflated: int) -> Path:
    """A page whose content stream inflates from ~0.3 MB to `inflated` bytes (mostly spaces)."""
    packer = zlib.compressobj(9)
    data = packer.compress(b"BT /F1 12 Tf 20 100 Td (Bomb page text) Tj ET\n")
    data += b"".join(packer.compress(b" " * (16 << 20)) for _ in range(inflated >> 24)) + packer.flush()
    objects = [
        (1, b"<< /Type /Catalog /Pages 2 0 R >>"),
        (2, b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>"),
        (3, b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 300 200] /Contents 4 0 R "
            b"/Resources << /Font << /F1 5 0 R >> >> >>"),
        (4, b"<< /Length %d /Filter /FlateDecode >>\nstream\n%s\nendstream" % (len(data), data)),
        (5, b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"),
    ]
    path.write_bytes(_pdf_assemble(objects))
    return path


def _peak_rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"VmHWM:\s+(\d+) kB", status)
    assert match is not None
    return int(match.group(1)) / 1024


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_flate_bomb_pdf_neither_blows_up_nor_kills_the_worker(
    data_dir: Path, redis_server: RedisServer, tmp_path: Path
) -> None:
    """Fails if a 400 MB decompression bomb takes the worker past 2 GB or kills it."""
    collection = Collection.objects.create(name="Uploads")
    bomb = _flate_bomb_pdf(tmp_path / "bomb.pdf", inflated=400 << 20)
    assert bomb.stat().st_size < 2 << 20
    document = _document(collection, bomb)
    worker = _worker(data_dir, redis_server, tmp_path / "w.log")
    try:
        assert worker.proc is not None
        _publish(redis_server, document.id)
        wait_for(lambda: _finished(document.id), timeout=FINISH_S, what="the bomb to be processed")
        assert worker.proc.poll() is None, "the worker died"
        peak = _peak_rss_mb(worker.proc.pid)
    finally:
        worker.stop()
    document.refresh_from_db()
    assert document.status in (Document.Status.READY, Document.Status.FAILED)
    assert document.status == Document.Status.FAILED or "Bomb page text" in Chunk.objects.get(document=document).text
    assert peak < 2048, f"worker peaked at {peak:.0f} MB"


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_damaged_or_missing_index_file_is_rebuilt_from_the_database(tmp_path: Path) -> None:
    """Fails if a reader trusts a broken FAISS file (error or empty results) instead of rebuilding it."""
    from ingestion.embedding import embedder_get

    collection = Collection.objects.create(name="Facts")
    document = Document.objects.create(
        collection=collection, original_name="facts.pdf", sha256="f" * 64, size=1, status=Document.Status.READY
    )
    texts = [
        "The cafeteria serves lunch between noon and two o'clock.",
        "Parking permits are issued by the facilities office on the ground floor.",
        "The VPN must be used when working from a hotel or a café.",
    ]
    vectors = embedder_get().embed(texts)
    for n, text in enumerate(texts):
        Chunk.objects.create(
            document=document, ordinal=n, text=text, page_start=1, page_end=1, token_count=12,
            embedding=vectors[n].astype("<f4").tobytes(),
        )
    index_sync(collection_id=collection.id)
    for damage in ("truncate", "delete"):
        version = IndexState.objects.get(collection=collection).version
        path = faiss_store.index_path(root=settings.INDEX_DIR, collection_id=collection.id, version=version)
        if damage == "truncate":
            path.write_bytes(path.read_bytes()[:40])
        else:
            path.unlink()
        components_reset()  # as a freshly started process would
        hits = chunks_search(collection_id=collection.id, query="Where do I get a parking permit?", k=1)
        assert [h.text for h in hits] == [texts[1]], damage
        assert IndexState.objects.get(collection=collection).version == version + 1
        _assert_index_matches_database(collection)


# The stalled-job service, one function, against the real broker: what it re-queues is read back from the
# database (a re-queued document is QUEUED again, its attempt counted, its stage saying why) and from its
# report, which lists a document only once the broker took its message.


def _aged(collection: Collection, name: str, status: str, *, age_s: float, attempts: int = 0) -> Document:
    document = Document.objects.create(
        collection=collection, original_name=name, sha256=hashlib.sha256(name.encode()).hexdigest(), size=1,
        status=status, attempts=attempts,
    )
    Document.objects.filter(id=document.id).update(updated_at=timezone.now() - timedelta(seconds=age_s))
    return document


@pytest.mark.django_db
def test_stalled_documents_are_requeued_or_failed_once() -> None:
    """Fails if stale jobs are left alone, fresh ones disturbed, the attempt limit ignored, or a second run
    enqueues the same documents again."""
    collection = Collection.objects.create(name="Stalls")
    lost = _aged(collection, "lost.pdf", "queued", age_s=1000)
    fresh = _aged(collection, "fresh.pdf", "queued", age_s=10)
    dead = _aged(collection, "dead.pdf", "processing", age_s=settings.INGEST_TIME_LIMIT + 1000, attempts=1)
    doomed = _aged(
        collection, "doomed.pdf", "processing", age_s=settings.INGEST_TIME_LIMIT + 1000, attempts=MAX_INGEST_ATTEMPTS
    )
    slow = _aged(collection, "slow.pdf", "processing", age_s=1000, attempts=1)  # within the hard time limit

    report = documents_requeue_stalled(older_than=timedelta(seconds=900))
    assert sorted(report.requeued) == sorted([lost.id, dead.id]) and report.failed == (doomed.id,)
    assert report.unreachable == ()
    for document in (lost, dead, doomed):
        document.refresh_from_db()
    assert (lost.status, lost.attempts, lost.stage) == ("queued", 1, STALLED_STAGE)
    assert (dead.status, dead.attempts) == ("queued", 1)
    assert doomed.status == "failed" and doomed.error_code == "stalled" and "re-index" in doomed.error
    assert Document.objects.get(id=fresh.id).attempts == 0
    assert Document.objects.get(id=slow.id).status == "processing"

    assert documents_requeue_stalled(older_than=timedelta(seconds=900)).total == 0
    assert Document.objects.get(id=lost.id).attempts == 1  # not counted twice


@pytest.mark.django_db
def test_queued_documents_are_not_requeued_while_ingestion_is_progressing() -> None:
    """Fails if a long but moving queue is flooded with duplicate messages."""
    collection = Collection.objects.create(name="Busy")
    waiting = _aged(collection, "waiting.pdf", "queued", age_s=1000)
    _aged(collection, "working.pdf", "processing", age_s=5, attempts=1)
    assert documents_requeue_stalled(older_than=timedelta(seconds=900)).total == 0
    Document.objects.filter(status="processing").update(status="ready")
    assert documents_requeue_stalled(older_than=timedelta(seconds=900)).requeued == (waiting.id,)


@pytest.mark.django_db
def test_the_status_view_runs_the_stalled_check_at_most_once_a_minute(admin_user: Any) -> None:
    """Fails if the documents page stops detecting stalled jobs, or runs the check on every poll."""
    components_reset()  # a fresh process: its first status poll runs the check
    collection = Collection.objects.create(name="Page")
    first = _aged(collection, "first.pdf", "queued", age_s=settings.STALLED_AFTER_SECONDS + 60)
    client = Client()
    client.force_login(admin_user)
    body = client.get(f"/documents/status/?collection={collection.slug}").json()
    assert body["documents"][0]["stage"] == STALLED_STAGE
    assert Document.objects.get(id=first.id).attempts == 1
    second = _aged(collection, "second.pdf", "queued", age_s=settings.STALLED_AFTER_SECONDS + 60)
    body = client.get(f"/documents/status/?collection={collection.slug}").json()
    assert {d["id"]: d["stage"] for d in body["documents"]}[second.id] != STALLED_STAGE
    assert Document.objects.get(id=second.id).attempts == 0
