"""Bullying cases through the pages: a class teacher reports, the safety lead walks the
case through every step of its lifecycle (the principal approves and closes), a
refused step writes nothing and says why, a stale page gets 409; a class teacher sees
the status of their class's cases only; the principal's board draws the case board's
counts; a supervisor reads a case only after stating a reason."""

from __future__ import annotations

import re
import uuid
from collections import Counter
from datetime import timedelta
from typing import Any

from determination_support import appeal_legacy
from web_support import Browser, DemoSite

from domain.bullying import BullyingCase
from projections.case_board import case_board
from projections.support_register import register
from projections.work_queue import overdue_counts
from web import i18n

XSS = "<script>alert(1)</script>\"' ; DROP TABLE x; --"
VERSION = re.compile(r'name="expected_version" value="(\d+)"')


def _actor(site: DemoSite, username: str) -> Any:
    return site.app.gate.actor(site.app.accounts.account(username)[0])


def _students(site: DemoSite, class_name: str) -> list[Any]:
    """Students of a class of school 1, as the administrator's roster read gives them."""
    admin = _actor(site, "admin")
    school = _actor(site, "teacher1").school_id
    return [s for s in site.app.roster.list_students(admin, school) if s.class_name == class_name and not s.erased]


def _case_ids(site: DemoSite) -> set[str]:
    safety = _actor(site, "safety1")
    return {c["case_id"] for c in site.app.cases.cases_of_school(safety, safety.school_id)}


def _when(site: DemoSite, hours: int = 2) -> str:
    return i18n.local(site.app.now() - timedelta(hours=hours)).strftime("%Y-%m-%dT%H:%M")


def _report(site: DemoSite, b: Browser, parties: list[tuple[str, str]], narrative: str) -> Any:
    data: dict[str, Any] = {
        "occurred_at": _when(site),
        "place": "教学楼三楼走廊",
        "channel": "teacher",
        "forms": ["physical", "verbal"],
        "narrative": narrative,
    }
    for i, (number, part) in enumerate(parties):
        data[f"student_no_{i}"] = number
        data[f"part_{i}"] = part
    return b.post("/cases/new", data)


def _case(site: DemoSite, case_id: str) -> BullyingCase:
    return site.app.cases.get_case(_actor(site, "safety1"), case_id)


def _step(site: DemoSite, b: Browser, case_id: str, action: str, data: dict[str, Any]) -> str:
    """Post one lifecycle step from the page as it stands (with its version); the page after."""
    page = b.get(f"/cases/{case_id}")
    assert page.status_code == 200, page.text[-500:]
    version = VERSION.search(page.text)
    assert version, f"no form on the page for {action}"
    r = b.post(f"/cases/{case_id}/{action}", {"expected_version": version.group(1), **data})
    assert r.status_code == 303, (action, r.status_code, re.findall(r'class="error"[^>]*>([^<]+)', r.text))
    after = b.get(f"/cases/{case_id}")
    assert after.status_code == 200
    return after.text


def _guardians_take_part(site: DemoSite, b: Browser, case_id: str) -> None:
    """Through the case page's forms: each targeted and bullying student's guardian invited by
    phone and attending (未成年人保护法 art. 39), and the body's meeting: what a determination needs."""
    c = _case(site, case_id)
    for sid, part in c.links:
        if part in ("targeted", "bullying") and c.guardian_participation(sid) is None:
            _step(site, b, case_id, "invite_guardian", {"student_id": sid, "method": "phone", "reached": "yes"})
            _step(site, b, case_id, "guardian_participation", {"student_id": sid, "participation": "attended"})
    # and the school's 学生欺凌治理委员会 meets with its quorum (the demo's principal keeps the body)
    members = site.app.committee.active_member_ids(c.school_id)
    if not members:
        for name, capacity in [
            ("赵校长", "school_leader"),
            ("钱警官", "rule_of_law_vice_principal"),
            ("孙律师", "expert"),
        ]:
            site.app.committee.appoint_member(
                _actor(site, "principal1"), school_id=c.school_id, name=name, capacity=capacity
            )
        members = site.app.committee.active_member_ids(c.school_id)
    meeting = _case(site, case_id).pending_meeting
    if meeting is None or not meeting["quorate"]:
        _step(
            site,
            b,
            case_id,
            "committee_meeting",
            {"members_present": members, "summary": "成员发表意见", "decision": "表决通过"},
        )


def _denials(site: DemoSite, staff_id: str, action: str) -> int:
    return site.app.db.fetchone(
        "SELECT COUNT(*) FROM {t}anxin_access WHERE actor_id = ? AND action = ? AND allowed = 0", (staff_id, action)
    )[0]


def _reads(site: DemoSite, staff_id: str, case_id: str) -> int:
    return site.app.db.fetchone(
        "SELECT COUNT(*) FROM {t}anxin_access WHERE actor_id = ? AND action = 'case.read' AND resource_id = ? "
        "AND allowed = 1",
        (staff_id, case_id),
    )[0]


def test_teacher_reports_and_the_case_is_walked_to_closure_and_reopened(site: DemoSite, browse) -> None:
    teacher = browse("teacher1")
    mine, other = _students(site, "七年级1班"), _students(site, "七年级2班")
    target, bully, witness = mine[0], other[0], mine[1]
    tag = uuid.uuid4().hex[:8]
    form = teacher.get("/cases/new")
    assert form.status_code == 200 and 'name="student_no_0"' in form.text
    before = _case_ids(site)
    r = _report(site, teacher, [(target.student_no, "targeted"), (bully.student_no, "bullying")], f"推搡并辱骂 {tag}")
    # teacher1 may not read the case: back to the work queue with the flash
    assert r.status_code == 303 and r.headers["location"] == "/"
    assert "已报告" in teacher.get("/").text
    (case_id,) = _case_ids(site) - before
    assert _case(site, case_id).narrative == f"推搡并辱骂 {tag}"

    s = browse("safety1")
    page = s.get(f"/cases/{case_id}").text
    assert f"推搡并辱骂 {tag}" in page and target.name in page and bully.name in page and "被欺凌学生" in page

    page = _step(
        site, s, case_id, "add_party", {"student_no": witness.student_no, "part": "witness", "reason": "目击者"}
    )
    assert witness.name in page and _case(site, case_id).party(witness.id)["part"] == "witness"

    page = _step(
        site,
        s,
        case_id,
        "safety_measure",
        {"kind": "separate_students", "student_ids": [target.id, bully.id], "note": f"调整座位 {tag}"},
    )
    assert f"调整座位 {tag}" in page and "隔离双方" in page
    page = _step(
        site,
        s,
        case_id,
        "notify_guardian",
        {"student_id": target.id, "method": "phone", "notified_at": _when(site, 1), "note": "母亲已知悉"},
    )
    assert "母亲已知悉" in page
    measures = _case(site, case_id).measures.values()
    assert {m["kind"] for m in measures} == {"separate_students", "guardian_notified"}

    page = _step(site, s, case_id, "start_investigation", {})
    assert _case(site, case_id).status == "investigating" and "调查中" in page
    page = _step(site, s, case_id, "statement", {"from_student_id": target.id, "text": f"他推了我 {tag}"})
    assert f"他推了我 {tag}" in page
    page = _step(site, s, case_id, "evidence", {"description": "走廊监控截图", "reference": "保卫处"})
    assert "走廊监控截图" in page
    c = _case(site, case_id)
    assert len(c.statements) == 1 and len(c.evidence) == 1
    page = _step(site, s, case_id, "complete_investigation", {"findings": f"属实 {tag}"})
    assert f"属实 {tag}" in page and _case(site, case_id).status == "awaiting_determination"

    _guardians_take_part(site, s, case_id)
    page = _step(
        site,
        s,
        case_id,
        "determine",
        {"bullying": "yes", "severity": "egregious", "reason": "多次殴打，造成轻微伤"},
    )
    assert "屡教不改或者情节恶劣" in page and _case(site, case_id).status == "determined"
    assert 'value="suspected_offence"' not in page  # the legacy tier is not offered
    page = _step(site, s, case_id, "police_track", {"kind": "criminal", "reason": f"殴打致轻微伤 {tag}"})
    assert f"殴打致轻微伤 {tag}" in page and "涉嫌犯罪" in page
    assert _case(site, case_id).authority_duty["grounds"] == "police_track"

    p = browse("principal1")
    page = _step(site, p, case_id, "approve", {"reason": "同意"})
    assert _case(site, case_id).status == "intervening" and "已批准" in page

    # Closing a suspected offence without the mandatory report: refused, said why, nothing written.
    version = _case(site, case_id).version
    r = p.post(f"/cases/{case_id}/close", {"expected_version": str(version), "reason": f"结案 {tag}"})
    assert r.status_code == 400 and "尚未记录向公安机关、教育行政部门的报告" in r.text
    assert f'value="结案 {tag}"' in r.text  # what was typed is kept
    c = _case(site, case_id)
    assert c.version == version and c.status == "intervening" and not c.closures

    page = _step(
        site,
        s,
        case_id,
        "mandatory_report",
        {"agency": "辖区派出所", "reported_at": _when(site, 1), "reference": f"JB-{tag}"},
    )
    assert "辖区派出所" in page and len(_case(site, case_id).mandatory_reports_this_cycle) == 1

    page = _step(
        site,
        s,
        case_id,
        "plan_intervention",
        {"student_id": target.id, "kind": "counselling", "plan": f"每周心理辅导 {tag}"},
    )
    page = _step(
        site,
        s,
        case_id,
        "plan_intervention",
        {"student_id": bully.id, "kind": "education", "plan": f"法治教育 {tag}", "responsible": "counselor1"},
    )
    assert f"每周心理辅导 {tag}" in page and f"法治教育 {tag}" in page
    interventions = {i["student_id"]: i for i in _case(site, case_id).interventions.values()}
    assert interventions[bully.id]["responsible_staff_id"] == site.app.accounts.account("counselor1")[0]
    page = _step(
        site,
        s,
        case_id,
        "intervention_progress",
        {"intervention_id": interventions[target.id]["id"], "note": f"情绪好转 {tag}"},
    )
    assert f"情绪好转 {tag}" in page
    page = _step(
        site,
        s,
        case_id,
        "complete_intervention",
        {"intervention_id": interventions[bully.id]["id"], "outcome": "已书面道歉"},
    )
    assert "已书面道歉" in page
    interventions = {i["student_id"]: i for i in _case(site, case_id).interventions.values()}
    assert interventions[target.id]["progress"] and not interventions[bully.id]["active"]

    # the bullying student's family applies for the county review (复查); the panel upholds it
    assert 'id="appeal"' not in page  # the old 申诉 form is not offered: the review replaced it
    page = _step(
        site,
        s,
        case_id,
        "review_apply",
        {"party_id": bully.id, "county_body": "县防治学生欺凌工作办公室", "grounds": f"家长认为是玩笑 {tag}"},
    )
    review_id = _case(site, case_id).pending_review_id
    assert review_id and _case(site, case_id).status == "appealed" and "复查中" in page
    panel = {"capacity_0": "school", "member_0": "李老师", "capacity_1": "parent", "member_1": "赵家长"}
    panel |= {"capacity_2": "expert", "member_2": "周教授"}
    _step(site, s, case_id, "review_panel", {"review_id": review_id, **panel})
    page = _step(
        site, s, case_id, "review_outcome", {"review_id": review_id, "outcome": "upheld", "reason": "证据充分"}
    )
    reviews = _case(site, case_id).county_reviews
    assert "维持原认定" in page and [r["outcome"] for r in reviews] == ["upheld"]

    page = _step(site, s, case_id, "follow_up", {"notes": f"回访：关系缓和 {tag}"})
    assert f"回访：关系缓和 {tag}" in page and _case(site, case_id).status == "following_up"

    # the reports to the police and the education bureau (未成年人保护法 art. 39), then closure
    for authority, unit in (("police", "城关派出所"), ("bureau", "县教育局")):
        _step(site, s, case_id, "authority_report", {"authority": authority, "unit": unit, "method": "phone"})
    page = _step(site, p, case_id, "close", {"reason": f"结案 {tag}"})
    assert _case(site, case_id).status == "closed" and "已结案" in page
    page = _step(site, s, case_id, "reopen", {"reason": "再次发生"})
    assert _case(site, case_id).status == "reopened" and "再次发生" in page

    # Corrections are new entries that say what they correct.
    page = _step(site, s, case_id, "correct_narrative", {"narrative": f"推搡、辱骂并拍照 {tag}", "reason": "补充"})
    c = _case(site, case_id)
    assert c.narrative == f"推搡、辱骂并拍照 {tag}" and c.corrections[-1]["reason"] == "补充" and "更正记录" in page


def test_stale_page_gets_409_and_writes_nothing(site: DemoSite, browse) -> None:
    s = browse("safety1")
    target = _students(site, "八年级1班")[0]
    r = _report(site, s, [(target.student_no, "targeted")], "课间被起外号 " + uuid.uuid4().hex[:6])
    assert r.status_code == 303 and r.headers["location"].startswith("/cases/")
    case_id = r.headers["location"].rsplit("/", 1)[1]
    version = _case(site, case_id).version
    ok = s.post(f"/cases/{case_id}/evidence", {"expected_version": str(version), "description": "聊天截图"})
    assert ok.status_code == 303
    stale = s.post(f"/cases/{case_id}/evidence", {"expected_version": str(version), "description": "另一份截图"})
    assert stale.status_code == 409 and "已被他人修改" in stale.text
    assert 'value="另一份截图"' in stale.text
    assert [e["description"] for e in _case(site, case_id).evidence.values()] == ["聊天截图"]


def test_refused_step_keeps_what_was_typed(site: DemoSite, browse) -> None:
    s = browse("safety1")
    target = _students(site, "八年级2班")[0]
    r = _report(site, s, [(target.student_no, "targeted")], "被抢零花钱 " + uuid.uuid4().hex[:6])
    case_id = r.headers["location"].rsplit("/", 1)[1]
    version = _case(site, case_id).version
    bad = s.post(
        f"/cases/{case_id}/add_party",
        {"expected_version": str(version), "student_no": "0000000000", "part": "witness", "reason": "据说在场"},
    )
    # the message names what was typed, and keeps it in the field
    assert (
        bad.status_code == 400 and "没有找到与「0000000000」相符的学生" in bad.text and 'value="据说在场"' in bad.text
    )
    assert 'value="0000000000"' in bad.text
    assert _case(site, case_id).version == version
    # The report form too: an unknown student number is refused, the narrative kept.
    before = _case_ids(site)
    again = _report(site, s, [("0000000000", "targeted")], "保留这段文字")
    assert (
        again.status_code == 400 and "没有找到与「0000000000」相符的学生" in again.text and "保留这段文字" in again.text
    )
    assert _case_ids(site) == before


def test_class_teacher_sees_status_of_own_class_only(site: DemoSite, browse) -> None:
    teacher = _actor(site, "teacher1")
    mine, other = _students(site, "七年级1班")[2], _students(site, "九年级1班")[0]
    tag = uuid.uuid4().hex[:8]
    t2 = _actor(site, "teacher2")
    ours = site.app.cases.report_bullying(
        t2,
        school_id=t2.school_id,
        channel="teacher",
        occurred_at=site.app.now() - timedelta(hours=1),
        place="食堂",
        forms=["verbal"],
        parties=[(mine.id, "targeted")],
        narrative=f"秘密经过 {tag}",
    )
    theirs = site.app.cases.report_bullying(
        t2,
        school_id=t2.school_id,
        channel="teacher",
        occurred_at=site.app.now() - timedelta(hours=1),
        place="操场",
        forms=["verbal"],
        parties=[(other.id, "targeted")],
        narrative=f"别班经过 {tag}",
    )
    b = browse("teacher1")
    status = b.get(f"/cases/{ours}")
    assert status.status_code == 200 and "案件状态" in status.text and "已报告" in status.text
    assert f"秘密经过 {tag}" not in status.text and mine.name not in status.text and "食堂" not in status.text
    before = _denials(site, teacher.staff_id, "case.read")
    refused = b.get(f"/cases/{theirs}")
    assert refused.status_code == 403 and f"别班经过 {tag}" not in refused.text
    assert _denials(site, teacher.staff_id, "case.read") == before + 1
    board = b.get("/cases")
    assert board.status_code == 200 and ours in board.text and theirs not in board.text
    assert f"秘密经过 {tag}" not in board.text
    # and no step can be taken on it
    assert b.post(f"/cases/{ours}/evidence", {"description": "x"}).status_code == 403


def test_principal_board_draws_the_case_board(site: DemoSite, browse) -> None:
    principal = _actor(site, "principal1")
    page = browse("principal1").get("/board")
    assert page.status_code == 200 and "<svg" in page.text and "学校看板" in page.text
    # no inline style or script (the CSP): scripts only as files
    assert not re.search(r"\sstyle=", page.text) and not re.search(r"<script(?![^>]*\bsrc=)", page.text)
    chart = re.search(r'<svg class="chart" id="cases-chart".*?</svg>', page.text, re.S)
    assert chart
    drawn: Counter[str] = Counter()
    for key, n in re.findall(r'<rect class="bar"[^>]*data-key="([a-z_]+)" data-count="(\d+)"', chart.group(0)):
        drawn[key] += int(n)
    expected = Counter(line.status for line in case_board(site.app, principal, principal.school_id))
    assert drawn == expected and sum(drawn.values()) > 0

    def drawn_in(chart_id: str) -> dict[str, int]:
        svg = re.search(rf'<svg class="chart" id="{chart_id}".*?</svg>', page.text, re.S)
        assert svg, chart_id
        return {
            k: int(n)
            for k, n in re.findall(r'<rect class="bar"[^>]*data-key="([a-z_]+)" data-count="(\d+)"', svg.group(0))
        }

    files = Counter(f.risk_level for f in register(site.app, principal, principal.school_id) if f.status == "open")
    assert drawn_in("risk-chart") == {k: n for k, n in files.items() if n}
    overdue = overdue_counts(site.app, principal, principal.school_id)
    assert drawn_in("overdue-chart") == {k: n for k, n in overdue.items() if n}
    assert 'id="pairing-chart"' in page.text
    assert 'id="cases-table"' in page.text and 'id="risk-table"' in page.text  # text fallbacks
    assert browse("safety1").get("/board").status_code == 200
    assert browse("teacher1").get("/board").status_code == 403


def test_supervisor_reads_a_case_only_with_a_reason(site: DemoSite, browse) -> None:
    t1 = _actor(site, "teacher1")
    target = _students(site, "七年级1班")[3]
    tag = uuid.uuid4().hex[:8]
    case_id = site.app.cases.report_bullying(
        t1,
        school_id=t1.school_id,
        channel="parent",
        occurred_at=site.app.now() - timedelta(hours=1),
        place="校门口",
        forms=["online"],
        parties=[(target.id, "targeted")],
        narrative=f"网络辱骂 {tag}",
    )
    sup = _actor(site, "supervisor1")
    b = browse("supervisor1")
    reads = _reads(site, sup.staff_id, case_id)
    ask = b.get(f"/cases/{case_id}")
    assert ask.status_code == 200 and f'action="/cases/{case_id}/open"' in ask.text
    assert f"网络辱骂 {tag}" not in ask.text and _reads(site, sup.staff_id, case_id) == reads
    short = b.post(f"/cases/{case_id}/open", {"break_glass_reason": "看"})
    assert short.status_code == 400 and f"网络辱骂 {tag}" not in short.text
    opened = b.post(f"/cases/{case_id}/open", {"break_glass_reason": "核查家长投诉"})
    assert opened.status_code == 200 and f"网络辱骂 {tag}" in opened.text
    assert _reads(site, sup.staff_id, case_id) == reads + 1
    assert (
        site.app.db.fetchone(
            "SELECT COUNT(*) FROM {t}anxin_access WHERE actor_id = ? AND resource_id = ? AND break_glass IS NOT NULL",
            (sup.staff_id, case_id),
        )[0]
        == 1
    )


def test_narrative_is_escaped(site: DemoSite, browse) -> None:
    s = browse("safety1")
    target = _students(site, "九年级2班")[0]
    r = _report(site, s, [(target.student_no, "targeted")], XSS)
    assert r.status_code == 303
    page = s.get(r.headers["location"])
    assert page.status_code == 200
    assert "<script>alert(1)" not in page.text and "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text


def test_erased_case_shows_deleted(site: DemoSite, browse) -> None:
    t1 = _actor(site, "teacher1")
    target = _students(site, "七年级1班")[4]
    case_id = site.app.cases.report_bullying(
        t1,
        school_id=t1.school_id,
        channel="teacher",
        occurred_at=site.app.now() - timedelta(hours=1),
        place="宿舍",
        forms=["property"],
        parties=[(target.id, "targeted")],
        narrative="拿走文具",
    )
    number = site.app.record_numbers([case_id])[case_id].text
    site.app.erasure.shred(_actor(site, "admin"), case_id, "保留期满")
    s = browse("safety1")
    page = s.get(f"/cases/{case_id}")
    assert page.status_code == 410 and "已删除" in page.text and "拿走文具" not in page.text
    assert f"案件 {number} 的内容已被删除" in page.text  # the number outlives the content: ids only
    board = s.get("/cases")
    assert board.status_code == 200 and f">{number}</a>" in board.text and "已删除" in board.text


def test_case_page_in_english(site: DemoSite, browse) -> None:
    s = browse("safety1")
    target = _students(site, "九年级1班")[1]
    r = _report(site, s, [(target.student_no, "targeted")], "英文页面 " + uuid.uuid4().hex[:6])
    s.get("/lang/en?next=/cases")
    page = s.get(r.headers["location"])
    assert (
        page.status_code == 200
        and "Students involved" in page.text
        and "Safety measures and guardian notices" in page.text
    )
    p = browse("principal1")
    p.get("/lang/en?next=/board")
    board = p.get("/board")
    assert "Cases reported per month (by current status)" in board.text and "Data table" in board.text


def test_corrections_return_and_removal(site: DemoSite, browse) -> None:
    s, p = browse("safety1"), browse("principal1")
    a, b_, c_ = _students(site, "八年级1班")[1:4]
    tag = uuid.uuid4().hex[:6]
    r = _report(
        site,
        s,
        [(a.student_no, "targeted"), (b_.student_no, "bullying"), (c_.student_no, "witness")],
        f"更正用例 {tag}",
    )
    case_id = r.headers["location"].rsplit("/", 1)[1]
    page = _step(site, s, case_id, "remove_party", {"student_id": c_.id, "reason": "并不在场"})
    assert _case(site, case_id).party(c_.id) is None and "并不在场" in page
    _step(site, s, case_id, "statement", {"from_person": "班长", "text": "初稿"})
    _step(site, s, case_id, "evidence", {"description": "照片", "reference": "U盘"})
    c = _case(site, case_id)
    (st_id,), (ev_id,) = c.statements, c.evidence
    page = _step(
        site, s, case_id, "correct_statement", {"statement_id": st_id, "text": f"定稿 {tag}", "reason": "笔误"}
    )
    assert f"定稿 {tag}" in page
    _step(site, s, case_id, "correct_evidence", {"evidence_id": ev_id, "description": "照片两张", "reason": "补充"})
    _step(site, s, case_id, "correct_report", {"place": "实验楼", "reason": "地点记错"})
    c = _case(site, case_id)
    assert c.statements[st_id]["text"] == f"定稿 {tag}" and c.evidence[ev_id]["description"] == "照片两张"
    assert c.place == "实验楼" and [x["what"] for x in c.corrections] == ["statement", "evidence", "report"]
    _step(site, s, case_id, "start_investigation", {})
    _step(site, s, case_id, "complete_investigation", {"findings": "属实"})
    _guardians_take_part(site, s, case_id)
    _step(site, s, case_id, "determine", {"bullying": "yes", "severity": "minor", "reason": "言语欺凌"})
    # the safety lead sees no approval form; the principal returns it with a reason
    assert 'id="approve"' not in s.get(f"/cases/{case_id}").text
    page = _step(site, p, case_id, "return", {"reason": f"证据不足 {tag}"})
    assert _case(site, case_id).status == "awaiting_determination" and f"证据不足 {tag}" in page
    # the principal cannot approve a determination they recorded themselves: refused, said why
    _guardians_take_part(site, p, case_id)
    _step(site, p, case_id, "determine", {"bullying": "no", "reason": "重新认定"})
    version = _case(site, case_id).version
    refused = p.post(f"/cases/{case_id}/approve", {"expected_version": str(version), "reason": "同意"})
    assert refused.status_code == 400 and "记录人以外的校长" in refused.text
    assert _case(site, case_id).version == version


def _determined_and_appealed(site: DemoSite, browse, tag: str) -> tuple[Browser, str, str]:
    """A case taken through the pages to an approved determination (bullying, minor) that the
    bullying student's family appeals; the safety lead's browser, the case, the appeal."""
    s, p = browse("safety1"), browse("principal1")
    target, bully = _students(site, "八年级1班")[:2]
    r = _report(site, s, [(target.student_no, "targeted"), (bully.student_no, "bullying")], f"抢夺文具 {tag}")
    case_id = r.headers["location"].rsplit("/", 1)[1]
    _step(site, s, case_id, "start_investigation", {})
    _step(site, s, case_id, "complete_investigation", {"findings": f"属实 {tag}"})
    _guardians_take_part(site, s, case_id)
    _step(site, s, case_id, "determine", {"bullying": "yes", "severity": "minor", "reason": "多次抢夺"})
    _step(site, p, case_id, "approve", {"reason": "同意"})
    # recorded before the county review replaced the school's own appeal record: written as then
    appeal_id = appeal_legacy(site.app, _actor(site, "safety1"), case_id, party_id=bully.id, grounds=f"只是借用 {tag}")
    assert appeal_id and _case(site, case_id).status == "appealed"
    return s, case_id, appeal_id


def test_no_appeal_form_is_offered_and_a_posted_appeal_is_refused_naming_the_county_review(
    site: DemoSite, browse
) -> None:
    # given a case determined and approved through the pages, within the window to apply
    tag = uuid.uuid4().hex[:6]
    s, p = browse("safety1"), browse("principal1")
    target, bully = _students(site, "八年级1班")[2:4]
    r = _report(site, s, [(target.student_no, "targeted"), (bully.student_no, "bullying")], f"起外号 {tag}")
    case_id = r.headers["location"].rsplit("/", 1)[1]
    _step(site, s, case_id, "start_investigation", {})
    _step(site, s, case_id, "complete_investigation", {"findings": f"属实 {tag}"})
    _guardians_take_part(site, s, case_id)
    _step(site, s, case_id, "determine", {"bullying": "yes", "severity": "minor", "reason": "多次起外号"})
    page = _step(site, p, case_id, "approve", {"reason": "同意"})
    # then the page offers the county review's application, not an appeal, nor an empty appeals section
    assert 'id="review_apply"' in page and "记录复查申请" in page
    assert 'id="appeal"' not in page and 'id="appeals"' not in page and "记录申诉" not in page
    assert "申请县级复查期限至" in page and "申诉期至" not in page
    # when an appeal is posted anyway (an old page, a hand-made request)
    version = _case(site, case_id).version
    refused = s.post(
        f"/cases/{case_id}/appeal", {"expected_version": str(version), "party_id": bully.id, "grounds": "不服"}
    )
    # then it is refused once, in Chinese, naming where it goes, and nothing is recorded
    assert refused.status_code == 400
    assert refused.text.count("请在「县级复查」中记录其向县级防治学生欺凌工作部门提出的复查申请") == 1
    c = _case(site, case_id)
    assert c.version == version and c.appeals == {} and c.status == "intervening"


def test_an_old_appeal_shows_under_its_own_heading_and_takes_its_outcome_from_the_page(site: DemoSite, browse) -> None:
    # given a case whose appeal was recorded before the county review replaced it
    tag = uuid.uuid4().hex[:6]
    s, case_id, appeal_id = _determined_and_appealed(site, browse, tag)
    page = s.get(f"/cases/{case_id}").text
    # then the page shows it, pending, with its own outcome form, and offers no new appeal
    assert "申诉（旧记录）" in page and f"只是借用 {tag}" in page and "待复查" in page
    assert 'id="appeal_outcome"' in page and 'id="appeal"' not in page and "复查中" in page
    # when its outcome is recorded
    page = _step(site, s, case_id, "appeal_outcome", {"appeal_id": appeal_id, "outcome": "upheld", "reason": "维持"})
    # then it shows with the outcome and the case is back where it was
    assert "维持原认定" in page and 'id="appeal_outcome"' not in page
    assert _case(site, case_id).status == "intervening"


def test_an_appeal_that_changes_the_determination_or_reopens_the_case(site: DemoSite, browse) -> None:
    tag = uuid.uuid4().hex[:6]
    # when the review changes the determination to "not bullying"
    s, case_id, appeal_id = _determined_and_appealed(site, browse, tag)
    before = _case(site, case_id).current_determination_id
    page = _step(
        site,
        s,
        case_id,
        "appeal_outcome",
        {"appeal_id": appeal_id, "outcome": "changed", "bullying": "no", "reason": f"复查认定为借用 {tag}"},
    )
    # then a new determination replaces the old one, and the page says so
    c = _case(site, case_id)
    assert c.appeals[appeal_id]["outcome"] == "changed" and c.current_determination_id != before
    assert c.determination is not None and c.determination["bullying"] is False
    assert c.determination["source"] == "appeal_review" and f"复查认定为借用 {tag}" in page
    # when another case's review sends it back for a new investigation
    s, case_id, appeal_id = _determined_and_appealed(site, browse, tag + "b")
    page = _step(
        site,
        s,
        case_id,
        "appeal_outcome",
        {"appeal_id": appeal_id, "outcome": "reopened", "reason": f"需补充调查新证人 {tag}"},
    )
    # then the case is investigated again
    c = _case(site, case_id)
    assert c.appeals[appeal_id]["outcome"] == "reopened" and c.status == "investigating" and c.determination is None
    assert f"需补充调查新证人 {tag}" in page
