"""Extractive backend: the answer is the documents' own sentences, each cited, so it cannot invent a word.

It reads the question and the numbered passages out of the grounded prompt (`prompt_parse`), splits the
passages into sentences and table rows, ranks them by the bundled MiniLM's similarity to the question
plus lexical signals (the question's rarer words, its numbers and names; a figure when the question asks
for an amount), and answers with the best few, each followed by its passage number [n]. When even the
best scores under the threshold, it says the documents do not contain the answer. On a laptop CPU an
answer takes a few hundred milliseconds (one MiniLM pass over the passages' sentences), not a minute.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from llm.embedding import TextEmbedder
from llm.generators.base import (
    ChatMessage,
    Extract,
    GenerationParams,
    NumberedPassage,
    adapter_refuse,
    pieces_cut_at_stop,
)
from llm.grounding.embedding import embedder_build
from llm.grounding.lexical import tokens_extract, word_rarity
from llm.grounding.splitting import sentences_split
from llm.prompts import NOT_IN_DOCUMENTS, prompt_parse
from ragsite.components import LoadsOnce

# Counted as the stream is cut (max_new_tokens): words, numbers and punctuation marks, one each.
_TOKEN = re.compile(r"\w+|[^\w\s]")
# Questions that want a figure: a unit holding a number is likelier to answer them.
_QUANTITY = re.compile(
    r"\b(?:how\s+(?:many|much|long|often|far|old|large|big|high|low|fast|soon|early|late)|"
    r"what\s+(?:percentage|percent|share|amount|number|rate|fee|price|cost|total|value|limit|minimum|maximum)|"
    r"when|which\s+year|what\s+year|by\s+how)\b",
    re.IGNORECASE,
)
# A table row as ingestion writes it: "title — label | header: value" or "label | figures".
_ROW = " | "
_LONG_UNIT_CHARS = 500
_UNIT_WINDOW = 3  # words after a number where the question's unit word may stand
_WINDOW_CHARS = 300
_HEADING_WORDS = 6  # a line this short, unpunctuated, between a sentence's end and a capital, is a heading
_SENTENCE_END = (".", "!", "?", ":", ";", ",")
MESSAGE_OVERHEAD_TOKENS = 4


@dataclass(frozen=True)
class _Unit:
    n: int  # the passage's number in the prompt
    position: int  # order inside the passage
    text: str  # as shown (whitespace collapsed; a table row with its table's heading line above it)
    scored: str  # as embedded and matched: a row with its heading, so "2018" is known to be a column


def _windows(text: str) -> list[str]:
    """An over-long 'sentence' (a PDF page without full stops) cut at line breaks, then at words."""
    pieces: list[str] = []
    current = ""
    for word in text.split():
        if current and len(current) + 1 + len(word) > _WINDOW_CHARS:
            pieces.append(current)
            current = word
        else:
            current = f"{current} {word}" if current else word
    return [*pieces, current] if current else pieces


def _prose_units(text: str) -> list[str]:
    units = []
    for span in sentences_split(text=text, by_line=False):
        flat = " ".join(span.text.split())
        units.extend(_windows(flat) if len(flat) > _LONG_UNIT_CHARS else [flat])
    return units


def _is_heading(lines: Sequence[str], index: int) -> bool:
    """A heading line ('Paid leave') of a PDF page's text: short, unpunctuated, after a finished sentence (or
    first) and before a capitalised line. Shown glued to the next sentence it would read 'Paid leave Every
    employee...'; a line of a wrapped sentence follows an unfinished one, so it stays in its sentence."""
    line = lines[index]
    following = lines[index + 1] if index + 1 < len(lines) else ""
    previous = next((lines[i] for i in range(index - 1, -1, -1) if lines[i]), "")
    return (
        bool(line) and len(line.split()) <= _HEADING_WORDS and not line.endswith(_SENTENCE_END)
        and (line[0].isupper() or line[0].isdigit()) and following[:1].isupper()
        and (not previous or previous.endswith((".", "!", "?", ":")))
    )


def units_split(passage: NumberedPassage) -> list[_Unit]:
    """A passage's sentences and table rows, in order; a row of figures keeps its table's heading line."""
    units: list[_Unit] = []
    prose: list[str] = []
    heading = ""

    def add(text: str, scored: str | None = None) -> None:
        units.append(_Unit(passage.n, len(units), text, scored or text))

    titled = [""]  # the prose heading above, scored with each sentence under it but never shown

    def flush() -> None:
        for sentence in _prose_units("\n".join(prose)):
            add(sentence, f"{titled[0]} {sentence}" if titled[0] else None)
        prose.clear()

    lines = [" ".join(line.split()) for line in passage.text.splitlines()]
    for index, line in enumerate(lines):
        if _ROW not in line:
            heading = ""
            if _is_heading(lines, index):
                flush()
                titled[0] = line
            else:
                prose.append(line)
            continue
        flush()
        labelled = ": " in line.split(_ROW, 1)[1]
        follows_row = index > 0 and _ROW in lines[index - 1]
        if not labelled and not heading and not follows_row:
            heading = line  # the first line of a group of figure rows names the columns
            add(line)
        elif heading and not labelled:
            add(f"{heading}\n{line}", f"{heading} {line}")
        else:
            add(line)
    flush()
    return units


def _weights(tokens: Sequence[str]) -> dict[str, float]:
    return {token: 0.3 + word_rarity(token) for token in tokens}


def _terms(text: str) -> set[str]:
    return {t.norm for t in tokens_extract(text=text) if t.kind != "stop"}


class ExtractiveGenerator(LoadsOnce):
    """Answers with ranked passage sentences; writes no word of its own.

    `threshold`: the best unit's score under which the answer is NOT_IN_DOCUMENTS; `max_units` and
    `max_chars` bound the answer; `embedder` names the grounding embedders' MiniLM ("minilm": the full
    transformer; "static-minilm": its word vectors, ~1000x cheaper and blind to word order).
    """

    backend = "extractive"
    quantization = "none (extracts sentences; the ranking model is float32 MiniLM)"

    def __init__(
        self,
        *,
        threshold: float = 0.2,
        max_units: int = 3,
        max_chars: int = 700,
        follow_share: float = 0.8,
        embedder: str = "minilm",
        context_window: int = 16384,
    ) -> None:
        self._threshold = threshold
        self._max_units = max_units
        self._max_chars = max_chars
        self._follow_share = follow_share
        self._embedder_name = embedder
        self._context_window = context_window
        self._embedder: TextEmbedder | None = None

    @property
    def model_name(self) -> str:
        return f"extractive ({self._embedder_name} ranking)"

    @property
    def context_window(self) -> int:
        return self._context_window

    def _load(self) -> None:
        embedder = embedder_build(name=self._embedder_name)
        embedder.warm_up()
        self._embedder = embedder

    def count_tokens(self, messages: Sequence[ChatMessage]) -> int:
        return sum(len(_TOKEN.findall(m.content)) + MESSAGE_OVERHEAD_TOKENS for m in messages)

    def stream(self, *, messages: Sequence[ChatMessage], params: GenerationParams) -> Iterator[str]:
        adapter_refuse(backend=self.backend, adapter=params.adapter)
        self.warm_up()
        parsed = prompt_parse(messages)
        if parsed is None:
            # Not a grounded prompt (a query rewrite): there are no passages to quote, so nothing to say.
            question = next((m.content for m in reversed(messages) if m.role == "user"), "")
            extract = self.extract(question=question, passages=())
        else:
            extract = self.extract(question=parsed.question, passages=parsed.passages)
        return pieces_cut_at_stop(_pieces(extract, params.max_new_tokens), params.stop)

    def extract(self, *, question: str, passages: Sequence[NumberedPassage]) -> Extract:
        """The best sentences or rows for `question`, best first then in reading order, each cited [n]."""
        self.warm_up()
        assert self._embedder is not None
        units = [unit for passage in passages for unit in units_split(passage)]
        if not units or not question.strip():
            return Extract(text=NOT_IN_DOCUMENTS, citations=(), score=0.0, pieces=(NOT_IN_DOCUMENTS,))
        vectors = self._embedder.embed([question, *(u.scored for u in units)])
        scores = _scores(question, units, vectors[1:] @ vectors[0])
        order = np.argsort(-scores, kind="stable")
        best = float(scores[order[0]])
        if best < self._threshold:
            return Extract(text=NOT_IN_DOCUMENTS, citations=(), score=best, pieces=(NOT_IN_DOCUMENTS,))
        chosen = self._choose(units, scores, order, vectors[1:])
        lead, rest = chosen[0], sorted(chosen[1:], key=lambda u: (u.n, u.position))
        pieces = _cited([lead, *rest])
        citations = tuple(dict.fromkeys(u.n for u in [lead, *rest]))
        return Extract(text="".join(pieces).strip(), citations=citations, score=best, pieces=tuple(pieces))

    def _choose(
        self, units: list[_Unit], scores: np.ndarray, order: np.ndarray, vectors: np.ndarray
    ) -> list[_Unit]:
        """The best unit, then close runners-up that say something else, within the length bounds."""
        first = int(order[0])
        picked = [first]
        size = len(units[first].text)
        for index in (int(i) for i in order[1:]):
            if len(picked) >= self._max_units or scores[index] < self._follow_share * scores[first]:
                break
            unit = units[index]
            repeats = any(
                float(vectors[index] @ vectors[p]) > 0.9 or unit.text == units[p].text for p in picked
            )
            if repeats or size + len(unit.text) > self._max_chars:
                continue
            picked.append(index)
            size += len(unit.text)
        return [units[i] for i in picked]


def _scores(question: str, units: Sequence[_Unit], similarity: np.ndarray) -> np.ndarray:
    """MiniLM similarity plus the share of the question's terms (weighted by rarity) a unit holds, plus a
    bonus for a figure when the question asks for one, more when it comes with the question's unit word."""
    asked = [t for t in tokens_extract(text=question) if t.kind != "stop"]
    weights = _weights([t.norm for t in asked])
    total = sum(weights.values()) or 1.0
    wants_figure = bool(_QUANTITY.search(question))
    words = {t.norm for t in asked if t.kind != "num"}
    out = np.zeros(len(units), dtype=np.float32)
    for i, unit in enumerate(units):
        tokens = tokens_extract(text=unit.scored)
        held = {t.norm for t in tokens if t.kind != "stop"}
        lexical = sum(w for term, w in weights.items() if term in held) / total
        figure = 0.0
        if wants_figure:
            for j, token in enumerate(tokens):
                if token.kind == "num":
                    # "27 days" (or "5 unused leave days") answers "how many days": the question's word
                    # follows the number closely.
                    after = {t.norm for t in tokens[j + 1 : j + 1 + _UNIT_WINDOW]}
                    figure = max(figure, 0.15 if after & words else 0.07)
        out[i] = 0.55 * float(similarity[i]) + 0.45 * lexical + figure
    return out


def _cited(units: Sequence[_Unit]) -> list[str]:
    """Each unit followed by its citation; rows of a table on lines of their own, sentences run on."""
    separator = "\n" if any(_ROW in u.text for u in units) else " "
    return [f"{u.text} [{u.n}]" + (separator if k < len(units) - 1 else "") for k, u in enumerate(units)]


def _pieces(extract: Extract, max_new_tokens: int) -> Iterator[str]:
    """The extract's pieces word by word, cut at `max_new_tokens` tokens as any generator's stream is."""
    budget = max_new_tokens
    for piece in extract.pieces:
        for word in re.findall(r"\S+\s*", piece):
            cost = len(_TOKEN.findall(word))
            if cost > budget:
                return
            budget -= cost
            yield word
