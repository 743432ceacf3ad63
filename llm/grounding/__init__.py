"""Grounding scorers: how well an answer is supported by the passages it was generated from.

Importing this package loads no model; see `scorer_get()`.
"""

from llm.grounding.registry import scorer_build, scorer_get
from llm.grounding.types import GroundingError, GroundingResult, GroundingScorer, SentenceScore

__all__ = [
    "GroundingError",
    "GroundingResult",
    "GroundingScorer",
    "SentenceScore",
    "scorer_build",
    "scorer_get",
]
