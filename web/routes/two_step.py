"""Two-step verification (两步验证) on the web: one's own enrolment and turning it off
(/account/two-step), the second step of a login and the enrolment a school requires
(/login/two-step, /login/enrol), and the administrator's school setting and reset
(/admin/two-step, /admin/accounts/{id}/two-step/reset). The rules are the application's
(anxin.two_step); this module keeps the half-login between a correct password and the
second step (web/security.py: a session no other page accepts, for a few minutes).

An enrolment's secret is made here and kept in the person's session (sealed, like all
session data) until their first code confirms it; only then does the application store
it. The QR code is an SVG drawn on the server (segno) inside the page: no request leaves
the site, and the secret is also shown in groups of four for typing by hand.
"""

from __future__ import annotations

from typing import Any

import segno
from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from markupsafe import Markup

from anxin.accounts import PasswordRejected
from anxin.audit import login_subject
from anxin.service import Anxin
from anxin.two_step import AlreadyEnrolled, CodeRejected, EnrolmentExpired, grouped, new_secret, provisioning_uri
from domain.common import DomainError
from web import i18n
from web.deps import App, Form, PageUser, User, flash, get_web, language, redirect, render
from web.forms import Refused, run_form, text, yes
from web.security import COOKIE, LOGIN_COOKIE, STAGE_SECONDS, Session, csrf_ok

router = APIRouter(include_in_schema=False)
_ = i18n.gettext

STAGE_PAGES = {"code": "/login/two-step", "enrol": "/login/enrol"}
PENDING = "two_step_secret"  # the session's key for an enrolment's secret, until it is confirmed


def _safe(target: Any) -> str:
    target = str(target or "/")
    return target if target.startswith("/") and not target.startswith("//") and "\\" not in target else "/"


# -- a session after the password ----------------------------------------------------------------
def _with_cookie(request: Request, response: Response, session: Session, max_age: float) -> Response:
    web = get_web(request)
    response.set_cookie(
        COOKIE, session.id, httponly=True, samesite="lax", secure=web.secure_cookies, max_age=int(max_age), path="/"
    )
    return response


def _subject(app: Anxin, staff_id: str) -> str:
    """The account's login name as the trail holds it (a keyed hash), as a login's entries name it."""
    entry = app.accounts.staff(staff_id)
    return login_subject(app, entry.username) if entry else staff_id


def _signed_in(
    request: Request, staff_id: str, *, replacing: str | None, detail: dict[str, Any] | None = None
) -> Session:
    """A full session (a new id, the one `replacing` names ended) and its `login` entry."""
    web = get_web(request)
    app: Anxin = web.app
    session = web.sessions.create(staff_id, replacing=replacing)
    app.record_security_event("login", staff_id, _subject(app, staff_id), detail or "")
    return session


def after_password(request: Request, staff_id: str, target: str) -> Response:
    """What a correct password leads to: signed in, or the half-login of the second step
    (the code, or the enrolment the school requires), which remembers where to go after."""
    web = get_web(request)
    replacing = request.cookies.get(COOKIE)
    stage = web.app.two_step.stage_after_password(staff_id)
    if stage is None:
        session = _signed_in(request, staff_id, replacing=replacing)
        done = _with_cookie(request, RedirectResponse(target, status_code=303), session, web.sessions.lifetime)
        done.delete_cookie(LOGIN_COOKIE, path="/login")
        return done
    staged = web.sessions.create(staff_id, replacing=replacing, stage={"stage": stage, "next": target})
    return _with_cookie(request, RedirectResponse(STAGE_PAGES[stage], status_code=303), staged, STAGE_SECONDS[stage])


def _staged(request: Request, stage: str) -> Session | None:
    i18n.current.set(language(request))
    return get_web(request).sessions.staged(request.cookies.get(COOKIE), stage)


def _expired(request: Request) -> Response:
    return render(request, "two_step/code.html", 401, expired=True)


def _finish(request: Request, staged: Session, detail: dict[str, Any], page: Response | None = None) -> Response:
    """The half-login becomes a session (a new id): to where the person was going, or
    `page` (the recovery codes, shown once) with the new session's cookie."""
    web = get_web(request)
    session = _signed_in(request, staged.staff_id, replacing=staged.id, detail=detail)
    web.throttle.code_succeeded(staged.staff_id)
    response = page or RedirectResponse(_safe(staged.data.get("next")), status_code=303)
    response = _with_cookie(request, response, session, web.sessions.lifetime)
    response.delete_cookie(LOGIN_COOKIE, path="/login")
    return response


# -- the second step of a login -------------------------------------------------------------------
def _code_form(request: Request, staged: Session, status: int = 200, **context: Any) -> Response:
    return render(request, "two_step/code.html", status, stage_token=staged.csrf, **context)


@router.get("/login/two-step")
def code_page(request: Request) -> Response:
    staged = _staged(request, "code")
    return _code_form(request, staged) if staged else RedirectResponse("/login", status_code=303)


@router.post("/login/two-step")
def second_step(request: Request, form: Form, app: App) -> Response:
    """The code (or a recovery code) after a correct password: counted by the throttle
    before it is checked; a wrong one is a `login_failed` entry, like a wrong password."""
    staged = _staged(request, "code")
    if staged is None:
        return _expired(request)
    if not csrf_ok(staged, form.get("csrf_token")):
        return _code_form(request, staged, 403, error=_("页面已过期，请刷新后重试"))
    staff_id = staged.staff_id
    wait = get_web(request).throttle.admit_code(staff_id)  # counted before the code is checked
    if wait:
        app.record_security_event("login_failed", staff_id, _subject(app, staff_id), {"reason": "two_step_throttled"})
        response = _code_form(request, staged, 429, error=_("验证码错误次数过多，请 {n} 秒后再试", n=int(wait)))
        response.headers["Retry-After"] = str(int(wait))
        return response
    passed = app.two_step.passes(staff_id, text(form, "code"))
    if passed is None:
        app.record_security_event("login_failed", staff_id, _subject(app, staff_id), {"reason": "two_step_code"})
        return _code_form(request, staged, 401, error=i18n.error_text(CodeRejected()))
    if passed.method == "recovery":
        page = render(
            request, "two_step/recovery_used.html", left=passed.recovery_left, next=_safe(staged.data.get("next"))
        )
        return _finish(request, staged, {"two_step": "recovery", "left": passed.recovery_left}, page)
    return _finish(request, staged, {"two_step": "code"})


@router.post("/login/two-step/cancel")
def cancel(request: Request, form: Form) -> Response:
    """Leave a half-login (another account, or later)."""
    web = get_web(request)
    for stage in STAGE_PAGES:
        staged = _staged(request, stage)
        if staged is not None and csrf_ok(staged, form.get("csrf_token")):
            web.sessions.drop(staged.id)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response


# -- enrolment --------------------------------------------------------------------------------------
def _pending_secret(request: Request, session: Session) -> str:
    """The secret of the enrolment under way in this session (made now if none)."""
    secret = session.data.get(PENDING)
    if not isinstance(secret, str) or not secret:
        secret = session.data[PENDING] = new_secret()
        get_web(request).sessions.save_data(session)
    return secret


def qr_svg(uri: str) -> Markup:
    """The QR code of an otpauth:// address, as an SVG element for the page itself."""
    return Markup(segno.make(uri, error="m").svg_inline(scale=4, border=2, dark="#000", light="#fff"))


def _enrol_form(
    request: Request, session: Session, action: str, status: int = 200, *, token: str, **context: Any
) -> Response:
    app: Anxin = get_web(request).app
    secret = _pending_secret(request, session)
    entry = app.accounts.staff(session.staff_id)
    uri = provisioning_uri(secret, entry.username if entry else session.staff_id)
    return render(
        request,
        "two_step/enrol.html",
        status,
        qr=qr_svg(uri),
        secret=grouped(secret),
        action=action,
        stage_token=token,
        **context,
    )


def _confirm(request: Request, session: Session, form: dict[str, Any]) -> list[str]:
    """Confirm the session's enrolment with the first code (CodeRejected, AlreadyEnrolled)."""
    with get_web(request).writing() as app:
        codes = app.two_step.enrol(session.staff_id, str(session.data.get(PENDING, "")), text(form, "code"))
    session.data.pop(PENDING, None)
    get_web(request).sessions.save_data(session)
    return codes


@router.get("/login/enrol")
def required_enrol_page(request: Request) -> Response:
    staged = _staged(request, "enrol")
    if staged is None:
        return RedirectResponse("/login", status_code=303)
    return _enrol_form(request, staged, "/login/enrol", token=staged.csrf, required=True)


@router.post("/login/enrol")
def required_enrol(request: Request, form: Form) -> Response:
    """The enrolment the school requires, before any other page: confirmed by a first
    code, it signs the person in and shows their recovery codes, once."""
    staged = _staged(request, "enrol")
    if staged is None:
        return _expired(request)
    if not csrf_ok(staged, form.get("csrf_token")):
        return _enrol_form(
            request, staged, "/login/enrol", 403, token=staged.csrf, required=True, error=_("页面已过期，请刷新后重试")
        )
    try:
        codes = _confirm(request, staged, form)
    except (CodeRejected, AlreadyEnrolled, EnrolmentExpired) as e:
        return _enrol_form(
            request, staged, "/login/enrol", 400, token=staged.csrf, required=True, error=i18n.error_text(e)
        )
    page = render(request, "two_step/recovery.html", codes=codes, next=_safe(staged.data.get("next")))
    return _finish(request, staged, {"two_step": "enrolled"}, page)


# -- one's own account ------------------------------------------------------------------------------
def _account_page(request: Request, user: User, status: int = 200, **context: Any) -> Response:
    state = get_web(request).app.two_step.status(user.staff_id)
    return render(request, "two_step/account.html", status, state=state, **context)


@router.get("/account/two-step")
def account_page(request: Request, user: PageUser) -> Response:
    return _account_page(request, user)


@router.get("/account/two-step/enrol")
def enrol_page(request: Request, user: PageUser, app: App) -> Response:
    if app.two_step.enrolled(user.staff_id) or user.session is None:
        return redirect("/account/two-step")
    return _enrol_form(request, user.session, "/account/two-step/enrol", token=user.csrf)


@router.post("/account/two-step/enrol")
def enrol(request: Request, user: PageUser, form: Form) -> Response:
    if user.session is None:
        return redirect("/account/two-step")
    try:
        codes = _confirm(request, user.session, form)
    except (CodeRejected, AlreadyEnrolled, EnrolmentExpired) as e:
        return _enrol_form(
            request, user.session, "/account/two-step/enrol", 400, token=user.csrf, error=i18n.error_text(e)
        )
    return render(request, "two_step/recovery.html", codes=codes, next="/account/two-step")


@router.post("/account/two-step/disable")
def disable(request: Request, user: PageUser, form: Form, app: App) -> Response:
    """Off, with the current password and a current code (each counted by the throttle
    first). Where the school requires it, the person enrols again at once (a new phone)."""
    web = get_web(request)
    wait = max(web.throttle.admit_password_check(user.staff_id), web.throttle.admit_code(user.staff_id))
    if wait:
        app.record_security_event("login_failed", user.staff_id, user.staff_id, {"reason": "two_step_throttled"})
        response = _account_page(request, user, 429, error=_("核对失败次数过多，请 {n} 秒后再试", n=int(wait)))
        response.headers["Retry-After"] = str(int(wait))
        return response
    try:
        with web.writing() as writer:
            writer.two_step.disable(user.actor, str(form.get("password", "")), text(form, "code"))
    except PasswordRejected as e:
        return _account_page(request, user, 400, error=i18n.error_text(e))
    except DomainError as e:
        web.throttle.password_check_succeeded(user.staff_id)
        return _account_page(request, user, 400, error=i18n.error_text(e))
    web.throttle.password_check_succeeded(user.staff_id)
    web.throttle.code_succeeded(user.staff_id)
    if app.two_step.required_for(user.staff_id):  # a new phone: set it up now
        staged = web.sessions.create(
            user.staff_id,
            replacing=user.session.id if user.session else None,
            stage={"stage": "enrol", "next": "/account/two-step"},
        )
        return _with_cookie(request, RedirectResponse("/login/enrol", status_code=303), staged, STAGE_SECONDS["enrol"])
    return redirect("/account/two-step", request, _("已关闭两步验证"))


# -- administrators -----------------------------------------------------------------------------------
def _settings_page(request: Request, user: User, status: int = 200, **context: Any) -> Response:
    app: Anxin = get_web(request).app
    settings = app.two_step.settings(user.actor)
    names = {sid: name for sid, name, _district in app.schools()}
    return render(request, "admin/two_step.html", status, settings=settings, names=names, **context)


@router.get("/admin/two-step")
def settings_page(request: Request, user: PageUser) -> Response:
    return _settings_page(request, user)


@router.post("/admin/two-step")
def set_required(request: Request, user: PageUser, form: Form) -> Response:
    """A school's requirement on or off (its administrator, or the district's): an entry of
    the audit trail."""

    def done(changed: bool) -> Response:
        return redirect("/admin/two-step", request, _("已保存") if changed else _("设置未改变"))

    return run_form(
        request,
        lambda app: app.two_step.set_required(user.actor, text(form, "scope"), yes(form, "required")),
        done,
        lambda r: _settings_page(request, user, r.status, error=r.message),
    )


@router.post("/admin/accounts/{staff_id}/two-step/reset")
def reset(request: Request, staff_id: str, user: PageUser) -> Response:
    """A lost phone: the account's verification removed and its sessions ended (never
    shown or set by the administrator); it enrols again at its next login where required."""

    def done(was_on: bool) -> Response:
        message = _("已重置两步验证，该账号已退出登录") if was_on else _("该账号未开启两步验证")
        return redirect(f"/admin/accounts/{staff_id}", request, message)

    def refused(r: Refused) -> Response:
        flash(request, r.message, "warn")
        return redirect(f"/admin/accounts/{staff_id}")

    return run_form(request, lambda app: app.two_step.reset(user.actor, staff_id), done, refused)
