"""Issue 17 (A): a bullying case's intake as the law sets it out: the five forms of art. 20,
clues (线索) that name no student yet, the clocks, and the error messages. The aggregate on its
own: no database, no clock, no gate."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import reduce
from uuid import uuid4

import pytest
from determination_support import ready_case

from domain.bullying import (
    FORMS,
    BullyingCase,
    ClueHasTargetedParty,
    InterventionsRequired,
    TargetedPartyNotIdentified,
    TargetedPartyRequired,
)
from domain.common import DomainError, InvalidInput

T0 = datetime(2026, 10, 12, 9, 0, tzinfo=UTC)  # a Monday
DAY = timedelta(days=1)
SAFETY, PRINCIPAL = "safety-1", "principal-1"
TGT, BUL = "student-t", "student-b"


def at(days: float = 0) -> datetime:
    return T0 + timedelta(days=days)


def clue(**changes) -> BullyingCase:
    """A hotline clue that names nobody."""
    fields = dict(
        id=uuid4(),
        school_id="school-1",
        channel="hotline",
        occurred_at=T0 - DAY,
        place="不详",
        forms=["exclusion"],
        parties=[],
        narrative="来电称七年级有学生长期被同学孤立",
        investigation_due=T0.date() + 10 * DAY,
        actor="teacher-1",
        at=T0,
        students_unconfirmed=True,
    )
    fields.update(changes)
    return BullyingCase.report(**fields)


def refused(c: BullyingCase, error: type[DomainError], command, **kw) -> DomainError:
    """The command raises `error` and records nothing."""
    before = (c.version, len(c.pending_events))
    with pytest.raises(error) as e:
        command(**kw)
    assert (c.version, len(c.pending_events)) == before
    return e.value


def replay(c: BullyingCase) -> BullyingCase:
    return reduce(lambda agg, e: e.mutate(agg), c.collect_events(), None)


# -- the five forms (art. 20) --------------------------------------------------------------------
def test_the_five_forms_of_art_20_include_malicious_exclusion_and_isolation():
    # Given the vocabulary of 未成年人学校保护规定 art. 20
    # When a report names social bullying (恶意排斥、孤立) alone
    c = clue(forms=["exclusion"])
    # Then it is recorded with its code, labelled in the users' words, beside the other four
    assert c.forms == ["exclusion"]
    assert FORMS["exclusion"] == "恶意排斥、孤立"
    assert set(FORMS) == {"physical", "verbal", "property", "exclusion", "online"}


# -- clues without named students --------------------------------------------------------------
def test_a_clue_names_no_student_only_when_the_reporter_says_they_are_not_confirmed():
    # Given a hotline report with no student named
    # When the reporter does not say the students are unconfirmed, then it is refused as before
    with pytest.raises(TargetedPartyRequired):
        clue(students_unconfirmed=False)
    # When they do, then the clue is recorded with no party, and says so
    c = clue()
    assert (c.parties, c.students_unconfirmed, c.status) == ([], True, "reported")
    assert replay(c).students_unconfirmed


def test_a_clue_may_name_a_bullying_student_without_a_targeted_one():
    c = clue(parties=[(BUL, "bullying")])
    assert c.links == [(BUL, "bullying")] and c.students_unconfirmed
    with pytest.raises(InvalidInput):
        clue(parties=[(BUL, "bullying"), (BUL, "witness")])


def test_the_investigation_starts_on_a_clue_but_is_completed_and_determined_only_with_a_targeted_student():
    # Given a clue whose investigation has started
    c = clue()
    c.start_investigation(handler_id=SAFETY, actor=SAFETY, at=at(1))
    # When the investigation is completed with no targeted student, then it is refused, naming what
    e = refused(c, TargetedPartyNotIdentified, c.complete_investigation, findings="属实", actor=SAFETY, at=at(2))
    assert "完成调查" in str(e) and "被欺凌学生" in str(e) and e.code == "targeted_party_not_identified"
    # When the inquiry identifies the targeted student, then it completes and can be determined
    c.add_party(student_id=TGT, part="targeted", reason="核查确认", actor=SAFETY, at=at(2))
    c.complete_investigation(findings="属实", actor=SAFETY, at=at(3))
    ready_case(c, SAFETY, at(4))
    c.determine(determination_id="d1", bullying=True, severity="minor", reason="认定", actor=SAFETY, at=at(4))
    assert c.status == "determined" and not c.students_unconfirmed


def test_an_investigation_naming_only_a_bullying_student_is_not_completed():
    # Given a clue naming only the alleged bullying student, under investigation
    c = clue(parties=[(BUL, "bullying")])
    c.start_investigation(handler_id=SAFETY, actor=SAFETY, at=at(1))
    # When it is completed, then it is refused: the targeted student is what is missing
    e = refused(c, TargetedPartyNotIdentified, c.complete_investigation, findings="x", actor=SAFETY, at=at(2))
    assert "尚未确认被欺凌学生" in str(e)


def test_a_clue_with_no_targeted_student_is_closed_as_no_bullying_with_a_reason():
    # Given a clue under inquiry
    c = clue()
    c.start_investigation(handler_id=SAFETY, actor=SAFETY, at=at(1))
    # When the finding is unknown or the reason empty, then nothing is recorded
    refused(c, InvalidInput, c.dismiss_clue, finding="maybe", reason="核查", actor=PRINCIPAL, at=at(2))
    refused(c, InvalidInput, c.dismiss_clue, finding="not_bullying", reason=" ", actor=PRINCIPAL, at=at(2))
    # When it is dismissed as not concerning students of this school
    c.dismiss_clue(finding="not_our_students", reason="经核查为外校学生", actor=PRINCIPAL, at=at(2))
    # Then it is closed without a determination, and can be reopened if it recurs
    assert (c.status, c.determination, c.closures[-1]["finding"]) == ("closed", None, "not_our_students")
    assert replay(c).status == "closed"
    c.reopen(reason="再次来电", investigation_due=at(3).date() + 10 * DAY, actor=SAFETY, at=at(3))
    assert c.status == "reopened"


def test_a_case_with_a_targeted_student_cannot_be_closed_as_a_clue():
    c = clue(parties=[(TGT, "targeted")])
    e = refused(c, ClueHasTargetedParty, c.dismiss_clue, finding="not_bullying", reason="无", actor=PRINCIPAL, at=at(1))
    assert "学生欺凌治理委员会认定" in str(e)


# -- error messages -------------------------------------------------------------------------------
def test_closure_without_an_education_plan_names_the_side_and_the_missing_type_once():
    # given an approved bullying determination; the bullying student has counselling only
    c = BullyingCase.report(
        id=uuid4(),
        school_id="school-1",
        channel="teacher",
        occurred_at=T0 - DAY,
        place="操场",
        forms=["verbal"],
        parties=[(TGT, "targeted"), (BUL, "bullying")],
        narrative="辱骂",
        intake_due=T0.date() + DAY,
        actor="teacher-1",
        at=T0,
    )
    c.start_investigation(handler_id=SAFETY, investigation_due=at(1).date() + 10 * DAY, actor=SAFETY, at=at(1))
    c.complete_investigation(findings="属实", actor=SAFETY, at=at(2))
    ready_case(c, SAFETY, at(3))
    c.determine(determination_id="d1", bullying=True, severity="minor", reason="认定", actor=SAFETY, at=at(3))
    c.approve_determination(
        reason="同意", follow_up_due=at(40).date(), appeal_until=at(20).date(), actor=PRINCIPAL, at=at(4)
    )
    for iid, sid, kind in (("i1", TGT, "support"), ("i2", BUL, "counselling")):
        c.plan_intervention(
            intervention_id=iid,
            student_id=sid,
            kind=kind,
            plan="方案",
            responsible_staff_id=SAFETY,
            actor=SAFETY,
            at=at(5),
        )
    # when it is closed, then the refusal names the bullying side and 教育矫治, once, not the other side
    e = refused(c, InterventionsRequired, c.close, reason="结案", actor=PRINCIPAL, at=at(6))
    assert str(e).count("涉嫌欺凌学生须有「教育矫治」") == 1 and "被欺凌学生" not in str(e)
    # and named by the application, each student by the name it is given
    named = e.naming({BUL: "李四"}.__getitem__)
    assert "涉嫌欺凌学生李四须有「教育矫治」" in str(named) and named.details["student_ids"] == [BUL]
