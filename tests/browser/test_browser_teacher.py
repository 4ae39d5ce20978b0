"""The class teacher's journey in a real browser on a phone (一岗双带): open a pairing from
the board, record a check-in with a concern, escalate the concern to a support file,
and see the result on the pairing, on the board and on the student's timeline."""

from __future__ import annotations

import re
import uuid
from datetime import date, timedelta
from typing import Any

import pytest
from browser_support import LiveServer

pytest.importorskip("playwright.sync_api", reason="Playwright is not installed")

from playwright.sync_api import expect  # noqa: E402

PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True}
XSS = "<script>alert(1)</script>\"' ; DROP TABLE x; --"


def _paired_student(live: LiveServer) -> tuple[str, str, str]:
    """(pairing id, student id, name): a new student of teacher1's class, paired with
    teacher1 by the principal three weeks ago (so a check-in is overdue)."""
    app = live.app
    admin = app.gate.actor(app.accounts.account("admin")[0])
    teacher = app.gate.actor(app.accounts.account("teacher1")[0])
    principal = app.gate.actor(app.accounts.account("principal1")[0])
    name = "林" + uuid.uuid4().hex[:3]
    student = app.roster.enrol_student(
        admin,
        school_id=teacher.school_id,
        student_no="B" + uuid.uuid4().hex[:8],
        name=name,
        gender="男",
        birth_date=date(2013, 6, 1),
        grade="七年级",
        class_name="七年级1班",
    )
    clock = app.clock
    app.clock = lambda: clock() - timedelta(days=21)
    try:
        pid = app.pairings.pair(principal, staff_id=teacher.staff_id, student_id=student)
    finally:
        app.clock = clock
    return pid, student, name


def _fits(page: Any) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 391, f"the page is {width}px wide on a 390px phone"


def test_teacher_records_a_concern_and_escalates_it_on_a_phone(open_session: Any, live: LiveServer) -> None:
    pid, student, name = _paired_student(live)
    s = open_session(**PHONE)
    page = s.login("teacher1")
    page.get_by_role("button", name="菜单").click()  # on a phone the menu is folded behind its button
    page.get_by_role("navigation", name="主菜单").get_by_role("link", name="一岗双带").click()
    expect(page.get_by_role("heading", name="我的结对学生")).to_be_visible()
    row = page.locator("#mine tr", has=page.get_by_role("link", name=name))
    expect(row).to_have_class(re.compile("overdue"))
    expect(row).to_contain_text("已逾期")
    _fits(page)
    s.shot("teacher1-pairings-phone")

    # Open the pairing and record a check-in with a concern.
    row.get_by_role("link", name=name).click()
    expect(page).to_have_url(re.compile(rf"/pairings/{pid}$"))
    expect(page.get_by_role("heading", name=f"结对学生：{name}")).to_be_visible()
    form = page.locator(f"form[action='/pairings/{pid}/check-ins']")
    form.get_by_label("思想状况").fill("最近情绪低落 " + XSS)
    form.get_by_label("家庭环境").fill("父母外出务工")
    form.get_by_label("有担忧（需要关注或上报）").check()
    # First without the concern's note: refused, what was typed is kept.
    form.get_by_role("button", name="保存谈心记录").click()
    expect(page.locator("#check-in .error")).to_contain_text("担忧说明不能为空")
    expect(form.get_by_label("家庭环境")).to_have_value("父母外出务工")
    form.get_by_label("担忧说明（勾选“有担忧”时必填）").fill("课间常独自一人，疑似被孤立")
    form.get_by_role("button", name="保存谈心记录").click()
    expect(page.get_by_role("status")).to_contain_text("谈心记录已保存")
    entry = page.locator("li.check-in").first
    expect(entry).to_contain_text("最近情绪低落 <script>alert(1)</script>")
    expect(entry.locator(".tag.bad")).to_have_text("担忧未处理")
    expect(page.locator("dd.next-due .tag.bad")).to_have_count(0)  # no longer overdue
    _fits(page)
    s.shot("teacher1-check-in-recorded-phone")

    # Escalate the concern to a support file.
    entry.locator("summary", has_text="上报为心理档案").click()
    esc = entry.locator("form[action$='/escalate']").filter(has=page.locator("select[name=category]"))
    esc.get_by_label("档案类别").select_option("人际关系")
    esc.get_by_label("风险等级").select_option("key")
    esc.get_by_label("上报原因").fill("谈心中发现该生被孤立，需心理支持")
    esc.get_by_role("button", name="上报").click()
    expect(page.get_by_role("status")).to_contain_text("担忧已上报")
    entry = page.locator("li.check-in").first
    expect(entry.locator(".tag.warn")).to_have_text("担忧已上报")
    link = entry.get_by_role("link", name="查看心理档案")
    expect(link).to_have_attribute("href", re.compile(r"^/support/[0-9a-f-]{36}$"))
    s.shot("teacher1-concern-escalated-phone")
    assert s.dialogs == []

    # The board: the pairing is there, on time, with no open concern.
    page.get_by_role("link", name="一岗双带").first.click()
    row = page.locator("#mine tr", has=page.get_by_role("link", name=name))
    expect(row).not_to_have_class(re.compile("overdue"))
    expect(row.locator("td").last).to_have_text("—")
    # The student's timeline shows the check-in and the escalation.
    page.goto(f"/students/{student}")
    expect(page.locator("ol.student-timeline")).to_contain_text("担忧上报")
    expect(page.locator("ol.student-timeline")).to_contain_text("课间常独自一人")
    _fits(page)
    s.shot("teacher1-student-timeline-phone")
    assert s.dialogs == []
