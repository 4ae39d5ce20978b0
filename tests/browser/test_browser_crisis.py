"""The crisis pathway in a real browser (心理危机干预): a counselor imports a class's PHQ-9
results with item 9 = 1 for one student; another counselor of the school signs in and finds
the crisis at the top of the work queue, due today, and records the first step on its
checklist; the principal sees it at the top too; the class teacher sees only a status line
(关注该学生) with no trigger, no notes and no link. Each page at 1280 px and 390 px."""

from __future__ import annotations

import re
import shutil
import uuid
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from browser_support import LiveServer

from anxin.demo import DEMO_PASSWORD
from anxin.passwords import hash_password

pytest.importorskip("playwright.sync_api", reason="Playwright is not installed")

from playwright.sync_api import expect  # noqa: E402

TMP_SHOTS = Path("/tmp/anxin-crisis-shots")


def _phone_fits(page: Any, path: str) -> None:
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(path)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 391, f"{path} is {width}px wide on a 390px phone"
    page.set_viewport_size({"width": 1280, "height": 900})


def _crisis_at_the_top(page: Any, name: str) -> None:
    """The student's crisis line is due today, and the crises (the demo's earlier ones
    too) come before every other item of the queue."""
    rows = page.locator("table.list tbody tr")
    texts = rows.all_inner_texts()
    at = next(i for i, t in enumerate(texts) if name in t)
    assert "心理危机干预" in texts[at] and "今日须处理" in texts[at], texts[at]
    crises = [i for i, t in enumerate(texts) if "心理危机干预" in t]
    assert crises == list(range(len(crises))), "a crisis below another item"


def _shot(s: Any, name: str) -> None:
    """The screenshot (test-artifacts/screenshots), and a copy under /tmp to look at."""
    path = s.shot(name)
    TMP_SHOTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(path, TMP_SHOTS / path.name)


def test_an_imported_crisis_reaches_every_counselor_the_principal_and_the_class_teacher(
    open_session: Any, live: LiveServer, tmp_path: Any
) -> None:
    app = live.app
    admin = app.gate.actor(app.accounts.account("admin")[0])
    c1 = app.gate.actor(app.accounts.account("counselor1")[0])
    school = c1.school_id
    # another counselor of the school, who imported nothing
    other = f"counselor-{uuid.uuid4().hex[:6]}"
    app.roster.add_staff(
        admin,
        username=other,
        name="周心理",
        school_id=school,
        roles=["counselor"],
        password_hash=hash_password(DEMO_PASSWORD),
    )
    # two new students of teacher1's class, one to answer 1 on item 9
    name = "危" + uuid.uuid4().hex[:3]
    nos = []
    for n, who in enumerate((name, "安" + uuid.uuid4().hex[:3])):
        no = "K" + uuid.uuid4().hex[:8]
        app.roster.enrol_student(
            admin,
            school_id=school,
            student_no=no,
            name=who,
            gender="女" if n else "男",
            birth_date=date(2013, 3, 1),
            grade="七年级",
            class_name="七年级1班",
        )
        nos.append(no)
    header = "student_no,instrument,date," + ",".join(f"item{i}" for i in range(1, 10))
    today = app.now().date().isoformat()
    csv = tmp_path / "phq9.csv"
    csv.write_text(
        f"{header}\n{nos[0]},PHQ-9,{today},1,1,0,0,0,1,0,0,1\n{nos[1]},PHQ-9,{today},0,0,0,0,0,0,0,0,0\n",
        encoding="utf-8",
    )

    # counselor1 imports the class's results
    s1 = open_session()
    page = s1.login("counselor1")
    page.goto("/screenings")
    page.get_by_label("CSV 文件").set_input_files(str(csv))
    page.get_by_role("button", name="导入").click()
    expect(page.get_by_role("status").first).to_contain_text("已导入 2 条筛查结果")

    # another counselor signs in: the crisis is in the block of crises at the top of the work
    # queue (the demo's older, overdue crises first), due today
    s2 = open_session()
    page = s2.login(other)
    page.goto("/")
    _crisis_at_the_top(page, name)
    _shot(s2, "crisis-counselor2-queue")
    _phone_fits(page, "/")
    page.goto("/")
    page.set_viewport_size({"width": 390, "height": 844})
    _shot(s2, "crisis-counselor2-queue-phone")
    page.set_viewport_size({"width": 1280, "height": 900})

    # and opens the checklist, records the risk assessment: done, with who and when
    page.locator("table.list tbody tr", has_text=name).get_by_role("link", name="心理危机干预").click()
    expect(page).to_have_url(re.compile(r"/crisis/[0-9a-f-]{36}$"))
    expect(page.get_by_role("heading", name=re.compile(name))).to_be_visible()
    step = page.locator("#step-assessed")
    expect(step).to_contain_text("待办")
    step.locator("summary", has_text="记录风险评估").click()
    step.get_by_label("评估结论（已面谈学生）").fill("有自伤意念，无具体计划；已安排陪护")
    step.get_by_role("button", name="保存评估").click()
    expect(page.get_by_role("status").first).to_contain_text("已记录风险评估")
    expect(page.locator("#step-assessed")).to_contain_text("已完成")
    expect(page.locator("#step-assessed")).to_contain_text("周心理")
    _shot(s2, "crisis-checklist")
    crisis_url = page.url
    _phone_fits(page, crisis_url)
    page.goto(crisis_url)
    page.set_viewport_size({"width": 390, "height": 844})
    _shot(s2, "crisis-checklist-phone")

    # the principal has it at the top too
    s3 = open_session()
    page = s3.login("principal1")
    page.goto("/")
    _crisis_at_the_top(page, name)
    _shot(s3, "crisis-principal-queue")

    # the class teacher: only the watch line, no trigger, no notes; its one link is the file's status
    s4 = open_session()
    page = s4.login("teacher1")
    page.goto("/")
    row = page.locator("table.list tbody tr", has_text=name)
    expect(row).to_have_count(1)
    expect(row).to_contain_text("关注该学生")
    expect(row.get_by_role("link")).to_have_count(1)
    body = page.locator("main").inner_text()
    assert "PHQ" not in body and "第9题" not in body and "自伤意念" not in body
    expect(page.locator("table.list tbody tr").first).to_contain_text("关注该学生")
    _shot(s4, "crisis-teacher-watch")
    _phone_fits(page, "/")
    row.get_by_role("link").click()
    expect(page.locator("h1")).to_contain_text("心理档案状态")
    expect(page.locator("#file-crisis")).to_contain_text("正在进行")
    body = page.locator("main").inner_text()
    assert "高危" not in body and "PHQ" not in body and "自伤意念" not in body
    _shot(s4, "crisis-teacher-status")
    status_path = "/" + page.url.split("//", 1)[1].split("/", 1)[1]
    _phone_fits(page, status_path)
    page.goto(status_path)
    page.set_viewport_size({"width": 390, "height": 844})
    _shot(s4, "crisis-teacher-status-phone")
    page.set_viewport_size({"width": 1280, "height": 900})
    # and the checklist is closed to them
    response = page.goto(crisis_url)
    assert response is not None and response.status == 403
    for s in (s1, s2, s3, s4):
        assert not s.dialogs
