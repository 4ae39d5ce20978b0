"""The school board (学校看板) for the principal and the safety lead: cases per month by
status, open support files by risk level, overdue items, and one-post-two-duties
check-ins per class. Counts only, no names. Every chart is an SVG drawn here on the
server (no JavaScript; colours as SVG presentation attributes, which the CSP allows),
with a table carrying the same figures for those who cannot see the chart."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from markupsafe import Markup, escape

from domain.bullying import STATUS_LABELS
from domain.policy import RISK_LABELS, RISK_LEVELS
from projections.case_board import case_board
from projections.pairing_board import pairing_counts
from projections.support_register import risk_counts
from projections.work_queue import KIND_LABELS, KINDS, overdue_counts
from web import i18n
from web.deps import App, PageUser, render

router = APIRouter(include_in_schema=False)

STATUS_ORDER = [*STATUS_LABELS, "erased"]
STATUS_NAMES = {**STATUS_LABELS, "erased": "已删除"}
# Every colour 3:1 or more against the white page (WCAG 2.1 1.4.11, graphical objects), and
# each status's told apart from the others' (tests/web/test_chart_colours.py measures both).
STATUS_FILL = {
    "reported": "#b54708",
    "reopened": "#7a2e0e",
    "investigating": "#1570ef",
    "awaiting_determination": "#6938ef",
    "determined": "#c11574",
    "concluded": "#0e7090",
    "intervening": "#087443",
    "following_up": "#667a0a",
    "appealed": "#d92d20",
    "closed": "#344054",
    "erased": "#7d8899",
}
RISK_FILL = {"general": "#a15c07", "key": "#dc4f0b", "high": "#b42318"}
OVERDUE_FILL = "#b42318"
PAIRING_FILL = "#1f6f5c"

LABEL_W, BAR_W, ROW_H, GAP, PAD = 110, 380, 22, 8, 40
LEGEND_PER_LINE = 4


@dataclass
class Segment:
    key: str
    name: str  # a Chinese label, translated in the template
    count: int
    fill: str
    x: float = 0.0
    width: float = 0.0
    y: float = 0.0  # legend entries only


@dataclass
class Row:
    label: str
    translate: bool  # label is a Chinese label to translate (not a month or a class name)
    segments: list[Segment]
    y: float = 0.0

    @property
    def total(self) -> int:
        return sum(s.count for s in self.segments)


@dataclass
class Chart:
    id: str
    rows: list[Row]
    legend: list[Segment] = field(default_factory=list)
    width: int = LABEL_W + BAR_W + PAD
    height: int = 0
    bar_h: int = ROW_H
    label_x: int = LABEL_W - 6
    max: int = 0


def svg(c: Chart, title: str) -> Markup:
    """A chart as inline SVG (what the template shows): one text and a rect per counted
    segment per row, the total after the bars, the legend below. Built here, not by a
    template macro: the school board draws four, and a macro's many small expressions
    were most of the page's time. Every text is escaped; labels are translated."""
    _ = i18n.gettext
    h = c.bar_h * 0.7
    out = [
        f'<svg class="chart" id="{escape(c.id)}" role="img" aria-label="{escape(title)}" '
        f'viewBox="0 0 {c.width} {c.height}" width="{c.width}" height="{c.height}" '
        f'xmlns="http://www.w3.org/2000/svg">\n  <title>{escape(title)}</title>\n'
    ]
    for r in c.rows:
        label = _(r.label) if r.translate else r.label
        out.append(
            f'  <g class="row">\n    <text x="{c.label_x}" y="{r.y + h}" text-anchor="end">{escape(label)}</text>\n'
        )
        for s in r.segments:
            if s.count:
                out.append(
                    f'    <rect class="bar" x="{s.x}" y="{r.y}" width="{s.width}" height="{c.bar_h}" '
                    f'fill="{escape(s.fill)}" data-key="{escape(s.key)}" data-count="{s.count}">'
                    f"<title>{escape(_(s.name))}：{s.count}</title></rect>\n"
                )
        end = sum(s.width for s in r.segments) + c.label_x + 6
        out.append(f'    <text x="{round(end + 4, 1)}" y="{r.y + h}">{r.total}</text>\n  </g>\n')
    if not c.rows:
        out.append(f'  <text x="10" y="18">{escape(_("暂无数据"))}</text>\n')
    for s in c.legend:
        out.append(
            f'  <rect x="{s.x}" y="{s.y}" width="12" height="12" fill="{escape(s.fill)}"></rect>\n'
            f'  <text x="{s.x + 16}" y="{s.y + 10}">{escape(_(s.name))}</text>\n'
        )
    out.append("</svg>")
    return Markup("".join(out))


def chart(chart_id: str, rows: list[Row], legend: list[Segment] | None = None) -> Chart:
    """Horizontal (stacked) bars: geometry in SVG units, scaled to the largest total."""
    top = max((r.total for r in rows), default=0)
    for i, r in enumerate(rows):
        r.y = i * (ROW_H + GAP)
        x = float(LABEL_W)
        for s in r.segments:
            s.x = round(x, 1)
            s.width = round(BAR_W * s.count / top, 1) if top else 0.0
            x += s.width
    bars = max(len(rows), 1) * (ROW_H + GAP)
    legend = legend or []
    for i, s in enumerate(legend):  # four to a line under the bars
        s.x, s.y = 10 + (i % LEGEND_PER_LINE) * 125, bars + 6 + (i // LEGEND_PER_LINE) * 20
    lines = -(-len(legend) // LEGEND_PER_LINE)
    return Chart(id=chart_id, rows=rows, legend=legend, height=bars + lines * 20 + (6 if lines else 0), max=top)


def cases_by_month(lines: list[Any]) -> tuple[Chart, list[str]]:
    counts: dict[str, Counter[str]] = {}
    for line in lines:
        month = line.opened_on.strftime("%Y-%m") if line.opened_on else "—"
        counts.setdefault(month, Counter())[line.status] += 1
    present = [s for s in STATUS_ORDER if any(c[s] for c in counts.values())]
    rows = [
        Row(month, False, [Segment(s, STATUS_NAMES[s], c[s], STATUS_FILL[s]) for s in present if c[s]])
        for month, c in sorted(counts.items())
    ]
    legend = [Segment(s, STATUS_NAMES[s], 0, STATUS_FILL[s]) for s in present]
    return chart("cases-chart", rows, legend), present


@router.get("/board")
def board(request: Request, user: PageUser, app: App) -> Response:
    school = user.actor.school_id or ""
    with app.decisions_together():  # four reads, their decisions recorded in one transaction
        lines = case_board(app, user.actor, school)
        risks = risk_counts(app, user.actor, school)
        overdue = overdue_counts(app, user.actor, school)
        pairings = pairing_counts(app, user.actor, school)
    cases_chart, statuses = cases_by_month(lines)
    risk_chart = chart(
        "risk-chart",
        [Row(RISK_LABELS[k], True, [Segment(k, RISK_LABELS[k], risks[k], RISK_FILL[k])]) for k in RISK_LEVELS],
    )
    overdue_chart = chart(
        "overdue-chart",
        [Row(KIND_LABELS[k], True, [Segment(k, KIND_LABELS[k], overdue[k], OVERDUE_FILL)]) for k in KINDS],
    )
    pairing_chart = chart(
        "pairing-chart",
        [
            Row(
                c.class_name or "—",
                False,
                [
                    Segment(c.class_name or "", "谈心逾期", c.overdue, OVERDUE_FILL),
                    Segment(c.class_name or "", "按期", c.pairings - c.overdue, PAIRING_FILL),
                ],
            )
            for c in pairings
        ],
        [Segment("overdue", "谈心逾期", 0, OVERDUE_FILL), Segment("on_time", "按期", 0, PAIRING_FILL)],
    )
    matrix = {r.label: {s.key: s.count for s in r.segments} for r in cases_chart.rows}
    return render(
        request,
        "board/board.html",
        svg=svg,
        lines=lines,
        cases_chart=cases_chart,
        statuses=statuses,
        status_names=STATUS_NAMES,
        matrix=matrix,
        risk_chart=risk_chart,
        risks=risks,
        risk_labels=RISK_LABELS,
        risk_levels=RISK_LEVELS,
        overdue_chart=overdue_chart,
        overdue=overdue,
        kinds=KINDS,
        kind_labels=KIND_LABELS,
        pairing_chart=pairing_chart,
        pairings=pairings,
        open_cases=sum(1 for x in lines if x.status not in ("closed", "erased")),
        overdue_cases=sum(1 for x in lines if x.investigation_overdue),
    )
