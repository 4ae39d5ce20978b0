"""Bullying cases in a real browser (Chromium via Playwright, the real app under uvicorn):
a class teacher reports through the form; the safety lead investigates, records a
statement and a determination; the principal approves and closes; the principal's
school board draws its charts. Screenshots land in test-artifacts/screenshots/."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from typing import Any

import pytest
from browser_support import LiveServer
from determination_support import appeal_legacy, ready_to_determine

from web import i18n

pytest.importorskip("playwright.sync_api", reason="Playwright is not installed")

from playwright.sync_api import expect  # noqa: E402


def _actor(live: LiveServer, username: str) -> Any:
    return live.app.gate.actor(live.app.accounts.account(username)[0])


def _case_ids(live: LiveServer) -> set[str]:
    safety = _actor(live, "safety1")
    return {c["case_id"] for c in live.app.cases.cases_of_school(safety, safety.school_id)}


def _box(page: Any, action: str) -> Any:
    """One step's form on the case page, opened (and the section it is in, if collapsed)."""
    section = page.locator(f"details.section:has(details#{action})")
    if section.count() and section.get_attribute("open") is None:
        section.locator("summary").first.click()
    box = page.locator(f"details#{action}")
    box.locator("summary").click()
    return box


def _step(page: Any, action: str, fields: dict[str, str]) -> None:
    """Open one step's form on the case page, fill it and submit it."""
    box = _box(page, action)
    for name, value in fields.items():
        box.locator(f"[name={name}]").fill(value)
    box.locator("button[type=submit]").click()
    page.wait_for_load_state()
    expect(page.locator("main .error")).to_have_count(0)


def test_report_investigate_determine_close_and_board(open_session: Any, live: LiveServer) -> None:
    teacher = _actor(live, "teacher1")
    admin = _actor(live, "admin")
    student = next(
        s
        for s in live.app.roster.list_students(admin, teacher.school_id)
        if s.class_name == "七年级1班" and not s.erased
    )
    tag = uuid.uuid4().hex[:6]
    when = i18n.local(live.app.now() - timedelta(hours=3)).strftime("%Y-%m-%dT%H:%M")
    before = _case_ids(live)

    # teacher1 reports through the form
    t = open_session()
    page = t.login("teacher1")
    page.get_by_role("navigation", name="主菜单").get_by_role("link", name="报告欺凌").click()
    expect(page.get_by_role("heading", name="报告疑似欺凌")).to_be_visible()
    page.get_by_label("发生时间").fill(when)
    page.get_by_label("发生地点").fill("操场东侧")
    page.get_by_label("言语").check()
    page.get_by_label("学生 1").fill(student.student_no or "")
    page.get_by_label("事情经过").fill(f"课间多次被起侮辱性外号 {tag}")
    t.shot("cases-report-form")
    page.get_by_role("button", name="提交报告").click()
    expect(page.locator("p.flash")).to_contain_text("已报告")
    (case_id,) = _case_ids(live) - before

    # safety1 opens it, investigates, records a statement and a determination
    s = open_session()
    page = s.login("safety1")
    page.goto("/cases")
    page.locator(f'a[href="/cases/{case_id}"]').click()
    expect(page.locator("p.narrative")).to_contain_text(f"课间多次被起侮辱性外号 {tag}")
    _step(page, "start_investigation", {})
    _step(page, "statement", {"text": f"同学证实确有起外号 {tag}", "from_person": "值周教师"})
    expect(page.locator("#investigation")).to_contain_text(f"同学证实确有起外号 {tag}")
    _step(page, "complete_investigation", {"findings": "双方互相起外号，属同学间玩闹"})
    # the targeted student's guardian is invited and attends (未成年人保护法 art. 39)
    _step(page, "invite_guardian", {})
    _step(page, "guardian_participation", {})
    expect(page.locator("#guardians")).to_contain_text("出席认定会议")
    # the school's 学生欺凌治理委员会 meets: every member present
    meeting = _box(page, "committee_meeting")
    for box_ in meeting.locator("[name=members_present]").all():
        box_.check()
    meeting.locator("[name=summary]").fill("成员一致认为双方互相起外号")
    meeting.locator("[name=decision]").fill("不构成欺凌，属打闹嬉戏")
    meeting.locator("button[type=submit]").click()
    page.wait_for_load_state()
    expect(page.locator("#meetings")).to_contain_text("达到规定人数")
    box = _box(page, "determine")
    box.get_by_label("不构成欺凌", exact=True).check()
    box.get_by_label("属于打闹嬉戏（不构成欺凌时）").check()
    box.locator("[name=reason]").fill("无恃强凌弱，属打闹嬉戏")
    box.get_by_role("button", name="记录认定").click()
    expect(page.locator("#case-status")).to_have_text("待校长审批")
    s.shot("cases-safety-determined")

    # the principal approves and closes
    p = open_session()
    page = p.login("principal1")
    page.goto(f"/cases/{case_id}")
    _step(page, "approve", {"reason": "同意委员会认定"})
    _step(page, "close", {"reason": "已批评教育，双方和好"})
    expect(page.locator("#case-status")).to_have_text("已结案")
    assert live.app.cases.get_case(_actor(live, "principal1"), case_id).status == "closed"
    p.shot("cases-closed")

    # and opens the school board: charts drawn on the server, with their tables
    page.get_by_role("navigation", name="主菜单").get_by_role("link", name="学校看板").click()
    expect(page.get_by_role("heading", name="学校看板")).to_be_visible()
    expect(page.locator("svg#cases-chart rect.bar").first).to_be_visible()
    expect(page.locator("svg#risk-chart")).to_be_visible()
    page.locator("details.table-fallback summary").first.click()
    expect(page.locator("#cases-table")).to_be_visible()
    assert re.search(r"\d", page.locator("#cases-table tbody").inner_text())
    p.shot("board-principal")


def _appealed_case(live: LiveServer, tag: str) -> str:
    """A case the safety lead determined (bullying, minor), the principal approved and the
    bullying student's family appealed: written through the application, not the pages."""
    app, admin = live.app, _actor(live, "admin")
    safety, principal = _actor(live, "safety1"), _actor(live, "principal1")
    target, bully = [
        s for s in app.roster.list_students(admin, safety.school_id) if s.class_name == "八年级1班" and not s.erased
    ][:2]
    case_id = app.cases.report_bullying(
        safety,
        school_id=safety.school_id,
        channel="teacher",
        occurred_at=app.now() - timedelta(hours=5),
        place="教室",
        forms=["verbal"],
        parties=[(target.id, "targeted"), (bully.id, "bullying")],
        narrative=f"抢夺文具 {tag}",
    )
    app.cases.start_investigation(safety, case_id)
    app.cases.complete_investigation(safety, case_id, findings=f"属实 {tag}")
    ready_to_determine(app, safety, case_id)
    app.cases.determine(safety, case_id, bullying=True, severity="minor", reason="多次抢夺")
    app.cases.approve_determination(principal, case_id, reason="同意")
    appeal_legacy(app, safety, case_id, party_id=bully.id, grounds=f"只是借用 {tag}")
    return case_id


def test_an_appeal_review_changes_the_determination_and_another_reopens_the_case(
    open_session: Any, live: LiveServer
) -> None:
    tag = uuid.uuid4().hex[:6]
    changed, reopened = _appealed_case(live, tag), _appealed_case(live, tag + "b")
    s = open_session()
    page = s.login("safety1")

    # the review changes the determination to "not bullying": the page shows the new one
    page.goto(f"/cases/{changed}")
    expect(page.locator("#case-status")).to_have_text("复查中")
    box = _box(page, "appeal_outcome")
    box.get_by_label("复查结果").select_option(label="变更认定")
    box.get_by_label("不构成欺凌", exact=True).check()
    box.locator("[name=reason]").fill(f"复查认定为借用 {tag}")
    box.get_by_role("button", name="记录").click()
    expect(page.locator("main .error")).to_have_count(0)
    expect(page.locator("main")).to_contain_text(f"复查认定为借用 {tag}")
    s.shot("cases-appeal-changed")
    c = live.app.cases.get_case(_actor(live, "principal1"), changed)
    assert c.determination is not None and c.determination["bullying"] is False
    assert c.determination["source"] == "appeal_review"

    # another review sends its case back for a new investigation
    page.goto(f"/cases/{reopened}")
    box = _box(page, "appeal_outcome")
    box.get_by_label("复查结果").select_option(label="重新调查")
    box.locator("[name=reason]").fill(f"需补充调查新证人 {tag}")
    box.get_by_role("button", name="记录").click()
    expect(page.locator("main .error")).to_have_count(0)
    expect(page.locator("#case-status")).to_have_text("调查中")
    expect(page.locator("main")).to_contain_text(f"需补充调查新证人 {tag}")
    assert live.app.cases.get_case(_actor(live, "principal1"), reopened).status == "investigating"
    assert not s.dialogs
