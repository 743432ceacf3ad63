"""BM25 lexical index over chunk texts: catches the names, tickers, quarters and years that vectors miss.

Like the FAISS file, it is a cache of the database: `index_sync` writes `v<N>.bm25.npz` beside `v<N>.faiss`
(whole, by retrieval.files.atomic_write) and readers load the pair for the version they see. No Django models here:
callers pass chunk ids and texts.

The file holds the document-major term counts (to add and remove chunks without re-reading every text)
and the term-major postings with each posting's BM25 weight precomputed, so a query is a sum of a few
posting arrays: a few milliseconds at 100k chunks, in numpy, without a dependency.
"""

from __future__ import annotations

import re
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from llm.lexicon import FUNCTION_WORDS
from retrieval.exceptions import IndexUnavailable
from retrieval.files import atomic_write

K1, B = 1.2, 0.75
# Runs of letters and digits of any script: "Gebühren", "contraseña", "東京" are words too.
_TOKEN = re.compile(r"[^\W_]+")
# A run mixing letters and digits also yields its parts ("FY2022" → fy2022 fy 2022, "2023Q2" → 2023q2
# 2023 q 2), as Lucene's word-delimiter filter does keeping the original: a question's "FY2022" then
# meets a file named "..._2022_10K" and a table headed "2022", while "Q2" still matches "Q2" whole.
_PARTS = re.compile(r"[^\W\d_]+|\d+")
# Bumped when `tokens` changes: a file written with other tokens is rebuilt, not mixed with new rows.
TOKENIZER_VERSION = 3


def tokens(text: str) -> list[str]:
    """Lower-cased runs of letters and digits minus stopwords, mixed runs also split ("Apple's Q2 2023 10-Q"
    → apple q2 q 2 2023 10 q; "Prämie für Überstunden" → prämie für überstunden)."""
    out: list[str] = []
    for word in _TOKEN.findall(text.lower()):
        if word in FUNCTION_WORDS:
            continue
        out.append(word)
        if not (word.isalpha() or word.isdigit()):
            parts = _PARTS.findall(word)
            if len(parts) > 1:
                out.extend(p for p in parts if p not in FUNCTION_WORDS)
    return out


def _csr_counts(docs: list[list[str]], vocab: dict[str, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per document: offsets into (term ids, counts); new words are appended to `vocab`."""
    offsets = np.zeros(len(docs) + 1, dtype=np.int64)
    terms: list[int] = []
    counts: list[int] = []
    for i, words in enumerate(docs):
        for word, n in Counter(words).items():
            terms.append(vocab.setdefault(word, len(vocab)))
            counts.append(n)
        offsets[i + 1] = len(terms)
    return offsets, np.asarray(terms, dtype=np.int32), np.asarray(counts, dtype=np.float32)


@dataclass(frozen=True)
class LexicalIndex:
    ids: np.ndarray  # chunk id per row, int64
    lengths: np.ndarray  # tokens per row, float32
    doc_offsets: np.ndarray  # row r's terms are doc_terms[doc_offsets[r]:doc_offsets[r + 1]]
    doc_terms: np.ndarray  # int32 term ids
    doc_counts: np.ndarray  # float32 term frequencies
    vocabulary: np.ndarray  # term id → word (unicode array)
    # Derived by `_postings`: term t's rows and BM25 weights are at [post_offsets[t]:post_offsets[t + 1]].
    post_offsets: np.ndarray = field(repr=False)
    post_rows: np.ndarray = field(repr=False)
    post_weights: np.ndarray = field(repr=False)
    _lookup: dict[str, int] = field(repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.ids)

    def search(self, query: str, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(chunk ids, BM25 scores) of the k best-scoring rows, best first; rows sharing no word are left out."""
        terms = sorted({self._lookup[w] for w in tokens(query) if w in self._lookup})
        if not terms or k <= 0 or not len(self.ids):
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        spans = [slice(self.post_offsets[t], self.post_offsets[t + 1]) for t in terms]
        rows = np.concatenate([self.post_rows[s] for s in spans])
        scores = np.bincount(rows, weights=np.concatenate([self.post_weights[s] for s in spans]), minlength=len(self.ids))
        hit = np.flatnonzero(scores)
        if len(hit) > k:
            hit = hit[np.argpartition(-scores[hit], k - 1)[:k]]
        hit = hit[np.argsort(-scores[hit], kind="stable")]
        return self.ids[hit], scores[hit].astype(np.float32)


def _postings(ids: np.ndarray, lengths: np.ndarray, doc_offsets: np.ndarray, doc_terms: np.ndarray,
              doc_counts: np.ndarray, vocabulary: np.ndarray) -> LexicalIndex:
    """Term-major postings with Okapi BM25 weights (idf of Lucene, which is never negative)."""
    n_rows, n_terms = len(ids), len(vocabulary)
    rows = np.repeat(np.arange(n_rows, dtype=np.int32), np.diff(doc_offsets))
    order = np.argsort(doc_terms, kind="stable")
    df = np.bincount(doc_terms, minlength=n_terms).astype(np.float64)
    idf = np.log1p((n_rows - df + 0.5) / (df + 0.5))
    avg = float(lengths.mean()) if n_rows else 1.0
    tf = doc_counts[order].astype(np.float64)
    norm = K1 * (1 - B + B * lengths[rows[order]] / max(avg, 1e-9))
    weights = (idf[doc_terms[order]] * tf * (K1 + 1) / (tf + norm)).astype(np.float32)
    post_offsets = np.zeros(n_terms + 1, dtype=np.int64)
    np.cumsum(df.astype(np.int64), out=post_offsets[1:])
    lookup = {str(w): i for i, w in enumerate(vocabulary.tolist())}
    return LexicalIndex(ids, lengths, doc_offsets, doc_terms, doc_counts, vocabulary,
                        post_offsets, rows[order], weights, lookup)


def lexical_build(*, ids: np.ndarray, texts: list[str]) -> LexicalIndex:
    vocab: dict[str, int] = {}
    docs = [tokens(t) for t in texts]
    offsets, terms, counts = _csr_counts(docs, vocab)
    lengths = np.asarray([len(d) for d in docs], dtype=np.float32)
    vocabulary = np.asarray(list(vocab), dtype=str) if vocab else np.zeros(0, dtype="<U1")
    return _postings(np.asarray(ids, dtype=np.int64), lengths, offsets, terms, counts, vocabulary)


def lexical_update(index: LexicalIndex, *, remove_ids: np.ndarray, add_ids: np.ndarray, add_texts: list[str]) -> LexicalIndex:
    """A new index without `remove_ids` and with the added rows; the kept rows are not re-tokenized."""
    keep = ~np.isin(index.ids, remove_ids)
    sizes = np.diff(index.doc_offsets)
    kept_mask = np.repeat(keep, sizes)
    vocab = dict(index._lookup)
    docs = [tokens(t) for t in add_texts]
    offsets, terms, counts = _csr_counts(docs, vocab)
    all_sizes = np.concatenate([sizes[keep], np.diff(offsets)])
    doc_offsets = np.zeros(len(all_sizes) + 1, dtype=np.int64)
    np.cumsum(all_sizes, out=doc_offsets[1:])
    # Words no kept or added row uses stay in the vocabulary with empty postings: harmless, and a
    # rebuild (rebuild_index) drops them.
    vocabulary = np.asarray(list(vocab), dtype=str) if vocab else np.zeros(0, dtype="<U1")
    return _postings(
        np.concatenate([index.ids[keep], np.asarray(add_ids, dtype=np.int64)]),
        np.concatenate([index.lengths[keep], np.asarray([len(d) for d in docs], dtype=np.float32)]),
        doc_offsets,
        np.concatenate([index.doc_terms[kept_mask], terms]),
        np.concatenate([index.doc_counts[kept_mask], counts]),
        vocabulary,
    )


def lexical_path(*, root: Path, collection_id: int, version: int) -> Path:
    return root / str(collection_id) / f"v{version}.bm25.npz"


def lexical_save(index: LexicalIndex, *, path: Path) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "wb") as fh:
            np.savez(
                fh, ids=index.ids, lengths=index.lengths, doc_offsets=index.doc_offsets, doc_terms=index.doc_terms,
                doc_counts=index.doc_counts, vocabulary=index.vocabulary, post_offsets=index.post_offsets,
                post_rows=index.post_rows, post_weights=index.post_weights,
                tokenizer=np.asarray(TOKENIZER_VERSION),
            )

    atomic_write(path, write)


def lexical_load(*, path: Path) -> LexicalIndex:
    if not path.exists():
        raise IndexUnavailable(f"lexical index file {path} is missing")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
        version = int(arrays.pop("tokenizer", 1))
        if version != TOKENIZER_VERSION:
            raise IndexUnavailable(f"lexical index file {path} was built with tokenizer {version}, not {TOKENIZER_VERSION}")
        lookup = {str(w): i for i, w in enumerate(arrays["vocabulary"].tolist())}
        return LexicalIndex(**arrays, _lookup=lookup)
    except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile) as exc:
        raise IndexUnavailable(f"lexical index file {path} is damaged ({str(exc)[:200]})") from exc
