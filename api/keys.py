"""API keys: issue (shown once), authenticate, revoke, rate-limit.

A key reads `grk_<prefix>_<secret>`. The prefix finds the row; only an HMAC of the secret (keyed with
SECRET_KEY, so a copy of the database alone cannot be used to test guesses offline) is stored, and it is
compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from api.exceptions import KeyExpired, KeyInvalid, KeyMissing, KeyRevoked, RateLimited
from api.models import ApiKey
from audit.models import AuditEvent
from audit.services import Actor, audit_record
from ingestion.models import Collection
from ragsite.logs import log_event

logger = logging.getLogger(__name__)

KEY_PREFIX = "grk"
_HASH_SCHEME = "hmac-sha256"
# last_used_at is for people auditing keys; writing it on every request would only add load.
_LAST_USED_RESOLUTION = timedelta(minutes=1)


@dataclass(frozen=True)
class IssuedKey:
    key: ApiKey
    secret: str  # the full key, `grk_<prefix>_<secret>`: shown once, never stored


@dataclass(frozen=True)
class Caller:
    """An authenticated key and the collections it may use (loaded once per request)."""

    key: ApiKey
    collections: tuple[Collection, ...]
    ip: str | None = None

    @property
    def collection_ids(self) -> frozenset[int]:
        return frozenset(c.id for c in self.collections)

    @property
    def actor(self) -> Actor:
        """The key as the audit trail names it: what it uploads, deletes and asks is recorded as its doing."""
        return Actor.of_key(key_id=self.key.id, prefix=self.key.prefix, name=self.key.name, ip=self.ip)


def _digest(secret: str, signing_key: str) -> str:
    return hmac.new(signing_key.encode(), secret.encode(), hashlib.sha256).hexdigest()


def _hash(secret: str) -> str:
    return f"{_HASH_SCHEME}${_digest(secret, settings.SECRET_KEY)}"


def _matches(secret: str, stored: str) -> bool:
    # SECRET_KEY_FALLBACKS keeps keys working while SECRET_KEY is rotated.
    scheme, _, digest = stored.partition("$")
    if scheme != _HASH_SCHEME:
        return False
    signing_keys = [settings.SECRET_KEY, *settings.SECRET_KEY_FALLBACKS]
    return any(hmac.compare_digest(_digest(secret, k), digest) for k in signing_keys)


def api_key_create(
    *,
    name: str,
    collections: Iterable[Collection],
    expires_at: datetime | None = None,
    rate_limit_per_minute: int | None = None,
    can_manage_documents: bool = False,
    actor: Actor,
) -> IssuedKey:
    """Issue a key for the given collections; the returned secret is the only copy there will ever be.
    The creation is audited (never the secret)."""
    prefix = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    limit = settings.API_RATE_LIMIT_PER_MINUTE if rate_limit_per_minute is None else rate_limit_per_minute
    with transaction.atomic():
        key = ApiKey.objects.create(
            name=name[:200], prefix=prefix, key_hash=_hash(secret), expires_at=expires_at,
            rate_limit_per_minute=limit, can_manage_documents=can_manage_documents,
            created_by_id=actor.id if actor.kind == "user" else None,
        )
        key.collections.set(list(collections))
        slugs = sorted(key.collections.values_list("slug", flat=True))
        audit_record(
            action=AuditEvent.Action.API_KEY_CREATE, actor=actor, collection=slugs[0] if len(slugs) == 1 else "",
            target_type="api_key", target_id=key.id, target_name=f"{prefix} ({key.name})",
            details={"collections": ",".join(slugs), "manage_documents": can_manage_documents, "rate_limit": limit},
        )
    log_event(logger, "api_key_created", key=key.id, prefix=prefix, collections=key.collections.count())
    return IssuedKey(key=key, secret=f"{KEY_PREFIX}_{prefix}_{secret}")


def api_key_revoke(*, key: ApiKey, actor: Actor) -> ApiKey:
    """Revoke the key at once; audited once (revoking a revoked key changes nothing and records nothing)."""
    with transaction.atomic():
        revoked = ApiKey.objects.filter(id=key.id, revoked_at__isnull=True).update(revoked_at=timezone.now())
        if revoked:
            audit_record(
                action=AuditEvent.Action.API_KEY_REVOKE, actor=actor, target_type="api_key", target_id=key.id,
                target_name=f"{key.prefix} ({key.name})",
            )
    key.refresh_from_db()
    if revoked:
        log_event(logger, "api_key_revoked", key=key.id, prefix=key.prefix)
    return key


def api_key_authenticate(*, raw: str | None, ip: str | None = None) -> Caller:
    """The caller behind a presented key, or an error saying why it is refused (missing, wrong, revoked, expired)."""
    if not raw:
        raise KeyMissing("No API key: send it as `Authorization: Bearer grk_...` or `X-API-Key: grk_...`")
    marker, _, rest = raw.strip().partition("_")
    prefix, _, secret = rest.partition("_")
    if marker != KEY_PREFIX or not prefix or not secret:
        raise KeyInvalid("The API key is malformed: it should look like grk_<prefix>_<secret>")
    key = ApiKey.objects.filter(prefix=prefix).first()
    if key is None or not _matches(secret, key.key_hash):
        raise KeyInvalid("The API key is not valid: check it, or ask an administrator for a new one")
    now = timezone.now()
    if key.revoked_at is not None:
        raise KeyRevoked(f"API key {key.prefix} was revoked on {key.revoked_at:%Y-%m-%d}: ask an administrator for a new one")
    if key.expires_at is not None and key.expires_at <= now:
        raise KeyExpired(f"API key {key.prefix} expired on {key.expires_at:%Y-%m-%d}: ask an administrator for a new one")
    if key.last_used_at is None or now - key.last_used_at >= _LAST_USED_RESOLUTION:
        ApiKey.objects.filter(id=key.id).update(last_used_at=now)
    return Caller(key=key, collections=tuple(key.collections.all()), ip=ip)


def api_key_throttle(*, key: ApiKey, now: float | None = None) -> int:
    """Count one request against the key's per-minute limit; over it, RateLimited with the seconds to wait.

    A fixed one-minute window in the shared cache (Redis when configured), so every web process counts
    into the same number. Returns the requests left in this window.
    """
    limit = key.rate_limit_per_minute
    if limit <= 0:
        return -1
    now = time.time() if now is None else now
    window = int(now // 60)
    # The prefix, not the id: ids restart in a fresh (test) database while counters may still live.
    counter = f"api-rate:{key.prefix}:{window}"
    cache.add(counter, 0, timeout=70)
    try:
        used = cache.incr(counter)
    except ValueError:  # expired between add and incr
        cache.set(counter, 1, timeout=70)
        used = 1
    if used > limit:
        wait = 60 - now % 60
        raise RateLimited(
            f"API key {key.prefix} is limited to {limit} requests per minute: retry in {wait:.0f} s",
            retry_after=wait,
        )
    return limit - used
