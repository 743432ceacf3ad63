"""Result types and the scorer Protocol: the whole contract the rest of the project sees."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

GroundingStatus = Literal["scored", "unscored"]


@dataclass(frozen=True)
class SentenceScore:
    """One answer sentence; `start`/`end` are char offsets into the answer (end exclusive)."""

    start: int
    end: int
    text: str
    support: float  # 0..1, higher = better supported by the passages
    supported: bool
    judged: bool = True  # False: the scorer could say nothing of it (a judge that skipped it); never "unsupported"

    def to_json(self) -> dict[str, object]:
        return {
            "start": self.start,
            "end": self.end,
            "text": self.text,
            "support": round(self.support, 4),
            "supported": self.supported,
            "judged": self.judged,
        }


@dataclass(frozen=True)
class GroundingResult:
    score: float  # 0..1, higher = better grounded (answer level); no verdict when `status` is "unscored"
    flagged: bool  # hallucinated by the threshold (never when unscored)
    threshold: float
    scorer: str
    version: str
    sentences: tuple[SentenceScore, ...]
    # "unscored": the scorer ran but has no verdict (a judge whose reply said too little): the answer is
    # neither grounded nor flagged, and `reason` says why. It must never pass for a grounded answer.
    status: GroundingStatus = "scored"
    reason: str = ""

    @property
    def unsupported(self) -> tuple[SentenceScore, ...]:
        return tuple(s for s in self.sentences if s.judged and not s.supported)

    def to_json(self) -> dict[str, object]:
        """Plain JSON types only, so it fits a JSONField or an API response as is."""
        return {
            "status": self.status,
            "score": round(self.score, 4),
            "flagged": self.flagged,
            "threshold": self.threshold,
            "scorer": self.scorer,
            "version": self.version,
            "sentences": [s.to_json() for s in self.sentences],
            "reason": self.reason,
        }


@runtime_checkable
class GroundingScorer(Protocol):
    name: str
    version: str

    def warm_up(self) -> None: ...

    def score(self, *, answer: str, passages: Sequence[str], question: str = "") -> GroundingResult: ...


class GroundingError(Exception):
    """Raised for a bad scorer name, bad options or unusable weights; the message says what to fix."""
