"""What a stored file is, from its bytes (never its name): the media type that picks its parser.

A name says what the uploader believes; the bytes say what the parser will meet. A `.pdf` that is a
Word file, or a `.docx` that is a PNG, is named for what it is in the rejection.
"""

from __future__ import annotations

from pathlib import Path

HEAD_BYTES = 4096

# Leading bytes of formats we can name (the parsers that read some of them say which by media type).
_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"PK\x03\x04", "application/zip"),
    (b"\xd0\xcf\x11\xe0", "application/x-ole-storage"),
    (b"\x89PNG", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF8", "image/gif"),
    (b"II*\x00", "image/tiff"),
    (b"MM\x00*", "image/tiff"),
    (b"{\\rtf", "application/rtf"),
    (b"%!PS", "application/postscript"),
)

# For rejections: what a person calls the file they uploaded.
DESCRIPTIONS = {
    "application/pdf": "a PDF",
    "application/zip": "a ZIP archive or an Office file such as .xlsx or .pptx",
    "application/x-ole-storage": "an old Office file such as .doc or .xls",
    "image/png": "a PNG image",
    "image/jpeg": "a JPEG image",
    "image/gif": "a GIF image",
    "image/tiff": "a TIFF image",
    "application/rtf": "an RTF document",
    "application/postscript": "a PostScript file",
    "text/html": "a web page (HTML)",
    "text/plain": "plain text",
    "application/x-empty": "an empty file",
    "application/octet-stream": "binary data of an unknown kind",
}

# PDF syntax without the header: PDFium may still read it, or fail as 'corrupt' with details.
_PDF_MARKERS = (b" obj", b"trailer", b"xref", b"endobj")


def media_type_sniff(*, path: Path) -> str:
    with path.open("rb") as fh:
        head = fh.read(HEAD_BYTES)
    return media_type_of(head=head)


def media_type_of(*, head: bytes) -> str:
    if not head:
        return "application/x-empty"
    if b"%PDF-" in head[:1024]:
        return "application/pdf"
    for signature, media_type in _SIGNATURES:
        if head.startswith(signature):
            return media_type
    if head.lstrip().lower().startswith((b"<!doctype html", b"<html")):
        return "text/html"
    if any(marker in head[:1024] for marker in _PDF_MARKERS):
        return "application/pdf"
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return "application/octet-stream"
    return "text/plain"


def media_type_describe(media_type: str) -> str:
    return DESCRIPTIONS.get(media_type, media_type)
