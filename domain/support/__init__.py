"""The psychological-support file (心理健康档案 · 一类一案、一人一策).

One file per student at risk: a category (一类一案), a risk level that goes up and
down with reasons, a personal plan (一人一策), one responsible staff member
(一对一包联), and the record of the work: counselling sessions, guardian contacts
(家校联系), referrals (转介), crisis interventions (危机干预) and scheduled reviews
(动态管理). The next review date comes from the policy by risk level and is stored in
the event that set it, so replay never depends on today's policy.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, TypeAlias
from uuid import UUID

from eventsourcing.domain import event

from domain.common import (
    CaseAggregate,
    InvalidInput,
    Scope,
    require,
    require_aware,
    require_text,
)
from domain.policy import RISK_LABELS, Policy
from domain.support import events
from domain.support.errors import (
    CrisisStepDone,
    CrisisStepOutOfOrder,
    EntryNotFound,
    FileClosed,
    FileNotClosed,
    NoOpenCrisis,
    PlanExists,
    PlanMissing,
    ReferralAgencyLocked,
    ReferralWrongState,
    ReturnAssessmentMissing,
    ReviewDateOutOfRange,
    RiskLevelUnchanged,
    WrongRiskDirection,
)
from domain.support.rules import (
    check_category,
    check_level,
    check_plan,
    rank,
    referral_feedback_overdue,
)
from domain.support.vocabulary import (
    AGENCY_KINDS,
    CATEGORIES,
    CONTACT_METHODS,
    CORRECTABLE,
    CRISIS_STEPS,
    CRISIS_TRIGGERS,
    ENTRY_DATE_FIELD,
    ENTRY_KINDS,
    GUARDIAN_METHODS,
    GUARDIAN_RESPONSES,
    NEXT_STEPS,
    ORIGINS,
    REFERRAL_STATES,
    RETURN_PARTS,
    REVIEW_OUTCOMES,
)

__all__ = [
    "AGENCY_KINDS",
    "REFERRAL_STATES",
    "ReferralAgencyLocked",
    "ReferralWrongState",
    "referral_feedback_overdue",
    "CATEGORIES",
    "CONTACT_METHODS",
    "CORRECTABLE",
    "CRISIS_STEPS",
    "CRISIS_TRIGGERS",
    "CrisisStepDone",
    "CrisisStepOutOfOrder",
    "GUARDIAN_METHODS",
    "GUARDIAN_RESPONSES",
    "NEXT_STEPS",
    "NoOpenCrisis",
    "RETURN_PARTS",
    "ReturnAssessmentMissing",
    "ReviewDateOutOfRange",
    "ENTRY_DATE_FIELD",
    "ENTRY_KINDS",
    "EntryNotFound",
    "FileClosed",
    "FileNotClosed",
    "ORIGINS",
    "PlanExists",
    "PlanMissing",
    "REVIEW_OUTCOMES",
    "RiskLevelUnchanged",
    "SupportFile",
    "WrongRiskDirection",
    "check_category",
    "check_level",
    "check_plan",
    "rank",
]


class SupportFile(CaseAggregate):
    Opened: TypeAlias = events.Opened
    RiskLevelRaised: TypeAlias = events.RiskLevelRaised
    RiskLevelLowered: TypeAlias = events.RiskLevelLowered
    CategoryChanged: TypeAlias = events.CategoryChanged
    ResponsibleReassigned: TypeAlias = events.ResponsibleReassigned
    ResponsiblePersonAssigned: TypeAlias = events.ResponsiblePersonAssigned
    PlanDrawnUp: TypeAlias = events.PlanDrawnUp
    PlanRevised: TypeAlias = events.PlanRevised
    SessionRecorded: TypeAlias = events.SessionRecorded
    GuardianContacted: TypeAlias = events.GuardianContacted
    ReferralMade: TypeAlias = events.ReferralMade
    ReferralSent: TypeAlias = events.ReferralSent
    ReferralAccepted: TypeAlias = events.ReferralAccepted
    ReferralFeedbackReceived: TypeAlias = events.ReferralFeedbackReceived
    ReferralClosed: TypeAlias = events.ReferralClosed
    CrisisInterventionRecorded: TypeAlias = events.CrisisInterventionRecorded
    PlanReviewed: TypeAlias = events.PlanReviewed
    EntryCorrected: TypeAlias = events.EntryCorrected
    Closed: TypeAlias = events.Closed
    Reopened: TypeAlias = events.Reopened
    CrisisOpened: TypeAlias = events.CrisisOpened
    CrisisSignalAdded: TypeAlias = events.CrisisSignalAdded
    CrisisRiskAssessed: TypeAlias = events.CrisisRiskAssessed
    CrisisGuardianInformed: TypeAlias = events.CrisisGuardianInformed
    CrisisGuardianResponded: TypeAlias = events.CrisisGuardianResponded
    CrisisSupervisionArranged: TypeAlias = events.CrisisSupervisionArranged
    CrisisHandedOver: TypeAlias = events.CrisisHandedOver
    CrisisReferralMade: TypeAlias = events.CrisisReferralMade
    CrisisReferralFeedbackReceived: TypeAlias = events.CrisisReferralFeedbackReceived
    CrisisMedicalAdviceNoted: TypeAlias = events.CrisisMedicalAdviceNoted
    CrisisReturnAssessed: TypeAlias = events.CrisisReturnAssessed
    CrisisConcluded: TypeAlias = events.CrisisConcluded
    FirstContactScheduled: TypeAlias = events.FirstContactScheduled

    # Added with the crisis pathway: a snapshot taken before has none of these, so they
    # default here and are replaced (never mutated in place) when they change.
    crisis: dict[str, Any] | None = None  # the open crisis
    past_crises: tuple[dict[str, Any], ...] = ()
    first_contact: dict[str, Any] | None = None  # {"due", "done_at"} of an escalated file
    # Added with the one-to-one responsible person (一对一包联人): see `assign_person`.
    person_id: str | None = None
    person_history: tuple[dict[str, Any], ...] = ()

    @event(Opened)
    def __init__(
        self,
        id: UUID,
        school_id: str,
        student_id: str,
        category: str,
        risk_level: str,
        reason: str,
        responsible_id: str,
        origin: str,
        source: dict[str, Any] | None,
        next_review_due: date,
        actor: str,
        at: datetime,
    ) -> None:
        self.school_id = school_id
        self.student_id = student_id
        self.category = category
        self.risk_level = risk_level
        self.responsible_id = responsible_id
        self.origin = origin
        self.source = source
        self.opened_on = at.date()
        self.opened_by = actor
        self.open_reason = reason
        self.next_review_due: date | None = next_review_due
        self.status = "open"
        self.plan: dict[str, Any] | None = None
        self.plan_history: list[dict[str, Any]] = []
        self.entries: dict[str, dict[str, Any]] = {}
        self.risk_history: list[dict[str, Any]] = [
            {"from": None, "to": risk_level, "reason": reason, "actor": actor, "at": at}
        ]
        self.responsible_history: list[dict[str, Any]] = [
            {"from": None, "to": responsible_id, "reason": reason, "actor": actor, "at": at}
        ]
        self.category_history: list[dict[str, Any]] = []
        self.closures: list[dict[str, Any]] = []

    @classmethod
    def open(
        cls,
        *,
        id: UUID,
        school_id: str,
        student_id: str,
        category: str,
        risk_level: str,
        reason: str,
        responsible_id: str,
        origin: str = "judgement",
        source: dict[str, Any] | None = None,
        policy: Policy,
        actor: str,
        at: datetime,
    ) -> SupportFile:
        """Open a file for a student at risk, with a level, a category and a reason."""
        require_aware(at)
        require(bool(student_id), "学生不能为空")
        require(origin in ORIGINS, f"建档来源「{origin}」无效")
        require(source is None or isinstance(source, dict), "来源链接格式不正确")
        level = check_level(risk_level)
        return cls(
            id=id,
            school_id=school_id,
            student_id=student_id,
            category=check_category(category),
            risk_level=level,
            reason=require_text(reason, "建档原因"),
            responsible_id=require_text(responsible_id, "一对一负责人"),
            origin=origin,
            source=dict(source) if source else None,
            next_review_due=policy.next_review(level, at.date()),
            actor=actor,
            at=at,
        )

    # -- risk level -----------------------------------------------------------------
    def raise_risk_level(
        self,
        *,
        to_level: str,
        reason: str,
        policy: Policy,
        actor: str,
        at: datetime,
        source: dict[str, Any] | None = None,
    ) -> None:
        """Raise the level (with a reason); the next review is recomputed."""
        self._check_change(to_level, "raise", "提高风险等级", at)
        self._risk_raised(
            from_level=self.risk_level,
            to_level=to_level,
            reason=require_text(reason, "调整原因"),
            source=dict(source) if source else None,
            next_review_due=policy.next_review(to_level, at.date()),
            actor=actor,
            at=at,
        )

    def lower_risk_level(self, *, to_level: str, reason: str, policy: Policy, actor: str, at: datetime) -> None:
        """Lower the level (with a reason); the next review is recomputed. A file in crisis
        leaves 高危 only after the return-to-school assessment, which concludes the crisis."""
        self._check_change(to_level, "lower", "降低风险等级", at)
        self._conclude_crisis(f"风险等级降为{RISK_LABELS[to_level]}", "降低风险等级", actor, at)
        self._risk_lowered(
            from_level=self.risk_level,
            to_level=to_level,
            reason=require_text(reason, "调整原因"),
            next_review_due=policy.next_review(to_level, at.date()),
            actor=actor,
            at=at,
        )

    def _check_change(self, to_level: str, direction: str, action: str, at: datetime) -> None:
        require_aware(at)
        self._require_open(action)
        check_level(to_level)
        if to_level == self.risk_level:
            raise RiskLevelUnchanged(level=RISK_LABELS[to_level])
        up = rank(to_level) > rank(self.risk_level)
        if up != (direction == "raise"):
            raise WrongRiskDirection(
                current=RISK_LABELS[self.risk_level],
                target=RISK_LABELS[to_level],
                direction="提高" if direction == "raise" else "降低",
            )

    @event(RiskLevelRaised)
    def _risk_raised(
        self,
        from_level: str,
        to_level: str,
        reason: str,
        source: dict[str, Any] | None,
        next_review_due: date,
        actor: str,
        at: datetime,
    ) -> None:
        self._level_changed(from_level, to_level, reason, next_review_due, actor, at)

    @event(RiskLevelLowered)
    def _risk_lowered(
        self, from_level: str, to_level: str, reason: str, next_review_due: date, actor: str, at: datetime
    ) -> None:
        self._level_changed(from_level, to_level, reason, next_review_due, actor, at)

    def _level_changed(self, from_level: str, to_level: str, reason: str, due: date, actor: str, at: datetime) -> None:
        self.risk_level = to_level
        self.next_review_due = due
        self.risk_history.append({"from": from_level, "to": to_level, "reason": reason, "actor": actor, "at": at})

    # -- category, responsibility, plan ---------------------------------------------
    def change_category(self, *, category: str, reason: str, actor: str, at: datetime) -> None:
        require_aware(at)
        self._require_open("调整档案类别")
        category = check_category(category)
        require(category != self.category, "档案类别没有变化")
        self._category_changed(
            from_category=self.category,
            to_category=category,
            reason=require_text(reason, "调整原因"),
            actor=actor,
            at=at,
        )

    @event(CategoryChanged)
    def _category_changed(self, from_category: str, to_category: str, reason: str, actor: str, at: datetime) -> None:
        self.category = to_category
        self.category_history.append({"from": from_category, "to": to_category, "reason": reason, "at": at})

    def reassign(self, *, responsible_id: str, reason: str, actor: str, at: datetime) -> None:
        """Hand the one-to-one responsibility (一对一包联) to another staff member."""
        require_aware(at)
        self._require_open("更换负责人")
        responsible_id = require_text(responsible_id, "新负责人")
        require(responsible_id != self.responsible_id, "新负责人与现负责人相同")
        self._reassigned(
            from_id=self.responsible_id,
            to_id=responsible_id,
            reason=require_text(reason, "更换原因"),
            actor=actor,
            at=at,
        )

    @event(ResponsibleReassigned)
    def _reassigned(self, from_id: str, to_id: str, reason: str, actor: str, at: datetime) -> None:
        self.responsible_id = to_id
        self.responsible_history.append({"from": from_id, "to": to_id, "reason": reason, "actor": actor, "at": at})

    def assign_person(self, *, person_id: str, reason: str, actor: str, at: datetime) -> None:
        """Name the one-to-one responsible person (一对一包联人): any staff member of the school
        (the application checks who), accountable for the student beside the responsible
        counselor. Not a reassignment: the counselor keeps the file and its counselling notes
        (ResponsibleReassigned moves those); the person sees the plan, their own tasks and the
        guardian contacts."""
        require_aware(at)
        self._require_open("指定一对一包联人")
        person_id = require_text(person_id, "一对一包联人")
        require(person_id != self.person_id, "该教职工已是本档案的一对一包联人")
        self._person_assigned(
            person_id=person_id, from_id=self.person_id, reason=require_text(reason, "指定原因"), actor=actor, at=at
        )

    @event(ResponsiblePersonAssigned)
    def _person_assigned(self, person_id: str, from_id: str | None, reason: str, actor: str, at: datetime) -> None:
        self.person_id = person_id
        self.person_history = (
            *self.person_history,
            {"from": from_id, "to": person_id, "reason": reason, "actor": actor, "at": at},
        )

    def draw_up_plan(self, *, goals: list[str], measures: list[dict[str, str]], actor: str, at: datetime) -> None:
        """The personal plan (一人一策): goals and measures, each with who carries it out."""
        require_aware(at)
        self._require_open("制定帮扶方案")
        if self.plan is not None:
            raise PlanExists()
        goals, measures = check_plan(goals, measures)
        self._plan_drawn_up(goals=goals, measures=measures, actor=actor, at=at)

    @event(PlanDrawnUp)
    def _plan_drawn_up(self, goals: list[str], measures: list[dict[str, str]], actor: str, at: datetime) -> None:
        self._set_plan(goals, measures, None, actor, at)

    def revise_plan(
        self, *, goals: list[str], measures: list[dict[str, str]], reason: str, actor: str, at: datetime
    ) -> None:
        require_aware(at)
        self._require_open("修订帮扶方案")
        if self.plan is None:
            raise PlanMissing(action="修订帮扶方案")
        goals, measures = check_plan(goals, measures)
        require(goals != self.plan["goals"] or measures != self.plan["measures"], "方案没有变化")
        self._plan_revised(goals=goals, measures=measures, reason=require_text(reason, "修订原因"), actor=actor, at=at)

    @event(PlanRevised)
    def _plan_revised(
        self, goals: list[str], measures: list[dict[str, str]], reason: str, actor: str, at: datetime
    ) -> None:
        self._set_plan(goals, measures, reason, actor, at)

    def _set_plan(
        self, goals: list[str], measures: list[dict[str, str]], reason: str | None, actor: str, at: datetime
    ) -> None:
        version = len(self.plan_history) + 1
        self.plan = {
            "version": version,
            "goals": goals,
            "measures": measures,
            "reason": reason,
            "actor": actor,
            "at": at,
        }
        self.plan_history.append(self.plan)

    # -- the record of the work -----------------------------------------------------
    def record_session(
        self,
        *,
        entry_id: str,
        held_on: date,
        summary: str,
        duration_minutes: int | None = None,
        next_steps: str = "",
        actor: str,
        at: datetime,
    ) -> None:
        """A counselling session (心理辅导)."""
        self._check_entry(entry_id, held_on, "记录辅导", at)
        require(duration_minutes is None or 0 < duration_minutes <= 600, "辅导时长应在 1-600 分钟之间")
        self._session_recorded(
            entry_id=entry_id,
            held_on=held_on,
            summary=require_text(summary, "辅导记录"),
            duration_minutes=duration_minutes,
            next_steps=(next_steps or "").strip(),
            actor=actor,
            at=at,
        )

    @event(SessionRecorded)
    def _session_recorded(
        self,
        entry_id: str,
        held_on: date,
        summary: str,
        duration_minutes: int | None,
        next_steps: str,
        actor: str,
        at: datetime,
    ) -> None:
        self._add(
            "session",
            entry_id,
            actor,
            at,
            held_on=held_on,
            summary=summary,
            duration_minutes=duration_minutes,
            next_steps=next_steps,
        )
        self._first_contact_made(at)

    def record_guardian_contact(
        self, *, entry_id: str, contacted_on: date, guardian: str, method: str, summary: str, actor: str, at: datetime
    ) -> None:
        """A contact with a guardian (家校联系): who, how, what was said."""
        self._check_entry(entry_id, contacted_on, "记录家校联系", at)
        require(method in CONTACT_METHODS, f"联系方式「{method}」无效")
        self._guardian_contacted(
            entry_id=entry_id,
            contacted_on=contacted_on,
            guardian=require_text(guardian, "联系的监护人"),
            method=method,
            summary=require_text(summary, "联系内容"),
            actor=actor,
            at=at,
        )

    @event(GuardianContacted)
    def _guardian_contacted(
        self, entry_id: str, contacted_on: date, guardian: str, method: str, summary: str, actor: str, at: datetime
    ) -> None:
        self._add(
            "guardian_contact",
            entry_id,
            actor,
            at,
            contacted_on=contacted_on,
            guardian=guardian,
            method=method,
            summary=summary,
        )

    def record_referral(
        self, *, entry_id: str, referred_on: date, to: str, reason: str, actor: str, at: datetime
    ) -> None:
        """A referral (转介), e.g. to a hospital's psychiatric clinic."""
        self._check_entry(entry_id, referred_on, "记录转介", at)
        self._referred(
            entry_id=entry_id,
            referred_on=referred_on,
            to=require_text(to, "转介机构"),
            reason=require_text(reason, "转介原因"),
            actor=actor,
            at=at,
        )

    @event(ReferralMade)
    def _referred(self, entry_id: str, referred_on: date, to: str, reason: str, actor: str, at: datetime) -> None:
        self._add("referral", entry_id, actor, at, referred_on=referred_on, to=to, reason=reason)

    # -- referrals to an agency of the registry (转介), with their states ------------------------
    def send_referral(
        self,
        *,
        entry_id: str,
        referred_on: date,
        agency: dict[str, str],
        reason: str,
        policy: Policy,
        actor: str,
        at: datetime,
    ) -> None:
        """A referral to an agency of the district's registry (`agency`: its id, kind and name,
        looked up by the application); its feedback (回执) falls due `referral_feedback_days`
        after the referral."""
        self._check_entry(entry_id, referred_on, "转介", at)
        require(bool(agency.get("id")) and agency.get("kind") in AGENCY_KINDS, "请从转介机构名录中选择机构")
        self._referral_sent(
            entry_id=entry_id,
            referred_on=referred_on,
            agency_id=agency["id"],
            agency_kind=agency["kind"],
            agency_name=require_text(agency.get("name"), "转介机构"),
            reason=require_text(reason, "转介原因"),
            feedback_due=policy.referral_feedback_due(referred_on),
            actor=actor,
            at=at,
        )

    @event(ReferralSent)
    def _referral_sent(
        self,
        entry_id: str,
        referred_on: date,
        agency_id: str,
        agency_kind: str,
        agency_name: str,
        reason: str,
        feedback_due: date,
        actor: str,
        at: datetime,
    ) -> None:
        self._add(
            "referral",
            entry_id,
            actor,
            at,
            referred_on=referred_on,
            to=agency_name,
            reason=reason,
            agency_id=agency_id,
            agency_kind=agency_kind,
            status="sent",
            feedback_due=feedback_due,
            steps=[],
        )

    def _referral(self, entry_id: str, action: str, at: datetime, *states: str) -> dict[str, Any]:
        require_aware(at)
        self._require_open(action)
        entry = self.entries.get(entry_id)
        if entry is None or entry["kind"] != "referral" or "status" not in entry:
            raise EntryNotFound()
        if entry["status"] not in states:
            raise ReferralWrongState(state=REFERRAL_STATES[entry["status"]], action=action)
        return entry

    def accept_referral(self, *, entry_id: str, accepted_on: date, note: str, actor: str, at: datetime) -> None:
        """The agency has accepted the referral (sent → accepted)."""
        entry = self._referral(entry_id, "记录机构接收", at, "sent")
        self._check_date(accepted_on, at)
        require(accepted_on >= entry["referred_on"], "接收日期不能早于转介日期")
        self._referral_accepted(
            entry_id=entry_id, accepted_on=accepted_on, note=(note or "").strip(), actor=actor, at=at
        )

    @event(ReferralAccepted)
    def _referral_accepted(self, entry_id: str, accepted_on: date, note: str, actor: str, at: datetime) -> None:
        self._referral_step(entry_id, "accepted", actor, at, on=accepted_on, text=note)

    def receive_referral_feedback(
        self, *, entry_id: str, received_on: date, summary: str, actor: str, at: datetime
    ) -> None:
        """The agency's feedback (回执) received (accepted → feedback)."""
        entry = self._referral(entry_id, "记录转介回执", at, "accepted")
        self._check_date(received_on, at)
        require(received_on >= entry["referred_on"], "回执日期不能早于转介日期")
        self._referral_feedback(
            entry_id=entry_id, received_on=received_on, summary=require_text(summary, "回执内容"), actor=actor, at=at
        )

    @event(ReferralFeedbackReceived)
    def _referral_feedback(self, entry_id: str, received_on: date, summary: str, actor: str, at: datetime) -> None:
        self._referral_step(entry_id, "feedback", actor, at, on=received_on, text=summary)

    def close_referral(self, *, entry_id: str, reason: str, actor: str, at: datetime) -> None:
        """The referral is over (from any state: after the feedback, or the agency declined, or
        it was withdrawn), with a reason."""
        self._referral(entry_id, "结束转介", at, "sent", "accepted", "feedback")
        self._referral_closed(entry_id=entry_id, reason=require_text(reason, "结束原因"), actor=actor, at=at)

    @event(ReferralClosed)
    def _referral_closed(self, entry_id: str, reason: str, actor: str, at: datetime) -> None:
        self._referral_step(entry_id, "closed", actor, at, on=None, text=reason)

    def _referral_step(self, entry_id: str, state: str, actor: str, at: datetime, on: Any, text: str) -> None:
        entry = self.entries[entry_id]
        entry["status"] = state
        entry["steps"] = [*entry["steps"], {"state": state, "on": on, "text": text, "actor": actor, "at": at}]

    def referral_overdue(self, entry: dict[str, Any], today: date) -> bool:
        """Whether a referral's feedback is overdue (the domain's rule, `referral_feedback_overdue`)."""
        return self.is_open and referral_feedback_overdue(entry.get("status", ""), entry.get("feedback_due"), today)

    def record_crisis_intervention(
        self,
        *,
        entry_id: str,
        occurred_on: date,
        what_happened: str,
        actions_taken: str,
        policy: Policy,
        actor: str,
        at: datetime,
    ) -> None:
        """A crisis intervention (危机干预); the file goes to 高危 if it is not already,
        as its own RiskLevelRaised event."""
        self._check_entry(entry_id, occurred_on, "记录危机干预", at)
        what_happened = require_text(what_happened, "事件经过")
        actions_taken = require_text(actions_taken, "干预措施")
        self._crisis_recorded(
            entry_id=entry_id,
            occurred_on=occurred_on,
            what_happened=what_happened,
            actions_taken=actions_taken,
            actor=actor,
            at=at,
        )
        if self.risk_level != "high":
            self._risk_raised(
                from_level=self.risk_level,
                to_level="high",
                reason=f"{occurred_on.isoformat()} 发生危机事件并实施危机干预，风险等级自动提升为高危",
                source={"kind": "crisis", "id": entry_id},
                next_review_due=policy.next_review("high", at.date()),
                actor=actor,
                at=at,
            )
        self._open_or_add_signal(
            crisis_id=entry_id,
            trigger="counselor",
            source={"kind": "file", "id": str(self.id), "entry_id": entry_id},
            reason=f"{occurred_on.isoformat()} 心理老师记录危机事件",
            policy=policy,
            actor=actor,
            at=at,
        )

    @event(CrisisInterventionRecorded)
    def _crisis_recorded(
        self, entry_id: str, occurred_on: date, what_happened: str, actions_taken: str, actor: str, at: datetime
    ) -> None:
        self._add(
            "crisis",
            entry_id,
            actor,
            at,
            occurred_on=occurred_on,
            what_happened=what_happened,
            actions_taken=actions_taken,
        )

    def record_review(
        self,
        *,
        entry_id: str,
        reviewed_on: date,
        notes: str,
        outcome: str,
        policy: Policy,
        actor: str,
        at: datetime,
        next_review_due: date | None = None,
    ) -> None:
        """A scheduled review of the plan (动态管理), once a plan exists. The next review is
        the day chosen (`next_review_due`) within the policy's bounds for the risk level
        (`Policy.review_bounds`: from the next day to the policy's interval), else the
        policy's day."""
        self._check_entry(entry_id, reviewed_on, "记录方案复评", at)
        require(outcome in REVIEW_OUTCOMES, f"复评结论「{outcome}」无效（应为 {'、'.join(REVIEW_OUTCOMES.values())}）")
        if self.plan is None:
            raise PlanMissing(action="记录方案复评")
        earliest, latest = policy.review_bounds(self.risk_level, reviewed_on)
        if next_review_due is None:
            next_review_due = latest
        require(
            isinstance(next_review_due, date) and not isinstance(next_review_due, datetime), "下次复评日期格式不正确"
        )
        if not earliest <= next_review_due <= latest:
            raise ReviewDateOutOfRange(
                earliest=f"{earliest.year}年{earliest.month}月{earliest.day}日",
                latest=f"{latest.year}年{latest.month}月{latest.day}日",
                level=RISK_LABELS[self.risk_level],
                days=policy.review_days[self.risk_level],
            )
        self._reviewed(
            entry_id=entry_id,
            reviewed_on=reviewed_on,
            notes=require_text(notes, "复评意见"),
            outcome=outcome,
            next_review_due=next_review_due,
            actor=actor,
            at=at,
        )

    @event(PlanReviewed)
    def _reviewed(
        self,
        entry_id: str,
        reviewed_on: date,
        notes: str,
        outcome: str,
        next_review_due: date,
        actor: str,
        at: datetime,
    ) -> None:
        self._add(
            "review",
            entry_id,
            actor,
            at,
            reviewed_on=reviewed_on,
            notes=notes,
            outcome=outcome,
            next_review_due=next_review_due,
        )
        self.next_review_due = next_review_due

    def _check_entry(self, entry_id: str, on: date, action: str, at: datetime) -> None:
        require_aware(at)
        self._require_open(action)
        require(bool(entry_id) and entry_id not in self.entries, "记录编号无效或已存在")
        self._check_date(on, at)

    @staticmethod
    def _check_date(on: Any, at: datetime) -> None:
        require(isinstance(on, date) and not isinstance(on, datetime), "日期格式不正确")
        require(on <= at.date(), "日期不能晚于今天")

    def _add(self, kind: str, entry_id: str, actor: str, at: datetime, **fields: Any) -> None:
        self.entries[entry_id] = {"id": entry_id, "kind": kind, **fields, "actor": actor, "at": at, "corrections": []}

    # -- corrections ----------------------------------------------------------------
    def correct_entry(self, *, entry_id: str, changes: dict[str, Any], reason: str, actor: str, at: datetime) -> None:
        """Correct a recorded entry: a new event naming the entry it corrects."""
        require_aware(at)
        self._require_open("更正记录")
        entry = self.entries.get(entry_id)
        if entry is None:
            raise EntryNotFound()
        kind = entry["kind"]
        if kind == "referral" and "agency_id" in entry and changes.get("to", entry["to"]) != entry["to"]:
            raise ReferralAgencyLocked()
        unknown = set(changes) - set(CORRECTABLE[kind])
        require(not unknown, f"{ENTRY_KINDS[kind]}记录不能更正：{', '.join(sorted(unknown))}")
        clean: dict[str, Any] = {}
        for k, v in changes.items():
            if k == ENTRY_DATE_FIELD[kind]:
                self._check_date(v, at)
            elif k == "duration_minutes":
                require(v is None or (isinstance(v, int) and 0 < v <= 600), "辅导时长应在 1-600 分钟之间")
            elif k == "method":
                require(v in CONTACT_METHODS, f"联系方式「{v}」无效")
            elif k == "next_steps":
                v = (v or "").strip()
            else:
                v = require_text(v, "更正内容")
            clean[k] = v
        changed = {k: v for k, v in clean.items() if entry.get(k) != v}  # a field given as it was is no change
        require(bool(changed), "没有要更正的内容")
        self._entry_corrected(
            corrects=entry_id,
            entry_kind=kind,
            changes=changed,
            reason=require_text(reason, "更正原因"),
            actor=actor,
            at=at,
        )

    @event(EntryCorrected)
    def _entry_corrected(
        self, corrects: str, entry_kind: str, changes: dict[str, Any], reason: str, actor: str, at: datetime
    ) -> None:
        entry = self.entries[corrects]
        entry.update(changes)
        entry["corrections"].append({"changes": changes, "reason": reason, "actor": actor, "at": at})

    # -- closure --------------------------------------------------------------------
    def close(self, *, reason: str, actor: str, at: datetime) -> None:
        """Close the file once the risk is resolved (in crisis: after the return-to-school
        assessment, which concludes the crisis)."""
        require_aware(at)
        self._require_open("再次结案")
        self._conclude_crisis("档案结案", "结案", actor, at)
        self._closed(reason=require_text(reason, "结案原因"), actor=actor, at=at)

    @event(Closed)
    def _closed(self, reason: str, actor: str, at: datetime) -> None:
        self.status = "closed"
        self.next_review_due = None
        if self.first_contact is not None:
            self.first_contact = None  # a closed file owes no first contact, reopened or not
        self.closures.append({"closed_at": at, "reason": reason, "actor": actor})

    def reopen(self, *, reason: str, policy: Policy, actor: str, at: datetime) -> None:
        require_aware(at)
        if self.status != "closed":
            raise FileNotClosed(action="重新开启")
        self._reopened(
            reason=require_text(reason, "重新开启原因"),
            next_review_due=policy.next_review(self.risk_level, at.date()),
            actor=actor,
            at=at,
        )

    @event(Reopened)
    def _reopened(self, reason: str, next_review_due: date, actor: str, at: datetime) -> None:
        self.status = "open"
        self.next_review_due = next_review_due
        self.closures[-1].update({"reopened_at": at, "reopen_reason": reason})

    # -- the crisis pathway (心理危机干预) ------------------------------------------------------
    def open_crisis(
        self,
        *,
        crisis_id: str,
        trigger: str,
        source: dict[str, Any],
        reason: str,
        policy: Policy,
        actor: str,
        at: datetime,
    ) -> bool:
        """Act on a crisis signal: the file goes to 高危 (its own RiskLevelRaised) and a
        crisis opens with its checklist, each step due on its own clock from the policy.
        With a crisis already open the signal is added to it. True if a crisis opened."""
        require_aware(at)
        self._require_open("启动危机干预")
        require(trigger in CRISIS_TRIGGERS, f"危机信号来源「{trigger}」无效")
        require(isinstance(source, dict) and bool(source.get("id")), "危机信号须注明来源记录")
        reason = require_text(reason, "危机信号说明")
        if self.risk_level != "high":
            self._risk_raised(
                from_level=self.risk_level,
                to_level="high",
                reason=f"危机信号（{CRISIS_TRIGGERS[trigger]}），风险等级提升为高危：{reason}",
                source=dict(source),
                next_review_due=policy.next_review("high", at.date()),
                actor=actor,
                at=at,
            )
        return self._open_or_add_signal(
            crisis_id=crisis_id, trigger=trigger, source=source, reason=reason, policy=policy, actor=actor, at=at
        )

    def _open_or_add_signal(
        self,
        *,
        crisis_id: str,
        trigger: str,
        source: dict[str, Any],
        reason: str,
        policy: Policy,
        actor: str,
        at: datetime,
    ) -> bool:
        if self.crisis is not None:
            self._crisis_signal_added(
                crisis_id=self.crisis["id"], trigger=trigger, source=dict(source), reason=reason, actor=actor, at=at
            )
            return False
        require(bool(crisis_id), "危机编号不能为空")
        self._crisis_opened(
            crisis_id=crisis_id,
            trigger=trigger,
            source=dict(source),
            reason=reason,
            due=policy.crisis_dues(at),
            actor=actor,
            at=at,
        )
        return True

    @event(CrisisOpened)
    def _crisis_opened(
        self,
        crisis_id: str,
        trigger: str,
        source: dict[str, Any],
        reason: str,
        due: dict[str, datetime],
        actor: str,
        at: datetime,
    ) -> None:
        self.crisis = {
            "id": crisis_id,
            "trigger": trigger,
            "source": source,
            "reason": reason,
            "due": dict(due),
            "opened_at": at,
            "opened_by": actor,
            "signals": [],
            "done": {},
            "parts": {},
        }

    @event(CrisisSignalAdded)
    def _crisis_signal_added(
        self, crisis_id: str, trigger: str, source: dict[str, Any], reason: str, actor: str, at: datetime
    ) -> None:
        assert self.crisis is not None
        self.crisis["signals"].append(
            {"trigger": trigger, "source": source, "reason": reason, "actor": actor, "at": at}
        )

    def _crisis_step(self, step: str, action: str, at: datetime, before: str | None = None) -> str:
        """The open crisis's id, if `step` may be recorded now."""
        require_aware(at)
        self._require_open(action)
        if self.crisis is None:
            raise NoOpenCrisis(action=action)
        if step in self.crisis["done"] or step in self.crisis["parts"]:
            raise CrisisStepDone(step=CRISIS_STEPS.get(step) or RETURN_PARTS[step])
        if before is not None and before not in self.crisis["done"]:
            raise CrisisStepOutOfOrder(before=CRISIS_STEPS[before], action=action)
        return str(self.crisis["id"])

    def _done(self, step: str, actor: str, at: datetime, **fields: Any) -> None:
        assert self.crisis is not None
        self.crisis["done"][step] = {**fields, "actor": actor, "at": at}

    def record_crisis_assessment(self, *, assessment: str, actor: str, at: datetime) -> None:
        """The counselor has seen the student and assessed the risk."""
        cid = self._crisis_step("assessed", "记录风险评估", at)
        self._crisis_assessed(crisis_id=cid, assessment=require_text(assessment, "评估结论"), actor=actor, at=at)

    @event(CrisisRiskAssessed)
    def _crisis_assessed(self, crisis_id: str, assessment: str, actor: str, at: datetime) -> None:
        self._done("assessed", actor, at, assessment=assessment)
        self._first_contact_made(at)

    def record_guardian_informed(
        self, *, guardian: str, method: str, response: str, note: str, actor: str, at: datetime
    ) -> None:
        """The guardian was informed (how), and answered with consent, refusal or not yet."""
        cid = self._crisis_step("guardian_informed", "记录告知监护人", at)
        require(method in GUARDIAN_METHODS, f"告知方式「{method}」无效")
        require(response in GUARDIAN_RESPONSES, f"监护人意见「{response}」无效")
        self._guardian_informed(
            crisis_id=cid,
            guardian=require_text(guardian, "告知的监护人"),
            method=method,
            response=response,
            note=(note or "").strip(),
            actor=actor,
            at=at,
        )

    @event(CrisisGuardianInformed)
    def _guardian_informed(
        self, crisis_id: str, guardian: str, method: str, response: str, note: str, actor: str, at: datetime
    ) -> None:
        self._done("guardian_informed", actor, at, guardian=guardian, method=method, note=note)
        if response != "pending":
            self._done("guardian_response", actor, at, response=response, note=note)

    def record_guardian_response(self, *, response: str, note: str, actor: str, at: datetime) -> None:
        """The guardian's informed consent (知情同意) or refusal, given after being informed."""
        cid = self._crisis_step("guardian_response", "记录监护人意见", at, before="guardian_informed")
        require(response in ("consented", "refused"), "监护人意见应为知情同意或拒绝")
        self._guardian_responded(crisis_id=cid, response=response, note=(note or "").strip(), actor=actor, at=at)

    @event(CrisisGuardianResponded)
    def _guardian_responded(self, crisis_id: str, response: str, note: str, actor: str, at: datetime) -> None:
        self._done("guardian_response", actor, at, response=response, note=note)

    def record_supervision(self, *, supervisors: str, note: str, actor: str, at: datetime) -> None:
        """Safety supervision (安全监护, 不离人) arranged: who stays with the student."""
        cid = self._crisis_step("supervision", "记录安全监护", at)
        self._supervision_arranged(
            crisis_id=cid,
            supervisors=require_text(supervisors, "监护人员"),
            note=(note or "").strip(),
            actor=actor,
            at=at,
        )

    @event(CrisisSupervisionArranged)
    def _supervision_arranged(self, crisis_id: str, supervisors: str, note: str, actor: str, at: datetime) -> None:
        self._done("supervision", actor, at, supervisors=supervisors, note=note)

    def record_handover(self, *, guardian: str, note: str, actor: str, at: datetime) -> None:
        """The student handed from the school's supervision to the guardian."""
        cid = self._crisis_step("handed_over", "记录移交监护人", at, before="supervision")
        self._handed_over(
            crisis_id=cid,
            guardian=require_text(guardian, "接回的监护人"),
            note=(note or "").strip(),
            actor=actor,
            at=at,
        )

    @event(CrisisHandedOver)
    def _handed_over(self, crisis_id: str, guardian: str, note: str, actor: str, at: datetime) -> None:
        self._done("handed_over", actor, at, guardian=guardian, note=note)

    def record_crisis_referral(
        self,
        *,
        institution: str,
        note: str,
        policy: Policy,
        actor: str,
        at: datetime,
        agency_id: str | None = None,
    ) -> None:
        """A referral to a mental-health institution (picked from the district's registry:
        `agency_id`, its name the `institution`); its feedback (回执) falls due."""
        cid = self._crisis_step("referral", "记录转介", at)
        self._crisis_referred(
            crisis_id=cid,
            institution=require_text(institution, "转介机构"),
            agency_id=agency_id or None,
            note=(note or "").strip(),
            feedback_due=policy.crisis_feedback_due(at),
            actor=actor,
            at=at,
        )

    @event(CrisisReferralMade)
    def _crisis_referred(
        self,
        crisis_id: str,
        institution: str,
        agency_id: str | None,
        note: str,
        feedback_due: datetime,
        actor: str,
        at: datetime,
    ) -> None:
        assert self.crisis is not None
        self._done("referral", actor, at, institution=institution, agency_id=agency_id, note=note)
        self.crisis["due"]["feedback"] = feedback_due

    def record_referral_feedback(self, *, summary: str, actor: str, at: datetime) -> None:
        """The institution's feedback (回执) received."""
        cid = self._crisis_step("feedback", "记录转介回执", at, before="referral")
        self._feedback_received(crisis_id=cid, summary=require_text(summary, "回执内容"), actor=actor, at=at)

    @event(CrisisReferralFeedbackReceived)
    def _feedback_received(self, crisis_id: str, summary: str, actor: str, at: datetime) -> None:
        self._done("feedback", actor, at, summary=summary)

    def note_medical_advice(self, *, advice: str, actor: str, at: datetime) -> None:
        """The doctor's advice on the student's return to school (part of 复学评估)."""
        cid = self._crisis_step("medical_advice", "记录医生建议", at)
        self._medical_advice_noted(crisis_id=cid, advice=require_text(advice, "医生建议"), actor=actor, at=at)

    @event(CrisisMedicalAdviceNoted)
    def _medical_advice_noted(self, crisis_id: str, advice: str, actor: str, at: datetime) -> None:
        assert self.crisis is not None
        self.crisis["parts"]["medical_advice"] = {"advice": advice, "actor": actor, "at": at}

    def record_return_assessment(self, *, assessment: str, actor: str, at: datetime) -> None:
        """The counselor's own assessment for the return to school (part of 复学评估)."""
        cid = self._crisis_step("return_assessed", "记录复学评估", at)
        self._return_assessed(crisis_id=cid, assessment=require_text(assessment, "评估意见"), actor=actor, at=at)

    @event(CrisisReturnAssessed)
    def _return_assessed(self, crisis_id: str, assessment: str, actor: str, at: datetime) -> None:
        assert self.crisis is not None
        self.crisis["parts"]["return_assessed"] = {"assessment": assessment, "actor": actor, "at": at}

    def return_parts_missing(self) -> list[str]:
        """What the open crisis's return-to-school assessment still lacks (its labels)."""
        if self.crisis is None:
            return []
        missing = [RETURN_PARTS[p] for p in ("medical_advice", "return_assessed") if p not in self.crisis["parts"]]
        if self.plan_since_crisis() is None:
            missing.append(RETURN_PARTS["plan_revised"])
        return missing

    def plan_since_crisis(self) -> dict[str, Any] | None:
        """The plan drawn up or revised since the crisis opened, if any."""
        if self.crisis is None or self.plan is None or self.plan["at"] < self.crisis["opened_at"]:
            return None
        return self.plan

    def _conclude_crisis(self, reason: str, action: str, actor: str, at: datetime) -> None:
        if self.crisis is None:
            return
        missing = self.return_parts_missing()
        if missing:
            raise ReturnAssessmentMissing(action=action, missing="、".join(missing))
        self._crisis_concluded(crisis_id=self.crisis["id"], reason=reason, actor=actor, at=at)

    @event(CrisisConcluded)
    def _crisis_concluded(self, crisis_id: str, reason: str, actor: str, at: datetime) -> None:
        assert self.crisis is not None
        self.past_crises = (*self.past_crises, {**self.crisis, "concluded_at": at, "concluded_reason": reason})
        self.crisis = None

    def crisis_checklist(self, now: datetime) -> list[dict[str, Any]]:
        """The open crisis's steps in order: each with its due time (None: no clock), who
        recorded it and when (None: not yet), and whether it is overdue at `now`."""
        c = self.crisis
        if c is None:
            return []
        out = []
        for step, label in CRISIS_STEPS.items():
            done = c["done"].get(step)
            if step == "return_assessment":
                missing = self.return_parts_missing()
                parts = {**c["parts"]}
                if (plan := self.plan_since_crisis()) is not None:
                    parts["plan_revised"] = {"actor": plan["actor"], "at": plan["at"]}
                done = None if missing else max(parts.values(), key=lambda p: p["at"])
                out.append({"step": step, "label": label, "due": None, "done": done, "overdue": False, "parts": parts})
                continue
            due = c["due"].get(step)
            out.append(
                {
                    "step": step,
                    "label": label,
                    "due": due,
                    "done": done,
                    "overdue": done is None and due is not None and now > due,
                    "late": done is not None and due is not None and done["at"] > due,
                }
            )
        return out

    # -- first contact after an escalation --------------------------------------------------------
    def schedule_first_contact(self, *, policy: Policy, actor: str, at: datetime) -> None:
        """A file opened from a teacher's escalation: the counselor's first contact with the
        student is due within the policy's school days (a session, or a crisis assessment)."""
        require_aware(at)
        self._require_open("安排首次接触")
        require(self.first_contact is None, "首次接触已安排")
        self._first_contact_scheduled(due=policy.first_contact_due(policy.local(at).date()), actor=actor, at=at)

    @event(FirstContactScheduled)
    def _first_contact_scheduled(self, due: date, actor: str, at: datetime) -> None:
        self.first_contact = {"due": due, "done_at": None}

    def _first_contact_made(self, at: datetime) -> None:
        if self.first_contact is not None and self.first_contact["done_at"] is None:
            self.first_contact = {**self.first_contact, "done_at": at}

    @property
    def first_contact_due(self) -> date | None:
        """When the first contact is due while it has not been made (None otherwise)."""
        fc = self.first_contact
        return fc["due"] if fc is not None and fc["done_at"] is None and self.is_open else None

    # -- questions ------------------------------------------------------------------
    @property
    def is_open(self) -> bool:
        return self.status == "open"

    @property
    def risk_label(self) -> str:
        return RISK_LABELS[self.risk_level]

    def review_overdue(self, today: date) -> bool:
        return self.is_open and self.next_review_due is not None and today > self.next_review_due

    def entries_of(self, kind: str) -> list[dict[str, Any]]:
        if kind not in ENTRY_KINDS:
            raise InvalidInput(reason=f"未知的记录类型「{kind}」")
        date_field = ENTRY_DATE_FIELD[kind]
        return sorted((e for e in self.entries.values() if e["kind"] == kind), key=lambda e: (e[date_field], e["at"]))

    @property
    def sessions(self) -> list[dict[str, Any]]:
        return self.entries_of("session")

    @property
    def guardian_contacts(self) -> list[dict[str, Any]]:
        return self.entries_of("guardian_contact")

    @property
    def referrals(self) -> list[dict[str, Any]]:
        return self.entries_of("referral")

    @property
    def crises(self) -> list[dict[str, Any]]:
        return self.entries_of("crisis")

    @property
    def reviews(self) -> list[dict[str, Any]]:
        return self.entries_of("review")

    def _require_open(self, action: str) -> None:
        if self.status != "open":
            raise FileClosed(action=action)

    @property
    def escalated_by(self) -> str | None:
        """The staff member who escalated the check-in concern that opened the file."""
        return self.opened_by if self.origin == "escalation" else None

    def next_step(self) -> tuple[str | None, date | None]:
        """What is next on an open file and when (the status page's line): the counselor's
        first contact while it is owed, otherwise the plan's review; (None, None) if closed."""
        if not self.is_open:
            return None, None
        if self.first_contact_due is not None:
            return "first_contact", self.first_contact_due
        return "review", self.next_review_due

    def scope(self) -> Scope:
        staff: list[tuple[str, str]] = []
        if self.escalated_by:
            staff.append(("escalated", self.escalated_by))
        if self.person_id:
            staff.append(("person", self.person_id))
        if self.crisis is not None and self.is_open:
            staff.append(("crisis", ""))
        return Scope(
            kind="file",
            school_id=self.school_id,
            owner_id=self.responsible_id,
            subject_id=self.student_id,
            status=self.status,
            links=((self.student_id, "supported"),),
            staff=tuple(staff),
        )
