"""Conversations and answers, with everything needed to audit an answer: passages, prompt, timings, grounding."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class Conversation(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="conversations")
    api_key = models.ForeignKey("api.ApiKey", null=True, blank=True, on_delete=models.CASCADE, related_name="conversations")
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
    # [{"n", "chunk_id", "document_id", "document_name", "page_start", "page_end", "score"}], numbered as in the prompt
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
    # Grounding: filled right after generation, never delaying the streamed answer.
    grounding_score = models.FloatField(null=True, blank=True)
    grounding_flagged = models.BooleanField(null=True, blank=True, db_index=True)
    grounding_threshold = models.FloatField(null=True, blank=True)
    grounding_scorer = models.CharField(max_length=64, blank=True)
    grounding_version = models.CharField(max_length=32, blank=True)
    grounding_spans = models.JSONField(default=list, blank=True)  # unsupported sentences: start, end, text, support
    grounding_ms = models.FloatField(null=True, blank=True)
    feedback = models.SmallIntegerField(null=True, blank=True)  # +1 thumbs up, -1 thumbs down
    feedback_comment = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"Answer {self.pk} ({self.status})"
