"""Markdown → sections: rendered to HTML by Python-Markdown (with its tables extension), then read as a web page.

Its headings make the sections and its tables become labelled row texts, exactly as in HTML; raw HTML in
the text is filtered by the same rules (no scripts, no navigation).
"""

from __future__ import annotations

from ingestion.parsers.base import ParsedDocument, Progress
from ingestion.parsers.html import html_sections
from ingestion.parsers.sections import DecodedTextParser


class MarkdownParser(DecodedTextParser):
    """The Markdown parser: sections by heading."""

    media_types = ("text/markdown",)
    label = "Markdown text (.md)"
    extensions = (".md", ".markdown")
    event = "markdown_parsed"

    def sections(self, *, text: str, progress: Progress | None) -> ParsedDocument:
        import markdown

        markup = markdown.markdown(text, extensions=["tables", "fenced_code", "sane_lists"])
        return html_sections(markup=markup, progress=progress, untitled="")
