"""FAISS files: ids are chunk ids, inner product on normalized vectors, atomic saves, damage detected."""

from pathlib import Path

import numpy as np
import pytest

from retrieval import faiss_store
from retrieval.exceptions import IndexUnavailable


def unit(rows: int, dim: int = 8, seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=(rows, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_add_search_remove_by_chunk_id(tmp_path: Path) -> None:
    index = faiss_store.index_new(dimension=8, factory="Flat")
    vectors = unit(5)
    faiss_store.index_add(index, ids=np.array([10, 20, 30, 40, 50]), vectors=vectors)
    scores, ids = index.search(vectors[2:3], 1)
    assert ids[0][0] == 30 and scores[0][0] == pytest.approx(1.0, abs=1e-5)
    assert faiss_store.index_remove(index, ids=np.array([30]))
    assert sorted(faiss_store.index_ids(index).tolist()) == [10, 20, 40, 50]
    assert index.search(vectors[2:3], 1)[1][0][0] != 30


def test_save_is_atomic_and_damage_is_reported(tmp_path: Path) -> None:
    index = faiss_store.index_new(dimension=8, factory="Flat")
    faiss_store.index_add(index, ids=np.arange(3), vectors=unit(3))
    path = faiss_store.index_path(root=tmp_path, collection_id=7, version=1)
    faiss_store.index_save(index, path=path)
    assert [p.name for p in path.parent.iterdir()] == ["v1.faiss"]  # no temporary file left behind
    assert faiss_store.index_load(path=path).ntotal == 3
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(IndexUnavailable, match="damaged"):
        faiss_store.index_load(path=path)
    with pytest.raises(IndexUnavailable, match="missing"):
        faiss_store.index_load(path=tmp_path / "nope.faiss")


def test_prune_keeps_recent_versions(tmp_path: Path) -> None:
    index = faiss_store.index_new(dimension=8, factory="Flat")
    for v in (1, 2, 3):
        faiss_store.index_save(index, path=faiss_store.index_path(root=tmp_path, collection_id=1, version=v))
    faiss_store.index_prune(root=tmp_path, collection_id=1, keep_from_version=2)
    assert sorted(p.name for p in (tmp_path / "1").iterdir()) == ["v2.faiss", "v3.faiss"]
