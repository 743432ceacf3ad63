"""Upload → real Celery worker (Redis broker) → chunks in the database → FAISS index → search."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import faiss
import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from ingestion.models import Chunk, Collection, Document
from retrieval import faiss_store
from retrieval.models import IndexState
from retrieval.services import chunks_search
from tests.conftest import WorkerProcess, wait_for
from tests.pdf_factory import make_text_pdf

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

FILLER = (
    "This section restates general operating guidance for staff in plain words so that the page carries "
    "enough ordinary text to form its own passages. "
) * 6

FACTS = {
    "warehouse-report.pdf": [
        "Warehouse report. " + FILLER,
        "The quarterly audit of the Reykjavik warehouse found forty-two misplaced pallets of copper wire. "
        + FILLER,
        "Closing remarks about shelving and lighting. " + FILLER,
    ],
    "travel-policy.pdf": [
        "Travel policy overview. " + FILLER,
        "Rail travel is preferred for trips under six hours. " + FILLER,
        "Hotel bookings above the nightly cap need written approval. " + FILLER,
        "Employees flying to Lisbon must submit the green customs form before boarding the aircraft. "
        + FILLER,
    ],
    "safety-manual.pdf": [
        "Helmets are mandatory in the loading bay at every hour of the day. " + FILLER,
    ],
}


def _pdf_upload(tmp_path: Path, name: str, pages: list[str]) -> SimpleUploadedFile:
    path = make_text_pdf(tmp_path / name, pages)
    return SimpleUploadedFile(name, path.read_bytes(), content_type="application/pdf")


def _wait_finished(count: int, timeout: float = 300) -> list[Document]:
    def finished() -> list[Document] | None:
        docs = list(Document.objects.all())
        return docs if len(docs) == count and all(d.is_finished for d in docs) else None

    return wait_for(finished, timeout=timeout, what=f"{count} documents to finish")


def _index_ids(collection: Collection) -> set[int]:
    state = IndexState.objects.get(collection=collection)
    path = faiss_store.index_path(root=settings.INDEX_DIR, collection_id=collection.id, version=state.version)
    index = faiss.read_index(str(path))
    return set(faiss_store.index_ids(index).tolist())


def test_upload_several_pdfs_all_ready_and_search_finds_the_page(
    celery_worker_process: WorkerProcess, admin_client: Client, tmp_path: Path
) -> None:
    collection = Collection.objects.create(name="Operations")
    files = [_pdf_upload(tmp_path, name, pages) for name, pages in FACTS.items()]
    response = admin_client.post("/documents/upload/", {"collection": collection.id, "files": files})
    assert response.status_code == 302

    docs = _wait_finished(len(FACTS))
    assert {d.status for d in docs} == {Document.Status.READY}, [(d.original_name, d.error) for d in docs]
    assert {d.original_name: d.page_count for d in docs} == {n: len(p) for n, p in FACTS.items()}
    assert all(d.progress == 1.0 for d in docs)
    assert all(d.card_embedding for d in docs)  # each document's card was embedded when it was indexed

    chunk_ids = set(Chunk.objects.filter(document__collection=collection).values_list("id", flat=True))
    assert chunk_ids and chunk_ids == _index_ids(collection)

    # This process never built the index: it must load the worker's version from disk.
    hits = chunks_search(
        collection_id=collection.id, query="How many pallets were misplaced in Reykjavik?", k=3
    )
    assert hits[0].document_name == "warehouse-report.pdf"
    assert (hits[0].page_start, "forty-two") == (2, "forty-two") and "forty-two" in hits[0].text
    hits = chunks_search(collection_id=collection.id, query="customs form for flights to Lisbon", k=3)
    assert (hits[0].document_name, hits[0].page_start) == ("travel-policy.pdf", 4)

    # The same file again is recognised, not stored twice.
    again = SimpleUploadedFile("copy-of-safety.pdf", (tmp_path / "safety-manual.pdf").read_bytes())
    admin_client.post("/documents/upload/", {"collection": collection.id, "files": [again]})
    assert Document.objects.filter(collection=collection).count() == len(FACTS)

    # Deleting a document removes its vectors; searches stop returning it.
    doomed = Document.objects.get(original_name="warehouse-report.pdf")
    version = IndexState.objects.get(collection=collection).version
    assert admin_client.post(f"/documents/{doomed.id}/delete/").status_code == 302
    wait_for(
        lambda: IndexState.objects.get(collection=collection).version > version,
        timeout=60,
        what="index update",
    )
    remaining = set(Chunk.objects.filter(document__collection=collection).values_list("id", flat=True))
    assert remaining == _index_ids(collection) and remaining < chunk_ids
    hits = chunks_search(collection_id=collection.id, query="misplaced pallets in Reykjavik", k=5)
    assert all(h.document_name != "warehouse-report.pdf" for h in hits)


def _zip_bytes() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("word/document.xml", "<w:document/>")
    return buf.getvalue()


def test_bad_files_fail_with_reasons_and_do_not_touch_others(
    celery_worker_process: WorkerProcess, admin_client: Client, tmp_path: Path, settings: object
) -> None:
    from tests.pdf_factory import make_encrypted_pdf

    collection = Collection.objects.create(name="Mixed")
    good = make_text_pdf(tmp_path / "good.pdf", ["The cafeteria opens at half past seven. " + FILLER])
    truncated = good.read_bytes()[: len(good.read_bytes()) // 2]
    encrypted = make_encrypted_pdf(
        tmp_path / "locked.pdf", ["Secret salary bands."], user_password="s3cret", owner_password="0wner"
    )
    settings.MAX_UPLOAD_BYTES = 200_000  # type: ignore[attr-defined]
    uploads = [
        SimpleUploadedFile("report.pdf", _zip_bytes()),
        SimpleUploadedFile("truncated.pdf", truncated),
        SimpleUploadedFile("locked.pdf", encrypted.read_bytes()),
        SimpleUploadedFile("empty.pdf", b""),
        SimpleUploadedFile("huge.pdf", b"%PDF-1.7\n" + b"0" * 250_000),
        SimpleUploadedFile("good.pdf", good.read_bytes()),
    ]
    admin_client.post("/documents/upload/", {"collection": collection.id, "files": uploads})
    docs = {d.original_name: d for d in _wait_finished(len(uploads))}

    assert docs["good.pdf"].status == Document.Status.READY
    expected = {
        "report.pdf": "corrupt",  # a ZIP laid out like a Word file, but no Word file inside
        "truncated.pdf": "corrupt",
        "locked.pdf": "encrypted",
        "huge.pdf": "too_large",
    }
    for name, code in expected.items():
        assert (docs[name].status, docs[name].error_code) == (Document.Status.FAILED, code), docs[name].error
    assert "password" in docs["locked.pdf"].error.lower()
    assert "limit" in docs["huge.pdf"].error
    assert not Chunk.objects.filter(document__status=Document.Status.FAILED).exists()

    # The reasons are on the upload page, for the person who uploaded.
    page = admin_client.get(f"/documents/?collection={collection.slug}").content.decode()
    for name in expected:
        assert docs[name].error.split(":")[0] in page.replace("&#x27;", "'")
