"""Markdown → sections: rendered to HTML by Python-Markdown (with its tables extension), then read as a web page.

Its headings make the sections and its tables become labelled row texts, exactly as in HTML; raw HTML in
the text is filtered by the same rules (no scripts, no navigation).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from ingestion.parsers.base import ParsedDocument, Progress
from ingestion.parsers.html import html_sections
from ingestion.parsers.sections import type_require
from ingestion.parsers.sniff import text_decode

logger = logging.getLogger(__name__)


class MarkdownParser:
    """The Markdown parser: sections by heading."""

    media_types = ("text/markdown",)
    label = "Markdown text (.md)"
    extensions = (".md", ".markdown")

    def warm_up(self) -> None:
        """Nothing to load."""

    def parse(self, *, path: Path, progress: Progress | None = None) -> ParsedDocument:
        import markdown

        started = time.perf_counter()
        type_require(path=path, media_types=self.media_types, label=self.label)
        if progress is not None:
            progress(0, 1)
        data = path.read_bytes()
        source = text_decode(data=data) or data.decode("utf-8", "replace")
        markup = markdown.markdown(source, extensions=["tables", "fenced_code", "sane_lists"])
        parsed = html_sections(markup=markup, progress=progress, untitled="")
        logger.info("event=markdown_parsed", extra={"sections": parsed.page_count, "seconds": round(time.perf_counter() - started, 3)})
        return parsed
