"""Mental-health screenings (心理筛查): this school year's coverage (screened / enrolled
per class) with the students not yet screened, the import of a results CSV, all
or nothing, and one student's result typed in. The coverage query and the import pass the gate (FILE_LIST or STATS_READ;
SCREENING_IMPORT)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from fastapi import APIRouter, Request
from fastapi.responses import Response

from anxin.service import Anxin
from domain import access
from domain.common import Erased, InvalidInput, PermissionDenied
from domain.policy import RISK_LABELS
from domain.screening import ImportRejected
from projections.support_register import RegisterLine, coverage, register, student_refs
from web import i18n, picker
from web.deps import App, Form, PageUser, User, get_web, redirect, render
from web.forms import Refused, day_or, run_form, uploaded_text

router = APIRouter(include_in_schema=False)
FIXED_COLUMNS = ("student_no", "instrument", "date")
ONE_FIELDS = ("student", "student_id", "instrument", "screened_on", "answers")  # the single-result form


def template_header(app: Anxin) -> str:
    """The header import_screenings expects: the fixed columns, then as many item
    columns as the longest configured instrument has."""
    n = max(i.items for i in app.screenings.instruments.values())
    return ",".join([*FIXED_COLUMNS, *(f"item{i}" for i in range(1, n + 1))])


def _reason(text: str) -> str:
    """A row's reasons (joined by ；), each in the reader's language."""
    lang = i18n.current.get()
    if lang == i18n.DEFAULT:
        return text
    return "; ".join(i18n.lookup(part, lang) or part for part in text.split("；"))


MAX_LINKED = 500  # the files one confirmation lists (an import of a whole grade stays under)


def _file_ids(typed: str | None) -> list[str]:
    """The files an import or a typed-in result opened or raised, as the confirmation's
    address names them (ids only, comma-separated); anything else is ignored."""
    out: list[str] = []
    for part in (typed or "").split(","):
        try:
            out.append(str(UUID(part.strip())))
        except ValueError:
            continue
    return out[:MAX_LINKED]


def _linked_files(app: Anxin, user: User, ids: list[str]) -> list[RegisterLine]:
    """Those files as the school's register shows them (FILE_LIST, recorded): the student,
    the level, who is responsible, each linked by its number. Refused the register: none."""
    if not ids:
        return []
    try:
        lines = register(app, user.actor, user.actor.school_id or "")
    except PermissionDenied:
        return []
    wanted = set(ids)
    return [line for line in lines if line.file_id in wanted]


def _done_url(result: Any) -> str:
    """The confirmation: the screening page, with the files the results opened or raised."""
    ids = list(getattr(result, "file_ids", []) or [])
    return "/screenings?files=" + ",".join(ids) if ids else "/screenings"


def _page(request: Request, user: User, status: int = 200, **extra: Any) -> Response:
    web = get_web(request)
    app = web.app
    cov = coverage(app, user.actor, user.actor.school_id or "")
    missing = student_refs(app, cov.not_screened)
    instruments = sorted(app.screenings.instruments.values(), key=lambda i: i.id)
    linked = _linked_files(app, user, _file_ids(request.query_params.get("files")))
    return render(
        request,
        "screenings/index.html",
        status,
        cov=cov,
        missing=missing,
        instruments=instruments,
        header=template_header(app),
        today=app.now().date().isoformat(),
        linked=linked,
        linked_refs={r.id: r for r in student_refs(app, [x.student_id for x in linked if x.student_id])},
        numbers=app.record_numbers([x.file_id for x in linked]),
        risk_labels=RISK_LABELS,
        staff_name=web.staff_name,
        **extra,
    )


@router.get("/screenings")
def screenings(request: Request, user: PageUser) -> Response:
    return _page(request, user, errors=None)


@router.get("/screenings/template.csv")
def screenings_template(user: PageUser, app: App) -> Response:
    header = template_header(app)
    return Response(
        "\ufeff" + header + "\r\n",
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="anxin-screening-template.csv"'},
    )


@router.post("/screenings/import")
def screenings_import(request: Request, user: PageUser, form: Form) -> Response:
    def refused(r: Refused) -> Response:
        if isinstance(r.error, ImportRejected):  # every bad line, by number
            errors = [(line, _reason(reason)) for line, reason in r.error.errors]
            return _page(request, user, r.status, errors=errors, error=r.message)
        return _page(request, user, r.status, errors=None, error=r.message)

    return run_form(
        request,
        lambda app: app.screenings.import_screenings(user.actor, user.actor.school_id or "", uploaded_text(form)),
        lambda result: redirect(_done_url(result), request, _done(result)),
        refused,
        on_page=(Erased,),
    )


def _done(result: Any) -> str:
    return i18n.gettext(
        "已导入 {n} 条筛查结果：{flagged} 条达到预警线，{crisis} 条有危机信号；新建档案 {opened} 份，提高风险等级 {raised} 份",
        n=result.imported,
        flagged=result.flagged,
        crisis=result.crisis,
        opened=result.files_opened,
        raised=result.files_raised,
    )


@router.post("/screenings/record")
def screenings_record(request: Request, user: PageUser, form: Form) -> Response:
    """One student's result typed in (a make-up screening): the same rules and the same
    consequences (flag, support file, risk level) as a row of the import."""
    kept = {k: str(form.get(k, "") or "").strip() for k in ONE_FIELDS}

    def command(app: Anxin) -> Any:
        day = day_or(kept["screened_on"], app.now().date())

        # the picker (name, number, pinyin or initials), or a student's id as the API posts it
        def importing() -> object:
            return app.check(user.actor, access.SCREENING_IMPORT, "screening", school_id=user.actor.school_id)

        typed = kept["student"]
        student_id = picker.picked_student(app, user.actor, typed, importing) if typed else kept["student_id"]
        if not student_id:
            raise InvalidInput(reason="请填写学生（姓名、学号、拼音或首字母）")
        return app.screenings.record_screening(
            user.actor, student_id, instrument=kept["instrument"], screened_on=day, answers=kept["answers"]
        )  # as typed: parsed past the gate

    return run_form(
        request,
        command,
        lambda result: redirect(_done_url(result), request, _done(result)),
        lambda r: _page(request, user, r.status, errors=None, one_error=r.message, one=kept),
        on_page=(Erased,),
    )
