"""学生欺凌治理委员会: a school's bullying governance body (未成年人学校保护规定 2021, art. 23;
教督〔2017〕10号), one stream per school. Its members sit in a capacity (校领导, 法治副校长,
法律顾问, 专家, 家长代表, 学生代表, 教师); a member's name is personal data, kept only in this
stream (encrypted like every event); the directory knows the stream by school, no names.
The principal maintains it (access.COMMITTEE_ADMIN). A case's meeting (认定会议) names the
members present by their ids (BullyingCase.CommitteeMeetingRecorded)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.domain import event

from domain.common import CaseAggregate, DomainError, InvalidInput, Scope, require, require_aware, require_text

CAPACITIES = {
    "school_leader": "校领导",
    "rule_of_law_vice_principal": "法治副校长",
    "legal_adviser": "法律顾问",
    "expert": "专家",
    "parent_rep": "家长代表",
    "student_rep": "学生代表",
    "teacher": "教师",
}


class UnknownMember(InvalidInput):
    code = "unknown_committee_member"
    message = "该人员不是本校学生欺凌治理委员会的现任成员"


class GoverningBody(CaseAggregate):
    """A school's 学生欺凌治理委员会: who sits on it, in which capacity, since when."""

    class Constituted(CaseAggregate.Created):
        school_id: str
        actor: str
        at: datetime

    class MemberAppointed(CaseAggregate.Event):
        member_id: str
        name: str
        capacity: str
        actor: str
        at: datetime

    class MemberLeft(CaseAggregate.Event):
        member_id: str
        reason: str
        actor: str
        at: datetime

    @event(Constituted)
    def __init__(self, id: UUID, school_id: str, actor: str, at: datetime) -> None:
        self.school_id = school_id
        self.members: dict[str, dict[str, Any]] = {}

    @classmethod
    def constitute(cls, *, id: UUID, school_id: str, actor: str, at: datetime) -> GoverningBody:
        require_aware(at)
        return cls(id=id, school_id=require_text(school_id, "学校"), actor=actor, at=at)

    def appoint(self, *, member_id: str, name: str, capacity: str, actor: str, at: datetime) -> None:
        """A member joins, in a capacity."""
        require_aware(at)
        require(member_id not in self.members, "该成员已登记")
        capacity = (capacity or "").strip()
        require(capacity in CAPACITIES, f"身份「{capacity}」无效，应为：{'、'.join(CAPACITIES.values())}")
        name = require_text(name, "成员姓名")
        require(len(name) <= 50, "成员姓名过长")
        self._member_appointed(member_id=member_id, name=name, capacity=capacity, actor=actor, at=at)

    @event(MemberAppointed)
    def _member_appointed(self, member_id: str, name: str, capacity: str, actor: str, at: datetime) -> None:
        self.members[member_id] = {
            "id": member_id,
            "name": name,
            "capacity": capacity,
            "since": at,
            "by": actor,
            "left_at": None,
            "left_reason": "",
        }

    def remove(self, *, member_id: str, reason: str, actor: str, at: datetime) -> None:
        """A member leaves the body (with why); past meetings keep naming them."""
        require_aware(at)
        self._require_active(member_id)
        self._member_left(member_id=member_id, reason=require_text(reason, "离任原因"), actor=actor, at=at)

    @event(MemberLeft)
    def _member_left(self, member_id: str, reason: str, actor: str, at: datetime) -> None:
        self.members[member_id].update(left_at=at, left_reason=reason)

    @property
    def active_members(self) -> list[dict[str, Any]]:
        return [m for m in self.members.values() if m["left_at"] is None]

    def check_present(self, member_ids: list[str]) -> None:
        """Members said to be present at a meeting must be current members."""
        for m in member_ids:
            self._require_active(m)

    def _require_active(self, member_id: str) -> dict[str, Any]:
        m = self.members.get(member_id)
        if m is None or m["left_at"] is not None:
            raise UnknownMember()
        return m

    def scope(self) -> Scope:
        return Scope(kind="committee", school_id=self.school_id)


class NoGoverningBody(DomainError):
    code = "no_governing_body"
    message = (
        "本校尚未登记学生欺凌治理委员会成员（未成年人学校保护规定第二十三条）：请校长先登记委员会成员，再记录认定会议"
    )
