"""Evaluation of grounding scorers on human-labeled hallucinations (RAGTruth format).

Pure functions: loading, metrics and a timed evaluation loop. The management command and the
training script are thin wrappers over these.
"""

from __future__ import annotations

import json
import re
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from llm.grounding.types import GroundingScorer


@dataclass(frozen=True)
class SpanLabel:
    start: int
    end: int
    text: str
    label_type: str


@dataclass(frozen=True)
class LabeledResponse:
    source_id: str
    task: str  # "qa" | "summary" | "data2txt"
    question: str
    passages: tuple[str, ...]
    response: str
    model: str
    labels: tuple[SpanLabel, ...]

    @property
    def hallucinated(self) -> bool:
        return bool(self.labels)


_PASSAGE_HEAD = re.compile(r"(?:^|\n)\s*passage \d+:", re.IGNORECASE)


def _qa_passages(text: str) -> tuple[str, ...]:
    parts = [p.strip() for p in _PASSAGE_HEAD.split(text)]
    return tuple(p for p in parts if p)


def _flatten(value: object, prefix: str = "") -> list[str]:
    """Structured data (data2txt) as "key: value" lines, the form a retriever would hand over."""
    if isinstance(value, dict):
        lines: list[str] = []
        for key, inner in value.items():
            lines.extend(_flatten(inner, f"{prefix} {key}".strip()))
        return lines
    if isinstance(value, list):
        return [line for inner in value for line in _flatten(inner, prefix)]
    return [f"{prefix}: {value}" if prefix else str(value)]


def _data2txt_passages(source: dict[str, object]) -> tuple[str, ...]:
    reviews = source.get("review_info")
    facts = {k: v for k, v in source.items() if k != "review_info"}
    passages = ["\n\n".join(_flatten(facts))]
    if isinstance(reviews, list):
        passages.extend(". ".join(_flatten(review)) for review in reviews)
    return tuple(p for p in passages if p)


def _source_fields(source: object) -> tuple[str, str, tuple[str, ...]]:
    """(task, question, passages) for the three RAGTruth task types."""
    if isinstance(source, str):
        return "summary", "", (source,)
    if isinstance(source, dict) and isinstance(source.get("passages"), str):
        return "qa", str(source.get("question", "")), _qa_passages(str(source["passages"]))
    if isinstance(source, dict):
        return "data2txt", "", _data2txt_passages(source)
    raise ValueError(f"unknown RAGTruth source type {type(source).__name__}: expected str or dict")


def ragtruth_load(*, path: Path) -> list[LabeledResponse]:
    """One LabeledResponse per response; raises ValueError naming the line that cannot be read."""
    items: list[LabeledResponse] = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                task, question, passages = _source_fields(row["source"])
                for resp in row["responses"]:
                    labels = tuple(
                        SpanLabel(
                            int(lb["start"]),
                            int(lb["end"]),
                            str(lb.get("text", "")),
                            str(lb.get("label_type", "")),
                        )
                        for lb in resp.get("labels", [])
                    )
                    items.append(
                        LabeledResponse(
                            str(row["source_id"]),
                            task,
                            question,
                            passages,
                            resp["response"],
                            str(resp.get("model", "?")),
                            labels,
                        )
                    )
            except (KeyError, TypeError, ValueError) as exc:
                raise ValueError(f"{path}:{number}: not a RAGTruth record ({exc!r})") from exc
    return items


@dataclass(frozen=True)
class Metrics:
    precision: float
    recall: float
    f1: float
    balanced_accuracy: float
    n: int
    positives: int  # truly hallucinated

    def to_text(self) -> str:
        return (
            f"P={self.precision:.3f} R={self.recall:.3f} F1={self.f1:.3f} "
            f"BAcc={self.balanced_accuracy:.3f} n={self.n} pos={self.positives}"
        )


def _ratio(num: int, den: int) -> float:
    return num / den if den else 0.0


def metrics_compute(*, truth: Sequence[bool], predicted: Sequence[bool]) -> Metrics:
    """Binary metrics with "hallucinated" as the positive class; empty classes score 0, not NaN."""
    if len(truth) != len(predicted):
        raise ValueError(f"truth has {len(truth)} items but predicted has {len(predicted)}")
    tp = sum(1 for t, p in zip(truth, predicted, strict=True) if t and p)
    fp = sum(1 for t, p in zip(truth, predicted, strict=True) if not t and p)
    fn = sum(1 for t, p in zip(truth, predicted, strict=True) if t and not p)
    tn = len(truth) - tp - fp - fn
    precision, recall = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
    f1 = _ratio(2 * tp, 2 * tp + fp + fn)
    specificity = _ratio(tn, tn + fp)
    return Metrics(precision, recall, f1, (recall + specificity) / 2, len(truth), tp + fn)


@dataclass(frozen=True)
class EvalReport:
    scorer: str
    version: str
    threshold: float
    overall: Metrics
    per_model: dict[str, Metrics]
    median_ms: float
    p95_ms: float
    scores: tuple[float, ...] = field(repr=False)
    note: str = ""

    def to_text(self) -> str:
        lines = [
            f"scorer {self.scorer} v{self.version}, threshold {self.threshold:.3f}"
            + (f" ({self.note})" if self.note else ""),
            f"{'overall':<22} {self.overall.to_text()}",
        ]
        lines += [f"{model:<22} {m.to_text()}" for model, m in sorted(self.per_model.items())]
        lines.append(f"latency per answer: median {self.median_ms:.1f} ms, p95 {self.p95_ms:.1f} ms")
        return "\n".join(lines)


def _percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def grounding_evaluate(
    *,
    scorer: GroundingScorer,
    items: Sequence[LabeledResponse],
    note: str = "",
    progress: Callable[[int, int], None] | None = None,
) -> EvalReport:
    """Score every item (after `warm_up`, so model loading is not timed) and compare with the labels."""
    scorer.warm_up()
    flagged: list[bool] = []
    scores: list[float] = []
    timings: list[float] = []
    threshold = 0.0
    for index, item in enumerate(items):
        began = time.perf_counter()
        result = scorer.score(answer=item.response, passages=item.passages, question=item.question)
        timings.append((time.perf_counter() - began) * 1000)
        flagged.append(result.flagged)
        scores.append(result.score)
        threshold = result.threshold
        if progress:
            progress(index + 1, len(items))
    truth = [item.hallucinated for item in items]
    per_model: dict[str, Metrics] = {}
    for model in sorted({item.model for item in items}):
        idx = [i for i, item in enumerate(items) if item.model == model]
        per_model[model] = metrics_compute(truth=[truth[i] for i in idx], predicted=[flagged[i] for i in idx])
    return EvalReport(
        scorer=scorer.name,
        version=scorer.version,
        threshold=threshold,
        overall=metrics_compute(truth=truth, predicted=flagged),
        per_model=per_model,
        median_ms=statistics.median(timings) if timings else 0.0,
        p95_ms=_percentile(timings, 0.95),
        scores=tuple(scores),
        note=note,
    )
