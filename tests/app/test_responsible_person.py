"""The one-to-one responsible person (一对一包联人): a counselor or the principal names any staff
member of the school; that person sees the plan, their own task and the guardian contacts
(file.plan), never the counselling notes, crisis records or screening answers (file.read,
screening.read stay the counselors'); the counselor keeps the file."""

from __future__ import annotations

import json

import pytest
from conftest import ADMIN, School, make_school

from anxin.commands.support import ResponsiblePersonInvalid
from anxin.service import Anxin
from domain.common import DomainError, PermissionDenied

STUDENT = "2026003"  # 七年级2班: not the class of the class teacher named below


def _file_with_notes(app: Anxin, school: School) -> str:
    c = school.counselor
    fid = app.support.open_support_file(
        c, school.student(STUDENT), category="情绪困扰", risk_level="key", reason="筛查提示中度抑郁"
    )
    app.support.draw_up_plan(c, fid, goals=["恢复规律作息"], measures=[{"text": "每周与班主任谈一次", "by": "王老师"}])
    app.support.record_session(c, fid, held_on=app.now().date(), summary="学生谈到父母离异后的失眠")
    app.support.record_guardian_contact(
        c, fid, contacted_on=app.now().date(), guardian="母亲", method="phone", summary="约定每晚十点前睡觉"
    )
    return fid


def _decisions(app: Anxin, actor_id: str) -> list[tuple[str, bool]]:
    rows = app.db.fetch(
        "SELECT detail FROM {t}anxin_audit WHERE kind = 'access' AND actor_id = ? ORDER BY seq", (actor_id,)
    )
    return [(json.loads(d)["action"], json.loads(d)["allowed"]) for (d,) in rows]


def test_a_class_teacher_named_as_the_person_sees_the_plan_and_the_guardian_contacts_only(
    app: Anxin, school: School
) -> None:
    fid = _file_with_notes(app, school)
    person = school.teacher  # a class teacher of another class, not a counselor
    # when the counselor names them the one-to-one responsible person
    app.support.assign_responsible_person(school.counselor, fid, person.staff_id, "班主任熟悉学生情况")
    # then they see the plan, their task and the guardian contacts
    view = app.support.get_file_plan(person, fid)
    assert view.person_id == person.staff_id and view.responsible_id == school.counselor.staff_id
    assert view.plan is not None and view.plan["goals"] == ["恢复规律作息"]
    assert [g["summary"] for g in view.guardian_contacts] == ["约定每晚十点前睡觉"]
    f = app.support.get_support_file(school.counselor, fid)
    assert view.next_review_due == f.next_review_due
    assert not hasattr(view, "sessions") and "失眠" not in repr(view)
    # and never the whole file, the crisis checklist or the student's screenings
    with pytest.raises(PermissionDenied):
        app.support.get_support_file(person, fid)
    with pytest.raises(PermissionDenied):
        app.crisis.get_crisis(person, fid)
    with pytest.raises(PermissionDenied):
        app.screenings.student_screenings(person, school.student(STUDENT))
    # each read decided and recorded
    got = _decisions(app, person.staff_id)
    assert ("file.plan", True) in got and ("file.read", False) in got and ("screening.read", False) in got
    # the counselor keeps the file and its notes
    f = app.support.get_support_file(school.counselor, fid)
    assert f.responsible_id == school.counselor.staff_id and f.person_id == person.staff_id
    assert f.person_history[-1]["reason"] == "班主任熟悉学生情况"


def test_anyone_not_named_gets_no_plan(app: Anxin, school: School) -> None:
    fid = _file_with_notes(app, school)
    app.support.assign_responsible_person(school.counselor, fid, school.teacher.staff_id, "班主任包联")
    for who in (school.other_teacher, school.safety, school.other_counselor, school.supervisor):
        with pytest.raises(PermissionDenied):
            app.support.get_file_plan(who, fid)
    # once another person is named, the first one sees nothing more
    app.support.assign_responsible_person(school.principal, fid, school.safety.staff_id, "德育主任包联")
    with pytest.raises(PermissionDenied):
        app.support.get_file_plan(school.teacher, fid)
    assert app.support.get_file_plan(school.safety, fid).person_id == school.safety.staff_id


def test_only_the_files_counselor_or_the_principal_names_the_person(app: Anxin, school: School) -> None:
    fid = _file_with_notes(app, school)
    version = app.support.get_support_file(school.principal, fid).version
    for who in (school.teacher, school.other_counselor, school.safety):
        with pytest.raises(PermissionDenied):
            app.support.assign_responsible_person(who, fid, who.staff_id, "自荐")
    assert app.support.get_support_file(school.principal, fid).version == version


def test_the_person_must_be_active_staff_of_the_school_and_bad_input_changes_nothing(
    app: Anxin, school: School
) -> None:
    fid = _file_with_notes(app, school)
    other = make_school(app, "第二中学")
    version = app.support.get_support_file(school.principal, fid).version
    for staff_id in (other.teacher.staff_id, school.supervisor.staff_id, "nobody"):
        with pytest.raises(ResponsiblePersonInvalid) as e:
            app.support.assign_responsible_person(school.counselor, fid, staff_id, "调整")
        assert e.value.text == "一对一包联人须为本校在岗的教职工"
    with pytest.raises(DomainError) as e2:
        app.support.assign_responsible_person(school.counselor, fid, school.teacher.staff_id, "  ")
    assert "指定原因不能为空" in e2.value.text
    app.support.assign_responsible_person(school.counselor, fid, school.teacher.staff_id, "包联")
    with pytest.raises(DomainError) as e3:
        app.support.assign_responsible_person(school.counselor, fid, school.teacher.staff_id, "再次")
    assert "已是本档案的一对一包联人" in e3.value.text
    app.roster.deactivate_staff(ADMIN, school.other_teacher.staff_id, "离职")
    with pytest.raises(ResponsiblePersonInvalid):
        app.support.assign_responsible_person(school.counselor, fid, school.other_teacher.staff_id, "调整")
    assert app.support.get_support_file(school.principal, fid).version == version + 1


def test_a_closed_file_takes_no_new_person(app: Anxin, school: School) -> None:
    fid = _file_with_notes(app, school)
    app.support.close_support_file(school.counselor, fid, "好转")
    with pytest.raises(DomainError) as e:
        app.support.assign_responsible_person(school.counselor, fid, school.teacher.staff_id, "包联")
    assert "档案已结案" in e.value.text
    assert app.support.get_support_file(school.counselor, fid).person_id is None
