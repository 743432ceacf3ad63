"""Document lifecycle: upload, ingest (parse → chunk → embed → save → index), delete, re-index."""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.contrib.auth.models import AnonymousUser, User
from django.core.files.uploadedfile import UploadedFile
from django.db import DatabaseError, IntegrityError, models, transaction
from django.utils import timezone

from ingestion.chunking import chunks_split
from ingestion.exceptions import PdfRejected
from ingestion.models import Chunk, Collection, Document
from ingestion.pdf import ParsedPdf, pdf_parse
from ragsite.logs import log_event
from retrieval.embedding import embedder_get
from retrieval.services import index_sync

logger = logging.getLogger(__name__)

# Shares of the progress bar given to each stage: parsing (OCR can be slow), embedding, saving.
_PARSE_END = 0.35
_EMBED_END = 0.95
# A file that kills the worker (e.g. a native crash in the PDF library) is redelivered after each death;
# after this many starts that never finished it is failed instead of taking workers down forever.
MAX_INGEST_ATTEMPTS = 3


@dataclass(frozen=True)
class UploadOutcome:
    document: Document
    created: bool
    message: str


def _enqueue_ingest(document_id: int) -> None:
    from ingestion.tasks import ingest_document

    transaction.on_commit(lambda: ingest_document.delay(document_id))


def _enqueue_index_sync(collection_id: int) -> None:
    from ingestion.tasks import sync_collection_index

    transaction.on_commit(lambda: sync_collection_index.delay(collection_id))


def _sha256(upload: UploadedFile) -> str:
    digest = hashlib.sha256()
    for block in upload.chunks():
        digest.update(block)
    upload.seek(0)
    return digest.hexdigest()


def _upload_refusal(size: int) -> tuple[str, str] | None:
    if size == 0:
        return "empty", "File is empty (0 bytes): upload the PDF again"
    if size > settings.MAX_UPLOAD_BYTES:
        limit_mb = settings.MAX_UPLOAD_BYTES / 1024 / 1024
        return "too_large", (
            f"File is {size / 1024 / 1024:.1f} MB, over the {limit_mb:.0f} MB limit: split it into smaller PDFs "
            "or ask an administrator to raise RAG_MAX_UPLOAD_BYTES"
        )
    return None


def document_upload(
    *, collection: Collection, upload: UploadedFile, user: User | AnonymousUser | None
) -> UploadOutcome:
    """Store an uploaded file and queue its ingestion; a file already in the collection is not stored twice."""
    name = Path(upload.name or "upload.pdf").name[:500]
    uploader = user if isinstance(user, User) else None
    sha = _sha256(upload)
    existing = Document.objects.filter(collection=collection, sha256=sha).first()
    if existing is not None and existing.status == Document.Status.FAILED and not existing.file:
        existing.delete()  # refused at upload before (e.g. over the limit then): this is a new attempt
        existing = None
    if existing is not None:
        return UploadOutcome(existing, False, f"{name} is already in {collection.name} as {existing.original_name}")
    size = int(upload.size or 0)
    document = Document(collection=collection, original_name=name, sha256=sha, size=size, uploaded_by=uploader)
    refusal = _upload_refusal(size)
    if refusal is not None:
        # Record the refusal so the uploader sees why, without storing the bytes.
        document.status = Document.Status.FAILED
        document.error_code, document.error = refusal
        document.finished_at = timezone.now()
        document.save()
        return UploadOutcome(document, True, f"{name}: {document.error}")
    try:
        with transaction.atomic():
            document.file.save(f"{sha}.pdf", upload, save=False)
            document.save()
            _enqueue_ingest(document.id)
    except IntegrityError:
        # A concurrent upload of the same file won the race.
        existing = Document.objects.get(collection=collection, sha256=sha)
        return UploadOutcome(existing, False, f"{name} is already in {collection.name}")
    log_event(logger, "document_uploaded", document=document.id, collection=collection.id, bytes=size)
    return UploadOutcome(document, True, f"{name} queued")


class _Progress:
    """Writes progress to the database at most every `interval` seconds (a progress bar needs no more)."""

    def __init__(self, document_id: int, interval: float = 0.5) -> None:
        self.document_id = document_id
        self.interval = interval
        self._last = 0.0

    def set(self, value: float, stage: str, *, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._last >= self.interval:
            self._last = now
            Document.objects.filter(id=self.document_id).update(
                progress=max(0.0, min(1.0, value)), stage=stage, updated_at=timezone.now()
            )

    def scaled(self, start: float, end: float, stage: str) -> Callable[[int, int], None]:
        def report(done: int, total: int) -> None:
            self.set(start + (end - start) * done / max(total, 1), stage)

        return report


def document_requeue(*, document_id: int) -> None:
    """Back to QUEUED before a retry, so that only abrupt deaths count towards MAX_INGEST_ATTEMPTS."""
    try:
        Document.objects.filter(id=document_id).update(
            status=Document.Status.QUEUED, attempts=models.F("attempts") - 1, stage="waiting to retry"
        )
    except DatabaseError:
        log_event(logger, "document_requeue_failed", level=logging.WARNING, document=document_id)


def document_fail(*, document_id: int, code: str, message: str) -> None:
    Document.objects.filter(id=document_id).update(
        status=Document.Status.FAILED, error_code=code[:32], error=message, stage="", finished_at=timezone.now()
    )
    log_event(logger, "document_failed", level=logging.WARNING, document=document_id, code=code)


def _parse(document: Document, progress: _Progress) -> ParsedPdf:
    progress.set(0.0, "reading pages", force=True)
    return pdf_parse(
        path=Path(document.file.path),
        ocr=settings.PDF_OCR,
        tables=settings.PDF_TABLES,
        max_pages=settings.MAX_PDF_PAGES,
        progress=progress.scaled(0.0, _PARSE_END, "reading pages"),
    )


def document_ingest(*, document_id: int) -> Document:
    """Parse, chunk, embed and index one document. Safe to run again: it replaces the document's chunks."""
    t0 = time.perf_counter()
    document = Document.objects.select_related("collection").get(id=document_id)
    if document.status == Document.Status.READY:
        return document
    if document.status == Document.Status.PROCESSING and document.attempts >= MAX_INGEST_ATTEMPTS:
        document_fail(
            document_id=document_id, code="crashed",
            message=f"Processing stopped abruptly {document.attempts} times (the file may crash the PDF reader): "
            "re-export the PDF and upload it again",
        )
        return Document.objects.get(id=document_id)
    if not document.file or not document.file.storage.exists(document.file.name):
        document_fail(document_id=document_id, code="missing_file", message="The stored file is missing: upload it again")
        return Document.objects.get(id=document_id)
    Document.objects.filter(id=document_id).update(
        status=Document.Status.PROCESSING, started_at=timezone.now(), error="", error_code="", attempts=document.attempts + 1
    )
    progress = _Progress(document_id)
    try:
        parsed = _parse(document, progress)
    except PdfRejected as exc:
        document_fail(document_id=document_id, code=exc.code, message=str(exc))
        return Document.objects.get(id=document_id)
    embedder = embedder_get()
    progress.set(_PARSE_END, "splitting into chunks", force=True)
    drafts = chunks_split(
        pages=[(p.number, p.text) for p in parsed.pages],
        count_tokens=embedder.token_count,
        chunk_tokens=settings.CHUNK_TOKENS,
        overlap_tokens=settings.CHUNK_OVERLAP_TOKENS,
    )
    if not drafts:
        message = f"No text could be read from any of its {parsed.page_count} pages"
        message += " (they may be images OCR could not read): upload a PDF with a text layer" if settings.PDF_OCR else (
            ": it may be scanned; enable OCR (RAG_PDF_OCR=1) or upload a PDF with a text layer"
        )
        Document.objects.filter(id=document_id).update(page_count=parsed.page_count, warnings=list(parsed.warnings))
        document_fail(document_id=document_id, code="no_text", message=message)
        return Document.objects.get(id=document_id)
    t_embed = time.perf_counter()
    vectors = embedder.embed(
        [d.text for d in drafts],
        batch_size=settings.EMBED_BATCH_SIZE,
        progress=progress.scaled(_PARSE_END, _EMBED_END, "embedding"),
    )
    embed_s = time.perf_counter() - t_embed
    progress.set(_EMBED_END, "saving", force=True)
    with transaction.atomic():
        Chunk.objects.filter(document_id=document_id).delete()
        Chunk.objects.bulk_create(
            [
                Chunk(
                    document_id=document_id, ordinal=d.ordinal, text=d.text, page_start=d.page_start,
                    page_end=d.page_end, token_count=d.token_count, embedding=vectors[i].astype("<f4").tobytes(),
                )
                for i, d in enumerate(drafts)
            ],
            batch_size=500,
        )
        # New chunks, new card: index_sync embeds it from them.
        Document.objects.filter(id=document_id).update(
            page_count=parsed.page_count, warnings=list(parsed.warnings), embedder=embedder.name, card_embedding=None
        )
    progress.set(0.97, "indexing", force=True)
    index_sync(collection_id=document.collection_id)
    Document.objects.filter(id=document_id).update(
        status=Document.Status.READY, progress=1.0, stage="", finished_at=timezone.now()
    )
    log_event(
        logger, "document_ingested", document=document_id, collection=document.collection_id,
        pages=parsed.page_count, chunks=len(drafts), ocr_pages=sum(p.ocr for p in parsed.pages),
        warnings=len(parsed.warnings), embed_s=round(embed_s, 2), total_s=round(time.perf_counter() - t0, 2),
    )
    return Document.objects.get(id=document_id)


def document_delete(*, document: Document) -> None:
    """Remove the document, its chunks and its file; its vectors leave the index right after."""
    collection_id = document.collection_id
    with transaction.atomic():
        stored = document.file.name if document.file else ""
        storage = document.file.storage
        document.delete()
        _enqueue_index_sync(collection_id)
        if stored:
            transaction.on_commit(lambda: storage.delete(stored))
    log_event(logger, "document_deleted", document=document.id, collection=collection_id)


def document_reindex(*, document: Document) -> Document:
    """Queue the document to be parsed and embedded again (e.g. after a parser or model upgrade)."""
    if not document.file:
        raise PdfRejected("This document's file was never stored (it was refused at upload): upload it again", code="missing_file")
    with transaction.atomic():
        Document.objects.filter(id=document.id).update(
            status=Document.Status.QUEUED, progress=0.0, stage="", error="", error_code="", finished_at=None,
            attempts=0,
        )
        _enqueue_ingest(document.id)
    document.refresh_from_db()
    return document


def documents_reembed_stale(*, embedder_name: str) -> list[int]:
    """Queue every ready document whose vectors came from another embedder than `embedder_name` (a model or
    RAG_EMBED_QUANTIZE change): their chunks would otherwise be searched with query vectors of another model."""
    stale = Document.objects.filter(status=Document.Status.READY).exclude(embedder=embedder_name).exclude(file="")
    ids: list[int] = []
    for document in stale:
        document_reindex(document=document)
        ids.append(document.id)
    if ids:
        log_event(logger, "documents_reembed_queued", count=len(ids), embedder=embedder_name)
    return ids


def collection_index_sync(*, collection_id: int) -> None:
    index_sync(collection_id=collection_id)


def collections_visible(*, user: User | AnonymousUser) -> list[Collection]:
    """Staff see every collection; other signed-in users only those they are members of."""
    if not user.is_authenticated:
        return []
    qs = Collection.objects.all()
    if not getattr(user, "is_staff", False):
        qs = qs.filter(members=user)
    return list(qs)
