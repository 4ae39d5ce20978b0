"""Login, logout, password change, one's own API tokens, an account's set-up (the one-time
link an administrator's new account gets), language switch.

A login: the form's CSRF token checked against its pre-session cookie; the attempt
counted by the throttle before any password is checked (refused with the seconds to
wait when over budget); then one password verification, for known and unknown names
alike (`app.accounts.authenticate`). Every refusal is a `login_failed` entry of the
audit trail. An account with two-step verification (or required to have it) is then
asked its code, or to enrol, before it is signed in (web/routes/two_step.py).
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from anxin.accounts import TOKEN_DAYS, AccountInactive, PasswordRejected, SetupCodeInvalid
from anxin.audit import login_subject
from anxin.service import Anxin
from domain.common import InvalidInput
from web import i18n
from web.deps import App, Form, PageUser, Web, get_web, language, redirect, render, session_user
from web.routes.two_step import after_password
from web.security import (
    COOKIE,
    LANG_COOKIE,
    LOGIN_COOKIE,
    login_csrf,
    login_csrf_ok,
    new_login_cookie,
)

router = APIRouter(include_in_schema=False)
_ = i18n.gettext


def _safe_next(target: str | None) -> str:
    """Only a path on this site (no //host, no scheme) may be the place to go after login."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/"


def client_address(request: Request) -> str:
    """The client's address: the direct peer's, or, only when the peer is a configured
    trusted proxy (ANXIN_TRUSTED_PROXIES), the one X-Forwarded-For names."""
    peer = request.client.host if request.client else None
    return get_web(request).throttle.proxies.client(peer, request.headers.get("x-forwarded-for"))


def _login_form(request: Request, status: int = 200, **context: object) -> HTMLResponse:
    """The login page, with the form's CSRF token bound to the pre-session cookie (set
    now if the browser has none)."""
    web: Web = get_web(request)
    app: Anxin = web.app
    cookie = request.cookies.get(LOGIN_COOKIE)
    fresh = not cookie
    if fresh:
        cookie = new_login_cookie()
    response = render(request, "login.html", status, login_token=login_csrf(app, cookie or ""), **context)
    if fresh:
        response.set_cookie(
            LOGIN_COOKIE, cookie or "", httponly=True, samesite="lax", secure=web.secure_cookies, path="/login"
        )
    return response


# Set by the set-up page as it sends the person to log in, read (and dropped) by the login
# page: a one-time message with no session to carry it. Its value names the message only.
NOTICE_COOKIE = "anxin_login_notice"
NOTICES = {"setup": "密码已设置，请用新密码登录"}


@router.get("/login")
def login_page(request: Request, next: str = "/") -> Response:
    i18n.current.set(language(request))
    if session_user(request):
        return RedirectResponse(_safe_next(next), status_code=303)
    notice = NOTICES.get(request.cookies.get(NOTICE_COOKIE, ""))
    response = _login_form(request, next=_safe_next(next), notice=_(notice) if notice else None)
    if notice:
        response.delete_cookie(NOTICE_COOKIE, path="/login")
    return response


@router.post("/login")
def login(request: Request, form: Form, app: App) -> Response:
    i18n.current.set(language(request))
    web = get_web(request)
    username = str(form.get("username", "")).strip()
    password = str(form.get("password", ""))
    target = _safe_next(str(form.get("next", "/")))
    if not login_csrf_ok(app, request.cookies.get(LOGIN_COOKIE), str(form.get("csrf_token", ""))):
        return _login_form(request, 403, next=target, username=username, error=_("登录页面已过期，请重新登录"))
    address = client_address(request)
    subject = login_subject(app, username) if username else ""
    wait = web.throttle.admit_login(username, address)  # counted before any password is checked
    if wait:
        app.record_security_event("login_failed", "anonymous", subject, {"reason": "throttled"})
        response = _login_form(
            request, 429, next=target, username=username, error=_("登录尝试过多，请 {n} 秒后再试", n=int(wait))
        )
        response.headers["Retry-After"] = str(int(wait))
        return response
    staff_id = app.accounts.authenticate(username, password)
    if staff_id is None:
        app.record_security_event("login_failed", "anonymous", subject, {"reason": "bad_credentials"})
        return _login_form(request, 401, next=target, username=username, error=_("用户名或密码不正确"))
    web.throttle.login_succeeded(username, address)
    return after_password(request, staff_id, target)  # signed in, or the second step first


@router.post("/logout")
def logout(request: Request, user: PageUser, app: App) -> Response:
    get_web(request).sessions.drop(user.session.id if user.session else None)
    app.record_security_event("logout", user.staff_id)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response


@router.get("/account/password")
def password_page(request: Request, user: PageUser) -> Response:
    return render(request, "password.html")


@router.post("/account/password")
def change_password(request: Request, user: PageUser, form: Form, app: App) -> Response:
    throttle = get_web(request).throttle
    wait = throttle.admit_password_check(user.staff_id)  # counted before the current password is checked
    if wait:
        app.record_security_event(
            "login_failed", user.staff_id, user.staff_id, {"reason": "current_password_throttled"}
        )
        response = render(request, "password.html", 429, error=_("密码核对失败次数过多，请 {n} 秒后再试", n=int(wait)))
        response.headers["Retry-After"] = str(int(wait))
        return response
    current, new, again = (str(form.get(k, "")) for k in ("current", "new", "again"))
    try:  # one command: the new hash, the person's other sessions ended, the audit entry
        app.accounts.change_password(
            user.actor, current, new, again, keep_session=user.session.id if user.session else None
        )
    except PasswordRejected as e:
        if e.problem != "current":  # the current password was right
            throttle.password_check_succeeded(user.staff_id)
        return render(request, "password.html", 400, error=i18n.error_text(e))
    throttle.password_check_succeeded(user.staff_id)
    return redirect("/", request, _("密码已修改"))


# -- one's own API tokens ---------------------------------------------------------------
def _tokens_page(request: Request, user: PageUser, status: int = 200, **extra: object) -> Response:
    tokens = get_web(request).tokens.of_staff(user.staff_id)
    return render(request, "tokens.html", status, tokens=tokens, days=TOKEN_DAYS, **extra)


@router.get("/account/tokens")
def tokens_page(request: Request, user: PageUser) -> Response:
    return _tokens_page(request, user)


@router.post("/account/tokens")
def issue_token(request: Request, user: PageUser, form: Form) -> Response:
    """A token for the signed-in person themselves: a name, 30 or 90 days, read-only or
    read-write; shown once."""
    try:
        days = int(str(form.get("days", "30")))
    except ValueError:
        days = 0
    try:
        with get_web(request).writing() as app:
            token = app.accounts.issue_token(
                user.actor, str(form.get("label", "")), days=days, scope=str(form.get("scope", "read"))
            )
    except (AccountInactive, InvalidInput) as e:
        return _tokens_page(request, user, 400, error=i18n.error_text(e))
    return _tokens_page(request, user, new_token=token)


@router.post("/account/tokens/{token_id}/revoke")
def revoke_token(request: Request, token_id: str, user: PageUser) -> Response:
    with get_web(request).writing() as app:
        app.accounts.revoke_token(user.actor, token_id)
    return redirect("/account/tokens", request, _("令牌已吊销"))


# -- an account's set-up ------------------------------------------------------------------
def _setup_form(request: Request, code: str, status: int = 200, **context: object) -> Response:
    return render(request, "setup.html", status, code=code, **context)


@router.get("/setup/{code}")
def setup_page(request: Request, code: str, app: App) -> Response:
    i18n.current.set(language(request))
    if app.accounts.setup_staff(code) is None:
        return _setup_form(request, code, 404, invalid=True, error=i18n.error_text(SetupCodeInvalid()))
    return _setup_form(request, code)


@router.post("/setup/{code}")
def setup(request: Request, code: str, form: Form, app: App) -> Response:
    """The person chooses their own password with the one-time code (no session: the code
    is what proves who they are, once); then they sign in."""
    i18n.current.set(language(request))
    throttle, address = get_web(request).throttle, client_address(request)
    wait = throttle.admit_password_check("setup:" + address)
    if wait:
        return _setup_form(request, code, 429, error=_("尝试过多，请 {n} 秒后再试", n=int(wait)))
    try:
        with get_web(request).writing() as writer:
            writer.accounts.set_up(code, str(form.get("new", "")), str(form.get("again", "")))
    except SetupCodeInvalid as e:
        return _setup_form(request, code, 404, invalid=True, error=i18n.error_text(e))
    except PasswordRejected as e:
        throttle.setup_code_valid(address)  # the code was right: no guess
        return _setup_form(request, code, 400, error=i18n.error_text(e))
    throttle.setup_code_valid(address)
    done = RedirectResponse("/login", status_code=303)
    done.set_cookie(
        NOTICE_COOKIE,
        "setup",
        max_age=600,
        httponly=True,
        samesite="lax",
        secure=get_web(request).secure_cookies,
        path="/login",
    )
    return done


@router.get("/lang/{code}")
def switch_language(request: Request, code: str, next: str = "/") -> Response:
    response = RedirectResponse(_safe_next(next), status_code=303)
    if code in i18n.LANGUAGES:
        response.set_cookie(LANG_COOKIE, code, max_age=365 * 86400, samesite="lax", path="/")
    return response
