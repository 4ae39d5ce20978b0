"""What every route needs: the application, the signed-in person, CSRF, rendering.

Routes stay thin: parse the form, make one application call or one view query, and
render. The gate in the application layer decides every access; nothing here does.
"""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncGenerator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates
from jinja2 import pass_context
from markupsafe import Markup
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.formparsers import FormParser, MultiPartException, MultiPartParser

from anxin.quarantine import UNREADABLE_LABEL
from anxin.service import Anxin
from domain import access
from domain.break_glass import REASON_RULE
from domain.common import Actor, DomainError, Erased, NotFound, PermissionDenied, Role
from web import i18n, menu
from web.security import (
    COOKIE,
    LANG_COOKIE,
    ApiTokens,
    LoginThrottle,
    Session,
    SessionStore,
    csrf_ok,
)
from web.tables import label_tables

HERE = Path(__file__).parent
UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}


class Web:
    """The running web application's state: one Anxin application, shared by all
    requests; commands are serialised (one writer), reads run side by side."""

    def __init__(self, app: Anxin, *, secure_cookies: bool = False) -> None:
        self.app = app
        self.secure_cookies = secure_cookies
        self.sessions = SessionStore(app)
        self.throttle = LoginThrottle(app)
        self.tokens = ApiTokens(app)
        self.templates = Jinja2Templates(directory=str(HERE / "templates"))
        env = self.templates.env
        env.globals.update(
            _=i18n.gettext,
            fmt_date=i18n.fmt_date,
            fmt_datetime=i18n.fmt_datetime,
            LANGUAGES=i18n.LANGUAGES,
            Role=Role,
            count_cells=count_cells,
            record_no=record_no,
            may=may,
        )
        env.filters["date"] = i18n.fmt_date
        env.filters["datetime"] = i18n.fmt_datetime
        env.filters["system"] = i18n.system_text  # system-written Chinese, in the reader's language
        env.filters["label_tables"] = label_tables  # base.html: every table's cells labelled (phones)
        self._write = threading.RLock()
        self._names: dict[str, str] = {}
        # The last verification of the audit trail run from the audit page (this process's).
        self.last_verification: dict[str, Any] | None = None

    @contextmanager
    def writing(self) -> Iterator[Anxin]:
        with self._write:
            yield self.app

    def forget_shredded(self) -> None:
        """Once per request: if any process (the CLI beside this server, another worker)
        has shredded a stream since, every name kept here is dropped (a new dict: a name
        being looked up meanwhile goes into the old one, dropped with it)."""
        if self.app.erasure.notice_shreds():
            self._names = {}

    def staff_name(self, staff_id: str) -> str:
        names = self._names  # read once: see forget_shredded
        name = names.get(staff_id)
        if name is None:
            name = self.app.roster.staff_name(staff_id)
            if name != UNREADABLE_LABEL:  # a quarantined record may be restored: asked again
                names[staff_id] = name
        return name


def count_cells(rows: Any, metrics: Any) -> Markup:
    """Table cells of a report's counts: for each row (a school, or the total), one cell
    per metric id. The report pages' thousands of cells made in one step rather than one
    template expression each; counts only, each passed through int(), so nothing needs
    escaping."""
    return Markup("".join([f"<td>{int(r[m])}</td>" for r in rows for m in metrics]))


@pass_context
def record_no(context: Any, stream_id: Any, school: bool | None = None) -> str:
    """A record's number as people read it aloud and type it (QL-2026-0003, anxin.numbers):
    the one way every page shows which case, file or pairing it means. From `numbers` in
    the page's context, where a route asked the application for a list's numbers at once
    (`app.record_numbers(ids)`, one query), or else asked now for this one. The school is
    named beside it (QL-2026-0003 · 第一中学) where the reader sees several schools (a
    district person) or when `school` says so: numbers start again at every school. A
    record without a number yet (saved by a process of an older version, numbered at the
    next start) shows the first 8 digits of its id, as pages did before (the audit search
    still takes them)."""
    if not stream_id:
        return "—"
    sid = str(stream_id)  # (an aggregate's id is a UUID)
    known = context.get("numbers") or {}
    number = known.get(sid)
    if number is None and sid not in known:
        number = get_web(context["request"]).app.record_numbers([sid]).get(sid)
    if number is None:
        return sid[:8]
    if school is None:
        user = context.get("user")
        school = user is not None and user.actor.school_id is None
    return f"{number.text} · {number.school}" if school and number.school else number.text


ACTIONS = frozenset(v for k, v in vars(access).items() if k.isupper() and isinstance(v, str) and "." in v) | {
    access.SHRED
}


@pass_context
def may(
    context: Any, action: str, kind: str, stream_id: Any = None, school_id: str | None = None, break_glass: Any = None
) -> bool:
    """Whether the person reading the page may do `action` (a `domain.access` action) on a
    record (`kind` and its id) or, without an id, in a school (the reader's own by default):
    the gate's own rule (`app.permits`, nothing recorded), so a page offers a form or a link
    only to those whose request the gate would let through. Not a second permission list:
    the same `decide` the command will ask. An unknown action is a mistake in the template."""
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}")
    user: User | None = context.get("user")
    if user is None:
        return False
    if stream_id is None and school_id is None:
        school_id = user.actor.school_id
    app = get_web(context["request"]).app
    return bool(
        app.permits(
            user.actor,
            action,
            kind,
            str(stream_id) if stream_id else None,
            school_id,
            str(break_glass) if break_glass else None,
        )
    )


def get_web(request: Request) -> Web:
    return request.app.state.web  # type: ignore[no-any-return]


def get_app(request: Request) -> Anxin:
    return get_web(request).app


@dataclass
class User:
    """The person making this request, as the gate sees them."""

    actor: Actor
    name: str
    session: Session | None  # None when signed in by an API token

    @property
    def staff_id(self) -> str:
        return self.actor.staff_id

    @property
    def csrf(self) -> str:
        return self.session.csrf if self.session else ""

    def has(self, *roles: Role) -> bool:
        return any(self.actor.has(r) for r in roles)


# The refusals that are not about what was typed: the error page answers them (web/app.py),
# with these statuses, wherever they are raised; every other DomainError of a form is shown
# on the form's own page.
ERROR_PAGE: dict[type[DomainError], int] = {PermissionDenied: 403, NotFound: 404, Erased: 410}


def for_error_page(error: DomainError, on_page: tuple[type[DomainError], ...] = ()) -> bool:
    """Whether the error page answers this error; `on_page`: those a form shows on its own
    page instead (a typed student number that names nobody)."""
    return isinstance(error, tuple(ERROR_PAGE)) and not isinstance(error, on_page)


class LoginRequired(Exception):
    """No valid session: pages send the browser to the login page."""


class CsrfRefused(Exception):
    pass


class ApiUnauthorized(Exception):
    pass


class TokenReadOnly(PermissionDenied):
    """A read-only API token asked to change something."""

    message = "只读令牌不能用于修改数据"


def language(request: Request) -> str:
    """The reader's language: the switch's cookie; for the API also Accept-Language.
    Pages stay Chinese unless switched, whatever the browser's own language."""
    lang = request.cookies.get(LANG_COOKIE)
    if lang in i18n.LANGUAGES:
        return lang
    if request.url.path.startswith("/api/"):
        for part in request.headers.get("accept-language", "").split(","):
            code = part.split(";")[0].strip().lower()[:2]
            if code in i18n.LANGUAGES:
                return code
    return i18n.DEFAULT


def _user_for(web: Web, session: Session) -> User | None:
    try:
        actor = web.app.gate.actor(session.staff_id)
    except DomainError:  # the account was deactivated since
        web.sessions.drop(session.id)
        return None
    return User(actor, web.staff_name(actor.staff_id), session)


def session_user(request: Request) -> User | None:
    web = get_web(request)
    web.forget_shredded()
    session = web.sessions.get(request.cookies.get(COOKIE))
    return _user_for(web, session) if session else None


# The largest form accepted, upload included (a roster file is at most 10 MB). The whole
# body is read into memory (refused past this), and an uploaded file stays in memory: no
# temporary file, ever, for a roster or screening results (starlette spools an upload over
# 1 MB to a temporary file on disk by default).
MAX_FORM_BYTES = 12 * 1024 * 1024


async def _form_in_memory(request: Request) -> FormData:
    """The request's form, parsed from its body held in memory (see MAX_FORM_BYTES)."""
    too_large = HTTPException(413, i18n.gettext("提交的内容过大（最多 {n} MB）", n=MAX_FORM_BYTES // (1024 * 1024)))
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_FORM_BYTES:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_FORM_BYTES:
            raise too_large
        chunks.append(chunk)
    body = b"".join(chunks)

    async def stream() -> AsyncGenerator[bytes, None]:
        yield body

    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    try:
        if kind == "multipart/form-data":
            parser = MultiPartParser(request.headers, stream(), max_part_size=MAX_FORM_BYTES)
            parser.spool_max_size = MAX_FORM_BYTES + 1  # never rolled over to a file on disk
            return await parser.parse()
        if kind == "application/x-www-form-urlencoded":
            return await FormParser(request.headers, stream(), max_part_size=MAX_FORM_BYTES).parse()
    except MultiPartException as e:
        raise HTTPException(400, e.message) from None
    return FormData()


async def form_data(request: Request) -> dict[str, Any]:
    """The submitted form as a dict (lists for repeated fields), read in memory; CSRF
    checked here for every state-changing page request."""
    if request.method not in UNSAFE:
        return {}
    form = await _form_in_memory(request)
    data: dict[str, Any] = {}
    for key in form.keys():
        values = [v for v in form.getlist(key) if isinstance(v, str)]
        uploads = [v for v in form.getlist(key) if not isinstance(v, str)]
        if uploads:
            data[key] = uploads[0]
        elif len(values) > 1:
            data[key] = values
        else:
            data[key] = values[0] if values else ""
    request.state.form = data
    return data


Form = Annotated[dict[str, Any], Depends(form_data)]


async def page_user(request: Request, form: Form) -> User:
    i18n.current.set(language(request))
    user = session_user(request)
    if user is None:
        raise LoginRequired()
    if request.method in UNSAFE and not csrf_ok(user.session, form.get("csrf_token")):  # type: ignore[arg-type]
        raise CsrfRefused()
    request.state.user = user
    return user


def api_user(request: Request) -> User:
    i18n.current.set(language(request))
    web = get_web(request)
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        grant = web.tokens.grant_for(auth[7:].strip())  # None: unknown, revoked or expired
        if grant is None:
            raise ApiUnauthorized()
        web.forget_shredded()
        try:
            actor = web.app.gate.actor(grant.staff_id)
        except DomainError as e:
            raise ApiUnauthorized() from e
        if request.method in UNSAFE and grant.scope != "write":
            raise TokenReadOnly()
        # The token's id goes with the actor: every decision of the gate records it.
        user = User(replace(actor, token_id=grant.token_id), web.staff_name(grant.staff_id), None)
    else:
        found = session_user(request)
        if found is None:
            raise ApiUnauthorized()
        user = found
        if request.method in UNSAFE and not csrf_ok(user.session, request.headers.get("x-csrf-token")):  # type: ignore[arg-type]
            raise CsrfRefused()
    request.state.user = user
    return user


# What a route declares it needs (FastAPI resolves each once per request; Form is above).
App = Annotated[Anxin, Depends(get_app)]
PageUser = Annotated[User, Depends(page_user)]
ApiUser = Annotated[User, Depends(api_user)]


# -- rendering --------------------------------------------------------------------------
def flash(request: Request, message: str, kind: str = "ok") -> None:
    user: User | None = getattr(request.state, "user", None)
    if user and user.session:
        user.session.data.setdefault("flash", []).append((kind, message))
        get_web(request).sessions.save_data(user.session)  # the next page may be served by another worker


KEPT = "refused_form"
KEPT_SECONDS = 600  # a refused form is shown again by the next rendering of its page within this time


def keep_refusal(request: Request, target: str, status: int, message: str, context: dict[str, Any]) -> bool:
    """Keep a refused form for the page at `target` (web.forms.run_form's redirect): the
    message, the status, what was typed (no CSRF token, no upload) and `context`, in the
    session's data, which is stored sealed in the database (names and narratives are never
    in clear at rest, never in the address, and any worker process serves the next page).
    False without a session (an API token): the page is answered at once instead."""
    user: User | None = getattr(request.state, "user", None)
    if user is None or user.session is None:
        return False
    typed = {
        k: v
        for k, v in (getattr(request.state, "form", {}) or {}).items()
        if k != "csrf_token" and (isinstance(v, str) or (isinstance(v, list) and all(isinstance(x, str) for x in v)))
    }
    user.session.data[KEPT] = {
        "path": target.split("#", 1)[0].split("?", 1)[0],
        "status": status,
        "error": message,
        "form": typed,
        "context": context,
        "until": time.time() + KEPT_SECONDS,
    }
    get_web(request).sessions.save_data(user.session)
    return True


def _kept_refusal(request: Request, user: User | None) -> dict[str, Any] | None:
    """The refused form kept for this page, taken (shown once)."""
    if user is None or user.session is None or request.method != "GET" or KEPT not in user.session.data:
        return None
    kept = user.session.data[KEPT]
    if kept.get("path") != request.url.path and time.time() < float(kept.get("until", 0)):
        return None  # for another page: left for it
    user.session.data.pop(KEPT)
    return kept if kept.get("path") == request.url.path and time.time() < float(kept.get("until", 0)) else None


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    web = get_web(request)
    user: User | None = getattr(request.state, "user", None)
    flashes = user.session.data.pop("flash", []) if user and user.session else []
    kept = _kept_refusal(request, user)
    if kept is not None and not context.get("error"):  # a refused form of this page: shown once, beside the form
        context = {**context, "error": kept["error"], **kept["context"], "form": kept["form"]}
        status_code = int(kept["status"])
    if (flashes or kept is not None) and user and user.session:
        web.sessions.save_data(user.session)
    context.update(
        request=request,
        user=user,
        lang=i18n.current.get(),
        flashes=flashes,
        csrf_token=user.csrf if user else "",
        nav=(nav := nav_for(user)),
        nav_current=menu.current(request.url.path, [href for href, _label in nav]),
        path=request.url.path,
        unread=_unread(web, user),
    )
    context.setdefault("form", getattr(request.state, "form", {}) or {})
    return web.templates.TemplateResponse(request, template, context, status_code=status_code)


ERROR_TITLES = {403: "无权访问", 404: "未找到", 410: "记录已删除", 409: "记录已被他人修改"}


def error_page(request: Request, status: int, message: str) -> HTMLResponse:
    """The error page in the site's layout: the menu of the person signed in (also on an
    address no route answers, where no route has looked them up), a title in their
    language, the reason, and the ways on: the part of the site the address belongs to, and
    the start page."""
    if getattr(request.state, "user", None) is None:
        try:
            i18n.current.set(language(request))
            request.state.user = session_user(request)
        except Exception:  # noqa: BLE001 - an error page must answer even if the session cannot be read
            request.state.user = None
    title = i18n.gettext(ERROR_TITLES.get(status, "无法完成"))
    return render(request, "error.html", status, title=title, message=message, status=status)


def _unread(web: Any, user: User | None) -> int:
    """The count beside 提醒 in the header (one indexed count; 0 if it cannot be read, so
    that an error page still answers)."""
    if user is None:
        return 0
    try:
        return int(web.app.notifications.unread_count(user.actor))
    except Exception:  # noqa: BLE001 - the header must not fail the page
        return 0


def reason_form(request: Request, action: str, status: int = 200, error: DomainError | None = None) -> HTMLResponse:
    """The break-glass form: a supervisor states why before a named record is read (the
    reason goes to `action`, which reads the record with it). A reason the rule does not
    take is answered with the rule itself (what a reason must say), not as a refusal."""
    text = None
    if error is not None:
        weak = isinstance(error, PermissionDenied) and error.details.get("reason") == REASON_RULE
        text = i18n.gettext(REASON_RULE) if weak else i18n.error_text(error)
    return render(request, "break_glass.html", status, action=action, error=text)


def redirect(url: str, request: Request | None = None, message: str | None = None) -> RedirectResponse:
    if request is not None and message:
        flash(request, message)
    return RedirectResponse(url, status_code=303)


def login_url(request: Request) -> str:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return "/login?next=" + quote(target, safe="")


def nav_for(user: User | None) -> list[tuple[str, str]]:
    """The menu: (path, label) for what this person's roles may use, as the permission
    table decides (web/menu.py)."""
    if user is None:
        return []
    return [(item.path, i18n.gettext(item.label)) for item in menu.items_for(user.actor)]
