"""The audit trail under many processes: on PostgreSQL a page view's entries are recorded
in one statement that waits for no lock (pending, durable at once, chained by whoever holds
the chain's row lock next); the chain they join is the same one, and proves the same. Real
processes append at once and are killed mid-way; an old store upgrades and still verifies;
tampering with entries chained either way is caught. On SQLite and PostgreSQL alike,
except where a test says PostgreSQL only."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import PG_SKIP_REASON, PG_URL, Clock, School, Store
from store_support import Raw

from anxin import audit
from anxin.service import Anxin
from domain.common import PermissionDenied

ROOT = Path(__file__).resolve().parents[2]

# A process of its own on the same store: reads its job (JSON) from stdin, then per round
# records a read's decision (as every page view does), a login every 5th, and a correction
# of its student every 10th (a write: a decision and an event); prints each round's number
# once it has returned (so durable), flushing, so the parent knows what was acknowledged.
_CHILD = """
import json, sys, uuid
from pathlib import Path
from anxin.core import Core
from anxin.crypto import MasterKey
from anxin.storage import StoreConfig
from domain.access import Decision, Resource
from domain.common import Actor, Role
job = json.loads(sys.stdin.readline())
config = StoreConfig(url=job["url"], data_dir=Path(job["data_dir"]), schema=job["schema"])
core = Core(config, [MasterKey.decode(job["key"])])
who = Actor(job["who"], frozenset({Role.CLASS_TEACHER}))
admin = Actor("cli-admin", frozenset({Role.ADMINISTRATOR}))
print("ready", flush=True)
for i in range(job["rounds"]):
    core.gate.record_access(
        who, "student.read", Resource("student", job["student"], job["school"]), Decision(True, "class_teacher"), None
    )
    if i % 5 == 4:
        core.record_security_event("login", who.staff_id, who.staff_id)
    if i % 10 == 9:
        core.roster.correct_student(admin, job["student"], {"tags": [job["who"] + str(i)]}, reason="并发测试")
    print(i + 1, flush=True)
core.close()
"""


def _entries_per_round(rounds: int) -> int:
    """Entries a child writes in `rounds` rounds: a decision each; a login every 5th; a
    correction (a decision and an event) every 10th."""
    return rounds + rounds // 5 + 2 * (rounds // 10)


def _child(store: Store, who: str, student: str, school: str, rounds: int) -> subprocess.Popen[str]:
    p = subprocess.Popen(
        [sys.executable, "-c", _CHILD],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    job = {
        "url": store.config.url,
        "data_dir": str(store.data_dir),
        "schema": store.schema,
        "key": store.master_key.encode(),
        "who": who,
        "student": student,
        "school": school,
        "rounds": rounds,
    }
    assert p.stdin is not None and p.stdout is not None
    p.stdin.write(json.dumps(job) + "\n")
    p.stdin.close()
    p.stdin = None  # (nothing more to say: communicate() then only reads)
    assert p.stdout.readline().strip() == "ready", p.stderr.read() if p.stderr else ""
    return p


def _count(app: Anxin, actor_id: str) -> int:
    return int(app.db.fetchone("SELECT COUNT(*) FROM {t}anxin_audit WHERE actor_id = ?", (actor_id,))[0])


def test_appends_from_several_processes_at_once_keep_one_unbroken_chain(
    store: Store, app: Anxin, school: School
) -> None:
    # given three processes on the one store, each reading, signing in and writing at once
    head = Raw(store, app).head()
    rounds = 40
    children = [
        _child(store, f"w{n}", school.student(no), school.id, rounds)
        for n, no in enumerate(("2026001", "2026002", "2026003"))
    ]
    for p in children:
        out, err = p.communicate()
        assert p.returncode == 0, err
        assert out.split()[-1] == str(rounds)

    # then every entry of each landed once, in one gap-free chain that verifies
    report = audit.verify(app)
    assert report.ok, report.summary()
    each = _entries_per_round(rounds)
    assert report.entries == head + 3 * each
    for n in range(3):
        assert _count(app, f"w{n}") == rounds + rounds // 5
    assert app.db.fetchone("SELECT COUNT(*) FROM {t}anxin_audit WHERE actor_id = 'cli-admin' AND seq > ?", (head,))[
        0
    ] == 3 * 2 * (rounds // 10)


def test_a_process_killed_while_appending_loses_no_entry_it_had_answered_for(
    store: Store, app: Anxin, school: School
) -> None:
    # given a process appending as fast as it can, and another beside it
    calm = _child(store, "calm", school.student("2026002"), school.id, 30)
    victim = _child(store, "victim", school.student("2026001"), school.id, 100_000)
    assert victim.stdout is not None
    acknowledged = 0
    # when it is killed at some point after it has answered for 55 rounds
    while acknowledged < 55:
        acknowledged = int(victim.stdout.readline())
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    acknowledged = max([acknowledged, *map(int, victim.stdout.read().split())])  # (said before it died)
    out, err = calm.communicate()
    assert calm.returncode == 0, err

    # then the trail verifies, and holds every decision and login it had answered for
    # (and at most the one round it was in when killed)
    report = audit.verify(app)
    assert report.ok, report.summary()
    done = _count(app, "victim")
    assert acknowledged + acknowledged // 5 <= done <= (acknowledged + 1) + (acknowledged + 1) // 5
    # and a process opened afterwards goes on appending to the same chain
    other = store.open()
    other.record_security_event("login", "after", "after")
    assert audit.verify(other).entries == report.entries + 1


@pytest.mark.skipif(not PG_URL, reason=PG_SKIP_REASON)
@pytest.mark.parametrize("store", ["postgres"], indirect=True)
def test_a_decision_recorded_while_the_chain_is_locked_waits_for_nothing_and_is_chained_next(
    store: Store, app: Anxin, school: School
) -> None:
    import psycopg

    assert PG_URL
    raw = Raw(store, app)
    head = raw.head()
    with psycopg.connect(PG_URL) as holder:
        # given another transaction holding the chain's lock (a long save, a checkpoint)
        holder.execute(f"SELECT 1 FROM {store.schema}.anxin_audit_meta WHERE name = 'store_id' FOR UPDATE")
        answered: list[Any] = []

        def read() -> None:
            with pytest.raises(PermissionDenied):
                app.roster.get_student(school.teacher, school.student("2026003"))
            answered.append(app.record_security_event("login", school.teacher.staff_id, school.teacher.staff_id))

        # when a page's decision and a login are recorded meanwhile
        t = threading.Thread(target=read)
        t.start()
        t.join(120)  # (a guard against a hang: it must not wait for the lock at all)

        # then both returned without waiting, durable (another connection sees them),
        # as entries still to be chained (no seq yet)
        assert not t.is_alive() and answered == [None]
        assert raw("SELECT kind, actor_id FROM {t}anxin_audit_pending ORDER BY id") == [
            ("access", school.teacher.staff_id),
            ("login", school.teacher.staff_id),
        ]
        assert raw.head() == head
        holder.rollback()

    # and once the lock is free, the next holder chains them, in the order they were made
    report = audit.verify(app)
    assert report.ok, report.summary()
    assert [r[0] for r in raw("SELECT kind FROM {t}anxin_audit WHERE seq > ? ORDER BY seq", (head,))] == [
        "access",
        "login",
    ]
    assert raw("SELECT COUNT(*) FROM {t}anxin_audit_pending") == [(0,)]


def _history(app: Anxin, school: School, clock: Clock) -> str:
    """A case reported, a refused read and an allowed read (both recorded as a page's
    decisions are), a login."""
    cid = app.cases.report_bullying(
        school.teacher,
        school_id=school.id,
        channel="teacher",
        occurred_at=clock.now - timedelta(hours=1),
        place="操场",
        forms=["verbal"],
        narrative="课间被起外号",
        parties=[(school.student("2026001"), "targeted")],
    )
    with pytest.raises(PermissionDenied):
        app.roster.get_student(school.teacher, school.student("2026003"))
    app.roster.get_student(school.teacher, school.student("2026001"))
    app.record_security_event("login", school.principal.staff_id, school.principal.staff_id)
    return cid


def _read_entries(raw: Raw, after: int = 0) -> list[int]:
    """The seqs of the read decisions (entries a page view records) after `after`."""
    return [
        int(r[0])
        for r in raw(
            "SELECT seq FROM {t}anxin_audit WHERE seq > ? AND kind = 'access' AND detail LIKE ? ORDER BY seq",
            (after, '%"action":"student.read"%'),
        )
    ]


@pytest.mark.parametrize("change", ["edit_actor", "delete", "insert", "swap", "truncate"])
def test_tampering_with_a_page_views_entries_is_caught_like_any_other(
    store: Store, app: Anxin, school: School, clock: Clock, tmp_path: Path, change: str
) -> None:
    # given a history whose read decisions were recorded the page view's way (on PostgreSQL:
    # pending, then chained by the database), and a signed checkpoint kept outside
    audit.create_signing_key(store.config)
    _history(app, school, clock)
    _history(app, school, clock)
    kept = tmp_path / "checkpoint.json"
    kept.write_text(audit.take_checkpoint(app).to_json())
    assert audit.verify(app, kept).ok
    raw = Raw(store, app)
    reads = _read_entries(raw)
    assert len(reads) == 4
    victim = reads[1]
    cols = audit.COLUMNS.split(", ")
    # when the database is changed under the application's feet
    if change == "edit_actor":
        raw("UPDATE {t}anxin_audit SET actor_id = ? WHERE seq = ?", (school.principal.staff_id, victim))
        expected = ("entry_altered", victim)
    elif change == "delete":
        raw("DELETE FROM {t}anxin_audit WHERE seq = ?", (victim,))
        expected = ("entry_missing", victim)
    elif change == "insert":  # a copy of a read put in before it, the rest renumbered
        for seq in range(raw.head(), victim - 1, -1):
            raw("UPDATE {t}anxin_audit SET seq = ? WHERE seq = ?", (seq + 1, seq))
        row = list(raw.entry(victim + 1))
        row[0] = victim
        raw(f"INSERT INTO {{t}}anxin_audit ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})", tuple(row))
        expected = ("entry_moved", victim + 1)
    elif change == "swap":
        one, other = raw.entry(reads[0]), raw.entry(victim)
        for seq, r in ((reads[0], other), (victim, one)):
            raw(f"UPDATE {{t}}anxin_audit SET {', '.join(c + ' = ?' for c in cols[1:])} WHERE seq = ?", (*r[1:], seq))
        expected = ("entry_moved", reads[0])
    else:  # the tail cut off from the last read on (a login and the checkpoint's entry after it)
        raw("DELETE FROM {t}anxin_audit WHERE seq >= ?", (reads[-1],))
        expected = ("truncated", reads[-1])

    # then verification names the first changed position and how
    report = audit.verify(app, kept)
    assert report.problem is not None, report.summary()
    assert (report.problem.reason, report.problem.seq) == expected


def test_a_store_from_before_pending_entries_and_counters_upgrades_and_still_verifies(
    store: Store, app: Anxin, school: School, clock: Clock, tmp_path: Path
) -> None:
    # given a store of the previous version: its one chain with a checkpoint kept outside, its
    # numbers given by the largest-so-far (no counters), no pending entries or functions
    audit.create_signing_key(store.config)
    first = _history(app, school, clock)
    kept = tmp_path / "checkpoint.json"
    kept.write_text(audit.take_checkpoint(app).to_json())
    raw = Raw(store, app)
    head = raw.head()
    before = raw(f"SELECT {audit.COLUMNS} FROM {{t}}anxin_audit ORDER BY seq")
    raw("DROP TABLE {t}anxin_number_counters")
    if store.kind == "postgres":
        raw("DROP TABLE {t}anxin_audit_pending")
        raw("DROP FUNCTION {t}anxin_audit_record_1, {t}anxin_audit_chain_1")  # (made by the opening)

    # when the new version opens it
    opened = store.open(clock)

    # then its history is as it was, and verifies against the checkpoint taken before
    assert raw(f"SELECT {audit.COLUMNS} FROM {{t}}anxin_audit WHERE seq <= ? ORDER BY seq", (head,)) == before
    report = audit.verify(opened, kept)
    assert report.ok and report.entries == head, report.summary()
    # and the chain goes on from its head: reads, a login, a new case numbered after the old
    second = _history(opened, school, clock)
    assert [opened.record_numbers([i])[i].text for i in (first, second)] == ["QL-2026-0001", "QL-2026-0002"]
    report = audit.verify(opened, kept)
    assert report.ok and report.entries > head + 4, report.summary()
    assert raw("SELECT prev_hash FROM {t}anxin_audit WHERE seq = ?", (head + 1,)) == [(before[-1][-1],)]
    # and a change before the upgrade is still caught there
    assert raw.entry(3)[3] != school.principal.staff_id
    raw("UPDATE {t}anxin_audit SET actor_id = ? WHERE seq = ?", (school.principal.staff_id, 3))
    problem = audit.verify(opened, kept).problem
    assert problem is not None and (problem.reason, problem.seq) == ("entry_altered", 3)
