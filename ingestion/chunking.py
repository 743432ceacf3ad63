"""Split page texts into chunks measured in the embedding model's tokens; each chunk knows its pages.

Pure: the tokenizer is injected (as in LangChain's splitters), so this runs in tests without a model.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from langchain_text_splitters import RecursiveCharacterTextSplitter

PAGE_SEPARATOR = "\n\n"
# Paragraphs, then lines, then sentences, then words: the splitter tries them in order.
SEPARATORS = ["\n\n", "\n", ". ", "; ", ", ", " ", ""]


@dataclass(frozen=True)
class ChunkDraft:
    ordinal: int
    text: str
    page_start: int
    page_end: int
    token_count: int


def _layout(pages: Sequence[tuple[int, str]]) -> tuple[str, list[int], list[int]]:
    """Join non-empty pages; return the text, each page's start offset and its page number."""
    parts: list[str] = []
    starts: list[int] = []
    numbers: list[int] = []
    offset = 0
    for number, text in pages:
        text = text.strip()
        if not text:
            continue
        if parts:
            parts.append(PAGE_SEPARATOR)
            offset += len(PAGE_SEPARATOR)
        starts.append(offset)
        numbers.append(number)
        parts.append(text)
        offset += len(text)
    return "".join(parts), starts, numbers


def chunks_split(
    *,
    pages: Sequence[tuple[int, str]],
    count_tokens: Callable[[str], int],
    chunk_tokens: int,
    overlap_tokens: int,
) -> list[ChunkDraft]:
    """Chunks of at most `chunk_tokens` tokens (by `count_tokens`), overlapping by about `overlap_tokens`."""
    full, starts, numbers = _layout(pages)
    if not full:
        return []
    splitter = RecursiveCharacterTextSplitter(
        chunk_size=chunk_tokens,
        chunk_overlap=overlap_tokens,
        length_function=count_tokens,
        separators=SEPARATORS,
        keep_separator="end",
        strip_whitespace=True,
    )
    drafts: list[ChunkDraft] = []
    cursor = 0
    for text in splitter.split_text(full):
        found = full.find(text, cursor)
        begin = found if found >= 0 else cursor
        end = begin + len(text) - 1
        first = numbers[max(0, bisect.bisect_right(starts, begin) - 1)]
        last = numbers[max(0, bisect.bisect_right(starts, end) - 1)]
        drafts.append(ChunkDraft(len(drafts), text, first, last, count_tokens(text)))
        cursor = begin + 1
    return drafts
