"""Hybrid search: the BM25 index (pure parts), and `chunks_search` fusing it with FAISS on a real database,
the bundled embedder and index files on disk, kept consistent with the chunk rows like the FAISS file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ingestion.models import Chunk, Collection
from ragsite.components import components_reset
from retrieval import faiss_store, lexical
from retrieval.exceptions import IndexUnavailable
from retrieval.models import IndexState
from retrieval.services import chunks_search, index_sync
from tests.corpus import document_embedded

TEXTS = [
    "Net sales rose in the quarter, driven by services and wearables, while gross margin narrowed.",
    "Operating expenses grew as research and development spending increased year over year.",
    "The company repurchased shares and paid dividends under its capital return program.",
    "Foreign exchange rates weighed on international revenue during the period.",
]


def test_tokens_drop_case_punctuation_and_stopwords() -> None:
    assert lexical.tokens("What was Apple's Q2 2023 10-Q revenue?") == ["apple", "q2", "q", "2", "2023", "10", "q", "revenue"]
    assert lexical.tokens("FY2022 capex, 3M_2022_10K") == ["fy2022", "fy", "2022", "capex", "3m", "3", "m", "2022", "10k", "10", "k"]


def test_tokens_keep_letters_of_every_script() -> None:
    assert lexical.tokens("Prämie für Überstunden: 1.500 € (contraseña)") == ["prämie", "für", "überstunden", "1", "500", "contraseña"]
    index = lexical.lexical_build(ids=np.array([1, 2]), texts=["Die Überstunden werden vergütet.", "Les congés payés."])
    assert index.search("überstunden", k=2)[0].tolist() == [1]
    assert index.search("congés", k=2)[0].tolist() == [2]


def test_a_file_of_another_tokenizer_is_unavailable_so_it_is_rebuilt(tmp_path: Path) -> None:
    index = lexical.lexical_build(ids=np.array([5, 6]), texts=TEXTS[:2])
    path = lexical.lexical_path(root=tmp_path, collection_id=1, version=1)
    lexical.lexical_save(index, path=path)
    with np.load(path) as data:
        arrays = {name: data[name] for name in data.files if name != "tokenizer"}
    np.savez(path.with_suffix(".old.npz"), **arrays)  # as written before the tokenizer had a version
    with pytest.raises(IndexUnavailable, match="tokenizer 1, not 3"):
        lexical.lexical_load(path=path.with_suffix(".old.npz"))


def test_bm25_ranks_the_rare_word_first_and_skips_rows_without_a_match() -> None:
    index = lexical.lexical_build(ids=np.array([11, 22, 33, 44]), texts=TEXTS)
    ids, scores = index.search("share repurchases and dividends", k=4)
    assert ids.tolist() == [33]
    assert scores[0] > 0
    ids, _ = index.search("revenue", k=4)
    assert ids.tolist() == [44]
    assert index.search("the of and", k=4)[0].size == 0


def test_an_updated_index_equals_one_built_from_scratch() -> None:
    """Fails if removing or adding rows leaves stale postings or wrong statistics (idf, average length)."""
    start = lexical.lexical_build(ids=np.array([1, 2, 3]), texts=TEXTS[:3])
    updated = lexical.lexical_update(start, remove_ids=np.array([2]), add_ids=np.array([4]), add_texts=[TEXTS[3]])
    fresh = lexical.lexical_build(ids=np.array([1, 3, 4]), texts=[TEXTS[0], TEXTS[2], TEXTS[3]])
    for query in ("net sales gross margin", "research development", "exchange rates revenue", "program shares"):
        a_ids, a_scores = updated.search(query, k=3)
        b_ids, b_scores = fresh.search(query, k=3)
        assert a_ids.tolist() == b_ids.tolist(), query
        np.testing.assert_allclose(a_scores, b_scores, rtol=1e-6)
    assert 2 not in updated.search("operating expenses research", k=3)[0].tolist()


def test_lexical_file_round_trips_and_damage_is_reported(tmp_path: Path) -> None:
    index = lexical.lexical_build(ids=np.array([5, 6, 7, 8]), texts=TEXTS)
    path = lexical.lexical_path(root=tmp_path, collection_id=3, version=2)
    lexical.lexical_save(index, path=path)
    assert [p.name for p in path.parent.iterdir()] == ["v2.bm25.npz"]
    loaded = lexical.lexical_load(path=path)
    assert loaded.search("foreign exchange", k=2)[0].tolist() == [8]
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(IndexUnavailable, match="damaged"):
        lexical.lexical_load(path=path)
    with pytest.raises(IndexUnavailable, match="missing"):
        lexical.lexical_load(path=tmp_path / "v9.bm25.npz")


def _files_match_database(collection: Collection) -> None:
    from django.conf import settings

    state = IndexState.objects.get(collection=collection)
    root = settings.INDEX_DIR
    faiss_ids = faiss_store.index_ids(faiss_store.index_load(
        path=faiss_store.index_path(root=root, collection_id=collection.id, version=state.version))).tolist()
    bm25_ids = lexical.lexical_load(path=lexical.lexical_path(root=root, collection_id=collection.id, version=state.version)).ids
    rows = sorted(Chunk.objects.filter(document__collection=collection).values_list("id", flat=True))
    assert sorted(faiss_ids) == sorted(bm25_ids.tolist()) == rows


@pytest.mark.django_db
def test_hybrid_search_finds_the_document_named_in_the_question(settings: Any) -> None:
    """Two quarters' reports with the same wording: only the file name (indexed by BM25) tells them apart."""
    from ingestion.embedding import embedder_get

    settings.SEARCH_HYBRID = True
    collection = Collection.objects.create(name="10-Q")
    document_embedded(collection, "2023 Q1 ACME.pdf", TEXTS)
    q3 = document_embedded(collection, "2023 Q3 ACME.pdf", TEXTS)
    index_sync(collection_id=collection.id)
    query = "Did ACME repurchase shares in Q3 2023?"
    hits = chunks_search(collection_id=collection.id, query=query, k=2)
    assert hits[0].document_id == q3.id and hits[0].text == TEXTS[2]
    # The score stays the cosine similarity, whichever ranking found the passage.
    vector = embedder_get().embed([query])[0]
    for hit in hits:
        chunk = Chunk.objects.get(id=hit.chunk_id)
        assert hit.score == pytest.approx(float(chunk.vector() @ vector), abs=1e-4)


@pytest.mark.django_db
def test_deleted_and_new_documents_are_seen_by_bm25_like_by_faiss(settings: Any) -> None:
    settings.SEARCH_HYBRID = True
    collection = Collection.objects.create(name="Parts")
    old = document_embedded(collection, "catalogue-2022.pdf", [*TEXTS, "Gasket kit K7Q93 is discontinued."])
    index_sync(collection_id=collection.id)
    assert any("K7Q93" in h.text for h in chunks_search(collection_id=collection.id, query="K7Q93", k=3))
    old.delete()
    document_embedded(collection, "catalogue-2023.pdf", ["Valve assembly ZR4471 ships from the Lyon warehouse."])
    result = index_sync(collection_id=collection.id)
    assert (result.added, result.removed, result.rebuilt) == (1, 5, False)
    _files_match_database(collection)
    hits = chunks_search(collection_id=collection.id, query="K7Q93 ZR4471", k=3)
    assert [h.text for h in hits] == ["Valve assembly ZR4471 ships from the Lyon warehouse."]
    # The previous version's BM25 file stays for readers mid-load; older ones are pruned with the FAISS files.
    version = IndexState.objects.get(collection=collection).version
    names = sorted(p.name for p in (settings.INDEX_DIR / str(collection.id)).iterdir())
    assert names == [f"v{version - 1}.bm25.npz", f"v{version - 1}.faiss", f"v{version}.bm25.npz", f"v{version}.faiss"]


@pytest.mark.django_db
def test_a_missing_bm25_file_is_rebuilt_and_hybrid_can_be_switched_off(settings: Any) -> None:
    collection = Collection.objects.create(name="Switch")
    document_embedded(collection, "a.pdf", TEXTS)
    version = index_sync(collection_id=collection.id).version
    lexical.lexical_path(root=settings.INDEX_DIR, collection_id=collection.id, version=version).unlink()
    settings.SEARCH_HYBRID = False
    components_reset()
    assert chunks_search(collection_id=collection.id, query="dividends", k=1)[0].text == TEXTS[2]
    assert IndexState.objects.get(collection=collection).version == version  # vector-only needs no BM25 file
    settings.SEARCH_HYBRID = True
    assert chunks_search(collection_id=collection.id, query="dividends", k=1)[0].text == TEXTS[2]
    assert IndexState.objects.get(collection=collection).version == version + 1
    _files_match_database(collection)
