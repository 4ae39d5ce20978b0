"""What BullyingCase records: one class per fact, with its fields. The aggregate names each
(`BullyingCase.X = events.X`), so every stored topic stays `domain.bullying:BullyingCase.X`."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from domain.common import (
    CaseAggregate,
)


class Reported(CaseAggregate.Created):
    # Version 2 (issue 17): the investigation's clock starts when it starts. A report carries
    # `intake_due` (when the investigation must start) and no `investigation_due` (None); a
    # version-1 report carried the investigation's due date from the report, and keeps it.
    class_version = 2
    school_id: str
    channel: str
    occurred_at: datetime
    place: str
    forms: list[str]
    parties: list[dict[str, str]]
    narrative: str
    reporter_note: str
    source: dict[str, Any] | None
    investigation_due: date | None
    intake_due: date | None
    actor: str
    at: datetime

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        state["intake_due"] = None


class PartyAdded(CaseAggregate.Event):
    student_id: str
    part: str
    reason: str
    actor: str
    at: datetime


class PartyRemoved(CaseAggregate.Event):
    student_id: str
    part: str
    reason: str
    actor: str
    at: datetime


class SafetyMeasureTaken(CaseAggregate.Event):
    measure_id: str
    kind: str
    student_ids: list[str]
    note: str
    method: str | None
    notified_at: datetime | None
    actor: str
    at: datetime


class StatementRecorded(CaseAggregate.Event):
    statement_id: str
    from_student_id: str | None
    from_person: str
    text: str
    taken_on: date
    actor: str
    at: datetime


class EvidenceNoted(CaseAggregate.Event):
    evidence_id: str
    description: str
    reference: str
    actor: str
    at: datetime


class InvestigationStarted(CaseAggregate.Event):
    # Version 2 (issue 17): the investigation is due `investigation_due` after its start. A
    # version-1 start carried none (None): the due date stored at the report stands.
    class_version = 2
    handler_id: str
    investigation_due: date | None
    actor: str
    at: datetime

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        state["investigation_due"] = None


class InvestigationCompleted(CaseAggregate.Event):
    findings: str
    actor: str
    at: datetime


class Determined(CaseAggregate.Event):
    determination_id: str
    bullying: bool
    severity: str | None
    horseplay: bool
    reason: str
    actor: str
    at: datetime


class DeterminationApproved(CaseAggregate.Event):
    determination_id: str
    reason: str
    follow_up_due: date | None
    appeal_until: date
    actor: str
    at: datetime


class DeterminationReturned(CaseAggregate.Event):
    determination_id: str
    reason: str
    actor: str
    at: datetime


class MandatoryReportMade(CaseAggregate.Event):
    report_id: str
    agency: str
    reported_at: datetime
    reference: str
    note: str
    actor: str
    at: datetime


class InterventionPlanned(CaseAggregate.Event):
    intervention_id: str
    student_id: str
    part: str
    kind: str
    plan: str
    responsible_staff_id: str
    support_file_id: str | None
    actor: str
    at: datetime


class InterventionProgressRecorded(CaseAggregate.Event):
    intervention_id: str
    note: str
    actor: str
    at: datetime


class InterventionCompleted(CaseAggregate.Event):
    intervention_id: str
    outcome: str
    actor: str
    at: datetime


class AppealLodged(CaseAggregate.Event):
    appeal_id: str
    party_id: str
    grounds: str
    lodged_on: date
    determination_id: str
    actor: str
    at: datetime


class AppealReviewed(CaseAggregate.Event):
    appeal_id: str
    outcome: str
    reason: str
    decided_on: date
    new_determination: dict[str, Any] | None
    follow_up_due: date | None
    investigation_due: date | None
    actor: str
    at: datetime


class FollowUpRecorded(CaseAggregate.Event):
    follow_up_id: str
    held_on: date
    notes: str
    next_due: date | None
    determination_id: str
    actor: str
    at: datetime


class Closed(CaseAggregate.Event):
    reason: str
    determination_id: str
    actor: str
    at: datetime


class Reopened(CaseAggregate.Event):
    # Version 2 (issue 17): a reopened case's investigation must start by `intake_due`; its own
    # due date comes when it starts (`investigation_due` None). A version-1 reopening carried
    # the investigation's due date from the reopening (and no intake_due: None).
    class_version = 2
    reason: str
    investigation_due: date | None
    intake_due: date | None
    actor: str
    at: datetime

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        state["intake_due"] = None


class StatementCorrected(CaseAggregate.Event):
    corrects: str
    text: str
    reason: str
    actor: str
    at: datetime


class EvidenceCorrected(CaseAggregate.Event):
    corrects: str
    changes: dict[str, str]
    reason: str
    actor: str
    at: datetime


class NarrativeCorrected(CaseAggregate.Event):
    corrects: str
    narrative: str
    reason: str
    actor: str
    at: datetime


class ReportCorrected(CaseAggregate.Event):
    corrects: str
    changes: dict[str, Any]
    reason: str
    actor: str
    at: datetime


class FollowUpCorrected(CaseAggregate.Event):
    corrects: str
    notes: str
    reason: str
    actor: str
    at: datetime


class SelfHarmNoted(CaseAggregate.Event):
    """Signs of self-harm noted for a student of the case: a crisis signal (the application
    opens the crisis pathway on the student's support file in the same save)."""

    note_id: str
    student_id: str
    note: str
    actor: str
    at: datetime


# -- the guardians' part in the determination (未成年人保护法 art. 39) ------------------------------
class GuardianInvitationRecorded(CaseAggregate.Event):
    """One notice to a party's guardian, inviting them to take part in the determination:
    which student's guardian (the guardian's name and phone stay in the student's stream),
    how, when, and whether it reached them (an unanswered call is an attempt)."""

    invitation_id: str
    student_id: str
    method: str
    invited_at: datetime
    reached: bool
    note: str
    actor: str
    at: datetime


class GuardianParticipationRecorded(CaseAggregate.Event):
    """How a party's guardian took part: attended, gave views in writing, declined, or
    could not be reached (`attempt_ids`: the unanswered invitations, listed)."""

    participation_id: str
    student_id: str
    participation: str
    attempt_ids: list[str]
    note: str
    actor: str
    at: datetime


# -- the governance body's meeting for the determination (未成年人学校保护规定 art. 23-24) --------------
class CommitteeMeetingRecorded(CaseAggregate.Event):
    """The school's 学生欺凌治理委员会 met on the case: when, which members were present (ids
    of the body's members, GoverningBody), how many members it had and the quorum the policy
    asked then, the summary of views and the body's decision (text)."""

    meeting_id: str
    held_on: date
    body_id: str
    members_present: list[str]
    members_total: int
    quorum: int
    summary: str
    decision: str
    actor: str
    at: datetime


# -- issue 17 (A): intake ----------------------------------------------------------------------
class ClueDismissed(CaseAggregate.Event):
    """A clue that names no targeted student ended without a determination: not bullying, or
    not concerning students of this school (查无欺凌), with why. The case is closed (it can be
    reopened if it recurs)."""

    finding: str
    reason: str
    actor: str
    at: datetime


# -- remedies (issue 17, part C) --------------------------------------------------------------------
class AuthorityReportsDue(CaseAggregate.Event):
    """Reports to the police and the education bureau fell due (未成年人保护法 art. 39): on
    `grounds` (serious_bullying | police_track), known at `known_at`, due by `due_at`, owed
    to `authorities` (those not yet reported to this cycle)."""

    grounds: str
    known_at: datetime
    due_at: datetime
    authorities: list[str]
    actor: str
    at: datetime


class AuthorityReportMade(CaseAggregate.Event):
    """A report to an authority: to whom (police | bureau, and the unit's name), how, when,
    and any receipt number."""

    report_id: str
    authority: str
    unit: str
    method: str
    reported_at: datetime
    receipt: str
    note: str
    actor: str
    at: datetime


class DispositionDecided(CaseAggregate.Event):
    """A disposition for a bullying student: its kind, level and measure (codes), who
    decided it and when, and a note."""

    disposition_id: str
    student_id: str
    kind: str
    level: str | None
    measure: str | None
    decided_by: str
    decided_on: date
    note: str
    determination_id: str
    actor: str
    at: datetime


class CountyReviewApplied(CaseAggregate.Event):
    """A party applied to the county body for a review (复查) of the determination in force;
    it is due by `due_on` (application + policy.county_review_days)."""

    review_id: str
    party_id: str
    county_body: str
    applied_on: date
    due_on: date
    grounds: str
    determination_id: str
    actor: str
    at: datetime


class CountyReviewPanelRecorded(CaseAggregate.Event):
    """The review panel: members by capacity (school / parent / expert / ...) and name."""

    review_id: str
    members: list[dict[str, str]]
    actor: str
    at: datetime


class CountyReviewDecided(CaseAggregate.Event):
    """The county's review outcome: upheld, changed (a new determination, in force at once)
    or sent back to the school's committee to determine anew."""

    review_id: str
    outcome: str
    reason: str
    decided_on: date
    new_determination: dict[str, Any] | None
    follow_up_due: date | None
    actor: str
    at: datetime


# -- the public-security track (issue 17) -----------------------------------------------------------
class PoliceTrackOpened(CaseAggregate.Event):
    """The case goes to the public security organ (公安机关处理): as `kind` (public_order:
    违反治安管理 | criminal: 涉嫌犯罪), with why; at most once per cycle. The reports to the
    police and the education bureau fall due with it (AuthorityReportsDue, grounds police_track)."""

    kind: str
    reason: str
    actor: str
    at: datetime
