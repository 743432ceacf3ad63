import textwrap
from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from ingestion.models import Collection
from retrieval.services import chunks_search


class Command(BaseCommand):
    help = "Print the passages most similar to a question, with their document, pages and score."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("question")
        parser.add_argument("--collection", help="collection slug (default: the first collection)")
        parser.add_argument("-k", type=int, default=5)

    def handle(self, *args: Any, **options: Any) -> None:
        if options["collection"]:
            collection = Collection.objects.filter(slug=options["collection"]).first()
        else:
            collection = Collection.objects.first()
        if collection is None:
            raise CommandError("No such collection: create one and upload documents first")
        passages = chunks_search(collection_id=collection.id, query=options["question"], k=options["k"])
        if not passages:
            self.stdout.write(f"No passages found in {collection.slug}.")
        for rank, p in enumerate(passages, start=1):
            self.stdout.write(f"{rank}. {p.score:.3f}  {p.document_name}  {p.where}  (chunk {p.chunk_id})")
            self.stdout.write(textwrap.indent(textwrap.shorten(p.text, 400), "   "))
