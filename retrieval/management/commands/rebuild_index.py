from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from ingestion.models import Collection
from retrieval.services import index_sync


class Command(BaseCommand):
    help = "Recreate the FAISS index of one or all collections from the chunks in the database."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--collection", help="collection slug (default: all collections)")

    def handle(self, *args: Any, **options: Any) -> None:
        collections = Collection.objects.all()
        if options["collection"]:
            collections = collections.filter(slug=options["collection"])
            if not collections.exists():
                raise CommandError(f"No collection with slug {options['collection']!r}: see the admin for slugs")
        for collection in collections:
            result = index_sync(collection_id=collection.id, rebuild=True)
            self.stdout.write(f"{collection.slug}: {result.total} vectors, version {result.version}")
