"""Issue 17, part B, on the aggregate alone: the guardians of both sides take part in the
determination (未成年人保护法 art. 39), the governance body's meeting, the severity tiers
of 教督〔2017〕10号 and the police-led track. No database, no clock, no gate."""

from __future__ import annotations

from datetime import timedelta
from functools import partial

import pytest
from determination_support import ready_case
from test_bullying_domain import BUL, PRINCIPAL, SAFETY, TGT, WIT, advance, at, new_case, refused, replay

from domain.bullying import BullyingCase, GuardianParticipationMissing
from domain.common import InvalidInput, WrongState

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
