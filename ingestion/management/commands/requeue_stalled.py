"""Re-queue (or fail) documents whose ingestion stalled; meant for cron, e.g. every 5 minutes."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from ingestion.maintenance import documents_requeue_stalled


class Command(BaseCommand):
    help = "Re-queue documents stuck in QUEUED/PROCESSING (lost broker message, dead worker); fail them after the attempt limit"

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--older-than", type=float, default=float(settings.STALLED_AFTER_SECONDS),
            help="seconds without progress before a QUEUED document counts as stalled (default RAG_STALLED_AFTER_SECONDS)",
        )
        parser.add_argument(
            "--processing-older-than", type=float, default=None,
            help="seconds for PROCESSING documents (default: --older-than plus the ingest hard time limit)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        processing = options["processing_older_than"]
        report = documents_requeue_stalled(
            older_than=timedelta(seconds=options["older_than"]),
            processing_older_than=None if processing is None else timedelta(seconds=processing),
        )
        self.stdout.write(
            f"requeued={len(report.requeued)} failed={len(report.failed)} unreachable={len(report.unreachable)}"
        )
