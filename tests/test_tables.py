"""Tables keep their labels: unit tests of ingestion.tables on hand-made lines, and the real pipeline on a
PDF with a ruled table (parse → chunk → embed → index → search)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from ingestion.tables import Line, Rule, Word, page_may_hold_table, table_text, tables_find, text_with_tables

COLUMNS = (330.0, 400.0, 470.0)  # right edges of the figures


def _line(label: str, values: list[str] = (), *, y: float) -> Line:  # type: ignore[assignment]
    words = []
    x = 60.0
    for text in label.split():
        words.append(Word(text, x, x + 5 * len(text)))
        x += 5 * len(text) + 3
    for right, text in zip(COLUMNS[len(COLUMNS) - len(values):], values, strict=True):
        words.append(Word(text, right - 5 * len(text), right))
    return Line(tuple(words), y, y + 9)


def _cash_flow() -> list[Line]:
    rows = [
        ("Net income", ["5,363", "4,869", "5,058"]),
        ("Depreciation and amortization", ["1,488", "1,544", "1,474"]),
        ("Cash Flows from Investing Activities", []),
        ("Purchases of property, plant and equipment (PP&E)", ["(1,577)", "(1,373)", "(1,420)"]),
        ("Proceeds from sale of PP&E", ["262", "49", "58"]),
        ("Net cash used in investing activities", ["222", "(3,086)", "(1,403)"]),
    ]
    lines = [
        _line("Table of Contents", y=20),
        _line("Consolidated Statement of Cash Flows", y=40),
        _line("(Millions)", ["2018", "2017", "2016"], y=60),
        _line("Cash Flows from Operating Activities", y=75),
    ]
    lines += [_line(label, values, y=90 + 12 * i) for i, (label, values) in enumerate(rows)]
    lines.append(_line("The accompanying notes are an integral part of this statement.", y=200))
    return lines


def test_precheck_passes_rows_of_figures_and_not_prose() -> None:
    assert page_may_hold_table(text="\n".join(line.text for line in _cash_flow()))
    prose = "In 2022 revenue grew by 4% to $1,200 million.\nWe opened 12 stores.\nThe board met in 2021 and 2022."
    assert not page_may_hold_table(text=prose)


def test_numeric_table_rows_carry_label_headers_and_title() -> None:
    lines = _cash_flow()
    (table,) = tables_find(lines=lines)
    assert table.title == "Consolidated Statement of Cash Flows (Millions)"
    assert table.headers == ("2018", "2017", "2016")
    assert ("Purchases of property, plant and equipment (PP&E)", ("(1,577)", "(1,373)", "(1,420)")) in table.rows
    # The section label opens the body; the footnote sentence below the last row stays outside.
    assert table.rows[0] == ("Cash Flows from Operating Activities", ())
    assert lines[table.last_line].text.startswith("Net cash used")
    text = table_text(table)
    assert "Purchases of property, plant and equipment (PP&E) | (1,577) (1,373) (1,420)" in text
    assert text.startswith("Consolidated Statement of Cash Flows (Millions) | 2018 | 2017 | 2016\n")


def test_every_group_of_rows_starts_with_the_heading() -> None:
    rows = [(f"Line item number {i} with a long descriptive label", [f"{i},000", f"{i},100", f"{i},200"]) for i in range(40)]
    lines = [_line("Segment results", y=10), _line("", ["2023", "2022", "2021"], y=25)]
    lines += [_line(label, values, y=40 + 12 * i) for i, (label, values) in enumerate(rows)]
    (table,) = tables_find(lines=lines)
    groups = table_text(table).split("\n\n")
    assert len(groups) > 3
    assert all(g.startswith("Segment results | 2023 | 2022 | 2021\n") for g in groups)
    assert all(len(g) < 600 for g in groups)  # each fits in one chunk of 240 embedding tokens


def test_a_header_spanning_columns_goes_to_each_and_a_figure_inside_a_label_stays_in_it() -> None:
    lines = [
        Line((Word("Three", 375, 400), Word("Months", 403, 435), Word("Ended", 438, 465)), 10, 19),
        Line((Word("2023", 380, 400), Word("2022", 450, 470)), 22, 31),
        _line("Accounts receivable, net of allowances of $95", ["5,020", "4,911"], y=40),
        _line("Inventories", ["4,366", "4,034"], y=52),
        _line("Prepaids", ["741", "937"], y=64),
    ]
    (table,) = tables_find(lines=lines)
    assert table.headers == ("Three Months Ended 2023", "Three Months Ended 2022")
    assert table.rows[0] == ("Accounts receivable, net of allowances of $95", ("5,020", "4,911"))


def test_signs_apart_from_figures_are_joined_and_nil_cells_kept() -> None:
    words = (Word("Revenue", 60, 100), Word("$", 280, 285), Word("8,890", 300, 330), Word("—", 390, 400),
             Word("23.1", 450, 465), Word("%", 466, 470))
    lines = [Line(words, 10 + 12 * i, 19 + 12 * i) for i in range(3)]
    (table,) = tables_find(lines=lines)
    assert table.rows[0] == ("Revenue", ("$8,890", "—", "23.1%"))


def test_ruled_table_found_by_its_grid() -> None:
    xs, ys = (50.0, 200.0, 300.0, 400.0), (100.0, 120.0, 140.0, 160.0)
    rules = [Rule(xs[0], y, xs[-1], y) for y in ys] + [Rule(x, ys[0], x, ys[-1]) for x in xs]
    cells = [["Leave type", "Days", "Paid"], ["Annual", "27", "yes"], ["Parental", "120", "yes"]]
    lines = [Line((Word("Leave", 10, 40), Word("summary", 42, 80)), 80, 90)]
    for r, row in enumerate(cells):
        words = tuple(Word(text, xs[c] + 5, xs[c] + 5 + 6 * len(text)) for c, text in enumerate(row))
        lines.append(Line(words, ys[r] + 5, ys[r] + 14))
    (table,) = tables_find(lines=lines, rules=rules)
    assert table.title == "Leave summary"
    assert table.headers == ("Days", "Paid")
    assert table.rows == (("Annual", ("27", "yes")), ("Parental", ("120", "yes")))
    assert (table.first_line, table.last_line) == (1, 3)


def test_text_with_tables_replaces_the_table_lines_only() -> None:
    lines = _cash_flow()
    raw = [line.text for line in lines]
    (table,) = tables_find(lines=lines)
    marked = "\r\n".join(raw[:2]) + "\r\n\r\n" + "\r\n".join(raw[2:])  # a paragraph break added before the header
    out = text_with_tables(text=marked, lines=raw, tables=[table])
    assert out.startswith("Table of Contents\r\nConsolidated Statement of Cash Flows\r\n")
    assert out.count("(1,577)") == 1 and "| (1,577) (1,373)" in out
    assert out.rstrip().endswith("integral part of this statement.")
    assert text_with_tables(text="something else", lines=raw, tables=[table]) == "something else"


ROWS = [
    ["Net cash from operating activities", "5,120", "4,870", "4,410"],
    ["Capital expenditures", "1,749", "1,577", "1,420"],
    ["Dividends paid to shareholders", "610", "590", "560"],
    ["Repurchases of common stock", "1,200", "900", "300"],
    ["Proceeds from long-term borrowings", "2,000", "1,500", "800"],
]
PROSE = (
    "Northwind Pumps designs centrifugal pumps for municipal water systems and sells them through regional "
    "distributors. The company expects demand to grow with infrastructure programmes in the coming years. "
) * 4


@pytest.mark.slow
@pytest.mark.django_db
def test_ruled_table_chunk_keeps_label_and_header_and_search_finds_its_page(tmp_path: Path) -> None:
    from django.core.files import File

    from ingestion.models import Chunk, Collection, Document
    from ingestion.services import document_ingest
    from retrieval.services import chunks_search
    from tests.pdf_factory import make_ruled_table_pdf

    pdf = make_ruled_table_pdf(
        tmp_path / "annual.pdf", title="Selected cash flow data (in millions)", header=["", "2022", "2021", "2020"],
        rows=ROWS, before=[PROSE], after=["Capital spending plans for the next years are described here. " + PROSE],
    )
    collection = Collection.objects.create(name="Tables", slug="tables")
    data = pdf.read_bytes()
    document = Document(collection=collection, original_name="annual.pdf", sha256=hashlib.sha256(data).hexdigest(), size=len(data))
    with pdf.open("rb") as fh:
        document.file.save("annual.pdf", File(fh), save=True)
    assert document_ingest(document_id=document.id).status == Document.Status.READY

    (chunk,) = [c for c in Chunk.objects.filter(document=document) if "1,749" in c.text]
    assert chunk.page_start == 2
    line = next(x for x in chunk.text.splitlines() if "1,749" in x)
    assert line.startswith("Capital expenditures | 1,749 1,577 1,420")
    assert "2022 | 2021 | 2020" in chunk.text and "Selected cash flow data" in chunk.text

    passages = chunks_search(collection_id=collection.id, query="Capital expenditures 2022", k=3)
    assert passages[0].page_start == 2 and "1,749" in passages[0].text
