"""Tables that read on a phone: every cell labelled with its column's header, once, for
every page (base.html passes each page's content through `label_tables`).

On a narrow screen (app.css, "Tables at phone width") a table's rows become cards, one
line per cell, each line starting with its column's name (`data-label`, drawn by CSS).
CSS `display` changes make Chromium drop a table's semantics, so the table, its rows and
cells get their ARIA roles (table, row, columnheader, rowheader, cell; <thead> and <tbody>
keep their own, rowgroup): a screen reader keeps
the table and its column headers, which stay in the page, only visually hidden, while the
drawn labels are marked as decoration for it (their alternative text is empty).

The markup is the templates' own (no nested tables, one header row in <thead>, or a
first row of <th> only): a cell keeps a `data-label` or `role` it already has.
"""

from __future__ import annotations

import html
import re

from markupsafe import Markup

_TABLE = re.compile(r"<table\b[^>]*>.*?</table>", re.S | re.I)
_THEAD = re.compile(r"<thead\b[^>]*>(.*?)</thead>", re.S | re.I)
_ROW = re.compile(r"<tr\b[^>]*>.*?</tr>", re.S | re.I)
_CELL_OPEN = re.compile(r"<(td|th)\b([^>]*)>", re.I)
_HEADER_CELL = re.compile(r"<th\b([^>]*)>(.*?)</th>", re.S | re.I)
_COLSPAN = re.compile(r"""\bcolspan\s*=\s*["']?(\d+)""", re.I)
_ROWSPAN = re.compile(r"""\browspan\s*=\s*["']?(\d+)""", re.I)
_TAG = re.compile(r"<[^>]*>")
_TABLE_OPEN = re.compile(r"<table\b([^>]*)>", re.I)
_TR_OPEN = re.compile(r"<tr\b([^>]*)>", re.I)


def _span(attrs: str, which: re.Pattern[str] = _COLSPAN) -> int:
    m = which.search(attrs)
    return max(1, int(m.group(1))) if m else 1


def _text(fragment: str) -> str:
    """A header cell's words: tags dropped, entities read, white space folded."""
    return " ".join(html.unescape(_TAG.sub(" ", fragment)).split())


def _with(attrs: str, name: str, value: str) -> str:
    """`attrs` with ` name="value"` added unless it has that attribute already."""
    if re.search(rf"(?:^|\s){re.escape(name)}\s*=", attrs, re.I):
        return attrs
    return f'{attrs} {name}="{html.escape(value, quote=True)}"'


def _headers(table: str) -> tuple[list[str], str | None]:
    """The column labels (one per column, colspans repeated) and the header row's markup,
    from <thead>'s last row, or else a first row made only of <th>."""
    head = _THEAD.search(table)
    rows = _ROW.findall(head.group(1)) if head else []
    if not rows:
        first = _ROW.search(table)
        if first is None:
            return [], None
        cells = _CELL_OPEN.findall(first.group(0))
        if not cells or any(tag.lower() != "th" for tag, _attrs in cells):
            return [], None
        rows = [first.group(0)]
    # Header rows laid out on a grid (a grouped header: 期末状态 over 调查中, 已认定 …; a cell
    # spanning both rows, 学校): each column labelled by its cells from top to bottom.
    grid: dict[tuple[int, int], str] = {}
    for r, row in enumerate(rows):
        column = 0
        for attrs, inner in _HEADER_CELL.findall(row):
            while (r, column) in grid:
                column += 1
            for dr in range(_span(attrs, _ROWSPAN)):
                for dc in range(_span(attrs)):
                    grid[(r + dr, column + dc)] = _text(inner)
            column += _span(attrs)
    width = max((c for _r, c in grid), default=-1) + 1
    labels: list[str] = []
    for column in range(width):
        words: list[str] = []
        for r in range(len(rows)):
            word = grid.get((r, column), "")
            if word and word not in words:
                words.append(word)
        labels.append(" · ".join(words))
    return labels, rows[-1]


def _label_row(row: str, labels: list[str], header: bool) -> str:
    """One row: its role, and each cell's role and column label."""
    row = _TR_OPEN.sub(lambda m: f"<tr{_with(m.group(1), 'role', 'row')}>", row, count=1)
    cells = _CELL_OPEN.findall(row)
    lone = len(cells) == 1 and len(labels) > 1  # a row of one cell ("暂无数据"): no column of its own
    column = 0

    def cell(m: re.Match[str]) -> str:
        nonlocal column
        tag, attrs = m.group(1), m.group(2)
        if header:
            role = "columnheader"
        elif tag.lower() == "th":
            role = "rowheader"
        else:
            role = "cell"
        attrs = _with(attrs, "role", role)
        label = labels[column] if column < len(labels) and not lone else ""
        if label and not header:
            attrs = _with(attrs, "data-label", label)
        column += _span(m.group(2))
        return f"<{tag}{attrs}>"

    return _CELL_OPEN.sub(cell, row)


def _label_table(m: re.Match[str]) -> str:
    table = m.group(0)
    labels, header_row = _headers(table)
    table = _TABLE_OPEN.sub(lambda t: f"<table{_with(t.group(1), 'role', 'table')}>", table, count=1)
    head = _THEAD.search(table)
    if head is not None:  # <thead>'s rows are headers, every other row data
        return (
            table[: head.start()]
            + _ROW.sub(lambda r: _label_row(r.group(0), labels, header=True), head.group(0))
            + _ROW.sub(lambda r: _label_row(r.group(0), labels, header=False), table[head.end() :])
        )
    seen = 0

    def row(r: re.Match[str]) -> str:  # without <thead>: a first row of <th> only is the header
        nonlocal seen
        seen += 1
        return _label_row(r.group(0), labels, header=seen == 1 and header_row is not None)

    return _ROW.sub(row, table)


def label_tables(content: str) -> Markup:
    """`content` (a page's rendered HTML) with every table's rows and cells given their
    roles, and every data cell its column's label (`data-label`)."""
    return Markup(_TABLE.sub(_label_table, str(content)))
