"""The int8 embedder (RAG_EMBED_QUANTIZE): close to float32, named apart from it, chosen by the setting,
and documents embedded by another variant found and re-queued. Real bundled model, real database."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from django.core.files import File

from ingestion.embedding import SentenceTransformerEmbedder, embedder_get
from ingestion.exceptions import EmbedderUnavailable
from ingestion.models import Collection, Document
from ingestion.services import document_ingest, documents_reembed_stale
from tests.components import component_configured
from tests.pdf_factory import make_text_pdf

PASSAGES = [
    "Total net sales increased 8% year over year, driven by higher iPhone and Services revenue.",
    "The Company repurchased $20.0 billion of its common stock and paid dividends of $3.7 billion.",
    "Operating expenses rose because of higher research and development headcount costs.",
    "Cash, cash equivalents and marketable securities totaled $166 billion at the end of the quarter.",
    "Risk factors include supply chain disruptions, foreign exchange rates and changes in tax law.",
    "The data center segment reported record revenue on demand for accelerated computing.",
]
QUERIES = [
    ("How much stock did the company buy back?", 1),
    ("Why did operating expenses go up?", 2),
    ("How much cash and securities does the company hold?", 3),
    ("What risks could affect the business?", 4),
]


@pytest.fixture(scope="module")
def pair() -> tuple[SentenceTransformerEmbedder, SentenceTransformerEmbedder]:
    fp32 = SentenceTransformerEmbedder(quantize="none")
    int8 = SentenceTransformerEmbedder(quantize="int8")
    int8.warm_up()
    int8.warm_up()  # safe twice: quantizing an already quantized model would fail
    return fp32, int8


def test_int8_vectors_stay_close_to_float32(pair: tuple[SentenceTransformerEmbedder, SentenceTransformerEmbedder]) -> None:
    fp32, int8 = pair
    a, b = fp32.embed(PASSAGES), int8.embed(PASSAGES)
    assert a.shape == b.shape == (len(PASSAGES), 384) and b.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(b, axis=1), 1.0, atol=1e-4)
    cosine = (a * b).sum(axis=1)
    assert cosine.min() >= 0.94 and cosine.mean() >= 0.96, cosine
    # Not the float32 model under another name: quantization changes the vectors.
    assert cosine.max() < 0.99999


def test_int8_ranks_passages_like_float32(pair: tuple[SentenceTransformerEmbedder, SentenceTransformerEmbedder]) -> None:
    fp32, int8 = pair
    for embedder in pair:
        passages = embedder.embed(PASSAGES)
        queries = embedder.embed([q for q, _ in QUERIES])
        best = (queries @ passages.T).argmax(axis=1)
        assert list(best) == [gold for _, gold in QUERIES], embedder.name
    assert fp32.name == "all-MiniLM-L6-v2" and int8.name == "all-MiniLM-L6-v2+int8"


def test_unknown_quantize_value_is_refused_with_the_choices() -> None:
    with pytest.raises(EmbedderUnavailable, match="RAG_EMBED_QUANTIZE='int4'.*int8, none"):
        SentenceTransformerEmbedder(quantize="int4")


@pytest.mark.parametrize(("setting", "name"), [("int8", "all-MiniLM-L6-v2+int8"), ("none", "all-MiniLM-L6-v2")])
def test_setting_chooses_the_variant(setting: str, name: str) -> None:
    with component_configured("embedder", quantize=setting):
        assert embedder_get().name == name


@pytest.mark.django_db
def test_documents_of_another_variant_are_requeued() -> None:
    collection = Collection.objects.create(name="Variants", slug="variants")
    current = embedder_get().name

    def document(sha: str, embedder: str, status: str = Document.Status.READY) -> Document:
        return Document.objects.create(
            collection=collection, original_name=f"{sha}.pdf", sha256=sha, size=1, file=f"documents/{sha}.pdf",
            status=status, embedder=embedder,
        )

    stale = document("a", "all-MiniLM-L6-v2" if current.endswith("+int8") else "all-MiniLM-L6-v2+int8")
    legacy = document("b", "")  # embedded before the variant was recorded
    fresh = document("c", current)
    failed = document("d", "other", Document.Status.FAILED)
    queued = documents_reembed_stale(embedder_name=current)
    assert sorted(queued) == sorted([stale.id, legacy.id])
    statuses = dict(Document.objects.values_list("id", "status"))
    assert statuses[stale.id] == statuses[legacy.id] == Document.Status.QUEUED
    assert statuses[fresh.id] == Document.Status.READY and statuses[failed.id] == Document.Status.FAILED
    assert documents_reembed_stale(embedder_name=current) == []


@pytest.mark.django_db
def test_ingest_records_the_variant_and_search_uses_the_same(tmp_path: Path) -> None:
    """Chunks and queries go through one embedder: the document says which, and its own text finds it."""
    from retrieval.services import chunks_search

    pdf = make_text_pdf(tmp_path / "q.pdf", PASSAGES[:3])
    collection = Collection.objects.create(name="Recorded", slug="recorded")
    data = pdf.read_bytes()
    document = Document(collection=collection, original_name="q.pdf", sha256=hashlib.sha256(data).hexdigest(), size=len(data))
    with pdf.open("rb") as fh:
        document.file.save("q.pdf", File(fh), save=True)
    done = document_ingest(document_id=document.id)
    assert done.status == Document.Status.READY, done.error
    assert done.embedder == embedder_get().name
    stored = np.stack([c.vector() for c in done.chunks.order_by("ordinal")])
    np.testing.assert_allclose(stored, embedder_get().embed([c.text for c in done.chunks.order_by("ordinal")]), atol=1e-5)
    hits = chunks_search(collection_id=collection.id, query=QUERIES[0][0], k=1)
    assert hits and hits[0].page_start == 2
