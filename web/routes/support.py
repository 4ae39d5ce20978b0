"""The counselor's pages for psychological-support files (心理档案 · 一人一策): the
caseload and the school's register, opening a file, the whole file with a form for each
step of the work, and a supervisor's reasoned (break-glass) reading of one file.

Every read and every command goes through the application's gate (FILE_LIST,
FILE_OPEN, FILE_READ, FILE_WRITE); the routes only parse forms and render."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from anxin.core import ERASED_LABEL
from domain import access
from domain.common import Actor, Conflict, DomainError, Erased, InvalidInput, PermissionDenied
from domain.policy import RISK_LABELS, RISK_LEVELS
from domain.support import CATEGORIES, CONTACT_METHODS, ORIGINS, REVIEW_OUTCOMES
from projections.support_register import register, student_refs
from web import i18n
from web.deps import (
    User,
    expected_version,
    form_data,
    form_day,
    get_web,
    page_user,
    redirect,
    render,
)

router = APIRouter(include_in_schema=False)

FAILS_PAGE = ("permission_denied", "not_found", "erased")  # shown by the app's error page

# The correction form of each kind of entry: (field, label, input), the fields the
# domain lets a correction change (CORRECTABLE), labelled as in the form that recorded it.
CORRECTION_FIELDS: dict[str, list[tuple[str, str, str]]] = {
    "session": [
        ("held_on", "辅导日期", "date"),
        ("duration_minutes", "时长（分钟，可选）", "number"),
        ("summary", "辅导记录", "textarea"),
        ("next_steps", "下一步（可选）", "textarea"),
    ],
    "guardian_contact": [
        ("contacted_on", "联系日期", "date"),
        ("guardian", "联系的监护人", "text"),
        ("method", "联系方式", "method"),
        ("summary", "联系内容", "textarea"),
    ],
    "referral": [("referred_on", "转介日期", "date"), ("to", "转介机构", "text"), ("reason", "转介原因", "textarea")],
    "crisis": [
        ("occurred_on", "发生日期", "date"),
        ("what_happened", "事件经过", "textarea"),
        ("actions_taken", "干预措施", "textarea"),
    ],
    "review": [("notes", "复评意见", "textarea")],
}
CORRECTION_INPUTS = {name: kind for fields in CORRECTION_FIELDS.values() for name, _label, kind in fields}
# What the pages need of the domain's vocabularies (labels are translated in templates).
VOCAB = {
    "risk_levels": RISK_LEVELS,
    "risk_labels": RISK_LABELS,
    "categories": CATEGORIES,
    "contact_methods": CONTACT_METHODS,
    "origins": ORIGINS,
    "outcomes": REVIEW_OUTCOMES,
    "correction_fields": CORRECTION_FIELDS,
}


def _counselors(app: Any, user: User) -> list[tuple[str, str]]:
    """Who may be the one-to-one responsible staff of a file (the person's own school's
    active counselors and principal): ids and names, for the pick lists. No case content;
    the rule for this read is the application's (`Accounts.responsible_candidates`)."""
    return app.accounts.responsible_candidates(user.actor)  # type: ignore[no-any-return]


_day = form_day  # the shared reading of a form's date field


_version = expected_version  # the shared reading of the page's hidden version field


def _lines(text: Any) -> list[str]:
    return [line.strip() for line in str(text or "").splitlines() if line.strip()]


def _measures(text: Any) -> list[dict[str, str]]:
    """One measure per line: 措施内容 | 负责人 (a full-width ｜ works too)."""
    out = []
    for line in _lines(text):
        body, sep, by = line.replace("｜", "|").rpartition("|")
        out.append({"text": body.strip(), "by": by.strip()} if sep else {"text": line, "by": ""})
    return out


# -- the caseload and the register ------------------------------------------------------------------
@router.get("/support")
def support_home(request: Request, user: User = Depends(page_user)) -> Response:
    web = get_web(request)
    app = web.app
    risk = request.query_params.get("risk") or ""
    if risk and risk not in RISK_LEVELS:
        risk = ""
    mine = app.support.my_support_files(user.actor)
    lines = None
    register_error = None
    try:
        lines = register(app, user.actor, user.actor.school_id or "")
    except PermissionDenied as e:  # the gate refused the register: the page says so
        register_error = i18n.error_text(e)
    if lines is not None and risk:
        lines = [line for line in lines if line.risk_level == risk]
    ids = sorted({x.student_id for x in [*mine, *(lines or [])] if x.student_id})
    refs = {r.id: r for r in student_refs(app, ids)}
    # Refused the register (the gate recorded it): the page still shows the person's own
    # caseload, with the refusal, as a 403.
    return render(
        request,
        "support/index.html",
        403 if register_error else 200,
        mine=mine,
        lines=lines,
        register_error=register_error,
        refs=refs,
        risk=risk,
        staff_name=web.staff_name,
        today=app.now().date(),
        **VOCAB,
    )


# -- opening a file ---------------------------------------------------------------------------------
def _new_page(request: Request, user: User, status: int = 200, **extra: Any) -> Response:
    app = get_web(request).app
    return render(request, "support/new.html", status, counselors=_counselors(app, user), **VOCAB, **extra)


@router.get("/support/new")
def new_file(request: Request, user: User = Depends(page_user)) -> Response:
    app = get_web(request).app
    app.check(user.actor, access.FILE_OPEN, "file", school_id=user.actor.school_id)
    student = None
    form: dict[str, Any] = {
        "origin": request.query_params.get("origin") or "judgement",
        "responsible_id": user.staff_id,
    }
    student_id = request.query_params.get("student")
    if student_id:
        student = app.roster.get_student(user.actor, student_id)  # the gate: STUDENT_READ
        form.update(student_id=student_id, student_no=student.student_no)
    return _new_page(request, user, student=student, form=form)


@router.post("/support/new")
def open_file(request: Request, user: User = Depends(page_user), form: dict = Depends(form_data)) -> Response:
    web = get_web(request)
    try:
        student_no = str(form.get("student_no", "")).strip()
        student_id = str(form.get("student_id", "")).strip()
        if student_no:
            student_id = str(web.app.roster.student_id_for(user.actor.school_id or "", student_no))
        if not student_id:
            raise InvalidInput(reason="请填写学号")
        origin = str(form.get("origin") or "judgement")
        source_ref = str(form.get("source_id", "")).strip()
        with web.writing() as app:
            file_id = app.support.open_support_file(
                user.actor,
                student_id,
                category=str(form.get("category", "")),
                risk_level=str(form.get("risk_level", "")),
                reason=str(form.get("reason", "")),
                responsible_id=str(form.get("responsible_id") or "") or None,
                origin=origin,
                source={"kind": origin, "id": source_ref} if source_ref else None,
            )
    except DomainError as e:
        if e.code == "not_found":
            return _new_page(
                request,
                user,
                400,
                student=None,
                error=i18n.gettext("找不到该学号的学生：{no}", no=form.get("student_no", "")),
            )
        if e.code == "permission_denied":
            raise
        return _new_page(request, user, 400, student=None, error=i18n.error_text(e))
    return redirect(f"/support/{file_id}", request, i18n.gettext("已建立心理档案"))


# -- the whole file ---------------------------------------------------------------------------------
def _file_page(
    request: Request, user: User, file_id: str, status: int = 200, *, break_glass: str | None = None, **extra: Any
) -> Response:
    web = get_web(request)
    app = web.app
    try:
        f = app.support.get_support_file(user.actor, file_id, break_glass=break_glass)
    except Erased:
        return render(request, "support/erased.html", 410)
    student = app.student_ref(f.student_id)  # a name for an already-authorised read
    return render(
        request,
        "support/file.html",
        status,
        f=f,
        student=student,
        staff_name=web.staff_name,
        counselors=[] if break_glass else _counselors(app, user),
        readonly=bool(break_glass),
        today=app.now().date(),
        erased_label=ERASED_LABEL,
        **VOCAB,
        **extra,
    )


def _needs_reason(app: Any, actor: Actor, file_id: str) -> bool:
    """Whether the gate would show this file only with a stated reason (asked without
    recording, so the reason form comes before any read)."""
    return bool(app.gate.needs_reason(actor, access.FILE_READ, "file", file_id))


@router.get("/support/{file_id}")
def support_file(request: Request, file_id: str, user: User = Depends(page_user)) -> Response:
    if _needs_reason(get_web(request).app, user.actor, file_id):
        return render(request, "break_glass.html", action=f"/support/{file_id}/open")
    return _file_page(request, user, file_id)


@router.post("/support/{file_id}/open")
def support_file_break_glass(
    request: Request, file_id: str, user: User = Depends(page_user), form: dict = Depends(form_data)
) -> Response:
    reason = str(form.get("break_glass_reason", "")).strip()
    try:
        with get_web(request).writing():  # the read records the reason in the audit trail
            return _file_page(request, user, file_id, break_glass=reason or None)
    except PermissionDenied as e:
        return render(request, "break_glass.html", 403, action=f"/support/{file_id}/open", error=i18n.error_text(e))


def _command(
    request: Request,
    user: User,
    file_id: str,
    action: str,
    form: dict[str, Any],
    call: Callable[[Any, Actor, int | None, date], Any],
    done: str,
) -> Response:
    """Run one command on a file; a stale page gives 409, a refused input the same page
    with the message and what was typed (the action's form is opened). `done` is the
    (translated) message flashed on success."""
    web = get_web(request)
    try:
        expected = _version(form)
        with web.writing() as app:
            call(app, user.actor, expected, app.now().date())
    except Conflict as e:
        return _file_page(request, user, file_id, 409, active=action, error=i18n.error_text(e))
    except DomainError as e:
        if e.code in FAILS_PAGE:
            raise
        return _file_page(request, user, file_id, 400, active=action, error=i18n.error_text(e))
    return redirect(f"/support/{file_id}", request, done)


@router.post("/support/{file_id}/risk")
def change_risk(
    request: Request, file_id: str, user: User = Depends(page_user), form: dict = Depends(form_data)
) -> Response:
    to_level = str(form.get("to_level", ""))
    from_level = str(form.get("from_level", ""))
    down = (
        to_level in RISK_LEVELS
        and from_level in RISK_LEVELS
        and RISK_LEVELS.index(to_level) < RISK_LEVELS.index(from_level)
    )

    def call(app: Any, actor: Actor, v: int | None, today: date) -> None:
        command = app.support.lower_risk_level if down else app.support.raise_risk_level
        command(actor, file_id, to_level, str(form.get("reason", "")), expected_version=v)

    return _command(request, user, file_id, "risk", form, call, i18n.gettext("风险等级已调整"))


@router.post("/support/{file_id}/category")
def change_category(
    request: Request, file_id: str, user: User = Depends(page_user), form: dict = Depends(form_data)
) -> Response:
    def call(app: Any, actor: Actor, v: int | None, today: date) -> None:
        app.support.change_file_category(
            actor, file_id, str(form.get("category", "")), str(form.get("reason", "")), expected_version=v
        )

    return _command(request, user, file_id, "category", form, call, i18n.gettext("档案类别已调整"))


@router.post("/support/{file_id}/plan")
def plan(request: Request, file_id: str, user: User = Depends(page_user), form: dict = Depends(form_data)) -> Response:
    def call(app: Any, actor: Actor, v: int | None, today: date) -> None:
        goals, measures = _lines(form.get("goals")), _measures(form.get("measures"))
        if form.get("mode") == "revise":
            app.support.revise_plan(
                actor, file_id, goals=goals, measures=measures, reason=str(form.get("reason", "")), expected_version=v
            )
        else:
            app.support.draw_up_plan(actor, file_id, goals=goals, measures=measures, expected_version=v)

    return _command(request, user, file_id, "plan", form, call, i18n.gettext("帮扶方案已保存"))


@router.post("/support/{file_id}/session")
def session(
    request: Request, file_id: str, user: User = Depends(page_user), form: dict = Depends(form_data)
) -> Response:
    def call(app: Any, actor: Actor, v: int | None, today: date) -> None:
        minutes = str(form.get("duration_minutes", "")).strip()
        if minutes and not minutes.isdigit():
            raise InvalidInput(reason="辅导时长应在 1-600 分钟之间")
        app.support.record_session(
            actor,
            file_id,
            held_on=_day(form.get("held_on"), today),
            summary=str(form.get("summary", "")),
            duration_minutes=int(minutes) if minutes else None,
            next_steps=str(form.get("next_steps", "")),
            expected_version=v,
        )

    return _command(request, user, file_id, "session", form, call, i18n.gettext("已记录辅导"))


@router.post("/support/{file_id}/guardian-contact")
def guardian_contact(
    request: Request, file_id: str, user: User = Depends(page_user), form: dict = Depends(form_data)
) -> Response:
    def call(app: Any, actor: Actor, v: int | None, today: date) -> None:
        app.support.record_guardian_contact(
            actor,
            file_id,
            contacted_on=_day(form.get("contacted_on"), today),
            guardian=str(form.get("guardian", "")),
            method=str(form.get("method", "")),
            summary=str(form.get("summary", "")),
            expected_version=v,
        )

    return _command(request, user, file_id, "guardian-contact", form, call, i18n.gettext("已记录家校联系"))


@router.post("/support/{file_id}/referral")
def referral(
    request: Request, file_id: str, user: User = Depends(page_user), form: dict = Depends(form_data)
) -> Response:
    def call(app: Any, actor: Actor, v: int | None, today: date) -> None:
        app.support.record_referral(
            actor,
            file_id,
            referred_on=_day(form.get("referred_on"), today),
            to=str(form.get("to", "")),
            reason=str(form.get("reason", "")),
            expected_version=v,
        )

    return _command(request, user, file_id, "referral", form, call, i18n.gettext("已记录转介"))


@router.post("/support/{file_id}/crisis")
def crisis(
    request: Request, file_id: str, user: User = Depends(page_user), form: dict = Depends(form_data)
) -> Response:
    def call(app: Any, actor: Actor, v: int | None, today: date) -> None:
        app.support.record_crisis_intervention(
            actor,
            file_id,
            occurred_on=_day(form.get("occurred_on"), today),
            what_happened=str(form.get("what_happened", "")),
            actions_taken=str(form.get("actions_taken", "")),
            expected_version=v,
        )

    return _command(request, user, file_id, "crisis", form, call, i18n.gettext("已记录危机干预"))


@router.post("/support/{file_id}/review")
def review(
    request: Request, file_id: str, user: User = Depends(page_user), form: dict = Depends(form_data)
) -> Response:
    def call(app: Any, actor: Actor, v: int | None, today: date) -> None:
        app.support.record_review(
            actor,
            file_id,
            reviewed_on=_day(form.get("reviewed_on"), today),
            notes=str(form.get("notes", "")),
            outcome=str(form.get("outcome", "")),
            expected_version=v,
        )

    return _command(request, user, file_id, "review", form, call, i18n.gettext("已记录方案复评"))


@router.post("/support/{file_id}/reassign")
def reassign(
    request: Request, file_id: str, user: User = Depends(page_user), form: dict = Depends(form_data)
) -> Response:
    def call(app: Any, actor: Actor, v: int | None, today: date) -> None:
        app.support.reassign_support_file(
            actor, file_id, str(form.get("responsible_id", "")), str(form.get("reason", "")), expected_version=v
        )

    return _command(request, user, file_id, "reassign", form, call, i18n.gettext("已更换负责人"))


@router.post("/support/{file_id}/close")
def close(request: Request, file_id: str, user: User = Depends(page_user), form: dict = Depends(form_data)) -> Response:
    def call(app: Any, actor: Actor, v: int | None, today: date) -> None:
        app.support.close_support_file(actor, file_id, str(form.get("reason", "")), expected_version=v)

    return _command(request, user, file_id, "close", form, call, i18n.gettext("档案已结案"))


def _changes(form: dict[str, Any], today: date) -> dict[str, Any]:
    """The correction form's fields as the domain takes them (a date left empty: as
    recorded; an empty duration: none). The domain keeps only what differs from the entry."""
    changes: dict[str, Any] = {}
    for name, kind in CORRECTION_INPUTS.items():
        if name not in form:
            continue
        raw = str(form.get(name, "")).strip()
        if kind == "date":
            if raw:
                changes[name] = form_day(raw, today)
        elif kind == "number":
            if raw and not raw.isdigit():
                raise InvalidInput(reason="辅导时长应在 1-600 分钟之间")
            changes[name] = int(raw) if raw else None
        else:
            changes[name] = raw
    return changes


@router.post("/support/{file_id}/entries/{entry_id}/correct")
def correct_entry(
    request: Request, file_id: str, entry_id: str, user: User = Depends(page_user), form: dict = Depends(form_data)
) -> Response:
    """Correct one recorded entry (a session, a contact, a referral, a crisis intervention,
    a review): a new event naming the entry and the reason; the entry shows it was corrected."""

    def call(app: Any, actor: Actor, v: int | None, today: date) -> None:
        app.support.correct_file_entry(
            actor,
            file_id,
            entry_id,
            changes=_changes(form, today),
            reason=str(form.get("correction_reason", "")),
            expected_version=v,
        )

    return _command(request, user, file_id, f"correct:{entry_id}", form, call, i18n.gettext("记录已更正"))


@router.post("/support/{file_id}/reopen")
def reopen(
    request: Request, file_id: str, user: User = Depends(page_user), form: dict = Depends(form_data)
) -> Response:
    def call(app: Any, actor: Actor, v: int | None, today: date) -> None:
        app.support.reopen_support_file(actor, file_id, str(form.get("reason", "")), expected_version=v)

    return _command(request, user, file_id, "reopen", form, call, i18n.gettext("档案已重新开启"))
