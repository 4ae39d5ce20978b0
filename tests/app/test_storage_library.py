"""What we plug into the eventsourcing library, held to the library's own expectations:
its recorder test cases run against our recorders (with our key/directory seam
attached), its transcoder test case against our transcoder, and our mapper round-trips
every event type of the roster and pairings and upcasts an old event version."""

from __future__ import annotations

import inspect
import tempfile
import threading
import uuid
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest
from conftest import ADMIN, PG_SKIP_REASON, PG_URL, Clock, School, Store
from eventsourcing.domain import event
from eventsourcing.persistence import JSONTranscoder, StoredEvent, Transcoder
from eventsourcing.postgres import PostgresDatastore
from eventsourcing.sqlite import SQLiteDatastore
from eventsourcing.tests import persistence as library_cases
from eventsourcing.utils import get_topic

from anxin.core import Core
from anxin.crypto import KeyStore, MasterKey, stream_key
from anxin.service import Anxin
from anxin.storage import AnxinPostgresRecorder, AnxinSQLiteRecorder, Database, StoreConfig
from domain.common import CaseAggregate, Scope
from domain.pairing import Pairing
from domain.roster import Staff, Student

AT = datetime(2026, 10, 12, 9, 30, tzinfo=UTC)


# -- the library's recorder test cases, on our recorders --------------------------------------
def join_threads_started_since(before: set[threading.Thread]) -> None:
    """The library's concurrency cases set a stop flag for their reader threads but
    don't join them, so on a busy machine a reader can still be inside SQLite when
    tearDown closes its connection: CPython 3.11's sqlite3 then crashes the process
    (it did, in CI). Wait for those threads before closing anything."""
    for thread in set(threading.enumerate()) - before:
        if not thread.daemon and thread is not threading.current_thread():  # (pools' workers are daemons)
            thread.join(timeout=60)
            assert not thread.is_alive(), f"{thread.name} still running after the test"


def attach_anxin_seam(recorder: Any) -> Any:
    """Wire our side tables and key store into the recorder, as the application does,
    so the library's expectations are checked with our `_insert_events` seam active."""
    keystore = KeyStore([MasterKey.generate()])
    db = Database(recorder, keystore)
    keystore.db = db
    db.create_tables()
    assert recorder.anxin_db is db
    return recorder


class SQLiteRecorderSetup:
    def setUp(self) -> None:
        self._tmp = tempfile.TemporaryDirectory()
        self._datastores: list[SQLiteDatastore] = []
        self._threads_before = set(threading.enumerate())
        super().setUp()  # type: ignore[misc]

    def tearDown(self) -> None:
        try:
            join_threads_started_since(self._threads_before)
            super().tearDown()  # type: ignore[misc]
        finally:
            for ds in self._datastores:
                ds.close()
            self._tmp.cleanup()

    def create_recorder(self) -> AnxinSQLiteRecorder:
        path = Path(self._tmp.name) / f"{uuid4().hex}.db"
        datastore = SQLiteDatastore(db_name=str(path), pool_size=20)
        self._datastores.append(datastore)
        recorder = AnxinSQLiteRecorder(datastore)
        recorder.create_table()
        return attach_anxin_seam(recorder)


class PostgresRecorderSetup:
    schema: str

    def setUp(self) -> None:
        import psycopg

        assert PG_URL
        self.schema = "lib_" + uuid.uuid4().hex[:12]
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {self.schema}")
        env = StoreConfig(url=PG_URL, data_dir=Path(tempfile.gettempdir())).env()
        self.datastore = PostgresDatastore(
            dbname=env["POSTGRES_DBNAME"],
            host=env["POSTGRES_HOST"],
            port=env["POSTGRES_PORT"],
            user=env["POSTGRES_USER"],
            password=env["POSTGRES_PASSWORD"],
            schema=self.schema,
            pool_size=4,
            max_overflow=12,
        )
        self._threads_before = set(threading.enumerate())
        super().setUp()  # type: ignore[misc]

    def tearDown(self) -> None:
        import psycopg

        try:
            join_threads_started_since(self._threads_before)
            super().tearDown()  # type: ignore[misc]
        finally:
            self.datastore.close()
            with psycopg.connect(PG_URL, autocommit=True) as conn:  # type: ignore[arg-type]
                conn.execute(f"DROP SCHEMA {self.schema} CASCADE")

    def create_recorder(self) -> AnxinPostgresRecorder:
        recorder = AnxinPostgresRecorder(self.datastore, events_table_name="anxin_events")
        recorder.create_table()
        return attach_anxin_seam(recorder)


class TestAnxinSQLiteRecorderMeetsTheLibrarysApplicationRecorderCase(
    SQLiteRecorderSetup, library_cases.ApplicationRecorderTestCase[AnxinSQLiteRecorder]
):
    pass


class TestAnxinSQLiteRecorderKeepsNotificationIdsUninterleaved(
    SQLiteRecorderSetup, library_cases.NonInterleavingNotificationIDsBaseCase
):
    pass


@pytest.mark.skipif(not PG_URL, reason=PG_SKIP_REASON)
class TestAnxinPostgresRecorderMeetsTheLibrarysApplicationRecorderCase(
    PostgresRecorderSetup, library_cases.ApplicationRecorderTestCase[AnxinPostgresRecorder]
):
    pass


@pytest.mark.skipif(not PG_URL, reason=PG_SKIP_REASON)
class TestAnxinPostgresRecorderKeepsNotificationIdsUninterleaved(
    PostgresRecorderSetup, library_cases.NonInterleavingNotificationIDsBaseCase
):
    pass


def anxin_transcoder() -> JSONTranscoder:
    """The application's transcoder, built by the application's own registration code."""
    transcoder = JSONTranscoder()
    Core.register_transcodings(object.__new__(Core), transcoder)
    return transcoder


class TestAnxinTranscoderMeetsTheLibrarysTranscoderCase(library_cases.TranscoderTestCase):
    """The library's transcoder case, with its custom test types registered as its own
    test module does. JSON has no tuples and no subclasses: where the case expects
    those back, our transcoder (like the library's JSONTranscoder, whose own suite
    skips these) gives plain lists and base types, which is why events use lists."""

    def construct_transcoder(self) -> Transcoder:
        transcoder = anxin_transcoder()
        transcoder.register(library_cases.CustomType1AsDict())
        transcoder.register(library_cases.CustomType2AsDict())
        return transcoder

    def roundtrip(self, obj: Any) -> Any:
        return self.transcoder.decode(self.transcoder.encode(obj))

    def test_tuple(self) -> None:
        self.assertEqual(self.roundtrip(((1, "a"), ())), [[1, "a"], []])

    def test_mixed(self) -> None:
        self.assertEqual(self.roundtrip({"a": (1, 2), "b": [3, 4]}), {"a": [1, 2], "b": [3, 4]})

    def test_dict_subclass(self) -> None:
        copy = self.roundtrip(library_cases.Mydict({"a": 1}))
        self.assertEqual((type(copy), copy), (dict, {"a": 1}))

    def test_list_subclass(self) -> None:
        copy = self.roundtrip(library_cases.MyList([1]))
        self.assertEqual((type(copy), copy), (list, [1]))

    def test_str_subclass(self) -> None:
        copy = self.roundtrip(library_cases.MyStr("a"))
        self.assertEqual((type(copy), copy), (str, "a"))

    def test_int_subclass(self) -> None:
        copy = self.roundtrip(library_cases.MyInt(3))
        self.assertEqual((type(copy), copy), (int, 3))


def test_the_transcoder_keeps_dates_datetimes_and_sets_apart() -> None:
    # given values whose types JSON does not have
    t = anxin_transcoder()
    value = {"d": date(2013, 5, 6), "dt": AT, "s": {"b", "a"}, "nested": [{"d": date(2020, 1, 2)}]}
    # when round-tripped
    back = t.decode(t.encode(value))
    # then each keeps its exact type
    assert back == value
    assert type(back["d"]) is date and type(back["dt"]) is datetime and back["dt"].tzinfo is not None
    assert type(back["nested"][0]["d"]) is date and back["s"] == {"a", "b"}


# -- our mapper: every event type survives encode/decode ------------------------------------------
def concrete_event_classes(*aggregates: type[CaseAggregate]) -> set[type]:
    out = set()
    for agg in aggregates:
        for name, cls in vars(agg).items():
            if inspect.isclass(cls) and issubclass(cls, agg.Event) and name not in ("Event", "Created"):
                out.add(cls)
    return out


def every_roster_and_pairing_event() -> list[Any]:
    student = Student.enrol(
        id=uuid4(),
        school_id="s1",
        student_no="2026001",
        name="张小明",
        gender="男",
        birth_date=date(2013, 5, 6),
        grade="七年级",
        class_name="七年级1班",
        guardians=[{"name": "张家长", "phone": "13912345678"}],
        tags=["留守儿童"],
        actor="a1",
        at=AT,
    )
    student.correct(
        changes={
            "birth_date": date(2013, 6, 7),
            "guardians": [{"name": "张父", "phone": "13900000001"}],
            "tags": ["留守儿童", "单亲家庭"],
        },
        reason="户籍核对",
        actor="a1",
        at=AT,
    )
    student.leave(reason="转学", actor="a1", at=AT)
    staff = Staff.register(
        id=uuid4(),
        school_id="s1",
        username="t1",
        name="王老师",
        roles=["class_teacher"],
        classes=["七年级1班"],
        actor="a1",
        at=AT,
    )
    staff.request_grant(
        request_id="g1", roles=["class_teacher", "counselor"], classes=["七年级2班"], reason="调岗", actor="a1", at=AT
    )
    staff.approve_grant(request_id="g1", actor="a2", at=AT)
    staff.request_grant(
        request_id="g2", roles=["counselor", "safety_lead"], classes=["七年级2班"], reason="兼任", actor="a1", at=AT
    )
    staff.decline_grant(request_id="g2", reason="无须兼任", actor="a2", at=AT)
    staff.change_roles(roles=["counselor"], classes=[], reason="调岗", actor="a1", at=AT)
    staff.set_email(email="wang.laoshi@school.test", actor="t1", at=AT)
    staff.deactivate(reason="离职", actor="a1", at=AT)
    pairing = Pairing.pair(
        id=uuid4(),
        school_id="s1",
        staff_id=str(staff.id),
        student_id=str(student.id),
        cadence_days=14,
        actor="a1",
        at=AT,
    )
    pairing.record_check_in(
        check_in_id="c1",
        held_on=date(2026, 10, 12),
        notes={"thinking": "情绪平稳"},
        concern=True,
        concern_note="同学关系紧张",
        actor="t1",
        at=AT,
    )
    pairing.correct_check_in(check_in_id="c1", notes={"family": "父母外出"}, reason="补记", actor="t1", at=AT)
    pairing.escalate(
        check_in_id="c1", target="support_file", target_id=str(uuid4()), reason="需要心理支持", actor="t1", at=AT
    )
    pairing.change_cadence(cadence_days=7, reason="重点关注", actor="t1", at=AT)
    pairing.end(reason="学生毕业", actor="t1", at=AT)
    return [e for agg in (student, staff, pairing) for e in agg.collect_events()]


def test_every_roster_and_pairing_event_survives_the_mapper(app: Anxin) -> None:
    # given one event of every kind the roster and pairings record
    events = every_roster_and_pairing_event()
    assert {type(e) for e in events} == concrete_event_classes(Student, Staff, Pairing)

    for e in events:
        # when each is encrypted to a stored event and read back
        stored = app.mapper.to_stored_event(e)
        back = app.mapper.to_domain_event(stored)
        # then it is the same event, with the same value types, and its state is ciphertext
        assert type(back) is type(e)
        assert vars(back) == vars(e)
        for k, v in vars(e).items():
            assert type(vars(back)[k]) is type(v), k
        assert stored.topic == get_topic(type(e))
        assert "张".encode() not in stored.state and b"actor" not in stored.state
    corrected = next(e for e in events if type(e).__name__ == "DetailsCorrected")
    assert type(app.mapper.to_domain_event(app.mapper.to_stored_event(corrected)).changes["birth_date"]) is date


def test_a_saved_pairing_reads_back_identically_in_another_instance(
    store: Store, app: Anxin, school: School, clock: Clock
) -> None:
    # given a pairing with a corrected check-in, saved
    pid = app.pairings.pair(school.principal, staff_id=school.teacher.staff_id, student_id=school.student("2026001"))
    clock.advance(days=2)
    ci = app.pairings.record_check_in(
        school.teacher, pid, held_on=clock.today, notes={"thinking": "想家"}, concern=True, concern_note="夜里哭"
    )
    app.pairings.correct_check_in(school.teacher, pid, ci, reason="补充", notes={"studies": "数学退步"})
    mine = app.pairings.get_pairing(school.teacher, pid)

    # when another instance reads it, from events and again from a snapshot
    other = store.open(clock)
    from_events = other.pairings.get_pairing(school.teacher, pid)
    app.take_snapshot(UUID(pid))
    from_snapshot = store.open(clock).pairings.get_pairing(school.teacher, pid)

    # then the state is identical, dates and datetimes included
    for p in (from_events, from_snapshot):
        assert p.check_ins == mine.check_ins and p.version == mine.version == 3
        assert type(p.check_ins[ci]["held_on"]) is date and type(p.check_ins[ci]["at"]) is datetime
        assert p.paired_on == mine.paired_on and p.next_due == mine.next_due


def test_a_snapshot_of_a_first_version_is_readable_by_other_instances(
    store: Store, app: Anxin, school: School, clock: Clock
) -> None:
    # given a student at version 1; when a fresh instance snapshots them
    sid = school.student("2026003")
    store.open(clock).take_snapshot(UUID(sid))
    assert app.snapshots is not None and len(list(app.snapshots.get(UUID(sid)))) == 1
    # then the snapshot was sealed with the stream's stored key: every instance reads it
    for instance in (app, store.open(clock)):
        assert instance.roster.get_student(school.principal, sid).name == "王小刚"


# -- upcasting an old event version through our mapper --------------------------------------------
class Memo(CaseAggregate):
    """A test aggregate whose creation event gained a field in version 2."""

    class Written(CaseAggregate.Created):
        school_id: str
        text: str
        priority: str
        actor: str
        at: datetime

        class_version = 2

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["priority"] = "普通"

    @event(Written)
    def __init__(self, school_id: str, text: str, priority: str, actor: str, at: datetime) -> None:
        self.school_id = school_id
        self.text = text
        self.priority = priority

    def scope(self) -> Scope:
        return Scope(kind="memo", school_id=self.school_id)


def test_an_old_version_1_event_is_upcast_when_read_through_our_mapper(
    store: Store, app: Anxin, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a Written event stored the way version 1 of the class stored it (no priority)
    memo_id = uuid4()
    v1_state = {
        "originator_id": memo_id,
        "originator_version": 1,
        "timestamp": AT,
        "originator_topic": get_topic(Memo),
        "school_id": "s1",
        "text": "旧格式备忘",
        "actor": "a1",
        "at": AT,
    }
    with monkeypatch.context() as m:
        m.setattr(Memo.Written, "class_version", 1)
        old = object.__new__(Memo.Written)
        object.__setattr__(old, "__dict__", dict(v1_state))
        stored = app.mapper.to_stored_event(old)
    app.recorder.insert_events([stored])
    app.keystore.committed([stream_key(memo_id)])
    assert "priority" not in app.mapper.decrypt_state(stored)
    assert "class_version" not in app.mapper.decrypt_state(stored)

    # when it is read by the current code, here and in a fresh instance
    for instance in (app, store.open(clock)):
        memo = instance.load(memo_id, Memo)
        # then it was upcast to version 2
        assert (memo.text, memo.priority, memo.version) == ("旧格式备忘", "普通", 1)

    # and a new memo is stored as version 2 and keeps its own priority
    new = Memo(school_id="s1", text="新备忘", priority="紧急", actor="a1", at=AT)
    app.commit(new)
    (row,) = app.recorder.select_events(new.id)
    assert app.mapper.decrypt_state(row)["class_version"] == 2
    assert store.open(clock).load(new.id, Memo).priority == "紧急"


def test_stored_events_from_the_recorder_keep_the_state_as_bytes(app: Anxin, school: School) -> None:
    # given the school's events; when read raw through the library's recorder
    rows: list[StoredEvent] = list(app.recorder.select_events(UUID(school.student("2026001"))))
    # then the state is opaque bytes that start with our format marker
    assert len(rows) == 1 and isinstance(rows[0].state, bytes) and rows[0].state[:1] == b"\x01"
    assert app.mapper.to_domain_event(rows[0]).name == "张小明"
    assert ADMIN.staff_id == app.mapper.to_domain_event(rows[0]).actor
