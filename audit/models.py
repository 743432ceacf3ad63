"""Audit records: who did what, from where, when. Written once, never changed; only retention removes them.

A record names its actor and target by id *and* by a copy of their name, with no foreign keys: deleting
a user, a key or a document must neither cascade into the trail nor rewrite it (a SET_NULL would be an
UPDATE, which the database refuses on this table).
"""

from __future__ import annotations

from typing import Any, ClassVar

from django.db import models
from django.utils import timezone

from audit.exceptions import AppendOnly


class AuditQuerySet(models.QuerySet["AuditEvent"]):
    def update(self, **kwargs: Any) -> int:
        raise AppendOnly("Audit records cannot be changed")

    def delete(self) -> tuple[int, dict[str, int]]:
        raise AppendOnly("Audit records cannot be deleted, only expire (manage.py audit_purge)")

    def expire(self) -> int:
        """Delete these records: for retention (audit.services.audit_purge) only."""
        return models.QuerySet.delete(self)[0]


class AuditEvent(models.Model):
    class Action(models.TextChoices):
        SIGN_IN = "sign_in", "Signed in"
        SIGN_IN_FAILED = "sign_in_failed", "Sign-in failed"
        SIGN_OUT = "sign_out", "Signed out"
        GROUPS_SYNCED = "groups_synced", "Groups changed at sign-in"
        ASK = "ask", "Asked"
        DOCUMENT_UPLOAD = "document_upload", "Uploaded a document"
        DOCUMENT_DELETE = "document_delete", "Deleted a document"
        DOCUMENT_REINDEX = "document_reindex", "Re-indexed a document"
        GRANT_ADD = "grant_add", "Granted access"
        GRANT_CHANGE = "grant_change", "Changed a role"
        GRANT_REMOVE = "grant_remove", "Removed access"
        API_KEY_CREATE = "api_key_create", "Created an API key"
        API_KEY_REVOKE = "api_key_revoke", "Revoked an API key"
        AUDIT_PURGE = "audit_purge", "Expired old audit records"

    class ActorKind(models.TextChoices):
        USER = "user", "User"
        KEY = "key", "API key"
        SYSTEM = "system", "System"
        ANONYMOUS = "anonymous", "Not signed in"

    at = models.DateTimeField(default=timezone.now, db_index=True)
    action = models.CharField(max_length=32, choices=Action.choices, db_index=True)
    actor_kind = models.CharField(max_length=16, choices=ActorKind.choices)
    actor_id = models.BigIntegerField(null=True, blank=True)  # the user's or the key's id
    actor_name = models.CharField(max_length=300, blank=True)  # username, "prefix (key name)", command
    ip = models.GenericIPAddressField(null=True, blank=True)
    collection = models.CharField(max_length=200, blank=True, db_index=True)  # the slug
    target_type = models.CharField(max_length=32, blank=True)  # document, answer, grant, api_key
    target_id = models.BigIntegerField(null=True, blank=True)
    target_name = models.CharField(max_length=500, blank=True)
    details = models.JSONField(default=dict, blank=True)

    objects: ClassVar[AuditQuerySet] = AuditQuerySet.as_manager()  # type: ignore[assignment]

    class Meta:
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.action} by {self.actor_name or self.actor_kind}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise AppendOnly(f"Audit record {self.pk} cannot be changed")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise AppendOnly(f"Audit record {self.pk} cannot be deleted, only expire (manage.py audit_purge)")
