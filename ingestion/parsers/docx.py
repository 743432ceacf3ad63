"""Word (.docx) → sections, with python-docx: headings start sections, tables become labelled row texts.

The body is read in order, paragraphs and tables alike; page headers, footers and comments are left out
(a running header on every page would otherwise be indexed once per section). A paragraph is a heading
when its style is a heading or title style, or when it carries an outline level, as Word's navigation
pane decides. A table's title is its caption (the paragraph before it, when styled as a caption or
starting with "Table"), else the section's title.

Pure: no Django. An archive bigger than MAX_UNPACKED_BYTES unpacked is refused before python-docx reads
it, since it loads every part into memory (a few KB of zip can declare gigabytes).
"""

from __future__ import annotations

import logging
import re
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ingestion.exceptions import DocumentRejected
from ingestion.parsers.base import ParsedDocument, Progress
from ingestion.parsers.sections import SectionsBuilder, type_require
from ingestion.parsers.sniff import DOCX
from ingestion.tables_text import headers_merge, table_grid, table_row_texts

logger = logging.getLogger(__name__)

MAX_UNPACKED_BYTES = 512 * 1024 * 1024
_CAPTION = re.compile(r"^(table|tab\.|tabelle|tableau|tabla)\s*\d*\b", re.IGNORECASE)
_QN_OUTLINE = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}outlineLvl"
_QN_VAL = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}val"
_QN_TBL_HEADER = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}tblHeader"


class DocxParser:
    """The Word (.docx) parser: sections by heading."""

    media_types = (DOCX,)
    label = "Word document (.docx)"
    extensions = (".docx",)

    def warm_up(self) -> None:
        """Nothing to load."""

    def parse(self, *, path: Path, progress: Progress | None = None) -> ParsedDocument:
        return docx_parse(path=path, progress=progress)


def docx_parse(*, path: Path, progress: Progress | None = None) -> ParsedDocument:
    """Sections of a .docx file. Raises DocumentRejected (unsupported_type, empty, too_large, corrupt)."""
    import docx  # here, not at import: only ingest workers read Word files

    started = time.perf_counter()
    type_require(path=path, media_types=DocxParser.media_types, label=DocxParser.label)
    _size_check(path)
    if progress is not None:
        progress(0, 1)
    try:
        document = docx.Document(str(path))
        sections = SectionsBuilder(untitled=document.core_properties.title or "")
        tables = _body_read(document, sections)
    except (zipfile.BadZipFile, KeyError, ValueError, RecursionError) as exc:  # lxml's XMLSyntaxError is a ValueError
        raise DocumentRejected(
            f"Word file is damaged and cannot be read ({type(exc).__name__}: {str(exc)[:200]}): "
            "open it in Word, save it again and upload that",
            code="corrupt",
        ) from exc
    parsed = sections.parsed(progress=progress)
    logger.info(
        "event=docx_parsed",
        extra={"sections": parsed.page_count, "tables": tables, "seconds": round(time.perf_counter() - started, 3)},
    )
    return parsed


def _size_check(path: Path) -> None:
    try:
        with zipfile.ZipFile(path) as archive:
            unpacked = sum(info.file_size for info in archive.infolist())
    except zipfile.BadZipFile as exc:
        raise DocumentRejected(
            f"Word file is damaged and cannot be read ({exc}): open it in Word, save it again and upload that",
            code="corrupt",
        ) from exc
    if unpacked > MAX_UNPACKED_BYTES:
        raise DocumentRejected(
            f"Word file unpacks to {unpacked / 1024 / 1024:,.0f} MB, more than the "
            f"{MAX_UNPACKED_BYTES // 1024 // 1024} MB allowed: remove large images or split it, and upload again",
            code="too_large",
        )


def _body_read(document: object, sections: SectionsBuilder) -> int:
    """Feed the body's headings, paragraphs and tables to `sections`; the number of tables."""
    from docx.table import Table

    previous = ""  # the paragraph before a table: its caption, perhaps
    caption_style = False
    tables = 0
    for block in document.iter_inner_content():  # type: ignore[attr-defined]
        if isinstance(block, Table):
            title = previous if (caption_style or _CAPTION.match(previous)) and len(previous) <= 200 else sections.title
            sections.table(_table_rows(block, title))
            tables += 1
            previous, caption_style = "", False
            continue
        text = block.text
        if _is_heading(block):
            sections.heading(text)
        else:
            sections.paragraph(text)
        previous = " ".join(text.split())
        caption_style = _style_name(block).startswith("caption")
    return tables


def _style_name(paragraph: object) -> str:
    style = getattr(paragraph, "style", None)
    return str(getattr(style, "name", "") or "").lower()


def _is_heading(paragraph: object) -> bool:
    name = _style_name(paragraph)
    if name.startswith(("heading", "title")) and not name.startswith("title of"):
        return bool(getattr(paragraph, "text", "").strip())
    for element in _outline_carriers(paragraph):
        level = element.find(f".//{_QN_OUTLINE}")
        if level is not None and (level.get(_QN_VAL) or "9").isdigit() and int(level.get(_QN_VAL) or "9") < 9:
            return bool(getattr(paragraph, "text", "").strip())
    return False


def _outline_carriers(paragraph: object) -> Iterator[Any]:
    """The paragraph's own properties, then its style's and the styles it is based on."""
    p_pr = getattr(getattr(paragraph, "_p", None), "pPr", None)
    if p_pr is not None:
        yield p_pr
    style = getattr(paragraph, "style", None)
    for _ in range(10):  # base-style chains are short; a cycle must not loop forever
        if style is None:
            return
        element = getattr(style, "element", None)
        if element is not None:
            yield element
        style = getattr(style, "base_style", None)


def _table_rows(table: object, title: str) -> list[str]:
    spread: list[list[str]] = []  # a cell spanning columns once per column: how a header names them all
    grid: list[list[str]] = []  # ... and once only: how a value counts
    header_rows = 0
    for row in table.rows:  # type: ignore[attr-defined]
        lead = [""] * int(getattr(row, "grid_cols_before", 0) or 0)
        cells = list(row.cells)
        spread.append(lead + [cell.text for cell in cells])
        grid.append(lead + ["" if k and cell._tc is cells[k - 1]._tc else cell.text for k, cell in enumerate(cells)])
        if header_rows == len(grid) - 1 and _repeats_as_header(row):
            header_rows += 1
    if header_rows and header_rows < len(grid):
        return table_row_texts(title=title, headers=headers_merge(spread[:header_rows]), rows=grid[header_rows:])
    headers, body = table_grid(grid)
    if headers:
        headers = headers_merge(spread[:1])
    return table_row_texts(title=title, headers=headers, rows=body)


def _repeats_as_header(row: object) -> bool:
    tr_pr = getattr(getattr(row, "_tr", None), "trPr", None)
    return tr_pr is not None and tr_pr.find(_QN_TBL_HEADER) is not None
