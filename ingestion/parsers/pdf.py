"""PDF → text per page, with pypdfium2, and OCR for pages that have no usable text layer.

Pure: no Django (the OCR engine is a component, built on the first page that needs it). Rejections a person can act on raise `DocumentRejected`; trouble limited to some pages
(a damaged page, a page OCR cannot read) becomes a warning naming the pages, and parsing goes on.

PDFium is not thread-safe, so every call into it happens under `PDFIUM_LOCK`; OCR, the slow part,
runs outside the lock. PDFium objects hold native memory and file handles, so each one is closed
explicitly rather than left to the garbage collector.
"""

from __future__ import annotations

import logging
import math
import os
import statistics
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c

from ingestion.exceptions import DocumentRejected, OcrFailed
from ingestion.ocr import image_ocr
from ingestion.parsers.base import ParsedDocument, Progress, TextLine, TextUnit
from ingestion.parsers.sniff import media_type_describe, media_type_sniff
from ingestion.plausibility import text_plausibility
from ingestion.tables import page_layout, page_may_hold_table, tables_find, text_with_tables
from ingestion.text import text_normalize, text_readability

logger = logging.getLogger(__name__)

PDFIUM_LOCK = threading.RLock()

# Rendering for OCR: 200 dpi suits text of 8 pt and up, but RapidOCR shrinks any image whose longer
# side exceeds 2000 px before it looks at it, so more pixels would only cost memory. Detection's
# memory grows with the pixel count (about 0.8 GB at peak for 2000×2000 measured), so the area is
# capped too, just above a US Letter page at 2000 px (3.1 MP): a poster or hostile page costs no more.
_RENDER_DPI = 200
_RENDER_MAX_SIDE = 2000
_RENDER_MAX_PIXELS = 3_200_000

# Below this share of letters and digits among visible characters, a text layer is garbage (a font
# without a Unicode map yields symbols and control characters); real pages measured ≥ 0.58.
_MIN_READABLE_SHARE = 0.5
# A page with fewer readable characters than this whose images cover most of it is a scan with a
# stamp or page number in its text layer: OCR it too and keep whichever reading has more text.
_SPARSE_CHARS = 50
_SCAN_COVERAGE = 0.5
# Rendering decodes every image at full size whatever the output size (an 81 MP scan took 230 MB),
# so one image of a billion pixels, which a few KB of compressed zeros can declare, would take
# gigabytes. 100 MP still admits an A4 page scanned at 1000 dpi.
MAX_IMAGE_PIXELS = 100_000_000


@dataclass(frozen=True)
class _Layer:
    """What PDFium found on one page, before OCR."""

    text: str
    needs_ocr: bool  # no usable text layer, or a scan with a sparse one
    garbage: bool  # the text layer exists but is unreadable
    image: np.ndarray | None  # the page rendered for OCR, when needed and asked for
    issue: str | None = None
    implausible: bool = False  # letters, but not words of any language (glyphs mapped to wrong letters)


# Page problems, grouped into one warning each. '{pages}' becomes e.g. 'pages 3, 7-9'.
_ISSUES = {
    "unreadable": "Could not read {pages} (damaged page data); left empty",
    "no_text": "No text found on {pages} (blank, or images OCR could not read)",
    "no_text_ocr_off": "No text layer on {pages} (scanned images?); OCR is turned off, so they are left empty",
    "garbage_ocr_off": "Unreadable text on {pages} (a font without a Unicode map); OCR is turned off, so they are left empty",
    "implausible_ocr_off": "Text on {pages} is not words of any language (a font that maps letters to wrong "
    "characters?); OCR is turned off, so it was kept as it is and may not be found by search",
    "ocr_failed": "OCR failed on {pages}; left empty",
    "too_large": f"Did not OCR {{pages}} (an image over {MAX_IMAGE_PIXELS // 1_000_000} megapixels, too large to render safely); left empty",
}


class PdfParser:
    """The `application/pdf` parser: pages, OCR'd where they have no usable text layer (settings.PDF_OCR)."""

    media_types = ("application/pdf",)
    label = "PDF"
    extensions = (".pdf",)

    def __init__(self, *, ocr: bool = True, max_pages: int = 5000, tables: bool = True) -> None:
        self._ocr = ocr
        self._max_pages = max_pages
        self._tables = tables

    def warm_up(self) -> None:
        """Nothing to load: PDFium is loaded with the module, and OCR on the first scanned page."""

    def parse(self, *, path: Path, progress: Progress | None = None) -> ParsedDocument:
        return pdf_parse(path=path, ocr=self._ocr, tables=self._tables, max_pages=self._max_pages, progress=progress)


def pdf_parse(
    *,
    path: Path,
    ocr: bool = True,
    tables: bool = True,
    max_pages: int = 5000,
    progress: Progress | None = None,
) -> ParsedDocument:
    """Extract normalized text page by page; OCR pages without a usable text layer when `ocr`; tables
    rewritten with their labels (ingestion.tables) when `tables`.

    Raises DocumentRejected (code not_pdf, encrypted, corrupt, empty or too_many_pages). Never raises
    for a problem confined to some pages: those come back empty, named in `warnings`.
    `progress(done_pages, total_pages)` is called once at the start and after each page.
    """
    started = time.perf_counter()
    _header_check(path)
    with PDFIUM_LOCK:
        doc = pdf_open(path)
        total = len(doc)
    try:
        if total > max_pages:
            raise DocumentRejected(
                f"PDF has {total:,} pages, more than the {max_pages:,} allowed: split it into smaller files and upload them",
                code="too_many_pages",
            )
        if progress is not None:
            progress(0, total)
        pages: list[TextUnit] = []
        issues: dict[str, list[int]] = {}
        for index in range(total):
            page, issue = _page_read(doc, index, ocr=ocr, tables=tables)
            pages.append(page)
            if issue is not None:
                issues.setdefault(issue, []).append(page.number)
            if progress is not None:
                progress(index + 1, total)
    finally:
        with PDFIUM_LOCK:
            doc.close()
    warnings = _warnings_build(issues, pages)
    logger.info(
        "event=pdf_parsed",
        extra={
            "pages": total,
            "ocr_pages": sum(p.ocr for p in pages),
            "empty_pages": sum(not p.text for p in pages),
            "warnings": len(warnings),
            "seconds": round(time.perf_counter() - started, 3),
        },
    )
    return ParsedDocument(unit="page", units=tuple(pages), warnings=warnings)


def _page_read(doc: pdfium.PdfDocument, index: int, *, ocr: bool, tables: bool = True) -> tuple[TextUnit, str | None]:
    number = index + 1
    with PDFIUM_LOCK:
        try:
            layer = _layer_read(doc, index, render=ocr, tables=tables)
        except pdfium.PdfiumError as exc:
            logger.warning("event=pdf_page_unreadable", extra={"page": number, "error": str(exc)})
            return TextUnit(number, "", False), "unreadable"
    if layer.issue is not None or not layer.needs_ocr:
        return TextUnit(number, layer.text, False), layer.issue
    if layer.image is None:  # OCR is off
        if layer.text:
            return TextUnit(number, layer.text, False), "implausible_ocr_off" if layer.implausible else None
        return TextUnit(number, "", False), ("garbage_ocr_off" if layer.garbage else "no_text_ocr_off")
    started = time.perf_counter()
    try:
        reading = image_ocr(image=layer.image)
    except OcrFailed as exc:
        logger.warning("event=pdf_page_ocr_failed", extra={"page": number, "error": str(exc)})
        return TextUnit(number, layer.text, False), None if layer.text else "ocr_failed"
    read = text_normalize(text=reading.text)
    logger.info(
        "event=pdf_page_ocr",
        extra={"page": number, "chars": len(read), "seconds": round(time.perf_counter() - started, 2)},
    )
    # A sparse text layer (a scan's stamp) stays unless OCR read more; an implausible one unless OCR's reading
    # is more plausible; garbage never stays.
    if read and (layer.garbage or _ocr_reads_better(read, layer)):
        return TextUnit(number, read, True, lines=_lines_normalized(reading.lines, layer.image.shape)), None
    return TextUnit(number, layer.text, False), None if layer.text else "no_text"


def _lines_normalized(lines: tuple[TextLine, ...], shape: tuple[int, ...]) -> tuple[TextLine, ...]:
    """OCR boxes in pixels of the rendered page → shares of the page (the rendering is the whole page)."""
    height, width = shape[0], shape[1]
    return tuple(
        TextLine(
            max(0.0, line.x0 / width), max(0.0, line.y0 / height), min(1.0, line.x1 / width),
            min(1.0, line.y1 / height), line.text,
        )
        for line in lines
    )


def _layer_read(doc: pdfium.PdfDocument, index: int, *, render: bool, tables: bool = True) -> _Layer:
    """Text layer of one page, its quality, and a rendering when OCR should look at it."""
    page = doc[index]
    try:
        textpage = page.get_textpage()
        try:
            raw = textpage.get_text_range()
            text = _paragraphs_mark(textpage, raw)
            if tables and page_may_hold_table(text=raw):  # the cheap pre-check: prose pages stop here
                lines, rules = page_layout(page, textpage, raw)
                found = tables_find(lines=lines, rules=rules, width=page.get_width(), height=page.get_height())
                text = text_with_tables(text=text, lines=raw.split("\r\n"), tables=found)
            text = text_normalize(text=text)
        finally:
            textpage.close()
        readable, share = text_readability(text=text)
        garbage = bool(text) and share < _MIN_READABLE_SHARE
        implausible = not garbage and _implausible(text, index)
        if readable >= _SPARSE_CHARS and not garbage and not implausible:
            return _Layer(text, needs_ocr=False, garbage=False, image=None)  # most pages end here
        if not text and pdfium_c.FPDFPage_CountObjects(page.raw) == 0:
            return _Layer("", needs_ocr=False, garbage=False, image=None, issue="no_text")  # truly blank
        coverage, largest = images_measure(page)
        if text and not garbage and not implausible and coverage < _SCAN_COVERAGE:
            return _Layer(text, needs_ocr=False, garbage=False, image=None)  # just a short page
        kept = "" if garbage else text
        if not render:
            return _Layer(kept, needs_ocr=True, garbage=garbage, image=None, implausible=implausible)
        if largest > MAX_IMAGE_PIXELS:
            logger.warning("event=pdf_page_image_too_large", extra={"page": index + 1, "pixels": largest})
            return _Layer(
                kept, needs_ocr=False, garbage=garbage, image=None, issue=None if kept else "too_large"
            )
        try:
            image = _page_render(page)
        except (pdfium.PdfiumError, ValueError) as exc:  # ValueError: a page size PDFium cannot draw
            logger.warning("event=pdf_page_render_failed", extra={"page": index + 1, "error": str(exc)})
            return _Layer(
                kept, needs_ocr=False, garbage=garbage, image=None, issue=None if kept else "ocr_failed"
            )
        return _Layer(kept, needs_ocr=True, garbage=garbage, image=image, implausible=implausible)
    finally:
        page.close()


def _implausible(text: str, index: int) -> bool:
    """Letters that are no language's words (ingestion.plausibility): OCR the page, as if it had no text."""
    judged = text_plausibility(text=text)
    if judged.plausible:
        return False
    logger.info(
        "event=pdf_page_implausible",
        extra={"page": index + 1, "words": judged.words, "common_rate": judged.common_rate,
               "vowel_share": judged.vowel_share, "odd_shapes": judged.odd_shapes},
    )
    return True


def _ocr_reads_better(read: str, layer: _Layer) -> bool:
    if layer.implausible:
        return text_plausibility(text=read).score > text_plausibility(text=layer.text).score
    return text_readability(text=read)[0] > text_readability(text=layer.text)[0]


def _paragraphs_mark(textpage: pdfium.PdfTextPage, raw: str) -> str:
    """Add a blank line where the space above a line is clearly wider than the page's usual line gap.

    PDFium's text has line breaks but no paragraph breaks, and the chunker splits at blank lines
    first. Gaps are measured between the font boxes (not the ink) of the previous line's last and
    this line's first character, so letter shapes do not matter.
    """
    lines = raw.split("\r\n")
    spans: list[tuple[float, float] | None] = []  # (top, bottom) of each line's first and last characters
    index = 0
    for line in lines:
        visible = [k for k, ch in enumerate(line) if not ch.isspace()]
        first = _char_box(textpage, index + visible[0]) if visible else None
        last = _char_box(textpage, index + visible[-1]) if visible else None
        spans.append((first[0], last[1]) if first and last else None)
        index += len(line) + 2
    gaps = [
        (i, prev[1] - cur[0])
        for i, (prev, cur) in enumerate(zip(spans, spans[1:], strict=False), 1)
        if prev and cur
    ]
    usual = [gap for _, gap in gaps if gap > 0]
    heights = [top - bottom for span in spans if span for top, bottom in [span] if top > bottom]
    if len(usual) < 3 or not heights:
        return raw
    threshold = statistics.median(usual) + 0.4 * statistics.median(heights)
    breaks = {i for i, gap in gaps if gap > threshold}
    return "".join(
        ("\r\n\r\n" if i in breaks else "\r\n") + line if i else line for i, line in enumerate(lines)
    )


def _char_box(textpage: pdfium.PdfTextPage, text_index: int) -> tuple[float, float] | None:
    """(top, bottom) of a character's font box, by its index in get_text_range()'s output."""
    char_index = pdfium_c.FPDFText_GetCharIndexFromTextIndex(textpage.raw, text_index)
    rect = pdfium_c.FS_RECTF()
    if char_index < 0 or not pdfium_c.FPDFText_GetLooseCharBox(textpage.raw, char_index, rect):
        return None
    return rect.top, rect.bottom


def images_measure(page: pdfium.PdfPage) -> tuple[float, int]:
    """(share of the page covered by images, pixel count of the largest image).

    Overlapping images count twice in the share: good enough to tell a scan from a logo.
    """
    width, height = page.get_size()
    covered, largest = 0.0, 0
    for obj in page.get_objects(filter=[pdfium_c.FPDF_PAGEOBJ_IMAGE]):
        left, bottom, right, top = obj.get_bounds()
        covered += max(0.0, min(right, width) - max(left, 0.0)) * max(
            0.0, min(top, height) - max(bottom, 0.0)
        )
        try:
            px_width, px_height = obj.get_px_size()
        except pdfium.PdfiumError:
            continue
        largest = max(largest, px_width * px_height)
    return (covered / (width * height) if width > 0 and height > 0 else 0.0), largest


def render_scale(*, width: float, height: float) -> float:
    """Scale (pixels per PDF point) for rendering a page of this size for OCR, within the pixel cap."""
    if not (math.isfinite(width) and math.isfinite(height)) or width <= 0 or height <= 0:
        raise ValueError(f"page has an invalid size ({width} x {height} pt)")
    return min(
        _RENDER_DPI / 72,
        _RENDER_MAX_SIDE / max(width, height),
        math.sqrt(_RENDER_MAX_PIXELS / (width * height)),
    )


def _page_render(page: pdfium.PdfPage) -> np.ndarray:
    width, height = page.get_size()
    bitmap = page.render(scale=render_scale(width=width, height=height), grayscale=True)
    try:
        return np.array(bitmap.to_numpy(), copy=True)  # own the pixels: the bitmap is freed below
    finally:
        bitmap.close()


def _header_check(path: Path) -> None:
    media_type = media_type_sniff(path=path)
    if media_type == "application/pdf":
        return
    if media_type == "application/x-empty":
        raise DocumentRejected("File is empty (0 bytes): upload the PDF again", code="empty")
    raise DocumentRejected(
        f"File is not a PDF (it is {media_type_describe(media_type)}): export it to PDF and upload again",
        code="not_pdf",
    )


def pdf_open(path: Path) -> pdfium.PdfDocument:
    # The raw call rather than PdfDocument(path): pypdfium2 raises for a document with zero pages
    # without closing it (leaking the handle and the open file), and reports a stale error code.
    raw = pdfium_c.FPDF_LoadDocument(os.fsencode(path) + b"\0", None)
    if not raw:
        raise _open_error(pdfium_c.FPDF_GetLastError())
    if pdfium_c.FPDF_GetPageCount(raw) < 1:
        pdfium_c.FPDF_CloseDocument(raw)
        raise DocumentRejected(
            "PDF has no pages (its page tree is empty or unreadable): re-export it and upload again",
            code="empty",
        )
    return pdfium.PdfDocument(raw)


def _open_error(err_code: int) -> DocumentRejected:
    if err_code == pdfium_c.FPDF_ERR_PASSWORD:
        return DocumentRejected(
            "PDF is encrypted with a password: save a copy without the password and upload that",
            code="encrypted",
        )
    if err_code == pdfium_c.FPDF_ERR_SECURITY:
        return DocumentRejected(
            "PDF uses an unsupported encryption scheme: save a copy without encryption and upload that",
            code="encrypted",
        )
    reason = {
        pdfium_c.FPDF_ERR_FORMAT: "not a valid PDF structure",
        pdfium_c.FPDF_ERR_FILE: "file could not be read",
        pdfium_c.FPDF_ERR_PAGE: "page tree is damaged",
    }.get(err_code, f"error {err_code}")
    return DocumentRejected(
        f"PDF is damaged and cannot be read (pdfium: {reason}): re-export or repair it and upload again",
        code="corrupt",
    )


def _warnings_build(issues: dict[str, list[int]], pages: list[TextUnit]) -> tuple[str, ...]:
    warnings = [
        template.format(pages=pages_describe(numbers=issues[key]))
        for key, template in _ISSUES.items()
        if key in issues
    ]
    if pages and not any(p.text for p in pages):
        warnings.append("No text could be read from any page: the document cannot be searched")
    return tuple(warnings)


def pages_describe(*, numbers: list[int]) -> str:
    """'page 4' or 'pages 3, 7-9' for sorted page numbers."""
    runs: list[list[int]] = []
    for number in numbers:
        if runs and number == runs[-1][1] + 1:
            runs[-1][1] = number
        else:
            runs.append([number, number])
    parts = [str(a) if a == b else f"{a}-{b}" for a, b in runs]
    return ("page " if len(numbers) == 1 else "pages ") + ", ".join(parts)
