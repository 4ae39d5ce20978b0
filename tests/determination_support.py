"""What a determination needs before it is recorded (issue 17, part B), for the tests of
other steps that only need a case determined: the guardian of every targeted and bullying
student invited and taking part (未成年人保护法 art. 39), and a meeting of the school's
学生欺凌治理委员会 with its quorum present (未成年人学校保护规定 art. 23-24). `ready_case` on
the aggregate itself (domain tests), `ready_to_determine` through the application (any
store; it appoints the school's body first if it has no member yet)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import uuid4

from domain.bullying import GUARDIAN_PARTS, BullyingCase
from domain.bullying.errors import AppealPending, AppealWindowClosed
from domain.common import Actor, Role, require

MEMBERS = ["member-1", "member-2", "member-3"]  # the body's members on the aggregate alone
BODY = [("赵校长", "school_leader"), ("钱警官", "rule_of_law_vice_principal"), ("孙律师", "legal_adviser")]


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
    if c.pending_meeting is None or not c.pending_meeting["quorate"]:
        c.record_committee_meeting(
            meeting_id=uuid4().hex,
            held_on=at.date(),
            body_id="body-1",
            members_present=MEMBERS,
            active_members=MEMBERS,
            quorum=2,
            summary="成员逐一发表意见",
            decision="按多数意见认定",
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
    members = app.committee.active_member_ids(c.school_id)
    if not members:
        principal = Actor("body-setup", frozenset({Role.PRINCIPAL}), school_id=c.school_id)
        members = [
            app.committee.appoint_member(principal, school_id=c.school_id, name=name, capacity=capacity)
            for name, capacity in BODY
        ]
    meeting = app.cases.get_case(actor, case_id).pending_meeting
    if meeting is None or not meeting["quorate"]:
        app.cases.record_committee_meeting(
            actor, case_id, members_present=members, summary="成员逐一发表意见", decision="按多数意见认定"
        )


def determine_legacy(
    app: Any, actor: Any, case_id: str, *, severity: str = "suspected_offence", reason: str = "认定", ready: bool = True
) -> None:
    """What an older determination recorded (a legacy severity such as 违反治安管理或涉嫌犯罪, now
    refused for new determinations): the event written as before, for tests of old streams.
    The guardians and the meeting are readied first, as before any determination."""
    from uuid import uuid4

    from domain import access
    from domain.bullying import BullyingCase

    if ready:
        ready_to_determine(app, actor, case_id)
    core = app.cases.core
    with core.editing(case_id, BullyingCase, None, check=(actor, access.CASE_WRITE, "case")) as c:
        c._determined(
            determination_id=uuid4().hex,
            bullying=True,
            severity=severity,
            horseplay=False,
            reason=reason,
            actor=actor.staff_id,
            at=core.now(),
        )


def lodge_legacy_appeal(
    c: BullyingCase, *, appeal_id: str, party_id: str, grounds: str, lodged_on: Any, actor: str, at: datetime
) -> None:
    """What an older stream recorded on the aggregate: a party's appeal (申诉) of the approved
    determination, now refused for new cases (the county review 复查 replaced it): the event
    written as before, for tests of old streams (they still load and take their outcome)."""
    # the rules an appeal was lodged under then, so a test of old streams meets the same refusals
    c._require_not_closed("申诉")
    if c.pending_appeal_id is not None or c.pending_review_id is not None:
        raise AppealPending(action="再次申诉")
    det = c._require_approved("申诉")
    party = c._party(party_id)
    require(party["part"] != "witness", "旁观/证人不能对认定提出申诉")
    require(det["source"] not in ("appeal_review", "county_review"), "复查变更后的认定为最终决定，不能在本案再次申诉")
    require(
        not any(a["party_id"] == party_id and a["determination_id"] == det["id"] for a in c.appeals.values()),
        "该当事人已就此认定申诉过",
    )
    if c.appeal_until is None or lodged_on > c.appeal_until:
        raise AppealWindowClosed(until=c.appeal_until.isoformat() if c.appeal_until else "—")
    c._appeal_lodged(
        appeal_id=appeal_id,
        party_id=party_id,
        grounds=grounds,
        lodged_on=lodged_on,
        determination_id=det["id"],
        actor=actor,
        at=at,
    )


def appeal_legacy(app: Any, actor: Any, case_id: str, *, party_id: str, grounds: str, lodged_on: Any = None) -> str:
    """The same through the application's store (the case saved, its projections and notices
    as for any event), by `actor` (who may run the case); returns the appeal's id."""
    from domain import access

    core = app.cases.core
    appeal_id = uuid4().hex
    at = core.now()
    with core.editing(case_id, BullyingCase, None, check=(actor, access.CASE_WRITE, "case")) as c:
        lodge_legacy_appeal(
            c,
            appeal_id=appeal_id,
            party_id=party_id,
            grounds=grounds,
            lodged_on=lodged_on or at.date(),
            actor=actor.staff_id,
            at=at,
        )
    return appeal_id
