"""Support files (心理健康档案 · 一人一策): opening one, changing it, reading it and the
school's register.

Every command passes the gate first: FILE_OPEN to open a file, FILE_WRITE (the
assigned counselor or the principal) to change one, FILE_READ to read one, FILE_LIST
for the school's register. A student has at most one open file.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from datetime import date
from typing import Any
from uuid import uuid4

from anxin.commands.base import (
    Commands,
    HistoryEntry,
    ResponsiblePersonInvalid,
    ResponsibleStaffInvalid,
    authorize_new_file,
    check_person,
    check_responsible,
    stream_history,
    student_resource,
)
from anxin.quarantine import Unreadable
from domain import access
from domain.common import Actor, DomainError, Erased, NotFound, Role, require
from domain.support import SupportFile, rank


class FileAlreadyOpen(DomainError):
    code = "support_file_already_open"
    message = "该学生已有一份未结案的心理档案，请在原档案中继续跟进"


class StudentNotActive(DomainError):
    code = "student_not_active"
    message = "该学生不在校（已离校或记录已删除）"


@dataclass(frozen=True)
class RegisterLine:
    """One line of a school's support-file register: ids, level, dates. No notes."""

    file_id: str
    student_id: str
    risk_level: str | None
    category: str | None
    status: str
    responsible_id: str | None
    next_review_due: date | None
    review_overdue: bool = False
    erased: bool = False


@dataclass(frozen=True)
class FileStatus:
    """A support file's status, for those who may know no more (FILE_STATUS): the teacher who
    escalated the concern, the class teacher while a crisis is open. That the file exists, its
    number, who is responsible, the next step and its date, whether a crisis is open (yes or
    no: never its trigger, its steps or any note), and whether it is open or closed. No risk
    level, no category, no plan, no entries."""

    file_id: str
    student_id: str
    status: str
    responsible_id: str
    next_step: str | None
    next_step_due: date | None
    crisis_open: bool


@dataclass(frozen=True)
class FilePlan:
    """What a file's one-to-one responsible person (一对一包联人) sees of it (FILE_PLAN): the
    student, who is responsible, the plan (goals, measures), their own task (the plan's next
    review, before which they follow the student and the family up) and the guardian contacts
    (家校联系). Never the counselling sessions, the crisis records, the reviews' notes, the risk
    history's reasons or any screening; those stay with the counselors (FILE_READ)."""

    file_id: str
    version: int
    student_id: str
    status: str
    responsible_id: str
    person_id: str | None
    plan: dict[str, Any] | None
    next_review_due: date | None
    review_overdue: bool
    guardian_contacts: list[dict[str, Any]]


# The events of the part of a file its one-to-one responsible person sees (FILE_PLAN).
PLAN_EVENTS = frozenset(
    {"Opened", "PlanDrawnUp", "PlanRevised", "GuardianContacted", "ResponsiblePersonAssigned", "Closed", "Reopened"}
)

# Of those, the ones whose reason is about the plan; an opening's or a closure's reason speaks
# of the student's difficulty, which stays with the counselors.
PLAN_REASONS_SHOWN = frozenset({"PlanDrawnUp", "PlanRevised", "ResponsiblePersonAssigned"})


class SupportCommands(Commands):
    """Open, change, close and reopen support files; read one, the register, a caseload."""

    # -- opening a file ---------------------------------------------------------------
    def open_support_file(
        self,
        actor: Actor,
        student_id: str,
        *,
        category: str,
        risk_level: str,
        reason: str,
        responsible_id: str | None = None,
        origin: str = "judgement",
        source: dict[str, Any] | None = None,
    ) -> str:
        """Open a student's support file (one open file per student)."""
        authorize_new_file(self.core, actor, student_resource(self.core, student_id))
        f = self._build_support_file(
            actor,
            student_id,
            category=category,
            risk_level=risk_level,
            reason=reason,
            responsible_id=responsible_id,
            origin=origin,
            source=source,
        )
        self.core.commit(f)
        return str(f.id)

    def _build_support_file(
        self,
        actor: Actor,
        student_id: str,
        *,
        category: str,
        risk_level: str,
        reason: str,
        responsible_id: str | None = None,
        origin: str = "judgement",
        source: dict[str, Any] | None = None,
    ) -> SupportFile:
        """The unsaved file (the caller has passed the gate), so another command can
        save it atomically with its own stream (e.g. an escalated check-in)."""
        row = self.db.fetchone(
            "SELECT school_id, status, erased FROM {t}anxin_directory WHERE stream_id = ? AND kind = 'student'",
            (student_id,),
        )
        if row is None:
            raise NotFound()
        school_id, status, erased = row
        if status != "active" or erased:
            raise StudentNotActive()
        if self._open_file_of(student_id) is not None:
            raise FileAlreadyOpen()
        if responsible_id is None:
            responsible_id = actor.staff_id if actor.roles & {Role.COUNSELOR, Role.PRINCIPAL} else ""
        require(bool(responsible_id), "请指定一对一负责人（本校心理老师）")
        check_responsible(self.core, school_id, responsible_id)
        return SupportFile.open(
            id=uuid4(),
            school_id=school_id,
            student_id=student_id,
            category=category,
            risk_level=risk_level,
            reason=reason,
            responsible_id=responsible_id,
            origin=origin,
            source=source,
            policy=self.policy,
            actor=actor.staff_id,
            at=self.now(),
        )

    def _open_file_of(self, student_id: str) -> str | None:
        row = self.db.fetchone(
            "SELECT stream_id FROM {t}anxin_directory WHERE kind = 'file' AND subject_id = ? AND status = 'open' "
            "AND erased = 0",
            (student_id,),
        )
        return row[0] if row else None

    # -- changing a file (assigned counselor or principal) --------------------------------
    def _write(self, actor: Actor, file_id: str, expected_version: int | None) -> AbstractContextManager[SupportFile]:
        return self.core.editing(file_id, SupportFile, expected_version, check=(actor, access.FILE_WRITE, "file"))

    def _add(
        self, actor: Actor, file_id: str, expected_version: int | None, record: Callable[..., Any], **fields: Any
    ) -> str:
        """A new entry of the file (FILE_WRITE), recorded by the file's method `record`: its id."""
        return self._entry(self._write(actor, file_id, expected_version), record, "entry_id", actor, **fields)

    def raise_risk_level(
        self, actor: Actor, file_id: str, to_level: str, reason: str, expected_version: int | None = None
    ) -> None:
        """Raise a file's risk level, with a reason."""
        with self._write(actor, file_id, expected_version) as f:
            f.raise_risk_level(
                to_level=to_level, reason=reason, policy=self.policy, actor=actor.staff_id, at=self.now()
            )

    def lower_risk_level(
        self, actor: Actor, file_id: str, to_level: str, reason: str, expected_version: int | None = None
    ) -> None:
        """Lower a file's risk level, with a reason."""
        with self._write(actor, file_id, expected_version) as f:
            f.lower_risk_level(
                to_level=to_level, reason=reason, policy=self.policy, actor=actor.staff_id, at=self.now()
            )

    def change_file_category(
        self, actor: Actor, file_id: str, category: str, reason: str, expected_version: int | None = None
    ) -> None:
        with self._write(actor, file_id, expected_version) as f:
            f.change_category(category=category, reason=reason, actor=actor.staff_id, at=self.now())

    def reassign_support_file(
        self, actor: Actor, file_id: str, responsible_id: str, reason: str, expected_version: int | None = None
    ) -> None:
        """Hand the one-to-one responsibility to another counselor of the school."""
        with self._write(actor, file_id, expected_version) as f:
            check_responsible(self.core, f.school_id, responsible_id)
            f.reassign(responsible_id=responsible_id, reason=reason, actor=actor.staff_id, at=self.now())

    def assign_responsible_person(
        self, actor: Actor, file_id: str, staff_id: str, reason: str, expected_version: int | None = None
    ) -> None:
        """Name the one-to-one responsible person (一对一包联人): any staff member of the school.
        The responsible counselor keeps the file and its notes; the person sees the plan, their
        tasks and the guardian contacts (FILE_PLAN). By the responsible counselor or the
        principal (FILE_WRITE)."""
        with self._write(actor, file_id, expected_version) as f:
            check_person(self.core, f.school_id, staff_id)
            f.assign_person(person_id=staff_id, reason=reason, actor=actor.staff_id, at=self.now())

    def draw_up_plan(
        self,
        actor: Actor,
        file_id: str,
        *,
        goals: list[str],
        measures: list[dict[str, str]],
        expected_version: int | None = None,
    ) -> None:
        """The personal plan (一人一策): goals, and measures each with who carries it out."""
        with self._write(actor, file_id, expected_version) as f:
            f.draw_up_plan(goals=goals, measures=measures, actor=actor.staff_id, at=self.now())

    def revise_plan(
        self,
        actor: Actor,
        file_id: str,
        *,
        goals: list[str],
        measures: list[dict[str, str]],
        reason: str,
        expected_version: int | None = None,
    ) -> None:
        with self._write(actor, file_id, expected_version) as f:
            f.revise_plan(goals=goals, measures=measures, reason=reason, actor=actor.staff_id, at=self.now())

    def record_session(
        self,
        actor: Actor,
        file_id: str,
        *,
        held_on: date,
        summary: str,
        duration_minutes: int | None = None,
        next_steps: str = "",
        expected_version: int | None = None,
    ) -> str:
        """Record a counselling session; returns the entry id."""
        return self._add(
            actor,
            file_id,
            expected_version,
            SupportFile.record_session,
            held_on=held_on,
            summary=summary,
            duration_minutes=duration_minutes,
            next_steps=next_steps,
        )

    def record_guardian_contact(
        self,
        actor: Actor,
        file_id: str,
        *,
        contacted_on: date,
        guardian: str,
        method: str,
        summary: str,
        expected_version: int | None = None,
    ) -> str:
        """Record a contact with a guardian (家校联系); returns the entry id."""
        return self._add(
            actor,
            file_id,
            expected_version,
            SupportFile.record_guardian_contact,
            contacted_on=contacted_on,
            guardian=guardian,
            method=method,
            summary=summary,
        )

    def record_referral(
        self,
        actor: Actor,
        file_id: str,
        *,
        referred_on: date,
        to: str,
        reason: str,
        expected_version: int | None = None,
    ) -> str:
        """Record a referral (转介); returns the entry id."""
        return self._add(
            actor, file_id, expected_version, SupportFile.record_referral, referred_on=referred_on, to=to, reason=reason
        )

    def send_referral(
        self,
        actor: Actor,
        file_id: str,
        *,
        agency_id: str,
        reason: str,
        referred_on: date | None = None,
        expected_version: int | None = None,
    ) -> str:
        """Refer the student to an agency of the district's registry (转介); its feedback (回执)
        falls due `referral_feedback_days` later. Returns the referral's entry id."""

        def record(f: SupportFile, **fields: Any) -> None:
            found = self.core.agencies.pick(f.school_id, agency_id)  # (after the gate: in the editing)
            f.send_referral(
                **fields, agency={"id": found.id, "kind": found.kind, "name": found.name}, policy=self.policy
            )

        return self._entry(
            self._write(actor, file_id, expected_version),
            record,
            "entry_id",
            actor,
            referred_on=referred_on or self.now().date(),
            reason=reason,
        )

    def accept_referral(
        self,
        actor: Actor,
        file_id: str,
        entry_id: str,
        *,
        accepted_on: date | None = None,
        note: str = "",
        expected_version: int | None = None,
    ) -> None:
        """The agency has accepted the referral (sent → accepted)."""
        with self._write(actor, file_id, expected_version) as f:
            f.accept_referral(
                entry_id=entry_id,
                accepted_on=accepted_on or self.now().date(),
                note=note,
                actor=actor.staff_id,
                at=self.now(),
            )

    def receive_referral_feedback(
        self,
        actor: Actor,
        file_id: str,
        entry_id: str,
        *,
        summary: str,
        received_on: date | None = None,
        expected_version: int | None = None,
    ) -> None:
        """The agency's feedback (回执) received (accepted → feedback received)."""
        with self._write(actor, file_id, expected_version) as f:
            f.receive_referral_feedback(
                entry_id=entry_id,
                received_on=received_on or self.now().date(),
                summary=summary,
                actor=actor.staff_id,
                at=self.now(),
            )

    def close_referral(
        self, actor: Actor, file_id: str, entry_id: str, *, reason: str, expected_version: int | None = None
    ) -> None:
        """The referral is over (after the feedback, or declined, or withdrawn), with a reason."""
        with self._write(actor, file_id, expected_version) as f:
            f.close_referral(entry_id=entry_id, reason=reason, actor=actor.staff_id, at=self.now())

    def record_crisis_intervention(
        self,
        actor: Actor,
        file_id: str,
        *,
        occurred_on: date,
        what_happened: str,
        actions_taken: str,
        expected_version: int | None = None,
    ) -> str:
        """Record a crisis intervention (危机干预); the file goes to 高危 in the same save."""
        return self._add(
            actor,
            file_id,
            expected_version,
            SupportFile.record_crisis_intervention,
            occurred_on=occurred_on,
            what_happened=what_happened,
            actions_taken=actions_taken,
            policy=self.policy,
        )

    def record_review(
        self,
        actor: Actor,
        file_id: str,
        *,
        reviewed_on: date,
        notes: str,
        outcome: str,
        next_review_due: date | None = None,
        expected_version: int | None = None,
    ) -> str:
        """Record a scheduled plan review (once the file has a plan); the next review is the
        day chosen within the policy's bounds for the risk level, else the policy's day."""
        return self._add(
            actor,
            file_id,
            expected_version,
            SupportFile.record_review,
            reviewed_on=reviewed_on,
            notes=notes,
            outcome=outcome,
            next_review_due=next_review_due,
            policy=self.policy,
        )

    def correct_file_entry(
        self,
        actor: Actor,
        file_id: str,
        entry_id: str,
        *,
        changes: dict[str, Any],
        reason: str,
        expected_version: int | None = None,
    ) -> None:
        """Correct a recorded entry with a new event naming it; nothing is edited in place."""
        with self._write(actor, file_id, expected_version) as f:
            f.correct_entry(entry_id=entry_id, changes=changes, reason=reason, actor=actor.staff_id, at=self.now())

    def close_support_file(self, actor: Actor, file_id: str, reason: str, expected_version: int | None = None) -> None:
        """Close the file once the risk is resolved."""
        with self._write(actor, file_id, expected_version) as f:
            f.close(reason=reason, actor=actor.staff_id, at=self.now())

    def reopen_support_file(self, actor: Actor, file_id: str, reason: str, expected_version: int | None = None) -> None:
        """Reopen a closed file (refused while the student has another open file)."""
        with self._write(actor, file_id, expected_version) as f:
            if self._open_file_of(f.student_id) is not None:
                raise FileAlreadyOpen()
            f.reopen(reason=reason, policy=self.policy, actor=actor.staff_id, at=self.now())

    # -- the gate's table of staff with a part on a file ------------------------------------------
    BACKFILLED = ("", "backfilled", "")  # (stream_id, part, staff_id): the marker row

    def backfill_stream_staff(self) -> int:
        """Files saved before `anxin_stream_staff` existed have no rows there (who escalated,
        whether a crisis is open), and their next save would not write them (the scope is
        compared as loaded). Once per store, when a process opens it: each file read, its
        rows written, with a marker row so it is done once. How many rows were written."""
        if self.db.fetchone("SELECT 1 FROM {t}anxin_stream_staff WHERE stream_id = '' AND part = 'backfilled'"):
            return 0
        rows: list[tuple[str, str, str]] = []
        for (sid,) in self.db.fetch("SELECT stream_id FROM {t}anxin_directory WHERE kind = 'file' AND erased = 0"):
            try:
                f = self.core.load(sid, SupportFile)
            except (Erased, Unreadable, NotFound):
                continue
            rows += [(str(sid), part, staff) for part, staff in f.scope().staff]
        with self.db.transaction() as c:
            c.executemany(
                self.db.q(
                    "INSERT INTO {t}anxin_stream_staff (stream_id, part, staff_id) VALUES (?, ?, ?) "
                    "ON CONFLICT DO NOTHING"
                ),
                [*rows, self.BACKFILLED],
            )
        return len(rows)

    # -- reading ----------------------------------------------------------------------
    def get_support_file(self, actor: Actor, file_id: str, break_glass: str | None = None) -> SupportFile:
        """A whole file: the assigned counselor, the principal, or a supervisor with a reason."""
        self.core.check(actor, access.FILE_READ, "file", file_id, break_glass=break_glass)
        return self.core.load(file_id, SupportFile)

    def file_dossier(
        self, actor: Actor, file_id: str, break_glass: str | None = None
    ) -> tuple[SupportFile | None, FilePlan | None, list[HistoryEntry]]:
        """What a printed case file (案卷) of a support file holds for this person, by the file
        page's rule: the whole file and its whole history (FILE_READ); for its one-to-one
        responsible person (FILE_PLAN) the plan part and the history of that part only (the
        plan, the person, the guardian contacts); anyone else is refused (the FILE_READ
        denial recorded). One recorded decision."""
        resource = self.core.resource("file", file_id)
        if not access.decide(actor, access.FILE_READ, resource, break_glass).allowed and (
            access.decide(actor, access.FILE_PLAN, resource).allowed
        ):
            plan = self.get_file_plan(actor, file_id)
            history = [
                h if h.type in PLAN_REASONS_SHOWN else replace(h, reason="")
                for h in stream_history(self.core, file_id, PLAN_EVENTS)
            ]
            return None, plan, history
        return self.get_support_file(actor, file_id, break_glass), None, stream_history(self.core, file_id)

    def get_file_plan(self, actor: Actor, file_id: str) -> FilePlan:
        """The plan part of a file (FILE_PLAN): see `FilePlan`."""
        self.core.check(actor, access.FILE_PLAN, "file", file_id)
        f = self.core.load(file_id, SupportFile)
        return FilePlan(
            file_id=str(f.id),
            version=f.version,
            student_id=f.student_id,
            status=f.status,
            responsible_id=f.responsible_id,
            person_id=f.person_id,
            plan=f.plan,
            next_review_due=f.next_review_due,
            review_overdue=f.review_overdue(self.now().date()),
            guardian_contacts=f.guardian_contacts,
        )

    def get_file_status(self, actor: Actor, file_id: str) -> FileStatus:
        """A file's status only (FILE_STATUS): see `FileStatus`."""
        self.core.check(actor, access.FILE_STATUS, "file", file_id)
        f = self.core.load(file_id, SupportFile)
        step, due = f.next_step()
        return FileStatus(
            file_id=str(f.id),
            student_id=f.student_id,
            status=f.status,
            responsible_id=f.responsible_id,
            next_step=step,
            next_step_due=due,
            crisis_open=f.crisis is not None and f.is_open,
        )

    def support_register(self, actor: Actor, school_id: str, *, include_closed: bool = True) -> list[RegisterLine]:
        """The school's register of files: level, category, responsible, next review. No notes."""
        self.core.check(actor, access.FILE_LIST, "file", school_id=school_id)
        sql = "SELECT stream_id FROM {t}anxin_directory WHERE school_id = ? AND kind = 'file'"
        if not include_closed:
            sql += " AND status = 'open'"
        return self._register_lines(r[0] for r in self.db.fetch(sql, (school_id,)))

    def my_support_files(self, actor: Actor) -> list[RegisterLine]:
        """The open files the actor is responsible for (their caseload)."""
        ids = [
            r[0]
            for r in self.db.fetch(
                "SELECT stream_id FROM {t}anxin_directory WHERE kind = 'file' AND owner_id = ? AND status = 'open'",
                (actor.staff_id,),
            )
        ]
        for i in ids:
            self.core.check(actor, access.FILE_READ, "file", i)
        return self._register_lines(ids)

    def _register_lines(self, ids: Iterable[str]) -> list[RegisterLine]:
        today = self.now().date()
        lines = []
        for i in ids:
            try:
                f = self.core.load(i, SupportFile)
            except Erased:
                row = self.db.fetchone(
                    "SELECT subject_id, status, owner_id FROM {t}anxin_directory WHERE stream_id = ?", (i,)
                )
                assert row is not None
                lines.append(RegisterLine(i, row[0], None, None, "erased", row[2], None, erased=True))
                continue
            except Unreadable:  # quarantined: the line shows ids only
                row = self.db.fetchone(
                    "SELECT subject_id, status, owner_id FROM {t}anxin_directory WHERE stream_id = ?", (i,)
                )
                lines.append(
                    RegisterLine(i, row[0] if row else "", None, None, "unreadable", row[2] if row else None, None)
                )
                continue
            lines.append(
                RegisterLine(
                    file_id=i,
                    student_id=f.student_id,
                    risk_level=f.risk_level,
                    category=f.category,
                    status=f.status,
                    responsible_id=f.responsible_id,
                    next_review_due=f.next_review_due,
                    review_overdue=f.review_overdue(today),
                )
            )
        return sorted(
            lines,
            key=lambda x: (
                x.status != "open",
                -rank(x.risk_level) if x.risk_level else 0,
                x.next_review_due or date.max,
                x.file_id,
            ),
        )


__all__ = [
    "SupportCommands",
    "FilePlan",
    "FileStatus",
    "RegisterLine",
    "ResponsiblePersonInvalid",
    "FileAlreadyOpen",
    "ResponsibleStaffInvalid",
    "StudentNotActive",
]
