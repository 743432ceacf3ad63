"""The default scorer: lexical evidence + MiniLM similarity, combined by trained logistic regressions.

Per answer sentence: which content words, numbers and names no passage (nor the question) contains,
how many of its words one passage sentence holds, cosine similarity to the passage sentences,
refusal / meta / advice cues. A sentence model turns these into P(unsupported); an answer model
turns the sentences' probabilities (and answer length, refusal share) into the answer score. A
number or name found in no passage caps both (see `SentenceAnalysis.hard_evidence`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from llm.embedding import TextEmbedder
from llm.grounding.embedding import embedder_build
from llm.grounding.features import ANSWER_FEATURES, SENTENCE_FEATURES, answer_analyse
from llm.grounding.lexical import word_rarity
from llm.grounding.model import WEIGHTS_DIR, GroundingWeights, weights_apply, weights_load
from llm.grounding.types import GroundingResult, SentenceScore

DEFAULT_WEIGHTS = WEIGHTS_DIR / "lexical_embedding.json"


class LexicalEmbeddingScorer:
    """CPU-only and offline; the embedding table loads on `warm_up()` (or the first `score()`).

    Thread-safe: `score` keeps no per-call state on the instance; the caches it fills are bounded.
    """

    name = "lexical-embedding"

    def __init__(
        self,
        *,
        threshold: float | None = None,
        weights_path: Path | str | None = None,
        embedder: TextEmbedder | None = None,
        passage_limit: int = 80,
    ) -> None:
        # The weights are a few hundred numbers: reading them here is cheap and lets a bad file
        # fail at configuration time rather than on the first answer.
        self._weights: GroundingWeights = weights_load(
            path=Path(weights_path) if weights_path else DEFAULT_WEIGHTS,
            sentence_names=SENTENCE_FEATURES,
            answer_names=ANSWER_FEATURES,
        )
        self.version = self._weights.version
        self.threshold = self._weights.threshold if threshold is None else float(threshold)
        self._embedder = embedder if embedder is not None else embedder_build(name=self._weights.embedder)
        self._passage_limit = passage_limit

    def warm_up(self) -> None:
        self._embedder.warm_up()
        word_rarity("warm")  # loads the vocabulary ranks now rather than on the first answer

    def score(self, *, answer: str, passages: Sequence[str], question: str = "") -> GroundingResult:
        analysis = answer_analyse(
            answer=answer,
            passages=passages,
            question=question,
            embedder=self._embedder,
            passage_limit=self._passage_limit,
        )
        scored = weights_apply(weights=self._weights, analysis=analysis)
        sentences = tuple(
            SentenceScore(
                start=s.span.start, end=s.span.end, text=s.span.text, support=float(v), supported=ok
            )
            for s, v, ok in zip(analysis.sentences, scored.support, scored.supported, strict=True)
        )
        grounded = scored.grounded
        return GroundingResult(
            score=grounded,
            flagged=grounded < self.threshold,
            threshold=self.threshold,
            scorer=self.name,
            version=self.version,
            sentences=sentences,
        )
