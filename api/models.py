"""API keys for support bots."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class ApiKey(models.Model):
    """A support bot's key: only its hash is stored; it sees only its collections."""

    name = models.CharField(max_length=200)
    prefix = models.CharField(max_length=16, unique=True)
    key_hash = models.CharField(max_length=128)
    collections = models.ManyToManyField("ingestion.Collection", related_name="api_keys")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    rate_limit_per_minute = models.PositiveIntegerField(default=60, help_text="Requests per minute; 0 = no limit")
    # Support bots only ask; uploading and deleting documents is a separate, explicit grant.
    can_manage_documents = models.BooleanField(default=False)

    class Meta:
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"


class KeyConversation(models.Model):
    """A conversation a support bot started with its key. The link lives here, so that chat knows no keys;
    a key sees only the conversations linked to it."""

    conversation = models.OneToOneField(
        "chat.Conversation", on_delete=models.CASCADE, primary_key=True, related_name="key_link"
    )
    key = models.ForeignKey(ApiKey, on_delete=models.CASCADE, related_name="conversation_links")

    def __str__(self) -> str:
        return f"conversation {self.pk} of key {self.key_id}"
