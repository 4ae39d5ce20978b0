"""The views' runner (projections.base.Runner), on SQLite and PostgreSQL: exactly once
when two processes fold the same log at the same time, and the events a save has just
written folded from memory give the same rows as the same events read back from the log."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

from conftest import Clock, School, Store
from sqlalchemy import select

from anxin.service import Anxin
from projections.base import tracking


def dump_all(app: Anxin) -> dict[str, list[tuple[Any, ...]]]:
    """Every view table's rows, in primary-key order."""
    with app.views.engine.connect() as conn:
        return {
            t.name: [tuple(r) for r in conn.execute(select(t).order_by(*t.primary_key.columns))]
            for v in app.views.views
            for t in v.tables
        }


def positions(app: Anxin) -> set[int]:
    with app.views.engine.connect() as conn:
        return {r[0] for r in conn.execute(select(tracking.c.position))}


def some_history(app: Anxin, school: School, clock: Clock) -> None:
    """Pairings with check-ins, a case and a support file: events for every view."""
    for no in list(school.students)[:3]:
        pid = app.pairings.pair(school.safety, staff_id=school.teacher.staff_id, student_id=school.student(no))
        for _ in range(4):
            clock.advance(days=3)
            app.pairings.record_check_in(school.teacher, pid, held_on=clock.today, notes={"thinking": "平稳"})
    nos = list(school.students)
    app.cases.report_bullying(
        school.teacher,
        school_id=school.id,
        channel="teacher",
        occurred_at=clock.now - timedelta(hours=2),
        place="操场",
        forms=["verbal"],
        narrative="课间被起绰号",
        parties=[(school.student(nos[0]), "targeted"), (school.student(nos[2]), "bullying")],
    )
    app.support.open_support_file(
        school.counselor, school.student(nos[0]), category="情绪困扰", risk_level="key", reason="谈心发现情绪低落"
    )


def test_two_processes_folding_the_same_log_at_once_apply_each_event_once(
    store: Store, app: Anxin, school: School, clock: Clock
) -> None:
    # given another process that wrote a history without folding it
    other = store.open(clock)
    other.after_save = lambda written: None  # type: ignore[method-assign]
    some_history(other, school, clock)
    head = app.recorder.max_notification_id()
    # when both processes catch up at the same time, in small batches (so they interleave)
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def fold(a: Anxin) -> None:
        try:
            start.wait()
            a.views.catch_up(batch=3)
        except BaseException as e:  # reported below: a failure in a thread would pass unseen
            errors.append(e)

    threads = [threading.Thread(target=fold, args=(a,)) for a in (app, other)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    # then every view is at the head, and its rows are those of one fold of the log
    assert positions(app) == {head}
    raced = dump_all(app)
    assert sum(len(rows) for rows in raced.values()) > 10
    app.views.rebuild()
    assert dump_all(app) == raced


def test_a_save_folded_from_memory_equals_the_same_events_read_back(
    store: Store, app: Anxin, school: School, clock: Clock
) -> None:
    # given a history folded as it was written (each save's events handed over in memory)
    some_history(app, school, clock)
    assert positions(app) == {app.recorder.max_notification_id()}
    folded = dump_all(app)
    # when the views are rebuilt from the log (every event read back and decrypted)
    app.views.rebuild()
    # then the rows are the same
    assert dump_all(app) == folded


def test_a_view_whose_tables_changed_since_it_was_folded_is_made_anew_and_folded_again(
    store: Store, app: Anxin, school: School, clock: Clock
) -> None:
    from sqlalchemy import update

    from projections.base import view_schema

    # given a history, folded
    some_history(app, school, clock)
    folded = dump_all(app)
    # and a database as an older version left it: every view's tables of another shape,
    # empty (say, tables that version did not have), with the positions at the end
    with app.views.engine.begin() as conn:
        conn.execute(update(view_schema).values(signature="an older shape"))
        for v in app.views.views:
            for t in reversed(v.tables):
                conn.execute(t.delete())
    # when this version opens it
    again = store.open(clock)
    # then every view was made anew and folded from the log: the same rows as before
    assert positions(again) == {again.recorder.max_notification_id()}
    assert dump_all(again) == folded
    # and opening it once more changes nothing
    with again.views.engine.connect() as conn:
        assert {r[0] for r in conn.execute(select(view_schema.c.signature))} != {"an older shape"}
    assert dump_all(store.open(clock)) == folded


def test_a_read_with_nothing_new_asks_no_positions_and_another_processs_write_is_still_seen(
    store: Store, school: School, clock: Clock, monkeypatch: Any
) -> None:
    app = store.apps[0]
    other = store.open(clock)  # a second process on the same store
    app.views.catch_up()
    asked: list[int] = []
    real = app.views.positions

    def counted() -> dict[str, int]:
        asked.append(1)
        return real()

    monkeypatch.setattr(app.views, "positions", counted)
    assert app.views.catch_up() == 0
    assert asked == []  # the head has not moved: nothing asked
    other.pairings.pair(school.safety, staff_id=school.teacher.staff_id, student_id=school.student("2026001"))
    app.views.catch_up()  # the head moved: the positions are read (the other has folded its events)
    assert len(asked) == 1
    app.views.catch_up()
    assert len(asked) == 1  # and at that head, not again
    assert dump_all(app) == dump_all(other)
    app.views.rebuild()  # a rebuild forgets the mark, and folds everything again
    assert dump_all(app) == dump_all(other)


def test_the_reads_of_one_page_ask_the_logs_head_once_and_a_write_inside_is_still_read(
    store: Store, school: School, clock: Clock, monkeypatch: Any
) -> None:
    from projections.case_board import case_board
    from projections.pairing_board import pairing_counts

    app = store.apps[0]
    other = store.open(clock)  # another process writes between two pages
    app.views.catch_up()
    heads: list[int] = []
    real = app.recorder.max_notification_id

    def counted() -> int:
        heads.append(1)
        return real()

    monkeypatch.setattr(app.recorder, "max_notification_id", counted)
    with app.decisions_together():  # as the school board reads its four views
        assert case_board(app, school.safety, school.id) == []
        assert pairing_counts(app, school.safety, school.id) == []
        assert pairing_counts(app, school.safety, school.id) == []
    assert len(heads) == 1
    other.pairings.pair(school.safety, staff_id=school.teacher.staff_id, student_id=school.student("2026001"))
    with app.decisions_together():  # the next page sees the other process's write
        counts = pairing_counts(app, school.safety, school.id)
        assert [c.pairings for c in counts] == [1]
        pid = app.pairings.pair(school.safety, staff_id=school.teacher.staff_id, student_id=school.student("2026002"))
        # a write inside the block is folded by its own save: the next read has it
        assert [c.pairings for c in pairing_counts(app, school.safety, school.id)] == [2]
    assert pid
