"""Granting collections in tests through the real service (ingestion.access), as the members page does."""

from __future__ import annotations

from django.contrib.auth.models import Group, User

from audit.services import Actor
from ingestion.access import grant_remove, grant_set
from ingestion.models import Collection, CollectionGrant

# Actions a test sets up (not the behaviour under test) are recorded as the system's.
SYSTEM = Actor.system("tests")


def grant(collection: Collection, *, user: User | None = None, group: Group | None = None, role: str = "reader") -> CollectionGrant:
    return grant_set(collection=collection, role=role, actor=SYSTEM, user=user, group=group)


def ungrant(collection: Collection, *, user: User | None = None, group: Group | None = None) -> None:
    grant_remove(grant=CollectionGrant.objects.get(collection=collection, user=user, group=group), actor=SYSTEM)
