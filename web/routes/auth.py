"""Login, logout, password change, language switch."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from anxin.accounts import PasswordRejected
from anxin.audit import login_subject
from anxin.passwords import verify_password
from web import i18n
from web.deps import App, Form, PageUser, get_web, language, redirect, render, session_user
from web.security import COOKIE, IDLE_SECONDS, LANG_COOKIE

router = APIRouter(include_in_schema=False)
_ = i18n.gettext


def _safe_next(target: str | None) -> str:
    """Only a path on this site (no //host, no scheme) may be the place to go after login."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/"


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


@router.get("/login")
def login_page(request: Request, next: str = "/") -> Response:
    i18n.current.set(language(request))
    if session_user(request):
        return RedirectResponse(_safe_next(next), status_code=303)
    return render(request, "login.html", next=_safe_next(next))


@router.post("/login")
def login(request: Request, form: Form, app: App) -> Response:
    i18n.current.set(language(request))
    web = get_web(request)
    username = str(form.get("username", "")).strip()
    password = str(form.get("password", ""))
    target = _safe_next(str(form.get("next", "/")))
    address = client_address(request)
    subject = login_subject(app, username) if username else ""
    if web.throttle.blocked(username, address):
        app.record_security_event("login_failed", "anonymous", subject, {"reason": "throttled"})
        return render(
            request, "login.html", 429, next=target, username=username, error=_("登录失败次数过多，请 15 分钟后再试")
        )
    account = app.accounts.account(username) if username else None
    if account is None or not verify_password(account[1], password):
        web.throttle.failed(username, address)
        app.record_security_event(
            "login_failed", account[0] if account else "anonymous", subject, {"reason": "bad_credentials"}
        )
        return render(request, "login.html", 401, next=target, username=username, error=_("用户名或密码不正确"))
    web.throttle.succeeded(username)
    session = web.sessions.create(account[0], replacing=request.cookies.get(COOKIE))
    app.record_security_event("login", account[0], subject)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        COOKIE,
        session.id,
        httponly=True,
        samesite="lax",
        secure=web.secure_cookies,
        max_age=IDLE_SECONDS * 16,
        path="/",
    )
    return response


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
    current, new, again = (str(form.get(k, "")) for k in ("current", "new", "again"))
    try:  # one command: the new hash, the person's other sessions ended, the audit entry
        app.accounts.change_password(
            user.actor, current, new, again, keep_session=user.session.id if user.session else None
        )
    except PasswordRejected as e:
        return render(request, "password.html", 400, error=i18n.error_text(e))
    return redirect("/", request, _("密码已修改"))


@router.get("/lang/{code}")
def switch_language(request: Request, code: str, next: str = "/") -> Response:
    response = RedirectResponse(_safe_next(next), status_code=303)
    if code in i18n.LANGUAGES:
        response.set_cookie(LANG_COOKIE, code, max_age=365 * 86400, samesite="lax", path="/")
    return response
