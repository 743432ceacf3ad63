"""The embedder's variants (RAG_EMBED_QUANTIZE): bf16 (the default) gives the float32 model's vectors on real
10-Q chunks, int8 stays close to them; each is named apart, chosen by the setting, and documents embedded by
another variant are found and re-queued. Real bundled model, real database."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from django.conf import settings
from django.core.files import File

from ingestion.chunking import chunks_split
from ingestion.embedding import SentenceTransformerEmbedder, embedder_get
from ingestion.exceptions import EmbedderUnavailable
from ingestion.models import Collection, Document
from ingestion.services import document_ingest, documents_reembed_stale
from tests.components import component_configured
from tests.conftest import eval_dir
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


def _tenq_chunks(pages: int = 14) -> list[str]:
    """Chunks of a real 10-Q's first pages, cut as ingestion cuts them (text from PDFium, our chunker)."""
    import pypdfium2

    pdf = pypdfium2.PdfDocument(eval_dir("qa", "docugami-sec-10q", "pdfs") / "2022 Q3 AAPL.pdf")
    try:
        texts = [(n + 1, pdf[n].get_textpage().get_text_range()) for n in range(min(pages, len(pdf)))]
    finally:
        pdf.close()
    counter = SentenceTransformerEmbedder(quantize="none")
    drafts = chunks_split(pages=texts, count_tokens=counter.token_count, chunk_tokens=240, overlap_tokens=24)
    return [d.text for d in drafts]


@pytest.fixture(scope="module")
def bf16_pair(pair: tuple[SentenceTransformerEmbedder, SentenceTransformerEmbedder]) -> tuple[SentenceTransformerEmbedder, SentenceTransformerEmbedder]:
    return pair[0], SentenceTransformerEmbedder(quantize="bf16")


def test_bf16_gives_the_float32_vectors_on_real_10q_chunks(bf16_pair: tuple[SentenceTransformerEmbedder, SentenceTransformerEmbedder]) -> None:
    """Fails if the bf16 variant drifts from the float32 model on any chunk (the bench checks all 20 filings)."""
    fp32, bf16 = bf16_pair
    texts = _tenq_chunks() + PASSAGES
    assert len(texts) >= 40
    a, b = fp32.embed(texts), bf16.embed(texts)
    assert b.dtype == np.float32 and b.shape == a.shape
    np.testing.assert_allclose(np.linalg.norm(b, axis=1), 1.0, atol=1e-4)
    cosine = (a * b).sum(axis=1)
    assert cosine.min() >= 0.999, (cosine.min(), texts[int(cosine.argmin())][:80])
    assert cosine.max() < 0.999999  # bf16 matmuls did run: not the float32 model under another name


def test_bf16_vector_does_not_depend_on_its_batch(bf16_pair: tuple[SentenceTransformerEmbedder, SentenceTransformerEmbedder]) -> None:
    """Fails if a chunk's vector changes with its batch neighbours (what kept int8 from being the default)."""
    _, bf16 = bf16_pair
    texts = _tenq_chunks(pages=6)
    together = bf16.embed(texts)
    alone = np.stack([bf16.embed([t])[0] for t in texts[:6]])
    assert ((together[:6] * alone).sum(axis=1)).min() >= 0.9995


def test_unknown_quantize_value_is_refused_with_the_choices() -> None:
    with pytest.raises(EmbedderUnavailable, match="RAG_EMBED_QUANTIZE='int4'.*bf16, int8, none"):
        SentenceTransformerEmbedder(quantize="int4")


@pytest.mark.parametrize(
    ("setting", "name"),
    [("bf16", "all-MiniLM-L6-v2+bf16"), ("int8", "all-MiniLM-L6-v2+int8"), ("none", "all-MiniLM-L6-v2")],
)
def test_setting_chooses_the_variant(setting: str, name: str) -> None:
    with component_configured("embedder", quantize=setting):
        assert embedder_get().name == name


def test_bf16_is_the_default() -> None:
    assert settings.EMBED_QUANTIZE == "bf16"
    assert embedder_get().name == "all-MiniLM-L6-v2+bf16"


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
