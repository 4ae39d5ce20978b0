"""The report rendered: CSV (one row per school and a total row) and printable A4 HTML
(the template is projections/templates/report.html)."""

from __future__ import annotations

import io
from pathlib import Path

from projections import csvcells
from projections.report.model import Report

ID_COLUMNS = [
    ("row_type", "行类型"),
    ("school_id", "学校编号"),
    ("school", "学校"),
    ("district", "学区"),
    ("date_from", "起始日期"),
    ("date_to", "截止日期"),
    ("as_of", "期末状态截至"),
]


def report_csv(report: Report) -> str:
    """One row per school and a total row; the first header row holds the stable
    English column ids, the second their Chinese labels."""
    buf = io.StringIO()
    w = csvcells.writer(buf, lineterminator="\n")  # every cell safe to open in a spreadsheet
    w.writerow([c for c, _ in ID_COLUMNS] + [m.id for m in report.metrics])
    w.writerow([label for _, label in ID_COLUMNS] + [m.label for m in report.metrics])
    for row_type, r in [*(("school", s) for s in report.schools), ("total", report.total)]:
        w.writerow(
            [
                row_type,
                r.school_id,
                r.school,
                report.district,
                report.date_from.isoformat(),
                report.date_to.isoformat(),
                report.as_of.isoformat(),
            ]
            + [r[m.id] for m in report.metrics]
        )
    return buf.getvalue()


TEMPLATES = Path(__file__).resolve().parent.parent / "templates"  # projections/templates
# The overview table (one row per school): a few metrics under short headings, to fit A4.
OVERVIEW = {
    "cases_reported": "新报告案件",
    "determinations": "认定",
    "cases_closed": "结案",
    "cases_open_end": "期末未结案件",
    "files_opened": "新建档案",
    "files_open_end": "期末在档",
    "screenings": "筛查人次",
    "check_ins_due": "应谈心",
    "check_ins_done": "已谈心",
    "overdue_end": "期末超期事项",
}


def report_html(report: Report) -> str:
    """The printable report (A4): the overview, then one page per school."""
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES)),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    by_id = {m.id: m for m in report.metrics}
    sections = [(key, title, [m for m in report.metrics if m.group == key]) for key, title in report.groups.items()]
    return env.get_template("report.html").render(
        report=report,
        sections=sections,
        overview=[(by_id[k], short) for k, short in OVERVIEW.items() if k in by_id],
        generated=report.generated_at.strftime("%Y-%m-%d %H:%M %Z").strip(),
    )
