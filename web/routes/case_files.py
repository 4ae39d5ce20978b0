"""The printable case file (案卷) of a bullying case and of a support file: a print page (the
page with a print stylesheet, /cases/{id}/dossier, /support/{id}/dossier) and the same page
as a PDF (…/dossier.pdf, made in memory by web/pdf.py and streamed). (This module's name sorts before
`cases`, whose POST /cases/{id}/{action} would otherwise answer for /cases/{id}/dossier.)

It shows what the viewer may see, by the rules of the case page and the file page, through
the same gate (one recorded decision per print): the whole case or file; a class teacher of a
party's class the case's status line; a file's one-to-one responsible person (包联人) the
plan part and its history; a supervisor only after stating a reason (break-glass: the
reason form first, then POST with the reason, which the gate keeps sealed with its
decision). Every print page and every PDF is also an `export` entry of the audit trail
(who, which record, which form)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from anxin.core import ERASED_LABEL
from anxin.service import Anxin
from domain import access
from domain.break_glass import is_meaningful_reason
from domain.bullying import (
    AUTHORITIES,
    CHANNELS,
    FORMS,
    INTERVENTION_KINDS,
    MEASURES,
    PARTS,
    SEVERITIES,
    STATUS_LABELS,
)
from domain.common import Erased, PermissionDenied, Role
from domain.policy import RISK_LABELS
from domain.support import CATEGORIES, CONTACT_METHODS, ORIGINS, REVIEW_OUTCOMES
from projections.timeline_labels import LABELS
from web import i18n
from web.deps import Form, PageUser, User, get_web, reason_form, render
from web.forms import text
from web.pdf import PdfUnavailable, html_to_pdf

router = APIRouter(include_in_schema=False)

# The boxes of the archive block (立卷 / 审核 / 归档 / 保管期限), filled in by hand.
ARCHIVE_BOXES = [
    ("立卷人", "签名", False),
    ("审核人", "签名", False),
    ("归档日期", "年　月　日", False),
    ("保管期限", "永久 / 长期 / 短期", False),
]


def _supervisor_only(user: User) -> bool:
    """A district person without a school: a named record needs a stated reason first."""
    return user.actor.school_id is None and user.has(Role.SUPERVISOR)


def _school_name(app: Anxin, school_id: str) -> str:
    return next((name for sid, name, _d in app.schools() if sid == school_id), "")


def _recorded(request: Request, user: User, what: str, stream_id: str, form: str) -> None:
    """The print or the PDF as an `export` entry of the audit trail (ids and codes only)."""
    with get_web(request).writing() as app:
        app.record_security_event("export", user.staff_id, stream_id, {"what": what, "format": form})


def _answer(request: Request, page: Response, pdf: bool, name: str) -> Response:
    """The page itself, or the same page as a PDF (in memory, streamed as an attachment)."""
    if not pdf or page.status_code != 200:
        return page
    try:
        data = html_to_pdf(bytes(page.body).decode("utf-8"))
    except PdfUnavailable as e:
        return render(request, "dossier/no_pdf.html", 503, message=i18n.error_text(e))
    return Response(
        data,
        media_type="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="{name}.pdf"', "Cache-Control": "no-store"},
    )


def _printed(request: Request, user: User, app: Anxin) -> dict[str, Any]:
    return {"by": get_web(request).staff_name(user.staff_id), "at": app.now()}


def _label(kind: str, event_type: str) -> str:
    return LABELS.get((kind, event_type), "其他记录")


# -- a bullying case -------------------------------------------------------------------------------
def _case_dossier(request: Request, user: User, case_id: str, pdf: bool, break_glass: str | None = None) -> Response:
    web = get_web(request)
    app = web.app
    try:
        case, line, history = app.cases.case_dossier(user.actor, case_id, break_glass)
    except Erased:
        return render(request, "cases/erased.html", 410, case_id=case_id)
    number = app.record_numbers([case_id]).get(case_id)
    school_id = case.school_id if case is not None else app.resource("case", case_id).school_id or ""
    refs: dict[str, Any] = {}
    if case is not None:
        ids = {p["student_id"] for p in case.parties} | {p["student_id"] for p in case.removed_parties}
        ids.update(i["student_id"] for i in case.interventions.values())
        ids.update(d["student_id"] for d in case.dispositions)
        for m in case.measures.values():
            ids.update(m["student_ids"])
        refs = {sid: app.student_ref(sid) for sid in ids}
    page = render(
        request,
        "dossier/case.html",
        case_id=case_id,
        case=case,
        line=line,
        history=history,
        label=lambda t: _label("case", t),
        number=number,
        school=_school_name(app, school_id),
        refs=refs,
        staff_name=web.staff_name,
        status_labels=STATUS_LABELS,
        severities=SEVERITIES,
        parts=PARTS,
        forms_=FORMS,
        channels=CHANNELS,
        measures=MEASURES,
        kinds=INTERVENTION_KINDS,
        authorities=AUTHORITIES,
        boxes=ARCHIVE_BOXES,
        printed=_printed(request, user, app),
        break_glass=break_glass,
        pdf=pdf,
    )
    _recorded(request, user, "case-dossier", case_id, "pdf" if pdf else "print")
    return _answer(request, page, pdf, f"anxin-{number.text if number else case_id[:8]}")


def _case_route(request: Request, case_id: str, user: User, pdf: bool) -> Response:
    if _supervisor_only(user):
        return reason_form(request, request.url.path)
    return _case_dossier(request, user, case_id, pdf)


def _case_with_reason(request: Request, case_id: str, user: User, form: dict[str, Any], pdf: bool) -> Response:
    reason = text(form, "break_glass_reason")
    try:
        return _case_dossier(request, user, case_id, pdf, break_glass=reason)
    except PermissionDenied as e:
        if is_meaningful_reason(reason):
            raise
        return reason_form(request, request.url.path, 400, e)


@router.get("/cases/{case_id}/dossier")
def case_dossier(request: Request, case_id: str, user: PageUser) -> Response:
    return _case_route(request, case_id, user, pdf=False)


@router.get("/cases/{case_id}/dossier.pdf")
def case_dossier_pdf(request: Request, case_id: str, user: PageUser) -> Response:
    return _case_route(request, case_id, user, pdf=True)


@router.post("/cases/{case_id}/dossier")
def case_dossier_reason(request: Request, case_id: str, user: PageUser, form: Form) -> Response:
    return _case_with_reason(request, case_id, user, form, pdf=False)


@router.post("/cases/{case_id}/dossier.pdf")
def case_dossier_pdf_reason(request: Request, case_id: str, user: PageUser, form: Form) -> Response:
    return _case_with_reason(request, case_id, user, form, pdf=True)


# -- a support file --------------------------------------------------------------------------------
def _file_dossier(request: Request, user: User, file_id: str, pdf: bool, break_glass: str | None = None) -> Response:
    web = get_web(request)
    app = web.app
    try:
        f, plan, history = app.support.file_dossier(user.actor, file_id, break_glass)
    except Erased:
        return render(request, "support/erased.html", 410, file_id=file_id)
    number = app.record_numbers([file_id]).get(file_id)
    student_id = f.student_id if f is not None else plan.student_id if plan is not None else ""
    school_id = f.school_id if f is not None else app.resource("file", file_id).school_id or ""
    page = render(
        request,
        "dossier/file.html",
        file_id=file_id,
        f=f,
        p=plan,
        history=history,
        label=lambda t: _label("file", t),
        number=number,
        school=_school_name(app, school_id),
        student=app.student_ref(student_id),  # a name for an already-authorised read
        staff_name=web.staff_name,
        risk_labels=RISK_LABELS,
        categories=CATEGORIES,
        contact_methods=CONTACT_METHODS,
        origins=ORIGINS,
        outcomes=REVIEW_OUTCOMES,
        erased_label=ERASED_LABEL,
        boxes=ARCHIVE_BOXES,
        printed=_printed(request, user, app),
        break_glass=break_glass,
        pdf=pdf,
    )
    _recorded(request, user, "file-dossier", file_id, "pdf" if pdf else "print")
    return _answer(request, page, pdf, f"anxin-{number.text if number else file_id[:8]}")


def _file_route(request: Request, file_id: str, user: User, pdf: bool) -> Response:
    app = get_web(request).app
    if app.gate.needs_reason(user.actor, access.FILE_READ, "file", file_id):
        return reason_form(request, request.url.path)
    return _file_dossier(request, user, file_id, pdf)


def _file_with_reason(request: Request, file_id: str, user: User, form: dict[str, Any], pdf: bool) -> Response:
    reason = text(form, "break_glass_reason")
    try:
        return _file_dossier(request, user, file_id, pdf, break_glass=reason or None)
    except PermissionDenied as e:
        if is_meaningful_reason(reason):
            raise
        return reason_form(request, request.url.path, 400, e)


@router.get("/support/{file_id}/dossier")
def file_dossier(request: Request, file_id: str, user: PageUser) -> Response:
    return _file_route(request, file_id, user, pdf=False)


@router.get("/support/{file_id}/dossier.pdf")
def file_dossier_pdf(request: Request, file_id: str, user: PageUser) -> Response:
    return _file_route(request, file_id, user, pdf=True)


@router.post("/support/{file_id}/dossier")
def file_dossier_reason(request: Request, file_id: str, user: PageUser, form: Form) -> Response:
    return _file_with_reason(request, file_id, user, form, pdf=False)


@router.post("/support/{file_id}/dossier.pdf")
def file_dossier_pdf_reason(request: Request, file_id: str, user: PageUser, form: Form) -> Response:
    return _file_with_reason(request, file_id, user, form, pdf=True)
