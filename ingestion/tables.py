"""Tables on PDF pages, rewritten so every number keeps its row label, its column headers and the title.

A text layer flattens a table: "Purchases of property, plant and equipment (1,577) (1,373) (1,420)" keeps
its row together, but the years sit in a header line far above, and once the page is cut into chunks
most rows lose them, and the statement's title with them. Here a table's rows become lines of cells
("label | (1,577) | (1,373) | (1,420)") in groups, and each group starts with the table's title and
its column headers ("Consolidated Statement of Cash Flows | 2018 | 2017 | 2016"), so the chunk that
holds a number also holds what it is the number of.

Two ways to find a table, both on the words and ruling lines PDFium gives (no second PDF parser: pdfminer
took 0.7-1.8 s per page of a 10-K, more than embedding the page):
- ruled tables: pdfplumber's lattice finder (`TableFinder`, "lines" strategy) on the page's thin
  ruling lines; cells take the words whose middle falls inside them.
- financial statements, which rarely have rules (zebra-shaded rows at most): a run of lines that end in
  numeric cells; columns are clusters of the numbers' right edges (figures are right-aligned), headers
  are the words above the first row that sit over a column (a header spanning two columns, such as
  "Three Months Ended", goes to both). pdfplumber's text strategies were tried on the FinanceBench
  filings and cut figures at their thousands separator ("5 | 363") and labels mid-word.

No Django. The finding and writing work on `Line`s and `Rule`s (unit-tested without a PDF);
`page_layout` reads them from a PDFium page, under the caller's PDFium lock.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c

# A cell value: 1,577  (1,577)  -12.5  3.7%  (7.1)%  $5,363  — (nil)  NM (not meaningful). Currency and percent signs that
# stand apart ("$ 5,363", "23.1 %") are joined to the number first.
_NUMBER = re.compile(r"^[$€£]?\(?[-−]?[$€£]?\d(?:[\d,]*\d)?(\.\d+)?\)?%?\)?$|^[—–-]{1,2}$|^(NM|nm|N/?A|n/?a)$")
_FIGURE = re.compile(r"\d")
_NUMERIC_LINE = re.compile(r"(?:^|\s)\(?\$?\d[\d,.]*\)?%?(?=\s|$)")
_YEAR = re.compile(r"^\(?(19|20)\d\d\)?$")
MIN_DATA_ROWS = 3  # fewer numeric rows are a sentence with figures, not a table
_HEADER_LINES = 4  # lines above the first row searched for column headers
_TITLE_LINES = 2
_TITLE_MAX_WORDS = 14
_COLUMN_GAP = 9.0  # points between right edges of two columns' figures (a digit is ~5 pt wide)
_PHRASE_GAP = 6.0  # points: wider gaps between header words separate columns' headers
_GROUP_CHARS = 420  # rows per group: about 170 embedding tokens of figures, under one chunk (240)
_SKIP_TITLES = frozenset({"table of contents", "index"})
_RULE_MAX_THICKNESS = 2.0  # points: thicker filled shapes are shading, not rules
_RULE_MIN_LENGTH = 5.0


@dataclass(frozen=True)
class Word:
    text: str
    x0: float  # left, points from the page's left edge
    x1: float  # right


@dataclass(frozen=True)
class Line:
    """One line of the text layer, in reading order, with its words' horizontal extents."""

    words: tuple[Word, ...]
    top: float  # points from the page's top edge
    bottom: float

    @property
    def text(self) -> str:
        return " ".join(w.text for w in self.words)


@dataclass(frozen=True)
class Rule:
    """A thin drawn line (a table rule), in points from the page's top-left corner."""

    x0: float
    top: float
    x1: float
    bottom: float


@dataclass(frozen=True)
class Table:
    first_line: int  # index of the first line it replaces (title lines stay where they are)
    last_line: int  # index of the last line it replaces
    title: str
    headers: tuple[str, ...]  # one per value column
    rows: tuple[tuple[str, tuple[str, ...]], ...]  # (label, values; '' where a row has no value)


def page_may_hold_table(*, text: str) -> bool:
    """Cheap pre-check on a page's text layer: at least MIN_DATA_ROWS lines with two or more figures.

    Only pages that pass pay for word positions and table finding. Prose with a year or an amount per
    line seldom has two on each of three lines.
    """
    count = 0
    for line in text.splitlines():
        if len(_NUMERIC_LINE.findall(line)) >= 2:
            count += 1
            if count >= MIN_DATA_ROWS:
                return True
    return False


def _cells(words: Sequence[Word]) -> tuple[list[Word], list[Word]]:
    """(label words, value cells) of a line: the trailing run of figures, signs joined to them."""
    merged: list[Word] = []
    for word in words:
        prev = merged[-1] if merged else None
        if prev is not None and prev.text in {"$", "€", "£", "(", "($"} and _NUMBER.match(prev.text + word.text):
            merged[-1] = Word(prev.text + word.text, prev.x0, word.x1)
        elif prev is not None and word.text in {"%", ")%", ")"} and _NUMBER.match(prev.text + word.text):
            merged[-1] = Word(prev.text + word.text, prev.x0, word.x1)
        else:
            merged.append(word)
    cut = len(merged)
    while cut > 0 and _NUMBER.match(merged[cut - 1].text):
        cut -= 1
    return merged[:cut], merged[cut:]


def _columns(rights: list[float], *, min_members: int) -> list[float]:
    """Column positions: clusters of the figures' right edges with enough members, left to right.

    A figure inside a label ("allowances of $95 and $103", "(Note 16)") sits where no column is.
    """
    clusters: list[list[float]] = []
    for x in sorted(rights):
        if clusters and x - clusters[-1][-1] <= _COLUMN_GAP:
            clusters[-1].append(x)
        else:
            clusters.append([x])
    return [sum(c) / len(c) for c in clusters if len(c) >= min_members]


def _nearest(columns: list[float], x: float) -> int:
    return min(range(len(columns)), key=lambda i: abs(columns[i] - x))


def _is_row(line: Line, *, strong: bool = False) -> bool:
    """A line of figures; strong: two or more, not all years (a header such as '2018 2017 2016')."""
    label, values = _cells(line.words)
    if strong:
        return len(values) >= 2 and not all(_YEAR.match(v.text) for v in values)
    return bool(values) and (len(values) >= 2 or bool(label))


def _runs(lines: Sequence[Line]) -> list[tuple[int, int]]:
    """(first, last) line indexes of runs of numeric rows; label-only lines between rows stay in."""
    runs: list[tuple[int, int]] = []
    start = end = -1
    rows = 0
    for i, line in enumerate(lines):
        if _is_row(line, strong=True) or (start >= 0 and _is_row(line)):
            if start < 0:
                start, rows = i, 0
            end, rows = i, rows + 1
        elif start >= 0 and (i - end > 2 or len(line.words) > 25):
            if rows >= MIN_DATA_ROWS:
                runs.append((start, end))
            start = -1
    if start >= 0 and rows >= MIN_DATA_ROWS:
        runs.append((start, end))
    return runs


def _over(word: Word, span: tuple[float, float]) -> bool:
    return word.x0 <= span[1] + 2 and word.x1 >= span[0] - 2


def _headers(
    lines: Sequence[Line], first: int, spans: list[tuple[float, float]], floor: int
) -> tuple[list[str], str, int, int]:
    """Column headers from the lines above the first row: per column, the words over it (top to bottom);
    the words of those lines left of the columns ('Years Ended December 31,'); the index of the top
    header line; and of the first body line (section labels such as 'Assets' between headers and rows)."""
    left_edge = min(a for a, _ in spans) - 12
    top = body = first
    found = False
    for i in range(first - 1, max(floor, first - _HEADER_LINES - 2) - 1, -1):
        words = lines[i].words
        over = [w for w in words if w.x1 > left_edge and any(_over(w, s) for s in spans)]
        if not over and not found and first - i <= 2 and 0 < len(words) <= _TITLE_MAX_WORDS:
            body = top = i  # a section label just above the rows: part of the body
            continue
        if not over or _is_row(lines[i], strong=True) or len(words) > 3 * len(spans) + 4 or lines[i].text.endswith("."):
            break  # not a header: a sentence, or the rows of a table above
        top, found = i, True
    parts: list[list[str]] = [[] for _ in spans]
    aside: list[str] = []
    for i in range(top, body):
        for phrase in _phrases(lines[i].words):
            hit = [c for c, span in enumerate(spans) if phrase.x1 > left_edge and _over(phrase, span)]
            for c in hit:
                parts[c].append(phrase.text)
            if not hit:
                aside.append(phrase.text)
    return [" ".join(p) for p in parts], " ".join(aside), top, body


def _phrases(words: Sequence[Word]) -> list[Word]:
    """Words a plain space apart joined: 'Three Months Ended' centred over two columns is one header."""
    out: list[Word] = []
    for word in words:
        if out and word.x0 - out[-1].x1 <= _PHRASE_GAP:
            out[-1] = Word(f"{out[-1].text} {word.text}", out[-1].x0, word.x1)
        else:
            out.append(word)
    return out


def _title(lines: Sequence[Line], above: int, floor: int) -> str:
    """The short lines just above the table (its heading), skipping running heads."""
    picked: list[str] = []
    for i in range(above - 1, max(floor, above - _TITLE_LINES - 2) - 1, -1):
        text = lines[i].text.strip()
        if not text or _is_row(lines[i], strong=True) or len(text.split()) > _TITLE_MAX_WORDS or text.endswith("."):
            break
        if text.lower() in _SKIP_TITLES:
            continue
        picked.insert(0, text)
        if len(picked) == _TITLE_LINES:
            break
    return " ".join(picked)


def _assign(values: list[Word], columns: list[float]) -> tuple[list[Word], list[str]]:
    """(figures that belong to no column, which go back to the label; the cells per column)."""
    cells = [""] * len(columns)
    keep = len(values)
    for k in range(len(values) - 1, -1, -1):
        c = _nearest(columns, values[k].x1)
        if abs(columns[c] - values[k].x1) > 2 * _COLUMN_GAP:
            break
        keep = k
    for v in values[keep:]:
        c = _nearest(columns, v.x1)
        cells[c] = f"{cells[c]} {v.text}".strip()
    return values[:keep], cells


def _numeric_table(lines: Sequence[Line], first: int, last: int, floor: int) -> Table | None:
    split = [_cells(line.words) for line in lines[first : last + 1]]
    strong = sum(1 for i in range(first, last + 1) if _is_row(lines[i], strong=True))
    columns = _columns([v.x1 for _, values in split for v in values], min_members=max(2, strong // 4))
    if not columns:
        return None
    spans = [(x, x) for x in columns]
    for _, values in split:
        for v in values:
            c = _nearest(columns, v.x1)
            if abs(columns[c] - v.x1) <= 2 * _COLUMN_GAP:
                spans[c] = (min(spans[c][0], v.x0), max(spans[c][1], v.x1))
    headers, aside, header_top, body = _headers(lines, first, spans, floor)
    split = [_cells(line.words) for line in lines[body:first]] + split
    rows: list[tuple[str, tuple[str, ...]]] = []
    pending = ""  # a label wrapped onto the next line, whose figures come with its last part
    for label_words, values in split:
        stray, cells = _assign(values, columns)
        label = " ".join(w.text for w in [*label_words, *stray])
        if not any(cells):
            pending = f"{pending} {label}".strip()
            continue
        if pending and not label:
            label, pending = pending, ""
        elif pending:
            rows.append((pending, ()))
            pending = ""
        rows.append((label, tuple(cells)))
    if pending:
        rows.append((pending, ()))
    if sum(1 for _, v in rows if v) < MIN_DATA_ROWS:
        return None
    title = " ".join(t for t in (_title(lines, header_top, floor), aside) if t)
    return Table(header_top, last, title, tuple(headers), tuple(rows))


def _ruled_tables(lines: Sequence[Line], rules: Sequence[Rule], width: float, height: float) -> list[Table]:
    """Tables drawn with rules, found by pdfplumber's lattice finder; cells filled with the words inside."""
    if len(rules) < 4:
        return []
    from pdfplumber.table import TableFinder

    edges: list[dict[str, Any]] = []
    for r in rules:
        horizontal = (r.x1 - r.x0) >= (r.bottom - r.top)
        y = (r.top + r.bottom) / 2
        x = (r.x0 + r.x1) / 2
        edge = (
            {"x0": r.x0, "x1": r.x1, "top": y, "bottom": y, "width": r.x1 - r.x0, "height": 0.0, "orientation": "h"}
            if horizontal
            else {"x0": x, "x1": x, "top": r.top, "bottom": r.bottom, "width": 0.0, "height": r.bottom - r.top, "orientation": "v"}
        )
        edges.append({**edge, "object_type": "line"})

    class _Page:  # what TableFinder reads of a pdfplumber page
        bbox = (0.0, 0.0, width, height)

    page = _Page()
    page.edges = edges  # type: ignore[attr-defined]
    found = TableFinder(page, {"vertical_strategy": "lines", "horizontal_strategy": "lines"}).tables  # type: ignore[arg-type]
    out: list[Table] = []
    for table in found:
        x0, top, x1, bottom = table.bbox
        inside = [i for i, line in enumerate(lines) if top - 1 <= (line.top + line.bottom) / 2 <= bottom + 1]
        if not inside:
            continue
        grid: list[list[str]] = []
        for row in table.rows:
            cells = []
            for cell in row.cells:
                if cell is None:
                    cells.append("")
                    continue
                cx0, ctop, cx1, cbottom = cell
                words = [
                    w.text
                    for i in inside
                    for w in lines[i].words
                    if ctop <= (lines[i].top + lines[i].bottom) / 2 <= cbottom and cx0 <= (w.x0 + w.x1) / 2 <= cx1
                ]
                cells.append(" ".join(words))
            if any(cells):
                grid.append(cells)
        if len(grid) < 2 or len(grid[0]) < 2:
            continue
        header, body = grid[0], grid[1:]
        title = _title(lines, inside[0], 0)
        out.append(Table(inside[0], inside[-1], title, tuple(header[1:]), tuple((r[0], tuple(r[1:])) for r in body)))
    return out


def tables_find(*, lines: Sequence[Line], rules: Sequence[Rule] = (), width: float = 612.0, height: float = 792.0) -> list[Table]:
    """The page's tables, in reading order, not overlapping: ruled ones first, then numeric runs."""
    found = _ruled_tables(lines, rules, width, height)
    taken = {i for t in found for i in range(t.first_line, t.last_line + 1)}
    floor = 0
    for first, last in _runs(lines):
        if any(i in taken for i in range(first, last + 1)):
            continue
        table = _numeric_table(lines, first, last, floor)
        if table is not None and not any(i in taken for i in range(table.first_line, table.last_line + 1)):
            found.append(table)
            taken.update(range(table.first_line, table.last_line + 1))
            floor = last + 1
    return sorted(found, key=lambda t: t.first_line)


def table_text(table: Table) -> str:
    """The table as groups of rows, each group led by the title and column headers; blank lines between.

    'Consolidated Statement of Cash Flows | 2018 | 2017 | 2016' then 'Purchases of PP&E | (1,577) (1,373)
    (1,420)': a chunk cut at a group boundary still says what each figure is. Values are set apart by
    spaces, an empty cell by '-': a bar between every value cost 3.5% more tokens to embed on 10-Qs.
    """
    heading = " | ".join([table.title or "Table", *table.headers]) if any(table.headers) else table.title
    groups: list[list[str]] = [[]]
    size = 0
    for label, values in table.rows:
        row = f"{label} | {' '.join(v or '-' for v in values)}" if values else label
        if groups[-1] and size + len(row) > _GROUP_CHARS:
            groups.append([])
            size = 0
        groups[-1].append(row)
        size += len(row) + 1
    return "\n\n".join("\n".join([heading, *rows]) if heading else "\n".join(rows) for rows in groups)


def text_with_tables(*, text: str, lines: Sequence[str], tables: Sequence[Table], newline: str = "\r\n") -> str:
    """`text` (the page's `lines` joined by `newline`, with blank lines added between paragraphs) with
    each table's lines replaced by its `table_text`, set apart by blank lines."""
    if not tables:
        return text
    pieces = text.split(newline)
    owner: dict[int, Table] = {}  # piece index -> the table whose line it is
    p = 0
    for j, line in enumerate(lines):
        while p < len(pieces) and pieces[p] != line:
            p += 1  # a blank line added between paragraphs
        if p == len(pieces):
            return text  # not the text of these lines: leave it as it is
        for table in tables:
            if table.first_line <= j <= table.last_line:
                owner[p] = table
        p += 1
    out: list[str] = []
    written: set[int] = set()
    for i, piece in enumerate(pieces):
        held = owner.get(i)
        if held is None:
            out.append(piece)
        elif held.first_line not in written:
            written.add(held.first_line)
            out.extend(["", table_text(held), ""])
    return newline.join(out)


def page_layout(page: pdfium.PdfPage, textpage: pdfium.PdfTextPage, raw: str) -> tuple[list[Line], list[Rule]]:
    """The lines of `raw` (textpage.get_text_range(), lines split at CRLF) with word extents, and the
    page's thin drawn lines. Call under the PDFium lock."""
    height = page.get_height()
    left, right, bottom, top = (pdfium_c.c_double() for _ in range(4))

    def box(text_index: int) -> tuple[float, float, float, float] | None:
        index = pdfium_c.FPDFText_GetCharIndexFromTextIndex(textpage.raw, text_index)
        if index < 0 or not pdfium_c.FPDFText_GetCharBox(textpage.raw, index, left, right, bottom, top):
            return None
        return left.value, right.value, height - top.value, height - bottom.value

    texts = raw.split("\r\n")
    # Positions are read (two PDFium calls a word) only where a table can be: lines with a figure and
    # the few above them (headers, titles); other lines keep their words at x = 0, as text only.
    figures = [i for i, text in enumerate(texts) if _FIGURE.search(text)]
    wanted = {j for i in figures for j in range(max(0, i - _HEADER_LINES - _TITLE_LINES), i + 1)}
    lines: list[Line] = []
    offset = 0
    for i, text in enumerate(texts):
        words: list[Word] = []
        y0, y1 = float("inf"), float("-inf")
        for match in re.finditer(r"\S+", text):
            if i not in wanted:
                words.append(Word(match.group(), 0.0, 0.0))
                continue
            first, last = box(offset + match.start()), box(offset + match.end() - 1)
            if first is None or last is None:
                continue
            words.append(Word(match.group(), first[0], last[1]))
            y0, y1 = min(y0, first[2], last[2]), max(y1, first[3], last[3])
        lines.append(Line(tuple(words), y0 if y0 <= y1 else 0.0, y1 if y0 <= y1 else 0.0))
        offset += len(text) + 2
    return lines, _rules(page, height)


def _rules(page: pdfium.PdfPage, height: float) -> list[Rule]:
    rules: list[Rule] = []
    left, bottom, right, top = (pdfium_c.c_float() for _ in range(4))
    for i in range(pdfium_c.FPDFPage_CountObjects(page.raw)):
        obj = pdfium_c.FPDFPage_GetObject(page.raw, i)
        if pdfium_c.FPDFPageObj_GetType(obj) != pdfium_c.FPDF_PAGEOBJ_PATH:
            continue
        if not pdfium_c.FPDFPageObj_GetBounds(obj, left, bottom, right, top):
            continue
        w, h = right.value - left.value, top.value - bottom.value
        if min(w, h) <= _RULE_MAX_THICKNESS and max(w, h) >= _RULE_MIN_LENGTH:
            rules.append(Rule(left.value, height - top.value, right.value, height - bottom.value))
    return rules

