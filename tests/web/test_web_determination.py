"""Issue 17, part B, through the case page: the guardians of both sides are invited and their
part recorded before the determination (未成年人保护法 art. 39); a determination without them
is refused on the page with the students' names; a bad notice says why in Chinese and
writes nothing."""

from __future__ import annotations

import uuid
from typing import Any

from test_web_cases import VERSION, _case, _report, _step, _students
from web_support import Browser, DemoSite


def _new_case(site: DemoSite, s: Browser, tag: str) -> tuple[str, Any, Any]:
    """A case reported and investigated through the pages: awaiting the determination."""
    target, bully = _students(site, "八年级2班")[2:4]
    r = _report(site, s, [(target.student_no, "targeted"), (bully.student_no, "bullying")], f"孤立排挤 {tag}")
    case_id = r.headers["location"].rsplit("/", 1)[1]
    _step(site, s, case_id, "start_investigation", {})
    _step(site, s, case_id, "complete_investigation", {"findings": f"属实 {tag}"})
    return case_id, target, bully


def _post(b: Browser, case_id: str, action: str, data: dict[str, Any]) -> Any:
    version = VERSION.search(b.get(f"/cases/{case_id}").text)
    assert version
    return b.post(f"/cases/{case_id}/{action}", {"expected_version": version.group(1), **data})


def test_the_determination_waits_for_both_guardians_and_the_page_names_who_is_missing(site: DemoSite, browse) -> None:
    s = browse("safety1")
    tag = uuid.uuid4().hex[:8]
    case_id, target, bully = _new_case(site, s, tag)
    # given the case page, the guardians' section lists both students as not yet invited
    page = s.get(f"/cases/{case_id}").text
    assert 'id="guardians"' in page and page.count("尚未通知监护人参与认定") >= 2
    # when the determination is recorded straight away, it is refused naming both students
    version = _case(site, case_id).version
    r = _post(s, case_id, "determine", {"bullying": "yes", "severity": "minor", "reason": "认定"})
    assert r.status_code == 400
    assert f"{target.name}、{bully.name}：尚未通知监护人参与认定" in r.text and "第三十九条" in r.text
    assert _case(site, case_id).version == version
    # when the targeted student's guardian comes in person and the other's phone goes unanswered
    _step(site, s, case_id, "invite_guardian", {"student_id": target.id, "method": "in_person", "reached": "yes"})
    page = _step(site, s, case_id, "guardian_participation", {"student_id": target.id, "participation": "attended"})
    assert "出席认定会议" in page
    for i in range(3):
        _step(
            site,
            s,
            case_id,
            "invite_guardian",
            {"student_id": bully.id, "method": "phone", "reached": "no", "note": f"无人接听 {i}"},
        )
    page = _step(site, s, case_id, "guardian_participation", {"student_id": bully.id, "participation": "unreachable"})
    assert "多次联系未果" in page and "无人接听 2" in page
    # and the school's body meets: the form lists its members by name and capacity
    members = site.app.committee.active_member_ids(_case(site, case_id).school_id)
    assert len(members) >= 3
    page = s.get(f"/cases/{case_id}").text
    assert page.count('name="members_present"') == len(members) and "法治副校长" in page
    # one member alone is short of the majority: recorded, and the determination refused saying so
    data = {"summary": f"意见 {tag}", "decision": "认定构成欺凌"}
    page = _step(site, s, case_id, "committee_meeting", {"members_present": members[:1], **data})
    assert "未达到规定人数" in page and f"意见 {tag}" in page
    r = _post(s, case_id, "determine", {"bullying": "yes", "severity": "minor", "reason": "认定"})
    assert r.status_code == 400 and "未达到规定人数" in r.text
    _step(site, s, case_id, "committee_meeting", {"members_present": members, **data})
    # then the determination is recorded
    _step(site, s, case_id, "determine", {"bullying": "yes", "severity": "minor", "reason": f"认定 {tag}"})
    assert _case(site, case_id).status == "determined"


def test_a_notice_not_reached_without_what_happened_is_refused_in_chinese_and_writes_nothing(
    site: DemoSite, browse
) -> None:
    s = browse("safety1")
    case_id, target, _ = _new_case(site, s, uuid.uuid4().hex[:8])
    version = _case(site, case_id).version
    r = _post(s, case_id, "invite_guardian", {"student_id": target.id, "method": "phone", "reached": "no"})
    assert r.status_code == 400 and "未联系上监护人时须说明情况" in r.text
    r = _post(s, case_id, "invite_guardian", {"student_id": target.id, "method": "phone"})
    assert r.status_code == 400 and "须写明是否联系上监护人" in r.text
    r = _post(s, case_id, "guardian_participation", {"student_id": target.id, "participation": "attended"})
    assert r.status_code == 400 and "须先记录已通知到该生监护人" in r.text
    assert _case(site, case_id).version == version


def test_the_principal_keeps_the_body_and_the_safety_lead_reads_it(site: DemoSite, browse) -> None:
    p, s = browse("principal1"), browse("safety1")
    tag = uuid.uuid4().hex[:6]
    page = p.get("/committee").text
    assert "登记成员" in page and "法治副校长" in page
    r = p.post("/committee/appoint", {"name": f"何专家{tag}", "capacity": "expert"})
    assert r.status_code == 303
    page = s.get("/committee").text
    assert f"何专家{tag}" in page and "登记成员" not in page  # read only for the safety lead
    # a bad capacity is refused in Chinese, nothing appointed
    before = len(site.app.committee.active_member_ids(_case_school(site)))
    r = p.post("/committee/appoint", {"name": "某人", "capacity": "mascot"})
    assert r.status_code == 400 and "身份「mascot」无效" in r.text
    assert len(site.app.committee.active_member_ids(_case_school(site))) == before


def _case_school(site: DemoSite) -> str:
    return str(site.app.gate.actor(site.app.accounts.account("principal1")[0]).school_id)
