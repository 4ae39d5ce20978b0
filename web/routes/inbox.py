"""One's notices (提醒): the inbox, each item opening its record; one's email address and
how each kind of notice reaches one (immediately, in a daily digest, or only here). An
administrator's page for a school's group bot and the messages that could not be sent
(their errors only). Everything passes the gate (anxin.notify.Notifications)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from anxin.service import Anxin
from domain.notices import KINDS, parse_mode
from web import i18n
from web.deps import App, Form, PageUser, get_web, redirect, render
from web.forms import run_form, text

router = APIRouter(include_in_schema=False)


def _page(request: Request, app: Anxin, user: PageUser, status: int = 200, error: str | None = None) -> Response:
    with app.decisions_together():
        items = app.notifications.inbox(user.actor)
        settings = app.notifications.settings(user.actor)
        email = app.roster.email_of(user.actor, user.actor.staff_id)
    return render(request, "inbox.html", status, items=items, settings=settings, email=email, error=error)


@router.get("/inbox")
def inbox(request: Request, user: PageUser, app: App) -> Response:
    return _page(request, app, user)


@router.get("/inbox/{notice_id}")
def open_notice(request: Request, notice_id: str, user: PageUser, app: App) -> Response:
    """Mark the notice read and go to its record (whose own page decides what is shown)."""
    return redirect(app.notifications.open(user.actor, notice_id))


@router.post("/inbox/read")
def read_all(request: Request, user: PageUser) -> Response:
    return run_form(
        request,
        lambda app: app.notifications.mark_all_read(user.actor),
        lambda _: redirect("/inbox", request, i18n.gettext("已全部标为已读")),
        lambda r: _page(request, get_web(request).app, user, r.status, r.message),
    )


@router.post("/inbox/settings")
def settings(request: Request, user: PageUser, form: Form) -> Response:
    def change(app: Anxin) -> None:
        choices = {k: parse_mode(k, text(form, f"mode_{k}")) for k in KINDS if text(form, f"mode_{k}")}
        app.roster.set_email(user.actor, user.actor.staff_id, text(form, "email"))
        app.notifications.choose(user.actor, choices)

    return run_form(
        request,
        change,
        lambda _: redirect("/inbox", request, i18n.gettext("提醒设置已保存")),
        lambda r: _page(request, get_web(request).app, user, r.status, r.message),
    )


def _admin_page(request: Request, app: Anxin, user: PageUser, status: int = 200, error: str | None = None) -> Response:
    schools = [(sid, name) for sid, name, d in app.schools() if d == user.actor.district]
    if user.actor.school_id:
        schools = [(sid, name) for sid, name in schools if sid == user.actor.school_id]
    with app.decisions_together():
        bots = {sid: app.notifications.group_bot_set(user.actor, sid) for sid, _ in schools}
        dead = app.notifications.dead_letters(user.actor)
    return render(request, "admin/notifications.html", status, schools=schools, bots=bots, dead=dead, error=error)


@router.get("/admin/notifications")
def admin_notifications(request: Request, user: PageUser, app: App) -> Response:
    return _admin_page(request, app, user)


@router.post("/admin/notifications/{school_id}/bot")
def set_bot(request: Request, school_id: str, user: PageUser, form: Form) -> Response:
    return run_form(
        request,
        lambda app: app.notifications.set_group_bot(user.actor, school_id, text(form, "url")),
        lambda _: redirect("/admin/notifications", request, i18n.gettext("群机器人地址已保存")),
        lambda r: _admin_page(request, get_web(request).app, user, r.status, r.message),
    )
