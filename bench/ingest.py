"""Ingestion throughput, upload to searchable: our pipeline against the LangChain baseline, file by file.

The two alternate per file (and swap who goes first each file) in one process, so machine noise hits
both alike. Models are loaded before timing: a worker loads its model once, not per document.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.common import rss_peak

CHUNK_CHARS, OVERLAP_CHARS = 1000, 200  # the baseline's RecursiveCharacterTextSplitter(1000, 200)


@dataclass
class SystemRun:
    files_ok: int = 0
    failed: list[str] = field(default_factory=list)
    pages: int = 0
    chunks: int = 0
    seconds: float = 0.0
    stages: dict[str, float] = field(default_factory=dict)
    peak_growth_mb: float = 0.0
    peak_rss_mb: float = 0.0
    table_pages: int = 0  # pages whose text passed the table pre-check (ours)
    tables: int = 0

    def figures(self) -> dict[str, Any]:
        s = max(self.seconds, 1e-9)
        return {
            "files_ok": self.files_ok, "files_failed": self.failed, "pages": self.pages, "chunks": self.chunks,
            "seconds": round(self.seconds, 2), "pages_per_s": round(self.pages / s, 2),
            "chunks_per_s": round(self.chunks / s, 2),
            "stage_seconds": {k: round(v, 2) for k, v in self.stages.items()},
            "embed_share": round(self.stages.get("embed", 0.0) / s, 3),
            "peak_rss_growth_mb": round(self.peak_growth_mb, 1), "peak_rss_mb": round(self.peak_rss_mb, 1),
            **({"tables": {
                "pages_checked": self.table_pages, "share_checked": round(self.table_pages / max(self.pages, 1), 3),
                "tables_found": self.tables, "seconds": round(self.stages.get("tables", 0.0), 2),
                "seconds_per_checked_page": round(self.stages.get("tables", 0.0) / max(self.table_pages, 1), 4),
                "share_of_time": round(self.stages.get("tables", 0.0) / s, 3),
            }} if self.table_pages else {}),
        }


def _timing(fn: Callable[..., Any], key: str) -> Callable[..., Any]:
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            _STAGES[key] = _STAGES.get(key, 0.0) + time.perf_counter() - t0

    return wrapped


# Where the stage timings of our pipeline go: the Ours instance ingesting now (several sections may
# each make one in one process, and the wrappers below are installed once).
_STAGES: dict[str, float] = {}
_COUNTS: dict[str, int] = {}
_PATCHED: list[bool] = []


def _stages_patch() -> None:
    """Stage timings: wrap what document_ingest calls (bench-only patches of this process), once."""
    if _PATCHED:
        return
    import ingestion.services as services
    import retrieval.services as retrieval
    from ingestion.embedding import embedder_get

    embedder = embedder_get()
    services._parse = _timing(services._parse, "parse")  # type: ignore[attr-defined]
    services.chunks_split = _timing(services.chunks_split, "chunk")  # type: ignore[attr-defined]
    retrieval.index_sync = _timing(retrieval.index_sync, "index")  # type: ignore[attr-defined]
    embedder.embed = _timing(embedder.embed, "embed")  # type: ignore[method-assign]
    # Table finding (inside parsing): the pages that passed the pre-check, the tables found, the time.
    import ingestion.parsers.pdf as pdf

    layout, find = _timing(pdf.page_layout, "tables"), _timing(pdf.tables_find, "tables")

    def page_layout(*args: Any, **kwargs: Any) -> Any:
        _COUNTS["table_pages"] = _COUNTS.get("table_pages", 0) + 1
        return layout(*args, **kwargs)

    def tables_find(*args: Any, **kwargs: Any) -> Any:
        found = find(*args, **kwargs)
        _COUNTS["tables"] = _COUNTS.get("tables", 0) + len(found)
        return found

    pdf.page_layout = page_layout  # type: ignore[assignment]
    pdf.tables_find = tables_find  # type: ignore[assignment]
    _PATCHED.append(True)


class Ours:
    """document rows created as an upload would, then `document_ingest` in this process."""

    def __init__(self, collection_name: str = "bench-10q") -> None:
        from django.utils.text import slugify

        from ingestion.embedding import embedder_get
        from ingestion.models import Collection

        self.run = SystemRun()
        self.collection = Collection.objects.create(name=collection_name, slug=slugify(collection_name))
        embedder_get().warm_up()
        _stages_patch()

    def ingest(self, path: Path) -> None:
        from django.core.files import File

        from ingestion.models import Document
        from ingestion.services import document_ingest

        _STAGES.clear()
        _COUNTS.clear()
        with rss_peak() as peak:
            t0 = time.perf_counter()
            data = path.read_bytes()
            document = Document(
                collection=self.collection, original_name=path.name, sha256=hashlib.sha256(data).hexdigest(), size=len(data)
            )
            with path.open("rb") as fh:
                document.file.save(f"{document.sha256}.pdf", File(fh), save=True)
            done = document_ingest(document_id=document.id)
            self.run.seconds += time.perf_counter() - t0
        for key, seconds in _STAGES.items():
            self.run.stages[key] = self.run.stages.get(key, 0.0) + seconds
        self.run.table_pages += _COUNTS.get("table_pages", 0)
        self.run.tables += _COUNTS.get("tables", 0)
        self._memory(peak.growth_mb, peak.peak_mb)
        if done.status != Document.Status.READY:
            self.run.failed.append(f"{path.name}: {done.error}")
            return
        self.run.files_ok += 1
        self.run.pages += done.page_count or 0
        self.run.chunks += done.chunks.count()

    def _memory(self, growth: float, peak: float) -> None:
        self.run.peak_growth_mb = max(self.run.peak_growth_mb, growth)
        self.run.peak_rss_mb = max(self.run.peak_rss_mb, peak)

    def search(self, query: str, k: int) -> list[tuple[str, str]]:
        from retrieval.services import chunks_search

        return [(p.document_name, p.text) for p in chunks_search(collection_id=self.collection.id, query=query, k=k)]

    def search_pages(self, query: str, k: int) -> list[tuple[str, int]]:
        """(file name, 1-based page) of the k best passages, best first."""
        from retrieval.services import chunks_search

        return [(p.document_name, p.page_start) for p in chunks_search(collection_id=self.collection.id, query=query, k=k)]


class Baseline:
    """What most users write: PyPDFLoader + RecursiveCharacterTextSplitter(1000, 200) + HuggingFaceEmbeddings + FAISS."""

    def __init__(self) -> None:
        from langchain_huggingface import HuggingFaceEmbeddings
        from langchain_text_splitters import RecursiveCharacterTextSplitter

        from ingestion.embedding import bundled_model_path

        self.run = SystemRun()
        self.embeddings = HuggingFaceEmbeddings(model_name=str(bundled_model_path()), model_kwargs={"device": "cpu"})
        self.embeddings.embed_query("warm up")
        self.splitter = RecursiveCharacterTextSplitter(chunk_size=CHUNK_CHARS, chunk_overlap=OVERLAP_CHARS)
        self.store: Any = None
        stages = self.run.stages
        embed = self.embeddings.embed_documents

        def timed_embed(texts: list[str]) -> list[list[float]]:
            t0 = time.perf_counter()
            try:
                return embed(texts)
            finally:
                stages["embed"] = stages.get("embed", 0.0) + time.perf_counter() - t0

        object.__setattr__(self.embeddings, "embed_documents", timed_embed)

    def ingest(self, path: Path) -> None:
        from langchain_community.document_loaders import PyPDFLoader
        from langchain_community.vectorstores import FAISS

        with rss_peak() as peak:
            t0 = time.perf_counter()
            try:
                t = time.perf_counter()
                pages = PyPDFLoader(str(path)).load()
                self.run.stages["parse"] = self.run.stages.get("parse", 0.0) + time.perf_counter() - t
                t = time.perf_counter()
                chunks = self.splitter.split_documents(pages)
                self.run.stages["chunk"] = self.run.stages.get("chunk", 0.0) + time.perf_counter() - t
                if self.store is None:
                    self.store = FAISS.from_documents(chunks, self.embeddings)
                else:
                    self.store.add_documents(chunks)
            except Exception as exc:  # noqa: BLE001 - the baseline's failures are a figure, not a crash
                self.run.seconds += time.perf_counter() - t0
                self.run.failed.append(f"{path.name}: {type(exc).__name__}: {str(exc)[:160]}")
                return
            self.run.seconds += time.perf_counter() - t0
        self.run.peak_growth_mb = max(self.run.peak_growth_mb, peak.growth_mb)
        self.run.peak_rss_mb = max(self.run.peak_rss_mb, peak.peak_mb)
        self.run.files_ok += 1
        self.run.pages += len(pages)
        self.run.chunks += len(chunks)

    def search(self, query: str, k: int) -> list[tuple[str, str]]:
        if self.store is None:
            return []
        docs = self.store.similarity_search(query, k=k)
        return [(Path(d.metadata.get("source", "")).name, d.page_content) for d in docs]

    def search_pages(self, query: str, k: int) -> list[tuple[str, int]]:
        """(file name, 1-based page) of the k best passages; PyPDFLoader's `page` is 0-based."""
        if self.store is None:
            return []
        docs = self.store.similarity_search(query, k=k)
        return [(Path(d.metadata.get("source", "")).name, int(d.metadata.get("page", -1)) + 1) for d in docs]


def ingestion_bench(
    *, pdfs: list[Path], log: Callable[[str], None], collection_name: str = "bench-10q"
) -> tuple[dict[str, Any], Ours, Baseline]:
    ours, baseline = Ours(collection_name), Baseline()
    for n, path in enumerate(pdfs):
        order: list[Any] = [ours, baseline] if n % 2 == 0 else [baseline, ours]
        for system in order:
            system.ingest(path)
        log(f"  ingest {n + 1}/{len(pdfs)} {path.name}: ours {ours.run.seconds:.1f}s, baseline {baseline.run.seconds:.1f}s")
    o, b = ours.run.figures(), baseline.run.figures()
    from ingestion.embedding import embedder_get

    figures = {
        # The variant (RAG_EMBED_QUANTIZE) that embedded our chunks and, the same one, the queries.
        "files": len(pdfs), "ours_embedder": embedder_get().name, "ours": o, "baseline": b,
        "pages_per_s_ratio": round(o["pages_per_s"] / b["pages_per_s"], 2) if b["pages_per_s"] else None,
        # Same pages for both: the ratio over the pages both could open is the fair one.
        "seconds_ratio_baseline_over_ours": round(b["seconds"] / o["seconds"], 2) if o["seconds"] else None,
    }
    return figures, ours, baseline
