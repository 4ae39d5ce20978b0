"""Issue 17 (A) through the pages: a hotline clue reported with no student named, shown on
the case board and in the safety lead's queue as 未确认学生, refused at the investigation's end
until a targeted student is named, and closed by the principal as 查无欺凌."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from typing import Any

from determination_support import ready_to_determine
from web_support import Browser, DemoSite

from projections.case_board import case_board
from projections.work_queue import work_queue
from web import i18n

VERSION = re.compile(r'name="expected_version" value="(\d+)"')
ERROR = re.compile(r'class="error"[^>]*>([^<]+)<')


def _actor(site: DemoSite, username: str) -> Any:
    return site.app.gate.actor(site.app.accounts.account(username)[0])


def _case_ids(site: DemoSite) -> set[str]:
    safety = _actor(site, "safety1")
    return {c["case_id"] for c in site.app.cases.cases_of_school(safety, safety.school_id)}


def _clue(site: DemoSite, b: Browser, **extra: Any) -> Any:
    when = i18n.local(site.app.now() - timedelta(hours=3)).strftime("%Y-%m-%dT%H:%M")
    data = {
        "occurred_at": when,
        "place": "不详",
        "channel": "hotline",
        "forms": ["exclusion"],
        "narrative": f"来电称七年级有学生长期被同学孤立 {uuid.uuid4().hex[:6]}",
        **extra,
    }
    return b.post("/cases/new", data)


def _post_step(b: Browser, case_id: str, action: str, data: dict[str, Any]) -> Any:
    page = b.get(f"/cases/{case_id}")
    version = VERSION.search(page.text)
    assert version, page.text[-300:]
    return b.post(f"/cases/{case_id}/{action}", {"expected_version": version.group(1), **data})


def test_the_report_form_offers_unconfirmed_students_and_the_hotline_and_anonymous_channels(browse) -> None:
    page = browse("teacher1").get("/cases/new").text
    assert 'name="students_unconfirmed"' in page and "学生尚未确认" in page
    assert 'value="hotline"' in page and 'value="anonymous"' in page and "恶意排斥、孤立" in page


def test_a_clue_without_students_is_refused_unless_marked_unconfirmed(site: DemoSite, browse) -> None:
    teacher = browse("teacher1")
    before = _case_ids(site)
    # when the form names nobody and does not say the students are unconfirmed
    r = _clue(site, teacher)
    # then it is refused with a message, and nothing is recorded
    assert r.status_code == 400 and "至少要有一名被欺凌学生" in r.text
    assert _case_ids(site) == before


def test_a_hotline_clue_is_shown_as_unconfirmed_and_closed_by_the_principal_as_no_bullying(
    site: DemoSite, browse
) -> None:
    teacher, safety, principal = browse("teacher1"), browse("safety1"), browse("principal1")
    before = _case_ids(site)
    # given a hotline clue reported with "学生尚未确认" and no student number
    r = _clue(site, teacher, students_unconfirmed="1")
    assert r.status_code == 303, ERROR.findall(r.text)
    (case_id,) = _case_ids(site) - before
    # then the board and the safety lead's queue show it as 未确认学生
    lead = _actor(site, "safety1")
    (line,) = [x for x in case_board(site.app, lead, lead.school_id) if x.case_id == case_id]
    assert line.unconfirmed and line.status == "reported"
    assert "未确认学生" in safety.get("/cases").text
    (item,) = [i for i in work_queue(site.app, lead) if i.stream_id == case_id]
    assert item.label == "未确认学生" and item.unconfirmed
    assert "未确认学生" in safety.get("/").text
    # and the case page says the targeted student is not identified yet
    page = safety.get(f"/cases/{case_id}").text
    assert 'id="unconfirmed"' in page
    # when the safety lead starts the investigation and tries to complete it with nobody named
    assert _post_step(safety, case_id, "start_investigation", {}).status_code == 303
    refused = _post_step(safety, case_id, "complete_investigation", {"findings": "未查实"})
    # then it is refused once, naming what is missing
    assert refused.status_code == 400
    errors = ERROR.findall(refused.text)
    assert len(errors) == 1 and "尚未确认被欺凌学生" in errors[0] and "完成调查" in errors[0]
    # when the principal closes the clue as not concerning students of this school
    done = _post_step(principal, case_id, "dismiss_clue", {"finding": "not_our_students", "reason": "经核查为外校学生"})
    assert done.status_code == 303, ERROR.findall(done.text)
    # then it is closed without a determination, and leaves the queue
    case = site.app.cases.get_case(lead, case_id)
    assert case.status == "closed" and case.determination is None
    assert case_id not in {i.stream_id for i in work_queue(site.app, lead)}
    assert "不涉及本校学生" in principal.get(f"/cases/{case_id}").text


def _students(site: DemoSite, class_name: str) -> list[Any]:
    admin = _actor(site, "admin")
    school = _actor(site, "teacher1").school_id
    return [s for s in site.app.roster.list_students(admin, school) if s.class_name == class_name and not s.erased]


def test_closing_without_an_education_plan_names_the_bullying_student_and_the_type_once(site: DemoSite, browse) -> None:
    # given a case determined as bullying (approved), where the targeted student has support and
    # the bullying student has counselling, but no education plan (教育矫治)
    app, lead, head = site.app, _actor(site, "safety1"), _actor(site, "principal1")
    target, bully = _students(site, "七年级1班")[0], _students(site, "七年级2班")[0]
    when = app.now() - timedelta(hours=2)
    cid = app.cases.report_bullying(
        lead,
        school_id=lead.school_id,
        channel="teacher",
        occurred_at=when,
        place="操场",
        forms=["verbal"],
        parties=[(target.id, "targeted"), (bully.id, "bullying")],
        narrative=f"起绰号 {uuid.uuid4().hex[:6]}",
    )
    app.cases.start_investigation(lead, cid)
    app.cases.complete_investigation(lead, cid, findings="属实")
    ready_to_determine(app, head, cid)
    app.cases.determine(lead, cid, bullying=True, severity="minor", reason="委员会认定")
    app.cases.approve_determination(head, cid, reason="同意")
    for sid, kind in ((target.id, "support"), (bully.id, "counselling")):
        app.cases.plan_intervention(
            lead, cid, student_id=sid, kind=kind, plan="方案", responsible_staff_id=lead.staff_id
        )
    # when the principal tries to close it from the page
    r = _post_step(browse("principal1"), cid, "close", {"reason": "干预完成"})
    # then it is refused, the message shown exactly once, naming the bullying student and the type
    assert r.status_code == 400
    errors = ERROR.findall(r.text)
    assert len(errors) == 1, errors
    assert r.text.count("须有「教育矫治」") == 1
    assert bully.name in errors[0] and "涉嫌欺凌学生" in errors[0] and "「教育矫治」" in errors[0]
    assert target.name not in errors[0]
    # and nothing was recorded
    assert app.cases.get_case(lead, cid).status == "intervening"
