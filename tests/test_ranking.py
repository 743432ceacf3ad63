"""retrieval.ranking: chunk scores, page scores with neighbours, one passage per page first."""

from __future__ import annotations

import numpy as np

from retrieval.ranking import Candidates, RankWeights, candidates_rank, chunk_scores, page_scores


def _candidates(rows: list[tuple[int, int, int, float, float, float]]) -> Candidates:
    """rows of (chunk id, document, page, cosine, card, lexical)."""
    a = np.array(rows, dtype=float)
    return Candidates(a[:, 0].astype(np.int64), a[:, 1].astype(np.int64), a[:, 2].astype(np.int64), a[:, 3], a[:, 4], a[:, 5])


def test_chunk_score_adds_weighted_card_and_scaled_bm25() -> None:
    c = _candidates([(1, 1, 1, 0.5, 0.2, 10.0), (2, 1, 2, 0.4, 0.2, 5.0), (3, 2, 1, 0.6, 0.0, 0.0)])
    score = chunk_scores(c, RankWeights(document=0.5, lexical=0.2))
    np.testing.assert_allclose(score, [0.5 + 0.1 + 0.2, 0.4 + 0.1 + 0.1, 0.6])
    # Without BM25 hits the lexical weight adds nothing (no division by zero).
    quiet = _candidates([(1, 1, 1, 0.5, 0.0, 0.0)])
    np.testing.assert_allclose(chunk_scores(quiet, RankWeights(document=0.5, lexical=0.3)), [0.5])


def test_page_score_is_its_best_chunk_plus_the_best_neighbour() -> None:
    c = _candidates([(1, 7, 10, 0.5, 0, 0), (2, 7, 10, 0.7, 0, 0), (3, 7, 11, 0.4, 0, 0), (4, 7, 13, 0.9, 0, 0), (5, 8, 9, 0.6, 0, 0)])
    w = RankWeights(document=0.0, neighbours=0.5)
    pages = page_scores(c, chunk_scores(c, w), w)
    assert pages[(7, 10)] == 0.7 + 0.5 * 0.4
    assert pages[(7, 11)] == 0.4 + 0.5 * 0.7
    assert pages[(7, 13)] == 0.9  # page 12 is no candidate
    assert pages[(8, 9)] == 0.6  # page 10 of another document is no neighbour


def test_one_passage_per_page_before_any_page_gives_a_second() -> None:
    # Page 1 has the three best chunks; pages 2 and 3 one each.
    c = _candidates([(1, 1, 1, 0.9, 0, 0), (2, 1, 1, 0.85, 0, 0), (3, 1, 1, 0.8, 0, 0), (4, 1, 2, 0.7, 0, 0), (5, 1, 3, 0.6, 0, 0)])
    assert candidates_rank(c, k=4, weights=RankWeights(document=0.0)) == [1, 4, 5, 2]
    assert candidates_rank(c, k=4, weights=RankWeights(document=0.0, pages=False)) == [1, 2, 3, 4]
    assert candidates_rank(c, k=10, weights=RankWeights(document=0.0)) == [1, 4, 5, 2, 3]


def test_a_page_with_strong_neighbours_outranks_a_lone_page() -> None:
    c = _candidates([(1, 1, 5, 0.60, 0, 0), (2, 1, 6, 0.58, 0, 0), (3, 2, 40, 0.62, 0, 0)])
    assert candidates_rank(c, k=1, weights=RankWeights(document=0.0))[0] == 3
    assert candidates_rank(c, k=1, weights=RankWeights(document=0.0, neighbours=0.2))[0] == 1


def test_card_similarity_lifts_the_document_the_question_names() -> None:
    c = _candidates([(1, 1, 1, 0.60, 0.1, 0), (2, 2, 1, 0.55, 0.5, 0)])
    assert candidates_rank(c, k=1, weights=RankWeights(document=0.0))[0] == 1
    assert candidates_rank(c, k=1, weights=RankWeights(document=0.5))[0] == 2


def test_no_candidates_no_passages() -> None:
    empty = np.zeros(0)
    assert candidates_rank(Candidates(empty.astype(np.int64), empty.astype(np.int64), empty.astype(np.int64), empty, empty, empty), k=3, weights=RankWeights()) == []
