"""The roster: schools, staff and students (their own streams), each change through the
gate (ACCOUNT_ADMIN for schools and staff, STUDENT_WRITE / STUDENT_READ for students).
A student's stream id is keyed on (school, student number), so re-enrolling a number is
refused by the store itself. The import of a roster file (CSV or .xlsx, reconciled with
the school's roster) is `anxin.roster_import`."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import replace
from typing import Any
from uuid import UUID, uuid4

from anxin.commands.base import Commands
from anxin.quarantine import UNREADABLE_LABEL, Unreadable
from domain import access
from domain.access import Resource
from domain.common import ERASED_LABEL, Actor, Conflict, Erased, InvalidInput, NotFound, require_text
from domain.grades import class_sort_key
from domain.roster import Staff, Student, parse_roles, widened_roles
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

    def student_profile(self, student_id: str) -> Student | None:
        """A student's identity (class, guardians, tags) inside an already-authorised view
        (the student page, after its STUDENT_READ); None once erased or unreadable."""
        try:
            return self.core.load(student_id, Student)
        except (Erased, NotFound, Unreadable):
            return None

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
        email: str = "",
    ) -> str:
        """Register a staff member and their account, roles held at once, with a password
        hash the caller made: the seeding path only (`anxin demo`, the benches, tests),
        where everyone's password is known because nobody real uses it. A real person's
        account is made with a set-up code, never a password: an administrator's page uses
        `create_account` (and a second person for content roles), the operator's command
        line `add_staff_account`."""
        staff = self._new_staff(actor, username, name, school_id, roles, classes, district, email)
        self.core.commit(staff, extra=[self._staff_row(staff, password_hash)])
        return str(staff.id)

    def add_staff_account(
        self,
        actor: Actor,
        *,
        username: str,
        name: str,
        school_id: str | None,
        roles: list[str],
        classes: list[str] | None = None,
        district: str | None = None,
        email: str = "",
    ) -> tuple[str, str]:
        """The operator's new account (`anxin user add`): (staff id, one-time set-up code).
        No password: the person chooses theirs with the code (`Accounts.set_up`), which
        expires in SETUP_HOURS. The roles are held at once, with no second person: the
        operator at the server, who holds its master key, is where the first administrator
        comes from (and every command of theirs is recorded as the command line's)."""
        staff = self._new_staff(actor, username, name, school_id, roles, classes, district, email)
        code, code_row = self.core.accounts.setup_code_row(str(staff.id))
        self.core.commit(staff, extra=[self._staff_row(staff, None), code_row])
        return str(staff.id), code

    def _new_staff(
        self,
        actor: Actor,
        username: str,
        name: str,
        school_id: str | None,
        roles: list[str],
        classes: list[str] | None,
        district: str | None,
        email: str = "",
        grant_request_id: str | None = None,
    ) -> Staff:
        """A staff member registered, once the gate lets the actor manage accounts of the
        school and the login name is free (not saved yet); with `email`, where their
        notifications go (anxin.notify); with `grant_request_id`, the roles that need a
        second person asked for, not held (Staff.register)."""
        self.core.check(actor, access.ACCOUNT_ADMIN, "account", school_id=school_id)
        if self.db.fetchone("SELECT 1 FROM {t}anxin_staff WHERE username = ?", (username,)):
            raise InvalidInput(reason=f"用户名「{username}」已被使用")
        staff = Staff.register(
            id=uuid4(),
            school_id=school_id,
            username=username,
            name=name,
            roles=roles,
            classes=classes,
            district=district or self.core.gate.district_of(school_id),
            actor=actor.staff_id,
            at=self.now(),
            grant_request_id=grant_request_id,
        )
        if email:
            staff.set_email(email=email, actor=actor.staff_id, at=self.now())
        return staff

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

    def create_account(
        self,
        actor: Actor,
        *,
        username: str,
        name: str,
        school_id: str | None,
        roles: list[str],
        classes: list[str] | None = None,
        district: str | None = None,
    ) -> tuple[str, str, str | None]:
        """An administrator's new account: (staff id, one-time set-up code, grant request
        id or None). No password: the person chooses theirs with the set-up code
        (`anxin.accounts.Accounts.set_up`). Roles that need a second person
        (domain.roster.SECOND_PERSON_ROLES) are asked for, not held, until another person
        approves (`approve_role_grant`)."""
        request_id = uuid4().hex
        staff = self._new_staff(actor, username, name, school_id, roles, classes, district, grant_request_id=request_id)
        pending = staff.pending_grant()
        code, code_row = self.core.accounts.setup_code_row(str(staff.id))
        extra = [self._staff_row(staff, None), code_row]
        if pending:
            extra.append(self._grant_row(staff, pending, actor))
        self.core.commit(staff, extra=extra)
        return str(staff.id), code, request_id if pending else None

    def _account(self, staff: Staff, requester: str | None = None, added: Iterable[str] = ()) -> Resource:
        """An account as the gate sees it for its roles: ids, school, district, and for a
        grant who asked and the roles that need a second person."""
        return Resource(
            kind="account",
            id=str(staff.id),
            school_id=staff.school_id,
            owner_id=requester,
            district=staff.district,
            roles=frozenset(added),
        )

    @staticmethod
    def _grant_row(staff: Staff, pending: dict[str, Any], actor: Actor) -> tuple[str, tuple[Any, ...]]:
        return (
            "INSERT INTO {t}anxin_role_grants (request_id, staff_id, school_id, district, roles, added, "
            "requested_by, requested_at, state) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'pending')",
            (
                pending["request_id"],
                str(staff.id),
                staff.school_id,
                staff.district,
                ",".join(pending["roles"]),
                ",".join(widened_roles(staff.roles, pending["roles"])),
                actor.staff_id,
                pending["at"].isoformat(),
            ),
        )

    @staticmethod
    def _close_grants(staff_id: str, state: str, request_id: str | None = None) -> tuple[str, tuple[Any, ...]]:
        """A grant's row closed (`request_id`), or every pending one of the account."""
        if request_id is None:
            return (
                "UPDATE {t}anxin_role_grants SET state = ? WHERE staff_id = ? AND state = 'pending'",
                (state, staff_id),
            )
        return ("UPDATE {t}anxin_role_grants SET state = ? WHERE request_id = ?", (state, request_id))

    def change_staff_roles(
        self, actor: Actor, staff_id: str, roles: list[str], classes: list[str], reason: str
    ) -> str | None:
        """Change an account's roles (never one's own: the gate refuses it). A narrowing,
        or a change that adds no role of SECOND_PERSON_ROLES, takes effect now (None); a
        widening by such a role is asked for and waits for a second person: its request
        id (the roles unchanged until `approve_role_grant`)."""
        staff = self.core.load(staff_id, Staff)
        self.core.authorize(actor, access.ACCOUNT_ROLES, self._account(staff))
        wanted = parse_roles(roles)
        if widened_roles(staff.roles, wanted):
            request_id = uuid4().hex
            staff.request_grant(
                request_id=request_id,
                roles=wanted,
                classes=classes,
                reason=reason,
                actor=actor.staff_id,
                at=self.now(),
            )
            pending = staff.pending_grant() or {}
            close = self._close_grants(staff_id, "superseded")
            self.core.commit(staff, extra=[close, self._grant_row(staff, pending, actor)])
            return request_id
        staff.change_roles(roles=wanted, classes=classes, reason=reason, actor=actor.staff_id, at=self.now())
        self.core.commit(staff, extra=[self._staff_row(staff, None), self._close_grants(staff_id, "superseded")])
        return None

    def _pending(self, actor: Actor, staff_id: str, request_id: str) -> Staff:
        """The account whose pending grant this is, once the gate lets `actor` be its second person."""
        staff = self.core.load(staff_id, Staff)
        pending = staff.pending_grant()
        if pending is None or pending["request_id"] != request_id:
            raise NotFound()
        added = widened_roles(staff.roles, pending["roles"])
        self.core.authorize(actor, access.ROLE_GRANT_APPROVE, self._account(staff, pending["actor"], added))
        return staff

    def approve_role_grant(self, actor: Actor, staff_id: str, request_id: str) -> None:
        """The second person approves a pending grant: the roles take effect now. The gate
        decides who may (ROLE_GRANT_APPROVE: another administrator; the school's principal
        for school roles; a supervisor for supervisor; never who asked, nor the account's
        holder); the request and the approval are events of the account."""
        staff = self._pending(actor, staff_id, request_id)
        staff.approve_grant(request_id=request_id, actor=actor.staff_id, at=self.now())
        self.core.commit(
            staff, extra=[self._staff_row(staff, None), self._close_grants(staff_id, "approved", request_id)]
        )

    def decline_role_grant(self, actor: Actor, staff_id: str, request_id: str, reason: str) -> None:
        """The second person declines a pending grant: the roles stay as they are."""
        staff = self._pending(actor, staff_id, request_id)
        staff.decline_grant(request_id=request_id, reason=reason, actor=actor.staff_id, at=self.now())
        self.core.commit(staff, extra=[self._close_grants(staff_id, "declined", request_id)])

    def pending_grants(self, actor: Actor, school_id: str | None = None) -> list[dict[str, Any]]:
        """The grants waiting for a second person that the actor asked for or may approve,
        oldest first: of `school_id`, or else of the actor's own school, or (a district's
        administrator or supervisor) of the whole district. The list is one read the gate
        decides and records (ROLE_GRANT_LIST, at that scope: the school's or the
        district's); which rows it shows, and which the actor may act on, the rule answers
        row by row (ROLE_GRANT_APPROVE, asked, not recorded: what one may approve is
        decided, and recorded, when one does)."""
        if school_id and self.db.fetchone("SELECT 1 FROM {t}anxin_schools WHERE school_id = ?", (school_id,)) is None:
            raise NotFound()
        school_id = school_id or actor.school_id
        district = self.core.gate.district_of(school_id) if school_id else actor.district
        scope = Resource(kind="account", school_id=school_id, district=district)
        self.core.authorize(actor, access.ROLE_GRANT_LIST, scope)
        sql = (
            "SELECT request_id, staff_id, school_id, district, roles, added, requested_by, requested_at "
            "FROM {t}anxin_role_grants WHERE state = 'pending' AND district = ?"
        )
        params: tuple[Any, ...] = (district,)
        if school_id:
            sql += " AND school_id = ?"
            params += (school_id,)
        return [
            row
            for row in (self._grant_line(actor, r) for r in self.db.fetch(sql + " ORDER BY requested_at", params))
            if row is not None
        ]

    def _grant_line(self, actor: Actor, row: Any) -> dict[str, Any] | None:
        """One grant of the list as a page shows it, if the actor asked for it or may
        approve it (None otherwise)."""
        rid, sid, school, district, roles, added, by, at = row
        resource = Resource(
            kind="account",
            id=sid,
            school_id=school,
            owner_id=by,
            district=district,
            roles=frozenset(a for a in str(added).split(",") if a),
        )
        may = access.decide(actor, access.ROLE_GRANT_APPROVE, resource).allowed
        if not may and by != actor.staff_id:
            return None
        entry = self.core.accounts.staff(sid)
        return {
            "request_id": rid,
            "staff_id": sid,
            "username": entry.username if entry else "",
            "name": self.staff_name(sid),
            "school_id": school,
            "roles": [r for r in str(roles).split(",") if r],
            "added": sorted(resource.roles),
            "requested_by": by,
            "requested_by_name": self.staff_name(by),
            "requested_at": at,
            "may_approve": may,
        }

    def deactivate_staff(self, actor: Actor, staff_id: str, reason: str) -> None:
        staff = self.core.load(staff_id, Staff)
        self.core.check(actor, access.ACCOUNT_ADMIN, "account", school_id=staff.school_id)
        staff.deactivate(reason=reason, actor=actor.staff_id, at=self.now())
        self.core.commit(staff, extra=[self._staff_row(staff, None), self._close_grants(staff_id, "superseded")])

    def set_email(self, actor: Actor, staff_id: str, email: str) -> None:
        """The address a person's notifications go to: set by themselves (their account
        page) or by an administrator of their school (`anxin user add --email`). Kept in
        the staff member's stream only (encrypted)."""
        staff = self.core.load(staff_id, Staff)
        if staff_id == actor.staff_id:
            self.core.authorize(
                actor,
                access.NOTICES_OWN,
                Resource(kind="account", id=staff_id, owner_id=staff_id, school_id=actor.school_id),
            )
        else:
            self.core.check(actor, access.ACCOUNT_ADMIN, "account", school_id=staff.school_id)
        staff.set_email(email=email, actor=actor.staff_id, at=self.now())
        self.core.commit(staff)

    def email_of(self, actor: Actor, staff_id: str) -> str:
        """One's own address (the account page)."""
        self.core.authorize(
            actor,
            access.NOTICES_OWN,
            Resource(kind="account", id=staff_id, owner_id=staff_id, school_id=actor.school_id),
        )
        return str(getattr(self.core.load(staff_id, Staff), "email", "") or "")

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
        return sorted(refs, key=lambda r: (r.erased, class_sort_key(r.class_name), r.student_no or ""))

    def school_roster(self, school_id: str) -> dict[str, tuple[str | None, bool]]:
        """Every student stream of the school by id: (status, erased). Ids and codes only,
        for an import to compare with (anxin.roster_import, which has passed the gate)."""
        return {
            r[0]: (r[1], bool(r[2]))
            for r in self.db.fetch(
                "SELECT stream_id, status, erased FROM {t}anxin_directory WHERE school_id = ? AND kind = 'student'",
                (school_id,),
            )
        }

    def existing_student_ids(self, ids: Iterable[str]) -> set[str]:
        return {
            r[0]
            for r in self.db.fetch_in(
                "SELECT stream_id FROM {t}anxin_directory WHERE stream_id IN ({marks})", list(ids)
            )
        }
