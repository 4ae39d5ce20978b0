"""The supervisor's audit in a real browser (issue 15): the case number a school's safety
lead reads off the case board (QL-2026-0003) is typed on the audit page with a reason; the history reads
in Chinese words (what, who by name, when in school time); the trail is verified from the
page. Screenshots of the history at 1280 and 390 px wide go to /tmp/shots/."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from browser_support import LiveServer

pytest.importorskip("playwright.sync_api", reason="Playwright is not installed")

from playwright.sync_api import expect  # noqa: E402

SHOTS = Path("/tmp/shots")


def _report_case(live: LiveServer) -> str:
    app = live.app
    safety = app.gate.actor(app.accounts.account("safety1")[0])
    admin = app.gate.actor(app.accounts.account("admin")[0])
    student = next(s for s in app.roster.list_students(admin, safety.school_id) if not s.erased)
    return app.cases.report_bullying(
        safety,
        school_id=safety.school_id,
        channel="teacher",
        occurred_at=app.now() - timedelta(hours=2),
        place="食堂",
        forms=["verbal"],
        parties=[(student.id, "targeted")],
        narrative="午饭时被同学起外号 " + uuid.uuid4().hex[:6],
    )


def test_supervisor_finds_a_case_by_its_board_number_and_reads_its_history(open_session: Any, live: LiveServer) -> None:
    case_id = _report_case(live)
    from anxin import audit

    if not audit.signing_key_path(live.app.config).exists():
        audit.create_signing_key(live.app.config)
    live.app.checkpoint("system")

    # the number as the case board shows it to the school's safety lead
    school = open_session()
    board = school.login("safety1")
    board.goto("/cases")
    number = board.locator(f'a[href="/cases/{case_id}"]').inner_text().strip()
    assert re.fullmatch(r"QL-\d{4}-\d{4}", number)  # a number to read aloud and type, no id
    school_name = live.app.record_numbers([case_id])[case_id].school
    reporter = live.app.roster.staff_name(live.app.accounts.account("safety1")[0])

    s = open_session()
    page = s.login("supervisor1")
    page.goto("/audit")
    # the trail verified from the page
    page.get_by_role("button", name="立即核验审计记录").click()
    expect(page.locator("#verify-status")).to_contain_text("核验通过")
    expect(page.locator("#verify-status")).to_contain_text("审计记录完整，未被改动")
    expect(page.get_by_text("最近的签名检查点")).to_be_visible()

    # the number typed, a reason stated
    page.get_by_label("记录编号（页面上显示的编号）").fill(number.lower())  # typed as it comes
    page.get_by_label("查阅理由（必填，不少于6个字，加密保存在审计记录中）").fill("核查家长投诉：了解处理经过")
    page.get_by_role("button", name="查看记录历史").click()

    expect(page.get_by_role("heading", name=f"欺凌案件 {number} · {school_name} 的完整历史")).to_be_visible()
    expect(page.locator("#history-number")).to_have_text(number)
    history = page.locator("ol.audit-history")
    expect(history).to_contain_text("报告疑似欺凌（案件创建）")
    expect(history).to_contain_text(reporter)
    expect(history).to_contain_text("访问")
    expect(history).to_contain_text("审计查询")  # this very lookup, with its reason
    expect(history).to_contain_text("核查家长投诉：了解处理经过")
    text = history.inner_text()
    assert re.search(r"\d{4}年\d{1,2}月\d{1,2}日 \d{2}:\d{2}", text)
    assert not re.search(r"\d{4}-\d{2}-\d{2}T", text)  # no machine timestamps
    for raw in ("BullyingCase", "case.read", "audit.read", "access", "+08:00"):
        assert raw not in text, raw
    expect(page.locator("#verify-status")).to_contain_text("核验通过")

    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "audit-history-1280.png"), full_page=True)
    # printed: no menu, no forms; the header with the number, the school and the reason
    page.emulate_media(media="print")
    expect(page.locator("header.top")).to_be_hidden()
    expect(page.locator("form.audit-find")).to_be_hidden()
    expect(page.locator("section.history-head")).to_contain_text(school_name)
    expect(page.locator("section.history-head")).to_contain_text("核查家长投诉：了解处理经过")
    expect(page.locator("p.print-brand")).to_be_visible()
    page.screenshot(path=str(SHOTS / "audit-history-print.png"), full_page=True)
    page.emulate_media(media="screen")
    page.set_viewport_size({"width": 390, "height": 844})
    page.screenshot(path=str(SHOTS / "audit-history-390.png"), full_page=True)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # nothing runs off a phone's screen
