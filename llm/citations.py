"""Citations of passages in an answer: [1], [1, 3], [1][3], [2-4]. One pattern, read here and linked by
the chat's renderer, so what is counted as cited is what the reader can click."""

from __future__ import annotations

import re

# One bracket holding numbers separated by commas/semicolons, or a range: [1], [1, 3], [2-4], [2–4].
CITATION_BRACKET = re.compile(r"\[\s*(\d+(?:\s*(?:[,;]|[-–])\s*\d+)*)\s*\]")
_ITEM = re.compile(r"(\d+)\s*[-–]\s*(\d+)|(\d+)")


def passage_where(*, section: str, page_start: int, page_end: int) -> str:
    """Where a passage is, as every citation says it: 'p. 4', 'pp. 4-5', or its section's title (documents
    without pages: Word, HTML, Markdown, text)."""
    if section:
        return section
    return f"p. {page_start}" if page_start == page_end else f"pp. {page_start}-{page_end}"


def bracket_numbers(inner: str, *, passage_count: int) -> list[int]:
    """The passage numbers one bracket's inside ("1, 3", "2-4") names, within 1..passage_count, in order.

    A model that invents [7] when it saw five passages has cited nothing real, and a year in brackets
    ([2023]) is not a citation; a range wider than the passage list is not a citation of every passage
    in between.
    """
    numbers: list[int] = []
    for item in _ITEM.finditer(inner):
        if item.group(3) is not None:
            numbers.append(int(item.group(3)))
        else:
            low, high = int(item.group(1)), int(item.group(2))
            numbers.extend(range(low, high + 1) if low <= high <= passage_count else [])
    return [n for n in numbers if 1 <= n <= passage_count]


def citations_parse(*, answer: str, passage_count: int) -> tuple[int, ...]:
    """Distinct passage numbers cited as [n], [n, m], [n][m] or [n-m], in order of first appearance."""
    seen: dict[int, None] = {}
    for bracket in CITATION_BRACKET.finditer(answer):
        for number in bracket_numbers(bracket.group(1), passage_count=passage_count):
            seen.setdefault(number, None)
    return tuple(seen)
