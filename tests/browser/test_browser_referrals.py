"""The one-to-one responsible person and referrals in a real browser: a supervisor adds an
agency to the district's registry; the counselor names a class teacher as the student's
包联人 and refers the student to that agency, then records the agency's acceptance; the
teacher finds the student in their 待办 and opens the plan part of the file, without the
counselling notes. Each page at 1280 px and 390 px (screenshots under /tmp/crisis2-shots)."""

from __future__ import annotations

import shutil
import uuid
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from browser_support import LiveServer

pytest.importorskip("playwright.sync_api", reason="Playwright is not installed")

from playwright.sync_api import expect  # noqa: E402

TMP_SHOTS = Path("/tmp/crisis2-shots")
NOTE = "学生谈到长期失眠，担心考试"


def _shot(s: Any, name: str) -> None:
    path = s.shot(name)
    TMP_SHOTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(path, TMP_SHOTS / path.name)


def _both_widths(s: Any, page: Any, name: str) -> None:
    """A screenshot at 1280 px, then at 390 px, where nothing may be wider than the phone."""
    _shot(s, name)
    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 391, f"{page.url} is {width}px wide on a 390px phone"
    _shot(s, name + "-phone")
    page.set_viewport_size({"width": 1280, "height": 900})


def test_a_person_and_a_referral_through_the_pages(open_session: Any, live: LiveServer) -> None:
    app = live.app
    admin = app.gate.actor(app.accounts.account("admin")[0])
    c1 = app.gate.actor(app.accounts.account("counselor1")[0])
    name = "包" + uuid.uuid4().hex[:3]
    student = app.roster.enrol_student(
        admin,
        school_id=c1.school_id,
        student_no="B" + uuid.uuid4().hex[:8],
        name=name,
        gender="女",
        birth_date=date(2013, 3, 1),
        grade="八年级",
        class_name="八年级1班",
    )
    fid = app.support.open_support_file(c1, student, category="学业压力", risk_level="key", reason="筛查提示")
    app.support.draw_up_plan(c1, fid, goals=["缓解考试焦虑"], measures=[{"text": "每周谈心一次", "by": "班主任"}])
    app.support.record_session(c1, fid, held_on=app.now().date(), summary=NOTE)
    agency = "安心市精神卫生中心" + uuid.uuid4().hex[:3]

    # the supervisor adds the agency to the district's registry
    s0 = open_session()
    page = s0.login("supervisor1")
    page.goto("/agencies")
    page.get_by_label("机构类别").select_option("mental_health")
    page.get_by_label("机构名称").fill(agency)
    page.get_by_role("button", name="添加").click()
    expect(page.locator("#agencies")).to_contain_text(agency)
    _both_widths(s0, page, "agencies-registry")

    # the counselor names teacher1 and refers the student to it
    s1 = open_session()
    page = s1.login("counselor1")
    page.goto(f"/support/{fid}")
    page.get_by_text("指定一对一包联人").click()
    teacher = app.roster.staff_name(app.accounts.account("teacher1")[0])
    page.locator('form[action$="/person"] select[name="staff_id"]').select_option(label=teacher)
    page.locator('form[action$="/person"] input[name="reason"]').fill("班主任熟悉学生情况")
    page.get_by_role("button", name="保存包联人").click()
    expect(page.locator("#file-person")).to_contain_text(teacher)
    page.get_by_text("记录转介").first.click()
    form = page.locator('form[action$="/referral"]')
    form.locator('select[name="agency_id"]').select_option(label=f"精神卫生中心 · {agency}")
    form.locator('textarea[name="reason"]').fill("需要专科评估")
    form.get_by_role("button", name="保存转介").click()
    entry = page.locator("article.referral", has_text=agency)
    expect(entry).to_contain_text("已转介，待机构接收")
    entry.get_by_text("机构已接收").click()
    entry.locator('input[name="note"]').fill("已预约门诊")
    entry.get_by_role("button", name="保存").click()
    entry = page.locator("article.referral", has_text=agency)
    expect(entry).to_contain_text("机构已接收，待回执")
    entry.scroll_into_view_if_needed()
    _both_widths(s1, page, "file-referral")
    page.goto("/")
    expect(page.locator("table.list tbody tr", has_text=name).filter(has_text="转介回执")).to_have_count(1)

    # the teacher: the student in their 待办, the plan part of the file, no counselling notes
    s2 = open_session()
    page = s2.login("teacher1")
    page.goto("/")
    row = page.locator("table.list tbody tr", has_text=name)
    expect(row).to_contain_text("一对一包联学生")
    _both_widths(s2, page, "person-queue")
    row.get_by_role("link").click()
    expect(page.locator("h1")).to_contain_text("一对一包联")
    expect(page.locator("#plan")).to_contain_text("缓解考试焦虑")
    body = page.locator("main").inner_text()
    assert NOTE not in body and "重点关注" not in body
    _both_widths(s2, page, "person-plan")
    for s in (s0, s1, s2):
        assert not s.dialogs
