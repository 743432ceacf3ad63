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

from ingestion.embedding import embedder_get
from ingestion.models import Chunk, Document
from llm.citations import passage_where
from ragsite.components import shared
from ragsite.logs import log_event
from retrieval import faiss_store, lexical
from retrieval.exceptions import IndexUnavailable
from retrieval.models import IndexState
from retrieval.ranking import Candidates, RankWeights, candidates_rank

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
    section: str = ""  # the section's title, for documents of sections (page_start/page_end: its position)

    @property
    def where(self) -> str:
        """Where the passage is, as a citation says it: 'p. 4', 'pp. 4-5' or the section's title."""
        return passage_where(section=self.section, page_start=self.page_start, page_end=self.page_end)


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


def _factory(*, vectors: int, current: str) -> str:
    return faiss_store.factory_choose(
        vectors=vectors, setting=settings.FAISS_INDEX_FACTORY, current=current, ivf_min=settings.FAISS_IVF_MIN_VECTORS
    )


def _rebuild(*, db_ids: set[int], dimension: int, factory: str) -> Any:
    index = faiss_store.index_new(dimension=dimension, factory=factory)
    ids, vectors = _vectors_for(sorted(db_ids))
    faiss_store.index_add(index, ids=ids, vectors=vectors)
    return index


def _lexical_texts(ids: list[int]) -> tuple[np.ndarray, list[str]]:
    """What BM25 indexes per chunk: the document's file name, then the chunk's text.

    The name carries what a chunk's own text rarely says and questions do ("2023 Q3 AAPL").
    """
    out_ids: list[int] = []
    texts: list[str] = []
    for start in range(0, len(ids), _LOAD_BATCH):
        rows = Chunk.objects.filter(id__in=ids[start : start + _LOAD_BATCH]).values_list(
            "id", "document__original_name", "text"
        )
        for cid, name, text in rows:
            out_ids.append(cid)
            texts.append(f"{name}\n{text}")
    return np.asarray(out_ids, dtype=np.int64), texts


_FILES: dict[str, tuple[Any, Any]] = {
    "index": (faiss_store.index_path, faiss_store.index_load),
    "lexical": (lexical.lexical_path, lexical.lexical_load),
}


def _held_file(state: IndexState, *, kind: str) -> Any | None:
    """The current version's FAISS ("index") or BM25 ("lexical") file, or None (logged) when unreadable."""
    if state.version == 0:
        return None
    path_of, load = _FILES[kind]
    try:
        return load(path=path_of(root=settings.INDEX_DIR, collection_id=state.collection_id, version=state.version))
    except IndexUnavailable as exc:
        log_event(logger, f"{kind}_unreadable", level=logging.WARNING, collection=state.collection_id, reason=str(exc))
        return None


def _lexical_next(previous: lexical.LexicalIndex | None, *, db_ids: set[int], gone: np.ndarray, added: np.ndarray) -> lexical.LexicalIndex:
    """The BM25 index for the new version: the previous one updated, or built from every chunk's row."""
    if previous is None:
        ids, texts = _lexical_texts(sorted(db_ids))
        return lexical.lexical_build(ids=ids, texts=texts)
    ids, texts = _lexical_texts(added.tolist())
    return lexical.lexical_update(previous, remove_ids=gone, add_ids=ids, add_texts=texts)


@dataclass
class _Update:
    """The indexes of the next version, and what changed to make them."""

    index: Any
    bm25: lexical.LexicalIndex | None
    added: int = 0
    removed: int = 0
    rebuilt: bool = False


def _update_in_place(index: Any, bm25: lexical.LexicalIndex | None, db_ids: set[int]) -> _Update | None:
    """The held indexes brought up to the database's chunks; None when the FAISS index cannot remove ids."""
    have = set(faiss_store.index_ids(index).tolist())
    gone = np.fromiter(have - db_ids, dtype=np.int64)
    if not faiss_store.index_remove(index, ids=gone):
        return None
    new_ids, vectors = _vectors_for(sorted(db_ids - have))
    faiss_store.index_add(index, ids=new_ids, vectors=vectors)
    if bm25 is None or len(new_ids) or len(gone):
        bm25 = _lexical_next(bm25, db_ids=db_ids, gone=gone, added=new_ids)
    return _Update(index, bm25, added=len(new_ids), removed=len(gone))


def _update_rebuilt(db_ids: set[int], dimension: int, factory: str) -> _Update:
    index = _rebuild(db_ids=db_ids, dimension=dimension, factory=factory)
    empty = np.zeros(0, dtype=np.int64)
    return _Update(index, _lexical_next(None, db_ids=db_ids, gone=empty, added=empty), added=int(index.ntotal), rebuilt=True)


def _publish(state: IndexState, update: _Update, *, dimension: int, factory: str) -> int:
    """Write the next version's files (atomically) and point the state row at them."""
    version = state.version + 1
    root = settings.INDEX_DIR
    faiss_store.index_save(update.index, path=faiss_store.index_path(root=root, collection_id=state.collection_id, version=version))
    assert update.bm25 is not None
    lexical.lexical_save(update.bm25, path=lexical.lexical_path(root=root, collection_id=state.collection_id, version=version))
    state.version, state.vector_count, state.dimension = version, int(update.index.ntotal), dimension
    state.factory = factory
    state.save()
    return version


def index_sync(*, collection_id: int, rebuild: bool = False) -> IndexSyncResult:
    """Make the collection's indexes (FAISS and BM25) hold exactly the collection's chunks, and publish a new version."""
    t0 = time.perf_counter()
    IndexState.objects.get_or_create(collection_id=collection_id)
    with transaction.atomic():
        state = IndexState.objects.select_for_update().get(collection_id=collection_id)
        db_ids = set(Chunk.objects.filter(document__collection_id=collection_id).values_list("id", flat=True))
        factory = _factory(vectors=len(db_ids), current=state.factory)
        dimension = state.dimension or _dimension()
        # A new factory (the setting changed, or the collection outgrew its inverted lists) means a rebuild.
        index = None if rebuild or factory != state.factory else _held_file(state, kind="index")
        update = None
        if index is not None:
            bm25 = _held_file(state, kind="lexical")
            update = _update_in_place(index, bm25, db_ids)
            if update is not None and not update.added and not update.removed and bm25 is not None:
                return IndexSyncResult(collection_id, state.version, 0, 0, int(index.ntotal), False)
        update = update or _update_rebuilt(db_ids, dimension, factory)
        version = _publish(state, update, dimension=dimension, factory=factory)
    faiss_store.index_prune(root=settings.INDEX_DIR, collection_id=collection_id, keep_from_version=version - 1)
    result = IndexSyncResult(collection_id, version, update.added, update.removed, int(update.index.ntotal), update.rebuilt)
    log_event(
        logger, "index_synced", collection=collection_id, version=version, added=update.added, removed=update.removed,
        total=result.total, rebuilt=update.rebuilt, factory=factory, ms=round((time.perf_counter() - t0) * 1000, 1),
    )
    return result


@dataclass(frozen=True)
class _Held:
    version: int
    index: Any
    bm25: lexical.LexicalIndex | None  # None when hybrid search is off


class IndexReaders:
    """Per-process copies of indexes, each tagged with the version it was loaded from (one per process:
    `ragsite.components.shared`)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: dict[int, _Held] = {}

    def get(self, collection_id: int) -> _Held | None:
        version = IndexState.objects.filter(collection_id=collection_id).values_list("version", flat=True).first()
        if not version:
            return None
        hybrid = bool(settings.SEARCH_HYBRID)
        with self._lock:
            held = self._held.get(collection_id)
            if held is not None and held.version == version and (held.bm25 is not None or not hybrid):
                return held
        try:
            held = self._load(collection_id, version, hybrid=hybrid)
        except IndexUnavailable as exc:
            # A missing or damaged file is only a lost cache: rebuild it from the database.
            log_event(logger, "index_repair", level=logging.WARNING, collection=collection_id, reason=str(exc))
            version = index_sync(collection_id=collection_id, rebuild=True).version
            held = self._load(collection_id, version, hybrid=hybrid)
        with self._lock:
            self._held[collection_id] = held
        return held

    @staticmethod
    def _load(collection_id: int, version: int, *, hybrid: bool) -> _Held:
        root = settings.INDEX_DIR
        index = faiss_store.index_load(path=faiss_store.index_path(root=root, collection_id=collection_id, version=version))
        faiss_store.index_tune(index, nprobe=settings.FAISS_NPROBE)
        bm25 = lexical.lexical_load(path=lexical.lexical_path(root=root, collection_id=collection_id, version=version)) if hybrid else None
        return _Held(version, index, bm25)


def _ready_owners(ids: list[int]) -> dict[int, tuple[int, int]]:
    """Chunk id -> (document id, page), for the chunks of READY documents among `ids` (one being deleted
    or re-indexed drops out). Ids only: the candidates' texts are read for the k that are returned."""
    rows = Chunk.objects.filter(id__in=ids, document__status=Document.Status.READY).values_list(
        "id", "document_id", "page_start"
    )
    return {cid: (doc, page) for cid, doc, page in rows}


def _cosines(ids: list[int], query: np.ndarray) -> dict[int, float]:
    """The query's cosine similarity to chunks the vector search did not return (found by BM25 only)."""
    rows = Chunk.objects.filter(id__in=ids).values_list("id", "embedding")
    return {cid: float(np.frombuffer(bytes(blob), dtype="<f4") @ query) for cid, blob in rows}


def _card_similarity(document_ids: set[int], query: np.ndarray) -> dict[int, float]:
    """Per document: the query's cosine similarity to the document's card (absent without one)."""
    cards = Document.objects.filter(id__in=document_ids, card_embedding__isnull=False).only("id", "card_embedding")
    return {doc.id: float(vector @ query) for doc in cards if (vector := doc.card_vector()) is not None}


def _weights() -> RankWeights:
    return RankWeights(
        document=settings.SEARCH_DOCUMENT_WEIGHT, lexical=settings.SEARCH_LEXICAL_WEIGHT if settings.SEARCH_HYBRID else 0.0,
        neighbours=settings.SEARCH_PAGE_NEIGHBOURS, pages=settings.SEARCH_PAGES,
    )


def _ranking(held: _Held, vector: np.ndarray, query: str, k: int) -> tuple[list[int], dict[int, float]]:
    """Chunk ids of READY documents, best first (retrieval.ranking), and every candidate's cosine similarity."""
    bm25 = held.bm25 if settings.SEARCH_HYBRID else None  # the cache may hold one loaded before a switch-off
    weights = _weights()
    # A few extra even unranked: chunks of a document being deleted or re-indexed are filtered out.
    plain = bm25 is None and not weights.document and not weights.pages
    depth = k + 10 if plain else max(k + 10, settings.SEARCH_DEPTH)
    scores, ids = held.index.search(vector, min(held.index.ntotal, depth))
    cosine = {int(i): float(s) for i, s in zip(ids[0], scores[0], strict=True) if i >= 0}
    lexical_ids, lexical_scores = bm25.search(query, depth) if bm25 is not None else (np.zeros(0, np.int64), np.zeros(0))
    lexical_score = dict(zip(lexical_ids.tolist(), lexical_scores.tolist(), strict=True))
    owner = _ready_owners(list(dict.fromkeys([*cosine, *lexical_score])))
    cosine.update(_cosines([cid for cid in lexical_score if cid in owner and cid not in cosine], vector[0]))
    ranked = [cid for cid in dict.fromkeys([*cosine, *lexical_score]) if cid in owner and cid in cosine]
    card = _card_similarity({owner[cid][0] for cid in ranked}, vector[0]) if weights.document else {}
    candidates = Candidates(
        chunk_ids=np.asarray(ranked, dtype=np.int64),
        documents=np.asarray([owner[cid][0] for cid in ranked], dtype=np.int64),
        pages=np.asarray([owner[cid][1] for cid in ranked], dtype=np.int64),
        cosine=np.asarray([cosine[cid] for cid in ranked], dtype=np.float64),
        card=np.asarray([card.get(owner[cid][0], 0.0) for cid in ranked], dtype=np.float64),
        lexical=np.asarray([lexical_score.get(cid, 0.0) for cid in ranked], dtype=np.float64),
    )
    return candidates_rank(candidates, k=k, weights=weights), cosine


def _passages_read(top: list[int], cosine: dict[int, float], vector: np.ndarray) -> list[Passage]:
    """The passages of the chunk ids, in that order (a chunk deleted since it was ranked drops out)."""
    rows = {
        c.id: c
        for c in Chunk.objects.filter(id__in=top)
        .select_related("document")
        .only("id", "text", "page_start", "page_end", "section", "document__id", "document__original_name")
    }
    return [
        Passage(
            chunk_id=cid,
            document_id=rows[cid].document.id,
            document_name=rows[cid].document.original_name,
            page_start=rows[cid].page_start,
            page_end=rows[cid].page_end,
            text=rows[cid].text,
            section=rows[cid].section,
            score=cosine[cid],
        )
        for cid in top
        if cid in rows
    ]


def chunks_search(*, collection_id: int, query: str, k: int) -> list[Passage]:
    """The k passages of READY documents that best match the query, best first.

    Candidates: the top settings.SEARCH_DEPTH chunks by cosine similarity (FAISS) and, hybrid
    (settings.SEARCH_HYBRID), by BM25. retrieval.ranking scores each by its similarity, its document
    card's (ingestion.cards) and its BM25 score, weighted, then ranks pages by their best chunk and
    returns each page's best chunk first (settings.SEARCH_PAGES). A passage's score is always its own
    cosine similarity to the query, so thresholds on it mean the same in every mode.
    """
    t0 = time.perf_counter()
    held = shared(IndexReaders).get(collection_id)
    if held is None or held.index.ntotal == 0 or not query.strip():
        return []
    vector = embedder_get().embed([query])
    ranking, cosine = _ranking(held, vector, query, k)
    passages = _passages_read(ranking[:k], cosine, vector)
    log_event(
        logger, "search", collection=collection_id, k=k, hits=len(passages), hybrid=settings.SEARCH_HYBRID,
        ms=round((time.perf_counter() - t0) * 1000, 2),
    )
    return passages
