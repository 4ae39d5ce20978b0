"""Bullying-case commands (校园欺凌案件), each through the gate first; the reads of a case
are in anxin.commands.case_reads, the base of `CaseCommands` (`app.cases`).

Who may do what is decided by `domain.access` only: any staff member of the school
may report (CASE_REPORT); the safety lead and the principal run the case (CASE_WRITE);
the principal approves determinations and closes (CASE_APPROVE); a class teacher sees
a status line of the cases involving their class (CASE_STATUS); full content needs
CASE_READ (a supervisor only with a break-glass reason). Deadlines come from the policy.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager
from datetime import date, datetime
from typing import Any
from uuid import uuid4

from anxin.commands.case_reads import CaseReads
from domain import access
from domain.bullying import BullyingCase, GuardianParticipationMissing, InterventionsRequired
from domain.committee import NoGoverningBody
from domain.common import Actor


class CaseCommands(CaseReads):
    """Report, investigate, determine, intervene, appeal, follow up, close, reopen; and
    the reads of a case."""

    def _case(
        self, actor: Actor, case_id: str, expected_version: int | None, action: str = access.CASE_WRITE
    ) -> AbstractContextManager[BullyingCase]:
        """Change a case after the gate's `action` (CASE_WRITE unless said) on it."""
        return self.core.editing(case_id, BullyingCase, expected_version, check=(actor, action, "case"))

    def _add(
        self,
        actor: Actor,
        case_id: str,
        expected_version: int | None,
        record: Callable[..., Any],
        id_field: str,
        at: datetime | None = None,
        **fields: Any,
    ) -> str:
        """A new entry of the case (CASE_WRITE), recorded by the case's method `record`: its id."""
        return self._entry(self._case(actor, case_id, expected_version), record, id_field, actor, at, **fields)

    # -- report -------------------------------------------------------------------------------
    def report_bullying(
        self,
        actor: Actor,
        *,
        school_id: str,
        channel: str,
        occurred_at: datetime,
        place: str,
        forms: Iterable[str],
        parties: Iterable[Any],
        narrative: str,
        reporter_note: str = "",
        source: Mapping[str, Any] | None = None,
        students_unconfirmed: bool = False,
    ) -> str:
        """Report suspected bullying (线索/举报); any staff member of the school may. With
        `students_unconfirmed` (a hotline or anonymous clue), no student need be named yet."""
        self.core.check(actor, access.CASE_REPORT, "case", school_id=school_id)
        case = self._build_bullying_case(
            actor,
            school_id=school_id,
            channel=channel,
            occurred_at=occurred_at,
            place=place,
            forms=forms,
            parties=parties,
            narrative=narrative,
            reporter_note=reporter_note,
            source=source,
            students_unconfirmed=students_unconfirmed,
        )
        self.core.commit(case)
        return str(case.id)

    def _build_bullying_case(self, actor: Actor, *, school_id: str, **report: Any) -> BullyingCase:
        """The unsaved case, for a caller that has already passed the gate: `report` holds
        what `report_bullying` takes (channel, occurred_at, place, forms, parties, ...)."""
        at = self.now()
        case = BullyingCase.report(
            id=uuid4(),
            school_id=school_id,
            **report,
            intake_due=self.policy.intake_due(at.date()),
            actor=actor.staff_id,
            at=at,
        )
        self._require_students(school_id, [sid for sid, _ in case.links])
        return case

    # -- parties and safety measures -------------------------------------------------------------
    def add_party(
        self,
        actor: Actor,
        case_id: str,
        *,
        student_id: str,
        part: str,
        reason: str,
        expected_version: int | None = None,
    ) -> None:
        """Add a student found to be involved, with their part and why."""
        with self._case(actor, case_id, expected_version) as c:
            self._require_students(c.school_id, [student_id])
            c.add_party(student_id=student_id, part=part, reason=reason, actor=actor.staff_id, at=self.now())

    def remove_party(
        self, actor: Actor, case_id: str, *, student_id: str, reason: str, expected_version: int | None = None
    ) -> None:
        """Remove a student wrongly named, with why."""
        with self._case(actor, case_id, expected_version) as c:
            c.remove_party(student_id=student_id, reason=reason, actor=actor.staff_id, at=self.now())

    def take_safety_measure(
        self,
        actor: Actor,
        case_id: str,
        *,
        kind: str,
        student_ids: Iterable[str] = (),
        note: str = "",
        method: str | None = None,
        notified_at: datetime | None = None,
        expected_version: int | None = None,
    ) -> str:
        """Separate the students, notify a guardian, get medical care, or another measure."""
        return self._add(
            actor,
            case_id,
            expected_version,
            BullyingCase.take_safety_measure,
            "measure_id",
            kind=kind,
            student_ids=student_ids,
            note=note,
            method=method,
            notified_at=notified_at,
        )

    def notify_guardian(
        self,
        actor: Actor,
        case_id: str,
        *,
        student_id: str,
        method: str,
        notified_at: datetime,
        note: str = "",
        expected_version: int | None = None,
    ) -> str:
        """家长告知: whose guardian, how and when."""
        return self.take_safety_measure(
            actor,
            case_id,
            kind="guardian_notified",
            student_ids=[student_id],
            method=method,
            notified_at=notified_at,
            note=note,
            expected_version=expected_version,
        )

    # -- investigation ---------------------------------------------------------------------------
    def record_statement(
        self,
        actor: Actor,
        case_id: str,
        *,
        text: str,
        from_student_id: str | None = None,
        from_person: str | None = None,
        taken_on: date | None = None,
        expected_version: int | None = None,
    ) -> str:
        """A statement from a party student or another person described in words."""
        at = self.now()
        return self._add(
            actor,
            case_id,
            expected_version,
            BullyingCase.record_statement,
            "statement_id",
            at,
            text=text,
            from_student_id=from_student_id,
            from_person=from_person,
            taken_on=taken_on or at.date(),
        )

    def add_evidence(
        self, actor: Actor, case_id: str, *, description: str, reference: str = "", expected_version: int | None = None
    ) -> str:
        """An evidence note: what it is and where it is kept."""
        return self._add(
            actor,
            case_id,
            expected_version,
            BullyingCase.add_evidence,
            "evidence_id",
            description=description,
            reference=reference,
        )

    def note_self_harm(
        self, actor: Actor, case_id: str, *, student_id: str, note: str, expected_version: int | None = None
    ) -> str:
        """Signs of self-harm noted for a student of the case: a crisis signal. The case
        records the note and the crisis pathway opens on the student's support file (opened at
        高危 if there is none), in one save. Returns the note's id."""
        self.core.check(actor, access.CASE_WRITE, "case", case_id)
        case = self.core.load(case_id, BullyingCase)
        self.core.expect_version(case, expected_version)
        note_id = uuid4().hex
        at = self.now()
        case.note_self_harm(note_id=note_id, student_id=student_id, note=note, actor=actor.staff_id, at=at)
        self.core.crisis.authorize_signal(actor, student_id)
        f = self.core.crisis.signal(
            actor,
            student_id,
            trigger="bullying_case",
            source={"kind": "case", "id": case_id, "note_id": note_id},
            reason=f"欺凌案件中发现自伤迹象：{note.strip()}",
            origin="bullying_case",
            at=at,
        )
        self.core.commit(case, f)
        return note_id

    def start_investigation(
        self, actor: Actor, case_id: str, *, handler_id: str | None = None, expected_version: int | None = None
    ) -> None:
        """Start the investigation; the handler (default: the actor) is responsible for it. It
        is due the policy's investigation_days from today, unless the case was reported before
        the clock started at the investigation (its stored due date stands)."""
        at = self.now()
        with self._case(actor, case_id, expected_version) as c:
            handler = handler_id or actor.staff_id
            if handler_id:
                self._require_staff(c.school_id, handler)
            due = None if c.investigation_due is not None else self.policy.investigation_due(at.date())
            c.start_investigation(handler_id=handler, investigation_due=due, actor=actor.staff_id, at=at)

    def complete_investigation(
        self, actor: Actor, case_id: str, *, findings: str, expected_version: int | None = None
    ) -> None:
        """Complete the investigation with its findings."""
        with self._case(actor, case_id, expected_version) as c:
            c.complete_investigation(findings=findings, actor=actor.staff_id, at=self.now())

    # -- determination ---------------------------------------------------------------------------
    def determine(
        self,
        actor: Actor,
        case_id: str,
        *,
        bullying: bool,
        reason: str,
        severity: str | None = None,
        horseplay: bool = False,
        expected_version: int | None = None,
    ) -> str:
        """Record the committee's determination (认定), awaiting the principal's approval. Refused
        until the guardian of every targeted and bullying student has taken part (the refusal
        names the students)."""
        determination_id = uuid4().hex
        with self._case(actor, case_id, expected_version) as c:
            try:
                c.determine(
                    determination_id=determination_id,
                    bullying=bullying,
                    severity=severity,
                    horseplay=horseplay,
                    reason=reason,
                    actor=actor.staff_id,
                    at=self.now(),
                )
            except GuardianParticipationMissing as e:
                raise e.naming(self._names(e.details["student_ids"])) from None
        return determination_id

    # -- the guardians' part in the determination (未成年人保护法 art. 39) --------------------------
    def invite_guardian(
        self,
        actor: Actor,
        case_id: str,
        *,
        student_id: str,
        method: str,
        invited_at: datetime | None = None,
        reached: bool = True,
        note: str = "",
        expected_version: int | None = None,
    ) -> str:
        """One notice inviting the guardian of a targeted or bullying student to take part in
        the determination: how (phone, in person, written), when (default: now), and whether
        it reached them (an unanswered call is an attempt, with what happened)."""
        at = self.now()
        return self._add(
            actor,
            case_id,
            expected_version,
            BullyingCase.invite_guardian,
            "invitation_id",
            at,
            student_id=student_id,
            method=method,
            invited_at=invited_at or at,
            reached=reached,
            note=note,
        )

    def record_guardian_participation(
        self,
        actor: Actor,
        case_id: str,
        *,
        student_id: str,
        participation: str,
        note: str = "",
        expected_version: int | None = None,
    ) -> str:
        """How that guardian took part: attended, views in writing, declined, or unreachable
        after the policy's number of unanswered invitations."""
        return self._add(
            actor,
            case_id,
            expected_version,
            BullyingCase.record_guardian_participation,
            "participation_id",
            student_id=student_id,
            participation=participation,
            note=note,
            min_attempts=self.policy.guardian_contact_attempts,
        )

    # -- the governance body's meeting (未成年人学校保护规定 art. 23-24) --------------------------------
    def record_committee_meeting(
        self,
        actor: Actor,
        case_id: str,
        *,
        members_present: list[str],
        summary: str,
        decision: str,
        held_on: date | None = None,
        expected_version: int | None = None,
    ) -> str:
        """The school's 学生欺凌治理委员会 met to determine the case: the date (default: today),
        the members present (ids of the body's current members), the summary of views and the
        body's decision. The quorum is the policy's (`committee_quorum`) for the body as it is."""
        meeting_id = uuid4().hex
        with self._case(actor, case_id, expected_version) as c:
            active = self.core.committee.active_member_ids(c.school_id)
            if not active:
                raise NoGoverningBody()
            at = self.now()
            c.record_committee_meeting(
                meeting_id=meeting_id,
                held_on=held_on or at.date(),
                body_id=str(self.core.committee.body_id(c.school_id)),
                members_present=members_present,
                active_members=active,
                quorum=self.policy.committee_quorum_for(len(active)),
                summary=summary,
                decision=decision,
                actor=actor.staff_id,
                at=at,
            )
        return meeting_id

    def _names(self, student_ids: Iterable[str]) -> dict[str, str]:
        """The students' names, for a refusal that names them (inside an allowed command)."""
        return {sid: self.core.student_ref(sid).name for sid in student_ids}

    def approve_determination(
        self, actor: Actor, case_id: str, *, reason: str, expected_version: int | None = None
    ) -> None:
        """The principal approves the determination; follow-up and appeal windows start."""
        at = self.now()
        with self._case(actor, case_id, expected_version, access.CASE_APPROVE) as c:
            c.approve_determination(
                reason=reason,
                follow_up_due=self.policy.follow_up_due(at.date()),
                appeal_until=self.policy.appeal_until(at.date()),
                actor=actor.staff_id,
                at=at,
                authority_report_due=self.policy.authority_report_due(at),
            )

    def return_determination(
        self, actor: Actor, case_id: str, *, reason: str, expected_version: int | None = None
    ) -> None:
        """The principal returns the determination to the committee, with why."""
        with self._case(actor, case_id, expected_version, access.CASE_APPROVE) as c:
            c.return_determination(reason=reason, actor=actor.staff_id, at=self.now())

    def record_mandatory_report(
        self,
        actor: Actor,
        case_id: str,
        *,
        agency: str,
        reported_at: datetime,
        reference: str = "",
        note: str = "",
        expected_version: int | None = None,
    ) -> str:
        """强制报告: to which agency and when the case was reported."""
        return self._add(
            actor,
            case_id,
            expected_version,
            BullyingCase.record_mandatory_report,
            "report_id",
            agency=agency,
            reported_at=reported_at,
            reference=reference,
            note=note,
        )

    # -- interventions ---------------------------------------------------------------------------
    def plan_intervention(
        self,
        actor: Actor,
        case_id: str,
        *,
        student_id: str,
        kind: str,
        plan: str,
        responsible_staff_id: str,
        support_file_id: str | None = None,
        expected_version: int | None = None,
    ) -> str:
        """An intervention for one party, with its plan and the responsible staff member."""
        intervention_id = uuid4().hex
        with self._case(actor, case_id, expected_version) as c:
            self._require_staff(c.school_id, responsible_staff_id)
            if support_file_id:
                self._require_support_file(c.school_id, student_id, support_file_id)
            c.plan_intervention(
                intervention_id=intervention_id,
                student_id=student_id,
                kind=kind,
                plan=plan,
                responsible_staff_id=responsible_staff_id,
                support_file_id=support_file_id,
                actor=actor.staff_id,
                at=self.now(),
            )
        return intervention_id

    def record_intervention_progress(
        self, actor: Actor, case_id: str, intervention_id: str, *, note: str, expected_version: int | None = None
    ) -> None:
        with self._case(actor, case_id, expected_version) as c:
            c.record_intervention_progress(
                intervention_id=intervention_id, note=note, actor=actor.staff_id, at=self.now()
            )

    def complete_intervention(
        self, actor: Actor, case_id: str, intervention_id: str, *, outcome: str, expected_version: int | None = None
    ) -> None:
        with self._case(actor, case_id, expected_version) as c:
            c.complete_intervention(
                intervention_id=intervention_id, outcome=outcome, actor=actor.staff_id, at=self.now()
            )

    # -- appeal ----------------------------------------------------------------------------------
    def lodge_appeal(
        self,
        actor: Actor,
        case_id: str,
        *,
        party_id: str,
        grounds: str,
        lodged_on: date | None = None,
        expected_version: int | None = None,
    ) -> str:
        """Record a party's appeal (申诉) to the county anti-bullying office."""
        at = self.now()
        return self._add(
            actor,
            case_id,
            expected_version,
            BullyingCase.lodge_appeal,
            "appeal_id",
            at,
            party_id=party_id,
            grounds=grounds,
            lodged_on=lodged_on or at.date(),
        )

    def record_appeal_outcome(
        self,
        actor: Actor,
        case_id: str,
        appeal_id: str,
        *,
        outcome: str,
        reason: str,
        decided_on: date | None = None,
        bullying: bool | None = None,
        severity: str | None = None,
        horseplay: bool = False,
        expected_version: int | None = None,
    ) -> str | None:
        """Record the county office's review: upheld, changed (returns the new
        determination's id) or reopened for investigation."""
        at = self.now()
        new_id = uuid4().hex if outcome == "changed" else None
        with self._case(actor, case_id, expected_version) as c:
            c.record_appeal_outcome(
                appeal_id=appeal_id,
                outcome=outcome,
                reason=reason,
                decided_on=decided_on or at.date(),
                new_determination_id=new_id,
                bullying=bullying,
                severity=severity,
                horseplay=horseplay,
                follow_up_due=self.policy.follow_up_due(at.date()),
                investigation_due=self.policy.investigation_due(at.date()),
                actor=actor.staff_id,
                at=at,
                authority_report_due=self.policy.authority_report_due(at),
            )
        return new_id

    # -- follow-up, closure, reopening -----------------------------------------------------------
    def record_follow_up(
        self,
        actor: Actor,
        case_id: str,
        *,
        notes: str,
        held_on: date | None = None,
        expected_version: int | None = None,
    ) -> str:
        """A follow-up visit (回访); the next one falls due per policy."""
        at = self.now()
        held_on = held_on or at.date()
        return self._add(
            actor,
            case_id,
            expected_version,
            BullyingCase.record_follow_up,
            "follow_up_id",
            at,
            held_on=held_on,
            notes=notes,
            next_due=self.policy.follow_up_due(held_on),
        )

    def close_case(self, actor: Actor, case_id: str, *, reason: str, expected_version: int | None = None) -> None:
        """The principal closes the case (结案), if every duty is done; a refusal for missing
        interventions names each student (by name) and the type of intervention missing."""
        with self._case(actor, case_id, expected_version, access.CASE_APPROVE) as c:
            try:
                c.close(reason=reason, actor=actor.staff_id, at=self.now())
            except InterventionsRequired as e:
                raise e.naming(lambda sid: self.core.student_ref(sid).name) from None

    def reopen_case(self, actor: Actor, case_id: str, *, reason: str, expected_version: int | None = None) -> None:
        """Reopen a closed case when the bullying recurs; a new investigation must start by the
        policy's intake due date (its own due date comes when it starts)."""
        at = self.now()
        with self._case(actor, case_id, expected_version) as c:
            c.reopen(reason=reason, intake_due=self.policy.intake_due(at.date()), actor=actor.staff_id, at=at)

    # -- corrections -----------------------------------------------------------------------------
    def correct_statement(
        self,
        actor: Actor,
        case_id: str,
        statement_id: str,
        *,
        text: str,
        reason: str,
        expected_version: int | None = None,
    ) -> None:
        with self._case(actor, case_id, expected_version) as c:
            c.correct_statement(
                statement_id=statement_id, text=text, reason=reason, actor=actor.staff_id, at=self.now()
            )

    def correct_evidence(
        self,
        actor: Actor,
        case_id: str,
        evidence_id: str,
        *,
        reason: str,
        description: str | None = None,
        reference: str | None = None,
        expected_version: int | None = None,
    ) -> None:
        with self._case(actor, case_id, expected_version) as c:
            c.correct_evidence(
                evidence_id=evidence_id,
                description=description,
                reference=reference,
                reason=reason,
                actor=actor.staff_id,
                at=self.now(),
            )

    def correct_narrative(
        self, actor: Actor, case_id: str, *, narrative: str, reason: str, expected_version: int | None = None
    ) -> None:
        with self._case(actor, case_id, expected_version) as c:
            c.correct_narrative(narrative=narrative, reason=reason, actor=actor.staff_id, at=self.now())

    def correct_report(
        self, actor: Actor, case_id: str, *, reason: str, expected_version: int | None = None, **changes: Any
    ) -> None:
        """Correct the report's channel, occurred_at, place or forms."""
        with self._case(actor, case_id, expected_version) as c:
            c.correct_report(changes=changes, reason=reason, actor=actor.staff_id, at=self.now())

    def correct_follow_up(
        self,
        actor: Actor,
        case_id: str,
        follow_up_id: str,
        *,
        notes: str,
        reason: str,
        expected_version: int | None = None,
    ) -> None:
        with self._case(actor, case_id, expected_version) as c:
            c.correct_follow_up(
                follow_up_id=follow_up_id, notes=notes, reason=reason, actor=actor.staff_id, at=self.now()
            )

    # -- intake: clues (issue 17, A) -------------------------------------------------------------
    def dismiss_clue(
        self, actor: Actor, case_id: str, *, finding: str, reason: str, expected_version: int | None = None
    ) -> None:
        """The principal ends a clue that names no targeted student without a determination:
        查无欺凌 (not bullying) or not about students of this school, with what the inquiry found."""
        with self._case(actor, case_id, expected_version, access.CASE_APPROVE) as c:
            c.dismiss_clue(finding=finding, reason=reason, actor=actor.staff_id, at=self.now())

    # -- remedies (issue 17, part C): reports to the authorities, dispositions, county review ----
    def record_authority_report(
        self,
        actor: Actor,
        case_id: str,
        *,
        authority: str,
        unit: str,
        method: str,
        reported_at: datetime,
        receipt: str = "",
        note: str = "",
        expected_version: int | None = None,
    ) -> str:
        """A report to the police or the education bureau (未成年人保护法 art. 11, 39): the
        unit, how, when, any receipt number."""
        return self._add(
            actor,
            case_id,
            expected_version,
            BullyingCase.record_authority_report,
            "report_id",
            authority=authority,
            unit=unit,
            method=method,
            reported_at=reported_at,
            receipt=receipt,
            note=note,
        )

    def open_police_track(
        self, actor: Actor, case_id: str, *, kind: str, reason: str, expected_version: int | None = None
    ) -> None:
        """公安机关处理: the case goes to the police (违反治安管理 or 涉嫌犯罪), at any step before
        closure, once per cycle; the reports to the police and the education bureau fall due."""
        at = self.now()
        with self._case(actor, case_id, expected_version) as c:
            c.open_police_track(
                kind=kind,
                reason=reason,
                authority_report_due=self.policy.authority_report_due(at),
                actor=actor.staff_id,
                at=at,
            )

    def _student_label(self, student_id: str) -> str:
        """The student's name for a refusal that names them (inside a CASE_WRITE already decided)."""
        try:
            return self.core.student_ref(student_id).name
        except Exception:  # an id that names nobody: the refusal says so without a name
            return "该学生"

    def decide_disposition(
        self,
        actor: Actor,
        case_id: str,
        *,
        student_id: str,
        kind: str,
        decided_by: str,
        decided_on: date | None = None,
        level: str | None = None,
        measure: str | None = None,
        note: str = "",
        expected_version: int | None = None,
    ) -> str:
        """A disposition for a bullying student of an approved determination (批评教育, 道歉,
        赔偿, 教育惩戒, 纪律处分, 训诫, ...), with who decided and when. Returns its id."""
        disposition_id = uuid4().hex
        with self._case(actor, case_id, expected_version) as c:
            at = self.now()
            c.decide_disposition(
                disposition_id=disposition_id,
                student_id=student_id,
                kind=kind,
                level=level or None,
                measure=measure or None,
                decided_by=decided_by,
                decided_on=decided_on or at.date(),
                note=note,
                actor=actor.staff_id,
                at=at,
                student_label=self._student_label(student_id),
            )
        return disposition_id

    def apply_for_county_review(
        self,
        actor: Actor,
        case_id: str,
        *,
        party_id: str,
        county_body: str,
        grounds: str,
        applied_on: date | None = None,
        expected_version: int | None = None,
    ) -> str:
        """A party's application to the county body for a review (复查); due per policy."""
        review_id = uuid4().hex
        with self._case(actor, case_id, expected_version) as c:
            at = self.now()
            applied_on = applied_on or at.date()
            c.apply_for_county_review(
                review_id=review_id,
                party_id=party_id,
                county_body=county_body,
                applied_on=applied_on,
                due_on=self.policy.county_review_due(applied_on),
                grounds=grounds,
                actor=actor.staff_id,
                at=at,
                student_label=self._student_label(party_id),
            )
        return review_id

    def record_review_panel(
        self,
        actor: Actor,
        case_id: str,
        review_id: str,
        *,
        members: Iterable[Any],
        expected_version: int | None = None,
    ) -> None:
        """The county review's panel: (capacity, name) of each member."""
        with self._case(actor, case_id, expected_version) as c:
            c.record_review_panel(review_id=review_id, members=list(members), actor=actor.staff_id, at=self.now())

    def record_county_review_outcome(
        self,
        actor: Actor,
        case_id: str,
        review_id: str,
        *,
        outcome: str,
        reason: str,
        decided_on: date | None = None,
        bullying: bool | None = None,
        severity: str | None = None,
        horseplay: bool = False,
        expected_version: int | None = None,
    ) -> str | None:
        """The county's outcome: upheld, changed (returns the new determination's id) or sent
        back to the school's committee."""
        new_id = uuid4().hex if outcome == "changed" else None
        with self._case(actor, case_id, expected_version) as c:
            at = self.now()
            c.record_county_review_outcome(
                review_id=review_id,
                outcome=outcome,
                reason=reason,
                decided_on=decided_on or at.date(),
                new_determination_id=new_id,
                bullying=bullying,
                severity=severity,
                horseplay=horseplay,
                follow_up_due=self.policy.follow_up_due(at.date()),
                authority_report_due=self.policy.authority_report_due(at),
                actor=actor.staff_id,
                at=at,
            )
        return new_id
