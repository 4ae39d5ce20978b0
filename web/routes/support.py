"""The counselor's pages for psychological-support files (心理档案 · 一人一策): the
caseload and the school's register, opening a file, the whole file with a form for each
step of the work, and a supervisor's reasoned (break-glass) reading of one file.

Every read and every command goes through the application's gate (FILE_LIST,
FILE_OPEN, FILE_READ, FILE_WRITE); the routes only parse forms and render."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from anxin.commands.crisis import crisis_view
from anxin.core import ERASED_LABEL
from anxin.service import Anxin
from domain import access
from domain.common import Erased, InvalidInput, NotFound, PermissionDenied
from domain.policy import RISK_LABELS, RISK_LEVELS
from domain.support import (
    AGENCY_KINDS,
    CATEGORIES,
    CONTACT_METHODS,
    NEXT_STEPS,
    ORIGINS,
    REFERRAL_STATES,
    REVIEW_OUTCOMES,
)
from projections.support_register import register, student_refs
from web import i18n, picker
from web.deps import App, Form, PageUser, User, error_page, get_web, reason_form, redirect, render
from web.forms import Refused, day_or, expected_version, run_form
from web.routes.crisis import CRISIS_VOCAB

router = APIRouter(include_in_schema=False)

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


def _counselors(app: Anxin, user: User) -> list[tuple[str, str]]:
    """Who may be the one-to-one responsible staff of a file (the person's own school's
    active counselors and principal): ids and names, for the pick lists. No case content;
    the rule for this read is the application's (`Accounts.responsible_candidates`)."""
    return app.accounts.responsible_candidates(user.actor)  # type: ignore[no-any-return]


def _lines(text: Any) -> list[str]:
    return [line.strip() for line in str(text or "").splitlines() if line.strip()]


def _values(form: dict[str, Any], name: str) -> list[str]:
    """A repeated field's values (one value arrives as a string, several as a list)."""
    found = form.get(name)
    if found is None:
        return []
    return [str(v) for v in found] if isinstance(found, list) else [str(found)]


# The plan editor: one row per measure (措施内容 + 负责人), as many rows as the page sent.
MAX_PLAN_ROWS = 30
BLANK_ROWS = 3  # the empty rows of a new plan's editor
PLAN_BY_SUGGESTIONS = ("心理老师", "班主任", "家长", "德育主任", "学生本人")


def _plan_rows(form: dict[str, Any]) -> list[dict[str, str]]:
    """The editor's rows as typed (text and responsible person), empty ones included."""
    texts, bys = _values(form, "measure_text"), _values(form, "measure_by")
    n = max(len(texts), len(bys))
    texts, bys = texts + [""] * (n - len(texts)), bys + [""] * (n - len(bys))
    return [{"text": t.strip(), "by": b.strip()} for t, b in zip(texts, bys, strict=True)][:MAX_PLAN_ROWS]


def _measures(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    """The plan's measures: the rows with anything typed (a row left empty is no measure;
    a half-filled one goes to the domain, which names what it lacks)."""
    return [r for r in rows if r["text"] or r["by"]]


def _edited_rows(rows: list[dict[str, str]], action: str) -> list[dict[str, str]]:
    """The editor's rows after a row button without script: add (one empty row at the end),
    remove:N, up:N (N counts from 0). Nothing is saved."""
    rows = list(rows)
    verb, _, at = action.partition(":")
    i = int(at) if at.isdigit() else -1
    if verb == "add" and len(rows) < MAX_PLAN_ROWS:
        rows.append({"text": "", "by": ""})
    elif verb == "remove" and 0 <= i < len(rows):
        del rows[i]
    elif verb == "up" and 0 < i < len(rows):
        rows[i - 1], rows[i] = rows[i], rows[i - 1]
    return rows or [{"text": "", "by": ""}]


# -- the caseload and the register ------------------------------------------------------------------
@router.get("/support")
def support_home(request: Request, user: PageUser, app: App) -> Response:
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
    ids = sorted({x.student_id for x in mine if x.student_id} | {x.student_id for x in lines or [] if x.student_id})
    refs = {r.id: r for r in student_refs(app, ids)}
    numbers = app.record_numbers([x.file_id for x in mine] + [x.file_id for x in lines or []])
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
        numbers=numbers,
        risk=risk,
        staff_name=get_web(request).staff_name,
        today=app.now().date(),
        **VOCAB,
    )


# -- opening a file ---------------------------------------------------------------------------------
def _new_page(request: Request, user: User, status: int = 200, **extra: Any) -> Response:
    app = get_web(request).app
    return render(request, "support/new.html", status, counselors=_counselors(app, user), **VOCAB, **extra)


@router.get("/support/new")
def new_file(request: Request, user: PageUser, app: App) -> Response:
    app.check(user.actor, access.FILE_OPEN, "file", school_id=user.actor.school_id)
    student = None
    form: dict[str, Any] = {
        "origin": request.query_params.get("origin") or "judgement",
        "responsible_id": user.staff_id,
    }
    student_id = request.query_params.get("student")
    if student_id:
        student = app.roster.get_student(user.actor, student_id)  # the gate: STUDENT_READ
        form.update(student_id=student_id, student_no=picker.label(student))
    return _new_page(request, user, student=student, form=form)


@router.post("/support/new")
def open_file(request: Request, user: PageUser, form: Form) -> Response:
    def command(app: Anxin) -> str:
        typed = str(form.get("student_no", "")).strip()  # the picker: name, number, pinyin or initials
        student_id = str(form.get("student_id", "")).strip()
        if typed:
            student_id = picker.picked_student(
                app,
                user.actor,
                typed,
                lambda: app.check(user.actor, access.FILE_OPEN, "file", school_id=user.actor.school_id),
            )
        if not student_id:
            raise InvalidInput(reason="请填写学生（姓名、学号、拼音或首字母）")
        origin = str(form.get("origin") or "judgement")
        source_ref = str(form.get("source_id", "")).strip()
        return app.support.open_support_file(
            user.actor,
            student_id,
            category=str(form.get("category", "")),
            risk_level=str(form.get("risk_level", "")),
            reason=str(form.get("reason", "")),
            responsible_id=str(form.get("responsible_id") or "") or None,
            origin=origin,
            source={"kind": origin, "id": source_ref} if source_ref else None,
        )

    def message(r: Refused) -> str:
        if isinstance(r.error, NotFound):  # the typed student number names nobody
            return i18n.gettext("找不到该学号的学生：{no}", no=form.get("student_no", ""))
        return r.message

    def refused(r: Refused) -> Response:
        return _new_page(request, user, r.status, student=None, error=message(r), form=dict(form))

    return run_form(
        request,
        command,
        lambda file_id: redirect(f"/support/{file_id}", request, i18n.gettext("已建立心理档案")),
        refused,
        on_page=(NotFound, Erased),
        again=lambda r: ("/support/new", {"error": message(r)}),
    )


# -- the whole file ---------------------------------------------------------------------------------
def _file_page(
    request: Request, user: User, file_id: str, status: int = 200, *, break_glass: str | None = None, **extra: Any
) -> Response:
    web = get_web(request)
    app = web.app
    try:
        f = app.support.get_support_file(user.actor, file_id, break_glass=break_glass)
    except Erased:
        return render(request, "support/erased.html", 410, file_id=file_id)
    student = app.student_ref(f.student_id)  # a name for an already-authorised read
    today = app.now().date()
    if "rows" not in extra:  # the plan editor: the plan's measures and one empty row, or empty rows
        measures = [dict(m) for m in f.plan["measures"]] if f.plan else []
        extra["rows"] = measures + [{"text": "", "by": ""}] * (1 if measures else BLANK_ROWS)
    return render(
        request,
        "support/file.html",
        status,
        f=f,
        review_bounds=app.policy.review_bounds(f.risk_level, today),
        review_days=app.policy.review_days,
        by_suggestions=PLAN_BY_SUGGESTIONS,
        crisis=crisis_view(f, app.now()) if f.crisis is not None else None,
        student=student,
        staff_name=web.staff_name,
        counselors=[] if break_glass else _counselors(app, user),
        people=[] if break_glass else app.accounts.person_candidates(user.actor),
        agencies=[] if break_glass else app.agencies.for_school(f.school_id),
        agency_kinds=AGENCY_KINDS,
        referral_states=REFERRAL_STATES,
        readonly=bool(break_glass),
        today=today,
        erased_label=ERASED_LABEL,
        alerted=[],  # the forms that showed a refusal beside them (support/file.html)
        **VOCAB,
        **CRISIS_VOCAB,
        **extra,
    )


def _plan_page(request: Request, user: User, file_id: str) -> Response:
    """What a file's one-to-one responsible person (一对一包联人) sees (FILE_PLAN): the plan,
    their task (the plan's next review), the guardian contacts; never the counselling notes."""
    web = get_web(request)
    app = web.app
    try:
        plan = app.support.get_file_plan(user.actor, file_id)
    except Erased:
        return render(request, "support/erased.html", 410, file_id=file_id)
    return render(
        request,
        "support/plan.html",
        p=plan,
        student=app.student_ref(plan.student_id),  # a name for an already-authorised read
        staff_name=web.staff_name,
        contact_methods=CONTACT_METHODS,
    )


def _status_page(request: Request, user: User, file_id: str) -> Response:
    """The status of a file, for those who may know no more (FILE_STATUS): the teacher who
    escalated the concern, a class teacher while a student of their class is in crisis."""
    web = get_web(request)
    app = web.app
    try:
        status = app.support.get_file_status(user.actor, file_id)
    except Erased:
        return render(request, "support/erased.html", 410, file_id=file_id)
    return render(
        request,
        "support/status.html",
        s=status,
        student=app.student_ref(status.student_id),  # a name for an already-authorised read
        staff_name=web.staff_name,
        next_steps=NEXT_STEPS,
    )


@router.get("/support/{file_id}")
def support_file(request: Request, file_id: str, user: PageUser, app: App) -> Response:
    # Whether the gate would show this file only with a stated reason (asked without
    # recording, so the reason form comes before any read).
    if app.gate.needs_reason(user.actor, access.FILE_READ, "file", file_id):
        return reason_form(request, f"/support/{file_id}/open")
    # The part of the file this person may see, asked without recording (the read itself is
    # decided and recorded): the whole file, or its status only; otherwise the whole file's
    # read is refused (403, recorded).
    if not app.gate.permits(user.actor, access.FILE_READ, "file", file_id):
        if app.gate.permits(user.actor, access.FILE_PLAN, "file", file_id):
            return _plan_page(request, user, file_id)
        if app.gate.permits(user.actor, access.FILE_STATUS, "file", file_id):
            return _status_page(request, user, file_id)
    return _file_page(request, user, file_id)


@router.post("/support/{file_id}/open")
def support_file_break_glass(request: Request, file_id: str, user: PageUser, form: Form) -> Response:
    reason = str(form.get("break_glass_reason", "")).strip()
    try:
        with get_web(request).writing():  # the read records the reason in the audit trail
            return _file_page(request, user, file_id, break_glass=reason or None)
    except PermissionDenied as e:
        return reason_form(request, f"/support/{file_id}/open", 403, e)


# -- the steps of the work: each one application call -------------------------------------------------
FileStep = Callable[[Anxin, User, str, dict[str, Any], int | None, date], object]


def _step(action: str, done: str) -> Callable[[FileStep], FileStep]:
    """Serve the decorated command at POST /support/{file_id}/<action>: it is called with the
    application, the person, the file, the form, the version the page showed and today.
    Done: back to the file with `done` (translated) flashed; refused: the file again with the
    action's form open, the message and what was typed."""

    def serve(call: FileStep) -> FileStep:
        def route(request: Request, file_id: str, user: PageUser, form: Form) -> Response:
            def refused(r: Refused) -> Response:
                return _file_page(request, user, file_id, r.status, active=action, error=r.message)

            return run_form(
                request,
                lambda app: call(app, user, file_id, form, expected_version(form), app.now().date()),
                lambda _: redirect(f"/support/{file_id}", request, i18n.gettext(done)),
                refused,
                again=lambda r: (f"/support/{file_id}#{action}", {"active": action}),
            )

        router.add_api_route(f"/support/{{file_id}}/{action}", route, methods=["POST"], name=call.__name__)
        return call

    return serve


@_step("risk", "风险等级已调整")
def change_risk(app: Anxin, user: User, file_id: str, form: dict[str, Any], v: int | None, today: date) -> None:
    to_level = str(form.get("to_level", ""))
    from_level = str(form.get("from_level", ""))
    reason = str(form.get("reason", ""))
    if (
        to_level in RISK_LEVELS
        and from_level in RISK_LEVELS
        and RISK_LEVELS.index(to_level) < RISK_LEVELS.index(from_level)
    ):
        app.support.lower_risk_level(user.actor, file_id, to_level, reason, expected_version=v)
    else:
        app.support.raise_risk_level(user.actor, file_id, to_level, reason, expected_version=v)


@_step("category", "档案类别已调整")
def change_category(app: Anxin, user: User, file_id: str, form: dict[str, Any], v: int | None, today: date) -> None:
    category, reason = str(form.get("category", "")), str(form.get("reason", ""))
    app.support.change_file_category(user.actor, file_id, category, reason, expected_version=v)


@router.post("/support/{file_id}/plan")
def plan(request: Request, file_id: str, user: PageUser, form: Form) -> Response:
    """Draw up or revise the plan (一人一策) from the editor's rows. A row button (添加一行,
    删除, 上移) sent without script shows the editor again with the rows changed and
    everything typed kept; nothing is saved until 保存."""
    rows = _plan_rows(form)
    edit = str(form.get("plan_action") or "")
    if edit:
        return _file_page(request, user, file_id, active="plan", rows=_edited_rows(rows, edit))

    def command(app: Anxin) -> None:
        v = expected_version(form)
        goals, measures = _lines(form.get("goals")), _measures(rows)
        if form.get("mode") == "revise":
            reason = str(form.get("reason", ""))
            app.support.revise_plan(
                user.actor, file_id, goals=goals, measures=measures, reason=reason, expected_version=v
            )
        else:
            app.support.draw_up_plan(user.actor, file_id, goals=goals, measures=measures, expected_version=v)

    return run_form(
        request,
        command,
        lambda _: redirect(f"/support/{file_id}", request, i18n.gettext("帮扶方案已保存")),
        lambda r: _file_page(request, user, file_id, r.status, active="plan", error=r.message, rows=rows),
    )


def _minutes(typed: Any) -> int | None:
    """A session's length in minutes, if given."""
    minutes = str(typed or "").strip()
    if minutes and not minutes.isdigit():
        raise InvalidInput(reason="辅导时长应在 1-600 分钟之间")
    return int(minutes) if minutes else None


@_step("session", "已记录辅导")
def session(app: Anxin, user: User, file_id: str, form: dict[str, Any], v: int | None, today: date) -> None:
    minutes = _minutes(form.get("duration_minutes"))
    app.support.record_session(
        user.actor,
        file_id,
        held_on=day_or(form.get("held_on"), today),
        summary=str(form.get("summary", "")),
        duration_minutes=minutes,
        next_steps=str(form.get("next_steps", "")),
        expected_version=v,
    )


@_step("guardian-contact", "已记录家校联系")
def guardian_contact(app: Anxin, user: User, file_id: str, form: dict[str, Any], v: int | None, today: date) -> None:
    app.support.record_guardian_contact(
        user.actor,
        file_id,
        contacted_on=day_or(form.get("contacted_on"), today),
        guardian=str(form.get("guardian", "")),
        method=str(form.get("method", "")),
        summary=str(form.get("summary", "")),
        expected_version=v,
    )


@_step("referral", "已记录转介")
def referral(app: Anxin, user: User, file_id: str, form: dict[str, Any], v: int | None, today: date) -> None:
    app.support.send_referral(
        user.actor,
        file_id,
        agency_id=str(form.get("agency_id", "")),
        referred_on=day_or(form.get("referred_on"), today),
        reason=str(form.get("reason", "")),
        expected_version=v,
    )


# A referral's next states, each its own form on the file's page.
REFERRAL_STEPS: dict[str, tuple[Callable[[Anxin, User, str, str, dict[str, Any], int | None, date], None], str]] = {
    "accepted": (
        lambda app, u, fid, eid, f, v, today: app.support.accept_referral(
            u.actor,
            fid,
            eid,
            accepted_on=day_or(f.get("accepted_on"), today),
            note=str(f.get("note", "")),
            expected_version=v,
        ),
        "已记录机构接收",
    ),
    "feedback": (
        lambda app, u, fid, eid, f, v, today: app.support.receive_referral_feedback(
            u.actor,
            fid,
            eid,
            received_on=day_or(f.get("received_on"), today),
            summary=str(f.get("summary", "")),
            expected_version=v,
        ),
        "已记录转介回执",
    ),
    "close": (
        lambda app, u, fid, eid, f, v, today: app.support.close_referral(
            u.actor, fid, eid, reason=str(f.get("reason", "")), expected_version=v
        ),
        "转介已结束",
    ),
}


@router.post("/support/{file_id}/referrals/{entry_id}/{step}")
def referral_step(request: Request, file_id: str, entry_id: str, step: str, user: PageUser, form: Form) -> Response:
    """A referral moves on: the agency accepted it, its feedback (回执) came, it is over."""
    found = REFERRAL_STEPS.get(step)
    if found is None:
        return error_page(request, 404, i18n.gettext("未知的操作"))
    call, done = found

    def refused(r: Refused) -> Response:
        return _file_page(request, user, file_id, r.status, active=f"{step}:{entry_id}", error=r.message)

    return run_form(
        request,
        lambda app: call(app, user, file_id, entry_id, form, expected_version(form), app.now().date()),
        lambda _: redirect(f"/support/{file_id}#referrals", request, i18n.gettext(done)),
        refused,
        again=lambda r: (f"/support/{file_id}#referrals", {"active": f"{step}:{entry_id}"}),
    )


@_step("crisis", "已记录危机干预")
def crisis(app: Anxin, user: User, file_id: str, form: dict[str, Any], v: int | None, today: date) -> None:
    app.support.record_crisis_intervention(
        user.actor,
        file_id,
        occurred_on=day_or(form.get("occurred_on"), today),
        what_happened=str(form.get("what_happened", "")),
        actions_taken=str(form.get("actions_taken", "")),
        expected_version=v,
    )


@_step("review", "已记录方案复评")
def review(app: Anxin, user: User, file_id: str, form: dict[str, Any], v: int | None, today: date) -> None:
    app.support.record_review(
        user.actor,
        file_id,
        reviewed_on=day_or(form.get("reviewed_on"), today),
        notes=str(form.get("notes", "")),
        outcome=str(form.get("outcome", "")),
        next_review_due=day_or(form.get("next_review_due"), None, "下次复评日期"),
        expected_version=v,
    )


@_step("reassign", "已更换负责人")
def reassign(app: Anxin, user: User, file_id: str, form: dict[str, Any], v: int | None, today: date) -> None:
    responsible, reason = str(form.get("responsible_id", "")), str(form.get("reason", ""))
    app.support.reassign_support_file(user.actor, file_id, responsible, reason, expected_version=v)


@_step("person", "已指定一对一包联人")
def person(app: Anxin, user: User, file_id: str, form: dict[str, Any], v: int | None, today: date) -> None:
    staff_id, reason = str(form.get("staff_id", "")), str(form.get("reason", ""))
    app.support.assign_responsible_person(user.actor, file_id, staff_id, reason, expected_version=v)


@_step("close", "档案已结案")
def close(app: Anxin, user: User, file_id: str, form: dict[str, Any], v: int | None, today: date) -> None:
    app.support.close_support_file(user.actor, file_id, str(form.get("reason", "")), expected_version=v)


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
                changes[name] = day_or(raw, today)
        elif kind == "number":
            changes[name] = _minutes(raw)
        else:
            changes[name] = raw
    return changes


@router.post("/support/{file_id}/entries/{entry_id}/correct")
def correct_entry(request: Request, file_id: str, entry_id: str, user: PageUser, form: Form) -> Response:
    """Correct one recorded entry (a session, a contact, a referral, a crisis intervention,
    a review): a new event naming the entry and the reason; the entry shows it was corrected."""

    def refused(r: Refused) -> Response:
        return _file_page(request, user, file_id, r.status, active=f"correct:{entry_id}", error=r.message)

    def command(app: Anxin) -> None:
        version = expected_version(form)
        app.support.correct_file_entry(
            user.actor,
            file_id,
            entry_id,
            changes=_changes(form, app.now().date()),
            reason=str(form.get("correction_reason", "")),
            expected_version=version,
        )

    return run_form(
        request,
        command,
        lambda _: redirect(f"/support/{file_id}", request, i18n.gettext("记录已更正")),
        refused,
        again=lambda r: (f"/support/{file_id}", {"active": f"correct:{entry_id}"}),
    )


@_step("reopen", "档案已重新开启")
def reopen(app: Anxin, user: User, file_id: str, form: dict[str, Any], v: int | None, today: date) -> None:
    app.support.reopen_support_file(user.actor, file_id, str(form.get("reason", "")), expected_version=v)
