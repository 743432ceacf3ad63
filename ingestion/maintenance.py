"""Housekeeping of the ingest pipeline: documents whose task was lost (broker restarted without persistence,
worker killed before its message was redelivered) are found by their stale `updated_at` and re-queued, or
failed with a reason after MAX_INGEST_ATTEMPTS, so that no document waits in QUEUED or PROCESSING forever.

Called by `manage.py requeue_stalled` (cron) and, at most once a minute per process, by the documents
status view. Safe to run concurrently: each document is claimed with a compare-and-set update.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerError

from ingestion.models import Document
from ingestion.services import MAX_INGEST_ATTEMPTS, document_fail
from ragsite.components import shared
from ragsite.logs import log_event

logger = logging.getLogger(__name__)

STALLED_STAGE = "re-queued after stalling"
_CHECK_INTERVAL_S = 60.0


@dataclass(frozen=True)
class StalledReport:
    requeued: tuple[int, ...]
    failed: tuple[int, ...]
    unreachable: tuple[int, ...]  # re-queued in the database, but the broker refused the message: next run

    @property
    def total(self) -> int:
        return len(self.requeued) + len(self.failed) + len(self.unreachable)


def _processing_grace() -> timedelta:
    # A live task may sit in one stage (OCR of a page, indexing) without writing progress; after the hard
    # time limit it is dead for sure.
    return timedelta(seconds=settings.INGEST_TIME_LIMIT)


def documents_requeue_stalled(
    *, older_than: timedelta, processing_older_than: timedelta | None = None
) -> StalledReport:
    """Re-queue QUEUED documents untouched for `older_than` and PROCESSING ones untouched for
    `processing_older_than` (default: `older_than` plus the ingest hard time limit); fail those that already
    used MAX_INGEST_ATTEMPTS. Each stall counts as an attempt, so a message that keeps vanishing ends FAILED.
    QUEUED documents are only considered while no ingestion is making progress."""
    from ingestion.tasks import ingest_document

    now = timezone.now()
    processing_older_than = processing_older_than if processing_older_than is not None else older_than + _processing_grace()
    stale = models.Q(status=Document.Status.PROCESSING, updated_at__lt=now - processing_older_than)
    # While some document makes progress the workers are busy and a long queue is simply waiting its turn:
    # re-queueing it then would only add duplicates. A lost message shows once the workers fall idle.
    busy = Document.objects.filter(status=Document.Status.PROCESSING, updated_at__gte=now - older_than).exists()
    if not busy:
        stale |= models.Q(status=Document.Status.QUEUED, updated_at__lt=now - older_than)
    stalled = Document.objects.filter(stale).values_list("id", "status", "attempts", "updated_at")
    requeued: list[int] = []
    failed: list[int] = []
    unreachable: list[int] = []
    for document_id, status, attempts, updated_at in stalled:
        # Claim the row only if nobody (a worker, another caller) touched it since we read it.
        claim = Document.objects.filter(id=document_id, status=status, updated_at=updated_at)
        used = attempts if status == Document.Status.PROCESSING else attempts + 1
        if used >= MAX_INGEST_ATTEMPTS:
            if claim.update(updated_at=timezone.now()):
                document_fail(
                    document_id=document_id, code="stalled",
                    message=f"Ingestion stalled {used} times (the queue or a worker was lost): re-index the "
                    "document, and check that the ingest workers and the broker are running",
                )
                failed.append(document_id)
            continue
        if not claim.update(
            status=Document.Status.QUEUED, attempts=used, stage=STALLED_STAGE, updated_at=timezone.now()
        ):
            continue
        try:
            ingest_document.delay(document_id)
        except BrokerError:
            unreachable.append(document_id)
            continue
        requeued.append(document_id)
    report = StalledReport(tuple(requeued), tuple(failed), tuple(unreachable))
    if report.total:
        log_event(
            logger, "stalled_documents", level=logging.WARNING, requeued=len(requeued), failed=len(failed),
            unreachable=len(unreachable),
        )
    return report


class StalledCheckThrottle:
    """Runs the stalled check at most once a minute per process (pages poll the status every second)."""

    def __init__(self, interval: float = _CHECK_INTERVAL_S) -> None:
        self.interval = interval
        self._lock = threading.Lock()
        self._next = 0.0

    def due(self) -> bool:
        now = time.monotonic()
        with self._lock:
            if now < self._next:
                return False
            self._next = now + self.interval
            return True


def stalled_check_maybe() -> StalledReport | None:
    """The stalled check, if this process has not run it within the last minute."""
    if not shared(StalledCheckThrottle).due():
        return None
    return documents_requeue_stalled(older_than=timedelta(seconds=settings.STALLED_AFTER_SECONDS))
