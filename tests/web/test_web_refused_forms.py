"""A refused form, sent by a browser (it asks for HTML): 303 back to the page (never the
form's own address), which shows the message once, beside the form, with what was typed;
shown once, so a reload shows the page clean and sends nothing. What was typed is kept in
the session's sealed data (never in the address, never in clear in the database). The
case page's steps, /cases/new, a support file's forms, /support/new and a pairing's
forms all work so; a client that does not ask for HTML still gets the page at once with
its status (400, or 409 for a stale page)."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

from web_support import DemoSite

HTML = {"Accept": "text/html,application/xhtml+xml"}
ERROR = re.compile(r'<p class="error"[^>]*>([^<]+)</p>')  # any error line of the page
VERSION = re.compile(r'name="expected_version" value="(\d+)"')


def _actor(site: DemoSite, username: str) -> Any:
    return site.app.gate.actor(site.app.accounts.account(username)[0])


def _new_case(site: DemoSite) -> str:
    t1 = _actor(site, "teacher1")
    admin = _actor(site, "admin")
    target = next(
        s for s in site.app.roster.list_students(admin, t1.school_id) if s.class_name == "七年级1班" and not s.erased
    )
    return str(
        site.app.cases.report_bullying(
            t1,
            school_id=t1.school_id,
            channel="teacher",
            occurred_at=site.app.now() - timedelta(hours=1),
            place="操场",
            forms=["verbal"],
            parties=[(target.id, "targeted")],
            narrative="课间起外号",
        )
    )


def _raw_store_bytes(site: DemoSite) -> bytes:
    if site.kind != "sqlite":
        return b""
    folder = Path(site.app.config.data_dir)
    return b"".join(p.read_bytes() for p in folder.rglob("*.db*") if p.is_file())


def test_a_refused_case_step_redirects_and_shows_the_error_once_beside_its_form(site: DemoSite, browse: Any) -> None:
    case_id = _new_case(site)
    b = browse("safety1")
    page = b.get(f"/cases/{case_id}").text
    version = VERSION.search(page).group(1)
    typed = f"监控显示两人推搡 {uuid.uuid4().hex[:8]}"
    r = b.post(
        f"/cases/{case_id}/safety_measure",
        {"expected_version": version, "kind": "no_such_kind", "note": typed},
        headers=HTML,
    )
    assert r.status_code == 303
    assert r.headers["location"] == f"/cases/{case_id}#safety_measure"
    assert typed not in r.headers["location"]
    assert typed.encode() not in _raw_store_bytes(site)  # sealed in the session's data
    shown = b.get(r.headers["location"])
    assert shown.status_code == 400
    assert len(ERROR.findall(shown.text)) == 1
    box = shown.text.split('id="safety_measure"', 1)[1].split("</details>", 1)[0]
    assert ERROR.search(box) and typed in box  # beside its form, with what was typed
    assert re.search(r'<details class="action" id="safety_measure" open>', shown.text)
    # a reload: the page again, clean; nothing was sent or written
    again = b.get(f"/cases/{case_id}")
    assert again.status_code == 200 and not ERROR.findall(again.text) and typed not in again.text
    assert site.app.cases.get_case(_actor(site, "safety1"), case_id).version == int(version)


def test_a_stale_case_page_says_so_once_at_the_top(site: DemoSite, browse: Any) -> None:
    case_id = _new_case(site)
    b = browse("safety1")
    page = b.get(f"/cases/{case_id}").text
    stale = VERSION.search(page).group(1)
    ok = b.post(f"/cases/{case_id}/evidence", {"expected_version": stale, "description": "第一份证据"})
    assert ok.status_code == 303
    r = b.post(f"/cases/{case_id}/evidence", {"expected_version": stale, "description": "过期页面"}, headers=HTML)
    assert r.status_code == 303 and r.headers["location"] == f"/cases/{case_id}"
    shown = b.get(r.headers["location"])
    assert shown.status_code == 409 and len(ERROR.findall(shown.text)) == 1
    assert "已被他人修改" in ERROR.findall(shown.text)[0]


def test_a_refused_report_keeps_what_was_typed_after_the_redirect(site: DemoSite, browse: Any) -> None:
    b = browse("teacher1")
    narrative = f"放学路上被高年级学生拦住要钱 {uuid.uuid4().hex[:8]}"
    r = b.post(
        "/cases/new",
        {"occurred_at": "", "place": "校门外小巷", "narrative": narrative, "forms": ["property"]},
        headers=HTML,
    )
    assert r.status_code == 303 and r.headers["location"] == "/cases/new"
    shown = b.get("/cases/new")
    assert shown.status_code == 400
    assert ERROR.findall(shown.text) == ["输入无效：请填写发生时间"]
    assert narrative in shown.text and 'value="校门外小巷"' in shown.text
    assert re.search(r'value="property" checked', shown.text)
    assert narrative not in b.get("/cases/new").text  # shown once


def test_without_html_the_page_is_answered_at_once(site: DemoSite, browse: Any) -> None:
    r = browse("teacher1").post("/cases/new", {"occurred_at": "", "place": "食堂", "narrative": "插队推人"})
    assert r.status_code == 400 and ERROR.findall(r.text) == ["输入无效：请填写发生时间"]


def test_a_refused_support_file_form_redirects_with_its_error_once(site: DemoSite, browse: Any) -> None:
    counselor = _actor(site, "counselor1")
    # a file not already at 高危, so the refusal is the empty reason's
    file_id = next(
        x.file_id for x in site.app.support.my_support_files(counselor) if x.status == "open" and x.risk_level != "high"
    )
    b = browse("counselor1")
    page = b.get(f"/support/{file_id}").text
    version = VERSION.search(page).group(1)
    typed = f"情绪低落，需要家长配合 {uuid.uuid4().hex[:6]}"
    r = b.post(
        f"/support/{file_id}/risk",
        {"expected_version": version, "to_level": "high", "reason": "  ", "note": typed},
        headers=HTML,
    )
    assert r.status_code == 303 and r.headers["location"] == f"/support/{file_id}#risk"
    shown = b.get(f"/support/{file_id}")
    assert shown.status_code == 400
    assert ERROR.findall(shown.text) == ["输入无效：调整原因不能为空"]  # once, beside the form (not also at the top)
    assert b.get(f"/support/{file_id}").status_code == 200


def test_a_refused_new_support_file_keeps_the_message_of_the_typed_number(site: DemoSite, browse: Any) -> None:
    b = browse("counselor1")
    r = b.post(
        "/support/new",
        {"student_no": "0000000009", "category": "emotion", "risk_level": "general", "reason": "筛查预警"},
        headers=HTML,
    )
    assert r.status_code == 303 and r.headers["location"] == "/support/new"
    shown = b.get("/support/new")
    assert (
        shown.status_code == 400 and "没有找到与「0000000009」相符的学生" in shown.text
    )  # the picker names what was typed
    assert len(ERROR.findall(shown.text)) == 1 and 'value="0000000009"' in shown.text


def test_a_refused_check_in_redirects_to_the_pairing(site: DemoSite, browse: Any) -> None:
    teacher = _actor(site, "teacher1")
    pairing = next(p for p in site.app.pairings.my_pairings(teacher) if p.active)
    pid = str(pairing.id)
    b = browse("teacher1")
    typed = f"最近上课走神 {uuid.uuid4().hex[:6]}"
    r = b.post(
        f"/pairings/{pid}/check-ins",
        {"held_on": "2026-02-30", "thinking": typed, "expected_version": str(pairing.version)},
        headers=HTML,
    )
    assert r.status_code == 303 and r.headers["location"] == f"/pairings/{pid}"
    shown = b.get(f"/pairings/{pid}")
    assert shown.status_code == 400 and len(ERROR.findall(shown.text)) == 1 and typed in shown.text
