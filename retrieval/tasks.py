"""Celery tasks of retrieval (queue `ingest`): keeping a collection's index equal to its chunks."""

from __future__ import annotations

import logging

from celery import shared_task
from django.conf import settings
from django.db import DatabaseError

from ingestion.tasks import TRANSIENT
from ragsite.logs import log_event
from retrieval.services import index_sync

logger = logging.getLogger(__name__)


@shared_task(
    acks_late=True,
    autoretry_for=(*TRANSIENT, DatabaseError),
    retry_backoff=2,
    max_retries=8,
    soft_time_limit=settings.INGEST_SOFT_TIME_LIMIT,
    time_limit=settings.INGEST_TIME_LIMIT,
)
def sync_collection_index(collection_id: int) -> None:
    index_sync(collection_id=collection_id)
    log_event(logger, "index_sync_task_done", collection=collection_id)
