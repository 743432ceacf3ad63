"""ingestion.pdf: PDFs made for each behaviour first, then every real PDF in ../shared/eval/pdfs.

No database is used. OCR runs for real (RapidOCR's bundled models);
the synthetic image pages are small, so each OCR'd page costs about a second.
"""

from __future__ import annotations

import csv
import math
import re
import unicodedata
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pypdfium2 as pdfium
import pytest
from pypdf import PasswordType, PdfReader
from pypdf.errors import DependencyError

from ingestion import pdf as pdf_module
from ingestion.exceptions import OcrFailed, PdfRejected
from ingestion.ocr import image_ocr
from ingestion.pdf import ParsedPdf, pages_describe, pdf_parse, render_scale
from ingestion.text import text_normalize, text_readability
from tests import pdf_factory as make

EVAL_PDFS = Path(__file__).resolve().parents[2] / "shared" / "eval" / "pdfs"


def _words(text: str) -> set[str]:
    return set(re.findall(r"\w+", text.lower()))


def _found_share(expected: str, text: str) -> float:
    wanted = re.findall(r"\w+", unicodedata.normalize("NFKC", expected).lower())  # ﬁ → fi, as we do
    got = _words(text)
    return sum(w in got for w in wanted) / len(wanted)


def _warned_pages(parsed: ParsedPdf) -> set[int]:
    """Page numbers named in the warnings ('page 4', 'pages 3, 7-9')."""
    named: set[int] = set()
    for warning in parsed.warnings:
        for listing in re.findall(r"\bpages? ((?:\d+(?:-\d+)?(?:, )?)+)", warning):
            for part in listing.split(", "):
                first, _, last = part.partition("-")
                named.update(range(int(first), int(last or first) + 1))
    return named


def _assert_consistent(parsed: ParsedPdf) -> None:
    """Invariants of every result: one page per number, in order, and no page silently empty."""
    assert [p.number for p in parsed.pages] == list(range(1, parsed.page_count + 1))
    empty = {p.number for p in parsed.pages if not p.text}
    assert empty <= _warned_pages(parsed), f"empty pages {empty} not named in {parsed.warnings}"
    assert not any(p.ocr and not p.text for p in parsed.pages)


# --- the text layer --------------------------------------------------------------------------------


def test_text_of_each_page_comes_back_in_order(tmp_path: Path) -> None:
    path = make.make_text_pdf(tmp_path / "a.pdf", ["Alpha page\nsecond line", "Beta page", "Gamma page"])

    parsed = pdf_parse(path=path)

    assert parsed.page_count == 3
    assert [(p.number, p.text, p.ocr) for p in parsed.pages] == [
        (1, "Alpha page\nsecond line", False),
        (2, "Beta page", False),
        (3, "Gamma page", False),
    ]
    assert parsed.warnings == ()


def test_progress_is_reported_at_start_and_after_each_page(tmp_path: Path) -> None:
    calls: list[tuple[int, int]] = []

    pdf_parse(
        path=make.make_text_pdf(tmp_path / "a.pdf", ["one", "two", "three"]),
        progress=lambda d, t: calls.append((d, t)),
    )

    assert calls == [(0, 3), (1, 3), (2, 3), (3, 3)]


def test_paragraph_breaks_are_found_from_the_space_between_lines(tmp_path: Path) -> None:
    text = "First paragraph, line one\nline two\nline three\n\nSecond paragraph\nits last line"

    page = pdf_parse(path=make.make_text_pdf(tmp_path / "a.pdf", [text])).pages[0]

    assert page.text == text


def test_words_split_at_line_ends_are_rejoined_but_compounds_keep_their_hyphen(tmp_path: Path) -> None:
    text = "This is an exam-\nple of a broken word.\nIt is well-\nknown that well-known words keep hyphens."

    page = pdf_parse(path=make.make_text_pdf(tmp_path / "a.pdf", [text])).pages[0]

    assert "an example of a broken word" in page.text
    assert "It is well-known that" in page.text


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("a\r\nb\rc", "a\nb\nc"),
        ("nul\x00here  and\t\ttabs   too ", "nulhere and tabs too"),
        ("para one\r\n\r\n\r\n\r\npara two", "para one\n\npara two"),
        ("line end   \n   next", "line end\nnext"),
        ("com\ufffepile and mixed\ufffemode and mixed-mode", "compile and mixed-mode and mixed-mode"),
        ("Just-in\ufffeTime", "Just-in-Time"),
        ("OCR hyphen-\nation here", "OCR hyphenation here"),
        ("range 0.3-\n10 keV", "range 0.3-\n10 keV"),
        ("soft\u00adhyphen and Soft\u00ad\nHyphen", "softhyphen and SoftHyphen"),
        ("\ufb01le e\ufb03cient\u00a0space", "file efficient space"),
        ("bullet \x88 and \uf8eb bracket", "bullet and bracket"),
        ("  \n\n  ", ""),
    ],
)
def test_text_normalize(raw: str, expected: str) -> None:
    assert text_normalize(text=raw) == expected


def test_readability_tells_garbage_from_text_and_ignores_dot_leaders() -> None:
    assert text_readability(text='"7+%-')[1] < 0.5  # what a font without a Unicode map gives
    assert text_readability(text="Contents . . . . . . . . . . . . . . 51")[1] > 0.8
    assert text_readability(text="Noble gases -269 -62 -170.5")[1] > 0.7
    assert text_readability(text="") == (0, 0.0)


@pytest.mark.parametrize(
    ("numbers", "expected"),
    [
        ([4], "page 4"),
        ([3, 7, 8, 9], "pages 3, 7-9"),
        ([1, 2], "pages 1-2"),
        ([1, 3, 5, 6, 10], "pages 1, 3, 5-6, 10"),
    ],
)
def test_pages_describe_groups_ranges(numbers: list[int], expected: str) -> None:
    assert pages_describe(numbers=numbers) == expected


def test_blank_page_is_empty_and_named_in_a_warning(tmp_path: Path) -> None:
    parsed = pdf_parse(path=make.make_text_pdf(tmp_path / "a.pdf", ["Before", "", "After"]))

    assert [p.text for p in parsed.pages] == ["Before", "", "After"]
    assert parsed.warnings == ("No text found on page 2 (blank, or images OCR could not read)",)


# --- files that are rejected -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("maker", "looks_like"),
    [
        (make.make_png_named_pdf, "PNG image"),
        (make.make_docx_named_pdf, "ZIP/Office"),
        (lambda p: (p.write_text("Dear team,\nplease find the figures below.\n"), p)[1], "plain text"),
        (lambda p: (p.write_bytes(bytes(range(256)) * 8), p)[1], "no '%PDF-' header"),
    ],
)
def test_file_that_is_not_a_pdf_is_rejected_saying_what_it_looks_like(
    tmp_path: Path, maker, looks_like: str
) -> None:
    with pytest.raises(PdfRejected) as caught:
        pdf_parse(path=maker(tmp_path / "upload.pdf"))

    assert caught.value.code == "not_pdf"
    assert str(caught.value).startswith("File is not a PDF")
    assert looks_like in str(caught.value)
    assert "export it to PDF" in str(caught.value)


def test_empty_file_is_rejected(tmp_path: Path) -> None:
    (tmp_path / "a.pdf").write_bytes(b"")

    with pytest.raises(PdfRejected, match=r"File is empty \(0 bytes\)") as caught:
        pdf_parse(path=tmp_path / "a.pdf")
    assert caught.value.code == "empty"


def test_pdf_with_user_password_is_rejected_as_encrypted(tmp_path: Path) -> None:
    path = make.make_encrypted_pdf(
        tmp_path / "a.pdf", ["Secret"], user_password="open-me", owner_password="own"
    )

    with pytest.raises(PdfRejected, match="PDF is encrypted with a password: save a copy without") as caught:
        pdf_parse(path=path)
    assert caught.value.code == "encrypted"


def test_pdf_with_only_an_owner_password_is_read(tmp_path: Path) -> None:
    path = make.make_encrypted_pdf(
        tmp_path / "a.pdf", ["Readable by anyone", "Page two"], user_password="", owner_password="own"
    )
    assert PdfReader(path).is_encrypted  # the file really is encrypted

    parsed = pdf_parse(path=path)

    assert [p.text for p in parsed.pages] == ["Readable by anyone", "Page two"]


def test_truncated_pdf_is_rejected_as_corrupt(tmp_path: Path) -> None:
    with pytest.raises(PdfRejected) as caught:
        pdf_parse(path=make.make_truncated_pdf(tmp_path / "a.pdf"))

    assert caught.value.code == "corrupt"
    assert str(caught.value).startswith("PDF is damaged and cannot be read (pdfium: ")
    assert "re-export or repair it" in str(caught.value)


def test_header_less_pdf_syntax_is_rejected_as_corrupt(tmp_path: Path) -> None:
    body = make.make_text_pdf(tmp_path / "ok.pdf", ["text"]).read_bytes()
    (tmp_path / "a.pdf").write_bytes(body[body.index(b"1 0 obj") :])

    with pytest.raises(PdfRejected) as caught:
        pdf_parse(path=tmp_path / "a.pdf")
    assert caught.value.code == "corrupt"


def test_pdf_without_pages_is_rejected_as_empty(tmp_path: Path) -> None:
    with pytest.raises(PdfRejected, match="PDF has no pages") as caught:
        pdf_parse(path=make.make_zero_page_pdf(tmp_path / "a.pdf"))
    assert caught.value.code == "empty"


def test_pdf_over_the_page_limit_is_rejected(tmp_path: Path) -> None:
    path = make.make_text_pdf(tmp_path / "a.pdf", ["1", "2", "3"])

    with pytest.raises(PdfRejected, match="PDF has 3 pages, more than the 2 allowed: split it") as caught:
        pdf_parse(path=path, max_pages=2)
    assert caught.value.code == "too_many_pages"
    assert pdf_parse(path=path, max_pages=3).page_count == 3


def test_rejection_survives_pickling_for_celery() -> None:
    import pickle

    again = pickle.loads(pickle.dumps(PdfRejected("PDF is encrypted", code="encrypted")))

    assert (str(again), again.code) == ("PDF is encrypted", "encrypted")


def test_damaged_page_is_left_empty_with_a_warning_and_the_rest_is_read(tmp_path: Path) -> None:
    parsed = pdf_parse(path=make.make_damaged_page_pdf(tmp_path / "a.pdf"))

    assert [p.text for p in parsed.pages] == ["First page text", "", "Third page text"]
    assert parsed.warnings == ("Could not read page 2 (damaged page data); left empty",)


# --- OCR -------------------------------------------------------------------------------------------


def test_image_only_pages_are_ocrd(tmp_path: Path) -> None:
    images = [make.text_image(["Quarterly report", "Revenue grew"]), make.text_image(["Second scanned page"])]

    parsed = pdf_parse(path=make.make_image_pdf(tmp_path / "a.pdf", images))

    assert [p.ocr for p in parsed.pages] == [True, True]
    assert parsed.pages[0].text.lower() == "quarterly report\nrevenue grew"
    assert parsed.pages[1].text.lower() == "second scanned page"
    assert parsed.warnings == ()
    _assert_consistent(parsed)


def test_with_ocr_off_scans_are_left_empty_with_a_warning(tmp_path: Path) -> None:
    path = make.make_image_pdf(tmp_path / "a.pdf", [make.text_image(["Scanned"])] * 3)

    parsed = pdf_parse(path=path, ocr=False)

    assert [(p.text, p.ocr) for p in parsed.pages] == [("", False)] * 3
    assert (
        parsed.warnings[0]
        == "No text layer on pages 1-3 (scanned images?); OCR is turned off, so they are left empty"
    )
    assert "No text could be read from any page" in parsed.warnings[-1]


def test_garbage_text_layer_is_replaced_by_ocr(tmp_path: Path) -> None:
    # A font without a Unicode map: the text layer says symbols while the page shows words.
    path = make.make_image_pdf(
        tmp_path / "a.pdf", [make.text_image(["Invoice total"])], invisible_text="#%&*+=<>{}[]~^|"
    )

    page = pdf_parse(path=path).pages[0]

    assert (page.text.lower(), page.ocr) == ("invoice total", True)
    assert (
        pdf_parse(path=path, ocr=False)
        .warnings[0]
        .startswith("Unreadable text on page 1 (a font without a Unicode map)")
    )


def test_garbage_text_layer_with_nothing_for_ocr_is_empty_with_a_warning(tmp_path: Path) -> None:
    path = make.make_image_pdf(tmp_path / "a.pdf", [make.text_image([])], invisible_text="#%&*+=<>{}[]~^|")

    parsed = pdf_parse(path=path)

    assert [(p.text, p.ocr) for p in parsed.pages] == [("", False)]
    assert parsed.warnings[0] == "No text found on page 1 (blank, or images OCR could not read)"


def test_scan_with_a_stamp_in_its_text_layer_is_ocrd(tmp_path: Path) -> None:
    path = make.make_image_pdf(
        tmp_path / "a.pdf", [make.text_image(["Delivery note", "Received in good order"])], invisible_text="7"
    )

    page = pdf_parse(path=path).pages[0]

    assert page.ocr
    assert "received in good order" in page.text.lower()


def test_page_where_ocr_finds_nothing_is_empty_with_a_warning(tmp_path: Path) -> None:
    parsed = pdf_parse(path=make.make_image_pdf(tmp_path / "a.pdf", [make.text_image([])]))

    assert [(p.text, p.ocr) for p in parsed.pages] == [("", False)]
    assert parsed.warnings == (
        "No text found on page 1 (blank, or images OCR could not read)",
        "No text could be read from any page: the document cannot be searched",
    )


def test_page_ocr_fails_on_is_left_empty_with_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def ocr_failing(*, image: np.ndarray) -> str:
        raise OcrFailed("OCR engine failed: ONNXRuntimeError: out of memory")

    monkeypatch.setattr(pdf_module, "image_ocr", ocr_failing)
    images = [make.text_image(["unreadable"]), make.text_image(["also unreadable"])]

    parsed = pdf_parse(path=make.make_image_pdf(tmp_path / "a.pdf", images))

    assert [(p.text, p.ocr) for p in parsed.pages] == [("", False), ("", False)]
    assert parsed.warnings[0] == "OCR failed on pages 1-2; left empty"


@pytest.mark.timeout(120)
@pytest.mark.parametrize("shape", [(3, 2000), (2000, 3)])
def test_long_thin_image_is_ocrd_in_bounded_time(shape: tuple[int, int]) -> None:
    # Unpadded, RapidOCR blew the 2000×3 strip up to 20000×5000 px and took 7 minutes.
    assert image_ocr(image=np.full(shape, 255, dtype=np.uint8)) == ""


@pytest.mark.parametrize(
    ("shape", "message"),
    [
        ((0, 0), "OCR needs a non-empty 2-D image"),
        ((2, 2, 2, 2), "OCR needs a non-empty 2-D image"),
        ((40, 40, 5), "OCR engine failed: LoadImageError"),  # five channels: the engine refuses it
    ],
)
def test_image_ocr_raises_ocr_failed_for_images_it_cannot_read(shape: tuple[int, ...], message: str) -> None:
    with pytest.raises(OcrFailed, match=message):
        image_ocr(image=np.zeros(shape, dtype=np.uint8))


def test_two_columns_are_read_column_by_column() -> None:
    left = ["Apples grow on trees", "in the orchard behind", "the old farm house"]
    right = ["Rivers flow down to", "the sea through the", "green valley below"]
    image = np.asarray(make.columns_image(left, right))

    text = image_ocr(image=image).lower()

    assert (
        text.index("apples")
        < text.index("orchard")
        < text.index("farm")
        < text.index("rivers")
        < text.index("valley")
    )


def test_huge_page_is_rendered_within_the_pixel_cap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shapes: list[tuple[int, ...]] = []

    def ocr_spy(*, image: np.ndarray) -> str:
        shapes.append(image.shape)
        return image_ocr(image=image)

    monkeypatch.setattr(pdf_module, "image_ocr", ocr_spy)
    # 200 × 100 inches: at 200 dpi that would be 800 million pixels.
    path = make.make_image_pdf(
        tmp_path / "a.pdf", [make.text_image(["Poster title"])], page_size=(14400.0, 7200.0)
    )

    page = pdf_parse(path=path).pages[0]

    assert shapes == [(1000, 2000)]
    assert page.text.lower() == "poster title"


def test_page_with_a_giant_image_is_not_rendered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def render_refused(page: pdfium.PdfPage) -> np.ndarray:
        raise AssertionError("a 400-megapixel image must not be rendered")

    monkeypatch.setattr(pdf_module, "_page_render", render_refused)

    parsed = pdf_parse(path=make.make_image_bomb_pdf(tmp_path / "a.pdf"))

    assert [(p.text, p.ocr) for p in parsed.pages] == [("", False)]
    assert parsed.warnings[0] == (
        "Did not OCR page 1 (an image over 100 megapixels, too large to render safely); left empty"
    )


@pytest.mark.parametrize(
    ("size", "scale"),
    [
        ((432, 216), 200 / 72),  # small enough for the full 200 dpi
        ((612, 792), 2000 / 792),  # US Letter: 182 dpi
        ((14400, 14400), math.sqrt(3_200_000) / 14400),  # square: the area cap binds first
        ((100000, 1), 2000 / 100000),
    ],
)
def test_render_scale_caps_side_and_area(size: tuple[float, float], scale: float) -> None:
    got = render_scale(width=size[0], height=size[1])

    assert got == pytest.approx(scale)
    assert max(size) * got <= 2000
    assert size[0] * size[1] * got**2 <= 3_200_000 * 1.0001


@pytest.mark.parametrize("size", [(0, 792), (612, -1), (float("nan"), 792), (float("inf"), 792)])
def test_render_scale_refuses_invalid_page_sizes(size: tuple[float, float]) -> None:
    with pytest.raises(ValueError, match="invalid size"):
        render_scale(width=size[0], height=size[1])


# --- every real PDF in ../shared/eval/pdfs ---------------------------------------------------------


def _manifest() -> dict[str, dict[str, str]]:
    with (EVAL_PDFS / "MANIFEST.tsv").open(encoding="utf-8") as fh:
        return {row["file"]: row for row in csv.DictReader(fh, delimiter="\t")}


def _eval_files() -> Sequence[str | None]:
    if not (EVAL_PDFS / "MANIFEST.tsv").is_file():
        return [None]
    return sorted(_manifest())


# Files whose page is the Linn brochure of linn.pdf, stored with other image encodings.
_LINN_SCANS = {"scanned/linn.pdf", "scanned/ccitt.pdf", "scanned/jbig2.pdf"}
_OCR_WORDS = {
    "good/vector.pdf": {"sample", "vector", "pdf", "testing", "ocr", "processing"},
    "good/truetype_font_nomapping.pdf": {"phone"},
    "scanned/c02-22.pdf": {"went", "along", "path", "trees", "garden"},
    "scanned/epson.pdf": {"optical", "character", "recognition", "wikipedia"},
}


@pytest.mark.eval
@pytest.mark.parametrize("name", _eval_files())
def test_real_pdf_ends_in_a_clear_state(name: str | None) -> None:
    if name is None:
        pytest.skip(f"{EVAL_PDFS} absent: real-PDF robustness tests need it")
    row = _manifest()[name]
    path = EVAL_PDFS / name
    try:
        outcome: ParsedPdf | PdfRejected = pdf_parse(path=path)
    except PdfRejected as exc:  # any other exception fails the test
        outcome = exc
    check = {"good": _check_readable, "tables": _check_readable, "scanned": _check_scanned}.get(
        row["category"]
    )
    if check is not None:
        assert isinstance(outcome, ParsedPdf), f"{name} rejected: {outcome}"
        _assert_consistent(outcome)
        check(name, row, outcome)
    elif row["category"] == "encrypted":
        _check_encrypted(name, row, outcome)
    else:
        _check_malformed(outcome)


def _check_readable(name: str, row: dict[str, str], parsed: ParsedPdf) -> None:
    assert parsed.page_count == int(row["pages_poppler"])
    text = "\n".join(p.text for p in parsed.pages)
    if name in _OCR_WORDS:  # no usable text layer: only OCR can read these
        assert _OCR_WORDS[name] <= _words(text), text
        assert all(p.ocr for p in parsed.pages)
        return
    assert parsed.warnings == ()
    assert not any(p.ocr for p in parsed.pages)
    pdftotext = row["page1_text_pdftotext_first100"].rsplit(" ", 1)[0]  # its last word may be cut
    if name != "good/kampo.pdf":  # vertical Japanese: pdfium finds only some of its characters
        assert _found_share(pdftotext, parsed.pages[0].text) >= 0.85, (pdftotext, parsed.pages[0].text[:300])
    for expected in sorted((EVAL_PDFS / name).parent.glob(Path(name).stem + ".expected*.txt")):
        page_text = parsed.pages[0].text if "page1" in expected.name else text
        assert _found_share(expected.read_text(encoding="utf-8"), page_text) >= 0.9
    if name == "good/c-object-streams.pdf":
        assert [p.text for p in parsed.pages] == [f"Potato {i}" for i in range(30)]


def _check_scanned(name: str, row: dict[str, str], parsed: ParsedPdf) -> None:
    assert parsed.page_count == int(row["pages_poppler"])
    text = "\n".join(p.text for p in parsed.pages)
    assert any(p.ocr for p in parsed.pages)
    assert all(p.text for p in parsed.pages), parsed.warnings
    if name in _LINN_SCANS:
        expected = (EVAL_PDFS / "scanned" / "linn.expected.txt").read_text(encoding="utf-8")
        assert _found_share(expected, text) >= 0.75
    elif name in _OCR_WORDS:
        assert _OCR_WORDS[name] <= _words(text)
    else:  # multipage.pdf, assembled from the other scans: its first page is c02-22
        assert _OCR_WORDS["scanned/c02-22.pdf"] <= _words(parsed.pages[0].text)


def _needs_user_password(path: Path, note: str) -> bool:
    """The independent oracle: pypdf with an empty password; for AES it needs `cryptography`,
    without which the manifest's documented user password must open the file instead."""
    try:
        reader = PdfReader(path)  # already tries the empty password when the file is encrypted
        opened = PasswordType.NOT_DECRYPTED if not reader.is_encrypted else reader.decrypt("")
        if opened != PasswordType.OWNER_PASSWORD:
            return reader.is_encrypted and opened == PasswordType.NOT_DECRYPTED
        # The empty string is its owner password (pypdf with `cryptography` says so of r6-user-password.pdf);
        # readers such as PDFium try it as the user password only, so the manifest decides, as below.
        raise DependencyError("owner password only")
    except DependencyError:
        password = re.search(r"'([^']+)'", note)
        assert password is not None, f"pypdf cannot decide and the manifest gives no password: {note}"
        with pdfium.PdfDocument(path, password=password.group(1)) as doc:
            assert len(doc) >= 1
        return True


def _check_encrypted(name: str, row: dict[str, str], outcome: ParsedPdf | PdfRejected) -> None:
    if _needs_user_password(EVAL_PDFS / name, row["note"]):
        assert isinstance(outcome, PdfRejected), f"{name} needs a password but was read"
        assert outcome.code == "encrypted"
        assert "encrypted" in str(outcome) and "password" in str(outcome)
    else:
        assert isinstance(outcome, ParsedPdf)
        assert any(p.text for p in outcome.pages)


def _check_malformed(outcome: ParsedPdf | PdfRejected) -> None:
    if isinstance(outcome, PdfRejected):
        assert outcome.code in {"corrupt", "not_pdf", "empty"}
        assert re.search(r"(upload|re-export|export)", str(outcome)), str(outcome)
    else:
        _assert_consistent(outcome)
