"""Documents without pages: sniffing by content, table rows that keep their labels, and the sections of Word,
HTML, Markdown and plain-text files (unit tests on files made here; the pipeline is in test_document_formats)."""

from __future__ import annotations

import codecs
import io
import zipfile
from pathlib import Path

import pytest

from ingestion.exceptions import DocumentRejected
from ingestion.parsers import parser_for
from ingestion.parsers.docx import DocxParser
from ingestion.parsers.html import HtmlParser
from ingestion.parsers.markdown import MarkdownParser
from ingestion.parsers.plaintext import PlainTextParser
from ingestion.parsers.sections import MAX_SECTION_CHARS
from ingestion.parsers.sniff import DOCX, XLSX, media_type_of, media_type_sniff, text_decode
from ingestion.tables_text import headers_merge, table_grid, table_row_texts
from tests import doc_factory, pdf_factory

GERMAN = "Überstunden werden mit 25 % Zuschlag vergütet. Die Kündigungsfrist beträgt drei Monate.\n"

# --- table rows -----------------------------------------------------------------------------------------


def test_each_row_carries_title_label_and_headers() -> None:
    rows = table_row_texts(
        title="Cash flow", headers=["", "2022", "2021"], rows=[["Capital expenditures", "1,749", "1,420"]]
    )
    assert rows == ["Cash flow — Capital expenditures | 2022: 1,749 | 2021: 1,420"]


def test_rows_without_title_headers_or_values_stay_readable() -> None:
    rows = table_row_texts(
        title="  ", headers=["Item"], rows=[["Investing  activities"], ["", "", ""], ["Chair", "300 EUR", ""]]
    )
    assert rows == ["Investing activities", "Chair | 300 EUR"]


def test_a_header_row_is_told_from_a_first_row_of_figures() -> None:
    assert table_grid([["Region", "2023", "2022"], ["North", "1,200", "1,100"]]) == (
        ["Region", "2023", "2022"], [["North", "1,200", "1,100"]]
    )
    assert table_grid([["North", "1,200", "1,100"], ["South", "900", "800"]])[0] == []
    assert headers_merge([["", "Year ended", "Year ended"], ["", "2022", "2021"]]) == ["", "Year ended 2022", "Year ended 2021"]


# --- sniffing by content --------------------------------------------------------------------------------


def _zip(members: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in members.items():
            archive.writestr(name, text)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"# Leave\n\nEmployees get 27 days.", "text/markdown"),
        (b"Leave\n=====\n\nEmployees get 27 days.", "text/markdown"),
        (b"See [the portal](https://intranet/x) and **do not** forget.", "text/markdown"),
        (b"Dear team,\nplease find the figures below.\n- not a list on its own", "text/plain"),
        (b"<!DOCTYPE html><html><body><p>x</p></body></html>", "text/html"),
        (b"\xef\xbb\xbf<!-- saved from url -->\n<html><head><title>x</title></head>", "text/html"),
        (codecs.BOM_UTF16_LE + GERMAN.encode("utf-16-le"), "text/plain"),
        (GERMAN.encode("utf-16-le") * 3, "text/plain"),
        (GERMAN.encode("utf-16-be") * 3, "text/plain"),
        (GERMAN.encode("cp1252") * 3, "text/plain"),
        (bytes(range(256)) * 8, "application/octet-stream"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 500, "application/x-ole-storage"),
    ],
)
def test_media_type_is_told_by_content(data: bytes, expected: str) -> None:
    assert media_type_of(head=data) == expected


def test_utf16_without_bom_and_legacy_code_pages_decode() -> None:
    for encoding in ("utf-16-le", "utf-16-be", "utf-16", "utf-8-sig", "cp1252"):
        assert GERMAN.strip() in (text_decode(data=(GERMAN * 3).encode(encoding)) or "").replace("\ufeff", "")


def test_office_archives_are_told_apart_by_their_members(tmp_path: Path) -> None:
    docx = doc_factory.make_docx(tmp_path / "a.bin", [("Leave", ["27 days."])])
    assert media_type_sniff(path=docx) == DOCX
    (tmp_path / "b.bin").write_bytes(_zip({"[Content_Types].xml": "<Types/>", "xl/workbook.xml": "<workbook/>"}))
    assert media_type_sniff(path=tmp_path / "b.bin") == XLSX
    (tmp_path / "c.bin").write_bytes(_zip({"photo.jpg": "not really"}))
    assert media_type_sniff(path=tmp_path / "c.bin") == "application/zip"


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 500, "an old Office file such as .doc, .xls or .ppt, which cannot be read: open it in Office, save it as .docx or PDF"),
        (_zip({"[Content_Types].xml": "<Types/>", "xl/workbook.xml": "<workbook/>"}), "an Excel workbook (.xlsx), which cannot be read: export the sheets to PDF"),
        (bytes(range(256)) * 8, "binary data of an unknown kind, which cannot be read: upload one of PDF, Word document (.docx)"),
    ],
)
def test_a_type_no_parser_reads_is_refused_naming_it_and_what_to_do(tmp_path: Path, data: bytes, says: str) -> None:
    (tmp_path / "upload.docx").write_bytes(data)
    with pytest.raises(DocumentRejected) as caught:
        parser_for(media_type=media_type_sniff(path=tmp_path / "upload.docx"))
    assert caught.value.code == "unsupported_type" and says in str(caught.value)


# --- Word -----------------------------------------------------------------------------------------------


def test_word_headings_make_sections_and_a_table_keeps_its_labels(tmp_path: Path) -> None:
    path = doc_factory.make_docx(
        tmp_path / "handbook.docx",
        [("", ["Welcome to Northwind."]), ("Leave", ["Employees receive 27 days of paid leave."]), ("Travel", ["Meals are paid."])],
        title="Staff handbook",
        table=("Table 1: Meal allowances", doc_factory.ALLOWANCE_HEADERS, doc_factory.ALLOWANCE_ROWS),
        header_text="CONFIDENTIAL running header",
    )
    parsed = DocxParser().parse(path=path)
    assert parsed.unit == "section"
    assert [u.title for u in parsed.units] == ["Staff handbook", "Leave", "Travel"]
    travel = parsed.units[2].text
    assert "Table 1: Meal allowances — Oslo | Breakfast: 120 NOK | Dinner: 455 NOK" in travel.splitlines()
    assert "CONFIDENTIAL" not in " ".join(u.text for u in parsed.units)


def test_a_damaged_word_file_is_rejected_as_corrupt(tmp_path: Path) -> None:
    (tmp_path / "a.docx").write_bytes(_zip({"word/document.xml": "<w:document/>"}))
    with pytest.raises(DocumentRejected) as caught:
        DocxParser().parse(path=tmp_path / "a.docx")
    assert caught.value.code == "corrupt" and "save it again" in str(caught.value)


def test_a_word_file_that_unpacks_to_too_much_is_refused_before_reading(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ingestion.parsers import docx as docx_module

    monkeypatch.setattr(docx_module, "MAX_UNPACKED_BYTES", 1000)
    path = doc_factory.make_docx(tmp_path / "a.docx", [("Leave", ["x" * 5000])])
    with pytest.raises(DocumentRejected) as caught:
        DocxParser().parse(path=path)
    assert caught.value.code == "too_large"


# --- HTML -----------------------------------------------------------------------------------------------


def test_html_keeps_content_and_headings_and_drops_the_clutter(tmp_path: Path) -> None:
    path = doc_factory.make_html(
        tmp_path / "p.html",
        "<p>Intro before any heading.</p><article><header><h1>Per diem</h1></header>"
        "<p>Trips pay a <b>daily</b> allowance.</p>"
        "<table><caption>Rates</caption><thead><tr><th>Country</th><th>2023</th><th>2024</th></tr></thead>"
        "<tbody><tr><th>Norway</th><td>450</td><td>470</td></tr><tr><td rowspan=2>France</td><td>40</td><td>42</td></tr>"
        "<tr><td colspan=2>n/a</td></tr></tbody></table></article>"
        "<h2>Hotels</h2><ul><li>Book via the portal</li><li>At most four stars</li></ul><div hidden>hidden text</div>",
        title="Travel policy",
    )
    parsed = HtmlParser().parse(path=path)
    assert [u.title for u in parsed.units] == ["Travel policy", "Per diem", "Hotels"]
    every = "\n".join(u.text for u in parsed.units)
    for clutter in ("script-text", "late script", "secret-style-rule", "Careers navigation", "intranet form", "Copyright footer", "hidden text"):
        assert clutter not in every
    assert "Trips pay a daily allowance." in parsed.units[1].text
    rows = parsed.units[1].text.splitlines()
    assert "Rates — Norway | 2023: 450 | 2024: 470" in rows and "Rates — France | 2023: 40 | 2024: 42" in rows
    assert "Rates — France | 2023: n/a" in rows  # a row label spanning two rows labels both
    assert parsed.units[2].text == "Hotels\n\nBook via the portal\n\nAt most four stars"


def test_deeply_nested_html_is_read_without_exhausting_the_stack(tmp_path: Path) -> None:
    (tmp_path / "deep.html").write_text("<html><body>" + "<div>" * 20000 + "<p>deep text</p>" + "</div>" * 20000)
    assert "deep text" in HtmlParser().parse(path=tmp_path / "deep.html").units[0].text


# --- Markdown and plain text ----------------------------------------------------------------------------


def test_markdown_headings_make_sections_and_tables_keep_labels(tmp_path: Path) -> None:
    path = doc_factory.make_text(
        tmp_path / "a.md",
        "Opening words.\n\n# Remote work\n\nUp to **3 days** a week.\n\n## Equipment\n\n"
        "| Item | Budget |\n|---|---|\n| Chair | 300 EUR |\n\n<script>alert('x')</script>\n",
    )
    parsed = MarkdownParser().parse(path=path)
    assert [u.title for u in parsed.units] == ["Start of document", "Remote work", "Equipment"]
    assert parsed.units[1].text == "Remote work\n\nUp to 3 days a week."
    assert "Equipment — Chair | Budget: 300 EUR" in parsed.units[2].text and "alert" not in parsed.units[2].text


def test_utf16_text_is_read_and_long_text_cut_into_numbered_parts(tmp_path: Path) -> None:
    paragraphs = [f"Paragraph {i}: " + "Les congés payés sont de vingt-cinq jours ouvrés. " * 10 for i in range(40)]
    path = doc_factory.make_text(tmp_path / "a.txt", "\n\n".join(paragraphs), encoding="utf-16-le")
    parsed = PlainTextParser().parse(path=path)
    parts = len(parsed.units)
    assert parts > 1 and all(len(u.text) <= MAX_SECTION_CHARS for u in parsed.units)
    assert [u.title for u in parsed.units] == [f"Text (part {i} of {parts})" for i in range(1, parts + 1)]
    assert "Les congés payés" in parsed.units[0].text and "Paragraph 39:" in parsed.units[-1].text


@pytest.mark.parametrize("parser", [DocxParser(), HtmlParser(), MarkdownParser(), PlainTextParser()])
def test_a_pdf_is_not_taken_for_another_type(tmp_path: Path, parser: object) -> None:
    pdf = pdf_factory.make_text_pdf(tmp_path / "a.txt", ["Hello"])
    with pytest.raises(DocumentRejected, match="This file is a PDF, not a"):
        parser.parse(path=pdf)  # type: ignore[attr-defined]
