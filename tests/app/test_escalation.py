"""A concern raised in a check-in becomes a support file or a bullying report, with
the link kept on both sides and both streams saved together."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from conftest import School

from anxin.service import Anxin
from domain.common import DomainError, PermissionDenied


def concern_check_in(app: Anxin, school: School, concern: bool = True) -> tuple[str, str]:
    pid = app.pairings.pair(school.principal, staff_id=school.teacher.staff_id, student_id=school.student("2026001"))
    ci = app.pairings.record_check_in(
        school.teacher,
        pid,
        held_on=app.now().date(),
        notes={"thinking": "最近总是一个人吃饭"},
        concern=concern,
        concern_note="疑似被同学孤立" if concern else "",
    )
    return pid, ci


def test_a_teachers_concern_becomes_a_support_file_linked_both_ways(app: Anxin, school: School) -> None:
    # given a check-in with a concern
    pid, ci = concern_check_in(app, school)
    # when the teacher escalates it to a support file
    file_id = app.escalations.escalate_to_support_file(
        school.teacher, pid, ci, category="人际关系", risk_level="key", reason="谈心中发现被孤立"
    )
    # then the file names the check-in it came from, and the check-in names the file
    f = app.support.get_support_file(school.principal, file_id)
    assert f.source == {"kind": "pairing", "id": pid, "check_in_id": ci}
    assert f.student_id == school.student("2026001")
    assert f.responsible_id in (school.counselor.staff_id, school.other_counselor.staff_id)
    links = app.pairings.get_pairing(school.teacher, pid).check_ins[ci]["escalated_to"]
    assert [(x["target"], x["target_id"]) for x in links] == [("support_file", file_id)]


def test_a_concern_becomes_a_bullying_report_with_the_paired_student_targeted(app: Anxin, school: School) -> None:
    pid, ci = concern_check_in(app, school)
    case_id = app.escalations.escalate_to_bullying_report(
        school.teacher,
        pid,
        ci,
        occurred_at=datetime(2026, 10, 10, 12, tzinfo=UTC),
        place="食堂",
        forms=["verbal"],
        narrative="多名同学在食堂嘲笑该生",
        reason="谈心中学生自述",
    )
    case = app.cases.get_case(school.safety, case_id)
    assert case.source == {"kind": "pairing", "id": pid, "check_in_id": ci}
    assert (school.student("2026001"), "targeted") in case.links
    assert app.pairings.get_pairing(school.teacher, pid).check_ins[ci]["escalated_to"][0]["target_id"] == case_id


def test_a_check_in_without_a_concern_cannot_be_escalated_and_nothing_is_created(app: Anxin, school: School) -> None:
    pid, ci = concern_check_in(app, school, concern=False)
    version = app.pairings.get_pairing(school.teacher, pid).version
    with pytest.raises(DomainError):
        app.escalations.escalate_to_support_file(
            school.teacher, pid, ci, category="人际关系", risk_level="key", reason="x理由"
        )
    assert app.pairings.get_pairing(school.teacher, pid).version == version
    assert app.support.support_register(school.principal, school.id) == []


def test_a_concern_is_escalated_to_the_same_kind_only_once(app: Anxin, school: School) -> None:
    pid, ci = concern_check_in(app, school)
    occurred = datetime(2026, 10, 10, 12, tzinfo=UTC)
    app.escalations.escalate_to_bullying_report(
        school.teacher,
        pid,
        ci,
        occurred_at=occurred,
        place="操场",
        forms=["physical"],
        narrative="推搡",
        reason="学生自述",
    )
    with pytest.raises(DomainError):
        app.escalations.escalate_to_bullying_report(
            school.teacher,
            pid,
            ci,
            occurred_at=occurred,
            place="操场",
            forms=["physical"],
            narrative="推搡",
            reason="学生自述",
        )
    assert len(app.cases.cases_of_school(school.safety, school.id)) == 1


def test_another_teacher_cannot_escalate_a_pairing_that_is_not_theirs(app: Anxin, school: School) -> None:
    pid, ci = concern_check_in(app, school)
    with pytest.raises(PermissionDenied):
        app.escalations.escalate_to_support_file(
            school.other_teacher, pid, ci, category="人际关系", risk_level="key", reason="越权尝试"
        )
    assert app.pairings.get_pairing(school.teacher, pid).check_ins[ci]["escalated_to"] == []
