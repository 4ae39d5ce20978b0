"""What a determination needs before it is recorded (issue 17, part B), for the tests of
other steps that only need a case determined: the guardian of every targeted and bullying
student invited and taking part (未成年人保护法 art. 39). `ready_case` on the aggregate
itself (domain tests), `ready_to_determine` through the application (any store)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import uuid4

from domain.bullying import GUARDIAN_PARTS, BullyingCase


def ready_case(c: BullyingCase, actor: str, at: datetime) -> BullyingCase:
    """The aggregate: each targeted and bullying party's guardian invited by phone and attending."""
    for p in list(c.parties):
        if p["part"] not in GUARDIAN_PARTS or c.guardian_participation(p["student_id"]) is not None:
            continue
        c.invite_guardian(
            invitation_id=uuid4().hex,
            student_id=p["student_id"],
            method="phone",
            invited_at=at,
            reached=True,
            actor=actor,
            at=at,
        )
        c.record_guardian_participation(
            participation_id=uuid4().hex,
            student_id=p["student_id"],
            participation="attended",
            min_attempts=3,
            actor=actor,
            at=at,
        )
    return c


def ready_to_determine(app: Any, actor: Any, case_id: str) -> None:
    """Through the application: the same, by `actor` (who may run the case)."""
    c = app.cases.get_case(actor, case_id)
    for sid, part in c.links:
        if part not in GUARDIAN_PARTS or c.guardian_participation(sid) is not None:
            continue
        app.cases.invite_guardian(actor, case_id, student_id=sid, method="phone")
        app.cases.record_guardian_participation(actor, case_id, student_id=sid, participation="attended")
