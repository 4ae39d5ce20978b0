"""The class teacher's journeys (一岗双带): the pairing board, recording a check-in (and
what a wrong or stale form does), escalating a concern to a support file or a bullying
report, ending a pairing; a principal pairing a teacher with a student; searching
students by name and reading a student's timeline (a supervisor with a stated reason);
and the refusals, each recorded in the audit trail."""

from __future__ import annotations

import html
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from conftest import ADMIN, STORES, Clock, fresh_app, make_school
from fastapi.testclient import TestClient
from web_support import Browser, DemoSite

from anxin.passwords import hash_password
from domain.common import Actor, InvalidInput
from domain.pairing import Pairing
from web import i18n
from web.app import create_app

XSS = "<script>alert(1)</script>\"' ; DROP TABLE x; --"
CLASS = "七年级1班"  # teacher1's class


def _actor(site: DemoSite, username: str) -> Actor:
    return site.app.gate.actor(site.app.accounts.account(username)[0])


def _denials(site: DemoSite, staff_id: str, action: str) -> int:
    return site.app.db.fetchone(
        "SELECT COUNT(*) FROM {t}anxin_access WHERE actor_id = ? AND action = ? AND allowed = 0", (staff_id, action)
    )[0]


@contextmanager
def _days_ago(site: DemoSite, days: int) -> Iterator[None]:
    """Run commands as if `days` ago (the application's clock, put back after)."""
    clock = site.app.clock
    site.app.clock = lambda: clock() - timedelta(days=days)
    try:
        yield
    finally:
        site.app.clock = clock


def _student(site: DemoSite, name: str | None = None, class_name: str = CLASS) -> str:
    """A new student in a class of school 1 (the administrator enrols them)."""
    admin = _actor(site, "admin")
    school = _actor(site, "teacher1").school_id
    tag = uuid.uuid4().hex[:8]
    return site.app.roster.enrol_student(
        admin,
        school_id=school,
        student_no="T" + tag,
        name=name or f"测试{tag}",
        gender="女",
        birth_date=date(2013, 3, 1),
        grade="七年级",
        class_name=class_name,
    )


def _pairing(
    site: DemoSite, teacher: str = "teacher1", name: str | None = None, days_ago: int = 20, class_name: str = CLASS
) -> tuple[str, str]:
    """(pairing id, student id): the principal pairs the teacher with a new student of their class,
    `days_ago` days ago (so the first check-in is already due)."""
    student = _student(site, name, class_name)
    with _days_ago(site, days_ago):
        pid = site.app.pairings.pair(
            _actor(site, "principal1"), staff_id=_actor(site, teacher).staff_id, student_id=student
        )
    return pid, student


def _read(site: DemoSite, pid: str) -> Pairing:
    return site.app.pairings.get_pairing(_actor(site, "principal1"), pid)


def _check_in(site: DemoSite, b: Any, pid: str, **fields: Any) -> Any:
    data = {
        "held_on": site.app.now().date().isoformat(),
        "thinking": "思想积极",
        "studies": "",
        "family": "",
        "difficulties": "",
        "expected_version": str(_read(site, pid).version),
    }
    data.update(fields)
    return b.post(f"/pairings/{pid}/check-ins", data)


def _page_version(text: str) -> str:
    found = re.search(r'name="expected_version" value="(\d+)"', text)
    assert found
    return found.group(1)


# -- the board ----------------------------------------------------------------------------------
def test_teacher_sees_own_pairings_overdue_first(site: DemoSite, browse) -> None:
    name = "排序" + uuid.uuid4().hex[:4]
    pid, _ = _pairing(site, name=name, days_ago=40)
    b = browse("teacher1")
    page = b.get("/pairings")
    assert page.status_code == 200 and "我的结对学生" in page.text
    assert f'href="/pairings/{pid}"' in page.text and name in page.text
    # Every overdue line comes before every line that is not.
    rows = re.findall(
        r'<tr class="(overdue)?"[^>]*>\s*<td data-label', page.text.split('id="mine"')[1].split("</section>")[0]
    )
    flags = [bool(r) for r in rows]
    assert flags and flags[0] and flags == sorted(flags, reverse=True)
    # teacher2's pairings are not on teacher1's board.
    other, _ = _pairing(site, teacher="teacher2", class_name="七年级2班")
    assert f"/pairings/{other}" not in b.get("/pairings").text


def test_principal_sees_school_by_class_and_creates_a_pairing(site: DemoSite, browse) -> None:
    b = browse("principal1")
    page = b.get("/pairings")
    assert page.status_code == 200 and "全校结对情况（按班级）" in page.text and "新建结对" in page.text
    assert f"?class={CLASS}" in html.unescape(page.text).replace("%E4%B8%83%E5%B9%B4%E7%BA%A71%E7%8F%AD", CLASS)
    student = _student(site, "新结对" + uuid.uuid4().hex[:4])
    teacher = _actor(site, "teacher1")
    r = b.post("/pairings/new", {"staff_id": teacher.staff_id, "student_id": student, "cadence_days": "10"})
    assert r.status_code == 303
    pid = r.headers["location"].rsplit("/", 1)[1]
    p = _read(site, pid)
    assert (p.staff_id, p.student_id, p.cadence_days) == (teacher.staff_id, student, 10)
    filtered = b.get(f"/pairings?class={CLASS}")
    assert filtered.status_code == 200 and f"/pairings/{pid}" in filtered.text
    assert "七年级2班" not in filtered.text.split('id="school"')[1].split("新建结对")[0].split("</table>", 1)[1]
    # The same pairing again is refused with the message, nothing written.
    again = b.post("/pairings/new", {"staff_id": teacher.staff_id, "student_id": student, "cadence_days": "10"})
    assert again.status_code == 400 and "该教师已与该学生结对" in again.text
    # A safety lead sees the counts per class and pairs, the student named in the picker
    # (no list of the school's students in the page).
    safety = browse("safety1")
    counts = safety.get(f"/pairings?class={CLASS}")
    assert counts.status_code == 200 and "全校结对情况（按班级）" in counts.text and "新建结对" in counts.text
    assert (
        f"/pairings/{pid}" not in counts.text
        and 'name="student"' in counts.text
        and "data-student-picker" in counts.text
    )
    other = _student(site)
    number = site.app.student_ref(other).student_no
    r = safety.post("/pairings/new", {"staff_id": _actor(site, "teacher2").staff_id, "student": number})
    assert r.status_code == 303 and _read(site, r.headers["location"].rsplit("/", 1)[1]).student_id == other
    # A class teacher may not pair: 403, recorded.
    t = browse("teacher1")
    before = _denials(site, teacher.staff_id, "pairing.create")
    assert t.post("/pairings/new", {"staff_id": teacher.staff_id, "student_id": _student(site)}).status_code == 403
    assert _denials(site, teacher.staff_id, "pairing.create") == before + 1


# -- check-ins ----------------------------------------------------------------------------------
def test_record_check_in_shows_it_and_moves_next_due(site: DemoSite, browse) -> None:
    pid, _ = _pairing(site)
    before = _read(site, pid)
    assert before.is_overdue(site.app.now().date())
    b = browse("teacher1")
    page = b.get(f"/pairings/{pid}")
    assert page.status_code == 200 and "记录一次谈心" in page.text and "已逾期" in page.text
    assert _page_version(page.text) == str(before.version)
    note = "最近学习很努力 " + uuid.uuid4().hex[:6]
    r = _check_in(site, b, pid, studies=note, family="父母关心", expected_version=_page_version(page.text))
    assert r.status_code == 303 and r.headers["location"] == f"/pairings/{pid}"
    after = _read(site, pid)
    today = site.app.now().date()
    assert after.version == before.version + 1 and after.last_check_in == today
    assert after.next_due == today + timedelta(days=after.cadence_days) and after.next_due > before.next_due
    shown = b.get(f"/pairings/{pid}")
    assert "谈心记录已保存" in shown.text and note in shown.text and "父母关心" in shown.text
    assert "已逾期" not in shown.text
    board = b.get("/pairings").text
    row = board.split(f'href="/pairings/{pid}"')[0].rsplit("<tr", 1)[1]
    assert 'class="overdue"' not in row


def test_check_in_missing_fields_keeps_what_was_typed_and_writes_nothing(site: DemoSite, browse) -> None:
    pid, _ = _pairing(site)
    version = _read(site, pid).version
    b = browse("teacher1")
    # No dimension filled in.
    r = _check_in(site, b, pid, thinking="", concern_note="保留的担忧说明")
    assert r.status_code == 400 and "四个方面至少填写一项" in r.text and "保留的担忧说明" in r.text
    # A concern without its note.
    r = _check_in(site, b, pid, thinking="心情低落 " + XSS, concern="1", concern_note="")
    assert r.status_code == 400 and "担忧说明不能为空" in r.text
    assert "心情低落 &lt;script&gt;alert(1)&lt;/script&gt;" in r.text and "<script>alert(1)" not in r.text
    assert 'name="concern" value="1" checked' in r.text
    # No date, or a date in the future.
    r = _check_in(site, b, pid, held_on="")
    assert r.status_code == 400 and "谈心日期格式应为 YYYY-MM-DD" in r.text
    r = _check_in(site, b, pid, held_on=(site.app.now().date() + timedelta(days=2)).isoformat())
    assert r.status_code == 400 and "谈心日期不能晚于今天" in r.text
    p = _read(site, pid)
    assert p.version == version and not p.check_ins


def test_stale_page_gets_409_and_nothing_is_overwritten(site: DemoSite, browse) -> None:
    pid, _ = _pairing(site)
    b = browse("teacher1")
    stale = _page_version(b.get(f"/pairings/{pid}").text)
    assert _check_in(site, b, pid, thinking="第一次").status_code == 303
    r = _check_in(site, b, pid, thinking="过期页面上写的", expected_version=stale)
    assert r.status_code == 409 and "该记录已被他人修改" in r.text and "过期页面上写的" in r.text
    assert _page_version(r.text) == str(_read(site, pid).version)  # the form now carries the current version
    p = _read(site, pid)
    assert [c["notes"]["thinking"] for c in p.check_ins.values()] == ["第一次"]


def test_check_in_text_renders_escaped(site: DemoSite, browse) -> None:
    pid, student = _pairing(site, name="王" + XSS)
    b = browse("teacher1")
    assert _check_in(site, b, pid, thinking=XSS, concern="1", concern_note="担忧 " + XSS).status_code == 303
    for path in (f"/pairings/{pid}", "/pairings", f"/students/{student}"):
        page = b.get(path)
        assert page.status_code == 200, path
        assert "<script>alert(1)" not in page.text and "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text, path


# -- escalation and end ---------------------------------------------------------------------------
def _concern(site: DemoSite, b: Any, pid: str) -> str:
    assert _check_in(site, b, pid, thinking="情绪低落", concern="1", concern_note="常独自一人").status_code == 303
    return next(iter(_read(site, pid).check_ins))


def test_escalate_to_support_file_and_bullying_report(site: DemoSite, browse) -> None:
    pid, student = _pairing(site)
    b = browse("teacher1")
    ci = _concern(site, b, pid)
    page = b.get(f"/pairings/{pid}")
    assert "担忧未处理" in page.text and "上报为心理档案" in page.text and "上报为欺凌报告" in page.text
    version = _page_version(page.text)
    # A missing reason: 400, the form kept open with what was typed; nothing written.
    r = b.post(
        f"/pairings/{pid}/escalate",
        {
            "check_in_id": ci,
            "target": "support_file",
            "category": "人际关系",
            "risk_level": "key",
            "reason": "",
            "expected_version": version,
        },
    )
    assert r.status_code == 400 and "建档原因不能为空" in r.text and 'value="人际关系" selected' in r.text
    assert _read(site, pid).version == int(version)
    r = b.post(
        f"/pairings/{pid}/escalate",
        {
            "check_in_id": ci,
            "target": "support_file",
            "category": "人际关系",
            "risk_level": "key",
            "reason": "需要心理支持",
            "expected_version": version,
        },
    )
    assert r.status_code == 303
    p = _read(site, pid)
    file_id = next(e["target_id"] for e in p.escalations if e["target"] == "support_file")
    principal = _actor(site, "principal1")
    assert site.app.support.get_support_file(principal, file_id).student_id == student
    r = b.post(
        f"/pairings/{pid}/escalate",
        {
            "check_in_id": ci,
            "target": "bullying_case",
            "occurred_on": site.app.now().date().isoformat(),
            "place": "教室",
            "forms": ["verbal", "online"],
            "narrative": "被同学排挤",
            "reason": "学生自述",
            "expected_version": str(p.version),
        },
    )
    assert r.status_code == 303
    p = _read(site, pid)
    case_id = next(e["target_id"] for e in p.escalations if e["target"] == "bullying_case")
    case = site.app.cases.get_case(principal, case_id)
    assert {f for f in case.forms} == {"verbal", "online"} and case.narrative == "被同学排挤"
    shown = b.get(f"/pairings/{pid}").text
    assert f'href="/support/{file_id}"' in shown and f'href="/cases/{case_id}"' in shown
    assert "担忧已上报" in shown and "上报为心理档案" not in shown and "上报为欺凌报告" not in shown
    assert not p.open_concerns
    # the link to the file opens its status page for the teacher who escalated it (not a 403):
    # that it exists, who is responsible, the next step's date, no crisis; no level, no notes
    f = site.app.support.get_support_file(principal, file_id)
    before = _denials(site, _actor(site, "teacher1").staff_id, "file.status")
    status = b.get(f"/support/{file_id}")
    assert status.status_code == 200 and "心理档案状态" in status.text
    facts = status.text.split('id="file-status-facts"', 1)[1].split("</dl>", 1)[0]
    assert site.app.roster.staff_name(f.responsible_id) in facts
    due = f.first_contact["due"]
    assert f"心理老师首次接触学生：{due.year}年{due.month}月{due.day}日" in facts
    assert '<dd id="file-crisis">无</dd>' in facts
    assert "重点关注" not in status.text and "需要心理支持" not in status.text and "人际关系" not in status.text
    assert _denials(site, _actor(site, "teacher1").staff_id, "file.status") == before
    allowed = site.app.db.fetchone(
        "SELECT COUNT(*) FROM {t}anxin_access WHERE actor_id = ? AND action = 'file.status' AND allowed = 1 "
        "AND resource_id = ?",
        (_actor(site, "teacher1").staff_id, file_id),
    )
    assert allowed is not None and allowed[0] == 1


def test_end_pairing(site: DemoSite, browse) -> None:
    pid, _ = _pairing(site)
    b = browse("teacher1")
    r = b.post(f"/pairings/{pid}/end", {"reason": ""})
    assert r.status_code == 400 and "结束原因不能为空" in r.text and _read(site, pid).active
    r = b.post(f"/pairings/{pid}/end", {"reason": "学生转班"})
    assert r.status_code == 303
    assert not _read(site, pid).active
    page = b.get(f"/pairings/{pid}")
    assert page.status_code == 200 and "已结束" in page.text and "保存谈心记录" not in page.text
    assert f"/pairings/{pid}" not in b.get("/pairings").text  # an ended pairing leaves the board
    r = _check_in(site, b, pid)
    assert r.status_code == 400 and "不能记录谈心" in r.text


# -- refusals -------------------------------------------------------------------------------------
def test_teacher_cannot_open_another_teachers_pairing_or_student(site: DemoSite, browse) -> None:
    pid, other_student = _pairing(site, teacher="teacher2", class_name="七年级2班")
    teacher = _actor(site, "teacher1")
    b = browse("teacher1")
    before = _denials(site, teacher.staff_id, "pairing.read")
    r = b.get(f"/pairings/{pid}")
    assert r.status_code == 403 and "无权执行此操作" in r.text
    assert _denials(site, teacher.staff_id, "pairing.read") == before + 1
    writes = _denials(site, teacher.staff_id, "pairing.write")
    assert _check_in(site, b, pid).status_code == 403
    assert _denials(site, teacher.staff_id, "pairing.write") == writes + 1
    assert not _read(site, pid).check_ins
    reads = _denials(site, teacher.staff_id, "student.read")
    r = b.get(f"/students/{other_student}")
    assert r.status_code == 403
    assert _denials(site, teacher.staff_id, "student.read") >= reads + 1
    assert b.get(f"/pairings/{uuid.uuid4()}").status_code == 404


# -- students -------------------------------------------------------------------------------------
def test_student_search_by_name_and_class_list(site: DemoSite, browse) -> None:
    name = "欧阳" + uuid.uuid4().hex[:4]
    student = _student(site, name)
    other = _student(site, name, class_name="七年级2班")  # the same name in another class
    b = browse("teacher1")
    page = b.get("/students")
    assert page.status_code == 200 and f"本班学生：{CLASS}" in page.text and f"/students/{student}" in page.text
    found = b.get("/students", params={"q": name})
    assert found.status_code == 200 and "找到 1 名学生" in found.text
    assert f"/students/{student}" in found.text and f"/students/{other}" not in found.text
    by_surname = b.get("/students", params={"q": "欧阳"})
    assert f"/students/{student}" in by_surname.text
    principal = browse("principal1").get("/students", params={"q": name})
    assert f"/students/{student}" in principal.text and f"/students/{other}" in principal.text
    assert "没有找到" in b.get("/students", params={"q": "不存在的" + uuid.uuid4().hex[:4]}).text


def test_timeline_shows_the_check_in(site: DemoSite, browse) -> None:
    pid, student = _pairing(site)
    b = browse("teacher1")
    note = "谈心内容 " + uuid.uuid4().hex[:6]
    assert _check_in(site, b, pid, thinking=note).status_code == 303
    page = b.get(f"/students/{student}")
    assert page.status_code == 200 and "时间线" in page.text
    assert "记录谈心" in page.text and note in page.text and "一岗双带结对" in page.text and "入学登记" in page.text
    assert f'href="/pairings/{pid}"' in page.text


def test_supervisor_break_glass_on_a_timeline(site: DemoSite, browse) -> None:
    pid, student = _pairing(site, name="督导查阅" + uuid.uuid4().hex[:4])
    b = browse("supervisor1")
    supervisor = _actor(site, "supervisor1")
    reads = site.app.db.fetchone("SELECT COUNT(*) FROM {t}anxin_access WHERE actor_id = ?", (supervisor.staff_id,))[0]
    page = b.get(f"/students/{student}")
    assert page.status_code == 200 and "说明查阅理由" in page.text and f'action="/students/{student}/open"' in page.text
    assert (
        site.app.db.fetchone("SELECT COUNT(*) FROM {t}anxin_access WHERE actor_id = ?", (supervisor.staff_id,))[0]
        == reads
    )  # no read made yet
    short = b.post(f"/students/{student}/open", {"break_glass_reason": "看"})
    assert short.status_code == 400 and "不少于6个字" in short.text and "督导查阅" not in short.text
    reason = "核查家长投诉 " + uuid.uuid4().hex[:6]
    opened = b.post(f"/students/{student}/open", {"break_glass_reason": reason})
    # the student's own record; the pairing listed (kind, status), to be opened with a reason of its own
    assert opened.status_code == 200 and "督导查阅" in opened.text and "一岗双带结对" not in opened.text
    assert "该学生的相关记录" in opened.text and f'href="/pairings/{pid}"' in opened.text and "结对中" in opened.text
    rows = site.app.db.fetch(
        "SELECT action, allowed, break_glass FROM {t}anxin_access WHERE actor_id = ? AND resource_id = ? ORDER BY id",
        (supervisor.staff_id, student),
    )
    assert ("student.read", 1) in [(a, int(ok)) for a, ok, bg in rows if bg]


def test_pages_in_english(site: DemoSite, browse) -> None:
    pid, student = _pairing(site)
    b = browse("teacher1")
    b.get("/lang/en?next=/pairings")
    board = b.get("/pairings")
    assert board.status_code == 200 and "My paired students" in board.text and "Next check-in due" in board.text
    page = b.get(f"/pairings/{pid}")
    assert "Record a check-in" in page.text and "Save the check-in" in page.text and "记录一次谈心" not in page.text
    r = _check_in(site, b, pid, thinking="")
    message = i18n.error_text(InvalidInput(reason="四个方面至少填写一项"), "en")
    assert r.status_code == 400 and message in html.unescape(r.text) and "Check-ins" in r.text
    assert "Timeline" in b.get(f"/students/{student}").text
    assert "Find by name" in b.get("/students").text


# -- erased records, on a store of their own (shredding destroys) --------------------------------
@pytest.mark.parametrize("kind", STORES)
def test_erased_pairing_shows_as_deleted(kind: str) -> None:
    clock = Clock(datetime.now(UTC) - timedelta(days=10))
    with fresh_app(kind, clock) as app:
        school = make_school(app)
        student = school.student("2026001")
        pid = app.pairings.pair(school.principal, staff_id=school.teacher.staff_id, student_id=student)
        clock.advance(days=10)
        app.pairings.record_check_in(school.teacher, pid, held_on=clock.today, notes={"thinking": "秘密内容"})
        app.erasure.shred(ADMIN, pid, "家长申请删除")
        app.accounts.set_password_hash(school.teacher.staff_id, hash_password("teacher-pass-1"))
        with TestClient(create_app(app, background_seconds=None), base_url="http://testserver") as client:
            b = Browser(client, None).login(f"teacher-{school.id[:4]}", "teacher-pass-1")
            line = b.get(f"/students/{student}")
            assert line.status_code == 200 and "张小明" in line.text
            assert "已删除" in line.text and "秘密内容" not in line.text and "入学登记" in line.text
            board = b.get("/pairings")
            assert board.status_code == 200 and "已删除" in board.text and f"/pairings/{pid}" not in board.text
            assert b.get(f"/pairings/{pid}").status_code == 410
