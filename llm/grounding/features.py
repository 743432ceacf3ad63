"""Features of an answer against its passages, shared by the scorer and its training script.

The order of SENTENCE_FEATURES and ANSWER_FEATURES is the contract with the weights JSON: the
trained model stores the names and refuses to load when they differ.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from llm.embedding import TextEmbedder
from llm.grounding.lexical import (
    LexicalEvidence,
    Token,
    evidence_collect,
    tokens_extract,
    vocabulary_from_tokens,
)
from llm.grounding.splitting import Span, sentences_split

Array = npt.NDArray[np.float64]

SENTENCE_FEATURES = (
    "emb_max",
    "emb_top3",
    "emb_question",
    "best_overlap",
    "unknown_frac",
    "unknown_log",
    "unknown_numbers",
    "unknown_names",
    "unknown_rarity",
    "unknown_bigram_frac",
    "content_log",
    "refusal",
    "meta",
    "advice",
    "position",
)
ANSWER_FEATURES = (
    "p_max",
    "p_mean",
    "p_sum_log",
    "share_unsupported",
    "unknown_frac",
    "unknown_numbers",
    "unknown_names",
    "words_log",
    "refusal_share",
)

_REFUSAL = re.compile(
    r"\b(?:passages?|context|texts?|information|sources?|documents?|search results?|it|they)\b[^.]{0,60}?"
    r"\b(?:do(?:es)?n['’]?t|do(?:es)? not|did not|never)\b[^.]{0,30}?"
    r"\b(?:contain|provide|mention|include|specify|say|state|address|discuss|give|offer|have|explain|describe)"
    r"|\bnot possible to (?:answer|provide|determine|say)"
    r"|\bnot (?:mentioned|provided|specified|stated|included|available|addressed|discussed)\b"
    r"|\b(?:unable to|cannot|can['’]t|could not|couldn['’]t) (?:answer|determine|find|provide|say)\b"
    r"|\bno (?:information|mention|details?|data)\b|\binsufficient information\b",
    re.IGNORECASE,
)
_META = re.compile(
    r"^(?:based on|according to|from) (?:the )?(?:provided |given |above )?(?:passages?|information|context|text)"
    r"|^(?:here (?:is|are)|sure\b|certainly\b|great question)",
    re.IGNORECASE,
)
_ADVICE = re.compile(
    r"\b(?:it is (?:important|recommended|advisable|best|always)|consult|you (?:should|may want|might want|can also)"
    r"|generally|typically|usually|additionally|in summary|in conclusion|overall|however|may vary)\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class SentenceAnalysis:
    span: Span
    evidence: LexicalEvidence
    refusal: bool

    @property
    def hard_evidence(self) -> bool:
        """A number or a name no passage contains: on RAGTruth QA, 84% of answers with one are
        labeled hallucinated (base rate 32%), more than the classifier alone would conclude.
        A refusal ("the passages do not give 2031 revenue") names things without claiming them."""
        return not self.refusal and (self.evidence.unknown_numbers > 0 or self.evidence.unknown_names > 0)


@dataclass(frozen=True)
class AnswerAnalysis:
    sentences: tuple[SentenceAnalysis, ...]
    matrix: Array  # one row of SENTENCE_FEATURES per sentence
    words: int


def _passage_sentences(passages: Sequence[str]) -> tuple[list[str], list[list[Token]]]:
    """Distinct passage sentences and their tokens."""
    texts = list(dict.fromkeys(s.text for p in passages for s in sentences_split(text=p, by_line=False)))
    return texts, [tokens_extract(text=t) for t in texts]


def _limited(texts: list[str], words: list[frozenset[str]], limit: int, answer_words: set[str]) -> list[str]:
    """At most `limit` passage sentences to embed: those sharing most words with the answer."""
    if len(texts) <= limit:
        return texts
    ranked = sorted(range(len(texts)), key=lambda i: -len(words[i] & answer_words))[:limit]
    return [texts[i] for i in sorted(ranked)]


def _best_overlap(content: frozenset[str], passage_words: list[frozenset[str]]) -> float:
    """Share of the sentence's content words found together in one passage sentence."""
    if not content or not passage_words:
        return 0.0
    return max(len(content & words) for words in passage_words) / len(content)


def _similarities(
    embedder: TextEmbedder, answer_texts: list[str], passage_texts: list[str], question: str
) -> tuple[Array, Array, Array]:
    extra = [question] if question else []
    vectors = embedder.embed(answer_texts + passage_texts + extra).astype(np.float64)
    n = len(answer_texts)
    ans, psg = vectors[:n], vectors[n : n + len(passage_texts)]
    if len(passage_texts) == 0:
        zeros = np.zeros(n)
        return zeros, zeros, zeros
    sims = ans @ psg.T
    top = np.sort(sims, axis=1)[:, ::-1]
    top3 = top[:, : min(3, top.shape[1])].mean(axis=1)
    q_sim = ans @ vectors[-1] if question else np.zeros(n)
    return top[:, 0], top3, q_sim


def answer_analyse(
    *,
    answer: str,
    passages: Sequence[str],
    question: str,
    embedder: TextEmbedder,
    passage_limit: int = 80,
) -> AnswerAnalysis:
    spans = sentences_split(text=answer)
    if not spans:
        return AnswerAnalysis((), np.zeros((0, len(SENTENCE_FEATURES))), 0)
    passage_texts, passage_tokens = _passage_sentences(passages)
    # The question counts as known text: restating it is not inventing anything.
    vocab = vocabulary_from_tokens(token_lists=[*passage_tokens, tokens_extract(text=question)])
    passage_words = [frozenset(t.norm for t in tokens if t.kind != "stop") for tokens in passage_tokens]
    evidence = [evidence_collect(text=s.text, vocab=vocab) for s in spans]
    answer_words = {w for e in evidence for w in e.content_norms}
    embedded = _limited(passage_texts, passage_words, passage_limit, answer_words)
    emb_max, emb_top3, emb_q = _similarities(embedder, [s.text for s in spans], embedded, question)
    rows, analyses = [], []
    for i, (span, ev) in enumerate(zip(spans, evidence, strict=True)):
        refusal = bool(_REFUSAL.search(span.text))
        rows.append(
            [
                emb_max[i],
                emb_top3[i],
                emb_q[i],
                _best_overlap(ev.content_norms, passage_words),
                len(ev.unknown) / max(1, ev.content),
                math.log1p(len(ev.unknown)),
                min(ev.unknown_numbers, 3),
                min(ev.unknown_names, 3),
                math.log1p(ev.unknown_rarity),
                ev.unknown_bigrams / max(1, ev.bigrams),
                math.log1p(ev.content),
                float(refusal),
                float(bool(_META.search(span.text)) or span.text.rstrip().endswith(":")),
                float(bool(_ADVICE.search(span.text))),
                i / max(1, len(spans) - 1),
            ]
        )
        analyses.append(SentenceAnalysis(span, ev, refusal))
    return AnswerAnalysis(tuple(analyses), np.asarray(rows, dtype=np.float64), len(answer.split()))


def answer_features(*, analysis: AnswerAnalysis, p_unsupported: Array) -> Array:
    """ANSWER_FEATURES from the per-sentence probabilities of the sentence model."""
    m = analysis.matrix
    if len(analysis.sentences) == 0:
        return np.zeros(len(ANSWER_FEATURES))
    content = sum(s.evidence.content for s in analysis.sentences)
    unknown = sum(len(s.evidence.unknown) for s in analysis.sentences)
    col = SENTENCE_FEATURES.index
    return np.array(
        [
            p_unsupported.max(),
            p_unsupported.mean(),
            math.log1p(p_unsupported.sum()),
            float((p_unsupported > 0.5).mean()),
            unknown / max(1, content),
            min(m[:, col("unknown_numbers")].sum(), 5),
            min(m[:, col("unknown_names")].sum(), 5),
            math.log1p(analysis.words),
            m[:, col("refusal")].mean(),
        ]
    )
