"""What SupportFile records: one class per fact, with its fields. The aggregate names each
(`SupportFile.X = events.X`), so every stored topic stays `domain.support:SupportFile.X`."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from domain.common import (
    CaseAggregate,
)


class Opened(CaseAggregate.Created):
    school_id: str
    student_id: str
    category: str
    risk_level: str
    reason: str
    responsible_id: str
    origin: str
    source: dict[str, Any] | None
    next_review_due: date
    actor: str
    at: datetime


class RiskLevelRaised(CaseAggregate.Event):
    from_level: str
    to_level: str
    reason: str
    source: dict[str, Any] | None
    next_review_due: date
    actor: str
    at: datetime


class RiskLevelLowered(CaseAggregate.Event):
    from_level: str
    to_level: str
    reason: str
    next_review_due: date
    actor: str
    at: datetime


class CategoryChanged(CaseAggregate.Event):
    from_category: str
    to_category: str
    reason: str
    actor: str
    at: datetime


class ResponsibleReassigned(CaseAggregate.Event):
    from_id: str
    to_id: str
    reason: str
    actor: str
    at: datetime


class ResponsiblePersonAssigned(CaseAggregate.Event):
    """The one-to-one responsible person (一对一包联人) named: any staff member of the school,
    beside the responsible counselor (`responsible_id`, who keeps the counselling notes and is
    moved by ResponsibleReassigned). `from_id`: the person named before, if any."""

    person_id: str
    from_id: str | None
    reason: str
    actor: str
    at: datetime


class PlanDrawnUp(CaseAggregate.Event):
    goals: list[str]
    measures: list[dict[str, str]]
    actor: str
    at: datetime


class PlanRevised(CaseAggregate.Event):
    goals: list[str]
    measures: list[dict[str, str]]
    reason: str
    actor: str
    at: datetime


class SessionRecorded(CaseAggregate.Event):
    entry_id: str
    held_on: date
    summary: str
    duration_minutes: int | None
    next_steps: str
    actor: str
    at: datetime


class GuardianContacted(CaseAggregate.Event):
    entry_id: str
    contacted_on: date
    guardian: str
    method: str
    summary: str
    actor: str
    at: datetime


class ReferralMade(CaseAggregate.Event):
    entry_id: str
    referred_on: date
    to: str
    reason: str
    actor: str
    at: datetime


class ReferralSent(CaseAggregate.Event):
    """A referral (转介) to an agency of the district's registry (its id, kind and name as they
    were, so the record stands if the registry changes); its feedback is due by `feedback_due`.
    Its states follow: ReferralAccepted, ReferralFeedbackReceived, ReferralClosed."""

    entry_id: str
    referred_on: date
    agency_id: str
    agency_kind: str
    agency_name: str
    reason: str
    feedback_due: date
    actor: str
    at: datetime


class ReferralAccepted(CaseAggregate.Event):
    entry_id: str
    accepted_on: date
    note: str
    actor: str
    at: datetime


class ReferralFeedbackReceived(CaseAggregate.Event):
    entry_id: str
    received_on: date
    summary: str
    actor: str
    at: datetime


class ReferralClosed(CaseAggregate.Event):
    entry_id: str
    reason: str
    actor: str
    at: datetime


class CrisisInterventionRecorded(CaseAggregate.Event):
    entry_id: str
    occurred_on: date
    what_happened: str
    actions_taken: str
    actor: str
    at: datetime


class PlanReviewed(CaseAggregate.Event):
    entry_id: str
    reviewed_on: date
    notes: str
    outcome: str
    next_review_due: date
    actor: str
    at: datetime


class EntryCorrected(CaseAggregate.Event):
    corrects: str
    entry_kind: str
    changes: dict[str, Any]
    reason: str
    actor: str
    at: datetime


class Closed(CaseAggregate.Event):
    reason: str
    actor: str
    at: datetime


class Reopened(CaseAggregate.Event):
    reason: str
    next_review_due: date
    actor: str
    at: datetime


# -- the crisis pathway (心理危机干预) ------------------------------------------------------------
class CrisisOpened(CaseAggregate.Event):
    """A crisis signal acted on: `trigger` is what raised it (screening, counselor, check_in,
    bullying_case), `source` the stream it came from ({"kind", "id", ...}), `due` when each
    step of the checklist falls due (from the policy, in the school's time zone)."""

    crisis_id: str
    trigger: str
    source: dict[str, Any]
    reason: str
    due: dict[str, datetime]
    actor: str
    at: datetime


class CrisisSignalAdded(CaseAggregate.Event):
    """Another signal while a crisis is already open on the file (nothing new falls due)."""

    crisis_id: str
    trigger: str
    source: dict[str, Any]
    reason: str
    actor: str
    at: datetime


class CrisisRiskAssessed(CaseAggregate.Event):
    crisis_id: str
    assessment: str
    actor: str
    at: datetime


class CrisisGuardianInformed(CaseAggregate.Event):
    crisis_id: str
    guardian: str
    method: str
    response: str
    note: str
    actor: str
    at: datetime


class CrisisGuardianResponded(CaseAggregate.Event):
    crisis_id: str
    response: str
    note: str
    actor: str
    at: datetime


class CrisisSupervisionArranged(CaseAggregate.Event):
    crisis_id: str
    supervisors: str
    note: str
    actor: str
    at: datetime


class CrisisHandedOver(CaseAggregate.Event):
    crisis_id: str
    guardian: str
    note: str
    actor: str
    at: datetime


class CrisisReferralMade(CaseAggregate.Event):
    """Version 2: `agency_id`, the agency of the district's registry the institution was picked
    from (None: typed, as every version 1 referral was)."""

    class_version = 2
    crisis_id: str
    institution: str
    agency_id: str | None
    note: str
    feedback_due: datetime
    actor: str
    at: datetime

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        state["agency_id"] = None


class CrisisReferralFeedbackReceived(CaseAggregate.Event):
    crisis_id: str
    summary: str
    actor: str
    at: datetime


class CrisisMedicalAdviceNoted(CaseAggregate.Event):
    crisis_id: str
    advice: str
    actor: str
    at: datetime


class CrisisReturnAssessed(CaseAggregate.Event):
    crisis_id: str
    assessment: str
    actor: str
    at: datetime


class CrisisConcluded(CaseAggregate.Event):
    """The crisis is over: the return-to-school assessment was complete and the file left
    高危 or was closed (recorded in the same save, just before that change)."""

    crisis_id: str
    reason: str
    actor: str
    at: datetime


class FirstContactScheduled(CaseAggregate.Event):
    """A file opened from a teacher's escalation: the counselor's first contact is due."""

    due: date
    actor: str
    at: datetime
