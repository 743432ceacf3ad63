"""Retrieval quality: 10-Q document-level recall@k and MRR, PolicyQA paragraph recall@k and answer coverage.

Any object with `search(query, k) -> [(document name, passage text), ...]` can be measured, so ours and
the LangChain baseline go through the same scoring code.
"""

from __future__ import annotations

import csv
import fnmatch
import hashlib
import json
import re
from collections.abc import Callable
from typing import Any, Protocol

from bench.common import POLICYQA_DEV, SEC_DIR

KS = (5, 10)


class Searcher(Protocol):
    def search(self, query: str, k: int) -> list[tuple[str, str]]: ...


def sec_questions(*, files: list[str], limit: int | None) -> list[tuple[str, set[str]]]:
    """(question, names of the relevant files among `files`) for the questions with at least one."""
    out: list[tuple[str, set[str]]] = []
    with (SEC_DIR / "qna_data.csv").open(encoding="utf-8-sig", newline="") as fh:
        for row in csv.DictReader(fh):
            pattern = row["Source Docs"].strip()
            relevant = {f for f in files if fnmatch.fnmatch(f, pattern) or fnmatch.fnmatch(f, pattern + ".pdf")}
            if relevant:
                out.append((row["Question"].strip(), relevant))
    return out[:limit] if limit else out


def _scores(ranked: list[str], relevant: set[str]) -> dict[str, float]:
    """Document-level: recall@k = share of the relevant files among the top-k passages' files."""
    out: dict[str, float] = {}
    for k in KS:
        top = set(ranked[:k])
        out[f"recall@{k}"] = len(top & relevant) / len(relevant)
        out[f"hit@{k}"] = float(bool(top & relevant))
    first = next((i for i, name in enumerate(ranked) if name in relevant), None)
    out["mrr"] = 0.0 if first is None else 1.0 / (first + 1)
    return out


def _mean(rows: list[dict[str, float]]) -> dict[str, float]:
    return {key: round(sum(r[key] for r in rows) / len(rows), 4) for key in rows[0]} if rows else {}


def sec_quality(*, systems: dict[str, Searcher], questions: list[tuple[str, set[str]]], excluded: dict[str, set[str]]) -> dict[str, Any]:
    """Scores per system over all questions, and over those whose relevant files every system could open."""
    k = max(KS)
    common = [q for q in questions if not any(q[1] & bad for bad in excluded.values())]
    result: dict[str, Any] = {"questions": len(questions), "questions_all_systems_opened": len(common)}
    for name, system in systems.items():
        rows, rows_common = [], []
        for question, relevant in questions:
            ranked = [doc for doc, _ in system.search(question, k)]
            score = _scores(ranked, relevant)
            rows.append(score)
            if (question, relevant) in common:
                rows_common.append(score)
        result[name] = {"all": _mean(rows), "opened_by_all": _mean(rows_common)}
    return result


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().lower()


def policy_load(*, title: str | None) -> dict[str, Any]:
    data = json.loads(POLICYQA_DEV.read_text(encoding="utf-8"))["data"]
    if title:
        return next(p for p in data if p["title"] == title)
    return max(data, key=lambda p: sum(len(par["qas"]) for par in p["paragraphs"]))


class PolicyCollection:
    """One policy as a collection: each paragraph is a 'page', chunked and embedded by our own code."""

    def __init__(self, paragraphs: list[str], *, slug: str = "bench-policyqa") -> None:
        from django.conf import settings

        from ingestion.chunking import chunks_split
        from ingestion.embedding import embedder_get
        from ingestion.models import Chunk, Collection, Document
        from retrieval.services import index_sync

        embedder = embedder_get()
        drafts = chunks_split(
            pages=[(i + 1, p) for i, p in enumerate(paragraphs)], count_tokens=embedder.token_count,
            chunk_tokens=settings.CHUNK_TOKENS, overlap_tokens=settings.CHUNK_OVERLAP_TOKENS,
        )
        vectors = embedder.embed([d.text for d in drafts], batch_size=settings.EMBED_BATCH_SIZE)
        self.collection = Collection.objects.create(name=slug, slug=slug)
        blob = "\n".join(paragraphs).encode()
        document = Document.objects.create(
            collection=self.collection, original_name="policy", sha256=hashlib.sha256(blob).hexdigest(),
            size=len(blob), status=Document.Status.READY,
        )
        Chunk.objects.bulk_create([
            Chunk(document=document, ordinal=d.ordinal, text=d.text, page_start=d.page_start, page_end=d.page_end,
                  token_count=d.token_count, embedding=vectors[i].astype("<f4").tobytes())
            for i, d in enumerate(drafts)
        ])
        index_sync(collection_id=self.collection.id)

    def search(self, query: str, k: int) -> list[tuple[int, str]]:
        from retrieval.services import chunks_search

        return [(p.page_start - 1, p.text) for p in chunks_search(collection_id=self.collection.id, query=query, k=k)]


class _BaselinePolicy:
    def __init__(self, paragraphs: list[str], embeddings: Any) -> None:
        from langchain_community.vectorstores import FAISS
        from langchain_text_splitters import RecursiveCharacterTextSplitter

        splitter = RecursiveCharacterTextSplitter(chunk_size=1000, chunk_overlap=200)
        docs = splitter.create_documents(paragraphs, metadatas=[{"paragraph": i} for i in range(len(paragraphs))])
        self.store = FAISS.from_documents(docs, embeddings)

    def search(self, query: str, k: int) -> list[tuple[int, str]]:
        return [(int(d.metadata["paragraph"]), d.page_content) for d in self.store.similarity_search(query, k=k)]


def policyqa_quality(*, baseline_embeddings: Any, title: str | None, limit: int | None, log: Callable[[str], None]) -> dict[str, Any]:
    policy = policy_load(title=title)
    paragraphs = [p["context"] for p in policy["paragraphs"]]
    qas = [(qa["question"], i, [a["text"] for a in qa["answers"]]) for i, p in enumerate(policy["paragraphs"]) for qa in p["qas"]]
    qas = qas[:limit] if limit else qas
    systems: dict[str, Any] = {"ours": PolicyCollection(paragraphs), "baseline": _BaselinePolicy(paragraphs, baseline_embeddings)}
    result: dict[str, Any] = {"policy": policy["title"], "paragraphs": len(paragraphs), "questions": len(qas)}
    for name, system in systems.items():
        rows = []
        for question, gold, answers in qas:
            hits = system.search(question, max(KS))
            row: dict[str, float] = {}
            for k in KS:
                row[f"paragraph_recall@{k}"] = float(any(p == gold for p, _ in hits[:k]))
                text = _norm(" ".join(t for _, t in hits[:k]))
                row[f"answer_in_passages@{k}"] = float(any(_norm(a) in text for a in answers))
            rows.append(row)
        result[name] = _mean(rows)
        log(f"  policyqa {name}: {result[name]}")
    return result
