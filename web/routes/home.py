"""The start page: a person's own work queue (待办), or where their role begins; at the
top, for those who review them, how many break-glass uses wait for their review."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from anxin import audit
from domain.common import Role
from projections.work_queue import work_queue
from web.deps import App, PageUser, redirect, render

router = APIRouter(include_in_schema=False)


@router.get("/")
def home(request: Request, user: PageUser, app: App) -> Response:
    if user.actor.school_id is None:
        if user.has(Role.SUPERVISOR):
            return redirect("/district")
        if user.has(Role.ADMINISTRATOR):
            return redirect("/admin/accounts")
    items = work_queue(app, user.actor)
    numbers = app.record_numbers([i.stream_id for i in items])
    return render(
        request,
        "home.html",
        items=items,
        numbers=numbers,
        overdue=sum(1 for i in items if i.overdue),
        today=app.now().date(),
        pending_reviews=audit.pending_review_count(app, user.actor),  # a principal's (None: reviews none)
    )
