"""A school's bullying governance body (学生欺凌治理委员会, domain.committee), one stream per
school, its id keyed on the school (`body_id`): the principal appoints and removes members
(COMMITTEE_ADMIN); the principal and the safety lead read who sits on it (COMMITTEE_READ).
A case's meeting names the members present by id (CaseCommands.record_committee_meeting)."""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

from anxin.commands.base import Commands
from domain import access
from domain.committee import GoverningBody
from domain.common import Actor, NotFound


class CommitteeCommands(Commands):
    def body_id(self, school_id: str) -> UUID:
        """The body's stream id, keyed on the school (reveals nothing without the index key)."""
        return self.core.keystore.deterministic_id("committee", school_id)

    def _body(self, school_id: str) -> GoverningBody | None:
        try:
            return self.core.load(self.body_id(school_id), GoverningBody)
        except NotFound:
            return None

    def appoint_member(self, actor: Actor, *, school_id: str, name: str, capacity: str) -> str:
        """The principal appoints a member of the school's body, in a capacity (校领导, 法治副校长,
        法律顾问, 专家, 家长代表, 学生代表, 教师). Returns the member's id."""
        with self.core.gate.deferred_decisions(own=True):
            self.core.check(actor, access.COMMITTEE_ADMIN, "committee", school_id=school_id)
            at = self.now()
            body = self._body(school_id) or GoverningBody.constitute(
                id=self.body_id(school_id), school_id=school_id, actor=actor.staff_id, at=at
            )
            member_id = uuid4().hex
            body.appoint(member_id=member_id, name=name, capacity=capacity, actor=actor.staff_id, at=at)
            self.core.commit(body)
        return member_id

    def remove_member(self, actor: Actor, *, school_id: str, member_id: str, reason: str) -> None:
        """The principal records that a member left the body, with why."""
        with self.core.gate.deferred_decisions(own=True):
            self.core.check(actor, access.COMMITTEE_ADMIN, "committee", school_id=school_id)
            body = self._body(school_id)
            if body is None:
                raise NotFound()
            body.remove(member_id=member_id, reason=reason, actor=actor.staff_id, at=self.now())
            self.core.commit(body)

    def get_body(self, actor: Actor, school_id: str) -> GoverningBody | None:
        """The school's body with its members' names (None before any member is appointed)."""
        self.core.check(actor, access.COMMITTEE_READ, "committee", school_id=school_id)
        return self._body(school_id)

    def member_names(self, actor: Actor, school_id: str) -> dict[str, dict[str, Any]]:
        """Every member ever appointed (present and former), by id: name, capacity, left or not."""
        body = self.get_body(actor, school_id)
        return dict(body.members) if body else {}

    def active_member_ids(self, school_id: str) -> list[str]:
        """The body's current members, by id (no names): what a case's meeting is checked
        against, inside a command the gate has allowed on the case."""
        body = self._body(school_id)
        return [m["id"] for m in body.active_members] if body else []
