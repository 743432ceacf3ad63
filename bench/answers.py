"""Answers: the extractive backend against SmolLM2 (llama.cpp) and the first retrieved passage cut to the same
length, over the same retrieved passages and the same questions.

- PolicyQA dev, one policy as a collection (as the quality section builds it): share of answers holding a
  gold answer span.
- 10-Q questions over the ingestion section's collection: recall of the reference answer's numbers and
  content words in the answer, and the share our grounding scorer flags.
- Time to first piece and total per answer on this machine's CPU.
"""

from __future__ import annotations

import csv
import fnmatch
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from bench.common import SEC_DIR, median, percentile

SYSTEMS = ("extractive", "smollm2", "first_passage")
# SmolLM2's answer budget: shorter than the service's default (384), so a full run stays within an hour on two
# cores; its answers are rarely that long.
SMOLLM2_MAX_NEW_TOKENS = 160
_CITE = re.compile(r"\s*\[\d+(?:\s*[,;-]\s*\d+)*\]")


@dataclass(frozen=True)
class Answered:
    text: str
    passages: tuple[str, ...]  # the texts the answer was given, in prompt order
    ttft_ms: float | None
    total_ms: float


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", _CITE.sub("", text)).strip().lower()


def _prompt_passages(collection_id: int, question: str) -> list[Any]:
    from django.conf import settings

    from llm.prompts import PromptPassage
    from retrieval.services import chunks_search

    found = chunks_search(collection_id=collection_id, query=question, k=settings.ANSWER_TOP_K)
    return [
        PromptPassage(p.chunk_id, p.document_name, p.page_start, p.page_end, p.text, p.score, p.section)
        for p in found
        if p.score >= settings.ANSWER_MIN_SCORE
    ]


def answer_with(*, generator: Any, question: str, passages: Sequence[Any], max_new_tokens: int) -> Answered:
    """The generator's answer over the passages, through the service's own prompt; a question with no
    passage gets the service's refusal without a model call, as in chat.services."""
    from django.conf import settings

    from llm.generators import GenerationParams
    from llm.prompts import NOT_IN_DOCUMENTS, prompt_build

    if not passages:
        return Answered(NOT_IN_DOCUMENTS, (), None, 0.0)
    built = prompt_build(
        question=question,
        passages=passages,
        generator=generator,
        max_new_tokens=max_new_tokens,
        guardrail=settings.LLM_GUARDRAIL,
    )
    params = GenerationParams(max_new_tokens=max_new_tokens, temperature=settings.LLM_TEMPERATURE)
    t0 = time.perf_counter()
    ttft: float | None = None
    pieces: list[str] = []
    for piece in generator.stream(messages=built.messages, params=params):
        ttft = (time.perf_counter() - t0) * 1000 if ttft is None else ttft
        pieces.append(piece)
    total = (time.perf_counter() - t0) * 1000
    return Answered("".join(pieces).strip(), tuple(p.text for p in built.passages), ttft, total)


def first_passage_cut(*, passages: Sequence[Any], length: int) -> Answered:
    """The baseline: the best-ranked passage's first `length` characters (at a word boundary)."""
    if not passages:
        return Answered("", (), None, 0.0)
    text = " ".join(passages[0].text.split())
    cut = text[:length].rsplit(" ", 1)[0] if len(text) > length else text
    return Answered(cut, (passages[0].text,), None, 0.0)


def _generators() -> dict[str, Any]:
    from llm.generators import generator_build

    generators = {
        "extractive": generator_build(backend="extractive"),
        "smollm2": generator_build(backend="llamacpp"),
    }
    for generator in generators.values():
        generator.warm_up()
    return generators


def _answers(generators: dict[str, Any], question: str, passages: Sequence[Any]) -> dict[str, Answered]:
    from django.conf import settings

    out = {
        "extractive": answer_with(
            generator=generators["extractive"],
            question=question,
            passages=passages,
            max_new_tokens=settings.LLM_MAX_NEW_TOKENS,
        ),
        "smollm2": answer_with(
            generator=generators["smollm2"],
            question=question,
            passages=passages,
            max_new_tokens=SMOLLM2_MAX_NEW_TOKENS,
        ),
    }
    out["first_passage"] = first_passage_cut(passages=passages, length=len(_norm(out["extractive"].text)))
    return out


def _timings(rows: list[dict[str, Answered]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in ("extractive", "smollm2"):
        timed = [(r[name].ttft_ms, r[name].total_ms) for r in rows if r[name].ttft_ms is not None]
        ttft = [first for first, _ in timed if first is not None]
        total = [whole for _, whole in timed]
        out[name] = {
            "answers": len(ttft),
            "ttft_ms_p50": round(median(ttft), 1),
            "ttft_ms_p90": round(percentile(ttft, 90), 1),
            "total_ms_p50": round(median(total), 1),
            "total_ms_p90": round(percentile(total, 90), 1),
        }
    return out


def policyqa_answers(*, limit: int, log: Callable[[str], None]) -> dict[str, Any]:
    """Share of answers holding a gold span, per system, over the first `limit` questions of the policy."""
    from bench.quality import PolicyCollection, policy_load

    policy = policy_load(title=None)
    paragraphs = [p["context"] for p in policy["paragraphs"]]
    qas = [
        (qa["question"], [a["text"] for a in qa["answers"]]) for p in policy["paragraphs"] for qa in p["qas"]
    ]
    qas = qas[:: max(1, len(qas) // limit)][:limit]  # spread over the policy, not its first paragraphs only
    collection = PolicyCollection(paragraphs, slug="bench-answers-policyqa")
    generators = _generators()
    rows: list[dict[str, Answered]] = []
    hits = {name: 0 for name in SYSTEMS}
    for i, (question, gold) in enumerate(qas, start=1):
        passages = _prompt_passages(collection.collection.id, question)
        row = _answers(generators, question, passages)
        rows.append(row)
        for name in SYSTEMS:
            hits[name] += any(_norm(g) in _norm(row[name].text) for g in gold)
        if i % 10 == 0:
            log(f"  policyqa answers {i}/{len(qas)}: {hits}")
    chars = {name: round(median([len(_norm(r[name].text)) for r in rows]), 1) for name in SYSTEMS}
    return {
        "policy": policy["title"],
        "questions": len(qas),
        "gold_span_share": {name: round(hits[name] / len(qas), 4) for name in SYSTEMS},
        "answer_chars_p50": chars,
        "timings": _timings(rows),
    }


def sec_reference_questions(*, files: list[str], limit: int) -> list[tuple[str, str]]:
    """(question, reference answer without its SOURCE(S) line) for the questions about `files`."""
    out: list[tuple[str, str]] = []
    with (SEC_DIR / "qna_data.csv").open(encoding="utf-8-sig", newline="") as fh:
        for row in csv.DictReader(fh):
            pattern = row["Source Docs"].strip()
            if any(fnmatch.fnmatch(f, pattern) or fnmatch.fnmatch(f, pattern + ".pdf") for f in files):
                out.append((row["Question"].strip(), row["Answer"].split("SOURCE(S):")[0].strip()))
    return out[:limit]


def _recall(reference: str, answer: str) -> tuple[float | None, float | None]:
    """Shares of the reference's numbers and content words (normalised, stemmed) that the answer holds."""
    from llm.grounding.lexical import tokens_extract

    def terms(text: str, kinds: set[str]) -> set[str]:
        return {t.norm for t in tokens_extract(text=_CITE.sub("", text)) if t.kind in kinds}

    out: list[float | None] = []
    for kinds in ({"num"}, {"word", "name"}):
        wanted = terms(reference, kinds)
        out.append(len(wanted & terms(answer, kinds)) / len(wanted) if wanted else None)
    return out[0], out[1]


def sec_answers(
    *, collection_id: int, files: list[str], limit: int, log: Callable[[str], None]
) -> dict[str, Any]:
    """Recall of the reference's numbers and content words, and the share flagged, per system."""
    from llm.grounding import scorer_get

    questions = sec_reference_questions(files=files, limit=limit)
    if not questions:
        return {"questions": 0}
    generators = _generators()
    scorer = scorer_get()
    scorer.warm_up()
    rows: list[dict[str, Answered]] = []
    recall: dict[str, dict[str, list[float]]] = {name: {"numbers": [], "words": []} for name in SYSTEMS}
    flagged = {name: 0 for name in SYSTEMS}
    for i, (question, reference) in enumerate(questions, start=1):
        row = _answers(generators, question, _prompt_passages(collection_id, question))
        rows.append(row)
        for name in SYSTEMS:
            numbers, words = _recall(reference, row[name].text)
            if numbers is not None:
                recall[name]["numbers"].append(numbers)
            if words is not None:
                recall[name]["words"].append(words)
            if row[name].text and row[name].passages:
                result = scorer.score(answer=row[name].text, passages=row[name].passages, question=question)
                flagged[name] += bool(result.status == "scored" and result.flagged)
        if i % 5 == 0:
            log(f"  10-Q answers {i}/{len(questions)}: flagged {flagged}")

    def mean(values: list[float]) -> float | None:
        return round(sum(values) / len(values), 4) if values else None

    return {
        "questions": len(questions),
        "number_recall": {name: mean(recall[name]["numbers"]) for name in SYSTEMS},
        "word_recall": {name: mean(recall[name]["words"]) for name in SYSTEMS},
        "questions_with_numbers": len(recall["extractive"]["numbers"]),
        "flagged_share": {name: round(flagged[name] / len(questions), 4) for name in SYSTEMS},
        "timings": _timings(rows),
    }


def answers_bench(
    *, collection_id: int | None, files: list[str], quick: bool, log: Callable[[str], None]
) -> dict[str, Any]:
    result: dict[str, Any] = {"smollm2_max_new_tokens": SMOLLM2_MAX_NEW_TOKENS}
    result["policyqa"] = policyqa_answers(limit=20 if quick else 100, log=log)
    log(f"  policyqa: {result['policyqa']}")
    if collection_id is not None:
        result["sec_10q"] = sec_answers(
            collection_id=collection_id, files=files, limit=10 if quick else 40, log=log
        )
        log(f"  10-Q: {result['sec_10q']}")
    return result
