"""Plain text → numbered parts, in the encoding the bytes show (UTF-8, UTF-16 with or without BOM, legacy
code pages: ingestion.parsers.sniff.text_decode, by charset-normalizer).

Plain text has no headings to make sections, so it is cut at blank lines into parts of about two printed
pages, "Text (part 2 of 5)": a citation still says where to look.
"""

from __future__ import annotations

import re

from ingestion.parsers.base import ParsedDocument, Progress
from ingestion.parsers.sections import DecodedTextParser, SectionsBuilder

_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n")


class PlainTextParser(DecodedTextParser):
    """The plain-text parser: numbered parts."""

    media_types = ("text/plain",)
    label = "text file (.txt)"
    extensions = (".txt", ".text")
    strict = True

    def sections(self, *, text: str, progress: Progress | None) -> ParsedDocument:
        sections = SectionsBuilder(untitled="Text")
        for paragraph in _PARAGRAPH_BREAK.split(text.replace("\r\n", "\n").replace("\r", "\n")):
            sections.paragraph(paragraph)
        return sections.parsed(progress=progress)
