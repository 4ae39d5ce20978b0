"""Break-glass reviewed, on the pages and the API: a reason that says nothing is refused in
words; a reason on a student opens the student and lists their records (each opened with a
reason of its own); every use waits on the start page and in the queue of the school's
principal and the district's other supervisors, never the user's; one of them marks it
合理 or 不合理 once, and the audit's break-glass list shows who said what. The demo district
is shared: each test makes its own records and finds its own use."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from typing import Any

import pytest
from web_support import Browser, DemoSite

from anxin.passwords import hash_password
from domain.break_glass import REASON_RULE

PASSWORD = "review-pass-2026"


def _actor(site: DemoSite, username: str) -> Any:
    return site.app.gate.actor(site.app.accounts.account(username)[0])


@pytest.fixture(scope="module")
def other_supervisor(site: DemoSite) -> str:
    """A second supervisor of the demo district, signed in by password (username)."""
    admin, sup = _actor(site, "admin"), _actor(site, "supervisor1")
    username = "sup-review-" + uuid.uuid4().hex[:6]
    site.app.roster.add_staff(
        admin,
        username=username,
        name="复核督导",
        school_id=None,
        roles=["supervisor"],
        district=sup.district,
        password_hash=hash_password(PASSWORD),
    )
    return username


def _new_case(site: DemoSite, narrative: str) -> tuple[str, str]:
    """(case id, the targeted student's id): a new case of school 1 naming a student of 七年级2班."""
    safety = _actor(site, "safety1")
    admin = _actor(site, "admin")
    student = [s for s in site.app.roster.list_students(admin, safety.school_id, "七年级2班") if not s.erased][-3]
    case_id = site.app.cases.report_bullying(
        safety,
        school_id=safety.school_id,
        channel="teacher",
        occurred_at=site.app.now() - timedelta(hours=1),
        place="操场",
        forms=["verbal"],
        parties=[(student.id, "targeted")],
        narrative=narrative,
    )
    return case_id, student.id


def _break_glass(site: DemoSite, username: str) -> list[tuple[int, str, str]]:
    """(seq, action, record) of the person's break-glass reads, in order."""
    rows = site.app.db.fetch(
        "SELECT id, action, resource_id FROM {t}anxin_access WHERE actor_id = ? AND break_glass IS NOT NULL "
        "AND action <> 'audit.read' ORDER BY id",
        (site.app.accounts.account(username)[0],),
    )
    return [(int(s), a, r) for s, a, r in rows]


def _pending(text: str) -> int:
    found = re.search(r"待复核的紧急查阅 (\d+) 条", text)
    return int(found.group(1)) if found else 0


def _login(site: DemoSite, username: str, password: str) -> Browser:
    return site.browser(None).login(username, password)


# -- the reason -------------------------------------------------------------------------------------------
def test_a_reason_that_says_nothing_is_refused_in_words_on_the_page_and_the_api(site: DemoSite, browse) -> None:
    tag = uuid.uuid4().hex[:6]
    case_id, _student = _new_case(site, f"起绰号嘲笑 {tag}")
    b = browse("supervisor1")
    before = _break_glass(site, "supervisor1")
    for weak in ("....", "1234567", "看看看看看看看", "核查"):
        page = b.post(f"/cases/{case_id}/open", {"break_glass_reason": weak})
        assert page.status_code == 400 and REASON_RULE in page.text and tag not in page.text
        api = b.api("POST", f"/api/v1/cases/{case_id}/open", json={"reason": weak})
        assert api.status_code == 403 and REASON_RULE in api.json()["error"]["message"]
    assert _break_glass(site, "supervisor1") == before
    form = b.get(f"/cases/{case_id}")
    assert 'minlength="6"' in form.text and "如：核查家长投诉、上级交办的复查" in form.text  # what a reason looks like


# -- a reason opens only what it asked for ----------------------------------------------------------------
def test_a_reason_on_a_student_opens_the_student_and_lists_the_case_then_the_case_needs_its_own(
    site: DemoSite, browse
) -> None:
    tag = uuid.uuid4().hex[:6]
    narrative = f"多次在宿舍被推搡 {tag}"
    case_id, student = _new_case(site, narrative)
    b = browse("supervisor1")
    before = len(_break_glass(site, "supervisor1"))

    page = b.post(f"/students/{student}/open", {"break_glass_reason": f"核查家长投诉 {tag}"})

    assert page.status_code == 200 and "该学生的相关记录" in page.text
    assert narrative not in page.text and "操场" not in page.text
    assert f'href="/cases/{case_id}"' in page.text and "被欺凌学生" in page.text and "已报告" in page.text
    reads = _break_glass(site, "supervisor1")[before:]
    assert [(a, r) for _s, a, r in reads] == [("student.read", student)]

    # the case, opened from the list, asks for a reason of its own
    asked = b.get(f"/cases/{case_id}")
    assert asked.status_code == 200 and 'name="break_glass_reason"' in asked.text and narrative not in asked.text
    opened = b.post(f"/cases/{case_id}/open", {"break_glass_reason": f"核查欺凌案件处理经过 {tag}"})
    assert opened.status_code == 200 and narrative in opened.text
    reads = _break_glass(site, "supervisor1")[before:]
    assert [(a, r) for _s, a, r in reads] == [("student.read", student), ("case.read", case_id)]


def test_the_api_timeline_with_a_reason_is_the_student_and_the_list_of_records(site: DemoSite, browse) -> None:
    tag = uuid.uuid4().hex[:6]
    narrative = f"被同学孤立不让参加活动 {tag}"
    case_id, student = _new_case(site, narrative)
    b = browse("supervisor1")
    before = len(_break_glass(site, "supervisor1"))

    r = b.api("POST", f"/api/v1/students/{student}/timeline/open", json={"reason": f"上级交办的复查 {tag}"})

    assert r.status_code == 200, r.text
    body = r.json()
    assert narrative not in r.text and body["scoped"] is True
    assert {e["kind"] for e in body["entries"]} == {"student"}
    [listed] = [x for x in body["records"] if x["stream_id"] == case_id]
    assert (listed["kind"], listed["status"], listed["part"]) == ("case", "reported", "targeted")
    assert [(a, s) for _q, a, s in _break_glass(site, "supervisor1")[before:]] == [("student.read", student)]


# -- told, and reviewed ---------------------------------------------------------------------------------------
def test_the_principal_and_another_supervisor_are_told_the_user_is_not(
    site: DemoSite, browse, other_supervisor: str
) -> None:
    tag = uuid.uuid4().hex[:6]
    case_id, _student = _new_case(site, f"抢夺文具 {tag}")
    principal, user = browse("principal1"), browse("supervisor1")
    other = _login(site, other_supervisor, PASSWORD)
    home_before = _pending(principal.get("/").text)
    district_before = _pending(other.get("/district").text)
    reason = f"核查家长投诉：{tag}"
    school = dict((sid, name) for sid, name, _d in site.app.schools())[_actor(site, "principal1").school_id]

    assert user.post(f"/cases/{case_id}/open", {"break_glass_reason": reason}).status_code == 200

    # the principal's start page and the other supervisor's district page say so, at the top
    home = principal.get("/")
    assert _pending(home.text) == home_before + 1
    assert home.text.index("待复核的紧急查阅") < home.text.index("我的待办</h1>")
    assert _pending(other.get("/district").text) == district_before + 1
    # their queues list the use: who, which record of which school, the reason; not the content
    for reviewer in (principal, other):
        queue = reviewer.get("/reviews")
        assert queue.status_code == 200 and reason in queue.text and "督导" in queue.text
        assert f'href="/cases/{case_id}"' in queue.text and f"抢夺文具 {tag}" not in queue.text
        assert school in queue.text
    # the user's own queue does not
    mine = user.get("/reviews")
    assert mine.status_code == 200 and reason not in mine.text
    # and the API says the same
    api = principal.api("GET", "/api/v1/break-glass-reviews")
    assert api.status_code == 200 and reason in [u["reason"] for u in api.json()]


def test_a_principal_marks_a_use_justified_once_and_the_audit_list_shows_it(site: DemoSite, browse) -> None:
    tag = uuid.uuid4().hex[:6]
    case_id, _student = _new_case(site, f"言语辱骂 {tag}")
    user, principal = browse("supervisor1"), browse("principal1")
    reason = f"上级交办的复查 {tag}"
    user.post(f"/cases/{case_id}/open", {"break_glass_reason": reason})
    [(seq, _a, _r)] = [x for x in _break_glass(site, "supervisor1") if x[2] == case_id]
    comment = f"理由充分，范围恰当 {tag}"

    # the user cannot review their own use, nor can the administrator
    assert user.post(f"/reviews/{seq}", {"verdict": "justified", "comment": "本人"}).status_code == 403
    assert browse("admin").post(f"/reviews/{seq}", {"verdict": "justified"}).status_code == 403
    # 不合理 without saying why is refused in words, nothing recorded
    bad = principal.post(f"/reviews/{seq}", {"verdict": "unjustified", "comment": " "})
    assert bad.status_code == 400 and "认定不合理时请写明原因" in bad.text

    done = principal.post(f"/reviews/{seq}", {"verdict": "justified", "comment": comment})
    assert done.status_code == 303 and done.headers["location"] == "/reviews"
    assert "已记录复核结论" in principal.get("/reviews").text
    again = principal.post(f"/reviews/{seq}", {"verdict": "unjustified", "comment": "改变主意"})
    assert again.status_code == 409 and "已有人复核" in again.text

    # the review is in the trail, once, and the break-glass list says who found what
    entries = site.app.db.fetch(
        "SELECT actor_id, detail FROM {t}anxin_audit WHERE kind = 'break_glass_review' AND subject = ?", (str(seq),)
    )
    assert entries == [(site.app.accounts.account("principal1")[0], '{"verdict":"justified"}')]
    listed = user.get("/audit?what=break-glass").text
    row = listed[listed.index(reason) :]
    row = row[: row.index("</li>")]
    assert "合理" in row and "复核人：" in row and comment in row


def test_an_unjustified_verdict_through_the_api_by_another_supervisor(
    site: DemoSite, browse, other_supervisor: str
) -> None:
    tag = uuid.uuid4().hex[:6]
    case_id, _student = _new_case(site, f"网络造谣 {tag}")
    browse("supervisor1").post(f"/cases/{case_id}/open", {"break_glass_reason": f"核查网络举报线索 {tag}"})
    [(seq, _a, _r)] = [x for x in _break_glass(site, "supervisor1") if x[2] == case_id]
    other = _login(site, other_supervisor, PASSWORD)

    r = other.api(
        "POST", f"/api/v1/break-glass-reviews/{seq}", json={"verdict": "unjustified", "comment": "与举报无关"}
    )
    assert r.status_code == 200 and r.json()["result"]["state"] == "unjustified"
    again = other.api("POST", f"/api/v1/break-glass-reviews/{seq}", json={"verdict": "justified"})
    assert again.status_code == 409 and again.json()["error"]["code"] == "already_reviewed"
    glass = other.api("GET", "/api/v1/audit/break-glass").json()
    [row] = [g for g in glass if g["seq"] == seq]
    assert (row["review"]["state"], row["review"]["comment"]) == ("unjustified", "与举报无关")


def test_the_review_pages_in_english(site: DemoSite, browse) -> None:
    tag = uuid.uuid4().hex[:6]
    case_id, _student = _new_case(site, f"推搡 {tag}")
    browse("supervisor1").post(f"/cases/{case_id}/open", {"break_glass_reason": f"核查家长投诉 {tag}"})
    b = browse("principal1")
    b.get("/lang/en?next=/reviews")
    try:
        home, queue = b.get("/"), b.get("/reviews")
        assert "break-glass uses awaiting your review" in home.text
        assert "Break-glass reviews" in queue.text and "Submit the verdict" in queue.text
        assert "Justified" in queue.text and "Not justified" in queue.text
    finally:
        b.get("/lang/zh?next=/")
