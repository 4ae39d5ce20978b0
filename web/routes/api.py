"""The JSON API, /api/v1: the same commands and queries as the pages, through the same
application and so the same gate. Authentication: the session cookie (writes then need
the X-CSRF-Token header) or a bearer token an administrator issued for the account.

Every command of the application is exposed with a request body made from the
command's own signature (web/jsonapi.py; so the API cannot drift from the application):
the keyword arguments become the body's fields, with their types and defaults;
`expected_version` is how a client says which version it edited, and a stale one is
refused with 409. Errors are `{"error": {"code", "message"}}` with a stable code (see web/app.py)."""

from __future__ import annotations

from datetime import date
from functools import partial
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Path, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field

from anxin import audit as audit_queries
from domain.common import InvalidInput
from projections.case_board import case_board
from projections.pairing_board import pairing_board
from projections.report import periodic_report, report_csv
from projections.support_register import coverage, register
from projections.timeline import search_students, timeline
from projections.work_queue import work_queue
from web import picker
from web.deps import ApiUser, App, User, api_user, get_web
from web.jsonapi import add_command, jsonable, ok

router = APIRouter(prefix="/api/v1")
AUTH = [Depends(api_user)]
command = partial(add_command, router)  # POST: one command of the application (web/jsonapi.py)


def commands(prefix: str, tag: str, table: list[tuple[str, str, str]], created: tuple[str, ...] = ()) -> None:
    """One command per row: (path under `prefix`, the application's method, summary); a
    path in `created` answers 201."""
    for path, method, summary in table:
        command(f"{prefix}/{path}", method, tag=tag, summary=summary, status=201 if path in created else 200)


def _school(user: User, school_id: str | None) -> str:
    school = school_id or user.actor.school_id
    if not school:
        raise InvalidInput(reason="请指定学校（school_id）")
    return school


class Reason(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=1, description="查阅理由（督导查看实名记录时必填，记入审计）")


# -- who am I, my work ------------------------------------------------------------------------
@router.get("/me", tags=["账号"], summary="当前用户")
def me(user: ApiUser) -> dict[str, Any]:
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
def schools(app: App) -> list[dict[str, str]]:
    return [{"school_id": s, "name": n, "district": d} for s, n, d in app.schools()]


@router.get("/work-queue", tags=["待办"], summary="我的待办（到期与逾期事项）")
def my_work_queue(user: ApiUser, app: App) -> Any:
    return jsonable(work_queue(app, user.actor))


# -- students -----------------------------------------------------------------------------------
@router.get("/students", tags=["学生"], summary="学生名单（全校或一个班）或按姓名查找")
def students(
    user: ApiUser,
    app: App,
    q: str | None = Query(None, max_length=50, description="姓名（全名、姓或名）"),
    class_name: str | None = Query(None, max_length=50, description="班级，如 七年级1班"),
    school_id: str | None = None,
) -> Any:
    school = _school(user, school_id)
    if q:
        return jsonable(search_students(app, user.actor, school, q))
    return jsonable(app.roster.list_students(user.actor, school, class_name))


@router.get(
    "/students/suggest",
    tags=["学生"],
    summary="选择学生：按姓名、学号、拼音或首字母给出建议（最多 8 名，在读学生，按权限过滤）",
)
def student_suggestions(
    user: ApiUser,
    app: App,
    q: str = Query(..., min_length=1, max_length=50, description="姓名、学号、拼音或拼音首字母，如 zxm"),
    school_id: str | None = None,
) -> Any:
    return picker.suggestions(app, user.actor, _school(user, school_id), q)


@router.get("/students/{student_id}", tags=["学生"], summary="学生信息")
def student(student_id: str, user: ApiUser, app: App) -> Any:
    return jsonable(app.roster.get_student(user.actor, student_id))


@router.post("/students/{student_id}/open", tags=["学生"], summary="说明理由后查看学生信息（督导）")
def student_break_glass(student_id: str, body: Reason, user: ApiUser, app: App) -> Any:
    return jsonable(app.roster.get_student(user.actor, student_id, break_glass=body.reason))


@router.get("/students/{student_id}/timeline", tags=["学生"], summary="学生时间线（按查看者权限逐条过滤）")
def student_timeline(student_id: str, user: ApiUser, app: App) -> Any:
    return jsonable(timeline(app, user.actor, student_id))


@router.post("/students/{student_id}/timeline/open", tags=["学生"], summary="说明理由后查看学生时间线（督导）")
def student_timeline_break_glass(student_id: str, body: Reason, user: ApiUser, app: App) -> Any:
    return jsonable(timeline(app, user.actor, student_id, break_glass=body.reason))


# -- pairings (一岗双带) --------------------------------------------------------------------------
@router.get("/pairings", tags=["一岗双带"], summary="我的结对（或本校某班的结对）")
def pairings(user: ApiUser, app: App, class_name: str | None = None) -> Any:
    if class_name:
        return jsonable(pairing_board(app, user.actor, class_name=class_name, school_id=user.actor.school_id))
    return jsonable(pairing_board(app, user.actor))


@router.get("/pairings/{pairing_id}", tags=["一岗双带"], summary="结对详情与谈心记录")
def pairing(pairing_id: str, user: ApiUser, app: App) -> Any:
    return jsonable(app.pairings.get_pairing(user.actor, pairing_id))


@router.post("/pairings/{pairing_id}/open", tags=["一岗双带"], summary="说明理由后查看结对（督导）")
def pairing_break_glass(pairing_id: str, body: Reason, user: ApiUser, app: App) -> Any:
    return jsonable(app.pairings.get_pairing(user.actor, pairing_id, break_glass=body.reason))


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
    status=201,
    tag=T,
    summary="记录谈心谈话",
    overrides={"notes": CheckInNotes},
)
command(
    "/pairings/{pairing_id}/check-ins/{check_in_id}/corrections",
    "correct_check_in",
    tag=T,
    summary="更正谈心记录",
)
command("/pairings/{pairing_id}/end", "end_pairing", tag=T, summary="结束结对")
command(
    "/pairings/{pairing_id}/check-ins/{check_in_id}/escalate-to-support-file",
    "escalate_to_support_file",
    status=201,
    tag=T,
    summary="将担忧转为心理档案",
)
command(
    "/pairings/{pairing_id}/check-ins/{check_in_id}/escalate-to-bullying-report",
    "escalate_to_bullying_report",
    status=201,
    tag=T,
    summary="将担忧转为欺凌报告",
    overrides={"parties": list[Party] | None},
)


# -- bullying cases -----------------------------------------------------------------------------
C = "欺凌案件"


@router.get("/cases", tags=[C], summary="学校欺凌案件看板")
def cases(user: ApiUser, app: App, school_id: str | None = None) -> Any:
    return jsonable(case_board(app, user.actor, _school(user, school_id)))


@router.get("/cases/{case_id}", tags=[C], summary="案件全部内容")
def case(case_id: str, user: ApiUser, app: App) -> Any:
    data = jsonable(app.cases.get_case(user.actor, case_id))
    data["party_names"] = jsonable(app.cases.case_parties(user.actor, case_id))
    return data


@router.post("/cases/{case_id}/open", tags=[C], summary="说明理由后查看案件（督导）")
def case_break_glass(case_id: str, body: Reason, user: ApiUser, app: App) -> Any:
    return jsonable(app.cases.get_case(user.actor, case_id, break_glass=body.reason))


@router.get("/cases/{case_id}/status", tags=[C], summary="案件状态（班主任可看本班学生所涉案件）")
def case_status(case_id: str, user: ApiUser, app: App) -> Any:
    return jsonable(app.cases.case_status(user.actor, case_id))


command(
    "/cases",
    "report_bullying",
    status=201,
    tag=C,
    summary="报告疑似欺凌",
    overrides={"parties": list[Party]},
    skip=("source",),
)
commands(
    "/cases/{case_id}",
    C,
    [
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
        ("appeals", "lodge_appeal", "提出申诉（已停用：由县级复查取代，请记录复查申请）"),
        ("follow-ups", "record_follow_up", "记录回访"),
        ("close", "close_case", "结案"),
        ("reopen", "reopen_case", "重新打开"),
        ("narrative/corrections", "correct_narrative", "更正事情经过"),
        ("report/corrections", "correct_report", "更正报告信息"),
        ("interventions/{intervention_id}/progress", "record_intervention_progress", "记录干预进展"),
        ("interventions/{intervention_id}/complete", "complete_intervention", "完成干预"),
        ("appeals/{appeal_id}/outcome", "record_appeal_outcome", "记录复查结果"),
        ("statements/{statement_id}/corrections", "correct_statement", "更正陈述"),
        ("evidence/{evidence_id}/corrections", "correct_evidence", "更正证据"),
        ("follow-ups/{follow_up_id}/corrections", "correct_follow_up", "更正回访记录"),
        ("clue/dismiss", "dismiss_clue", "结束线索（查无欺凌）"),
    ],
    created=(
        "safety-measures",
        "guardian-notifications",
        "statements",
        "evidence",
        "mandatory-reports",
        "interventions",
        "appeals",
        "follow-ups",
    ),
)

# -- bullying cases, issue 17 part B: the guardians' part in the determination (未成年人保护法 art. 39)
commands(
    "/cases/{case_id}",
    C,
    [
        ("guardian-invitations", "invite_guardian", "通知监护人参与认定（每次通知一条）"),
        ("guardian-participation", "record_guardian_participation", "记录监护人参与认定的情况"),
        ("committee-meetings", "record_committee_meeting", "记录学生欺凌治理委员会的认定会议"),
    ],
    created=("guardian-invitations", "guardian-participation", "committee-meetings"),
)
command("/committee/members", "appoint_member", status=201, tag=C, summary="登记学生欺凌治理委员会成员（校长）")
command("/committee/members/remove", "remove_member", tag=C, summary="记录委员会成员离任（校长）")

# -- remedies (issue 17, part C): reports to the authorities, dispositions, the county review -------
commands(
    "/cases/{case_id}",
    C,
    [
        ("authority-reports", "record_authority_report", "记录向公安机关/教育行政部门的报告"),
        ("dispositions", "decide_disposition", "对欺凌学生作出处理决定"),
        ("county-reviews", "apply_for_county_review", "记录县级复查申请"),
        ("county-reviews/{review_id}/outcome", "record_county_review_outcome", "记录县级复查结果"),
        ("police-track", "open_police_track", "开启公安机关处理（违反治安管理或涉嫌犯罪）"),
    ],
    created=("authority-reports", "dispositions", "county-reviews"),
)
command(
    "/cases/{case_id}/county-reviews/{review_id}/panel",
    "record_review_panel",
    tag=C,
    summary="记录复查小组（成员身份 capacity 与姓名 name）",
    overrides={"members": list[dict[str, str]]},
)


# -- support files (一人一策) and screenings ---------------------------------------------------------
S = "心理档案"


@router.get("/support-files", tags=[S], summary="本校心理档案登记表（不含记录内容）")
def support_files(user: ApiUser, app: App, school_id: str | None = None) -> Any:
    return jsonable(register(app, user.actor, _school(user, school_id)))


@router.get("/support-files/mine", tags=[S], summary="我负责的档案")
def my_support_files(user: ApiUser, app: App) -> Any:
    return jsonable(app.support.my_support_files(user.actor))


@router.get(
    "/support-files/{file_id}/status", tags=[S], summary="档案状态（仅状态：负责人、下一步日期、是否在危机干预中）"
)
def support_file_status(file_id: str, user: ApiUser, app: App) -> Any:
    return jsonable(app.support.get_file_status(user.actor, file_id))


@router.get(
    "/support-files/{file_id}/plan", tags=[S], summary="帮扶方案、本人的待办与家校联系（一对一包联人；不含辅导记录）"
)
def support_file_plan(file_id: str, user: ApiUser, app: App) -> Any:
    return jsonable(app.support.get_file_plan(user.actor, file_id))


@router.get("/support-files/{file_id}", tags=[S], summary="档案全部内容")
def support_file(file_id: str, user: ApiUser, app: App) -> Any:
    return jsonable(app.support.get_support_file(user.actor, file_id))


@router.post("/support-files/{file_id}/open", tags=[S], summary="说明理由后查看档案（督导）")
def support_file_break_glass(file_id: str, body: Reason, user: ApiUser, app: App) -> Any:
    return jsonable(app.support.get_support_file(user.actor, file_id, break_glass=body.reason))


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
    overrides={"student_id": str},
)
commands(
    "/support-files/{file_id}",
    S,
    [
        ("risk/raise", "raise_risk_level", "提高风险等级"),
        ("risk/lower", "lower_risk_level", "降低风险等级"),
        ("category", "change_file_category", "更改类别"),
        ("responsible", "reassign_support_file", "更换负责人"),
        ("responsible-person", "assign_responsible_person", "指定一对一包联人（本校任何教职工）"),
        ("plan", "draw_up_plan", "制定方案"),
        ("plan/revise", "revise_plan", "修订方案"),
        ("sessions", "record_session", "记录辅导"),
        ("guardian-contacts", "record_guardian_contact", "记录家长沟通"),
        ("referrals", "send_referral", "转介（从本区转介机构名录中选择机构）"),
        ("referrals/{entry_id}/accepted", "accept_referral", "转介：机构已接收"),
        ("referrals/{entry_id}/feedback", "receive_referral_feedback", "转介：收到回执"),
        ("referrals/{entry_id}/close", "close_referral", "结束转介"),
        ("crisis-interventions", "record_crisis_intervention", "记录危机干预"),
        ("reviews", "record_review", "记录复评"),
        ("close", "close_support_file", "结束档案"),
        ("reopen", "reopen_support_file", "重新打开档案"),
        ("entries/{entry_id}/corrections", "correct_file_entry", "更正档案记录"),
    ],
    created=("sessions", "guardian-contacts", "referrals", "crisis-interventions", "reviews"),
)


@router.get("/agencies", tags=[S], summary="本区转介机构名录（区管理员、督导维护）")
def agencies(user: ApiUser, app: App) -> Any:
    return jsonable(app.agencies.registry(user.actor))


command("/agencies", "add_agency", tag=S, summary="添加转介机构", status=201)
command("/agencies/{agency_id}/retire", "retire_agency", tag=S, summary="停用转介机构")

SC = "心理筛查"


@router.get("/screenings/coverage", tags=[SC], summary="本学年筛查覆盖率与未筛查学生")
def screening_coverage(user: ApiUser, app: App, school_id: str | None = None) -> Any:
    return jsonable(coverage(app, user.actor, _school(user, school_id), with_names=True))


@router.get("/students/{student_id}/screenings", tags=[SC], summary="学生的筛查结果")
def student_screenings(student_id: str, user: ApiUser, app: App) -> Any:
    return jsonable(app.screenings.student_screenings(user.actor, student_id))


command(
    "/students/{student_id}/screenings",
    "record_screening",
    status=201,
    tag=SC,
    summary="录入一名学生的筛查结果",
)


@router.post(
    "/screenings/import", tags=[SC], status_code=201, summary="导入筛查结果 CSV（全部成功或全部不写入；错误逐行列出）"
)
def import_screenings(
    request: Request,
    user: ApiUser,
    csv_text: str = Body(..., media_type="text/csv", description="UTF-8 CSV 文本"),
    school_id: str | None = Query(None),
) -> JSONResponse:
    with get_web(request).writing() as app:
        result = app.screenings.import_screenings(user.actor, _school(user, school_id), csv_text)
    return ok(result, 201)


# -- reports and the audit trail ------------------------------------------------------------------
@router.get("/reports/periodic", tags=["定期报送"], summary="定期报送（无姓名、无文字内容）")
def report(
    user: ApiUser,
    app: App,
    date_from: date = Query(..., alias="from"),
    date_to: date = Query(..., alias="to"),
    school_id: str | None = None,
    format: Literal["json", "csv"] = "json",
) -> Any:
    found = periodic_report(app, user.actor, date_from=date_from, date_to=date_to, school_id=school_id)
    if format == "csv":
        return PlainTextResponse(report_csv(found), media_type="text/csv; charset=utf-8")
    return jsonable(found)


@router.get("/audit/{what}", tags=["审计"], summary="审计查询：case-history | student-access | break-glass | denied")
def audit(
    what: Literal["case-history", "student-access", "break-glass", "denied"],
    user: ApiUser,
    app: App,
    id: str | None = None,
    school_id: str | None = None,
    reason: str | None = None,
) -> Any:
    """A record's history (case-history, student-access) only with a stated `reason`, as on
    the audit page; the gate keeps it sealed with its decision."""
    if what in ("case-history", "student-access"):
        reason = audit_queries.require_reason(reason)
    return jsonable(audit_queries.query(app, user.actor, what, id=id, school_id=school_id, reason=reason))


class Review(BaseModel):
    model_config = ConfigDict(extra="forbid")
    verdict: Literal["justified", "unjustified"] = Field(description="复核结论：justified 合理，unjustified 不合理")
    comment: str = Field("", max_length=2000, description="复核意见（认定不合理时必填），加密保存")


@router.get("/break-glass-reviews", tags=["审计"], summary="待我复核的紧急查阅（本校校长、本区其他督导）")
def break_glass_reviews(user: ApiUser, app: App) -> Any:
    return jsonable(audit_queries.review_queue(app, user.actor))


@router.post(
    "/break-glass-reviews/{access_seq}", tags=["审计"], summary="复核一次紧急查阅：合理或不合理（只能复核一次）"
)
def review_break_glass(
    access_seq: Annotated[int, Path(ge=1, le=2**63 - 1)], body: Review, request: Request, user: ApiUser
) -> JSONResponse:
    with get_web(request).writing() as app:
        result = audit_queries.review_break_glass(app, user.actor, access_seq, body.verdict, body.comment)
    return ok(result)
