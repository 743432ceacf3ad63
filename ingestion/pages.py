"""A document's pages as images, for the citation viewer: rendered from the stored PDF, cached on disk.

Rendering is CPU work (about 0.1-0.3 s for a dense page on one core): web processes run it in a small
pool of threads (`page_image_async`), never in the event loop, and PDFium's lock keeps one render at a
time per process. Every image has the width settings.PAGE_IMAGE_WIDTH (its pixel count capped for odd
page shapes), and a page holding an image too large to decode safely is refused, as in parsing.

Rendered pages are PNG files under DATA_DIR/page-cache/<document id>/, named by the file's hash, page and
width, so a re-indexed document keeps them and a different file never reuses them. The folder is kept
under settings.PAGE_CACHE_BYTES by deleting the least recently used images after each write.
"""

from __future__ import annotations

import asyncio
import io
import logging
import math
import os
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pypdfium2 as pdfium
from django.conf import settings
from PIL import Image

from ingestion.exceptions import DocumentRejected, FileUnavailable, PageNotFound, PageUnavailable
from ingestion.models import Document
from ingestion.parsers.pdf import MAX_IMAGE_PIXELS, PDFIUM_LOCK, images_measure, pdf_open
from ingestion.parsers.sniff import media_type_describe, media_type_sniff
from ragsite.components import shared
from ragsite.logs import log_event

logger = logging.getLogger(__name__)

PDF = "application/pdf"
# A page far wider than tall (a fold-out table) would otherwise make a huge image at the set width.
_MAX_PIXELS = 8_000_000


class RenderPool:
    """The threads web processes render pages in (settings.PAGE_RENDER_THREADS), out of the event loop."""

    def __init__(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=settings.PAGE_RENDER_THREADS, thread_name_prefix="page-render")

    async def run(self, document: Document, number: int) -> bytes:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: page_image(document=document, number=number))

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def document_media_type(*, document: Document) -> str:
    """The media type of the document's stored file, sniffed from its bytes ('' when no file is stored)."""
    if not document.file:
        return ""
    try:
        return media_type_sniff(path=Path(document.file.path))
    except OSError:
        return ""


@dataclass(frozen=True)
class StoredFile:
    path: Path
    name: str  # the uploader's file name
    media_type: str


def document_file(*, document: Document) -> StoredFile:
    """The document's original file, for download; FileUnavailable when none is stored."""
    media_type = document_media_type(document=document)
    if not media_type:
        raise FileUnavailable(
            f"{document.original_name} has no stored file ({document.error or 'it was never stored'}): upload it again"
        )
    return StoredFile(Path(document.file.path), document.original_name, media_type)


def document_page_check(*, document: Document, number: int) -> Path:
    """The path of the document's PDF when page `number` can be shown; else a PageUnavailable or PageNotFound
    that says why (the file failed to ingest or is gone, it is not a PDF, or there is no such page)."""
    if document.status == Document.Status.FAILED:
        raise PageUnavailable(
            f"{document.original_name} could not be ingested ({document.error or 'it failed'}): it has no pages to show"
        )
    media_type = document_media_type(document=document)
    if not media_type:
        raise PageUnavailable(f"The file of {document.original_name} is not stored: upload it again")
    if media_type != PDF:
        raise PageUnavailable(
            f"{document.original_name} is {media_type_describe(media_type)}, which has no page images: download the file"
        )
    if document.page_count is not None and not 1 <= number <= document.page_count:
        raise PageNotFound(f"{document.original_name} has pages 1 to {document.page_count}, not page {number}")
    return Path(document.file.path)


def page_render(*, path: Path, number: int, width: int) -> bytes:
    """Page `number` of the PDF at `path` as a PNG `width` pixels wide (fewer for a very wide page)."""
    with PDFIUM_LOCK:
        try:
            document = pdf_open(path)
        except DocumentRejected as exc:
            raise PageUnavailable(str(exc)) from exc
        try:
            if not 1 <= number <= len(document):
                raise PageNotFound(f"The document has pages 1 to {len(document)}, not page {number}")
            page = document[number - 1]
            try:
                image = _page_bitmap(page, number, width)
            finally:
                page.close()
        finally:
            document.close()
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=False, compress_level=6)
    return out.getvalue()


def _page_bitmap(page: pdfium.PdfPage, number: int, width: int) -> Image.Image:
    page_width, page_height = page.get_size()
    if not (math.isfinite(page_width) and math.isfinite(page_height)) or page_width <= 0 or page_height <= 0:
        raise PageUnavailable(f"Page {number} has an invalid size ({page_width} x {page_height} pt)")
    _coverage, largest = images_measure(page)
    if largest > MAX_IMAGE_PIXELS:
        # Rendering decodes every image at full size, whatever the output size (see ingestion.parsers.pdf).
        raise PageUnavailable(f"Page {number} holds an image of {largest // 1_000_000} megapixels, too large to show")
    scale = min(width / page_width, math.sqrt(_MAX_PIXELS / (page_width * page_height)))
    bitmap = page.render(scale=scale, may_draw_forms=True)
    try:
        return bitmap.to_pil().copy()  # own the pixels: the bitmap's memory is freed below
    finally:
        bitmap.close()


def _cache_root() -> Path:
    return Path(settings.DATA_DIR) / "page-cache"


def _cache_path(document: Document, number: int, width: int) -> Path:
    return _cache_root() / str(document.id) / f"{document.sha256[:32]}-p{number}-w{width}.png"


def _cache_store(path: Path, data: bytes) -> None:
    """Write atomically (a reader sees the whole image or none), then trim the cache to its bound."""
    if len(data) > settings.PAGE_CACHE_BYTES:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(handle, "wb") as out:
        out.write(data)
    os.replace(temporary, path)
    page_cache_trim(limit=settings.PAGE_CACHE_BYTES)


def page_cache_trim(*, limit: int) -> int:
    """Delete the least recently used images until the cache holds at most `limit` bytes; bytes freed."""
    files: list[tuple[float, int, Path]] = []
    for folder in _cache_root().glob("*"):
        try:  # another thread or process may be deleting a folder (a document deleted) or a file meanwhile
            for entry in os.scandir(folder):
                if entry.name.endswith(".png"):
                    stat = entry.stat()
                    files.append((stat.st_mtime, stat.st_size, Path(entry.path)))
        except (FileNotFoundError, NotADirectoryError):
            continue
    total = sum(size for _, size, _ in files)
    freed = 0
    for _, size, path in sorted(files):
        if total - freed <= limit:
            break
        path.unlink(missing_ok=True)
        freed += size
    if freed:
        log_event(logger, "page_cache_trimmed", freed_bytes=freed, kept_bytes=total - freed)
    return freed


def page_cache_forget(*, document_id: int) -> None:
    """Drop a deleted document's rendered pages."""
    shutil.rmtree(_cache_root() / str(document_id), ignore_errors=True)


def page_image(*, document: Document, number: int) -> bytes:
    """Page `number` of the document as a PNG, from the cache or rendered now (blocking: see page_image_async)."""
    path = document_page_check(document=document, number=number)
    width = settings.PAGE_IMAGE_WIDTH
    cached = _cache_path(document, number, width)
    try:
        data = cached.read_bytes()
        os.utime(cached)  # recently used: trimmed last
        return data
    except FileNotFoundError:
        pass
    started = time.perf_counter()
    data = page_render(path=path, number=number, width=width)
    _cache_store(cached, data)
    log_event(
        logger, "page_rendered", document=document.id, page=number, width=width, bytes=len(data),
        ms=round((time.perf_counter() - started) * 1000, 1),
    )
    return data


async def page_image_async(*, document: Document, number: int) -> bytes:
    """page_image in the render pool's threads, so the event loop (and other requests) never wait for it."""
    return await shared(RenderPool).run(document, number)
