"""Tables as row texts that keep their labels, whatever file the table came from (Word, HTML, PDF).

A number alone ("1,749") answers nothing; "Cash flow — Capital expenditures | 2022: 1,749" does. Each row
becomes one line that carries the table's title, the row's label (its first cell) and each value's column
header, so however a chunker cuts between lines, a chunk holding a value also holds what it means.
Pure: no parser, no Django.

PDF tables found on a page (ingestion.tables) are written differently on purpose: a financial statement
has several figure columns on every row and dozens of rows, so it is written as groups of rows each led
by one line with the title and the column headers ('Cash flows | 2018 | 2017' then 'Purchases of PP&E |
(1,577) (1,373)'), a group smaller than a chunk; repeating every header beside every figure would make
the filings' chunks markedly longer for the embedder. Tables of Word files and web pages are mostly
words in few columns, where the header beside each value reads best.
"""

from __future__ import annotations

from collections.abc import Sequence


def table_row_texts(*, title: str, headers: list[str], rows: list[list[str]]) -> list[str]:
    """One line per row with a value: '<title> — <row label> | <header>: <value> | <header>: <value>'.

    `headers` name the columns, the row label's column first (its header is not repeated on every row);
    `rows` are the body rows, their first cell the label. A cell without a header is given bare, an
    empty cell is left out, and a row of one cell (a sub-heading inside the table, such as "Investing
    activities") is kept as its label alone. Whitespace inside cells is collapsed to single spaces.
    """
    title = _clean(title)
    heads = [_clean(h) for h in headers]
    lines: list[str] = []
    for row in rows:
        cells = [_clean(c) for c in row]
        if not any(cells):
            continue
        label, values = cells[0], cells[1:]
        parts = [label] if label else []
        for index, value in enumerate(values, start=1):
            if not value:
                continue
            header = heads[index] if index < len(heads) else ""
            parts.append(f"{header}: {value}" if header else value)
        line = " | ".join(parts)
        lines.append(f"{title} — {line}" if title else line)
    return lines


def table_grid(rows: Sequence[Sequence[str]]) -> tuple[list[str], list[list[str]]]:
    """(headers, body) of a table given as rows of cells, when nothing marks its header rows.

    The first row is the header when the table has more than one row and that row holds no number
    beyond its first cell (years such as "2022" count as headers: they name columns far more often than
    they are values of a first row).
    """
    grid = [[_clean(c) for c in row] for row in rows]
    grid = [row for row in grid if any(row)]
    if len(grid) < 2:
        return [], grid
    first = grid[0]
    if all(not _is_value(cell) for cell in first[1:]):
        return first, grid[1:]
    return [], grid


def headers_merge(rows: Sequence[Sequence[str]]) -> list[str]:
    """One header per column from several header rows ("Year ended" over "2022" → "Year ended 2022")."""
    width = max((len(r) for r in rows), default=0)
    merged: list[str] = []
    for column in range(width):
        parts: list[str] = []
        for row in rows:
            cell = _clean(row[column]) if column < len(row) else ""
            if cell and (not parts or parts[-1] != cell):
                parts.append(cell)
        merged.append(" ".join(parts))
    return merged


def _is_value(cell: str) -> bool:
    digits = sum(ch.isdigit() for ch in cell)
    if not digits:
        return False
    stripped = cell.strip()
    is_year = len(stripped) == 4 and stripped.isdigit() and stripped[:2] in ("19", "20")
    return not is_year and digits * 2 >= len(stripped.replace(" ", ""))


def _clean(cell: str) -> str:
    return " ".join(str(cell).split())
