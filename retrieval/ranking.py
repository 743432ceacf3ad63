"""Ranking of search candidates: chunk scores, then pages as the unit, then each page's best chunks.

In a 300-page filing the answer sits on one page, and a page is cut into several chunks: a table's rows
in one, its title in another. So a chunk's score (its cosine similarity to the question, plus weighted
the question's similarity to the chunk's document card and the chunk's BM25 score) is first turned into
a page score (the page's best chunk, plus weighted the best chunk of the pages beside it: a statement's
notes, a table continued overleaf), pages are ordered by it, and the passages returned are each page's
best chunk in that order (a page's second chunk only once every candidate page has given one).

Pure numpy: `retrieval.services.chunks_search` gathers the candidates (FAISS and BM25) and their owners.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class RankWeights:
    document: float = 0.5  # the document card's similarity to the question
    lexical: float = 0.0  # BM25, scaled so the query's best candidate has 1
    neighbours: float = 0.0  # the best chunk of the page before or after
    pages: bool = True  # one passage per page first (pages as the unit), else chunks in score order


@dataclass(frozen=True)
class Candidates:
    """One row per candidate chunk."""

    chunk_ids: np.ndarray  # int64
    documents: np.ndarray  # int64 document ids
    pages: np.ndarray  # int64 page numbers (a chunk's first page)
    cosine: np.ndarray  # float, the chunk's cosine similarity to the question
    card: np.ndarray  # float, its document card's cosine similarity to the question (0 without a card)
    lexical: np.ndarray  # float, BM25 score (0 where the chunk shares no word with the question)


def chunk_scores(c: Candidates, w: RankWeights) -> np.ndarray:
    score = c.cosine + w.document * c.card
    top = float(c.lexical.max()) if len(c.lexical) else 0.0
    if w.lexical and top > 0:
        score = score + w.lexical * c.lexical / top
    return score


def page_scores(c: Candidates, score: np.ndarray, w: RankWeights) -> dict[tuple[int, int], float]:
    """(document, page) → its best chunk's score plus `neighbours` times the best of the pages beside it."""
    best: dict[tuple[int, int], float] = {}
    for doc, page, s in zip(c.documents.tolist(), c.pages.tolist(), score.tolist(), strict=True):
        key = (doc, page)
        if s > best.get(key, -np.inf):
            best[key] = s
    if not w.neighbours:
        return best
    out: dict[tuple[int, int], float] = {}
    for (doc, page), s in best.items():
        beside = max(best.get((doc, page - 1), 0.0), best.get((doc, page + 1), 0.0))
        out[(doc, page)] = s + w.neighbours * beside
    return out


def candidates_rank(c: Candidates, *, k: int, weights: RankWeights) -> list[int]:
    """The chunk ids of the k best passages, best first."""
    if not len(c.chunk_ids):
        return []
    score = chunk_scores(c, weights)
    order = np.argsort(-score, kind="stable")
    if not weights.pages:
        return [int(c.chunk_ids[i]) for i in order[:k]]
    pages = page_scores(c, score, weights)
    by_page: dict[tuple[int, int], list[int]] = {}
    for i in order.tolist():  # each page's chunks, best first
        by_page.setdefault((int(c.documents[i]), int(c.pages[i])), []).append(i)
    ranked_pages = sorted(by_page, key=lambda key: -pages[key])
    out: list[int] = []
    depth = 0
    while len(out) < k and any(len(by_page[p]) > depth for p in ranked_pages):
        for key in ranked_pages:
            if depth < len(by_page[key]):
                out.append(int(c.chunk_ids[by_page[key][depth]]))
                if len(out) == k:
                    break
        depth += 1
    return out
