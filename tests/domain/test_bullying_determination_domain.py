"""Issue 17, part B, on the aggregate alone: the guardians of both sides take part in the
determination (未成年人保护法 art. 39), the governance body's meeting, the severity tiers
of 教督〔2017〕10号 and the police-led track. No database, no clock, no gate."""

from __future__ import annotations

from datetime import timedelta
from functools import partial

import pytest
from determination_support import MEMBERS, ready_case
from test_bullying_domain import BUL, PRINCIPAL, SAFETY, TGT, WIT, advance, at, new_case, refused, replay

from domain.bullying import (
    BullyingCase,
    CommitteeMeetingRequired,
    GuardianParticipationMissing,
    QuorumNotMet,
)
from domain.common import InvalidInput, WrongState
from domain.policy import Policy

ATTEMPTS = 3


def invite(c: BullyingCase, iid: str, student: str = TGT, *, reached: bool = True, days: float = 2.2, **kw) -> None:
    fields = dict(
        invitation_id=iid,
        student_id=student,
        method="phone",
        invited_at=at(days),
        reached=reached,
        note="" if reached else "电话无人接听",
        actor=SAFETY,
        at=at(days),
    )
    fields.update(kw)
    c.invite_guardian(**fields)


def took_part(c: BullyingCase, pid: str, student: str = TGT, participation: str = "attended", **kw) -> None:
    c.record_guardian_participation(
        participation_id=pid,
        student_id=student,
        participation=participation,
        min_attempts=ATTEMPTS,
        actor=SAFETY,
        at=at(2.4),
        **kw,
    )


def meet(c: BullyingCase, mid: str = "m1", present: list[str] = MEMBERS, days: float = 2.6, **kw) -> None:
    fields = dict(
        meeting_id=mid,
        held_on=at(days).date(),
        body_id="body-1",
        members_present=present,
        active_members=MEMBERS,
        quorum=2,
        summary="法治副校长认为情节轻微；家长代表同意",
        decision="认定构成欺凌（一般）",
        actor=SAFETY,
        at=at(days),
    )
    fields.update(kw)
    c.record_committee_meeting(**fields)


def determine(c: BullyingCase, did: str = "d1", days: float = 3) -> None:
    c.determine(determination_id=did, bullying=True, severity="minor", reason="委员会认定", actor=SAFETY, at=at(days))


# -- the guardians' part ----------------------------------------------------------------------------
def test_a_determination_is_refused_until_both_sides_guardians_are_invited_naming_the_students():
    # given a case awaiting determination, with a targeted, a bullying and a witness student
    c = advance(new_case(), "awaiting_determination")
    # when the committee's determination is recorded with no guardian invited
    e = refused(c, GuardianParticipationMissing, partial(determine, c))
    # then it is refused, naming the targeted and bullying students (not the witness) and what is missing
    assert e.details["student_ids"] == [TGT, BUL]
    assert e.code == "guardian_participation_missing"
    assert "未成年人保护法第三十九条" in e.text and "尚未通知监护人参与认定" in e.text
    assert "被欺凌学生、涉嫌欺凌学生" in e.text  # (the application puts their names here)
    # and, named by the application, the names appear once each
    named = e.naming({TGT: "张小明", BUL: "王小刚"})
    assert "张小明、王小刚：尚未通知监护人参与认定" in named.text and named.text.count("张小明") == 1


def test_invited_guardians_still_need_their_participation_recorded():
    c = advance(new_case(), "awaiting_determination")
    invite(c, "n1", TGT)
    invite(c, "n2", BUL)
    took_part(c, "p1", TGT)
    e = refused(c, GuardianParticipationMissing, partial(determine, c))
    assert e.details["student_ids"] == [BUL] and "尚未记录监护人的参与情况" in e.text


def test_with_every_guardian_taking_part_the_determination_is_recorded_and_lists_them():
    # given both sides' guardians invited: one attended, one gave views in writing
    c = advance(new_case(), "awaiting_determination")
    invite(c, "n1", TGT, method="in_person")
    invite(c, "n2", BUL, method="written")
    took_part(c, "p1", TGT)
    took_part(c, "p2", BUL, "written_views", note="家长书面表示孩子只是开玩笑")
    meet(c)
    # when the determination is recorded
    determine(c)
    # then it is, and each guardian's part is on the case
    assert c.status == "determined"
    assert c.guardian_participation(TGT)["participation"] == "attended"
    assert c.guardian_participation(BUL)["note"] == "家长书面表示孩子只是开玩笑"
    assert [i["method"] for i in c.guardian_invitations] == ["in_person", "written"]
    assert replay(c).guardian_participations == c.guardian_participations


def test_unreachable_needs_the_policys_unanswered_attempts_and_lists_them():
    c = advance(new_case(), "awaiting_determination")
    invite(c, "n1", BUL, reached=False, days=2.1)
    invite(c, "n2", BUL, reached=False, days=2.2, method="written", note="挂号信退回")
    # two attempts are not enough when the policy asks three
    e = refused(c, InvalidInput, partial(took_part, c), pid="p1", student=BUL, participation="unreachable")
    assert "须至少3次联系未果" in e.text and "已记录2次" in e.text
    invite(c, "n3", BUL, reached=False, days=2.3)
    took_part(c, "p1", BUL, "unreachable")
    assert c.guardian_participation(BUL)["attempt_ids"] == ["n1", "n2", "n3"]


def test_a_guardian_reached_cannot_be_recorded_unreachable_and_one_not_reached_cannot_attend():
    c = advance(new_case(), "awaiting_determination")
    for i in range(3):
        invite(c, f"t{i}", TGT, reached=i == 2)
        invite(c, f"b{i}", BUL, reached=False)
    refused(c, InvalidInput, partial(took_part, c), pid="p1", student=TGT, participation="unreachable")
    e = refused(c, InvalidInput, partial(took_part, c), pid="p2", student=BUL, participation="declined")
    assert "须先记录已通知到该生监护人" in e.text


@pytest.mark.parametrize(
    "changes",
    [
        {"method": "pigeon"},
        {"student_id": WIT},
        {"student_id": "student-nobody"},
        {"reached": False, "note": " "},
        {"invited_at": at(2.2) + timedelta(hours=1)},
        {"invited_at": at(2.2).replace(tzinfo=None)},
    ],
)
def test_a_bad_invitation_is_refused_and_changes_nothing(changes):
    c = advance(new_case(), "awaiting_determination")
    refused(c, InvalidInput, partial(invite, c), iid="n1", **changes)
    assert c.guardian_invitations == ()


def test_views_in_writing_need_their_summary_and_the_participation_must_be_known():
    c = advance(new_case(), "awaiting_determination")
    invite(c, "n1", TGT)
    refused(c, InvalidInput, partial(took_part, c), pid="p1", participation="written_views")
    refused(c, InvalidInput, partial(took_part, c), pid="p1", participation="maybe")


def test_guardians_are_invited_before_the_determination_not_after():
    c = advance(new_case(), "determined")
    refused(c, WrongState, partial(invite, c), iid="late", days=3.5)


def test_a_returned_determination_keeps_the_guardians_part_and_a_recurrence_needs_it_again():
    c = advance(new_case(), "determined")
    # a determination the principal returns is determined again on the same participation
    c.return_determination(reason="证据不足", actor=PRINCIPAL, at=at(3.5))
    meet(c, "m2", days=3.55)
    determine(c, "d2", days=3.6)
    c.approve_determination(
        reason="同意", follow_up_due=at(40).date(), appeal_until=at(20).date(), actor=PRINCIPAL, at=at(4)
    )
    # a recurrence (a new cycle) needs the guardians again
    c.plan_intervention(
        intervention_id="i1",
        student_id=TGT,
        kind="support",
        plan="方案",
        responsible_staff_id="c",
        actor=SAFETY,
        at=at(5),
    )
    c.plan_intervention(
        intervention_id="i2",
        student_id=BUL,
        kind="education",
        plan="方案",
        responsible_staff_id="c",
        actor=SAFETY,
        at=at(5),
    )
    c.close(reason="结案", actor=PRINCIPAL, at=at(6))
    c.reopen(reason="再次发生", investigation_due=at(30).date(), actor=SAFETY, at=at(10))
    c.start_investigation(handler_id=SAFETY, actor=SAFETY, at=at(11))
    c.complete_investigation(findings="属实", actor=SAFETY, at=at(12))
    e = refused(c, GuardianParticipationMissing, partial(determine, c), did="d3", days=13)
    assert e.details["student_ids"] == [TGT, BUL]
    ready_case(c, SAFETY, at(12.5))
    determine(c, "d3", days=13)
    assert c.status == "determined"


# -- the governance body's meeting ------------------------------------------------------------------
def test_without_a_meeting_of_the_body_the_determination_is_refused():
    # given both guardians took part, but no meeting of the 学生欺凌治理委员会 is recorded
    c = advance(new_case(), "awaiting_determination")
    for i, student in enumerate((TGT, BUL)):
        invite(c, f"n{i}", student)
        took_part(c, f"p{i}", student)
    e = refused(c, CommitteeMeetingRequired, partial(determine, c))
    assert "未成年人学校保护规定第二十四条" in e.text


def test_a_meeting_short_of_its_quorum_is_recorded_as_it_was_but_cannot_determine():
    c = advance(new_case(), "awaiting_determination")
    invite(c, "n1", TGT)
    invite(c, "n2", BUL)
    took_part(c, "p1", TGT)
    took_part(c, "p2", BUL, "declined")
    # when one of three members met (the policy asked two)
    meet(c, "m1", present=MEMBERS[:1])
    assert c.pending_meeting["quorate"] is False
    # then the determination is refused, saying how many came and how many were needed
    e = refused(c, QuorumNotMet, partial(determine, c))
    assert e.details == {"present": 1, "quorum": 2, "total": 3}
    assert "出席成员1人，未达到规定人数2人（委员会现有成员3人）" in e.text
    # and a second meeting with two members present is enough
    meet(c, "m2", present=MEMBERS[1:], days=2.7)
    determine(c)
    assert c.meeting_of("d1")["id"] == "m2"


def test_a_returned_determination_needs_the_body_to_meet_again():
    c = advance(new_case(), "determined")
    c.return_determination(reason="请补充", actor=PRINCIPAL, at=at(3.5))
    refused(c, CommitteeMeetingRequired, partial(determine, c), did="d2", days=3.6)
    meet(c, "m2", days=3.55)
    determine(c, "d2", days=3.6)
    assert c.meeting_of("d2")["id"] == "m2" and c.meeting_of("d1")["id"] != "m2"


@pytest.mark.parametrize(
    "changes",
    [
        {"members_present": []},
        {"members_present": ["member-1", "member-1"]},
        {"members_present": ["member-1", "stranger"]},
        {"held_on": at(4).date()},
        {"held_on": at(-5).date()},
        {"summary": " "},
        {"decision": ""},
        {"quorum": 0},
    ],
)
def test_a_bad_meeting_record_is_refused_and_changes_nothing(changes):
    c = advance(new_case(), "awaiting_determination")
    refused(c, InvalidInput, partial(meet, c), **changes)
    assert c.committee_meetings == ()


def test_the_body_meets_only_on_a_case_awaiting_its_determination():
    c = advance(new_case(), "investigating")
    refused(c, WrongState, partial(meet, c))


@pytest.mark.parametrize(
    "configured, members, quorum",
    [(None, 5, 3), (None, 4, 3), ("majority", 7, 4), (5, 9, 5), (2, 3, 2)],
)
def test_the_quorum_is_the_policys_majority_or_number(configured, members, quorum):
    policy = Policy.from_mapping({} if configured is None else {"committee_quorum": configured})
    assert policy.committee_quorum_for(members) == quorum


@pytest.mark.parametrize("bad", ["half", 0, -1, True, 2.5])
def test_a_quorum_that_is_neither_is_refused_when_the_policy_loads(bad):
    with pytest.raises(InvalidInput):
        Policy.from_mapping({"committee_quorum": bad})
