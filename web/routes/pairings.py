from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from anxin.service import Anxin
from domain import access
from domain.bullying import FORMS
from domain.common import InvalidInput, NotFound, PermissionDenied, Role, parse_day
from domain.pairing import DIMENSION_LABELS, DIMENSIONS
from domain.policy import RISK_LABELS, RISK_LEVELS
from domain.support import CATEGORIES
from projections.pairing_board import pairing_board, pairing_counts
from web import i18n, picker
from web.deps import App, Form, PageUser, User, get_web, reason_form, redirect, render
from web.forms import Refused, expected_version, run_form, values
from web.i18n import school_tz

router = APIRouter(include_in_schema=False)

TARGET_LABELS = {"support_file": "心理档案", "bullying_case": "欺凌报告"}
TARGET_HREF = {"support_file": "/support/", "bullying_case": "/cases/"}


# -- the board -----------------------------------------------------------------------------
def _school_staff(app: Anxin, user: User) -> list[dict[str, Any]]:
    """Staff of the school who may be paired (ids, names, classes; the application asks
    the gate for PAIRING_CREATE first)."""
    return app.accounts.pairable_staff(user.actor)  # type: ignore[no-any-return]


def _board_page(
    request: Request, user: User, status: int = 200, error: str | None = None, form: dict[str, Any] | None = None
) -> Response:
    web = get_web(request)
    app = web.app
    school = user.actor.school_id
    class_name = request.query_params.get("class") or None
    manager = user.has(Role.PRINCIPAL, Role.SAFETY_LEAD) and school is not None
    mine = pairing_board(app, user.actor) if school is not None else None
    counts = school_board = staff = None
    if manager and school is not None:
        counts = pairing_counts(app, user.actor, school)
        if user.has(Role.PRINCIPAL):  # a safety lead arranges pairings but does not read them
            school_board = pairing_board(app, user.actor, school_id=school, class_name=class_name, names=True)
        staff = _school_staff(app, user)
    shown = (mine.lines if mine else []) + (school_board.lines if school_board else [])
    return render(
        request,
        "pairings/board.html",
        status,
        numbers=app.record_numbers([line.pairing_id for line in shown]),
        mine=mine,
        counts=counts,
        school_board=school_board,
        class_name=class_name,
        staff=staff,
        manager=manager,
        form=form or {},
        error=error,
        today=app.now().date(),
        staff_name=web.staff_name,
        default_cadence=app.policy.check_in_cadence_days,
    )


@router.get("/pairings")
def board(request: Request, user: PageUser) -> Response:
    return _board_page(request, user)


@router.post("/pairings/new")
def new_pairing(request: Request, user: PageUser, form: Form) -> Response:
    def pair(app: Anxin) -> str:
        cadence_text = str(form.get("cadence_days", "")).strip()
        try:
            cadence = int(cadence_text) if cadence_text else None
        except ValueError:
            raise InvalidInput(reason="谈心频率必须为正数天") from None
        typed = str(form.get("student", "")).strip()  # the picker: name, number, pinyin or initials
        if not form.get("staff_id") or not (typed or form.get("student_id")):
            raise InvalidInput(reason=i18n.gettext("请选择教师和学生"))

        def creating() -> object:
            return app.check(user.actor, access.PAIRING_CREATE, "pairing", school_id=user.actor.school_id)

        student_id = picker.picked_student(app, user.actor, typed, creating) if typed else str(form["student_id"])
        return app.pairings.pair(
            user.actor, staff_id=str(form["staff_id"]), student_id=student_id, cadence_days=cadence
        )

    return run_form(
        request,
        pair,
        lambda pid: redirect(f"/pairings/{pid}", request, i18n.gettext("已建立结对")),
        lambda r: _board_page(request, user, r.status, r.message, form=dict(form)),
        on_page=(NotFound,),  # a teacher or student no longer there: the board says so
        again=lambda r: ("/pairings", {}),
    )


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
def pairing_page(request: Request, pairing_id: str, user: PageUser, app: App) -> Response:
    if app.gate.needs_reason(user.actor, access.PAIRING_READ, "pairing", pairing_id):
        return reason_form(request, f"/pairings/{pairing_id}/open")
    return _pairing_page(request, user, pairing_id)


@router.post("/pairings/{pairing_id}/open")
def pairing_open(request: Request, pairing_id: str, user: PageUser, form: Form, app: App) -> Response:
    """A supervisor's read of a named pairing, with the stated reason (recorded by the gate)."""
    reason = str(form.get("break_glass_reason", "")).strip()
    try:
        return _pairing_page(request, user, pairing_id, break_glass=reason)
    except PermissionDenied as e:
        if not app.gate.needs_reason(user.actor, access.PAIRING_READ, "pairing", pairing_id):
            raise
        return reason_form(request, f"/pairings/{pairing_id}/open", 400, e)


def _step(
    request: Request, user: User, pairing_id: str, error_for: str, command: Callable[[Anxin], object], done: str
) -> Response:
    """One command on the pairing: back to it with `done` flashed, or the pairing again with
    the error beside the form it belongs to (`error_for`)."""

    def refused(r: Refused) -> Response:
        return _pairing_page(request, user, pairing_id, r.status, error=r.message, error_for=error_for)

    return run_form(
        request,
        command,
        lambda _: redirect(f"/pairings/{pairing_id}", request, done),
        refused,
        again=lambda r: (f"/pairings/{pairing_id}", {"error_for": error_for}),
    )


@router.post("/pairings/{pairing_id}/check-ins")
def record_check_in(request: Request, pairing_id: str, user: PageUser, form: Form) -> Response:
    def command(app: Anxin) -> None:
        held_on = parse_day(form.get("held_on"), "谈心日期")
        risk_to_life = bool(form.get("risk_to_life"))
        concern = bool(form.get("concern")) or risk_to_life
        app.pairings.record_check_in(
            user.actor,
            pairing_id,
            held_on=held_on,
            notes={k: str(form.get(k, "")) for k in DIMENSIONS},
            concern=concern,
            concern_note=str(form.get("concern_note", "")) if concern else "",
            risk_to_life=risk_to_life,
            expected_version=expected_version(form),
        )

    done = (
        "谈心记录已保存；已启动心理危机干预，本校心理老师和校长已收到待办"
        if form.get("risk_to_life")
        else "谈心记录已保存"
    )
    return _step(request, user, pairing_id, "check-in", command, i18n.gettext(done))


@router.post("/pairings/{pairing_id}/escalate")
def escalate(request: Request, pairing_id: str, user: PageUser, form: Form) -> Response:
    check_in_id = str(form.get("check_in_id", ""))
    target = str(form.get("target", ""))

    def command(app: Anxin) -> None:
        version = expected_version(form)
        reason = str(form.get("reason", ""))
        if target == "support_file":
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
            occurred_on = parse_day(form.get("occurred_on"), "发生日期")
            app.escalations.escalate_to_bullying_report(
                user.actor,
                pairing_id,
                check_in_id,
                occurred_at=min(datetime.combine(occurred_on, time(12, 0), school_tz()), app.now()),
                place=str(form.get("place", "")),
                forms=values(form, "forms"),
                narrative=str(form.get("narrative", "")),
                reason=reason,
                expected_version=version,
            )
        else:
            raise InvalidInput(reason="只能转为心理档案或欺凌报告")

    done = i18n.gettext("担忧已上报：{target}", target=TARGET_LABELS.get(target, ""))
    return _step(request, user, pairing_id, f"escalate:{check_in_id}:{target}", command, done)


@router.post("/pairings/{pairing_id}/end")
def end(request: Request, pairing_id: str, user: PageUser, form: Form) -> Response:
    def command(app: Anxin) -> None:
        app.pairings.end_pairing(user.actor, pairing_id, str(form.get("reason", "")))

    return _step(request, user, pairing_id, "end", command, i18n.gettext("结对已结束"))
