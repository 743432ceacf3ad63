"""FAISS index files: build, load, save atomically. No Django models here: callers pass vectors and ids.

Files live at INDEX_DIR/<collection id>/v<version>.faiss. A new version is written to a temporary file
and moved into place with os.replace, so a reader never sees half a file.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from retrieval.exceptions import IndexUnavailable

_VERSIONED = re.compile(r"v(\d+)\.(?:faiss|bm25\.npz)")


def index_new(*, dimension: int, factory: str) -> Any:
    """An empty inner-product index whose ids are chunk ids (vectors are normalized: IP = cosine)."""
    spec = factory if factory.startswith("IDMap") else f"IDMap2,{factory}"
    return faiss.index_factory(dimension, spec, faiss.METRIC_INNER_PRODUCT)


def index_ids(index: Any) -> np.ndarray:
    return faiss.vector_to_array(index.id_map).astype(np.int64, copy=False)


def index_add(index: Any, *, ids: np.ndarray, vectors: np.ndarray) -> None:
    if len(ids) == 0:
        return
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if not index.is_trained:
        index.train(vectors)
    index.add_with_ids(vectors, np.ascontiguousarray(ids, dtype=np.int64))


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
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    os.close(fd)
    try:
        faiss.write_index(index, tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


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
