"""Break-glass reviews (紧急查阅复核): the queue of the uses waiting for the signed-in
person's review (the school's principal: uses of their school's records; a supervisor:
the district's, never their own), each with who, when, which kind of record of which
school (a link to it, which asks a supervisor for a reason of their own) and the stated
reason; and marking one 合理 or 不合理 with a comment. The queue and each review pass the
gate (AUDIT_REVIEW) in anxin.audit.reviews, which records them; a review is itself an
entry of the audit trail and cannot be changed."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.responses import Response

from anxin import audit
from anxin.audit import labels
from anxin.service import Anxin
from domain.break_glass import VERDICTS
from web import i18n
from web.deps import App, Form, PageUser, User, get_web, redirect, render
from web.forms import run_form, text

router = APIRouter(include_in_schema=False)

# Where each kind of record opens (a screening use names its student).
HREFS = {
    "case": "/cases/",
    "file": "/support/",
    "pairing": "/pairings/",
    "student": "/students/",
    "screening": "/students/",
}


def _page(
    request: Request, app: Anxin, user: User, status: int = 200, error: str | None = None, error_for: int | None = None
) -> Response:
    return render(
        request,
        "reviews.html",
        status,
        uses=audit.review_queue(app, user.actor),
        hrefs=HREFS,
        kinds=labels.record_kind_label,
        verdicts=VERDICTS,
        error=error,
        error_for=error_for,
    )


@router.get("/reviews")
def reviews(request: Request, user: PageUser, app: App) -> Response:
    return _page(request, app, user)


@router.post("/reviews/{access_seq}")
def review(
    request: Request, access_seq: Annotated[int, Path(ge=1, le=2**63 - 1)], user: PageUser, form: Form
) -> Response:
    return run_form(
        request,
        lambda app: audit.review_break_glass(app, user.actor, access_seq, text(form, "verdict"), text(form, "comment")),
        lambda _: redirect("/reviews", request, i18n.gettext("已记录复核结论")),
        lambda r: _page(request, get_web(request).app, user, r.status, r.message, access_seq),
    )
