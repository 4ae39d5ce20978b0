"""校园欺凌案件: a bullying case, from the first report to closure (and reopening).

One stream per case. Every step of DOMAIN.md section 1 is a command that checks the
rules and then records a past-tense event with who (`actor`), when (`at`) and, where a
person decides, why (`reason`). The private `@event` methods only change state, so
replaying history never re-runs a rule.

The state machine (`BullyingCase.status`, derived from the recorded facts)::

    from                                    command (who)                        to
    reported | reopened                     start_investigation                  investigating
    investigating                           complete_investigation               awaiting_determination
    awaiting_determination                  determine (committee, safety lead)   determined
    determined                              return_determination (principal)     awaiting_determination
    determined                              approve_determination (principal)    concluded | intervening
    intervening                             record_follow_up                     following_up
    concluded | intervening | following_up  apply_for_county_review              appealed
    appealed                                record_county_review_outcome         (as the outcome says)
    appealed (an old appeal)                record_appeal_outcome "upheld"       (as before the appeal)
    appealed (an old appeal)                record_appeal_outcome "changed"      concluded | intervening
    appealed (an old appeal)                record_appeal_outcome "reopened"     investigating
    concluded | intervening | following_up  close (principal)                    closed
    closed                                  reopen                               reopened

- `reported`: opened (线索/举报); parties, safety measures, statements and evidence may be
  recorded at once. `reopened` is the same for a closed case that recurred.
- `investigating` → `awaiting_determination`: the investigation (调查) with its due date
  from the policy; `investigation_overdue(today)` when it is not done in time.
- `determined`: the committee's determination (认定) is recorded (safety lead) and
  waits for the principal's approval; the principal approves or returns it, and
  cannot approve a determination they recorded themselves.
- approved: `concluded` when not bullying (horseplay 打闹嬉戏 included), else
  `intervening`, and `following_up` once a follow-up (回访) of that determination exists.
- `appealed`: a party's application for the county review (复查) is pending (or, in a
  stream recorded before the review replaced it, an appeal 申诉); its outcome is upheld
  (back to the previous status), changed (a new determination, in force at once) or sent
  back / reopened (back to `investigating`, with a new due date).
- `closed`: only with an approved determination, no pending appeal, a mandatory report
  (强制报告) for a suspected offence, and interventions for both sides of a bullying
  determination. A closed case is reopened when it recurs (a new cycle).

Closure needs, for a bullying determination, an intervention for every targeted student
and an education plan for every bullying student, planned in the current cycle (a
recurrence needs its own), and for a suspected offence a mandatory report of this cycle.
A review (复查) is applied for by a targeted or bullying party (not a witness), once per
party per determination, no later than `appeal_until` (approval date +
policy.review_application_days); a determination changed on review is final here. While a
review is pending, support goes on (interventions, follow-ups, safety measures) but the
determination and parties are frozen. No new appeal (`lodge_appeal`) is recorded: the county
review replaced it (`AppealRetired`); an old stream's appeal still loads, shows and takes its
outcome.

Before a determination, the guardian of every targeted and bullying student is invited (each
notice a `GuardianInvitationRecorded`) and takes part (`GuardianParticipationRecorded`:
attended, views in writing, declined, or unreachable after the policy's attempts), this
cycle (未成年人保护法 art. 39; docs/bullying-determination.md).

Safety measures and the mandatory report may be recorded in any status but `closed`;
parties change only before a determination; statements and evidence only while the
investigation is not completed. Corrections (`correct_*`) are allowed in every status,
including `closed`: they are new events that name what they correct and why.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, datetime
from typing import Any, TypeAlias
from uuid import UUID

from eventsourcing.domain import event

from domain.bullying import events
from domain.bullying.errors import (
    AlreadyAParty,
    AppealPending,
    AppealRetired,
    AppealWindowClosed,
    AuthorityReportsRequired,
    CaseClosed,
    ClueHasTargetedParty,
    CommitteeMeetingRequired,
    DeterminationNotApproved,
    GuardianParticipationMissing,
    InterventionsRequired,
    MandatoryReportRequired,
    NotABullyingParty,
    NotAParty,
    PoliceTrackAlreadyOpen,
    QuorumNotMet,
    ReviewApplicationWindowClosed,
    ReviewPanelIncomplete,
    SelfApproval,
    SeverityRetired,
    TargetedPartyNotIdentified,
    TargetedPartyRequired,
    UnknownStaff,
    UnknownStudent,
    UnknownSupportFile,
)
from domain.bullying.rules import (
    case_status,
    check_aware,
    check_choice,
    check_clue_parties,
    check_forms,
    check_parties,
    check_source,
    determination_of,
    is_serious,
)
from domain.bullying.vocabulary import (
    APPEAL_OUTCOMES,
    APPROVED_STATES,
    AUTHORITIES,
    AUTHORITY_REPORT_GROUNDS,
    AUTHORITY_REPORT_METHODS,
    CHANNELS,
    CLUE_FINDINGS,
    CONTACT_METHODS,
    COUNTY_REVIEW_OUTCOMES,
    DECIDERS_BY_KIND,
    DISCIPLINE_MEASURES,
    DISPOSITION_DECIDERS,
    DISPOSITION_KINDS,
    DISPOSITION_LEVELS,
    FORMS,
    GUARDIAN_INVITATION_METHODS,
    GUARDIAN_MISSING,
    GUARDIAN_PARTICIPATION,
    GUARDIAN_PARTS,
    INTERVENTION_KINDS,
    INVESTIGATION_OPEN_STATES,
    KINDS_BY_PART,
    LEGACY_SEVERITIES,
    MEASURES,
    NEW_SEVERITIES,
    PARTS,
    PARTY_EDIT_STATES,
    POLICE_TRACK_KINDS,
    REQUIRED_REVIEW_CAPACITIES,
    REVIEW_CAPACITIES,
    SCHOOL_DECIDERS,
    SEVERITIES,
    STATUS_LABELS,
    UNCONFIRMED_LABEL,
)
from domain.common import (
    CaseAggregate,
    InvalidInput,
    Scope,
    WrongState,
    require,
    require_aware,
    require_text,
)

__all__ = [
    "APPEAL_OUTCOMES",
    "AUTHORITIES",
    "AUTHORITY_REPORT_GROUNDS",
    "AUTHORITY_REPORT_METHODS",
    "AuthorityReportsRequired",
    "COUNTY_REVIEW_OUTCOMES",
    "DISCIPLINE_MEASURES",
    "DISPOSITION_DECIDERS",
    "DISPOSITION_KINDS",
    "DISPOSITION_LEVELS",
    "NotABullyingParty",
    "REVIEW_CAPACITIES",
    "ReviewApplicationWindowClosed",
    "ReviewPanelIncomplete",
    "is_serious",
    "APPROVED_STATES",
    "AlreadyAParty",
    "AppealPending",
    "AppealRetired",
    "AppealWindowClosed",
    "BullyingCase",
    "CHANNELS",
    "CLUE_FINDINGS",
    "CONTACT_METHODS",
    "CaseClosed",
    "CommitteeMeetingRequired",
    "QuorumNotMet",
    "ClueHasTargetedParty",
    "DeterminationNotApproved",
    "FORMS",
    "GUARDIAN_INVITATION_METHODS",
    "GUARDIAN_MISSING",
    "GUARDIAN_PARTICIPATION",
    "GUARDIAN_PARTS",
    "GuardianParticipationMissing",
    "INTERVENTION_KINDS",
    "INVESTIGATION_OPEN_STATES",
    "InterventionsRequired",
    "KINDS_BY_PART",
    "MEASURES",
    "MandatoryReportRequired",
    "NotAParty",
    "PARTS",
    "PARTY_EDIT_STATES",
    "SEVERITIES",
    "NEW_SEVERITIES",
    "LEGACY_SEVERITIES",
    "POLICE_TRACK_KINDS",
    "PoliceTrackAlreadyOpen",
    "SeverityRetired",
    "STATUS_LABELS",
    "SelfApproval",
    "TargetedPartyNotIdentified",
    "TargetedPartyRequired",
    "UNCONFIRMED_LABEL",
    "UnknownStaff",
    "UnknownStudent",
    "UnknownSupportFile",
    "case_status",
]


class BullyingCase(CaseAggregate):
    """校园欺凌案件. See the module docstring for the state machine."""

    Reported: TypeAlias = events.Reported
    PartyAdded: TypeAlias = events.PartyAdded
    PartyRemoved: TypeAlias = events.PartyRemoved
    SafetyMeasureTaken: TypeAlias = events.SafetyMeasureTaken
    StatementRecorded: TypeAlias = events.StatementRecorded
    EvidenceNoted: TypeAlias = events.EvidenceNoted
    InvestigationStarted: TypeAlias = events.InvestigationStarted
    InvestigationCompleted: TypeAlias = events.InvestigationCompleted
    Determined: TypeAlias = events.Determined
    DeterminationApproved: TypeAlias = events.DeterminationApproved
    DeterminationReturned: TypeAlias = events.DeterminationReturned
    MandatoryReportMade: TypeAlias = events.MandatoryReportMade
    InterventionPlanned: TypeAlias = events.InterventionPlanned
    InterventionProgressRecorded: TypeAlias = events.InterventionProgressRecorded
    InterventionCompleted: TypeAlias = events.InterventionCompleted
    AppealLodged: TypeAlias = events.AppealLodged
    AppealReviewed: TypeAlias = events.AppealReviewed
    FollowUpRecorded: TypeAlias = events.FollowUpRecorded
    Closed: TypeAlias = events.Closed
    Reopened: TypeAlias = events.Reopened
    StatementCorrected: TypeAlias = events.StatementCorrected
    EvidenceCorrected: TypeAlias = events.EvidenceCorrected
    NarrativeCorrected: TypeAlias = events.NarrativeCorrected
    ReportCorrected: TypeAlias = events.ReportCorrected
    FollowUpCorrected: TypeAlias = events.FollowUpCorrected
    SelfHarmNoted: TypeAlias = events.SelfHarmNoted
    GuardianInvitationRecorded: TypeAlias = events.GuardianInvitationRecorded
    GuardianParticipationRecorded: TypeAlias = events.GuardianParticipationRecorded
    CommitteeMeetingRecorded: TypeAlias = events.CommitteeMeetingRecorded
    ClueDismissed: TypeAlias = events.ClueDismissed
    AuthorityReportsDue: TypeAlias = events.AuthorityReportsDue
    AuthorityReportMade: TypeAlias = events.AuthorityReportMade
    DispositionDecided: TypeAlias = events.DispositionDecided
    CountyReviewApplied: TypeAlias = events.CountyReviewApplied
    CountyReviewPanelRecorded: TypeAlias = events.CountyReviewPanelRecorded
    CountyReviewDecided: TypeAlias = events.CountyReviewDecided
    PoliceTrackOpened: TypeAlias = events.PoliceTrackOpened

    # Added later: a snapshot taken before has none; replaced, never mutated in place.
    self_harm_notes: tuple[dict[str, Any], ...] = ()
    guardian_invitations: tuple[dict[str, Any], ...] = ()
    guardian_participations: tuple[dict[str, Any], ...] = ()
    committee_meetings: tuple[dict[str, Any], ...] = ()
    # Issue 17: when the investigation must start (None for a case reported before, whose
    # investigation_due counted from the report). Added later, like self_harm_notes.
    intake_due: date | None = None
    # Remedies (issue 17, part C), added later likewise: replaced, never mutated in place.
    authority_duties: tuple[dict[str, Any], ...] = ()
    authority_reports: tuple[dict[str, Any], ...] = ()
    dispositions: tuple[dict[str, Any], ...] = ()
    county_reviews: tuple[dict[str, Any], ...] = ()
    pending_review_id: str | None = None
    police_tracks: tuple[dict[str, Any], ...] = ()

    @event(Reported)
    def __init__(
        self,
        id: UUID,
        school_id: str,
        channel: str,
        occurred_at: datetime,
        place: str,
        forms: list[str],
        parties: list[dict[str, str]],
        narrative: str,
        reporter_note: str,
        source: dict[str, Any] | None,
        investigation_due: date | None,
        intake_due: date | None,
        actor: str,
        at: datetime,
    ) -> None:
        self.school_id = school_id
        self.channel = channel
        self.occurred_at = occurred_at
        self.place = place
        self.forms = list(forms)
        self.parties: list[dict[str, Any]] = [{**p, "added_by": actor, "added_at": at} for p in parties]
        self.removed_parties: list[dict[str, Any]] = []
        self.narrative = narrative
        self.reporter_note = reporter_note
        self.source = dict(source) if source else None
        self.reported_by = actor
        self.reported_at = at
        self.opened_on = at.date()
        self.cycle = 0
        self.investigation_due: date | None = investigation_due
        self.intake_due = intake_due
        self.handler_id: str | None = None
        self.investigation_started_at: datetime | None = None
        self.investigation_completed_at: datetime | None = None
        self.findings = ""
        self.measures: dict[str, dict[str, Any]] = {}
        self.statements: dict[str, dict[str, Any]] = {}
        self.evidence: dict[str, dict[str, Any]] = {}
        self.determinations: list[dict[str, Any]] = []
        self.current_determination_id: str | None = None
        self.mandatory_reports: dict[str, dict[str, Any]] = {}
        self.interventions: dict[str, dict[str, Any]] = {}
        self.appeals: dict[str, dict[str, Any]] = {}
        self.pending_appeal_id: str | None = None
        self.appeal_until: date | None = None
        self.follow_ups: dict[str, dict[str, Any]] = {}
        self.next_follow_up_due: date | None = None
        self.closed_at: datetime | None = None
        self.close_reason = ""
        self.closures: list[dict[str, Any]] = []
        self.reopenings: list[dict[str, Any]] = []
        self.corrections: list[dict[str, Any]] = []

    @classmethod
    def report(
        cls,
        *,
        id: UUID,
        school_id: str,
        channel: str,
        occurred_at: datetime,
        place: str,
        forms: Iterable[str],
        parties: Iterable[Any],
        narrative: str,
        actor: str,
        at: datetime,
        intake_due: date | None = None,
        investigation_due: date | None = None,
        reporter_note: str = "",
        source: Mapping[str, Any] | None = None,
        students_unconfirmed: bool = False,
    ) -> BullyingCase:
        """Open a case from a report (线索/举报); the investigation due date comes from policy.
        A report names at least one targeted student, unless the reporter says the students
        are not confirmed yet (`students_unconfirmed`: a hotline or anonymous clue): then it
        may name nobody, and parties are added as the inquiry identifies them."""
        require_aware(at)
        check_aware(occurred_at, "发生时间")
        require(occurred_at <= at, "发生时间不能晚于报告时间")
        require(intake_due is not None or investigation_due is not None, "须有启动调查的期限")
        for due in (intake_due, investigation_due):
            require(due is None or (isinstance(due, date) and due >= at.date()), "调查期限不能早于立案日期")
        return cls(
            id=id,
            school_id=require_text(school_id, "学校"),
            channel=check_choice(channel, CHANNELS, "举报渠道"),
            occurred_at=occurred_at,
            place=require_text(place, "发生地点"),
            forms=check_forms(forms),
            parties=check_clue_parties(parties) if students_unconfirmed else check_parties(parties),
            narrative=require_text(narrative, "事情经过"),
            reporter_note=(reporter_note or "").strip(),
            source=check_source(source),
            investigation_due=investigation_due,
            intake_due=intake_due,
            actor=actor,
            at=at,
        )

    # -- parties ------------------------------------------------------------------------------
    def add_party(self, *, student_id: str, part: str, reason: str, actor: str, at: datetime) -> None:
        """Add a student found to be involved (before a determination is recorded)."""
        require_aware(at)
        self._require(PARTY_EDIT_STATES, "增加当事人")
        student_id = require_text(student_id, "学生")
        part = check_choice(part, PARTS, "当事人身份")
        existing = self.party(student_id)
        if existing is not None:
            raise AlreadyAParty(part=PARTS[existing["part"]])
        self._party_added(student_id=student_id, part=part, reason=require_text(reason, "增加原因"), actor=actor, at=at)

    @event(PartyAdded)
    def _party_added(self, student_id: str, part: str, reason: str, actor: str, at: datetime) -> None:
        self.parties.append({"student_id": student_id, "part": part, "added_by": actor, "added_at": at})

    def remove_party(self, *, student_id: str, reason: str, actor: str, at: datetime) -> None:
        """Remove a student wrongly named (before a determination is recorded)."""
        require_aware(at)
        self._require(PARTY_EDIT_STATES, "移除当事人")
        p = self._party(student_id)
        if p["part"] == "targeted":
            others = [q for q in self.parties if q["part"] == "targeted" and q["student_id"] != student_id]
            if not others:
                raise TargetedPartyRequired()
        require(
            not any(i["student_id"] == student_id and i["active"] for i in self.interventions.values()),
            "该学生仍有进行中的干预措施，不能移除",
        )
        self._party_removed(
            student_id=student_id, part=p["part"], reason=require_text(reason, "移除原因"), actor=actor, at=at
        )

    @event(PartyRemoved)
    def _party_removed(self, student_id: str, part: str, reason: str, actor: str, at: datetime) -> None:
        self.parties = [p for p in self.parties if p["student_id"] != student_id]
        self.removed_parties.append({"student_id": student_id, "part": part, "reason": reason, "by": actor, "at": at})

    # -- self-harm (a crisis signal) ----------------------------------------------------------
    def note_self_harm(self, *, note_id: str, student_id: str, note: str, actor: str, at: datetime) -> None:
        """Signs of self-harm noted for a student of the case (any part they play)."""
        require_aware(at)
        self._require_not_closed("记录自伤迹象")
        self._party(student_id)
        require(bool(note_id), "记录编号不能为空")
        self._self_harm_noted(
            note_id=note_id, student_id=student_id, note=require_text(note, "自伤迹象说明"), actor=actor, at=at
        )

    @event(SelfHarmNoted)
    def _self_harm_noted(self, note_id: str, student_id: str, note: str, actor: str, at: datetime) -> None:
        entry = {"id": note_id, "student_id": student_id, "note": note, "actor": actor, "at": at}
        self.self_harm_notes = (*self.self_harm_notes, entry)

    # -- safety measures ----------------------------------------------------------------------
    def take_safety_measure(
        self,
        *,
        measure_id: str,
        kind: str,
        student_ids: Iterable[str] = (),
        note: str = "",
        method: str | None = None,
        notified_at: datetime | None = None,
        actor: str,
        at: datetime,
    ) -> None:
        """Separate the students, notify a guardian (家长告知), get medical care, or other."""
        require_aware(at)
        self._require_not_closed("采取安全措施")
        require(measure_id not in self.measures, "该措施已记录")
        kind = check_choice(kind, MEASURES, "安全措施")
        ids = [str(s) for s in student_ids or ()]
        require(len(set(ids)) == len(ids), "学生重复")
        for s in ids:
            self._party(s)
        note = (note or "").strip()
        if kind == "guardian_notified":
            require(len(ids) == 1, "告知家长须指明是哪名学生的家长")
            method = check_choice(method, CONTACT_METHODS, "告知方式")
            require(notified_at is not None, "须填写告知时间")
            check_aware(notified_at, "告知时间")  # type: ignore[arg-type]
            require(notified_at <= at, "告知时间不能晚于现在")  # type: ignore[operator]
        else:
            require(method is None and notified_at is None, "只有告知家长需要填写告知方式和时间")
            if kind == "separate_students":
                require(len(ids) >= 1, "须指明隔离哪些学生")
            elif kind == "medical_care":
                require(len(ids) == 1, "须指明就医的学生")
            else:
                require(bool(note), "其他措施须说明内容")
        self._safety_measure_taken(
            measure_id=measure_id,
            kind=kind,
            student_ids=ids,
            note=note,
            method=method,
            notified_at=notified_at,
            actor=actor,
            at=at,
        )

    @event(SafetyMeasureTaken)
    def _safety_measure_taken(
        self,
        measure_id: str,
        kind: str,
        student_ids: list[str],
        note: str,
        method: str | None,
        notified_at: datetime | None,
        actor: str,
        at: datetime,
    ) -> None:
        self.measures[measure_id] = {
            "id": measure_id,
            "kind": kind,
            "student_ids": list(student_ids),
            "note": note,
            "method": method,
            "notified_at": notified_at,
            "by": actor,
            "at": at,
        }

    # -- investigation ------------------------------------------------------------------------
    def record_statement(
        self,
        *,
        statement_id: str,
        text: str,
        taken_on: date,
        from_student_id: str | None = None,
        from_person: str | None = None,
        actor: str,
        at: datetime,
    ) -> None:
        """A statement (陈述/笔录) from a party student, or from another person described in words."""
        require_aware(at)
        self._require(INVESTIGATION_OPEN_STATES, "记录陈述")
        require(statement_id not in self.statements, "该陈述已记录")
        from_person = (from_person or "").strip()
        require(bool(from_student_id) != bool(from_person), "陈述人须为本案当事学生或其他说明的人员（二选一）")
        if from_student_id:
            self._party(from_student_id)
        require(isinstance(taken_on, date) and taken_on <= at.date(), "陈述日期不能晚于今天")
        self._statement_recorded(
            statement_id=statement_id,
            from_student_id=from_student_id or None,
            from_person=from_person,
            text=require_text(text, "陈述内容"),
            taken_on=taken_on,
            actor=actor,
            at=at,
        )

    @event(StatementRecorded)
    def _statement_recorded(
        self,
        statement_id: str,
        from_student_id: str | None,
        from_person: str,
        text: str,
        taken_on: date,
        actor: str,
        at: datetime,
    ) -> None:
        self.statements[statement_id] = {
            "id": statement_id,
            "from_student_id": from_student_id,
            "from_person": from_person,
            "text": text,
            "taken_on": taken_on,
            "by": actor,
            "at": at,
            "corrections": [],
        }

    def add_evidence(
        self, *, evidence_id: str, description: str, reference: str = "", actor: str, at: datetime
    ) -> None:
        """An evidence note (证据说明): what it is and where it is kept."""
        require_aware(at)
        self._require(INVESTIGATION_OPEN_STATES, "记录证据")
        require(evidence_id not in self.evidence, "该证据已记录")
        self._evidence_noted(
            evidence_id=evidence_id,
            description=require_text(description, "证据说明"),
            reference=(reference or "").strip(),
            actor=actor,
            at=at,
        )

    @event(EvidenceNoted)
    def _evidence_noted(self, evidence_id: str, description: str, reference: str, actor: str, at: datetime) -> None:
        self.evidence[evidence_id] = {
            "id": evidence_id,
            "description": description,
            "reference": reference,
            "by": actor,
            "at": at,
            "corrections": [],
        }

    def start_investigation(
        self, *, handler_id: str, actor: str, at: datetime, investigation_due: date | None = None
    ) -> None:
        """Start the investigation (调查); the handler becomes the case's responsible staff. It
        is due `investigation_due` (policy: from today); a case reported before issue 17
        already has its due date, from the report, and may start without one."""
        require_aware(at)
        self._require(("reported", "reopened"), "开始调查")
        require(investigation_due is not None or self.investigation_due is not None, "须有调查期限")
        require(
            investigation_due is None or (isinstance(investigation_due, date) and investigation_due >= at.date()),
            "调查期限不能早于开始调查的日期",
        )
        self._investigation_started(
            handler_id=require_text(handler_id, "负责人"), investigation_due=investigation_due, actor=actor, at=at
        )

    @event(InvestigationStarted)
    def _investigation_started(self, handler_id: str, investigation_due: date | None, actor: str, at: datetime) -> None:
        self.handler_id = handler_id
        self.investigation_started_at = at
        if investigation_due is not None:
            self.investigation_due = investigation_due

    def complete_investigation(self, *, findings: str, actor: str, at: datetime) -> None:
        """Complete the investigation with its findings, for the committee to determine."""
        require_aware(at)
        self._require(("investigating",), "完成调查")
        self._require_targeted_party("完成调查")
        self._investigation_completed(findings=require_text(findings, "调查结论"), actor=actor, at=at)

    @event(InvestigationCompleted)
    def _investigation_completed(self, findings: str, actor: str, at: datetime) -> None:
        self.findings = findings
        self.investigation_completed_at = at

    # -- determination ------------------------------------------------------------------------
    def determine(
        self,
        *,
        determination_id: str,
        bullying: bool,
        severity: str | None = None,
        horseplay: bool = False,
        reason: str,
        actor: str,
        at: datetime,
    ) -> None:
        """Record the committee's determination (认定); it takes effect when the principal approves."""
        require_aware(at)
        self._require(("awaiting_determination",), "作出认定")
        self._require_targeted_party("作出认定")
        require(not any(d["id"] == determination_id for d in self.determinations), "该认定已记录")
        bullying, severity, horseplay = determination_of(bullying, severity, horseplay)
        self._require_guardians_took_part()
        self._require_quorate_meeting()
        self._determined(
            determination_id=determination_id,
            bullying=bullying,
            severity=severity,
            horseplay=horseplay,
            reason=require_text(reason, "认定理由"),
            actor=actor,
            at=at,
        )

    @event(Determined)
    def _determined(
        self,
        determination_id: str,
        bullying: bool,
        severity: str | None,
        horseplay: bool,
        reason: str,
        actor: str,
        at: datetime,
    ) -> None:
        self.determinations.append(
            {
                "id": determination_id,
                "bullying": bullying,
                "severity": severity,
                "horseplay": horseplay,
                "reason": reason,
                "by": actor,
                "at": at,
                "source": "committee",
                "approved": False,
                "approved_by": None,
                "approved_at": None,
                "approval_reason": "",
                "returned": False,
                "cycle": self.cycle,
            }
        )
        self.current_determination_id = determination_id

    def approve_determination(
        self,
        *,
        reason: str,
        follow_up_due: date,
        appeal_until: date,
        actor: str,
        at: datetime,
        authority_report_due: datetime | None = None,
    ) -> None:
        """The principal approves the committee's determination (never their own). For serious
        bullying or worse, the reports to the police and the education bureau fall due
        (`reports_due`, by `authority_report_due`: policy.authority_report_due)."""
        require_aware(at)
        self._require(("determined",), "审批认定")
        det = self.determination
        assert det is not None
        if det["by"] == actor:
            raise SelfApproval()
        serious = det["bullying"] and is_serious(det["severity"])
        require(not serious or authority_report_due is not None, "严重欺凌须有向公安机关和教育行政部门报告的期限")
        self._determination_approved(
            determination_id=det["id"],
            reason=require_text(reason, "审批意见"),
            follow_up_due=follow_up_due if det["bullying"] else None,
            appeal_until=appeal_until,
            actor=actor,
            at=at,
        )
        if serious:
            assert authority_report_due is not None
            self.reports_due(grounds="serious_bullying", known_at=at, due_at=authority_report_due, actor=actor, at=at)

    @event(DeterminationApproved)
    def _determination_approved(
        self,
        determination_id: str,
        reason: str,
        follow_up_due: date | None,
        appeal_until: date,
        actor: str,
        at: datetime,
    ) -> None:
        det = self._determination_by_id(determination_id)
        det.update(approved=True, approved_by=actor, approved_at=at, approval_reason=reason)
        self.next_follow_up_due = follow_up_due
        self.appeal_until = appeal_until

    def return_determination(self, *, reason: str, actor: str, at: datetime) -> None:
        """The principal sends the determination back to the committee, with why."""
        require_aware(at)
        self._require(("determined",), "退回认定")
        det = self.determination
        assert det is not None
        self._determination_returned(
            determination_id=det["id"], reason=require_text(reason, "退回原因"), actor=actor, at=at
        )

    @event(DeterminationReturned)
    def _determination_returned(self, determination_id: str, reason: str, actor: str, at: datetime) -> None:
        self._determination_by_id(determination_id).update(
            returned=True, returned_reason=reason, returned_by=actor, returned_at=at
        )
        self.current_determination_id = None

    # -- the guardians' part in the determination (未成年人保护法 art. 39) ------------------------
    def invite_guardian(
        self,
        *,
        invitation_id: str,
        student_id: str,
        method: str,
        invited_at: datetime,
        reached: bool,
        note: str = "",
        actor: str,
        at: datetime,
    ) -> None:
        """One notice to the guardian of a targeted or bullying student, inviting them to take
        part in the determination: how, when, and whether it reached them."""
        require_aware(at)
        self._require(PARTY_EDIT_STATES, "通知监护人参与认定")
        require(not any(i["id"] == invitation_id for i in self.guardian_invitations), "该通知已记录")
        self._guardian_party(student_id)
        method = check_choice(method, GUARDIAN_INVITATION_METHODS, "通知方式")
        check_aware(invited_at, "通知时间")
        require(invited_at <= at, "通知时间不能晚于现在")
        require(isinstance(reached, bool), "须写明是否联系上监护人")
        note = (note or "").strip()
        if not reached:
            require(bool(note), "未联系上监护人时须说明情况（如：电话无人接听、号码停机）")
        self._guardian_invitation_recorded(
            invitation_id=invitation_id,
            student_id=student_id,
            method=method,
            invited_at=invited_at,
            reached=reached,
            note=note,
            actor=actor,
            at=at,
        )

    @event(GuardianInvitationRecorded)
    def _guardian_invitation_recorded(
        self,
        invitation_id: str,
        student_id: str,
        method: str,
        invited_at: datetime,
        reached: bool,
        note: str,
        actor: str,
        at: datetime,
    ) -> None:
        entry = {
            "id": invitation_id,
            "student_id": student_id,
            "method": method,
            "invited_at": invited_at,
            "reached": reached,
            "note": note,
            "by": actor,
            "at": at,
            "cycle": self.cycle,
        }
        self.guardian_invitations = (*self.guardian_invitations, entry)

    def record_guardian_participation(
        self,
        *,
        participation_id: str,
        student_id: str,
        participation: str,
        note: str = "",
        min_attempts: int,
        actor: str,
        at: datetime,
    ) -> None:
        """How the guardian of a targeted or bullying student took part: attended, gave views
        in writing, declined (after being reached), or unreachable after `min_attempts`
        unanswered invitations (from the policy), which the record lists."""
        require_aware(at)
        self._require(PARTY_EDIT_STATES, "记录监护人参与情况")
        require(not any(p["id"] == participation_id for p in self.guardian_participations), "该记录已存在")
        self._guardian_party(student_id)
        participation = check_choice(participation, GUARDIAN_PARTICIPATION, "参与情况")
        note = (note or "").strip()
        invitations = [i for i in self.guardian_invitations_this_cycle if i["student_id"] == student_id]
        reached = [i for i in invitations if i["reached"]]
        attempts: list[str] = []
        if participation == "unreachable":
            require(not reached, "已联系上该生监护人，请记录为出席、书面意见或拒绝参与")
            require(
                len(invitations) >= min_attempts,
                f"须至少{min_attempts}次联系未果才能记录为联系不上（已记录{len(invitations)}次）",
            )
            attempts = [i["id"] for i in invitations]
        else:
            require(bool(reached), "须先记录已通知到该生监护人，才能记录其参与情况")
        if participation == "written_views":
            require(bool(note), "请摘要记录监护人的书面意见")
        self._guardian_participation_recorded(
            participation_id=participation_id,
            student_id=student_id,
            participation=participation,
            attempt_ids=attempts,
            note=note,
            actor=actor,
            at=at,
        )

    @event(GuardianParticipationRecorded)
    def _guardian_participation_recorded(
        self,
        participation_id: str,
        student_id: str,
        participation: str,
        attempt_ids: list[str],
        note: str,
        actor: str,
        at: datetime,
    ) -> None:
        entry = {
            "id": participation_id,
            "student_id": student_id,
            "participation": participation,
            "attempt_ids": list(attempt_ids),
            "note": note,
            "by": actor,
            "at": at,
            "cycle": self.cycle,
        }
        self.guardian_participations = (*self.guardian_participations, entry)

    @property
    def guardian_invitations_this_cycle(self) -> list[dict[str, Any]]:
        return [i for i in self.guardian_invitations if i["cycle"] == self.cycle]

    def guardian_participation(self, student_id: str) -> dict[str, Any] | None:
        """The latest record of how this student's guardian took part, this cycle."""
        found = [p for p in self.guardian_participations if p["cycle"] == self.cycle and p["student_id"] == student_id]
        return found[-1] if found else None

    def guardians_missing(self) -> dict[str, str]:
        """For each targeted and bullying student whose guardian has not taken part yet this
        cycle: what is missing (GUARDIAN_MISSING's codes: uninvited, unrecorded)."""
        invited = {i["student_id"] for i in self.guardian_invitations_this_cycle}
        missing: dict[str, str] = {}
        for p in self.parties:
            sid = p["student_id"]
            if p["part"] not in GUARDIAN_PARTS:
                continue
            if sid not in invited:
                missing[sid] = "uninvited"
            elif self.guardian_participation(sid) is None:
                missing[sid] = "unrecorded"
        return missing

    def _require_guardians_took_part(self) -> None:
        missing = self.guardians_missing()
        if not missing:
            return
        what = "uninvited" if "uninvited" in missing.values() else "unrecorded"
        ids = [sid for sid, m in missing.items() if m == what]
        parts = {p["student_id"]: PARTS[p["part"]] for p in self.parties}
        raise GuardianParticipationMissing(
            students="、".join(parts[s] for s in ids), missing=GUARDIAN_MISSING[what], student_ids=ids
        )

    def _guardian_party(self, student_id: str) -> dict[str, Any]:
        p = self._party(student_id)
        require(p["part"] in GUARDIAN_PARTS, "只有被欺凌学生和欺凌学生的监护人参与认定")
        return p

    # -- the governance body's meeting (未成年人学校保护规定 art. 23-24; 教督〔2017〕10号) -----------
    def record_committee_meeting(
        self,
        *,
        meeting_id: str,
        held_on: date,
        body_id: str,
        members_present: Iterable[str],
        active_members: Iterable[str],
        quorum: int,
        summary: str,
        decision: str,
        actor: str,
        at: datetime,
    ) -> None:
        """The school's 学生欺凌治理委员会 met to determine the case: the members present (of
        `active_members`, the body's members now) and the quorum (from the policy) are kept
        with it. A meeting short of its quorum is recorded as it happened; a determination
        cannot rest on it."""
        require_aware(at)
        self._require(("awaiting_determination",), "记录认定会议")
        require(not any(m["id"] == meeting_id for m in self.committee_meetings), "该会议已记录")
        require(isinstance(held_on, date) and held_on <= at.date(), "会议日期不能晚于今天")
        started = self.investigation_started_at
        require(started is None or held_on >= started.date(), "会议日期不能早于开始调查的日期")
        present = [str(m) for m in members_present or ()]
        require(bool(present), "请选择出席会议的委员会成员")
        require(len(set(present)) == len(present), "出席成员重复")
        active = set(active_members)
        require(set(present) <= active, "出席成员须为委员会现任成员")
        require(isinstance(quorum, int) and quorum >= 1, "规定出席人数须为正整数")
        self._committee_meeting_recorded(
            meeting_id=meeting_id,
            held_on=held_on,
            body_id=require_text(body_id, "委员会"),
            members_present=present,
            members_total=len(active),
            quorum=quorum,
            summary=require_text(summary, "意见摘要"),
            decision=require_text(decision, "会议决定"),
            actor=actor,
            at=at,
        )

    @event(CommitteeMeetingRecorded)
    def _committee_meeting_recorded(
        self,
        meeting_id: str,
        held_on: date,
        body_id: str,
        members_present: list[str],
        members_total: int,
        quorum: int,
        summary: str,
        decision: str,
        actor: str,
        at: datetime,
    ) -> None:
        entry = {
            "id": meeting_id,
            "held_on": held_on,
            "body_id": body_id,
            "members_present": list(members_present),
            "members_total": members_total,
            "quorum": quorum,
            "quorate": len(members_present) >= quorum,
            "summary": summary,
            "decision": decision,
            "by": actor,
            "at": at,
            "cycle": self.cycle,
            # the determination it is for: the next one recorded (after any returned before it)
            "for_determination": len(self.determinations),
        }
        self.committee_meetings = (*self.committee_meetings, entry)

    @property
    def pending_meeting(self) -> dict[str, Any] | None:
        """The latest meeting since the last determination was recorded (the one the next
        determination rests on), if any."""
        found = [m for m in self.committee_meetings if m["for_determination"] == len(self.determinations)]
        return found[-1] if found else None

    def meeting_of(self, determination_id: str) -> dict[str, Any] | None:
        """The meeting a determination of the committee rested on (the latest before it)."""
        index = next((i for i, d in enumerate(self.determinations) if d["id"] == determination_id), None)
        found = [m for m in self.committee_meetings if m["for_determination"] == index]
        return found[-1] if found else None

    def _require_quorate_meeting(self) -> None:
        m = self.pending_meeting
        if m is None:
            raise CommitteeMeetingRequired()
        if not m["quorate"]:
            raise QuorumNotMet(present=len(m["members_present"]), quorum=m["quorum"], total=m["members_total"])

    # -- mandatory report ---------------------------------------------------------------------
    def record_mandatory_report(
        self,
        *,
        report_id: str,
        agency: str,
        reported_at: datetime,
        reference: str = "",
        note: str = "",
        actor: str,
        at: datetime,
    ) -> None:
        """强制报告: when and to which agency (e.g. the police station) the case was reported."""
        require_aware(at)
        self._require_not_closed("记录强制报告")
        require(report_id not in self.mandatory_reports, "该报告已记录")
        check_aware(reported_at, "报告时间")
        require(reported_at <= at, "报告时间不能晚于现在")
        self._mandatory_report_made(
            report_id=report_id,
            agency=require_text(agency, "接受报告的机关"),
            reported_at=reported_at,
            reference=(reference or "").strip(),
            note=(note or "").strip(),
            actor=actor,
            at=at,
        )

    @event(MandatoryReportMade)
    def _mandatory_report_made(
        self,
        report_id: str,
        agency: str,
        reported_at: datetime,
        reference: str,
        note: str,
        actor: str,
        at: datetime,
    ) -> None:
        self.mandatory_reports[report_id] = {
            "id": report_id,
            "agency": agency,
            "reported_at": reported_at,
            "reference": reference,
            "note": note,
            "by": actor,
            "at": at,
            "cycle": self.cycle,
        }

    # -- interventions ------------------------------------------------------------------------
    def plan_intervention(
        self,
        *,
        intervention_id: str,
        student_id: str,
        kind: str,
        plan: str,
        responsible_staff_id: str,
        support_file_id: str | None = None,
        actor: str,
        at: datetime,
    ) -> None:
        """An intervention for one party: support for the targeted, education for the bullying side."""
        require_aware(at)
        self._require_approved("制定干预措施")
        require(intervention_id not in self.interventions, "该干预措施已记录")
        party = self._party(student_id)
        kind = check_choice(kind, INTERVENTION_KINDS, "干预类型")
        allowed = KINDS_BY_PART[party["part"]]
        require(
            kind in allowed, f"{PARTS[party['part']]}的干预只能是：{'、'.join(INTERVENTION_KINDS[k] for k in allowed)}"
        )
        if support_file_id:
            require(kind != "education", "教育矫治措施不关联心理档案")
        self._intervention_planned(
            intervention_id=intervention_id,
            student_id=student_id,
            part=party["part"],
            kind=kind,
            plan=require_text(plan, "干预方案"),
            responsible_staff_id=require_text(responsible_staff_id, "负责人"),
            support_file_id=support_file_id or None,
            actor=actor,
            at=at,
        )

    @event(InterventionPlanned)
    def _intervention_planned(
        self,
        intervention_id: str,
        student_id: str,
        part: str,
        kind: str,
        plan: str,
        responsible_staff_id: str,
        support_file_id: str | None,
        actor: str,
        at: datetime,
    ) -> None:
        self.interventions[intervention_id] = {
            "id": intervention_id,
            "student_id": student_id,
            "part": part,
            "kind": kind,
            "plan": plan,
            "responsible_staff_id": responsible_staff_id,
            "support_file_id": support_file_id,
            "by": actor,
            "at": at,
            "cycle": self.cycle,
            "active": True,
            "progress": [],
            "outcome": "",
            "completed_at": None,
        }

    def record_intervention_progress(self, *, intervention_id: str, note: str, actor: str, at: datetime) -> None:
        require_aware(at)
        self._require_not_closed("记录干预进展")
        self._active_intervention(intervention_id)
        self._intervention_progress_recorded(
            intervention_id=intervention_id, note=require_text(note, "进展情况"), actor=actor, at=at
        )

    @event(InterventionProgressRecorded)
    def _intervention_progress_recorded(self, intervention_id: str, note: str, actor: str, at: datetime) -> None:
        self.interventions[intervention_id]["progress"].append({"note": note, "by": actor, "at": at})

    def complete_intervention(self, *, intervention_id: str, outcome: str, actor: str, at: datetime) -> None:
        require_aware(at)
        self._require_not_closed("完成干预")
        self._active_intervention(intervention_id)
        self._intervention_completed(
            intervention_id=intervention_id, outcome=require_text(outcome, "干预效果"), actor=actor, at=at
        )

    @event(InterventionCompleted)
    def _intervention_completed(self, intervention_id: str, outcome: str, actor: str, at: datetime) -> None:
        self.interventions[intervention_id].update(active=False, outcome=outcome, completed_at=at)

    # -- appeal (申诉/复查) ----------------------------------------------------------------------
    def lodge_appeal(
        self, *, appeal_id: str, party_id: str, grounds: str, lodged_on: date, actor: str, at: datetime
    ) -> None:
        """Refused: the county review (`apply_for_county_review`, 复查 of 教督〔2017〕10号)
        replaces the school's own record of an appeal. Appeals recorded before
        (`AppealLodged`) still load, show and take their outcome (`record_appeal_outcome`)."""
        raise AppealRetired()

    @event(AppealLodged)
    def _appeal_lodged(
        self,
        appeal_id: str,
        party_id: str,
        grounds: str,
        lodged_on: date,
        determination_id: str,
        actor: str,
        at: datetime,
    ) -> None:
        self.appeals[appeal_id] = {
            "id": appeal_id,
            "party_id": party_id,
            "grounds": grounds,
            "lodged_on": lodged_on,
            "determination_id": determination_id,
            "by": actor,
            "at": at,
            "outcome": None,
            "decided_on": None,
            "outcome_reason": "",
            "new_determination_id": None,
        }
        self.pending_appeal_id = appeal_id

    def record_appeal_outcome(
        self,
        *,
        appeal_id: str,
        outcome: str,
        reason: str,
        decided_on: date,
        new_determination_id: str | None = None,
        bullying: bool | None = None,
        severity: str | None = None,
        horseplay: bool = False,
        follow_up_due: date | None = None,
        investigation_due: date | None = None,
        actor: str,
        at: datetime,
        authority_report_due: datetime | None = None,
    ) -> None:
        """The county office's review (复查): upheld, changed (a new determination) or reopened.
        A change to serious bullying or worse makes the reports of art. 39 due (`reports_due`)."""
        require_aware(at)
        self._require(("appealed",), "记录复查结果")
        require(appeal_id == self.pending_appeal_id, "该申诉不是待审结的申诉")
        outcome = check_choice(outcome, APPEAL_OUTCOMES, "复查结果")
        appeal = self.appeals[appeal_id]
        require(
            isinstance(decided_on, date) and appeal["lodged_on"] <= decided_on <= at.date(),
            "复查日期须在申诉日期与今天之间",
        )
        new: dict[str, Any] | None = None
        if outcome == "changed":
            require(bool(new_determination_id), "变更认定须有新认定编号")
            require(bullying is not None, "变更认定须写明是否构成欺凌")
            b, s, h = determination_of(bool(bullying), severity, horseplay)
            det = self.determination
            assert det is not None
            require(
                (b, s, h) != (det["bullying"], det["severity"], det["horseplay"]),
                "变更后的认定与原认定相同；请记录为维持原认定",
            )
            new = {"id": new_determination_id, "bullying": b, "severity": s, "horseplay": h}
            require(not b or follow_up_due is not None, "须有回访期限")
            require(
                not (b and is_serious(s)) or authority_report_due is not None,
                "严重欺凌须有向公安机关和教育行政部门报告的期限",
            )
        else:
            require(bullying is None and severity is None and not horseplay, "只有变更认定才填写新的认定")
        if outcome == "reopened":
            require(isinstance(investigation_due, date) and investigation_due >= at.date(), "须有新的调查期限")
        self._appeal_reviewed(
            appeal_id=appeal_id,
            outcome=outcome,
            reason=require_text(reason, "复查理由"),
            decided_on=decided_on,
            new_determination=new,
            follow_up_due=follow_up_due if new and new["bullying"] else None,
            investigation_due=investigation_due if outcome == "reopened" else None,
            actor=actor,
            at=at,
        )
        if new and new["bullying"] and is_serious(new["severity"]):
            assert authority_report_due is not None
            self.reports_due(grounds="serious_bullying", known_at=at, due_at=authority_report_due, actor=actor, at=at)

    @event(AppealReviewed)
    def _appeal_reviewed(
        self,
        appeal_id: str,
        outcome: str,
        reason: str,
        decided_on: date,
        new_determination: dict[str, Any] | None,
        follow_up_due: date | None,
        investigation_due: date | None,
        actor: str,
        at: datetime,
    ) -> None:
        self.appeals[appeal_id].update(
            outcome=outcome,
            decided_on=decided_on,
            outcome_reason=reason,
            new_determination_id=new_determination["id"] if new_determination else None,
        )
        self.pending_appeal_id = None
        if outcome == "changed" and new_determination:
            self.determinations.append(
                {
                    **new_determination,
                    "reason": reason,
                    "by": actor,
                    "at": at,
                    "source": "appeal_review",
                    "appeal_id": appeal_id,
                    "approved": True,
                    "approved_by": actor,
                    "approved_at": at,
                    "approval_reason": reason,
                    "returned": False,
                    "cycle": self.cycle,
                }
            )
            self.current_determination_id = new_determination["id"]
            self.next_follow_up_due = follow_up_due
        elif outcome == "reopened":
            self.current_determination_id = None
            self.investigation_started_at = at
            self.investigation_completed_at = None
            self.investigation_due = investigation_due  # type: ignore[assignment]
            self.next_follow_up_due = None
            self.appeal_until = None

    # -- follow-up (回访) -----------------------------------------------------------------------
    def record_follow_up(
        self, *, follow_up_id: str, held_on: date, notes: str, next_due: date, actor: str, at: datetime
    ) -> None:
        """A follow-up visit; for a bullying determination the next one falls due per policy."""
        require_aware(at)
        self._require_not_closed("回访")
        det = self._require_approved("回访")
        require(follow_up_id not in self.follow_ups, "该回访已记录")
        require(isinstance(held_on, date) and held_on <= at.date(), "回访日期不能晚于今天")
        require(held_on >= det["approved_at"].date(), "回访日期不能早于认定批准日期")
        self._follow_up_recorded(
            follow_up_id=follow_up_id,
            held_on=held_on,
            notes=require_text(notes, "回访情况"),
            next_due=next_due if det["bullying"] else None,
            determination_id=det["id"],
            actor=actor,
            at=at,
        )

    @event(FollowUpRecorded)
    def _follow_up_recorded(
        self,
        follow_up_id: str,
        held_on: date,
        notes: str,
        next_due: date | None,
        determination_id: str,
        actor: str,
        at: datetime,
    ) -> None:
        self.follow_ups[follow_up_id] = {
            "id": follow_up_id,
            "held_on": held_on,
            "notes": notes,
            "next_due": next_due,
            "determination_id": determination_id,
            "by": actor,
            "at": at,
            "corrections": [],
        }
        self.next_follow_up_due = next_due

    # -- closure and reopening ----------------------------------------------------------------
    def close(self, *, reason: str, actor: str, at: datetime) -> None:
        """Close (结案/销号): approved determination, no pending appeal, duties done."""
        require_aware(at)
        self._require_not_closed("再次结案")
        if self.pending_appeal_id is not None or self.pending_review_id is not None:
            raise AppealPending(action="结案")
        det = self._require_approved("结案")
        if (
            det["bullying"]
            and det["severity"] == "suspected_offence"
            and not self.mandatory_reports_this_cycle
            and not self.authority_reports_this_cycle
        ):
            raise MandatoryReportRequired()
        owed = self.outstanding_authority_reports()
        if owed:
            duty = self.authority_duty
            assert duty is not None
            raise AuthorityReportsRequired(
                grounds=AUTHORITY_REPORT_GROUNDS[duty["grounds"]], missing="、".join(AUTHORITIES[a] for a in owed)
            )
        missing = self.missing_interventions()
        if missing:
            raise InterventionsRequired.of(missing)
        self._closed(reason=require_text(reason, "结案理由"), determination_id=det["id"], actor=actor, at=at)

    @event(Closed)
    def _closed(self, reason: str, determination_id: str, actor: str, at: datetime) -> None:
        self.closed_at = at
        self.close_reason = reason
        self.next_follow_up_due = None
        self.closures.append({"reason": reason, "determination_id": determination_id, "by": actor, "at": at})

    def reopen(
        self,
        *,
        reason: str,
        actor: str,
        at: datetime,
        intake_due: date | None = None,
        investigation_due: date | None = None,
    ) -> None:
        """Reopen a closed case when the bullying recurs: a new cycle, investigated anew. The
        new investigation starts by `intake_due` (its own due date comes when it starts)."""
        require_aware(at)
        if self.closed_at is None:
            raise WrongState(state=self.status_label, action="重新开启（只有已结案的案件才能重新开启）")
        require(intake_due is not None or investigation_due is not None, "须有新的调查期限")
        for due in (intake_due, investigation_due):
            require(due is None or (isinstance(due, date) and due >= at.date()), "须有新的调查期限")
        self._reopened(
            reason=require_text(reason, "重新开启原因"),
            investigation_due=investigation_due,
            intake_due=intake_due,
            actor=actor,
            at=at,
        )

    @event(Reopened)
    def _reopened(
        self, reason: str, investigation_due: date | None, intake_due: date | None, actor: str, at: datetime
    ) -> None:
        self.cycle += 1
        self.closed_at = None
        self.close_reason = ""
        self.current_determination_id = None
        self.handler_id = None
        self.investigation_started_at = None
        self.investigation_completed_at = None
        self.findings = ""
        self.investigation_due = investigation_due
        self.intake_due = intake_due
        self.appeal_until = None
        self.next_follow_up_due = None
        self.reopenings.append({"reason": reason, "by": actor, "at": at, "cycle": self.cycle})

    # -- corrections --------------------------------------------------------------------------
    def correct_statement(self, *, statement_id: str, text: str, reason: str, actor: str, at: datetime) -> None:
        require_aware(at)
        st = self._item(self.statements, statement_id, "陈述")
        text = require_text(text, "陈述内容")
        require(text != st["text"], "内容没有变化")
        self._statement_corrected(
            corrects=statement_id, text=text, reason=require_text(reason, "更正原因"), actor=actor, at=at
        )

    @event(StatementCorrected)
    def _statement_corrected(self, corrects: str, text: str, reason: str, actor: str, at: datetime) -> None:
        st = self.statements[corrects]
        st["corrections"].append({"previous": st["text"], "reason": reason, "by": actor, "at": at})
        st["text"] = text
        self._note_correction("statement", corrects, reason, actor, at)

    def correct_evidence(
        self,
        *,
        evidence_id: str,
        reason: str,
        description: str | None = None,
        reference: str | None = None,
        actor: str,
        at: datetime,
    ) -> None:
        require_aware(at)
        ev = self._item(self.evidence, evidence_id, "证据")
        changes: dict[str, str] = {}
        if description is not None:
            changes["description"] = require_text(description, "证据说明")
        if reference is not None:
            changes["reference"] = reference.strip()
        changes = {k: v for k, v in changes.items() if v != ev[k]}
        require(bool(changes), "没有要更正的内容")
        self._evidence_corrected(
            corrects=evidence_id, changes=changes, reason=require_text(reason, "更正原因"), actor=actor, at=at
        )

    @event(EvidenceCorrected)
    def _evidence_corrected(
        self, corrects: str, changes: dict[str, str], reason: str, actor: str, at: datetime
    ) -> None:
        ev = self.evidence[corrects]
        ev["corrections"].append({"previous": {k: ev[k] for k in changes}, "reason": reason, "by": actor, "at": at})
        ev.update(changes)
        self._note_correction("evidence", corrects, reason, actor, at)

    def correct_narrative(self, *, narrative: str, reason: str, actor: str, at: datetime) -> None:
        require_aware(at)
        narrative = require_text(narrative, "事情经过")
        require(narrative != self.narrative, "内容没有变化")
        self._narrative_corrected(
            corrects="narrative", narrative=narrative, reason=require_text(reason, "更正原因"), actor=actor, at=at
        )

    @event(NarrativeCorrected)
    def _narrative_corrected(self, corrects: str, narrative: str, reason: str, actor: str, at: datetime) -> None:
        self.narrative = narrative
        self._note_correction("report", corrects, reason, actor, at)

    REPORT_FIELDS = ("channel", "occurred_at", "place", "forms")

    def correct_report(self, *, changes: Mapping[str, Any], reason: str, actor: str, at: datetime) -> None:
        """Correct the report's details (channel, when, where, forms)."""
        require_aware(at)
        unknown = set(changes) - set(self.REPORT_FIELDS)
        require(not unknown, f"不能更正的字段：{', '.join(sorted(unknown))}")
        clean: dict[str, Any] = {}
        if "channel" in changes:
            clean["channel"] = check_choice(changes["channel"], CHANNELS, "举报渠道")
        if "occurred_at" in changes:
            clean["occurred_at"] = check_aware(changes["occurred_at"], "发生时间")
            require(clean["occurred_at"] <= self.reported_at, "发生时间不能晚于报告时间")
        if "place" in changes:
            clean["place"] = require_text(changes["place"], "发生地点")
        if "forms" in changes:
            clean["forms"] = check_forms(changes["forms"])
        clean = {k: v for k, v in clean.items() if v != getattr(self, k)}
        require(bool(clean), "没有要更正的内容")
        self._report_corrected(
            corrects="report", changes=clean, reason=require_text(reason, "更正原因"), actor=actor, at=at
        )

    @event(ReportCorrected)
    def _report_corrected(self, corrects: str, changes: dict[str, Any], reason: str, actor: str, at: datetime) -> None:
        for k, v in changes.items():
            setattr(self, k, list(v) if isinstance(v, list) else v)
        self._note_correction("report", corrects, reason, actor, at, fields=sorted(changes))

    def correct_follow_up(self, *, follow_up_id: str, notes: str, reason: str, actor: str, at: datetime) -> None:
        require_aware(at)
        fu = self._item(self.follow_ups, follow_up_id, "回访")
        notes = require_text(notes, "回访情况")
        require(notes != fu["notes"], "内容没有变化")
        self._follow_up_corrected(
            corrects=follow_up_id, notes=notes, reason=require_text(reason, "更正原因"), actor=actor, at=at
        )

    @event(FollowUpCorrected)
    def _follow_up_corrected(self, corrects: str, notes: str, reason: str, actor: str, at: datetime) -> None:
        fu = self.follow_ups[corrects]
        fu["corrections"].append({"previous": fu["notes"], "reason": reason, "by": actor, "at": at})
        fu["notes"] = notes
        self._note_correction("follow_up", corrects, reason, actor, at)

    def _note_correction(
        self, what: str, corrects: str, reason: str, actor: str, at: datetime, fields: list[str] | None = None
    ) -> None:
        self.corrections.append(
            {"what": what, "corrects": corrects, "fields": fields or [], "reason": reason, "by": actor, "at": at}
        )

    # -- intake: clues without named students (issue 17, A) ------------------------------------
    def dismiss_clue(self, *, finding: str, reason: str, actor: str, at: datetime) -> None:
        """End a clue that names no targeted student without a determination: not bullying,
        or not about students of this school (查无欺凌), with why. A case with a targeted
        student goes to the committee instead (art. 24 of 未成年人学校保护规定)."""
        require_aware(at)
        self._require(INVESTIGATION_OPEN_STATES, "以“查无欺凌”结束线索")
        if self.targeted_parties:
            raise ClueHasTargetedParty(state=self.status_label, action="以“查无欺凌”结束线索")
        self._clue_dismissed(
            finding=check_choice(finding, CLUE_FINDINGS, "核查结果"),
            reason=require_text(reason, "核查情况"),
            actor=actor,
            at=at,
        )

    # -- the public-security track (公安机关处理, issue 17) ----------------------------------------
    def open_police_track(
        self, *, kind: str, reason: str, authority_report_due: datetime, actor: str, at: datetime
    ) -> None:
        """The case goes to the public security organ (违反治安管理 or 涉嫌犯罪), at any step
        before closure, once per cycle; the reports to the police and the education bureau fall
        due (`reports_due`, grounds police_track, by policy.authority_report_due)."""
        require_aware(at)
        self._require_not_closed("开启公安机关处理")
        track = self.police_track
        if track is not None:
            raise PoliceTrackAlreadyOpen(kind=track["label"])
        self._police_track_opened(
            kind=check_choice(kind, POLICE_TRACK_KINDS, "公安机关处理类别"),
            reason=require_text(reason, "移送理由"),
            actor=actor,
            at=at,
        )
        self.reports_due(grounds="police_track", known_at=at, due_at=authority_report_due, actor=actor, at=at)

    @event(PoliceTrackOpened)
    def _police_track_opened(self, kind: str, reason: str, actor: str, at: datetime) -> None:
        track = {"kind": kind, "reason": reason, "by": actor, "at": at, "cycle": self.cycle}
        self.police_tracks = (*self.police_tracks, track)

    @property
    def police_track(self) -> dict[str, Any] | None:
        """The public-security track of this cycle, if open: the one opened (with its kind's
        `label`), or, for an older case, a determination in force of the legacy severity
        `suspected_offence` (kind "legacy"; no event of the track was written)."""
        opened = next((t for t in self.police_tracks if t["cycle"] == self.cycle), None)
        if opened is not None:
            return {**opened, "label": POLICE_TRACK_KINDS[opened["kind"]], "legacy": False}
        det = self.determination
        if det and det["approved"] and det["bullying"] and det["severity"] in LEGACY_SEVERITIES:
            return {
                "kind": "legacy",
                "label": SEVERITIES[det["severity"]],
                "reason": det["reason"],
                "by": det["by"],
                "at": det["at"],
                "cycle": self.cycle,
                "legacy": True,
            }
        return None

    # -- remedies (issue 17, part C): reports to the authorities ---------------------------------
    def reports_due(self, *, grounds: str, known_at: datetime, due_at: datetime, actor: str, at: datetime) -> bool:
        """未成年人保护法 art. 39: the school must not conceal serious bullying; it reports it
        promptly to the public security organ AND the education administration. Called by the
        case when what makes them due becomes known: a determination of serious bullying or
        worse approved (or so changed on review), or the public-security track opened
        (`grounds` "police_track": the command that opens it calls this too). Once per cycle:
        a report already made to one of them this cycle (art. 11, from intake) counts, and
        nothing is recorded when both are made. Returns whether a duty was recorded."""
        require_aware(at)
        self._require_not_closed("记录报告期限")
        grounds = check_choice(grounds, AUTHORITY_REPORT_GROUNDS, "报告事由")
        check_aware(known_at, "知悉时间")
        check_aware(due_at, "报告期限")
        require(due_at >= known_at, "报告期限不能早于知悉时间")
        if self.authority_duty is not None:
            return False
        reported = {r["authority"] for r in self.authority_reports_this_cycle}
        owed = [a for a in AUTHORITIES if a not in reported]
        if not owed:
            return False
        self._authority_reports_fell_due(
            grounds=grounds, known_at=known_at, due_at=due_at, authorities=owed, actor=actor, at=at
        )
        return True

    @event(AuthorityReportsDue)
    def _authority_reports_fell_due(
        self, grounds: str, known_at: datetime, due_at: datetime, authorities: list[str], actor: str, at: datetime
    ) -> None:
        duty = {
            "grounds": grounds,
            "known_at": known_at,
            "due_at": due_at,
            "authorities": list(authorities),
            "by": actor,
            "at": at,
            "cycle": self.cycle,
        }
        self.authority_duties = (*self.authority_duties, duty)

    def record_authority_report(
        self,
        *,
        report_id: str,
        authority: str,
        unit: str,
        method: str,
        reported_at: datetime,
        receipt: str = "",
        note: str = "",
        actor: str,
        at: datetime,
    ) -> None:
        """A report to the police or the education bureau: the unit's name, how, when, and
        any receipt number. May be made from intake on (art. 11), in any status but closed."""
        require_aware(at)
        self._require_not_closed("记录报告")
        require(not any(r["id"] == report_id for r in self.authority_reports), "该报告已记录")
        authority = check_choice(authority, AUTHORITIES, "报告对象")
        method = check_choice(method, AUTHORITY_REPORT_METHODS, "报告方式")
        check_aware(reported_at, "报告时间")
        require(reported_at <= at, "报告时间不能晚于现在")
        self._authority_report_made(
            report_id=report_id,
            authority=authority,
            unit=require_text(unit, "接受报告的单位名称"),
            method=method,
            reported_at=reported_at,
            receipt=(receipt or "").strip(),
            note=(note or "").strip(),
            actor=actor,
            at=at,
        )

    @event(ClueDismissed)
    def _clue_dismissed(self, finding: str, reason: str, actor: str, at: datetime) -> None:
        self.closed_at = at
        self.close_reason = reason
        self.next_follow_up_due = None
        self.closures.append({"reason": reason, "determination_id": None, "finding": finding, "by": actor, "at": at})

    @property
    def targeted_parties(self) -> list[str]:
        return [p["student_id"] for p in self.parties if p["part"] == "targeted"]

    @property
    def students_unconfirmed(self) -> bool:
        """A clue whose targeted student is not identified yet (pages: 未确认学生)."""
        return not self.targeted_parties

    def _require_targeted_party(self, action: str) -> None:
        if not self.targeted_parties:
            raise TargetedPartyNotIdentified(action=action)

    @event(AuthorityReportMade)
    def _authority_report_made(
        self,
        report_id: str,
        authority: str,
        unit: str,
        method: str,
        reported_at: datetime,
        receipt: str,
        note: str,
        actor: str,
        at: datetime,
    ) -> None:
        entry = {
            "id": report_id,
            "authority": authority,
            "unit": unit,
            "method": method,
            "reported_at": reported_at,
            "receipt": receipt,
            "note": note,
            "by": actor,
            "at": at,
            "cycle": self.cycle,
        }
        self.authority_reports = (*self.authority_reports, entry)

    @property
    def authority_duty(self) -> dict[str, Any] | None:
        """The reports to the authorities due this cycle, if any fell due."""
        return next((d for d in self.authority_duties if d["cycle"] == self.cycle), None)

    @property
    def authority_reports_this_cycle(self) -> list[dict[str, Any]]:
        return [r for r in self.authority_reports if r["cycle"] == self.cycle]

    def outstanding_authority_reports(self) -> list[str]:
        """The authorities (police, bureau) still owed a report this cycle."""
        duty = self.authority_duty
        if duty is None:
            return []
        reported = {r["authority"] for r in self.authority_reports_this_cycle}
        return [a for a in duty["authorities"] if a not in reported]

    def authority_reports_overdue(self, now: datetime) -> list[str]:
        """The authorities owed a report past its due time."""
        duty = self.authority_duty
        if duty is None or self.closed_at is not None or now <= duty["due_at"]:
            return []
        return self.outstanding_authority_reports()

    # -- remedies (issue 17, part C): dispositions ------------------------------------------------
    def decide_disposition(
        self,
        *,
        disposition_id: str,
        student_id: str,
        kind: str,
        decided_by: str,
        decided_on: date,
        level: str | None = None,
        measure: str | None = None,
        note: str = "",
        actor: str,
        at: datetime,
        student_label: str = "该学生",
    ) -> None:
        """A disposition for a bullying student of an approved bullying determination
        (教督〔2017〕10号; 中小学教育惩戒规则 art. 8-10): kind, level, measure, who decided and
        when. `student_label` names the student in a refusal (the application passes the name)."""
        require_aware(at)
        self._require_not_closed("作出处理决定")
        if self.status == "appealed":
            raise AppealPending(action="作出处理决定")
        require(not any(d["id"] == disposition_id for d in self.dispositions), "该处理决定已记录")
        det = self.determination
        party = self.party(student_id)
        if not (det and det["approved"] and det["bullying"] and party and party["part"] == "bullying"):
            raise NotABullyingParty(student=student_label, student_id=student_id)
        kind = check_choice(kind, DISPOSITION_KINDS, "处理类型")
        levels = DISPOSITION_LEVELS.get(kind)
        if levels:
            level = check_choice(level, levels, f"{DISPOSITION_KINDS[kind]}的种类")
        else:
            require(not level, f"{DISPOSITION_KINDS[kind]}不分种类")
            level = None
        if kind == "education_discipline":
            assert level is not None
            measure = check_choice(measure, DISCIPLINE_MEASURES[level], f"{levels[level]}的措施")  # type: ignore[index]
        else:
            require(not measure, "只有教育惩戒需要选择具体措施")
            measure = None
        decided_by = check_choice(decided_by, DISPOSITION_DECIDERS, "决定机关")
        allowed = DECIDERS_BY_KIND.get(kind, SCHOOL_DECIDERS)
        require(
            decided_by in allowed,
            f"{DISPOSITION_KINDS[kind]}只能由{'、'.join(DISPOSITION_DECIDERS[d] for d in allowed)}决定",
        )
        require(isinstance(decided_on, date) and decided_on <= at.date(), "决定日期不能晚于今天")
        require(decided_on >= det["at"].date(), "决定日期不能早于认定日期")
        note = (note or "").strip()
        require(kind != "compensation" or bool(note), "赔偿须写明赔偿内容")
        self._disposition_decided(
            disposition_id=disposition_id,
            student_id=student_id,
            kind=kind,
            level=level,
            measure=measure,
            decided_by=decided_by,
            decided_on=decided_on,
            note=note,
            determination_id=det["id"],
            actor=actor,
            at=at,
        )

    @event(DispositionDecided)
    def _disposition_decided(
        self,
        disposition_id: str,
        student_id: str,
        kind: str,
        level: str | None,
        measure: str | None,
        decided_by: str,
        decided_on: date,
        note: str,
        determination_id: str,
        actor: str,
        at: datetime,
    ) -> None:
        entry = {
            "id": disposition_id,
            "student_id": student_id,
            "kind": kind,
            "level": level,
            "measure": measure,
            "decided_by": decided_by,
            "decided_on": decided_on,
            "note": note,
            "determination_id": determination_id,
            "by": actor,
            "at": at,
            "cycle": self.cycle,
        }
        self.dispositions = (*self.dispositions, entry)

    # -- remedies (issue 17, part C): the county review (复查) -------------------------------------
    def apply_for_county_review(
        self,
        *,
        review_id: str,
        party_id: str,
        county_body: str,
        applied_on: date,
        due_on: date,
        grounds: str,
        actor: str,
        at: datetime,
        student_label: str = "该学生",
    ) -> None:
        """A targeted or bullying party applies to the county body for a review (复查) of the
        approved determination, within the window (`appeal_until`: policy.review_application_days);
        the county completes it by `due_on` (policy.county_review_days after the application)."""
        require_aware(at)
        self._require_not_closed("申请复查")
        if self.pending_appeal_id is not None or self.pending_review_id is not None:
            raise AppealPending(action="再次申请复查")
        det = self._require_approved("申请复查")
        require(not any(r["id"] == review_id for r in self.county_reviews), "该复查申请已记录")
        party = self._party(party_id)
        require(party["part"] != "witness", "旁观/证人不能对认定申请复查")
        require(det["source"] == "committee", "复查变更后的认定为最终决定，不能在本案再次申请复查")
        require(
            not any(r["party_id"] == party_id and r["determination_id"] == det["id"] for r in self.county_reviews)
            and not any(
                a["party_id"] == party_id and a["determination_id"] == det["id"] for a in self.appeals.values()
            ),
            "该当事人已就此认定申请过复查",
        )
        require(isinstance(applied_on, date) and applied_on <= at.date(), "申请日期不能晚于今天")
        require(applied_on >= det["approved_at"].date(), "申请日期不能早于认定批准日期")
        if self.appeal_until is None or applied_on > self.appeal_until:
            until = self.appeal_until.isoformat() if self.appeal_until else "—"
            raise ReviewApplicationWindowClosed(student=student_label, until=until, student_id=party_id)
        require(isinstance(due_on, date) and due_on >= applied_on, "复查期限不能早于申请日期")
        self._county_review_applied(
            review_id=review_id,
            party_id=party_id,
            county_body=require_text(county_body, "受理复查的县级机构名称"),
            applied_on=applied_on,
            due_on=due_on,
            grounds=require_text(grounds, "申请复查的理由"),
            determination_id=det["id"],
            actor=actor,
            at=at,
        )

    @event(CountyReviewApplied)
    def _county_review_applied(
        self,
        review_id: str,
        party_id: str,
        county_body: str,
        applied_on: date,
        due_on: date,
        grounds: str,
        determination_id: str,
        actor: str,
        at: datetime,
    ) -> None:
        review = {
            "id": review_id,
            "party_id": party_id,
            "county_body": county_body,
            "applied_on": applied_on,
            "due_on": due_on,
            "grounds": grounds,
            "determination_id": determination_id,
            "by": actor,
            "at": at,
            "panel": [],
            "outcome": None,
            "decided_on": None,
            "outcome_reason": "",
            "new_determination_id": None,
        }
        self.county_reviews = (*self.county_reviews, review)
        self.pending_review_id = review_id

    def record_review_panel(self, *, review_id: str, members: Iterable[Any], actor: str, at: datetime) -> None:
        """The county's review panel: each member's capacity and name; it must include a
        school representative, a parent representative and an outside expert (教督〔2017〕10号)."""
        require_aware(at)
        review = self._pending_review(review_id, "记录复查小组")
        require(not review["panel"], "复查小组已记录")
        clean: list[dict[str, str]] = []
        for m in members or ():
            capacity, name = (m.get("capacity"), m.get("name")) if isinstance(m, Mapping) else m
            clean.append(
                {
                    "capacity": check_choice(capacity, REVIEW_CAPACITIES, "成员身份"),
                    "name": require_text(str(name or ""), "成员姓名"),
                }
            )
        missing = [c for c in REQUIRED_REVIEW_CAPACITIES if not any(m["capacity"] == c for m in clean)]
        if missing:
            raise ReviewPanelIncomplete(missing="、".join(REVIEW_CAPACITIES[c] for c in missing))
        self._county_review_panel_recorded(review_id=review_id, members=clean, actor=actor, at=at)

    @event(CountyReviewPanelRecorded)
    def _county_review_panel_recorded(
        self, review_id: str, members: list[dict[str, str]], actor: str, at: datetime
    ) -> None:
        self._replace_review(review_id, panel=[dict(m) for m in members], panel_by=actor, panel_at=at)

    def record_county_review_outcome(
        self,
        *,
        review_id: str,
        outcome: str,
        reason: str,
        decided_on: date,
        new_determination_id: str | None = None,
        bullying: bool | None = None,
        severity: str | None = None,
        horseplay: bool = False,
        follow_up_due: date | None = None,
        authority_report_due: datetime | None = None,
        actor: str,
        at: datetime,
    ) -> None:
        """The county's outcome, by its panel: upheld (维持), changed (变更: a new determination,
        in force at once) or sent back (发回重新认定: the school's committee determines anew)."""
        require_aware(at)
        review = self._pending_review(review_id, "记录复查结果")
        require(bool(review["panel"]), "须先记录复查小组成员（学校代表、家长代表、校外专家）")
        outcome = check_choice(outcome, COUNTY_REVIEW_OUTCOMES, "复查结果")
        require(
            isinstance(decided_on, date) and review["applied_on"] <= decided_on <= at.date(),
            "复查决定日期须在申请日期与今天之间",
        )
        new: dict[str, Any] | None = None
        if outcome == "changed":
            require(bool(new_determination_id), "变更认定须有新认定编号")
            require(bullying is not None, "变更认定须写明是否构成欺凌")
            b, s, h = determination_of(bool(bullying), severity, horseplay)
            det = self.determination
            assert det is not None
            require(
                (b, s, h) != (det["bullying"], det["severity"], det["horseplay"]),
                "变更后的认定与原认定相同；请记录为维持原认定",
            )
            require(not b or follow_up_due is not None, "须有回访期限")
            require(
                not (b and is_serious(s)) or authority_report_due is not None,
                "严重欺凌须有向公安机关和教育行政部门报告的期限",
            )
            new = {"id": new_determination_id, "bullying": b, "severity": s, "horseplay": h}
        else:
            require(bullying is None and severity is None and not horseplay, "只有变更认定才填写新的认定")
        self._county_review_decided(
            review_id=review_id,
            outcome=outcome,
            reason=require_text(reason, "复查理由"),
            decided_on=decided_on,
            new_determination=new,
            follow_up_due=follow_up_due if new and new["bullying"] else None,
            actor=actor,
            at=at,
        )
        if new and new["bullying"] and is_serious(new["severity"]):
            assert authority_report_due is not None
            self.reports_due(grounds="serious_bullying", known_at=at, due_at=authority_report_due, actor=actor, at=at)

    @event(CountyReviewDecided)
    def _county_review_decided(
        self,
        review_id: str,
        outcome: str,
        reason: str,
        decided_on: date,
        new_determination: dict[str, Any] | None,
        follow_up_due: date | None,
        actor: str,
        at: datetime,
    ) -> None:
        self._replace_review(
            review_id,
            outcome=outcome,
            decided_on=decided_on,
            outcome_reason=reason,
            new_determination_id=new_determination["id"] if new_determination else None,
            decided_by=actor,
        )
        self.pending_review_id = None
        if outcome == "changed" and new_determination:
            self.determinations.append(
                {
                    **new_determination,
                    "reason": reason,
                    "by": actor,
                    "at": at,
                    "source": "county_review",
                    "review_id": review_id,
                    "approved": True,
                    "approved_by": actor,
                    "approved_at": at,
                    "approval_reason": reason,
                    "returned": False,
                    "cycle": self.cycle,
                }
            )
            self.current_determination_id = new_determination["id"]
            self.next_follow_up_due = follow_up_due
        elif outcome == "sent_back":
            # Back to the committee: the investigation stands, a new determination is awaited.
            self.current_determination_id = None
            self.next_follow_up_due = None
            self.appeal_until = None

    @property
    def pending_review(self) -> dict[str, Any] | None:
        return self._review(self.pending_review_id) if self.pending_review_id else None

    def county_review_overdue(self, today: date) -> bool:
        """A pending county review past its due day (教督〔2017〕10号: within 15 days)."""
        review = self.pending_review
        return review is not None and today > review["due_on"]

    def _review(self, review_id: str) -> dict[str, Any] | None:
        return next((r for r in self.county_reviews if r["id"] == review_id), None)

    def _pending_review(self, review_id: str, action: str) -> dict[str, Any]:
        self._require_not_closed(action)
        review = self._review(review_id)
        require(review is not None and review_id == self.pending_review_id, "该复查申请不是待决的复查")
        assert review is not None
        return review

    def _replace_review(self, review_id: str, **changes: Any) -> None:
        self.county_reviews = tuple({**r, **changes} if r["id"] == review_id else r for r in self.county_reviews)

    # -- questions ----------------------------------------------------------------------------
    @property
    def determination(self) -> dict[str, Any] | None:
        """The determination in force or awaiting approval; None before one is recorded."""
        if self.current_determination_id is None:
            return None
        return self._determination_by_id(self.current_determination_id)

    @property
    def status(self) -> str:
        det = self.determination
        return case_status(
            closed=self.closed_at is not None,
            appealed=self.pending_appeal_id is not None or self.pending_review_id is not None,
            determined=det is not None,
            approved=bool(det and det["approved"]),
            bullying=bool(det and det["bullying"]),
            followed_up=bool(det and any(f["determination_id"] == det["id"] for f in self.follow_ups.values())),
            investigation_completed=self.investigation_completed_at is not None,
            investigation_started=self.investigation_started_at is not None,
            reopened=bool(self.cycle),
        )

    @property
    def status_label(self) -> str:
        return STATUS_LABELS[self.status]

    @property
    def severity(self) -> str | None:
        """The severity in force: only an approved bullying determination has one."""
        det = self.determination
        return det["severity"] if det and det["approved"] and det["bullying"] else None

    @property
    def links(self) -> list[tuple[str, str]]:
        return [(p["student_id"], p["part"]) for p in self.parties]

    def party(self, student_id: str) -> dict[str, Any] | None:
        return next((p for p in self.parties if p["student_id"] == student_id), None)

    @property
    def mandatory_reports_this_cycle(self) -> list[dict[str, Any]]:
        return [r for r in self.mandatory_reports.values() if r["cycle"] == self.cycle]

    def missing_interventions(self) -> dict[str, list[str]]:
        """For a bullying determination: the parts whose students lack an intervention
        this cycle (an education plan, for the bullying side), with those students."""
        det = self.determination
        if not det or not det["bullying"]:
            return {}
        planned = [i for i in self.interventions.values() if i["cycle"] == self.cycle]
        missing: dict[str, list[str]] = {}
        for p in self.parties:
            sid, part = p["student_id"], p["part"]
            if part == "targeted" and not any(i["student_id"] == sid for i in planned):
                missing.setdefault(part, []).append(sid)
            if part == "bullying" and not any(i["student_id"] == sid and i["kind"] == "education" for i in planned):
                missing.setdefault(part, []).append(sid)
        return missing

    def investigation_overdue(self, today: date) -> bool:
        """Not completed by its due date (a new case has one once its investigation starts)."""
        due = self.investigation_due
        return self.closed_at is None and self.investigation_completed_at is None and due is not None and today > due

    def intake_overdue(self, today: date) -> bool:
        """The investigation has not started by the intake due date."""
        due = self.intake_due
        return self.closed_at is None and self.investigation_started_at is None and due is not None and today > due

    def follow_up_overdue(self, today: date) -> bool:
        due = self.next_follow_up_due
        return self.closed_at is None and due is not None and today > due

    def is_overdue(self, today: date) -> bool:
        return self.intake_overdue(today) or self.investigation_overdue(today) or self.follow_up_overdue(today)

    def scope(self) -> Scope:
        return Scope(
            kind="case",
            school_id=self.school_id,
            owner_id=self.handler_id,
            status=self.status,
            links=tuple(self.links),
        )

    # -- internals ----------------------------------------------------------------------------
    def _require_not_closed(self, action: str) -> None:
        if self.closed_at is not None:
            raise CaseClosed(state=STATUS_LABELS["closed"], action=action)

    def _require(self, states: Iterable[str], action: str) -> None:
        self._require_not_closed(action)
        status = self.status
        if status not in states:
            if status == "appealed":
                raise AppealPending(action=action)
            raise WrongState(state=STATUS_LABELS[status], action=action)

    def _require_approved(self, action: str) -> dict[str, Any]:
        self._require_not_closed(action)
        det = self.determination
        if det is None or not det["approved"]:
            raise DeterminationNotApproved(state=self.status_label, action=action)
        return det

    def _party(self, student_id: str) -> dict[str, Any]:
        p = self.party(student_id)
        if p is None:
            raise NotAParty()
        return p

    def _active_intervention(self, intervention_id: str) -> dict[str, Any]:
        i = self._item(self.interventions, intervention_id, "干预措施")
        if not i["active"]:
            raise WrongState(state="已完成", action="继续记录该干预措施")
        return i

    @staticmethod
    def _item(items: dict[str, dict[str, Any]], item_id: str, what: str) -> dict[str, Any]:
        item = items.get(item_id)
        if item is None:
            raise InvalidInput(reason=f"找不到该{what}")
        return item

    def _determination_by_id(self, determination_id: str) -> dict[str, Any]:
        return next(d for d in self.determinations if d["id"] == determination_id)
