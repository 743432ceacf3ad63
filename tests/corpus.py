"""A READY document whose chunks (one per text, page n + 1) are embedded by the bundled model and stored,
as ingestion would leave them, without a PDF: for search tests."""

from __future__ import annotations

from ingestion.models import Chunk, Collection, Document


def document_embedded(collection: Collection, name: str, texts: list[str]) -> Document:
    from retrieval.embedding import embedder_get

    document = Document.objects.create(
        collection=collection, original_name=name, sha256=name.encode().hex()[:64].ljust(64, "0"), size=1,
        status=Document.Status.READY,
    )
    vectors = embedder_get().embed(texts)
    Chunk.objects.bulk_create([
        Chunk(document=document, ordinal=n, text=t, page_start=n + 1, page_end=n + 1, token_count=20,
              embedding=vectors[n].astype("<f4").tobytes())
        for n, t in enumerate(texts)
    ])
    return document
