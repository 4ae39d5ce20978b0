"""Support files (心理健康档案 · 一人一策) through the application, on SQLite and
PostgreSQL: opening, one open file per student, the gate (assigned counselor or
principal; the register for the school's other counselors; a supervisor only with a
stated reason), the record of the work, reviews, closure and concurrent edits."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest
from conftest import ADMIN, Clock, School

from anxin.commands.support import FileAlreadyOpen, RegisterLine, ResponsibleStaffInvalid, StudentNotActive
from anxin.service import Anxin
from domain.common import Conflict, Erased, InvalidInput, PermissionDenied
from domain.policy import Policy
from domain.support import FileClosed, RiskLevelUnchanged, SupportFile, WrongRiskDirection

REVIEW = Policy().review_days


def open_file(app: Anxin, school: School, no: str = "2026001", level: str = "key", **kw: Any) -> str:
    args: dict[str, Any] = {"category": "情绪困扰", "risk_level": level, "reason": "近期情绪低落，上课常走神"}
    args.update(kw)
    return app.support.open_support_file(school.counselor, school.student(no), **args)


def directory(app: Anxin, stream_id: str) -> tuple[Any, ...] | None:
    return app.db.fetchone(
        "SELECT kind, school_id, class_name, owner_id, subject_id, status FROM {t}anxin_directory WHERE stream_id = ?",
        (stream_id,),
    )


def version(app: Anxin, school: School, file_id: str) -> int:
    return app.support.get_support_file(school.principal, file_id).version


def denials(app: Anxin, actor_id: str) -> list[tuple[str, str]]:
    return [
        (r[0], r[1])
        for r in app.db.fetch(
            "SELECT action, resource_kind FROM {t}anxin_access WHERE actor_id = ? AND allowed = 0 ORDER BY id",
            (actor_id,),
        )
    ]


# -- opening --------------------------------------------------------------------------------
def test_a_counselor_opens_a_file_and_is_its_one_to_one_responsible(app: Anxin, school: School, clock: Clock) -> None:
    # when the counselor opens a file on their own judgement
    fid = open_file(app, school, level="high", category="自伤风险")
    # then they are its responsible staff, it is open at that level, with a review a month away
    f = app.support.get_support_file(school.counselor, fid)
    assert (f.student_id, f.responsible_id, f.risk_level, f.category, f.status, f.origin) == (
        school.student("2026001"),
        school.counselor.staff_id,
        "high",
        "自伤风险",
        "open",
        "judgement",
    )
    assert f.next_review_due == clock.today + timedelta(days=REVIEW["high"])
    # and the directory holds ids and a status only
    assert directory(app, fid) == (
        "file",
        school.id,
        None,
        school.counselor.staff_id,
        school.student("2026001"),
        "open",
    )


def test_a_file_keeps_the_link_to_where_it_came_from(app: Anxin, school: School) -> None:
    fid = open_file(app, school, origin="referral", source={"kind": "bullying_case", "id": "case-1"})
    f = app.support.get_support_file(school.counselor, fid)
    assert (f.origin, f.source) == ("referral", {"kind": "bullying_case", "id": "case-1"})


def test_a_second_open_file_for_the_same_student_is_refused(app: Anxin, school: School) -> None:
    # given an open file
    first = open_file(app, school)
    # when another counselor tries to open a second one
    with pytest.raises(FileAlreadyOpen) as e:
        app.support.open_support_file(
            school.other_counselor,
            school.student("2026001"),
            category="学业压力",
            risk_level="general",
            reason="考试焦虑",
        )
    # then it is refused, and the register still has one file
    assert e.value.code == "support_file_already_open"
    assert [line.file_id for line in app.support.support_register(school.counselor, school.id)] == [first]
    # but once the first is closed, a new file may be opened
    app.support.close_support_file(school.counselor, first, "风险解除")
    second = open_file(app, school)
    assert second != first


def test_the_responsible_staff_must_be_a_counselor_of_the_school(app: Anxin, school: School) -> None:
    with pytest.raises(ResponsibleStaffInvalid):
        open_file(app, school, responsible_id=school.teacher.staff_id)
    with pytest.raises(ResponsibleStaffInvalid):
        open_file(app, school, responsible_id="no-such-staff")
    assert app.support.support_register(school.principal, school.id) == []
    # another counselor of the school may be named
    fid = open_file(app, school, responsible_id=school.other_counselor.staff_id)
    assert app.support.get_support_file(school.other_counselor, fid).responsible_id == school.other_counselor.staff_id


def test_a_class_teacher_opens_a_file_for_their_own_class_with_a_counselor_responsible(
    app: Anxin, school: School
) -> None:
    # when the class teacher opens a file for a student of their class, naming a counselor
    fid = app.support.open_support_file(
        school.teacher,
        school.student("2026002"),
        category="人际关系",
        risk_level="key",
        reason="被同学孤立",
        responsible_id=school.counselor.staff_id,
    )
    # then the counselor holds it; the teacher may not read it
    assert app.support.get_support_file(school.counselor, fid).responsible_id == school.counselor.staff_id
    with pytest.raises(PermissionDenied):
        app.support.get_support_file(school.teacher, fid)
    # and a teacher must name a counselor, and cannot open one for another class
    with pytest.raises(InvalidInput):
        app.support.open_support_file(
            school.teacher, school.student("2026001"), category="人际关系", risk_level="key", reason="被同学孤立"
        )
    with pytest.raises(PermissionDenied):
        app.support.open_support_file(
            school.teacher,
            school.student("2026003"),
            category="人际关系",
            risk_level="key",
            reason="被同学孤立",
            responsible_id=school.counselor.staff_id,
        )


def test_no_file_is_opened_for_a_student_who_has_left(app: Anxin, school: School) -> None:
    app.roster.leave_student(ADMIN, school.student("2026004"), "转学")
    with pytest.raises(StudentNotActive):
        open_file(app, school, no="2026004")


# -- the gate -------------------------------------------------------------------------------
def test_another_counselor_sees_the_register_but_cannot_read_or_write_the_file(app: Anxin, school: School) -> None:
    # given a file assigned to the counselor
    fid = open_file(app, school)
    app.support.record_session(school.counselor, fid, held_on=date(2026, 10, 12), summary="谈到家中争吵")
    # when the school's other counselor looks at the register, they see the line, without notes
    (line,) = app.support.support_register(school.other_counselor, school.id)
    assert line == RegisterLine(
        fid,
        school.student("2026001"),
        "key",
        "情绪困扰",
        "open",
        school.counselor.staff_id,
        date(2026, 10, 12) + timedelta(days=REVIEW["key"]),
    )
    # but reading or writing the file is refused, and each refusal is recorded
    with pytest.raises(PermissionDenied):
        app.support.get_support_file(school.other_counselor, fid)
    with pytest.raises(PermissionDenied):
        app.support.record_session(school.other_counselor, fid, held_on=date(2026, 10, 12), summary="越权记录")
    with pytest.raises(PermissionDenied):
        app.support.raise_risk_level(school.other_counselor, fid, "high", "越权调整")
    assert denials(app, school.other_counselor.staff_id) == [
        ("file.read", "file"),
        ("file.write", "file"),
        ("file.write", "file"),
    ]
    assert version(app, school, fid) == 2


@pytest.mark.parametrize("who", ["teacher", "other_teacher", "safety", "admin"])
def test_teachers_safety_leads_and_administrators_cannot_read_a_file(app: Anxin, school: School, who: str) -> None:
    fid = open_file(app, school)
    with pytest.raises(PermissionDenied):
        app.support.get_support_file(getattr(school, who), fid)
    with pytest.raises(PermissionDenied):
        app.support.record_session(getattr(school, who), fid, held_on=date(2026, 10, 12), summary="记录")


def test_an_administrator_is_refused_for_separation_of_duties(app: Anxin, school: School) -> None:
    fid = open_file(app, school)
    with pytest.raises(PermissionDenied) as e:
        app.support.get_support_file(ADMIN, fid)
    assert "职责分离" in e.value.text
    with pytest.raises(PermissionDenied):
        app.support.support_register(ADMIN, school.id)


def test_a_class_teacher_cannot_see_the_register(app: Anxin, school: School) -> None:
    open_file(app, school)
    with pytest.raises(PermissionDenied):
        app.support.support_register(school.teacher, school.id)


def test_a_supervisor_reads_a_file_only_with_a_stated_reason_which_is_recorded(app: Anxin, school: School) -> None:
    fid = open_file(app, school)
    with pytest.raises(PermissionDenied):
        app.support.get_support_file(school.supervisor, fid)
    with pytest.raises(PermissionDenied):
        app.support.get_support_file(school.supervisor, fid, break_glass="看")
    f = app.support.get_support_file(school.supervisor, fid, break_glass="家长投诉处理不当，核查档案")
    assert f.student_id == school.student("2026001")
    (entry,) = [e for e in app.gate.access_log(school.supervisor, allowed=True) if e["break_glass"]]
    assert (entry["resource_id"], entry["break_glass"]) == (fid, "家长投诉处理不当，核查档案")
    # and a supervisor cannot write, reason or not
    with pytest.raises(PermissionDenied):
        app.support.record_session(school.supervisor, fid, held_on=date(2026, 10, 12), summary="督导记录")


def test_the_principal_reads_and_writes_any_file_of_the_school(app: Anxin, school: School) -> None:
    fid = open_file(app, school)
    app.support.raise_risk_level(school.principal, fid, "high", "校长研判后提级")
    assert app.support.get_support_file(school.principal, fid).risk_level == "high"


def test_another_schools_counselor_sees_nothing(app: Anxin, school: School) -> None:
    from conftest import make_school

    fid = open_file(app, school)
    other = make_school(app, "第二中学")
    with pytest.raises(PermissionDenied):
        app.support.support_register(other.counselor, school.id)
    with pytest.raises(PermissionDenied):
        app.support.get_support_file(other.principal, fid)


def test_reassignment_moves_access_to_the_new_counselor(app: Anxin, school: School) -> None:
    # given a file held by the counselor
    fid = open_file(app, school)
    # when the principal reassigns it to the other counselor
    app.support.reassign_support_file(school.principal, fid, school.other_counselor.staff_id, "原负责人外出培训")
    # then the other counselor may read and write it, and the first may no longer
    app.support.record_session(school.other_counselor, fid, held_on=date(2026, 10, 12), summary="交接后首次辅导")
    with pytest.raises(PermissionDenied):
        app.support.get_support_file(school.counselor, fid)
    assert directory(app, fid)[3] == school.other_counselor.staff_id  # type: ignore[index]
    assert [line.file_id for line in app.support.my_support_files(school.other_counselor)] == [fid]
    assert app.support.my_support_files(school.counselor) == []
    # and a reassignment to a teacher is refused
    with pytest.raises(ResponsibleStaffInvalid):
        app.support.reassign_support_file(school.principal, fid, school.teacher.staff_id, "换人")


# -- risk level, plan and the record of the work ---------------------------------------------
def test_the_risk_level_goes_up_and_down_with_reasons_and_the_review_follows(
    app: Anxin, school: School, clock: Clock
) -> None:
    fid = open_file(app, school, level="general")
    clock.advance(days=5)
    app.support.raise_risk_level(school.counselor, fid, "high", "自述有轻生念头")
    assert app.support.get_support_file(school.counselor, fid).next_review_due == clock.today + timedelta(
        days=REVIEW["high"]
    )
    clock.advance(days=40)
    app.support.lower_risk_level(school.counselor, fid, "key", "情绪趋于稳定")
    f = app.support.get_support_file(school.counselor, fid)
    assert (f.risk_level, f.next_review_due) == ("key", clock.today + timedelta(days=REVIEW["key"]))
    assert [(h["from"], h["to"], h["reason"]) for h in f.risk_history] == [
        (None, "general", "近期情绪低落，上课常走神"),
        ("general", "high", "自述有轻生念头"),
        ("high", "key", "情绪趋于稳定"),
    ]


def test_a_refused_level_change_changes_nothing(app: Anxin, school: School) -> None:
    fid = open_file(app, school, level="key")
    with pytest.raises(RiskLevelUnchanged):
        app.support.raise_risk_level(school.counselor, fid, "key", "再确认")
    with pytest.raises(WrongRiskDirection):
        app.support.lower_risk_level(school.counselor, fid, "high", "方向错")
    with pytest.raises(InvalidInput):
        app.support.raise_risk_level(school.counselor, fid, "purple", "无效")
    assert version(app, school, fid) == 1


def test_the_plan_and_the_record_of_the_work_are_kept(app: Anxin, school: School) -> None:
    fid = open_file(app, school)
    measures = [{"text": "每周一次个体辅导", "by": "心理老师"}, {"text": "家长每晚陪伴散步", "by": "家长"}]
    app.support.draw_up_plan(school.counselor, fid, goals=["情绪稳定", "恢复睡眠"], measures=measures)
    s = app.support.record_session(
        school.counselor,
        fid,
        held_on=date(2026, 10, 12),
        summary="讨论睡眠问题",
        duration_minutes=45,
        next_steps="记录睡眠日志",
    )
    g = app.support.record_guardian_contact(
        school.counselor,
        fid,
        contacted_on=date(2026, 10, 12),
        guardian="母亲",
        method="meeting",
        summary="家长同意配合",
    )
    r = app.support.record_referral(
        school.counselor, fid, referred_on=date(2026, 10, 12), to="市第三人民医院心理科", reason="需评估睡眠障碍"
    )
    app.support.revise_plan(
        school.counselor, fid, goals=["情绪稳定", "恢复睡眠", "按时到校"], measures=measures, reason="增加出勤目标"
    )
    app.support.change_file_category(school.counselor, fid, "家庭变故", "了解到父母近期离异")
    f = app.support.get_support_file(school.counselor, fid)
    assert f.category == "家庭变故" and f.category_history[0]["reason"] == "了解到父母近期离异"
    assert f.plan is not None and f.plan["version"] == 2 and f.plan["goals"][-1] == "按时到校"
    assert (f.sessions[0]["id"], f.sessions[0]["duration_minutes"]) == (s, 45)
    assert (f.guardian_contacts[0]["id"], f.guardian_contacts[0]["guardian"]) == (g, "母亲")
    assert (f.referrals[0]["id"], f.referrals[0]["to"]) == (r, "市第三人民医院心理科")
    assert f.version == 7


def test_a_crisis_intervention_raises_the_file_to_high_in_the_same_save(app: Anxin, school: School) -> None:
    fid = open_file(app, school, level="general")
    before = app.recorder.max_notification_id()
    app.support.record_crisis_intervention(
        school.counselor,
        fid,
        occurred_on=date(2026, 10, 12),
        what_happened="午休时在厕所哭泣并说不想活了",
        actions_taken="全程陪护，通知家长接回，联系医院",
    )
    f = app.support.get_support_file(school.counselor, fid)
    assert (f.risk_level, f.version) == ("high", 4)
    assert app.recorder.max_notification_id() == (before or 0) + 3
    topics = [n.topic.rsplit(".", 1)[-1] for n in app.recorder.select_notifications(start=(before or 0) + 1, limit=5)]
    assert topics == ["CrisisInterventionRecorded", "RiskLevelRaised", "CrisisOpened"]


def test_a_review_resets_the_next_review_and_overdue_files_show_in_the_register(
    app: Anxin, school: School, clock: Clock
) -> None:
    # given a 高危 file nobody has reviewed for 31 days
    fid = open_file(app, school, level="high")
    clock.advance(days=31)
    (line,) = app.support.support_register(school.counselor, school.id)
    assert line.review_overdue
    # when the review of its plan is recorded
    app.support.draw_up_plan(
        school.counselor, fid, goals=["情绪稳定"], measures=[{"text": "每周一次个体辅导", "by": "心理老师"}]
    )
    app.support.record_review(school.counselor, fid, reviewed_on=clock.today, notes="情绪略有好转", outcome="adjust")
    # then the next review is a month from now and it is no longer overdue
    (line,) = app.support.support_register(school.counselor, school.id)
    assert (line.review_overdue, line.next_review_due) == (False, clock.today + timedelta(days=REVIEW["high"]))
    assert app.support.get_support_file(school.counselor, fid).reviews[0]["outcome"] == "adjust"


def test_a_correction_names_what_it_corrects(app: Anxin, school: School) -> None:
    fid = open_file(app, school)
    sid = app.support.record_session(school.counselor, fid, held_on=date(2026, 10, 12), summary="谈到与父亲的冲突")
    app.support.correct_file_entry(
        school.counselor, fid, sid, changes={"summary": "谈到与继父的冲突"}, reason="记录有误"
    )
    f = app.support.get_support_file(school.counselor, fid)
    (s,) = f.sessions
    assert s["summary"] == "谈到与继父的冲突" and s["corrections"][0]["reason"] == "记录有误"
    assert f.version == 3


# -- closure and reopening -----------------------------------------------------------------
def test_a_closed_file_refuses_new_entries_and_can_be_reopened(app: Anxin, school: School, clock: Clock) -> None:
    fid = open_file(app, school)
    app.support.close_support_file(school.counselor, fid, "经三个月辅导，风险解除")
    assert directory(app, fid)[5] == "closed"  # type: ignore[index]
    with pytest.raises(FileClosed) as e:
        app.support.record_session(school.counselor, fid, held_on=clock.today, summary="随访")
    assert e.value.code == "file_closed"
    assert version(app, school, fid) == 2
    clock.advance(days=60)
    app.support.reopen_support_file(school.counselor, fid, "期末考试前再次焦虑")
    app.support.record_session(school.counselor, fid, held_on=clock.today, summary="重新评估")
    assert app.support.get_support_file(school.counselor, fid).status == "open"
    assert directory(app, fid)[5] == "open"  # type: ignore[index]


def test_a_file_cannot_be_reopened_while_the_student_has_another_open_file(app: Anxin, school: School) -> None:
    first = open_file(app, school)
    app.support.close_support_file(school.counselor, first, "风险解除")
    open_file(app, school)
    with pytest.raises(FileAlreadyOpen):
        app.support.reopen_support_file(school.counselor, first, "复发")
    assert version(app, school, first) == 2


# -- concurrency and erasure ---------------------------------------------------------------
def test_two_edits_from_the_same_stale_version_one_wins_the_other_conflicts(app: Anxin, school: School) -> None:
    # given two people who both loaded the file at version 1
    fid = open_file(app, school)
    seen = app.support.get_support_file(school.counselor, fid).version
    # when both save an edit from that version
    app.support.record_session(school.counselor, fid, held_on=date(2026, 10, 12), summary="辅导", expected_version=seen)
    with pytest.raises(Conflict):
        app.support.raise_risk_level(school.principal, fid, "high", "提级", expected_version=seen)
    # then the first is kept and the second changed nothing
    f = app.support.get_support_file(school.counselor, fid)
    assert (f.version, f.risk_level, len(f.sessions)) == (2, "key", 1)


def test_a_concurrent_save_from_a_stale_copy_is_refused_by_the_store(app: Anxin, school: School) -> None:
    # given two copies of the same file loaded at the same version
    fid = open_file(app, school)
    a = app.load(fid, SupportFile)
    b = app.load(fid, SupportFile)
    a.record_session(entry_id="x", held_on=date(2026, 10, 12), summary="一", actor="s", at=app.now())
    b.record_session(entry_id="y", held_on=date(2026, 10, 12), summary="二", actor="s", at=app.now())
    app.commit(a)
    with pytest.raises(Conflict):
        app.commit(b)
    assert [s["id"] for s in app.support.get_support_file(school.counselor, fid).sessions] == ["x"]


def test_an_erased_file_shows_as_erased_in_the_register_and_refuses_reading(app: Anxin, school: School) -> None:
    fid = open_file(app, school)
    other = open_file(app, school, no="2026002")
    app.erasure.shred(ADMIN, fid, "保存期满")
    lines = {line.file_id: line for line in app.support.support_register(school.counselor, school.id)}
    assert lines[fid].erased and lines[fid].risk_level is None and lines[fid].status == "erased"
    assert not lines[other].erased
    with pytest.raises(Erased):
        app.support.get_support_file(school.counselor, fid)
    # and the student may have a new file
    assert open_file(app, school) != fid
