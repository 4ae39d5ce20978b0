"""Encryption at rest, one key per stream: nothing personal in the database's bytes,
ciphertexts bound to their rows, keys stored with their streams, crypto-shredding and
master-key rotation. Every test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import re
import stat
from datetime import date
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from conftest import ADMIN, Clock, School, Store, make_school
from eventsourcing.persistence import MapperDeserialisationError
from store_support import raw_bytes

from anxin.core import ERASED_LABEL
from anxin.crypto import (
    KeyError_,
    MasterKey,
    MasterKeyFile,
    MasterKeyMissing,
    Tampered,
    stream_key,
)
from anxin.service import Anxin
from domain.common import Conflict, Erased, InvalidInput, PermissionDenied
from domain.pairing import Pairing

# Distinctive values that must never be found in the clear.
STUDENT_NAME = "欧阳晓澜"
STUDENT_NAME_ASCII = "Xiaolan Ouyang-Lindqvist"
CORRECTED_NAME = "欧阳晓岚"
GUARDIAN = "欧阳振华"
GUARDIAN_PHONE = "13987650123"
OTHER_PHONE = "18611223344"
STAFF_NAME = "司马文博"
NOTE = "最近常梦见外婆家的桂花树"
NOTE_ASCII = "skipped lunch three days running"
CONCERN = "担心她在宿舍被人孤立"
CORRECTION = "更正：谈话地点在心理咨询室"
BREAK_GLASS = "家长来访投诉需核实情况"
NARRATIVE = "在厕所被高年级学生勒索零花钱并被拍视频"
STATEMENT = "目击者称看见两名男生堵住门口"
EVIDENCE = "受害学生手机里的威胁短信截图"
SESSION = "来访者谈到夜里反复做噩梦"
CRISIS = "在天台边徘徊被保安发现"
GOAL = "重建与母亲的信任关系"
SECRETS = [
    STUDENT_NAME,
    STUDENT_NAME_ASCII,
    CORRECTED_NAME,
    GUARDIAN,
    GUARDIAN_PHONE,
    OTHER_PHONE,
    STAFF_NAME,
    NOTE,
    NOTE_ASCII,
    CONCERN,
    CORRECTION,
    BREAK_GLASS,
    NARRATIVE,
    STATEMENT,
    EVIDENCE,
    SESSION,
    CRISIS,
    GOAL,
]


# -- helpers -----------------------------------------------------------------------------
def events_table(app: Anxin) -> str:
    return app.db.t(app.recorder.events_table_name)


def snapshots_table(app: Anxin) -> str:
    assert app.snapshots is not None
    return app.db.t(app.snapshots.recorder.events_table_name)  # type: ignore[attr-defined]


def oid(app: Anxin, stream_id: str | UUID) -> Any:
    """An originator id as the events table stores it (hex on SQLite, uuid on PostgreSQL)."""
    uid = stream_id if isinstance(stream_id, UUID) else UUID(stream_id)
    return uid.hex if app.db.dialect == "sqlite" else uid


def event_rows(app: Anxin, stream_id: str | UUID) -> list[tuple[Any, ...]]:
    return app.db.fetch(
        f"SELECT originator_version, topic, state FROM {events_table(app)} "
        "WHERE originator_id = ? ORDER BY originator_version",
        (oid(app, stream_id),),
    )


def all_event_rows(app: Anxin) -> list[tuple[Any, ...]]:
    return app.db.fetch(
        f"SELECT originator_id, originator_version, topic, state FROM {events_table(app)} "
        "ORDER BY originator_id, originator_version"
    )


def all_snapshot_rows(app: Anxin) -> list[tuple[Any, ...]]:
    return app.db.fetch(f"SELECT * FROM {snapshots_table(app)} ORDER BY originator_id, originator_version")


def set_state(app: Anxin, stream_id: str | UUID, version: int, state: bytes) -> None:
    app.db.execute(
        f"UPDATE {events_table(app)} SET state = ? WHERE originator_id = ? AND originator_version = ?",
        (state, oid(app, stream_id), version),
    )


def key_ids(app: Anxin) -> set[str]:
    return {r[0] for r in app.db.fetch("SELECT stream_id FROM {t}anxin_keys")}


def stream_ids_with_events(app: Anxin) -> set[str]:
    return {
        stream_key(UUID(str(r[0]))) for r in app.db.fetch(f"SELECT DISTINCT originator_id FROM {events_table(app)}")
    }


def write_sensitive_data(app: Anxin, school: School, clock: Clock) -> dict[str, str]:
    """A student, a staff member, a pairing with check-ins, corrections and a break-glass read."""
    sid = app.roster.enrol_student(
        ADMIN,
        school_id=school.id,
        student_no="2026101",
        name=STUDENT_NAME,
        gender="女",
        birth_date=date(2013, 2, 3),
        grade="七年级",
        class_name="七年级1班",
        guardians=[{"name": GUARDIAN, "phone": GUARDIAN_PHONE}],
        tags=["留守儿童"],
    )
    ascii_id = app.roster.enrol_student(
        ADMIN,
        school_id=school.id,
        student_no="2026102",
        name=STUDENT_NAME_ASCII,
        gender="男",
        birth_date=date(2013, 4, 5),
        grade="七年级",
        class_name="七年级1班",
        guardians=[{"name": "Lindqvist Senior", "phone": OTHER_PHONE}],
    )
    staff = app.gate.actor(
        app.roster.add_staff(
            ADMIN,
            username="t-0042",
            name=STAFF_NAME,
            school_id=school.id,
            roles=["class_teacher"],
            classes=["七年级1班"],
        )
    )
    pid = app.pairings.pair(school.principal, staff_id=staff.staff_id, student_id=sid)
    clock.advance(days=1)
    ci = app.pairings.record_check_in(
        staff,
        pid,
        held_on=clock.today,
        notes={"thinking": NOTE, "studies": NOTE_ASCII},
        concern=True,
        concern_note=CONCERN,
    )
    app.pairings.correct_check_in(staff, pid, ci, reason=CORRECTION, notes={"family": NOTE})
    app.roster.correct_student(ADMIN, sid, {"name": CORRECTED_NAME}, reason="户籍核对")
    app.roster.get_student(school.supervisor, sid, break_glass=BREAK_GLASS)
    app.take_snapshot(UUID(pid))
    # a bullying case with its narrative, a statement and an evidence note
    case = app.cases.report_bullying(
        staff,
        school_id=school.id,
        channel="student",
        occurred_at=clock.now,
        place="三楼厕所",
        forms=["property"],
        parties=[(sid, "targeted"), (ascii_id, "bullying")],
        narrative=NARRATIVE,
    )
    app.cases.start_investigation(school.safety, case)
    app.cases.record_statement(school.safety, case, text=STATEMENT, from_person="保洁员")
    app.cases.add_evidence(school.safety, case, description=EVIDENCE)
    # a support file with a plan, a session and a crisis intervention; a screening import
    fid = app.support.open_support_file(school.counselor, sid, category="自伤风险", risk_level="key", reason="筛查提示")
    app.support.draw_up_plan(school.counselor, fid, goals=[GOAL], measures=[{"text": "每周辅导", "by": "心理老师"}])
    app.support.record_session(school.counselor, fid, held_on=clock.today, summary=SESSION)
    app.support.record_crisis_intervention(
        school.counselor, fid, occurred_on=clock.today, what_happened=CRISIS, actions_taken="陪护并通知家长"
    )
    app.screenings.import_screenings(
        school.counselor,
        school.id,
        "student_no,instrument,date," + ",".join(f"item{i}" for i in range(1, 10)) + "\n"
        f"2026102,PHQ-9,{clock.today.isoformat()},1,1,2,1,0,1,0,1,0\n",
    )
    return {
        "student": sid,
        "ascii_student": ascii_id,
        "pairing": pid,
        "staff": staff.staff_id,
        "case": case,
        "file": fid,
    }


# -- 1. nothing personal in the stored bytes -------------------------------------------------
def test_no_name_phone_or_note_appears_in_the_raw_database(
    store: Store, app: Anxin, school: School, clock: Clock
) -> None:
    # given students, staff, a pairing with notes, a snapshot, a break-glass read, a case,
    # a support file and a screening import (and the views and audit trail they feed)
    ids = write_sensitive_data(app, school, clock)
    assert app.pairings.get_pairing(school.principal, ids["pairing"]).check_ins  # the data really is there
    assert BREAK_GLASS in [e["break_glass"] for e in app.gate.access_log(school.supervisor)]

    # when the database's bytes are read raw
    raw = raw_bytes(store)

    # then clear ids and vocabulary are visible (the scan sees UTF-8 text) ...
    assert "第一中学".encode() in raw
    assert "七年级1班".encode() in raw
    # ... but no name, phone number or note is
    found = [s for s in SECRETS if s.encode() in raw]
    assert found == []


def test_stored_topics_and_clear_columns_name_no_one(app: Anxin, school: School, clock: Clock) -> None:
    # given sensitive data written
    write_sensitive_data(app, school, clock)

    # when the topics and the clear side tables are read
    topics = {r[0] for r in app.db.fetch(f"SELECT DISTINCT topic FROM {events_table(app)}")}
    topics |= {r[0] for r in app.db.fetch(f"SELECT DISTINCT topic FROM {snapshots_table(app)}")}
    clear: list[Any] = []
    for table in ("anxin_directory", "anxin_links", "anxin_staff", "anxin_schools", "anxin_keys"):
        for row in app.db.fetch(f"SELECT * FROM {{t}}{table}"):
            clear.extend(v for v in row if isinstance(v, str))
    clear.extend(
        v
        for r in app.db.fetch(  # the audit trail: every event and access decision
            "SELECT at, kind, actor_id, subject, detail, payload_hash, prev_hash, entry_hash FROM {t}anxin_audit"
        )
        for v in r
        if v is not None
    )

    # then topics are class paths only, and no clear value holds a secret
    assert topics >= {"domain.roster:Student.Enrolled", "domain.pairing:Pairing.CheckInRecorded"}
    assert all(re.fullmatch(r"[a-z_.]+:[A-Za-z_.]+", t) for t in topics), topics
    leaks = [(s, v) for v in clear for s in SECRETS + ["张小明", "王老师"] if s in v]
    assert leaks == []


# -- 2. tampering ----------------------------------------------------------------------------
def test_a_ciphertext_copied_into_another_streams_row_is_detected(app: Anxin, school: School) -> None:
    # given two students, each with one Enrolled event
    a, b = school.student("2026001"), school.student("2026002")
    ((_, _, a_state),) = event_rows(app, a)

    # when student a's ciphertext is copied into student b's row
    set_state(app, b, 1, a_state)

    # then loading b fails authentication; a is untouched
    with pytest.raises(Tampered) as raised:
        app.roster.get_student(school.principal, b)
    assert isinstance(raised.value, MapperDeserialisationError)
    assert raised.value.stream_id == UUID(b).hex and raised.value.version == 1
    assert app.roster.get_student(school.principal, a).name == "张小明"


def test_two_versions_swapped_within_a_stream_are_detected(app: Anxin, school: School, clock: Clock) -> None:
    # given a pairing with two check-ins (versions 2 and 3 share a topic)
    pid = app.pairings.pair(school.principal, staff_id=school.teacher.staff_id, student_id=school.student("2026001"))
    clock.advance(days=1)
    app.pairings.record_check_in(school.teacher, pid, held_on=clock.today, notes={"thinking": "一"})
    app.pairings.record_check_in(school.teacher, pid, held_on=clock.today, notes={"thinking": "二"})
    rows = event_rows(app, pid)
    assert rows[1][1] == rows[2][1]

    # when their ciphertexts are swapped
    set_state(app, pid, 2, rows[2][2])
    set_state(app, pid, 3, rows[1][2])

    # then reading the pairing fails on the first swapped version
    with pytest.raises(Tampered) as raised:
        app.pairings.get_pairing(school.teacher, pid)
    assert raised.value.version == 2


def test_a_flipped_byte_or_a_changed_topic_is_detected(app: Anxin, school: School) -> None:
    # given a student's stored event
    sid = school.student("2026003")
    ((_, topic, state),) = event_rows(app, sid)

    # when one byte of the ciphertext is flipped
    flipped = bytearray(state)
    flipped[len(flipped) // 2] ^= 0x01
    set_state(app, sid, 1, bytes(flipped))
    # then it is detected
    with pytest.raises(Tampered):
        app.roster.get_student(school.principal, sid)

    # when the ciphertext is restored but the row's topic is changed
    set_state(app, sid, 1, state)
    assert app.roster.get_student(school.principal, sid).name == "王小刚"
    app.db.execute(
        f"UPDATE {events_table(app)} SET topic = ? WHERE originator_id = ?",
        ("domain.roster:Student.DetailsCorrected", oid(app, sid)),
    )
    # then that is detected too, and the full-log reader does not hide it
    with pytest.raises(Tampered):
        app.roster.get_student(school.principal, sid)
    with pytest.raises(Tampered):
        list(app.decrypt_log())


# -- 3. keys ---------------------------------------------------------------------------------
def test_every_stream_with_events_has_its_key_and_no_key_is_orphaned(app: Anxin, school: School) -> None:
    # given the school (students, staff) and a pairing
    app.pairings.pair(school.principal, staff_id=school.teacher.staff_id, student_id=school.student("2026002"))

    # when keys are joined to the streams that have events
    streams = stream_ids_with_events(app)
    keys = key_ids(app)

    # then every stream has a key, and every stream key belongs to a stream
    assert len(streams) == 4 + 7 + 1  # students, staff, the pairing
    assert streams <= keys
    assert {k for k in keys - streams} == {k for k in keys if k.startswith("anxin:")}


def test_a_failed_save_stores_no_key_and_forgets_the_new_one(
    store: Store, app: Anxin, school: School, clock: Clock
) -> None:
    # given a pairing loaded twice, and one copy already saved with a change
    pid = app.pairings.pair(school.principal, staff_id=school.teacher.staff_id, student_id=school.student("2026001"))
    first, stale = app.load(pid, Pairing), app.load(pid, Pairing)
    first.change_cadence(cadence_days=7, reason="重点关注", actor="x", at=clock())
    app.commit(first)
    stale.change_cadence(cadence_days=21, reason="放宽", actor="x", at=clock())
    newcomer = app.roster._new_student(
        ADMIN,
        school.id,
        {
            "student_no": "2026150",
            "name": "新生甲",
            "gender": "男",
            "birth_date": date(2013, 1, 1),
            "grade": "七年级",
            "class_name": "七年级1班",
        },
    )
    sid = stream_key(newcomer.id)
    keys_before = key_ids(app)

    # when the new student is saved in one batch with the stale pairing
    with pytest.raises(Conflict):
        app.save_many([newcomer, stale])

    # then nothing of the batch was stored: no key, no event, no directory row, no cached key
    assert key_ids(app) == keys_before
    assert sid not in key_ids(app)
    assert event_rows(app, newcomer.id) == []
    assert app.db.fetch("SELECT 1 FROM {t}anxin_directory WHERE stream_id = ?", (str(newcomer.id),)) == []
    assert sid not in app.keystore._ciphers and sid not in app.keystore._pending
    assert app.load(pid, Pairing).cadence_days == 7

    # and enrolling the student afresh works and another instance reads it with the stored key
    new_id = app.roster.enrol_student(
        ADMIN,
        school_id=school.id,
        student_no="2026150",
        name="新生甲",
        gender="男",
        birth_date=date(2013, 1, 1),
        grade="七年级",
        class_name="七年级1班",
    )
    assert new_id == str(newcomer.id)
    assert store.open(clock).roster.get_student(school.principal, new_id).name == "新生甲"


def test_two_instances_on_one_store_read_and_extend_each_others_streams(
    store: Store, app: Anxin, school: School, clock: Clock
) -> None:
    # given a second application instance on the same store
    other = store.open(clock)
    pid = app.pairings.pair(school.principal, staff_id=school.teacher.staff_id, student_id=school.student("2026001"))
    clock.advance(days=1)

    # when each writes to streams the other created
    other.pairings.record_check_in(school.teacher, pid, held_on=clock.today, notes={"thinking": "在另一个实例中记录"})
    sid = other.roster.enrol_student(
        ADMIN,
        school_id=school.id,
        student_no="2026160",
        name="实例乙学生",
        gender="女",
        birth_date=date(2013, 1, 1),
        grade="七年级",
        class_name="七年级2班",
    )
    app.roster.correct_student(ADMIN, sid, {"grade": "八年级"}, reason="升级")

    # then each reads what the other wrote
    assert app.pairings.get_pairing(school.teacher, pid).version == 2
    assert [c["notes"]["thinking"] for c in app.pairings.get_pairing(school.teacher, pid).check_ins.values()] == [
        "在另一个实例中记录"
    ]
    assert other.roster.get_student(school.principal, sid).grade == "八年级"
    assert other.roster.get_student(school.principal, school.student("2026004")).name == "赵小丽"


def test_two_instances_creating_the_same_student_get_one_stream_and_one_key(
    store: Store, app: Anxin, school: School, clock: Clock
) -> None:
    # given two instances that both build the same new student (same school and number)
    other = store.open(clock)
    fields = {
        "student_no": "2026170",
        "name": "同号学生",
        "gender": "男",
        "birth_date": date(2013, 1, 1),
        "grade": "七年级",
        "class_name": "七年级1班",
    }
    mine, theirs = (
        app.roster._new_student(ADMIN, school.id, dict(fields)),
        other.roster._new_student(ADMIN, school.id, dict(fields)),
    )
    assert mine.id == theirs.id

    # when both save
    app.commit(mine)
    with pytest.raises(Conflict):
        other.commit(theirs)

    # then one stream with one key exists, and both instances read it
    assert len(event_rows(app, mine.id)) == 1
    assert stream_key(mine.id) in key_ids(app)
    assert other.roster.get_student(school.principal, str(mine.id)).name == "同号学生"
    assert app.roster.get_student(school.principal, str(mine.id)).name == "同号学生"


@pytest.mark.parametrize("n", [5, 30])
def test_a_bulk_save_stores_every_new_key_in_one_write(
    app: Anxin, school: School, monkeypatch: pytest.MonkeyPatch, n: int
) -> None:
    # given n new students built but not saved
    students = [
        app.roster._new_student(
            ADMIN,
            school.id,
            {
                "student_no": f"2027{i:03d}",
                "name": f"批量学生{i}",
                "gender": "女",
                "birth_date": date(2013, 1, 1),
                "grade": "七年级",
                "class_name": "七年级2班",
                "guardians": [{"name": f"家长{i}", "phone": "13700000000"}],
            },
        )
        for i in range(n)
    ]
    keys_before = key_ids(app)
    calls: list[int] = []
    insert = app.recorder.insert_events

    def counting_insert(stored_events: Any, **kw: Any) -> Any:
        calls.append(len(stored_events))
        return insert(stored_events, **kw)

    monkeypatch.setattr(app.recorder, "insert_events", counting_insert)

    # when they are saved in one batch
    app.save_many(students)  # type: ignore[arg-type]

    # then one insert carried all n events, and n keys were stored with them
    assert calls == [n]
    new_keys = key_ids(app) - keys_before
    assert new_keys == {stream_key(s.id) for s in students}
    refs = {r.name for r in app.roster.list_students(school.principal, school.id)}
    assert {f"批量学生{i}" for i in range(n)} <= refs


def test_a_bulk_save_with_one_existing_student_stores_nothing_and_spoils_no_key(
    store: Store, app: Anxin, school: School
) -> None:
    # given a batch of 25 new students plus one whose number is already enrolled
    fields = {"gender": "男", "birth_date": date(2013, 1, 1), "grade": "七年级", "class_name": "七年级1班"}
    batch = [
        app.roster._new_student(ADMIN, school.id, {**fields, "student_no": f"2028{i:03d}", "name": f"导入{i}"})
        for i in range(25)
    ]
    batch.append(app.roster._new_student(ADMIN, school.id, {**fields, "student_no": "2026002", "name": "重复学号"}))
    keys_before, events_before = key_ids(app), all_event_rows(app)

    # when the batch is saved
    with pytest.raises(Conflict):
        app.save_many(batch)  # type: ignore[arg-type]

    # then nothing of it was stored or kept in memory, and the existing student still reads
    assert key_ids(app) == keys_before and all_event_rows(app) == events_before
    assert not any(stream_key(s.id) in app.keystore._pending for s in batch)
    assert not any(stream_key(s.id) in app.keystore._ciphers for s in batch[:25])
    for instance in (app, store.open()):
        assert instance.roster.get_student(school.principal, school.student("2026002")).name == "李小红"


# -- 4. crypto-shredding ---------------------------------------------------------------------
def test_a_shredded_student_reads_as_erased_everywhere_and_nothing_crashes(
    store: Store, app: Anxin, school: School, clock: Clock
) -> None:
    # given a student with a pairing, and a second instance that has already read them
    sid = school.student("2026001")
    pid = app.pairings.pair(school.principal, staff_id=school.teacher.staff_id, student_id=sid)
    clock.advance(days=1)
    app.pairings.record_check_in(school.teacher, pid, held_on=clock.today, notes={"family": "父母外出务工"})
    other = store.open(clock)
    assert other.roster.get_student(school.principal, sid).name == "张小明"
    assert "张小明" in {r.name for r in other.roster.list_students(school.principal, school.id)}
    student_notes = {
        n.id
        for n in app.recorder.select_notifications(start=1, limit=10_000)
        if stream_key(n.originator_id) in (UUID(sid).hex, UUID(pid).hex)
    }

    # when the administrator shreds the student's key
    kind = app.erasure.shred(ADMIN, sid, reason="保留期满，依规删除")

    # then the student cannot be read or changed, on either instance
    assert kind == "student"
    for instance in (app, other):
        with pytest.raises(Erased) as raised:
            instance.roster.get_student(school.principal, sid)
        assert raised.value.code == "erased"
        with pytest.raises(Erased):
            instance.roster.correct_student(ADMIN, sid, {"grade": "八年级"}, reason="升级")
        assert instance.erasure.is_erased(sid)
        # listings show 已删除 for them and the others intact
        refs = {r.id: r for r in instance.roster.list_students(school.principal, school.id)}
        assert refs[sid].name == ERASED_LABEL and refs[sid].erased
        assert sorted(r.name for i, r in refs.items() if i != sid) == ["李小红", "王小刚", "赵小丽"]
        # the pairing, about them alone, went with them (tests/app/test_erasure.py)
        with pytest.raises(Erased):
            instance.pairings.get_pairing(school.teacher, pid)
        assert instance.student_ref(sid).name == ERASED_LABEL
        # the whole log decrypts, with None for the erased streams' events only
        log = dict(instance.decrypt_log())
        assert student_notes and all(log[n] is None for n in student_notes)
        assert all(e is not None for n, e in log.items() if n not in student_notes)

    # and the key row is destroyed while the events' ciphertext stays
    wrapped, _ = app.db.fetch_key(UUID(sid).hex) or (b"?", "")
    assert wrapped is None
    assert len(event_rows(app, sid)) == 1


def test_shredding_needs_the_administrator_and_a_reason(app: Anxin, school: School) -> None:
    sid = school.student("2026002")
    with pytest.raises(PermissionDenied):
        app.erasure.shred(school.principal, sid, reason="校长要求删除")
    with pytest.raises(InvalidInput):
        app.erasure.shred(ADMIN, sid, reason="  ")
    assert app.roster.get_student(school.principal, sid).name == "李小红"


# -- 5. master-key rotation -----------------------------------------------------------------
def test_rotation_rewraps_every_key_without_rewriting_events(
    store: Store, app: Anxin, school: School, clock: Clock
) -> None:
    # given data in several streams, a shredded student and a sealed break-glass reason
    ids = write_sensitive_data(app, school, clock)
    app.erasure.shred(ADMIN, school.student("2026004"), reason="保留期满")
    events_before, snapshots_before = all_event_rows(app), all_snapshot_rows(app)
    assert snapshots_before
    live_keys = [r for r in app.db.all_keys() if r[1] is not None]
    old_key, new_key = store.master_key, MasterKey.generate()

    # when the master key is rotated
    count = app.rotate_master_key(ADMIN, new_key)

    # then every live key is wrapped by the new key, shredded ones stay shredded, events are unchanged
    assert count == len(live_keys)
    keys_after = app.db.all_keys()
    assert {r[2] for r in keys_after if r[1] is not None} == {new_key.kek_id}
    assert [r for r in keys_after if r[1] is None] == [(UUID(school.student("2026004")).hex, None, old_key.kek_id)]
    assert all_event_rows(app) == events_before and all_snapshot_rows(app) == snapshots_before

    # and a fresh instance with only the new key reads everything
    fresh = store.open(clock, keys=[new_key])
    assert fresh.roster.get_student(school.principal, ids["student"]).name == CORRECTED_NAME
    assert len(fresh.pairings.get_pairing(school.principal, ids["pairing"]).check_ins) == 1
    assert BREAK_GLASS in [e["break_glass"] for e in fresh.gate.access_log(school.supervisor)]
    assert fresh.roster.list_students(school.principal, school.id)[-1].name == ERASED_LABEL
    assert sum(1 for _, e in fresh.decrypt_log() if e is not None) == len(events_before) - 1

    # and one with only the old key is refused at open, naming the key the store expects
    with pytest.raises(KeyError_, match=new_key.kek_id):
        store.open(clock, keys=[old_key])

    # and the rotating instance keeps working under the new key
    sid = app.roster.enrol_student(
        ADMIN,
        school_id=school.id,
        student_no="2026180",
        name="轮换后学生",
        gender="男",
        birth_date=date(2013, 1, 1),
        grade="七年级",
        class_name="七年级1班",
    )
    assert app.db.fetch_key(UUID(sid).hex)[1] == new_key.kek_id  # type: ignore[index]
    assert fresh.roster.get_student(school.principal, sid).name == "轮换后学生"


def test_only_the_administrator_rotates_keys(app: Anxin, school: School) -> None:
    with pytest.raises(PermissionDenied):
        app.rotate_master_key(school.principal, MasterKey.generate())
    assert {r[2] for r in app.db.all_keys()} == {app.keystore.master.kek_id}


def test_the_key_file_is_private_never_overwritten_and_rotates_through_a_pending_file(
    tmp_path: Path, clock: Clock
) -> None:
    # given no key file
    kf = MasterKeyFile(tmp_path / "keys" / "master.key")
    with pytest.raises(MasterKeyMissing):
        kf.load_all()

    # when it is created
    key = kf.create()
    # then it is readable by its owner only, and a second create refuses to overwrite it
    assert stat.S_IMODE(kf.path.stat().st_mode) == 0o600
    text = kf.path.read_text()
    with pytest.raises(FileExistsError):
        kf.create()
    assert kf.path.read_text() == text
    assert kf.load_all() == [key]

    # when a key is added (a rotation's first step), both are loaded, in the file's order, still private
    new = MasterKey.generate()
    kf.add(new)
    assert kf.load_all() == [key, new]
    assert stat.S_IMODE(kf.path.stat().st_mode) == 0o600
    assert not list(kf.path.parent.glob("*.tmp"))  # written beside, renamed over

    # when the rotation prunes the old key, only the new key is left, still private
    assert kf.keep_only([new.kek_id]) == [key.kek_id]
    assert kf.load_all() == [new]
    assert stat.S_IMODE(kf.path.stat().st_mode) == 0o600


def test_a_pending_key_file_left_by_an_earlier_version_is_read_and_folded_in(tmp_path: Path) -> None:
    # given an old-style rotation's two files
    kf = MasterKeyFile(tmp_path / "master.key")
    key = kf.create()
    new = MasterKey.generate()
    kf.pending_path.write_text(new.encode() + "\n")
    # then both are held, and pruning leaves one file with the keys kept
    assert kf.load_all() == [key, new]
    kf.keep_only([key.kek_id, new.kek_id])
    assert not kf.pending_path.exists() and kf.load_all() == [key, new]


def test_a_rotation_through_the_key_file_leaves_a_store_readable_with_the_new_file_alone(
    store: Store, clock: Clock
) -> None:
    # given a store whose instance loads its keys from a key file
    kf = MasterKeyFile(store.data_dir / "master.key")
    kf.create()
    app = store.open(clock, keys=kf.load_all())
    school = make_school(app)

    # when a rotation runs through the key file
    app.rotate_master_key(ADMIN, key_file=kf)

    # then the file holds the new key alone, and an instance with it reads the store
    assert [k.kek_id for k in kf.load_all()] == [app.keystore.master.kek_id]
    after = store.open(clock, keys=kf.load_all())
    assert [r.name for r in after.roster.list_students(school.principal, school.id)] == [
        "张小明",
        "李小红",
        "王小刚",
        "赵小丽",
    ]


def test_a_master_key_must_be_32_bytes() -> None:
    with pytest.raises(ValueError):
        MasterKey.decode("c2hvcnQ=")
    key = MasterKey.generate()
    assert MasterKey.decode(key.encode()) == key


def test_each_stream_has_its_own_data_key(app: Anxin, school: School) -> None:
    # given the school's four students; when their wrapped keys are unwrapped
    data_keys = []
    for sid in school.students.values():
        wrapped, kek_id = app.db.fetch_key(UUID(sid).hex)  # type: ignore[misc]
        data_keys.append(app.keystore._unwrap(UUID(sid).hex, wrapped, kek_id))
    # then each is a distinct 256-bit key, none of them the master key
    assert len(set(data_keys)) == 4
    assert all(len(k) == 32 and k != app.keystore.master.key for k in data_keys)
