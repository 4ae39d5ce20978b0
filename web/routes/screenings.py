"""Mental-health screenings (心理筛查): this school year's coverage (screened / enrolled
per class) with the students not yet screened, the import of a results CSV, all
or nothing, and one student's result typed in. The coverage query and the import pass the gate (FILE_LIST or STATS_READ;
SCREENING_IMPORT)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from domain.common import DomainError, InvalidInput
from domain.screening import ImportRejected
from projections.support_register import coverage, student_refs
from web import i18n
from web.deps import User, form_data, form_day, get_web, page_user, redirect, render

router = APIRouter(include_in_schema=False)
FIXED_COLUMNS = ("student_no", "instrument", "date")
ONE_FIELDS = ("student_id", "instrument", "screened_on", "answers")  # the single-result form


def template_header(app: Any) -> str:
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


def _page(request: Request, user: User, status: int = 200, **extra: Any) -> Response:
    app = get_web(request).app
    cov = coverage(app, user.actor, user.actor.school_id or "")
    missing = student_refs(app, cov.not_screened)
    instruments = sorted(app.screenings.instruments.values(), key=lambda i: i.id)
    return render(
        request,
        "screenings/index.html",
        status,
        cov=cov,
        missing=missing,
        instruments=instruments,
        header=template_header(app),
        today=app.now().date().isoformat(),
        **extra,
    )


@router.get("/screenings")
def screenings(request: Request, user: User = Depends(page_user)) -> Response:
    return _page(request, user, errors=None)


@router.get("/screenings/template.csv")
def screenings_template(request: Request, user: User = Depends(page_user)) -> Response:
    header = template_header(get_web(request).app)
    return Response(
        "\ufeff" + header + "\r\n",
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="anxin-screening-template.csv"'},
    )


@router.post("/screenings/import")
def screenings_import(request: Request, user: User = Depends(page_user), form: dict = Depends(form_data)) -> Response:
    web = get_web(request)
    upload = form.get("file")
    try:
        if upload is None or isinstance(upload, str):
            raise InvalidInput(reason="请选择要导入的 CSV 文件")
        try:
            text = upload.file.read().decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidInput(reason="文件不是 UTF-8 编码") from None
        with web.writing() as app:
            result = app.screenings.import_screenings(user.actor, user.actor.school_id or "", text)
    except ImportRejected as e:
        errors = [(line, _reason(reason)) for line, reason in e.errors]
        return _page(request, user, 400, errors=errors, error=i18n.error_text(e))
    except DomainError as e:
        if e.code in ("permission_denied", "not_found"):
            raise
        return _page(request, user, 400, errors=None, error=i18n.error_text(e))
    return redirect("/screenings", request, _done(result))


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
def screenings_record(request: Request, user: User = Depends(page_user), form: dict = Depends(form_data)) -> Response:
    """One student's result typed in (a make-up screening): the same rules and the same
    consequences (flag, support file, risk level) as a row of the import."""
    web = get_web(request)
    kept = {k: str(form.get(k, "") or "").strip() for k in ONE_FIELDS}
    try:
        with web.writing() as app:
            day = form_day(kept["screened_on"], app.now().date())
            result = app.screenings.record_screening(
                user.actor, kept["student_id"], instrument=kept["instrument"], screened_on=day, answers=kept["answers"]
            )  # as typed: parsed past the gate
    except DomainError as e:
        if e.code in ("permission_denied", "not_found"):
            raise
        return _page(request, user, 400, errors=None, one_error=i18n.error_text(e), one=kept)
    return redirect("/screenings", request, _done(result))
