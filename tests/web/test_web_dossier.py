"""The printable case file (案卷) of a bullying case and of a support file: the print page and
its PDF show what the viewer may see by the case page's and the file page's rules (the whole
record; a class teacher the status; a file's one-to-one responsible person the plan part; a
supervisor after a stated reason), every print is an `export` entry of the audit trail, the
PDF sets Chinese in a CJK font (checked on the PDF's text, its fonts and a rendered PNG, against
a rendering without a CJK font), and nothing is written to the temporary directory while it is
made. Also the district overview's charts and the printed report's sign-off block."""

from __future__ import annotations

import ctypes
import json
import os
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_raw
import pytest
from web_support import DemoSite

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"


def _actor(site: DemoSite, username: str) -> Any:
    return site.app.gate.actor(site.app.accounts.account(username)[0])


def _exports(site: DemoSite, username: str, subject: str) -> list[dict[str, Any]]:
    rows = site.app.db.fetch(
        "SELECT detail FROM {t}anxin_audit WHERE kind = 'export' AND actor_id = ? AND subject = ? ORDER BY seq",
        (site.app.accounts.account(username)[0], subject),
    )
    return [json.loads(r[0]) for r in rows]


def _decisions(site: DemoSite, username: str, resource: str, allowed: int) -> int:
    return int(
        site.app.db.fetchone(
            "SELECT COUNT(*) FROM {t}anxin_access WHERE actor_id = ? AND resource_id = ? AND allowed = ?",
            (site.app.accounts.account(username)[0], resource, allowed),
        )[0]
    )


class Records:
    """A case with a student of teacher1's class, and a support file of counselor1's with a
    plan, a counselling session, a guardian contact and teacher1 as its 包联人."""

    def __init__(self, site: DemoSite) -> None:
        app = site.app
        admin, teacher1 = _actor(site, "admin"), _actor(site, "teacher1")
        safety, c1 = _actor(site, "safety1"), _actor(site, "counselor1")
        school = teacher1.school_id
        students = [s for s in app.roster.list_students(admin, school) if not s.erased]
        own = [s for s in students if s.class_name in teacher1.classes]
        with_file = {x.student_id for x in app.support.my_support_files(c1)}
        self.target, self.other = own[3], own[4]
        self.case_id = app.cases.report_bullying(
            safety,
            school_id=school,
            channel="parent",
            occurred_at=app.now(),
            place="食堂门口",
            forms=["verbal"],
            parties=[(self.target.id, "targeted"), (self.other.id, "bullying")],
            narrative="案卷测试：课间在食堂门口被起外号并推搡",
        )
        app.cases.add_evidence(safety, self.case_id, description="案卷测试：监控截图", reference="德育处柜")
        self.number = app.record_numbers([self.case_id])[self.case_id].text
        self.school = next(name for sid, name, _d in app.schools() if sid == school)
        student = next(s for s in reversed(students) if s.id not in with_file and s.class_name not in teacher1.classes)
        self.file_student = student
        self.file_id = app.support.open_support_file(
            c1, student.id, category="情绪困扰", risk_level="key", reason="案卷测试：建档理由（仅心理老师）"
        )
        app.support.draw_up_plan(
            c1, self.file_id, goals=["案卷测试：情绪稳定"], measures=[{"text": "案卷测试：每周谈心", "by": "班主任"}]
        )
        app.support.record_session(c1, self.file_id, held_on=app.now().date(), summary="案卷测试：辅导记录（保密）")
        app.support.record_guardian_contact(
            c1,
            self.file_id,
            contacted_on=app.now().date(),
            guardian="母亲",
            method="phone",
            summary="案卷测试：与家长沟通帮扶措施",
        )
        app.support.assign_responsible_person(c1, self.file_id, teacher1.staff_id, "案卷测试：包联")
        self.file_number = app.record_numbers([self.file_id])[self.file_id].text


@pytest.fixture(scope="module")
def records(site: DemoSite) -> Records:
    return Records(site)


# -- the case's file --------------------------------------------------------------------------------
def test_the_safety_lead_prints_the_whole_case_and_the_print_is_recorded(site: DemoSite, browse, records) -> None:
    b = browse("safety1")
    before = len(_exports(site, "safety1", records.case_id))
    r = b.get(f"/cases/{records.case_id}/dossier")
    assert r.status_code == 200
    page = r.text
    for shown in (
        records.number,
        records.school,
        records.target.name,
        records.other.name,
        "被欺凌学生",
        "案卷测试：课间在食堂门口被起外号并推搡",
        "案卷测试：监控截图",
        "报告疑似欺凌",  # the history, in words
        "记录证据",
        "立卷人",
        "审核人",
        "归档日期",
        "保管期限",
    ):
        assert shown in page, shown
    assert page.index("报告疑似欺凌") < page.index("记录证据")  # in order
    assert "<script>" not in page and 'src="/static/print.js"' in page  # no inline script
    assert _exports(site, "safety1", records.case_id)[before:] == [{"format": "print", "what": "case-dossier"}]


def test_a_class_teacher_prints_only_the_status(site: DemoSite, browse, records) -> None:
    r = browse("teacher1").get(f"/cases/{records.case_id}/dossier")
    assert r.status_code == 200 and records.number in r.text and "已报告" in r.text
    for hidden in (records.target.name, records.other.name, "案卷测试：课间", "案卷测试：监控截图", "报告疑似欺凌"):
        assert hidden not in r.text
    assert _exports(site, "teacher1", records.case_id)[-1] == {"format": "print", "what": "case-dossier"}


def test_others_are_refused_and_the_refusal_is_recorded(site: DemoSite, browse, records) -> None:
    for who in ("counselor2", "admin", "teacher7"):
        denied = _decisions(site, who, records.case_id, 0)
        r = browse(who).get(f"/cases/{records.case_id}/dossier.pdf")
        assert r.status_code == 403 and "案卷测试" not in r.text
        assert _decisions(site, who, records.case_id, 0) == denied + 1
        assert _exports(site, who, records.case_id) == []


def test_a_supervisor_states_a_reason_first_and_it_is_kept(site: DemoSite, browse, records) -> None:
    b = browse("supervisor1")
    asked = b.get(f"/cases/{records.case_id}/dossier")
    assert asked.status_code == 200 and 'name="break_glass_reason"' in asked.text
    assert records.target.name not in asked.text and _exports(site, "supervisor1", records.case_id) == []
    weak = b.post(f"/cases/{records.case_id}/dossier", {"break_glass_reason": "看看"})
    assert weak.status_code == 400 and records.target.name not in weak.text
    reason = "核查家长投诉：打印案卷备查"
    r = b.post(f"/cases/{records.case_id}/dossier", {"break_glass_reason": reason})
    assert r.status_code == 200 and records.target.name in r.text and "紧急查阅" in r.text
    # the PDF is asked for with the same reason (a form on the page, not a link)
    assert f'action="/cases/{records.case_id}/dossier.pdf"' in r.text
    sealed = site.app.db.fetchone(
        "SELECT COUNT(*) FROM {t}anxin_access WHERE actor_id = ? AND resource_id = ? AND break_glass IS NOT NULL",
        (site.app.accounts.account("supervisor1")[0], records.case_id),
    )[0]
    assert sealed >= 1
    assert _exports(site, "supervisor1", records.case_id) == [{"format": "print", "what": "case-dossier"}]


# -- the support file's ----------------------------------------------------------------------------
def test_the_counselor_prints_the_whole_file(site: DemoSite, browse, records) -> None:
    r = browse("counselor1").get(f"/support/{records.file_id}/dossier")
    assert r.status_code == 200
    for shown in (
        records.file_number,
        records.file_student.name,
        "案卷测试：情绪稳定",
        "案卷测试：辅导记录（保密）",
        "案卷测试：与家长沟通帮扶措施",
        "案卷测试：建档理由（仅心理老师）",
        "心理辅导",
    ):
        assert shown in r.text, shown
    assert _exports(site, "counselor1", records.file_id)[-1] == {"format": "print", "what": "file-dossier"}


def test_the_one_to_one_person_prints_only_their_part(site: DemoSite, browse, records) -> None:
    """teacher1 is the file's 包联人 (FILE_PLAN): the plan, the guardian contacts and the history
    of those; never the session's notes or why the file was opened."""
    r = browse("teacher1").get(f"/support/{records.file_id}/dossier")
    assert r.status_code == 200 and 'id="dossier-scope"' in r.text
    for shown in (
        "案卷测试：情绪稳定",
        "案卷测试：每周谈心",
        "案卷测试：与家长沟通帮扶措施",
        "制定帮扶方案",
        "家校联系",
    ):
        assert shown in r.text, shown
    for hidden in ("案卷测试：辅导记录（保密）", "案卷测试：建档理由（仅心理老师）", "重点关注"):
        assert hidden not in r.text, hidden
    assert ">心理辅导<" not in r.text  # no session entry in the history either
    assert _exports(site, "teacher1", records.file_id)[-1] == {"format": "print", "what": "file-dossier"}


def test_the_support_file_is_refused_to_a_colleague_without_a_part(site: DemoSite, browse, records) -> None:
    denied = _decisions(site, "counselor2", records.file_id, 0)
    r = browse("counselor2").get(f"/support/{records.file_id}/dossier")
    assert r.status_code == 403 and "案卷测试" not in r.text
    assert _decisions(site, "counselor2", records.file_id, 0) == denied + 1


# -- the PDF ---------------------------------------------------------------------------------------
def _fonts(pdf: bytes) -> tuple[str, dict[str, str]]:
    """The first page's text and, per character, the name of the font it is set in."""
    doc = pdfium.PdfDocument(pdf)
    text_page = doc[0].get_textpage()
    text = text_page.get_text_range()
    buf, flags = ctypes.create_string_buffer(256), ctypes.c_int()
    fonts: dict[str, str] = {}
    for i, ch in enumerate(text):
        pdfium_raw.FPDFText_GetFontInfo(text_page, i, buf, 256, ctypes.byref(flags))
        fonts.setdefault(ch, buf.value.decode(errors="replace"))
    return text, fonts


def chinese_rendered(pdf: bytes, title: str) -> bool:
    """Whether the PDF's first page shows `title` set in a CJK font (not a font without the glyphs)."""
    text, fonts = _fonts(pdf)
    return title in text and all("CJK" in fonts.get(ch, "") for ch in title)


def _ink(png: Any, box: tuple[int, int, int, int]) -> int:
    """Dark pixels in a region of a rendered page."""
    return sum(png.crop(box).convert("L").histogram()[:128])


def test_the_pdf_renders_chinese(site: DemoSite, browse, records, tmp_path: Path) -> None:
    b = browse("safety1")
    r = b.get(f"/cases/{records.case_id}/dossier.pdf")
    assert r.status_code == 200 and r.headers["content-type"] == "application/pdf"
    assert r.content.startswith(b"%PDF") and f"anxin-{records.number}.pdf" in r.headers["content-disposition"]
    assert _exports(site, "safety1", records.case_id)[-1] == {"format": "pdf", "what": "case-dossier"}
    text, _fonts_used = _fonts(r.content)
    assert "校园欺凌案件" in text.replace(" ", "") and records.number in text and records.school in text
    assert chinese_rendered(r.content, "案卷") and chinese_rendered(r.content, records.school)
    doc = pdfium.PdfDocument(r.content)
    assert len(doc) >= 2  # the cover, then the content
    page = doc[0]
    png = page.render(scale=2).to_pil()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    png.save(ARTIFACTS / "dossier-case-pdf-page1.png")
    # Where the title is, there is ink; the bottom margin is blank.
    left, top, right, bottom = _title_box(doc[0], "案卷", scale=2)
    assert _ink(png, (left, top, right, bottom)) > 50
    assert _ink(png, (0, png.height - 20, png.width, png.height)) == 0
    # The same check fails on a rendering that has no CJK font (fontconfig given only DejaVu).
    control = _without_cjk_font(tmp_path)
    assert "案卷" in _fonts(control)[0] and not chinese_rendered(control, "案卷")


def _title_box(page: Any, title: str, scale: float) -> tuple[int, int, int, int]:
    text_page = page.get_textpage()
    start = text_page.get_text_range().index(title)
    boxes = [text_page.get_charbox(start + i) for i in range(len(title))]
    height = page.get_height()
    left, right = min(b[0] for b in boxes), max(b[2] for b in boxes)
    low, high = min(b[1] for b in boxes), max(b[3] for b in boxes)
    return int(left * scale), int((height - high) * scale), int(right * scale) + 1, int((height - low) * scale) + 1


def _without_cjk_font(tmp_path: Path) -> bytes:
    """The case file's cover made by the same code in a process whose fontconfig knows only DejaVu."""
    conf = tmp_path / "fonts.conf"
    conf.write_text(
        '<?xml version="1.0"?><!DOCTYPE fontconfig SYSTEM "fonts.dtd"><fontconfig>'
        f"<dir>/usr/share/fonts/truetype/dejavu</dir><cachedir>{tmp_path}/cache</cachedir></fontconfig>"
    )
    out = tmp_path / "control.pdf"
    code = (
        "import sys; from web.pdf import html_to_pdf; "
        'open(sys.argv[1], \'wb\').write(html_to_pdf(\'<html lang="zh-Hans"><body><article class="dossier">'
        '<section class="cover"><h1>案卷</h1></section></article></body></html>\'))'
    )
    env = {**os.environ, "FONTCONFIG_FILE": str(conf), "PYTHONPATH": os.pathsep.join(sys.path)}
    subprocess.run([sys.executable, "-c", code, str(out)], check=True, env=env, timeout=120)
    return out.read_bytes()


def test_the_pdf_is_made_in_memory(site: DemoSite, browse, records, monkeypatch: pytest.MonkeyPatch) -> None:
    """No file appears in (or is opened under) the temporary directory while the PDF of a
    support file is made, nor any weasyprint-* folder (its spool for web fonts) in the system's."""
    watched = Path(tempfile.mkdtemp(prefix="anxin-watch-"))
    system_tmp = Path(tempfile.gettempdir())
    monkeypatch.setattr(tempfile, "tempdir", str(watched))
    monkeypatch.setenv("TMPDIR", str(watched))
    spools_before = {p.name for p in system_tmp.glob("weasyprint-*")}
    seen: set[str] = set()
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            seen.update(os.listdir(watched))
            for fd in os.listdir("/proc/self/fd"):
                try:
                    target = os.readlink(f"/proc/self/fd/{fd}")
                except OSError:
                    continue
                if target.startswith(str(watched)) or "weasyprint" in target:
                    seen.add(target)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    try:
        r = browse("counselor1").get(f"/support/{records.file_id}/dossier.pdf")
    finally:
        stop.set()
        thread.join()
    assert r.status_code == 200 and r.content.startswith(b"%PDF")
    assert records.file_student.name in _fonts(r.content)[0]
    assert seen == set() and os.listdir(watched) == []
    assert {p.name for p in system_tmp.glob("weasyprint-*")} == spools_before


def test_without_pango_the_pdf_says_so_and_the_print_page_still_works(
    site: DemoSite, browse, records, monkeypatch: pytest.MonkeyPatch
) -> None:
    import web.pdf

    def no_pango(html: str) -> bytes:
        raise web.pdf.PdfUnavailable()

    monkeypatch.setattr("web.routes.case_files.html_to_pdf", no_pango)
    b = browse("safety1")
    r = b.get(f"/cases/{records.case_id}/dossier.pdf")
    assert r.status_code == 503 and "Pango" in r.text and "打印页面不受影响" in r.text
    assert b.get(f"/cases/{records.case_id}/dossier").status_code == 200


# -- the district overview and the printed report ------------------------------------------------------
def test_the_district_overview_draws_a_chart_per_table_and_lists_open_cases_only(site: DemoSite, browse) -> None:
    page = browse("supervisor1").get("/district").text
    for chart in ("open-cases-chart", "severity-chart", "overdue-chart", "files-chart", "check-ins-chart"):
        assert f'id="{chart}"' in page and f'id="{chart}-narrow"' in page, chart
    open_table = page.split('id="open-cases-chart-narrow"', 1)[1].split("</table>", 1)[0]
    assert "未结案件" in open_table and "已结案" not in open_table
    assert 'data-key="cases_end_closed"' not in page
    assert "<script>" not in page


def test_the_printed_report_has_a_sign_off_block_and_steady_columns(site: DemoSite, browse) -> None:
    page = browse("principal1").get("/reports/print?from=2026-09-01&to=2026-11-30").text
    block = page.split('class="sign-off"', 1)[1]
    for box in ("填报人", "审核人", "日期", "盖章"):
        assert box in block, box
    assert page.count('class="list figures"') >= 5  # every section's table: fixed layout, tabular figures
    assert 'href="/static/print.css"' in page


def test_a_chart_legend_never_runs_into_the_next_entry() -> None:
    """The board's four-to-a-line legend let 屡教不改或者情节恶劣 run into the next swatch; the
    district's legend is laid out in columns as wide as its longest label."""
    from web.routes.board import Row, Segment, chart
    from web.routes.district import WIDE_FONT, _text_width, lay_out_legend

    names = ["一般欺凌（情节轻微）", "严重欺凌", "屡教不改或者情节恶劣", "不构成欺凌"]
    legend = [Segment(str(i), n, 0, "#000") for i, n in enumerate(names)]
    c = lay_out_legend(chart("t", [Row("一校", False, [Segment("a", "a", 1, "#000")])], legend), WIDE_FONT)
    lines: dict[float, list[Segment]] = {}
    for s in c.legend:
        lines.setdefault(s.y, []).append(s)
    for entries in lines.values():
        for left, right in zip(entries, entries[1:], strict=False):
            assert right.x - left.x >= 16 + _text_width(left.name, WIDE_FONT)
        assert entries[-1].x + 16 + _text_width(entries[-1].name, WIDE_FONT) <= c.width
    assert c.height >= max(s.y for s in c.legend) + 12
