"""The district's registry of agencies referrals go to (转介机构名录): the district's
administrator or a supervisor lists, adds and retires them (AGENCY_ADMIN, decided and recorded
in anxin.commands.agencies); everyone else is refused. A referral picks from it on the file's
page and the crisis checklist."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from domain.support import AGENCY_KINDS
from web import i18n
from web.deps import App, Form, PageUser, User, get_web, redirect, render
from web.forms import Refused, run_form, text

router = APIRouter(include_in_schema=False)


def _page(request: Request, user: User, status: int = 200, **extra: Any) -> Response:
    app = get_web(request).app
    return render(
        request, "agencies.html", status, agencies=app.agencies.registry(user.actor), kinds=AGENCY_KINDS, **extra
    )


@router.get("/agencies")
def agencies(request: Request, user: PageUser, app: App) -> Response:
    return _page(request, user)


@router.post("/agencies")
def add_agency(request: Request, user: PageUser, form: Form) -> Response:
    def refused(r: Refused) -> Response:
        return _page(request, user, r.status, error=r.message, form=form)

    return run_form(
        request,
        lambda app: app.agencies.add_agency(user.actor, kind=text(form, "kind"), name=text(form, "name")),
        lambda _: redirect("/agencies", request, i18n.gettext("已加入转介机构名录")),
        refused,
    )


@router.post("/agencies/{agency_id}/retire")
def retire_agency(request: Request, agency_id: str, user: PageUser, form: Form) -> Response:
    def refused(r: Refused) -> Response:
        return _page(request, user, r.status, error=r.message)

    return run_form(
        request,
        lambda app: app.agencies.retire_agency(user.actor, agency_id),
        lambda _: redirect("/agencies", request, i18n.gettext("该机构已停用，不再出现在转介选项中")),
        refused,
    )
