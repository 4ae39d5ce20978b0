"""The counselor's journey in a real browser (心理档案 · 一人一策): open a support file for
a student, record a session, raise the risk level with a reason and see it in the
register; import a screening CSV with a bad row (nothing written, the row named), then a
good one (coverage goes up)."""

from __future__ import annotations

import re
import uuid
from datetime import date
from typing import Any

import pytest
from browser_support import LiveServer

pytest.importorskip("playwright.sync_api", reason="Playwright is not installed")

from playwright.sync_api import expect  # noqa: E402


def _new_student(live: LiveServer, class_name: str = "九年级2班") -> tuple[str, str, str]:
    """(student id, student number, name): a new student of counselor1's school."""
    app = live.app
    admin = app.gate.actor(app.accounts.account("admin")[0])
    school = app.gate.actor(app.accounts.account("counselor1")[0]).school_id
    name = "苏" + uuid.uuid4().hex[:3]
    no = "C" + uuid.uuid4().hex[:8]
    sid = app.roster.enrol_student(
        admin,
        school_id=school,
        student_no=no,
        name=name,
        gender="女",
        birth_date=date(2011, 3, 1),
        grade=class_name[:3],
        class_name=class_name,
    )
    return sid, no, name


def _action(page: Any, summary: str) -> Any:
    """The <details> form whose summary is `summary`, opened."""
    box = page.locator("details.action").filter(has=page.locator("summary", has_text=summary))
    if box.get_attribute("open") is None:
        box.locator("summary").click()
    return box


def test_counselor_opens_a_file_records_a_session_and_raises_the_risk(open_session: Any, live: LiveServer) -> None:
    _sid, no, name = _new_student(live)
    s = open_session()
    page = s.login("counselor1")
    page.get_by_role("navigation", name="主菜单").get_by_role("link", name="一人一策").click()
    expect(page.get_by_role("heading", name="一人一策")).to_be_visible()
    page.get_by_role("link", name="新建心理档案").click()
    page.get_by_label("学生", exact=True).fill(no)
    page.get_by_label("建档来源").select_option(label="他人转介")
    page.get_by_label("初始风险等级").select_option(label="一般关注")
    page.get_by_label("档案类别").fill("人际关系")
    page.get_by_label("建档原因").fill("班主任反映近期常独处")
    s.shot("counselor1-support-new")
    page.get_by_role("button", name="建立档案").click()
    expect(page).to_have_url(re.compile(r"/support/[0-9a-f-]{36}$"))
    expect(page.get_by_role("heading", name=re.compile(name))).to_be_visible()
    expect(page.locator("#risk-level")).to_have_text("一般关注")

    box = _action(page, "记录心理辅导")
    box.get_by_label("时长（分钟，可选）").fill("40")
    box.get_by_label("辅导记录").fill("第一次面谈，建立信任关系")
    box.get_by_role("button", name="保存辅导记录").click()
    expect(page.get_by_role("status").first).to_contain_text("已记录辅导")
    expect(page.locator("#sessions")).to_contain_text("第一次面谈，建立信任关系")

    # Raising the risk without a reason is stopped by the form; with one it is saved.
    box = _action(page, "调整风险等级")
    box.get_by_label("新的风险等级").select_option(label="高危")
    box.get_by_label("调整原因").fill("面谈中透露有自伤想法")
    box.get_by_role("button", name="调整风险等级").click()
    expect(page.locator("#risk-level")).to_have_text("高危")
    expect(page.locator("ol.risk-history")).to_contain_text("面谈中透露有自伤想法")
    expect(page.locator("main .error")).to_have_count(0)

    # The session is corrected from its own form: the new text shown, with the reason.
    box = page.locator("#sessions details.action", has=page.locator("summary", has_text="更正此记录"))
    box.locator("summary").click()
    box.get_by_label("辅导记录").fill("第一次面谈，建立信任关系；约定每周一次")
    box.get_by_label("更正原因").fill("补记约定的频次")
    box.get_by_role("button", name="保存更正").click()
    expect(page.get_by_role("status").first).to_contain_text("记录已更正")
    expect(page.locator("#sessions")).to_contain_text("约定每周一次")
    expect(page.locator("#sessions")).to_contain_text("补记约定的频次")
    s.shot("counselor1-support-file")

    page.goto("/support")
    row = page.locator("#caseload tr", has_text=name)
    expect(row).to_contain_text("高危")
    high = page.locator("#register")
    high.get_by_label("风险等级").select_option(label="高危")
    high.get_by_role("button", name="筛选").click()
    expect(page.locator("#register tr", has_text=name)).to_contain_text("高危")
    s.shot("counselor1-support-register")
    # Readable on a phone: nothing wider than the screen.
    page.set_viewport_size({"width": 390, "height": 844})
    for path in (
        "/support",
        page.locator("#caseload tr", has_text=name).get_by_role("link", name=name).get_attribute("href"),
    ):
        page.goto(path)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 391, f"{path} is {width}px wide on a 390px phone"
    s.shot("counselor1-support-file-phone")
    assert not s.dialogs


def test_counselor_imports_screenings_first_with_an_error(open_session: Any, live: LiveServer, tmp_path: Any) -> None:
    _a, no_a, _na = _new_student(live)
    _b, no_b, name_b = _new_student(live)
    s = open_session()
    page = s.login("counselor1")
    page.goto("/screenings")
    expect(page.locator("#not-screened")).to_contain_text(name_b)
    before = page.locator("#coverage-total").inner_text()
    header = "student_no,instrument,date," + ",".join(f"item{i}" for i in range(1, 10))
    today = live.app.now().date().isoformat()
    bad = tmp_path / "bad.csv"
    bad.write_text(
        f"{header}\n{no_a},PHQ-9,{today},0,1,0,0,0,1,0,0,0\n{no_b},PHQ-9,not-a-date,0,1,0,0,0,1,0,0,0\n",
        encoding="utf-8",
    )
    page.get_by_label("CSV 文件").set_input_files(str(bad))
    page.get_by_role("button", name="导入").click()
    expect(page.get_by_role("alert")).to_contain_text("未导入任何数据")
    errors = page.locator("#import-errors tbody tr")
    expect(errors).to_have_count(1)
    expect(errors.first).to_contain_text("第 3 行")
    expect(page.locator("#coverage-total")).to_have_text(before)
    s.shot("counselor1-screening-errors")

    good = tmp_path / "good.csv"
    good.write_text(
        f"{header}\n{no_a},PHQ-9,{today},0,1,0,0,0,1,0,0,0\n{no_b},PHQ-9,{today},0,1,0,0,0,1,0,0,0\n", encoding="utf-8"
    )
    page.get_by_label("CSV 文件").set_input_files(str(good))
    page.get_by_role("button", name="导入").click()
    expect(page.get_by_role("status").first).to_contain_text("已导入 2 条筛查结果")
    screened, enrolled = (int(x) for x in before.split("已筛查")[0].replace(" ", "").split("/"))
    expect(page.locator("#coverage-total")).to_contain_text(f"{screened + 2} / {enrolled}")
    expect(page.locator("#not-screened")).not_to_contain_text(name_b)
    s.shot("counselor1-screening-imported")

    # A make-up screening typed in for one student, picked from those not yet screened.
    sid_c, no_c, name_c = _new_student(live)
    page.goto("/screenings")
    one = page.locator("#record-one")
    # the student picker: typed by number, chosen from the suggestions
    one.get_by_role("combobox", name="学生").fill(no_c)
    one.get_by_role("option").filter(has_text=name_c).first.click()
    expect(one.get_by_role("combobox", name="学生")).to_have_value(re.compile(re.escape(name_c)))
    one.get_by_label("量表").select_option("PHQ-9")
    one.get_by_label("各题得分（用逗号分隔）").fill("0,1,0,0,0,1,0,0,0")
    one.get_by_role("button", name="保存筛查结果").click()
    expect(page.get_by_role("status").first).to_contain_text("已导入 1 条筛查结果")
    expect(page.locator("#coverage-total")).to_contain_text(f"{screened + 3} / {enrolled + 1}")
    expect(page.locator("#not-screened")).not_to_contain_text(name_c)
    assert not s.dialogs
