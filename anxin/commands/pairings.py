"""Pairings (一岗双带): a staff member paired with a student on the policy's cadence, and
the check-ins (谈心谈话) they record. PAIRING_CREATE to pair, PAIRING_WRITE to record,
correct or end, PAIRING_READ to read."""

from __future__ import annotations

from datetime import date
from typing import Any
from uuid import uuid4

from anxin.commands.base import Commands
from anxin.quarantine import Unreadable
from domain import access
from domain.access import Resource
from domain.common import Actor, Erased, require
from domain.pairing import Pairing


class PairingCommands(Commands):
    """Pair, record and correct check-ins, end a pairing; read one, or one's own."""

    def pair(self, actor: Actor, *, staff_id: str, student_id: str, cadence_days: int | None = None) -> str:
        """Pair a staff member with a student on the policy's cadence."""
        student = self.core.resource("student", student_id)
        self.core.authorize(
            actor, access.PAIRING_CREATE, Resource(kind="pairing", school_id=student.school_id, classes=student.classes)
        )
        staff = self.core.gate.actor(staff_id)
        require(staff.school_id == student.school_id, "只能与本校学生结对")
        existing = self.db.fetchone(
            "SELECT stream_id FROM {t}anxin_directory WHERE kind = 'pairing' AND owner_id = ? AND subject_id = ? "
            "AND status = 'active'",
            (staff_id, student_id),
        )
        require(existing is None, "该教师已与该学生结对")
        p = Pairing.pair(
            id=uuid4(),
            school_id=student.school_id or "",
            staff_id=staff_id,
            student_id=student_id,
            cadence_days=cadence_days or self.policy.check_in_cadence_days,
            actor=actor.staff_id,
            at=self.now(),
        )
        self.core.commit(p)
        return str(p.id)

    def get_pairing(self, actor: Actor, pairing_id: str, break_glass: str | None = None) -> Pairing:
        self.core.check(actor, access.PAIRING_READ, "pairing", pairing_id, break_glass=break_glass)
        return self.core.load(pairing_id, Pairing)

    def record_check_in(
        self,
        actor: Actor,
        pairing_id: str,
        *,
        held_on: date,
        notes: dict[str, str],
        concern: bool = False,
        concern_note: str = "",
        risk_to_life: bool = False,
        expected_version: int | None = None,
    ) -> str:
        """Record a 谈心谈话 with a paired student. A concern marked as a possible risk to
        life (`risk_to_life`) opens the crisis pathway on the student's support file (opened
        at 高危 if there is none) and the concern records where it went, in one save."""
        check_in_id = uuid4().hex
        if not risk_to_life:
            with self.core.editing(
                pairing_id, Pairing, expected_version, check=(actor, access.PAIRING_WRITE, "pairing")
            ) as p:
                p.record_check_in(
                    check_in_id=check_in_id,
                    held_on=held_on,
                    notes=notes,
                    concern=concern,
                    concern_note=concern_note,
                    actor=actor.staff_id,
                    at=self.now(),
                )
            return check_in_id
        self.core.check(actor, access.PAIRING_WRITE, "pairing", pairing_id)
        p = self.core.load(pairing_id, Pairing)
        self.core.expect_version(p, expected_version)
        at = self.now()
        p.record_check_in(
            check_in_id=check_in_id,
            held_on=held_on,
            notes=notes,
            concern=concern,
            concern_note=concern_note,
            risk_to_life=True,
            actor=actor.staff_id,
            at=at,
        )
        crisis = self.core.crisis
        crisis.authorize_signal(actor, p.student_id)
        f = crisis.signal(
            actor,
            p.student_id,
            trigger="check_in",
            source={"kind": "pairing", "id": pairing_id, "check_in_id": check_in_id},
            reason=f"谈心谈话中发现可能危及生命：{concern_note.strip()}",
            origin="escalation",
            at=at,
        )
        p.escalate(
            check_in_id=check_in_id,
            target="support_file",
            target_id=str(f.id),
            reason="可能危及生命，启动心理危机干预",
            actor=actor.staff_id,
            at=at,
        )
        self.core.commit(p, f)
        return check_in_id

    def correct_check_in(
        self,
        actor: Actor,
        pairing_id: str,
        check_in_id: str,
        *,
        reason: str,
        expected_version: int | None = None,
        **changes: Any,
    ) -> None:
        with self.core.editing(
            pairing_id, Pairing, expected_version, check=(actor, access.PAIRING_WRITE, "pairing")
        ) as p:
            p.correct_check_in(check_in_id=check_in_id, reason=reason, actor=actor.staff_id, at=self.now(), **changes)

    def end_pairing(self, actor: Actor, pairing_id: str, reason: str) -> None:
        self.core.check(actor, access.PAIRING_WRITE, "pairing", pairing_id)
        with self.core.editing(pairing_id, Pairing) as p:
            p.end(reason=reason, actor=actor.staff_id, at=self.now())

    def my_pairings(self, actor: Actor) -> list[Pairing]:
        """The actor's own active pairings, each read through the gate."""
        ids = [
            r[0]
            for r in self.db.fetch(
                "SELECT stream_id FROM {t}anxin_directory WHERE kind = 'pairing' AND owner_id = ? AND status = 'active' "
                "AND erased = 0",
                (actor.staff_id,),
            )
        ]
        out = []
        for i in ids:
            try:
                out.append(self.get_pairing(actor, i))
            except (Erased, Unreadable):
                continue
        return out
