"""The student picker in a real browser: a class teacher reports bullying on /cases/new
naming both students by their pinyin initials, chosen from the suggestions with the
keyboard (arrow keys, Enter) at 1280 px and with a tap at 390 px; the listbox is announced
(aria-expanded, aria-activedescendant) and the chosen label is what the form sends."""

from __future__ import annotations

import shutil
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from browser_support import LiveServer

from projections import student_names as sn

pytest.importorskip("playwright.sync_api", reason="Playwright is not installed")

from playwright.sync_api import expect  # noqa: E402

TMP_SHOTS = Path("/tmp/anxin-picker-shots")
RARE = "翀翦翮翯翾耄耋聃聿肇胤芃苒茕荀莪"


def _shot(s: Any, name: str) -> None:
    path = s.shot(name)
    TMP_SHOTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(path, TMP_SHOTS / path.name)


def _enrol(app: Any, school: str, class_name: str) -> tuple[str, str, str]:
    admin = app.gate.actor(app.accounts.account("admin")[0])
    tag = uuid.uuid4().hex
    name = "覃" + "".join(RARE[int(c, 16)] for c in tag[:3])
    number = "8" + str(int(tag[:12], 16))[:9]
    sid = app.roster.enrol_student(
        admin,
        school_id=school,
        student_no=number,
        name=name,
        gender="男",
        birth_date=app.now().date() - timedelta(days=13 * 366),
        grade="七年级",
        class_name=class_name,
    )
    return sid, name, number


def test_a_class_teacher_picks_students_by_pinyin_initials_on_the_report_form(
    open_session: Any, live: LiveServer
) -> None:
    app = live.app
    teacher = app.gate.actor(app.accounts.account("teacher1")[0])
    [own_class] = sorted(teacher.classes)[:1]
    school = teacher.school_id
    targeted, t_name, t_no = _enrol(app, school, own_class)
    bullying, b_name, b_no = _enrol(app, school, own_class)
    t_initials = sn.spellings(t_name)[0].initials  # 覃 as a surname: q…
    b_initials = sn.spellings(b_name)[0].initials
    safety = app.gate.actor(app.accounts.account("safety1")[0])
    before = {c["case_id"] for c in app.cases.cases_of_school(safety, school)}

    s = open_session()
    page = s.login("teacher1")
    page.goto("/cases/new")
    when = (app.now() - timedelta(hours=3)).astimezone().strftime("%Y-%m-%dT%H:%M")
    page.get_by_label("发生时间").fill(when)
    page.get_by_label("发生地点").fill("食堂门口")
    page.get_by_label("事情经过").fill("午饭时被推搡并被抢走饭卡")
    page.get_by_label("肢体").check()

    # 1280 px, by keyboard: type the initials, arrow down to the suggestion, Enter
    field = page.get_by_role("combobox", name="学生 1")
    field.press_sequentially(t_initials.upper(), delay=40)
    listbox = page.locator("#pick-student-no-0-list")
    expect(listbox).to_be_visible()
    expect(field).to_have_attribute("aria-expanded", "true")
    option = listbox.get_by_role("option").filter(has_text=t_name)
    expect(option).to_have_count(1)
    expect(option).to_contain_text(t_no)
    _shot(s, "picker-report-suggestions-1280")
    field.press("ArrowDown")
    first = listbox.get_by_role("option").first
    expect(first).to_have_attribute("aria-selected", "true")
    expect(field).to_have_attribute("aria-activedescendant", "pick-student-no-0-opt-0")
    field.press("Enter")  # chooses; does not send the form
    expect(field).to_have_value(f"{t_name}（{own_class}，{t_no}）")
    expect(listbox).to_be_hidden()
    expect(field).to_have_attribute("aria-expanded", "false")
    assert page.url.endswith("/cases/new")

    # 390 px, by a tap: the second row, the bullying student
    page.set_viewport_size({"width": 390, "height": 844})
    field2 = page.get_by_role("combobox", name="学生 2")
    field2.press_sequentially(b_initials, delay=40)
    listbox2 = page.locator("#pick-student-no-1-list")
    option2 = listbox2.get_by_role("option").filter(has_text=b_name)
    expect(option2).to_be_visible()
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 391, f"the report form is {width}px wide on a 390px phone"
    box = option2.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 391
    _shot(s, "picker-report-suggestions-390")
    option2.click()
    expect(field2).to_have_value(f"{b_name}（{own_class}，{b_no}）")
    page.get_by_label("身份 2").select_option("bullying")
    _shot(s, "picker-report-chosen-390")
    page.set_viewport_size({"width": 1280, "height": 900})

    page.get_by_role("button", name="提交报告").click()
    page.wait_for_load_state()
    assert "/cases/new" not in page.url, page.locator(".error").all_inner_texts()
    [case_id] = {c["case_id"] for c in app.cases.cases_of_school(safety, school)} - before
    parties = {p["student_id"]: p["part"] for p in app.cases.get_case(safety, case_id).parties}
    assert parties == {targeted: "targeted", bullying: "bullying"}
    assert s.dialogs == []


def test_what_fits_nobody_is_said_in_the_field_and_on_submit(open_session: Any, live: LiveServer) -> None:
    s = open_session()
    page = s.login("teacher1")
    page.goto("/cases/new")
    field = page.get_by_role("combobox", name="学生 1")
    field.press_sequentially("xqzxqz", delay=30)
    status = page.locator("#pick-student-no-0-list + .picker-status, .picker-status").first
    expect(status).to_contain_text("没有相符的学生")
    expect(page.locator("#pick-student-no-0-list")).to_be_hidden()
    page.get_by_label("发生时间").fill((live.app.now() - timedelta(hours=1)).astimezone().strftime("%Y-%m-%dT%H:%M"))
    page.get_by_label("发生地点").fill("操场")
    page.get_by_label("事情经过").fill("测试：无此学生")
    page.get_by_role("button", name="提交报告").click()
    page.wait_for_load_state()
    expect(page.get_by_role("alert")).to_contain_text("没有找到与「xqzxqz」相符的学生")
    expect(page.get_by_role("combobox", name="学生 1")).to_have_value("xqzxqz")
    _shot(s, "picker-report-unknown-1280")
