"""The support-file register and screening coverage (projections.support_register),
on SQLite and PostgreSQL: rows after a realistic history, the gate, erased streams,
read-your-writes, and a rebuild that equals the incremental fold after random
histories (checked, too, against the directory-backed queries of anxin.support)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest
from conftest import ADMIN, Clock, School, Store, fresh_app, make_school
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from anxin.service import Anxin
from domain.common import DomainError, PermissionDenied
from domain.policy import Policy
from projections import support_register as sr

NO_RISK = [0] * 9  # PHQ-9, minimal
CRISIS = [2, 2, 2, 2, 2, 2, 2, 2, 1]  # PHQ-9 18 with item 9 > 0: flagged and a crisis signal


def open_file(app: Anxin, school: School, no: str, level: str = "key", category: str = "情绪困扰") -> str:
    return app.support.open_support_file(
        school.counselor, school.student(no), category=category, risk_level=level, reason="近期情绪低落，上课常走神"
    )


def screen(app: Anxin, school: School, no: str, on: date, answers: list[int] | None = None) -> None:
    app.screenings.record_screening(
        school.counselor, school.student(no), instrument="PHQ-9", screened_on=on, answers=answers or NO_RISK
    )


def access_rows(app: Anxin, actor_id: str) -> list[tuple[str, str, int]]:
    return [
        (r[0], r[1], r[2])
        for r in app.db.fetch(
            "SELECT action, resource_kind, allowed FROM {t}anxin_access WHERE actor_id = ? ORDER BY id", (actor_id,)
        )
    ]


def dump(app: Anxin, view: str) -> dict[str, list[tuple[Any, ...]]]:
    v = app.views.by_name[view]
    with app.views.engine.connect() as conn:
        return {t.name: [tuple(r) for r in conn.execute(select(t).order_by(*t.primary_key.columns))] for t in v.tables}


# -- the register -----------------------------------------------------------------------------
def test_the_register_lists_each_file_with_class_level_category_responsible_and_next_review(
    app: Anxin, school: School, clock: Clock
) -> None:
    # given three files: one raised to 高危, one handed to another counselor, one closed
    high = open_file(app, school, "2026001", "key", "自伤风险")
    app.support.raise_risk_level(school.principal, high, "high", "出现自伤念头")
    other = open_file(app, school, "2026003", "general", "学业压力")
    app.support.reassign_support_file(school.principal, other, school.other_counselor.staff_id, "工作调整")
    closed = open_file(app, school, "2026004", "key")
    app.support.close_support_file(school.principal, closed, "风险已解除")
    # when the counselor reads the register
    lines = sr.register(app, school.counselor, school.id)
    # then open files come first, the highest risk first, each with its line of ids, codes and dates
    assert [x.file_id for x in lines] == [high, other, closed]
    first = lines[0]
    assert (
        first.student_id,
        first.class_name,
        first.risk_level,
        first.risk_label,
        first.category,
        first.responsible_id,
        first.status,
        first.next_review_due,
        first.review_overdue,
    ) == (
        school.student("2026001"),
        "七年级1班",
        "high",
        "高危",
        "自伤风险",
        school.counselor.staff_id,
        "open",
        clock.today + timedelta(days=Policy().review_days["high"]),
        False,
    )
    assert (lines[1].category, lines[1].responsible_id, lines[1].class_name) == (
        "学业压力",
        school.other_counselor.staff_id,
        "七年级2班",
    )
    assert (lines[2].status, lines[2].next_review_due) == ("closed", None)
    # and only open files when asked
    assert [x.file_id for x in sr.register(app, school.counselor, school.id, include_closed=False)] == [high, other]


def test_a_review_is_overdue_only_after_its_date_decided_when_the_register_is_read(
    app: Anxin, school: School, clock: Clock
) -> None:
    fid = open_file(app, school, "2026001", "high")
    due = clock.today + timedelta(days=Policy().review_days["high"])
    assert not sr.register(app, school.counselor, school.id, today=due)[0].review_overdue
    assert sr.register(app, school.counselor, school.id, today=due + timedelta(days=1))[0].review_overdue
    # a review moves the date on; the clock's today is the default
    clock.advance(days=31)
    assert sr.register(app, school.counselor, school.id)[0].review_overdue
    app.support.draw_up_plan(
        school.counselor, fid, goals=["情绪稳定"], measures=[{"text": "每周一次个体辅导", "by": "心理老师"}]
    )
    app.support.record_review(school.counselor, fid, reviewed_on=clock.today, notes="情况稳定", outcome="continue")
    line = sr.register(app, school.counselor, school.id)[0]
    assert (line.next_review_due, line.review_overdue) == (
        clock.today + timedelta(days=Policy().review_days["high"]),
        False,
    )


def test_the_category_is_kept_sealed_in_the_view_table(app: Anxin, school: School) -> None:
    open_file(app, school, "2026001", "key", "家庭变故")
    with app.views.engine.connect() as conn:
        rows = [tuple(r) for r in conn.execute(select(sr.files))]
    assert rows and all(
        "家庭变故".encode() not in (v if isinstance(v, bytes) else str(v).encode()) for r in rows for v in r
    )
    app.support.change_file_category(
        school.principal, sr.register(app, school.principal, school.id)[0].file_id, "人际关系", "重新评估"
    )
    assert sr.register(app, school.principal, school.id)[0].category == "人际关系"


def test_the_register_is_for_the_schools_counselors_and_principal_and_every_decision_is_recorded(
    app: Anxin, school: School
) -> None:
    open_file(app, school, "2026001")
    # the other counselor (not responsible) and the principal may read the register
    assert len(sr.register(app, school.other_counselor, school.id)) == 1
    assert len(sr.register(app, school.principal, school.id)) == 1
    assert access_rows(app, school.other_counselor.staff_id)[-1] == ("file.list", "file", 1)
    # a class teacher, the safety lead, the administrator and a supervisor may not
    for who in (school.teacher, school.safety, school.admin, school.supervisor):
        with pytest.raises(PermissionDenied):
            sr.register(app, who, school.id)
        assert access_rows(app, who.staff_id)[-1] == ("file.list", "file", 0)
    # nor a counselor of another school
    other = make_school(app, "第二中学")
    with pytest.raises(PermissionDenied):
        sr.register(app, other.counselor, school.id)


def test_a_shredded_file_stays_on_the_register_as_erased_without_its_level_or_category(
    app: Anxin, school: School
) -> None:
    fid = open_file(app, school, "2026001", "high", "自伤风险")
    keep = open_file(app, school, "2026002")
    app.erasure.shred(ADMIN, fid, "保存期限届满")
    lines = {x.file_id: x for x in sr.register(app, school.counselor, school.id)}
    assert (
        lines[fid].erased,
        lines[fid].status,
        lines[fid].risk_level,
        lines[fid].category,
        lines[fid].next_review_due,
        lines[fid].student_id,
        lines[fid].responsible_id,
    ) == (True, "erased", None, None, None, school.student("2026001"), school.counselor.staff_id)
    assert not lines[keep].erased and lines[keep].category == "情绪困扰"


def test_the_register_reflects_a_command_as_soon_as_it_returns(app: Anxin, school: School) -> None:
    # when a file is opened
    fid = open_file(app, school, "2026001")
    # then the view already holds it (no catch-up left to do) before anyone queries it
    assert app.views.positions()[sr.NAME] == app.recorder.max_notification_id()
    with app.views.engine.connect() as conn:
        assert conn.execute(select(sr.files.c.risk_level).where(sr.files.c.file_id == fid)).scalar() == "key"
    app.support.raise_risk_level(school.principal, fid, "high", "危机")
    assert sr.register(app, school.counselor, school.id)[0].risk_level == "high"


# -- screening coverage -----------------------------------------------------------------------
def test_coverage_counts_the_students_screened_this_school_year_per_class_and_lists_who_is_not(
    app: Anxin, school: School, clock: Clock
) -> None:
    # given one student screened this school year (2026-27), one only last year, one who left
    screen(app, school, "2026001", clock.today)
    screen(app, school, "2026003", date(2026, 6, 1))  # school year 2025
    app.roster.leave_student(ADMIN, school.student("2026004"), "转学")
    # when the counselor reads this year's coverage
    cov = sr.coverage(app, school.counselor, school.id, with_names=True)
    # then three students are enrolled, one screened, per class, with the two not yet screened
    assert (cov.school_year, cov.enrolled, cov.screened) == (2026, 3, 1)
    assert cov.per_class == {"七年级1班": sr.ClassCoverage(2, 1), "七年级2班": sr.ClassCoverage(1, 0)}
    assert cov.not_screened == [school.student("2026002"), school.student("2026003")]
    assert cov.names == {school.student("2026002"): "李小红", school.student("2026003"): "王小刚"}
    assert cov.rate == pytest.approx(1 / 3)
    # and last year's coverage counts last year's screening
    last = sr.coverage(app, school.counselor, school.id, 2025)
    assert last.screened == 1
    assert last.not_screened == sorted([school.student("2026001"), school.student("2026002")])  # one class: by id
    # a class change moves the student's count to the new class
    app.roster.correct_student(ADMIN, school.student("2026001"), {"class_name": "七年级2班"}, "分班调整")
    cov = sr.coverage(app, school.counselor, school.id)
    assert cov.per_class == {"七年级1班": sr.ClassCoverage(1, 0), "七年级2班": sr.ClassCoverage(2, 1)}
    # the school year follows the clock: next September nobody is screened yet
    assert sr.coverage(app, school.counselor, school.id, today=date(2027, 9, 1)).screened == 0


def test_coverage_gives_counts_without_the_list_to_those_with_statistics_only(app: Anxin, school: School) -> None:
    screen(app, school, "2026001", date(2026, 10, 1))
    # the safety lead and a supervisor have statistics (STATS_READ), not the register
    for who in (school.safety, school.supervisor):
        cov = sr.coverage(app, who, school.id, with_names=True)
        assert (cov.enrolled, cov.screened, cov.not_screened, cov.names) == (4, 1, [], {})
        assert access_rows(app, who.staff_id)[-1] == ("stats.read", "school", 1)
    # a class teacher has neither
    with pytest.raises(PermissionDenied):
        sr.coverage(app, school.teacher, school.id)
    assert access_rows(app, school.teacher.staff_id)[-1] == ("stats.read", "school", 0)


def test_erased_students_and_screening_records_no_longer_count(app: Anxin, school: School, clock: Clock) -> None:
    screen(app, school, "2026001", clock.today)
    screen(app, school, "2026002", clock.today)
    app.erasure.shred(ADMIN, school.student("2026003"), "保存期限届满")
    record = str(app.screenings.screening_record_id(school.student("2026002"), 2026))  # type: ignore[attr-defined]
    app.erasure.shred(ADMIN, record, "保存期限届满")
    cov = sr.coverage(app, school.counselor, school.id, with_names=True)
    assert (cov.enrolled, cov.screened) == (3, 1)
    assert cov.not_screened == [school.student("2026002"), school.student("2026004")]
    # the erased student's file goes with them; its line keeps the class (from the directory)
    fid = open_file(app, school, "2026004")
    app.erasure.shred(ADMIN, school.student("2026004"), "保存期限届满")
    line = next(x for x in sr.register(app, school.counselor, school.id) if x.file_id == fid)
    assert (line.class_name, line.erased) == ("七年级2班", True)
    assert sr.coverage(app, school.counselor, school.id).enrolled == 2


def test_coverage_reflects_a_screening_as_soon_as_it_is_recorded(app: Anxin, school: School, clock: Clock) -> None:
    screen(app, school, "2026002", clock.today)
    assert app.views.positions()[sr.NAME] == app.recorder.max_notification_id()
    with app.views.engine.connect() as conn:
        assert (
            conn.execute(
                select(sr.screened.c.screenings).where(sr.screened.c.student_id == school.student("2026002"))
            ).scalar()
            == 1
        )
    assert sr.coverage(app, school.counselor, school.id).screened == 1


# -- rebuild equals incremental -------------------------------------------------------------------
def test_a_rebuild_after_shredding_gives_the_same_rows_as_the_incremental_fold(
    app: Anxin, school: School, clock: Clock
) -> None:
    # given a history with a left-then-shredded student, a shredded file and a shredded screening record
    fid = open_file(app, school, "2026001", "high", "自伤风险")
    app.support.reassign_support_file(school.principal, fid, school.other_counselor.staff_id, "调整")
    screen(app, school, "2026002", clock.today)
    screen(app, school, "2026003", clock.today, CRISIS)
    app.roster.correct_student(ADMIN, school.student("2026004"), {"class_name": "七年级3班"}, "分班")
    app.roster.leave_student(ADMIN, school.student("2026004"), "转学")
    app.erasure.shred(ADMIN, school.student("2026004"), "保存期限届满")
    app.erasure.shred(ADMIN, fid, "保存期限届满")
    record = str(app.screenings.screening_record_id(school.student("2026002"), 2026))  # type: ignore[attr-defined]
    app.erasure.shred(ADMIN, record, "保存期限届满")
    before = dump(app, sr.NAME)
    gone = school.student("2026004")
    assert [r for r in before["v_register_enrolment"] if r[0] == gone] == [(gone, school.id, "七年级3班", False, True)]
    # when the view is rebuilt from the log
    app.views.rebuild([sr.NAME])
    # then its rows are the same, byte for byte (the sealed category included)
    assert dump(app, sr.NAME) == before


LEVELS = ("general", "key", "high")
who = st.integers(0, 5)
OPS = st.lists(
    st.one_of(
        st.tuples(st.just("open"), who, st.sampled_from(LEVELS), st.sampled_from(("情绪困扰", "学业压力"))),
        st.tuples(st.just("raise"), who, st.sampled_from(LEVELS)),
        st.tuples(st.just("lower"), who, st.sampled_from(LEVELS)),
        st.tuples(st.just("category"), who, st.sampled_from(("人际关系", "家庭变故"))),
        st.tuples(st.just("reassign"), who),
        st.tuples(st.just("review"), who),
        st.tuples(st.just("close"), who),
        st.tuples(st.just("reopen"), who),
        st.tuples(st.just("screen"), who, st.booleans()),
        st.tuples(st.just("move"), who, st.sampled_from(("七年级1班", "七年级2班", "七年级3班"))),
        st.tuples(st.just("leave"), who),
        st.tuples(st.just("enrol"), st.sampled_from(("七年级1班", "七年级3班"))),
        st.tuples(st.just("shred_file"), who),
        st.tuples(st.just("shred_student"), who),
        st.tuples(st.just("advance"), st.integers(1, 60)),
    ),
    max_size=30,
)
# Every history starts with some files and a screening, so the random steps have things to act on.
PREFIX = [("open", 0, "key", "情绪困扰"), ("open", 3, "general", "学业压力"), ("screen", 1, True), ("screen", 2, False)]


def run(app: Anxin, school: School, clock: Clock, op: tuple[Any, ...]) -> None:
    students = [
        r[0]
        for r in app.db.fetch(
            "SELECT stream_id FROM {t}anxin_directory WHERE kind = 'student' AND school_id = ? ORDER BY stream_id",
            (school.id,),
        )
    ]
    name, *args = op
    sid = students[args[0] % len(students)] if args and isinstance(args[0], int) and name != "advance" else ""
    row = app.db.fetchone(
        "SELECT stream_id FROM {t}anxin_directory WHERE kind = 'file' AND subject_id = ? AND erased = 0 "
        "ORDER BY stream_id LIMIT 1",
        (sid,),
    )
    fid = row[0] if row else None
    p = school.principal
    if name == "open":
        app.support.open_support_file(school.counselor, sid, category=args[2], risk_level=args[1], reason="担忧")
    elif name == "screen":
        app.screenings.record_screening(
            school.counselor, sid, instrument="PHQ-9", screened_on=clock.today, answers=CRISIS if args[1] else NO_RISK
        )
    elif name == "move":
        app.roster.correct_student(ADMIN, sid, {"class_name": args[1]}, "分班")
    elif name == "leave":
        app.roster.leave_student(ADMIN, sid, "转学")
    elif name == "enrol":
        app.roster.enrol_student(
            ADMIN,
            school_id=school.id,
            student_no=uuid4().hex[:8],
            name="新同学",
            gender="女",
            birth_date=date(2013, 1, 1),
            grade="七年级",
            class_name=args[0],
        )
    elif name == "shred_student":
        app.erasure.shred(ADMIN, sid, "保存期限届满")
    elif name == "advance":
        clock.advance(days=args[0])
    elif fid is None:
        return
    elif name == "raise":
        app.support.raise_risk_level(p, fid, args[1], "加重")
    elif name == "lower":
        app.support.lower_risk_level(p, fid, args[1], "好转")
    elif name == "category":
        app.support.change_file_category(p, fid, args[1], "重新评估")
    elif name == "reassign":
        f = app.support.get_support_file(p, fid)
        to = school.other_counselor if f.responsible_id == school.counselor.staff_id else school.counselor
        app.support.reassign_support_file(p, fid, to.staff_id, "调整")
    elif name == "review":
        app.support.record_review(p, fid, reviewed_on=clock.today, notes="复评", outcome="continue")
    elif name == "close":
        app.support.close_support_file(p, fid, "风险解除")
    elif name == "reopen":
        app.support.reopen_support_file(p, fid, "再次出现")
    elif name == "shred_file":
        app.erasure.shred(ADMIN, fid, "保存期限届满")


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=OPS)
def test_a_rebuilt_register_equals_the_incremental_one_after_a_random_history(store: Store, ops: list[Any]) -> None:
    clock = Clock(datetime(2026, 8, 20, 9, 0, tzinfo=UTC))
    with fresh_app(store.kind, clock) as app:
        school = make_school(app)
        for op in PREFIX + ops:
            try:
                run(app, school, clock, op)
            except DomainError:
                pass  # a refused command changes nothing
        # the view answers as the directory-backed queries do
        mine = sr.register(app, school.principal, school.id)
        theirs = app.support.support_register(school.principal, school.id)  # type: ignore[attr-defined]
        assert {
            (
                x.file_id,
                x.student_id,
                x.risk_level,
                x.category,
                x.status,
                x.responsible_id,
                x.next_review_due,
                x.review_overdue,
                x.erased,
            )
            for x in mine
        } == {
            (
                x.file_id,
                x.student_id,
                x.risk_level,
                x.category,
                x.status,
                x.responsible_id,
                x.next_review_due,
                x.review_overdue,
                x.erased,
            )
            for x in theirs
        }
        cov = sr.coverage(app, school.principal, school.id)
        old = app.screenings.screening_coverage(school.principal, school.id)  # type: ignore[attr-defined]
        assert (cov.school_year, cov.enrolled, cov.screened, cov.not_screened) == (
            old.school_year,
            old.enrolled,
            old.screened,
            old.not_screened,
        )
        assert {k: (v.enrolled, v.screened) for k, v in cov.per_class.items()} == {
            k: (v.enrolled, v.screened) for k, v in old.per_class.items()
        }
        # and a rebuild gives the very same rows
        before = dump(app, sr.NAME)
        app.views.rebuild([sr.NAME])
        assert dump(app, sr.NAME) == before
