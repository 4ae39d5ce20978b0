"""The supervisor's district dashboard (全区概况, counts without names) and the periodic
report (定期报送) on screen, as CSV and printable. Every figure comes from
projections.report.periodic_report, which passes the gate (STATS_READ) and records
the report in the audit trail; a CSV download is recorded as an export too."""

from __future__ import annotations

from datetime import date

from fastapi import APIRouter, Request
from fastapi.responses import Response

from anxin import audit
from anxin.service import Anxin
from domain import access
from domain.access import Resource
from domain.common import DomainError, InvalidInput
from projections.report import periodic_report, report_csv
from web import i18n
from web.deps import App, PageUser, User, for_error_page, get_web, render
from web.forms import day_or

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
        status_metrics=[m for m in ids if m.id.startswith("cases_end_")],
        file_metrics=[m for m in ids if m.id.startswith("files_end_")],
        sev_metrics=[m for m in ids if m.id.startswith("determinations_") and "not" not in m.id],
        pending_reviews=audit.pending_review_count(app, user.actor),
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
    return render(request, "district/print.html", report=report, label=label, sections=sections)
