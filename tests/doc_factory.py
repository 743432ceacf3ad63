"""Documents without pages made in tests: Word (python-docx), web pages, Markdown and text in a given encoding."""

from __future__ import annotations

from pathlib import Path

# A table whose figures only mean something with their labels.
ALLOWANCE_HEADERS = ["City", "Breakfast", "Dinner"]
ALLOWANCE_ROWS = [["Oslo", "120 NOK", "455 NOK"], ["Lyon", "15 EUR", "38 EUR"]]


def make_docx(
    path: Path,
    sections: list[tuple[str, list[str]]],
    *,
    title: str = "",
    table: tuple[str, list[str], list[list[str]]] | None = None,
    header_text: str = "",
) -> Path:
    """A .docx: (heading, paragraphs) per section; `table` (caption, headers, rows) after the last section's text."""
    import docx

    document = docx.Document()
    document.core_properties.title = title
    if header_text:
        document.sections[0].header.paragraphs[0].text = header_text
    for heading, paragraphs in sections:
        if heading:
            document.add_heading(heading, level=1)
        for paragraph in paragraphs:
            document.add_paragraph(paragraph)
    if table is not None:
        caption, headers, rows = table
        document.add_paragraph(caption, style="Caption")
        grid = document.add_table(rows=len(rows) + 1, cols=len(headers))
        for c, header in enumerate(headers):
            grid.cell(0, c).text = header
        for r, row in enumerate(rows, start=1):
            for c, value in enumerate(row):
                grid.cell(r, c).text = value
    document.save(str(path))
    return path


def make_html(path: Path, body: str, *, title: str = "Policy") -> Path:
    """A web page with the clutter around content that a parser must drop: script, style, nav, footer, form."""
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>body {{ font-family: sans-serif; }} .secret-style-rule {{ color: red; }}</style>
<script>window.trackingSecret = "script-text-must-not-be-indexed";</script></head>
<body>
<header><nav class="menu"><a href="/">Home</a> <a href="/careers">Careers navigation link</a></nav></header>
<main>{body}</main>
<form action="/search"><label>Search the intranet form</label><input name="q"><button>Go</button></form>
<footer>Copyright footer text 2024</footer>
<script>console.log("late script text")</script>
</body></html>"""
    path.write_text(page, encoding="utf-8")
    return path


def make_text(path: Path, text: str, *, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path
