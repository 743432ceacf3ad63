"""Re-embed the documents whose vectors came from another embedder (after changing RAG_EMBEDDER_MODEL or
RAG_EMBED_QUANTIZE): queries are embedded by the current one, and vectors of two variants do not mix."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from ingestion.services import documents_reembed_stale
from retrieval.embedding import embedder_get


class Command(BaseCommand):
    help = "Queue every ready document embedded by another embedder than the configured one for re-embedding"

    def handle(self, *args: Any, **options: Any) -> None:
        ids = documents_reembed_stale(embedder_name=embedder_get().name)
        self.stdout.write(f"queued={len(ids)} embedder={embedder_get().name}")
