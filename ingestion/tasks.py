"""Celery tasks of the `ingest` queue: thin wrappers that take ids and call services."""

from __future__ import annotations

import logging

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import InterfaceError, OperationalError
from kombu.exceptions import OperationalError as BrokerError

from ingestion import services

logger = logging.getLogger(__name__)

# Errors that say "try again later", not "this document is bad".
TRANSIENT = (OperationalError, InterfaceError, BrokerError, ConnectionError, TimeoutError)


@shared_task(
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=TRANSIENT,
    retry_backoff=5,
    retry_backoff_max=300,
    retry_jitter=True,
    max_retries=6,
    soft_time_limit=settings.INGEST_SOFT_TIME_LIMIT,
    time_limit=settings.INGEST_TIME_LIMIT,
)
def ingest_document(self, document_id: int) -> None:  # type: ignore[no-untyped-def]
    try:
        services.document_ingest(document_id=document_id)
    except TRANSIENT:
        if self.request.retries >= self.max_retries:
            services.document_fail(
                document_id=document_id, code="unavailable",
                message="The database or queue stayed unavailable while ingesting: re-index the document",
            )
            return
        services.document_requeue(document_id=document_id)
        raise
    except SoftTimeLimitExceeded:
        services.document_fail(
            document_id=document_id, code="timeout",
            message=f"Ingestion took longer than {settings.INGEST_SOFT_TIME_LIMIT} s: split the PDF into smaller files",
        )
    except Exception as exc:
        logger.exception("event=ingest_crashed document=%s", document_id)
        services.document_fail(
            document_id=document_id, code="internal",
            message=f"Ingestion failed unexpectedly ({type(exc).__name__}); the error is logged: re-index to retry",
        )
