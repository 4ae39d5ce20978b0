"""The roster import in a real browser: a school's GBK CSV with a bad row is refused with
every problem of the row listed; the corrected file gives a preview (new, changed with
each change, unchanged, missing); the missing student ticked, the confirmation applies all
of it. The upload page, its errors and the preview at 1280 px and 390 px."""

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

TMP_SHOTS = Path("/tmp/anxin-roster-shots")
ZH = "学号,姓名,性别,出生日期,年级,班级,监护人姓名,监护人电话,标签"


def _shot(s: Any, name: str) -> None:
    path = s.shot(name)
    TMP_SHOTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(path, TMP_SHOTS / path.name)


def _both_widths(s: Any, name: str) -> None:
    """A screenshot at 1280 px, then at 390 px, where the page must not be wider."""
    page = s.page
    _shot(s, f"{name}-1280")
    page.set_viewport_size({"width": 390, "height": 844})
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 391, f"{name} is {width}px wide on a 390px phone"
    _shot(s, f"{name}-390")
    page.set_viewport_size({"width": 1280, "height": 900})


def test_a_roster_is_previewed_then_confirmed_with_a_leaver_ticked(
    open_session: Any, live: LiveServer, tmp_path: Path
) -> None:
    app = live.app
    admin = app.gate.actor(app.accounts.account("admin")[0])
    tag = uuid.uuid4().hex[:4]
    school_name = f"花名册测试学校{tag}"
    school = app.roster.add_school(admin, school_name, admin.district)
    for no, name, cls in (("R001", "林一", "七年级1班"), ("R002", "林二", "七年级1班"), ("R003", "林三", "七年级2班")):
        app.roster.enrol_student(
            admin,
            school_id=school,
            student_no=no,
            name=name,
            gender="女",
            birth_date=date(2013, 5, 6),
            grade="七年级",
            class_name=cls,
            guardians=[{"name": "林家长", "phone": "13912345678"}],
            tags=[],
        )
    bad = tmp_path / "花名册-有错.csv"
    bad.write_bytes(
        "\r\n".join(
            [
                ZH,
                "R001,林一,女,2013-05-06,七年级,七年级1班,林家长,13912345678,",
                "R004,,未知,2013-02-30,七年级,七年级2班,林家长,123,",
            ]
        ).encode("gbk")
    )
    good = tmp_path / "花名册.csv"
    good.write_bytes(
        "\r\n".join(
            [
                ZH,
                "R001,林一,女,2013-05-06,七年级,七年级1班,林家长,13912345678,",
                "R002,林二,女,2013-05-06,七年级,七年级2班,林家长,13912345678,",  # moved class
                "R004,林四,男,2013/9/1,七年级,七年级2班,林家长,13800000004,",  # new
            ]
        ).encode("gbk")  # R003 is missing
    )

    s = open_session()
    page = s.login("admin")
    page.goto("/admin/roster")
    expect(page.get_by_role("link", name="Excel 模板（.xlsx）")).to_be_visible()
    _both_widths(s, "admin-roster-upload")

    page.get_by_label("学校").select_option(label=school_name)
    page.get_by_label("花名册文件").set_input_files(str(bad))
    page.get_by_role("button", name="上传并预览").click()
    expect(page.get_by_role("alert")).to_contain_text("共 1 行有错误")
    row = page.locator("#import-errors tbody tr")
    expect(row).to_have_count(1)
    for text in (
        "第 3 行",
        "姓名：必填",
        "性别：「未知」无法识别",
        "出生日期：「2013-02-30」不是有效日期",
        "监护人电话：「123」格式不正确",
    ):
        expect(row).to_contain_text(text)
    _both_widths(s, "admin-roster-errors")

    page.get_by_label("学校").select_option(label=school_name)
    page.get_by_label("花名册文件").set_input_files(str(good))
    page.get_by_role("button", name="上传并预览").click()
    expect(page.get_by_role("heading", name="花名册导入预览")).to_be_visible()
    expect(page.locator("#count-new")).to_contain_text("1")
    expect(page.locator("#count-changed")).to_contain_text("1")
    expect(page.locator("#count-unchanged")).to_contain_text("1")
    expect(page.locator("#count-missing")).to_contain_text("1")
    expect(page.locator("#roster-changed")).to_contain_text("班级：七年级1班 → 七年级2班")
    expect(page.locator("#roster-missing")).to_contain_text("林三")
    _both_widths(s, "admin-roster-preview")

    page.get_by_role("checkbox", name="办理离校 R003 林三").check()
    page.get_by_label("离校原因（勾选了学生时必填）").fill("转学至外地")
    page.get_by_role("button", name="确认导入").click()
    expect(page.get_by_text("花名册已导入：新增 1 名，更正 1 名，不变 1 名，标记离校 1 名")).to_be_visible()

    listed = {r.student_no: r for r in app.roster.list_students(admin, school)}
    assert listed["R002"].class_name == "七年级2班" and listed["R004"].name == "林四"
    r3 = app.roster.get_student(admin, listed["R003"].id)
    assert not r3.active
