"""The roster: schools, staff and students (their own streams), each change through the
gate (ACCOUNT_ADMIN for schools and staff, STUDENT_WRITE / STUDENT_READ for students).
A student's stream id is keyed on (school, student number), so re-enrolling a number is
refused by the store itself. The CSV import of a roster is `anxin.roster_import`."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import replace
from typing import Any
from uuid import UUID, uuid4

from anxin.commands.base import Commands
from anxin.quarantine import UNREADABLE_LABEL, Unreadable
from domain import access
from domain.common import ERASED_LABEL, Actor, Conflict, Erased, InvalidInput, NotFound, require_text
from domain.roster import Staff, Student
from projections.base import StudentRef


class RosterCommands(Commands):
    """Schools, staff (and their accounts' directory rows), students."""

    # -- schools --------------------------------------------------------------------
    def add_school(self, actor: Actor, name: str, district: str = "default") -> str:
        self.core.check(actor, access.ACCOUNT_ADMIN, "account")
        name = require_text(name, "学校名称")
        if self.school_id(name, missing_ok=True):
            raise InvalidInput(reason=f"学校「{name}」已存在")
        sid = str(uuid4())
        self.db.execute(
            "INSERT INTO {t}anxin_schools (school_id, name, district) VALUES (?, ?, ?)", (sid, name, district)
        )
        return sid

    def school_id(self, name: str, missing_ok: bool = False) -> str | None:
        row = self.db.fetchone("SELECT school_id FROM {t}anxin_schools WHERE name = ?", (name.strip(),))
        if row is None and not missing_ok:
            raise InvalidInput(reason=f"找不到学校「{name}」")
        return row[0] if row else None

    def student_ref(self, student_id: str) -> StudentRef:
        """Name for display inside an already-authorised view; 已删除 once erased."""
        row = self.db.fetchone(
            "SELECT school_id, class_name FROM {t}anxin_directory WHERE stream_id = ?", (student_id,)
        )
        try:
            s = self.core.load(student_id, Student)
        except (Erased, NotFound):
            return StudentRef(student_id, row[0] if row else None, row[1] if row else None, None, ERASED_LABEL, True)
        except Unreadable:
            return StudentRef(
                student_id, row[0] if row else None, row[1] if row else None, None, UNREADABLE_LABEL, unreadable=True
            )
        return StudentRef(student_id, s.school_id, s.class_name, s.student_no, s.name)

    def schools(self) -> list[tuple[str, str, str]]:
        return [
            (r[0], r[1], r[2])
            for r in self.db.fetch("SELECT school_id, name, district FROM {t}anxin_schools ORDER BY name")
        ]

    # -- staff and accounts ---------------------------------------------------------------
    def add_staff(
        self,
        actor: Actor,
        *,
        username: str,
        name: str,
        school_id: str | None,
        roles: list[str],
        classes: list[str] | None = None,
        password_hash: str | None = None,
        district: str | None = None,
    ) -> str:
        """Register a staff member and their account."""
        self.core.check(actor, access.ACCOUNT_ADMIN, "account", school_id=school_id)
        if self.db.fetchone("SELECT 1 FROM {t}anxin_staff WHERE username = ?", (username,)):
            raise InvalidInput(reason=f"用户名「{username}」已被使用")
        district = district or self.core.gate.district_of(school_id)
        staff = Staff.register(
            id=uuid4(),
            school_id=school_id,
            username=username,
            name=name,
            roles=roles,
            classes=classes,
            district=district,
            actor=actor.staff_id,
            at=self.now(),
        )
        self.core.commit(staff, extra=[self._staff_row(staff, password_hash)])
        return str(staff.id)

    @staticmethod
    def _staff_row(staff: Staff, password_hash: str | None) -> tuple[str, tuple[Any, ...]]:
        return (
            "INSERT INTO {t}anxin_staff (staff_id, username, school_id, roles, classes, district, password_hash, active) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (staff_id) DO UPDATE SET roles = excluded.roles, "
            "classes = excluded.classes, active = excluded.active",
            (
                str(staff.id),
                staff.username,
                staff.school_id,
                ",".join(staff.roles),
                json.dumps(staff.classes, ensure_ascii=False),
                staff.district,
                password_hash,
                1 if staff.active else 0,
            ),
        )

    def change_staff_roles(
        self, actor: Actor, staff_id: str, roles: list[str], classes: list[str], reason: str
    ) -> None:
        staff = self.core.load(staff_id, Staff)
        self.core.check(actor, access.ACCOUNT_ADMIN, "account", school_id=staff.school_id)
        staff.change_roles(roles=roles, classes=classes, reason=reason, actor=actor.staff_id, at=self.now())
        self.core.commit(staff, extra=[self._staff_row(staff, None)])

    def deactivate_staff(self, actor: Actor, staff_id: str, reason: str) -> None:
        staff = self.core.load(staff_id, Staff)
        self.core.check(actor, access.ACCOUNT_ADMIN, "account", school_id=staff.school_id)
        staff.deactivate(reason=reason, actor=actor.staff_id, at=self.now())
        self.core.commit(staff, extra=[self._staff_row(staff, None)])

    def staff_name(self, staff_id: str) -> str:
        try:
            return self.core.load(staff_id, Staff).name
        except (Erased, NotFound):
            return ERASED_LABEL
        except Unreadable:
            return UNREADABLE_LABEL

    # -- students -------------------------------------------------------------------
    def student_id_for(self, school_id: str, student_no: str) -> UUID:
        """A student's stream id is keyed on (school, student number): re-enrolling the
        same number is refused by the store itself, and the id reveals nothing."""
        return self.core.keystore.deterministic_id("student", f"{school_id}\x1f{student_no.strip()}")

    def enrol_student(self, actor: Actor, *, school_id: str, **fields: Any) -> str:
        self.core.check(actor, access.STUDENT_WRITE, "student", school_id=school_id)
        student = self._new_student(actor, school_id, fields)
        if self.db.fetchone("SELECT 1 FROM {t}anxin_directory WHERE stream_id = ?", (str(student.id),)):
            raise InvalidInput(reason=f"学号「{student.student_no}」在本校已存在")
        try:
            self.core.commit(student)
        except Conflict as e:
            raise InvalidInput(reason=f"学号「{student.student_no}」在本校已存在") from e
        return str(student.id)

    def _new_student(self, actor: Actor, school_id: str, fields: dict[str, Any]) -> Student:
        student_no = require_text(fields.get("student_no"), "学号")
        return Student.enrol(
            id=self.student_id_for(school_id, student_no),
            school_id=school_id,
            actor=actor.staff_id,
            at=self.now(),
            **fields,
        )

    def get_student(self, actor: Actor, student_id: str, break_glass: str | None = None) -> Student:
        """A student's identity, for those allowed to see it."""
        self.core.check(actor, access.STUDENT_READ, "student", student_id, break_glass=break_glass)
        return self.core.load(student_id, Student)

    def correct_student(
        self, actor: Actor, student_id: str, changes: dict[str, Any], reason: str, expected_version: int | None = None
    ) -> None:
        with self.core.editing(
            student_id, Student, expected_version, check=(actor, access.STUDENT_WRITE, "student")
        ) as s:
            s.correct(changes=changes, reason=reason, actor=actor.staff_id, at=self.now())

    def leave_student(self, actor: Actor, student_id: str, reason: str, expected_version: int | None = None) -> None:
        """A student leaves the school (transfer, graduation); their history stays."""
        with self.core.editing(
            student_id, Student, expected_version, check=(actor, access.STUDENT_WRITE, "student")
        ) as s:
            s.leave(reason=reason, actor=actor.staff_id, at=self.now())

    def list_students(self, actor: Actor, school_id: str, class_name: str | None = None) -> list[StudentRef]:
        """The school's roster (or one class of it: what a class teacher may list),
        decrypted; erased students show as 已删除."""
        resource = self.core.resource("student", school_id=school_id)
        if class_name is not None:
            resource = replace(resource, classes=frozenset({class_name}))
        self.core.authorize(actor, access.STUDENT_READ, resource)
        sql = "SELECT stream_id FROM {t}anxin_directory WHERE school_id = ? AND kind = 'student'"
        args: tuple[Any, ...] = (school_id,)
        if class_name is not None:
            sql, args = sql + " AND class_name = ?", (school_id, class_name)
        ids = [r[0] for r in self.db.fetch(sql, args)]
        self.core.keystore.preload()
        refs = [self.student_ref(i) for i in ids]
        return sorted(refs, key=lambda r: (r.erased, r.class_name or "", r.student_no or ""))

    def existing_student_ids(self, ids: Iterable[str]) -> set[str]:
        return {
            r[0]
            for r in self.db.fetch_in(
                "SELECT stream_id FROM {t}anxin_directory WHERE stream_id IN ({marks})", list(ids)
            )
        }
