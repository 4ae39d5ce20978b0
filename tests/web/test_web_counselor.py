"""The counselor's journeys (心理档案 · 一人一策, screenings) over HTTP, on both stores:
the caseload and the register, opening a file and working it through every form (each
result read back through the application), refusals (no reason, stale page, another
counselor's file), the supervisor's reasoned reading, and screening imports."""

from __future__ import annotations

import random
import re
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
from conftest import ADMIN, STORES, Clock, fresh_app, make_school
from fastapi.testclient import TestClient
from web_support import Browser, DemoSite

from anxin.passwords import hash_password
from domain.common import Actor
from projections.support_register import coverage
from web.app import create_app

XSS = "<script>alert(1)</script>\"' ; DROP TABLE x; --"
VERSION = re.compile(r'name="expected_version" value="(\d+)"')
PICKED: set[str] = set()


def _actor(site: DemoSite, username: str) -> Actor:
    return site.app.gate.actor(site.app.accounts.account(username)[0])


def _school(site: DemoSite, username: str = "counselor1") -> str:
    return _actor(site, username).school_id or ""


def _free_students(site: DemoSite, n: int = 1, *, unscreened: bool = False) -> list[Any]:
    """Active students of school 1 with no open file (and, if asked, not screened this
    year) that no other test of this file has used: their StudentRefs."""
    app = site.app
    school = _school(site)
    with_file = {
        r[0]
        for r in app.db.fetch("SELECT subject_id FROM {t}anxin_directory WHERE kind = 'file' AND status = 'open'", ())
    }
    rows = [
        r[0]
        for r in app.db.fetch(
            "SELECT stream_id FROM {t}anxin_directory WHERE school_id = ? AND kind = 'student' AND status = 'active' "
            "AND erased = 0",
            (school,),
        )
    ]
    if unscreened:
        todo = set(coverage(app, _actor(site, "counselor1"), school).not_screened)
        rows = [r for r in rows if r in todo]
    free = sorted(r for r in rows if r not in with_file and r not in PICKED)
    chosen = random.Random(len(PICKED)).sample(free, n)
    PICKED.update(chosen)
    return [app.student_ref(sid) for sid in chosen]


def _version(page: str) -> str:
    found = VERSION.search(page)
    assert found, "no expected_version on the page"
    return found.group(1)


def _open(site: DemoSite, b: Any, student_no: str, **fields: str) -> str:
    data = {
        "student_no": student_no,
        "origin": "judgement",
        "risk_level": "general",
        "category": "情绪困扰",
        "reason": "课堂上多次哭泣",
        **fields,
    }
    r = b.post("/support/new", data)
    assert r.status_code == 303, r.text[:2000]
    file_id = r.headers["location"].rsplit("/", 1)[-1]
    assert r.headers["location"] == f"/support/{file_id}"
    return file_id


def _file(site: DemoSite, file_id: str) -> Any:
    return site.app.support.get_support_file(_actor(site, "principal1"), file_id)


def _denials(site: DemoSite, staff_id: str, action: str, resource_id: str) -> int:
    return site.app.db.fetchone(
        "SELECT COUNT(*) FROM {t}anxin_access WHERE actor_id = ? AND action = ? AND resource_id = ? AND allowed = 0",
        (staff_id, action, resource_id),
    )[0]


def test_caseload_and_register(site: DemoSite, browse) -> None:
    b = browse("counselor1")
    me = _actor(site, "counselor1")
    [student] = _free_students(site)
    file_id = _open(site, b, student.student_no, risk_level="key")
    page = b.get("/support")
    assert page.status_code == 200 and "我负责的档案" in page.text and "本校心理档案台账" in page.text
    caseload = page.text.split('id="register"')[0]
    assert f"/support/{file_id}" in caseload and student.name in caseload
    mine = site.app.support.my_support_files(me)
    assert file_id in {line.file_id for line in mine}
    for line in mine:  # every file of the caseload is on the page
        assert f"/support/{line.file_id}" in caseload
    # The register, filtered by risk level: the 重点关注 file is there, not under 高危.
    key = b.get("/support?risk=key")
    assert f"/support/{file_id}" in key.text.split('id="register"')[1]
    high = b.get("/support?risk=high")
    assert f"/support/{file_id}" not in high.text.split('id="register"')[1]
    assert "高危" in high.text


def test_principal_sees_register_and_safety_lead_is_refused_it(site: DemoSite, browse) -> None:
    c = browse("counselor1")
    [student] = _free_students(site)
    file_id = _open(site, c, student.student_no)
    p = browse("principal1").get("/support")
    assert p.status_code == 200 and f"/support/{file_id}" in p.text and student.name in p.text
    s = browse("safety1").get("/support")
    assert s.status_code == 403 and "本校心理档案台账" in s.text
    assert f"/support/{file_id}" not in s.text and student.name not in s.text
    safety = _actor(site, "safety1")
    assert (
        site.app.db.fetchone(
            "SELECT COUNT(*) FROM {t}anxin_access WHERE actor_id = ? AND action = 'file.list' AND allowed = 0",
            (safety.staff_id,),
        )[0]
        >= 1
    )


def test_open_file_and_work_it_through_every_step(site: DemoSite, browse) -> None:
    b = browse("counselor1")
    [student] = _free_students(site)
    form = b.get(f"/support/new?student={student.id}")
    assert form.status_code == 200 and student.name in form.text and student.student_no in form.text
    file_id = _open(site, b, "", student_id=student.id, origin="screening")
    page = b.get(f"/support/{file_id}")
    assert page.status_code == 200 and student.name in page.text and "心理筛查" in page.text
    f = _file(site, file_id)
    assert (
        f.student_id == student.id
        and f.origin == "screening"
        and f.responsible_id == _actor(site, "counselor1").staff_id
    )

    # A counselling session.
    r = b.post(
        f"/support/{file_id}/session",
        {
            "expected_version": _version(page.text),
            "held_on": "",
            "duration_minutes": "45",
            "summary": "谈到期中考试的压力",
            "next_steps": "下周再约",
        },
    )
    assert r.status_code == 303
    page = b.get(f"/support/{file_id}")
    assert "谈到期中考试的压力" in page.text and "已记录辅导" in page.text
    [session] = _file(site, file_id).sessions
    assert session["summary"] == "谈到期中考试的压力" and session["duration_minutes"] == 45

    # Raising the risk level: refused without a reason (nothing written), then with one.
    version = _file(site, file_id).version
    r = b.post(
        f"/support/{file_id}/risk",
        {"expected_version": _version(page.text), "from_level": "general", "to_level": "high", "reason": "  "},
    )
    assert r.status_code == 400 and "调整原因不能为空" in r.text
    assert _file(site, file_id).version == version and _file(site, file_id).risk_level == "general"
    r = b.post(
        f"/support/{file_id}/risk",
        {
            "expected_version": _version(page.text),
            "from_level": "general",
            "to_level": "high",
            "reason": "自述有轻生念头",
        },
    )
    assert r.status_code == 303
    page = b.get(f"/support/{file_id}")
    assert "自述有轻生念头" in page.text
    f = _file(site, file_id)
    assert f.risk_level == "high" and f.risk_history[-1]["reason"] == "自述有轻生念头"
    # ... and lowering it again, with a reason.
    r = b.post(
        f"/support/{file_id}/risk",
        {
            "expected_version": _version(page.text),
            "from_level": "high",
            "to_level": "key",
            "reason": "已就医，情绪稳定",
        },
    )
    assert r.status_code == 303 and _file(site, file_id).risk_level == "key"

    # The plan: a measure without who carries it out is refused, the typed text kept.
    page = b.get(f"/support/{file_id}")
    r = b.post(
        f"/support/{file_id}/plan",
        {
            "expected_version": _version(page.text),
            "mode": "draw",
            "goals": "情绪稳定\n按时到校",
            "measure_text": ["每周一次个体辅导", "", ""],
            "measure_by": ["", "", ""],
        },
    )
    assert r.status_code == 400 and "负责人不能为空" in r.text and "情绪稳定\n按时到校" in r.text
    assert 'value="每周一次个体辅导"' in r.text
    assert _file(site, file_id).plan is None
    r = b.post(
        f"/support/{file_id}/plan",
        {
            "expected_version": _version(page.text),
            "mode": "draw",
            "goals": "情绪稳定\n按时到校",
            "measure_text": ["每周一次个体辅导", "", "每日关注课堂表现"],
            "measure_by": ["心理老师", "", "班主任"],
        },
    )
    assert r.status_code == 303
    plan = _file(site, file_id).plan
    assert plan["goals"] == ["情绪稳定", "按时到校"]
    assert plan["measures"] == [
        {"text": "每周一次个体辅导", "by": "心理老师"},
        {"text": "每日关注课堂表现", "by": "班主任"},
    ]
    page = b.get(f"/support/{file_id}")
    assert "按时到校" in page.text and "每日关注课堂表现" in page.text
    r = b.post(
        f"/support/{file_id}/plan",
        {
            "expected_version": _version(page.text),
            "mode": "revise",
            "goals": "情绪稳定",
            "measure_text": "每两周一次个体辅导",
            "measure_by": "心理老师",
            "reason": "情况好转",
        },
    )
    assert r.status_code == 303 and _file(site, file_id).plan["version"] == 2

    # Guardian contact, referral, review.
    page = b.get(f"/support/{file_id}")
    r = b.post(
        f"/support/{file_id}/guardian-contact",
        {"expected_version": _version(page.text), "guardian": "母亲", "method": "phone", "summary": "家长同意陪同就医"},
    )
    assert r.status_code == 303
    supervisor = _actor(site, "supervisor1")
    agency = next(
        (a.id for a in site.app.agencies.registry(supervisor) if a.name == "市精神卫生中心"), None
    ) or site.app.agencies.add_agency(supervisor, kind="mental_health", name="市精神卫生中心")
    page = b.get(f"/support/{file_id}")
    assert f'<option value="{agency}"' in page.text  # picked from the district's registry
    r = b.post(
        f"/support/{file_id}/referral",
        {"expected_version": _version(page.text), "agency_id": agency, "reason": "需要专业评估"},
    )
    assert r.status_code == 303
    page = b.get(f"/support/{file_id}")
    r = b.post(
        f"/support/{file_id}/review",
        {"expected_version": _version(page.text), "outcome": "continue", "notes": "方案执行良好"},
    )
    assert r.status_code == 303
    page = b.get(f"/support/{file_id}")
    assert "家长同意陪同就医" in page.text and "市精神卫生中心" in page.text and "方案执行良好" in page.text
    f = _file(site, file_id)
    assert [e["summary"] for e in f.guardian_contacts] == ["家长同意陪同就医"]
    assert [e["to"] for e in f.referrals] == ["市精神卫生中心"]
    assert [e["notes"] for e in f.reviews] == ["方案执行良好"]

    # Close, then reopen.
    r = b.post(f"/support/{file_id}/close", {"expected_version": _version(page.text), "reason": "风险已解除"})
    assert r.status_code == 303 and _file(site, file_id).status == "closed"
    page = b.get(f"/support/{file_id}")
    assert "风险已解除" in page.text and "重新开启档案" in page.text and "记录心理辅导" not in page.text
    r = b.post(f"/support/{file_id}/reopen", {"expected_version": _version(page.text), "reason": "再次出现失眠"})
    assert r.status_code == 303 and _file(site, file_id).status == "open"
    page = b.get(f"/support/{file_id}")
    assert "再次出现失眠" in page.text and "跟进中" in page.text


def test_crisis_category_and_reassign(site: DemoSite, browse) -> None:
    b = browse("counselor1")
    [student] = _free_students(site)
    file_id = _open(site, b, student.student_no)
    page = b.get(f"/support/{file_id}")
    r = b.post(
        f"/support/{file_id}/crisis",
        {
            "expected_version": _version(page.text),
            "what_happened": "课间情绪崩溃",
            "actions_taken": "全程陪护并通知家长",
        },
    )
    assert r.status_code == 303
    f = _file(site, file_id)
    assert f.risk_level == "high" and [e["what_happened"] for e in f.crises] == ["课间情绪崩溃"]
    page = b.get(f"/support/{file_id}")
    r = b.post(
        f"/support/{file_id}/category",
        {"expected_version": _version(page.text), "category": "自伤风险", "reason": "危机事件后重新评估"},
    )
    assert r.status_code == 303 and _file(site, file_id).category == "自伤风险"
    page = b.get(f"/support/{file_id}")
    c2 = _actor(site, "counselor2").staff_id
    r = b.post(
        f"/support/{file_id}/reassign",
        {"expected_version": _version(page.text), "responsible_id": c2, "reason": "工作调整"},
    )
    assert r.status_code == 303 and _file(site, file_id).responsible_id == c2
    # Now counselor2's file: counselor1 is refused it, counselor2 reads it.
    assert b.get(f"/support/{file_id}").status_code == 403
    assert browse("counselor2").get(f"/support/{file_id}").status_code == 200


def test_bad_inputs_rerender_the_form(site: DemoSite, browse) -> None:
    b = browse("counselor1")
    r = b.post(
        "/support/new",
        {"student_no": "no-such-number", "risk_level": "general", "category": "其他", "reason": "测试原因保留"},
    )
    assert r.status_code == 400 and "没有找到与「no-such-number」相符的学生" in r.text and "测试原因保留" in r.text
    assert 'value="no-such-number"' in r.text  # what was typed stays in the field
    [student] = _free_students(site)
    file_id = _open(site, b, student.student_no)
    r = b.post(
        "/support/new",
        {"student_no": student.student_no, "risk_level": "general", "category": "其他", "reason": "重复建档"},
    )
    assert r.status_code == 400 and "已有一份未结案的心理档案" in r.text
    page = b.get(f"/support/{file_id}")
    r = b.post(
        f"/support/{file_id}/session",
        {"expected_version": _version(page.text), "held_on": "2026-13-40", "summary": "保留这段文字"},
    )
    assert r.status_code == 400 and "YYYY-MM-DD" in r.text and "保留这段文字" in r.text
    assert _file(site, file_id).sessions == []


def test_stale_version_is_a_conflict(site: DemoSite, browse) -> None:
    b = browse("counselor1")
    [student] = _free_students(site)
    file_id = _open(site, b, student.student_no)
    page = b.get(f"/support/{file_id}")
    stale = _version(page.text)
    assert b.post(f"/support/{file_id}/session", {"expected_version": stale, "summary": "第一次"}).status_code == 303
    r = b.post(f"/support/{file_id}/session", {"expected_version": stale, "summary": "过期页面提交"})
    assert r.status_code == 409 and "该记录已被他人修改" in r.text and "过期页面提交" in r.text
    assert [e["summary"] for e in _file(site, file_id).sessions] == ["第一次"]
    r = b.post(f"/support/{file_id}/close", {"expected_version": stale, "reason": "过期"})
    assert r.status_code == 409 and _file(site, file_id).status == "open"


def test_each_kind_of_entry_has_a_correction_form_for_exactly_what_the_domain_lets_change() -> None:
    from domain.support import CORRECTABLE
    from web.routes.support import CORRECTION_FIELDS

    assert {k: {f for f, _, _ in fields} for k, fields in CORRECTION_FIELDS.items()} == {
        k: set(v) for k, v in CORRECTABLE.items()
    }


def test_an_entry_is_corrected_from_its_own_form_and_history_keeps_both(site: DemoSite, browse) -> None:
    b = browse("counselor1")
    [student] = _free_students(site)
    file_id = _open(site, b, student.student_no)
    page = b.get(f"/support/{file_id}")
    assert (
        b.post(
            f"/support/{file_id}/session",
            {
                "expected_version": _version(page.text),
                "held_on": "",
                "summary": "谈了考试焦虑",
                "duration_minutes": "30",
            },
        ).status_code
        == 303
    )
    [entry] = _file(site, file_id).sessions
    page = b.get(f"/support/{file_id}")
    action = f'action="/support/{file_id}/entries/{entry["id"]}/correct"'
    assert action in page.text and "更正此记录" in page.text
    url = f"/support/{file_id}/entries/{entry['id']}/correct"
    form = {
        "held_on": entry["held_on"].isoformat(),
        "duration_minutes": "30",
        "summary": "谈了考试焦虑",
        "next_steps": "",
    }
    # nothing changed: refused, nothing written, the form open again with the message
    r = b.post(url, {"expected_version": _version(page.text), **form, "correction_reason": "笔误"})
    assert r.status_code == 400 and "没有要更正的内容" in r.text
    # no reason: refused, and what was typed is kept
    r = b.post(
        url, {"expected_version": _version(page.text), **form, "summary": "谈了考试焦虑和睡眠", "correction_reason": ""}
    )
    assert r.status_code == 400 and "谈了考试焦虑和睡眠" in r.text
    assert _file(site, file_id).sessions[0]["corrections"] == []
    r = b.post(
        url,
        {
            "expected_version": _version(page.text),
            **form,
            "summary": "谈了考试焦虑和睡眠",
            "duration_minutes": "45",
            "correction_reason": "漏记了睡眠问题",
        },
    )
    assert r.status_code == 303
    [entry] = _file(site, file_id).sessions
    assert (entry["summary"], entry["duration_minutes"]) == ("谈了考试焦虑和睡眠", 45)
    [c] = entry["corrections"]
    assert c["changes"] == {"summary": "谈了考试焦虑和睡眠", "duration_minutes": 45} and c["reason"] == "漏记了睡眠问题"
    shown = b.get(f"/support/{file_id}").text
    assert "谈了考试焦虑和睡眠" in shown and "漏记了睡眠问题" in shown and "已更正" in shown
    # the recorded event is still there beneath the correction: history is not edited
    topics = [e.topic for e in site.app.recorder.select_events(UUID(file_id))]
    assert any(t.endswith("SessionRecorded") for t in topics) and topics[-1].endswith("EntryCorrected")
    # a stale page's correction is a conflict; another counselor is refused
    r = b.post(
        url, {"expected_version": _version(page.text), **form, "summary": "过期页面的更正", "correction_reason": "过期"}
    )
    assert r.status_code == 409 and "该记录已被他人修改" in r.text
    r = browse("counselor2").post(url, {**form, "summary": "不该写入", "correction_reason": "越权"})
    assert r.status_code == 403 and _file(site, file_id).sessions[0]["summary"] == "谈了考试焦虑和睡眠"
    assert (
        b.post(
            f"/support/{file_id}/entries/no-such-entry/correct",
            {"expected_version": _version(shown), "summary": "x", "correction_reason": "x"},
        ).status_code
        == 400
    )


def test_another_counselor_cannot_open_the_file(site: DemoSite, browse) -> None:
    [student] = _free_students(site)
    file_id = _open(site, browse("counselor1"), student.student_no)
    c2 = browse("counselor2")
    other = _actor(site, "counselor2").staff_id
    before = _denials(site, other, "file.read", file_id)
    r = c2.get(f"/support/{file_id}")
    assert r.status_code == 403 and student.name not in r.text
    assert _denials(site, other, "file.read", file_id) == before + 1
    writes = _denials(site, other, "file.write", file_id)
    r = c2.post(f"/support/{file_id}/session", {"summary": "不该写入"})
    assert r.status_code == 403 and _file(site, file_id).sessions == []
    assert _denials(site, other, "file.write", file_id) == writes + 1


def test_supervisor_reads_a_file_only_with_a_reason(site: DemoSite, browse) -> None:
    [student] = _free_students(site)
    file_id = _open(site, browse("counselor1"), student.student_no, reason="督导抽查用的原因")
    b = browse("supervisor1")
    sup = _actor(site, "supervisor1").staff_id
    asked = b.get(f"/support/{file_id}")
    assert (
        asked.status_code == 200 and "说明查阅理由" in asked.text and f'action="/support/{file_id}/open"' in asked.text
    )
    assert student.name not in asked.text and "督导抽查用的原因" not in asked.text
    short = b.post(f"/support/{file_id}/open", {"break_glass_reason": "看"})
    assert short.status_code == 403 and student.name not in short.text
    opened = b.post(f"/support/{file_id}/open", {"break_glass_reason": "核查高危学生跟进情况"})
    assert opened.status_code == 200 and student.name in opened.text and "督导抽查用的原因" in opened.text
    assert "记录心理辅导" not in opened.text  # a reasoned reading, no forms
    n = site.app.db.fetchone(
        "SELECT COUNT(*) FROM {t}anxin_access WHERE actor_id = ? AND resource_id = ? AND allowed = 1 "
        "AND break_glass IS NOT NULL",
        (sup, file_id),
    )[0]
    assert n == 1


def test_session_summary_is_escaped(site: DemoSite, browse) -> None:
    b = browse("counselor1")
    [student] = _free_students(site)
    file_id = _open(site, b, student.student_no, category="其他")
    page = b.get(f"/support/{file_id}")
    r = b.post(
        f"/support/{file_id}/session", {"expected_version": _version(page.text), "summary": XSS, "next_steps": XSS}
    )
    assert r.status_code == 303
    page = b.get(f"/support/{file_id}")
    assert "<script>alert(1)" not in page.text and "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    assert _file(site, file_id).sessions[0]["summary"] == XSS
    # A refused form echoes the typed text escaped too.
    r = b.post(
        f"/support/{file_id}/risk",
        {"expected_version": _version(page.text), "from_level": "general", "to_level": "general", "reason": XSS},
    )
    assert r.status_code == 400 and "风险等级已经是" in r.text
    assert "<script>alert(1)" not in r.text and "&lt;script&gt;alert(1)&lt;/script&gt;" in r.text


# -- screenings -------------------------------------------------------------------------------
def _csv(rows: list[str]) -> bytes:
    header = "student_no,instrument,date," + ",".join(f"item{i}" for i in range(1, 10))
    return ("\n".join([header, *rows]) + "\n").encode()


def _upload(b: Any, content: bytes) -> Any:
    return b.post("/screenings/import", {}, files={"file": ("screening.csv", content, "text/csv")})


def test_screening_page_and_template(site: DemoSite, browse) -> None:
    b = browse("counselor1")
    page = b.get("/screenings")
    cov = coverage(site.app, _actor(site, "counselor1"), _school(site))
    assert page.status_code == 200 and f"{cov.screened} / {cov.enrolled}" in page.text
    assert "七年级1班" in page.text and "尚未筛查的学生" in page.text
    first = site.app.student_ref(cov.not_screened[0])
    assert first.student_no in page.text
    t = b.get("/screenings/template.csv")
    assert t.status_code == 200 and t.headers["content-type"].startswith("text/csv")
    assert t.text.lstrip("\ufeff").splitlines() == [
        "student_no,instrument,date," + ",".join(f"item{i}" for i in range(1, 10))
    ]


def test_screening_import_with_a_bad_row_applies_nothing(site: DemoSite, browse) -> None:
    b = browse("counselor1")
    me = _actor(site, "counselor1")
    good, other = _free_students(site, 2, unscreened=True)
    before = coverage(site.app, me, _school(site))
    r = _upload(
        b,
        _csv(
            [
                f"{good.student_no},PHQ-9,2026-11-01,0,1,0,1,0,0,1,0,0",
                f"{other.student_no},PHQ-9,2026-11-01,0,1,0,9,0,0,1,0,0",
                "9999999999,XYZ,2026-11-01,0,0,0,0,0,0,0,0,0",
            ]
        ),
    )
    assert r.status_code == 400 and "未导入任何数据" in r.text
    assert "第 3 行" in r.text and "第 4 行" in r.text and "第 2 行" not in r.text
    assert "超出范围" in r.text and "未知的筛查量表" in r.text
    after = coverage(site.app, me, _school(site))
    assert after.screened == before.screened and good.id in after.not_screened
    assert site.app.screenings.student_screenings(me, good.id) == []
    r = b.post("/screenings/import", {})
    assert r.status_code == 400 and "请选择要导入的 CSV 文件" in r.text


def test_good_screening_import_raises_coverage(site: DemoSite, browse) -> None:
    b = browse("counselor1")
    me = _actor(site, "counselor1")
    calm, flagged = _free_students(site, 2, unscreened=True)
    before = coverage(site.app, me, _school(site))
    r = _upload(
        b,
        _csv(
            [
                f"{calm.student_no},PHQ-9,2026-11-02,0,1,0,1,0,0,1,0,0",
                f"{flagged.student_no},PHQ-9,2026-11-02,2,2,2,2,2,2,1,0,0",
            ]
        ),
    )
    # the confirmation names the file the flagged result opened, linked by its number
    assert r.status_code == 303 and r.headers["location"].startswith("/screenings?files=")
    page = b.get(r.headers["location"])
    assert "已导入 2 条筛查结果" in page.text and "新建档案 1 份" in page.text
    [opened] = [x for x in site.app.support.my_support_files(me) if x.student_id == flagged.id]
    confirmation = page.text.split('id="screening-files"', 1)[1].split("</section>", 1)[0]
    number = site.app.record_number(opened.file_id)
    assert f'<a href="/support/{opened.file_id}">{number}</a>' in confirmation and number.startswith("XL-")
    assert flagged.name in confirmation and calm.name not in confirmation
    # the flagged student's page links the screening to that file
    student_page = b.get(f"/students/{flagged.id}").text
    screening = next(
        e
        for e in re.findall(r'<li class="entry kind-screening[^"]*">(.*?)</li>', student_page, re.S)
        if "心理筛查" in e
    )
    assert f'href="/support/{opened.file_id}"' in screening
    after = coverage(site.app, me, _school(site))
    assert after.screened == before.screened + 2
    assert f"{after.screened} / {after.enrolled}" in page.text
    assert calm.id not in after.not_screened and [
        s["total"] for s in site.app.screenings.student_screenings(me, calm.id)
    ] == [3]
    # The flagged student now has a file in counselor1's caseload.
    mine = {line.student_id for line in site.app.support.my_support_files(me)}
    assert flagged.id in mine and calm.id not in mine
    # The same file again is refused: every row was already imported.
    again = _upload(b, _csv([f"{calm.student_no},PHQ-9,2026-11-02,0,1,0,1,0,0,1,0,0"]))
    assert again.status_code == 400 and "已导入过" in again.text


def test_one_students_result_is_typed_in_with_the_imports_rules_and_consequences(site: DemoSite, browse) -> None:
    b = browse("counselor1")
    me = _actor(site, "counselor1")
    [flagged] = _free_students(site, 1, unscreened=True)
    page = b.get("/screenings")
    not_screened = page.text.split('id="not-screened"')[1]
    assert 'action="/screenings/record"' in page.text and flagged.student_no in not_screened  # listed: not screened
    before = coverage(site.app, me, _school(site))
    # the student named in the picker by their number (a name, pinyin or initials would do)
    form = {"student": flagged.student_no, "instrument": "PHQ-9", "screened_on": "2026-11-02"}
    # not numbers, and too few items: refused with the reason, nothing written, what was typed kept
    r = b.post("/screenings/record", {**form, "answers": "2,2,两分"})
    assert r.status_code == 400 and "各题得分应为整数" in r.text and "2,2,两分" in r.text
    r = b.post("/screenings/record", {**form, "answers": "2, 2, 2"})
    assert r.status_code == 400 and "PHQ-9" in r.text and "2, 2, 2" in r.text
    assert coverage(site.app, me, _school(site)).screened == before.screened
    assert site.app.screenings.student_screenings(me, flagged.id) == []
    # 9 items, either comma: saved, flagged, and a support file opened as an import would
    r = b.post("/screenings/record", {**form, "answers": "2，2，2，2，2，2，1，0，0"})
    assert r.status_code == 303 and r.headers["location"].startswith("/screenings?files=")
    page = b.get(r.headers["location"])
    assert "已导入 1 条筛查结果：1 条达到预警线" in page.text and "新建档案 1 份" in page.text
    [opened] = [x for x in site.app.support.my_support_files(me) if x.student_id == flagged.id]
    assert f'<a href="/support/{opened.file_id}">XL-' in page.text.split('id="screening-files"', 1)[1]
    assert flagged.student_no not in page.text.split('id="not-screened"')[1]  # screened now: no longer listed
    assert [s["total"] for s in site.app.screenings.student_screenings(me, flagged.id)] == [13]
    assert coverage(site.app, me, _school(site)).screened == before.screened + 1
    assert flagged.id in {line.student_id for line in site.app.support.my_support_files(me)}
    # twice is refused; a class teacher may not record screenings at all
    again = b.post("/screenings/record", {**form, "answers": "0,0,0,0,0,0,0,0,0"})
    assert again.status_code == 400 and "已导入过" in again.text
    [other] = _free_students(site, 1, unscreened=True)
    r = browse("teacher1").post(
        "/screenings/record", {**form, "student": other.student_no, "answers": "0,0,0,0,0,0,0,0,0"}
    )
    assert r.status_code == 403 and site.app.screenings.student_screenings(me, other.id) == []


# -- an erased file, on a store of its own (shredding destroys) ---------------------------------
@pytest.mark.parametrize("kind", STORES)
def test_erased_file_shows_deleted(kind: str) -> None:
    """A shredded file (its key destroyed) shows 已删除 on its page and in the register."""
    clock = Clock(datetime.now(UTC) - timedelta(days=3))
    with fresh_app(kind, clock) as app:
        school = make_school(app)
        student = school.student("2026001")
        file_id = app.support.open_support_file(
            school.counselor, student, category="其他", risk_level="key", reason="将被删除的原因"
        )
        app.erasure.shred(ADMIN, file_id, "保存期限届满")
        app.accounts.set_password_hash(school.principal.staff_id, hash_password("principal-pass-1"))
        with TestClient(create_app(app, background_seconds=None), base_url="http://testserver") as client:
            b = Browser(client, None).login(f"principal-{school.id[:4]}", "principal-pass-1")
            page = b.get(f"/support/{file_id}")
            assert page.status_code == 410 and "已删除" in page.text and "将被删除的原因" not in page.text
            listing = b.get("/support")
            assert listing.status_code == 200
            row = listing.text.split(f'href="/support/{file_id}"', 1)[1].split("</tr>")[0]
            assert "已删除" in row and "张小明" not in row
            assert ">XL-" in row and "XL-" in page.text  # the number outlives the content (ids only)


def test_pages_in_english(site: DemoSite, browse) -> None:
    b = browse("counselor1")
    b.client.cookies.set("anxin_lang", "en")
    try:
        page = b.get("/support")
        assert page.status_code == 200 and "School register of support files" in page.text
        file_id = next(line.file_id for line in site.app.support.my_support_files(_actor(site, "counselor1")))
        one = b.get(f"/support/{file_id}")
        assert one.status_code == 200 and "Record a counselling session" in one.text
        s = b.get("/screenings")
        assert s.status_code == 200 and "Students not yet screened" in s.text
    finally:
        b.client.cookies.set("anxin_lang", "zh")
