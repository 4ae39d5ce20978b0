"""The roster and 一岗双带 pairings, through the application, on SQLite and PostgreSQL:
enrolment and its uniqueness, corrections, leaving, check-ins on a cadence, overdue,
corrections that name what they correct, ending, who may write, and concurrent edits."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

import pytest
from conftest import ADMIN, Clock, School, Store

from anxin.service import Anxin
from domain.common import Conflict, InvalidInput, PermissionDenied, WrongState
from domain.pairing import Pairing
from domain.roster import Student

NEW_STUDENT: dict[str, Any] = {
    "student_no": "2026300",
    "name": "孙小雨",
    "gender": "女",
    "birth_date": date(2013, 9, 1),
    "grade": "七年级",
    "class_name": "七年级1班",
    "guardians": [{"name": "孙妈妈", "phone": "139-1234-0000"}],
    "tags": ["流动儿童", " "],
}


def directory(app: Anxin, stream_id: str) -> tuple[Any, ...] | None:
    return app.db.fetchone(
        "SELECT kind, school_id, class_name, owner_id, subject_id, status FROM {t}anxin_directory WHERE stream_id = ?",
        (stream_id,),
    )


def event_count(app: Anxin) -> int:
    return app.recorder.max_notification_id() or 0


def pair_teacher(app: Anxin, school: School, no: str = "2026001") -> str:
    return app.pairings.pair(school.principal, staff_id=school.teacher.staff_id, student_id=school.student(no))


# -- roster ------------------------------------------------------------------------------------
def test_an_enrolled_student_is_stored_with_clean_fields_and_listed(app: Anxin, school: School) -> None:
    # when a student is enrolled
    sid = app.roster.enrol_student(ADMIN, school_id=school.id, **NEW_STUDENT)

    # then their identity is kept, cleaned, in their own stream
    s = app.roster.get_student(school.principal, sid)
    assert (s.name, s.gender, s.birth_date, s.class_name, s.active) == (
        "孙小雨",
        "female",
        date(2013, 9, 1),
        "七年级1班",
        True,
    )
    assert s.guardians == [{"name": "孙妈妈", "phone": "13912340000"}] and s.tags == ["流动儿童"]
    # and the directory knows ids, school and class only
    assert directory(app, sid) == ("student", school.id, "七年级1班", None, sid, "active")
    assert "孙小雨" in [r.name for r in app.roster.list_students(school.principal, school.id)]


def test_a_duplicate_student_number_is_refused_and_changes_nothing(store: Store, app: Anxin, school: School) -> None:
    # given a student enrolled with number 2026001, and the store's state
    before = (event_count(app), app.db.fetch("SELECT * FROM {t}anxin_directory ORDER BY stream_id"))

    # when the same number is enrolled again in the same school (here and from another instance)
    for instance in (app, store.open()):
        with pytest.raises(InvalidInput) as raised:
            instance.roster.enrol_student(ADMIN, school_id=school.id, **{**NEW_STUDENT, "student_no": " 2026001 "})
        assert "2026001" in raised.value.text and "已存在" in raised.value.text

    # then nothing changed, and the original student is intact
    assert (event_count(app), app.db.fetch("SELECT * FROM {t}anxin_directory ORDER BY stream_id")) == before
    assert app.roster.get_student(school.principal, school.student("2026001")).name == "张小明"


def test_the_same_student_number_may_be_used_in_another_school(app: Anxin, school: School) -> None:
    other_school = app.roster.add_school(ADMIN, "第三中学")
    sid = app.roster.enrol_student(ADMIN, school_id=other_school, **{**NEW_STUDENT, "student_no": "2026001"})
    assert sid != school.student("2026001")
    assert app.roster.get_student(ADMIN, sid).school_id == other_school


@pytest.mark.parametrize(
    "bad, reason",
    [
        ({"name": "  "}, "姓名不能为空"),
        ({"gender": "x"}, "性别"),
        ({"birth_date": date(2030, 1, 1)}, "出生日期"),
        ({"guardians": [{"name": "孙妈妈", "phone": "abc"}]}, "电话号码"),
        ({"student_no": ""}, "学号不能为空"),
    ],
)
def test_an_invalid_enrolment_is_refused_with_a_reason_and_stores_nothing(
    app: Anxin, school: School, bad: dict[str, Any], reason: str
) -> None:
    before = event_count(app)
    with pytest.raises(InvalidInput) as raised:
        app.roster.enrol_student(ADMIN, school_id=school.id, **{**NEW_STUDENT, **bad})
    assert reason in raised.value.text and raised.value.code == "invalid_input"
    assert event_count(app) == before


def test_a_correction_is_a_new_event_naming_the_fields_and_the_reason(app: Anxin, school: School) -> None:
    # given an enrolled student
    sid = school.student("2026002")

    # when their name and class are corrected
    app.roster.correct_student(
        ADMIN, sid, {"name": "李晓红", "class_name": "七年级2班"}, reason="户籍信息核对", expected_version=1
    )

    # then the student shows the corrected values and the history keeps both
    s = app.roster.get_student(school.principal, sid)
    assert (s.name, s.class_name, s.version) == ("李晓红", "七年级2班", 2)
    events = [e for _, e in app.decrypt_log() if e is not None and str(e.originator_id) == sid]
    assert [type(e).__name__ for e in events] == ["Enrolled", "DetailsCorrected"]
    assert events[0].name == "李小红"
    assert events[1].changes == {"name": "李晓红", "class_name": "七年级2班"} and events[1].reason == "户籍信息核对"
    assert events[1].actor == ADMIN.staff_id
    assert directory(app, sid)[2] == "七年级2班"  # type: ignore[index]


def test_a_correction_that_is_unknown_empty_unexplained_or_stale_changes_nothing(app: Anxin, school: School) -> None:
    sid = school.student("2026002")
    cases = [
        ({"student_no": "9"}, "更正", None, InvalidInput),
        ({}, "更正", None, InvalidInput),
        ({"name": "李晓红"}, " ", None, InvalidInput),
        ({"name": "李晓红"}, "更正", 7, Conflict),
    ]
    for changes, reason, version, error in cases:
        with pytest.raises(error):
            app.roster.correct_student(ADMIN, sid, changes, reason=reason, expected_version=version)
    s = app.roster.get_student(school.principal, sid)
    assert (s.name, s.version) == ("李小红", 1)


def test_a_student_who_leaves_is_marked_left_and_cannot_leave_or_be_corrected_again(
    app: Anxin, school: School, clock: Clock
) -> None:
    # given an enrolled student
    sid = school.student("2026004")

    # when they leave (Core has no leave command yet; the aggregate's own command, saved by Core)
    with app.editing(sid, Student, expected_version=1) as s:
        s.leave(reason="转学至外省", actor=ADMIN.staff_id, at=clock())

    # then they are inactive in their stream and in the directory
    s = app.roster.get_student(school.principal, sid)
    assert (s.active, s.version) == (False, 2)
    assert directory(app, sid)[5] == "left"  # type: ignore[index]
    # and a second leaving or a correction is refused, changing nothing
    with pytest.raises(WrongState), app.editing(sid, Student) as again:
        again.leave(reason="再次离校", actor=ADMIN.staff_id, at=clock())
    with pytest.raises(InvalidInput):
        app.roster.correct_student(ADMIN, sid, {"grade": "八年级"}, reason="升级")
    assert app.roster.get_student(school.principal, sid).version == 2


def test_staff_roles_change_and_a_deactivated_account_cannot_act(app: Anxin, school: School) -> None:
    # when the teacher also becomes a counselor (the principal approving), then is deactivated
    grant = app.roster.change_staff_roles(
        ADMIN, school.teacher.staff_id, ["class_teacher", "counselor"], ["七年级1班"], "兼任"
    )
    assert grant is not None and "counselor" not in app.gate.actor(school.teacher.staff_id).roles
    app.roster.approve_role_grant(school.principal, school.teacher.staff_id, grant)
    assert app.gate.actor(school.teacher.staff_id).roles >= {"counselor"}
    app.roster.deactivate_staff(ADMIN, school.teacher.staff_id, "离职")
    # then the account no longer resolves to an actor, and their name still reads
    with pytest.raises(PermissionDenied):
        app.gate.actor(school.teacher.staff_id)
    assert app.roster.staff_name(school.teacher.staff_id) == "王老师"


# -- pairings ----------------------------------------------------------------------------------
def test_a_pairing_follows_the_policy_cadence_and_becomes_overdue(app: Anxin, school: School, clock: Clock) -> None:
    # given a new pairing on the default 14-day cadence
    pid = pair_teacher(app, school)
    p = app.pairings.get_pairing(school.teacher, pid)
    assert (p.cadence_days, p.paired_on, p.next_due) == (14, clock.today, clock.today + timedelta(days=14))
    assert directory(app, pid) == (
        "pairing",
        school.id,
        None,
        school.teacher.staff_id,
        school.student("2026001"),
        "active",
    )

    # when 14 days pass it is due, not overdue; a day later it is overdue
    clock.advance(days=14)
    assert not app.pairings.get_pairing(school.teacher, pid).is_overdue(clock.today)
    clock.advance(days=1)
    assert app.pairings.get_pairing(school.teacher, pid).is_overdue(clock.today)

    # when a check-in is recorded, the next one is due a cadence later
    ci = app.pairings.record_check_in(
        school.teacher,
        pid,
        held_on=clock.today,
        notes={"thinking": "情绪稳定", "studies": "", "family": "奶奶照顾", "difficulties": ""},
    )
    p = app.pairings.get_pairing(school.teacher, pid)
    assert not p.is_overdue(clock.today) and p.next_due == clock.today + timedelta(days=14)
    assert p.check_ins[ci]["notes"] == {"thinking": "情绪稳定", "studies": "", "family": "奶奶照顾", "difficulties": ""}
    assert p.check_ins[ci]["actor"] == school.teacher.staff_id and p.last_check_in == clock.today


def test_a_pairing_cadence_comes_from_the_policy(store: Store, school: School, clock: Clock) -> None:
    from domain.policy import Policy

    weekly = Anxin(store.config, [store.master_key], Policy(check_in_cadence_days=7), clock)
    store.apps.append(weekly)
    pid = weekly.pairings.pair(school.principal, staff_id=school.teacher.staff_id, student_id=school.student("2026002"))
    assert weekly.pairings.get_pairing(school.teacher, pid).next_due == clock.today + timedelta(days=7)


def test_a_check_in_with_a_concern_needs_a_note_and_valid_dates(app: Anxin, school: School, clock: Clock) -> None:
    pid = pair_teacher(app, school)
    clock.advance(days=3)
    bad = [
        ({"notes": {"thinking": "ok"}, "concern": True, "concern_note": " "}, "担忧说明"),
        ({"notes": {"mood": "ok"}}, "未知的谈心维度"),
        ({"notes": {"thinking": "  "}}, "至少填写一项"),
        ({"notes": {"thinking": "ok"}, "held_on": clock.today + timedelta(days=1)}, "不能晚于今天"),
        ({"notes": {"thinking": "ok"}, "held_on": clock.today - timedelta(days=10)}, "不能早于结对日期"),
    ]
    for kwargs, reason in bad:
        with pytest.raises(InvalidInput) as raised:
            app.pairings.record_check_in(school.teacher, pid, **{"held_on": clock.today, **kwargs})
        assert reason in raised.value.text
    assert app.pairings.get_pairing(school.teacher, pid).version == 1
    ci = app.pairings.record_check_in(
        school.teacher,
        pid,
        held_on=clock.today,
        notes={"difficulties": "被同学起外号"},
        concern=True,
        concern_note="疑似言语欺凌",
    )
    p = app.pairings.get_pairing(school.teacher, pid)
    assert [c["id"] for c in p.open_concerns] == [ci] and p.check_ins[ci]["concern_note"] == "疑似言语欺凌"


def test_a_check_in_correction_names_what_it_corrects_and_why(app: Anxin, school: School, clock: Clock) -> None:
    # given a recorded check-in
    pid = pair_teacher(app, school)
    clock.advance(days=1)
    ci = app.pairings.record_check_in(school.teacher, pid, held_on=clock.today, notes={"thinking": "开朗"})

    # when it is corrected
    clock.advance(hours=2)
    app.pairings.correct_check_in(
        school.teacher,
        pid,
        ci,
        reason="记错了学生",
        expected_version=2,
        notes={"thinking": "沉默寡言"},
        concern=True,
        concern_note="需持续关注",
    )

    # then the check-in shows the correction, and the correction event names it and the reason
    p = app.pairings.get_pairing(school.teacher, pid)
    c = p.check_ins[ci]
    assert (c["notes"]["thinking"], c["concern"], c["concern_note"]) == ("沉默寡言", True, "需持续关注")
    assert c["corrections"] == [{"reason": "记错了学生", "actor": school.teacher.staff_id, "at": clock()}]
    corrections = [e for _, e in app.decrypt_log() if type(e).__name__ == "CheckInCorrected"]
    assert [(e.corrects, e.reason) for e in corrections] == [(ci, "记错了学生")]
    # and correcting something that does not exist, or without a reason, is refused
    for kwargs in ({"check_in_id": "nope", "reason": "更正"}, {"check_in_id": ci, "reason": ""}):
        with pytest.raises(InvalidInput):
            app.pairings.correct_check_in(
                school.teacher, pid, kwargs.pop("check_in_id"), notes={"family": "x"}, **kwargs
            )
    assert app.pairings.get_pairing(school.teacher, pid).version == 3


def test_an_ended_pairing_takes_no_check_ins_and_is_no_longer_overdue(app: Anxin, school: School, clock: Clock) -> None:
    # given a pairing
    pid = pair_teacher(app, school)
    assert [p.id for p in app.pairings.my_pairings(school.teacher)] == [p_id(pid)]

    # when it ends
    clock.advance(days=30)
    app.pairings.end_pairing(school.teacher, pid, reason="学生转班")

    # then it is ended, never overdue, off the teacher's list, and refuses check-ins and a second end
    p = app.pairings.get_pairing(school.teacher, pid)
    assert (p.active, p.status, p.next_due, p.is_overdue(clock.today)) == (False, "ended", None, False)
    assert directory(app, pid)[5] == "ended"  # type: ignore[index]
    assert app.pairings.my_pairings(school.teacher) == []
    with pytest.raises(WrongState):
        app.pairings.record_check_in(school.teacher, pid, held_on=clock.today, notes={"thinking": "x"})
    with pytest.raises(WrongState):
        app.pairings.end_pairing(school.teacher, pid, reason="再次结束")
    assert app.pairings.get_pairing(school.teacher, pid).version == 2
    # and the teacher may be paired with the student again
    assert pair_teacher(app, school) != pid


def p_id(pid: str) -> Any:
    from uuid import UUID

    return UUID(pid)


def test_a_teacher_cannot_write_or_read_another_teachers_pairing(app: Anxin, school: School, clock: Clock) -> None:
    # given the class teacher's pairing
    pid = pair_teacher(app, school)
    clock.advance(days=1)

    # when the other teacher tries to record a check-in, correct, end or read it
    attempts = [
        lambda: app.pairings.record_check_in(school.other_teacher, pid, held_on=clock.today, notes={"thinking": "x"}),
        lambda: app.pairings.end_pairing(school.other_teacher, pid, reason="越权"),
        lambda: app.pairings.get_pairing(school.other_teacher, pid),
    ]
    for attempt in attempts:
        with pytest.raises(PermissionDenied):
            attempt()

    # then nothing changed; the principal, who oversees the school, may record one
    assert app.pairings.get_pairing(school.teacher, pid).version == 1
    app.pairings.record_check_in(school.principal, pid, held_on=clock.today, notes={"thinking": "校长约谈"})
    assert app.pairings.get_pairing(school.teacher, pid).version == 2


def test_pairing_is_arranged_by_school_leaders_within_one_school_and_only_once(app: Anxin, school: School) -> None:
    from conftest import make_school

    # a class teacher cannot arrange pairings
    with pytest.raises(PermissionDenied):
        app.pairings.pair(school.teacher, staff_id=school.teacher.staff_id, student_id=school.student("2026001"))
    # the safety lead can, once per teacher and student
    pid = app.pairings.pair(school.safety, staff_id=school.teacher.staff_id, student_id=school.student("2026001"))
    with pytest.raises(InvalidInput):
        app.pairings.pair(school.principal, staff_id=school.teacher.staff_id, student_id=school.student("2026001"))
    # and not across schools
    other = make_school(app, name="第二中学")
    with pytest.raises(InvalidInput):
        app.pairings.pair(school.principal, staff_id=other.teacher.staff_id, student_id=school.student("2026001"))
    assert app.db.fetch("SELECT count(*) FROM {t}anxin_directory WHERE kind = 'pairing'") == [(1,)]
    assert app.pairings.get_pairing(school.teacher, pid).staff_id == school.teacher.staff_id


def test_two_edits_from_the_same_stale_version_one_wins_the_other_conflicts(
    store: Store, app: Anxin, school: School, clock: Clock
) -> None:
    # given a pairing both teacher and principal have open at version 1
    pid = pair_teacher(app, school)
    clock.advance(days=1)
    seen = app.pairings.get_pairing(school.teacher, pid).version

    # when both record a check-in from that version
    first = app.pairings.record_check_in(
        school.teacher, pid, held_on=clock.today, notes={"thinking": "先到"}, expected_version=seen
    )
    with pytest.raises(Conflict) as raised:
        store.open(clock).pairings.record_check_in(
            school.principal, pid, held_on=clock.today, notes={"thinking": "后到"}, expected_version=seen
        )

    # then one wins, the other is told clearly, and the version advanced by exactly one
    assert raised.value.code == "conflict" and "未保存" in raised.value.text
    p = app.pairings.get_pairing(school.teacher, pid)
    assert p.version == seen + 1 and list(p.check_ins) == [first]


def test_two_instances_saving_over_each_other_conflict_at_the_store(
    store: Store, app: Anxin, school: School, clock: Clock
) -> None:
    # given two instances that loaded the same pairing version
    pid = pair_teacher(app, school)
    other = store.open(clock)
    mine, theirs = app.load(pid, Pairing), other.load(pid, Pairing)
    now: datetime = clock()

    # when both change it and save, without a version check in the command
    mine.change_cadence(cadence_days=7, reason="重点关注", actor="x", at=now)
    theirs.change_cadence(cadence_days=30, reason="放宽", actor="y", at=now)
    app.commit(mine)

    # then the store refuses the second save: nothing is overwritten
    with pytest.raises(Conflict):
        other.commit(theirs)
    p = other.pairings.get_pairing(school.teacher, pid)
    assert (p.version, p.cadence_days) == (2, 7)
