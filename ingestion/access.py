"""Who may do what in a collection: the one read check, the one edit check, and the grants behind them.

A user's role in a collection is the highest of their own grant and their groups' grants; staff are above
every grant. Every path that shows a collection's passages, files or answers filters by
`collections_readable` and every path that changes its documents or members by `collections_editable`, at
each request: a grant removed (or a group left, at the next single sign-on) takes effect at the next request.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.contrib.auth.models import AnonymousUser, Group, User
from django.db import transaction
from django.db.models import Q, QuerySet

from audit.models import AuditEvent
from audit.services import Actor, audit_record
from ingestion.exceptions import CollectionNotFound, GrantInvalid
from ingestion.models import Collection, CollectionGrant
from ragsite.logs import log_event

logger = logging.getLogger(__name__)

Role = CollectionGrant.Role
_RANK = {Role.READER: 1, Role.EDITOR: 2}


def _granted(user: User, roles: tuple[str, ...]) -> QuerySet[Collection]:
    held = Q(grants__user=user) | Q(grants__group__in=user.groups.all())
    return Collection.objects.filter(held, grants__role__in=roles).distinct()


def collections_readable(*, user: User | AnonymousUser) -> QuerySet[Collection]:
    """The collections the user may read now: staff every one, others those granted to them or their groups."""
    if not user.is_authenticated or not user.is_active:
        return Collection.objects.none()
    if user.is_staff:
        return Collection.objects.all()
    return _granted(user, (Role.READER, Role.EDITOR))  # type: ignore[arg-type]


def collections_editable(*, user: User | AnonymousUser) -> QuerySet[Collection]:
    """The collections whose documents and members the user may change now: staff every one, others where
    they (or a group of theirs) are editors."""
    if not user.is_authenticated or not user.is_active:
        return Collection.objects.none()
    if user.is_staff:
        return Collection.objects.all()
    return _granted(user, (Role.EDITOR,))  # type: ignore[arg-type]


def collection_editable(*, user: User | AnonymousUser, slug: str) -> Collection:
    """The collection, if the user may edit it; otherwise the same error as for one that does not exist."""
    collection = collections_editable(user=user).filter(slug=slug).first()
    if collection is None:
        raise CollectionNotFound(f"Collection {slug!r} does not exist or you may not change it")
    return collection


@dataclass(frozen=True)
class Member:
    """One grant as the members page shows it."""

    grant: CollectionGrant
    kind: str  # "user" or "group"
    name: str
    role: str


def collection_members(*, collection: Collection) -> list[Member]:
    grants = CollectionGrant.objects.filter(collection=collection).select_related("user", "group", "granted_by")
    members = [
        Member(grant=g, kind="group", name=g.group.name, role=g.role) if g.group is not None
        else Member(grant=g, kind="user", name=g.user.get_username() if g.user else "", role=g.role)
        for g in grants
    ]
    return sorted(members, key=lambda m: (m.kind != "group", m.name.lower()))


def _principal(*, user: User | None, group: Group | None) -> tuple[User | None, Group | None]:
    if (user is None) == (group is None):
        raise GrantInvalid("Grant a collection to one user or one group")
    return user, group


def _audit(action: str, grant: CollectionGrant, actor: Actor, **details: object) -> None:
    audit_record(
        action=action, actor=actor, collection=grant.collection.slug, target_type="grant", target_id=grant.id,
        target_name=grant.principal, details={"principal": grant.principal, **details},
    )


def grant_set(
    *, collection: Collection, role: str, actor: Actor, user: User | None = None, group: Group | None = None
) -> CollectionGrant:
    """Give a user or a group a role in the collection, or change the role they have there."""
    user, group = _principal(user=user, group=group)
    if role not in _RANK:
        raise GrantInvalid(f"Unknown role {role!r}: use {' or '.join(_RANK)}")
    granted_by = actor.id if actor.kind == "user" else None
    with transaction.atomic():
        grant = (
            CollectionGrant.objects.select_for_update().order_by("id")
            .filter(collection=collection, user=user, group=group).first()
        )
        if grant is None:
            grant = CollectionGrant.objects.create(
                collection=collection, user=user, group=group, role=role, granted_by_id=granted_by
            )
            _audit(AuditEvent.Action.GRANT_ADD, grant, actor, role=role)
        elif grant.role != role:
            old = grant.role
            grant.role, grant.granted_by_id = role, granted_by
            grant.save(update_fields=["role", "granted_by", "updated_at"])
            _audit(AuditEvent.Action.GRANT_CHANGE, grant, actor, role=role, previous_role=old)
    log_event(logger, "grant_set", collection=collection.id, grant=grant.id, role=role)
    return grant


def grant_remove(*, grant: CollectionGrant, actor: Actor) -> None:
    with transaction.atomic():
        _audit(AuditEvent.Action.GRANT_REMOVE, grant, actor, role=grant.role)
        grant_id = grant.id
        grant.delete()
    log_event(logger, "grant_removed", collection=grant.collection_id, grant=grant_id)


def principal_find(*, kind: str, name: str) -> tuple[User | None, Group | None]:
    """The user or group a members form names. A group may be named before anyone in it has signed in
    (single sign-on creates groups as people arrive), so a new group name creates the group; a user must
    exist (have signed in once, or been created by an administrator)."""
    name = name.strip()
    if not name:
        raise GrantInvalid("Name a user or a group")
    if kind == "group":
        return None, Group.objects.get_or_create(name=name[:150])[0]
    if kind == "user":
        user = User.objects.filter(username=name).first()
        if user is None:
            raise GrantInvalid(f"No user {name!r}: people appear here once they have signed in")
        return user, None
    raise GrantInvalid(f"Unknown kind {kind!r}: grant to a user or a group")


def collections_visible(*, user: User | AnonymousUser) -> list[Collection]:
    return list(collections_readable(user=user))
