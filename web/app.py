"""The web application: FastAPI + Jinja2, server-rendered pages in Simplified Chinese
(English by a switch), and a JSON API under /api/v1 with the same gate behind both.

`create_app()` opens the application from the environment (ANXIN_DATA_DIR or
ANXIN_DATABASE_URL, like the CLI); tests pass their own `Anxin`. It is also the factory
each worker process calls under `anxin serve --workers N` (`web.app:create_app`): nothing
a request needs lives only in one process (sessions and the login throttle are in the
database, web/security.py).
"""

from __future__ import annotations

import gc
import logging
import os
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from anxin import quarantine
from anxin.crypto import KeyError_, Tampered
from anxin.errors import store_problem_message
from anxin.quarantine import Unreadable
from anxin.service import Anxin
from domain.common import Conflict, DomainError
from web import i18n
from web.deps import (
    ERROR_PAGE,
    HERE,
    ApiUnauthorized,
    CsrfRefused,
    LoginRequired,
    Web,
    error_page,
    language,
    login_url,
    render,
)

log = logging.getLogger("anxin.web")
access_log = logging.getLogger("anxin.web.access")

STATUS: dict[type[DomainError], int] = {**ERROR_PAGE, Conflict: 409, Unreadable: 503}
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)

FAVICON_CACHE = {"Cache-Control": "public, max-age=86400"}


class Headers:
    """Every response's security headers, the reader's language for the request, and one
    access-log line (method, path and status only: never a query string or a form, names
    could be in them). Plain ASGI: it only touches the response's first message, where a
    `BaseHTTPMiddleware` would pass every response through a stream of its own."""

    def __init__(self, app: ASGIApp, secure_cookies: bool = False) -> None:
        self.app = app
        self.secure_cookies = secure_cookies

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        i18n.current.set(language(Request(scope)))
        started = time.perf_counter()
        path = scope["path"]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                access_log.info(
                    "%s %s %d %.1fms", scope["method"], path, message["status"], (time.perf_counter() - started) * 1000
                )
                h = MutableHeaders(scope=message)
                h.setdefault("Content-Security-Policy", CSP)
                h.setdefault("X-Frame-Options", "DENY")
                h.setdefault("X-Content-Type-Options", "nosniff")
                h.setdefault("Referrer-Policy", "no-referrer")
                if not path.startswith("/static/") and path != "/favicon.ico":
                    h["Cache-Control"] = "no-store"
                if self.secure_cookies:
                    h.setdefault("Strict-Transport-Security", "max-age=31536000")
            await send(message)

        await self.app(scope, receive, send_with_headers)


class SecuredAPI(FastAPI):
    """FastAPI with `Headers` as its outermost layer, outside even Starlette's own: the
    answer to an unexpected error (the `Exception` handler runs in Starlette's
    ServerErrorMiddleware, outside every middleware added with `add_middleware`) and the
    framework's own refusals carry the same security headers as every page."""

    def __init__(self, *, secure_cookies: bool = False, **kwargs: Any) -> None:
        self.secure_cookies = secure_cookies
        super().__init__(**kwargs)

    def build_middleware_stack(self) -> ASGIApp:
        return Headers(super().build_middleware_stack(), secure_cookies=self.secure_cookies)


def status_of(error: DomainError) -> int:
    for cls, code in STATUS.items():
        if isinstance(error, cls):
            return code
    return 400


def is_api(request: Request) -> bool:
    return request.url.path.startswith("/api/")


def api_error(status: int, code: str, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message, **extra}}, status_code=status)


def _nodelay_on_every_tcp_socket() -> None:
    """Responses leave at once, not 40 ms later. asyncio turns Nagle's algorithm off only
    on sockets whose `proto` is IPPROTO_TCP; with several workers, uvicorn binds the
    listening socket as `socket.socket(family)` (proto 0) and hands it to the worker
    processes, so their connections keep Nagle on and each response waits for the client's
    delayed ACK (measured: 10 ms pages took 52 ms with 2 workers). Every TCP stream gets
    TCP_NODELAY here, whatever its proto says."""
    import asyncio.base_events as base_events
    import socket

    if getattr(base_events._set_nodelay, "anxin", False):  # type: ignore[attr-defined]
        return

    def set_nodelay(sock: socket.socket) -> None:
        if sock.family in (socket.AF_INET, socket.AF_INET6) and sock.type == socket.SOCK_STREAM:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    set_nodelay.anxin = True  # type: ignore[attr-defined]
    base_events._set_nodelay = set_nodelay  # type: ignore[attr-defined]


def create_app(
    anxin: Anxin | None = None, *, secure_cookies: bool | None = None, background_seconds: float | None = 5.0
) -> FastAPI:
    _nodelay_on_every_tcp_socket()
    owns_app = anxin is None
    if anxin is None:
        from anxin.service import open_app

        anxin = open_app()
    if secure_cookies is None:
        secure_cookies = os.environ.get("ANXIN_SECURE_COOKIES", "") == "1"
    i18n.set_school_timezone(anxin.policy.timezone)
    web = Web(anxin, secure_cookies=secure_cookies)
    stop = threading.Event()

    def background() -> None:
        """Other processes' writes reach the views; the audit trail is checkpointed; due
        notifications are delivered (several workers at once: each message is leased)."""
        while not stop.wait(background_seconds or 5.0):
            try:
                anxin.views.catch_up()
                anxin.maybe_checkpoint(every_entries=10_000, every_seconds=3600)
                anxin.notifications.deliver()
            except Exception:  # keep serving; the next round retries
                log.exception("background catch-up failed")

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        worker = None
        # What is loaded at start (the application, its key cache, templates) lives as long as
        # the server: move it out of the cyclic collector's generations, so a full collection
        # during a request does not walk it again and again (tail latency under load).
        gc.collect()
        gc.freeze()
        if background_seconds:
            # In every worker process when there are several: views advance by compare-and-set,
            # so two catching up at once is harmless.
            worker = threading.Thread(target=background, name="anxin-catch-up", daemon=True)
            worker.start()
        log.info("serving in process %d", os.getpid())
        yield
        stop.set()
        if worker:
            worker.join(timeout=10)
        if owns_app:
            anxin.close()

    api = SecuredAPI(
        secure_cookies=secure_cookies,
        title="安心 Anxin API",
        version="1",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        description="学生安全个案管理 JSON 接口。认证：会话 Cookie（写操作需 X-CSRF-Token），或管理员签发的 Bearer 令牌。",
    )
    api.state.web = web
    api.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")

    @api.get("/favicon.ico", include_in_schema=False)
    def _favicon() -> Response:
        # Where every browser looks for a page's icon, linked from base.html too (a day's cache).
        return FileResponse(HERE / "static" / "favicon.ico", media_type="image/x-icon", headers=FAVICON_CACHE)

    # (the security headers and the access log: `Headers`, outermost, added by SecuredAPI)

    @api.exception_handler(LoginRequired)
    async def _login(request: Request, _: LoginRequired) -> Response:
        return RedirectResponse(login_url(request), status_code=303)

    @api.exception_handler(ApiUnauthorized)
    async def _unauth(request: Request, _: ApiUnauthorized) -> Response:
        r = api_error(401, "unauthenticated", i18n.gettext("请先登录，或提供有效的访问令牌"))
        r.headers["WWW-Authenticate"] = "Bearer"
        return r

    @api.exception_handler(CsrfRefused)
    async def _csrf(request: Request, _: CsrfRefused) -> Response:
        message = i18n.gettext("表单已过期或来源不明（CSRF 校验失败），请刷新页面后重试")
        if is_api(request):
            return api_error(403, "csrf", message)
        return render(request, "error.html", 403, title=i18n.gettext("请求被拒绝"), message=message)

    @api.exception_handler(DomainError)
    async def _domain(request: Request, error: DomainError) -> Response:
        status = status_of(error)
        message = i18n.error_text(error)
        if is_api(request):
            rows = getattr(error, "errors", None)  # an import: every bad line, by number
            extra = (
                {
                    "rows": [
                        {
                            "line": n,
                            "problem": i18n.error_text(reason)
                            if not isinstance(reason, str)
                            else (i18n.lookup(reason, i18n.current.get()) or reason)
                            if i18n.current.get() != i18n.DEFAULT
                            else reason,
                        }
                        for n, reason in rows
                    ]
                }
                if isinstance(rows, list)
                else {}
            )
            return api_error(status, error.code, message, **extra)
        return error_page(request, status, message)

    @api.exception_handler(Tampered)
    async def _tampered(request: Request, error: Tampered) -> Response:
        # A read that met an altered record outside the paths that set it aside: that record
        # only is unreadable; the reader gets the same clear answer, not a crash.
        unreadable = (
            error if isinstance(error, Unreadable) else await run_in_threadpool(quarantine.unreadable, web.app, error)
        )
        return await _domain(request, unreadable)

    @api.exception_handler(KeyError_)
    async def _key(request: Request, error: KeyError_) -> Response:
        # The store names a master key this process does not hold (a rotation's new key not
        # yet on this host): nothing was written; the message names the key id, no content.
        log.error("master key: %s", error)
        message = i18n.gettext(
            "服务器暂时无法加密或解密数据（主密钥不一致），操作未完成，未写入任何数据；请联系管理员。"
        )
        if is_api(request):
            return api_error(503, "master_key_unavailable", message)
        return render(request, "error.html", 503, title=i18n.gettext("暂时无法完成"), message=message)

    @api.exception_handler(RequestValidationError)
    async def _invalid(request: Request, error: RequestValidationError) -> Response:
        if is_api(request):
            fields = [
                {"field": ".".join(str(p) for p in e.get("loc", ())[1:]), "problem": e.get("msg", "")}
                for e in error.errors()
            ]
            return api_error(422, "invalid_input", i18n.gettext("输入无效"), fields=fields)
        return render(
            request,
            "error.html",
            400,
            title=i18n.gettext("输入无效"),
            message=i18n.gettext("提交的内容不完整或格式不对，请返回修改"),
        )

    @api.exception_handler(StarletteHTTPException)
    async def _http(request: Request, error: StarletteHTTPException) -> Response:
        if is_api(request):
            code = {404: "not_found", 405: "method_not_allowed"}.get(error.status_code, "http_error")
            return api_error(error.status_code, code, str(error.detail))
        # The framework's own words are English ("Not Found"): ours instead.
        if error.status_code == 404:
            return error_page(request, 404, i18n.gettext("没有这个页面：地址可能输错了，或页面已经移走。"))
        if error.status_code == 405:
            return error_page(request, 405, i18n.gettext("这个地址不能这样打开，请从页面上的链接或按钮进入。"))
        return error_page(request, error.status_code, i18n.gettext(str(error.detail)))

    @api.exception_handler(Exception)
    async def _crash(request: Request, error: Exception) -> Response:
        log.error("unhandled %s on %s %s", type(error).__name__, request.method, request.url.path)
        problem = store_problem_message(error)  # the disk full, the file damaged, the folder read-only
        if problem is not None:
            message = i18n.gettext(problem)
            if is_api(request):
                return api_error(503, "store_unavailable", message)
            return render(request, "error.html", 503, title=i18n.gettext("暂时无法完成"), message=message)
        message = i18n.gettext("服务器内部错误，操作未完成；请稍后重试或联系管理员")
        if is_api(request):
            return api_error(500, "internal_error", message)
        return render(request, "error.html", 500, title=i18n.gettext("出错了"), message=message)

    from web.routes import include_all

    include_all(api)
    return api
