"""The permission matrix: every role against every page and API route, with the expected
outcome from ONE table (MATRIX below), including the scope cases (a class teacher opening
another class's student or pairing, a counselor opening a file assigned to someone else,
staff of another school, the supervisor without a stated reason, the administrator and
case content). Every denial must be a 403 *and* a refused decision in the gate's access
records (anxin_access), so a route cannot refuse (or allow) on its own.

The table is complete by construction: a test enumerates the routes the application
serves and fails on any route the table does not list.

Roles (columns, in this order): teacher1 (class teacher of 七年级1班), counselor1,
counselor2, safety1, principal1 (all of school 1), supervisor1 (the district), admin, and
teacher7 (a class teacher of school 2). Each cell:
  A  allowed: the request passes the gate (any status but 401/403; a 400 is the domain
     refusing bad content after the gate let the person in)
  D  denied: 403, and one more refused decision for that person in anxin_access
  R  a reason is asked first: the page shows the break-glass form (200), nothing is read
  -  not exercised for this person, because doing it would destroy what other rows use
     (the route's own tests cover it: e.g. logging out ends the session)
"""

from __future__ import annotations

import html
import importlib
import pkgutil
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from web_support import Browser, DemoSite

import web.routes

CASE_STEPS = list(importlib.import_module("web.routes.cases").STEPS)
PRINCIPAL_CASE_STEPS = ("approve", "return", "close", "dismiss_clue")
CRISIS_STEPS = list(importlib.import_module("web.routes.crisis").STEPS)
REFERRAL_STEPS = list(importlib.import_module("web.routes.support").REFERRAL_STEPS)
ROLES = ["teacher1", "counselor1", "counselor2", "safety1", "principal1", "supervisor1", "admin", "teacher7"]

# method, path (with {placeholders} filled from the World below), expectations per ROLES column.
MATRIX: list[tuple[str, str, str]] = [
    # -- accounts and the start page (every signed-in person) --------------------------------------------
    ("GET", "/", "AAAAAAAA"),
    ("GET", "/account/password", "AAAAAAAA"),
    ("POST", "/account/password", "AAAAAAAA"),  # wrong current password: refused by content, not by role
    ("POST", "/logout", "--------"),
    ("GET", "/account/tokens", "AAAAAAAA"),  # one's own tokens only
    ("POST", "/account/tokens", "AAAAAAAA"),  # issued to oneself, never for another account
    ("POST", "/account/tokens/{token_id}/revoke", "AAAAAAAA"),  # matrix-spare's token: nobody else's is touched
    # -- one's own notices (提醒) and how they reach one ----------------------------------------------
    ("GET", "/inbox", "AAAAAAAA"),
    ("GET", "/inbox/0123456789abcdef", "AAAAAAAA"),  # nobody's notice: allowed (one's own), then not found
    ("POST", "/inbox/read", "AAAAAAAA"),
    ("POST", "/inbox/settings", "AAAAAAAA"),
    ("GET", "/account/two-step", "AAAAAAAA"),  # one's own two-step verification
    ("GET", "/account/two-step/enrol", "AAAAAAAA"),
    ("POST", "/account/two-step/enrol", "AAAAAAAA"),  # no code of the secret shown: refused by content
    ("POST", "/account/two-step/disable", "AAAAAAAA"),  # not on, wrong password: refused by content
    # -- role grants waiting for a second person (each asked for by the administrator) -----------------------
    ("GET", "/grants", "DDDDAAAD"),  # those who ask for grants (administrators) or may approve them
    ("POST", "/grants/{grant_staff}/{grant_id}/approve", "DDDD-DDD"),  # the requester (admin) never approves
    ("POST", "/grants/{grant_staff}/{grant_id}/decline", "DDDD-DDD"),
    ("POST", "/grants/{approve_staff}/{approve_id}/approve", "----A---"),  # the school's principal: school roles
    ("POST", "/grants/{decline_staff}/{decline_id}/decline", "----A---"),
    # -- pairings (一岗双带) --------------------------------------------------------------------------
    ("GET", "/pairings", "AAAAAAAA"),  # everyone's own pairings (none for the district and the administrator)
    ("POST", "/pairings/new", "DDDAADDD"),
    ("GET", "/pairings/{own_pairing}", "ADDDARDD"),
    ("GET", "/pairings/{other_pairing}", "DDDDARDD"),
    ("POST", "/pairings/{other_pairing}/open", "DDDDAADD"),
    ("POST", "/pairings/{own_pairing}/check-ins", "ADDDADDD"),
    ("POST", "/pairings/{other_pairing}/check-ins", "DDDDADDD"),
    ("POST", "/pairings/{own_pairing}/escalate", "ADDDADDD"),
    ("POST", "/pairings/{own_pairing}/end", "--------"),  # ending it would end the rows above
    ("POST", "/pairings/{spare_pairing}/end", "DDDDADDD"),  # teacher2's
    # -- students -------------------------------------------------------------------------------------
    ("GET", "/students", "AAAAAAAA"),  # the search form; a class teacher's own class lists
    ("GET", "/students/{own_student}", "AAAAARAD"),
    ("GET", "/students/{other_student}", "DAAAARAD"),
    ("POST", "/students/{other_student}/open", "DAAAAAAD"),
    # -- bullying cases (pages) ------------------------------------------------------------------------
    ("GET", "/cases/new", "AAAAAAAA"),  # the form; the gate decides when it is sent
    ("POST", "/cases/new", "AAAAADDA"),
    ("GET", "/cases", "ADDAADDA"),  # a class teacher: status lines of their classes' cases
    ("GET", "/cases/{class_case}", "ADDAARDD"),  # the class teacher: status only
    ("GET", "/cases/{other_case}", "DDDAARDD"),
    ("POST", "/cases/{other_case}/open", "DDDAAADD"),
    *[("POST", f"/cases/{{class_case}}/{step}", "DDDDADDD") for step in PRINCIPAL_CASE_STEPS],
    *[("POST", f"/cases/{{class_case}}/{step}", "DDDAADDD") for step in CASE_STEPS if step not in PRINCIPAL_CASE_STEPS],
    ("GET", "/board", "DDDAADDD"),
    # -- the printable case file (案卷): the case page's rules; a supervisor states a reason first
    ("GET", "/cases/{class_case}/dossier", "ADDAARDD"),  # the class teacher: the status only
    ("GET", "/cases/{class_case}/dossier.pdf", "ADDAARDD"),
    ("GET", "/cases/{other_case}/dossier", "DDDAARDD"),
    ("POST", "/cases/{other_case}/dossier", "DDDAAADD"),
    ("POST", "/cases/{other_case}/dossier.pdf", "DDDAAADD"),
    # -- support files (pages) ------------------------------------------------------------------------
    ("GET", "/support", "DAADADDD"),  # others: their own (empty) caseload and the refusal of the register
    ("GET", "/support/new", "DAADADDD"),  # a class teacher opens one from a check-in or a student page
    ("POST", "/support/new", "AAADADDD"),
    ("GET", "/support/{c1_file}", "DADDARDD"),
    ("GET", "/support/{esc_file}", "AADDARDD"),  # teacher1 escalated it: its status page
    ("GET", "/support/{person_file}", "AADDARDD"),  # teacher1 is its 包联人: the plan part
    ("POST", "/support/{c1_file}/open", "DADDAADD"),
    # -- a support file's printable case file: the file page's rules (包联人: the plan part)
    ("GET", "/support/{c1_file}/dossier", "DADDARDD"),
    ("GET", "/support/{c1_file}/dossier.pdf", "DADDARDD"),
    ("GET", "/support/{person_file}/dossier", "AADDARDD"),
    ("GET", "/support/{esc_file}/dossier", "DADDARDD"),  # teacher1 knows its status only: no case file
    ("POST", "/support/{c1_file}/dossier", "DADDAADD"),
    ("POST", "/support/{c1_file}/dossier.pdf", "DADDAADD"),
    *[
        ("POST", f"/support/{{c1_file}}/{step}", "DADDADDD")
        for step in (
            "risk",
            "category",
            "plan",
            "session",
            "guardian-contact",
            "referral",
            "crisis",
            "review",
            "reassign",
            "person",
            "close",
            "reopen",
        )
    ],
    ("POST", "/support/{c1_file}/entries/{any_id}/correct", "DADDADDD"),  # no such entry: 400 once allowed
    *[("POST", f"/support/{{c1_file}}/referrals/{{any_id}}/{step}", "DADDADDD") for step in REFERRAL_STEPS],
    # -- the district's registry of agencies referrals go to: its administrator and supervisors ---------
    ("GET", "/agencies", "DDDDDAAD"),
    ("POST", "/agencies", "DDDDDAAD"),  # the same name twice: 400 once allowed
    ("POST", "/agencies/{agency_id}/retire", "DDDDDAAD"),
    # -- the crisis pathway: every counselor of the school and the principal (no crisis open: 400 once allowed)
    ("GET", "/crisis/{c1_file}", "DAADADDD"),
    *[("POST", f"/crisis/{{c1_file}}/{step}", "DAADADDD") for step in CRISIS_STEPS],
    # -- screenings (pages) ---------------------------------------------------------------------------
    ("GET", "/screenings", "DAAAADDD"),  # the district's figures are in the periodic report
    ("GET", "/screenings/template.csv", "AAAAAAAA"),  # a header line, no data
    ("POST", "/screenings/import", "DAADADDD"),
    ("POST", "/screenings/record", "DAADADDD"),
    # -- supervisor: district, reports, audit -------------------------------------------------------------
    ("GET", "/district", "DDDDDADD"),
    ("GET", "/reports", "DAAAAADD"),  # school figures: counselors and the safety lead have STATS_READ
    ("GET", "/reports.csv", "DAAAAADD"),
    ("GET", "/reports/print", "DAAAAADD"),
    ("GET", "/audit", "DDDDDADD"),
    ("GET", "/audit.csv", "DDDDDADD"),
    ("POST", "/audit/find", "DDDDDADD"),  # the supervisor: no number given, 400
    ("POST", "/audit/history.csv", "DDDDDADD"),  # the supervisor: no record given, 400
    ("POST", "/audit/verify", "DDDDDADD"),
    # -- break-glass reviews: the school's principal and the district's other supervisors ----------------
    ("GET", "/reviews", "DDDDAADD"),  # the queue (supervisor1's own uses are not in it)
    ("POST", "/reviews/{review_use}", "DDDDADDD"),  # supervisor1's use: never theirs to review, nor an admin's
    # -- administrator -------------------------------------------------------------------------------
    ("GET", "/admin/notifications", "DDDDDDAD"),  # a school's group bot, undeliverable messages
    ("POST", "/admin/notifications/{school}/bot", "DDDDDDAD"),
    ("GET", "/admin/accounts", "DDDDDDAD"),
    ("POST", "/admin/accounts", "DDDDDDAD"),
    ("GET", "/admin/accounts/{spare_staff}", "DDDDDDAD"),
    ("POST", "/admin/accounts/{spare_staff}/roles", "DDDDDDAD"),
    ("POST", "/admin/accounts/{spare_staff}/setup-code", "DDDDDDAD"),  # its password is set: 400 once allowed
    ("POST", "/admin/accounts/{spare_staff}/deactivate", "DDDDDD-D"),
    ("POST", "/admin/accounts/{admin_staff}/roles", "DDDDDDDD"),  # never one's own roles, the administrator included
    ("GET", "/admin/roster", "DDDDDDAD"),
    ("POST", "/admin/roster", "DDDDDDAD"),  # the preview: the file read only once the gate allows
    ("POST", "/admin/roster/confirm", "DDDDDDAD"),  # no sealed preview: 400 once allowed
    ("GET", "/admin/roster/template.csv", "DDDDDDAD"),  # a header line, no data: the roster's keeper's
    ("GET", "/admin/roster/template.xlsx", "DDDDDDAD"),
    ("GET", "/admin/keys", "DDDDDDAD"),
    ("POST", "/admin/keys/rotate", "DDDDDD-D"),
    ("POST", "/admin/keys/checkpoint", "DDDDDDAD"),
    ("GET", "/admin/shred", "DDDDDDAD"),
    ("POST", "/admin/shred", "DDDDDDAD"),
    ("POST", "/admin/shred/confirm", "DDDDDD-D"),
    ("GET", "/admin/two-step", "DDDDDDAD"),
    ("POST", "/admin/two-step", "DDDDDDAD"),  # the form's first choice: "not required", as it is
    ("POST", "/admin/accounts/{spare_staff}/two-step/reset", "DDDDDDAD"),  # matrix-spare has none: nothing reset
    # -- API: who am I and my work --------------------------------------------------------------------
    ("GET", "/api/v1/me", "AAAAAAAA"),
    ("GET", "/api/v1/schools", "AAAAAAAA"),
    ("GET", "/api/v1/work-queue", "AAAAAAAA"),
    # -- API: students ----------------------------------------------------------------------------------
    ("GET", "/api/v1/students", "DAAAADAD"),
    ("GET", "/api/v1/students/suggest", "AAAAADAD"),  # the picker: a class teacher's own classes only
    ("GET", "/api/v1/students/{own_student}", "AAAAADAD"),
    ("GET", "/api/v1/students/{other_student}", "DAAAADAD"),
    ("POST", "/api/v1/students/{other_student}/open", "DAAAAAAD"),
    ("GET", "/api/v1/students/{own_student}/timeline", "AAAAADAD"),
    ("GET", "/api/v1/students/{other_student}/timeline", "DAAAADAD"),
    ("POST", "/api/v1/students/{other_student}/timeline/open", "DAAAAAAD"),
    ("GET", "/api/v1/students/{own_student}/screenings", "DAADADDD"),
    ("POST", "/api/v1/students/{other_student}/screenings", "DAADADDD"),
    # -- API: pairings ----------------------------------------------------------------------------------
    ("GET", "/api/v1/pairings", "AAAAADDA"),
    ("GET", "/api/v1/pairings/{own_pairing}", "ADDDADDD"),
    ("GET", "/api/v1/pairings/{other_pairing}", "DDDDADDD"),
    ("POST", "/api/v1/pairings/{other_pairing}/open", "DDDDAADD"),
    ("POST", "/api/v1/pairings", "DDDAADDD"),
    ("POST", "/api/v1/pairings/{own_pairing}/check-ins", "ADDDADDD"),
    ("POST", "/api/v1/pairings/{other_pairing}/check-ins", "DDDDADDD"),
    ("POST", "/api/v1/pairings/{own_pairing}/check-ins/{check_in}/corrections", "ADDDADDD"),
    ("POST", "/api/v1/pairings/{spare_pairing}/end", "DDDDADDD"),
    ("POST", "/api/v1/pairings/{own_pairing}/check-ins/{check_in}/escalate-to-support-file", "ADDDADDD"),
    ("POST", "/api/v1/pairings/{own_pairing}/check-ins/{check_in}/escalate-to-bullying-report", "ADDDADDD"),
    # -- API: bullying cases -------------------------------------------------------------------------------
    ("GET", "/api/v1/cases", "ADDAADDD"),  # a class teacher: status lines of their classes' cases
    ("GET", "/api/v1/cases/{class_case}", "DDDAADDD"),
    ("GET", "/api/v1/cases/{other_case}", "DDDAADDD"),
    ("POST", "/api/v1/cases/{other_case}/open", "DDDAAADD"),
    ("GET", "/api/v1/cases/{class_case}/status", "ADDAADDD"),
    ("GET", "/api/v1/cases/{other_case}/status", "DDDAADDD"),
    ("POST", "/api/v1/cases", "AAAAADDD"),
    *[
        ("POST", f"/api/v1/cases/{{class_case}}/{p}", "DDDDADDD")
        for p in ["determination/approve", "determination/return", "close", "clue/dismiss"]
    ],  # the principal's
    *[
        ("POST", f"/api/v1/cases/{{class_case}}/{p}", "DDDAADDD")
        for p in [
            "parties",
            "parties/remove",
            "safety-measures",
            "guardian-notifications",
            "statements",
            "evidence",
            "investigation/start",
            "investigation/complete",
            "determination",
            "mandatory-reports",
            "interventions",
            "appeals",
            "follow-ups",
            "reopen",
            "narrative/corrections",
            "report/corrections",
            "interventions/{any_id}/progress",
            "interventions/{any_id}/complete",
            "appeals/{any_id}/outcome",
            "statements/{any_id}/corrections",
            "evidence/{any_id}/corrections",
            "follow-ups/{any_id}/corrections",
            "authority-reports",
            "dispositions",
            "county-reviews",
            "county-reviews/{any_id}/outcome",
            "county-reviews/{any_id}/panel",
            "police-track",
        ]
    ],
    # -- API: bullying cases, issue 17 part B (the determination's guardians, ...) ----------------------
    *[
        ("POST", f"/api/v1/cases/{{class_case}}/{p}", "DDDAADDD")
        for p in ["guardian-invitations", "guardian-participation", "committee-meetings"]
    ],
    ("POST", "/api/v1/committee/members", "DDDDADDD"),  # the principal keeps the school's body
    ("POST", "/api/v1/committee/members/remove", "DDDDADDD"),
    ("GET", "/committee", "DDDAADDD"),  # the safety lead reads it to record a case's meeting
    ("POST", "/committee/appoint", "DDDDADDD"),
    ("POST", "/committee/leave", "DDDDADDD"),
    # -- API: support files and screenings ---------------------------------------------------------------------
    ("GET", "/api/v1/support-files", "DAADADDD"),
    ("GET", "/api/v1/support-files/mine", "AAAAAAAA"),
    ("GET", "/api/v1/support-files/{c1_file}", "DADDADDD"),
    ("GET", "/api/v1/support-files/{esc_file}", "DADDADDD"),  # the teacher who escalated it: status only
    ("GET", "/api/v1/support-files/{esc_file}/status", "AADDADDD"),
    ("GET", "/api/v1/support-files/{c1_file}/status", "DADDADDD"),
    ("GET", "/api/v1/support-files/{person_file}", "DADDADDD"),  # the 包联人: never the whole file
    ("GET", "/api/v1/support-files/{person_file}/plan", "AADDADDD"),
    ("GET", "/api/v1/support-files/{person_file}/status", "AADDADDD"),
    ("GET", "/api/v1/support-files/{c1_file}/plan", "DADDADDD"),
    ("POST", "/api/v1/support-files/{c1_file}/open", "DADDAADD"),
    ("POST", "/api/v1/support-files", "AAADADDD"),  # a class teacher may open one for their class
    *[
        ("POST", f"/api/v1/support-files/{{c1_file}}/{p}", "DADDADDD")
        for p in [
            "risk/raise",
            "risk/lower",
            "category",
            "responsible",
            "responsible-person",
            "plan",
            "plan/revise",
            "sessions",
            "guardian-contacts",
            "referrals",
            "crisis-interventions",
            "reviews",
            "close",
            "reopen",
            "entries/{any_id}/corrections",
            "referrals/{any_id}/accepted",
            "referrals/{any_id}/feedback",
            "referrals/{any_id}/close",
        ]
    ],
    ("GET", "/api/v1/agencies", "DDDDDAAD"),
    ("POST", "/api/v1/agencies", "DDDDDAAD"),
    ("POST", "/api/v1/agencies/{api_agency_id}/retire", "DDDDDAAD"),
    ("GET", "/api/v1/screenings/coverage", "DAAAAADD"),  # without names for the district
    ("POST", "/api/v1/screenings/import", "DAADADDD"),
    # -- API: reports and audit ------------------------------------------------------------------------
    ("GET", "/api/v1/reports/periodic", "DAAAAADD"),
    ("GET", "/api/v1/audit/{audit_what}", "DDDDDADD"),
    ("GET", "/api/v1/break-glass-reviews", "DDDDAADD"),
    ("POST", "/api/v1/break-glass-reviews/{api_review_use}", "DDDDADDD"),
]

# Served without an account, or only shaping how pages look: not decisions of the gate.
PUBLIC = {
    ("GET", "/login"),
    ("POST", "/login"),
    ("GET", "/setup/{code}"),  # the one-time set-up code is what proves who one is
    ("POST", "/setup/{code}"),
    # A half-login between the password and the second step: the staged session is all it has.
    ("GET", "/login/two-step"),
    ("POST", "/login/two-step"),
    ("POST", "/login/two-step/cancel"),
    ("GET", "/login/enrol"),
    ("POST", "/login/enrol"),
    ("GET", "/lang/{code}"),
    ("GET", "/docs"),
    ("GET", "/openapi.json"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
}

QUERIES = {
    "/reports": {"from": "2026-09-01", "to": "2026-11-30"},
    "/reports.csv": {"from": "2026-09-01", "to": "2026-11-30"},
    "/reports/print": {"from": "2026-09-01", "to": "2026-11-30"},
    "/audit.csv": {"what": "denied"},
    "/api/v1/reports/periodic": {"from": "2026-09-01", "to": "2026-11-30"},
    "/api/v1/students/suggest": {"school_id": "{school}", "q": "z"},
    # School lists name the school, so district people and other schools' staff ask for *this* school.
    **{
        p: {"school_id": "{school}"}
        for p in (
            "/api/v1/students",
            "/api/v1/cases",
            "/api/v1/support-files",
            "/api/v1/screenings/coverage",
            "/api/v1/screenings/import",
        )
    },
}


@dataclass
class World:
    """The records the matrix is about, made for it in the shared demo district."""

    ids: dict[str, str]


def _route_keys() -> set[tuple[str, str]]:
    """Every (method, path) the application serves, from each area's router."""
    keys: set[tuple[str, str]] = set()
    for info in pkgutil.iter_modules(web.routes.__path__):
        router = getattr(importlib.import_module(f"web.routes.{info.name}"), "router", None)
        for route in getattr(router, "routes", []):
            for method in getattr(route, "methods", set()) - {"HEAD"}:
                keys.add((method, route.path))
    return keys


def _pattern(path: str) -> str:
    """A path with its placeholders, whatever their names, as {}."""
    return re.sub(r"\{[a-z_0-9]+\}", "{}", path)


def _served_by(route_path: str, path: str) -> bool:
    """Whether a table path (placeholders filled with a sample id) is served by a route."""
    regex = re.sub(r"\\\{[a-z_0-9]+\\\}", "[^/]+", re.escape(route_path))
    return re.fullmatch(regex, re.sub(r"\{[a-z_0-9]+\}", "x", path)) is not None


def test_the_matrix_lists_every_route_the_application_serves() -> None:
    served = {(m, p) for m, p in _route_keys() if (m, p) not in PUBLIC}
    missing = sorted((m, p) for m, p in served if not any(m == tm and _served_by(p, tp) for tm, tp, _ in MATRIX))
    unknown = sorted((m, p) for m, p, _ in MATRIX if not any(m == sm and _served_by(sp, p) for sm, sp in served))
    assert not missing, f"routes missing from the permission matrix: {missing}"
    assert not unknown, f"matrix rows for routes that do not exist: {unknown}"
    # A route serving many steps (/cases/{id}/{step}) is listed once per step.
    assert {p.rsplit("/", 1)[1] for m, p, _ in MATRIX if p.startswith("/cases/{class_case}/")} >= set(CASE_STEPS)
    assert {p.rsplit("/", 1)[1] for m, p, _ in MATRIX if p.startswith("/crisis/{c1_file}/")} == set(CRISIS_STEPS)
    assert all(len(cells) == len(ROLES) and set(cells) <= set("ADR-") for _, _, cells in MATRIX)


# -- the world ----------------------------------------------------------------------------------------------
def _actor(site: DemoSite, username: str) -> Any:
    return site.app.gate.actor(site.app.accounts.account(username)[0])


@pytest.fixture(scope="session")
def world(site: DemoSite) -> World:
    app = site.app
    admin, safety, principal = _actor(site, "admin"), _actor(site, "safety1"), _actor(site, "principal1")
    teacher1, teacher2, c1 = _actor(site, "teacher1"), _actor(site, "teacher2"), _actor(site, "counselor1")
    school = teacher1.school_id
    own_class = [s for s in app.roster.list_students(admin, school, "七年级1班") if not s.erased]
    other_class = [s for s in app.roster.list_students(admin, school, "七年级2班") if not s.erased]
    with_file = {line.student_id for line in app.support.support_register(principal, school) if line.status != "closed"}
    own_pairing = next(p for p in app.pairings.my_pairings(teacher1) if p.student_id not in with_file)
    other_pairing = app.pairings.my_pairings(teacher2)[0]
    other_free = [
        s
        for s in other_class
        if s.id not in {p.student_id for p in app.pairings.my_pairings(teacher2)} and s.id not in with_file
    ]
    spare_pairing = app.pairings.pair(safety, staff_id=teacher2.staff_id, student_id=other_free[-1].id)
    check_in = app.pairings.record_check_in(
        teacher1,
        str(own_pairing.id),
        held_on=app.now().date(),
        notes={"thinking": "矩阵"},
        concern=True,
        concern_note="矩阵测试",
    )
    # A file teacher1 escalated from a check-in of their own (counselor1 responsible).
    esc_student = next(
        s
        for s in own_class[2:]
        if s.id not in with_file and s.id not in {p.student_id for p in app.pairings.my_pairings(teacher1)}
    )
    esc_pairing = app.pairings.pair(safety, staff_id=teacher1.staff_id, student_id=esc_student.id)
    esc_check_in = app.pairings.record_check_in(
        teacher1, esc_pairing, held_on=app.now().date(), notes={"thinking": "矩阵"}, concern=True, concern_note="矩阵"
    )
    esc_file = app.escalations.escalate_to_support_file(
        teacher1,
        esc_pairing,
        esc_check_in,
        category="情绪困扰",
        risk_level="general",
        reason="矩阵测试",
        responsible_id=c1.staff_id,
    )
    file_student = next(s for s in other_class if s.id not in with_file)
    supervisor = _actor(site, "supervisor1")
    agency_id = app.agencies.add_agency(supervisor, kind="hospital", name=f"矩阵医院{len(other_class)}甲")
    api_agency_id = app.agencies.add_agency(supervisor, kind="hospital", name=f"矩阵医院{len(other_class)}乙")
    # A file of counselor1's with teacher1 named its one-to-one responsible person (包联人).
    person_student = next(s for s in reversed(other_class) if s.id not in with_file and s.id != file_student.id)
    person_file = app.support.open_support_file(
        c1, person_student.id, category="情绪困扰", risk_level="general", reason="矩阵测试"
    )
    app.support.assign_responsible_person(c1, person_file, teacher1.staff_id, "矩阵测试")
    c1_file = app.support.open_support_file(
        c1, file_student.id, category="情绪困扰", risk_level="general", reason="矩阵测试"
    )
    when = app.now() - timedelta(hours=2)
    class_case = app.cases.report_bullying(
        teacher1,
        school_id=school,
        channel="teacher",
        occurred_at=when,
        place="操场",
        forms=["verbal"],
        parties=[(own_class[1].id, "targeted")],
        narrative="矩阵测试",
    )
    other_case = app.cases.report_bullying(
        safety,
        school_id=school,
        channel="teacher",
        occurred_at=when,
        place="操场",
        forms=["verbal"],
        parties=[(other_class[1].id, "targeted")],
        narrative="矩阵测试",
    )
    spare_staff = app.roster.add_staff(
        admin,
        username="matrix-spare",
        name="矩阵备用",
        school_id=school,
        roles=["class_teacher"],
        classes=["七年级3班"],
        password_hash="x",
    )
    app.accounts.issue_token(app.gate.actor(spare_staff), "matrix", scope="write")
    token_id = site.web.state.web.tokens.of_staff(spare_staff)[0]["id"]
    # Grants of the counselor role asked for by the administrator, waiting for a second
    # person: one nobody approves (the denials), one the principal approves, one declined.
    grants = {}
    for key in ("grant", "approve", "decline"):
        staff_id, _code, request_id = app.roster.create_account(
            admin,
            username=f"matrix-{key}",
            name="矩阵授予",
            school_id=school,
            roles=["class_teacher", "counselor"],
            classes=["七年级3班"],
        )
        assert request_id is not None
        grants[f"{key}_staff"], grants[f"{key}_id"] = staff_id, request_id
    # Two break-glass uses by supervisor1, for the principal to review (a page, the API).
    supervisor = _actor(site, "supervisor1")
    uses = []
    for _ in range(2):
        app.cases.get_case(supervisor, other_case, break_glass="矩阵测试：核对权限")
        uses.append(
            app.db.fetchone(
                "SELECT MAX(access_seq) FROM {t}anxin_break_glass_reviews WHERE user_id = ? AND resource_id = ?",
                (supervisor.staff_id, other_case),
            )[0]
        )
    # The other class's student the matrix opens is in no case, file or pairing, so what a
    # class teacher may see of it cannot depend on what other tests have recorded.
    linked = {
        r[0]
        for r in app.db.fetch(
            "SELECT DISTINCT l.student_id FROM {t}anxin_links l JOIN {t}anxin_directory d ON d.stream_id = l.stream_id "
            "WHERE d.kind IN ('case', 'file', 'pairing')"
        )
    }
    return World(
        {
            "own_student": own_class[0].id,
            "other_student": next(s.id for s in other_class if s.id not in linked),
            "own_pairing": str(own_pairing.id),
            "other_pairing": str(other_pairing.id),
            "spare_pairing": spare_pairing,
            "check_in": check_in,
            "c1_file": c1_file,
            "esc_file": esc_file,
            "agency_id": agency_id,
            "api_agency_id": api_agency_id,
            "person_file": person_file,
            "class_case": class_case,
            "other_case": other_case,
            "spare_staff": spare_staff,
            "token_id": token_id,
            "admin_staff": admin.staff_id,
            **grants,
            "any_id": "0" * 32,
            "audit_what": "denied",
            "school": school,
            "review_use": str(uses[0]),
            "api_review_use": str(uses[1]),
        }
    )


# -- requests -----------------------------------------------------------------------------------------------
def _denials(site: DemoSite, username: str) -> int:
    return site.app.db.fetchone(
        "SELECT COUNT(*) FROM {t}anxin_access WHERE actor_id = ? AND allowed = 0",
        (site.app.accounts.account(username)[0],),
    )[0]


FORM = re.compile(r"<form\b[^>]*>.*?</form>", re.S)
INPUT = re.compile(r"<(input)\b([^>]*)>()|<(textarea|select)\b([^>]*)>(.*?)</(?:textarea|select)>", re.S)
ATTR = re.compile(r'([a-z_-]+)="([^"]*)"')


def _fill(name: str, kind: str) -> str:
    today = datetime.now(UTC).date().isoformat()
    if kind == "date" or name.endswith(("_on", "date")) or name in ("from", "to"):
        return today
    if kind == "datetime-local" or name.endswith("_at"):
        return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M")
    if kind == "number" or name.endswith(("_days", "version")):
        return "1"
    return "矩阵测试：核对权限"


GENERIC = {
    "reason": "矩阵测试：核对权限",
    "held_on": "",
    "occurred_on": "",
    "place": "操场",
    "narrative": "矩阵测试",
    "text": "矩阵测试",
    "summary": "矩阵测试",
    "notes": "矩阵测试",
    "findings": "矩阵测试",
    "break_glass_reason": "矩阵测试：核对权限",
    "current": "not-the-password",
    "new": "x",
    "again": "y",
    "confirm": "no",
    "label": "matrix",
    "what": "denied",
    "bullying": "no",
}


def _form_for(page_html: str, action: str) -> dict[str, Any]:
    """The fields of the form posting to `action` on a page, filled the way a person
    would (hidden values kept, blanks filled); the generic fields otherwise."""
    data = {k: (v or _fill(k, "")) for k, v in GENERIC.items()}
    for form in FORM.findall(page_html):
        head = dict(ATTR.findall(form.split(">", 1)[0]))
        if html.unescape(head.get("action", "")) != action:
            continue
        for m in INPUT.finditer(form):
            tag, attrs, inner = (m.group(1), m.group(2), "") if m.group(1) else (m.group(4), m.group(5), m.group(6))
            a = dict(ATTR.findall(attrs))
            name = a.get("name")
            if not name or name == "csrf_token" or a.get("type") in ("file", "submit"):
                continue
            if tag == "select":
                options = re.findall(r'<option[^>]*value="([^"]*)"', inner)
                value = next((o for o in options if o), "")
            elif tag == "textarea":
                value = html.unescape(inner.strip())
            else:
                value = html.unescape(a.get("value", ""))
            if a.get("type") in ("radio", "checkbox") and name in data and name not in GENERIC:
                continue  # the first choice of a group
            data[name] = value or (_fill(name, a.get("type", "")) if "required" in attrs else "")
        break
    return data


def _api_body(spec: dict[str, Any], path: str, ids: dict[str, str]) -> dict[str, Any] | None:
    op = next(ops for p, ops in spec["paths"].items() if _pattern(p) == _pattern(path))["post"]
    content = op.get("requestBody", {}).get("content", {})
    if "application/json" not in content:
        return None
    return _example(spec, content["application/json"]["schema"], ids)


def _example(spec: dict[str, Any], schema: dict[str, Any], ids: dict[str, str], name: str = "") -> Any:
    if "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    if "anyOf" in schema:
        return _example(spec, next(s for s in schema["anyOf"] if s.get("type") != "null"), ids, name)
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type")
    if kind == "object":
        required = set(schema.get("required", []))
        return {k: _example(spec, v, ids, k) for k, v in schema.get("properties", {}).items() if k in required}
    if kind == "array":
        return [_example(spec, schema.get("items", {}), ids, name)]
    if kind == "boolean":
        return False
    if kind == "integer":
        return 1
    if schema.get("format") == "date":
        return datetime.now(UTC).date().isoformat()
    if schema.get("format") == "date-time":
        return (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    if name == "school_id":
        return ids["school"]
    if name in ("student_id",):
        return ids["own_student"]
    if name.endswith("staff_id") or name == "responsible_id":
        return ids["spare_staff"]
    return "矩阵测试：核对权限"


def _call(
    b: Browser, sources: dict[str, Browser], method: str, path: str, ids: dict[str, str], spec: dict[str, Any]
) -> Any:
    url = path.format(**ids)
    params = {k: v.format(**ids) for k, v in QUERIES.get(path, {}).items()}
    if method == "GET":
        return (
            b.get(url, params=params, follow_redirects=False)
            if not path.startswith("/api/")
            else b.api("GET", url, params=params)
        )
    if path.startswith("/api/"):
        body = _api_body(spec, path, ids)
        if body is None:  # the screening import takes the CSV itself
            return b.api(
                "POST",
                url,
                params=params,
                content=b"student_no,instrument,date,item1\n",
                headers={"Content-Type": "text/csv"},
            )
        return b.api("POST", url, json=body)
    source = sources["admin" if "/admin/" in path else "principal1"]
    data = dict(GENERIC)
    parts = url.split("/")
    for cut in range(0, 4):  # the page the form is on: itself, or the nearest parent page that shows it
        page = source.get("/".join(parts[: len(parts) - cut]) or "/")
        if page.status_code == 200 and f'action="{url}"' in page.text:
            data = _form_for(page.text, url)
            break
    else:
        data = {k: (v or _fill(k, "")) for k, v in GENERIC.items()}
    # A record is named by its id (the form's hidden field), never typed: staff of another
    # school or of the district cannot look a student number up in school 1 at all.
    for name in [n for n in data if n.startswith("student_no") and url.endswith("/new")]:
        data[name] = ""
    if "student_id" in data or url == "/support/new":
        data["student_id"] = data.get("student_id") or ids["own_student"]
    uploads = {"/admin/roster": b"student_no,name\n", "/screenings/import": b"student_no,instrument,date,item1\n"}
    files = {"file": ("m.csv", uploads[url], "text/csv")} if url in uploads else None
    return b.post(url, data, files=files)


@pytest.mark.parametrize("role", ROLES)
def test_each_role_gets_what_the_matrix_says_on_every_route(site: DemoSite, world: World, role: str) -> None:
    column = ROLES.index(role)
    b = site.browser(role)
    spec = b.get("/openapi.json").json()
    sources = {"principal1": site.browser("principal1"), "admin": site.browser("admin")}
    wrong: list[str] = []
    for method, path, cells in MATRIX:
        expected = cells[column]
        if expected == "-":
            continue
        before = _denials(site, role)
        r = _call(b, sources, method, path, world.ids, spec)
        refused = _denials(site, role) - before
        if expected == "A" and r.status_code in (401, 403):
            wrong.append(f"{method} {path}: expected allowed, got {r.status_code}")
        elif expected == "D" and (r.status_code != 403 or refused < 1):
            said = re.search(r'class="error"[^>]*>([^<]*)<', r.text)
            wrong.append(
                f"{method} {path}: expected 403 + a recorded denial, got {r.status_code}, {refused}"
                f"{' (' + said.group(1) + ')' if said else ''}"
            )
        elif expected == "R" and (r.status_code != 200 or 'name="break_glass_reason"' not in r.text):
            wrong.append(f"{method} {path}: expected the reason form, got {r.status_code}")
    assert not wrong, f"{role}:\n" + "\n".join(wrong)
