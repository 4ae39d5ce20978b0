"""The school board's chart colours (web/routes/board.py) against the white page: each at
least 3:1 (WCAG 2.1 1.4.11, non-text contrast, by WCAG's relative luminance), and the
colours of one chart told apart (CIE76 colour difference)."""

from __future__ import annotations

import itertools

import pytest

from web.routes.board import OVERDUE_FILL, PAIRING_FILL, RISK_FILL, STATUS_FILL

WHITE = "#ffffff"


def _linear(channel: int) -> float:
    c = channel / 255
    return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4


def _rgb(colour: str) -> tuple[int, int, int]:
    assert len(colour) == 7 and colour.startswith("#"), colour
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)


def luminance(colour: str) -> float:
    r, g, b = (_linear(c) for c in _rgb(colour))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: str, b: str) -> float:
    hi, lo = sorted((luminance(a), luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def lab(colour: str) -> tuple[float, float, float]:
    r, g, b = (_linear(c) for c in _rgb(colour))
    x = (0.4124 * r + 0.3576 * g + 0.1805 * b) / 0.95047
    y = 0.2126 * r + 0.7152 * g + 0.0722 * b
    z = (0.0193 * r + 0.1192 * g + 0.9505 * b) / 1.08883

    def f(t: float) -> float:
        return t ** (1 / 3) if t > 0.008856 else 7.787 * t + 16 / 116

    return 116 * f(y) - 16, 500 * (f(x) - f(y)), 200 * (f(y) - f(z))


def difference(a: str, b: str) -> float:
    return float(sum((p - q) ** 2 for p, q in zip(lab(a), lab(b), strict=True)) ** 0.5)


def test_the_measures_are_wcags() -> None:
    assert contrast("#000000", WHITE) == pytest.approx(21.0)
    assert contrast("#767676", WHITE) == pytest.approx(4.54, abs=0.01)  # the well-known 4.5:1 grey
    assert contrast("#959595", WHITE) < 3 < contrast("#949494", WHITE) + 0.1


ALL = {**{f"status {k}": v for k, v in STATUS_FILL.items()}, **{f"risk {k}": v for k, v in RISK_FILL.items()}}
ALL |= {"overdue": OVERDUE_FILL, "pairings": PAIRING_FILL}


@pytest.mark.parametrize("name", sorted(ALL))
def test_every_chart_colour_has_3_to_1_against_white(name: str) -> None:
    ratio = contrast(ALL[name], WHITE)
    assert ratio >= 3.0, f"{name} {ALL[name]}: {ratio:.2f}:1 against white"


@pytest.mark.parametrize("palette", [STATUS_FILL, RISK_FILL], ids=["statuses", "risk levels"])
def test_the_colours_of_one_chart_are_told_apart(palette: dict[str, str]) -> None:
    for (a, ca), (b, cb) in itertools.combinations(palette.items(), 2):
        assert difference(ca, cb) >= 20, f"{a} {ca} and {b} {cb} look alike"
