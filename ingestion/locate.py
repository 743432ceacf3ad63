"""Where a passage sits on its page: boxes the citation viewer draws over the page image.

A passage is text the service cut from a page (a chunk, perhaps shortened to fit a prompt), normalized on
the way (ingestion.text). It is found again on the page by comparing letters and digits only, case-folded
(NFKC), so line breaks, re-joined hyphens, ligatures and spacing do not matter; text the prompt changed is
still found piece by piece. A text layer's boxes come from PDFium (a rectangle per run of characters on a
line); a scanned page's from the OCR lines kept at ingestion (ingestion.models.OcrPage). Boxes are shares
of the page as displayed (0..1, origin top left), so they fit any rendering of it.

Locating never fails an answer: a file that cannot be read gives no boxes, and the viewer shows the page
without a highlight.
"""

from __future__ import annotations

import ctypes
import logging
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c

from ingestion.exceptions import DocumentRejected
from ingestion.models import Document, OcrPage
from ingestion.parsers.base import TextLine
from ingestion.parsers.pdf import PDFIUM_LOCK, pdf_open
from ingestion.parsers.sniff import media_type_sniff

logger = logging.getLogger(__name__)

PDF = "application/pdf"
# Pieces of this many letters and digits are looked up one by one when the whole passage is not found
# verbatim; the passage counts as found where at least this share of its pieces is.
_PIECE = 24
_MIN_FOUND_SHARE = 0.3
# Device size FPDF_PageToDevice maps a page onto: 1e-5 of the page is far below a pixel of any rendering.
_DEVICE = 100_000
# Boxes of one line closer than this (a share of the page's width) are drawn as one.
_LINE_GAP = 0.05


@dataclass(frozen=True)
class PageBox:
    """A highlighted area of one page, as shares of its width and height (0..1, origin top left)."""

    page: int
    x0: float
    y0: float
    x1: float
    y1: float

    def to_json(self) -> list[float]:
        return [self.page, round(self.x0, 4), round(self.y0, 4), round(self.x1, 4), round(self.y1, 4)]

    @classmethod
    def from_json(cls, data: Sequence[float]) -> PageBox:
        page, x0, y0, x1, y1 = data
        return cls(int(page), float(x0), float(y0), float(x1), float(y1))


@dataclass(frozen=True)
class PassageLocation:
    media_type: str  # of the document's file, sniffed ('' when the file is gone)
    boxes: tuple[PageBox, ...]  # empty when not a PDF, or the passage was not found


def _keys(text: str) -> tuple[str, list[int]]:
    """The letters and digits of `text`, NFKC case-folded, and the index in `text` each came from."""
    keys: list[str] = []
    origins: list[int] = []
    for index, char in enumerate(text):
        folded = unicodedata.normalize("NFKC", char).casefold() if not char.isascii() else char.lower()
        for key in folded:
            if key.isalnum():
                keys.append(key)
                origins.append(index)
    return "".join(keys), origins


def _widened(text: str, start: int, end: int) -> tuple[int, int]:
    """The range grown over the marks that touch it ('$' before a figure, '.' or ')' after a word):
    matching compares letters and digits only, but the reader sees the marks as part of the text."""
    while start > 0 and not text[start - 1].isspace() and not text[start - 1].isalnum():
        start -= 1
    while end < len(text) and not text[end].isspace() and not text[end].isalnum():
        end += 1
    return start, end


def spans_match(*, page_text: str, passage: str) -> list[tuple[int, int]]:
    """The ranges [start, end) of `page_text` that hold `passage`, compared by letters and digits only.

    The whole passage verbatim when it is there; otherwise the pieces of it found in order (text a prompt
    shortened or cleaned), merged where they touch, or nothing when too little of it is found.
    """
    page_keys, origins = _keys(page_text)
    wanted, _ = _keys(passage)
    if not wanted or not page_keys:
        return []
    found = page_keys.find(wanted)
    if found >= 0:
        return [_widened(page_text, origins[found], origins[found + len(wanted) - 1] + 1)]
    if len(wanted) < 2 * _PIECE:
        return []
    hits: list[tuple[int, int]] = []  # ranges of page_keys
    cursor = 0
    pieces = range(0, len(wanted) - _PIECE + 1, _PIECE)
    for start in pieces:
        at = page_keys.find(wanted[start : start + _PIECE], cursor)
        if at < 0:
            continue
        cursor = at + _PIECE
        if hits and at - hits[-1][1] <= 2 * _PIECE:
            hits[-1] = (hits[-1][0], cursor)
        else:
            hits.append((at, cursor))
    if sum(end - start for start, end in hits) < _MIN_FOUND_SHARE * len(wanted):
        return []
    return [_widened(page_text, origins[start], origins[end - 1] + 1) for start, end in hits]


def lines_boxes(*, page: int, lines: Sequence[TextLine], passage: str) -> list[PageBox]:
    """Boxes of an OCR'd page's lines that hold the passage; a line partly in it is cut at the share of its
    characters (OCR gives no character boxes, and a line's characters are about evenly wide)."""
    starts: list[int] = []
    text = ""
    for line in lines:
        starts.append(len(text))
        text += line.text + "\n"
    boxes: list[PageBox] = []
    for start, end in spans_match(page_text=text, passage=passage):
        for line, line_start in zip(lines, starts, strict=True):
            line_end = line_start + len(line.text)
            if line_end <= start or line_start >= end or not line.text:
                continue
            width = line.x1 - line.x0
            left = max(0, start - line_start) / len(line.text)
            right = min(len(line.text), end - line_start) / len(line.text)
            boxes.append(PageBox(page, line.x0 + width * left, line.y0, line.x0 + width * right, line.y1))
    return boxes


def _display_transform(page: pdfium.PdfPage) -> Callable[[float, float], tuple[float, float]]:
    """PDF user space → shares of the page as rendered (its rotation and crop box applied): the affine map
    FPDF_PageToDevice applies, read off three points once per page."""

    def device(x: float, y: float) -> tuple[float, float]:
        dx, dy = ctypes.c_int(), ctypes.c_int()
        pdfium_c.FPDF_PageToDevice(page.raw, 0, 0, _DEVICE, _DEVICE, 0, x, y, ctypes.byref(dx), ctypes.byref(dy))
        return dx.value / _DEVICE, dy.value / _DEVICE

    (ox, oy), (ax, ay), (bx, by) = device(0.0, 0.0), device(1000.0, 0.0), device(0.0, 1000.0)
    xx, xy, yx, yy = (ax - ox) / 1000, (ay - oy) / 1000, (bx - ox) / 1000, (by - oy) / 1000
    return lambda x, y: (ox + x * xx + y * yx, oy + x * xy + y * yy)


def boxes_merged(boxes: Sequence[PageBox], *, gap: float = _LINE_GAP) -> list[PageBox]:
    """Boxes of one line (overlapping by most of their height) joined where less than `gap` apart: PDFium
    gives a box per run of text, dozens on a line of a table, and one box per line reads the same (and
    overlapping boxes would show darker)."""
    merged: list[PageBox] = []
    for box in sorted(boxes, key=lambda b: (b.page, b.x0)):
        for i, line in enumerate(merged):
            shared = min(line.y1, box.y1) - max(line.y0, box.y0)
            if (
                line.page == box.page
                and shared > 0.5 * min(line.y1 - line.y0, box.y1 - box.y0)
                and box.x0 - line.x1 < gap
            ):
                merged[i] = PageBox(
                    box.page, min(line.x0, box.x0), min(line.y0, box.y0), max(line.x1, box.x1), max(line.y1, box.y1)
                )
                break
        else:
            merged.append(box)
    return sorted(merged, key=lambda b: (b.page, b.y0, b.x0))


def _text_layer_boxes(page: pdfium.PdfPage, number: int, passage: str) -> list[PageBox]:
    textpage = page.get_textpage()
    try:
        text = textpage.get_text_range()
        display = _display_transform(page)
        boxes: list[PageBox] = []
        for start, end in spans_match(page_text=text, passage=passage):
            first = pdfium_c.FPDFText_GetCharIndexFromTextIndex(textpage.raw, start)
            last = pdfium_c.FPDFText_GetCharIndexFromTextIndex(textpage.raw, end - 1)
            if first < 0 or last < first:
                continue
            for index in range(textpage.count_rects(first, last - first + 1)):
                left, bottom, right, top = textpage.get_rect(index)
                corners = [display(x, y) for x, y in ((left, top), (right, bottom))]
                xs, ys = sorted(c[0] for c in corners), sorted(c[1] for c in corners)
                boxes.append(PageBox(number, max(0.0, xs[0]), max(0.0, ys[0]), min(1.0, xs[1]), min(1.0, ys[1])))
        return boxes_merged(boxes)
    finally:
        textpage.close()


def pdf_passage_boxes(
    *, path: Path, pages: Sequence[int], passage: str, ocr_lines: Mapping[int, Sequence[TextLine]] | None = None
) -> tuple[PageBox, ...]:
    """Boxes of `passage` on these pages of the PDF at `path`: OCR lines where given, else the text layer."""
    boxes: list[PageBox] = []
    ocr_lines = ocr_lines or {}
    with PDFIUM_LOCK:
        document = pdf_open(path)
        try:
            for number in pages:
                if number in ocr_lines:
                    boxes += lines_boxes(page=number, lines=ocr_lines[number], passage=passage)
                elif 1 <= number <= len(document):
                    page = document[number - 1]
                    try:
                        boxes += _text_layer_boxes(page, number, passage)
                    finally:
                        page.close()
        finally:
            document.close()
    return tuple(boxes)


def passage_locate(*, document: Document, page_start: int, page_end: int, text: str) -> PassageLocation:
    """Where a passage of `document` sits on its pages, and what kind of file holds it."""
    if not document.file:
        return PassageLocation("", ())
    path = Path(document.file.path)
    try:
        media_type = media_type_sniff(path=path)
    except OSError:
        return PassageLocation("", ())
    if media_type != PDF:
        return PassageLocation(media_type, ())
    pages = list(range(page_start, page_end + 1))
    ocr_lines = {
        number: [TextLine(*line) for line in lines]
        for number, lines in OcrPage.objects.filter(document_id=document.id, number__in=pages).values_list("number", "lines")
    }
    try:
        boxes = pdf_passage_boxes(path=path, pages=pages, passage=text, ocr_lines=ocr_lines)
    except (DocumentRejected, pdfium.PdfiumError, OSError, ValueError) as exc:
        # A file that cannot be read now must not fail the answer that cites it: no highlight instead.
        logger.warning("event=passage_locate_failed", extra={"document": document.id, "error": repr(exc)})
        return PassageLocation(media_type, ())
    return PassageLocation(media_type, boxes)
