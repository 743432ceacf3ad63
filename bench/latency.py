"""Retrieval latency at 10k, 100k and 1M chunks, index memory, and the recall approximate indexes keep.

Vectors: real all-MiniLM-L6-v2 embeddings of PolicyQA paragraphs, mixed two at a time with a little noise
to reach each size (uniform random vectors have none of real embeddings' clustering, which flatters
some indexes and punishes others); queries: the embeddings of real PolicyQA questions.

The vector search alone: our FAISS wrapper (`retrieval.faiss_store`, the same calls `chunks_search`
makes) with the default "auto" factory (exact Flat below RAG_FAISS_IVF_MIN_VECTORS, an inverted file
above), exact "Flat" (the truth for recall) and "HNSW32" (settable with RAG_FAISS_INDEX_FACTORY), and
LangChain's FAISS store (IndexFlatL2 plus its Python docstore).
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from bench.common import POLICYQA_DEV, Skipped, percentile, rss_mb

DIM = 384
SEEDS = 1500  # real paragraphs embedded as the material of the synthetic collection
NOISE = 0.025  # per dimension: about half the length of a unit vector in all
DEPTH = 50  # candidates chunks_search asks the index for (RAG_SEARCH_DEPTH), then ranks the top k


def _normalize(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


def _real_embeddings(queries: int) -> tuple[np.ndarray, np.ndarray]:
    """(paragraph vectors, question vectors) from PolicyQA dev, by the bundled embedder."""
    import json

    from ingestion.embedding import embedder_get

    if not POLICYQA_DEV.exists():
        raise Skipped(f"{POLICYQA_DEV} is absent (the shared eval data)")
    data = json.loads(POLICYQA_DEV.read_text(encoding="utf-8"))["data"]
    paragraphs = [p["context"] for policy in data for p in policy["paragraphs"]]
    questions = [qa["question"] for policy in data for p in policy["paragraphs"] for qa in p["qas"]]
    rng = np.random.default_rng(11)
    paragraphs = [paragraphs[i] for i in rng.choice(len(paragraphs), min(SEEDS, len(paragraphs)), replace=False)]
    questions = [questions[i] for i in rng.choice(len(questions), min(queries, len(questions)), replace=False)]
    embedder = embedder_get()
    return embedder.embed(paragraphs, batch_size=32), embedder.embed(questions, batch_size=32)


def _collection(rng: np.random.Generator, seeds: np.ndarray, n: int) -> np.ndarray:
    """n unit vectors, each a random blend of two real embeddings plus noise, built in slices (1M fits)."""
    out = np.empty((n, DIM), dtype=np.float32)
    for start in range(0, n, 100_000):
        m = min(100_000, n - start)
        a, b = rng.integers(0, len(seeds), m), rng.integers(0, len(seeds), m)
        w = rng.uniform(0.5, 1.0, (m, 1)).astype(np.float32)
        v = w * seeds[a] + (1 - w) * seeds[b] + rng.normal(0, NOISE, (m, DIM)).astype(np.float32)
        out[start : start + m] = _normalize(v)
    return out


def _stats(samples: list[float]) -> dict[str, float]:
    return {"p50_ms": round(percentile(samples, 50), 3), "p99_ms": round(percentile(samples, 99), 3), "n": len(samples)}


def _ours(vectors: np.ndarray, queries: np.ndarray, factory: str, k: int) -> dict[str, Any]:
    import faiss
    from django.conf import settings

    from retrieval import faiss_store

    if factory == "auto":
        factory = faiss_store.factory_choose(vectors=len(vectors), setting="auto", current="", ivf_min=settings.FAISS_IVF_MIN_VECTORS)
    gc.collect()
    before = rss_mb()
    t0 = time.perf_counter()
    index = faiss_store.index_new(dimension=DIM, factory=factory)
    faiss_store.index_add(index, ids=np.arange(len(vectors), dtype=np.int64), vectors=vectors)
    faiss_store.index_tune(index, nprobe=0)  # the default, as chunks_search loads it
    build_s = time.perf_counter() - t0
    memory = rss_mb() - before
    samples = []
    found = []
    for q in queries:
        t = time.perf_counter()
        _, ids = index.search(q[None, :], DEPTH)
        samples.append((time.perf_counter() - t) * 1000)
        found.append(ids[0][:k])
    out = {"factory": factory, "build_s": round(build_s, 2), "index_rss_mb": round(memory, 1),
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
    seeds, qs = _real_embeddings(queries)
    result: dict[str, Any] = {
        "dimension": DIM, "k": k, "queries": len(qs), "faiss_threads": faiss.omp_get_max_threads(), "sizes": {},
        "vectors": f"blends of {len(seeds)} real MiniLM paragraph embeddings (noise {NOISE}/dim); queries: real questions",
    }
    for n in sizes:
        vectors = _collection(rng, seeds, n)
        row: dict[str, Any] = {}
        flat = _ours(vectors, qs, "Flat", k)
        truth = flat.pop("_found")
        approximate = {"ours_auto": "auto", **({"ours_hnsw32": "HNSW32"} if n <= hnsw_max else {})}
        for name, factory in approximate.items():
            found_by = _ours(vectors, qs, factory, k)
            found = found_by.pop("_found")
            found_by["recall_vs_flat@5"] = round(float(np.mean([len(set(a) & set(b)) / k for a, b in zip(found, truth, strict=True)])), 4)
            row[name] = found_by
        row["ours_flat"] = flat
        if n <= langchain_max:
            row["langchain_faiss"] = _langchain(vectors, qs, k)
        result["sizes"][str(n)] = row
        log(f"  latency {n}: " + ", ".join(f"{name} p50 {v['p50_ms']} ms" for name, v in row.items()))
        del vectors
        gc.collect()
    return result
