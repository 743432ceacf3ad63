"""What a stored file is, from its bytes (never its name): the media type that picks its parser.

A name says what the uploader believes; the bytes say what the parser will meet. A `.pdf` that is a
Word file, or a `.docx` that is a PNG, is named for what it is in the rejection, with what to do.

Markdown and plain text are told apart by syntax: a text with Markdown headings (or several other marks
of Markdown) is Markdown, whose headings make sections; any other text is plain text, cut into numbered
parts. A plain text taken for Markdown loses nothing but a few marks, so the test leans to Markdown only
when the marks are unambiguous.
"""

from __future__ import annotations

import codecs
import re
import zipfile
from pathlib import Path
from typing import IO

from charset_normalizer import from_bytes

HEAD_BYTES = 16384

DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
PPTX = "application/vnd.openxmlformats-officedocument.presentationml.presentation"
ODF = "application/vnd.oasis.opendocument"

# Leading bytes of formats we can name (the parsers that read some of them say which by media type).
_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"PK\x03\x04", "application/zip"),
    (b"PK\x05\x06", "application/zip"),  # an empty archive
    (b"\xd0\xcf\x11\xe0", "application/x-ole-storage"),
    (b"\x89PNG", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF8", "image/gif"),
    (b"II*\x00", "image/tiff"),
    (b"MM\x00*", "image/tiff"),
    (b"{\\rtf", "application/rtf"),
    (b"%!PS", "application/postscript"),
    (b"\x1f\x8b", "application/gzip"),
    (b"7z\xbc\xaf\x27\x1c", "application/x-7z-compressed"),
    (b"Rar!", "application/vnd.rar"),
    (b"\x7fELF", "application/x-executable"),
    (b"MZ", "application/x-msdownload"),
)
# In an Office Open XML or OpenDocument archive, the member that says which kind of document it is.
_ZIP_MEMBERS = (("word/document.xml", DOCX), ("xl/workbook.xml", XLSX), ("ppt/presentation.xml", PPTX))

# For rejections: what a person calls the file they uploaded...
DESCRIPTIONS = {
    "application/pdf": "a PDF",
    DOCX: "a Word document (.docx)",
    XLSX: "an Excel workbook (.xlsx)",
    PPTX: "a PowerPoint presentation (.pptx)",
    ODF: "an OpenDocument file (.odt, .ods or .odp)",
    "application/zip": "a ZIP archive",
    "application/x-ole-storage": "an old Office file such as .doc, .xls or .ppt",
    "image/png": "a PNG image",
    "image/jpeg": "a JPEG image",
    "image/gif": "a GIF image",
    "image/tiff": "a TIFF image",
    "application/rtf": "an RTF document",
    "application/postscript": "a PostScript file",
    "application/gzip": "a gzip archive",
    "application/x-7z-compressed": "a 7-Zip archive",
    "application/vnd.rar": "a RAR archive",
    "application/x-executable": "a program (ELF executable)",
    "application/x-msdownload": "a Windows program",
    "text/html": "a web page (HTML)",
    "text/markdown": "a Markdown text",
    "text/plain": "plain text",
    "application/x-empty": "an empty file",
    "application/octet-stream": "binary data of an unknown kind",
}
# ... and what to do with it instead (types without advice get the list of what is accepted).
_SAVE_AS = "save it as .docx or PDF and upload that"
ADVICE = {
    "application/x-ole-storage": "open it in Office, " + _SAVE_AS,
    "application/rtf": "open it in a word processor, " + _SAVE_AS,
    ODF: "open it in LibreOffice, " + _SAVE_AS,
    XLSX: "export the sheets to PDF and upload that",
    PPTX: "export the slides to PDF and upload that",
    "application/postscript": "convert it to PDF and upload that",
    "image/png": "put the image in a PDF (scanned pages are read by OCR) and upload that",
    "image/jpeg": "put the image in a PDF (scanned pages are read by OCR) and upload that",
    "image/gif": "put the image in a PDF (scanned pages are read by OCR) and upload that",
    "image/tiff": "put the image in a PDF (scanned pages are read by OCR) and upload that",
    "application/zip": "unpack it and upload the documents inside",
    "application/gzip": "unpack it and upload the documents inside",
    "application/x-7z-compressed": "unpack it and upload the documents inside",
    "application/vnd.rar": "unpack it and upload the documents inside",
    "application/x-empty": "upload the file again",
}
# PDF syntax without the header: PDFium may still read it, or fail as 'corrupt' with details.
_PDF_MARKERS = (b" obj", b"trailer", b"xref", b"endobj")
_HTML_START = re.compile(r"\A(?:\s|<!--.*?-->|<\?xml[^>]*>)*<(?:!doctype\s+html|html\b)", re.IGNORECASE | re.DOTALL)
_HTML_TAGS = re.compile(r"<(?:head|body|title|meta|div|p|h[1-6]|table|ul|script|style)\b[^>]*>", re.IGNORECASE)
_MD_HEADING = re.compile(r"^ {0,3}#{1,6}[ \t]+\S", re.MULTILINE)
_MD_SETEXT = re.compile(r"^[^\s].*\n {0,3}(?:=+|-{3,})[ \t]*$", re.MULTILINE)
_MD_OTHER = (
    re.compile(r"^ {0,3}(?:```|~~~)", re.MULTILINE),  # fenced code
    re.compile(r"\[[^\]\n]+\]\([^)\s]+\)"),  # [link](url)
    re.compile(r"^ {0,3}\|.*\|[ \t]*\n {0,3}\|?[ \t]*:?-{3,}", re.MULTILINE),  # a table's header rule
    re.compile(r"(?:\*\*|__)[^\s*_][^*_\n]*(?:\*\*|__)"),  # **strong**
    re.compile(r"^ {0,3}[-*+][ \t]+\S", re.MULTILINE),  # bullet lists
)


def media_type_sniff(*, path: Path) -> str:
    with path.open("rb") as fh:
        return media_type_read(fh=fh)


def media_type_read(*, fh: IO[bytes]) -> str:
    """The media type of an open, seekable binary file (a stored file or an upload); leaves it at 0."""
    fh.seek(0)
    head = fh.read(HEAD_BYTES)
    fh.seek(0)
    media_type = media_type_of(head=head)
    if media_type == "application/zip":
        media_type = _zip_kind(fh)
        fh.seek(0)
    return media_type


def media_type_of(*, head: bytes) -> str:
    """The media type told by a file's first bytes (a ZIP archive is looked into by media_type_read)."""
    if not head:
        return "application/x-empty"
    if b"%PDF-" in head[:1024]:
        return "application/pdf"
    for signature, media_type in _SIGNATURES:
        if head.startswith(signature):
            return media_type
    text = text_decode(data=head, partial=True)
    if text is None:
        return "application/pdf" if any(m in head[:1024] for m in _PDF_MARKERS) else "application/octet-stream"
    if _HTML_START.match(text) or (text.lstrip().startswith("<") and len(_HTML_TAGS.findall(text)) >= 2):
        return "text/html"
    if any(m in head[:1024] for m in _PDF_MARKERS):
        return "application/pdf"
    return "text/markdown" if _looks_like_markdown(text) else "text/plain"


def media_type_describe(media_type: str) -> str:
    return DESCRIPTIONS.get(media_type, media_type)


def media_type_advice(media_type: str, *, accepted: str) -> str:
    """What to do with a file of this type that cannot be read, e.g. 'save it as .docx or PDF and upload that'."""
    return ADVICE.get(media_type, f"upload one of {accepted}")


def text_decode(*, data: bytes, partial: bool = False) -> str | None:
    """`data` as text in its detected encoding (BOM, UTF-8, UTF-16 without BOM, legacy code pages), or
    None when it is not text. `partial`: `data` is a file's head, so its last character may be cut."""
    bom = _bom_encoding(data)
    if bom is not None:
        return _decode(data, bom, partial=partial)
    if b"\x00" not in data:
        try:
            text = codecs.getincrementaldecoder("utf-8")().decode(data, final=not partial)
        except UnicodeDecodeError:
            pass
        else:
            return text if _looks_like_text(text) else None
    elif not _nul_pattern_of_utf16(data):
        return None  # NULs outside the pattern UTF-16 text makes: binary
    best = from_bytes(data[: len(data) - len(data) % 2] if partial else data).best()
    if best is None:
        return None
    decoded = _decode(data, best.encoding, partial=partial)
    return decoded if decoded is not None and _looks_like_text(decoded) else None


def _decode(data: bytes, encoding: str, *, partial: bool) -> str | None:
    try:
        decoder = codecs.getincrementaldecoder(encoding)(errors="replace")
    except LookupError:
        return None
    return decoder.decode(data, final=not partial)


def _bom_encoding(data: bytes) -> str | None:
    if data.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if data.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)) and len(data) % 4 == 0:
        return "utf-32"
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    return None


def _nul_pattern_of_utf16(data: bytes) -> bool:
    """Latin-script UTF-16 without a BOM: NULs fill most bytes of one parity and almost none of the other."""
    sample = data[:4096]
    even, odd = sample[0::2].count(0), sample[1::2].count(0)
    half = max(len(sample) // 2, 1)
    return max(even, odd) >= 0.3 * half and min(even, odd) <= 0.02 * half


def _looks_like_text(text: str) -> bool:
    """Decoded bytes that are mostly controls or replacement characters were not text."""
    if not text:
        return False
    bad = sum(1 for ch in text if ch == "\ufffd" or (ord(ch) < 32 and ch not in "\t\n\r\f"))
    return bad <= 0.02 * len(text)


def _looks_like_markdown(text: str) -> bool:
    if _MD_HEADING.search(text) or _MD_SETEXT.search(text):
        return True
    return sum(1 for pattern in _MD_OTHER if pattern.search(text)) >= 2


def _zip_kind(fh: IO[bytes]) -> str:
    try:
        with zipfile.ZipFile(fh) as archive:
            names = set(archive.namelist())
            if "mimetype" in names and _member_head(archive, "mimetype").startswith(ODF.encode()):
                return ODF
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError):
        return "application/zip"  # a damaged archive: nothing in it can be read anyway
    return next((media_type for member, media_type in _ZIP_MEMBERS if member in names), "application/zip")


def _member_head(archive: zipfile.ZipFile, name: str) -> bytes:
    with archive.open(name) as member:
        return member.read(64)  # never more: a member may be a decompression bomb
