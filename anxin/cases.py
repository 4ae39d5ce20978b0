"""Bullying-case commands and reads (校园欺凌案件), each through the gate first.

Who may do what is decided by `domain.access` only: any staff member of the school
may report (CASE_REPORT); the safety lead and the principal run the case (CASE_WRITE);
the principal approves determinations and closes (CASE_APPROVE); a class teacher sees
a status line of the cases involving their class (CASE_STATUS); full content needs
CASE_READ (a supervisor only with a break-glass reason). Deadlines come from the policy.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

from anxin.app import Core
from domain import access
from domain.access import Resource, decide
from domain.bullying import BullyingCase, UnknownStaff, UnknownStudent, UnknownSupportFile
from domain.common import Actor, Role


class BullyingCommands(Core):
    """Report, investigate, determine, intervene, appeal, follow up, close, reopen."""

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
    ) -> str:
        """Report suspected bullying (线索/举报); any staff member of the school may."""
        self.check(actor, access.CASE_REPORT, "case", school_id=school_id)
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
        )
        self._save(case)
        return str(case.id)

    def _build_bullying_case(
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
    ) -> BullyingCase:
        """The unsaved case, for a caller that has already passed the gate."""
        at = self.now()
        case = BullyingCase.report(
            id=uuid4(),
            school_id=school_id,
            channel=channel,
            occurred_at=occurred_at,
            place=place,
            forms=forms,
            parties=parties,
            narrative=narrative,
            reporter_note=reporter_note,
            source=source,
            investigation_due=self.policy.investigation_due(at.date()),
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
        with self._editing(case_id, BullyingCase, expected_version, check=(actor, access.CASE_WRITE, "case")) as c:
            self._require_students(c.school_id, [student_id])
            c.add_party(student_id=student_id, part=part, reason=reason, actor=actor.staff_id, at=self.now())

    def remove_party(
        self, actor: Actor, case_id: str, *, student_id: str, reason: str, expected_version: int | None = None
    ) -> None:
        """Remove a student wrongly named, with why."""
        with self._editing(case_id, BullyingCase, expected_version, check=(actor, access.CASE_WRITE, "case")) as c:
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
        measure_id = uuid4().hex
        with self._editing(case_id, BullyingCase, expected_version, check=(actor, access.CASE_WRITE, "case")) as c:
            c.take_safety_measure(
                measure_id=measure_id,
                kind=kind,
                student_ids=student_ids,
                note=note,
                method=method,
                notified_at=notified_at,
                actor=actor.staff_id,
                at=self.now(),
            )
        return measure_id

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
        statement_id = uuid4().hex
        at = self.now()
        with self._editing(case_id, BullyingCase, expected_version, check=(actor, access.CASE_WRITE, "case")) as c:
            c.record_statement(
                statement_id=statement_id,
                text=text,
                from_student_id=from_student_id,
                from_person=from_person,
                taken_on=taken_on or at.date(),
                actor=actor.staff_id,
                at=at,
            )
        return statement_id

    def add_evidence(
        self, actor: Actor, case_id: str, *, description: str, reference: str = "", expected_version: int | None = None
    ) -> str:
        """An evidence note: what it is and where it is kept."""
        evidence_id = uuid4().hex
        with self._editing(case_id, BullyingCase, expected_version, check=(actor, access.CASE_WRITE, "case")) as c:
            c.add_evidence(
                evidence_id=evidence_id,
                description=description,
                reference=reference,
                actor=actor.staff_id,
                at=self.now(),
            )
        return evidence_id

    def start_investigation(
        self, actor: Actor, case_id: str, *, handler_id: str | None = None, expected_version: int | None = None
    ) -> None:
        """Start the investigation; the handler (default: the actor) is responsible for it."""
        with self._editing(case_id, BullyingCase, expected_version, check=(actor, access.CASE_WRITE, "case")) as c:
            handler = handler_id or actor.staff_id
            if handler_id:
                self._require_staff(c.school_id, handler)
            c.start_investigation(handler_id=handler, actor=actor.staff_id, at=self.now())

    def complete_investigation(
        self, actor: Actor, case_id: str, *, findings: str, expected_version: int | None = None
    ) -> None:
        """Complete the investigation with its findings."""
        with self._editing(case_id, BullyingCase, expected_version, check=(actor, access.CASE_WRITE, "case")) as c:
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
        """Record the committee's determination (认定), awaiting the principal's approval."""
        determination_id = uuid4().hex
        with self._editing(case_id, BullyingCase, expected_version, check=(actor, access.CASE_WRITE, "case")) as c:
            c.determine(
                determination_id=determination_id,
                bullying=bullying,
                severity=severity,
                horseplay=horseplay,
                reason=reason,
                actor=actor.staff_id,
                at=self.now(),
            )
        return determination_id

    def approve_determination(
        self, actor: Actor, case_id: str, *, reason: str, expected_version: int | None = None
    ) -> None:
        """The principal approves the determination; follow-up and appeal windows start."""
        at = self.now()
        with self._editing(case_id, BullyingCase, expected_version, check=(actor, access.CASE_APPROVE, "case")) as c:
            c.approve_determination(
                reason=reason,
                follow_up_due=self._follow_up_due(at.date()),
                appeal_until=at.date() + timedelta(days=self.policy.appeal_days),
                actor=actor.staff_id,
                at=at,
            )

    def return_determination(
        self, actor: Actor, case_id: str, *, reason: str, expected_version: int | None = None
    ) -> None:
        """The principal returns the determination to the committee, with why."""
        with self._editing(case_id, BullyingCase, expected_version, check=(actor, access.CASE_APPROVE, "case")) as c:
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
        report_id = uuid4().hex
        with self._editing(case_id, BullyingCase, expected_version, check=(actor, access.CASE_WRITE, "case")) as c:
            c.record_mandatory_report(
                report_id=report_id,
                agency=agency,
                reported_at=reported_at,
                reference=reference,
                note=note,
                actor=actor.staff_id,
                at=self.now(),
            )
        return report_id

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
        with self._editing(case_id, BullyingCase, expected_version, check=(actor, access.CASE_WRITE, "case")) as c:
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
        with self._editing(case_id, BullyingCase, expected_version, check=(actor, access.CASE_WRITE, "case")) as c:
            c.record_intervention_progress(
                intervention_id=intervention_id, note=note, actor=actor.staff_id, at=self.now()
            )

    def complete_intervention(
        self, actor: Actor, case_id: str, intervention_id: str, *, outcome: str, expected_version: int | None = None
    ) -> None:
        with self._editing(case_id, BullyingCase, expected_version, check=(actor, access.CASE_WRITE, "case")) as c:
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
        appeal_id = uuid4().hex
        at = self.now()
        with self._editing(case_id, BullyingCase, expected_version, check=(actor, access.CASE_WRITE, "case")) as c:
            c.lodge_appeal(
                appeal_id=appeal_id,
                party_id=party_id,
                grounds=grounds,
                lodged_on=lodged_on or at.date(),
                actor=actor.staff_id,
                at=at,
            )
        return appeal_id

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
        with self._editing(case_id, BullyingCase, expected_version, check=(actor, access.CASE_WRITE, "case")) as c:
            c.record_appeal_outcome(
                appeal_id=appeal_id,
                outcome=outcome,
                reason=reason,
                decided_on=decided_on or at.date(),
                new_determination_id=new_id,
                bullying=bullying,
                severity=severity,
                horseplay=horseplay,
                follow_up_due=self._follow_up_due(at.date()),
                investigation_due=self.policy.investigation_due(at.date()),
                actor=actor.staff_id,
                at=at,
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
        follow_up_id = uuid4().hex
        at = self.now()
        held_on = held_on or at.date()
        with self._editing(case_id, BullyingCase, expected_version, check=(actor, access.CASE_WRITE, "case")) as c:
            c.record_follow_up(
                follow_up_id=follow_up_id,
                held_on=held_on,
                notes=notes,
                next_due=self._follow_up_due(held_on),
                actor=actor.staff_id,
                at=at,
            )
        return follow_up_id

    def close_case(self, actor: Actor, case_id: str, *, reason: str, expected_version: int | None = None) -> None:
        """The principal closes the case (结案), if every duty is done."""
        with self._editing(case_id, BullyingCase, expected_version, check=(actor, access.CASE_APPROVE, "case")) as c:
            c.close(reason=reason, actor=actor.staff_id, at=self.now())

    def reopen_case(self, actor: Actor, case_id: str, *, reason: str, expected_version: int | None = None) -> None:
        """Reopen a closed case when the bullying recurs; a new investigation falls due."""
        at = self.now()
        with self._editing(case_id, BullyingCase, expected_version, check=(actor, access.CASE_WRITE, "case")) as c:
            c.reopen(
                reason=reason, investigation_due=self.policy.investigation_due(at.date()), actor=actor.staff_id, at=at
            )

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
        with self._editing(case_id, BullyingCase, expected_version, check=(actor, access.CASE_WRITE, "case")) as c:
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
        with self._editing(case_id, BullyingCase, expected_version, check=(actor, access.CASE_WRITE, "case")) as c:
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
        with self._editing(case_id, BullyingCase, expected_version, check=(actor, access.CASE_WRITE, "case")) as c:
            c.correct_narrative(narrative=narrative, reason=reason, actor=actor.staff_id, at=self.now())

    def correct_report(
        self, actor: Actor, case_id: str, *, reason: str, expected_version: int | None = None, **changes: Any
    ) -> None:
        """Correct the report's channel, occurred_at, place or forms."""
        with self._editing(case_id, BullyingCase, expected_version, check=(actor, access.CASE_WRITE, "case")) as c:
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
        with self._editing(case_id, BullyingCase, expected_version, check=(actor, access.CASE_WRITE, "case")) as c:
            c.correct_follow_up(
                follow_up_id=follow_up_id, notes=notes, reason=reason, actor=actor.staff_id, at=self.now()
            )

    # -- reads -----------------------------------------------------------------------------------
    def get_case(self, actor: Actor, case_id: str, break_glass: str | None = None) -> BullyingCase:
        """The whole case, for those who may read its content."""
        self.check(actor, access.CASE_READ, "case", case_id, break_glass=break_glass)
        return self._load(case_id, BullyingCase)

    def read_case(
        self, actor: Actor, case_id: str, break_glass: str | None = None
    ) -> tuple[BullyingCase | None, dict[str, Any] | None]:
        """What this person may see of a case: (the whole case, None) for those who may
        read it; (None, the status line) for a class teacher of a party's class; else the
        gate refuses (the CASE_READ denial is recorded). One recorded decision."""
        resource = self.resource("case", case_id)
        if (
            not decide(actor, access.CASE_READ, resource, break_glass).allowed
            and decide(actor, access.CASE_STATUS, resource).allowed
        ):
            return None, self.case_status(actor, case_id)
        return self.get_case(actor, case_id, break_glass), None

    def case_parties(self, actor: Actor, case_id: str, break_glass: str | None = None) -> list[dict[str, Any]]:
        """The parties with their names resolved now (已删除 once a student is erased)."""
        case = self.get_case(actor, case_id, break_glass)
        out = []
        for sid, part in case.links:
            ref = self.student_ref(sid)
            out.append(
                {"student_id": sid, "part": part, "name": ref.name, "class_name": ref.class_name, "erased": ref.erased}
            )
        return out

    def case_status(self, actor: Actor, case_id: str) -> dict[str, Any]:
        """A status line (no names, no narrative): what a class teacher may see."""
        self.check(actor, access.CASE_STATUS, "case", case_id)
        case = self._load(case_id, BullyingCase)
        return {
            "status": case.status,
            "severity": case.severity,
            "opened": case.opened_on,
            "overdue": case.is_overdue(self.now().date()),
        }

    def cases_of_school(self, actor: Actor, school_id: str) -> list[dict[str, str]]:
        """The school's cases as id + status lines: all of them for those with a school-wide
        right; for a class teacher, only the cases involving a student of their class."""
        school = self.resource("case", school_id=school_id)
        rows = self.db.fetch(
            "SELECT d.stream_id, d.status, d.erased, s.class_name FROM {t}anxin_directory d "
            "LEFT JOIN {t}anxin_links l ON l.stream_id = d.stream_id "
            "LEFT JOIN {t}anxin_directory s ON s.stream_id = l.student_id "
            "WHERE d.kind = 'case' AND d.school_id = ? ORDER BY d.stream_id",
            (school_id,),
        )
        cases: dict[str, tuple[str, set[str]]] = {}
        for stream_id, status, erased, class_name in rows:
            _, classes = cases.setdefault(stream_id, ("erased" if erased else status, set()))
            if class_name:
                classes.add(class_name)
        if decide(actor, access.CASE_STATUS, school).allowed or not (
            actor.has(Role.CLASS_TEACHER) and actor.school_id == school_id
        ):
            self.authorize(actor, access.CASE_STATUS, school)  # records; raises for anyone else
            return [{"case_id": cid, "status": status} for cid, (status, _) in cases.items()]
        out = []
        for cid, (status, classes) in cases.items():
            if classes & actor.classes:
                self.authorize(
                    actor,
                    access.CASE_STATUS,
                    Resource(
                        kind="case",
                        id=cid,
                        school_id=school_id,
                        classes=frozenset(classes),
                        district=school.district,
                    ),
                )
                out.append({"case_id": cid, "status": status})
        return out

    # -- helpers ---------------------------------------------------------------------------------
    def _follow_up_due(self, since: date) -> date:
        return since + timedelta(days=self.policy.follow_up_days)

    def _require_students(self, school_id: str, student_ids: list[str]) -> None:
        for sid in student_ids:
            try:
                UUID(sid)
            except ValueError as e:
                raise UnknownStudent() from e
            row = self.db.fetchone(
                "SELECT school_id, erased FROM {t}anxin_directory WHERE stream_id = ? AND kind = 'student'", (sid,)
            )
            if row is None or row[0] != school_id or row[1]:
                raise UnknownStudent()

    def _require_staff(self, school_id: str, staff_id: str) -> None:
        staff = self.accounts.staff(staff_id)
        if staff is None or staff.school_id != school_id or not staff.active:
            raise UnknownStaff()

    def _require_support_file(self, school_id: str, student_id: str, file_id: str) -> None:
        row = self.db.fetchone(
            "SELECT school_id, subject_id FROM {t}anxin_directory WHERE stream_id = ? AND kind = 'file'", (file_id,)
        )
        if row is None or row[0] != school_id or row[1] != student_id:
            raise UnknownSupportFile()
