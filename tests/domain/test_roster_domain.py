"""The roster (students and staff) as pure domain objects: no database, no application,
no clock. A student's identity is corrected by new events that name the fields they
correct; a refused command leaves the aggregate exactly as it was."""

from __future__ import annotations

from copy import deepcopy
from datetime import date, datetime, timedelta
from functools import reduce
from typing import Any
from uuid import uuid4
from zoneinfo import ZoneInfo

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from domain.common import DomainError, InvalidInput, Role, WrongState
from domain.roster import (
    MAX_AGE,
    MIN_AGE,
    Staff,
    Student,
    age_on,
    birth_date_problem,
    check_phone,
    parse_gender,
)

SH = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 9, 1, 9, 0, tzinfo=SH)  # the first day of the school year
TODAY = date(2026, 9, 1)
ADMIN, CLERK = "admin-1", "clerk-1"
GUARDIAN = {"name": "王芳", "phone": "13800138000"}


def at(days: float = 0) -> datetime:
    return T0 + timedelta(days=days)


def new_student(**changes: Any) -> Student:
    fields: dict[str, Any] = dict(
        id=uuid4(),
        school_id="school-1",
        student_no="20260101",
        name="李小明",
        gender="男",
        birth_date=date(2012, 3, 15),
        grade="八年级",
        class_name="八(1)班",
        guardians=[GUARDIAN],
        tags=["留守儿童"],
        actor=CLERK,
        at=T0,
    )
    fields.update(changes)
    return Student.enrol(**fields)


def new_staff(**changes: Any) -> Staff:
    fields: dict[str, Any] = dict(
        id=uuid4(),
        school_id="school-1",
        username="zhang.wei",
        name="张伟",
        roles=["class_teacher"],
        classes=["八(1)班"],
        actor=ADMIN,
        at=T0,
    )
    fields.update(changes)
    return Staff.register(**fields)


def saved(agg: Any) -> Any:
    agg.collect_events()
    return agg


def names(agg: Any) -> list[str]:
    return [type(e).__name__ for e in agg.collect_events()]


def state(agg: Any) -> dict[str, Any]:
    return deepcopy({k: v for k, v in vars(agg).items() if k != "_pending_events"})


def refused(agg: Any, error: type[DomainError], command: Any, /, **kw: Any) -> DomainError:
    """The command raises `error` and the aggregate is unchanged: same version, same
    pending events, same state."""
    before = (agg.version, len(agg.pending_events), state(agg))
    with pytest.raises(error) as e:
        command(**kw)
    assert (agg.version, len(agg.pending_events), state(agg)) == before
    return e.value


def replay(events: list[Any]) -> Any:
    return reduce(lambda a, e: e.mutate(a), events, None)


# -- enrolment ---------------------------------------------------------------------------------
def test_an_enrolment_records_the_identity_guardians_tags_who_and_when() -> None:
    s = new_student(
        guardians=[{"name": " 王芳 ", "phone": "138-0013-8000"}],
        tags=[" 留守儿童 ", "", "单亲家庭"],
    )

    (e,) = s.collect_events()
    assert type(e).__name__ == "Enrolled"
    assert (e.school_id, e.student_no, e.name, e.gender, e.birth_date, e.grade, e.class_name) == (
        "school-1",
        "20260101",
        "李小明",
        "male",
        date(2012, 3, 15),
        "八年级",
        "八(1)班",
    )
    # the guardian's name is trimmed and the number kept as digits; blank tags are dropped
    assert e.guardians == [{"name": "王芳", "phone": "13800138000"}]
    assert e.tags == ["留守儿童", "单亲家庭"]
    assert (e.actor, e.at) == (CLERK, T0)
    assert (s.version, s.active, s.enrolled_at, s.name, s.gender) == (1, True, T0, "李小明", "male")


def test_a_student_may_be_enrolled_without_guardians_or_tags() -> None:
    s = new_student(guardians=None, tags=None)
    assert (s.guardians, s.tags) == ([], [])


def test_the_student_scope_carries_the_class_and_the_id_but_no_name() -> None:
    s = new_student()
    sc = s.scope()
    assert (sc.kind, sc.school_id, sc.class_name, sc.subject_id, sc.status) == (
        "student",
        "school-1",
        "八(1)班",
        str(s.id),
        "active",
    )
    assert "李小明" not in repr(sc) and "13800138000" not in repr(sc)


@pytest.mark.parametrize(
    "typed, stored",
    [("男", "male"), ("女", "female"), (" 女 ", "female"), ("Male", "male"), ("F", "female"), ("m", "male")],
)
def test_gender_is_read_from_chinese_or_english_and_stored_as_a_code(typed: str, stored: str) -> None:
    assert new_student(gender=typed).gender == stored
    assert parse_gender(typed) == stored


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"student_no": "  "}, "学号不能为空"),
        ({"name": ""}, "姓名不能为空"),
        ({"name": "李" * 51}, "姓名过长：51 个字符，最多 50 个"),
        ({"name": "李\n小明"}, "姓名含有控制字符"),
        ({"name": "李\x00小明"}, "姓名含有空字符"),
        ({"gender": "未知"}, "性别「未知」无法识别"),
        ({"grade": ""}, "年级不能为空"),
        ({"class_name": "班" * 31}, "班级过长"),
        ({"guardians": [{"name": " ", "phone": "13800138000"}]}, "监护人姓名不能为空"),
        ({"guardians": [{"name": "王芳", "phone": "1380013800"}]}, "电话号码「1380013800」格式不正确"),
        ({"guardians": [{"name": "王芳"}]}, "电话号码"),
        ({"tags": [f"标签{n}" for n in range(11)]}, "标签最多 10 个"),
        ({"tags": ["签" * 21]}, "标签过长"),
        ({"birth_date": "2012-03-15"}, "出生日期格式不正确"),
        ({"birth_date": TODAY}, "出生日期不能晚于今天"),
        ({"birth_date": TODAY + timedelta(days=1)}, "出生日期不能晚于今天"),
        ({"at": datetime(2026, 9, 1, 9, 0)}, "时间必须带时区"),
    ],
)
def test_an_enrolment_with_a_missing_malformed_or_overlong_field_is_refused(
    changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidInput) as e:
        new_student(**changes)
    assert e.value.code == "invalid_input" and message in e.value.text


def test_a_field_at_its_length_limit_is_accepted() -> None:
    s = new_student(name="李" * 50, class_name="班" * 30, tags=[f"签{n}" for n in range(10)])
    assert (len(s.name), len(s.class_name), len(s.tags)) == (50, 30, 10)


@pytest.mark.parametrize(
    "birth, age",
    [
        (date(2023, 9, 1), MIN_AGE),  # three today
        (date(2000, 9, 2), MAX_AGE),  # twenty-six tomorrow
    ],
)
def test_a_pupil_aged_three_to_twenty_five_on_the_day_of_enrolment_is_accepted(birth: date, age: int) -> None:
    assert age_on(birth, TODAY) == age
    assert new_student(birth_date=birth).birth_date == birth


@pytest.mark.parametrize(
    "birth, age",
    [
        (date(2023, 9, 2), 2),  # three tomorrow
        (date(2000, 9, 1), 26),  # twenty-six today
        (date(1980, 1, 1), 46),  # a typo for the year, most likely
    ],
)
def test_a_birth_date_that_cannot_be_a_k12_pupils_is_refused_with_the_age_it_implies(birth: date, age: int) -> None:
    with pytest.raises(InvalidInput) as e:
        new_student(birth_date=birth)
    assert f"按此年龄为 {age} 岁" in e.value.text and "应在 3 至 25 岁之间" in e.value.text
    assert birth_date_problem(birth, TODAY) is not None


def test_the_age_is_reckoned_on_the_enrolment_day_in_china() -> None:
    # 00:30 on 2 September in Shanghai is still 1 September in UTC: the pupil born on
    # 2 September 2023 turns three that day and may be enrolled
    s = new_student(birth_date=date(2023, 9, 2), at=datetime(2026, 9, 2, 0, 30, tzinfo=SH))
    assert s.birth_date == date(2023, 9, 2)


@given(
    birth=st.dates(min_value=date(1990, 1, 1), max_value=date(2030, 12, 31)),
    years=st.integers(min_value=1, max_value=40),
)
def test_a_pupil_is_a_year_older_exactly_on_each_birthday(birth: date, years: int) -> None:
    assume((birth.month, birth.day) != (2, 29))
    birthday = birth.replace(year=birth.year + years)
    assert age_on(birth, birthday) == years
    assert age_on(birth, birthday - timedelta(days=1)) == years - 1


def test_a_leap_day_birthday_is_reached_on_the_first_of_march_in_other_years() -> None:
    birth = date(2012, 2, 29)
    assert (age_on(birth, date(2015, 2, 28)), age_on(birth, date(2015, 3, 1))) == (2, 3)
    assert age_on(birth, date(2016, 2, 29)) == 4


# -- guardians' numbers ------------------------------------------------------------------------
@pytest.mark.parametrize(
    "typed, digits",
    [
        ("13800138000", "13800138000"),
        ("138 0013 8000", "13800138000"),
        ("+86 138-0013-8000", "13800138000"),
        ("(010) 6552-8888", "01065528888"),
        ("6552888", "6552888"),
        ("+44 20 7946 0958", "442079460958"),
    ],
)
def test_a_guardians_number_is_kept_as_digits_whatever_its_punctuation(typed: str, digits: str) -> None:
    assert check_phone(typed) == digits


@pytest.mark.parametrize(
    "typed",
    [
        "1380013800",  # a mobile one digit short
        "138001380001",  # a mobile one digit long
        "655288",  # a landline too short
        "+1234567890123456",  # an international number too long
        "１３８００１３８０００",  # full-width digits
        "138-0013-800O",  # a letter O for a zero
        "",
    ],
)
def test_a_malformed_guardians_number_is_refused(typed: str) -> None:
    with pytest.raises(InvalidInput):
        check_phone(typed)


@given(rest=st.text(alphabet="0123456789", min_size=10, max_size=10), sep=st.sampled_from(["", " ", "-"]))
def test_any_eleven_digit_mobile_starting_with_1_is_accepted_with_any_grouping(rest: str, sep: str) -> None:
    mobile = "1" + rest
    typed = sep.join([mobile[:3], mobile[3:7], mobile[7:]])
    assert check_phone(typed) == mobile
    assert check_phone("+86" + sep + typed) == mobile


# -- corrections -------------------------------------------------------------------------------
def test_a_correction_is_a_new_event_naming_the_fields_it_corrects_and_why() -> None:
    s = new_student()
    (enrolled,) = s.collect_events()

    s.correct(changes={"name": "李晓明", "gender": "女"}, reason="录入错字", actor=CLERK, at=at(3))

    (e,) = s.collect_events()
    assert type(e).__name__ == "DetailsCorrected"
    # the gender is stored as its code, as at enrolment
    assert (e.changes, e.reason, e.actor, e.at) == ({"name": "李晓明", "gender": "female"}, "录入错字", CLERK, at(3))
    assert (s.name, s.gender, s.version) == ("李晓明", "female", 2)
    # fields not named are untouched, and the enrolment keeps what was first recorded
    assert (s.student_no, s.class_name, s.birth_date) == ("20260101", "八(1)班", date(2012, 3, 15))
    assert (enrolled.name, enrolled.gender) == ("李小明", "male")


def test_a_class_change_is_a_correction_and_moves_the_student_in_the_scope() -> None:
    s = saved(new_student())
    s.correct(changes={"class_name": "八(2)班"}, reason="分班调整", actor=CLERK, at=at(1))
    assert s.scope().class_name == "八(2)班" and names(s) == ["DetailsCorrected"]


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"changes": {"student_no": "999"}}, "不能更正的字段：student_no"),
        ({"changes": {"school_id": "school-2", "name": "x"}}, "不能更正的字段：school_id"),
        ({"changes": {}}, "没有要更正的内容"),
        ({"changes": {"gender": "?"}}, "性别「?」无法识别"),
        ({"reason": "  "}, "更正原因不能为空"),
        ({"at": datetime(2026, 9, 2, 9, 0)}, "时间必须带时区"),
    ],
)
def test_a_correction_of_an_uncorrectable_field_nothing_or_without_a_reason_is_refused(
    kw: dict[str, Any], message: str
) -> None:
    s = saved(new_student())
    args: dict[str, Any] = dict(changes={"name": "李晓明"}, reason="录入错字", actor=CLERK, at=at(1)) | kw
    err = refused(s, InvalidInput, s.correct, **args)
    assert err.code == "invalid_input" and message in err.text
    assert s.name == "李小明"


def test_the_details_of_a_student_who_has_left_cannot_be_corrected() -> None:
    s = new_student()
    s.leave(reason="转学", actor=CLERK, at=at(10))
    s.collect_events()
    err = refused(s, InvalidInput, s.correct, changes={"name": "李晓明"}, reason="错字", actor=CLERK, at=at(11))
    assert "学生已离校" in err.text


# -- leaving -----------------------------------------------------------------------------------
def test_a_student_leaving_records_why_and_shows_as_left() -> None:
    s = saved(new_student())

    s.leave(reason="转学至外省", actor=CLERK, at=at(30))

    (e,) = s.collect_events()
    assert type(e).__name__ == "Left"
    assert (e.reason, e.actor, e.at) == ("转学至外省", CLERK, at(30))
    assert (s.active, s.scope().status, s.version) == (False, "left", 2)


def test_a_student_leaves_once_and_only_with_a_reason() -> None:
    s = saved(new_student())
    err = refused(s, InvalidInput, s.leave, reason=" ", actor=CLERK, at=at(1))
    assert "离校原因不能为空" in err.text and s.active
    s.leave(reason="毕业", actor=CLERK, at=at(2))
    s.collect_events()
    err = refused(s, WrongState, s.leave, reason="再次离校", actor=CLERK, at=at(3))
    assert err.code == "wrong_state" and err.text == "当前状态为「已离校」，不能再次办理离校"


def test_replaying_a_students_events_rebuilds_the_same_student() -> None:
    s = new_student()
    s.correct(
        changes={"guardians": [{"name": "李强", "phone": "13900139000"}]}, reason="换监护人", actor=CLERK, at=at(1)
    )
    s.correct(changes={"tags": ["留守儿童", "学业困难"]}, reason="补充", actor=CLERK, at=at(2))
    s.leave(reason="转学", actor=CLERK, at=at(3))
    events = s.collect_events()
    assert [type(e).__name__ for e in events] == ["Enrolled", "DetailsCorrected", "DetailsCorrected", "Left"]

    copy = replay(events)

    assert isinstance(copy, Student) and copy.__dict__ == s.__dict__
    assert (copy.guardians, copy.tags, copy.active) == (
        [{"name": "李强", "phone": "13900139000"}],
        ["留守儿童", "学业困难"],
        False,
    )


# -- staff -------------------------------------------------------------------------------------
def test_a_staff_registration_records_roles_classes_who_and_when() -> None:
    s = new_staff(roles=["class_teacher", Role.COUNSELOR], classes=[" 八(1)班 ", "", "八(2)班"])

    (e,) = s.collect_events()
    assert type(e).__name__ == "Registered"
    assert (e.school_id, e.username, e.name, e.roles, e.classes, e.district, e.actor, e.at) == (
        "school-1",
        "zhang.wei",
        "张伟",
        ["class_teacher", "counselor"],
        ["八(1)班", "八(2)班"],
        "default",
        ADMIN,
        T0,
    )
    assert (s.active, s.roles, s.version) == (True, ["class_teacher", "counselor"], 1)
    sc = s.scope()
    assert (sc.kind, sc.school_id, sc.owner_id, sc.status) == ("staff", "school-1", str(s.id), "active")


@pytest.mark.parametrize("role", ["supervisor", "administrator"])
def test_a_district_supervisor_or_administrator_belongs_to_no_school(role: str) -> None:
    s = new_staff(school_id=None, roles=[role], classes=None, district="海淀区")
    assert (s.school_id, s.roles, s.classes, s.district) == (None, [role], [], "海淀区")


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"roles": []}, "至少需要一个角色"),
        ({"school_id": None, "roles": ["counselor"]}, "该角色必须属于一所学校"),
        ({"school_id": None, "roles": ["principal", "class_teacher"]}, "该角色必须属于一所学校"),
        ({"username": " "}, "用户名不能为空"),
        ({"username": "张伟"}, "用户名只能包含英文字母、数字和符号"),
        ({"username": "zhang wei"}, "用户名只能包含英文字母、数字和符号"),
        ({"name": ""}, "姓名不能为空"),
        ({"at": datetime(2026, 9, 1, 9, 0)}, "时间必须带时区"),
    ],
)
def test_a_registration_without_a_role_a_school_or_a_usable_username_is_refused(
    changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidInput) as e:
        new_staff(**changes)
    assert e.value.code == "invalid_input" and message in e.value.text


def test_a_role_change_records_the_new_roles_classes_and_why() -> None:
    s = saved(new_staff(roles=["class_teacher", "counselor"]))

    s.change_roles(roles=["counselor"], classes=[], reason="转岗心理老师", actor=ADMIN, at=at(5))  # a narrowing

    (e,) = s.collect_events()
    assert type(e).__name__ == "RolesChanged"
    assert (e.roles, e.classes, e.reason, e.actor, e.at) == (["counselor"], [], "转岗心理老师", ADMIN, at(5))
    assert (s.roles, s.classes) == (["counselor"], [])


@pytest.mark.parametrize(
    "kw, message",
    [({"roles": []}, "至少需要一个角色"), ({"reason": "  "}, "原因不能为空")],
)
def test_a_role_change_to_no_role_or_without_a_reason_is_refused(kw: dict[str, Any], message: str) -> None:
    s = saved(new_staff())
    args: dict[str, Any] = dict(roles=["class_teacher"], classes=[], reason="转岗", actor=ADMIN, at=at(1)) | kw
    err = refused(s, InvalidInput, s.change_roles, **args)
    assert message in err.text and s.roles == ["class_teacher"]


def test_a_deactivated_account_keeps_its_roles_and_refuses_role_changes_and_a_second_deactivation() -> None:
    s = saved(new_staff())

    s.deactivate(reason="调离本校", actor=ADMIN, at=at(10))

    (e,) = s.collect_events()
    assert type(e).__name__ == "Deactivated"
    assert (e.reason, e.actor, e.at) == ("调离本校", ADMIN, at(10))
    assert (s.active, s.scope().status, s.roles) == (False, "inactive", ["class_teacher"])
    err = refused(s, InvalidInput, s.change_roles, roles=["counselor"], classes=[], reason="r", actor=ADMIN, at=at(11))
    assert "账号已停用" in err.text
    err = refused(s, WrongState, s.deactivate, reason="再停用", actor=ADMIN, at=at(11))
    assert err.code == "wrong_state" and "再次停用" in err.text


def test_a_deactivation_needs_a_reason() -> None:
    s = saved(new_staff())
    err = refused(s, InvalidInput, s.deactivate, reason="", actor=ADMIN, at=at(1))
    assert "原因不能为空" in err.text and s.active


def test_replaying_a_staff_members_events_rebuilds_the_same_account() -> None:
    s = new_staff()
    s.request_grant(
        request_id="r1",
        roles=["class_teacher", "safety_lead"],
        classes=["八(3)班"],
        reason="兼任",
        actor=ADMIN,
        at=at(1),
    )
    s.approve_grant(request_id="r1", actor="principal-1", at=at(1))
    s.change_roles(roles=["class_teacher", "safety_lead"], classes=["八(3)班"], reason="核对", actor=ADMIN, at=at(1))
    s.deactivate(reason="退休", actor=ADMIN, at=at(2))
    events = s.collect_events()
    names = ["Registered", "RoleGrantRequested", "RoleGrantApproved", "RolesChanged", "Deactivated"]
    assert [type(e).__name__ for e in events] == names

    copy = replay(events)

    assert isinstance(copy, Staff) and copy.__dict__ == s.__dict__
    assert (copy.roles, copy.classes, copy.active, copy.version) == (
        ["class_teacher", "safety_lead"],
        ["八(3)班"],
        False,
        5,
    )


# -- a correction is held to the rules of enrolment --------------------------------------
@pytest.mark.parametrize(
    ("changes", "says"),
    [
        ({"name": "  "}, "姓名不能为空"),
        ({"birth_date": date(1950, 1, 1)}, "年龄"),
        ({"guardians": [{"name": "王芳", "phone": "abc"}]}, "电话"),
        ({"tags": ["留守儿童"] * 11}, "标签最多"),
        ({"class_name": "八" * 31}, "班级"),
    ],
)
def test_a_correction_is_refused_by_the_same_rules_as_enrolment(changes: dict[str, Any], says: str) -> None:
    student = saved(new_student())
    e = refused(student, InvalidInput, student.correct, changes=changes, reason="更正", actor=CLERK, at=at(1))
    assert says in str(e)


def test_a_correction_normalises_like_enrolment() -> None:
    student = saved(new_student())
    student.correct(
        changes={
            "name": " 李晓明 ",
            "guardians": [{"name": " 王芳 ", "phone": "138 0013 8001"}],
            "tags": [" 单亲 ", ""],
        },
        reason="户籍更正",
        actor=CLERK,
        at=at(1),
    )
    assert (student.name, student.guardians, student.tags) == (
        "李晓明",
        [{"name": "王芳", "phone": "13800138001"}],
        ["单亲"],
    )


def test_an_unknown_role_is_refused_by_name_not_with_a_bare_value_error() -> None:
    with pytest.raises(InvalidInput, match="未知的角色：janitor"):
        new_staff(roles=["janitor"])
    staff = saved(new_staff())
    refused(
        staff, InvalidInput, staff.change_roles, roles=["janitor"], classes=[], reason="调岗", actor=ADMIN, at=at(1)
    )


@pytest.mark.parametrize("command", ["leave", "deactivate", "change_roles"])
def test_every_roster_command_needs_an_aware_time(command: str) -> None:
    naive = datetime(2026, 9, 2, 9, 0)
    if command == "leave":
        student = saved(new_student())
        refused(student, InvalidInput, student.leave, reason="转学", actor=CLERK, at=naive)
        return
    staff = saved(new_staff())
    kw: dict[str, Any] = {"reason": "调岗", "actor": ADMIN, "at": naive}
    if command == "change_roles":
        kw |= {"roles": ["counselor"], "classes": []}
    refused(staff, InvalidInput, getattr(staff, command), **kw)
