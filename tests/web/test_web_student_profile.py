"""The student page (/students/{id}) as a profile above the timeline, over HTTP on both
stores: the student's class, guardians and tags for those who may see the student; their
bullying cases, support files and pairing as far as each viewer may see them (numbers
linking to each; what the viewer may not see is neither shown nor hinted at); every read
recorded by the gate; each kind of timeline entry labelled as it means its fields."""

from __future__ import annotations

import re
import uuid
from datetime import date, timedelta
from typing import Any

from web_support import DemoSite

from domain.common import Actor

PHONE = "13800138123"


def _actor(site: DemoSite, username: str) -> Actor:
    return site.app.gate.actor(site.app.accounts.account(username)[0])


def _student(site: DemoSite) -> dict[str, Any]:
    """A new student of teacher1's class (七年级1班) with a guardian and a tag, a support file
    of counselor1's, a bullying case (as the targeted student) and a pairing with teacher1."""
    app = site.app
    admin, c1, safety = _actor(site, "admin"), _actor(site, "counselor1"), _actor(site, "safety1")
    teacher = _actor(site, "teacher1")
    school = c1.school_id or ""
    name = "欧阳" + uuid.uuid4().hex[:3]
    guardian = "欧阳" + uuid.uuid4().hex[:2] + "妈"
    sid = app.roster.enrol_student(
        admin,
        school_id=school,
        student_no="P" + uuid.uuid4().hex[:8],
        name=name,
        gender="女",
        birth_date=date(2013, 4, 2),
        grade="七年级",
        class_name="七年级1班",
        guardians=[{"name": guardian, "phone": PHONE}],
        tags=["留守儿童"],
    )
    fid = app.support.open_support_file(c1, sid, category="情绪困扰", risk_level="key", reason="课堂上多次哭泣")
    app.support.draw_up_plan(c1, fid, goals=["情绪稳定"], measures=[{"text": "每周一次个体辅导", "by": "心理老师"}])
    app.support.record_session(c1, fid, held_on=app.now().date(), summary="谈到与同桌的矛盾")
    case_id = app.cases.report_bullying(
        safety,
        school_id=school,
        channel="teacher",
        occurred_at=app.now() - timedelta(days=1),
        place="操场",
        forms=["verbal"],
        parties=[(sid, "targeted")],
        narrative="课间被同学起外号",
    )
    pairing = app.pairings.pair(safety, staff_id=teacher.staff_id, student_id=sid)
    app.pairings.record_check_in(teacher, pairing, held_on=app.now().date(), notes={"thinking": "情绪平稳"})
    return {"id": sid, "name": name, "guardian": guardian, "file": fid, "case": case_id, "pairing": pairing}


def _records(page: str) -> str:
    """The profile's list of cases, files and pairings."""
    return page.split('id="student-records"', 1)[1].split("</section>", 1)[0]


def _numbers(site: DemoSite, *ids: str) -> dict[str, str]:
    found = site.app.record_numbers(list(ids))
    return {i: found[i].text for i in ids}


def _reads(site: DemoSite, staff_id: str, action: str, resource_id: str) -> int:
    return site.app.db.fetchone(
        "SELECT COUNT(*) FROM {t}anxin_access WHERE actor_id = ? AND action = ? AND resource_id = ? AND allowed = 1",
        (staff_id, action, resource_id),
    )[0]


def test_the_principal_sees_the_profile_and_every_record_each_linked_by_its_number(site: DemoSite, browse: Any) -> None:
    s = _student(site)
    nos = _numbers(site, s["file"], s["case"], s["pairing"])
    page = browse("principal1").get(f"/students/{s['id']}")
    assert page.status_code == 200
    profile = page.text.split('id="student-profile"', 1)[1].split("</section>", 1)[0]
    assert "七年级1班" in profile and s["guardian"] in profile and f'href="tel:{PHONE}"' in profile
    assert "留守儿童" in profile and "女" in profile
    records = _records(page.text)
    for kind, href in (("file", "/support/"), ("case", "/cases/"), ("pairing", "/pairings/")):
        assert f'href="{href}{s[kind]}">{nos[s[kind]]}</a>' in records, kind
    assert nos[s["file"]].startswith("XL-") and nos[s["case"]].startswith("QL-") and nos[s["pairing"]].startswith("JD-")
    assert "被欺凌学生" in records and "跟进中" in records and "结对中" in records
    # the profile comes before the timeline
    assert page.text.index('id="student-profile"') < page.text.index('id="timeline-h"')


def test_each_role_sees_only_the_records_it_may_and_nothing_of_the_others(site: DemoSite, browse: Any) -> None:
    s = _student(site)
    nos = _numbers(site, s["file"], s["case"], s["pairing"])
    # counselor1: the file they hold; not the case, not the pairing (not even their numbers)
    page = browse("counselor1").get(f"/students/{s['id']}").text
    assert s["guardian"] in page and PHONE in page
    records = _records(page)
    assert nos[s["file"]] in records
    for hidden in ("case", "pairing"):
        assert s[hidden] not in page and nos[s[hidden]] not in page, hidden
    assert "欺凌案件" not in records and "一岗双带" not in records
    # teacher1 (class teacher, paired with the student): the case's status only, the pairing;
    # not the file (the counselling notes are not theirs), and not its number
    page = browse("teacher1").get(f"/students/{s['id']}").text
    records = _records(page)
    assert f'href="/cases/{s["case"]}"' in records and "（仅状态）" in records
    assert f'href="/pairings/{s["pairing"]}"' in records
    assert s["file"] not in page and nos[s["file"]] not in page and "谈到与同桌的矛盾" not in page
    assert "课间被同学起外号" not in page  # a status line shows no narrative
    # safety1: the case in full; neither the file nor the pairing
    page = browse("safety1").get(f"/students/{s['id']}").text
    records = _records(page)
    assert nos[s["case"]] in records and "（仅状态）" not in records
    assert s["file"] not in page and s["pairing"] not in page


def test_a_teacher_of_another_class_is_refused_the_page_and_sees_no_guardian(site: DemoSite, browse: Any) -> None:
    s = _student(site)
    other = next(
        u
        for u in ("teacher2", "teacher3", "teacher4")
        if "七年级1班" not in _actor(site, u).classes
        and _actor(site, u).school_id == _actor(site, "teacher1").school_id
    )
    page = browse(other).get(f"/students/{s['id']}")
    assert page.status_code == 403
    for secret in (s["name"], s["guardian"], PHONE, "留守儿童", s["file"], s["case"]):
        assert secret not in page.text, secret


def test_every_read_of_the_page_is_recorded_by_the_gate(site: DemoSite, browse: Any) -> None:
    s = _student(site)
    principal = _actor(site, "principal1").staff_id
    before = {
        (a, r): _reads(site, principal, a, r)
        for a, r in (
            ("student.read", s["id"]),
            ("file.read", s["file"]),
            ("case.read", s["case"]),
            ("pairing.read", s["pairing"]),
        )
    }
    assert browse("principal1").get(f"/students/{s['id']}").status_code == 200
    for (action, resource), n in before.items():
        assert _reads(site, principal, action, resource) == n + 1, action
    # a teacher who sees the case's status only: that is what is recorded
    teacher = _actor(site, "teacher1").staff_id
    n = _reads(site, teacher, "case.status", s["case"])
    browse("teacher1").get(f"/students/{s['id']}")
    assert _reads(site, teacher, "case.status", s["case"]) == n + 1
    assert _reads(site, teacher, "file.read", s["file"]) == 0


def test_each_kind_of_timeline_entry_has_its_own_labels(site: DemoSite, browse: Any) -> None:
    s = _student(site)
    page = browse("principal1").get(f"/students/{s['id']}").text
    entries = re.findall(r'<li class="entry kind-(\w+)[^"]*">(.*?)</li>', page, re.S)
    by_kind: dict[str, list[str]] = {}
    for kind, body in entries:
        by_kind.setdefault(kind, []).append(body)
    check_in = next(b for b in by_kind["pairing"] if "记录谈心" in b)
    assert "谈心日期" in check_in and "思想状况" in check_in
    session = next(b for b in by_kind["file"] if "心理辅导" in b)
    assert "辅导日期" in session and "辅导记录" in session and "谈心" not in session
    plan = next(b for b in by_kind["file"] if "制定帮扶方案" in b)
    assert "每周一次个体辅导（心理老师）" in plan and "情绪稳定" in plan
    opened = next(b for b in by_kind["file"] if "建立心理档案" in b)
    assert "重点关注" in opened and ">key<" not in opened and "建档原因" in opened
    assert all("谈心" not in b for b in by_kind["case"])


def test_a_case_follow_up_is_labelled_as_a_follow_up_not_as_a_check_in() -> None:
    """The labels of a case's follow-up (回访) and of a pairing's check-in (谈心), from the
    same fields (held_on, notes): each its own."""
    from projections.timeline import TimelineEntry
    from web.routes.students import _details

    def entry(kind: str, event_type: str, details: dict[str, Any]) -> TimelineEntry:
        return TimelineEntry(1, None, "s", kind, event_type, "", "full", details=details)

    follow_up = _details(entry("case", "FollowUpRecorded", {"held_on": date(2026, 10, 12), "notes": "情况稳定"}))
    assert [label for label, _ in follow_up] == ["回访日期", "回访情况"]
    check_in = _details(
        entry("pairing", "CheckInRecorded", {"held_on": date(2026, 10, 12), "notes": {"family": "和睦"}})
    )
    assert [label for label, _ in check_in] == ["谈心日期", "家庭环境"]
    review = _details(entry("file", "PlanReviewed", {"notes": "好转", "outcome": "continue"}))
    assert review == [("复评意见", "好转"), ("复评结论", "维持方案")]
