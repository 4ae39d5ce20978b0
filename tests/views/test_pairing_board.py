"""The pairing board (一岗双带) view, on SQLite and PostgreSQL: last check-in, next
due, overdue (decided when asked), open concerns; per teacher, class and school; the
gate; erased streams; read your writes; and a rebuild equal to the incrementally built
rows after a random history (hypothesis)."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest
from conftest import ADMIN, Clock, School, make_school
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from anxin.service import Anxin
from domain.common import DomainError, PermissionDenied
from domain.pairing import Pairing
from projections.pairing_board import ClassCounts, concerns, pairing_board, pairing_counts, pairings

CLASS1, CLASS2 = "七年级1班", "七年级2班"
A, B, C, D = "2026001", "2026002", "2026003", "2026004"  # A, B in class 1; C, D in class 2
NOTES = {"thinking": "情绪平稳", "studies": "数学进步"}


def pair(app: Anxin, school: School, no: str, staff: Any = None, **kw: Any) -> str:
    return app.pairings.pair(
        school.safety, staff_id=(staff or school.teacher).staff_id, student_id=school.student(no), **kw
    )


def check_in(app: Anxin, school: School, pid: str, held_on: date, concern: bool = False, by: Any = None) -> str:
    return app.pairings.record_check_in(
        by or school.teacher,
        pid,
        held_on=held_on,
        notes=NOTES,
        concern=concern,
        concern_note="提到被同学排挤" if concern else "",
    )


def line_of(app: Anxin, actor: Any, pid: str, **kw: Any) -> Any:
    [line] = [p for p in pairing_board(app, actor, **kw).lines if p.pairing_id == pid]
    return line


def raw(app: Anxin, pid: str) -> tuple[Any, ...] | None:
    """The stored row, read without the query's catch-up."""
    with app.views.engine.connect() as conn:
        row = conn.execute(
            select(pairings.c.last_day, pairings.c.due_day, pairings.c.open_concerns).where(
                pairings.c.pairing_id == pid
            )
        ).first()
    return tuple(row) if row else None


def dump(app: Anxin) -> dict[str, list[tuple[Any, ...]]]:
    with app.views.engine.connect() as conn:
        return {t.name: sorted(tuple(r) for r in conn.execute(select(t))) for t in (pairings, concerns)}


def decisions(app: Anxin, actor: Any) -> list[tuple[str, int]]:
    return [
        (r[0], int(r[1]))
        for r in app.db.fetch(
            "SELECT action, allowed FROM {t}anxin_access WHERE actor_id = ? AND action IN ('pairing.read', 'stats.read') "
            "ORDER BY id",
            (actor.staff_id,),
        )
    ]


# -- a teacher's board --------------------------------------------------------------------------
def test_a_teachers_board_shows_each_pairing_with_its_last_check_in_next_due_and_open_concerns(
    app: Anxin,
    school: School,
    clock: Clock,
) -> None:
    # given a class teacher paired with two students of their class on the 14-day cadence
    paired_on = clock.today
    pa = pair(app, school, A)
    pb = pair(app, school, B)
    # and, ten days on, a check-in with A raising a concern, and an older one recorded late
    clock.advance(days=10)
    check_in(app, school, pa, clock.today, concern=True)
    check_in(app, school, pa, clock.today - timedelta(days=4))
    # when the teacher looks at their board
    board = pairing_board(app, school.teacher)
    # then each pairing shows the student (name resolved now), class, last check-in and next due
    a = line_of(app, school.teacher, pa)
    assert (a.student_name, a.class_name, a.paired_on, a.last_check_in, a.next_due, a.overdue) == (
        "张小明",
        CLASS1,
        paired_on,
        clock.today,
        clock.today + timedelta(days=14),
        False,
    )
    assert (a.open_concerns, a.check_ins, a.staff_id, a.erased) == (1, 2, school.teacher.staff_id, False)
    b = line_of(app, school.teacher, pb)
    assert (b.student_name, b.last_check_in, b.next_due, b.open_concerns, b.check_ins) == (
        "李小红",
        None,
        paired_on + timedelta(days=14),
        0,
        0,
    )
    # and B, due sooner, comes first; the counts per class add up
    assert [p.pairing_id for p in board.lines] == [pb, pa]
    assert board.by_class == [ClassCounts(CLASS1, 2, 0, 1)]
    # and five days on, B is overdue (decided when asked, from `today`)
    later = clock.today + timedelta(days=5)
    assert [p.overdue for p in pairing_board(app, school.teacher, today=later).lines] == [True, False]
    assert pairing_board(app, school.teacher, today=later).totals == ClassCounts(None, 2, 1, 1)


def test_a_concern_escalated_to_a_file_or_a_report_is_no_longer_open(app: Anxin, school: School, clock: Clock) -> None:
    pid = pair(app, school, A)
    first = check_in(app, school, pid, clock.today, concern=True)
    second = check_in(app, school, pid, clock.today, concern=True)
    assert line_of(app, school.teacher, pid).open_concerns == 2
    # when one concern becomes a support file and the other a bullying report
    app.escalations.escalate_to_support_file(
        school.teacher, pid, first, category="人际关系", risk_level="general", reason="持续情绪低落"
    )
    assert line_of(app, school.teacher, pid).open_concerns == 1
    app.escalations.escalate_to_bullying_report(
        school.teacher,
        pid,
        second,
        occurred_at=clock.now - timedelta(hours=3),
        place="宿舍",
        forms=["verbal"],
        narrative="被同学排挤辱骂",
        reason="疑似欺凌",
    )
    # then no concern is open; escalating the first again (to a report) changes nothing
    assert line_of(app, school.teacher, pid).open_concerns == 0
    app.escalations.escalate_to_bullying_report(
        school.teacher,
        pid,
        first,
        occurred_at=clock.now - timedelta(hours=3),
        place="宿舍",
        forms=["verbal"],
        narrative="被同学排挤辱骂",
        reason="疑似欺凌",
    )
    assert line_of(app, school.teacher, pid).open_concerns == 0


def test_a_corrected_concern_moves_the_count_of_open_concerns(app: Anxin, school: School, clock: Clock) -> None:
    pid = pair(app, school, A)
    flagged = check_in(app, school, pid, clock.today, concern=True)
    plain = check_in(app, school, pid, clock.today)
    # when the flagged check-in is corrected to no concern, and the plain one to a concern
    app.pairings.correct_check_in(school.teacher, pid, flagged, reason="误标", concern=False)
    assert line_of(app, school.teacher, pid).open_concerns == 0
    app.pairings.correct_check_in(school.teacher, pid, plain, reason="补充担忧", concern=True, concern_note="睡眠不好")
    # then the count follows the domain
    assert line_of(app, school.teacher, pid).open_concerns == 1
    assert len(app.pairings.get_pairing(school.teacher, pid).open_concerns) == 1


def test_a_cadence_change_and_an_end_move_and_remove_the_pairing(app: Anxin, school: School, clock: Clock) -> None:
    pid = pair(app, school, A)
    clock.advance(days=3)
    # when the cadence becomes weekly (domain command; no application command yet)
    with app.editing(pid, Pairing) as p:
        p.change_cadence(cadence_days=7, reason="重点关注", actor=school.principal.staff_id, at=app.now())
    # then it is due a week after the pairing day (no check-in yet)
    assert line_of(app, school.teacher, pid).next_due == clock.today - timedelta(days=3) + timedelta(days=7)
    # when the pairing ends, it leaves the board
    app.pairings.end_pairing(school.teacher, pid, "学生转学")
    assert pairing_board(app, school.teacher).lines == []
    assert raw(app, pid) is None


# -- a school's board ---------------------------------------------------------------------------
def test_the_principal_sees_the_whole_school_with_counts_per_class(app: Anxin, school: School, clock: Clock) -> None:
    # given pairings of two teachers across two classes, one of them with an open concern
    pa = pair(app, school, A)
    pair(app, school, B)
    pc = pair(app, school, C, staff=school.other_teacher)
    pair(app, school, D, staff=school.other_teacher, cadence_days=30)
    check_in(app, school, pc, clock.today, concern=True, by=school.other_teacher)
    clock.advance(days=15)
    check_in(app, school, pa, clock.today)
    # when the principal looks at the school's board
    board = pairing_board(app, school.principal, school_id=school.id)
    # then every pairing is there (names not resolved by default), most overdue first, with counts per class
    assert len(board.lines) == 4 and {p.student_name for p in board.lines} == {""}
    assert [p.overdue for p in board.lines] == [True, True, False, False]
    assert board.by_class == [ClassCounts(CLASS1, 2, 1, 0), ClassCounts(CLASS2, 2, 1, 1)]
    # and one class's board holds only that class, with names when asked for
    class2 = pairing_board(app, school.principal, school_id=school.id, class_name=CLASS2, names=True)
    assert sorted(p.student_name for p in class2.lines) == ["王小刚", "赵小丽"]
    assert class2.by_class == [ClassCounts(CLASS2, 2, 1, 1)]
    # and the principal sees a teacher's board too
    assert {p.pairing_id for p in pairing_board(app, school.principal, staff_id=school.teacher.staff_id).lines} == {
        p.pairing_id for p in board.lines if p.class_name == CLASS1
    }
    # and the counts without names are the same for those with the school's statistics
    for who in (school.principal, school.counselor, school.safety, school.supervisor):
        assert pairing_counts(app, who, school.id) == board.by_class


def test_a_student_moved_to_another_class_is_counted_there(app: Anxin, school: School, clock: Clock) -> None:
    # given pairings in two classes, both overdue
    pa = pair(app, school, A)
    pair(app, school, C, staff=school.other_teacher)
    clock.advance(days=15)
    check_in(app, school, pa, clock.today)
    clock.advance(days=20)
    assert pairing_counts(app, school.principal, school.id) == [
        ClassCounts(CLASS1, 1, 1, 0),
        ClassCounts(CLASS2, 1, 1, 0),
    ]
    # when student C's class is corrected to class 1
    app.roster.correct_student(school.admin, school.student(C), {"class_name": CLASS1}, reason="转班")
    # then the school's counts, and its board, have both pairings in class 1
    board = pairing_board(app, school.principal, school_id=school.id)
    assert pairing_counts(app, school.principal, school.id) == board.by_class == [ClassCounts(CLASS1, 2, 2, 0)]
    # and a rebuild counts the same
    app.views.rebuild(["pairing_board"])
    assert pairing_counts(app, school.principal, school.id) == [ClassCounts(CLASS1, 2, 2, 0)]


# -- the gate -----------------------------------------------------------------------------------
def test_a_teacher_sees_their_own_pairings_only_and_every_decision_is_recorded(app: Anxin, school: School) -> None:
    pair(app, school, A)
    other = pair(app, school, C, staff=school.other_teacher)
    assert [p.pairing_id for p in pairing_board(app, school.other_teacher).lines] == [other]
    with pytest.raises(PermissionDenied):
        pairing_board(app, school.teacher, staff_id=school.other_teacher.staff_id)
    with pytest.raises(PermissionDenied):
        pairing_board(app, school.teacher, school_id=school.id)
    with pytest.raises(PermissionDenied):
        pairing_board(app, school.teacher, class_name=CLASS1)  # their class, but others' pairings
    with pytest.raises(PermissionDenied):
        pairing_counts(app, school.teacher, school.id)
    assert decisions(app, school.teacher) == [("pairing.read", 0)] * 3 + [("stats.read", 0)]
    assert decisions(app, school.other_teacher) == [("pairing.read", 1)]


def test_others_need_the_principals_right_or_a_stated_reason(app: Anxin, school: School) -> None:
    pid = pair(app, school, A)
    for who in (school.counselor, school.safety, school.admin):
        with pytest.raises(PermissionDenied):
            pairing_board(app, who, school_id=school.id)
    with pytest.raises(PermissionDenied):
        pairing_board(app, school.supervisor, staff_id=school.teacher.staff_id)
    with pytest.raises(PermissionDenied):
        pairing_counts(app, school.admin, school.id)
    with pytest.raises(PermissionDenied):
        pairing_counts(app, make_school(app, "第二中学").principal, school.id)
    # a supervisor who states a reason sees a teacher's board, and the reason is recorded
    board = pairing_board(app, school.supervisor, staff_id=school.teacher.staff_id, break_glass="核查谈心落实情况")
    assert [p.pairing_id for p in board.lines] == [pid]
    assert (
        app.db.fetchone(
            "SELECT COUNT(*) FROM {t}anxin_access WHERE actor_id = ? AND action = 'pairing.read' AND allowed = 1 "
            "AND break_glass IS NOT NULL",
            (school.supervisor.staff_id,),
        )[0]
        == 1
    )


# -- read your writes ---------------------------------------------------------------------------
def test_a_check_in_shows_on_the_board_as_soon_as_it_is_recorded(app: Anxin, school: School, clock: Clock) -> None:
    pid = pair(app, school, A)
    clock.advance(days=20)
    assert line_of(app, school.teacher, pid).overdue is True
    # when the teacher records the check-in
    check_in(app, school, pid, clock.today, concern=True)
    # then the stored row has it when the command returns, and the board shows it
    assert raw(app, pid) == (clock.today.toordinal(), (clock.today + timedelta(days=14)).toordinal(), 1)
    line = line_of(app, school.teacher, pid)
    assert (line.last_check_in, line.overdue, line.open_concerns) == (clock.today, False, 1)


# -- erasure ------------------------------------------------------------------------------------
def test_an_erased_student_shows_as_erased_in_their_class(app: Anxin, school: School, clock: Clock) -> None:
    pid = pair(app, school, A)
    check_in(app, school, pid, clock.today, concern=True)
    app.erasure.shred(ADMIN, school.student(A), "保存期限届满")  # the pairing, about them alone, goes too
    line = line_of(app, school.teacher, pid)
    assert (line.student_name, line.erased, line.class_name, line.open_concerns) == ("已删除", True, CLASS1, 0)
    assert pairing_board(app, school.principal, school_id=school.id, names=True).lines[0].student_name == "已删除"
    before = dump(app)
    app.views.rebuild(["pairing_board"])
    assert dump(app) == before


def test_an_erased_pairing_shows_as_an_erased_line_and_rebuilds_the_same(
    app: Anxin,
    school: School,
    clock: Clock,
) -> None:
    gone = pair(app, school, A)
    check_in(app, school, gone, clock.today, concern=True)
    kept = pair(app, school, B)
    app.erasure.shred(ADMIN, gone, "保存期限届满")
    board = pairing_board(app, school.teacher, today=clock.today + timedelta(days=30))
    erased = [p for p in board.lines if p.erased]
    assert [(p.pairing_id, p.student_name, p.class_name, p.next_due, p.overdue, p.open_concerns) for p in erased] == [
        (gone, "已删除", CLASS1, None, False, 0)
    ]
    assert [p.pairing_id for p in board.lines if not p.erased] == [kept]
    assert board.by_class == [ClassCounts(CLASS1, 2, 1, 0)]
    before = dump(app)
    assert [r[0] for r in before["v_pairing_board"]] == [kept] and before["v_pairing_concerns"] == []
    app.views.rebuild(["pairing_board"])
    assert dump(app) == before


# -- rebuild equals incremental, after a random history -------------------------------------------
def fresh_school(app: Anxin) -> School:
    """A new school per hypothesis example (retried in the unlikely case that its
    generated user names clash with an earlier school's)."""
    for _ in range(5):
        try:
            return make_school(app, f"学校{uuid4().hex[:8]}")
        except DomainError:
            continue
    raise AssertionError("could not make a school")


STEPS = st.lists(
    st.tuples(
        st.sampled_from(
            [
                "pair",
                "check_in",
                "check_in",
                "concern",
                "correct",
                "escalate_file",
                "escalate_case",
                "cadence",
                "end",
                "days",
                "shred",
                "move",
            ]
        ),
        st.integers(0, 11),
    ),
    min_size=5,
    max_size=30,
)


def play(app: Anxin, s: School, clock: Clock, steps: list[tuple[str, int]]) -> list[str]:
    nos = [A, B, C, D]
    staff = [s.teacher, s.other_teacher, s.counselor]
    pids: list[str] = []
    check_ins: dict[str, list[str]] = {}
    for op, pick in steps:
        pid = pids[pick % len(pids)] if pids else None
        try:
            if op == "pair" or pid is None:
                pids.append(pair(app, s, nos[pick % 4], staff=staff[pick % 3], cadence_days=[None, 7, 30][pick % 3]))
            elif op in ("check_in", "concern"):
                held = max(app.pairings.get_pairing(s.principal, pid).paired_on, clock.today - timedelta(days=pick % 5))
                check_ins.setdefault(pid, []).append(
                    check_in(app, s, pid, held, concern=op == "concern", by=s.principal)
                )
            elif op == "correct" and check_ins.get(pid):
                ci = check_ins[pid][pick % len(check_ins[pid])]
                app.pairings.correct_check_in(
                    s.principal, pid, ci, reason="更正", concern=pick % 2 == 0, concern_note="更正后的担忧"
                )
            elif op == "escalate_file" and check_ins.get(pid):
                app.escalations.escalate_to_support_file(
                    s.principal,
                    pid,
                    check_ins[pid][pick % len(check_ins[pid])],
                    category="情绪困扰",
                    risk_level="general",
                    reason="上报",
                    responsible_id=s.counselor.staff_id,
                )
            elif op == "escalate_case" and check_ins.get(pid):
                app.escalations.escalate_to_bullying_report(
                    s.principal,
                    pid,
                    check_ins[pid][pick % len(check_ins[pid])],
                    occurred_at=clock.now - timedelta(hours=1),
                    place="操场",
                    forms=["verbal"],
                    narrative="辱骂",
                    reason="上报",
                )
            elif op == "cadence":
                with app.editing(pid, Pairing) as p:
                    p.change_cadence(cadence_days=3 + pick, reason="调整", actor=s.principal.staff_id, at=app.now())
            elif op == "end":
                app.pairings.end_pairing(s.principal, pid, "结束")
            elif op == "move":
                app.roster.correct_student(
                    s.admin, s.student(nos[pick % 4]), {"class_name": [CLASS1, CLASS2][pick % 2]}, reason="转班"
                )
            elif op == "days":
                clock.advance(days=pick * 2)
            elif op == "shred":
                app.erasure.shred(ADMIN, pid if pick % 2 == 0 else s.student(nos[pick % 4]), "到期")
        except DomainError:
            pass  # a refused command changes nothing; the history goes on
    return pids


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=STEPS)
def test_the_rebuilt_board_equals_the_incremental_one_and_the_domain(app: Anxin, clock: Clock, steps) -> None:
    # given a fresh school and a random history of pairings, check-ins, concerns, escalations, ends and erasures
    s = fresh_school(app)
    pids = play(app, s, clock, [("pair", 0), ("concern", 0), *steps])
    # then each pairing's row says what the domain says: last check-in, next due, open concerns
    with app.views.engine.connect() as conn:
        rows = {r.pairing_id: r for r in conn.execute(select(pairings))}
    for pid in pids:
        if app.erasure.is_erased(pid):
            assert pid not in rows
            continue
        p: Pairing = app.repository.get(UUID(pid))
        row = rows.get(pid)
        if not p.active:
            assert row is None
            continue
        last = p.last_check_in
        assert (row.last_day, row.due_day, row.open_concerns, row.check_ins, row.cadence_days) == (
            last.toordinal() if last else None,
            p.next_due.toordinal(),
            len(p.open_concerns),
            len(p.check_ins),
            p.cadence_days,
        )
    # and the school's counts per class are the board's, each pairing in its student's class now
    before, board = dump(app), pairing_board(app, s.principal, school_id=s.id)
    assert pairing_counts(app, s.principal, s.id) == board.by_class
    # and rebuilding gives the same rows and the same board
    app.views.rebuild(["pairing_board"])
    assert dump(app) == before
    assert pairing_board(app, s.principal, school_id=s.id) == board
