"""Document lifecycle: upload, ingest (parse → chunk → embed → save → index), delete, re-index."""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
from django.conf import settings
from django.contrib.auth.models import AnonymousUser, User
from django.core.files.uploadedfile import UploadedFile
from django.db import DatabaseError, IntegrityError, models, transaction
from django.utils import timezone

from audit.models import AuditEvent
from audit.services import Actor, audit_record
from ingestion.access import collections_readable
from ingestion.cards import CARD_CHUNKS, card_text
from ingestion.chunking import ChunkDraft, chunks_split
from ingestion.embedding import Embedder, embedder_get
from ingestion.exceptions import DocumentNotFound, DocumentRejected
from ingestion.models import Chunk, Collection, Document, OcrPage, vector_bytes
from ingestion.pages import page_cache_forget
from ingestion.parsers import ParsedDocument, media_type_read, media_type_sniff, parser_for
from ingestion.signals import chunks_replaced, documents_removed
from ragsite.logs import log_event

logger = logging.getLogger(__name__)

# Shares of the progress bar given to each stage: parsing (OCR can be slow), embedding, saving.
_PARSE_END = 0.35
_EMBED_END = 0.95
# A file that kills the worker (e.g. a native crash in the PDF library) is redelivered after each death;
# after this many starts that never finished it is failed instead of taking workers down forever.
MAX_INGEST_ATTEMPTS = 3


@dataclass(frozen=True)
class DocumentState:
    """A document's ingestion state, as the upload page and the API show it."""

    id: int
    name: str
    collection_id: int
    collection: str  # the slug
    status: str
    progress: float
    stage: str
    page_count: int | None
    unit: str  # what page_count counts: 'page' or 'section'
    size: int
    error: str
    error_code: str
    warnings: list[str]
    created_at: datetime
    finished_at: datetime | None


def document_state(document: Document) -> DocumentState:
    return DocumentState(
        id=document.id, name=document.original_name, collection_id=document.collection_id,
        collection=document.collection.slug, status=document.status, progress=round(document.progress, 3),
        stage=document.stage, page_count=document.page_count, unit=document.unit, size=document.size, error=document.error,
        error_code=document.error_code, warnings=list(document.warnings or []), created_at=document.created_at,
        finished_at=document.finished_at,
    )


@dataclass(frozen=True)
class UploadOutcome:
    document: Document
    created: bool
    message: str


def _enqueue_ingest(document_id: int) -> None:
    from ingestion.tasks import ingest_document

    transaction.on_commit(lambda: ingest_document.delay(document_id))


def _sha256(upload: UploadedFile) -> str:
    digest = hashlib.sha256()
    for block in upload.chunks():
        digest.update(block)
    upload.seek(0)
    return digest.hexdigest()


def _upload_refusal(size: int, media_type: str) -> tuple[str, str] | None:
    """(code, message) when the upload can never be ingested: empty, too large, or of a type no parser reads.

    The type is sniffed from the bytes here too, so a file no parser reads is refused at once, saying what it
    is and what to do, rather than after a wait in the queue."""
    if size == 0:
        return "empty", "File is empty (0 bytes): upload the file again"
    if size > settings.MAX_UPLOAD_BYTES:
        limit_mb = settings.MAX_UPLOAD_BYTES / 1024 / 1024
        return "too_large", (
            f"File is {size / 1024 / 1024:.1f} MB, over the {limit_mb:.0f} MB limit: split it into smaller files "
            "or ask an administrator to raise RAG_MAX_UPLOAD_BYTES"
        )
    try:
        parser_for(media_type=media_type)
    except DocumentRejected as exc:
        return exc.code, str(exc)
    return None


def _audit_document(action: str, document: Document, actor: Actor, **details: object) -> None:
    audit_record(
        action=action, actor=actor, collection=document.collection.slug, target_type="document",
        target_id=document.id, target_name=document.original_name, details=details,
    )


def document_upload(*, collection: Collection, upload: UploadedFile, actor: Actor) -> UploadOutcome:
    """Store an uploaded file and queue its ingestion; a file already in the collection is not stored twice.
    Each new document is recorded in the audit trail with its uploader (a user, an API key or a command)."""
    name = Path(upload.name or "upload.pdf").name[:500]
    sha = _sha256(upload)
    existing = Document.objects.filter(collection=collection, sha256=sha).first()
    if existing is not None and existing.status == Document.Status.FAILED and not existing.file:
        existing.delete()  # refused at upload before (e.g. over the limit then): this is a new attempt
        existing = None
    if existing is not None:
        return UploadOutcome(existing, False, f"{name} is already in {collection.name} as {existing.original_name}")
    size = int(upload.size or 0)
    document = Document(
        collection=collection, original_name=name, sha256=sha, size=size, uploader=actor.label[:300],
        uploaded_by_id=actor.id if actor.kind == "user" else None,
    )
    media_type = media_type_read(fh=upload) if size else "application/x-empty"
    refusal = _upload_refusal(size, media_type)
    if refusal is not None:
        # Record the refusal so the uploader sees why, without storing the bytes.
        document.status = Document.Status.FAILED
        document.error_code, document.error = refusal
        document.finished_at = timezone.now()
        with transaction.atomic():
            document.save()
            _audit_document(AuditEvent.Action.DOCUMENT_UPLOAD, document, actor, bytes=size, refused=refusal[0])
        return UploadOutcome(document, True, f"{name}: {document.error}")
    try:
        with transaction.atomic():
            document.file.save(f"{sha}{parser_for(media_type=media_type).extensions[0]}", upload, save=False)
            document.save()
            _audit_document(AuditEvent.Action.DOCUMENT_UPLOAD, document, actor, bytes=size)
            _enqueue_ingest(document.id)
    except IntegrityError:
        # A concurrent upload of the same file won the race.
        existing = Document.objects.get(collection=collection, sha256=sha)
        return UploadOutcome(existing, False, f"{name} is already in {collection.name}")
    log_event(
        logger, "document_uploaded", document=document.id, collection=collection.id, bytes=size,
        actor_kind=actor.kind, actor_id=actor.id,
    )
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


def _document_claim(document_id: int) -> Document | None:
    """Mark the document PROCESSING and count the attempt; None when it is finished or must not be tried."""
    document = Document.objects.select_related("collection").get(id=document_id)
    if document.status == Document.Status.READY:
        return None
    if document.status == Document.Status.PROCESSING and document.attempts >= MAX_INGEST_ATTEMPTS:
        document_fail(
            document_id=document_id, code="crashed",
            message=f"Processing stopped abruptly {document.attempts} times (the file may crash the parser): "
            "re-export the file and upload it again",
        )
        return None
    if not document.file or not document.file.storage.exists(document.file.name):
        document_fail(document_id=document_id, code="missing_file", message="The stored file is missing: upload it again")
        return None
    Document.objects.filter(id=document_id).update(
        status=Document.Status.PROCESSING, started_at=timezone.now(), error="", error_code="", attempts=document.attempts + 1
    )
    return document


def _parse(document: Document, progress: _Progress) -> ParsedDocument:
    """The file's units of text, by the parser of its sniffed media type."""
    progress.set(0.0, "reading", force=True)
    path = Path(document.file.path)
    parser = parser_for(media_type=media_type_sniff(path=path))
    return parser.parse(path=path, progress=progress.scaled(0.0, _PARSE_END, "reading"))


def _chunks_draft(parsed: ParsedDocument, embedder: Embedder, progress: _Progress) -> list[ChunkDraft]:
    progress.set(_PARSE_END, "splitting into chunks", force=True)
    return chunks_split(
        pages=[(unit.number, unit.text) for unit in parsed.units],
        titles={unit.number: unit.title for unit in parsed.units} if parsed.unit == "section" else None,
        count_tokens=embedder.token_count,
        chunk_tokens=settings.CHUNK_TOKENS,
        overlap_tokens=settings.CHUNK_OVERLAP_TOKENS,
    )


def _no_text_fail(document_id: int, parsed: ParsedDocument) -> None:
    if parsed.unit == "section":
        message = "The file holds no text: upload a file with text in it"
    else:
        message = f"No text could be read from any of its {parsed.page_count} pages"
        message += " (they may be images OCR could not read): upload a file with a text layer" if settings.PDF_OCR else (
            ": it may be scanned; enable OCR (RAG_PDF_OCR=1) or upload a PDF with a text layer"
        )
    Document.objects.filter(id=document_id).update(
        page_count=parsed.page_count, unit=parsed.unit, warnings=list(parsed.warnings)
    )
    document_fail(document_id=document_id, code="no_text", message=message)


def _chunks_save(
    document: Document, parsed: ParsedDocument, drafts: list[ChunkDraft], vectors: np.ndarray, card: np.ndarray, embedder: str
) -> None:
    """Replace the document's chunks and card in one transaction: a reader sees the old set or the new one."""
    with transaction.atomic():
        Chunk.objects.filter(document_id=document.id).delete()
        Chunk.objects.bulk_create(
            [
                Chunk(
                    document_id=document.id, ordinal=d.ordinal, text=d.text, page_start=d.page_start,
                    page_end=d.page_end, token_count=d.token_count, section=d.section, embedding=vector_bytes(vectors[i]),
                )
                for i, d in enumerate(drafts)
            ],
            batch_size=500,
        )
        OcrPage.objects.filter(document_id=document.id).delete()
        OcrPage.objects.bulk_create(
            [
                OcrPage(document_id=document.id, number=unit.number, lines=[
                    [round(line.x0, 4), round(line.y0, 4), round(line.x1, 4), round(line.y1, 4), line.text]
                    for line in unit.lines
                ])
                for unit in parsed.units
                if unit.lines
            ],
            batch_size=200,
        )
        Document.objects.filter(id=document.id).update(
            page_count=parsed.page_count, unit=parsed.unit, warnings=list(parsed.warnings), embedder=embedder,
            card_embedding=vector_bytes(card),
        )


def document_ingest(*, document_id: int) -> Document:
    """Parse, chunk, embed and index one document. Safe to run again: it replaces the document's chunks."""
    t0 = time.perf_counter()
    document = _document_claim(document_id)
    if document is None:
        return Document.objects.get(id=document_id)
    progress = _Progress(document_id)
    try:
        parsed = _parse(document, progress)
    except DocumentRejected as exc:
        document_fail(document_id=document_id, code=exc.code, message=str(exc))
        return Document.objects.get(id=document_id)
    embedder = embedder_get()
    drafts = _chunks_draft(parsed, embedder, progress)
    if not drafts:
        _no_text_fail(document_id, parsed)
        return Document.objects.get(id=document_id)
    t_embed = time.perf_counter()
    vectors = embedder.embed(
        [d.text for d in drafts], batch_size=settings.EMBED_BATCH_SIZE, progress=progress.scaled(_PARSE_END, _EMBED_END, "embedding")
    )
    card = embedder.embed([card_text(name=document.original_name, texts=[d.text for d in drafts[:CARD_CHUNKS]])])[0]
    embed_s = time.perf_counter() - t_embed
    progress.set(_EMBED_END, "saving", force=True)
    _chunks_save(document, parsed, drafts, vectors, card, embedder.name)
    progress.set(0.97, "indexing", force=True)
    chunks_replaced.send(sender=Document, collection_id=document.collection_id, document_id=document_id)
    Document.objects.filter(id=document_id).update(status=Document.Status.READY, progress=1.0, stage="", finished_at=timezone.now())
    log_event(
        logger, "document_ingested", document=document_id, collection=document.collection_id,
        pages=parsed.page_count, chunks=len(drafts), ocr_pages=sum(u.ocr for u in parsed.units),
        warnings=len(parsed.warnings), embed_s=round(embed_s, 2), total_s=round(time.perf_counter() - t0, 2),
    )
    return Document.objects.get(id=document_id)


def documents_cards_fill(*, collection_id: int | None = None) -> int:
    """Embed the cards of documents that have chunks and no card (ingested before cards existed)."""
    pending = Document.objects.filter(card_embedding__isnull=True, chunks__isnull=False).distinct()
    if collection_id is not None:
        pending = pending.filter(collection_id=collection_id)
    embedder = embedder_get()
    filled = 0
    for doc_id, name in pending.values_list("id", "original_name"):
        texts = Chunk.objects.filter(document_id=doc_id).order_by("ordinal").values_list("text", flat=True)[:CARD_CHUNKS]
        card = embedder.embed([card_text(name=name, texts=texts)])[0]
        filled += Document.objects.filter(id=doc_id).update(card_embedding=vector_bytes(card))
    if filled:
        log_event(logger, "document_cards_filled", count=filled)
    return filled


def document_delete(*, document: Document, actor: Actor) -> None:
    """Remove the document, its chunks and its file; its vectors leave the index right after. The audit
    record (who, which document, by name) is written before the row goes, in the same transaction."""
    collection_id, document_id = document.collection_id, document.id
    with transaction.atomic():
        _audit_document(
            AuditEvent.Action.DOCUMENT_DELETE, document, actor, status=document.status, pages=document.page_count,
        )
        stored = document.file.name if document.file else ""
        storage = document.file.storage
        document.delete()
        transaction.on_commit(lambda: documents_removed.send(sender=Document, collection_id=collection_id))
        if stored:
            transaction.on_commit(lambda: storage.delete(stored))
        transaction.on_commit(lambda: page_cache_forget(document_id=document_id))
    log_event(
        logger, "document_deleted", document=document_id, collection=collection_id, actor_kind=actor.kind,
        actor_id=actor.id,
    )


def document_reindex(*, document: Document, actor: Actor) -> Document:
    """Queue the document to be parsed and embedded again (e.g. after a parser or model upgrade)."""
    if not document.file:
        raise DocumentRejected("This document's file was never stored (it was refused at upload): upload it again", code="missing_file")
    with transaction.atomic():
        Document.objects.filter(id=document.id).update(
            status=Document.Status.QUEUED, progress=0.0, stage="", error="", error_code="", finished_at=None,
            attempts=0,
        )
        _audit_document(AuditEvent.Action.DOCUMENT_REINDEX, document, actor)
        _enqueue_ingest(document.id)
    document.refresh_from_db()
    return document


def documents_reembed_stale(*, embedder_name: str) -> list[int]:
    """Queue every ready document whose vectors came from another embedder than `embedder_name` (a model or
    RAG_EMBED_QUANTIZE change): their chunks would otherwise be searched with query vectors of another model."""
    stale = Document.objects.filter(status=Document.Status.READY).exclude(embedder=embedder_name).exclude(file="")
    ids: list[int] = []
    actor = Actor.system("re-embedding: the embedder changed")
    for document in stale.select_related("collection"):
        document_reindex(document=document, actor=actor)
        ids.append(document.id)
    if ids:
        log_event(logger, "documents_reembed_queued", count=len(ids), embedder=embedder_name)
    return ids


def document_readable(*, user: User | AnonymousUser, document_id: int) -> Document:
    """A document of a collection the user may read; any other id is DocumentNotFound, like a missing one."""
    document = (
        Document.objects.filter(id=document_id, collection__in=collections_readable(user=user))
        .select_related("collection")
        .first()
    )
    if document is None:
        raise DocumentNotFound(f"Document {document_id} does not exist or is not in a collection you may read")
    return document
