"""The supervisor's district dashboard (全区概况, counts without names) and the periodic
report (定期报送) on screen, as CSV and printable. Every figure comes from
projections.report.periodic_report, which passes the gate (STATS_READ) and records
the report in the audit trail; a CSV download is recorded as an export too."""

from __future__ import annotations

import copy
from datetime import date

from fastapi import APIRouter, Request
from fastapi.responses import Response
from markupsafe import Markup

from anxin import audit
from anxin.service import Anxin
from domain import access
from domain.access import Resource
from domain.bullying import SEVERITIES, STATUS_LABELS
from domain.common import DomainError, InvalidInput
from domain.policy import RISK_LABELS, RISK_LEVELS
from projections.report import periodic_report, report_csv
from projections.report.model import Report, SchoolReport
from web import i18n
from web.deps import App, PageUser, User, for_error_page, get_web, render
from web.forms import day_or
from web.routes.board import (
    BAR_W,
    GAP,
    LABEL_W,
    OVERDUE_FILL,
    PAD,
    PAIRING_FILL,
    RISK_FILL,
    ROW_H,
    STATUS_FILL,
    Chart,
    Row,
    Segment,
    chart,
    svg,
)

router = APIRouter(include_in_schema=False)


def label(text: str) -> str:
    """A report label in the reader's language: the labels are built from templates
    (期末状态：{status}), which the catalogue holds."""
    lang = i18n.current.get()
    return text if lang == i18n.DEFAULT else (i18n.lookup(text, lang) or text)


def column(text: str) -> str:
    """A column's own label under its group's header: "期末状态：调查中" under 期末状态 is
    调查中 (the prefix said once, in the grouped header, not on every column)."""
    return label(text.split("：", 1)[1] if "：" in text else text)


def school_year_start(today: date) -> date:
    """The school year starts on 1 September."""
    return date(today.year if today.month >= 9 else today.year - 1, 9, 1)


def _schools(app: Anxin, user: User) -> list[tuple[str, str]]:
    """The schools this person may pick (their own, or their district's)."""
    if user.actor.school_id is not None:
        return [(sid, name) for sid, name, _d in app.schools() if sid == user.actor.school_id]
    return [(sid, name) for sid, name, d in app.schools() if d == user.actor.district]


# The statuses of a case still open (the open-cases table and chart leave out 已结案).
OPEN_STATUSES = [k for k in STATUS_LABELS if k != "closed"]
# The tiers of a determination, drawn in the board's palette (so a change of its colours
# applies here too): the risk levels' warm scale, the police matter in the appeal's red.
SEVERITY_FILL = {
    "minor": RISK_FILL["general"],
    "serious": RISK_FILL["key"],
    "egregious": RISK_FILL["high"],
    "suspected_offence": STATUS_FILL["appealed"],
}
SCHOOL_LABEL_CHARS = 9  # a longer school name is cut in the chart (the table beside it has it whole)


def _short(name: str) -> str:
    return name if len(name) <= SCHOOL_LABEL_CHARS else name[: SCHOOL_LABEL_CHARS - 1] + "…"


def _per_school(
    chart_id: str, schools: list[SchoolReport], parts: list[tuple[str, str, str]], legend: bool = True
) -> Chart:
    """One stacked bar per school: `parts` are (metric id, Chinese label, fill)."""
    rows = [Row(_short(s.school), False, [Segment(m, name, s[m], fill) for m, name, fill in parts]) for s in schools]
    entries = [Segment(m, name, 0, fill) for m, name, fill in parts] if legend else None
    return lay_out_legend(chart(chart_id, rows, entries), WIDE_FONT)


def both(c: Chart, title: str) -> Markup:
    """The chart for a desk and for a phone (web/static/print.css shows one of them by width)."""
    return (
        Markup('<div class="chart-wide">')
        + svg(c, title)
        + Markup('</div><div class="chart-narrow">')
        + svg(narrow(c), title)
        + Markup("</div>")
    )


NARROW_BAR_W = 190
WIDE_FONT, NARROW_FONT = 11.0, 12.5  # svg.chart text in app.css, and in print.css on a phone


def _text_width(text: str, font: float) -> float:
    """About how wide a label is drawn: a CJK character is a square, a Latin one about half."""
    return sum(1.0 if ord(ch) >= 0x2E80 else 0.58 for ch in text) * font


def lay_out_legend(c: Chart, font: float) -> Chart:
    """The legend in columns as wide as its longest label (in the reader's language), as many
    to a line as fit, so that no label runs into the next swatch; the height follows."""
    bars = max(len(c.rows), 1) * (ROW_H + GAP)
    if not c.legend:
        c.height = bars
        return c
    column = 16 + max(_text_width(i18n.gettext(s.name), font) for s in c.legend) + 14
    per_line = max(1, int((c.width - 10) // column))
    for i, s in enumerate(c.legend):
        s.x = round(10 + (i % per_line) * column, 1)
        s.y = bars + 6 + (i // per_line) * 20
    lines = -(-len(c.legend) // per_line)
    c.height = bars + lines * 20 + 6
    return c


def narrow(c: Chart) -> Chart:
    """The same chart drawn for a phone: shorter bars and the legend laid out again for the
    narrower width, so that its text stays readable at 390 px (the page shows one or the other
    by width)."""
    n = copy.deepcopy(c)
    n.id = f"{c.id}-narrow"
    n.width = LABEL_W + NARROW_BAR_W + PAD
    scale = NARROW_BAR_W / BAR_W
    for r in n.rows:
        for s in r.segments:
            s.x, s.width = round(LABEL_W + (s.x - LABEL_W) * scale, 1), round(s.width * scale, 1)
    return lay_out_legend(n, NARROW_FONT)


def district_charts(report: Report) -> dict[str, Chart]:
    """The district overview's charts, one per table, drawn like the school board's (server-side SVG)."""
    schools = report.schools
    present = [k for k in OPEN_STATUSES if report.total[f"cases_end_{k}"]]
    tiers = [k for k in SEVERITIES if report.total[f"determinations_{k}"] or k != "suspected_offence"]
    done_vs_due = [
        Row(
            _short(s.school),
            False,
            [
                Segment("check_ins_done", "已谈心", min(s["check_ins_done"], s["check_ins_due"]), PAIRING_FILL),
                Segment("check_ins_missing", "未完成", max(s["check_ins_due"] - s["check_ins_done"], 0), OVERDUE_FILL),
            ],
        )
        for s in schools
    ]
    return {
        "open": _per_school(
            "open-cases-chart", schools, [(f"cases_end_{k}", STATUS_LABELS[k], STATUS_FILL[k]) for k in present]
        ),
        "severity": _per_school(
            "severity-chart",
            schools,
            [(f"determinations_{k}", SEVERITIES[k], SEVERITY_FILL[k]) for k in tiers]
            + [("determinations_not_bullying", "不构成欺凌", STATUS_FILL["concluded"])],
        ),
        "overdue": _per_school("overdue-chart", schools, [("overdue_end", "超期事项", OVERDUE_FILL)], legend=False),
        "files": _per_school(
            "files-chart", schools, [(f"files_end_{k}", RISK_LABELS[k], RISK_FILL[k]) for k in RISK_LEVELS]
        ),
        "check_ins": lay_out_legend(
            chart(
                "check-ins-chart",
                done_vs_due,
                [Segment("done", "已谈心", 0, PAIRING_FILL), Segment("missing", "未完成", 0, OVERDUE_FILL)],
            ),
            WIDE_FONT,
        ),
    }


@router.get("/district")
def district(request: Request, user: PageUser, app: App) -> Response:
    if user.actor.school_id is not None:
        # The district view: periodic_report would narrow a school member to their own school;
        # the gate is asked for the district's figures instead (and refuses school staff).
        app.authorize(user.actor, access.STATS_READ, Resource(kind="district", district=user.actor.district))
    today = app.now().date()
    report = periodic_report(app, user.actor, date_from=school_year_start(today), date_to=today)
    ids = [m for m in report.metrics]
    return render(
        request,
        "district/dashboard.html",
        report=report,
        label=label,
        column=column,
        status_metrics=[m for m in ids if m.id in {f"cases_end_{k}" for k in OPEN_STATUSES}],
        file_metrics=[m for m in ids if m.id.startswith("files_end_")],
        sev_metrics=[m for m in ids if m.id.startswith("determinations_") and "not" not in m.id]
        + [m for m in ids if m.id == "determinations_not_bullying"],
        pending_reviews=audit.pending_review_count(app, user.actor),
        charts=district_charts(report),
        svg=both,
    )


def _period(request: Request, app: Anxin) -> tuple[date, date, str | None]:
    """The report's period and school from the query (InvalidInput for a malformed date)."""
    today = app.now().date()
    q = request.query_params
    start = day_or(q.get("from"), school_year_start(today))
    end = day_or(q.get("to"), today)
    return start, end, q.get("school") or None


@router.get("/reports")
def reports(request: Request, user: PageUser, app: App) -> Response:
    schools = _schools(app, user)
    q = request.query_params
    values = {"from": q.get("from", ""), "to": q.get("to", ""), "school": q.get("school", "")}
    try:
        start, end, school = _period(request, app)
        report = periodic_report(app, user.actor, date_from=start, date_to=end, school_id=school)
    except DomainError as e:
        if for_error_page(e):
            raise
        return render(
            request, "district/reports.html", 400, report=None, schools=schools, values=values, error=i18n.error_text(e)
        )
    values.update({"from": start.isoformat(), "to": end.isoformat()})
    return render(
        request,
        "district/reports.html",
        report=report,
        label=label,
        schools=schools,
        values=values,
        error=None,
        query=request.url.query,
    )


@router.get("/reports.csv")
def reports_csv(request: Request, user: PageUser, app: App) -> Response:
    try:
        start, end, school = _period(request, app)
    except InvalidInput as e:
        return Response(i18n.error_text(e), status_code=400, media_type="text/plain; charset=utf-8")
    report = periodic_report(app, user.actor, date_from=start, date_to=end, school_id=school)
    with get_web(request).writing() as a:
        a.record_security_event(
            "export",
            user.staff_id,
            school or f"district:{report.district}",
            {"what": "report-csv", "from": start.isoformat(), "to": end.isoformat(), "rows": len(report.schools) + 1},
        )
    name = f"anxin-report-{start.isoformat()}-{end.isoformat()}.csv"
    return Response(
        "\ufeff" + report_csv(report),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@router.get("/reports/print")
def reports_print(request: Request, user: PageUser, app: App) -> Response:
    try:
        start, end, school = _period(request, app)
    except InvalidInput as e:
        return render(request, "error.html", 400, title=i18n.gettext("输入无效"), message=i18n.error_text(e))
    report = periodic_report(app, user.actor, date_from=start, date_to=end, school_id=school)
    sections = [(key, title, [m for m in report.metrics if m.group == key]) for key, title in report.groups.items()]
    return render(
        request, "district/print.html", report=report, label=label, sections=sections, query=request.url.query
    )
