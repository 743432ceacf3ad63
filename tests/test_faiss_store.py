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


def test_auto_factory_is_exact_for_small_collections_and_an_inverted_file_for_large_ones() -> None:
    def choose(vectors: int, current: str = "Flat", setting: str = "auto") -> str:
        return faiss_store.factory_choose(vectors=vectors, setting=setting, current=current, ivf_min=10_000)

    assert choose(9_999) == "Flat"
    assert choose(10_000) == "IVF256,Flat"
    assert choose(100_000) == "IVF1024,Flat"
    assert choose(1_000_000) == "IVF2048,Flat"
    # Hysteresis: no retraining for small moves around a boundary.
    assert choose(9_000, current="IVF256,Flat") == "IVF256,Flat"
    assert choose(4_999, current="IVF256,Flat") == "Flat"
    assert choose(16_000, current="IVF256,Flat") == "IVF256,Flat"
    assert choose(17_000, current="IVF256,Flat") == "IVF512,Flat"  # 2x the lists: retrain
    assert choose(70_000, current="IVF256,Flat") == "IVF1024,Flat"
    assert choose(20_000, current="IVF2048,Flat") == "IVF512,Flat"
    # An explicit setting wins; a factory left from an earlier setting is replaced under "auto".
    assert choose(500_000, setting="HNSW32") == "HNSW32"
    assert choose(500, current="HNSW32") == "Flat"


def test_an_inverted_file_keeps_chunk_ids_removes_in_place_and_survives_a_save(tmp_path: Path) -> None:
    index = faiss_store.index_new(dimension=8, factory="IVF16,Flat")
    vectors = unit(800, seed=3)
    ids = np.arange(1000, 1800)
    faiss_store.index_add(index, ids=ids, vectors=vectors)
    assert sorted(faiss_store.index_ids(index).tolist()) == ids.tolist()
    assert faiss_store.index_remove(index, ids=np.array([1005, 1500]))
    assert sorted(faiss_store.index_ids(index).tolist()) == [i for i in ids.tolist() if i not in (1005, 1500)]
    path = faiss_store.index_path(root=tmp_path, collection_id=1, version=1)
    faiss_store.index_save(index, path=path)
    loaded = faiss_store.index_load(path=path)
    faiss_store.index_tune(loaded, nprobe=0)
    import faiss

    assert faiss.extract_index_ivf(loaded).nprobe == 16  # at least 64 lists: here all 16
    faiss_store.index_tune(loaded, nprobe=4)
    assert faiss.extract_index_ivf(loaded).nprobe == 4
    faiss_store.index_tune(loaded, nprobe=0)
    # Scanning every list is exact search: the same neighbours as a Flat index over the same vectors.
    flat = faiss_store.index_new(dimension=8, factory="Flat")
    faiss_store.index_add(flat, ids=ids, vectors=vectors)
    faiss_store.index_remove(flat, ids=np.array([1005, 1500]))
    queries = unit(20, seed=4)
    assert (loaded.search(queries, 5)[1] == flat.search(queries, 5)[1]).all()
    assert 1005 not in loaded.search(vectors[5:6], 3)[1][0]
    faiss_store.index_tune(flat, nprobe=4)  # not an inverted file: nothing to tune, no error
