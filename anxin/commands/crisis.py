"""The crisis pathway (心理危机干预): a crisis signal (a self-harm answer in a screening, a
counselor's record of a crisis, a check-in concern marked as a possible risk to life, a
bullying case's note of self-harm) opens a crisis on the student's support file, opening
the file at 高危 or raising it; and the checklist of the same day's work and after, each
step recorded by any counselor of the school or the principal.

Gate: CRISIS_REPORT for a staff member's signal (a check-in, a case), CRISIS_READ for the
checklist (any counselor of the school, the principal: never the counselling notes),
CRISIS_WRITE to record a step. The signal's own stream (the screening record, the pairing,
the case) and the file are saved in one transaction by the command that raised it.

What the lead's notifications hook onto: `SupportFile.CrisisOpened` (a crisis to act on
today), `SupportFile.CrisisSignalAdded` (another signal on an open crisis), each checklist
event, and `SupportFile.CrisisConcluded`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any
from uuid import uuid4

from anxin.commands.base import Commands, student_resource
from domain import access
from domain.access import Resource
from domain.common import Actor, DomainError, Role
from domain.support import SupportFile

if TYPE_CHECKING:
    from anxin.commands.support import SupportCommands
    from anxin.core import Core


class NoCrisisResponsible(DomainError):
    code = "no_crisis_responsible"
    message = "本校没有在岗的心理老师或校长，无法建立危机干预档案；请联系管理员"


@dataclass(frozen=True)
class CrisisView:
    """What a counselor of the school sees of a file in crisis: the student, the level, who
    is responsible, the crisis and its checklist. Never the counselling notes."""

    file_id: str
    version: int
    school_id: str
    student_id: str
    risk_level: str
    responsible_id: str
    status: str
    crisis: dict[str, Any] | None
    checklist: list[dict[str, Any]]
    return_missing: list[str]
    past_crises: int


class CrisisCommands(Commands):
    """Crisis signals into a file; the checklist's steps; what a counselor reads of it."""

    def __init__(self, core: Core, support: SupportCommands) -> None:
        super().__init__(core)
        self.support = support

    # -- a signal ----------------------------------------------------------------------------
    def authorize_signal(self, actor: Actor, student_id: str) -> Resource:
        """The gate's CRISIS_REPORT for a signal about this student (the student's stream)."""
        student = student_resource(self.core, student_id)
        self.core.authorize(
            actor,
            access.CRISIS_REPORT,
            Resource(kind="file", school_id=student.school_id, classes=student.classes, district=student.district),
        )
        return student

    def signal(
        self,
        actor: Actor,
        student_id: str,
        *,
        trigger: str,
        source: dict[str, Any],
        reason: str,
        origin: str,
        at: datetime,
    ) -> SupportFile:
        """The student's open file with the crisis opened (or the signal added), unsaved: the
        caller (already through the gate) saves it with its own stream. Without an open file
        one is opened at 高危, its responsible person the actor if a counselor or the
        principal, otherwise the school's least loaded counselor (or the principal)."""
        fid = self.support._open_file_of(student_id)
        if fid is not None:
            f = self.core.load(fid, SupportFile)
        else:
            school_id = student_resource(self.core, student_id).school_id or ""
            f = self.support._build_support_file(
                actor,
                student_id,
                category="自伤风险",
                risk_level="high",
                reason=reason,
                responsible_id=self._responsible(school_id, actor),
                origin=origin,
                source=source,
            )
        f.open_crisis(
            crisis_id=uuid4().hex,
            trigger=trigger,
            source=source,
            reason=reason,
            policy=self.policy,
            actor=actor.staff_id,
            at=at,
        )
        return f

    def _responsible(self, school_id: str, actor: Actor) -> str:
        if actor.school_id == school_id and actor.roles & {Role.COUNSELOR, Role.PRINCIPAL}:
            return actor.staff_id
        rows = self.db.fetch(
            "SELECT s.staff_id, s.roles, (SELECT COUNT(*) FROM {t}anxin_directory d WHERE d.kind = 'file' "
            "AND d.owner_id = s.staff_id AND d.status = 'open') AS n FROM {t}anxin_staff s "
            "WHERE s.school_id = ? AND s.active = 1 ORDER BY n, s.staff_id",
            (school_id,),
        )
        for role in (Role.COUNSELOR.value, Role.PRINCIPAL.value):
            for staff_id, roles, _n in rows:
                if role in (roles or ""):
                    return str(staff_id)
        raise NoCrisisResponsible()

    # -- reading the checklist -----------------------------------------------------------------
    def get_crisis(self, actor: Actor, file_id: str) -> CrisisView:
        """A file's crisis and its checklist (CRISIS_READ), without the counselling notes."""
        self.core.check(actor, access.CRISIS_READ, "file", file_id)
        f = self.core.load(file_id, SupportFile)
        return crisis_view(f, self.now())

    # -- the checklist (CRISIS_WRITE) ----------------------------------------------------------
    def _step(self, actor: Actor, file_id: str, expected_version: int | None, call: str, **fields: Any) -> None:
        with self.core.editing(file_id, SupportFile, expected_version, check=(actor, access.CRISIS_WRITE, "file")) as f:
            getattr(f, call)(**fields, actor=actor.staff_id, at=self.now())

    def record_crisis_assessment(
        self, actor: Actor, file_id: str, *, assessment: str, expected_version: int | None = None
    ) -> None:
        """The student seen and the risk assessed (due within hours of the signal)."""
        self._step(actor, file_id, expected_version, "record_crisis_assessment", assessment=assessment)

    def record_guardian_informed(
        self,
        actor: Actor,
        file_id: str,
        *,
        guardian: str,
        method: str,
        response: str = "pending",
        note: str = "",
        expected_version: int | None = None,
    ) -> None:
        """The guardian informed (phone, in person, written 告知书), with their consent,
        refusal, or no answer yet (same day)."""
        self._step(
            actor,
            file_id,
            expected_version,
            "record_guardian_informed",
            guardian=guardian,
            method=method,
            response=response,
            note=note,
        )

    def record_guardian_response(
        self, actor: Actor, file_id: str, *, response: str, note: str = "", expected_version: int | None = None
    ) -> None:
        """The guardian's informed consent (知情同意) or refusal, after being informed."""
        self._step(actor, file_id, expected_version, "record_guardian_response", response=response, note=note)

    def record_supervision(
        self, actor: Actor, file_id: str, *, supervisors: str, note: str = "", expected_version: int | None = None
    ) -> None:
        """Safety supervision (安全监护, 不离人) arranged until the guardian takes over."""
        self._step(actor, file_id, expected_version, "record_supervision", supervisors=supervisors, note=note)

    def record_handover(
        self, actor: Actor, file_id: str, *, guardian: str, note: str = "", expected_version: int | None = None
    ) -> None:
        """The student handed to the guardian (same day)."""
        self._step(actor, file_id, expected_version, "record_handover", guardian=guardian, note=note)

    def record_crisis_referral(
        self,
        actor: Actor,
        file_id: str,
        *,
        agency_id: str | None = None,
        institution: str = "",
        note: str = "",
        expected_version: int | None = None,
    ) -> None:
        """A referral to a mental-health institution, picked from the district's registry of
        agencies (`agency_id`; the same registry as a file's referrals), or, where the
        institution is not in it yet, named (`institution`); its feedback (回执) falls due."""
        with self.core.editing(file_id, SupportFile, expected_version, check=(actor, access.CRISIS_WRITE, "file")) as f:
            if agency_id:
                found = self.core.agencies.pick(f.school_id, agency_id)
                agency_id, institution = found.id, found.name
            f.record_crisis_referral(
                institution=institution,
                agency_id=agency_id or None,
                note=note,
                policy=self.policy,
                actor=actor.staff_id,
                at=self.now(),
            )

    def record_referral_feedback(
        self, actor: Actor, file_id: str, *, summary: str, expected_version: int | None = None
    ) -> None:
        """The institution's feedback (回执) received."""
        self._step(actor, file_id, expected_version, "record_referral_feedback", summary=summary)

    def note_medical_advice(
        self, actor: Actor, file_id: str, *, advice: str, expected_version: int | None = None
    ) -> None:
        """The doctor's advice on the return to school (part of 复学评估)."""
        self._step(actor, file_id, expected_version, "note_medical_advice", advice=advice)

    def record_return_assessment(
        self, actor: Actor, file_id: str, *, assessment: str, expected_version: int | None = None
    ) -> None:
        """The counselor's assessment for the return to school (part of 复学评估; the plan
        revised since the crisis is the third part, on the file)."""
        self._step(actor, file_id, expected_version, "record_return_assessment", assessment=assessment)


def crisis_view(f: SupportFile, now: datetime) -> CrisisView:
    return CrisisView(
        file_id=str(f.id),
        version=f.version,
        school_id=f.school_id,
        student_id=f.student_id,
        risk_level=f.risk_level,
        responsible_id=f.responsible_id,
        status=f.status,
        crisis=f.crisis,
        checklist=f.crisis_checklist(now),
        return_missing=f.return_parts_missing(),
        past_crises=len(f.past_crises),
    )


__all__ = ["CrisisCommands", "CrisisView", "NoCrisisResponsible", "crisis_view"]
