"""Escalating a concern raised in a check-in (一岗双带) to a support file or a
bullying report: the new stream records where it came from, the pairing records
where the concern went, and both are saved in one transaction."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from anxin.cases import BullyingCommands
from anxin.support import SupportCommands
from domain import access
from domain.access import Resource
from domain.common import Actor, Role
from domain.pairing import Pairing


class EscalationCommands(BullyingCommands, SupportCommands):
    def _least_loaded_counselor(self, school_id: str) -> str | None:
        """A teacher escalating need not know the counselors: give it to the one with
        the fewest open files."""
        rows = self.db.fetch(
            "SELECT s.staff_id, (SELECT COUNT(*) FROM {t}anxin_directory d WHERE d.kind = 'file' "
            "AND d.owner_id = s.staff_id AND d.status = 'open') AS n FROM {t}anxin_staff s "
            "WHERE s.school_id = ? AND s.active = 1 AND s.roles LIKE ? ORDER BY n, s.staff_id",
            (school_id, "%counselor%"),
        )
        return rows[0][0] if rows else None

    def _concern(self, actor: Actor, pairing_id: str) -> Pairing:
        self.check(actor, access.PAIRING_WRITE, "pairing", pairing_id)
        return self._load(pairing_id, Pairing)

    def escalate_to_support_file(
        self,
        actor: Actor,
        pairing_id: str,
        check_in_id: str,
        *,
        category: str,
        risk_level: str,
        reason: str,
        responsible_id: str | None = None,
        expected_version: int | None = None,
    ) -> str:
        """Open a support file for the paired student from a check-in's concern."""
        pairing = self._concern(actor, pairing_id)
        self._expect(pairing, expected_version)
        student = self.resource("student", pairing.student_id)
        self.authorize(
            actor,
            access.FILE_OPEN,
            Resource(
                kind="file",
                school_id=student.school_id,
                classes=student.classes,
                district=student.district,
            ),
        )
        if responsible_id is None and not actor.roles & {Role.COUNSELOR, Role.PRINCIPAL}:
            responsible_id = self._least_loaded_counselor(pairing.school_id)
        support_file = self._build_support_file(
            actor,
            pairing.student_id,
            category=category,
            risk_level=risk_level,
            reason=reason,
            responsible_id=responsible_id,
            origin="escalation",
            source={"kind": "pairing", "id": pairing_id, "check_in_id": check_in_id},
        )
        pairing.escalate(
            check_in_id=check_in_id,
            target="support_file",
            target_id=str(support_file.id),
            reason=reason,
            actor=actor.staff_id,
            at=self.now(),
        )
        self._save(support_file, pairing)
        return str(support_file.id)

    def escalate_to_bullying_report(
        self,
        actor: Actor,
        pairing_id: str,
        check_in_id: str,
        *,
        occurred_at: datetime,
        place: str,
        forms: Iterable[str],
        narrative: str,
        reason: str,
        parties: Iterable[Any] | None = None,
        expected_version: int | None = None,
    ) -> str:
        """Report suspected bullying from a check-in's concern (the paired student is the
        targeted student unless the parties say otherwise)."""
        pairing = self._concern(actor, pairing_id)
        self._expect(pairing, expected_version)
        self.check(actor, access.CASE_REPORT, "case", school_id=pairing.school_id)
        case = self._build_bullying_case(
            actor,
            school_id=pairing.school_id,
            channel="teacher",
            occurred_at=occurred_at,
            place=place,
            forms=forms,
            parties=list(parties) if parties is not None else [(pairing.student_id, "targeted")],
            narrative=narrative,
            source={"kind": "pairing", "id": pairing_id, "check_in_id": check_in_id},
        )
        pairing.escalate(
            check_in_id=check_in_id,
            target="bullying_case",
            target_id=str(case.id),
            reason=reason,
            actor=actor.staff_id,
            at=self.now(),
        )
        self._save(case, pairing)
        return str(case.id)
