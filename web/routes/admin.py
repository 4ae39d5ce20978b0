"""The administrator's pages: accounts (add with a one-time set-up link, change roles,
deactivate; a content role waits for a second person, see web/routes/grants.py),
roster import, master key rotation and audit checkpoints, crypto-shredding. The
administrator never sees case content: every call goes through the gate."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from anxin.accounts import SETUP_HOURS, setup_link
from anxin.commands.erasure import KIND_LABELS, SHARED_REMAINS
from anxin.roster_import import (
    DEFAULT_LEAVE_REASON,
    ImportRejected,
    PlanChanged,
    by_line,
    confirm_upload,
    preview_upload,
    template_csv,
    template_xlsx,
)
from anxin.service import Anxin, master_key_file
from domain import access
from domain.bullying import PARTS, STATUS_LABELS
from domain.common import DomainError, Erased, InvalidInput, NotFound, Role
from web import i18n
from web.deps import App, Form, PageUser, User, for_error_page, get_web, redirect, render
from web.forms import Refused, run_form, text, uploaded_file, values

router = APIRouter(include_in_schema=False)
ROLES = [r for r in Role]
__all__ = ["router", "KIND_LABELS"]


def _schools(app: Anxin, user: User) -> list[tuple[str, str]]:
    return [
        (sid, name)
        for sid, name, d in app.schools()
        if user.actor.school_id in (None, sid) and (user.actor.school_id or d == user.actor.district)
    ]


def _staff(app: Anxin, user: User, staff_id: str | None = None) -> list[dict[str, Any]]:
    """The accounts this administrator manages (the application asks the gate for
    ACCOUNT_ADMIN first): ids, roles, classes, with the school's and the person's names."""
    names = {sid: name for sid, name in _schools(app, user)}
    out = [
        {
            "id": s.id,
            "username": s.username,
            "school_id": s.school_id,
            "school": names.get(s.school_id, ""),
            "roles": list(s.roles),
            "classes": list(s.classes),
            "active": s.active,
            "name": app.roster.staff_name(s.id),
        }
        for s in app.accounts.staff_accounts(user.actor, staff_id)
    ]
    return sorted(out, key=lambda s: (not s["active"], s["school"], s["username"]))


def _classes(text: Any) -> list[str]:
    return [c.strip() for c in str(text or "").replace("，", ",").split(",") if c.strip()]


# -- accounts -------------------------------------------------------------------------
@router.get("/admin/accounts")
def accounts(request: Request, user: PageUser, app: App) -> Response:
    return render(request, "admin/accounts.html", staff=_staff(app, user), schools=_schools(app, user), roles=ROLES)


@router.post("/admin/accounts")
def add_account(request: Request, user: PageUser, form: Form) -> Response:
    """A new account: no password (the administrator never chooses one); the page shows
    a one-time set-up link, once, to hand to the person; content roles wait for a second
    person's approval."""

    def command(app: Anxin) -> tuple[str, str, str | None]:
        roles = values(form, "roles")
        if not roles:
            raise InvalidInput(reason="请至少选择一个角色")
        return app.roster.create_account(
            user.actor,
            username=form.get("username", "").strip(),
            name=form.get("name", "").strip(),
            school_id=form.get("school") or None,
            roles=roles,
            classes=_classes(form.get("classes")),
            district=user.actor.district,
        )

    def refused(r: Refused) -> Response:
        app = get_web(request).app
        return render(
            request,
            "admin/accounts.html",
            r.status,
            staff=_staff(app, user),
            schools=_schools(app, user),
            roles=ROLES,
            error=r.message,
        )

    def done(made: tuple[str, str, str | None]) -> Response:
        staff_id, code, request_id = made
        return _account_page(request, user, staff_id, setup_link=_full_link(request, code), new_grant=request_id)

    return run_form(request, command, done, refused, on_page=(NotFound, Erased))


def _full_link(request: Request, code: str) -> str:
    """A set-up link as the person will open it: on ANXIN_BASE_URL when set (a server
    behind a proxy, which the request's own address may not show), else on the scheme
    and host this request came to."""
    return setup_link(os.environ.get("ANXIN_BASE_URL") or str(request.base_url), code)


def _one(app: Anxin, user: User, staff_id: str) -> dict[str, Any]:
    found = _staff(app, user, staff_id)
    if not found:
        raise NotFound()
    return found[0]


def _account_page(request: Request, user: User, staff_id: str, status: int = 200, **extra: Any) -> Response:
    web = get_web(request)
    person = _one(web.app, user, staff_id)
    grants = [g for g in web.app.roster.pending_grants(user.actor) if g["staff_id"] == staff_id]
    return render(
        request,
        "admin/account.html",
        status,
        person=person,
        roles=ROLES,
        grants=grants,
        own=staff_id == user.staff_id,
        two_step=web.app.two_step.status_of(user.actor, staff_id),
        setup=web.app.accounts.setup_state(staff_id),
        setup_hours=SETUP_HOURS,
        **extra,
    )


def _account_refused(request: Request, user: User, staff_id: str) -> Callable[[Refused], Response]:
    return lambda r: _account_page(request, user, staff_id, r.status, error=r.message)


@router.get("/admin/accounts/{staff_id}")
def account(request: Request, staff_id: str, user: PageUser) -> Response:
    return _account_page(request, user, staff_id)


@router.post("/admin/accounts/{staff_id}/roles")
def change_roles(request: Request, staff_id: str, user: PageUser, form: Form) -> Response:
    def command(app: Anxin) -> str | None:
        roles, classes = values(form, "roles"), _classes(form.get("classes"))
        return app.roster.change_staff_roles(user.actor, staff_id, roles, classes, form.get("reason", ""))

    def done(request_id: str | None) -> Response:
        if request_id:  # a content role: nothing changes until a second person approves
            return redirect(f"/admin/accounts/{staff_id}", request, i18n.gettext("已提交：须由另一人批准后生效"))
        return redirect(f"/admin/accounts/{staff_id}", request, i18n.gettext("已保存"))

    return run_form(request, command, done, _account_refused(request, user, staff_id))


@router.post("/admin/accounts/{staff_id}/setup-code")
def reissue_setup_code(request: Request, staff_id: str, user: PageUser) -> Response:
    """A new set-up link for an account whose person has not set a password (the link
    expired, or was lost): shown once, like the first; the old one stops working at once."""
    return run_form(
        request,
        lambda app: app.accounts.reissue_setup_code(user.actor, staff_id),
        lambda made: _account_page(request, user, staff_id, setup_link=_full_link(request, made.code)),
        _account_refused(request, user, staff_id),
    )


@router.post("/admin/accounts/{staff_id}/deactivate")
def deactivate(request: Request, staff_id: str, user: PageUser, form: Form) -> Response:
    def command(app: Anxin) -> None:
        app.roster.deactivate_staff(user.actor, staff_id, form.get("reason", ""))

    def done(_: None) -> Response:
        get_web(request).sessions.drop_staff(staff_id)
        return redirect(f"/admin/accounts/{staff_id}", request, i18n.gettext("账号已停用"))

    return run_form(request, command, done, _account_refused(request, user, staff_id))


# -- roster -------------------------------------------------------------------------------
@router.get("/admin/roster")
def roster(request: Request, user: PageUser, app: App) -> Response:
    app.check(user.actor, access.STUDENT_WRITE, "student", school_id=user.actor.school_id)
    return _roster_page(request, user)


def _roster_page(request: Request, user: User, status: int = 200, **extra: Any) -> Response:
    schools = _schools(get_web(request).app, user)
    return render(request, "admin/roster.html", status, schools=schools, **{"problems": None, **extra})


def _session_context(user: User) -> str:
    """What a preview's sealed rows are bound to besides the person and the school: this
    session (a hash of its id; never the id itself)."""
    return hashlib.sha256((user.session.id if user.session else "").encode()).hexdigest()


def _preview_page(request: Request, user: User, plan: Any, sealed: str, status: int = 200, **extra: Any) -> Response:
    names = dict(_schools(get_web(request).app, user))
    return render(
        request,
        "admin/roster_preview.html",
        status,
        plan=plan,
        sealed=sealed,
        school_name=names.get(plan.school_id, ""),
        leave_reason=DEFAULT_LEAVE_REASON,
        **extra,
    )


@router.post("/admin/roster")
def roster_preview(request: Request, user: PageUser, form: Form) -> Response:
    """The first step: the file read in memory and compared with the school's roster; the
    preview shows what would change, and nothing is written."""
    school = text(form, "school")

    def command(app: Anxin) -> Any:
        return preview_upload(app, user.actor, school, lambda: uploaded_file(form), _session_context(user))

    def refused(r: Refused) -> Response:
        problems = by_line(r.error.problems) if isinstance(r.error, ImportRejected) else None
        return _roster_page(request, user, r.status, problems=problems, error=r.message)

    return run_form(
        request, command, lambda done: _preview_page(request, user, done[0], done[1]), refused, on_page=(Erased,)
    )


@router.post("/admin/roster/confirm")
def roster_confirm(request: Request, user: PageUser, form: Form) -> Response:
    """The second step: the rows the preview sealed, planned again and applied in one
    transaction if the plan is the one shown, with the missing students ticked as leavers."""
    school = text(form, "school")
    sealed = text(form, "sealed")

    def command(app: Anxin) -> Any:
        return confirm_upload(
            app,
            user.actor,
            school,
            sealed,
            _session_context(user),
            fingerprint=text(form, "fingerprint"),
            leavers=values(form, "leaver"),
            leave_reason=text(form, "leave_reason"),
        )

    def refused(r: Refused) -> Response:
        if isinstance(r.error, PlanChanged) and r.error.plan is not None:
            return _preview_page(request, user, r.error.plan, sealed, 409, error=r.message)
        if isinstance(r.error, ImportRejected):
            return _roster_page(request, user, r.status, problems=by_line(r.error.problems), error=r.message)
        return _roster_page(request, user, r.status, error=r.message)

    def done(result: Any) -> Response:
        message = i18n.gettext(
            "花名册已导入：新增 {new} 名，更正 {corrected} 名，不变 {unchanged} 名，标记离校 {left} 名",
            new=result.imported,
            corrected=result.corrected,
            unchanged=result.unchanged,
            left=result.left,
        )
        return redirect("/admin/roster", request, message)

    return run_form(request, command, done, refused, on_page=(Erased,))


@router.get("/admin/roster/template.csv")
def roster_template_csv(user: PageUser, app: App) -> Response:
    """The template (Chinese header, with a BOM for Excel): a header line, no data."""
    app.check(user.actor, access.STUDENT_WRITE, "student", school_id=user.actor.school_id)
    return Response(
        template_csv(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="anxin-roster-template.csv"'},
    )


@router.get("/admin/roster/template.xlsx")
def roster_template_xlsx(user: PageUser, app: App) -> Response:
    """The template as an Excel workbook: a header row, no data."""
    app.check(user.actor, access.STUDENT_WRITE, "student", school_id=user.actor.school_id)
    return Response(
        template_xlsx(),
        media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        headers={"Content-Disposition": 'attachment; filename="anxin-roster-template.xlsx"'},
    )


# -- keys -------------------------------------------------------------------------------
def _keys_page(request: Request, status: int = 200, checkpoint: Any = None, error: str | None = None) -> Response:
    app = get_web(request).app
    kek_id = app.keystore.master.kek_id
    return render(request, "admin/keys.html", status, kek_id=kek_id, checkpoint=checkpoint, error=error)


@router.get("/admin/keys")
def keys(request: Request, user: PageUser, app: App) -> Response:
    app.check(user.actor, access.KEYS_ADMIN, "keys")
    return _keys_page(request)


@router.post("/admin/keys/rotate")
def rotate(request: Request, user: PageUser, form: Form) -> Response:
    if form.get("confirm") != "rotate":
        return _keys_page(request, 400, error=i18n.gettext("请勾选确认后再轮换主密钥"))
    if os.environ.get("ANXIN_MASTER_KEY"):
        return _keys_page(
            request, 400, error=i18n.gettext("主密钥来自环境变量 ANXIN_MASTER_KEY：请改用密钥文件后再轮换")
        )
    with get_web(request).writing() as app:
        app.check(user.actor, access.KEYS_ADMIN, "keys")  # before a key file is written
        n = app.rotate_master_key(user.actor, key_file=master_key_file(app.config))
    return redirect("/admin/keys", request, i18n.gettext("已轮换主密钥，重新封装 {n} 个数据密钥", n=n))


@router.post("/admin/keys/checkpoint")
def checkpoint(request: Request, user: PageUser) -> Response:
    def command(app: Anxin) -> Any:
        app.check(user.actor, access.KEYS_ADMIN, "keys")
        return app.checkpoint(user.staff_id)

    return run_form(
        request,
        command,
        lambda cp: _keys_page(request, checkpoint=cp),
        lambda r: _keys_page(request, r.status, error=r.message),
    )


# -- shred --------------------------------------------------------------------------------
def _target(app: Anxin, user: User, form: dict[str, Any]) -> dict[str, Any]:
    """What a shred would destroy: the stream's kind, the student's number and class,
    the counts of linked records. Asks the gate (SHRED) first: for the person, then for
    the record's school."""
    app.check(user.actor, access.SHRED, "keys", school_id=user.actor.school_id)
    student_no = str(form.get("student_no", "")).strip()
    stream_id = str(form.get("stream_id", "")).strip()
    if student_no:
        school_id = form.get("school") or ""
        if not school_id:
            raise InvalidInput(reason="请选择学校")
        stream_id = str(app.roster.student_id_for(school_id, student_no))
    elif not stream_id:
        raise InvalidInput(reason="请填写学号或记录编号")
    try:
        plan = app.erasure.plan(user.actor, stream_id)  # the gate again, for the record's school
    except NotFound:
        raise InvalidInput(reason="找不到该记录") from None
    linked: dict[str, int] = {}
    for item in (*plan.destroyed[1:], *plan.kept) if plan.kind == "student" else ():
        linked[item.kind] = linked.get(item.kind, 0) + 1
    schools = dict(_schools(app, user))
    return {
        "stream_id": stream_id,
        "kind": plan.kind,
        "school": schools.get(plan.school_id or "", ""),
        "school_id": plan.school_id or "",
        "class_name": plan.class_name or "",
        "erased": not plan.destroyed,
        "student_no": student_no if plan.kind == "student" else "",
        "linked": linked,
        "kind_label": plan.label,
        "plan": plan,
        "parts": PARTS,
        "statuses": STATUS_LABELS,
        "remains": SHARED_REMAINS,
    }


@router.get("/admin/shred")
def shred_form(request: Request, user: PageUser, app: App) -> Response:
    app.check(user.actor, access.SHRED, "keys", school_id=user.actor.school_id)
    return render(request, "admin/shred.html", schools=_schools(app, user))


def _target_or_form(request: Request, user: User, form: dict[str, Any]) -> dict[str, Any] | Response:
    """The record the form names, or the shred form again with why it names none."""
    app = get_web(request).app
    try:
        return _target(app, user, form)
    except DomainError as e:
        if for_error_page(e):
            raise
        return render(request, "admin/shred.html", 400, schools=_schools(app, user), error=i18n.error_text(e))


@router.post("/admin/shred")
def shred_preview(request: Request, user: PageUser, form: Form) -> Response:
    target = _target_or_form(request, user, form)
    if isinstance(target, Response):
        return target
    return render(request, "admin/shred_confirm.html", target=target)


@router.post("/admin/shred/confirm")
def shred(request: Request, user: PageUser, form: Form) -> Response:
    target = _target_or_form(request, user, form)
    if isinstance(target, Response):
        return target
    expected = target["student_no"] or target["stream_id"]
    if str(form.get("confirm", "")).strip() != expected:
        return render(
            request,
            "admin/shred_confirm.html",
            400,
            target=target,
            error=i18n.gettext("确认内容与要删除的记录不一致，未删除"),
        )

    def refused(r: Refused) -> Response:
        status = 410 if isinstance(r.error, Erased) else r.status  # erased meanwhile: the confirmation says so
        return render(request, "admin/shred_confirm.html", status, target=target, error=r.message)

    def done(erased: Any) -> Response:
        message = i18n.gettext("已删除：密钥已销毁，内容不可恢复")
        if len(erased.destroyed) > 1 or erased.kept:
            message += i18n.gettext(
                "（共销毁 {n} 条记录的密钥；保留 {m} 条涉及其他学生的共享记录）",
                n=len(erased.destroyed),
                m=len(erased.kept),
            )
        return redirect("/admin/shred", request, message)

    return run_form(
        request,
        lambda app: app.erasure.erase(user.actor, target["stream_id"], form.get("reason", "")),
        done,
        refused,
        on_page=(NotFound, Erased),
    )
