"""Retrieval latency at 10k, 100k and 1M chunks on synthetic unit vectors (384-d, as MiniLM's), and index memory.

The vector search alone: our FAISS wrapper (`retrieval.faiss_store`, the same calls `chunks_search`
makes) with the default factory "Flat" (exact) and "HNSW32" (approximate, settable with
RAG_FAISS_INDEX_FACTORY), and LangChain's FAISS store (IndexFlatL2 plus its Python docstore).
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from bench.common import percentile, rss_mb

DIM = 384


def _unit(rng: np.random.Generator, n: int) -> np.ndarray:
    v = rng.standard_normal((n, DIM), dtype=np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return v


def _stats(samples: list[float]) -> dict[str, float]:
    return {"p50_ms": round(percentile(samples, 50), 3), "p99_ms": round(percentile(samples, 99), 3), "n": len(samples)}


def _ours(vectors: np.ndarray, queries: np.ndarray, factory: str, k: int) -> dict[str, Any]:
    import faiss

    from retrieval import faiss_store

    gc.collect()
    before = rss_mb()
    t0 = time.perf_counter()
    index = faiss_store.index_new(dimension=DIM, factory=factory)
    faiss_store.index_add(index, ids=np.arange(len(vectors), dtype=np.int64), vectors=vectors)
    build_s = time.perf_counter() - t0
    memory = rss_mb() - before
    samples = []
    found = []
    for q in queries:
        t = time.perf_counter()
        _, ids = index.search(q[None, :], k + 10)  # chunks_search asks for k + 10
        samples.append((time.perf_counter() - t) * 1000)
        found.append(ids[0][:k])
    out = {"build_s": round(build_s, 2), "index_rss_mb": round(memory, 1),
           "file_mb": round(len(faiss.serialize_index(index)) / 1024 / 1024, 1), **_stats(samples)}
    del index
    gc.collect()
    return {**out, "_found": found}


def _langchain(vectors: np.ndarray, queries: np.ndarray, k: int) -> dict[str, Any]:
    from langchain_community.vectorstores import FAISS
    from langchain_core.embeddings import Embeddings

    class _Unused(Embeddings):
        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            raise NotImplementedError

        def embed_query(self, text: str) -> list[float]:
            raise NotImplementedError

    gc.collect()
    before = rss_mb()
    t0 = time.perf_counter()
    store = FAISS.from_embeddings(((f"chunk {i}", v) for i, v in enumerate(vectors.tolist())), _Unused())
    build_s = time.perf_counter() - t0
    memory = rss_mb() - before
    samples = []
    for q in queries:
        qv = q.tolist()
        t = time.perf_counter()
        store.similarity_search_by_vector(qv, k=k)
        samples.append((time.perf_counter() - t) * 1000)
    del store
    gc.collect()
    return {"build_s": round(build_s, 2), "index_rss_mb": round(memory, 1), **_stats(samples)}


def latency_bench(*, sizes: list[int], queries: int, hnsw_max: int, langchain_max: int, log: Callable[[str], None]) -> dict[str, Any]:
    import faiss

    rng = np.random.default_rng(7)
    k = 5
    result: dict[str, Any] = {"dimension": DIM, "k": k, "queries": queries, "faiss_threads": faiss.omp_get_max_threads(), "sizes": {}}
    for n in sizes:
        vectors = _unit(rng, n)
        # Queries near stored vectors, as real queries are near their passages (a pure random query
        # would make HNSW's recall look worse than it is).
        picks = rng.integers(0, n, queries)
        qs = vectors[picks] + 0.5 * _unit(rng, queries) / np.sqrt(DIM) * 4
        qs = (qs / np.linalg.norm(qs, axis=1, keepdims=True)).astype(np.float32)
        row: dict[str, Any] = {}
        flat = _ours(vectors, qs, "Flat", k)
        truth = flat.pop("_found")
        row["ours_flat"] = flat
        if n <= hnsw_max:
            hnsw = _ours(vectors, qs, "HNSW32", k)
            found = hnsw.pop("_found")
            hnsw["recall_vs_flat@5"] = round(float(np.mean([len(set(a) & set(b)) / k for a, b in zip(found, truth, strict=True)])), 4)
            row["ours_hnsw32"] = hnsw
        if n <= langchain_max:
            row["langchain_faiss"] = _langchain(vectors, qs, k)
        result["sizes"][str(n)] = row
        log(f"  latency {n}: " + ", ".join(f"{name} p50 {v['p50_ms']} ms" for name, v in row.items()))
        del vectors
        gc.collect()
    return result
