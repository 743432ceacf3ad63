"""Train (and cross-validate) the lexical-embedding scorer's weights on RAGTruth.

    python -m llm.grounding.train --data ../shared/eval/ragtruth \
        --out llm/grounding/weights/lexical_embedding.json

Protocol: QA responses are split into folds grouped by source_id (no source in two folds); each
fold is scored by weights fitted on the other folds plus the summary and data2txt tasks, with the
threshold also chosen on the training side only. The printed QA figures are those out-of-fold
predictions; the shipped weights are then fitted on everything.
"""

from __future__ import annotations

import argparse
import dataclasses
import pickle
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from llm.grounding.embedding import embedder_build
from llm.grounding.evaluation import LabeledResponse, Metrics, metrics_compute, ragtruth_load
from llm.grounding.features import (
    ANSWER_FEATURES,
    SENTENCE_FEATURES,
    AnswerAnalysis,
    answer_analyse,
    answer_features,
)
from llm.grounding.model import GroundingWeights, logistic_fit, weights_apply, weights_save

Array = npt.NDArray[np.float64]
FILES = {
    "qa": "ragtruth_qa_dev.jsonl",
    "summary": "ragtruth_summary.jsonl",
    "data2txt": "ragtruth_data2txt.jsonl",
}
VERSION = "1"


@dataclass(frozen=True)
class Sample:
    item: LabeledResponse
    analysis: AnswerAnalysis
    sentence_labels: Array  # 1.0 where the sentence overlaps a human-labeled span


@dataclass(frozen=True)
class FitConfig:
    extra_weight: float = 0.5  # weight of summary/data2txt examples next to QA ones
    l2_sentence: float = 1.0
    l2_answer: float = 1.0


def samples_build(
    *, items: Sequence[LabeledResponse], embedder: str, cache: Path | None = None
) -> list[Sample]:
    key = (SENTENCE_FEATURES, embedder, list(items))
    if cache and cache.exists():
        with cache.open("rb") as handle:
            cached_key, cached = pickle.load(handle)  # our own file, written below
        if cached_key == key:
            return [Sample(*row) for row in cached]
    model = embedder_build(name=embedder)
    samples = []
    for item in items:
        analysis = answer_analyse(
            answer=item.response, passages=item.passages, question=item.question, embedder=model
        )
        labels = np.array(
            [
                float(any(lb.start < s.span.end and lb.end > s.span.start for lb in item.labels))
                for s in analysis.sentences
            ]
        )
        samples.append(Sample(item, analysis, labels))
    if cache:
        cache.parent.mkdir(parents=True, exist_ok=True)
        with cache.open("wb") as handle:
            # Plain tuples: Sample lives in __main__ when this runs as a script.
            pickle.dump((key, [(s.item, s.analysis, s.sentence_labels) for s in samples]), handle)
    return samples


def _best_threshold(y: Array, p: Array) -> float:
    """The probability cut maximising F1 on training data (never on the data it is reported on)."""
    order = np.argsort(-p)
    ranked_p, ranked_y = p[order], (y[order] > 0.5).astype(np.float64)
    tp = np.cumsum(ranked_y)  # flagging the top k+1 scores
    fp = np.cumsum(1.0 - ranked_y)
    f1 = 2 * tp / (2 * tp + fp + (ranked_y.sum() - tp))
    # Only cut between distinct scores: ties are flagged together.
    distinct = np.r_[ranked_p[1:] < ranked_p[:-1], True]
    best = int(np.argmax(np.where(distinct, f1, -1.0)))
    return float(ranked_p[best])


def weights_fit(
    *, train: Sequence[Sample], config: FitConfig, threshold_on: Sequence[Sample]
) -> GroundingWeights:
    weight_of = [1.0 if s.item.task == "qa" else config.extra_weight for s in train]
    xs = np.vstack([s.analysis.matrix for s in train if len(s.analysis.sentences)])
    ys = np.concatenate([s.sentence_labels for s in train if len(s.analysis.sentences)])
    ws = np.concatenate(
        [np.full(len(s.analysis.sentences), w) for s, w in zip(train, weight_of, strict=True)]
    )
    sentence = logistic_fit(x=xs, y=ys, names=SENTENCE_FEATURES, l2=config.l2_sentence, weight=ws)

    def answer_x(samples: Sequence[Sample]) -> Array:
        return np.vstack(
            [
                answer_features(analysis=s.analysis, p_unsupported=sentence.predict(s.analysis.matrix))
                for s in samples
            ]
        )

    ya = np.array([float(s.item.hallucinated) for s in train])
    answer = logistic_fit(
        x=answer_x(train), y=ya, names=ANSWER_FEATURES, l2=config.l2_answer, weight=np.array(weight_of)
    )
    y_threshold = np.array([float(s.item.hallucinated) for s in threshold_on])
    hard = np.array([any(x.hard_evidence for x in s.analysis.sentences) for s in threshold_on])
    hard_score = 1.0 - float(y_threshold[hard].mean()) if hard.any() else 1.0
    # Choose the cut with hard-evidence answers already capped, as the scorer will see them.
    p_threshold = np.where(
        hard,
        np.maximum(answer.predict(answer_x(threshold_on)), 1.0 - hard_score),
        answer.predict(answer_x(threshold_on)),
    )
    cut = _best_threshold(y_threshold, p_threshold)
    s_cut = _best_threshold(ys, sentence.predict(xs))
    return GroundingWeights(VERSION, sentence, answer, 1.0 - cut, 1.0 - s_cut, hard_evidence_score=hard_score)


def predict_flags(*, weights: GroundingWeights, samples: Sequence[Sample]) -> list[bool]:
    return [weights_apply(weights=weights, analysis=s.analysis).grounded < weights.threshold for s in samples]


def folds_group(*, samples: Sequence[Sample], k: int, seed: int) -> list[list[int]]:
    """Indices of `samples` in k folds, whole sources at a time, sources shuffled by `seed`."""
    sources = sorted({s.item.source_id for s in samples})
    random.Random(seed).shuffle(sources)
    fold_of = {src: i % k for i, src in enumerate(sources)}
    return [[i for i, s in enumerate(samples) if fold_of[s.item.source_id] == f] for f in range(k)]


def cross_validate(
    *, qa: Sequence[Sample], extra: Sequence[Sample], config: FitConfig, k: int, seeds: Sequence[int]
) -> tuple[Metrics, dict[str, Metrics], list[Metrics]]:
    """Out-of-fold QA predictions pooled over all seeds; also one overall Metrics per seed."""
    truth: list[bool] = []
    flags: list[bool] = []
    models: list[str] = []
    per_seed = []
    for seed in seeds:
        seed_truth, seed_flags = [], []
        for fold in folds_group(samples=qa, k=k, seed=seed):
            held = set(fold)
            train_qa = [s for i, s in enumerate(qa) if i not in held]
            test = [qa[i] for i in fold]
            weights = weights_fit(train=[*train_qa, *extra], config=config, threshold_on=train_qa or extra)
            seed_flags += predict_flags(weights=weights, samples=test)
            seed_truth += [s.item.hallucinated for s in test]
            models += [s.item.model for s in test]
        per_seed.append(metrics_compute(truth=seed_truth, predicted=seed_flags))
        truth += seed_truth
        flags += seed_flags
    per_model = {
        m: metrics_compute(
            truth=[t for t, mm in zip(truth, models, strict=True) if mm == m],
            predicted=[f for f, mm in zip(flags, models, strict=True) if mm == m],
        )
        for m in sorted(set(models))
    }
    return metrics_compute(truth=truth, predicted=flags), per_model, per_seed


def _print_metrics(title: str, overall: Metrics, per_model: dict[str, Metrics]) -> None:
    print(title)
    print(f"{'overall':<22} {overall.to_text()}")
    for model, m in per_model.items():
        print(f"{model:<22} {m.to_text()}")


def held_out_evaluate(*, qa: Sequence[Sample], extra: Sequence[Sample]) -> tuple[GroundingWeights, Metrics]:
    """Weights that never see a QA response (not even for the threshold), scored on every QA response."""
    weights = weights_fit(train=extra, config=FitConfig(extra_weight=1.0), threshold_on=extra)
    flags = predict_flags(weights=weights, samples=qa)
    truth = [s.item.hallucinated for s in qa]
    per_model = {
        m: metrics_compute(
            truth=[t for t, s in zip(truth, qa, strict=True) if s.item.model == m],
            predicted=[f for f, s in zip(flags, qa, strict=True) if s.item.model == m],
        )
        for m in sorted({s.item.model for s in qa})
    }
    overall = metrics_compute(truth=truth, predicted=flags)
    _print_metrics("QA, held out: trained on the extra tasks only, tested on all QA", overall, per_model)
    return weights, overall


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=Path("../shared/eval/ragtruth"))
    parser.add_argument("--out", type=Path, default=None, help="where to write the weights JSON")
    parser.add_argument(
        "--held-out-out", type=Path, default=None, help="where to write the no-QA weights JSON"
    )
    parser.add_argument(
        "--cache", type=Path, default=None, help="pickle of computed features, to iterate faster"
    )
    parser.add_argument("--embedder", default="static-minilm", choices=["static-minilm", "minilm"])
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--extra-weight", type=float, default=FitConfig.extra_weight)
    parser.add_argument("--tasks", default="summary", help="extra training tasks, comma-separated")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    items = {task: ragtruth_load(path=args.data / name) for task, name in FILES.items()}
    samples = samples_build(
        items=[i for task in FILES for i in items[task]], embedder=args.embedder, cache=args.cache
    )
    qa = [s for s in samples if s.item.task == "qa"]
    extra = [s for s in samples if s.item.task in set(filter(None, args.tasks.split(",")))]
    config = FitConfig(extra_weight=args.extra_weight)
    overall, per_model, per_seed = cross_validate(
        qa=qa, extra=extra, config=config, k=args.folds, seeds=range(args.seeds)
    )
    title = f"QA, {args.folds}-fold CV grouped by source_id x {args.seeds} seeds, extra tasks: {args.tasks or 'none'}"
    _print_metrics(title, overall, per_model)
    f1s = [m.f1 for m in per_seed]
    print(f"F1 per seed: {' '.join(f'{f:.3f}' for f in f1s)} (sd {np.std(f1s):.3f})")
    if extra:
        held_weights, held = held_out_evaluate(qa=qa, extra=extra)
        if args.held_out_out:
            provenance: dict[str, object] = {
                "trained_on": f"{args.tasks} only, no QA",
                "qa_all": held.to_text(),
            }
            held_weights = dataclasses.replace(held_weights, embedder=args.embedder, provenance=provenance)
            weights_save(weights=held_weights, path=args.held_out_out)
    if args.out:
        weights = weights_fit(train=[*qa, *extra], config=config, threshold_on=qa)
        provenance = {
            "trained_on": f"RAGTruth QA (all {len(qa)}) + {args.tasks} (weight {args.extra_weight})",
            "cv": f"{args.folds}-fold grouped by source_id x {args.seeds} seeds on QA: {overall.to_text()}",
        }
        weights = dataclasses.replace(weights, embedder=args.embedder, provenance=provenance)
        weights_save(weights=weights, path=args.out)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
