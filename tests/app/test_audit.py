"""The audit trail: every event and every access decision is an entry of one hash
chain; tampering with the database under the application's feet is caught at the
first changed position; signed checkpoints catch a cut-off tail and a rewritten chain;
supervisors query it through the gate. Every test runs on SQLite and on PostgreSQL,
except the command-line and outsider tests at the end (SQLite)."""

from __future__ import annotations

import base64
import csv
import io
import json
import os
import re
import sqlite3
import stat
import subprocess
import sys
import threading
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import ADMIN, Clock, School, Store, make_school
from store_support import Raw

from anxin import audit
from anxin.audit import Checkpoint, verification
from anxin.crypto import MasterKey
from anxin.service import Anxin
from anxin.storage import StoreConfig
from domain import access as a
from domain.common import InvalidInput, PermissionDenied

REASON = "家长来电反映孩子被孤立，需核实"
NARRATIVE = "午饭时他推我，还抢了我的饭卡"
ROOT = Path(__file__).resolve().parents[2]


# -- helpers -----------------------------------------------------------------------------------
def with_signing_key(store: Store) -> None:
    audit.create_signing_key(store.config)


def problem(report: audit.VerifyReport) -> tuple[str, int]:
    assert report.problem is not None, report.summary()
    return report.problem.reason, report.problem.seq


def rows_of(app: Anxin, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    return app.db.fetch(sql, params)


def given_history(app: Anxin, school: School, clock: Clock) -> dict[str, str]:
    """A school's day: a pairing with a check-in, a bullying case, a denied read and a
    supervisor's break-glass read."""
    sid = school.student("2026001")
    pid = app.pairings.pair(school.principal, staff_id=school.teacher.staff_id, student_id=sid)
    clock.advance(hours=1)
    app.pairings.record_check_in(school.teacher, pid, held_on=clock.today, notes={"thinking": "最近睡眠不好"})
    cid = app.cases.report_bullying(
        school.teacher,
        school_id=school.id,
        channel="teacher",
        occurred_at=clock.now - timedelta(hours=1),
        place="食堂",
        forms=["physical"],
        narrative=NARRATIVE,
        parties=[(sid, "targeted"), (school.student("2026003"), "bullying")],
    )
    clock.advance(hours=1)
    app.cases.start_investigation(school.safety, cid)
    with pytest.raises(PermissionDenied):
        app.roster.get_student(school.teacher, school.student("2026003"))
    app.roster.get_student(school.supervisor, sid, break_glass=REASON)
    return {"student": sid, "pairing": pid, "case": cid}


# -- every event and every decision is an entry ---------------------------------------------------
def test_every_stored_event_has_exactly_one_entry_naming_its_actor_stream_and_type(
    app: Anxin, school: School, clock: Clock
) -> None:
    # given a day's work
    ids = given_history(app, school, clock)

    # then there is one event entry per stored event ...
    events = rows_of(app, f"SELECT COUNT(*) FROM {app.db.t(app.recorder.events_table_name)}")[0][0]
    entries = rows_of(app, "SELECT COUNT(*) FROM {t}anxin_audit WHERE kind = 'event'")[0][0]
    assert entries == events > 0
    # ... naming who wrote it, on which stream, which event, and when
    pairing = rows_of(
        app,
        "SELECT actor_id, detail, at FROM {t}anxin_audit WHERE kind = 'event' AND subject = ? ORDER BY seq",
        (ids["pairing"],),
    )
    assert pairing == [
        (school.principal.staff_id, "domain.pairing:Pairing.Paired#1", "2026-10-12T09:00:00+00:00"),
        (school.teacher.staff_id, "domain.pairing:Pairing.CheckInRecorded#2", "2026-10-12T10:00:00+00:00"),
    ]
    # and the seq runs 1, 2, 3, ... with no gap
    seqs = [r[0] for r in rows_of(app, "SELECT seq FROM {t}anxin_audit ORDER BY seq")]
    assert seqs == list(range(1, len(seqs) + 1))


def test_a_batch_saved_at_once_gets_an_entry_per_event_with_its_actor(app: Anxin, school: School) -> None:
    # given 25 students saved in one transaction (the import path)
    students = [
        app.roster._new_student(
            ADMIN,
            school.id,
            dict(
                student_no=f"B{i:03d}",
                name="批量",
                gender="女",
                birth_date=date(2013, 1, 1),
                grade="七年级",
                class_name="七年级1班",
            ),
        )
        for i in range(25)
    ]
    before = rows_of(app, "SELECT MAX(seq) FROM {t}anxin_audit")[0][0]

    app.save_many(students)

    # then 25 consecutive event entries follow, each by the importing administrator
    after = rows_of(app, "SELECT kind, actor_id, subject FROM {t}anxin_audit WHERE seq > ? ORDER BY seq", (before,))
    assert after == [("event", ADMIN.staff_id, str(s.id)) for s in students]
    assert audit.verify(app).ok


def test_security_events_are_entries_of_ids_and_codes_only(app: Anxin, school: School) -> None:
    # when logins, a failed login and a report are recorded
    subject = audit.login_subject(app, "zhang.wei")
    app.record_security_event("login_failed", "", subject, {"why": "bad_password"})
    app.record_security_event("login", school.teacher.staff_id, school.teacher.staff_id)
    seq = app.record_security_event("report", school.principal.staff_id, school.id, {"format": "csv", "rows": 3})

    # then they are in the trail, the login name only as a keyed hash, and the chain holds
    assert audit.verify(app).ok
    assert [r[0] for r in rows_of(app, "SELECT kind FROM {t}anxin_audit WHERE seq > ? ORDER BY seq", (seq - 3,))] == [
        "login_failed",
        "login",
        "report",
    ]
    assert subject.startswith("user:") and "zhang" not in subject
    assert subject == audit.login_subject(app, " Zhang.Wei ")
    # and a kind the trail does not know, or one only the application writes, is refused
    for kind in ("event", "access", "checkpoint", "coffee"):
        with pytest.raises(ValueError):
            app.record_security_event(kind, "x")


def test_the_trail_holds_no_name_and_no_reason_in_the_clear(
    store: Store, app: Anxin, school: School, clock: Clock
) -> None:
    # given a day's work, with names, a narrative and a break-glass reason
    given_history(app, school, clock)

    # when every clear column of the trail is read, straight from the database
    raw = Raw(store, app)
    rows = raw("SELECT at, kind, actor_id, subject, detail, payload_hash, prev_hash, entry_hash FROM {t}anxin_audit")
    clear = " ".join(str(v) for r in rows for v in r)
    decoded = " ".join(json.dumps(json.loads(r[4]), ensure_ascii=False) for r in rows if r[4].startswith("{"))
    sealed = [r[0] for r in raw("SELECT sealed FROM {t}anxin_audit WHERE sealed IS NOT NULL")]

    # then no name, narrative or reason is there, and the one sealed reason is ciphertext
    for secret in ("张小明", "赵小丽", "王老师", "督导员", NARRATIVE, "食堂", REASON, "睡眠"):
        assert secret not in clear and secret not in decoded
    assert "不在您的职责范围内" in decoded  # the gate's rule is kept (a code's wording, not a person's)
    assert clear.isascii()
    assert len(sealed) == 1 and REASON.encode() not in sealed[0]


def test_a_shred_and_a_key_rotation_are_entries_in_their_own_transaction(app: Anxin, school: School) -> None:
    sid = school.student("2026004")
    app.erasure.shred(ADMIN, sid, "保存期限届满")
    new_key = MasterKey.generate()
    app.rotate_master_key(ADMIN, new_key)

    tail = rows_of(
        app,
        "SELECT kind, actor_id, subject, detail FROM {t}anxin_audit WHERE kind IN "
        "('shred', 'key_rotation') ORDER BY seq",
    )
    assert tail[0] == ("shred", ADMIN.staff_id, sid, '{"kind":"student"}')
    assert tail[1][:3] == ("key_rotation", ADMIN.staff_id, new_key.kek_id)
    assert "保存期限" not in str(tail)
    assert audit.verify(app).ok


def test_a_store_from_before_the_trail_adopts_its_events_and_keeps_its_old_access_table(
    store: Store, app: Anxin, school: School
) -> None:
    # given a store as it was before the trail: events, an access table, no trail
    raw = Raw(store, app)
    events = raw("SELECT COUNT(*) FROM {events}")[0][0]
    raw("DROP VIEW {t}anxin_access")
    raw("CREATE TABLE {t}anxin_access (id INTEGER PRIMARY KEY, at TEXT, actor_id TEXT, action TEXT)")
    raw("INSERT INTO {t}anxin_access (id, at, actor_id, action) VALUES (1, '2026-01-01', 'old', 'student.read')")
    raw("DELETE FROM {t}anxin_audit")

    # when the application next starts
    fresh = store.open()

    # then every stored event has an entry (actor unknown), the chain verifies, and the
    # old decisions are kept beside the new view
    report = audit.verify(fresh)
    assert report.ok and report.entries == report.events == events
    assert {r[0] for r in raw("SELECT actor_id FROM {t}anxin_audit")} == {""}
    assert raw("SELECT actor_id FROM {t}anxin_access_v0") == [("old",)]
    assert raw("SELECT COUNT(*) FROM {t}anxin_access")[0][0] == 0
    fresh.roster.get_student(school.principal, school.student("2026001"))
    assert raw("SELECT action FROM {t}anxin_access") == [(a.STUDENT_READ,)]


# -- verification ---------------------------------------------------------------------------------
@pytest.fixture(params=[False, True], ids=["one pass", "halves"])
def halves(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> bool:
    """Verification as a short trail gets it (one pass), and as a long one does: two halves
    at once, the second in a process of its own (from 2 entries on, instead of 200,000)."""
    if request.param:
        monkeypatch.setattr(verification, "PARALLEL_FROM", 2)
    return bool(request.param)


def test_an_untampered_store_verifies_with_its_counts(
    halves: bool, store: Store, app: Anxin, school: School, clock: Clock
) -> None:
    given_history(app, school, clock)
    raw = Raw(store, app)

    report = audit.verify(app)

    assert report.ok, report.summary()
    assert report.entries == raw.head() == report.head_seq
    assert report.events == raw("SELECT COUNT(*) FROM {events}")[0][0]
    assert report.head_hash == raw.entry(raw.head())[9]
    assert "intact" in report.summary() and f"{report.entries} 条记录" in report.summary()


def test_a_store_still_verifies_after_a_stream_is_shredded(
    halves: bool, store: Store, app: Anxin, school: School, clock: Clock
) -> None:
    # given a day's work, and then the student at its centre shredded
    ids = given_history(app, school, clock)
    events_before = audit.verify(app).events
    app.erasure.shred(ADMIN, ids["student"], "毕业五年，保存期限届满")
    assert app.erasure.is_erased(ids["student"])

    # when the store is verified (by a fresh instance)
    report = audit.verify(store.open(clock))

    # then it is intact: the events are still there, as ciphertext nobody can read
    assert report.ok, report.summary()
    assert report.events == events_before


def test_flipping_one_byte_of_a_stored_event_is_caught_at_its_entry(
    halves: bool, store: Store, app: Anxin, school: School, clock: Clock
) -> None:
    given_history(app, school, clock)
    raw = Raw(store, app)
    sid = school.student("2026002")
    # given the last byte of a student's stored event flipped
    nid = raw.flip_last_byte(sid, 1)

    report = audit.verify(app)

    # then verification names that event's entry, the stream and version, and why
    assert problem(report) == ("event_altered", raw.event_entry(sid, 1))
    assert report.problem is not None
    assert (report.problem.stream_id, report.problem.version, report.problem.notification_id) == (sid, 1, nid)
    assert "tampered" in report.summary() and f"seq {report.problem.seq}" in report.summary()


def test_deleting_an_event_row_is_caught_at_its_entry(
    halves: bool, store: Store, app: Anxin, school: School, clock: Clock
) -> None:
    given_history(app, school, clock)
    raw = Raw(store, app)
    sid = school.student("2026004")
    raw("DELETE FROM {events} WHERE originator_id = ? AND originator_version = 1", (raw.oid(sid),))

    report = audit.verify(app)

    assert problem(report) == ("event_missing", raw.event_entry(sid, 1))
    assert report.problem is not None and report.problem.stream_id == sid


def test_an_event_written_around_the_application_is_caught(
    halves: bool, store: Store, app: Anxin, school: School, clock: Clock
) -> None:
    given_history(app, school, clock)
    raw = Raw(store, app)
    sid = school.student("2026002")
    # given an event row inserted straight into the events table (no trail entry)
    raw(
        "INSERT INTO {events} (originator_id, originator_version, topic, state) SELECT originator_id, 99, topic, "
        "state FROM {events} WHERE originator_id = ? AND originator_version = 1",
        (raw.oid(sid),),
    )

    report = audit.verify(app)

    assert problem(report) == ("event_unrecorded", raw.head() + 1)
    assert report.problem is not None and (report.problem.stream_id, report.problem.version) == (sid, 99)


@pytest.mark.parametrize("kind", ["access", "event"])
def test_deleting_a_trail_entry_is_caught_at_its_position(
    halves: bool, store: Store, app: Anxin, school: School, clock: Clock, kind: str
) -> None:
    given_history(app, school, clock)
    raw = Raw(store, app)
    # given one entry from the middle of the trail deleted
    seqs = [r[0] for r in raw("SELECT seq FROM {t}anxin_audit WHERE kind = ? ORDER BY seq", (kind,))]
    victim = seqs[len(seqs) // 2]
    raw("DELETE FROM {t}anxin_audit WHERE seq = ?", (victim,))

    assert problem(audit.verify(app)) == ("entry_missing", victim)


def test_deleting_an_entry_and_renumbering_the_rest_is_caught(
    halves: bool, store: Store, app: Anxin, school: School, clock: Clock
) -> None:
    given_history(app, school, clock)
    raw = Raw(store, app)
    victim = raw.head() - 5
    raw("DELETE FROM {t}anxin_audit WHERE seq = ?", (victim,))
    for seq in range(victim + 1, raw.head() + 1):
        raw("UPDATE {t}anxin_audit SET seq = ? WHERE seq = ?", (seq - 1, seq))

    assert problem(audit.verify(app)) == ("entry_moved", victim)


def test_swapping_two_trail_rows_is_caught_at_the_first_of_them(
    halves: bool, store: Store, app: Anxin, school: School, clock: Clock
) -> None:
    given_history(app, school, clock)
    raw = Raw(store, app)
    # given the contents of two entries exchanged (each keeps its seq)
    first, second = 7, raw.head() - 3
    one, other = raw.entry(first), raw.entry(second)
    cols = audit.COLUMNS.split(", ")[1:]
    for seq, row in ((first, other), (second, one)):
        raw(f"UPDATE {{t}}anxin_audit SET {', '.join(c + ' = ?' for c in cols)} WHERE seq = ?", (*row[1:], seq))

    assert problem(audit.verify(app)) == ("entry_moved", first)


def test_editing_a_trail_entrys_actor_is_caught_at_that_entry(
    halves: bool, store: Store, app: Anxin, school: School, clock: Clock
) -> None:
    ids = given_history(app, school, clock)
    raw = Raw(store, app)
    # given the check-in's entry edited to name another teacher
    seq = raw.event_entry(ids["pairing"], 2)
    assert raw.entry(seq)[3] == school.teacher.staff_id
    raw("UPDATE {t}anxin_audit SET actor_id = ? WHERE seq = ?", (school.other_teacher.staff_id, seq))

    assert problem(audit.verify(app)) == ("entry_altered", seq)


def test_altering_a_sealed_break_glass_reason_is_caught(
    halves: bool, store: Store, app: Anxin, school: School, clock: Clock
) -> None:
    given_history(app, school, clock)
    raw = Raw(store, app)
    [(seq, sealed)] = raw("SELECT seq, sealed FROM {t}anxin_audit WHERE sealed IS NOT NULL")
    sealed = bytes(sealed)
    raw(
        "UPDATE {t}anxin_audit SET sealed = ? WHERE seq = ?", (sealed[:20] + bytes([sealed[20] ^ 1]) + sealed[21:], seq)
    )

    assert problem(audit.verify(app)) == ("sealed_altered", seq)


def test_cutting_off_the_tail_after_a_checkpoint_is_caught_by_the_checkpoint_file(
    halves: bool, store: Store, app: Anxin, school: School, clock: Clock
) -> None:
    # given a signed checkpoint kept outside, taken right after a correction was saved
    given_history(app, school, clock)
    with_signing_key(store)
    app.roster.correct_student(ADMIN, school.student("2026002"), {"class_name": "七年级2班"}, reason="分班调整")
    kept = app.checkpoint("cli")
    raw = Raw(store, app)
    assert raw.entry(kept.seq)[2] == "event"  # the correction's own entry is the signed head
    # and more work after it
    clock.advance(hours=1)
    app.roster.get_student(school.teacher, school.student("2026001"))

    # when someone deletes the newest entries from just before the checkpoint, with the
    # events they record, so that what is left is consistent
    cut = kept.seq - 1
    for subject, detail in raw("SELECT subject, detail FROM {t}anxin_audit WHERE seq >= ? AND kind = 'event'", (cut,)):
        raw(
            "DELETE FROM {events} WHERE originator_id = ? AND originator_version = ?",
            (raw.oid(subject), int(detail.rsplit("#", 1)[1])),
        )
    raw("DELETE FROM {t}anxin_audit WHERE seq >= ?", (cut,))

    # then the store alone still looks whole (that is why the file is kept outside) ...
    assert audit.verify(app).ok
    # ... but the checkpoint file shows where the trail was cut
    report = audit.verify(app, kept)
    assert problem(report) == ("truncated", cut)
    assert f"第 {kept.seq} 条" in report.summary()


def test_a_rewritten_chain_is_caught_by_the_stored_and_the_kept_checkpoints(
    halves: bool, store: Store, app: Anxin, school: School, clock: Clock
) -> None:
    # given a checkpoint (stored in the trail and kept outside), then more work
    ids = given_history(app, school, clock)
    with_signing_key(store)
    kept = app.checkpoint("cli")
    app.roster.get_student(school.teacher, school.student("2026001"))
    raw = Raw(store, app)
    # when an early entry's actor is edited and every later hash recomputed to match
    # (the format is public, so anyone with write access could)
    seq = raw.event_entry(ids["pairing"], 2)
    raw("UPDATE {t}anxin_audit SET actor_id = ? WHERE seq = ?", (school.other_teacher.staff_id, seq))
    prev = raw.entry(seq)[8]
    for row in raw(f"SELECT {audit.COLUMNS} FROM {{t}}anxin_audit WHERE seq >= ? ORDER BY seq", (seq,)):
        h = audit.entry_hash(prev, row[0], row[1], row[2], row[3], row[4], row[5], row[6])
        raw("UPDATE {t}anxin_audit SET prev_hash = ?, entry_hash = ? WHERE seq = ?", (prev, h, row[0]))
        prev = h

    # then the stored checkpoint no longer matches the chain it signed ...
    assert problem(audit.verify(app)) == ("checkpoint_mismatch", kept.seq + 1)
    # ... nor does the kept one, which is reached first
    assert problem(audit.verify(app, kept)) == ("checkpoint_mismatch", kept.seq)


def test_a_forged_or_foreign_checkpoint_file_is_refused(
    halves: bool, store: Store, app: Anxin, school: School, tmp_path: Path
) -> None:
    with_signing_key(store)
    kept = app.checkpoint("cli")
    assert audit.verify(app, kept).ok

    # a checkpoint file edited to vouch for another head
    edited = Checkpoint(**{**kept.__dict__, "entry_hash": "0" * 64})
    assert problem(audit.verify(app, edited))[0] == "checkpoint_forged"
    # one signed by a key that is not this system's
    other = StoreConfig(url=None, data_dir=tmp_path / "elsewhere")
    audit.create_signing_key(other)
    key = audit.load_signing_key(other)
    sig = base64.b64encode(key.sign(kept.message())).decode()
    stranger = Checkpoint(
        kept.store,
        kept.seq,
        kept.entry_hash,
        kept.at,
        audit.key_id(key.public_key()),
        audit.public_key_text(key.public_key()),
        sig,
    )
    assert problem(audit.verify(app, stranger))[0] == "checkpoint_forged"
    # one of another store
    assert problem(audit.verify(app, Checkpoint(**{**kept.__dict__, "store": "another"})))[0] == "checkpoint_foreign"
    # and a file that is not a checkpoint at all says so
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    with pytest.raises(InvalidInput):
        audit.verify(app, bad)


def test_appends_from_two_instances_at_once_keep_one_unbroken_chain(store: Store, app: Anxin, school: School) -> None:
    # given two instances of the application on the same store (two workers)
    other = store.open()
    head = Raw(store, app).head()
    errors: list[BaseException] = []

    def work(instance: Anxin, who: str, student: str) -> None:
        try:
            for i in range(15):
                instance.record_security_event("login", who, who)
                if i % 5 == 0:
                    instance.roster.correct_student(ADMIN, student, {"tags": [f"{who}-{i}"]}, reason="并发测试")
        except BaseException as e:  # reported below
            errors.append(e)

    threads = [
        threading.Thread(target=work, args=(inst, who, school.student(no)))
        for inst, who, no in ((app, "w1", "2026001"), (other, "w2", "2026002"))
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    # then every append landed, in one gap-free chain that verifies
    assert errors == []
    report = audit.verify(app)
    assert report.ok, report.summary()
    assert report.entries == head + 30 + 6 * 2  # 30 logins; 6 corrections, each a decision and an event


# -- checkpoints ------------------------------------------------------------------------------
def test_a_checkpoint_signs_the_head_and_is_recorded_as_the_next_entry(
    store: Store, app: Anxin, school: School
) -> None:
    with_signing_key(store)
    raw = Raw(store, app)
    head = raw.head()

    cp = app.checkpoint("cli")

    assert (cp.seq, cp.entry_hash) == (head, raw.entry(head)[9])
    assert cp.signature_valid(audit.parse_public_key(audit.public_key_path(store.config).read_text()))
    entry = raw.entry(head + 1)
    assert entry[2:5] == ("checkpoint", "cli", cp.key_id)
    assert json.loads(entry[5]) == {"entry_hash": cp.entry_hash, "seq": cp.seq, "signature": cp.signature}
    assert Checkpoint.from_json(cp.to_json()) == cp
    report = audit.verify(app)
    assert report.ok and report.checkpoints == 1


def test_a_checkpoint_needs_the_signing_key(store: Store, app: Anxin, school: School) -> None:
    with pytest.raises(audit.AuditKeyMissing) as raised:
        app.checkpoint()
    assert "audit-signing.key" in raised.value.text


def test_scheduled_checkpoints_are_taken_every_n_entries(store: Store, app: Anxin, school: School) -> None:
    with_signing_key(store)
    # a trail never checkpointed: one is due at once
    first = app.maybe_checkpoint(every_entries=5)
    assert first is not None
    # then not again until five new entries follow the checkpoint's own
    assert app.maybe_checkpoint(every_entries=5) is None
    for _ in range(4):
        app.record_security_event("login", "t1", "t1")
    assert app.maybe_checkpoint(every_entries=5) is None
    app.record_security_event("logout", "t1", "t1")
    second = app.maybe_checkpoint(every_entries=5)
    assert second is not None and second.seq == first.seq + 1 + 5
    assert audit.verify(app).checkpoints == 2


def test_scheduled_checkpoints_are_taken_every_s_seconds_when_something_happened(
    store: Store, app: Anxin, school: School, clock: Clock
) -> None:
    with_signing_key(store)
    assert app.maybe_checkpoint(every_seconds=3600) is not None
    clock.advance(minutes=30)
    app.record_security_event("login", "t1", "t1")
    assert app.maybe_checkpoint(every_seconds=3600) is None  # too soon
    clock.advance(minutes=31)
    cp = app.maybe_checkpoint(every_seconds=3600)
    assert cp is not None and cp.at == clock.now.isoformat()
    clock.advance(hours=5)
    assert app.maybe_checkpoint(every_seconds=3600) is None  # nothing new to sign
    with pytest.raises(ValueError):
        app.maybe_checkpoint()


# -- supervisor queries -------------------------------------------------------------------------
def test_a_supervisor_reads_a_cases_full_history_in_order(app: Anxin, school: School, clock: Clock) -> None:
    # given a case reported, investigated, read with a stated reason and refused to a teacher
    ids = given_history(app, school, clock)
    cid = ids["case"]
    assert app.cases.get_case(school.supervisor, cid, break_glass=REASON).narrative == NARRATIVE
    with pytest.raises(PermissionDenied):
        app.cases.get_case(school.other_teacher, cid)

    # when the supervisor asks for its history
    history = audit.case_history(app, school.supervisor, cid)

    # then it says who did what, when, in order, and who was let in or refused, and why;
    # the query itself is the last line
    assert [(r["kind"], r["actor_id"], r["what"], r["allowed"]) for r in history] == [
        ("event", school.teacher.staff_id, "domain.bullying:BullyingCase.Reported", None),
        ("access", school.safety.staff_id, a.CASE_WRITE, True),
        ("event", school.safety.staff_id, "domain.bullying:BullyingCase.InvestigationStarted", None),
        ("access", school.supervisor.staff_id, a.CASE_READ, True),
        ("access", school.other_teacher.staff_id, a.CASE_READ, False),
        ("access", school.supervisor.staff_id, a.AUDIT_READ, True),
    ]
    assert [r["version"] for r in history if r["kind"] == "event"] == [1, 2]
    assert history[0]["actor"] == "王老师" and history[1]["at"] == "2026-10-12T11:00:00+00:00"
    assert history[3]["break_glass"] == REASON and history[4]["rule"] == "不在您的职责范围内"


def test_audit_queries_pass_the_gate_and_a_refusal_is_itself_on_record(
    app: Anxin, school: School, clock: Clock
) -> None:
    ids = given_history(app, school, clock)
    other = make_school(app, "第二中学", district="north")
    # a principal reads their own school's trail
    assert audit.case_history(app, school.principal, ids["case"])
    assert audit.denied_log(app, school.principal, school.id)
    # nobody else of the school does, nor another school's principal, nor another district's supervisor
    for actor in (school.teacher, school.safety, school.counselor, ADMIN, other.principal, other.supervisor):
        with pytest.raises(PermissionDenied):
            audit.case_history(app, actor, ids["case"])
    with pytest.raises(PermissionDenied):
        audit.break_glass_log(app, school.principal)  # the district's, not the school's
    refused = rows_of(
        app, "SELECT actor_id, resource_id FROM {t}anxin_access WHERE action = ? AND allowed = 0", (a.AUDIT_READ,)
    )
    assert (school.teacher.staff_id, ids["case"]) in refused and len(refused) == 7


def test_who_accessed_a_students_records_and_why(app: Anxin, school: School, clock: Clock) -> None:
    # given reads of the student's own record and of records linked to the student
    ids = given_history(app, school, clock)
    app.pairings.get_pairing(school.principal, ids["pairing"])
    app.cases.get_case(school.supervisor, ids["case"], break_glass="区里复查欺凌案件处理")

    rows = audit.student_access(app, school.supervisor, ids["student"])

    seen = [(r["actor_id"], r["what"], r["subject"], r["allowed"], r["break_glass"]) for r in rows]
    assert (school.supervisor.staff_id, a.STUDENT_READ, ids["student"], True, REASON) in seen
    assert (school.principal.staff_id, a.PAIRING_READ, ids["pairing"], True, None) in seen
    assert (school.teacher.staff_id, a.PAIRING_WRITE, ids["pairing"], True, None) in seen
    assert (school.supervisor.staff_id, a.CASE_READ, ids["case"], True, "区里复查欺凌案件处理") in seen
    assert [r["seq"] for r in rows] == sorted(r["seq"] for r in rows)
    # and nothing about another student's own record
    assert school.student("2026003") not in {r["subject"] for r in rows}


def test_break_glass_and_denied_accesses_of_a_district(app: Anxin, school: School, clock: Clock) -> None:
    ids = given_history(app, school, clock)
    other = make_school(app, "第二中学", district="north")
    with pytest.raises(PermissionDenied):
        app.roster.get_student(other.teacher, other.student("2026004"))

    glass = audit.break_glass_log(app, school.supervisor)
    denied = audit.denied_log(app, school.supervisor)

    assert [(r["actor_id"], r["subject"], r["break_glass"]) for r in glass] == [
        (school.supervisor.staff_id, ids["student"], REASON)
    ]
    assert {(r["actor_id"], r["subject"]) for r in denied} == {(school.teacher.staff_id, school.student("2026003"))}
    # another district sees its own denial only, and none of ours
    theirs = audit.denied_log(app, other.supervisor)
    assert {(r["actor_id"], r["subject"]) for r in theirs} == {(other.teacher.staff_id, other.student("2026004"))}
    assert audit.break_glass_log(app, other.supervisor) == []


def test_an_export_is_csv_and_is_itself_an_entry(app: Anxin, school: School, clock: Clock) -> None:
    ids = given_history(app, school, clock)
    out = io.StringIO()

    n = audit.export_csv(app, school.supervisor, "case-history", out, id=ids["case"])

    table = list(csv.reader(io.StringIO(out.getvalue())))
    assert table[0][:3] == ["序号", "时间", "类别"] and len(table) == n + 1 == 5
    assert table[1][2] == "event" and table[1][4] == "王老师"
    [(actor, subject, detail)] = rows_of(
        app, "SELECT actor_id, subject, detail FROM {t}anxin_audit WHERE kind = 'export'"
    )
    assert (actor, subject, json.loads(detail)) == (
        school.supervisor.staff_id,
        ids["case"],
        {"rows": 4, "what": "case-history"},
    )
    with pytest.raises(PermissionDenied):
        audit.export_csv(app, school.teacher, "denied", io.StringIO())


def test_after_erasure_the_trail_still_answers_but_the_reason_is_gone_with_the_record(
    store: Store, app: Anxin, school: School, clock: Clock
) -> None:
    # given a student read with a stated reason, then shredded
    ids = given_history(app, school, clock)
    app.erasure.shred(ADMIN, ids["student"], "保存期限届满")

    # when a supervisor asks who accessed the student's records (a fresh instance)
    fresh = store.open(clock)
    rows = audit.student_access(fresh, school.supervisor, ids["student"])

    # then the accesses are all still there, but the reason sealed under the student's
    # key is erased with it; the case's own reason is not
    mine = [r for r in rows if r["subject"] == ids["student"] and r["break_glass"] is not None]
    assert [r["break_glass"] for r in mine] == ["已删除"]
    assert audit.verify(fresh).ok
    assert [r["what"] for r in audit.case_history(fresh, school.supervisor, ids["student"])][:1] == [
        "domain.roster:Student.Enrolled"
    ]


def test_the_access_log_of_the_core_reads_the_trail(app: Anxin, school: School, clock: Clock) -> None:
    given_history(app, school, clock)
    log = app.gate.access_log(school.supervisor)
    assert log[0]["action"] == a.AUDIT_READ and log[0]["allowed"]
    assert any(e["break_glass"] == REASON for e in log)
    assert [e["id"] for e in log] == sorted((e["id"] for e in log), reverse=True)


# -- the command line and an outsider (SQLite) -------------------------------------------------------
def anxin(data_dir: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("ANXIN_")}
    r = subprocess.run(
        [sys.executable, "-m", "anxin.cli", *args, "--data-dir", str(data_dir)],
        cwd=ROOT,
        env=base | (env or {}),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "Traceback" not in r.stderr, r.stderr
    return r


@pytest.fixture
def cli_store(tmp_path: Path) -> Path:
    """A data directory set up by `anxin init`, with a school, a supervisor, a teacher
    and a student (set up in this process, to keep the test fast)."""
    data = tmp_path / "var"
    r = anxin(data, "init")
    assert r.returncode == 0, r.stderr
    from anxin.passwords import hash_password
    from anxin.service import open_app

    app = open_app(data_dir=data)
    try:
        sid = app.roster.add_school(ADMIN, "第一中学")
        app.roster.add_staff(
            ADMIN,
            username="sup",
            name="督导员",
            school_id=None,
            roles=["supervisor"],
            password_hash=hash_password("long-enough-1"),
        )
        app.roster.add_staff(
            ADMIN, username="teacher", name="王老师", school_id=sid, roles=["class_teacher"], classes=["七年级1班"]
        )
        app.roster.enrol_student(
            ADMIN,
            school_id=sid,
            student_no="2026001",
            name="张小明",
            gender="男",
            birth_date=date(2013, 5, 6),
            grade="七年级",
            class_name="七年级1班",
        )
    finally:
        app.close()
    return data


def test_init_creates_the_signing_key_like_the_master_key_and_prints_the_public_key(tmp_path: Path) -> None:
    data = tmp_path / "var"
    r = anxin(data, "init")
    assert r.returncode == 0, r.stderr
    key, pub = data / "audit-signing.key", data / "audit-signing.pub"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert pub.read_text().strip() in r.stdout and key.read_text().strip() not in r.stdout
    # a second init --if-missing keeps the key
    before = key.read_text()
    assert anxin(data, "init", "--if-missing").returncode == 0 and key.read_text() == before


def test_audit_checkpoint_and_verify_exit_codes(cli_store: Path, tmp_path: Path) -> None:
    kept = tmp_path / "checkpoint.json"
    # a checkpoint written to a file a supervisor keeps
    r = anxin(cli_store, "audit", "checkpoint", "--out", str(kept))
    assert r.returncode == 0, r.stderr
    cp = Checkpoint.load(kept)
    assert f"seq {cp.seq}" in r.stdout
    # never overwritten
    assert anxin(cli_store, "audit", "checkpoint", "--out", str(kept)).returncode == 1
    # an intact store verifies, with counts
    r = anxin(cli_store, "audit", "verify", "--checkpoint", str(kept))
    assert r.returncode == 0 and "intact" in r.stdout and "检查点文件吻合" in r.stdout, r.stdout + r.stderr
    # an edited entry: exit 2, and the position and reason named
    conn = sqlite3.connect(cli_store / "anxin.db")
    conn.execute("UPDATE anxin_audit SET actor_id = 'someone' WHERE seq = 3")
    conn.commit()
    conn.close()
    r = anxin(cli_store, "audit", "verify")
    assert r.returncode == 2 and "seq 3" in r.stdout and "entry_altered" in r.stdout, r.stdout
    # a forged checkpoint file: exit 2
    forged = tmp_path / "forged.json"
    forged.write_text(kept.read_text().replace(cp.entry_hash, "f" * 64))
    assert anxin(cli_store, "audit", "verify", "--checkpoint", str(forged)).returncode == 2


def test_audit_checkpoint_without_a_signing_key_says_so(cli_store: Path) -> None:
    (cli_store / "audit-signing.key").unlink()
    r = anxin(cli_store, "audit", "checkpoint")
    assert r.returncode == 1 and "审计签名密钥" in r.stderr


def test_audit_export_runs_as_a_supervisor_through_the_gate(cli_store: Path, tmp_path: Path) -> None:
    out = tmp_path / "denied.csv"
    r = anxin(cli_store, "audit", "export", "--kind", "break-glass", "--as", "sup", "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert out.read_text(encoding="utf-8-sig").splitlines()[0].startswith("序号,时间")
    # a teacher may not; an unknown account is named
    r = anxin(cli_store, "audit", "export", "--kind", "denied", "--as", "teacher", "--out", str(tmp_path / "t.csv"))
    assert r.returncode == 1 and "无权" in r.stderr
    r = anxin(cli_store, "audit", "export", "--kind", "denied", "--as", "nobody", "--out", str(tmp_path / "n.csv"))
    assert r.returncode == 1 and "nobody" in r.stderr
    # the export is on record, by the supervisor
    conn = sqlite3.connect(cli_store / "anxin.db")
    kinds = [k for (k,) in conn.execute("SELECT kind FROM anxin_audit ORDER BY seq")]
    conn.close()
    assert kinds.count("export") == 1


def test_an_outsider_verifies_a_checkpoint_with_only_the_public_key(cli_store: Path, tmp_path: Path) -> None:
    # given the snippet of docs/audit.md, a checkpoint file and the public key, outside
    snippet = re.search(r"```python\n(# verify_checkpoint\.py.*?)```", (ROOT / "docs" / "audit.md").read_text(), re.S)
    assert snippet is not None
    script = tmp_path / "verify_checkpoint.py"
    script.write_text(snippet.group(1))
    kept = tmp_path / "checkpoint.json"
    assert anxin(cli_store, "audit", "checkpoint", "--out", str(kept)).returncode == 0
    pub = tmp_path / "public.b64"
    pub.write_text((cli_store / "audit-signing.pub").read_text())

    def outsider(key: Path = pub) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(script), str(kept), str(key), str(cli_store / "anxin.db")],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp_path,
        )

    # then the checkpoint verifies
    r = outsider()
    assert r.returncode == 0 and f"entries 1..{Checkpoint.load(kept).seq}" in r.stdout, r.stderr
    # and not with another key, nor once an early entry is edited
    other = StoreConfig(url=None, data_dir=tmp_path / "other")
    audit.create_signing_key(other)
    assert outsider(audit.public_key_path(other)).returncode != 0
    conn = sqlite3.connect(cli_store / "anxin.db")
    conn.execute("UPDATE anxin_audit SET at = '2020-01-01T00:00:00+00:00' WHERE seq = 2")
    conn.commit()
    conn.close()
    r = outsider()
    assert r.returncode != 0 and "entry 2: altered" in r.stderr


def test_verification_reads_the_store_in_batches_of_any_size(
    halves: bool, store: Store, app: Anxin, school: School, clock: Clock
) -> None:
    # given a day's work, the events read ahead in batches as small as one (in a reading
    # thread, through its own connection) ...
    given_history(app, school, clock)
    with_signing_key(store)
    kept = app.checkpoint("cli")
    app.roster.get_student(school.teacher, school.student("2026001"))
    whole = audit.verify(app)
    assert whole.ok, whole.summary()
    for batch in (1, 2, 5):
        report = audit.verify(app, kept, batch=batch)
        assert report.ok, report.summary()
        assert (report.entries, report.events, report.checkpoints) == (whole.entries, whole.events, 1)
    # ... and an event changed in the middle is found at its entry, whatever the batch
    raw = Raw(store, app)
    sid = school.student("2026002")
    raw.flip_last_byte(sid, 1)
    for batch in (1, 2, 5, 20000):
        assert problem(audit.verify(app, kept, batch=batch)) == ("event_altered", raw.event_entry(sid, 1))


# -- a long trail, in two halves at once ---------------------------------------------------------
def halves_alone(app: Anxin, checkpoint: Checkpoint | None = None) -> audit.VerifyReport | None:
    """Only the two-halves verification: its report if it showed the trail intact, else None."""
    report = audit.VerifyReport()
    ok = verification._verify_in_halves(app, report, checkpoint, audit.load_public_key(app.config), 20000, 2)
    return report if ok else None


def test_an_intact_trail_is_shown_intact_by_its_two_halves_with_the_one_pass_counts(
    store: Store, app: Anxin, school: School, clock: Clock
) -> None:
    # given a day's work, a shredded stream, a stored checkpoint and one kept outside, more work
    ids = given_history(app, school, clock)
    with_signing_key(store)
    app.erasure.shred(ADMIN, ids["pairing"], "结对结束，按规定删除")
    kept = app.checkpoint("cli")
    app.roster.get_student(school.teacher, school.student("2026001"))
    one = audit.verify(app, kept)
    assert one.ok and one.checkpoints == 1, one.summary()
    # then the halves (the second in its own process) show it intact, with the same counts
    both = halves_alone(app, kept)
    assert both is not None
    assert (both.entries, both.head_seq, both.events, both.checkpoints, both.head_hash) == (
        one.entries,
        one.head_seq,
        one.events,
        one.checkpoints,
        one.head_hash,
    )
    # and a short trail is verified in one pass (no second process for a few entries)
    assert not verification._verify_in_halves(app, audit.VerifyReport(), kept, None, 20000, one.entries + 1)


def _mid(raw: Raw) -> int:
    return raw.head() // 2


def _delete_last_of_first_half(raw: Raw) -> None:
    raw("DELETE FROM {t}anxin_audit WHERE seq = ?", (_mid(raw),))


def _relink_second_half(raw: Raw) -> None:
    """The second half's first entry made to name another prev_hash (its own hash left)."""
    raw("UPDATE {t}anxin_audit SET prev_hash = ? WHERE seq = ?", ("0" * 64, _mid(raw) + 1))


def _event_slipped_in_before_the_split(raw: Raw) -> None:
    """An event stored (with no entry) between the last event of the first half and the
    first of the second: its notification id taken from the first event after the middle."""
    [(subject, detail)] = raw(
        "SELECT subject, detail FROM {t}anxin_audit WHERE seq > ? AND kind = 'event' ORDER BY seq LIMIT 1", (_mid(raw),)
    )
    [(nid,)] = raw(
        "SELECT {nid} FROM {events} WHERE originator_id = ? AND originator_version = ?",
        (raw.oid(subject), int(detail.rsplit("#", 1)[1])),
    )
    [(oid, topic, state)] = raw("SELECT originator_id, topic, state FROM {events} WHERE {nid} = ?", (nid,))
    # the event moved up one place, a copy of it (another version) in the place it left
    raw("UPDATE {events} SET {nid} = {nid} + 100000 WHERE {nid} >= ?", (nid,))
    raw(
        "INSERT INTO {events} ({nid}, originator_id, originator_version, topic, state) VALUES (?, ?, ?, ?, ?)",
        (nid, oid, 999, topic, state),
    )


@pytest.mark.parametrize(
    "tamper",
    [_delete_last_of_first_half, _relink_second_half, _event_slipped_in_before_the_split],
    ids=lambda f: f.__name__.strip("_"),
)
def test_a_change_where_the_halves_meet_is_caught(
    store: Store, app: Anxin, school: School, clock: Clock, tamper: Any
) -> None:
    given_history(app, school, clock)
    tamper(Raw(store, app))
    # the halves do not call it intact; verify says what the one pass says
    assert halves_alone(app) is None
    one = audit.verify(app, parallel_from=10**9)
    assert not one.ok
    assert audit.verify(app, parallel_from=2).problem == one.problem


def test_audit_export_neutralises_cells_a_spreadsheet_would_run_as_formulas(cli_store: Path, tmp_path: Path) -> None:
    # given a supervisor whose name and whose break-glass reason begin as spreadsheet formulas
    from anxin.service import open_app

    link = '=HYPERLINK("http://x")'
    app = open_app(data_dir=cli_store)
    try:
        staff_id = app.roster.add_staff(
            ADMIN, username="sup2", name="@SUM(1)", school_id=None, roles=["supervisor"], district="default"
        )
        [student_id] = [s.id for sid, _n, _d in app.schools() for s in app.roster.list_students(ADMIN, sid)]
        app.roster.get_student(app.gate.actor(staff_id), student_id, break_glass=link)
    finally:
        app.close()
    out = tmp_path / "break-glass.csv"

    # when the break-glass list is exported on the command line
    r = anxin(cli_store, "audit", "export", "--kind", "break-glass", "--as", "sup2", "--out", str(out))

    # then those cells begin with a quote: text in a spreadsheet, never a formula
    assert r.returncode == 0, r.stderr
    header, *rows = list(csv.reader(io.StringIO(out.read_text(encoding="utf-8-sig"))))
    [row] = [row for row in rows if row[header.index("调阅理由")]]
    assert row[header.index("调阅理由")] == "'" + link
    assert row[header.index("操作人")] == "'@SUM(1)"
    assert not any(cell.startswith(("=", "+", "-", "@")) for cell in row)
