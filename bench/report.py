"""figures.json → a Markdown report: what was measured, ours against the baseline, and the targets."""

from __future__ import annotations

from typing import Any


def _get(d: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(d, dict) or key not in d:
            return None
        d = d[key]
    return d


def _fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
    return str(value)


def _table(head: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(_fmt(c) for c in row) + " |" for row in rows]
    return lines + [""]


def _status(section: Any) -> str | None:
    if isinstance(section, dict) and ("skipped" in section or "error" in section):
        return f"_Not measured: {section.get('skipped') or section.get('error')}_\n"
    return None


def _ingestion(f: dict[str, Any]) -> list[str]:
    out = ["## 1. Ingestion, upload to searchable", ""]
    ing = f.get("ingestion")
    s = _status(ing) if ing is not None else None
    if ing is None or s:
        return out + [s or "_Not run._", ""]
    o, b = ing["ours"], ing["baseline"]
    out += [f"{ing['files']} 10-Q PDFs, alternating ours and baseline file by file; models loaded before timing. "
            f"Our embedder: {ing.get('ours_embedder', 'n/a')} (RAG_EMBED_QUANTIZE); the baseline's: float32.", ""]
    keys = ["files_ok", "pages", "chunks", "seconds", "pages_per_s", "chunks_per_s", "embed_share", "peak_rss_growth_mb", "peak_rss_mb"]
    out += _table(["", "ours", "LangChain baseline"], [[k, o[k], b[k]] for k in keys])
    out += [f"Stage seconds, ours: {o['stage_seconds']}; baseline: {b['stage_seconds']}.", ""]
    if o.get("tables"):
        t = o["tables"]
        out += [f"Table finding (ours, part of parse): {t['pages_checked']} of {o['pages']} pages passed the pre-check "
                f"({t['share_checked']}), {t['tables_found']} tables, {t['seconds']} s = {t['seconds_per_checked_page']} s per "
                f"checked page, {t['share_of_time']} of our ingestion time.", ""]
    if b["files_failed"] or o["files_failed"]:
        out += [f"Failed, ours: {o['files_failed'] or 'none'}; baseline: {b['files_failed'] or 'none'}.", ""]
    out += [f"**pages/s ratio ours/baseline: {_fmt(ing['pages_per_s_ratio'])}**", ""]
    return out + _embedder(ing.get("embedder"))


def _embedder(e: dict[str, Any] | None) -> list[str]:
    out = ["### The embedder alone, on the chunks of this run", ""]
    s = _status(e) if e is not None else None
    if e is None or s:
        return out + [s or "_Not run._", ""]
    peak = e["matmul_peak"]
    out += [f"{e['chunks']} chunks, {e['tokens']} tokens (mean {e['mean_tokens']}), embedded again after the ingestion by "
            f"our variant ({e['variant']}) and by float32, batches of the configured size sorted by length. Matmul peak "
            f"measured here (torch, {peak['threads']} threads, the feed-forward's shape): float32 {peak['fp32_gflops']} "
            f"GFLOP/s, bfloat16 {peak['bf16_gflops']} GFLOP/s; {e['flops_per_token']} FLOP per token.", ""]
    keys = ["seconds", "tokens_per_s", "gflops", "share_of_matmul_peak"]
    out += _table(["embedder", *keys], [[n, *[e[n][k] for k in keys]] for n in ("ours", "float32")])
    c, pad = e["cosine_to_float32"], e["padding"]
    out += [f"**speed-up over float32: {_fmt(e['speedup_over_float32'])}; cosine to float32 over every chunk: min "
            f"{c['min']}, mean {c['mean']}, {c['below_0_999']} below 0.999**; re-embedding reproduces the stored vectors "
            f"(min cosine {e['stored_vs_reembedded_min_cosine']}). Padding, share of the tokens computed: "
            f"{pad['wasted_share_token_sorted']} with batches sorted by tokens (ours), {pad['wasted_share_char_sorted']} "
            f"sorted by characters, {pad['wasted_share_file_order']} in file order.", ""]
    return out


def _quality(f: dict[str, Any]) -> list[str]:
    out = ["## 2. Retrieval quality", ""]
    q = f.get("quality")
    s = _status(q) if q is not None else None
    if q is None or s:
        return out + [s or "_Not run._", ""]
    sec = q["sec_10q"]
    out += [f"10-Q: {sec['questions']} questions (document-level; recall@k = share of the question's source files "
            "among the files of the top-k passages; hit@k = any of them; MRR of the first relevant passage).", ""]
    rows = []
    for subset in ("all", "opened_by_all"):
        for name in ("ours", "baseline"):
            m = sec[name][subset]
            rows.append([f"{name} ({subset})", m.get("recall@5"), m.get("recall@10"), m.get("hit@5"), m.get("mrr")])
    out += _table(["system (questions)", "recall@5", "recall@10", "hit@5", "MRR"], rows)
    out += [f"'opened_by_all': the {sec['questions_all_systems_opened']} questions whose files every system could open.", ""]
    f32 = sec.get("ours_float32")
    if f32:
        m = f32["all"]
        out += [f"Our pipeline with the float32 model's vectors (a copy of our collection re-embedded by float32, float32 "
                f"queries): recall@5 {m.get('recall@5')}, hit@5 {m.get('hit@5')}, MRR {m.get('mrr')}; **ours minus float32, "
                f"points: {f32['ours_minus_float32_points']}**.", ""]
    if "search_ms" in q:
        out += [f"End-to-end search on this collection (query embedding + index + rows), ms: {q['search_ms']}.", ""]
    p = q["policyqa"]
    out += [f"PolicyQA dev, policy {p['policy']} ({p['paragraphs']} paragraphs, {p['questions']} questions):", ""]
    keys = ["paragraph_recall@5", "paragraph_recall@10", "answer_in_passages@5", "answer_in_passages@10"]
    out += _table(["", *keys], [[n, *[p[n].get(k) for k in keys]] for n in ("ours", "baseline")])
    return out


def _financebench(f: dict[str, Any]) -> list[str]:
    out = ["## 3. FinanceBench: the right page of the right filing", ""]
    fb = f.get("financebench")
    s = _status(fb) if fb is not None else None
    if fb is None or s:
        return out + [s or "_Not run._", ""]
    ing = fb["ingestion"]
    o, b = ing["ours"], ing["baseline"]
    out += [f"{ing['files']} filings ({o['pages']} pages) in one collection, ours and the LangChain baseline; "
            f"{fb['questions']} dev questions, each naming one filing and its evidence pages. page hit@k: a passage "
            "among the top k is on a gold page of the gold filing; doc hit@k: a passage is from the gold filing; "
            "MRR of the first passage on a gold page. Halves: the questions on even and odd lines of the file.", ""]
    keys = ["page_hit@5", "page_hit@10", "doc_hit@5", "doc_hit@10", "page_mrr"]
    rows = []
    for name in ("ours", "baseline"):
        for subset in ("all", "even_lines", "odd_lines"):
            rows.append([f"{name} ({subset})", *[fb[name][subset].get(k) for k in keys]])
    out += _table(["system (questions)", *keys], rows)
    kinds = sorted(fb["ours"].get("by_type", {}))
    if kinds:
        out += _table(["page hit@5 by question type", *kinds],
                      [[n, *[_get(fb, n, "by_type", kind, "page_hit@5") for kind in kinds]] for n in ("ours", "baseline")])
    out += [f"Ingestion of these filings: ours {o['pages_per_s']} pages/s ({o['seconds']} s, {o['chunks']} chunks), "
            f"baseline {b['pages_per_s']} pages/s ({b['seconds']} s, {b['chunks']} chunks), ratio "
            f"{_fmt(ing['pages_per_s_ratio'])}; stage seconds, ours: {o['stage_seconds']}.", ""]
    if o["files_failed"] or b["files_failed"]:
        out += [f"Failed, ours: {o['files_failed'] or 'none'}; baseline: {b['files_failed'] or 'none'}.", ""]
    if o.get("tables"):
        out += [f"Table finding (ours): {o['tables']}.", ""]
    return out


def _latency(f: dict[str, Any]) -> list[str]:
    out = ["## 4. Retrieval latency (one query at a time, k=5)", ""]
    lat = f.get("latency")
    s = _status(lat) if lat is not None else None
    if lat is None or s:
        return out + [s or "_Not run._", ""]
    rows = []
    for n, row in lat["sizes"].items():
        for name, v in row.items():
            rows.append([n, name, v.get("factory", "IndexFlatL2"), v["p50_ms"], v["p99_ms"], v.get("build_s"),
                         v.get("index_rss_mb"), v.get("file_mb"), v.get("recall_vs_flat@5")])
    out += _table(["chunks", "index", "factory", "p50 ms", "p99 ms", "build s", "index RSS MB", "file MB", "recall vs Flat@5"], rows)
    out += [f"Vectors: {lat.get('vectors', 'synthetic unit vectors')}. FAISS threads: {lat['faiss_threads']}; "
            f"{lat['queries']} queries per size. Build time includes IVF training.", ""]
    return out


def _generation(f: dict[str, Any]) -> list[str]:
    out = ["## 5. Generation (medians of alternating runs, temperature 0, same prompt)", ""]
    g = f.get("generation")
    s = _status(g) if g is not None else None
    if g is None or s:
        out += [s or "_Not run._", ""]
    else:
        keys = ["median_tokens_per_s", "median_ttft_ms", "median_tokens", "median_total_s"]
        out += [f"CPU: {g['model']} via llama.cpp, {g['threads']} threads, {g['reps']} runs each, up to {g['max_tokens']} tokens.", ""]
        out += _table(["", *keys], [[n, *[g[n][k] for k in keys]] for n in ("ours", "raw")])
        out += [f"**tokens/s ours/raw: {_fmt(g['tokens_per_s_ratio'])}; TTFT ours/raw: {_fmt(g['ttft_ratio'])}**", ""]
    out += _generation_gpu(f.get("generation_gpu"))
    return out


def _generation_gpu(gpu: dict[str, Any] | None) -> list[str]:
    out = ["### GPU: transformers + bitsandbytes NF4 4-bit, Mistral-7B-shaped model (random weights)", ""]
    s = _status(gpu) if gpu is not None else None
    if gpu is None or s:
        return out + [s or "_Not run._", ""]
    if gpu.get("note"):
        out += [f"_{gpu['note']}._", ""]
    for run in gpu["runs"]:
        single = run["single"]
        out += [f"{run['device']}, torch {run['torch']}, transformers {run['transformers']}, bitsandbytes "
                f"{run['bitsandbytes']}; {run['quantization']}; prompt {run['prompt_tokens']} tokens, {run['max_tokens']} "
                f"new tokens, greedy, {run['reps']} alternating runs; from `{run['source']}`"
                + (f" ({run['measured_on']})" if run.get("measured_on") else "") + ".", ""]
        keys = ["median_tokens_per_s", "median_ttft_ms", "median_total_s"]
        names = {"ours": "ours (service, continuous batching)", "raw_continuous_batching": "raw transformers continuous batching",
                 "raw_generate": "raw `model.generate`"}
        out += _table(["single stream", *keys], [[names[n], *[single[n][k] for k in keys]] for n in names])
        rows = [[n, v["aggregate_tokens_per_s"], v["median_stream_tokens_per_s"], v["median_ttft_ms"], v["max_ttft_ms"]]
                for n, v in run["concurrent_ours"].items()]
        out += _table(["concurrent questions (ours)", "aggregate tokens/s", "median tokens/s per stream",
                       "median TTFT ms", "max TTFT ms"], rows)
        out += [f"**single stream ours: {_fmt(single['ours']['median_tokens_per_s'])} tokens/s (target "
                f"{_fmt(run['single_stream_target'])}); ours/`generate`: {_fmt(run['tokens_per_s_ratio_vs_generate'])}; "
                f"ours/raw continuous batching: {_fmt(run['tokens_per_s_ratio_vs_raw_cb'])}**", ""]
    return out


def _api(f: dict[str, Any]) -> list[str]:
    out = ["## 6. API overhead (POST /api/v1/ask wall time minus the answer's generation_ms)", ""]
    a = f.get("api")
    s = _status(a) if a is not None else None
    if a is None or s:
        return out + [s or "_Not run._", ""]
    rows = []
    for mode, label in (("clients", "polled"), ("push", "pushed (Redis)")):
        for n, v in (a.get(mode) or {}).items():
            if not isinstance(v, dict):
                continue
            rows.append([f"{n} ({label})", v["ok"], v["request"]["p50_ms"], v["overhead_incl_queue"]["p50_ms"],
                         v["overhead_excl_queue"]["p50_ms"], v["overhead_excl_queue"]["p99_ms"], _get(v, "grounding", "p50_ms"),
                         _get(v, "web_only", "p50_ms"), _get(v, "web_only", "p99_ms")])
    out += [f"One in-process gpu worker; answers capped at {a['max_new_tokens']} new tokens. 'Excl. queue' still holds the "
            "worker's retrieval and grounding; 'web only' leaves the worker's whole turn out (request to queued, plus the "
            "worker's last write to the response). In process, the test client gives requests no thread of their own, "
            "so beyond 1 client 'web only' also holds the wait behind the other requests' synchronous parts.", ""]
    out += _table(["clients", "ok", "request p50 ms", "overhead p50 (incl. queue)", "overhead p50 (excl. queue)", "p99",
                   "of which grounding p50", "web only p50", "p99"], rows)
    if isinstance(a.get("push"), dict) and a["push"].get("skipped"):
        out += [f"_Pushed: {a['push']['skipped']}._", ""]
    return out


def _streams(f: dict[str, Any]) -> list[str]:
    out = ["## 7. Concurrent browser answer streams on one web process (uvicorn)", ""]
    st = f.get("streams")
    s = _status(st) if st is not None else None
    if st is None or s:
        return out + [s or "_Not run._", ""]
    out += [f"Streams opened at once and held {st['idle_s']} s while their answers wait, then all answers written at once "
            f"({st['pieces']} flushes each, by the worker's own functions, no LLM): the web process's cost per stream.", ""]
    keys = ["streams", "complete", "server_5xx", "rss_mb_before", "rss_mb_peak", "rss_kb_per_stream", "threads_before",
            "threads_peak", "threads_while_open", "cpu_share_idle_waiting", "cpu_share_overall", "done_delivery_ms"]
    modes = [m for m in ("poll", "push") if isinstance(st.get(m), dict) and "streams" in st[m]]
    out += _table(["", *[{"poll": "polled (embedded default)", "push": "pushed (Redis)"}[m] for m in modes]],
                  [[k, *[st[m].get(k) for m in modes]] for k in keys])
    return out


def _pages(f: dict[str, Any]) -> list[str]:
    out = ["## 6. Citation viewer: page images and passage location", ""]
    p = f.get("pages")
    s = _status(p) if p is not None else None
    if p is None or s:
        return out + [s or "_Not run._", ""]
    out += [f"{p['pdf']} ({p['source']}), pages {p['pages']}, rendered {p['width_px']} px wide to PNG by pypdfium2 "
            f"(median {p['png_kb_median']} KB); cached: read back from the disk cache. Locating: a 1,200-character "
            "passage of the page found on it and its boxes computed, as each answer does per passage.", ""]
    rows = [[name, p[key]["p50_ms"], p[key]["p95_ms"], p[key]["n"]]
            for name, key in (("page image, cold", "render_cold"), ("page image, cached", "render_cached"),
                              ("passage located", "passage_locate"))]
    return out + _table(["", "p50 ms", "p95 ms", "pages"], rows)


def _answers(f: dict[str, Any]) -> list[str]:
    out = ["## 7. Answers: extractive, SmolLM2, and the first passage", ""]
    a = f.get("answers")
    s = _status(a) if a is not None else None
    if a is None or s:
        return out + [s or "_Not run._", ""]
    names = ("extractive", "smollm2", "first_passage")
    p = a["policyqa"]
    out += [f"Over the same retrieved passages and the same prompt: the extractive backend, SmolLM2-135M through "
            f"llama.cpp (at most {a['smollm2_max_new_tokens']} new tokens), and the best passage cut to the extractive "
            f"answer's length. PolicyQA: {p['questions']} questions spread over \"{p['policy']}\"; an answer counts when "
            "it holds a gold span (citations removed, case and spaces normalised).", ""]
    out += _table(["", "extractive", "SmolLM2", "first passage, same length"],
                  [["PolicyQA: holds a gold span", *(p["gold_span_share"][n] for n in names)],
                   ["PolicyQA: answer characters p50", *(p["answer_chars_p50"][n] for n in names)]])
    q = a.get("sec_10q")
    if q and q.get("questions"):
        out += [f"10-Q: {q['questions']} questions about the ingested filings ({q['questions_with_numbers']} with numbers "
                "in the reference answer); recall: the share of the reference's numbers (normalised) and content words "
                "(stemmed) the answer holds; flagged: by our grounding scorer, over the passages the answer was given.", ""]
        out += _table(["", "extractive", "SmolLM2", "first passage, same length"],
                      [["10-Q: number recall", *(q["number_recall"][n] for n in names)],
                       ["10-Q: content-word recall", *(q["word_recall"][n] for n in names)],
                       ["10-Q: flagged share", *(q["flagged_share"][n] for n in names)]])
    rows = []
    for label, part in (("PolicyQA", p), ("10-Q", q)):
        for name in ("extractive", "smollm2"):
            t = (part or {}).get("timings", {}).get(name)
            if t:
                rows.append([f"{label}, {name}", t["answers"], t["ttft_ms_p50"], t["ttft_ms_p90"], t["total_ms_p50"], t["total_ms_p90"]])
    out += ["Time per answer on this machine (first piece, and the whole answer; prompt building excluded):", ""]
    return out + _table(["", "answers", "first piece p50 ms", "p90", "total p50 ms", "p90"], rows)


def targets(f: dict[str, Any]) -> list[tuple[str, str, Any]]:
    """(target, met / missed / not measured, figure)."""
    def check(ok: bool | None) -> str:
        return "not measured" if ok is None else ("met" if ok else "missed")

    out: list[tuple[str, str, Any]] = []
    ratio = _get(f, "ingestion", "pages_per_s_ratio")
    out.append(("ingestion pages/s >= 2x baseline", check(None if ratio is None else ratio >= 2), ratio))
    out.append(("ingestion pages/s >= 1.5x baseline, table detection included", check(None if ratio is None else ratio >= 1.5), ratio))
    failed = _get(f, "ingestion", "ours", "files_failed")
    out.append(("all PDFs ingested by ours", check(None if failed is None else not failed), failed))
    cosine = _get(f, "ingestion", "embedder", "cosine_to_float32", "min")
    out.append(("embedder cosine >= 0.999 to float32 for every chunk (min)", check(None if cosine is None else cosine >= 0.999),
                None if cosine is None else f"{cosine:.5f}"))
    points = _get(f, "quality", "sec_10q", "ours_float32", "ours_minus_float32_points")
    out.append(("10-Q hit@5 and MRR within 1 point of float32 vectors",
                check(None if points is None else all(abs(v) <= 1 for v in points.values())), points))
    share = _get(f, "ingestion", "ours", "embed_share")
    out.append(("embedding >= 80% of our ingestion time", check(None if share is None else share >= 0.8), share))
    o5, b5 = _get(f, "quality", "sec_10q", "ours", "all", "recall@5"), _get(f, "quality", "sec_10q", "baseline", "all", "recall@5")
    diff = None if o5 is None or b5 is None else round((o5 - b5) * 100, 1)
    out.append(("10-Q recall@5 >= baseline + 10 points", check(None if diff is None else diff >= 10), diff))
    h5, mrr = _get(f, "quality", "sec_10q", "ours", "all", "hit@5"), _get(f, "quality", "sec_10q", "ours", "all", "mrr")
    out.append(("10-Q hit@5 >= 0.93", check(None if h5 is None else h5 >= 0.93), h5))
    out.append(("10-Q MRR >= 0.70", check(None if mrr is None else mrr >= 0.7), mrr))
    policy = _get(f, "quality", "policyqa", "ours", "answer_in_passages@5")
    out.append(("PolicyQA answer_in_passages@5 >= 0.70", check(None if policy is None else policy >= 0.7), policy))
    fb5, fbb5 = _get(f, "financebench", "ours", "all", "page_hit@5"), _get(f, "financebench", "baseline", "all", "page_hit@5")
    out.append(("FinanceBench page hit@5 >= 0.55", check(None if fb5 is None else fb5 >= 0.55), fb5))
    gap = None if fb5 is None or fbb5 is None else round((fb5 - fbb5) * 100, 1)
    out.append(("FinanceBench page hit@5 >= baseline + 20 points", check(None if gap is None else gap >= 20), gap))
    fbd = _get(f, "financebench", "ours", "all", "doc_hit@5")
    out.append(("FinanceBench document hit@5 >= 0.90", check(None if fbd is None else fbd >= 0.9), fbd))
    auto = _get(f, "latency", "sizes", "100000", "ours_auto") or {}
    p50, recall = auto.get("p50_ms"), auto.get("recall_vs_flat@5")
    out.append((f"retrieval p50 < 5 ms at 100k chunks (default: {auto.get('factory', 'n/a')}), recall@5 vs exact >= 0.95",
                check(None if p50 is None or recall is None else p50 < 5 and recall >= 0.95), [p50, recall]))
    flat = _get(f, "latency", "sizes", "100000", "ours_flat", "p50_ms")
    out.append(("  for comparison, exact search (RAG_FAISS_INDEX_FACTORY=Flat) < 5 ms", check(None if flat is None else flat < 5), flat))
    for mode in ("clients", "push"):
        web = _get(f, "api", mode, "10", "overhead_excl_queue", "p50_ms")
        label = "polled" if mode == "clients" else "pushed"
        out.append((f"API overhead excl. queue p50 < 50 ms at 10 clients ({label})", check(None if web is None else web < 50), web))
    for mode in ("poll", "push"):
        run = _get(f, "streams", mode) or {}
        ok = None if "streams" not in run else run["complete"] == run["streams"] and run["server_5xx"] == 0
        out.append((f"every concurrent stream complete, no 5xx ({mode})", check(ok), [run.get("complete"), run.get("streams")]))
    tps = _get(f, "generation", "tokens_per_s_ratio")
    out.append(("service tokens/s >= 90% of raw llama.cpp", check(None if tps is None else tps >= 0.9), tps))
    span = _get(f, "answers", "policyqa", "gold_span_share") or {}
    ex, sm, first = span.get("extractive"), span.get("smollm2"), span.get("first_passage")
    out.append(("PolicyQA gold span: extractive > first passage, same length",
                check(None if ex is None or first is None else ex > first), [ex, first]))
    out.append(("PolicyQA gold span: extractive >= 3x SmolLM2", check(None if ex is None or sm is None else ex >= 3 * sm), [ex, sm]))
    flagged = _get(f, "answers", "sec_10q", "flagged_share", "extractive")
    out.append(("10-Q extractive answers flagged <= 5%", check(None if flagged is None else flagged <= 0.05), flagged))
    for run in _get(f, "generation_gpu", "runs") or []:
        label = run.get("quantization", "nf4")
        single = run["single"]["ours"]["median_tokens_per_s"]
        out.append((f"GPU single stream >= 60 tokens/s ({label})", check(single >= run["single_stream_target"]), single))
        aggregate = [v["aggregate_tokens_per_s"] for v in run["concurrent_ours"].values()]
        grows = all(b > a for a, b in zip(aggregate, aggregate[1:], strict=False))
        out.append((f"GPU aggregate tokens/s grows with 1/8/32 questions ({label})", check(grows), aggregate))
        overhead = run["tokens_per_s_ratio_vs_raw_cb"]
        out.append((f"GPU service tokens/s >= 90% of raw transformers ({label})", check(overhead >= 0.9), overhead))
    return out


def report_render(f: dict[str, Any]) -> str:
    out = [
        "# GroundRAG benchmarks", "",
        f"Generated {f['generated_at']} by "
        + (" then ".join(f"`{r['command'].strip()}`" for r in f["runs"]) if f.get("runs") else f"`{f['command'].strip()}`")
        + f" ({f['mode']} mode) in {f.get('total_seconds')} s "
        f"on {f['machine']['cpus']} CPUs ({f['machine']['platform']}). The machine is shared: compare ours with the "
        "baseline measured in the same run, not with other runs.", "",
        "## Targets", "",
    ]
    out += _table(["target", "status", "figure"], [list(t) for t in targets(f)])
    for part in (_ingestion, _quality, _financebench, _latency, _generation, _api, _streams, _pages, _answers):
        out += part(f)
    return "\n".join(out).rstrip() + "\n"
