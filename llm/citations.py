"""Reading the passage numbers an answer cites."""

from __future__ import annotations

import re

# One bracket holding numbers separated by commas/semicolons, or a range: [1], [1, 3], [2-4], [2–4].
_BRACKET = re.compile(r"\[\s*(\d+(?:\s*(?:[,;]|[-–])\s*\d+)*)\s*\]")
_ITEM = re.compile(r"(\d+)\s*[-–]\s*(\d+)|(\d+)")


def citations_parse(*, answer: str, passage_count: int) -> tuple[int, ...]:
    """Distinct passage numbers cited as [n], [n, m], [n][m] or [n-m], in order of first appearance.

    Numbers outside 1..passage_count are ignored: a model that invents [7] when it saw five passages
    has cited nothing real, and a year in brackets ([2023]) is not a citation.
    """
    seen: dict[int, None] = {}
    for bracket in _BRACKET.finditer(answer):
        for item in _ITEM.finditer(bracket.group(1)):
            if item.group(3) is not None:
                numbers = [int(item.group(3))]
            else:
                low, high = int(item.group(1)), int(item.group(2))
                # A range wider than the passage list is not a citation of every passage in between.
                numbers = list(range(low, high + 1)) if low <= high <= passage_count else []
            for number in numbers:
                if 1 <= number <= passage_count:
                    seen.setdefault(number, None)
    return tuple(seen)
