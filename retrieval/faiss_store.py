"""FAISS index files: build, load, save atomically. No Django models here: callers pass vectors and ids.

Files live at INDEX_DIR/<collection id>/v<version>.faiss, each written whole (retrieval.files.atomic_write).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from retrieval.exceptions import IndexUnavailable
from retrieval.files import atomic_write

_VERSIONED = re.compile(r"v(\d+)\.(?:faiss|bm25\.npz)")


_IVF = re.compile(r"IVF(\d+),")


def factory_choose(*, vectors: int, setting: str, current: str, ivf_min: int) -> str:
    """The factory an index of `vectors` vectors should be built with.

    A setting other than "auto" is used as given. "auto": exact search ("Flat") below `ivf_min` vectors;
    above, an inverted file ("IVF<nlist>,Flat") with about 4 * sqrt(n) lists (a power of two), which
    scans a fraction of the vectors per query. The choice keeps `current` while it is still good enough,
    so a collection hovering around a boundary is not retrained on every change: Flat turns IVF at
    `ivf_min`, back at `ivf_min` / 2; IVF is retrained when the list count it would get has grown 2x
    or shrunk 4x (each list then holds 4x more or 16x fewer vectors than it was trained for).
    """
    if setting != "auto":
        return setting
    nlist = 1 << max(4, int(np.log2(4 * np.sqrt(max(vectors, 1)))))
    wanted = f"IVF{nlist},Flat"
    match = _IVF.match(current)
    if match is None:  # Flat, or a factory from an earlier setting
        return wanted if vectors >= ivf_min else "Flat"
    if vectors < ivf_min // 2:
        return "Flat"
    held = int(match.group(1))
    return wanted if nlist >= 2 * held or nlist * 4 <= held else current


def index_new(*, dimension: int, factory: str) -> Any:
    """An empty inner-product index whose ids are chunk ids (vectors are normalized: IP = cosine).

    An inverted file keeps ids itself (and removes them in place); other indexes are wrapped in IDMap2.
    """
    spec = factory if factory.startswith(("IDMap", "IVF")) else f"IDMap2,{factory}"
    return faiss.index_factory(dimension, spec, faiss.METRIC_INNER_PRODUCT)


def index_ids(index: Any) -> np.ndarray:
    if hasattr(index, "id_map"):
        return faiss.vector_to_array(index.id_map).astype(np.int64, copy=False)
    ivf = faiss.extract_index_ivf(index)
    lists: Any = ivf.invlists
    parts = [
        faiss.rev_swig_ptr(lists.get_ids(i), lists.list_size(i)).copy()
        for i in range(ivf.nlist)
        if lists.list_size(i)
    ]
    return np.concatenate(parts).astype(np.int64, copy=False) if parts else np.zeros(0, dtype=np.int64)


def index_tune(index: Any, *, nprobe: int) -> None:
    """Search settings that are not stored in the file. nprobe: inverted lists scanned per query; 0 means
    one list in 16 and at least 64: recall@5 against exact search measured 0.994-0.997 from 10k to 1M
    blended MiniLM vectors (32 lists: 0.98; 16: 0.94), at 0.75 ms per query for 100k (bench/latency.py)."""
    try:
        ivf = faiss.extract_index_ivf(index)
    except RuntimeError:
        return  # not an inverted file: nothing to tune
    ivf.nprobe = min(ivf.nlist, nprobe or max(64, ivf.nlist // 16))


def index_add(index: Any, *, ids: np.ndarray, vectors: np.ndarray) -> None:
    if len(ids) == 0:
        return
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if not index.is_trained:
        index.train(_training_sample(vectors, index))
    index.add_with_ids(vectors, np.ascontiguousarray(ids, dtype=np.int64))


def _training_sample(vectors: np.ndarray, index: Any) -> np.ndarray:
    """At most 64 vectors per inverted list (k-means needs no more), drawn evenly: training stays seconds at 1M."""
    try:
        limit = 64 * faiss.extract_index_ivf(index).nlist
    except RuntimeError:
        return vectors
    if len(vectors) <= limit:
        return vectors
    return vectors[np.random.default_rng(0).choice(len(vectors), limit, replace=False)]


def index_remove(index: Any, *, ids: np.ndarray) -> bool:
    """Remove ids; False when this index type cannot remove (the caller rebuilds instead)."""
    if len(ids) == 0:
        return True
    try:
        index.remove_ids(np.ascontiguousarray(ids, dtype=np.int64))
    except RuntimeError:
        return False
    return True


def index_path(*, root: Path, collection_id: int, version: int) -> Path:
    return root / str(collection_id) / f"v{version}.faiss"


def index_save(index: Any, *, path: Path) -> None:
    atomic_write(path, lambda tmp: faiss.write_index(index, tmp))


def index_load(*, path: Path) -> Any:
    if not path.exists():
        raise IndexUnavailable(f"index file {path} is missing")
    try:
        return faiss.read_index(str(path))
    except RuntimeError as exc:
        raise IndexUnavailable(f"index file {path} is damaged ({str(exc).splitlines()[0][:200]})") from exc


def index_prune(*, root: Path, collection_id: int, keep_from_version: int) -> None:
    """Delete the files (FAISS and BM25) of versions older than keep_from_version.

    The previous version stays for readers mid-load.
    """
    folder = root / str(collection_id)
    if not folder.is_dir():
        return
    for entry in folder.iterdir():
        match = _VERSIONED.fullmatch(entry.name)
        if match and int(match.group(1)) < keep_from_version:
            entry.unlink(missing_ok=True)
