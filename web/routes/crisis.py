"""The crisis pathway's page (心理危机干预): the checklist of a file in crisis, each step with
its due time, who recorded it and when, an overdue mark, and a form to record it. Every
counselor of the school and the principal (CRISIS_READ, CRISIS_WRITE), not only the file's
responsible counselor: the crisis is acted on the same day by whoever is there. The page
shows the crisis, never the counselling notes; the file's own page shows the same checklist
to those who may read the whole file (web/routes/support.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from anxin.service import Anxin
from domain import access
from domain.common import Erased
from domain.policy import RISK_LABELS
from domain.support import CRISIS_STEPS, CRISIS_TRIGGERS, GUARDIAN_METHODS, GUARDIAN_RESPONSES, RETURN_PARTS
from web import i18n
from web.deps import App, Form, PageUser, User, error_page, get_web, redirect, render
from web.forms import Refused, expected_version, run_form

router = APIRouter(include_in_schema=False)

# What the checklist's template needs of the domain's vocabularies (labels translated there).
CRISIS_VOCAB = {
    "crisis_steps": CRISIS_STEPS,
    "crisis_triggers": CRISIS_TRIGGERS,
    "guardian_methods": GUARDIAN_METHODS,
    "guardian_responses": GUARDIAN_RESPONSES,
    "return_parts": RETURN_PARTS,
}


def _text(form: dict[str, Any], name: str) -> str:
    return str(form.get(name, ""))


# Each step's form: the application's command, and what the page says once it is recorded.
Step = Callable[[Anxin, User, str, dict[str, Any], int | None], None]
STEPS: dict[str, tuple[Step, str]] = {
    "assessed": (
        lambda app, u, fid, f, v: app.crisis.record_crisis_assessment(
            u.actor, fid, assessment=_text(f, "assessment"), expected_version=v
        ),
        "已记录风险评估",
    ),
    "guardian_informed": (
        lambda app, u, fid, f, v: app.crisis.record_guardian_informed(
            u.actor,
            fid,
            guardian=_text(f, "guardian"),
            method=_text(f, "method"),
            response=_text(f, "response") or "pending",
            note=_text(f, "note"),
            expected_version=v,
        ),
        "已记录告知监护人",
    ),
    "guardian_response": (
        lambda app, u, fid, f, v: app.crisis.record_guardian_response(
            u.actor, fid, response=_text(f, "response"), note=_text(f, "note"), expected_version=v
        ),
        "已记录监护人意见",
    ),
    "supervision": (
        lambda app, u, fid, f, v: app.crisis.record_supervision(
            u.actor, fid, supervisors=_text(f, "supervisors"), note=_text(f, "note"), expected_version=v
        ),
        "已记录安全监护安排",
    ),
    "handed_over": (
        lambda app, u, fid, f, v: app.crisis.record_handover(
            u.actor, fid, guardian=_text(f, "guardian"), note=_text(f, "note"), expected_version=v
        ),
        "已记录移交监护人",
    ),
    "referral": (
        lambda app, u, fid, f, v: app.crisis.record_crisis_referral(
            u.actor,
            fid,
            agency_id=_text(f, "agency_id") or None,
            institution=_text(f, "institution"),
            note=_text(f, "note"),
            expected_version=v,
        ),
        "已记录转介",
    ),
    "feedback": (
        lambda app, u, fid, f, v: app.crisis.record_referral_feedback(
            u.actor, fid, summary=_text(f, "summary"), expected_version=v
        ),
        "已记录转介回执",
    ),
    "medical_advice": (
        lambda app, u, fid, f, v: app.crisis.note_medical_advice(
            u.actor, fid, advice=_text(f, "advice"), expected_version=v
        ),
        "已记录医生建议",
    ),
    "return_assessed": (
        lambda app, u, fid, f, v: app.crisis.record_return_assessment(
            u.actor, fid, assessment=_text(f, "assessment"), expected_version=v
        ),
        "已记录复学评估意见",
    ),
}


def _page(request: Request, user: User, file_id: str, status: int = 200, **extra: Any) -> Response:
    web = get_web(request)
    app = web.app
    try:
        view = app.crisis.get_crisis(user.actor, file_id)
    except Erased:
        return render(request, "support/erased.html", 410)
    return render(
        request,
        "crisis/crisis.html",
        status,
        view=view,
        student=app.student_ref(view.student_id),  # a name for an already-authorised read
        staff_name=web.staff_name,
        # Whether the whole file is theirs to read (asked without recording: only a link).
        reads_file=app.gate.permits(user.actor, access.FILE_READ, "file", file_id),
        back="crisis",
        agencies=app.agencies.for_school(view.school_id),  # the registry a referral picks from
        risk_labels=RISK_LABELS,
        **CRISIS_VOCAB,
        **extra,
    )


@router.get("/crisis/{file_id}")
def crisis_page(request: Request, file_id: str, user: PageUser, app: App) -> Response:
    return _page(request, user, file_id)


@router.post("/crisis/{file_id}/{step}")
def crisis_step(request: Request, file_id: str, step: str, user: PageUser, form: Form) -> Response:
    found = STEPS.get(step)
    if found is None:
        return error_page(request, 404, i18n.gettext("未知的操作"))
    call, done = found
    # Back to the page the form was on: the file's own page, or the crisis page.
    on_file = form.get("back") == "file"
    target = f"/support/{file_id}#crisis" if on_file else f"/crisis/{file_id}"

    def refused(r: Refused) -> Response:
        if on_file:
            from web.routes.support import _file_page

            return _file_page(request, user, file_id, r.status, crisis_active=step, error=r.message, form=form)
        return _page(request, user, file_id, r.status, crisis_active=step, error=r.message, form=form)

    return run_form(
        request,
        lambda app: call(app, user, file_id, form, expected_version(form)),
        lambda _: redirect(target, request, i18n.gettext(done)),
        refused,
    )
