"""What every parser returns, and the Protocol a parser implements.

A parser turns one stored file of its media type into units of text: the pages of a PDF, the sections of
a document without pages. Pure: no Django. A file that can never be read as is raises DocumentRejected
with a message a person can act on; trouble confined to some units becomes a warning, and parsing goes on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol, runtime_checkable

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class TextLine:
    """A line of text read by OCR and where it sits (origin top left): in pixels of the image as the OCR
    engine reports it; in a TextUnit, as shares of the page's width and height (0..1, the page as
    displayed), which is what the citation viewer highlights on a scanned page."""

    x0: float
    y0: float
    x1: float
    y1: float
    text: str


@dataclass(frozen=True)
class TextUnit:
    number: int  # 1-based: the page number as a reader sees it, or the section's position
    text: str  # normalized text ('' when nothing could be read)
    ocr: bool = False  # the text came from OCR
    title: str = ""  # a section's heading; '' for pages
    lines: tuple[TextLine, ...] = ()  # OCR'd pages: the lines read, in reading order; others: none


@dataclass(frozen=True)
class ParsedDocument:
    unit: Literal["page", "section"]  # what `units` are: citations say "p. N" or the section's title
    units: tuple[TextUnit, ...]  # in reading order
    warnings: tuple[str, ...] = ()  # human-readable, naming pages or sections

    @property
    def page_count(self) -> int:
        return len(self.units)


@runtime_checkable
class Parser(Protocol):
    media_types: tuple[str, ...]  # the sniffed media types it reads (ingestion.parsers.sniff)
    label: str  # for people: "PDF", "Word document (.docx)"
    extensions: tuple[str, ...]  # file name extensions of its type, the stored file's first (".pdf")

    def warm_up(self) -> None:
        """Load what parsing needs (idempotent)."""
        ...

    def parse(self, *, path: Path, progress: Progress | None = None) -> ParsedDocument:
        """Units of text; `progress(done, total)` as it goes. Raises DocumentRejected."""
        ...
