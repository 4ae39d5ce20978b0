"""Issue 17, part B, through the application on SQLite and PostgreSQL: the guardians of both
sides take part in the determination (未成年人保护法 art. 39), and the refusal names the
students; the school's governance body and its meeting; the severity tiers and the police
track."""

from __future__ import annotations

from uuid import UUID

import pytest
from determination_support import ready_to_determine
from test_bullying import BULLYING, TARGETED, WITNESS, case, given_case

from domain.bullying import CommitteeMeetingRequired, GuardianParticipationMissing, QuorumNotMet
from domain.committee import NoGoverningBody, UnknownMember
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
    ready_to_determine(app, school.safety, cid)  # (the body's meeting; the guardians are done)
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


# -- the governance body and its meeting --------------------------------------------------------------
def appoint_body(app, school) -> list[str]:
    return [
        app.committee.appoint_member(school.principal, school_id=school.id, name=name, capacity=capacity)
        for name, capacity in [
            ("赵副校长", "school_leader"),
            ("钱警官", "rule_of_law_vice_principal"),
            ("孙律师", "legal_adviser"),
            ("李医生", "expert"),
            ("周家长", "parent_rep"),
        ]
    ]


def awaiting_with_guardians(app, school, clock) -> str:
    cid = given_case(app, school, clock, "investigating")
    for no in (TARGETED, BULLYING):
        app.cases.invite_guardian(school.safety, cid, student_id=school.student(no), method="phone")
        app.cases.record_guardian_participation(
            school.safety, cid, student_id=school.student(no), participation="attended"
        )
    app.cases.complete_investigation(school.safety, cid, findings="属实")
    return cid


def test_the_principal_keeps_the_body_and_its_names_stay_in_its_stream(app, school, clock):
    # when the principal appoints five members and one leaves
    members = appoint_body(app, school)
    app.committee.remove_member(school.principal, school_id=school.id, member_id=members[-1], reason="任期届满")
    # then the safety lead reads who sits on it, in which capacity
    body = app.committee.get_body(school.safety, school.id)
    assert [m["name"] for m in body.active_members] == ["赵副校长", "钱警官", "孙律师", "李医生"]
    assert body.members[members[-1]]["left_reason"] == "任期届满"
    # and the directory knows the stream by its school only: no name anywhere in its row
    row = app.db.fetchone(
        "SELECT kind, school_id, class_name, owner_id, subject_id FROM {t}anxin_directory WHERE stream_id = ?",
        (str(app.committee.body_id(school.id)),),
    )
    assert row == ("committee", school.id, None, None, None)


def test_only_the_principal_appoints_and_others_are_refused_and_recorded(app, school, clock):
    for actor in (school.safety, school.teacher, school.counselor, school.admin, school.supervisor):
        with pytest.raises(PermissionDenied):
            app.committee.appoint_member(actor, school_id=school.id, name="某人", capacity="expert")
    for actor in (school.teacher, school.counselor, school.admin, school.supervisor):
        with pytest.raises(PermissionDenied):
            app.committee.get_body(actor, school.id)
    denied = app.db.fetch("SELECT COUNT(*) FROM {t}anxin_access WHERE action = 'committee.admin' AND allowed = 0", ())[
        0
    ][0]
    assert denied == 5
    assert app.committee.get_body(school.principal, school.id) is None


def test_a_meeting_needs_a_body_and_its_members_and_the_determination_a_quorum(app, school, clock):
    cid = awaiting_with_guardians(app, school, clock)
    # without a body, no meeting can be recorded; without a meeting, no determination
    with pytest.raises(NoGoverningBody):
        app.cases.record_committee_meeting(school.safety, cid, members_present=["x"], summary="s", decision="d")
    with pytest.raises(CommitteeMeetingRequired):
        app.cases.determine(school.safety, cid, bullying=False, horseplay=True, reason="打闹")
    members = appoint_body(app, school)
    with pytest.raises(InvalidInput):
        app.cases.record_committee_meeting(
            school.safety, cid, members_present=[members[0], "stranger"], summary="s", decision="d"
        )
    # two of five present: the policy's majority is three
    app.cases.record_committee_meeting(
        school.safety, cid, members_present=members[:2], summary="意见不一", decision="暂不认定"
    )
    with pytest.raises(QuorumNotMet) as e:
        app.cases.determine(school.safety, cid, bullying=False, horseplay=True, reason="打闹")
    assert "出席成员2人，未达到规定人数3人（委员会现有成员5人）" in e.value.text
    # three present: quorate, and the determination rests on that meeting
    meeting = app.cases.record_committee_meeting(
        school.safety, cid, members_present=members[1:4], summary="一致认为属打闹嬉戏", decision="不构成欺凌"
    )
    det = app.cases.determine(school.safety, cid, bullying=False, horseplay=True, reason="打闹嬉戏")
    c = case(app, school, cid)
    assert c.meeting_of(det)["id"] == meeting and c.meeting_of(det)["quorum"] == 3


def test_a_member_who_left_cannot_be_present(app, school, clock):
    cid = awaiting_with_guardians(app, school, clock)
    members = appoint_body(app, school)
    app.committee.remove_member(school.principal, school_id=school.id, member_id=members[0], reason="调离")
    with pytest.raises(InvalidInput):
        app.cases.record_committee_meeting(school.safety, cid, members_present=members[:3], summary="s", decision="d")
    with pytest.raises(UnknownMember):
        app.committee.remove_member(school.principal, school_id=school.id, member_id=members[0], reason="再次")
