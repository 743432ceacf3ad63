from argparse import ArgumentParser
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from audit.services import Actor, audit_purge


class Command(BaseCommand):
    help = (
        "Delete audit records older than the retention period (RAG_AUDIT_RETENTION_DAYS; 0 keeps them "
        "forever). Run it daily from cron; the purge itself is recorded."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--days", type=int, default=None, help="override the retention period (days)")

    def handle(self, *args: Any, **options: Any) -> None:
        days = settings.AUDIT_RETENTION_DAYS if options["days"] is None else options["days"]
        if days <= 0:
            self.stdout.write("retention=forever deleted=0")
            return
        deleted = audit_purge(days=days, actor=Actor.system("manage.py audit_purge"))
        self.stdout.write(f"retention_days={days} deleted={deleted}")
