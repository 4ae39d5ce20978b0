"""Record numbers (anxin.numbers): every bullying case, support file and mentoring pair
gets a number people read aloud and type (QL-2026-0003), counted per kind, school and
calendar year in the schools' time zone, allocated in the transaction of the stream's
first event; two creations at once get different numbers; streams from before numbers
are numbered once, in the order they were created, when a process opens the store."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest
from conftest import Clock, School, Store, make_school

from anxin import numbers
from anxin.service import Anxin
from domain.common import InvalidInput


def report(app: Anxin, school: School, actor: Any = None, no: str = "2026001") -> str:
    return app.cases.report_bullying(
        actor or school.teacher,
        school_id=school.id,
        channel="teacher",
        occurred_at=app.now() - timedelta(hours=1),
        place="操场",
        forms=["verbal"],
        parties=[(school.student(no), "targeted")],
        narrative="课间被同学起外号",
    )


def open_file(app: Anxin, school: School, no: str = "2026001") -> str:
    return app.support.open_support_file(
        school.counselor, school.student(no), category="情绪困扰", risk_level="key", reason="近期情绪低落"
    )


def pair(app: Anxin, school: School, no: str = "2026001") -> str:
    return app.pairings.pair(school.principal, staff_id=school.teacher.staff_id, student_id=school.student(no))


def shown(app: Anxin, *ids: str) -> list[str]:
    found = app.record_numbers(ids)
    return [found[i].text for i in ids]


def rows(app: Anxin) -> list[tuple[Any, ...]]:
    return app.db.fetch("SELECT stream_id, kind, school_id, year, seq FROM {t}anxin_numbers ORDER BY stream_id")


# -- allocation -------------------------------------------------------------------------------------
def test_numbers_count_per_kind_school_and_year_in_the_schools_time_zone(
    app: Anxin, school: School, clock: Clock
) -> None:
    other = make_school(app, "第二中学")
    # given cases, a file and a pairing at two schools in 2026
    first, second = report(app, school), report(app, school, no="2026002")
    elsewhere = report(app, other)
    file_id, pairing_id = open_file(app, school), pair(app, school)

    # then each kind counts at each school on its own, from 1
    assert shown(app, first, second, elsewhere) == ["QL-2026-0001", "QL-2026-0002", "QL-2026-0001"]
    assert shown(app, file_id, pairing_id) == ["XL-2026-0001", "JD-2026-0001"]
    found = app.record_numbers([first, elsewhere])
    assert (found[first].school, found[elsewhere].school) == ("第一中学", "第二中学")

    # when a case is recorded at 00:30 on 1 January in Beijing (still 31 December in UTC)
    clock.now = datetime(2026, 12, 31, 16, 30, tzinfo=UTC)
    new_year = report(app, school, no="2026003")
    # then it is the first of the new year, and the old year's count goes on in it
    clock.now = datetime(2026, 12, 31, 15, 30, tzinfo=UTC)  # 23:30 in Beijing
    old_year = report(app, school, no="2026004")
    assert shown(app, new_year, old_year) == ["QL-2027-0001", "QL-2026-0003"]

    # and a student or a staff member has no number; a refused creation takes none
    assert app.record_numbers([school.student("2026001"), school.teacher.staff_id]) == {}
    before = rows(app)
    with pytest.raises(InvalidInput):
        app.cases.report_bullying(
            school.teacher,
            school_id=school.id,
            channel="teacher",
            occurred_at=app.now(),
            place="",
            forms=["verbal"],
            parties=[],
            narrative="",
        )
    assert rows(app) == before


def test_a_save_of_many_new_streams_numbers_each_in_turn(app: Anxin, school: School) -> None:
    # given more than twenty pairings made in one save (the batch path of Core.commit)
    from domain.pairing import Pairing

    made = [
        Pairing.pair(
            id=uuid4(),
            school_id=school.id,
            staff_id=school.teacher.staff_id,
            student_id=school.student(no),
            cadence_days=14,
            actor="system",
            at=app.now(),
        )
        for no in ["2026001", "2026002", "2026003", "2026004"] * 6
    ]
    app.save_many(made)

    # then they are numbered 1 to 24 in the order they were given
    assert shown(app, *[str(p.id) for p in made]) == [f"JD-2026-{n:04d}" for n in range(1, 25)]


def test_two_creations_at_once_in_one_school_get_different_numbers(
    store: Store, app: Anxin, school: School, clock: Clock
) -> None:
    # given two processes (two applications over one store) reporting cases at the same moment
    other = store.open(clock)
    start = threading.Barrier(2)
    made: dict[str, list[str]] = {"a": [], "b": []}
    errors: list[BaseException] = []

    def run(name: str, instance: Anxin, no: str) -> None:
        try:
            start.wait(timeout=30)
            for _ in range(6):
                made[name].append(report(instance, school, no=no))
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [
        threading.Thread(target=run, args=("a", app, "2026001")),
        threading.Thread(target=run, args=("b", other, "2026002")),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)

    # then all twelve are saved, numbered 1 to 12 without a gap or a repeat
    assert not errors, errors
    ids = made["a"] + made["b"]
    assert len(ids) == 12
    assert sorted(n.seq for n in app.record_numbers(ids).values()) == list(range(1, 13))
    # and each process's own cases are numbered in the order it made them
    for name in ("a", "b"):
        seqs = [app.record_numbers(made[name])[i].seq for i in made[name]]
        assert seqs == sorted(seqs)


# -- streams from before numbers -------------------------------------------------------------------
def test_streams_from_before_numbers_are_numbered_once_in_the_order_they_were_created(
    store: Store, app: Anxin, school: School, clock: Clock
) -> None:
    # given a store whose cases, files and pairings were saved before numbers existed,
    # some of them in 2025
    clock.now = datetime(2025, 12, 30, 8, 0, tzinfo=UTC)
    old = report(app, school)
    clock.now = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
    file_id = open_file(app, school)
    later = [report(app, school, no=no) for no in ("2026002", "2026003")]
    pairing_id = pair(app, school)
    app.db.execute("DELETE FROM {t}anxin_numbers")
    app.db.execute("DELETE FROM {t}anxin_number_counters")  # (nor their counters)
    assert app.record_numbers([old, file_id, *later, pairing_id]) == {}

    # when a process opens the store
    opened = store.open(clock)

    # then every one has its number, counted in the order they were created, in its own year
    assert shown(opened, old, *later, file_id, pairing_id) == [
        "QL-2025-0001",
        "QL-2026-0001",
        "QL-2026-0002",
        "XL-2026-0001",
        "JD-2026-0001",
    ]
    numbered = rows(opened)
    # and opening it again numbers nothing again; a case made since goes on from there
    store.open(clock)
    assert rows(app) == numbered
    assert shown(app, report(app, school, no="2026004")) == ["QL-2026-0003"]


def test_number_existing_does_nothing_when_every_stream_has_its_number(app: Anxin, school: School) -> None:
    report(app, school)
    with app.db.write_transaction() as c:
        assert numbers.number_existing(c, app.db, app.policy.timezone) == 0


# -- reading a typed number ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "typed",
    ["QL-2026-0003", "ql-2026-3", "QL20260003", "ql 2026 03", "Ql-2026-003", "ＱＬ－２０２６－０００３", "QL—2026—3"],
)
def test_a_number_is_read_however_it_is_typed(typed: str) -> None:
    assert numbers.parse(typed) == ("case", 2026, 3)


@pytest.mark.parametrize("typed", ["", "QL-2026-0000", "QL-26-3", "AB-2026-0003", "3f9a0c12", "张三", "QL-2026-"])
def test_what_is_not_a_number_is_said_so(typed: str) -> None:
    assert numbers.parse(typed) is None


def test_the_forms_of_the_three_kinds() -> None:
    assert numbers.format_number("case", 2026, 3) == "QL-2026-0003"
    assert numbers.format_number("file", 2026, 12) == "XL-2026-0012"
    assert numbers.format_number("pairing", 2026, 10045) == "JD-2026-10045"
    assert numbers.parse("XL-2026-0012") == ("file", 2026, 12) and numbers.parse("jd2026-45") == ("pairing", 2026, 45)
