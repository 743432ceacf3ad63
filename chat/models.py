"""Conversations and answers, with everything needed to audit an answer: passages, prompt, timings, grounding."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from django.conf import settings
from django.db import models

from ingestion.locate import PageBox
from llm.citations import passage_where


@dataclass(frozen=True)
class PassageRecord:
    """One passage an answer was given, numbered [n] as in its prompt: a snapshot of what the model saw,
    so re-indexing, re-chunking or deleting the document never changes an old answer's evidence."""

    n: int
    chunk_id: int
    document_id: int
    document_name: str
    page_start: int
    page_end: int
    score: float
    text: str  # as in the prompt (a passage cut to fit the window carries the cut text)
    section: str = ""  # the section's title, for documents of sections; '' for pages (and in older answers)
    # The document's file type when the answer was given: a PDF's pages are shown as images, other files
    # (sections, not pages) by their text. Answers recorded before it was kept cite PDFs, the only type then.
    media_type: str = "application/pdf"
    boxes: tuple[PageBox, ...] = ()  # where the text sits on its page(s), located when the answer was given

    @property
    def where(self) -> str:
        """Where the passage is, as a citation says it: 'p. 4', 'pp. 4-5' or the section's title."""
        return passage_where(section=self.section, page_start=self.page_start, page_end=self.page_end)

    @property
    def has_page_images(self) -> bool:
        return self.media_type == "application/pdf"

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "boxes": [box.to_json() for box in self.boxes]}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PassageRecord:
        return cls(
            n=int(data["n"]), chunk_id=int(data["chunk_id"]), document_id=int(data["document_id"]),
            document_name=str(data["document_name"]), page_start=int(data["page_start"]),
            page_end=int(data["page_end"]), score=float(data["score"]), text=str(data.get("text", "")),
            section=str(data.get("section", "")),
            media_type=str(data.get("media_type", "application/pdf")),
            boxes=tuple(PageBox.from_json(box) for box in data.get("boxes") or ()),
        )


class Conversation(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="conversations")
    collection = models.ForeignKey("ingestion.Collection", on_delete=models.CASCADE, related_name="conversations")
    title = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at", "-id"]

    def __str__(self) -> str:
        return self.title or f"Conversation {self.pk}"


class Answer(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        STREAMING = "streaming", "Streaming"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    class Source(models.TextChoices):
        CHAT = "chat", "Chat"
        API = "api", "API"

    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="answers")
    source = models.CharField(max_length=8, choices=Source.choices, default=Source.CHAT)
    question = models.TextField()
    standalone_query = models.TextField(blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING, db_index=True)
    text = models.TextField(blank=True)
    error = models.TextField(blank=True)
    # PassageRecord.to_json() of each passage the model was given, numbered as in the prompt
    passages = models.JSONField(default=list, blank=True)
    citations = models.JSONField(default=list, blank=True)  # passage numbers cited, in order of first use
    model_called = models.BooleanField(default=False)
    prompt_tokens = models.PositiveIntegerField(null=True, blank=True)
    completion_tokens = models.PositiveIntegerField(null=True, blank=True)
    backend = models.CharField(max_length=32, blank=True)
    model_name = models.CharField(max_length=300, blank=True)
    quantization = models.CharField(max_length=100, blank=True)
    adapter = models.CharField(max_length=100, blank=True, db_index=True)  # the LoRA adapter that wrote it; '' = base
    retrieval_ms = models.FloatField(null=True, blank=True)
    ttft_ms = models.FloatField(null=True, blank=True)
    generation_ms = models.FloatField(null=True, blank=True)
    tokens_per_second = models.FloatField(null=True, blank=True)
    class Grounding(models.TextChoices):
        PENDING = "pending", "Pending"
        SCORED = "scored", "Scored"
        # The scorer ran but could give no verdict (a judge model that answered nothing usable): neither
        # grounded nor flagged, and counted apart from scored answers.
        UNSCORED = "unscored", "Not scored"
        FAILED = "failed", "Scoring failed"

    # Grounding: filled right after generation, never delaying the streamed answer.
    grounding_status = models.CharField(max_length=16, choices=Grounding.choices, default=Grounding.PENDING)
    grounding_score = models.FloatField(null=True, blank=True)
    grounding_flagged = models.BooleanField(null=True, blank=True, db_index=True)
    grounding_threshold = models.FloatField(null=True, blank=True)
    grounding_scorer = models.CharField(max_length=64, blank=True)
    grounding_version = models.CharField(max_length=32, blank=True)
    grounding_spans = models.JSONField(default=list, blank=True)  # unsupported sentences: start, end, text, support
    grounding_ms = models.FloatField(null=True, blank=True)

    class Shown(models.TextChoices):
        ANSWER = "answer", "The model's answer"
        EVIDENCE = "evidence", "What the documents say"

    # "What the documents say": the extractive answer over the same passages, computed when grounding flags
    # the answer (RAG_GROUNDING_POLICY evidence or withhold); its citations are passage numbers as above.
    evidence_text = models.TextField(blank=True)
    evidence_citations = models.JSONField(default=list, blank=True)
    # Which text the asker was shown: the evidence replaces a flagged answer under RAG_GROUNDING_POLICY=withhold.
    shown = models.CharField(max_length=8, choices=Shown.choices, default=Shown.ANSWER)
    feedback = models.SmallIntegerField(null=True, blank=True)  # +1 thumbs up, -1 thumbs down
    feedback_comment = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"Answer {self.pk} ({self.status})"

    def passage_records(self) -> list[PassageRecord]:
        return [PassageRecord.from_json(p) for p in self.passages]

    @property
    def shown_text(self) -> str:
        """The text the asker sees: the evidence when it replaced a flagged answer, else the answer."""
        return self.evidence_text if self.shown == self.Shown.EVIDENCE else self.text

    @property
    def grounding_settled(self) -> bool:
        """No grounding is coming: scored, failed, or an answer that is never scored (failed or empty)."""
        return self.grounding_status != self.Grounding.PENDING or self.status == self.Status.FAILED or (
            self.status == self.Status.DONE and not self.text
        )
