"""Issue 17, part B, through the application on SQLite and PostgreSQL: the guardians of both
sides take part in the determination (未成年人保护法 art. 39), and the refusal names the
students; the school's governance body and its meeting; the severity tiers and the police
track."""

from __future__ import annotations

from uuid import UUID

import pytest
from test_bullying import BULLYING, TARGETED, WITNESS, case, given_case

from domain.bullying import GuardianParticipationMissing
from domain.common import InvalidInput, PermissionDenied

PHONE = "13912345678"  # the guardians' phone in conftest's roster


def events_of(app, cid: str) -> list:
    return list(app.events.get(UUID(cid)))


# -- the guardians' part ----------------------------------------------------------------------------
def test_determining_without_the_guardians_is_refused_naming_the_students_and_nothing_is_saved(app, school, clock):
    # given a case whose investigation is complete, no guardian invited yet
    cid = given_case(app, school, clock, "investigating")
    app.cases.complete_investigation(school.safety, cid, findings="属实")
    before = case(app, school, cid).version
    # when the safety lead records the committee's determination
    with pytest.raises(GuardianParticipationMissing) as e:
        app.cases.determine(school.safety, cid, bullying=True, severity="minor", reason="委员会认定")
    # then it is refused with the targeted and the bullying students' names (not the witness's)
    assert "张小明、王小刚：尚未通知监护人参与认定" in e.value.text
    assert "李小红" not in e.value.text and "未成年人保护法第三十九条" in e.value.text
    assert case(app, school, cid).version == before


def test_each_notice_and_each_guardians_part_is_recorded_without_copying_the_guardians_phone(app, school, clock):
    cid = given_case(app, school, clock, "investigating")
    t, b = school.student(TARGETED), school.student(BULLYING)
    # the targeted student's guardian comes in person; the bullying student's cannot be reached
    app.cases.invite_guardian(school.safety, cid, student_id=t, method="in_person")
    app.cases.record_guardian_participation(school.safety, cid, student_id=t, participation="attended")
    for i in range(3):
        clock.advance(hours=2)
        app.cases.invite_guardian(
            school.safety, cid, student_id=b, method="phone", reached=False, note=f"第{i + 1}次电话无人接听"
        )
    app.cases.record_guardian_participation(school.safety, cid, student_id=b, participation="unreachable")
    app.cases.complete_investigation(school.safety, cid, findings="属实")
    app.cases.determine(school.safety, cid, bullying=True, severity="minor", reason="委员会认定")
    c = case(app, school, cid)
    assert c.status == "determined"
    assert len(c.guardian_participation(b)["attempt_ids"]) == 3
    # the events refer to the students by id, never to the guardians' phone or name
    for e in events_of(app, cid):
        if type(e).__name__.startswith("Guardian"):
            assert PHONE not in repr(vars(e)) and "家长" not in repr(vars(e))


def test_a_witness_guardian_is_not_asked_and_a_bad_notice_changes_nothing(app, school, clock):
    cid = given_case(app, school, clock, "investigating")
    before = case(app, school, cid).version
    with pytest.raises(InvalidInput):
        app.cases.invite_guardian(school.safety, cid, student_id=school.student(WITNESS), method="phone")
    with pytest.raises(InvalidInput):
        app.cases.invite_guardian(school.safety, cid, student_id=school.student(TARGETED), method="carrier pigeon")
    with pytest.raises(InvalidInput):
        app.cases.record_guardian_participation(
            school.safety, cid, student_id=school.student(TARGETED), participation="attended"
        )
    assert case(app, school, cid).version == before


def test_only_those_who_run_the_case_record_the_guardians_part(app, school, clock):
    cid = given_case(app, school, clock, "investigating")
    for actor in (school.teacher, school.counselor, school.admin, school.supervisor):
        with pytest.raises(PermissionDenied):
            app.cases.invite_guardian(actor, cid, student_id=school.student(TARGETED), method="phone")
        with pytest.raises(PermissionDenied):
            app.cases.record_guardian_participation(
                actor, cid, student_id=school.student(TARGETED), participation="declined"
            )
    app.cases.invite_guardian(school.principal, cid, student_id=school.student(TARGETED), method="written")
    assert len(case(app, school, cid).guardian_invitations) == 1
