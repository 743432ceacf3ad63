"""The small trained part: two logistic regressions (sentence level, answer level) in numpy.

Weights live in `weights/*.json`, written by `llm/grounding/train.py`; a few hundred bytes each, so
they are reviewed and versioned like code.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from llm.grounding.features import AnswerAnalysis, answer_features
from llm.grounding.types import GroundingError

Array = npt.NDArray[np.float64]
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"


@dataclass(frozen=True)
class LogisticModel:
    names: tuple[str, ...]
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    coef: tuple[float, ...]
    intercept: float

    def predict(self, x: Array) -> Array:
        """P(positive) per row; positive means unsupported / hallucinated."""
        if x.shape[0] == 0:
            return np.zeros(0)
        z = ((x - np.asarray(self.mean)) / np.asarray(self.scale)) @ np.asarray(self.coef) + self.intercept
        return 1.0 / (1.0 + np.exp(-np.clip(z, -30, 30)))

    def to_json(self) -> dict[str, object]:
        return {
            "names": list(self.names),
            "mean": [round(v, 6) for v in self.mean],
            "scale": [round(v, 6) for v in self.scale],
            "coef": [round(v, 6) for v in self.coef],
            "intercept": round(self.intercept, 6),
        }

    @classmethod
    def from_json(cls, data: dict[str, object], *, expected: tuple[str, ...]) -> LogisticModel:
        names = tuple(str(n) for n in _list(data, "names"))
        if names != expected:
            raise GroundingError(
                f"weights were trained on features {names}, code computes {expected}: retrain them"
            )
        return cls(
            names,
            _floats(data, "mean"),
            _floats(data, "scale"),
            _floats(data, "coef"),
            _floats(data, "intercept")[0],
        )


def _list(data: dict[str, object], key: str) -> list[object]:
    value = data.get(key)
    if not isinstance(value, list):
        raise GroundingError(f"weights field {key!r} is missing or not a list: retrain the weights")
    return value


def _floats(data: dict[str, object], key: str) -> tuple[float, ...]:
    value = data.get(key)
    values = value if isinstance(value, list) else [value]
    if not all(isinstance(v, int | float) for v in values):
        raise GroundingError(f"weights field {key!r} must hold numbers: retrain the weights")
    return tuple(float(v) for v in values)  # type: ignore[arg-type]


def logistic_fit(
    *, x: Array, y: Array, names: tuple[str, ...], l2: float = 1.0, weight: Array | None = None
) -> LogisticModel:
    """L2-regularised logistic regression by Newton's method on standardised features."""
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale < 1e-9] = 1.0
    z = np.hstack([(x - mean) / scale, np.ones((x.shape[0], 1))])
    w = np.ones(x.shape[0]) if weight is None else weight
    beta = np.zeros(z.shape[1])
    penalty = np.full(z.shape[1], l2)
    penalty[-1] = 0.0  # the intercept is not shrunk
    for _ in range(50):
        p = 1.0 / (1.0 + np.exp(-np.clip(z @ beta, -30, 30)))
        grad = z.T @ (w * (p - y)) + penalty * beta
        hess = (z * (w * p * (1 - p))[:, None]).T @ z + np.diag(penalty) + 1e-9 * np.eye(z.shape[1])
        step = np.linalg.solve(hess, grad)
        beta -= step
        if np.abs(step).max() < 1e-8:
            break
    return LogisticModel(names, tuple(mean), tuple(scale), tuple(beta[:-1]), float(beta[-1]))


@dataclass(frozen=True)
class GroundingWeights:
    version: str
    sentence: LogisticModel
    answer: LogisticModel
    threshold: float  # on the answer score (1 - P(hallucinated)): flagged below it
    sentence_threshold: float  # on sentence support: unsupported below it
    # Cap on the answer score when a sentence has hard evidence (an unknown number or name):
    # 1 - the share of such training answers labeled hallucinated.
    hard_evidence_score: float = 1.0
    embedder: str = "static-minilm"  # the features were computed with this embedder; so must scoring be
    provenance: dict[str, object] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        return {
            "version": self.version,
            "threshold": round(self.threshold, 6),
            "sentence_threshold": round(self.sentence_threshold, 6),
            "hard_evidence_score": round(self.hard_evidence_score, 6),
            "embedder": self.embedder,
            "sentence": self.sentence.to_json(),
            "answer": self.answer.to_json(),
            "provenance": self.provenance,
        }


def weights_load(
    *, path: Path, sentence_names: tuple[str, ...], answer_names: tuple[str, ...]
) -> GroundingWeights:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return GroundingWeights(
            version=str(data["version"]),
            sentence=LogisticModel.from_json(data["sentence"], expected=sentence_names),
            answer=LogisticModel.from_json(data["answer"], expected=answer_names),
            threshold=float(data["threshold"]),
            sentence_threshold=float(data["sentence_threshold"]),
            hard_evidence_score=float(data.get("hard_evidence_score", 1.0)),
            embedder=str(data.get("embedder", "static-minilm")),
            provenance=dict(data.get("provenance", {})),
        )
    except (OSError, KeyError, TypeError, ValueError) as exc:
        raise GroundingError(
            f"cannot read grounding weights {path}: {exc!r}; run llm/grounding/train.py"
        ) from exc


def weights_save(*, weights: GroundingWeights, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(weights.to_json(), indent=1) + "\n", encoding="utf-8")


@dataclass(frozen=True)
class Scored:
    grounded: float  # answer score, 0..1, higher = better grounded
    support: Array  # per sentence, 0..1
    supported: tuple[bool, ...]


# A sentence with hard evidence gets at most this support: about 1 - the 60-66% of such sentences
# that RAGTruth annotators marked.
_HARD_SENTENCE_SUPPORT = 0.35


def weights_apply(*, weights: GroundingWeights, analysis: AnswerAnalysis) -> Scored:
    """The one place that turns features into scores, for the scorer and for training alike."""
    if len(analysis.sentences) == 0:
        return Scored(1.0, np.zeros(0), ())  # nothing claimed, nothing invented
    p_unsupported = weights.sentence.predict(analysis.matrix)
    x = answer_features(analysis=analysis, p_unsupported=p_unsupported)
    grounded = float(1.0 - weights.answer.predict(x[np.newaxis, :])[0])
    hard = np.array([s.hard_evidence for s in analysis.sentences])
    support = np.where(hard, np.minimum(1.0 - p_unsupported, _HARD_SENTENCE_SUPPORT), 1.0 - p_unsupported)
    if hard.any():
        grounded = min(grounded, weights.hard_evidence_score)
    supported = tuple(
        bool(v >= weights.sentence_threshold) and not h for v, h in zip(support, hard, strict=True)
    )
    return Scored(grounded, support, supported)
