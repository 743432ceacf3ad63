"""`python -m bench.run [--quick] [--only NAME ...]`: run the benchmarks, write a Markdown report and a JSON file.

Writes bench/out/report.md and bench/out/figures.json, and the committed copies bench/REPORT.md and
bench/figures.json (unless --no-publish). Ours and the LangChain baseline run in the same process, so
their ratio is what counts on a shared, noisy machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import ROOT, SEC_DIR, Skipped, median, percentile

BENCHES = ("ingestion", "quality", "financebench", "latency", "generation", "api", "streams", "pages", "answers")
OUT = ROOT / "bench" / "out"
GPU_DIR = ROOT / "bench" / "gpu"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="3 PDFs, fewer questions and sizes; FinanceBench: its 5 short filings (a few minutes)")
    parser.add_argument("--files", type=int, default=0, help="ingest only the first N PDFs (0: all 20)")
    parser.add_argument("--only", nargs="+", choices=BENCHES, help="run only these (quality, api and answers need ingestion)")
    parser.add_argument("--no-publish", action="store_true", help="write bench/out/ only, not bench/REPORT.md")
    parser.add_argument("--merge", action="store_true",
                        help="keep the other sections of bench/out/figures.json (a long run done in parts)")
    parser.add_argument("--api-clients", nargs="+", type=int, help="concurrent API clients (default 1 10 50; --quick: 1 10)")
    parser.add_argument("--streams", type=int, help="concurrent browser streams (default 200; --quick: 50)")
    parser.add_argument("--redis", default="",
                        help="a Redis URL (e.g. redis://127.0.0.1:6379/15): the api and streams sections also run with "
                             "answers pushed through its pub/sub, beside the embedded default's polling")
    parser.add_argument("--gpu-figures", nargs="+", type=Path, default=sorted(GPU_DIR.glob("*.json")),
                        help="figures of `python -m bench.generation --gpu` runs to report where this machine has no CUDA "
                             "(default: the committed bench/gpu/*.json)")
    return parser.parse_args(argv)


def _section(figures: dict[str, Any], name: str, fn: Callable[[], Any]) -> Any:
    log(f"[{name}]")
    t0 = time.perf_counter()
    try:
        figures[name] = fn()
    except Skipped as exc:
        figures[name] = {"skipped": str(exc)}
    except Exception as exc:  # noqa: BLE001 - one failed benchmark must not lose the others' figures
        traceback.print_exc()
        figures[name] = {"error": f"{type(exc).__name__}: {exc}"}
    figures.setdefault("section_seconds", {})[name] = round(time.perf_counter() - t0, 1)
    return figures[name]


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    wanted = set(args.only or BENCHES)
    if wanted & {"quality", "api", "answers"}:
        wanted.add("ingestion")
    quick = args.quick
    pdfs = sorted((SEC_DIR / "pdfs").glob("*.pdf"))
    # Quick: one company's quarters, so the questions about it have their documents.
    pdfs = [p for p in pdfs if "AAPL" in p.name][:3] if quick else pdfs
    pdfs = pdfs[: args.files] if args.files else pdfs
    started = time.perf_counter()
    figures: dict[str, Any] = {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "mode": "quick" if quick else "full",
        "command": "python -m bench.run " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": {"cpus": len(os.sched_getaffinity(0)), "platform": platform.platform(), "python": platform.python_version()},
    }
    ours = baseline = None
    if "ingestion" in wanted:
        from bench.django_env import django_setup
        from bench.ingest import ingestion_bench

        django_setup()
        held: dict[str, Any] = {}

        def ingest() -> dict[str, Any]:
            from bench.embedder import embedder_bench

            found, held["ours"], held["baseline"] = ingestion_bench(pdfs=pdfs, log=log)
            found["embedder"], held["float32"] = embedder_bench(collection_id=held["ours"].collection.id, log=log)
            return found

        _section(figures, "ingestion", ingest)
        ours, baseline = held.get("ours"), held.get("baseline")
    if "quality" in wanted and ours is not None and baseline is not None:
        _section(figures, "quality", lambda: _quality(ours, baseline, pdfs, quick, held.get("float32")))
    if "financebench" in wanted:
        from bench.django_env import django_setup
        from bench.financebench import financebench_bench

        log(f"  data dir {django_setup()}")
        _section(figures, "financebench", lambda: financebench_bench(quick=quick, log=log))
    if "latency" in wanted:
        from bench.django_env import django_setup
        from bench.latency import latency_bench

        django_setup()  # the bundled embedder makes the real vectors the collection is built from
        sizes = [10_000, 100_000] if quick else [10_000, 100_000, 1_000_000]
        _section(figures, "latency", lambda: latency_bench(
            sizes=sizes, queries=100 if quick else 300, hnsw_max=100_000, langchain_max=100_000, log=log))
    if "generation" in wanted:
        from bench.generation import llamacpp_bench, transformers_4bit_bench

        _section(figures, "generation", lambda: llamacpp_bench(reps=3 if quick else 7, max_tokens=128, log=log))
        _section(figures, "generation_gpu", lambda: _gpu(args.gpu_figures, transformers_4bit_bench))
    if "streams" in wanted:
        from bench.django_env import django_setup
        from bench.streams import streams_bench

        django_setup()
        _section(figures, "streams", lambda: streams_bench(n=args.streams or (50 if quick else 200), redis_url=args.redis, log=log))
    if "api" in wanted and ours is not None:
        from bench.api_overhead import api_overhead_bench

        _section(figures, "api", lambda: api_overhead_bench(
            collection_id=ours.collection.id, clients=args.api_clients or ([1, 10] if quick else [1, 10, 50]),
            max_new_tokens=16 if quick else 64,
            redis_url=args.redis, log=log))
    if "pages" in wanted:
        from bench.django_env import django_setup
        from bench.pages import pages_bench

        django_setup()
        _section(figures, "pages", lambda: pages_bench(pages=6 if quick else 12, log=log))
    if "answers" in wanted:
        from bench.answers import answers_bench
        from bench.django_env import django_setup

        django_setup()
        collection_id = ours.collection.id if ours is not None else None
        _section(figures, "answers", lambda: answers_bench(
            collection_id=collection_id, files=[p.name for p in pdfs], quick=quick, log=log))
    figures["total_seconds"] = round(time.perf_counter() - started, 1)
    if args.merge and (OUT / "figures.json").exists():
        earlier = json.loads((OUT / "figures.json").read_text(encoding="utf-8"))
        seconds = {**earlier.get("section_seconds", {}), **figures.get("section_seconds", {})}
        runs = [*earlier.get("runs", [{"command": earlier.get("command"), "generated_at": earlier.get("generated_at")}]),
                {"command": figures["command"], "generated_at": figures["generated_at"]}]
        figures = {**earlier, **figures, "section_seconds": seconds, "runs": runs,
                   "total_seconds": round(sum(seconds.values()), 1)}
    from bench.report import report_render

    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "figures.json").write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    (OUT / "report.md").write_text(report_render(figures), encoding="utf-8")
    if not args.no_publish:
        shutil.copyfile(OUT / "figures.json", ROOT / "bench" / "figures.json")
        shutil.copyfile(OUT / "report.md", ROOT / "bench" / "REPORT.md")
    log(f"wrote {OUT / 'report.md'} and figures.json in {figures['total_seconds']} s")
    return 0


def _gpu(files: list[Path], bench: Callable[..., dict[str, Any]]) -> dict[str, Any]:
    """Run the GPU benchmark here if CUDA exists, else report the runs recorded on a GPU machine."""
    try:
        return {"runs": [{**bench(reps=3, max_tokens=128, log=log), "source": "this run"}]}
    except Skipped as exc:
        if not files:
            raise
        runs = [{**json.loads(f.read_text(encoding="utf-8")), "source": os.path.relpath(f, ROOT)} for f in files]
        return {"runs": runs, "note": f"{exc}; figures recorded on a GPU machine"}


def _float32_quality(collection_id: int, questions: list[tuple[str, set[str]]], ours: dict[str, Any]) -> dict[str, Any]:
    """10-Q scores of the float32 copy of our collection (float32 queries), and ours minus it in points."""
    from bench.embedder import CollectionSearcher, float32_queries
    from bench.quality import sec_quality

    with float32_queries():
        scores = sec_quality(systems={"float32": CollectionSearcher(collection_id)}, questions=questions, excluded={})
    mine, theirs = ours["all"], scores["float32"]["all"]
    return {**scores["float32"], "ours_minus_float32_points": {k: round(100 * (mine[k] - theirs[k]), 2) for k in ("hit@5", "mrr")}}


def _quality(ours: Any, baseline: Any, pdfs: list[Path], quick: bool, float32_id: int | None = None) -> dict[str, Any]:
    from bench.quality import policyqa_quality, sec_quality, sec_questions

    questions = sec_questions(files=[p.name for p in pdfs], limit=40 if quick else None)
    failed = {
        "ours": {f.split(":")[0] for f in ours.run.failed},
        "baseline": {f.split(":")[0] for f in baseline.run.failed},
    }
    result: dict[str, Any] = {"sec_10q": sec_quality(systems={"ours": ours, "baseline": baseline}, questions=questions, excluded=failed)}
    if float32_id is not None:  # our pipeline with the float32 model's vectors: what our variant costs in quality
        result["sec_10q"]["ours_float32"] = _float32_quality(float32_id, questions, result["sec_10q"]["ours"])
    log(f"  10-Q: {result['sec_10q']}")
    # End-to-end search latency on the real collection (query embedding + FAISS + DB rows).
    for name, system in (("ours", ours), ("baseline", baseline)):
        samples = []
        for question, _ in questions[:50]:
            t0 = time.perf_counter()
            system.search(question, 5)
            samples.append((time.perf_counter() - t0) * 1000)
        result.setdefault("search_ms", {})[name] = {"p50": round(median(samples), 2), "p99": round(percentile(samples, 99), 2)}
    result["policyqa"] = policyqa_quality(
        baseline_embeddings=baseline.embeddings, title=None, limit=150 if quick else None, log=log)
    return result


if __name__ == "__main__":
    raise SystemExit(main())
