"""Re-embed the documents whose vectors came from another embedder (after changing RAG_EMBEDDER_MODEL or
RAG_EMBED_QUANTIZE): queries are embedded by the current one, and vectors of two variants do not mix. Also
embeds the cards of documents ingested before document cards existed."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from ingestion.embedding import embedder_get
from ingestion.services import documents_cards_fill, documents_reembed_stale


class Command(BaseCommand):
    help = "Queue every ready document embedded by another embedder than the configured one for re-embedding"

    def handle(self, *args: Any, **options: Any) -> None:
        name = embedder_get().name
        ids = documents_reembed_stale(embedder_name=name)
        cards = documents_cards_fill()
        self.stdout.write(f"queued={len(ids)} cards_filled={cards} embedder={name}")
