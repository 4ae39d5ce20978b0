"""The reads of a bullying case, each through the gate (CASE_READ for the content,
CASE_STATUS for a class teacher's status line), and what the case commands check of the
students, staff and support files a case names. The base of `CaseCommands` (one area,
`Anxin.cases`, in two modules)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from anxin.commands.base import Commands, HistoryEntry, stream_history
from domain import access
from domain.access import Resource, decide
from domain.bullying import BullyingCase, UnknownStaff, UnknownStudent, UnknownSupportFile
from domain.common import Actor, Role


class CaseReads(Commands):
    # -- reads -----------------------------------------------------------------------------------
    def get_case(self, actor: Actor, case_id: str, break_glass: str | None = None) -> BullyingCase:
        """The whole case, for those who may read its content."""
        self.core.check(actor, access.CASE_READ, "case", case_id, break_glass=break_glass)
        return self.core.load(case_id, BullyingCase)

    def read_case(
        self, actor: Actor, case_id: str, break_glass: str | None = None
    ) -> tuple[BullyingCase | None, dict[str, Any] | None]:
        """What this person may see of a case: (the whole case, None) for those who may
        read it; (None, the status line) for a class teacher of a party's class; else the
        gate refuses (the CASE_READ denial is recorded). One recorded decision."""
        resource = self.core.resource("case", case_id)
        if (
            not decide(actor, access.CASE_READ, resource, break_glass).allowed
            and decide(actor, access.CASE_STATUS, resource).allowed
        ):
            return None, self.case_status(actor, case_id)
        return self.get_case(actor, case_id, break_glass), None

    def case_dossier(
        self, actor: Actor, case_id: str, break_glass: str | None = None
    ) -> tuple[BullyingCase | None, dict[str, Any] | None, list[HistoryEntry]]:
        """What a printed case file (案卷) holds for this person, by the case page's rule
        (`read_case`, one recorded decision): the whole case and its history in order, or
        (for a class teacher of a party's class) the status line alone and no history."""
        case, line = self.read_case(actor, case_id, break_glass)
        return case, line, (stream_history(self.core, case_id) if case is not None else [])

    def case_parties(self, actor: Actor, case_id: str, break_glass: str | None = None) -> list[dict[str, Any]]:
        """The parties with their names resolved now (已删除 once a student is erased)."""
        case = self.get_case(actor, case_id, break_glass)
        out = []
        for sid, part in case.links:
            ref = self.core.student_ref(sid)
            out.append(
                {"student_id": sid, "part": part, "name": ref.name, "class_name": ref.class_name, "erased": ref.erased}
            )
        return out

    def case_status(self, actor: Actor, case_id: str) -> dict[str, Any]:
        """A status line (no names, no narrative): what a class teacher may see."""
        self.core.check(actor, access.CASE_STATUS, "case", case_id)
        case = self.core.load(case_id, BullyingCase)
        return {
            "status": case.status,
            "severity": case.severity,
            "opened": case.opened_on,
            "overdue": case.is_overdue(self.now().date()),
        }

    def cases_of_school(self, actor: Actor, school_id: str) -> list[dict[str, str]]:
        """The school's cases as id + status lines: all of them for those with a school-wide
        right; for a class teacher, only the cases involving a student of their class."""
        school = self.core.resource("case", school_id=school_id)
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
            self.core.authorize(actor, access.CASE_STATUS, school)  # records; raises for anyone else
            return [{"case_id": cid, "status": status} for cid, (status, _) in cases.items()]
        out = []
        for cid, (status, classes) in cases.items():
            if classes & actor.classes:
                self.core.authorize(
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
        staff = self.core.accounts.staff(staff_id)
        if staff is None or staff.school_id != school_id or not staff.active:
            raise UnknownStaff()

    def _require_support_file(self, school_id: str, student_id: str, file_id: str) -> None:
        row = self.db.fetchone(
            "SELECT school_id, subject_id FROM {t}anxin_directory WHERE stream_id = ? AND kind = 'file'", (file_id,)
        )
        if row is None or row[0] != school_id or row[1] != student_id:
            raise UnknownSupportFile()
