"""Web pages (HTML) → sections, with BeautifulSoup on lxml: headings start sections, tables become row texts.

What a reader does not read as the page's content is dropped: scripts, styles, templates, navigation
(nav and role=navigation), the page's banner and footer, forms and their controls, hidden elements. An
article's own header (inside article, main or section) stays: it holds the article's title. Text before
the first heading takes the page's <title>. The walk is iterative, so hostile nesting cannot exhaust the
stack. Markdown is read by rendering it to HTML and walking that (ingestion.parsers.markdown).

Pure: no Django.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from ingestion.parsers.base import ParsedDocument, Progress
from ingestion.parsers.sections import DecodedTextParser, SectionsBuilder
from ingestion.tables_text import headers_merge, table_grid, table_row_texts

_DROPPED = frozenset(
    {
        "script", "style", "noscript", "template", "nav", "form", "button", "select", "option", "input",
        "textarea", "label", "iframe", "object", "embed", "svg", "canvas", "audio", "video", "map", "dialog",
        "head", "menu",
    }
)
_LANDMARKS = frozenset({"header", "footer"})  # dropped unless inside an article, main or section
_DROPPED_ROLES = frozenset({"navigation", "banner", "contentinfo", "search", "menu", "menubar", "dialog"})
_HEADINGS = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})
_BLOCKS = frozenset(
    {
        "p", "div", "section", "article", "main", "aside", "header", "footer", "blockquote", "pre", "ul", "ol",
        "li", "dl", "dt", "dd", "figure", "figcaption", "address", "details", "summary", "hr", "body", "html",
        "center", "fieldset", "caption",
    }
)
_SPACES = re.compile(r"\s+")
MAX_SPAN = 50  # colspan/rowspan beyond this is an error or an attack, not a layout


class HtmlParser(DecodedTextParser):
    """The web page (HTML) parser: sections by heading."""

    media_types = ("text/html",)
    label = "web page (HTML)"
    extensions = (".html", ".htm")
    event = "html_parsed"

    def sections(self, *, text: str, progress: Progress | None) -> ParsedDocument:
        return html_sections(markup=text, progress=progress)


def html_sections(*, markup: str, progress: Progress | None = None, untitled: str | None = None) -> ParsedDocument:
    """The sections of an HTML text (its <title>, or `untitled`, names text before the first heading)."""
    from bs4 import BeautifulSoup  # here, not at import: only ingest workers read web pages

    soup = BeautifulSoup(markup, "lxml")
    title_tag = soup.find("title")
    page_title = title_tag.get_text(" ", strip=True) if title_tag is not None else ""
    sections = SectionsBuilder(untitled=untitled if untitled is not None else page_title)
    _walk(soup, sections)
    return sections.parsed(progress=progress)


def _walk(root: Any, sections: SectionsBuilder) -> None:
    """Feed the text under `root` to `sections` in reading order; paragraphs end at block elements."""
    from bs4 import NavigableString, Tag
    from bs4.element import Comment, Declaration, Doctype, ProcessingInstruction

    skipped = (Comment, Declaration, Doctype, ProcessingInstruction)
    buffer: list[str] = []

    def flush() -> None:
        if buffer:
            sections.paragraph("".join(buffer))
            buffer.clear()

    # (children left, the element is a block, the text is preformatted)
    stack: list[tuple[Iterator[Any], bool, bool]] = [(iter(root.children), True, False)]
    while stack:
        children, block, pre = stack[-1]
        node = next(children, None)
        if node is None:
            stack.pop()
            if block:
                flush()
            continue
        if isinstance(node, NavigableString):
            if not isinstance(node, skipped):
                buffer.append(str(node) if pre else _SPACES.sub(" ", str(node)))
            continue
        if not isinstance(node, Tag) or _dropped(node):
            continue
        name = node.name.lower()
        if name in _HEADINGS:
            flush()
            sections.heading(node.get_text(" ", strip=True))
        elif name == "table":
            flush()
            sections.table(_table_rows(node, sections.title))
        elif name == "br":
            buffer.append("\n")
        else:
            is_block = name in _BLOCKS
            if is_block:
                flush()
            stack.append((iter(node.children), is_block, pre or name == "pre"))
    flush()


def _dropped(tag: Any) -> bool:
    name = tag.name.lower()
    if name in _DROPPED:
        return True
    attrs = tag.attrs or {}
    if "hidden" in attrs or str(attrs.get("aria-hidden", "")).lower() == "true":
        return True
    if str(attrs.get("role", "")).lower() in _DROPPED_ROLES:
        return True
    if name in _LANDMARKS:
        return tag.find_parent(("article", "main", "section")) is None
    return False


def _table_rows(table: Any, section_title: str) -> list[str]:
    caption = table.find("caption")
    title = caption.get_text(" ", strip=True) if caption is not None else section_title
    header_rows: list[list[str]] = []
    body: list[list[str]] = []
    carried: dict[int, tuple[int, str]] = {}  # column -> (rows left, text) of cells spanning rows
    for tr in _own_rows(table):
        cells = [c for c in tr.find_all(("td", "th"), recursive=False) if not _dropped(c)]
        row = _row_cells(cells, carried)
        in_head = tr.find_parent("thead") is not None or (not body and cells and all(c.name == "th" for c in cells))
        (header_rows if in_head and not body else body).append(row)
    if header_rows and body:
        return table_row_texts(title=title, headers=headers_merge(header_rows), rows=body)
    headers, rows = table_grid(header_rows + body)
    return table_row_texts(title=title, headers=headers, rows=rows)


def _own_rows(table: Any) -> Iterator[Any]:
    """The rows of this table, not those of tables nested in its cells."""
    for tr in table.find_all("tr"):
        if tr.find_parent("table") is table:
            yield tr


def _row_cells(cells: list[Any], carried: dict[int, tuple[int, str]]) -> list[str]:
    row: list[str] = []
    column = 0

    def take_carried() -> None:
        nonlocal column
        while column in carried:
            left, text = carried[column]
            row.append(text)
            if left <= 1:
                del carried[column]
            else:
                carried[column] = (left - 1, text)
            column += 1

    for cell in cells:
        take_carried()
        text = _cell_text(cell)
        span = _span(cell.get("colspan"))
        down = _span(cell.get("rowspan"))
        for k in range(span):
            row.append(text if k == 0 or cell.name == "th" else "")
            if down > 1:
                carried[column] = (down - 1, text)
            column += 1
    take_carried()
    return row


def _cell_text(cell: Any) -> str:
    parts = [s for s in cell.stripped_strings]
    return " ".join(parts)


def _span(value: Any) -> int:
    try:
        return max(1, min(MAX_SPAN, int(str(value).strip())))
    except (TypeError, ValueError):
        return 1
