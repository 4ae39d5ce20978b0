"""A school's 学生欺凌治理委员会 (issue 17, part B): its members and their capacities. The
principal appoints and removes members (COMMITTEE_ADMIN); the safety lead, who records a
case's meeting, reads the list (COMMITTEE_READ); both decided and recorded below the web
layer (anxin.commands.committee)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from domain.committee import CAPACITIES
from domain.common import Role
from web import i18n
from web.deps import App, Form, PageUser, User, get_web, redirect, render
from web.forms import Refused, run_form, text

router = APIRouter(include_in_schema=False)


def _page(request: Request, user: User, status: int = 200, **extra: Any) -> Response:
    app = get_web(request).app
    body = app.committee.get_body(user.actor, user.actor.school_id or "")
    members = sorted(body.members.values(), key=lambda m: m["since"]) if body else []
    return render(
        request,
        "committee.html",
        status,
        active=[m for m in members if m["left_at"] is None],
        former=[m for m in members if m["left_at"] is not None],
        capacities=CAPACITIES,
        can_edit=user.has(Role.PRINCIPAL),
        **extra,
    )


@router.get("/committee")
def committee(request: Request, user: PageUser, app: App) -> Response:
    return _page(request, user)


@router.post("/committee/appoint")
def appoint(request: Request, user: PageUser, form: Form) -> Response:
    def refused(r: Refused) -> Response:
        return _page(request, user, r.status, error=r.message, form=form)

    return run_form(
        request,
        lambda app: app.committee.appoint_member(
            user.actor, school_id=user.actor.school_id or "", name=text(form, "name"), capacity=text(form, "capacity")
        ),
        lambda _: redirect("/committee", request, i18n.gettext("已登记委员会成员")),
        refused,
    )


@router.post("/committee/leave")
def leave(request: Request, user: PageUser, form: Form) -> Response:
    def refused(r: Refused) -> Response:
        return _page(request, user, r.status, error=r.message)

    return run_form(
        request,
        lambda app: app.committee.remove_member(
            user.actor,
            school_id=user.actor.school_id or "",
            member_id=text(form, "member_id"),
            reason=text(form, "reason"),
        ),
        lambda _: redirect("/committee", request, i18n.gettext("已记录成员离任")),
        refused,
    )
