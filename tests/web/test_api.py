"""The JSON API (/api/v1): authentication by session cookie (+ X-CSRF-Token) or bearer
token, each journey's commands and queries through the same gate as the pages, errors as
JSON with stable codes, stale versions refused, and the server-rendered /docs."""

from __future__ import annotations

import importlib
import json
import pkgutil
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from determination_support import ready_to_determine
from web_support import Browser, DemoSite

import web.routes
from anxin.accounts import token_hash

XSS = "<script>alert(1)</script>\"' ; DROP TABLE x; --"


def _class_students(b: Browser, class_name: str) -> list[dict[str, Any]]:
    r = b.api("GET", "/api/v1/students", params={"class_name": class_name})
    assert r.status_code == 200, r.text
    return [s for s in r.json() if not s["erased"]]


def _staff_id(site: DemoSite, username: str) -> str:
    return site.app.accounts.account(username)[0]


def _cases(site: DemoSite) -> int:
    return site.app.db.fetchone("SELECT COUNT(*) FROM {t}anxin_directory WHERE kind = 'case'")[0]


def _denials(site: DemoSite, staff_id: str) -> int:
    return site.app.db.fetchone("SELECT COUNT(*) FROM {t}anxin_access WHERE actor_id = ? AND allowed = 0", (staff_id,))[
        0
    ]


def _when(hours: int = 3) -> str:
    return (datetime.now(UTC) - timedelta(hours=hours)).isoformat()


def _report(b: Browser, targeted: str, bullying: str | None = None, **changes: Any) -> Any:
    parties = [{"student_id": targeted, "part": "targeted"}]
    if bullying:
        parties.append({"student_id": bullying, "part": "bullying"})
    body = {
        "school_id": b.client.get("/api/v1/me").json()["school_id"],
        "channel": "teacher",
        "occurred_at": _when(),
        "place": "操场",
        "forms": ["verbal"],
        "parties": parties,
        "narrative": "课间被起外号并被推搡",
        **changes,
    }
    return b.api("POST", "/api/v1/cases", json=body)


# -- authentication ----------------------------------------------------------------------------------
def test_without_credentials_the_api_answers_401_json_and_never_redirects(site: DemoSite) -> None:
    anonymous = site.browser()
    r = anonymous.api("GET", "/api/v1/me", follow_redirects=False)
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "unauthenticated"
    assert r.headers["WWW-Authenticate"] == "Bearer"
    r = anonymous.api("GET", "/api/v1/me", headers={"Authorization": "Bearer not-a-token"})
    assert r.status_code == 401


def test_a_bearer_token_issued_by_its_holder_authenticates_and_is_revocable(site: DemoSite) -> None:
    staff = _staff_id(site, "counselor1")
    holder = site.browser("counselor1")
    page = holder.post("/account/tokens", {"label": "API test", "days": "30", "scope": "read"})
    assert page.status_code == 200, page.text
    found = re.search(r"anx_[A-Za-z0-9_-]{20,}", page.text)
    assert found, "the tokens page shows the new token once"
    token = found.group(0)
    assert token not in holder.get("/account/tokens").text  # shown that once only
    client = site.browser().client
    r = client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200 and r.json()["staff_id"] == staff
    # A token needs no CSRF header (no cookie is involved) and goes through the same gate.
    r = client.get("/api/v1/support-files/mine", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200 and isinstance(r.json(), list)
    token_id = token_hash(token)[:16]
    assert any(row["id"] == token_id for row in site.web.state.web.tokens.of_staff(staff))
    assert holder.post(f"/account/tokens/{token_id}/revoke").status_code in (200, 303)
    assert client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).status_code == 401


def _own_token(site: DemoSite, username: str, scope: str, days: int = 30) -> str:
    holder = site.app.gate.actor(_staff_id(site, username))
    return site.app.accounts.issue_token(holder, f"API {scope}", days=days, scope=scope)


def test_a_read_only_token_is_refused_on_a_write(site: DemoSite) -> None:
    token = _own_token(site, "teacher1", "read")
    client = site.browser().client
    headers = {"Authorization": f"Bearer {token}"}
    before = _cases(site)
    r = client.post("/api/v1/cases", json={"school_id": "x", "channel": "teacher"}, headers=headers)
    assert r.status_code == 403, r.text
    assert r.json()["error"]["code"]
    assert _cases(site) == before
    assert client.get("/api/v1/me", headers=headers).status_code == 200  # reading is what it is for


def test_an_expired_token_is_refused_with_401(site: DemoSite) -> None:
    token = _own_token(site, "teacher1", "write")
    client = site.browser().client
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/v1/me", headers=headers).status_code == 200
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    site.app.db.execute(
        "UPDATE {t}anxin_personal_tokens SET expires_at = ? WHERE token_hash = ?", (past, token_hash(token))
    )
    r = client.get("/api/v1/me", headers=headers)
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthenticated"


def test_the_access_entry_names_the_token_a_request_was_made_with(site: DemoSite) -> None:
    token = _own_token(site, "teacher1", "read")
    staff = _staff_id(site, "teacher1")
    last = site.app.db.fetchone("SELECT MAX(seq) FROM {t}anxin_audit")[0] or 0
    client = site.browser().client
    r = client.get("/api/v1/students", params={"class_name": "七年级1班"}, headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200, r.text
    details = [
        json.loads(row[0])
        for row in site.app.db.fetch(
            "SELECT detail FROM {t}anxin_audit WHERE kind = 'access' AND actor_id = ? AND seq > ?", (staff, last)
        )
    ]
    assert details and all(d.get("token") == token_hash(token)[:16] for d in details), details
    # A signed-in page leaves no token id in its entries.
    last = site.app.db.fetchone("SELECT MAX(seq) FROM {t}anxin_audit")[0]
    assert site.browser("teacher1").get(f"/students/{_class_students(site.browser('teacher1'), '七年级1班')[0]['id']}")
    details = [
        json.loads(row[0])
        for row in site.app.db.fetch(
            "SELECT detail FROM {t}anxin_audit WHERE kind = 'access' AND actor_id = ? AND seq > ?", (staff, last)
        )
    ]
    assert details and not any("token" in d for d in details)


def test_no_administrator_route_issues_a_token_for_someone_else(site: DemoSite) -> None:
    staff = _staff_id(site, "counselor2")
    before = len(site.web.state.web.tokens.of_staff(staff))
    admin = site.browser("admin")
    r = admin.post(f"/admin/accounts/{staff}/tokens", {"label": "not mine", "days": "30", "scope": "write"})
    assert r.status_code in (404, 405), r.status_code
    assert not re.search(r"anx_[A-Za-z0-9_-]{20,}", r.text)
    assert len(site.web.state.web.tokens.of_staff(staff)) == before
    # The administrator's own tokens page issues to the administrator only.
    page = admin.post("/account/tokens", {"label": "mine", "days": "30", "scope": "read", "staff_id": staff})
    assert page.status_code == 200
    assert len(site.web.state.web.tokens.of_staff(staff)) == before
    paths = {
        getattr(route, "path", "")
        for info in pkgutil.iter_modules(web.routes.__path__)
        for route in importlib.import_module(f"web.routes.{info.name}").router.routes
    }
    assert {p for p in paths if "token" in p} == {"/account/tokens", "/account/tokens/{token_id}/revoke"}


def test_a_cookie_session_must_send_the_csrf_header_on_writes(site: DemoSite) -> None:
    b = site.browser("teacher1")
    students = _class_students(b, "七年级1班")
    before = _cases(site)
    r = b.client.post(
        "/api/v1/cases",
        json={
            "school_id": b.api("GET", "/api/v1/me").json()["school_id"],
            "channel": "teacher",
            "occurred_at": _when(),
            "place": "操场",
            "forms": ["verbal"],
            "parties": [{"student_id": students[0]["id"], "part": "targeted"}],
            "narrative": "无令牌",
        },
    )
    assert r.status_code == 403 and r.json()["error"]["code"] == "csrf"
    assert _cases(site) == before


# -- errors ----------------------------------------------------------------------------------------
def test_errors_are_json_with_a_stable_code_and_a_message_in_the_asked_language(site: DemoSite) -> None:
    b = site.browser("teacher1")
    r = b.api("POST", "/api/v1/cases", json={"place": "操场"})
    assert r.status_code == 422
    err = r.json()["error"]
    assert err["code"] == "invalid_input" and {f["field"] for f in err["fields"]} >= {"narrative", "parties"}
    # A time without a time zone is refused by the API before it reaches the domain.
    students = _class_students(b, "七年级1班")
    r = _report(b, students[0]["id"], occurred_at="2026-11-01T10:00:00")
    assert r.status_code == 422
    # A domain rule: a report needs a targeted student; in Chinese, or in English when asked.
    body = {
        "school_id": b.api("GET", "/api/v1/me").json()["school_id"],
        "channel": "teacher",
        "occurred_at": _when(),
        "place": "操场",
        "forms": ["verbal"],
        "parties": [{"student_id": students[0]["id"], "part": "witness"}],
        "narrative": "只有证人",
    }
    r = b.api("POST", "/api/v1/cases", json=body)
    assert r.status_code == 400 and r.json()["error"]["code"] == "targeted_party_required"
    assert any("\u4e00" <= ch <= "\u9fff" for ch in r.json()["error"]["message"])
    r = b.api("POST", "/api/v1/cases", json=body, headers={"Accept-Language": "en"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "targeted_party_required"
    assert not any("\u4e00" <= ch <= "\u9fff" for ch in r.json()["error"]["message"])
    r = b.api("GET", f"/api/v1/cases/{uuid.uuid4()}")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    r = b.api("GET", "/api/v1/no-such-thing")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


# -- the case lifecycle through the API ------------------------------------------------------------------
def test_a_bullying_case_from_report_to_closure_through_the_api(site: DemoSite) -> None:
    teacher, safety, principal = site.browser("teacher1"), site.browser("safety1"), site.browser("principal1")
    own = _class_students(teacher, "七年级1班")
    other = _class_students(principal, "七年级2班")
    targeted, bullying = own[3]["id"], other[3]["id"]
    r = _report(teacher, targeted, bullying, narrative=XSS)
    assert r.status_code == 201, r.text
    cid = r.json()["result"]
    # The reporting class teacher sees the status, not the content.
    assert teacher.api("GET", f"/api/v1/cases/{cid}/status").status_code == 200
    assert teacher.api("GET", f"/api/v1/cases/{cid}").status_code == 403

    def step(path: str, body: dict[str, Any], who: Browser = safety, status: int = 200) -> Any:
        r = who.api("POST", f"/api/v1/cases/{cid}/{path}", json=body)
        assert r.status_code == status, (path, r.text)
        return r.json()["result"]

    step(
        "safety-measures",
        {"kind": "separate_students", "student_ids": [targeted, bullying], "note": "调整座位"},
        status=201,
    )
    step("guardian-notifications", {"student_id": targeted, "method": "phone", "notified_at": _when(1)}, status=201)
    step("investigation/start", {})
    step("statements", {"text": "他推我", "from_student_id": targeted}, status=201)
    step("investigation/complete", {"findings": "两名证人证实"})
    # the guardians of both sides and the governance body's meeting (their own API tests:
    # tests/web/test_web_determination.py), readied through the application
    ready_to_determine(site.app, site.app.gate.actor(site.app.accounts.account("safety1")[0]), cid)
    r = safety.api(
        "POST",
        f"/api/v1/cases/{cid}/determination",
        json={"bullying": True, "severity": "suspected_offence", "reason": "委员会认定"},
    )
    assert r.status_code == 400 and r.json()["error"]["code"] == "severity_retired"
    step("police-track", {"kind": "criminal", "reason": "殴打致轻微伤，已报警"})
    step("determination", {"bullying": True, "severity": "egregious", "reason": "委员会认定"})
    step("determination/approve", {"reason": "同意"}, who=principal)
    step(
        "interventions",
        {
            "student_id": targeted,
            "kind": "counselling",
            "plan": "每周辅导",
            "responsible_staff_id": _staff_id(site, "counselor1"),
        },
        status=201,
    )
    step(
        "interventions",
        {
            "student_id": bullying,
            "kind": "education",
            "plan": "法治教育",
            "responsible_staff_id": _staff_id(site, "teacher2"),
        },
        status=201,
    )
    # Closing egregious bullying before the reports of art. 39 is refused, and changes nothing.
    version = safety.api("GET", f"/api/v1/cases/{cid}").json()["version"]
    r = principal.api("POST", f"/api/v1/cases/{cid}/close", json={"reason": "结案"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "authority_reports_required"
    assert safety.api("GET", f"/api/v1/cases/{cid}").json()["version"] == version
    step("mandatory-reports", {"agency": "城关派出所", "reported_at": _when(1)}, status=201)
    # and (未成年人保护法 art. 39) the reports to the police and the education bureau
    r = principal.api("POST", f"/api/v1/cases/{cid}/close", json={"reason": "结案"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "authority_reports_required"
    for authority, unit in (("police", "城关派出所"), ("bureau", "县教育局")):
        step(
            "authority-reports",
            {"authority": authority, "unit": unit, "method": "written", "reported_at": _when(1)},
            status=201,
        )
    step("close", {"reason": "已移交公安，校内干预完成"}, who=principal)
    case = safety.api("GET", f"/api/v1/cases/{cid}").json()
    assert case["status"] == "closed"
    assert case["narrative"] == XSS  # stored and returned as given: JSON, never HTML
    assert {p["student_id"] for p in case["party_names"]} == {targeted, bullying}
    assert len(case["mandatory_reports"]) == 1
    board = safety.api("GET", "/api/v1/cases").json()
    assert any(line["case_id"] == cid and line["status"] == "closed" for line in board)


def test_a_stale_expected_version_is_refused_with_409_and_nothing_is_overwritten(site: DemoSite) -> None:
    teacher, safety = site.browser("teacher1"), site.browser("safety1")
    targeted = _class_students(teacher, "七年级1班")[4]["id"]
    cid = _report(teacher, targeted).json()["result"]
    version = safety.api("GET", f"/api/v1/cases/{cid}").json()["version"]
    r = safety.api(
        "POST", f"/api/v1/cases/{cid}/evidence", json={"description": "监控截图", "expected_version": version}
    )
    assert r.status_code == 201
    r = safety.api("POST", f"/api/v1/cases/{cid}/evidence", json={"description": "另一份", "expected_version": version})
    assert r.status_code == 409 and r.json()["error"]["code"] == "conflict"
    case = safety.api("GET", f"/api/v1/cases/{cid}").json()
    assert [e["description"] for e in case["evidence"].values()] == ["监控截图"]


# -- pairings and support files through the API ---------------------------------------------------------
def test_a_check_in_with_a_concern_is_escalated_to_a_support_file(site: DemoSite) -> None:
    teacher, principal = site.browser("teacher1"), site.browser("principal1")
    with_open_file = {
        line["student_id"]
        for line in principal.api("GET", "/api/v1/support-files").json()
        if line["status"] != "closed"
    }
    board = teacher.api("GET", "/api/v1/pairings").json()
    pid = next(line["pairing_id"] for line in board["lines"] if line["student_id"] not in with_open_file)
    pairing = teacher.api("GET", f"/api/v1/pairings/{pid}").json()
    r = teacher.api(
        "POST",
        f"/api/v1/pairings/{pid}/check-ins",
        json={
            "held_on": datetime.now(UTC).date().isoformat(),
            "concern": True,
            "concern_note": "情绪低落",
            "notes": {
                "thinking": "近期沉默",
                "studies": "作业未交",
                "family": "父母外出务工",
                "difficulties": "睡眠差",
            },
            "expected_version": pairing["version"],
        },
    )
    assert r.status_code == 201, r.text
    check_in = r.json()["result"]
    after = teacher.api("GET", f"/api/v1/pairings/{pid}").json()
    assert after["version"] == pairing["version"] + 1
    assert after["check_ins"][check_in]["notes"]["family"] == "父母外出务工"
    r = teacher.api(
        "POST",
        f"/api/v1/pairings/{pid}/check-ins/{check_in}/escalate-to-support-file",
        json={"category": "情绪困扰", "risk_level": "key", "reason": "谈心中发现情绪低落"},
    )
    assert r.status_code == 201, r.text
    fid = r.json()["result"]
    escalations = teacher.api("GET", f"/api/v1/pairings/{pid}").json()["escalations"]
    assert [e["target_id"] for e in escalations if e["check_in_id"] == check_in] == [fid]
    # The file exists, linked back to the check-in; the class teacher may not read it.
    assert any(line["file_id"] == fid for line in principal.api("GET", "/api/v1/support-files").json())
    assert principal.api("GET", f"/api/v1/support-files/{fid}").json()["source"]["check_in_id"] == check_in
    assert teacher.api("GET", f"/api/v1/support-files/{fid}").status_code == 403


def test_a_counselor_works_a_file_and_cannot_open_another_counselors(site: DemoSite) -> None:
    c1, c2 = site.browser("counselor1"), site.browser("counselor2")
    mine = c1.api("GET", "/api/v1/support-files/mine").json()
    assert mine, "the demo gives counselor1 a caseload"
    fid = mine[0]["file_id"]
    f = c1.api("GET", f"/api/v1/support-files/{fid}").json()
    r = c1.api(
        "POST",
        f"/api/v1/support-files/{fid}/sessions",
        json={"held_on": datetime.now(UTC).date().isoformat(), "summary": XSS, "expected_version": f["version"]},
    )
    assert r.status_code == 201, r.text
    # (found by its id: the demo store is shared by the session's web tests, and another
    # file's test may have recorded a later-dated session on the same file)
    entry_id = r.json()["result"]
    sessions = c1.api("GET", f"/api/v1/support-files/{fid}").json()["sessions"]
    assert [s["summary"] for s in sessions if s["id"] == entry_id] == [XSS]
    staff2 = _staff_id(site, "counselor2")
    denied = _denials(site, staff2)
    r = c2.api("GET", f"/api/v1/support-files/{fid}")
    assert r.status_code == 403 and r.json()["error"]["code"] == "permission_denied"
    assert _denials(site, staff2) == denied + 1
    # A risk change without a reason is refused by the domain and writes nothing.
    version = c1.api("GET", f"/api/v1/support-files/{fid}").json()["version"]
    r = c1.api("POST", f"/api/v1/support-files/{fid}/risk/raise", json={"to_level": "high", "reason": " "})
    assert r.status_code == 400
    assert c1.api("GET", f"/api/v1/support-files/{fid}").json()["version"] == version


def test_a_screening_import_with_a_bad_row_applies_nothing_and_names_the_rows(site: DemoSite) -> None:
    counselor = site.browser("counselor1")
    before = counselor.api("GET", "/api/v1/screenings/coverage").json()["screened"]
    students = _class_students(site.browser("principal1"), "八年级1班")
    good = f"{students[0]['student_no']},PHQ-9,{datetime.now(UTC).date()},0,1,0,1,0,0,0,1,0"
    csv_text = (
        "student_no,instrument,date,"
        + ",".join(f"item{i}" for i in range(1, 10))
        + "\n"
        + good
        + "\nNO-SUCH,PHQ-9,2026-13-01,0,0,0,0,0,0,0,0,0\n"
    )
    r = counselor.api(
        "POST", "/api/v1/screenings/import", content=csv_text.encode(), headers={"Content-Type": "text/csv"}
    )
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["code"] == "import_rejected" and [row["line"] for row in err["rows"]] == [3]
    assert counselor.api("GET", "/api/v1/screenings/coverage").json()["screened"] == before


# -- scope ---------------------------------------------------------------------------------------------
def test_a_class_teacher_lists_their_class_only_and_the_gate_records_the_refusal(site: DemoSite) -> None:
    teacher = site.browser("teacher1")
    assert _class_students(teacher, "七年级1班")
    staff = _staff_id(site, "teacher1")
    denied = _denials(site, staff)
    assert teacher.api("GET", "/api/v1/students", params={"class_name": "七年级2班"}).status_code == 403
    assert teacher.api("GET", "/api/v1/students").status_code == 403
    assert _denials(site, staff) == denied + 2


def test_the_supervisor_reads_a_named_record_only_with_a_reason(site: DemoSite) -> None:
    supervisor = site.browser("supervisor1")
    student = _class_students(site.browser("principal1"), "七年级1班")[0]["id"]
    assert supervisor.api("GET", f"/api/v1/students/{student}").status_code == 403
    r = supervisor.api("POST", f"/api/v1/students/{student}/open", json={"reason": "复核家长投诉"})
    assert r.status_code == 200 and r.json()["name"]
    log = supervisor.api("GET", "/api/v1/audit/break-glass").json()
    assert any(row["subject"] == student and row["break_glass"] == "复核家长投诉" for row in log), log[:3]
    report = supervisor.api("GET", "/api/v1/reports/periodic", params={"from": "2026-09-01", "to": "2026-11-30"})
    assert report.status_code == 200 and report.json()["metrics"]


def test_the_docs_page_lists_every_api_route_without_inline_script(site: DemoSite) -> None:
    r = site.browser().client.get("/docs")
    assert r.status_code == 200
    assert not re.search(r"<script(?![^>]*\bsrc=)", r.text)  # scripts only as files (the CSP)
    spec = site.browser().client.get("/openapi.json").json()
    for path in spec["paths"]:
        assert path in r.text
    assert all(p.startswith("/api/v1/") for p in spec["paths"])


def test_every_api_tag_and_summary_has_its_english(site: DemoSite) -> None:
    from web import i18n

    spec = site.browser().client.get("/openapi.json").json()
    english = i18n.catalogue("en")
    texts = {op["summary"] for ops in spec["paths"].values() for op in ops.values()}
    texts |= {tag for ops in spec["paths"].values() for op in ops.values() for tag in op.get("tags", [])}
    assert texts and not sorted(t for t in texts if t not in english)
    page = site.browser().client.get("/docs", headers={"Cookie": "anxin_lang=en"})
    assert "School bullying-case board" in page.text and "学校欺凌案件看板" not in page.text
