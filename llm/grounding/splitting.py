"""Sentence splitting with exact character offsets into the original text.

The product highlights unsupported sentences in the answer, so every span must satisfy
`text[start:end] == span.text`; we never normalise the text before splitting, only look at it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Words that end in a period without ending the sentence. Lowercased, without the final period.
# "etc." and company suffixes ("Inc.") often do end a sentence, so they are left to the generic
# rule: split only when the next word starts in uppercase or a digit.
_ABBREVIATIONS = frozenset(
    """
    e.g i.e vs cf al approx ca mr mrs ms dr prof sr jr st mt ft
    jan feb mar apr jun jul aug sep sept oct nov dec gen col lt sgt rev hon gov sen rep pres
    """.split()
)
# Only abbreviations before a number: "No. 5" but "No. The passages do not say."
_NUMBER_ABBREVIATIONS = frozenset("no nos fig figs vol vols pp p ch sec art".split())

# A candidate boundary: terminal punctuation, optional closing quotes/brackets, then whitespace.
_BOUNDARY = re.compile(r"[.!?…]+[\"'”’)\]]*(?=\s)")
# A list marker at the start of a line: "-", "*", "•", "1.", "1)", "a)", "(2)".
_BULLET = re.compile(r"^\s*(?:[-*•‣◦▪–]|\(?\d{1,3}[.)]|\(?[a-zA-Z][)]|#{1,6})\s+")
_WORD_BEFORE = re.compile(r"(\S+)$")
_HAS_CONTENT = re.compile(r"\w")
_MARKER_ONLY = re.compile(r"\(?\d{1,3}[.)]")


@dataclass(frozen=True)
class Span:
    start: int
    end: int
    text: str


def _is_abbreviation(word: str, following: str) -> bool:
    """`word` is the token ending in the candidate period (the period included)."""
    core = word.rstrip(".!?…\"'”’)]").lstrip("\"'“‘([")
    if not word.rstrip("\"'”’)]").endswith("."):
        return False
    lowered = core.lower()
    if lowered in _ABBREVIATIONS:
        return True
    if lowered in _NUMBER_ABBREVIATIONS:
        return following[:1].isdigit()
    # Initials and dotted acronyms: "J.", "U.S.", "U.S.A.", "Ph.D."
    if re.fullmatch(r"(?:[A-Za-z]\.)*[A-Za-z]", core) and len(core) <= 7:
        return len(core) == 1 and core.isupper() or "." in core
    return False


def _next_starts_sentence(line: str, pos: int) -> bool:
    """True when the text after a boundary looks like a new sentence (not a lowercase continuation)."""
    rest = line[pos:].lstrip()
    if not rest:
        return False
    first = rest[0]
    return first.isupper() or first.isdigit() or first in "\"'“‘([*-•"


def _line_spans(line: str, offset: int) -> list[Span]:
    spans: list[Span] = []
    start = 0
    bullet = _BULLET.match(line)
    if bullet:
        start = bullet.end()
    for match in _BOUNDARY.finditer(line, start):
        end = match.end()
        before = _WORD_BEFORE.search(line[start:end])
        word = before.group(1) if before else ""
        if _is_abbreviation(word, line[end:].lstrip()) and not word.endswith(("!", "?")):
            continue
        if not _next_starts_sentence(line, end):
            continue
        spans.extend(_trimmed(line, start, end, offset))
        start = end
    spans.extend(_trimmed(line, start, len(line), offset))
    return spans


def _trimmed(line: str, start: int, end: int, offset: int) -> list[Span]:
    piece = line[start:end]
    left = len(piece) - len(piece.lstrip())
    right = len(piece.rstrip())
    if right <= left or not _HAS_CONTENT.search(piece) or _MARKER_ONLY.fullmatch(piece[left:right]):
        return []
    return [Span(offset + start + left, offset + start + right, piece[left:right])]


_PARAGRAPH = re.compile(r"\n[ \t]*\n|\n(?=[ \t]*(?:[-*•]|\d{1,3}[.)])\s)")


def sentences_split(*, text: str, by_line: bool = True) -> list[Span]:
    """Split `text` into sentences.

    With `by_line` (answers), lines never share a sentence: models write lists and short lines.
    Without it (passages extracted from PDFs, hard-wrapped), only blank lines and list items break,
    and a single newline counts as a space.
    """
    spans: list[Span] = []
    if by_line:
        offset = 0
        for line in text.splitlines(keepends=True):
            spans.extend(_line_spans(line.rstrip("\r\n"), offset))
            offset += len(line)
        return spans
    start = 0
    for match in _PARAGRAPH.finditer(text):
        spans.extend(_line_spans(text[start : match.start()], start))
        start = match.end()
    spans.extend(_line_spans(text[start:], start))
    return spans
