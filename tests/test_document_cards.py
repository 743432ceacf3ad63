"""Document cards: the question's similarity to what a document is as a whole (its file name and opening
words) weighs in when chunks are ranked. Real database, bundled embedder, index files on disk."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from ingestion.cards import card_text
from ingestion.embedding import embedder_get
from ingestion.models import Chunk, Collection, Document
from retrieval.services import chunks_search, index_sync
from tests.corpus import document_embedded

NORTHWIND = [
    "Northwind Traders, Inc. Quarterly report on Form 10-Q for the quarter ended September 30, 2023. "
    "Northwind Traders imports and sells specialty foods.",
    "Revenue in the quarter grew 9 percent, driven by strong demand in Europe.",
]
CONTOSO = [
    "Contoso Pharmaceuticals Ltd. Quarterly report on Form 10-Q for the quarter ended September 30, 2023. "
    "Contoso develops generic medicines.",
    "Revenue grew 12 percent in the quarter, driven by demand in Europe.",
]
QUESTION = "How much did revenue grow in Europe this quarter at Northwind?"


def test_a_card_is_the_cleaned_file_name_then_the_opening_words() -> None:
    assert card_text(name="2023_Q3-AAPL.report.pdf", texts=["Apple Inc. Form 10-Q", "for the quarter"]) == (
        "2023 Q3 AAPL report\nApple Inc. Form 10-Q for the quarter"
    )
    assert card_text(name="x.pdf", texts=["one two three", "four five"], words=4) == "x\none two three four"


@pytest.mark.django_db
def test_the_document_a_question_names_wins_over_a_closer_chunk_of_another(settings: Any) -> None:
    collection = Collection.objects.create(name="Filings")
    northwind = document_embedded(collection, "northwind-10q-2023-q3.pdf", NORTHWIND)
    contoso = document_embedded(collection, "contoso-10q-2023-q3.pdf", CONTOSO)
    index_sync(collection_id=collection.id)

    # Chunk similarity alone prefers Contoso's revenue sentence (it is worded closer to the question).
    # BM25 off: it would find "Northwind" in the file name by itself; this test is about the card.
    settings.SEARCH_HYBRID = False
    settings.SEARCH_DOCUMENT_WEIGHT = 0.0
    assert chunks_search(collection_id=collection.id, query=QUESTION, k=1)[0].document_id == contoso.id
    settings.SEARCH_DOCUMENT_WEIGHT = 0.5
    hits = chunks_search(collection_id=collection.id, query=QUESTION, k=2)
    assert [(h.document_id, h.text) for h in hits][0] == (northwind.id, NORTHWIND[1])
    # The score stays the chunk's own cosine similarity: answer thresholds mean the same as before.
    query = embedder_get().embed([QUESTION])[0]
    chunk = Chunk.objects.get(document=northwind, ordinal=1)
    assert hits[0].score == pytest.approx(float(chunk.vector() @ query), abs=1e-4)


@pytest.mark.django_db
def test_a_document_from_before_cards_gets_one_from_reembed_stale() -> None:
    from django.core.management import call_command

    collection = Collection.objects.create(name="Backfill")
    document = document_embedded(collection, "northwind.pdf", NORTHWIND)
    expected = document.card_vector()
    # As on a database from before cards: no card.
    Document.objects.filter(id=document.id).update(card_embedding=None)
    call_command("reembed_stale")
    document.refresh_from_db()
    card = document.card_vector()
    assert card is not None and expected is not None and len(card) == 384
    assert float(card @ expected) == pytest.approx(1.0, abs=1e-4)


@pytest.mark.django_db
def test_reingesting_a_document_remakes_its_card_from_the_new_text(tmp_path: Any) -> None:
    import hashlib

    from django.core.files import File

    from ingestion.services import document_ingest
    from tests.pdf_factory import make_text_pdf

    def card_of(document: Document) -> np.ndarray:
        document.refresh_from_db()
        card = document.card_vector()
        assert card is not None
        return card

    pdf = make_text_pdf(tmp_path / "report.pdf", NORTHWIND)
    collection = Collection.objects.create(name="Reingest", slug="reingest")
    data = pdf.read_bytes()
    document = Document(collection=collection, original_name="report.pdf", sha256=hashlib.sha256(data).hexdigest(), size=len(data))
    with pdf.open("rb") as fh:
        document.file.save("report.pdf", File(fh), save=True)
    assert document_ingest(document_id=document.id).status == Document.Status.READY
    first = card_of(document)
    # The stored file replaced (a corrected upload) and the document processed again.
    make_text_pdf(tmp_path / "new.pdf", CONTOSO)
    with open(document.file.path, "wb") as out:
        out.write((tmp_path / "new.pdf").read_bytes())
    Document.objects.filter(id=document.id).update(status=Document.Status.QUEUED)
    assert document_ingest(document_id=document.id).status == Document.Status.READY
    texts = list(Chunk.objects.filter(document=document).order_by("ordinal").values_list("text", flat=True))
    expected = embedder_get().embed([card_text(name="report.pdf", texts=texts)])[0]
    assert float(card_of(document) @ expected) == pytest.approx(1.0, abs=1e-4)
    assert float(first @ expected) < 0.95
