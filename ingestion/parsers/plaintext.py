"""Plain text → numbered parts, in the encoding the bytes show (UTF-8, UTF-16 with or without BOM, legacy
code pages: ingestion.parsers.sniff.text_decode, by charset-normalizer).

Plain text has no headings to make sections, so it is cut at blank lines into parts of about two printed
pages, "Text (part 2 of 5)": a citation still says where to look.
"""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path

from ingestion.exceptions import DocumentRejected
from ingestion.parsers.base import ParsedDocument, Progress
from ingestion.parsers.sections import SectionsBuilder, type_require
from ingestion.parsers.sniff import text_decode

logger = logging.getLogger(__name__)

_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n")


class PlainTextParser:
    """The plain-text parser: numbered parts."""

    media_types = ("text/plain",)
    label = "text file (.txt)"
    extensions = (".txt", ".text")

    def warm_up(self) -> None:
        """Nothing to load."""

    def parse(self, *, path: Path, progress: Progress | None = None) -> ParsedDocument:
        started = time.perf_counter()
        type_require(path=path, media_types=self.media_types, label=self.label)
        if progress is not None:
            progress(0, 1)
        text = text_decode(data=path.read_bytes())
        if text is None:
            raise DocumentRejected(
                "This file's characters are in no encoding that could be recognised: save it as UTF-8 text and upload that",
                code="unsupported_type",
            )
        sections = SectionsBuilder(untitled="Text")
        for paragraph in _PARAGRAPH_BREAK.split(text.replace("\r\n", "\n").replace("\r", "\n")):
            sections.paragraph(paragraph)
        parsed = sections.parsed(progress=progress)
        logger.info("event=text_parsed", extra={"parts": parsed.page_count, "seconds": round(time.perf_counter() - started, 3)})
        return parsed
