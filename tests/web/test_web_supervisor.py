"""The supervisor's journeys: the district dashboard and the periodic report (no names),
the audit pages (a case's history, break-glass accesses, denials), each as CSV; and the
refusals for school staff."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import timedelta

from web_support import DemoSite


def _names(site: DemoSite) -> list[str]:
    """Every demo student's name, as the application decrypts it."""
    admin = site.app.gate.actor(site.app.accounts.account("admin")[0])
    names: list[str] = []
    for sid, _name, _d in site.app.schools():
        names += [s.name for s in site.app.roster.list_students(admin, sid) if not s.erased]
    assert len(names) > 100
    return names


def _denials(site: DemoSite, staff_id: str, action: str) -> int:
    return site.app.db.fetchone(
        "SELECT COUNT(*) FROM {t}anxin_access WHERE actor_id = ? AND action = ? AND allowed = 0", (staff_id, action)
    )[0]


def _audit_count(site: DemoSite, kind: str, actor_id: str) -> int:
    return site.app.db.fetchone(
        "SELECT COUNT(*) FROM {t}anxin_audit WHERE kind = ? AND actor_id = ?", (kind, actor_id)
    )[0]


def test_dashboard_and_report_show_counts_without_names(site: DemoSite, browse) -> None:
    b = browse("supervisor1")
    sup = site.app.accounts.account("supervisor1")[0]
    before = _audit_count(site, "report", sup)
    dash = b.get("/district")
    assert dash.status_code == 200 and "全区概况" in dash.text
    schools = [name for _sid, name, _d in site.app.schools()]
    assert all(name in dash.text for name in schools) and "全区合计" in dash.text
    report = b.get("/reports?from=2026-09-01&to=2026-11-30")
    assert report.status_code == 200 and "新报告案件" in report.text and "下载 CSV" in report.text
    printed = b.get("/reports/print?from=2026-09-01&to=2026-11-30")
    assert printed.status_code == 200 and "期末状态截至" in printed.text
    for name in _names(site):
        assert name not in dash.text and name not in report.text and name not in printed.text
    assert _audit_count(site, "report", sup) == before + 3  # each generation is in the audit trail


def test_report_csv_download_is_an_audited_export(site: DemoSite, browse) -> None:
    b = browse("supervisor1")
    sup = site.app.accounts.account("supervisor1")[0]
    exports = _audit_count(site, "export", sup)
    r = b.get("/reports.csv?from=2026-09-01&to=2026-11-30")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert "attachment" in r.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(r.text.lstrip("\ufeff"))))
    assert rows[0][:3] == ["row_type", "school_id", "school"]
    assert [row[0] for row in rows[2:]] == ["school"] * len(site.app.schools()) + ["total"]
    assert _audit_count(site, "export", sup) == exports + 1
    names = set(_names(site))
    assert not any(cell in names for row in rows for cell in row)


def test_report_bad_dates_rerender_with_message(site: DemoSite, browse) -> None:
    b = browse("supervisor1")
    r = b.get("/reports?from=2026-11-30&to=2026-09-01")
    assert r.status_code == 400 and "起始日期不能晚于截止日期" in r.text and 'value="2026-11-30"' in r.text
    assert b.get("/reports?from=not-a-date").status_code == 400


def test_principal_sees_own_school_report_only(site: DemoSite, browse) -> None:
    b = browse("principal1")
    principal = site.app.gate.actor(site.app.accounts.account("principal1")[0])
    own = b.get("/reports?from=2026-09-01&to=2026-11-30")
    assert own.status_code == 200 and "安心市第一中学" in own.text and "安心市实验小学" not in own.text
    other = next(sid for sid, _n, _d in site.app.schools() if sid != principal.school_id)
    before = _denials(site, principal.staff_id, "stats.read")
    assert b.get(f"/reports.csv?school={other}").status_code == 403
    assert _denials(site, principal.staff_id, "stats.read") == before + 1


def test_school_staff_get_403_on_district_and_audit(site: DemoSite, browse) -> None:
    for username, path, action in [
        ("teacher1", "/district", "stats.read"),
        ("counselor1", "/district", "stats.read"),
        ("teacher1", "/audit", "audit.read"),
        ("counselor1", "/audit?what=denied", "audit.read"),
    ]:
        b = browse(username)
        staff = site.app.accounts.account(username)[0]
        before = _denials(site, staff, action)
        r = b.get(path)
        assert r.status_code == 403, (username, path)
        assert _denials(site, staff, action) == before + 1


def _new_case(site: DemoSite) -> str:
    teacher = site.app.gate.actor(site.app.accounts.account("teacher1")[0])
    admin = site.app.gate.actor(site.app.accounts.account("admin")[0])
    student = next(
        s
        for s in site.app.roster.list_students(admin, teacher.school_id)
        if s.class_name in teacher.classes and not s.erased
    )
    return site.app.cases.report_bullying(
        teacher,
        school_id=teacher.school_id,
        channel="teacher",
        occurred_at=site.app.now() - timedelta(hours=1),
        place="操场",
        forms=["verbal"],
        parties=[(student.id, "targeted")],
        narrative="课间被同学起外号 " + uuid.uuid4().hex[:6],
    )


def test_case_history_and_break_glass_list(site: DemoSite, browse) -> None:
    case_id = _new_case(site)
    supervisor = site.app.gate.actor(site.app.accounts.account("supervisor1")[0])
    reason = "核查家长投诉 <script>alert(1)</script> '; DROP TABLE x; --"
    site.app.cases.get_case(supervisor, case_id, break_glass=reason)
    b = browse("supervisor1")
    number = site.app.record_numbers([case_id])[case_id].text
    history = b.post("/audit/find", {"way": "case", "number": number, "reason": "核查历史记录"})
    assert history.status_code == 200
    teacher_name = site.app.roster.staff_name(site.app.accounts.account("teacher1")[0])
    assert "Reported" in history.text and teacher_name in history.text  # who wrote the report
    assert "case.read" in history.text and "核查家长投诉" in history.text  # the supervisor's break-glass read
    listing = b.get("/audit?what=break-glass")
    assert listing.status_code == 200
    assert "核查家长投诉 &lt;script&gt;alert(1)&lt;/script&gt; &#39;; DROP TABLE x; --" in listing.text
    assert "<script>alert(1)" not in listing.text
    for name in _names(site):
        assert name not in history.text
    exported = b.get("/audit.csv?what=break-glass")
    assert exported.status_code == 200 and reason in exported.text
    denied = b.get("/audit?what=denied")
    assert denied.status_code == 200 and "拒绝" in denied.text
    audit_reads = site.app.db.fetchone(
        "SELECT COUNT(*) FROM {t}anxin_access WHERE actor_id = ? AND action = 'audit.read' AND allowed = 1",
        (supervisor.staff_id,),
    )[0]
    assert audit_reads >= 4


def test_audit_needs_an_id_and_reports_a_bad_one(site: DemoSite, browse) -> None:
    b = browse("supervisor1")
    page = b.get("/audit?what=case-history")
    assert page.status_code == 200 and 'name="number"' in page.text
    missing = b.get(f"/audit?what=case-history&id={uuid.uuid4()}")
    assert missing.status_code == 404 and "找不到该编号的记录" in missing.text


def test_pages_switch_to_english(site: DemoSite, browse) -> None:
    b = browse("supervisor1")
    b.get("/lang/en?next=/district")
    dash = b.get("/district")
    assert dash.status_code == 200 and "District overview" in dash.text and "Open cases (by status)" in dash.text
    assert "Break-glass accesses" in b.get("/audit").text
    report = b.get("/reports?from=2026-09-01&to=2026-11-30")
    assert "Generate report" in report.text and "Download CSV" in report.text


def test_audit_csv_neutralises_a_break_glass_reason_a_spreadsheet_would_run(site: DemoSite, browse) -> None:
    # given a supervisor's break-glass read whose reason begins as a spreadsheet formula
    case_id = _new_case(site)
    supervisor = site.app.gate.actor(site.app.accounts.account("supervisor1")[0])
    link = f'=HYPERLINK("http://x/{uuid.uuid4().hex}")'
    site.app.cases.get_case(supervisor, case_id, break_glass=link)

    # when the break-glass list is downloaded as CSV
    r = browse("supervisor1").get("/audit.csv?what=break-glass")

    # then the reason begins with a quote: text in a spreadsheet, never a formula
    assert r.status_code == 200
    header, *rows = list(csv.reader(io.StringIO(r.text.lstrip("\ufeff"))))
    reasons = [row[header.index("调阅理由")] for row in rows]
    assert "'" + link in reasons and link not in reasons
    assert not any(cell.startswith(("=", "+", "-", "@", "\t", "\r")) for row in rows for cell in row)
