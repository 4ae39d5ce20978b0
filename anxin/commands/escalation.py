"""Escalating a concern raised in a check-in (一岗双带) to a support file or a bullying
report: the new stream records where it came from, the pairing records where the
concern went, and both are saved in one transaction."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from anxin.commands.base import Commands, authorize_new_file
from domain import access
from domain.common import Actor, CaseAggregate, Role
from domain.pairing import Pairing

if TYPE_CHECKING:
    from anxin.commands.cases import CaseCommands
    from anxin.commands.support import SupportCommands
    from anxin.core import Core


class EscalationCommands(Commands):
    """A check-in's concern escalated; the new case or file is built by its own area."""

    def __init__(self, core: Core, cases: CaseCommands, support: SupportCommands) -> None:
        super().__init__(core)
        self.cases = cases
        self.support = support

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

    def _concern(self, actor: Actor, pairing_id: str, expected_version: int | None) -> Pairing:
        self.core.check(actor, access.PAIRING_WRITE, "pairing", pairing_id)
        pairing = self.core.load(pairing_id, Pairing)
        self.core.expect_version(pairing, expected_version)
        return pairing

    def _escalate(
        self, actor: Actor, pairing: Pairing, check_in_id: str, target: str, new: CaseAggregate, reason: str
    ) -> str:
        """The pairing records where its check-in's concern went; both saved together."""
        pairing.escalate(
            check_in_id=check_in_id,
            target=target,
            target_id=str(new.id),
            reason=reason,
            actor=actor.staff_id,
            at=self.now(),
        )
        self.core.commit(new, pairing)
        return str(new.id)

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
        """Open a support file for the paired student from a check-in's concern; the
        responsible counselor's first contact is due within two school days (policy
        `first_contact_school_days`, Monday to Friday; public holidays and make-up days come
        with the school calendar of issue 17)."""
        pairing = self._concern(actor, pairing_id, expected_version)
        authorize_new_file(self.core, actor, self.core.resource("student", pairing.student_id))
        if responsible_id is None and not actor.roles & {Role.COUNSELOR, Role.PRINCIPAL}:
            responsible_id = self._least_loaded_counselor(pairing.school_id)
        support_file = self.support._build_support_file(
            actor,
            pairing.student_id,
            category=category,
            risk_level=risk_level,
            reason=reason,
            responsible_id=responsible_id,
            origin="escalation",
            source={"kind": "pairing", "id": pairing_id, "check_in_id": check_in_id},
        )
        # The counselor's first contact with the student falls due within the policy's school
        # days (Monday to Friday; holidays come with the school calendar of issue 17).
        support_file.schedule_first_contact(policy=self.policy, actor=actor.staff_id, at=self.now())
        return self._escalate(actor, pairing, check_in_id, "support_file", support_file, reason)

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
        pairing = self._concern(actor, pairing_id, expected_version)
        self.core.check(actor, access.CASE_REPORT, "case", school_id=pairing.school_id)
        case = self.cases._build_bullying_case(
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
        return self._escalate(actor, pairing, check_in_id, "bullying_case", case, reason)
