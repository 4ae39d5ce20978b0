"""Every CSV export's cells are safe to open in a spreadsheet (projections.csvcells)."""

from __future__ import annotations

import csv
import io

import pytest

from projections.csvcells import safe_cell, writer


@pytest.mark.parametrize(
    "text",
    ['=HYPERLINK("http://x")', "@SUM(1)", "+1+cmd|' /C calc'!A0", "-2+3", "--", "\t=1", "\r=1", "=", "-"],
)
def test_a_text_that_would_start_a_formula_gets_a_leading_quote(text: str) -> None:
    assert safe_cell(text) == "'" + text


@pytest.mark.parametrize("value", [0, 7, -3, 2.5, -0.5, "-3", "+1.5", "12", "第一中学", "a=b", " =1", "", None, True])
def test_numbers_plain_numeric_text_and_other_text_are_written_as_they_are(value: object) -> None:
    assert safe_cell(value) is value


def test_the_writer_passes_every_cell_through_it() -> None:
    out = io.StringIO()
    w = writer(out, lineterminator="\n")
    w.writerow(["@SUM(1)", -4, "ok"])
    w.writerows([["=1+1", "-4"]])
    assert list(csv.reader(io.StringIO(out.getvalue()))) == [["'@SUM(1)", "-4", "ok"], ["'=1+1", "-4"]]
