"""The citation viewer: what one passage of an answer shows, built from the answer's own snapshot.

The page image and the file come from the document as long as it exists; the text and the highlight boxes
come from the snapshot (chat.models.PassageRecord), so re-indexing or re-chunking never moves them. A
document that was deleted, or one without pages (a Word or HTML file, read in sections), shows the passage's
text and says why there is no page.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.urls import reverse

from chat.exceptions import RequestInvalid
from chat.models import Answer
from chat.records import DOCUMENT_DELETED, Source
from ingestion.locate import PageBox, passage_locate
from ingestion.models import Document

NO_PAGES = "This document has no page images (it is not a PDF): here is the passage's text, and the file to download."


@dataclass(frozen=True)
class Highlight:
    """A box over the page image, in percent of the image (CSS left, top, width, height)."""

    left: str
    top: str
    width: str
    height: str


@dataclass(frozen=True)
class SourceViewer:
    answer: Answer
    source: Source
    message: str  # why no page is shown ('' when one is)
    file_url: str  # '' once the document is gone
    page: int | None  # None: no page images
    page_count: int
    image_url: str
    highlights: tuple[Highlight, ...]  # on this page
    highlighted_pages: tuple[int, ...]  # every page the passage is on
    prev_url: str
    next_url: str
    back_url: str


def _highlight(box: PageBox) -> Highlight:
    return Highlight(
        f"{box.x0 * 100:.3f}", f"{box.y0 * 100:.3f}", f"{(box.x1 - box.x0) * 100:.3f}", f"{(box.y1 - box.y0) * 100:.3f}"
    )


def _boxes(source: Source, document: Document) -> tuple[PageBox, ...]:
    """The snapshot's boxes; answers recorded before boxes were kept are located now (the file is the same)."""
    record = source.record
    if record.boxes or not record.text:
        return record.boxes
    return passage_locate(document=document, page_start=record.page_start, page_end=record.page_end, text=record.text).boxes


def source_viewer(*, answer: Answer, source: Source, page: int | None) -> SourceViewer:
    """The viewer of `source` at `page` (default: the first page the passage is on). RequestInvalid names the
    pages there are when `page` is not one of them."""
    record = source.record
    back_url = reverse("conversation", args=[answer.conversation_id]) + f"#answer-{answer.id}"
    document = None if source.document_deleted else Document.objects.filter(id=record.document_id).first()
    if document is None:
        return SourceViewer(answer, source, DOCUMENT_DELETED, "", None, 0, "", (), (), "", "", back_url)
    file_url = reverse("document-file", args=[document.id]) if document.file else ""
    if not record.has_page_images or not document.file:
        return SourceViewer(answer, source, NO_PAGES, file_url, None, 0, "", (), (), "", "", back_url)
    boxes = _boxes(source, document)
    count = document.page_count or record.page_end
    shown = page if page is not None else (boxes[0].page if boxes else record.page_start)
    if not 1 <= shown <= count:
        raise RequestInvalid(f"{record.document_name} has pages 1 to {count}, not page {shown}")
    url = reverse("answer-source", args=[answer.id, record.n])
    return SourceViewer(
        answer, source, "", file_url, shown, count, reverse("document-page", args=[document.id, shown]),
        tuple(_highlight(b) for b in boxes if b.page == shown), tuple(sorted({b.page for b in boxes})),
        f"{url}?page={shown - 1}" if shown > 1 else "", f"{url}?page={shown + 1}" if shown < count else "", back_url,
    )
