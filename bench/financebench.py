"""FinanceBench: does search find the right page of the right filing, among 30 filings in one collection?

The 30 filings of ../shared/eval/qa/financebench (10-K, 10-Q, 8-K, earnings releases; 3,412 pages) go
into one collection through our real ingestion, and the same files into the LangChain baseline, file by
file alternately (bench.ingest). Each of the 51 dev questions names one filing and its evidence pages.

Scored per question, over the top 10 passages: page hit@k (a passage of the gold filing whose page is
one of the gold pages; the data's `evidence_page_num` is 0-based, our pages 1-based), document hit@k (a
passage of the gold filing), and the reciprocal rank of the first passage on a gold page (MRR). The
questions are also scored in two halves (even and odd lines of the file), so a change tuned on one half
can be checked on the other.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from bench.common import EVAL_DIR, Skipped

FINANCEBENCH_DIR = EVAL_DIR / "qa" / "financebench"
KS = (5, 10)
QUICK_MAX_PAGES = 30  # --quick: only the short filings (earnings releases, an 8-K, a 10-Q), 114 pages


class PageSearcher(Protocol):
    def search_pages(self, query: str, k: int) -> list[tuple[str, int]]: ...


@dataclass(frozen=True)
class Question:
    line: int  # 0-based line of financebench_dev.jsonl
    text: str
    document: str  # file stem, e.g. "3M_2018_10K"
    pages: frozenset[int]  # 1-based gold pages of `document`
    kind: str  # question_type


def financebench_questions(*, documents: set[str] | None = None) -> list[Question]:
    """The dev questions (whose filing is among `documents`, when given), gold pages made 1-based."""
    path = FINANCEBENCH_DIR / "financebench_dev.jsonl"
    if not path.exists():
        raise Skipped(f"{path} is absent: the FinanceBench data lives in ../shared/eval")
    out: list[Question] = []
    for line, raw in enumerate(path.read_text(encoding="utf-8").splitlines()):
        row = json.loads(raw)
        name = row["doc_name"]
        pages = frozenset(int(e["evidence_page_num"]) + 1 for e in row["evidence"] if e.get("doc_name", name) == name)
        if documents is None or name in documents:
            out.append(Question(line, row["question"].strip(), name, pages, row.get("question_type", "")))
    return out


def financebench_pdfs(*, quick: bool) -> list[Path]:
    pdfs = sorted((FINANCEBENCH_DIR / "pdfs").glob("*.pdf"))
    if not pdfs:
        raise Skipped(f"no PDFs in {FINANCEBENCH_DIR / 'pdfs'}")
    if not quick:
        return pdfs
    import pypdfium2 as pdfium

    short = []
    for path in pdfs:
        doc = pdfium.PdfDocument(path)
        try:
            if len(doc) <= QUICK_MAX_PAGES:
                short.append(path)
        finally:
            doc.close()
    return short


def question_scores(ranked: list[tuple[str, int]], question: Question) -> dict[str, float]:
    """Page and document hits of one ranked list of (file name, 1-based page)."""
    on_doc = [Path(name).stem == question.document for name, _ in ranked]
    on_page = [doc and page in question.pages for doc, (_, page) in zip(on_doc, ranked, strict=True)]
    out: dict[str, float] = {}
    for k in KS:
        out[f"page_hit@{k}"] = float(any(on_page[:k]))
        out[f"doc_hit@{k}"] = float(any(on_doc[:k]))
    first = next((i for i, hit in enumerate(on_page) if hit), None)
    out["page_mrr"] = 0.0 if first is None else 1.0 / (first + 1)
    return out


def _mean(rows: list[dict[str, float]]) -> dict[str, float]:
    return {key: round(sum(r[key] for r in rows) / len(rows), 4) for key in rows[0]} if rows else {}


def financebench_quality(*, systems: dict[str, PageSearcher], questions: list[Question]) -> dict[str, Any]:
    k = max(KS)
    result: dict[str, Any] = {"questions": len(questions)}
    for name, system in systems.items():
        rows = [question_scores(system.search_pages(q.text, k), q) for q in questions]
        result[name] = {
            "all": _mean(rows),
            "even_lines": _mean([r for r, q in zip(rows, questions, strict=True) if q.line % 2 == 0]),
            "odd_lines": _mean([r for r, q in zip(rows, questions, strict=True) if q.line % 2 == 1]),
            "by_type": {
                kind: _mean([r for r, q in zip(rows, questions, strict=True) if q.kind == kind])
                for kind in sorted({q.kind for q in questions})
            },
        }
    return result


def financebench_bench(*, quick: bool, log: Callable[[str], None]) -> dict[str, Any]:
    """Ingest the filings into ours and the baseline, then score both on the dev questions."""
    from bench.ingest import ingestion_bench

    pdfs = financebench_pdfs(quick=quick)
    questions = financebench_questions(documents={p.stem for p in pdfs})
    ingestion, ours, baseline = ingestion_bench(pdfs=pdfs, log=log, collection_name="bench-financebench")
    t0 = time.perf_counter()
    result = financebench_quality(systems={"ours": ours, "baseline": baseline}, questions=questions)
    result["search_seconds"] = round(time.perf_counter() - t0, 1)
    result["ingestion"] = ingestion
    log(f"  financebench: ours {result['ours']['all']}; baseline {result['baseline']['all']}")
    return result
