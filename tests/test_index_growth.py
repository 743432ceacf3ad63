"""A collection's index changes kind as it grows: exact search while small, an inverted file (IVF) once
large, retrained when it outgrows its lists, and back to exact when documents are deleted. Real database,
real bundled embedder, index files on disk."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from ingestion.models import Chunk, Collection
from retrieval import faiss_store
from retrieval.models import IndexState
from retrieval.services import chunks_search, index_sync
from tests.corpus import document_embedded

CITIES = ["Lyon", "Osaka", "Denver", "Porto", "Tallinn", "Quito", "Perth", "Accra", "Bergen", "Hanoi"]
ITEMS = ["valve", "gasket", "pump", "bearing", "sensor", "filter", "hose", "relay", "switch", "clamp"]


def _texts(start: int, count: int) -> list[str]:
    return [
        f"Spare {ITEMS[i % 10]} model {ITEMS[(i // 10) % 10]}-{i:04d} ships from the {CITIES[(i // 7) % 10]} "
        f"warehouse within {i % 9 + 1} days."
        for i in range(start, start + count)
    ]


def _held_ids(collection: Collection) -> list[int]:
    from django.conf import settings

    state = IndexState.objects.get(collection=collection)
    path = faiss_store.index_path(root=settings.INDEX_DIR, collection_id=collection.id, version=state.version)
    return sorted(faiss_store.index_ids(faiss_store.index_load(path=path)).tolist())


def _rows(collection: Collection) -> list[int]:
    return sorted(Chunk.objects.filter(document__collection=collection).values_list("id", flat=True))


def _finds_itself(collection: Collection, texts: list[str]) -> None:
    for text in texts:
        assert chunks_search(collection_id=collection.id, query=text, k=1)[0].text == text


@pytest.mark.django_db
def test_the_index_turns_ivf_when_large_and_exact_again_when_small(settings: Any) -> None:
    settings.FAISS_INDEX_FACTORY = "auto"
    settings.FAISS_IVF_MIN_VECTORS = 200
    collection = Collection.objects.create(name="Parts")
    first = _texts(0, 150)
    a = document_embedded(collection, "a.pdf", first)
    assert index_sync(collection_id=collection.id).rebuilt
    assert IndexState.objects.get(collection=collection).factory == "Flat"

    second = _texts(150, 100)
    b = document_embedded(collection, "b.pdf", second)
    grown = index_sync(collection_id=collection.id)
    state = IndexState.objects.get(collection=collection)
    assert grown.rebuilt and grown.total == 250 and state.factory == "IVF32,Flat"
    assert _held_ids(collection) == _rows(collection)
    _finds_itself(collection, first[::37] + second[::29])

    # Deleting stays incremental while the collection is large enough for its lists.
    b.delete()
    shrunk = index_sync(collection_id=collection.id)
    assert (shrunk.rebuilt, shrunk.removed, shrunk.total) == (False, 100, 150)
    assert IndexState.objects.get(collection=collection).factory == "IVF32,Flat"
    assert _held_ids(collection) == _rows(collection)
    assert all(h.document_id == a.id for h in chunks_search(collection_id=collection.id, query=second[3], k=5))

    # Below half the threshold: exact search again.
    Chunk.objects.filter(document=a, ordinal__gte=60).delete()
    small = index_sync(collection_id=collection.id)
    assert small.rebuilt and small.total == 60
    assert IndexState.objects.get(collection=collection).factory == "Flat"
    _finds_itself(collection, first[:60:11])


@pytest.mark.django_db
def test_a_changed_factory_setting_rebuilds_the_index(settings: Any) -> None:
    settings.FAISS_INDEX_FACTORY = "Flat"
    collection = Collection.objects.create(name="Switch")
    texts = _texts(0, 40)
    document_embedded(collection, "a.pdf", texts)
    index_sync(collection_id=collection.id)
    settings.FAISS_INDEX_FACTORY = "HNSW16"
    result = index_sync(collection_id=collection.id)
    assert result.rebuilt and IndexState.objects.get(collection=collection).factory == "HNSW16"
    _finds_itself(collection, texts[::13])
    assert np.array_equal(_held_ids(collection), _rows(collection))
