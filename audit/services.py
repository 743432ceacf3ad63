"""The audit trail: one function records an event; the staff page, its CSV export and retention read it.

Apps above this one call `audit_record` inside the transaction of the action they audit, so an action
and its record are committed together or not at all. Sign-ins and sign-outs are recorded from Django's
auth signals (audit.receivers), whatever signed the person in.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.utils import timezone

from audit.models import AuditEvent
from ragsite.logs import log_event

logger = logging.getLogger(__name__)

ActorKind = Literal["user", "key", "system", "anonymous"]


@dataclass(frozen=True)
class Actor:
    """Who acts, and from which address: a signed-in user, an API key, or the system (a command)."""

    kind: ActorKind
    id: int | None
    name: str
    ip: str | None = None

    @classmethod
    def of_user(cls, user: AbstractBaseUser | AnonymousUser, *, ip: str | None = None) -> Actor:
        if not user.is_authenticated:
            return cls(kind="anonymous", id=None, name="", ip=ip)
        return cls(kind="user", id=user.pk, name=user.get_username(), ip=ip)

    @classmethod
    def of_key(cls, *, key_id: int, prefix: str, name: str, ip: str | None) -> Actor:
        return cls(kind="key", id=key_id, name=f"{prefix} ({name})", ip=ip)

    @classmethod
    def system(cls, name: str) -> Actor:
        """A command or a background job acting on no one's request (e.g. 'manage.py seed_demo')."""
        return cls(kind="system", id=None, name=name)

    @property
    def label(self) -> str:
        """How pages and records name the actor: 'dana', 'API key 1a2b3c (helpdesk bot)', 'manage.py ...'."""
        return f"API key {self.name}" if self.kind == "key" else self.name or self.kind


def request_ip(request: HttpRequest) -> str | None:
    """The client's address as the server saw it (behind a proxy, uvicorn's --proxy-headers sets it)."""
    address = str(request.META.get("REMOTE_ADDR") or "")
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return None


def actor_of_request(request: HttpRequest) -> Actor:
    return Actor.of_user(request.user, ip=request_ip(request))


def audit_record(
    *,
    action: str,
    actor: Actor,
    collection: str = "",
    target_type: str = "",
    target_id: int | None = None,
    target_name: str = "",
    details: Mapping[str, object] | None = None,
) -> AuditEvent:
    """Append one record. Call it inside the transaction of the action, so both commit or neither does."""
    event = AuditEvent.objects.create(
        action=action, actor_kind=actor.kind, actor_id=actor.id, actor_name=actor.name[:300], ip=actor.ip,
        collection=collection[:200], target_type=target_type, target_id=target_id, target_name=target_name[:500],
        details=dict(details or {}),
    )
    # Ids only: names and questions stay in the database (STYLE rule 8).
    log_event(
        logger, "audit", action=action, actor_kind=actor.kind, actor_id=actor.id, collection=collection or None,
        target_type=target_type or None, target_id=target_id,
    )
    return event


@dataclass(frozen=True)
class AuditFilter:
    action: str = ""
    actor: str = ""  # part of a username or key name
    collection: str = ""  # a slug
    since: datetime | None = None
    until: datetime | None = None


def audit_events(*, filters: AuditFilter) -> QuerySet[AuditEvent]:
    events = AuditEvent.objects.all()
    if filters.action:
        events = events.filter(action=filters.action)
    if filters.actor:
        events = events.filter(Q(actor_name__icontains=filters.actor) | Q(actor_kind=filters.actor))
    if filters.collection:
        events = events.filter(collection=filters.collection)
    if filters.since is not None:
        events = events.filter(at__gte=filters.since)
    if filters.until is not None:
        events = events.filter(at__lt=filters.until)
    return events


CSV_HEADER = (
    "time", "action", "actor_kind", "actor_id", "actor", "ip", "collection", "target_type", "target_id",
    "target", "details",
)


def _cell(value: object) -> str:
    text = "" if value is None else str(value)
    # A spreadsheet runs a cell that starts with one of these as a formula: names and questions are
    # anyone's input, so they are quoted as text.
    return f"'{text}" if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def audit_csv_rows(events: Iterable[AuditEvent]) -> Iterator[list[str]]:
    yield list(CSV_HEADER)
    for e in events:
        details = ";".join(f"{k}={v}" for k, v in sorted(e.details.items()))
        yield [
            _cell(v) for v in (
                e.at.isoformat(), e.action, e.actor_kind, e.actor_id, e.actor_name, e.ip, e.collection,
                e.target_type, e.target_id, e.target_name, details,
            )
        ]


def audit_purge(*, days: int, actor: Actor, now: datetime | None = None) -> int:
    """Delete records older than `days` (retention) and record that it was done, with the count."""
    if days <= 0:
        return 0
    cutoff = (now or timezone.now()) - timedelta(days=days)
    count = AuditEvent.objects.filter(at__lt=cutoff).expire()
    audit_record(
        action=AuditEvent.Action.AUDIT_PURGE, actor=actor,
        details={"deleted": count, "older_than": cutoff.isoformat(), "retention_days": days},
    )
    return count
