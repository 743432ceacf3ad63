"""Collections, documents and chunks: the source of truth. FAISS indexes are derived from these rows."""

from __future__ import annotations

import numpy as np
from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.text import slugify

from llm.citations import passage_where


def vector_bytes(vector: np.ndarray) -> bytes:
    """How vectors are stored: float32, little-endian (what `Chunk.vector` and `Document.card_vector` read)."""
    return vector.astype("<f4").tobytes()


class Collection(models.Model):
    name = models.CharField(max_length=200, unique=True)
    slug = models.SlugField(max_length=200, unique=True)
    description = models.TextField(blank=True)
    # The LoRA adapter that answers this collection's questions (a name the gpu worker loaded, e.g. one
    # trained by `manage.py lora_train`); blank: the base model.
    adapter = models.CharField(max_length=100, blank=True)
    # Staff see every collection; other users see those granted to them or to one of their groups
    # (CollectionGrant, read by ingestion.access).
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def save(self, *args: object, **kwargs: object) -> None:
        if not self.slug:
            self.slug = slugify(self.name)[:200] or "collection"
        super().save(*args, **kwargs)  # type: ignore[arg-type]


class CollectionGrant(models.Model):
    """A user's or a group's role in a collection. Readers ask and see its passages and files; editors also
    upload, delete and re-index its documents and manage its members. Staff are above every grant."""

    class Role(models.TextChoices):
        READER = "reader", "Reader"
        EDITOR = "editor", "Editor"

    collection = models.ForeignKey(Collection, on_delete=models.CASCADE, related_name="grants")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="collection_grants"
    )
    group = models.ForeignKey(
        "auth.Group", null=True, blank=True, on_delete=models.CASCADE, related_name="collection_grants"
    )
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.READER)
    granted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["collection_id", "group__name", "user__username"]
        constraints = [
            models.CheckConstraint(
                condition=Q(user__isnull=False, group__isnull=True) | Q(user__isnull=True, group__isnull=False),
                name="grant_to_user_or_group",
            ),
            models.UniqueConstraint(
                fields=["collection", "user"], condition=Q(user__isnull=False), name="grant_unique_user"
            ),
            models.UniqueConstraint(
                fields=["collection", "group"], condition=Q(group__isnull=False), name="grant_unique_group"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.principal} {self.role} of {self.collection_id}"

    @property
    def principal(self) -> str:
        """'user:dana' or 'group:engineering', as audit records and logs name the grantee."""
        if self.group is not None:
            return f"group:{self.group.name}"
        return f"user:{self.user.get_username() if self.user else self.user_id}"


def document_upload_path(instance: Document, filename: str) -> str:
    # Files are stored by hash, never by the uploader's name: names may contain anything. The extension is
    # the one of the sniffed type (ingestion.services.document_upload names the file '<sha256><extension>').
    suffix = filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    return f"documents/{instance.collection_id}/{instance.sha256}.{suffix if suffix.isalnum() and len(suffix) <= 8 else 'bin'}"


class Document(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        PROCESSING = "processing", "Processing"
        READY = "ready", "Ready"
        FAILED = "failed", "Failed"

    collection = models.ForeignKey(Collection, on_delete=models.CASCADE, related_name="documents")
    file = models.FileField(upload_to=document_upload_path, max_length=500)
    original_name = models.CharField(max_length=500)
    sha256 = models.CharField(max_length=64)
    size = models.BigIntegerField()
    page_count = models.PositiveIntegerField(null=True, blank=True)  # pages, or sections (see `unit`)
    # What the document's units are: 'page' (PDF) or 'section' (Word, HTML, Markdown, text): citations say
    # "p. N" for pages and the section's title for sections.
    unit = models.CharField(max_length=16, default="page")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED, db_index=True)
    progress = models.FloatField(default=0.0)  # 0..1
    stage = models.CharField(max_length=64, blank=True)  # what the worker is doing, for the progress bar
    error = models.TextField(blank=True)
    error_code = models.CharField(max_length=32, blank=True)
    warnings = models.JSONField(default=list, blank=True)
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Who uploaded it, as the audit trail names them: a user, an API key ('API key 1a2b3c (helpdesk bot)')
    # or a command. Kept as text: keys live in a higher app, and the name must outlive a deleted user.
    uploader = models.CharField(max_length=300, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    # The embedder (model and variant, e.g. 'all-MiniLM-L6-v2+int8') that made the chunks' vectors; queries
    # are embedded by the current one, so documents of another are re-embedded (`manage.py reembed_stale`).
    embedder = models.CharField(max_length=200, blank=True)
    # The embedding of the document's card (file name and opening words, ingestion.cards): what the
    # document is about as a whole, which its chunks rarely say ("Apple's 10-Q for Q3 2023"). Search
    # weighs it with each chunk's own similarity. Embedded with the chunks at ingestion.
    card_embedding = models.BinaryField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["collection", "sha256"], name="document_unique_per_collection"),
            models.CheckConstraint(condition=Q(progress__gte=0) & Q(progress__lte=1), name="document_progress_0_1"),
        ]

    def __str__(self) -> str:
        return self.original_name

    @property
    def is_finished(self) -> bool:
        return self.status in (self.Status.READY, self.Status.FAILED)

    def card_vector(self) -> np.ndarray | None:
        return None if self.card_embedding is None else np.frombuffer(bytes(self.card_embedding), dtype="<f4")


class Chunk(models.Model):
    document = models.ForeignKey(Document, on_delete=models.CASCADE, related_name="chunks")
    ordinal = models.PositiveIntegerField()
    text = models.TextField()
    page_start = models.PositiveIntegerField()
    page_end = models.PositiveIntegerField()
    token_count = models.PositiveIntegerField()
    # The title of the section the chunk lies in, for documents of sections ('' for pages, which citations
    # give as "p. N"); page_start and page_end then hold the section's position.
    section = models.CharField(max_length=300, blank=True, default="")
    embedding = models.BinaryField()  # float32, L2-normalized, little-endian

    class Meta:
        ordering = ["document_id", "ordinal"]
        constraints = [models.UniqueConstraint(fields=["document", "ordinal"], name="chunk_unique_ordinal")]

    def __str__(self) -> str:
        return f"{self.document_id}#{self.ordinal} {self.where}"

    @property
    def where(self) -> str:
        """Where in its document the chunk is, as a citation says it: the section's title, or the page."""
        return passage_where(section=self.section, page_start=self.page_start, page_end=self.page_end)

    def vector(self) -> np.ndarray:
        return np.frombuffer(bytes(self.embedding), dtype="<f4")


class OcrPage(models.Model):
    """The lines OCR read on one page of a document, with their boxes: where a cited passage of a scanned page
    sits, for the citation viewer to highlight (a text layer's character boxes are read from the PDF instead).
    Only OCR'd pages have one; replaced with the chunks at each ingestion."""

    document = models.ForeignKey(Document, on_delete=models.CASCADE, related_name="ocr_pages")
    number = models.PositiveIntegerField()  # 1-based page number
    # [[x0, y0, x1, y1, text], ...] in reading order; coordinates are shares of the page (0..1, 4 decimals,
    # origin top left): about 60 bytes a line, and only for scanned pages.
    lines = models.JSONField(default=list)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["document", "number"], name="ocr_page_unique_number")]

    def __str__(self) -> str:
        return f"{self.document_id} p.{self.number} ({len(self.lines)} OCR lines)"
