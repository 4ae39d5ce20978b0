"""一岗双带: a class teacher's pairings with students (the board: last check-in, next
due, overdue first, open concerns), one pairing with its check-ins (谈心谈话 on the four
dimensions), recording a check-in, escalating a concern to a support file or a
bullying report, ending a pairing. A principal or safety lead sees the school's
pairings per class and pairs staff with students.

Every read and command goes through the application's gate; the routes only parse
forms and render."""

from __future__ import annotations

from datetime import date, datetime, time
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from domain import access
from domain.bullying import FORMS
from domain.common import Conflict, DomainError, InvalidInput, PermissionDenied, Role
from domain.pairing import DIMENSION_LABELS, DIMENSIONS
from domain.policy import RISK_LABELS, RISK_LEVELS
from domain.support import CATEGORIES
from projections.pairing_board import pairing_board, pairing_counts
from web import i18n
from web.deps import User, expected_version, form_data, get_web, page_user, redirect, render
from web.i18n import school_tz

router = APIRouter(include_in_schema=False)

# Errors that are not about what was typed: the error page (403/404/410) is the answer.
PASS_THROUGH = ("permission_denied", "not_found", "erased")
TARGET_LABELS = {"support_file": "心理档案", "bullying_case": "欺凌报告"}
TARGET_HREF = {"support_file": "/support/", "bullying_case": "/cases/"}


# -- the board -----------------------------------------------------------------------------
def _school_staff(app: Any, user: User) -> list[dict[str, Any]]:
    """Staff of the school who may be paired (ids, names, classes; the application asks
    the gate for PAIRING_CREATE first)."""
    return app.accounts.pairable_staff(user.actor)  # type: ignore[no-any-return]


def _board_page(request: Request, user: User, status: int = 200, error: str | None = None) -> Response:
    app = get_web(request).app
    school = user.actor.school_id
    class_name = request.query_params.get("class") or None
    manager = user.has(Role.PRINCIPAL, Role.SAFETY_LEAD) and school is not None
    mine = pairing_board(app, user.actor) if school is not None else None
    counts = school_board = staff = students = None
    if manager and school is not None:
        counts = pairing_counts(app, user.actor, school)
        if user.has(Role.PRINCIPAL):  # a safety lead arranges pairings but does not read them
            school_board = pairing_board(app, user.actor, school_id=school, class_name=class_name, names=True)
        staff = _school_staff(app, user)
        students = [s for s in app.roster.list_students(user.actor, school, class_name) if not s.erased]
    return render(
        request,
        "pairings/board.html",
        status,
        mine=mine,
        counts=counts,
        school_board=school_board,
        class_name=class_name,
        staff=staff,
        students=students,
        manager=manager,
        error=error,
        today=app.now().date(),
        staff_name=get_web(request).staff_name,
        default_cadence=app.policy.check_in_cadence_days,
    )


@router.get("/pairings")
def board(request: Request, user: User = Depends(page_user)) -> Response:
    return _board_page(request, user)


@router.post("/pairings/new")
def new_pairing(request: Request, user: User = Depends(page_user), form: dict = Depends(form_data)) -> Response:
    try:
        cadence_text = str(form.get("cadence_days", "")).strip()
        try:
            cadence = int(cadence_text) if cadence_text else None
        except ValueError:
            raise InvalidInput(reason="谈心频率必须为正数天") from None
        if not form.get("staff_id") or not form.get("student_id"):
            raise InvalidInput(reason=i18n.gettext("请选择教师和学生"))
        with get_web(request).writing() as app:
            pid = app.pairings.pair(
                user.actor, staff_id=str(form["staff_id"]), student_id=str(form["student_id"]), cadence_days=cadence
            )
    except DomainError as e:
        if e.code in ("permission_denied", "erased"):
            raise
        return _board_page(request, user, 400, i18n.error_text(e))
    return redirect(f"/pairings/{pid}", request, i18n.gettext("已建立结对"))


# -- one pairing ------------------------------------------------------------------------------
def _pairing_page(
    request: Request,
    user: User,
    pairing_id: str,
    status: int = 200,
    *,
    error: str | None = None,
    error_for: str | None = None,
    break_glass: str | None = None,
) -> Response:
    """The pairing with its check-ins, newest first. `error_for` says which form the
    error belongs to (check-in, escalate:<check_in_id>, end), so it shows beside it."""
    web = get_web(request)
    app = web.app
    pairing = app.pairings.get_pairing(user.actor, pairing_id, break_glass=break_glass)
    student = app.student_ref(pairing.student_id)
    check_ins = sorted(pairing.check_ins.values(), key=lambda c: (c["held_on"], c["at"]), reverse=True)
    today = app.now().date()
    return render(
        request,
        "pairings/pairing.html",
        status,
        pairing=pairing,
        student=student,
        check_ins=check_ins,
        teacher=web.staff_name(pairing.staff_id),
        today=today,
        overdue=pairing.is_overdue(today),
        dimensions=DIMENSIONS,
        dimension_labels=DIMENSION_LABELS,
        target_labels=TARGET_LABELS,
        target_href=TARGET_HREF,
        categories=CATEGORIES,
        risk_levels=RISK_LEVELS,
        risk_labels=RISK_LABELS,
        forms_labels=FORMS,
        error=error,
        error_for=error_for,
        read_only=break_glass is not None,
    )


@router.get("/pairings/{pairing_id}")
def pairing_page(request: Request, pairing_id: str, user: User = Depends(page_user)) -> Response:
    if get_web(request).app.gate.needs_reason(user.actor, access.PAIRING_READ, "pairing", pairing_id):
        return render(request, "break_glass.html", action=f"/pairings/{pairing_id}/open")
    return _pairing_page(request, user, pairing_id)


@router.post("/pairings/{pairing_id}/open")
def pairing_open(
    request: Request, pairing_id: str, user: User = Depends(page_user), form: dict = Depends(form_data)
) -> Response:
    """A supervisor's read of a named pairing, with the stated reason (recorded by the gate)."""
    reason = str(form.get("break_glass_reason", "")).strip()
    try:
        return _pairing_page(request, user, pairing_id, break_glass=reason)
    except PermissionDenied as e:
        if not get_web(request).app.gate.needs_reason(user.actor, access.PAIRING_READ, "pairing", pairing_id):
            raise
        return render(request, "break_glass.html", 400, action=f"/pairings/{pairing_id}/open", error=i18n.error_text(e))


_version = expected_version  # the shared reading of the page's hidden version field


def _date(value: Any, what: str) -> date:
    try:
        return date.fromisoformat(str(value or "").strip())
    except ValueError:
        raise InvalidInput(reason=i18n.gettext("{what}格式应为 YYYY-MM-DD", what=i18n.gettext(what))) from None


def _failed(request: Request, user: User, pairing_id: str, e: DomainError, error_for: str) -> Response:
    if e.code in PASS_THROUGH:
        raise e
    status = 409 if isinstance(e, Conflict) else 400
    return _pairing_page(request, user, pairing_id, status, error=i18n.error_text(e), error_for=error_for)


@router.post("/pairings/{pairing_id}/check-ins")
def record_check_in(
    request: Request, pairing_id: str, user: User = Depends(page_user), form: dict = Depends(form_data)
) -> Response:
    try:
        held_on = _date(form.get("held_on"), "谈心日期")
        notes = {k: str(form.get(k, "")) for k in DIMENSIONS}
        concern = bool(form.get("concern"))
        version = _version(form)
        with get_web(request).writing() as app:
            app.pairings.record_check_in(
                user.actor,
                pairing_id,
                held_on=held_on,
                notes=notes,
                concern=concern,
                concern_note=str(form.get("concern_note", "")) if concern else "",
                expected_version=version,
            )
    except DomainError as e:
        return _failed(request, user, pairing_id, e, "check-in")
    return redirect(f"/pairings/{pairing_id}", request, i18n.gettext("谈心记录已保存"))


@router.post("/pairings/{pairing_id}/escalate")
def escalate(
    request: Request, pairing_id: str, user: User = Depends(page_user), form: dict = Depends(form_data)
) -> Response:
    check_in_id = str(form.get("check_in_id", ""))
    target = str(form.get("target", ""))
    try:
        version = _version(form)
        reason = str(form.get("reason", ""))
        if target == "support_file":
            with get_web(request).writing() as app:
                app.escalations.escalate_to_support_file(
                    user.actor,
                    pairing_id,
                    check_in_id,
                    category=str(form.get("category", "")),
                    risk_level=str(form.get("risk_level", "")),
                    reason=reason,
                    expected_version=version,
                )
        elif target == "bullying_case":
            occurred_on = _date(form.get("occurred_on"), "发生日期")
            occurred_at = datetime.combine(occurred_on, time(12, 0), school_tz())
            forms = form.get("forms") or []
            forms = [forms] if isinstance(forms, str) else forms
            with get_web(request).writing() as app:
                occurred_at = min(occurred_at, app.now())
                app.escalations.escalate_to_bullying_report(
                    user.actor,
                    pairing_id,
                    check_in_id,
                    occurred_at=occurred_at,
                    place=str(form.get("place", "")),
                    forms=forms,
                    narrative=str(form.get("narrative", "")),
                    reason=reason,
                    expected_version=version,
                )
        else:
            raise InvalidInput(reason="只能转为心理档案或欺凌报告")
    except DomainError as e:
        return _failed(request, user, pairing_id, e, f"escalate:{check_in_id}:{target}")
    return redirect(
        f"/pairings/{pairing_id}", request, i18n.gettext("担忧已上报：{target}", target=TARGET_LABELS[target])
    )


@router.post("/pairings/{pairing_id}/end")
def end(
    request: Request, pairing_id: str, user: User = Depends(page_user), form: dict = Depends(form_data)
) -> Response:
    try:
        with get_web(request).writing() as app:
            app.pairings.end_pairing(user.actor, pairing_id, str(form.get("reason", "")))
    except DomainError as e:
        return _failed(request, user, pairing_id, e, "end")
    return redirect(f"/pairings/{pairing_id}", request, i18n.gettext("结对已结束"))
