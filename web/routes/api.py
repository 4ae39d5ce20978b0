"""The JSON API, /api/v1: the same commands and queries as the pages, through the same
application and so the same gate. Authentication: the session cookie (writes then need
the X-CSRF-Token header) or a bearer token an administrator issued for the account.

Every command of the application is exposed with a request body made from the
command's own signature (so the API cannot drift from the application): the keyword
arguments become the body's fields, with their types and defaults; `expected_version`
is how a client says which version it edited, and a stale one is refused with 409.
Errors are `{"error": {"code", "message"}}` with a stable code (see web/app.py)."""

from __future__ import annotations

import dataclasses
import inspect
import typing
from collections.abc import Callable, Iterable, Mapping
from datetime import date, datetime
from enum import Enum
from typing import Any, Literal
from uuid import UUID

from eventsourcing.domain import BaseAggregate
from fastapi import APIRouter, Body, Depends, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, create_model

from anxin import audit as audit_queries
from anxin.commands import COMMAND_AREAS
from domain.common import InvalidInput
from projections.case_board import case_board
from projections.pairing_board import pairing_board
from projections.report import periodic_report, report_csv
from projections.support_register import coverage, register
from projections.timeline import search_students, timeline
from projections.work_queue import work_queue
from web.deps import User, api_user, get_web

router = APIRouter(prefix="/api/v1")
AUTH = [Depends(api_user)]


# -- JSON of domain objects ------------------------------------------------------------------
def jsonable(value: Any) -> Any:
    """Plain JSON of what the application returns: aggregates (their public state and
    properties), dataclasses, dates, ids, sets."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, bytes):
        return None  # sealed bytes never leave the server
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = [jsonable(v) for v in value]
        return sorted(items, key=str) if isinstance(value, set | frozenset) else items
    if isinstance(value, BaseAggregate):
        out = {k: jsonable(v) for k, v in vars(value).items() if not k.startswith("_")}
        out.update(id=str(value.id), version=value.version)
        out.update(_properties(value))
        return out
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out = {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
        out.update(_properties(value))
        return out
    return str(value)


def _properties(obj: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, _member in inspect.getmembers(type(obj), lambda m: isinstance(m, property)):
        if not name.startswith("_") and name not in ("state", "pending_events"):
            try:
                out[name] = jsonable(getattr(obj, name))
            except Exception:  # noqa: BLE001 - a property that needs what this object lacks
                continue
    return out


def ok(result: Any = None, status: int = 200) -> JSONResponse:
    return JSONResponse({"ok": True, "result": jsonable(result)}, status_code=status)


def _app(request: Request) -> Any:
    return get_web(request).app


def _school(user: User, school_id: str | None) -> str:
    school = school_id or user.actor.school_id
    if not school:
        raise InvalidInput(reason="请指定学校（school_id）")
    return school


class Reason(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=1, description="查阅理由（督导查看实名记录时必填，记入审计）")


# -- commands from the application's own signatures --------------------------------------------
def _field_type(annotation: Any) -> Any:
    """The body type of a parameter: datetimes must carry their time zone; iterables are lists."""
    if annotation is datetime:
        return AwareDatetime
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (Iterable, typing.Sequence, list, tuple) or str(origin) == "<class 'collections.abc.Sequence'>":
        return list[_field_type(args[0]) if args else Any]  # type: ignore[misc]
    if origin is typing.Union or str(origin) == "<class 'types.UnionType'>":
        inner = [_field_type(a) for a in args]
        return typing.Union[tuple(inner)]  # type: ignore[return-value]  # noqa: UP007
    return annotation


def body_model(
    name: str,
    func: Callable[..., Any],
    path_ids: tuple[str, ...],
    overrides: Mapping[str, Any] | None = None,
    skip: tuple[str, ...] = (),
) -> type[BaseModel]:
    hints = typing.get_type_hints(func)
    fields: dict[str, Any] = {}
    for p in inspect.signature(func).parameters.values():
        if p.name in ("self", "actor", *path_ids, *skip):
            continue
        if p.kind is inspect.Parameter.VAR_KEYWORD:
            # **changes: the fields a correction may change, each optional (None: unchanged).
            for field, annotation in VAR_FIELDS[func.__name__].items():
                fields[field] = (annotation | None, None)
            continue
        annotation = (overrides or {}).get(p.name, _field_type(hints.get(p.name, Any)))
        default = ... if p.default is inspect.Parameter.empty else p.default
        fields[p.name] = (annotation, list(default) if isinstance(default, tuple) else default)
    return create_model(name, __config__=ConfigDict(extra="forbid"), **fields)


# What a correction's **changes may hold, per command.
VAR_FIELDS: dict[str, dict[str, Any]] = {
    "correct_report": {"channel": str, "occurred_at": AwareDatetime, "place": str, "forms": list[str]},
    "correct_check_in": {"notes": dict[str, str], "concern": bool, "concern_note": str},
}


def area_of(method: str) -> str:
    """The area of the application's commands (anxin.commands) that has this command."""
    (area,) = [a for a, cls in COMMAND_AREAS.items() if callable(getattr(cls, method, None))]
    return area


def command(
    path: str,
    method: str,
    *,
    path_ids: tuple[str, ...] = (),
    status: int = 200,
    tag: str,
    summary: str,
    overrides: Mapping[str, Any] | None = None,
    skip: tuple[str, ...] = (),
) -> None:
    """POST `path`: call the application's command `method` (of the area that has it:
    `app.<area>.<method>`) with the path ids and the body."""
    area = area_of(method)
    func = getattr(COMMAND_AREAS[area], method)
    model = body_model("".join(w.title() for w in method.split("_")) + "Body", func, path_ids, overrides, skip)

    params = [inspect.Parameter("request", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Request)]
    params += [inspect.Parameter(i, inspect.Parameter.KEYWORD_ONLY, annotation=str) for i in path_ids]
    params += [
        inspect.Parameter("body", inspect.Parameter.KEYWORD_ONLY, annotation=model),
        inspect.Parameter("user", inspect.Parameter.KEYWORD_ONLY, annotation=User, default=Depends(api_user)),
    ]

    def wrapper(request: Request, body: Any, user: User, **ids: str) -> JSONResponse:
        web = get_web(request)
        with web.writing():
            values = body.model_dump()
            for field in VAR_FIELDS.get(method, {}):  # an unchanged field of a correction is left out
                if values.get(field) is None:
                    values.pop(field, None)
            result = getattr(getattr(web.app, area), method)(user.actor, *(ids[i] for i in path_ids), **values)
        return ok(result, status)

    wrapper.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    wrapper.__name__ = method
    wrapper.__doc__ = inspect.getdoc(func) or summary
    router.add_api_route(
        path, wrapper, methods=["POST"], tags=[tag], summary=summary, status_code=status, name=f"api_{method}"
    )


# -- who am I, my work ------------------------------------------------------------------------
@router.get("/me", tags=["账号"], summary="当前用户")
def me(user: User = Depends(api_user)) -> dict[str, Any]:
    a = user.actor
    return {
        "staff_id": a.staff_id,
        "name": user.name,
        "roles": sorted(r.value for r in a.roles),
        "school_id": a.school_id,
        "classes": sorted(a.classes),
        "district": a.district,
    }


@router.get("/schools", tags=["账号"], summary="学校列表（编号、名称、所属区）", dependencies=AUTH)
def schools(request: Request) -> list[dict[str, str]]:
    return [{"school_id": s, "name": n, "district": d} for s, n, d in _app(request).schools()]


@router.get("/work-queue", tags=["待办"], summary="我的待办（到期与逾期事项）")
def my_work_queue(request: Request, user: User = Depends(api_user)) -> Any:
    return jsonable(work_queue(_app(request), user.actor))


# -- students -----------------------------------------------------------------------------------
@router.get("/students", tags=["学生"], summary="学生名单（全校或一个班）或按姓名查找")
def students(
    request: Request,
    q: str | None = Query(None, max_length=50, description="姓名（全名、姓或名）"),
    class_name: str | None = Query(None, max_length=50, description="班级，如 七年级1班"),
    school_id: str | None = None,
    user: User = Depends(api_user),
) -> Any:
    app = _app(request)
    school = _school(user, school_id)
    if q:
        return jsonable(search_students(app, user.actor, school, q))
    return jsonable(app.roster.list_students(user.actor, school, class_name))


@router.get("/students/{student_id}", tags=["学生"], summary="学生信息")
def student(request: Request, student_id: str, user: User = Depends(api_user)) -> Any:
    return jsonable(_app(request).roster.get_student(user.actor, student_id))


@router.post("/students/{student_id}/open", tags=["学生"], summary="说明理由后查看学生信息（督导）")
def student_break_glass(request: Request, student_id: str, body: Reason, user: User = Depends(api_user)) -> Any:
    return jsonable(_app(request).roster.get_student(user.actor, student_id, break_glass=body.reason))


@router.get("/students/{student_id}/timeline", tags=["学生"], summary="学生时间线（按查看者权限逐条过滤）")
def student_timeline(request: Request, student_id: str, user: User = Depends(api_user)) -> Any:
    return jsonable(timeline(_app(request), user.actor, student_id))


@router.post("/students/{student_id}/timeline/open", tags=["学生"], summary="说明理由后查看学生时间线（督导）")
def student_timeline_break_glass(
    request: Request, student_id: str, body: Reason, user: User = Depends(api_user)
) -> Any:
    return jsonable(timeline(_app(request), user.actor, student_id, break_glass=body.reason))


# -- pairings (一岗双带) --------------------------------------------------------------------------
@router.get("/pairings", tags=["一岗双带"], summary="我的结对（或本校某班的结对）")
def pairings(request: Request, class_name: str | None = None, user: User = Depends(api_user)) -> Any:
    app = _app(request)
    if class_name:
        return jsonable(pairing_board(app, user.actor, class_name=class_name, school_id=user.actor.school_id))
    return jsonable(pairing_board(app, user.actor))


@router.get("/pairings/{pairing_id}", tags=["一岗双带"], summary="结对详情与谈心记录")
def pairing(request: Request, pairing_id: str, user: User = Depends(api_user)) -> Any:
    return jsonable(_app(request).pairings.get_pairing(user.actor, pairing_id))


@router.post("/pairings/{pairing_id}/open", tags=["一岗双带"], summary="说明理由后查看结对（督导）")
def pairing_break_glass(request: Request, pairing_id: str, body: Reason, user: User = Depends(api_user)) -> Any:
    return jsonable(_app(request).pairings.get_pairing(user.actor, pairing_id, break_glass=body.reason))


class CheckInNotes(BaseModel):
    model_config = ConfigDict(extra="forbid")
    thinking: str = Field("", description="思想")
    studies: str = Field("", description="学习")
    family: str = Field("", description="家庭")
    difficulties: str = Field("", description="困难")


class Party(BaseModel):
    model_config = ConfigDict(extra="forbid")
    student_id: str
    part: Literal["targeted", "bullying", "witness"]


T = "一岗双带"
command("/pairings", "pair", status=201, tag=T, summary="建立结对")
command(
    "/pairings/{pairing_id}/check-ins",
    "record_check_in",
    path_ids=("pairing_id",),
    status=201,
    tag=T,
    summary="记录谈心谈话",
    overrides={"notes": CheckInNotes},
)
command(
    "/pairings/{pairing_id}/check-ins/{check_in_id}/corrections",
    "correct_check_in",
    path_ids=("pairing_id", "check_in_id"),
    tag=T,
    summary="更正谈心记录",
)
command("/pairings/{pairing_id}/end", "end_pairing", path_ids=("pairing_id",), tag=T, summary="结束结对")
command(
    "/pairings/{pairing_id}/check-ins/{check_in_id}/escalate-to-support-file",
    "escalate_to_support_file",
    path_ids=("pairing_id", "check_in_id"),
    status=201,
    tag=T,
    summary="将担忧转为心理档案",
)
command(
    "/pairings/{pairing_id}/check-ins/{check_in_id}/escalate-to-bullying-report",
    "escalate_to_bullying_report",
    path_ids=("pairing_id", "check_in_id"),
    status=201,
    tag=T,
    summary="将担忧转为欺凌报告",
    overrides={"parties": list[Party] | None},
)


# -- bullying cases -----------------------------------------------------------------------------
C = "欺凌案件"


@router.get("/cases", tags=[C], summary="学校欺凌案件看板")
def cases(request: Request, school_id: str | None = None, user: User = Depends(api_user)) -> Any:
    return jsonable(case_board(_app(request), user.actor, _school(user, school_id)))


@router.get("/cases/{case_id}", tags=[C], summary="案件全部内容")
def case(request: Request, case_id: str, user: User = Depends(api_user)) -> Any:
    app = _app(request)
    data = jsonable(app.cases.get_case(user.actor, case_id))
    data["party_names"] = jsonable(app.cases.case_parties(user.actor, case_id))
    return data


@router.post("/cases/{case_id}/open", tags=[C], summary="说明理由后查看案件（督导）")
def case_break_glass(request: Request, case_id: str, body: Reason, user: User = Depends(api_user)) -> Any:
    return jsonable(_app(request).cases.get_case(user.actor, case_id, break_glass=body.reason))


@router.get("/cases/{case_id}/status", tags=[C], summary="案件状态（班主任可看本班学生所涉案件）")
def case_status(request: Request, case_id: str, user: User = Depends(api_user)) -> Any:
    return jsonable(_app(request).cases.case_status(user.actor, case_id))


command(
    "/cases",
    "report_bullying",
    status=201,
    tag=C,
    summary="报告疑似欺凌",
    overrides={"parties": list[Party]},
    skip=("source",),
)
CASE_ID = ("case_id",)
for _path, _method, _summary in [
    ("parties", "add_party", "增加当事人"),
    ("parties/remove", "remove_party", "移除当事人"),
    ("safety-measures", "take_safety_measure", "采取保护措施"),
    ("guardian-notifications", "notify_guardian", "通知监护人"),
    ("statements", "record_statement", "记录陈述"),
    ("evidence", "add_evidence", "登记证据"),
    ("investigation/start", "start_investigation", "开始调查"),
    ("investigation/complete", "complete_investigation", "完成调查"),
    ("determination", "determine", "认定"),
    ("determination/approve", "approve_determination", "批准认定"),
    ("determination/return", "return_determination", "退回认定"),
    ("mandatory-reports", "record_mandatory_report", "记录强制报告"),
    ("interventions", "plan_intervention", "制定干预措施"),
    ("appeals", "lodge_appeal", "提出申诉"),
    ("follow-ups", "record_follow_up", "记录回访"),
    ("close", "close_case", "结案"),
    ("reopen", "reopen_case", "重新打开"),
    ("narrative/corrections", "correct_narrative", "更正事情经过"),
    ("report/corrections", "correct_report", "更正报告信息"),
]:
    command(
        f"/cases/{{case_id}}/{_path}",
        _method,
        path_ids=CASE_ID,
        tag=C,
        summary=_summary,
        status=201
        if _path
        in (
            "safety-measures",
            "guardian-notifications",
            "statements",
            "evidence",
            "mandatory-reports",
            "interventions",
            "appeals",
            "follow-ups",
        )
        else 200,
    )
for _path, _id, _method, _summary in [
    ("interventions/{intervention_id}/progress", "intervention_id", "record_intervention_progress", "记录干预进展"),
    ("interventions/{intervention_id}/complete", "intervention_id", "complete_intervention", "完成干预"),
    ("appeals/{appeal_id}/outcome", "appeal_id", "record_appeal_outcome", "记录复查结果"),
    ("statements/{statement_id}/corrections", "statement_id", "correct_statement", "更正陈述"),
    ("evidence/{evidence_id}/corrections", "evidence_id", "correct_evidence", "更正证据"),
    ("follow-ups/{follow_up_id}/corrections", "follow_up_id", "correct_follow_up", "更正回访记录"),
]:
    command(f"/cases/{{case_id}}/{_path}", _method, path_ids=("case_id", _id), tag=C, summary=_summary)


# -- support files (一人一策) and screenings ---------------------------------------------------------
S = "心理档案"


@router.get("/support-files", tags=[S], summary="本校心理档案登记表（不含记录内容）")
def support_files(request: Request, school_id: str | None = None, user: User = Depends(api_user)) -> Any:
    return jsonable(register(_app(request), user.actor, _school(user, school_id)))


@router.get("/support-files/mine", tags=[S], summary="我负责的档案")
def my_support_files(request: Request, user: User = Depends(api_user)) -> Any:
    return jsonable(_app(request).support.my_support_files(user.actor))


@router.get("/support-files/{file_id}", tags=[S], summary="档案全部内容")
def support_file(request: Request, file_id: str, user: User = Depends(api_user)) -> Any:
    return jsonable(_app(request).support.get_support_file(user.actor, file_id))


@router.post("/support-files/{file_id}/open", tags=[S], summary="说明理由后查看档案（督导）")
def support_file_break_glass(request: Request, file_id: str, body: Reason, user: User = Depends(api_user)) -> Any:
    return jsonable(_app(request).support.get_support_file(user.actor, file_id, break_glass=body.reason))


class Measure(BaseModel):
    model_config = ConfigDict(extra="forbid")
    what: str
    who: str = ""
    when: str = ""


command(
    "/support-files",
    "open_support_file",
    status=201,
    tag=S,
    summary="建立心理档案",
    path_ids=(),
    overrides={"student_id": str},
)
FILE_ID = ("file_id",)
for _path, _method, _summary in [
    ("risk/raise", "raise_risk_level", "提高风险等级"),
    ("risk/lower", "lower_risk_level", "降低风险等级"),
    ("category", "change_file_category", "更改类别"),
    ("responsible", "reassign_support_file", "更换负责人"),
    ("plan", "draw_up_plan", "制定方案"),
    ("plan/revise", "revise_plan", "修订方案"),
    ("sessions", "record_session", "记录辅导"),
    ("guardian-contacts", "record_guardian_contact", "记录家长沟通"),
    ("referrals", "record_referral", "记录转介"),
    ("crisis-interventions", "record_crisis_intervention", "记录危机干预"),
    ("reviews", "record_review", "记录复评"),
    ("close", "close_support_file", "结束档案"),
    ("reopen", "reopen_support_file", "重新打开档案"),
]:
    command(
        f"/support-files/{{file_id}}/{_path}",
        _method,
        path_ids=FILE_ID,
        tag=S,
        summary=_summary,
        status=201
        if _path in ("sessions", "guardian-contacts", "referrals", "crisis-interventions", "reviews")
        else 200,
    )
command(
    "/support-files/{file_id}/entries/{entry_id}/corrections",
    "correct_file_entry",
    path_ids=("file_id", "entry_id"),
    tag=S,
    summary="更正档案记录",
)

SC = "心理筛查"


@router.get("/screenings/coverage", tags=[SC], summary="本学年筛查覆盖率与未筛查学生")
def screening_coverage(request: Request, school_id: str | None = None, user: User = Depends(api_user)) -> Any:
    return jsonable(coverage(_app(request), user.actor, _school(user, school_id), with_names=True))


@router.get("/students/{student_id}/screenings", tags=[SC], summary="学生的筛查结果")
def student_screenings(request: Request, student_id: str, user: User = Depends(api_user)) -> Any:
    return jsonable(_app(request).screenings.student_screenings(user.actor, student_id))


command(
    "/students/{student_id}/screenings",
    "record_screening",
    path_ids=("student_id",),
    status=201,
    tag=SC,
    summary="录入一名学生的筛查结果",
)


@router.post(
    "/screenings/import", tags=[SC], status_code=201, summary="导入筛查结果 CSV（全部成功或全部不写入；错误逐行列出）"
)
def import_screenings(
    request: Request,
    csv_text: str = Body(..., media_type="text/csv", description="UTF-8 CSV 文本"),
    school_id: str | None = Query(None),
    user: User = Depends(api_user),
) -> JSONResponse:
    web = get_web(request)
    with web.writing():
        result = web.app.screenings.import_screenings(user.actor, _school(user, school_id), csv_text)
    return ok(result, 201)


# -- reports and the audit trail ------------------------------------------------------------------
@router.get("/reports/periodic", tags=["定期报送"], summary="定期报送（无姓名、无文字内容）")
def report(
    request: Request,
    date_from: date = Query(..., alias="from"),
    date_to: date = Query(..., alias="to"),
    school_id: str | None = None,
    format: Literal["json", "csv"] = "json",
    user: User = Depends(api_user),
) -> Any:
    found = periodic_report(_app(request), user.actor, date_from=date_from, date_to=date_to, school_id=school_id)
    if format == "csv":
        return PlainTextResponse(report_csv(found), media_type="text/csv; charset=utf-8")
    return jsonable(found)


@router.get("/audit/{what}", tags=["审计"], summary="审计查询：case-history | student-access | break-glass | denied")
def audit(
    request: Request,
    what: Literal["case-history", "student-access", "break-glass", "denied"],
    id: str | None = None,
    school_id: str | None = None,
    user: User = Depends(api_user),
) -> Any:
    return jsonable(audit_queries.query(_app(request), user.actor, what, id=id, school_id=school_id))
