"""A plain append (a check-in, an evidence note, a session: a command sent without
`expected_version`) that loses a version race to another writer is run again on the
stream's fresh state instead of being refused with a conflict nobody caused; an edit
made from a page that showed a version still gets the conflict. Each saved command
leaves one gate decision in the audit trail, however many attempts it took."""

from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
from conftest import ADMIN, Clock, School, Store
from fastapi.testclient import TestClient
from web_support import Browser

import anxin.races
from anxin import audit
from anxin.passwords import hash_password
from anxin.service import Anxin
from domain import access
from domain.common import Conflict
from web.app import create_app


def _count_attempts(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """How many attempts `retried_on_race` made (one _RaceRetry each): in all, and on the
    test's own thread."""
    made: Counter[str] = Counter()

    class Counting(anxin.races._RaceRetry):
        def __init__(self, *a: Any, **kw: Any) -> None:
            made["attempts"] += 1
            if threading.current_thread() is threading.main_thread():
                made["here"] += 1
            super().__init__(*a, **kw)

    monkeypatch.setattr(anxin.races, "_RaceRetry", Counting)
    return made


def _decisions(app: Anxin, action: str, stream_id: str) -> int:
    return int(
        app.db.fetchone(
            "SELECT COUNT(*) FROM {t}anxin_access WHERE action = ? AND resource_id = ?", (action, stream_id)
        )[0]
    )


def _paired(app: Anxin, school: School, clock: Clock) -> str:
    pid = app.pairings.pair(school.principal, staff_id=school.teacher.staff_id, student_id=school.student("2026001"))
    clock.advance(days=1)
    return pid


def _catching(errors: list[BaseException], fn: Any, *args: Any) -> None:
    try:
        fn(*args)
    except BaseException as e:  # noqa: BLE001 - reported by the caller
        errors.append(e)


def _lose_one_race(app: Anxin, other: Anxin, write: Any) -> None:
    """The next time `app` loads a stream, `other` saves to it first (`write(other)`):
    what a second worker does between this one's load and its save."""
    load = app.load
    state = {"done": False}

    def load_then_race(*args: Any, **kwargs: Any) -> Any:
        agg = load(*args, **kwargs)
        if not state["done"]:
            state["done"] = True
            # On a thread of its own, as another worker's request would be (its own context).
            errors: list[BaseException] = []
            t = threading.Thread(target=lambda: _catching(errors, write, other))
            t.start()
            t.join(timeout=60)
            assert not errors, errors
        return agg

    app.load = load_then_race  # type: ignore[method-assign]


def _widen_the_window_between_load_and_save(instance: Anxin) -> None:
    """Every load of `instance` waits 20 ms before its command goes on to save: on a busy
    machine two workers' commands could otherwise happen to run one after the other, and
    the race this test is about would not happen at all."""
    load = instance.load

    def load_slowly(*args: Any, **kwargs: Any) -> Any:
        agg = load(*args, **kwargs)
        time.sleep(0.02)
        return agg

    instance.load = load_slowly  # type: ignore[method-assign]


def test_a_check_in_that_loses_a_race_is_saved_on_the_fresh_state_with_one_decision(
    store: Store, app: Anxin, school: School, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a pairing, and a second instance (another worker) that saves a check-in to it
    # between this instance's load and its save
    pid = _paired(app, school, clock)
    other = store.open(clock)
    _lose_one_race(
        app,
        other,
        lambda o: o.pairings.record_check_in(school.teacher, pid, held_on=clock.today, notes={"studies": "另一进程"}),
    )
    attempts = _count_attempts(monkeypatch)
    decisions_before = _decisions(app, access.PAIRING_WRITE, pid)

    # when this instance records its check-in without an expected version
    app.pairings.record_check_in(school.teacher, pid, held_on=clock.today, notes={"studies": "本进程"})

    # then it took two attempts, both check-ins are there once each, on either instance
    assert attempts["here"] == 2
    for instance in (app, other):
        notes = sorted(
            c["notes"]["studies"] for c in instance.pairings.get_pairing(school.teacher, pid).check_ins.values()
        )
        assert notes == ["另一进程", "本进程"]
    # and the trail holds one write decision per saved check-in (the lost attempt's was dropped)
    assert _decisions(app, access.PAIRING_WRITE, pid) - decisions_before == 2
    assert audit.verify(app).ok


def test_an_edit_of_a_version_someone_else_changed_is_still_a_conflict(
    store: Store, app: Anxin, school: School, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a check-in that a page showed at the pairing's current version
    pid = _paired(app, school, clock)
    ci = app.pairings.record_check_in(school.teacher, pid, held_on=clock.today, notes={"studies": "原记录"})
    seen = app.pairings.get_pairing(school.teacher, pid).version
    other = store.open(clock)
    attempts = _count_attempts(monkeypatch)

    # when another worker appends first, and then the correction made on that page is sent
    other.pairings.record_check_in(school.teacher, pid, held_on=clock.today, notes={"family": "另一条"})
    with pytest.raises(Conflict) as refused:
        app.pairings.correct_check_in(
            school.teacher, pid, ci, reason="笔误", notes={"studies": "改过"}, expected_version=seen
        )

    # then it is refused at once with the conflict message, and nothing changed
    assert attempts["here"] == 2  # the other's append, and this correction once
    assert "已被他人修改" in refused.value.text
    assert app.pairings.get_pairing(school.teacher, pid).check_ins[ci]["notes"]["studies"] == "原记录"


def test_a_race_lost_at_the_store_itself_with_an_expected_version_is_a_conflict_too(
    store: Store, app: Anxin, school: School, clock: Clock
) -> None:
    # given a pairing whose version this instance loaded, then another saved a check-in
    pid = _paired(app, school, clock)
    version = app.pairings.get_pairing(school.teacher, pid).version
    other = store.open(clock)
    _lose_one_race(
        app,
        other,
        lambda o: o.pairings.record_check_in(school.teacher, pid, held_on=clock.today, notes={"studies": "抢先"}),
    )

    # when this instance's append carries the version it saw (a form's hidden field)
    with pytest.raises(Conflict):
        app.pairings.record_check_in(
            school.teacher, pid, held_on=clock.today, notes={"studies": "晚到"}, expected_version=version
        )

    # then only the other's check-in is there
    assert [c["notes"]["studies"] for c in app.pairings.get_pairing(school.teacher, pid).check_ins.values()] == ["抢先"]


def test_a_retried_append_checks_the_rules_again_on_the_fresh_state(
    store: Store, app: Anxin, school: School, clock: Clock
) -> None:
    # given that another worker ends the pairing between this one's load and its save
    pid = _paired(app, school, clock)
    other = store.open(clock)
    _lose_one_race(app, other, lambda o: o.pairings.end_pairing(school.teacher, pid, "学生转学"))

    # when this worker records a check-in on it
    from domain.common import WrongState

    with pytest.raises(WrongState):
        app.pairings.record_check_in(school.teacher, pid, held_on=clock.today, notes={"studies": "太迟"})

    # then the retry was refused by the rule on the fresh state, and nothing was appended
    assert app.pairings.get_pairing(school.teacher, pid).check_ins == {}


WORKERS = 6
EACH = 5


def test_many_writers_appending_to_one_pairing_at_once_all_succeed_exactly_once(
    store: Store, app: Anxin, school: School, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given one pairing and six writers, each an instance of its own (as the workers of
    # `anxin serve --workers N` are), each on its own thread
    pid = _paired(app, school, clock)
    writers = [store.open(clock) for _ in range(WORKERS)]
    attempts = _count_attempts(monkeypatch)
    decisions_before = _decisions(app, access.PAIRING_WRITE, pid)
    start = threading.Barrier(WORKERS)
    failures: list[BaseException] = []

    def write(n: int, instance: Anxin) -> None:
        start.wait()
        for k in range(EACH):
            try:
                instance.pairings.record_check_in(
                    school.teacher, pid, held_on=clock.today - timedelta(hours=1), notes={"studies": f"w{n}-{k}"}
                )
            except BaseException as e:  # noqa: BLE001 - every failure is reported below
                failures.append(e)

    # when they all append check-ins at once, none sending an expected version
    threads = [threading.Thread(target=write, args=(n, w)) for n, w in enumerate(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=240)

    # then none failed, and every check-in is there exactly once
    assert not failures, [repr(e) for e in failures]
    check_ins = app.pairings.get_pairing(school.teacher, pid).check_ins.values()
    assert sorted(c["notes"]["studies"] for c in check_ins) == sorted(
        f"w{n}-{k}" for n in range(WORKERS) for k in range(EACH)
    )
    # and races did happen (else this proved nothing), each lost attempt leaving no decision
    assert attempts["attempts"] > WORKERS * EACH
    assert _decisions(app, access.PAIRING_WRITE, pid) - decisions_before == WORKERS * EACH
    assert audit.verify(app).ok


def test_check_ins_posted_at_once_through_two_workers_api_all_succeed(
    store: Store, app: Anxin, school: School, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What `anxin serve --workers 2` meets: two processes (here two instances, each its own
    web application, whose commands are serialised within it but not between them),
    several clients on each, all posting check-ins to one pairing."""
    # given a class teacher with a login, paired with a student, and two workers serving
    password = "correct-horse-battery-9"
    teacher = app.gate.actor(
        app.roster.add_staff(
            ADMIN,
            username="t1",
            name="班主任甲",
            school_id=school.id,
            roles=["class_teacher"],
            classes=["七年级1班"],
            password_hash=hash_password(password),
        )
    )
    pid = app.pairings.pair(school.principal, staff_id=teacher.staff_id, student_id=school.student("2026002"))
    clock.advance(days=1)
    instances = (app, store.open(clock))
    for instance in instances:
        _widen_the_window_between_load_and_save(instance)
    workers = [create_app(instance, background_seconds=None) for instance in instances]
    attempts = _count_attempts(monkeypatch)
    statuses: list[int] = []
    start = threading.Barrier(6)
    one_login_at_a_time = threading.Lock()  # (six logins of one name at one instant would be throttled)

    def client(n: int) -> None:
        with TestClient(workers[n % 2], base_url="http://testserver") as c:
            with one_login_at_a_time:
                b = Browser(c, None).login("t1", password)
            start.wait()
            for k in range(5):
                r = b.api(
                    "POST",
                    f"/api/v1/pairings/{pid}/check-ins",
                    json={"held_on": clock.today.isoformat(), "notes": {"studies": f"c{n}-{k}"}},
                )
                statuses.append(r.status_code)

    # when six clients, three on each worker, post five check-ins each at once, none
    # sending an expected version
    threads = [threading.Thread(target=client, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=240)

    # then every one is saved (201, never 409), exactly once, and races did happen on the way
    assert statuses == [201] * 30
    notes = sorted(c["notes"]["studies"] for c in app.pairings.get_pairing(teacher, pid).check_ins.values())
    assert notes == sorted(f"c{n}-{k}" for n in range(6) for k in range(5))
    assert attempts["attempts"] > 30
