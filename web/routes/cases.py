"""Bullying cases (校园欺凌案件): reporting by any staff member, the school's case board,
and the whole case with one form per lifecycle step (anxin/cases.py).

Every step posts to /cases/{id}/<action> with the version the page showed
(`expected_version`): a stale page gets 409 and nothing is written. A refused step
re-renders the case with the message and what was typed. The gate decides every
access: a class teacher's case page is the status line the application returns; a
supervisor states a reason first (break-glass) and the read carries it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from anxin import numbers as record_numbers
from anxin.service import Anxin
from domain import access
from domain.break_glass import is_meaningful_reason
from domain.bullying import (
    APPEAL_OUTCOMES,
    AUTHORITIES,
    AUTHORITY_REPORT_GROUNDS,
    AUTHORITY_REPORT_METHODS,
    CHANNELS,
    CLUE_FINDINGS,
    CONTACT_METHODS,
    COUNTY_REVIEW_OUTCOMES,
    DISCIPLINE_MEASURES,
    DISPOSITION_DECIDERS,
    DISPOSITION_KINDS,
    DISPOSITION_LEVELS,
    FORMS,
    GUARDIAN_INVITATION_METHODS,
    GUARDIAN_MISSING,
    GUARDIAN_PARTICIPATION,
    GUARDIAN_PARTS,
    INTERVENTION_KINDS,
    MEASURES,
    NEW_SEVERITIES,
    PARTS,
    POLICE_TRACK_KINDS,
    REVIEW_CAPACITIES,
    SEVERITIES,
    STATUS_LABELS,
    BullyingCase,
    UnknownStaff,
)
from domain.committee import CAPACITIES
from domain.common import Erased, InvalidInput, NotFound, PermissionDenied, Role
from projections.case_board import case_board, involving
from projections.student_names import search_students
from web import case_filters, case_sections, i18n
from web.deps import App, Form, PageUser, User, Web, error_page, get_web, reason_form, redirect, render
from web.forms import day_or, expected_version, moment, run_form, text, values, yes
from web.picker import picked_student

router = APIRouter(include_in_schema=False)

PARTY_ROWS = 5  # student rows on the report form (no JavaScript to add more)


def _student(app: Anxin, user: User, typed: str, guard: Callable[[], object] | None = None) -> str:
    """The student meant by what was typed into a student field (web/picker.py): a chosen
    suggestion, a student number of the reader's school, or a name, pinyin or initials
    that fit one student the reader may see; otherwise a message naming what was typed."""
    if not typed:
        raise InvalidInput(reason="请填写学生（姓名、学号、拼音或首字母）")
    return picked_student(app, user.actor, typed, guard)


def _staff(app: Anxin, user: User, username: str) -> str:
    """The responsible staff member by login name (default: the person acting)."""
    if not username:
        return user.staff_id
    found = app.accounts.account(username)
    if found is None:
        raise UnknownStaff()
    return str(found[0])


# -- report -----------------------------------------------------------------------------------
def _report_page(request: Request, status: int = 200, **extra: Any) -> Response:
    return render(
        request, "cases/new.html", status, channels=CHANNELS, forms_=FORMS, parts=PARTS, rows=range(PARTY_ROWS), **extra
    )


@router.get("/cases/new")
def new_case(request: Request, user: PageUser) -> Response:
    return _report_page(request)


@router.post("/cases/new")
def report_case(request: Request, user: PageUser, form: Form) -> Response:
    def report(app: Anxin) -> str:
        def reporting() -> object:
            return app.check(user.actor, access.CASE_REPORT, "case", school_id=user.actor.school_id)

        parties = [
            (_student(app, user, number, reporting), text(form, f"part_{i}"))
            for i in range(PARTY_ROWS)
            if (number := text(form, f"student_no_{i}"))
        ]
        if not text(form, "occurred_at"):
            raise InvalidInput(reason="请填写发生时间")
        return app.cases.report_bullying(
            user.actor,
            school_id=user.actor.school_id or "",
            channel=text(form, "channel") or "teacher",
            occurred_at=moment(text(form, "occurred_at"), "发生时间"),
            place=text(form, "place"),
            forms=values(form, "forms"),
            parties=parties,
            narrative=text(form, "narrative"),
            reporter_note=text(form, "reporter_note"),
            students_unconfirmed=yes(form, "students_unconfirmed"),
        )

    def reported(case_id: str) -> Response:
        # Where to go next: the case itself if the gate would let the reporter read it (the page
        # asks the gate again and records it), else back to their work queue.
        app = get_web(request).app
        readable = access.decide(user.actor, access.CASE_READ, app.resource("case", case_id))
        return redirect(f"/cases/{case_id}" if readable.allowed else "/", request, i18n.gettext("已报告"))

    # A student number that names nobody, or an erased student, is a mistake in the form.
    return run_form(
        request,
        report,
        reported,
        lambda r: _report_page(request, r.status, error=r.message),
        on_page=(NotFound, Erased),
        again=lambda r: ("/cases/new", {}),
    )


# -- the board --------------------------------------------------------------------------------
@router.get("/cases")
def cases_board(request: Request, user: PageUser, app: App) -> Response:
    # Filters, sort, search and pages from the address (web/case_filters.py); the gate decides
    # the board (and a name search) before they narrow it.
    school = user.actor.school_id or ""
    bq = case_filters.read_query(request.query_params)
    named: set[str] | None = None
    with app.decisions_together():
        lines = case_board(app, user.actor, school)
        if bq.q and lines and record_numbers.parse(bq.q) is None:  # not a case number: a student's name
            students = {s.id for s in search_students(app, user.actor, school, bq.q, limit=500)}
            named = involving(app, [x.case_id for x in lines], students)
    numbers = app.record_numbers([line.case_id for line in lines])
    shown = case_filters.apply(bq, lines, numbers, app.policy.school_year_of, named)
    return render(
        request,
        "cases/board.html",
        lines=shown.lines,
        shown=shown,
        bq=bq,
        numbers=numbers,
        forms_=FORMS,
        full=any(line.full for line in lines),
        statuses=STATUS_LABELS,
        severities=SEVERITIES,
        sorts=case_filters.SORTS,
        orders=case_filters.ORDERS,
    )


# -- one case ---------------------------------------------------------------------------------
def _case_context(app: Anxin, web: Web, case: BullyingCase) -> dict[str, Any]:
    """Names for display, resolved inside an already-authorised read (已删除 once erased)."""
    ids = {p["student_id"] for p in case.parties} | {p["student_id"] for p in case.removed_parties}
    for st in case.statements.values():
        if st["from_student_id"]:
            ids.add(st["from_student_id"])
    for m in case.measures.values():
        ids.update(m["student_ids"])
    ids.update(i["student_id"] for i in case.interventions.values())
    ids.update(a["party_id"] for a in case.appeals.values())
    ids.update(d["student_id"] for d in case.dispositions)
    ids.update(r["party_id"] for r in case.county_reviews)
    refs = {sid: app.student_ref(sid) for sid in ids}
    det = case.determination
    return {
        "case": case,
        "refs": refs,
        "staff_name": web.staff_name,
        "det": det,
        "status": case.status,
        "status_labels": STATUS_LABELS,
        "parts": PARTS,
        "forms_": FORMS,
        "channels": CHANNELS,
        "measures": MEASURES,
        "methods": CONTACT_METHODS,
        "severities": SEVERITIES,
        # a new determination chooses among the 2017 tiers; the legacy code is only shown
        "new_severities": {code: SEVERITIES[code] for code in NEW_SEVERITIES},
        "police_kinds": POLICE_TRACK_KINDS,
        "kinds": INTERVENTION_KINDS,
        "outcomes": APPEAL_OUTCOMES,
        "today": app.now().date(),
        "interventions": sorted(case.interventions.values(), key=lambda i: i["at"]),
        "appeal_parties": [p for p in case.parties if p["part"] != "witness"],
        "clue_findings": CLUE_FINDINGS,
        **_remedies_context(case, app.now()),
    }


def _case_page(
    request: Request, user: User, case_id: str, status: int = 200, *, break_glass: str | None = None, **extra: Any
) -> Response:
    web = get_web(request)
    app = web.app
    try:
        case, line = app.cases.read_case(user.actor, case_id, break_glass)
    except Erased:
        return render(request, "cases/erased.html", 410, case_id=case_id)
    if case is None:
        return render(
            request,
            "cases/status.html",
            status,
            case_id=case_id,
            line=line,
            status_labels=STATUS_LABELS,
            severities=SEVERITIES,
        )
    return render(
        request,
        "cases/case.html",
        status,
        case_id=case_id,
        break_glass=break_glass,
        **_case_context(app, web, case),
        **_determination_context(app, user, case),
        # the sections open and the contents (web/case_sections.py); forms only for a writer
        **case_sections.section_context(case, case.status, extra.get("failed"), app.now().date(), app.now()),
        can_write=app.permits(user.actor, access.CASE_WRITE, "case", case_id),
        can_approve=app.permits(user.actor, access.CASE_APPROVE, "case", case_id),
        **extra,
    )


def _supervisor_only(user: User) -> bool:
    """A district person without a school: the named record needs a stated reason first."""
    return user.actor.school_id is None and user.has(Role.SUPERVISOR)


@router.get("/cases/{case_id}")
def case_page(request: Request, case_id: str, user: PageUser) -> Response:
    if _supervisor_only(user):
        return reason_form(request, f"/cases/{case_id}/open")
    return _case_page(request, user, case_id)


@router.post("/cases/{case_id}/open")
def case_open(request: Request, case_id: str, user: PageUser, form: Form) -> Response:
    reason = text(form, "break_glass_reason")
    try:
        return _case_page(request, user, case_id, break_glass=reason)
    except PermissionDenied as e:
        if is_meaningful_reason(reason):
            raise
        return reason_form(request, f"/cases/{case_id}/open", 400, e)


# -- the lifecycle steps: each one application call ----------------------------------------------
Step = Callable[[Anxin, User, str, dict[str, Any], int | None], Any]


def _add_party(app: Anxin, u: User, cid: str, f: dict[str, Any], v: int | None) -> Any:
    return app.cases.add_party(
        u.actor,
        cid,
        student_id=_student(app, u, text(f, "student_no"), lambda: app.check(u.actor, access.CASE_WRITE, "case", cid)),
        part=text(f, "part"),
        reason=text(f, "reason"),
        expected_version=v,
    )


def _remove_party(app: Anxin, u: User, cid: str, f: dict[str, Any], v: int | None) -> Any:
    return app.cases.remove_party(
        u.actor, cid, student_id=text(f, "student_id"), reason=text(f, "reason"), expected_version=v
    )


def _safety_measure(app: Anxin, u: User, cid: str, f: dict[str, Any], v: int | None) -> Any:
    return app.cases.take_safety_measure(
        u.actor,
        cid,
        kind=text(f, "kind"),
        student_ids=values(f, "student_ids"),
        note=text(f, "note"),
        expected_version=v,
    )


def _notify_guardian(app: Anxin, u: User, cid: str, f: dict[str, Any], v: int | None) -> Any:
    at = text(f, "notified_at")
    return app.cases.notify_guardian(
        u.actor,
        cid,
        student_id=text(f, "student_id"),
        method=text(f, "method"),
        notified_at=moment(at, "告知时间") if at else app.now(),
        note=text(f, "note"),
        expected_version=v,
    )


def _statement(app: Anxin, u: User, cid: str, f: dict[str, Any], v: int | None) -> Any:
    return app.cases.record_statement(
        u.actor,
        cid,
        text=text(f, "text"),
        from_student_id=text(f, "from_student_id") or None,
        from_person=text(f, "from_person") or None,
        taken_on=day_or(text(f, "taken_on"), None, "陈述日期"),
        expected_version=v,
    )


def _evidence(app: Anxin, u: User, cid: str, f: dict[str, Any], v: int | None) -> Any:
    return app.cases.add_evidence(
        u.actor, cid, description=text(f, "description"), reference=text(f, "reference"), expected_version=v
    )


def _start(app: Anxin, u: User, cid: str, f: dict[str, Any], v: int | None) -> Any:
    handler = text(f, "handler")
    return app.cases.start_investigation(
        u.actor, cid, handler_id=_staff(app, u, handler) if handler else None, expected_version=v
    )


def _complete(app: Anxin, u: User, cid: str, f: dict[str, Any], v: int | None) -> Any:
    return app.cases.complete_investigation(u.actor, cid, findings=text(f, "findings"), expected_version=v)


def _verdict(f: dict[str, Any]) -> tuple[bool, str | None, bool]:
    choice = text(f, "bullying")
    if choice not in ("yes", "no"):
        raise InvalidInput(reason="须写明是否构成欺凌")
    bullying = choice == "yes"
    return bullying, (text(f, "severity") or None) if bullying else None, (not bullying and yes(f, "horseplay"))


def _determine(app: Anxin, u: User, cid: str, f: dict[str, Any], v: int | None) -> Any:
    bullying, severity, horseplay = _verdict(f)
    return app.cases.determine(
        u.actor,
        cid,
        bullying=bullying,
        severity=severity,
        horseplay=horseplay,
        reason=text(f, "reason"),
        expected_version=v,
    )


def _approve(app: Anxin, u: User, cid: str, f: dict[str, Any], v: int | None) -> Any:
    return app.cases.approve_determination(u.actor, cid, reason=text(f, "reason"), expected_version=v)


def _return(app: Anxin, u: User, cid: str, f: dict[str, Any], v: int | None) -> Any:
    return app.cases.return_determination(u.actor, cid, reason=text(f, "reason"), expected_version=v)


def _mandatory(app: Anxin, u: User, cid: str, f: dict[str, Any], v: int | None) -> Any:
    at = text(f, "reported_at")
    return app.cases.record_mandatory_report(
        u.actor,
        cid,
        agency=text(f, "agency"),
        reported_at=moment(at, "报告时间") if at else app.now(),
        reference=text(f, "reference"),
        note=text(f, "note"),
        expected_version=v,
    )


def _plan(app: Anxin, u: User, cid: str, f: dict[str, Any], v: int | None) -> Any:
    return app.cases.plan_intervention(
        u.actor,
        cid,
        student_id=text(f, "student_id"),
        kind=text(f, "kind"),
        plan=text(f, "plan"),
        responsible_staff_id=_staff(app, u, text(f, "responsible")),
        expected_version=v,
    )


def _progress(app: Anxin, u: User, cid: str, f: dict[str, Any], v: int | None) -> Any:
    return app.cases.record_intervention_progress(
        u.actor, cid, text(f, "intervention_id"), note=text(f, "note"), expected_version=v
    )


def _finish(app: Anxin, u: User, cid: str, f: dict[str, Any], v: int | None) -> Any:
    return app.cases.complete_intervention(
        u.actor, cid, text(f, "intervention_id"), outcome=text(f, "outcome"), expected_version=v
    )


def _appeal(app: Anxin, u: User, cid: str, f: dict[str, Any], v: int | None) -> Any:
    return app.cases.lodge_appeal(
        u.actor,
        cid,
        party_id=text(f, "party_id"),
        grounds=text(f, "grounds"),
        lodged_on=day_or(text(f, "lodged_on"), None, "申诉日期"),
        expected_version=v,
    )


def _appeal_outcome(app: Anxin, u: User, cid: str, f: dict[str, Any], v: int | None) -> Any:
    outcome = text(f, "outcome")
    bullying: bool | None = None
    severity: str | None = None
    horseplay = False
    if outcome == "changed":
        bullying, severity, horseplay = _verdict(f)
    return app.cases.record_appeal_outcome(
        u.actor,
        cid,
        text(f, "appeal_id"),
        outcome=outcome,
        reason=text(f, "reason"),
        decided_on=day_or(text(f, "decided_on"), None, "复查日期"),
        bullying=bullying,
        severity=severity,
        horseplay=horseplay,
        expected_version=v,
    )


def _follow_up(app: Anxin, u: User, cid: str, f: dict[str, Any], v: int | None) -> Any:
    return app.cases.record_follow_up(
        u.actor, cid, notes=text(f, "notes"), held_on=day_or(text(f, "held_on"), None, "回访日期"), expected_version=v
    )


def _close(app: Anxin, u: User, cid: str, f: dict[str, Any], v: int | None) -> Any:
    return app.cases.close_case(u.actor, cid, reason=text(f, "reason"), expected_version=v)


def _reopen(app: Anxin, u: User, cid: str, f: dict[str, Any], v: int | None) -> Any:
    return app.cases.reopen_case(u.actor, cid, reason=text(f, "reason"), expected_version=v)


def _correct_narrative(app: Anxin, u: User, cid: str, f: dict[str, Any], v: int | None) -> Any:
    return app.cases.correct_narrative(
        u.actor, cid, narrative=text(f, "narrative"), reason=text(f, "reason"), expected_version=v
    )


def _correct_report(app: Anxin, u: User, cid: str, f: dict[str, Any], v: int | None) -> Any:
    changes: dict[str, Any] = {}
    if text(f, "place"):
        changes["place"] = text(f, "place")
    if text(f, "channel"):
        changes["channel"] = text(f, "channel")
    if text(f, "occurred_at"):
        changes["occurred_at"] = moment(text(f, "occurred_at"), "发生时间")
    if values(f, "forms"):
        changes["forms"] = values(f, "forms")
    return app.cases.correct_report(u.actor, cid, reason=text(f, "reason"), expected_version=v, **changes)


def _correct_statement(app: Anxin, u: User, cid: str, f: dict[str, Any], v: int | None) -> Any:
    return app.cases.correct_statement(
        u.actor, cid, text(f, "statement_id"), text=text(f, "text"), reason=text(f, "reason"), expected_version=v
    )


def _correct_evidence(app: Anxin, u: User, cid: str, f: dict[str, Any], v: int | None) -> Any:
    return app.cases.correct_evidence(
        u.actor,
        cid,
        text(f, "evidence_id"),
        reason=text(f, "reason"),
        description=text(f, "description") or None,
        reference=text(f, "reference") or None,
        expected_version=v,
    )


def _correct_follow_up(app: Anxin, u: User, cid: str, f: dict[str, Any], v: int | None) -> Any:
    return app.cases.correct_follow_up(
        u.actor, cid, text(f, "follow_up_id"), notes=text(f, "notes"), reason=text(f, "reason"), expected_version=v
    )


def _self_harm(app: Anxin, u: User, cid: str, f: dict[str, Any], v: int | None) -> Any:
    return app.cases.note_self_harm(
        u.actor, cid, student_id=text(f, "student_id"), note=text(f, "note"), expected_version=v
    )


# -- intake: clues (issue 17, A) --------------------------------------------------------------------
def _dismiss_clue(app: Anxin, u: User, cid: str, f: dict[str, Any], v: int | None) -> Any:
    return app.cases.dismiss_clue(
        u.actor, cid, finding=text(f, "finding"), reason=text(f, "reason"), expected_version=v
    )


# -- remedies (issue 17, part C): reports to the authorities, dispositions, the county review ------
def _authority_report(app: Anxin, u: User, cid: str, f: dict[str, Any], v: int | None) -> Any:
    at = text(f, "reported_at")
    return app.cases.record_authority_report(
        u.actor,
        cid,
        authority=text(f, "authority"),
        unit=text(f, "unit"),
        method=text(f, "method"),
        reported_at=moment(at, "报告时间") if at else app.now(),
        receipt=text(f, "receipt"),
        note=text(f, "note"),
        expected_version=v,
    )


def _disposition(app: Anxin, u: User, cid: str, f: dict[str, Any], v: int | None) -> Any:
    level, measure = text(f, "level"), ""
    if ":" in level:  # an education-discipline measure carries its level: "heavier:school_service"
        level, measure = level.split(":", 1)
    return app.cases.decide_disposition(
        u.actor,
        cid,
        student_id=text(f, "student_id"),
        kind=text(f, "kind"),
        level=level or None,
        measure=measure or None,
        decided_by=text(f, "decided_by"),
        decided_on=day_or(text(f, "decided_on"), None, "决定日期"),
        note=text(f, "note"),
        expected_version=v,
    )


def _review_apply(app: Anxin, u: User, cid: str, f: dict[str, Any], v: int | None) -> Any:
    return app.cases.apply_for_county_review(
        u.actor,
        cid,
        party_id=text(f, "party_id"),
        county_body=text(f, "county_body"),
        grounds=text(f, "grounds"),
        applied_on=day_or(text(f, "applied_on"), None, "申请日期"),
        expected_version=v,
    )


REVIEW_PANEL_ROWS = 5


def _review_panel(app: Anxin, u: User, cid: str, f: dict[str, Any], v: int | None) -> Any:
    members = [(text(f, f"capacity_{i}"), name) for i in range(REVIEW_PANEL_ROWS) if (name := text(f, f"member_{i}"))]
    return app.cases.record_review_panel(u.actor, cid, text(f, "review_id"), members=members, expected_version=v)


def _review_outcome(app: Anxin, u: User, cid: str, f: dict[str, Any], v: int | None) -> Any:
    outcome = text(f, "outcome")
    bullying: bool | None = None
    severity: str | None = None
    horseplay = False
    if outcome == "changed":
        bullying, severity, horseplay = _verdict(f)
    return app.cases.record_county_review_outcome(
        u.actor,
        cid,
        text(f, "review_id"),
        outcome=outcome,
        reason=text(f, "reason"),
        decided_on=day_or(text(f, "decided_on"), None, "复查决定日期"),
        bullying=bullying,
        severity=severity,
        horseplay=horseplay,
        expected_version=v,
    )


REMEDY_STEPS: dict[str, tuple[Step, str]] = {
    "authority_report": (_authority_report, "已记录报告"),
    "disposition": (_disposition, "已记录处理决定"),
    "review_apply": (_review_apply, "已记录复查申请"),
    "review_panel": (_review_panel, "已记录复查小组"),
    "review_outcome": (_review_outcome, "已记录复查结果"),
}


def _remedies_context(case: BullyingCase, now: datetime) -> dict[str, Any]:
    """The words the remedies' sections show and pick from (labels for every code), and now
    (whether a report is overdue)."""
    return {
        "now": now,
        "authorities": AUTHORITIES,
        "report_methods": AUTHORITY_REPORT_METHODS,
        "report_grounds": AUTHORITY_REPORT_GROUNDS,
        "disposition_kinds": DISPOSITION_KINDS,
        "disposition_levels": DISPOSITION_LEVELS,
        "discipline_measures": DISCIPLINE_MEASURES,
        "deciders": DISPOSITION_DECIDERS,
        "review_capacities": REVIEW_CAPACITIES,
        "review_outcomes": COUNTY_REVIEW_OUTCOMES,
        "panel_rows": range(REVIEW_PANEL_ROWS),
        "bullying_parties": [p for p in case.parties if p["part"] == "bullying"],
    }


STEPS: dict[str, tuple[Step, str]] = {
    "add_party": (_add_party, "已增加当事人"),
    "remove_party": (_remove_party, "已移除当事人"),
    "safety_measure": (_safety_measure, "已记录安全措施"),
    "notify_guardian": (_notify_guardian, "已记录家长告知"),
    "statement": (_statement, "已记录陈述"),
    "evidence": (_evidence, "已记录证据"),
    "self_harm": (_self_harm, "已记录自伤迹象，心理危机干预已启动"),
    "start_investigation": (_start, "已开始调查"),
    "complete_investigation": (_complete, "调查已完成"),
    "determine": (_determine, "认定已记录，等待校长审批"),
    "approve": (_approve, "认定已批准"),
    "return": (_return, "认定已退回"),
    "mandatory_report": (_mandatory, "已记录强制报告"),
    "plan_intervention": (_plan, "已制定干预措施"),
    "intervention_progress": (_progress, "已记录干预进展"),
    "complete_intervention": (_finish, "干预已完成"),
    "appeal": (_appeal, "已记录申诉"),
    "appeal_outcome": (_appeal_outcome, "已记录复查结果"),
    "follow_up": (_follow_up, "已记录回访"),
    "close": (_close, "已结案"),
    "reopen": (_reopen, "案件已重新开启"),
    "correct_narrative": (_correct_narrative, "已更正"),
    "correct_report": (_correct_report, "已更正"),
    "correct_statement": (_correct_statement, "已更正"),
    "correct_evidence": (_correct_evidence, "已更正"),
    "correct_follow_up": (_correct_follow_up, "已更正"),
    "dismiss_clue": (_dismiss_clue, "线索已结束（查无欺凌）"),
    **REMEDY_STEPS,
}


# -- issue 17, part B: the guardians' part in the determination, ... ----------------------------
def _invite_guardian(app: Anxin, u: User, cid: str, f: dict[str, Any], v: int | None) -> Any:
    at = text(f, "invited_at")
    reached = text(f, "reached")
    if reached not in ("yes", "no"):
        raise InvalidInput(reason="须写明是否联系上监护人")
    return app.cases.invite_guardian(
        u.actor,
        cid,
        student_id=text(f, "student_id"),
        method=text(f, "method"),
        invited_at=moment(at, "通知时间") if at else None,
        reached=reached == "yes",
        note=text(f, "note"),
        expected_version=v,
    )


def _guardian_participation(app: Anxin, u: User, cid: str, f: dict[str, Any], v: int | None) -> Any:
    return app.cases.record_guardian_participation(
        u.actor,
        cid,
        student_id=text(f, "student_id"),
        participation=text(f, "participation"),
        note=text(f, "note"),
        expected_version=v,
    )


def _determination_context(app: Anxin, user: User, case: BullyingCase) -> dict[str, Any]:
    """What the part-B sections of the case page show (cases/_guardians.html, _meeting.html).
    The body's members by name only for those the gate lets read them (the principal and the
    safety lead); others (a supervisor with a stated reason) see the meetings' counts."""
    members: dict[str, dict[str, Any]] | None = None
    if app.permits(user.actor, access.COMMITTEE_READ, "committee", school_id=case.school_id):
        members = app.committee.member_names(user.actor, case.school_id)
    return {
        "guardian_methods": GUARDIAN_INVITATION_METHODS,
        "participations": GUARDIAN_PARTICIPATION,
        "guardian_missing": GUARDIAN_MISSING,
        "guardian_parties": [p for p in case.parties if p["part"] in GUARDIAN_PARTS],
        "members": members,
        "active_members": [m for m in (members or {}).values() if m["left_at"] is None],
        "capacities": CAPACITIES,
    }


def _committee_meeting(app: Anxin, u: User, cid: str, f: dict[str, Any], v: int | None) -> Any:
    return app.cases.record_committee_meeting(
        u.actor,
        cid,
        held_on=day_or(text(f, "held_on"), None, "会议日期"),
        members_present=values(f, "members_present"),
        summary=text(f, "summary"),
        decision=text(f, "decision"),
        expected_version=v,
    )


def _police_track(app: Anxin, u: User, cid: str, f: dict[str, Any], v: int | None) -> Any:
    return app.cases.open_police_track(u.actor, cid, kind=text(f, "kind"), reason=text(f, "reason"), expected_version=v)


STEPS.update(
    {
        "police_track": (_police_track, "已开启公安机关处理"),
        "invite_guardian": (_invite_guardian, "已记录通知监护人"),
        "guardian_participation": (_guardian_participation, "已记录监护人参与情况"),
        "committee_meeting": (_committee_meeting, "已记录认定会议"),
    }
)


# Steps the page no longer offers (no form to show a refusal beside): the old appeal (申诉),
# replaced by the county review. A post to one (an old page) is refused by the domain, and
# the message is shown at the top of the page.
NOT_OFFERED = frozenset({"appeal"})


@router.post("/cases/{case_id}/{action}")
def case_step(request: Request, case_id: str, action: str, user: PageUser, form: Form) -> Response:
    step = STEPS.get(action)
    if step is None:
        return error_page(request, 404, i18n.gettext("未知的操作"))
    call, done = step
    return run_form(
        request,
        lambda app: call(app, user, case_id, form, expected_version(form)),
        lambda _: redirect(f"/cases/{case_id}#{action}", request, i18n.gettext(done)),
        # The message is shown once, beside the step's form; a stale page (409), whose form may
        # be gone, shows it at the top.
        lambda r: _case_page(
            request,
            user,
            case_id,
            r.status,
            error=r.message,
            failed=action,
            error_at_step=r.status != 409 and action not in NOT_OFFERED,
        ),
        # a browser: 303 back to the case (at the step's form; at the top when the page was stale)
        again=lambda r: (
            f"/cases/{case_id}#{action}" if r.status != 409 else f"/cases/{case_id}",
            {"failed": action, "error_at_step": r.status != 409},
        ),
    )
