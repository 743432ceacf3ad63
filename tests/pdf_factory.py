"""Make small PDFs (and files that only pretend to be PDFs) for tests, with reportlab, Pillow and pypdf.

Every maker writes to `path` and returns it, so tests read as `pdf_parse(path=make_text_pdf(...))`.
Image pages are small (a few inches) so OCR on them takes about a second.
"""

from __future__ import annotations

import io
import zipfile
import zlib
from pathlib import Path

import reportlab
from PIL import Image, ImageDraw, ImageFont
from pypdf import PdfReader, PdfWriter
from reportlab.lib.utils import ImageReader, simpleSplit
from reportlab.pdfgen import canvas

LETTER = (612.0, 792.0)
_FONT_FILE = Path(reportlab.__file__).parent / "fonts" / "Vera.ttf"  # bundled: no system fonts needed


def make_text_pdf(path: Path, pages: list[str], *, page_size: tuple[float, float] = LETTER) -> Path:
    """One page per string, in Helvetica; '' gives a blank page.

    Each '\n' starts a new line and long lines wrap at the margins, as a word processor would. A
    string too long for one page at 12 pt is set smaller (down to 4 pt) so it still fits its page.
    """
    pdf = canvas.Canvas(str(path), pagesize=page_size)
    width, height = page_size[0] - 144, page_size[1] - 144  # one-inch margins
    for text in pages:
        if text:
            for size in (12, 10, 8, 6, 5, 4):
                lines = [
                    part
                    for line in text.split("\n")
                    for part in simpleSplit(line, "Helvetica", size, width) or [""]
                ]
                if len(lines) * size * 1.2 <= height:
                    break
            block = pdf.beginText(72, page_size[1] - 72)
            block.setFont("Helvetica", size, leading=size * 1.2)
            for line in lines:
                block.textLine(line)
            pdf.drawText(block)
        pdf.showPage()
    pdf.save()
    return path


def text_image(lines: list[str], *, size: tuple[int, int] = (1200, 600), font_px: int = 56) -> Image.Image:
    """Black text on white, one line under another, like a clean scan."""
    image = Image.new("L", size, 255)
    draw = ImageDraw.Draw(image)
    font = ImageFont.truetype(str(_FONT_FILE), font_px)
    y = font_px
    for line in lines:
        draw.text((font_px, y), line, fill=0, font=font)
        y += int(font_px * 1.6)
    return image


def columns_image(left: list[str], right: list[str], *, font_px: int = 40) -> Image.Image:
    """Two columns whose lines sit at the same heights: a naive top-to-bottom OCR interleaves them."""
    image = Image.new("L", (1600, 200 + int(font_px * 1.6) * len(left)), 255)
    draw = ImageDraw.Draw(image)
    font = ImageFont.truetype(str(_FONT_FILE), font_px)
    for column, x in ((left, 60), (right, 860)):
        for row, line in enumerate(column):
            draw.text((x, 100 + int(font_px * 1.6) * row), line, fill=0, font=font)
    return image


def make_image_pdf(
    path: Path,
    images: list[Image.Image],
    *,
    page_size: tuple[float, float] = (432.0, 216.0),
    invisible_text: str = "",
) -> Path:
    """Image-only pages (no text layer), each image filling its page.

    `invisible_text`, when given, is drawn in text render mode 3 (invisible, as OCR tools do) on
    every page: a text layer that does not match what a reader sees.
    """
    pdf = canvas.Canvas(str(path), pagesize=page_size)
    for image in images:
        pdf.drawImage(ImageReader(image), 0, 0, width=page_size[0], height=page_size[1])
        if invisible_text:
            block = pdf.beginText(10, 10)
            block.setTextRenderMode(3)
            block.setFont("Helvetica", 10)
            block.textLine(invisible_text)
            pdf.drawText(block)
        pdf.showPage()
    pdf.save()
    return path


def make_encrypted_pdf(path: Path, pages: list[str], *, user_password: str, owner_password: str) -> Path:
    """RC4-128 encryption (pypdf needs the `cryptography` package for AES; the real-data tests cover AES).

    user_password='' gives an owner-password-only PDF: it opens without a password.
    """
    plain = make_text_pdf(path.with_suffix(".plain.pdf"), pages)
    writer = PdfWriter(clone_from=PdfReader(plain))
    writer.encrypt(user_password=user_password, owner_password=owner_password, algorithm="RC4-128")
    with path.open("wb") as fh:
        writer.write(fh)
    plain.unlink()
    return path


def make_zero_page_pdf(path: Path) -> Path:
    """A well-formed PDF whose page tree is empty."""
    with path.open("wb") as fh:
        PdfWriter().write(fh)
    return path


def make_truncated_pdf(path: Path) -> Path:
    """A valid 3-page PDF cut in half, as an interrupted upload or download leaves it."""
    whole = make_text_pdf(path.with_suffix(".whole.pdf"), ["one", "two", "three"]).read_bytes()
    path.with_suffix(".whole.pdf").unlink()
    path.write_bytes(whole[: len(whole) // 2])
    return path


def make_damaged_page_pdf(path: Path) -> Path:
    """Three pages where the page tree's second entry is not a page: pages 1 and 3 are readable."""

    def page(number: int, content: int) -> tuple[int, bytes]:
        return number, (
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 300 200] /Contents {content} 0 R "
            "/Resources << /Font << /F1 9 0 R >> >> >>"
        ).encode()

    def stream(number: int, data: bytes) -> tuple[int, bytes]:
        return number, b"<< /Length %d >>\nstream\n%s\nendstream" % (len(data), data)

    objects = [
        (1, b"<< /Type /Catalog /Pages 2 0 R >>"),
        (2, b"<< /Type /Pages /Kids [3 0 R 4 0 R 5 0 R] /Count 3 >>"),
        page(3, 6),
        (4, b"42"),  # where page 2 should be
        page(5, 7),
        stream(6, b"BT /F1 12 Tf 20 100 Td (First page text) Tj ET"),
        stream(7, b"BT /F1 12 Tf 20 100 Td (Third page text) Tj ET"),
        (9, b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"),
    ]
    path.write_bytes(_pdf_assemble(objects))
    return path


def make_image_bomb_pdf(path: Path, *, side: int = 20000) -> Path:
    """One page showing a side×side one-bit image: 400 megapixels from about 50 KB of zeros."""
    pixels = zlib.compress(bytes(side * side // 8), 9)
    content = b"q 600 0 0 600 0 0 cm /Im1 Do Q"
    objects = [
        (1, b"<< /Type /Catalog /Pages 2 0 R >>"),
        (2, b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>"),
        (
            3,
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 600 600] /Contents 4 0 R "
            b"/Resources << /XObject << /Im1 5 0 R >> >> >>",
        ),
        (4, b"<< /Length %d >>\nstream\n%s\nendstream" % (len(content), content)),
        (
            5,
            b"<< /Type /XObject /Subtype /Image /Width %d /Height %d /ColorSpace /DeviceGray "
            b"/BitsPerComponent 1 /Filter /FlateDecode /Length %d >>\nstream\n%s\nendstream"
            % (side, side, len(pixels), pixels),
        ),
    ]
    path.write_bytes(_pdf_assemble(objects))
    return path


def _pdf_assemble(objects: list[tuple[int, bytes]]) -> bytes:
    """Serialize numbered objects with a correct cross-reference table (so only what we broke is broken)."""
    out = bytearray(b"%PDF-1.4\n")
    offsets: dict[int, int] = {}
    for number, body in objects:
        offsets[number] = len(out)
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    size = max(offsets) + 1
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % size
    for number in range(1, size):
        out += b"%010d 00000 n \n" % offsets[number] if number in offsets else b"0000000000 65535 f \n"
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (size, xref)
    return bytes(out)


def make_png_named_pdf(path: Path) -> Path:
    """A real PNG image saved under a .pdf name."""
    text_image(["not a pdf"], size=(200, 100), font_px=20).save(path, format="PNG")
    return path


def make_docx_named_pdf(path: Path) -> Path:
    """A ZIP archive laid out like a Word document, saved under a .pdf name."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("word/document.xml", "<w:document/>")
    path.write_bytes(buffer.getvalue())
    return path


def make_ruled_table_pdf(
    path: Path, *, title: str, header: list[str], rows: list[list[str]], before: list[str], after: list[str]
) -> Path:
    """A text page, then a page with `title` over a table drawn with a full grid (reportlab), then a text page."""
    from reportlab.lib import colors
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.platypus import PageBreak, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

    styles = getSampleStyleSheet()
    table = Table([header, *rows])
    table.setStyle(TableStyle([
        ("GRID", (0, 0), (-1, -1), 0.5, colors.black),
        ("ALIGN", (1, 0), (-1, -1), "RIGHT"),
    ]))
    story = [Paragraph(p, styles["Normal"]) for p in before]
    story += [PageBreak(), Paragraph(title, styles["Heading2"]), Spacer(1, 6), table, PageBreak()]
    story += [Paragraph(p, styles["Normal"]) for p in after]
    SimpleDocTemplate(str(path), pagesize=LETTER).build(story)
    return path
