"""Split the units of a document (pages, or sections) into chunks measured in the embedding model's tokens.

Chunks never cross a unit boundary: every passage the service cites then names exactly one page, or one
section (whose title each chunk keeps), which is what a reader checks. Pure: the token counter is injected (as in LangChain's splitters), so this runs in
tests without a model.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from langchain_text_splitters import RecursiveCharacterTextSplitter

# Paragraphs, then lines, then sentences, then words: the splitter tries them in order.
SEPARATORS = ["\n\n", "\n", ". ", "; ", ", ", " ", ""]


@dataclass(frozen=True)
class ChunkDraft:
    ordinal: int
    text: str
    page_start: int
    page_end: int
    token_count: int
    section: str = ""  # the section's title, for documents of sections ('' for pages)


def chunks_split(
    *,
    pages: Sequence[tuple[int, str]],
    count_tokens: Callable[[str], int],
    chunk_tokens: int,
    overlap_tokens: int,
    titles: Mapping[int, str] | None = None,
) -> list[ChunkDraft]:
    """Chunks of at most `chunk_tokens` tokens (by `count_tokens`), overlapping by about `overlap_tokens`.

    `pages` are (unit number, text); `titles` the section title of each unit number, for documents of sections.
    """
    splitter = RecursiveCharacterTextSplitter(
        chunk_size=chunk_tokens,
        chunk_overlap=overlap_tokens,
        length_function=count_tokens,
        separators=SEPARATORS,
        keep_separator="end",
        strip_whitespace=True,
    )
    drafts: list[ChunkDraft] = []
    for number, text in pages:
        if not text.strip():
            continue
        for piece in splitter.split_text(text.strip()):
            section = titles.get(number, "") if titles else ""
            drafts.append(ChunkDraft(len(drafts), piece, number, number, count_tokens(piece), section))
    return drafts
