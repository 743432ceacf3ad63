"""Files and images served to readers: a stored file as a download, streamed in blocks from a thread; a
rendered image.

Django's FileResponse, served by the ASGI server, reads the whole file into memory first (it turns a
synchronous file iterator into a list); uploads may be 100 MB. This reads a block at a time off the event
loop instead.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

from django.http import HttpResponse, StreamingHttpResponse
from django.utils.http import content_disposition_header

BLOCK_BYTES = 256 * 1024


async def _blocks(path: Path) -> AsyncIterator[bytes]:
    handle = await asyncio.to_thread(path.open, "rb")
    try:
        while block := await asyncio.to_thread(handle.read, BLOCK_BYTES):
            yield block
    finally:
        await asyncio.to_thread(handle.close)


def file_download_response(*, path: Path, filename: str, content_type: str) -> StreamingHttpResponse:
    """The file at `path` as an attachment named `filename` (any characters: the header encodes them)."""
    response = StreamingHttpResponse(_blocks(path), content_type=content_type)
    response["Content-Length"] = str(path.stat().st_size)
    response["Content-Disposition"] = content_disposition_header(as_attachment=True, filename=filename) or "attachment"
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "private, max-age=3600"
    return response


def image_response(data: bytes, *, content_type: str = "image/png") -> HttpResponse:
    response = HttpResponse(data, content_type=content_type)
    response["Cache-Control"] = "private, max-age=3600"  # private: behind the reader's access check
    return response
