"""一岗双带: a staff member paired with a student, checking in on a cadence."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any
from uuid import UUID

from eventsourcing.domain import event

from domain.common import (
    CaseAggregate,
    InvalidInput,
    Scope,
    WrongState,
    require,
    require_aware,
    require_text,
)

DIMENSIONS = ("thinking", "studies", "family", "difficulties")
DIMENSION_LABELS = {
    "thinking": "思想状况",
    "studies": "学业情况",
    "family": "家庭环境",
    "difficulties": "存在困难",
}
ESCALATION_TARGETS = ("support_file", "bullying_case")


class Pairing(CaseAggregate):
    class Paired(CaseAggregate.Created):
        school_id: str
        staff_id: str
        student_id: str
        cadence_days: int
        actor: str
        at: datetime

    @event(Paired)
    def __init__(
        self,
        id: UUID,
        school_id: str,
        staff_id: str,
        student_id: str,
        cadence_days: int,
        actor: str,
        at: datetime,
    ) -> None:
        self.school_id = school_id
        self.staff_id = staff_id
        self.student_id = student_id
        self.cadence_days = cadence_days
        self.paired_on = at.date()
        self.check_ins: dict[str, dict[str, Any]] = {}
        self.escalations: list[dict[str, Any]] = []
        self.active = True

    @classmethod
    def pair(
        cls, *, id: UUID, school_id: str, staff_id: str, student_id: str, cadence_days: int, actor: str, at: datetime
    ) -> Pairing:
        require_aware(at)
        require(cadence_days > 0, "谈心频率必须为正数天")
        require_text(staff_id, "结对教师")
        require_text(student_id, "结对学生")
        return cls(
            id=id,
            school_id=school_id,
            staff_id=staff_id,
            student_id=student_id,
            cadence_days=cadence_days,
            actor=actor,
            at=at,
        )

    # -- check-ins --------------------------------------------------------------------
    def record_check_in(
        self,
        *,
        check_in_id: str,
        held_on: date,
        notes: dict[str, str],
        concern: bool,
        concern_note: str = "",
        risk_to_life: bool = False,
        actor: str,
        at: datetime,
    ) -> None:
        """Record a 谈心谈话 on the four dimensions; a concern needs a note. A concern the
        teacher marks as a possible risk to life (`risk_to_life`) is a crisis signal: the
        application opens the crisis pathway on the student's support file."""
        require_aware(at)
        concern = bool(concern or risk_to_life)
        self._require_active("记录谈心")
        require(check_in_id not in self.check_ins, "该谈心记录已存在")
        require(held_on <= at.date(), "谈心日期不能晚于今天")
        require(held_on >= self.paired_on, "谈心日期不能早于结对日期")
        unknown = set(notes) - set(DIMENSIONS)
        require(not unknown, f"未知的谈心维度：{', '.join(sorted(unknown))}")
        notes = {k: (notes.get(k) or "").strip() for k in DIMENSIONS}
        require(any(notes.values()), "四个方面至少填写一项")
        if concern:
            concern_note = require_text(concern_note, "担忧说明")
        self._check_in_recorded(
            check_in_id=check_in_id,
            held_on=held_on,
            notes=notes,
            concern=concern,
            concern_note=concern_note.strip(),
            risk_to_life=bool(risk_to_life),
            actor=actor,
            at=at,
        )

    class CheckInRecorded(CaseAggregate.Event):
        # Version 2 added `risk_to_life` (the concern may put the student's life at risk);
        # a version-1 check-in never said so.
        class_version = 2
        check_in_id: str
        held_on: date
        notes: dict[str, str]
        concern: bool
        concern_note: str
        risk_to_life: bool
        actor: str
        at: datetime

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["risk_to_life"] = False

    @event(CheckInRecorded)
    def _check_in_recorded(
        self,
        check_in_id: str,
        held_on: date,
        notes: dict[str, str],
        concern: bool,
        concern_note: str,
        risk_to_life: bool,
        actor: str,
        at: datetime,
    ) -> None:
        self.check_ins[check_in_id] = {
            "id": check_in_id,
            "held_on": held_on,
            "notes": notes,
            "concern": concern,
            "concern_note": concern_note,
            "risk_to_life": risk_to_life,
            "actor": actor,
            "at": at,
            "escalated_to": [],
            "corrections": [],
        }

    def correct_check_in(
        self,
        *,
        check_in_id: str,
        notes: dict[str, str] | None = None,
        concern: bool | None = None,
        concern_note: str | None = None,
        reason: str,
        actor: str,
        at: datetime,
    ) -> None:
        """A correction is a new event naming the check-in it corrects."""
        require_aware(at)
        ci = self._check_in(check_in_id)
        changes: dict[str, Any] = {}
        if notes is not None:
            unknown = set(notes) - set(DIMENSIONS)
            require(not unknown, f"未知的谈心维度：{', '.join(sorted(unknown))}")
            changes["notes"] = {**ci["notes"], **{k: v.strip() for k, v in notes.items()}}
        if concern is not None:
            changes["concern"] = concern
        if concern_note is not None:
            changes["concern_note"] = concern_note.strip()
        require(bool(changes), "没有要更正的内容")
        require(any(changes.get("notes", ci["notes"]).values()), "四个方面至少填写一项")
        if changes.get("concern", ci["concern"]):
            require(bool(changes.get("concern_note", ci["concern_note"])), "担忧说明不能为空")
        self._check_in_corrected(
            corrects=check_in_id, changes=changes, reason=require_text(reason, "更正原因"), actor=actor, at=at
        )

    class CheckInCorrected(CaseAggregate.Event):
        corrects: str
        changes: dict[str, Any]
        reason: str
        actor: str
        at: datetime

    @event(CheckInCorrected)
    def _check_in_corrected(
        self, corrects: str, changes: dict[str, Any], reason: str, actor: str, at: datetime
    ) -> None:
        ci = self.check_ins[corrects]
        ci.update(changes)
        ci["corrections"].append({"reason": reason, "actor": actor, "at": at})

    # -- escalation -------------------------------------------------------------------
    def escalate(self, *, check_in_id: str, target: str, target_id: str, reason: str, actor: str, at: datetime) -> None:
        """Link a concern to the support file or bullying report it became."""
        require_aware(at)
        ci = self._check_in(check_in_id)
        require(target in ESCALATION_TARGETS, "只能转为心理档案或欺凌报告")
        require(bool(ci["concern"]), "只有标记了担忧的谈心记录才能上报")
        require(
            not any(e["target"] == target for e in ci["escalated_to"]),
            "该担忧已上报过同类事项",
        )
        self._escalated(
            check_in_id=check_in_id,
            target=target,
            target_id=target_id,
            reason=require_text(reason, "上报原因"),
            actor=actor,
            at=at,
        )

    class ConcernEscalated(CaseAggregate.Event):
        check_in_id: str
        target: str
        target_id: str
        reason: str
        actor: str
        at: datetime

    @event(ConcernEscalated)
    def _escalated(self, check_in_id: str, target: str, target_id: str, reason: str, actor: str, at: datetime) -> None:
        link = {"check_in_id": check_in_id, "target": target, "target_id": target_id, "at": at}
        self.check_ins[check_in_id]["escalated_to"].append(link)
        self.escalations.append(link)

    # -- cadence and end --------------------------------------------------------------
    def change_cadence(self, *, cadence_days: int, reason: str, actor: str, at: datetime) -> None:
        require_aware(at)
        self._require_active("调整频率")
        require(cadence_days > 0, "谈心频率必须为正数天")
        require(cadence_days != self.cadence_days, "频率没有变化")
        self._cadence_changed(cadence_days=cadence_days, reason=require_text(reason, "原因"), actor=actor, at=at)

    class CadenceChanged(CaseAggregate.Event):
        cadence_days: int
        reason: str
        actor: str
        at: datetime

    @event(CadenceChanged)
    def _cadence_changed(self, cadence_days: int, reason: str, actor: str, at: datetime) -> None:
        self.cadence_days = cadence_days

    def end(self, *, reason: str, actor: str, at: datetime) -> None:
        require_aware(at)
        self._require_active("结束结对")
        self._ended(reason=require_text(reason, "结束原因"), actor=actor, at=at)

    class Ended(CaseAggregate.Event):
        reason: str
        actor: str
        at: datetime

    @event(Ended)
    def _ended(self, reason: str, actor: str, at: datetime) -> None:
        self.active = False
        self.ended_on = at.date()

    # -- questions --------------------------------------------------------------------
    @property
    def last_check_in(self) -> date | None:
        return max((c["held_on"] for c in self.check_ins.values()), default=None)

    @property
    def next_due(self) -> date | None:
        if not self.active:
            return None
        return (self.last_check_in or self.paired_on) + timedelta(days=self.cadence_days)

    def is_overdue(self, today: date) -> bool:
        due = self.next_due
        return due is not None and today > due

    @property
    def open_concerns(self) -> list[dict[str, Any]]:
        return [c for c in self.check_ins.values() if c["concern"] and not c["escalated_to"]]

    @property
    def status(self) -> str:
        return "active" if self.active else "ended"

    def _check_in(self, check_in_id: str) -> dict[str, Any]:
        ci = self.check_ins.get(check_in_id)
        if ci is None:
            raise InvalidInput(reason="找不到该谈心记录")
        return ci

    def _require_active(self, action: str) -> None:
        if not self.active:
            raise WrongState(state="已结束", action=action)

    def scope(self) -> Scope:
        return Scope(
            kind="pairing",
            school_id=self.school_id,
            owner_id=self.staff_id,
            subject_id=self.student_id,
            status=self.status,
            links=((self.student_id, "paired"),),
        )
