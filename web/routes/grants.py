"""Grants of roles waiting for a second person: the list (`/grants`) of those the signed-in
person may approve (another administrator; the school's principal for school roles; a
supervisor for supervisor) or asked for, and approving or declining one. The gate decides
the list (ROLE_GRANT_LIST, once, at the scope asked: the viewer's school, or for a
district's administrator or supervisor the district or one school of it, `?school=`) and
each approval (ROLE_GRANT_APPROVE): never the person who asked, nor the account's holder."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from anxin.service import Anxin
from web import i18n
from web.deps import App, Form, PageUser, get_web, redirect, render
from web.forms import run_form

router = APIRouter(include_in_schema=False)


def _schools(app: Anxin, user: PageUser) -> list[tuple[str, str]]:
    """The schools a district's viewer may narrow the list to (their district's); none for
    a school's own staff, whose list is their school's."""
    if user.actor.school_id is not None:
        return []
    return [(sid, name) for sid, name, district in app.schools() if district == user.actor.district]


def _page(
    request: Request, app: Anxin, user: PageUser, status: int = 200, error: str | None = None, school: str = ""
) -> Response:
    schools = _schools(app, user)
    return render(
        request,
        "grants.html",
        status,
        grants=app.roster.pending_grants(user.actor, school or None),
        schools=schools,
        school_names=dict(schools),
        school=school,
        error=error,
    )


@router.get("/grants")
def grants(request: Request, user: PageUser, app: App, school: str = "") -> Response:
    return _page(request, app, user, school=school.strip())


@router.post("/grants/{staff_id}/{request_id}/approve")
def approve(request: Request, staff_id: str, request_id: str, user: PageUser) -> Response:
    return run_form(
        request,
        lambda app: app.roster.approve_role_grant(user.actor, staff_id, request_id),
        lambda _: redirect("/grants", request, i18n.gettext("已批准：角色已生效")),
        lambda r: _page(request, get_web(request).app, user, r.status, r.message),
    )


@router.post("/grants/{staff_id}/{request_id}/decline")
def decline(request: Request, staff_id: str, request_id: str, user: PageUser, form: Form) -> Response:
    return run_form(
        request,
        lambda app: app.roster.decline_role_grant(user.actor, staff_id, request_id, form.get("reason", "")),
        lambda _: redirect("/grants", request, i18n.gettext("已拒绝该角色授予")),
        lambda r: _page(request, get_web(request).app, user, r.status, r.message),
    )
