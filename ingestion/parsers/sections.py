"""What the parsers of documents without pages share: sections built from headings, and the type check.

A section runs from one heading to the next; its title is the heading, which citations show instead of a
page number. Text before the first heading takes the document's title (or "Start of document"); a section
longer than MAX_SECTION_CHARS is cut at paragraph breaks into parts, "Title (part 2 of 3)", so a citation
still points near the passage. Tables arrive as row texts (ingestion.tables_text), one block each, so the
chunker keeps every row whole with its labels.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from ingestion.exceptions import DocumentRejected
from ingestion.parsers.base import ParsedDocument, Progress, TextUnit
from ingestion.parsers.sniff import media_type_advice, media_type_describe, media_type_sniff, text_decode
from ingestion.text import text_normalize

logger = logging.getLogger(__name__)

# About two printed pages: long enough that headings, not this cut, make most sections.
MAX_SECTION_CHARS = 6000
UNTITLED = "Start of document"
MAX_TITLE_CHARS = 200


def type_require(*, path: Path, media_types: tuple[str, ...], label: str) -> str:
    """The file's sniffed media type when it is one of `media_types`; DocumentRejected naming what it is otherwise."""
    media_type = media_type_sniff(path=path)
    if media_type in media_types:
        return media_type
    if media_type == "application/x-empty":
        raise DocumentRejected("File is empty (0 bytes): upload the file again", code="empty")
    advice = media_type_advice(media_type, accepted=f"a {label} or a PDF")
    raise DocumentRejected(
        f"This file is {media_type_describe(media_type)}, not a {label}: {advice}", code="unsupported_type"
    )


class DecodedTextParser:
    """The parse steps of every format that is text in some encoding (HTML, Markdown, plain text): check the
    sniffed type, decode the bytes, build sections from the text (the subclass's `sections`), log the count.

    `strict` formats refuse bytes in no recognisable encoding; the others read them as UTF-8 with
    replacement characters, as a browser would show a web page.
    """

    media_types: ClassVar[tuple[str, ...]] = ()
    label: ClassVar[str] = ""
    extensions: ClassVar[tuple[str, ...]] = ()
    event: ClassVar[str] = "text_parsed"
    strict: ClassVar[bool] = False

    def warm_up(self) -> None:
        """Nothing to load."""

    def parse(self, *, path: Path, progress: Progress | None = None) -> ParsedDocument:
        started = time.perf_counter()
        type_require(path=path, media_types=self.media_types, label=self.label)
        if progress is not None:
            progress(0, 1)
        data = path.read_bytes()
        text = text_decode(data=data)
        if text is None and self.strict:
            raise DocumentRejected(
                "This file's characters are in no encoding that could be recognised: save it as UTF-8 text and upload that",
                code="unsupported_type",
            )
        parsed = self.sections(text=text if text is not None else data.decode("utf-8", "replace"), progress=progress)
        logger.info(f"event={self.event}", extra={"sections": parsed.page_count, "seconds": round(time.perf_counter() - started, 3)})
        return parsed

    def sections(self, *, text: str, progress: Progress | None) -> ParsedDocument:
        raise NotImplementedError


@dataclass
class _Section:
    title: str
    blocks: list[str] = field(default_factory=list)


@dataclass
class SectionsBuilder:
    """Collects headings, paragraphs and tables in reading order; `parsed()` makes the units."""

    untitled: str = UNTITLED  # the title of text before the first heading
    _sections: list[_Section] = field(default_factory=list)

    def heading(self, text: str) -> None:
        title = " ".join(text.split())[:MAX_TITLE_CHARS]
        if title:
            self._sections.append(_Section(title, [title]))

    def paragraph(self, text: str) -> None:
        cleaned = text_normalize(text=text)
        if cleaned:
            self._current().blocks.extend(_pieces(cleaned))

    def table(self, rows: list[str]) -> None:
        """Row texts of one table (ingestion.tables_text.table_row_texts): one line each, one block."""
        lines = [" ".join(text_normalize(text=row).split()) for row in rows if row.strip()]
        if lines:
            self._current().blocks.append("\n".join(lines))

    @property
    def title(self) -> str:
        """The title of the section being written (a table's title when it has no caption)."""
        return self._sections[-1].title if self._sections else ""

    def parsed(self, *, progress: Progress | None = None, warnings: tuple[str, ...] = ()) -> ParsedDocument:
        units: list[TextUnit] = []
        for section in self._sections:
            if len(section.blocks) == 1 and section.blocks[0] == section.title:
                continue  # a heading straight followed by another: its title is all it had
            parts = _parts(section.blocks)
            for index, part in enumerate(parts, start=1):
                title = section.title if len(parts) == 1 else f"{section.title} (part {index} of {len(parts)})"
                units.append(TextUnit(len(units) + 1, part, title=title))
        if progress is not None:
            progress(1, 1)
        return ParsedDocument(unit="section", units=tuple(units), warnings=warnings)

    def _current(self) -> _Section:
        if not self._sections:
            self._sections.append(_Section(" ".join(self.untitled.split())[:MAX_TITLE_CHARS] or UNTITLED))
        return self._sections[-1]


def _parts(blocks: list[str]) -> list[str]:
    """Blocks joined by blank lines, in parts of at most MAX_SECTION_CHARS (a longer block is a part alone)."""
    parts: list[list[str]] = [[]]
    size = 0
    for block in blocks:
        if parts[-1] and size + len(block) > MAX_SECTION_CHARS:
            parts.append([])
            size = 0
        parts[-1].append(block)
        size += len(block) + 2
    return ["\n\n".join(p) for p in parts if p]


def _pieces(block: str) -> list[str]:
    """A block longer than a part cut at line breaks (a text file without blank lines is one block)."""
    if len(block) <= MAX_SECTION_CHARS:
        return [block]
    pieces: list[str] = [""]
    for line in block.split("\n"):
        if pieces[-1] and len(pieces[-1]) + len(line) > MAX_SECTION_CHARS:
            pieces.append("")
        pieces[-1] = f"{pieces[-1]}\n{line}" if pieces[-1] else line
    return pieces
