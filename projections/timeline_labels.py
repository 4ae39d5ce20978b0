"""What a timeline entry shows: a short Chinese label of every event (`LABELS`), of
every kind of stream (`KIND_LABELS`), and the fields shown as its details to a viewer who
may read the whole stream (`DETAIL_FIELDS`, `details_of`)."""

from __future__ import annotations

from typing import Any

from domain.bullying import STATUS_LABELS as CASE_STATUS_LABELS

# A short description of every event, by (stream kind, event type).
LABELS: dict[tuple[str, str], str] = {
    ("student", "Enrolled"): "入学登记",
    ("student", "DetailsCorrected"): "更正学生信息",
    ("student", "Left"): "离校",
    ("case", "Reported"): "报告疑似欺凌",
    ("case", "PartyAdded"): "增加当事人",
    ("case", "PartyRemoved"): "移除当事人",
    ("case", "SafetyMeasureTaken"): "采取安全措施",
    ("case", "StatementRecorded"): "记录陈述",
    ("case", "EvidenceNoted"): "记录证据",
    ("case", "InvestigationStarted"): "开始调查",
    ("case", "InvestigationCompleted"): "完成调查",
    ("case", "Determined"): "欺凌治理委员会作出认定",
    ("case", "DeterminationApproved"): "校长批准认定",
    ("case", "DeterminationReturned"): "校长退回认定",
    ("case", "MandatoryReportMade"): "强制报告",
    ("case", "InterventionPlanned"): "制定干预措施",
    ("case", "InterventionProgressRecorded"): "记录干预进展",
    ("case", "InterventionCompleted"): "完成干预",
    ("case", "AppealLodged"): "提出申诉",
    ("case", "AppealReviewed"): "申诉复查结果",
    ("case", "FollowUpRecorded"): "回访",
    ("case", "Closed"): "结案",
    ("case", "Reopened"): "重新开启案件",
    ("case", "StatementCorrected"): "更正陈述",
    ("case", "EvidenceCorrected"): "更正证据",
    ("case", "NarrativeCorrected"): "更正事情经过",
    ("case", "ReportCorrected"): "更正报告信息",
    ("case", "FollowUpCorrected"): "更正回访记录",
    ("case", "SelfHarmNoted"): "记录自伤迹象",
    ("case", "GuardianInvitationRecorded"): "通知监护人参与认定",
    ("case", "GuardianParticipationRecorded"): "记录监护人参与认定的情况",
    ("case", "CommitteeMeetingRecorded"): "欺凌治理委员会认定会议",
    ("committee", "Constituted"): "组建学生欺凌治理委员会",
    ("committee", "MemberAppointed"): "登记委员会成员",
    ("committee", "MemberLeft"): "委员会成员离任",
    ("case", "AuthorityReportsDue"): "应向公安机关和教育行政部门报告",
    ("case", "PoliceTrackOpened"): "开启公安机关处理",
    ("case", "AuthorityReportMade"): "向公安机关/教育行政部门报告",
    ("case", "DispositionDecided"): "对欺凌学生作出处理决定",
    ("case", "CountyReviewApplied"): "申请县级复查",
    ("case", "CountyReviewPanelRecorded"): "记录复查小组成员",
    ("case", "CountyReviewDecided"): "县级复查结果",
    ("file", "Opened"): "建立心理档案",
    ("file", "RiskLevelRaised"): "提高风险等级",
    ("file", "RiskLevelLowered"): "降低风险等级",
    ("file", "CategoryChanged"): "调整档案类别",
    ("file", "ResponsibleReassigned"): "更换一对一负责人",
    ("file", "PlanDrawnUp"): "制定帮扶方案",
    ("file", "PlanRevised"): "修订帮扶方案",
    ("file", "SessionRecorded"): "心理辅导",
    ("file", "GuardianContacted"): "家校联系",
    ("file", "ReferralMade"): "转介",
    ("file", "CrisisInterventionRecorded"): "危机干预",
    ("file", "PlanReviewed"): "方案复评",
    ("file", "EntryCorrected"): "更正档案记录",
    ("file", "Closed"): "档案结案",
    ("file", "Reopened"): "重新开启档案",
    ("file", "CrisisOpened"): "启动心理危机干预",
    ("file", "CrisisSignalAdded"): "新的危机信号",
    ("file", "CrisisRiskAssessed"): "危机干预：面谈学生并评估风险",
    ("file", "CrisisGuardianInformed"): "危机干预：告知监护人",
    ("file", "CrisisGuardianResponded"): "危机干预：监护人意见",
    ("file", "CrisisSupervisionArranged"): "危机干预：安排安全监护",
    ("file", "CrisisHandedOver"): "危机干预：移交监护人",
    ("file", "CrisisReferralMade"): "危机干预：转介医疗机构",
    ("file", "CrisisReferralFeedbackReceived"): "危机干预：收到转介回执",
    ("file", "CrisisMedicalAdviceNoted"): "复学评估：医生建议",
    ("file", "CrisisReturnAssessed"): "复学评估：心理老师评估",
    ("file", "CrisisConcluded"): "危机干预结束",
    ("file", "FirstContactScheduled"): "安排首次接触",
    ("file", "ResponsiblePersonAssigned"): "指定一对一包联人",
    ("file", "ReferralSent"): "转介",
    ("file", "ReferralAccepted"): "转介：机构已接收",
    ("file", "ReferralFeedbackReceived"): "转介：收到回执",
    ("file", "ReferralClosed"): "转介结束",
    ("screening", "ScreeningRecordOpened"): "建立本学年筛查记录",
    ("screening", "ScreeningRecorded"): "心理筛查",
    ("pairing", "Paired"): "一岗双带结对",
    ("pairing", "CheckInRecorded"): "记录谈心",
    ("pairing", "CheckInCorrected"): "更正谈心记录",
    ("pairing", "ConcernEscalated"): "担忧上报",
    ("pairing", "CadenceChanged"): "调整谈心频率",
    ("pairing", "Ended"): "结束结对",
}
KIND_LABELS = {
    "student": "学生信息",
    "case": "欺凌案件",
    "file": "心理档案",
    "screening": "心理筛查",
    "pairing": "一岗双带",
    "committee": "学生欺凌治理委员会",
}
# Issue 17 (A): intake.
LABELS.update({("case", "ClueDismissed"): "线索核查结束（查无欺凌）"})

# A record's status (the directory's code) in words, by kind: what a list of a student's
# records shows of each (a case's, a file's, a pairing's).
STATUS_LABELS: dict[str, dict[str, str]] = {
    "case": dict(CASE_STATUS_LABELS),
    "file": {"open": "跟进中", "closed": "已结案"},
    "pairing": {"active": "结对中", "ended": "已结束"},
}

# The fields shown as an entry's details (for a viewer with full read), in this order.
DETAIL_FIELDS = (
    "name",
    "grade",
    "class_name",
    "changes",
    "channel",
    "occurred_at",
    "place",
    "forms",
    "parties",
    "narrative",
    "reporter_note",
    "student_id",
    "part",
    "kind",
    "method",
    "notified_at",
    "invited_at",
    "reached",
    "participation",
    "student_ids",
    "from_person",
    "from_student_id",
    "taken_on",
    "text",
    "description",
    "reference",
    "findings",
    "bullying",
    "severity",
    "horseplay",
    "agency",
    "reported_at",
    "plan",
    "note",
    "outcome",
    "grounds",
    "lodged_on",
    "decided_on",
    "new_determination",
    "authority",
    "unit",
    "receipt",
    "due_at",
    "level",
    "measure",
    "decided_by",
    "county_body",
    "applied_on",
    "due_on",
    "members",
    "held_on",
    "notes",
    "concern",
    "concern_note",
    "target",
    "target_id",
    "category",
    "risk_level",
    "from_level",
    "to_level",
    "from_category",
    "to_category",
    "goals",
    "measures",
    "summary",
    "duration_minutes",
    "next_steps",
    "contacted_on",
    "guardian",
    "to",
    "occurred_on",
    "what_happened",
    "actions_taken",
    "reviewed_on",
    "instrument",
    "instrument_name",
    "total",
    "band_label",
    "flagged",
    "crisis",
    "support_file_id",  # the file a screening opened or raised (a link where the viewer may see it)
    "screened_on",
    "school_year",
    "cadence_days",
    "finding",
    "corrects",
    "reason",
    "actor",
)


def details_of(e: Any) -> dict[str, Any]:
    """The event's details: its `DETAIL_FIELDS` that hold something, in that order."""
    state = vars(e)
    out = {}
    for k in DETAIL_FIELDS:
        v = state.get(k)
        if v is None or v == "" or v == [] or v == {}:
            continue
        out[k] = v
    return out


# -- codes shown in words (issue 18) ----------------------------------------------------------------
# A detail field that holds a code: the vocabulary that names it (pages never show a code).
def _value_labels() -> dict[str, dict[str, str]]:
    from domain.bullying.vocabulary import (
        APPEAL_OUTCOMES,
        AUTHORITIES,
        AUTHORITY_REPORT_GROUNDS,
        AUTHORITY_REPORT_METHODS,
        CHANNELS,
        CLUE_FINDINGS,
        CONTACT_METHODS,
        COUNTY_REVIEW_OUTCOMES,
        DISPOSITION_DECIDERS,
        DISPOSITION_KINDS,
        GUARDIAN_INVITATION_METHODS,
        GUARDIAN_PARTICIPATION,
        INTERVENTION_KINDS,
        MEASURES,
        PARTS,
        POLICE_TRACK_KINDS,
        SEVERITIES,
    )
    from domain.policy import RISK_LABELS
    from domain.support.vocabulary import CONTACT_METHODS as FILE_CONTACT_METHODS
    from domain.support.vocabulary import GUARDIAN_METHODS, GUARDIAN_RESPONSES, REVIEW_OUTCOMES

    levels = {k: v for by_kind in _discipline_levels().values() for k, v in by_kind.items()}
    return {
        "channel": CHANNELS,
        "part": PARTS,
        "severity": SEVERITIES,
        "outcome": {**REVIEW_OUTCOMES, **APPEAL_OUTCOMES, **COUNTY_REVIEW_OUTCOMES},
        "risk_level": dict(RISK_LABELS),
        "from_level": dict(RISK_LABELS),
        "to_level": dict(RISK_LABELS),
        "kind": {**MEASURES, **INTERVENTION_KINDS, **DISPOSITION_KINDS, **POLICE_TRACK_KINDS},
        "method": {**FILE_CONTACT_METHODS, **CONTACT_METHODS},
        "participation": GUARDIAN_PARTICIPATION,
        "authority": AUTHORITIES,
        "grounds": AUTHORITY_REPORT_GROUNDS,
        "decided_by": DISPOSITION_DECIDERS,
        "finding": CLUE_FINDINGS,
        "response": GUARDIAN_RESPONSES,
        "level": levels,
        # Where one field's code means different things in different events (by event type).
        "GuardianInvitationRecorded.method": GUARDIAN_INVITATION_METHODS,
        "AuthorityReportMade.method": AUTHORITY_REPORT_METHODS,
        "CrisisGuardianInformed.method": GUARDIAN_METHODS,
        "PlanReviewed.outcome": REVIEW_OUTCOMES,
        "AppealReviewed.outcome": APPEAL_OUTCOMES,
        "CountyReviewDecided.outcome": COUNTY_REVIEW_OUTCOMES,
    }


def _discipline_levels() -> dict[str, dict[str, str]]:
    from domain.bullying.vocabulary import DISPOSITION_LEVELS

    return DISPOSITION_LEVELS


VALUE_LABELS: dict[str, dict[str, str]] = _value_labels()


def value_label(event_type: str, field: str, value: Any) -> Any:
    """A detail's value as a person reads it: a code in its Chinese label (the event's own
    vocabulary first), unknown codes and free text as they are."""
    if isinstance(value, str):
        labels = VALUE_LABELS.get(f"{event_type}.{field}") or VALUE_LABELS.get(field, {})
        return labels.get(value, value)
    return value
