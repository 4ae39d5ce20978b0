"""Students (学生): search the viewer's school by name (a keyed blind index, never a
name in the database), a class teacher's own class list, and one student's timeline
(学生时间线): every record about them, each entry as far as the gate lets the viewer
see it; erased records show as 已删除. A supervisor states a reason first (break-glass)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from anxin.service import Anxin
from domain import access
from domain.access import decide
from domain.common import PermissionDenied, Role
from domain.grades import class_sort_key
from domain.pairing import DIMENSION_LABELS
from domain.policy import RISK_LABELS
from domain.roster import GENDER_LABELS
from domain.support import REVIEW_OUTCOMES
from projections.timeline import search_students, timeline
from projections.timeline_labels import value_label
from web import i18n
from web.deps import App, Form, PageUser, User, get_web, reason_form, render

router = APIRouter(include_in_schema=False)
NUMBERED = {"case", "file", "pairing"}  # the kinds of record with a number (anxin.numbers)

# How a timeline entry's details are labelled, by field (anything else is not shown).
FIELD_LABELS = {
    "name": "姓名",
    "grade": "年级",
    "occurred_at": "发生时间",
    "class_name": "班级",
    "channel": "报告渠道",
    "place": "地点",
    "narrative": "经过",
    "reporter_note": "报告人备注",
    "text": "内容",
    "description": "描述",
    "findings": "调查结论",
    "plan": "方案",
    "note": "备注说明",
    "outcome": "结果",
    "held_on": "日期",
    "notes": "内容",
    "concern": "有担忧",
    "concern_note": "担忧说明",
    "category": "档案类别",
    "risk_level": "风险等级",
    "goals": "目标",
    "measures": "措施",
    "summary": "摘要",
    "next_steps": "后续安排",
    "what_happened": "经过",
    "actions_taken": "已采取的措施",
    "instrument_name": "量表",
    "band_label": "结果",
    "cadence_days": "谈心频率（天）",
    "reason": "原因",
}


# Where an entry of one kind means something else by a field, its own label (a case's
# follow-up is a 回访, a file's session a 辅导: neither is a pairing's 谈心).
ENTRY_FIELD_LABELS: dict[tuple[str, str], dict[str, str]] = {
    ("pairing", "CheckInRecorded"): {"held_on": "谈心日期", "notes": "谈心内容"},
    ("case", "FollowUpRecorded"): {"held_on": "回访日期", "notes": "回访情况"},
    ("case", "FollowUpCorrected"): {"notes": "回访情况", "reason": "更正原因"},
    ("case", "CommitteeMeetingRecorded"): {"held_on": "会议日期", "summary": "会议纪要"},
    ("case", "StatementRecorded"): {"text": "陈述内容"},
    ("case", "StatementCorrected"): {"text": "陈述内容", "reason": "更正原因"},
    ("case", "EvidenceNoted"): {"description": "证据说明"},
    ("case", "InterventionPlanned"): {"plan": "干预措施"},
    ("case", "InterventionProgressRecorded"): {"note": "进展"},
    ("case", "InterventionCompleted"): {"outcome": "完成情况"},
    ("case", "NarrativeCorrected"): {"narrative": "事情经过", "reason": "更正原因"},
    ("case", "Closed"): {"reason": "结案原因"},
    ("case", "Reopened"): {"reason": "重新开启原因"},
    ("file", "Opened"): {"reason": "建档原因"},
    ("file", "RiskLevelRaised"): {"reason": "调整原因"},
    ("file", "RiskLevelLowered"): {"reason": "调整原因"},
    ("file", "PlanRevised"): {"reason": "修订原因"},
    ("file", "SessionRecorded"): {"held_on": "辅导日期", "summary": "辅导记录", "next_steps": "下一步"},
    ("file", "GuardianContacted"): {"summary": "联系内容"},
    ("file", "ReferralSent"): {"reason": "转介原因"},
    ("file", "ReferralMade"): {"reason": "转介原因"},
    ("file", "ReferralFeedbackReceived"): {"summary": "回执内容"},
    ("file", "CrisisReferralFeedbackReceived"): {"summary": "回执内容"},
    ("file", "CrisisInterventionRecorded"): {"what_happened": "事件经过", "actions_taken": "干预措施"},
    ("file", "PlanReviewed"): {"notes": "复评意见", "outcome": "复评结论"},
    ("file", "Closed"): {"reason": "结案原因"},
    ("file", "Reopened"): {"reason": "重新开启原因"},
}
# Codes shown in words, by field, where the entry's kind says what they are.
ENTRY_VALUE_LABELS: dict[tuple[str, str], dict[str, str]] = {
    ("file", "risk_level"): dict(RISK_LABELS),
    ("file", "outcome"): dict(REVIEW_OUTCOMES),
}


def _needs_reason(app: Anxin, user: User, student_id: str) -> bool:
    """Whether the gate would show this student only with a stated reason (asked
    without recording, so the reason form comes before any read)."""
    return bool(app.gate.needs_reason(user.actor, access.STUDENT_READ, "student", student_id))


def _details(entry: Any) -> list[tuple[str, Any]]:
    """An entry's details as (label, value): each field labelled as its kind of entry means it
    (`ENTRY_FIELD_LABELS`, else `FIELD_LABELS`); a plan's goals and measures as one line each."""
    out: list[tuple[str, Any]] = []
    labels = {**FIELD_LABELS, **ENTRY_FIELD_LABELS.get((entry.kind, entry.event_type), {})}
    for key, value in (entry.details or {}).items():
        if key == "notes" and isinstance(value, dict):
            out += [(DIMENSION_LABELS.get(str(k), str(k)), v) for k, v in value.items() if v]
        elif key == "goals" and isinstance(value, list):
            out.append((labels[key], "；".join(str(g) for g in value)))
        elif key == "measures" and isinstance(value, list):
            text = "；".join(
                f"{m.get('text', '')}（{i18n.system_text(m.get('by', ''))}）" for m in value if isinstance(m, dict)
            )
            out.append((labels[key], text))
        elif key in labels and not isinstance(value, dict | list):
            if isinstance(value, datetime):
                value = i18n.fmt_datetime(value)
            elif isinstance(value, date):
                value = i18n.fmt_date(value)
            elif isinstance(value, str):  # a code in words; system-written text in the reader's language
                words = ENTRY_VALUE_LABELS.get((entry.kind, key))
                value = i18n.system_text(
                    words.get(value, value) if words else value_label(entry.event_type, key, value)
                )
            out.append((labels[key], value))
    return out


@router.get("/students")
def students(request: Request, user: PageUser, app: App) -> Response:
    q = (request.query_params.get("q") or "").strip()
    school = user.actor.school_id
    found = None
    classes: list[tuple[str, list[Any]]] = []
    if q and school is not None:
        found = search_students(app, user.actor, school, q)
    elif not q and school is not None and user.has(Role.CLASS_TEACHER):
        classes = [
            (c, app.roster.list_students(user.actor, school, c)) for c in sorted(user.actor.classes, key=class_sort_key)
        ]
    return render(request, "students/search.html", q=q, found=found, classes=classes, in_school=school is not None)


def _timeline_page(request: Request, user: User, student_id: str, reason: str | None) -> Response:
    """The student page: their profile (class, guardians, tags; the cases, files and pairing
    the viewer may see, each linked), then the timeline. The gate decides it all in
    `timeline` (STUDENT_READ for the student, recorded; each record as far as it is shown)."""
    web = get_web(request)
    app = web.app
    line = timeline(app, user.actor, student_id, break_glass=reason)
    profile = app.roster.student_profile(student_id)  # identity: what STUDENT_READ allowed
    ids = [e.stream_id for e in line.entries if e.kind in NUMBERED] + [r.stream_id for r in line.linked]
    return render(
        request,
        "students/timeline.html",
        line=line,
        profile=profile,
        gender_labels=GENDER_LABELS,
        staff_name=web.staff_name,
        numbers=app.record_numbers(ids),
        linked_ids={r.stream_id for r in line.linked},
        details=_details,
        entries=list(reversed(line.entries)),
        break_glass=reason is not None,
    )


@router.get("/students/{student_id}")
def student(request: Request, student_id: str, user: PageUser, app: App) -> Response:
    if _needs_reason(app, user, student_id):
        return reason_form(request, f"/students/{student_id}/open")
    return _timeline_page(request, user, student_id, None)


@router.post("/students/{student_id}/open")
def student_open(request: Request, student_id: str, user: PageUser, form: Form, app: App) -> Response:
    reason = str(form.get("break_glass_reason", "")).strip()
    try:
        return _timeline_page(request, user, student_id, reason)
    except PermissionDenied as e:
        if not _needs_reason(app, user, student_id):
            raise
        rule = decide(user.actor, access.STUDENT_READ, app.resource("student", student_id), reason)
        return reason_form(
            request, f"/students/{student_id}/open", 400, e if rule.allowed else PermissionDenied(reason=rule.reason)
        )
