"""Bullying cases (校园欺凌案件): reporting by any staff member, the school's case board,
and the whole case with one form per lifecycle step (anxin/commands/cases.py).

Every step posts to /cases/{id}/<action> with the version the page showed
(`expected_version`): a stale page gets 409 and nothing is written. A refused step
re-renders the case with the message and what was typed. The gate decides every
access: a class teacher's case page is the status line the application returns; a
supervisor states a reason first (break-glass) and the read carries it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from domain import access
from domain.bullying import (
    APPEAL_OUTCOMES,
    CHANNELS,
    CONTACT_METHODS,
    FORMS,
    INTERVENTION_KINDS,
    MEASURES,
    PARTS,
    SEVERITIES,
    STATUS_LABELS,
    UnknownStaff,
)
from domain.common import Conflict, DomainError, Erased, InvalidInput, Role
from projections.case_board import case_board
from web import i18n
from web.deps import User, expected_version, form_data, get_web, page_user, redirect, render

router = APIRouter(include_in_schema=False)

PARTY_ROWS = 5  # student rows on the report form (no JavaScript to add more)
REFUSED = ("permission_denied", "not_found", "erased")


# -- parsing ----------------------------------------------------------------------------------
def _text(form: dict[str, Any], key: str) -> str:
    value = form.get(key, "")
    return value.strip() if isinstance(value, str) else ""


def _list(form: dict[str, Any], key: str) -> list[str]:
    value = form.get(key)
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str) and v]
    return [value] if isinstance(value, str) and value else []


def _when(value: str, what: str) -> datetime:
    """A datetime-local field, read as school time (the policy's timezone)."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(reason=i18n.gettext("{what}格式不正确", what=i18n.gettext(what))) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=i18n.school_tz())


def _day(value: str, what: str) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidInput(reason=i18n.gettext("{what}格式不正确", what=i18n.gettext(what))) from None


_version = expected_version  # the shared reading of the page's hidden version field


def _student(app: Any, user: User, number: str) -> str:
    """A student of the reader's school by student number (the id is derived, never looked up
    by name; the application checks the student exists in the school)."""
    if not number:
        raise InvalidInput(reason="请填写学号")
    return str(app.roster.student_id_for(user.actor.school_id or "", number))


def _staff(app: Any, user: User, username: str) -> str:
    """The responsible staff member by login name (default: the person acting)."""
    if not username:
        return user.staff_id
    found = app.accounts.account(username)
    if found is None:
        raise UnknownStaff()
    return str(found[0])


def _yes(form: dict[str, Any], key: str) -> bool:
    return _text(form, key) in ("1", "yes", "on", "true")


# -- report -----------------------------------------------------------------------------------
def _report_page(request: Request, status: int = 200, **extra: Any) -> Response:
    return render(
        request, "cases/new.html", status, channels=CHANNELS, forms_=FORMS, parts=PARTS, rows=range(PARTY_ROWS), **extra
    )


@router.get("/cases/new")
def new_case(request: Request, user: User = Depends(page_user)) -> Response:
    return _report_page(request)


@router.post("/cases/new")
def report_case(request: Request, user: User = Depends(page_user), form: dict = Depends(form_data)) -> Response:
    web = get_web(request)
    try:
        parties = []
        for i in range(PARTY_ROWS):
            number = _text(form, f"student_no_{i}")
            if number:
                parties.append((_student(web.app, user, number), _text(form, f"part_{i}")))
        if not _text(form, "occurred_at"):
            raise InvalidInput(reason="请填写发生时间")
        occurred_at = _when(_text(form, "occurred_at"), "发生时间")
        with web.writing() as app:
            case_id = app.cases.report_bullying(
                user.actor,
                school_id=user.actor.school_id or "",
                channel=_text(form, "channel") or "teacher",
                occurred_at=occurred_at,
                place=_text(form, "place"),
                forms=_list(form, "forms"),
                parties=parties,
                narrative=_text(form, "narrative"),
                reporter_note=_text(form, "reporter_note"),
            )
    except DomainError as e:
        if e.code == "permission_denied":
            raise
        return _report_page(request, 400, error=i18n.error_text(e))
    # Where to go next: the case itself if the gate would let the reporter read it (the page
    # asks the gate again and records it), else back to their work queue.
    if access.decide(user.actor, access.CASE_READ, web.app.resource("case", case_id)).allowed:
        return redirect(f"/cases/{case_id}", request, i18n.gettext("已报告"))
    return redirect("/", request, i18n.gettext("已报告"))


# -- the board --------------------------------------------------------------------------------
@router.get("/cases")
def cases_board(request: Request, user: User = Depends(page_user)) -> Response:
    app = get_web(request).app
    lines = case_board(app, user.actor, user.actor.school_id or "")
    return render(request, "cases/board.html", lines=lines, forms_=FORMS, full=any(line.full for line in lines))


# -- one case ---------------------------------------------------------------------------------
def _case_context(app: Any, web: Any, case: Any) -> dict[str, Any]:
    """Names for display, resolved inside an already-authorised read (已删除 once erased)."""
    ids = {p["student_id"] for p in case.parties} | {p["student_id"] for p in case.removed_parties}
    for st in case.statements.values():
        if st["from_student_id"]:
            ids.add(st["from_student_id"])
    for m in case.measures.values():
        ids.update(m["student_ids"])
    ids.update(i["student_id"] for i in case.interventions.values())
    ids.update(a["party_id"] for a in case.appeals.values())
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
        "kinds": INTERVENTION_KINDS,
        "outcomes": APPEAL_OUTCOMES,
        "today": app.now().date(),
        "interventions": sorted(case.interventions.values(), key=lambda i: i["at"]),
        "appeal_parties": [p for p in case.parties if p["part"] != "witness"],
    }


def _case_page(
    request: Request, user: User, case_id: str, status: int = 200, *, break_glass: str | None = None, **extra: Any
) -> Response:
    web = get_web(request)
    try:
        case, line = web.app.cases.read_case(user.actor, case_id, break_glass)
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
        **_case_context(web.app, web, case),
        **extra,
    )


def _supervisor_only(user: User) -> bool:
    """A district person without a school: the named record needs a stated reason first."""
    return user.actor.school_id is None and user.has(Role.SUPERVISOR)


@router.get("/cases/{case_id}")
def case_page(request: Request, case_id: str, user: User = Depends(page_user)) -> Response:
    if _supervisor_only(user):
        return render(request, "break_glass.html", action=f"/cases/{case_id}/open")
    return _case_page(request, user, case_id)


@router.post("/cases/{case_id}/open")
def case_open(
    request: Request, case_id: str, user: User = Depends(page_user), form: dict = Depends(form_data)
) -> Response:
    reason = _text(form, "break_glass_reason")
    try:
        return _case_page(request, user, case_id, break_glass=reason)
    except DomainError as e:
        if e.code != "permission_denied" or len(reason) >= access.BREAK_GLASS_MIN_REASON:
            raise
        return render(request, "break_glass.html", 400, action=f"/cases/{case_id}/open", error=i18n.error_text(e))


# -- the lifecycle steps: each one application call ----------------------------------------------
Step = Callable[[Any, User, str, dict[str, Any], int | None], Any]


def _add_party(app: Any, u: User, cid: str, f: dict[str, Any], v: int | None) -> Any:
    return app.cases.add_party(
        u.actor,
        cid,
        student_id=_student(app, u, _text(f, "student_no")),
        part=_text(f, "part"),
        reason=_text(f, "reason"),
        expected_version=v,
    )


def _remove_party(app: Any, u: User, cid: str, f: dict[str, Any], v: int | None) -> Any:
    return app.cases.remove_party(
        u.actor, cid, student_id=_text(f, "student_id"), reason=_text(f, "reason"), expected_version=v
    )


def _safety_measure(app: Any, u: User, cid: str, f: dict[str, Any], v: int | None) -> Any:
    return app.cases.take_safety_measure(
        u.actor,
        cid,
        kind=_text(f, "kind"),
        student_ids=_list(f, "student_ids"),
        note=_text(f, "note"),
        expected_version=v,
    )


def _notify_guardian(app: Any, u: User, cid: str, f: dict[str, Any], v: int | None) -> Any:
    at = _text(f, "notified_at")
    return app.cases.notify_guardian(
        u.actor,
        cid,
        student_id=_text(f, "student_id"),
        method=_text(f, "method"),
        notified_at=_when(at, "告知时间") if at else app.now(),
        note=_text(f, "note"),
        expected_version=v,
    )


def _statement(app: Any, u: User, cid: str, f: dict[str, Any], v: int | None) -> Any:
    return app.cases.record_statement(
        u.actor,
        cid,
        text=_text(f, "text"),
        from_student_id=_text(f, "from_student_id") or None,
        from_person=_text(f, "from_person") or None,
        taken_on=_day(_text(f, "taken_on"), "陈述日期"),
        expected_version=v,
    )


def _evidence(app: Any, u: User, cid: str, f: dict[str, Any], v: int | None) -> Any:
    return app.cases.add_evidence(
        u.actor, cid, description=_text(f, "description"), reference=_text(f, "reference"), expected_version=v
    )


def _start(app: Any, u: User, cid: str, f: dict[str, Any], v: int | None) -> Any:
    handler = _text(f, "handler")
    return app.cases.start_investigation(
        u.actor, cid, handler_id=_staff(app, u, handler) if handler else None, expected_version=v
    )


def _complete(app: Any, u: User, cid: str, f: dict[str, Any], v: int | None) -> Any:
    return app.cases.complete_investigation(u.actor, cid, findings=_text(f, "findings"), expected_version=v)


def _verdict(f: dict[str, Any]) -> tuple[bool, str | None, bool]:
    choice = _text(f, "bullying")
    if choice not in ("yes", "no"):
        raise InvalidInput(reason="须写明是否构成欺凌")
    bullying = choice == "yes"
    return bullying, (_text(f, "severity") or None) if bullying else None, (not bullying and _yes(f, "horseplay"))


def _determine(app: Any, u: User, cid: str, f: dict[str, Any], v: int | None) -> Any:
    bullying, severity, horseplay = _verdict(f)
    return app.cases.determine(
        u.actor,
        cid,
        bullying=bullying,
        severity=severity,
        horseplay=horseplay,
        reason=_text(f, "reason"),
        expected_version=v,
    )


def _approve(app: Any, u: User, cid: str, f: dict[str, Any], v: int | None) -> Any:
    return app.cases.approve_determination(u.actor, cid, reason=_text(f, "reason"), expected_version=v)


def _return(app: Any, u: User, cid: str, f: dict[str, Any], v: int | None) -> Any:
    return app.cases.return_determination(u.actor, cid, reason=_text(f, "reason"), expected_version=v)


def _mandatory(app: Any, u: User, cid: str, f: dict[str, Any], v: int | None) -> Any:
    at = _text(f, "reported_at")
    return app.cases.record_mandatory_report(
        u.actor,
        cid,
        agency=_text(f, "agency"),
        reported_at=_when(at, "报告时间") if at else app.now(),
        reference=_text(f, "reference"),
        note=_text(f, "note"),
        expected_version=v,
    )


def _plan(app: Any, u: User, cid: str, f: dict[str, Any], v: int | None) -> Any:
    return app.cases.plan_intervention(
        u.actor,
        cid,
        student_id=_text(f, "student_id"),
        kind=_text(f, "kind"),
        plan=_text(f, "plan"),
        responsible_staff_id=_staff(app, u, _text(f, "responsible")),
        expected_version=v,
    )


def _progress(app: Any, u: User, cid: str, f: dict[str, Any], v: int | None) -> Any:
    return app.cases.record_intervention_progress(
        u.actor, cid, _text(f, "intervention_id"), note=_text(f, "note"), expected_version=v
    )


def _finish(app: Any, u: User, cid: str, f: dict[str, Any], v: int | None) -> Any:
    return app.cases.complete_intervention(
        u.actor, cid, _text(f, "intervention_id"), outcome=_text(f, "outcome"), expected_version=v
    )


def _appeal(app: Any, u: User, cid: str, f: dict[str, Any], v: int | None) -> Any:
    return app.cases.lodge_appeal(
        u.actor,
        cid,
        party_id=_text(f, "party_id"),
        grounds=_text(f, "grounds"),
        lodged_on=_day(_text(f, "lodged_on"), "申诉日期"),
        expected_version=v,
    )


def _appeal_outcome(app: Any, u: User, cid: str, f: dict[str, Any], v: int | None) -> Any:
    outcome = _text(f, "outcome")
    bullying: bool | None = None
    severity: str | None = None
    horseplay = False
    if outcome == "changed":
        bullying, severity, horseplay = _verdict(f)
    return app.cases.record_appeal_outcome(
        u.actor,
        cid,
        _text(f, "appeal_id"),
        outcome=outcome,
        reason=_text(f, "reason"),
        decided_on=_day(_text(f, "decided_on"), "复查日期"),
        bullying=bullying,
        severity=severity,
        horseplay=horseplay,
        expected_version=v,
    )


def _follow_up(app: Any, u: User, cid: str, f: dict[str, Any], v: int | None) -> Any:
    return app.cases.record_follow_up(
        u.actor, cid, notes=_text(f, "notes"), held_on=_day(_text(f, "held_on"), "回访日期"), expected_version=v
    )


def _close(app: Any, u: User, cid: str, f: dict[str, Any], v: int | None) -> Any:
    return app.cases.close_case(u.actor, cid, reason=_text(f, "reason"), expected_version=v)


def _reopen(app: Any, u: User, cid: str, f: dict[str, Any], v: int | None) -> Any:
    return app.cases.reopen_case(u.actor, cid, reason=_text(f, "reason"), expected_version=v)


def _correct_narrative(app: Any, u: User, cid: str, f: dict[str, Any], v: int | None) -> Any:
    return app.cases.correct_narrative(
        u.actor, cid, narrative=_text(f, "narrative"), reason=_text(f, "reason"), expected_version=v
    )


def _correct_report(app: Any, u: User, cid: str, f: dict[str, Any], v: int | None) -> Any:
    changes: dict[str, Any] = {}
    if _text(f, "place"):
        changes["place"] = _text(f, "place")
    if _text(f, "channel"):
        changes["channel"] = _text(f, "channel")
    if _text(f, "occurred_at"):
        changes["occurred_at"] = _when(_text(f, "occurred_at"), "发生时间")
    if _list(f, "forms"):
        changes["forms"] = _list(f, "forms")
    return app.cases.correct_report(u.actor, cid, reason=_text(f, "reason"), expected_version=v, **changes)


def _correct_statement(app: Any, u: User, cid: str, f: dict[str, Any], v: int | None) -> Any:
    return app.cases.correct_statement(
        u.actor, cid, _text(f, "statement_id"), text=_text(f, "text"), reason=_text(f, "reason"), expected_version=v
    )


def _correct_evidence(app: Any, u: User, cid: str, f: dict[str, Any], v: int | None) -> Any:
    return app.cases.correct_evidence(
        u.actor,
        cid,
        _text(f, "evidence_id"),
        reason=_text(f, "reason"),
        description=_text(f, "description") or None,
        reference=_text(f, "reference") or None,
        expected_version=v,
    )


def _correct_follow_up(app: Any, u: User, cid: str, f: dict[str, Any], v: int | None) -> Any:
    return app.cases.correct_follow_up(
        u.actor, cid, _text(f, "follow_up_id"), notes=_text(f, "notes"), reason=_text(f, "reason"), expected_version=v
    )


STEPS: dict[str, tuple[Step, str]] = {
    "add_party": (_add_party, "已增加当事人"),
    "remove_party": (_remove_party, "已移除当事人"),
    "safety_measure": (_safety_measure, "已记录安全措施"),
    "notify_guardian": (_notify_guardian, "已记录家长告知"),
    "statement": (_statement, "已记录陈述"),
    "evidence": (_evidence, "已记录证据"),
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
}


@router.post("/cases/{case_id}/{action}")
def case_step(
    request: Request, case_id: str, action: str, user: User = Depends(page_user), form: dict = Depends(form_data)
) -> Response:
    step = STEPS.get(action)
    if step is None:
        return render(request, "error.html", 404, title=i18n.gettext("页面不存在"), message=i18n.gettext("未知的操作"))
    call, done = step
    web = get_web(request)
    try:
        expected = _version(form)
        with web.writing() as app:
            call(app, user, case_id, form, expected)
    except DomainError as e:
        if e.code in REFUSED:
            raise
        status = 409 if isinstance(e, Conflict) else 400
        return _case_page(request, user, case_id, status, error=i18n.error_text(e), failed=action)
    return redirect(f"/cases/{case_id}#{action}", request, i18n.gettext(done))
