"""A READY document whose chunks (one per text, page n + 1) and card are embedded by the bundled model and
stored, as ingestion would leave them, without a file: for search tests."""

from __future__ import annotations

from ingestion.cards import card_text
from ingestion.models import Chunk, Collection, Document, vector_bytes


def document_embedded(collection: Collection, name: str, texts: list[str]) -> Document:
    from ingestion.embedding import embedder_get

    embedder = embedder_get()
    document = Document.objects.create(
        collection=collection, original_name=name, sha256=name.encode().hex()[:64].ljust(64, "0"), size=1,
        status=Document.Status.READY, card_embedding=vector_bytes(embedder.embed([card_text(name=name, texts=texts)])[0]),
    )
    vectors = embedder.embed(texts)
    Chunk.objects.bulk_create([
        Chunk(document=document, ordinal=n, text=t, page_start=n + 1, page_end=n + 1, token_count=20,
              embedding=vector_bytes(vectors[n]))
        for n, t in enumerate(texts)
    ])
    return document
