"""`llm-judge`: ask a generator to label each answer sentence SUPPORTED or UNSUPPORTED.

Slower and costlier than the default scorer (one generation per answer), so it is opt-in by setting.
The generator is duck-typed: anything with `stream(*, messages, params) -> Iterator[str]`, which is
the project's generator Protocol (llm/generators) without importing it here.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import Any, Protocol

from llm.grounding.splitting import Span, sentences_split
from llm.grounding.types import GroundingError, GroundingResult, SentenceScore


class StreamingGenerator(Protocol):
    def stream(self, *, messages: Sequence[Any], params: Any) -> Iterator[str]: ...


_SYSTEM = (
    "You check answers against source passages. A sentence is SUPPORTED when the passages state or "
    "directly imply it, or when it says the passages lack the information. Otherwise it is UNSUPPORTED "
    "(invented numbers, names, facts or advice not in the passages, or contradicting them)."
)
_VERDICT = re.compile(r"^\W*(\d+)\W+(SUPPORTED|UNSUPPORTED|NOT SUPPORTED)\b", re.IGNORECASE | re.MULTILINE)


def judge_prompt(
    *, question: str, passages: Sequence[str], sentences: Sequence[str], max_chars: int
) -> tuple[str, str]:
    """(system, user) texts."""
    budget = max_chars // max(1, len(passages))  # every passage gets a share rather than the first all
    numbered_passages = "\n\n".join(f"[{i}] {p[:budget]}" for i, p in enumerate(passages, start=1))
    numbered = "\n".join(f"{i}. {s}" for i, s in enumerate(sentences, start=1))
    user = (
        f"Passages:\n{numbered_passages}\n\nQuestion: {question}\n\nAnswer sentences:\n{numbered}\n\n"
        f"For each of the {len(sentences)} answer sentences, write one line `<number>: SUPPORTED` or "
        "`<number>: UNSUPPORTED`, nothing else."
    )
    return _SYSTEM, user


def verdicts_parse(*, text: str, count: int) -> dict[int, bool]:
    """Sentence number (1-based) → supported; numbers the model skipped or invented are absent."""
    verdicts: dict[int, bool] = {}
    for match in _VERDICT.finditer(text):
        number = int(match.group(1))
        if 1 <= number <= count and number not in verdicts:
            verdicts[number] = match.group(2).upper() == "SUPPORTED"
    return verdicts


def _support(verdict: bool | None) -> float:
    return 0.5 if verdict is None else float(verdict)


def verdicts_result(
    *, spans: Sequence[Span], verdicts: dict[int, bool], threshold: float, scorer: str, version: str
) -> GroundingResult:
    """The answer's grounding from the judge's verdicts, failing closed.

    A sentence without a verdict counts neither way: the answer is decided only when every way of filling
    in the missing verdicts gives the same side of the threshold (then its score counts them unsupported);
    otherwise, and always when the judge gave no usable verdict at all, it is "unscored". A garbled reply
    must neither flag every answer nor pass any answer as grounded.
    """
    sentences = tuple(
        SentenceScore(s.start, s.end, s.text, _support(verdicts.get(i)), verdicts.get(i, False), i in verdicts)
        for i, s in enumerate(spans, start=1)
    )
    if not sentences:
        return GroundingResult(1.0, False, threshold, scorer, version, ())
    supported = sum(1 for s in sentences if s.judged and s.supported)
    missing = sum(1 for s in sentences if not s.judged)
    low, high = supported / len(sentences), (supported + missing) / len(sentences)
    if missing == len(sentences) or low < threshold <= high:
        reason = (
            f"the judge gave a usable verdict for {len(sentences) - missing} of {len(sentences)} sentences, "
            "too few to decide"
        )
        return GroundingResult(low, False, threshold, scorer, version, sentences, status="unscored", reason=reason)
    return GroundingResult(low, low < threshold, threshold, scorer, version, sentences)


class LlmJudgeScorer:
    name = "llm-judge"
    version = "1"

    def __init__(
        self,
        *,
        generator: object | None = None,
        params: object | None = None,
        threshold: float | None = None,
        max_passage_chars: int = 6000,
    ) -> None:
        if generator is not None and not callable(getattr(generator, "stream", None)):
            raise GroundingError(
                f"llm-judge needs a generator with stream(*, messages, params); got {type(generator).__name__}"
            )
        self._generator = generator
        self._params = params
        # Score is the share of supported sentences: by default one unsupported sentence flags.
        self.threshold = 1.0 if threshold is None else float(threshold)
        self._max_chars = max_passage_chars

    def warm_up(self) -> None:
        if self._generator is None:
            from llm.generators import generator_get  # type: ignore[attr-defined,import-not-found,unused-ignore]

            self._generator = generator_get()
        warm = getattr(self._generator, "warm_up", None)
        if callable(warm):
            warm()

    def score(self, *, answer: str, passages: Sequence[str], question: str = "") -> GroundingResult:
        self.warm_up()
        spans = sentences_split(text=answer)
        verdicts: dict[int, bool] = {}
        if spans:
            system, user = judge_prompt(
                question=question,
                passages=passages,
                sentences=[s.text for s in spans],
                max_chars=self._max_chars,
            )
            # Imported here: the generator package is the project's, loaded only when judging.
            from llm.generators.base import ChatMessage, GenerationParams

            messages = (ChatMessage("system", system), ChatMessage("user", user))
            # Greedy and short: a verdict line is ~6 tokens per sentence.
            params = self._params or GenerationParams(max_new_tokens=12 * len(spans) + 16, temperature=0.0)
            generator: StreamingGenerator = self._generator  # type: ignore[assignment]
            verdicts = verdicts_parse(
                text="".join(generator.stream(messages=messages, params=params)), count=len(spans)
            )
        return verdicts_result(
            spans=spans, verdicts=verdicts, threshold=self.threshold, scorer=self.name, version=self.version
        )
