"""The counselor's journey with the plan editor and the student profile in Chromium, at 1280
and 390 px: rows of measure + responsible person added, moved and removed (with the static
script, and without script by the server), the plan saved in order; the review's next date
within the policy's bounds; the student page's profile with the file linked by its number."""

from __future__ import annotations

import re
import shutil
import uuid
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from browser_support import LiveServer

pytest.importorskip("playwright.sync_api", reason="Playwright is not installed")

from playwright.sync_api import expect  # noqa: E402

OUT = Path("/work/shots/counsel")


def _shot(s: Any, name: str) -> None:
    path = s.shot(name)
    try:  # a copy where the team looks at them (the test's own artifacts stay the record)
        OUT.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, OUT / path.name)
    except OSError:
        pass


def _file(live: LiveServer) -> tuple[str, str, str]:
    """(file id, student id, student name): a new student of counselor1's school with a
    guardian and a tag, and a 重点关注 file of counselor1's without a plan."""
    app = live.app
    admin = app.gate.actor(app.accounts.account("admin")[0])
    c1 = app.gate.actor(app.accounts.account("counselor1")[0])
    name = "林" + uuid.uuid4().hex[:3]
    sid = app.roster.enrol_student(
        admin,
        school_id=c1.school_id,
        student_no="K" + uuid.uuid4().hex[:8],
        name=name,
        gender="男",
        birth_date=date(2012, 9, 1),
        grade="八年级",
        class_name="八年级2班",
        guardians=[{"name": "林爸爸", "phone": "13700137000"}],
        tags=["留守儿童", "学业困难"],
    )
    fid = app.support.open_support_file(c1, sid, category="学业压力", risk_level="key", reason="月考后情绪低落")
    return fid, sid, name


def _rows(page: Any) -> list[tuple[str, str]]:
    rows = page.locator("#plan-editor li.plan-row")
    return [
        (
            rows.nth(i).locator('input[name="measure_text"]').input_value(),
            rows.nth(i).locator('input[name="measure_by"]').input_value(),
        )
        for i in range(rows.count())
    ]


def test_counselor_builds_a_plan_row_by_row_reviews_it_and_opens_the_student_page(
    open_session: Any, live: LiveServer
) -> None:
    fid, sid, name = _file(live)
    s = open_session()
    page = s.login("counselor1")
    page.goto(f"/support/{fid}")
    expect(page.locator("#review-needs-plan")).to_be_visible()  # no review before a plan
    expect(page.locator("#review-form")).to_have_count(0)
    editor = page.locator("#plan-editor")
    editor.locator("summary").click()
    editor.get_by_label("目标（每行一个）").fill("情绪稳定\n恢复学习信心")
    rows = editor.locator("li.plan-row")
    expect(rows).to_have_count(3)
    rows.nth(0).get_by_label("措施 1", exact=True).fill("每周一次个体辅导")
    rows.nth(0).get_by_label("负责人", exact=True).fill("心理老师")
    rows.nth(1).get_by_label("措施 2", exact=True).fill("每日关注课堂状态")
    rows.nth(1).get_by_label("负责人", exact=True).fill("班主任")
    rows.nth(2).get_by_label("措施 3", exact=True).fill("每两周电话联系家长")
    rows.nth(2).get_by_label("负责人", exact=True).fill("班主任")
    url = page.url
    editor.get_by_role("button", name="添加一行").click()  # by the script: no request
    expect(rows).to_have_count(4)
    assert page.url == url
    expect(rows.nth(3).locator('input[name="measure_text"]')).to_be_focused()
    rows.nth(3).get_by_label("措施 4", exact=True).fill("学习小组结对互助")
    rows.nth(3).get_by_label("负责人", exact=True).fill("学生本人")
    editor.get_by_role("button", name="将措施 4 上移").click()
    editor.get_by_role("button", name="删除措施 2").click()
    assert _rows(page) == [
        ("每周一次个体辅导", "心理老师"),
        ("学习小组结对互助", "学生本人"),
        ("每两周电话联系家长", "班主任"),
    ]
    _shot(s, "counsel-plan-editor-1280")
    editor.get_by_role("button", name="保存方案").last.click()
    expect(page.get_by_role("status").first).to_contain_text("帮扶方案已保存")
    table = page.locator("table.plan-measures tbody tr")
    expect(table).to_have_count(3)
    expect(table.nth(1)).to_contain_text("学习小组结对互助")
    expect(table.nth(1)).to_contain_text("学生本人")

    # The review: its next date within the policy's bounds (重点关注: 30 days), default the latest.
    today = live.app.now().date()
    review = page.locator("#review-form")
    review.locator("summary").click()
    due = review.get_by_label("下次复评日期")
    expect(due).to_have_value((today + timedelta(days=30)).isoformat())
    expect(due).to_have_attribute("min", (today + timedelta(days=1)).isoformat())
    expect(due).to_have_attribute("max", (today + timedelta(days=30)).isoformat())
    review.get_by_label("复评意见").fill("情绪好转，继续执行方案")
    due.fill((today + timedelta(days=14)).isoformat())
    review.get_by_role("button", name="保存复评").click()
    expect(page.get_by_role("status").first).to_contain_text("已记录方案复评")
    expect(page.locator("#reviews")).to_contain_text("情绪好转，继续执行方案")
    assert live.app.support.get_support_file(
        live.app.gate.actor(live.app.accounts.account("counselor1")[0]), fid
    ).next_review_due == today + timedelta(days=14)
    _shot(s, "counsel-support-file-1280")

    # The student page: the profile above the timeline, the file linked by its number.
    page.goto(f"/students/{sid}")
    profile = page.locator("#student-profile")
    expect(profile).to_contain_text("八年级2班")
    expect(profile).to_contain_text("林爸爸")
    expect(profile).to_contain_text("留守儿童")
    number = live.app.record_number(fid)
    link = page.locator("#student-records").get_by_role("link", name=number)
    expect(link).to_have_attribute("href", f"/support/{fid}")
    expect(page.locator("li.kind-file", has_text="心理辅导")).to_have_count(0)
    expect(page.locator("li.kind-file", has_text="方案复评")).to_contain_text("复评意见")
    _shot(s, "counsel-student-1280")

    # On a phone: nothing wider than the screen, the editor's rows stacked.
    page.set_viewport_size({"width": 390, "height": 844})
    for path, shot in ((f"/students/{sid}", "counsel-student-390"), (f"/support/{fid}", "counsel-support-file-390")):
        page.goto(path)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 391, f"{path} is {width}px wide on a 390px phone"
        _shot(s, shot)
    page.locator("#plan-editor summary").click()
    expect(page.locator("#plan-editor li.plan-row").first).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 391
    _shot(s, "counsel-plan-editor-390")
    page.goto(f"/students/{sid}")
    link.click()
    expect(page).to_have_url(re.compile(rf"/support/{fid}$"))
    assert not s.dialogs


def test_the_plan_editor_works_without_script(open_session: Any, live: LiveServer) -> None:
    fid, _sid, _name = _file(live)
    s = open_session(java_script_enabled=False)
    page = s.login("counselor1")
    page.goto(f"/support/{fid}")
    editor = page.locator("#plan-editor")
    editor.locator("summary").click()
    editor.get_by_label("目标（每行一个）").fill("情绪稳定")
    editor.get_by_label("措施 1", exact=True).fill("每周一次个体辅导")
    editor.get_by_label("负责人", exact=True).first.fill("心理老师")
    editor.get_by_role("button", name="添加一行").click()  # a request: the form again, one more row
    editor = page.locator("#plan-editor")
    expect(editor.locator("li.plan-row")).to_have_count(4)
    expect(editor.get_by_label("措施 1", exact=True)).to_have_value("每周一次个体辅导")
    expect(editor.get_by_label("目标（每行一个）")).to_have_value("情绪稳定")
    editor.get_by_label("措施 4", exact=True).fill("家访一次")
    editor.locator("li.plan-row").nth(3).get_by_label("负责人", exact=True).fill("班主任")
    editor.get_by_role("button", name="将措施 4 上移").click()
    editor = page.locator("#plan-editor")
    expect(editor.get_by_label("措施 3", exact=True)).to_have_value("家访一次")
    editor.get_by_label("措施 1", exact=True).press("Enter")  # Enter saves the plan, not a row button
    expect(page.get_by_role("status").first).to_contain_text("帮扶方案已保存")
    c1 = live.app.gate.actor(live.app.accounts.account("counselor1")[0])
    assert live.app.support.get_support_file(c1, fid).plan["measures"] == [
        {"text": "每周一次个体辅导", "by": "心理老师"},
        {"text": "家访一次", "by": "班主任"},
    ]
