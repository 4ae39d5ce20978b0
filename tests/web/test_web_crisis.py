"""The crisis pathway's pages over HTTP, on both stores: an import's item-9 answer puts the
crisis at the top of every counselor's and the principal's 待办, the class teacher gets a
status-only watch line; the checklist page (any counselor of the school) records each step
with who and when, refuses bad input in Chinese changing nothing; the file's own page shows
the same checklist; a check-in marked as a possible risk to life and a case's self-harm note
start it from their own forms."""

from __future__ import annotations

import random
import re
from typing import Any

from web_support import DemoSite

from domain.common import Actor

VERSION = re.compile(r'name="expected_version" value="(\d+)"')
HEADER = "student_no,instrument,date," + ",".join(f"item{i}" for i in range(1, 10))
USED: set[str] = set()


def _actor(site: DemoSite, username: str) -> Actor:
    return site.app.gate.actor(site.app.accounts.account(username)[0])


def _student(site: DemoSite, class_name: str = "七年级1班") -> Any:
    """An active student of school 1's class with no open file, not paired with teacher1 and
    not yet used here."""
    app = site.app
    school = _actor(site, "counselor1").school_id
    with_file = {
        r[0] for r in app.db.fetch("SELECT subject_id FROM {t}anxin_directory WHERE kind = 'file' AND status = 'open'")
    }
    paired = {
        r[0]
        for r in app.db.fetch(
            "SELECT subject_id FROM {t}anxin_directory WHERE kind = 'pairing' AND owner_id = ?",
            (_actor(site, "teacher1").staff_id,),
        )
    }
    rows = sorted(
        r[0]
        for r in app.db.fetch(
            "SELECT stream_id FROM {t}anxin_directory WHERE school_id = ? AND kind = 'student' AND status = 'active' "
            "AND erased = 0 AND class_name = ?",
            (school, class_name),
        )
        if r[0] not in with_file and r[0] not in paired and r[0] not in USED
    )
    chosen = random.Random(len(USED)).choice(rows)
    USED.add(chosen)
    return app.student_ref(chosen)


def _file_of(site: DemoSite, student_id: str) -> str:
    row = site.app.db.fetchone(
        "SELECT stream_id FROM {t}anxin_directory WHERE kind = 'file' AND subject_id = ? AND status = 'open'",
        (student_id,),
    )
    assert row is not None
    return str(row[0])


def _import_crisis(site: DemoSite, browse: Any, student: Any) -> str:
    b = browse("counselor1")
    day = site.app.now().date().isoformat()
    csv = f"{HEADER}\n{student.student_no},PHQ-9,{day},1,0,0,0,0,0,0,0,1\n"
    r = b.post("/screenings/import", {}, files={"file": ("screening.csv", csv.encode(), "text/csv")})
    assert r.status_code in (200, 303), r.text
    return _file_of(site, student.id)


def _rows(page: str) -> list[str]:
    body = page.split("<tbody>", 1)[1].split("</tbody>", 1)[0] if "<tbody>" in page else ""
    return re.findall(r"<tr[^>]*>(.*?)</tr>", body, re.S)


def test_an_imported_crisis_is_at_the_top_for_counselors_and_the_principal_and_a_watch_for_the_teacher(
    site: DemoSite, browse: Any
) -> None:
    student = _student(site)
    fid = _import_crisis(site, browse, student)
    # the other counselor and the principal: a crisis line linking to the checklist, at the top
    for who in ("counselor2", "principal1"):
        page = browse(who).get("/").text
        crisis_rows = [r for r in _rows(page) if "心理危机干预" in r]
        assert any(f'href="/crisis/{fid}"' in r and student.name in r for r in crisis_rows), who
        assert all("心理危机干预" in r or "关注该学生" in r for r in _rows(page)[: len(crisis_rows)]), who
    # the class teacher of 七年级1班: the student and that the counselors are acting, nothing else
    page = browse("teacher1").get("/").text
    watch = [r for r in _rows(page) if student.name in r]
    assert len(watch) == 1 and "关注该学生" in watch[0] and "心理老师正在跟进" in watch[0]
    assert "PHQ" not in page and "第9题" not in page and f"/crisis/{fid}" not in page
    assert _rows(page)[0] == watch[0] or "关注该学生" in _rows(page)[0]
    # its one link is the file's status page: a crisis is open, who is responsible; no level, no trigger
    assert re.findall(r'href="([^"]+)"', watch[0]) == [f"/support/{fid}"]
    status = browse("teacher1").get(f"/support/{fid}")
    assert status.status_code == 200 and "心理档案状态" in status.text
    facts = status.text.split('id="file-status-facts"', 1)[1].split("</dl>", 1)[0]
    assert "正在进行" in facts and site.app.roster.staff_name(_actor(site, "counselor1").staff_id) in facts
    assert "高危" not in status.text and "PHQ" not in status.text and "心理筛查危机信号" not in status.text
    assert "帮扶方案" not in status.text and "心理辅导" not in status.text
    # and the class teacher may not open the checklist, nor the file's content through the API
    assert browse("teacher1").get(f"/crisis/{fid}").status_code == 403
    assert browse("teacher1").api("GET", f"/api/v1/support-files/{fid}").status_code == 403
    api = browse("teacher1").api("GET", f"/api/v1/support-files/{fid}/status")
    assert api.status_code == 200 and api.json()["crisis_open"] is True and "risk_level" not in api.json()
    # another class's teacher gets nothing
    assert browse("teacher2").get(f"/support/{fid}").status_code == 403


def test_any_counselor_records_the_checklist_with_who_and_when(site: DemoSite, browse: Any) -> None:
    student = _student(site)
    fid = _import_crisis(site, browse, student)
    b = browse("counselor2")
    page = b.get(f"/crisis/{fid}")
    assert page.status_code == 200 and "面谈学生并评估风险" in page.text and "查看完整档案" not in page.text
    version = VERSION.search(page.text)
    assert version is not None
    r = b.post(f"/crisis/{fid}/assessed", {"assessment": "有自伤意念，无具体计划", "expected_version": version[1]})
    assert r.status_code == 303 and r.headers["location"] == f"/crisis/{fid}"
    page = b.get(f"/crisis/{fid}").text
    step = page.split('id="step-assessed"', 1)[1].split("</li>", 1)[0]
    assert "已完成" in step and "有自伤意念，无具体计划" in step
    view = site.app.crisis.get_crisis(_actor(site, "counselor1"), fid)
    done = next(s for s in view.checklist if s["step"] == "assessed")["done"]
    assert done["actor"] == _actor(site, "counselor2").staff_id
    # the guardian step needs its guardian's name; refused in Chinese, nothing recorded
    before = site.app.crisis.get_crisis(_actor(site, "counselor1"), fid).version
    r = b.post(f"/crisis/{fid}/guardian_informed", {"guardian": " ", "method": "phone", "response": "pending"})
    assert r.status_code == 400 and "告知的监护人不能为空" in r.text
    r = b.post(f"/crisis/{fid}/guardian_informed", {"guardian": "母亲", "method": "fax", "response": "pending"})
    assert r.status_code == 400 and "告知方式" in r.text
    assert site.app.crisis.get_crisis(_actor(site, "counselor1"), fid).version == before
    # recorded with the guardian's consent at once, both guardian steps are done
    r = b.post(f"/crisis/{fid}/guardian_informed", {"guardian": "母亲", "method": "written", "response": "consented"})
    assert r.status_code == 303
    view = site.app.crisis.get_crisis(_actor(site, "counselor1"), fid)
    done = {s["step"]: s["done"] for s in view.checklist}
    assert done["guardian_informed"]["method"] == "written" and done["guardian_response"]["response"] == "consented"
    # an unknown step is not a page
    assert b.post(f"/crisis/{fid}/teleport", {}).status_code == 404


def test_the_files_own_page_shows_the_checklist_and_its_forms_come_back_to_it(site: DemoSite, browse: Any) -> None:
    student = _student(site)
    fid = _import_crisis(site, browse, student)
    b = browse("counselor1")  # the responsible counselor (the importer)
    page = b.get(f"/support/{fid}").text
    assert 'id="crisis"' in page and "复学评估" in page and 'name="back" value="file"' in page
    r = b.post(f"/crisis/{fid}/supervision", {"supervisors": "班主任、心理老师轮流陪同", "back": "file"})
    assert r.status_code == 303 and r.headers["location"] == f"/support/{fid}#crisis"
    # lowering the level before the return assessment: refused, naming what is missing
    r = b.post(f"/support/{fid}/risk", {"from_level": "high", "to_level": "key", "reason": "好转"})
    assert r.status_code == 400 and "复学评估" in r.text and "医生建议" in r.text
    # a refused step on the file's page shows the file again with the error
    r = b.post(f"/crisis/{fid}/medical_advice", {"advice": " ", "back": "file"})
    assert r.status_code == 400 and "医生建议不能为空" in r.text and 'id="crisis"' in r.text


def test_a_check_in_marked_as_a_risk_to_life_starts_the_crisis(site: DemoSite, browse: Any) -> None:
    app = site.app
    student = _student(site)
    pid = app.pairings.pair(
        _actor(site, "principal1"), staff_id=_actor(site, "teacher1").staff_id, student_id=student.id
    )
    b = browse("teacher1")
    assert "可能危及生命" in b.get(f"/pairings/{pid}").text
    r = b.post(
        f"/pairings/{pid}/check-ins",
        {
            "held_on": app.now().date().isoformat(),
            "thinking": "情绪低落",
            "risk_to_life": "1",
            "concern_note": "说活着没意思",
        },
    )
    assert r.status_code == 303
    fid = _file_of(site, student.id)
    view = app.crisis.get_crisis(_actor(site, "principal1"), fid)
    assert view.crisis is not None and view.crisis["trigger"] == "check_in" and view.risk_level == "high"
    assert "可能危及生命" in b.get(f"/pairings/{pid}").text


def test_a_cases_self_harm_note_starts_the_crisis(site: DemoSite, browse: Any) -> None:
    app = site.app
    student = _student(site, "七年级2班")
    cid = app.cases.report_bullying(
        _actor(site, "safety1"),
        school_id=_actor(site, "safety1").school_id or "",
        channel="teacher",
        occurred_at=app.now().replace(microsecond=0),
        place="操场",
        forms=["verbal"],
        parties=[(student.id, "targeted")],
        narrative="多次辱骂",
    )
    b = browse("safety1")
    assert "记录自伤迹象" in b.get(f"/cases/{cid}").text
    r = b.post(f"/cases/{cid}/self_harm", {"student_id": student.id, "note": "手腕有划痕"})
    assert r.status_code == 303
    view = app.crisis.get_crisis(_actor(site, "principal1"), _file_of(site, student.id))
    assert view.crisis is not None and view.crisis["trigger"] == "bullying_case"
