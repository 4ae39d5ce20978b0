"""The cells of every CSV export, safe to open in a spreadsheet (CSV or formula injection).

A spreadsheet runs a cell that begins with `=`, `+`, `-` or `@` (or a tab or a carriage
return before one) as a formula: `=HYPERLINK("http://…")` in a staff name or a
break-glass reason would become a live link, or worse, in the supervisor's copy of the
audit trail. `safe_cell` prefixes such a cell with a single quote (OWASP's advice), which
the spreadsheet shows as text. `writer` is `csv.writer` with every cell passed through it:
every export (the audit CSV of the web and the command line, the periodic report) writes
with it, so none can forget.

Numbers are left alone: the exports write counts, sequence numbers and versions as
numbers (`int`), never as formulas, and a text that is a plain decimal number (`-3`,
`+1.5`) is a number to a spreadsheet too, not a formula, so it is kept as written.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable
from typing import Any

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
PLAIN_NUMBER = re.compile(r"[+-]?\d+(?:\.\d+)?")


def safe_cell(value: Any) -> Any:
    """The value as a spreadsheet may read it: a text that would start a formula gets a
    leading `'`; anything else (numbers included) is returned unchanged."""
    if isinstance(value, str) and value.startswith(FORMULA_START) and not PLAIN_NUMBER.fullmatch(value):
        return "'" + value
    return value


class SafeWriter:
    """A `csv.writer` whose every cell goes through `safe_cell`."""

    def __init__(self, out: Any, **fmt: Any) -> None:
        self._writer = csv.writer(out, **fmt)

    def writerow(self, row: Iterable[Any]) -> Any:
        return self._writer.writerow([safe_cell(v) for v in row])

    def writerows(self, rows: Iterable[Iterable[Any]]) -> None:
        for row in rows:
            self.writerow(row)


def writer(out: Any, **fmt: Any) -> SafeWriter:
    """`csv.writer(out, **fmt)` for an export: every cell neutralised by `safe_cell`."""
    return SafeWriter(out, **fmt)
