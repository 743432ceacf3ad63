from argparse import ArgumentParser
from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from api.keys import api_key_create
from audit.services import Actor
from ingestion.models import Collection


class Command(BaseCommand):
    help = (
        "Create an API key for a support bot, scoped to one or more collections. The key is printed once, "
        "on stdout; only its hash is stored."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("name", help="who uses the key, e.g. 'helpdesk bot'")
        parser.add_argument("--collection", action="append", required=True, metavar="SLUG", help="repeat for more")
        expiry = parser.add_mutually_exclusive_group()
        expiry.add_argument("--expires-in-days", type=int, metavar="N")
        expiry.add_argument("--expires-at", metavar="ISO-8601", help="e.g. 2027-01-31T00:00:00Z")
        parser.add_argument("--rate-limit", type=int, metavar="PER_MINUTE", help="0 = no limit; default RAG_API_RATE_LIMIT_PER_MINUTE")
        parser.add_argument("--manage-documents", action="store_true", help="may upload, delete and re-index documents")

    def handle(self, *args: Any, **options: Any) -> None:
        slugs: list[str] = options["collection"]
        collections = list(Collection.objects.filter(slug__in=slugs))
        missing = sorted(set(slugs) - {c.slug for c in collections})
        if missing:
            known = ", ".join(Collection.objects.values_list("slug", flat=True)) or "none yet"
            raise CommandError(f"No collection with slug {', '.join(missing)}; existing: {known}")
        issued = api_key_create(
            name=options["name"], collections=collections, expires_at=self._expiry(options),
            rate_limit_per_minute=options["rate_limit"], can_manage_documents=options["manage_documents"],
            actor=Actor.system("manage.py create_api_key"),
        )
        self.stderr.write(f"Key {issued.key.prefix} for {', '.join(slugs)}; it is shown only now, keep it safe:")
        self.stdout.write(issued.secret)

    def _expiry(self, options: dict[str, Any]) -> Any:
        if options["expires_in_days"] is not None:
            if options["expires_in_days"] <= 0:
                raise CommandError("--expires-in-days must be at least 1")
            return timezone.now() + timedelta(days=options["expires_in_days"])
        if options["expires_at"]:
            when = parse_datetime(options["expires_at"])
            if when is None:
                raise CommandError(f"--expires-at {options['expires_at']!r} is not an ISO-8601 date and time")
            return when if timezone.is_aware(when) else timezone.make_aware(when)
        return None
