"""The crisis pathway (心理危机干预) through the application, on SQLite and PostgreSQL: each
trigger (a class import's or a single screening's item 9, a counselor's record, a check-in
marked as a possible risk to life, a bullying case's self-harm note) opens or raises the
student's support file and opens a crisis naming its trigger and its source stream, in the
same save as the source; every counselor of the school and the principal read and act on the
checklist, nobody else; the return-to-school assessment gates leaving 高危; and the first
contact of an escalated file."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from conftest import ADMIN, Clock, School, make_school

from anxin.commands.crisis import NoCrisisResponsible
from anxin.service import Anxin
from domain.common import InvalidInput, PermissionDenied
from domain.support import CrisisStepDone, ReturnAssessmentMissing, SupportFile

HEADER = "student_no,instrument,date," + ",".join(f"item{i}" for i in range(1, 10))
CRISIS = "1,0,0,0,0,0,0,0,1"  # PHQ-9 total 2, item 9 = 1
CALM = "0,0,0,0,0,0,0,0,0"


def csv(*rows: str) -> str:
    return "\n".join([HEADER, *rows]) + "\n"


def file_of(app: Anxin, school: School, no: str) -> SupportFile:
    row = app.db.fetchone(
        "SELECT stream_id FROM {t}anxin_directory WHERE kind = 'file' AND subject_id = ? AND status = 'open'",
        (school.student(no),),
    )
    assert row is not None, "no open file"
    return app.support.get_support_file(school.principal, row[0])


def topics_since(app: Anxin, before: int | None) -> list[str]:
    return [
        n.topic.rsplit(":", 1)[-1]
        for n in app.recorder.select_notifications(start=(before or 0) + 1, limit=50)
        if not n.topic.startswith("domain.screening")
    ]


def pair(app: Anxin, school: School, no: str = "2026001") -> str:
    return app.pairings.pair(school.principal, staff_id=school.teacher.staff_id, student_id=school.student(no))


def risky_check_in(app: Anxin, school: School, pid: str, **kw: Any) -> str:
    args: dict[str, Any] = dict(
        held_on=app.now().date(),
        notes={"thinking": "情绪很低落"},
        concern_note="说活着没意思，想结束生命",
        risk_to_life=True,
    )
    args.update(kw)
    return app.pairings.record_check_in(school.teacher, pid, **args)


# -- the triggers ---------------------------------------------------------------------------------
def test_a_class_import_with_item_9_opens_a_high_file_and_a_crisis_from_the_screening(
    app: Anxin, school: School
) -> None:
    # when a counselor imports a class's PHQ-9 results, one student with item 9 = 1
    result = app.screenings.import_screenings(
        school.counselor, school.id, csv(f"2026001,PHQ-9,2026-10-10,{CRISIS}", f"2026002,PHQ-9,2026-10-10,{CALM}")
    )
    # then that student's file opens at 高危 with a crisis whose source is the screening record
    assert (result.files_opened, result.crises_opened, result.crisis_student_ids) == (1, 1, [school.student("2026001")])
    f = file_of(app, school, "2026001")
    assert (f.risk_level, f.origin, f.responsible_id) == ("high", "screening", school.counselor.staff_id)
    assert f.crisis is not None and f.crisis["trigger"] == "screening"
    record_id = str(app.screenings.screening_record_id(school.student("2026001"), 2026))
    assert f.crisis["source"]["kind"] == "screening" and f.crisis["source"]["id"] == record_id
    # and each step is due on its clock: the assessment within 4 hours of the import
    assert f.crisis["due"]["assessed"] == app.now() + timedelta(hours=4)


def test_a_single_screening_by_hand_opens_the_crisis_too(app: Anxin, school: School) -> None:
    result = app.screenings.record_screening(
        school.counselor, school.student("2026003"), instrument="PHQ-9", screened_on=date(2026, 10, 11), answers=CRISIS
    )
    assert result.crises_opened == 1
    f = file_of(app, school, "2026003")
    assert f.crisis is not None and f.crisis["trigger"] == "screening" and f.risk_level == "high"


def test_a_second_screening_signal_adds_to_the_open_crisis(app: Anxin, school: School) -> None:
    app.screenings.import_screenings(school.counselor, school.id, csv(f"2026001,PHQ-9,2026-10-10,{CRISIS}"))
    result = app.screenings.import_screenings(school.counselor, school.id, csv(f"2026001,PHQ-9,2026-10-11,{CRISIS}"))
    f = file_of(app, school, "2026001")
    assert result.crises_opened == 0 and f.crisis is not None and len(f.crisis["signals"]) == 1


def test_a_counselors_crisis_record_opens_a_crisis_on_the_file(app: Anxin, school: School) -> None:
    fid = app.support.open_support_file(
        school.counselor, school.student("2026002"), category="情绪困扰", risk_level="key", reason="情绪低落"
    )
    entry = app.support.record_crisis_intervention(
        school.counselor, fid, occurred_on=app.now().date(), what_happened="表达轻生念头", actions_taken="陪护"
    )
    f = app.support.get_support_file(school.counselor, fid)
    assert f.crisis is not None and f.crisis["trigger"] == "counselor"
    assert f.crisis["source"] == {"kind": "file", "id": fid, "entry_id": entry}


def test_a_check_in_marked_as_a_risk_to_life_opens_a_file_and_a_crisis_in_one_save(app: Anxin, school: School) -> None:
    # given a teacher paired with a student who has no file
    pid = pair(app, school)
    before = app.recorder.max_notification_id()
    # when the teacher records a check-in whose concern may put the student's life at risk
    ci = risky_check_in(app, school, pid)
    # then a file opens at 高危 (a counselor responsible) with a crisis whose source is the check-in
    f = file_of(app, school, "2026001")
    assert f.risk_level == "high" and f.responsible_id in (school.counselor.staff_id, school.other_counselor.staff_id)
    assert f.crisis is not None and f.crisis["trigger"] == "check_in"
    assert f.crisis["source"] == {"kind": "pairing", "id": pid, "check_in_id": ci}
    # and the check-in says where its concern went
    p = app.pairings.get_pairing(school.teacher, pid)
    assert p.check_ins[ci]["risk_to_life"] is True
    assert [(x["target"], x["target_id"]) for x in p.check_ins[ci]["escalated_to"]] == [("support_file", str(f.id))]
    # all in one save
    assert topics_since(app, before) == [
        "Pairing.CheckInRecorded",
        "Pairing.ConcernEscalated",
        "SupportFile.Opened",
        "SupportFile.CrisisOpened",
    ]


def test_a_risky_check_in_raises_an_existing_file_and_keeps_its_counselor(app: Anxin, school: School) -> None:
    fid = app.support.open_support_file(
        school.other_counselor, school.student("2026001"), category="学业压力", risk_level="general", reason="焦虑"
    )
    pid = pair(app, school)
    risky_check_in(app, school, pid)
    f = app.support.get_support_file(school.other_counselor, fid)
    assert (f.risk_level, f.responsible_id) == ("high", school.other_counselor.staff_id)
    assert f.crisis is not None and f.crisis["trigger"] == "check_in"
    assert len(app.support.support_register(school.principal, school.id)) == 1


def test_a_risky_check_in_without_a_note_changes_nothing(app: Anxin, school: School) -> None:
    pid = pair(app, school)
    before = app.recorder.max_notification_id()
    with pytest.raises(InvalidInput):
        risky_check_in(app, school, pid, concern_note=" ")
    assert app.recorder.max_notification_id() == before


def test_with_no_counselor_or_principal_a_risky_check_in_is_refused_and_nothing_is_saved(app: Anxin) -> None:
    # given a school whose counselors and principal have all left
    school = make_school(app, "无心理老师学校")
    for who in (school.counselor, school.other_counselor, school.principal):
        app.roster.deactivate_staff(ADMIN, who.staff_id, "调离")
    pid = app.pairings.pair(school.safety, staff_id=school.teacher.staff_id, student_id=school.student("2026001"))
    before = app.recorder.max_notification_id()
    with pytest.raises(NoCrisisResponsible):
        risky_check_in(app, school, pid)
    assert app.recorder.max_notification_id() == before


def test_a_bullying_case_noting_self_harm_opens_the_crisis_on_the_students_file(
    app: Anxin, school: School, clock: Clock
) -> None:
    cid = app.cases.report_bullying(
        school.teacher,
        school_id=school.id,
        channel="teacher",
        occurred_at=clock.now - timedelta(hours=1),
        place="操场",
        forms=["verbal"],
        narrative="多次辱骂",
        parties=[(school.student("2026001"), "targeted"), (school.student("2026003"), "bullying")],
    )
    note = app.cases.note_self_harm(school.safety, cid, student_id=school.student("2026001"), note="手腕有划痕")
    case = app.cases.get_case(school.safety, cid)
    assert case.self_harm_notes[0]["id"] == note
    f = file_of(app, school, "2026001")
    assert f.crisis is not None and f.crisis["trigger"] == "bullying_case"
    assert f.crisis["source"] == {"kind": "case", "id": cid, "note_id": note}
    assert f.origin == "bullying_case" and f.risk_level == "high"
    # a class teacher may not note it (the case is the safety lead's), and nothing changes
    with pytest.raises(PermissionDenied):
        app.cases.note_self_harm(school.teacher, cid, student_id=school.student("2026003"), note="划痕")


# -- the checklist through the gate ---------------------------------------------------------------
def test_every_counselor_and_the_principal_act_on_the_checklist_nobody_else(app: Anxin, school: School) -> None:
    app.screenings.import_screenings(school.counselor, school.id, csv(f"2026001,PHQ-9,2026-10-10,{CRISIS}"))
    fid = str(file_of(app, school, "2026001").id)
    # the other counselor (not responsible) reads the checklist and records a step
    view = app.crisis.get_crisis(school.other_counselor, fid)
    assert view.crisis is not None and [s["step"] for s in view.checklist][0] == "assessed"
    assert not hasattr(view, "sessions")  # the checklist, never the counselling notes
    app.crisis.record_crisis_assessment(school.other_counselor, fid, assessment="有自伤意念，无计划")
    app.crisis.record_supervision(school.principal, fid, supervisors="班主任陪同")
    # but cannot read the whole file
    with pytest.raises(PermissionDenied):
        app.support.get_support_file(school.other_counselor, fid)
    # the class teacher, the safety lead and another school's counselor may not read or act
    elsewhere = make_school(app, "第二中学")
    for who in (school.teacher, school.safety, elsewhere.counselor):
        with pytest.raises(PermissionDenied):
            app.crisis.get_crisis(who, fid)
        with pytest.raises(PermissionDenied):
            app.crisis.record_handover(who, fid, guardian="母亲")
    view = app.crisis.get_crisis(school.counselor, fid)
    done = {s["step"]: s["done"] for s in view.checklist}
    assert done["assessed"]["actor"] == school.other_counselor.staff_id
    assert done["supervision"]["actor"] == school.principal.staff_id
    assert done["handed_over"] is None


def test_bad_input_to_a_step_is_refused_in_chinese_and_nothing_changes(app: Anxin, school: School) -> None:
    app.screenings.import_screenings(school.counselor, school.id, csv(f"2026001,PHQ-9,2026-10-10,{CRISIS}"))
    f = file_of(app, school, "2026001")
    with pytest.raises(InvalidInput) as e:
        app.crisis.record_guardian_informed(school.counselor, str(f.id), guardian="母亲", method="fax")
    assert "告知方式" in e.value.text
    app.crisis.record_crisis_assessment(school.counselor, str(f.id), assessment="评估")
    with pytest.raises(CrisisStepDone):
        app.crisis.record_crisis_assessment(school.counselor, str(f.id), assessment="再评估")
    assert file_of(app, school, "2026001").version == f.version + 1


def test_the_file_leaves_high_only_after_the_return_assessment(app: Anxin, school: School, clock: Clock) -> None:
    app.screenings.import_screenings(school.counselor, school.id, csv(f"2026001,PHQ-9,2026-10-10,{CRISIS}"))
    fid = str(file_of(app, school, "2026001").id)
    with pytest.raises(ReturnAssessmentMissing) as e:
        app.support.lower_risk_level(school.counselor, fid, "key", "好转")
    assert "医生建议" in e.value.text
    clock.advance(days=10)
    app.crisis.note_medical_advice(school.other_counselor, fid, advice="可复学，按时复诊")
    app.crisis.record_return_assessment(school.counselor, fid, assessment="情绪稳定")
    app.support.draw_up_plan(school.counselor, fid, goals=["复学适应"], measures=[{"text": "每周辅导", "by": "刘心理"}])
    app.support.lower_risk_level(school.counselor, fid, "key", "复学评估通过")
    f = app.support.get_support_file(school.counselor, fid)
    assert f.crisis is None and f.risk_level == "key" and len(f.past_crises) == 1


# -- escalated files: the first contact ----------------------------------------------------------
def test_an_escalated_file_owes_a_first_contact_within_two_school_days(
    app: Anxin, school: School, clock: Clock
) -> None:
    # given a Friday
    clock.now = datetime(2026, 10, 16, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai
    pid = pair(app, school)
    ci = app.pairings.record_check_in(
        school.teacher, pid, held_on=clock.today, notes={"thinking": "孤僻"}, concern=True, concern_note="被孤立"
    )
    fid = app.escalations.escalate_to_support_file(
        school.teacher, pid, ci, category="人际关系", risk_level="key", reason="谈心中发现被孤立"
    )
    f = app.support.get_support_file(school.principal, fid)
    # then the first contact is due on Tuesday (Monday and Tuesday are the two school days)
    assert f.first_contact_due == date(2026, 10, 20)
