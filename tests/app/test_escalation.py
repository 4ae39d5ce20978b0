"""A concern raised in a check-in becomes a support file or a bullying report, with
the link kept on both sides and both streams saved together."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from conftest import Clock, School, Store, make_school

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


# -- the status of an escalated file, for the teacher who escalated it (file.status) ------------------
def _decisions(app: Anxin, actor_id: str, action: str) -> list[tuple[str, bool]]:
    import json

    rows = app.db.fetch(
        "SELECT subject, detail FROM {t}anxin_audit WHERE kind = 'access' AND actor_id = ? ORDER BY seq", (actor_id,)
    )
    return [(s, json.loads(d)["allowed"]) for s, d in rows if json.loads(d)["action"] == action]


def test_the_teacher_who_escalated_sees_the_files_status_and_nothing_more(app: Anxin, school: School) -> None:
    # given a file opened from the teacher's check-in, given to a named counselor
    pid, ci = concern_check_in(app, school)
    file_id = app.escalations.escalate_to_support_file(
        school.teacher,
        pid,
        ci,
        category="人际关系",
        risk_level="key",
        reason="谈心中发现被孤立",
        responsible_id=school.counselor.staff_id,
    )
    # when the teacher asks for its status
    status = app.support.get_file_status(school.teacher, file_id)
    # then they learn that it exists, who is responsible, the next step and its date, no crisis
    f = app.support.get_support_file(school.principal, file_id)
    assert status.responsible_id == school.counselor.staff_id and status.status == "open"
    assert (status.next_step, status.next_step_due) == ("first_contact", f.first_contact["due"])
    assert status.crisis_open is False
    assert not hasattr(status, "risk_level") and not hasattr(status, "plan")
    # and the decision is recorded; the whole file stays refused (and that is recorded too)
    assert _decisions(app, school.teacher.staff_id, "file.status") == [(file_id, True)]
    with pytest.raises(PermissionDenied):
        app.support.get_support_file(school.teacher, file_id)
    assert _decisions(app, school.teacher.staff_id, "file.read") == [(file_id, False)]
    # once the counselor has met the student, the next step is the plan's review
    app.support.record_session(school.counselor, file_id, held_on=app.now().date(), summary="初次面谈")
    status = app.support.get_file_status(school.teacher, file_id)
    assert (status.next_step, status.next_step_due) == ("review", f.next_review_due)


def test_another_teacher_and_the_safety_lead_get_no_status(app: Anxin, school: School) -> None:
    pid, ci = concern_check_in(app, school)
    file_id = app.escalations.escalate_to_support_file(
        school.teacher, pid, ci, category="人际关系", risk_level="key", reason="谈心中发现被孤立"
    )
    for who in (school.other_teacher, school.safety, school.supervisor):
        with pytest.raises(PermissionDenied):
            app.support.get_file_status(who, file_id)
        assert _decisions(app, who.staff_id, "file.status") == [(file_id, False)]


def test_a_class_teacher_sees_a_files_status_only_while_a_crisis_is_open(app: Anxin, school: School) -> None:
    # given a counselor's file on a student of the teacher's class (not escalated by the teacher)
    student = school.student("2026002")
    file_id = app.support.open_support_file(
        school.counselor, student, category="情绪困扰", risk_level="key", reason="情绪低落"
    )
    with pytest.raises(PermissionDenied):
        app.support.get_file_status(school.teacher, file_id)
    # when a crisis opens on it
    app.support.record_crisis_intervention(
        school.counselor, file_id, occurred_on=app.now().date(), what_happened="自伤言语", actions_taken="陪同"
    )
    # then the class teacher of the student's class sees that a crisis is open, and no more
    status = app.support.get_file_status(school.teacher, file_id)
    assert status.crisis_open is True and status.responsible_id == school.counselor.staff_id
    with pytest.raises(PermissionDenied):
        app.support.get_file_status(school.other_teacher, file_id)  # another class
    with pytest.raises(PermissionDenied):
        app.crisis.get_crisis(school.teacher, file_id)
    # and once the crisis is concluded (the return-to-school assessment done), not any more
    c = school.counselor
    app.crisis.note_medical_advice(c, file_id, advice="可复学")
    app.crisis.record_return_assessment(c, file_id, assessment="情绪稳定")
    app.support.draw_up_plan(c, file_id, goals=["稳定情绪"], measures=[{"text": "每周面谈", "by": "刘心理"}])
    app.support.lower_risk_level(c, file_id, "key", "复学评估完成")
    with pytest.raises(PermissionDenied):
        app.support.get_file_status(school.teacher, file_id)


def test_files_saved_before_the_table_get_their_rows_when_the_store_opens(store: Store, clock: Clock) -> None:
    app = store.open(clock)
    school = make_school(app)
    pid, ci = concern_check_in(app, school)
    file_id = app.escalations.escalate_to_support_file(
        school.teacher, pid, ci, category="人际关系", risk_level="key", reason="谈心中发现被孤立"
    )
    # given a store where the rows were never written (as before this table existed)
    app.db.execute("DELETE FROM {t}anxin_stream_staff")
    with pytest.raises(PermissionDenied):
        app.support.get_file_status(school.teacher, file_id)
    app.close()
    # when a process opens it, they are written, once
    app = store.open(clock)
    assert app.support.get_file_status(school.teacher, file_id).status == "open"
    assert app.support.backfill_stream_staff() == 0
    app.close()
