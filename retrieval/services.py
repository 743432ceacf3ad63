"""Index maintenance and search. The database is the truth; each collection's FAISS file is a cache of it.

Writers (`index_sync`) hold a lock on the collection's IndexState row, so there is one writer per index at
a time, in any process. Readers (`chunks_search`) compare the row's version with the one they hold in
memory and reload when it moved, so every process sees new and deleted documents without a restart.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from django.conf import settings
from django.db import transaction

from ingestion.models import Chunk, Document
from ragsite.logs import log_event
from retrieval import faiss_store
from retrieval.embedding import embedder_get
from retrieval.exceptions import IndexUnavailable
from retrieval.models import IndexState

logger = logging.getLogger(__name__)

_LOAD_BATCH = 5000


@dataclass(frozen=True)
class Passage:
    chunk_id: int
    document_id: int
    document_name: str
    page_start: int
    page_end: int
    text: str
    score: float

    @property
    def pages(self) -> str:
        if self.page_start == self.page_end:
            return f"p. {self.page_start}"
        return f"pp. {self.page_start}-{self.page_end}"


@dataclass(frozen=True)
class IndexSyncResult:
    collection_id: int
    version: int
    added: int
    removed: int
    total: int
    rebuilt: bool


def _vectors_for(ids: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Embeddings for the given chunk ids, read from the database in batches."""
    out_ids: list[int] = []
    out_vecs: list[np.ndarray] = []
    for start in range(0, len(ids), _LOAD_BATCH):
        rows = Chunk.objects.filter(id__in=ids[start : start + _LOAD_BATCH]).values_list("id", "embedding")
        for cid, blob in rows:
            out_ids.append(cid)
            out_vecs.append(np.frombuffer(bytes(blob), dtype="<f4"))
    if not out_vecs:
        return np.zeros(0, dtype=np.int64), np.zeros((0, 0), dtype=np.float32)
    return np.asarray(out_ids, dtype=np.int64), np.vstack(out_vecs)


def _dimension() -> int:
    embedder = embedder_get()
    embedder.warm_up()
    return embedder.dimension


def _rebuild(*, db_ids: set[int], dimension: int) -> Any:
    index = faiss_store.index_new(dimension=dimension, factory=settings.FAISS_INDEX_FACTORY)
    ids, vectors = _vectors_for(sorted(db_ids))
    faiss_store.index_add(index, ids=ids, vectors=vectors)
    return index


def _current(state: IndexState) -> Any | None:
    if state.version == 0:
        return None
    path = faiss_store.index_path(root=settings.INDEX_DIR, collection_id=state.collection_id, version=state.version)
    try:
        return faiss_store.index_load(path=path)
    except IndexUnavailable as exc:
        log_event(logger, "index_unreadable", level=logging.WARNING, collection=state.collection_id, reason=str(exc))
        return None


def index_sync(*, collection_id: int, rebuild: bool = False) -> IndexSyncResult:
    """Make the collection's index hold exactly the collection's chunks, and publish a new version."""
    t0 = time.perf_counter()
    IndexState.objects.get_or_create(collection_id=collection_id)
    with transaction.atomic():
        state = IndexState.objects.select_for_update().get(collection_id=collection_id)
        db_ids = set(Chunk.objects.filter(document__collection_id=collection_id).values_list("id", flat=True))
        index = None if rebuild else _current(state)
        dimension = state.dimension or _dimension()
        added = removed = 0
        rebuilt = index is None
        if index is not None:
            have = set(faiss_store.index_ids(index).tolist())
            gone = np.fromiter(have - db_ids, dtype=np.int64)
            new = sorted(db_ids - have)
            if not faiss_store.index_remove(index, ids=gone):
                index, rebuilt = None, True
            else:
                ids, vectors = _vectors_for(new)
                faiss_store.index_add(index, ids=ids, vectors=vectors)
                added, removed = len(ids), len(gone)
                if not added and not removed:
                    return IndexSyncResult(collection_id, state.version, 0, 0, int(index.ntotal), False)
        if index is None:
            index = _rebuild(db_ids=db_ids, dimension=dimension)
            added = int(index.ntotal)
        version = state.version + 1
        path = faiss_store.index_path(root=settings.INDEX_DIR, collection_id=collection_id, version=version)
        faiss_store.index_save(index, path=path)
        state.version, state.vector_count, state.dimension = version, int(index.ntotal), dimension
        state.factory = settings.FAISS_INDEX_FACTORY
        state.save()
    faiss_store.index_prune(root=settings.INDEX_DIR, collection_id=collection_id, keep_from_version=version - 1)
    result = IndexSyncResult(collection_id, version, added, removed, int(index.ntotal), rebuilt)
    log_event(
        logger, "index_synced", collection=collection_id, version=version, added=added, removed=removed,
        total=result.total, rebuilt=rebuilt, ms=round((time.perf_counter() - t0) * 1000, 1),
    )
    return result


class _ReaderCache:
    """Per-process copies of indexes, each tagged with the version it was loaded from."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._indexes: dict[int, tuple[int, Any]] = {}

    def get(self, collection_id: int) -> Any | None:
        version = IndexState.objects.filter(collection_id=collection_id).values_list("version", flat=True).first()
        if not version:
            return None
        with self._lock:
            held = self._indexes.get(collection_id)
            if held is not None and held[0] == version:
                return held[1]
        path = faiss_store.index_path(root=settings.INDEX_DIR, collection_id=collection_id, version=version)
        try:
            index = faiss_store.index_load(path=path)
        except IndexUnavailable as exc:
            # A missing or damaged file is only a lost cache: rebuild it from the database.
            log_event(logger, "index_repair", level=logging.WARNING, collection=collection_id, reason=str(exc))
            version = index_sync(collection_id=collection_id, rebuild=True).version
            path = faiss_store.index_path(root=settings.INDEX_DIR, collection_id=collection_id, version=version)
            index = faiss_store.index_load(path=path)
        with self._lock:
            self._indexes[collection_id] = (version, index)
        return index

    def clear(self) -> None:
        with self._lock:
            self._indexes.clear()


_readers = _ReaderCache()


def index_cache_clear() -> None:
    _readers.clear()


def chunks_search(*, collection_id: int, query: str, k: int) -> list[Passage]:
    """The k passages of READY documents most similar to the query, best first."""
    t0 = time.perf_counter()
    index = _readers.get(collection_id)
    if index is None or index.ntotal == 0 or not query.strip():
        return []
    vector = embedder_get().embed([query])
    # Ask for a few extra: chunks of a document being deleted or re-indexed are filtered out below.
    scores, ids = index.search(vector, min(index.ntotal, k + 10))
    ranked = [(int(i), float(s)) for i, s in zip(ids[0], scores[0], strict=True) if i >= 0]
    rows = {
        c.id: c
        for c in Chunk.objects.filter(id__in=[i for i, _ in ranked], document__status=Document.Status.READY)
        .select_related("document")
        .only("id", "text", "page_start", "page_end", "document__id", "document__original_name")
    }
    passages = [
        Passage(
            chunk_id=cid,
            document_id=rows[cid].document.id,
            document_name=rows[cid].document.original_name,
            page_start=rows[cid].page_start,
            page_end=rows[cid].page_end,
            text=rows[cid].text,
            score=score,
        )
        for cid, score in ranked
        if cid in rows
    ][:k]
    log_event(
        logger, "search", collection=collection_id, k=k, hits=len(passages),
        ms=round((time.perf_counter() - t0) * 1000, 2),
    )
    return passages
