"""Master-key rotation with everything running, a kill at every step, and the key check
at open: the four ways issue 13 found to strand the store, each shown not to.

Every test runs on a real SQLite file and on a real PostgreSQL schema. The processes
that run beside the rotation (a server, an import) are real processes of their own,
holding the key file as an operator's would.
"""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest
from browser_support import free_port
from conftest import ADMIN, PG_URL, Clock, Store, make_school

from anxin import audit, keyring
from anxin.crypto import KeyError_, MasterKey, MasterKeyFile, MasterKeyNotHeld
from anxin.passwords import hash_password
from anxin.service import Anxin
from domain.common import Actor, Role

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "rotation-pass-2026"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


# -- helpers --------------------------------------------------------------------------------
def key_file(store: Store) -> MasterKeyFile:
    """The store's key in a key file, as `anxin init` leaves it."""
    kf = MasterKeyFile(store.data_dir / "master.key")
    if not kf.exists():
        kf.path.write_text(store.master_key.encode() + "\n")
        kf.path.chmod(0o600)
    return kf


def env_of(store: Store, kf: MasterKeyFile) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANXIN_")}
    env["ANXIN_MASTER_KEY_FILE"] = str(kf.path)
    env["ANXIN_DATA_DIR"] = str(store.data_dir)
    if store.kind == "postgres":
        assert PG_URL and store.schema
        env["ANXIN_DATABASE_URL"] = PG_URL
        env["ANXIN_DATABASE_SCHEMA"] = store.schema
    return env


def cli(store: Store, kf: MasterKeyFile, *args: str) -> tuple[int, str, str]:
    """`anxin ARGS` in a process of its own, against this store and key file."""
    r = subprocess.run(
        [sys.executable, "-m", "anxin.cli", *args],
        cwd=ROOT,
        env=env_of(store, kf),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert "Traceback" not in r.stderr, r.stderr
    return r.returncode, r.stdout, r.stderr


def open_with_file(store: Store, kf: MasterKeyFile, clock: Clock | None = None) -> Anxin:
    """An instance that holds what the key file holds now, and reads it again when the
    store names a key it does not hold (as `open_app` does)."""
    app = Anxin(store.config, kf.load_all(), clock=clock, key_source=kf.load_all)
    store.apps.append(app)
    return app


@contextmanager
def fresh(store: Store, kf: MasterKeyFile) -> Iterator[Anxin]:
    """A short-lived instance that holds the key file (closed at once: PostgreSQL's
    connections are few, and a test opens many of these)."""
    app = Anxin(store.config, kf.load_all(), key_source=kf.load_all)
    try:
        yield app
    finally:
        app.close()


def everything_decrypts(store: Store, kf: MasterKeyFile) -> int:
    """A fresh instance with the key file alone reads every event of every live stream,
    and the trail verifies. The number of events read."""
    with fresh(store, kf) as app:
        app.keystore.preload()
        n = sum(1 for _, e in app.decrypt_log() if e is not None)
        report = audit.verify(app)
    assert report.ok, report.summary()
    return n


def settled(store: Store, kf: MasterKeyFile) -> None:
    """No rotation left half done: one current key, every live data key wrapped by it,
    no previous key in the ring, and the key file holding the current key alone."""
    with fresh(store, kf) as app:
        st = keyring.status(app, kf)
        per_kek = app.db.keys_per_kek()
    assert not st.in_progress, st
    assert set(per_kek) == {st.current}
    assert [k["state"] for k in st.keys if k["id"] != st.current] == ["retired"] * (len(st.keys) - 1)
    assert [k.kek_id for k in kf.load_all()] == [st.current]


def all_rows(store: Store, app: Anxin) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table of the store, to show that nothing was written."""
    if store.kind == "postgres":
        import psycopg

        assert PG_URL
        with psycopg.connect(PG_URL) as conn:
            tables = [
                r[0]
                for r in conn.execute(
                    "SELECT table_name FROM information_schema.tables WHERE table_schema = %s AND table_type = 'BASE TABLE'",
                    (store.schema,),
                ).fetchall()
            ]
            return {
                t: sorted(map(repr, conn.execute(f"SELECT * FROM {store.schema}.{t}").fetchall()))
                for t in sorted(tables)
            }
    with sqlite3.connect(store.config.sqlite_path) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {t: sorted(map(repr, conn.execute(f'SELECT * FROM "{t}"').fetchall())) for t in sorted(tables)}


def enrol(app: Anxin, school_id: str, no: str) -> str:
    return app.roster.enrol_student(
        ADMIN,
        school_id=school_id,
        student_no=no,
        name=f"学生{no}",
        gender="女",
        birth_date=date(2013, 2, 3),
        grade="七年级",
        class_name="七年级1班",
    )


# -- a rotation beside a running server -------------------------------------------------------
class Server:
    def __init__(self, store: Store, kf: MasterKeyFile, log: Path) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = log
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "anxin.cli", "serve", "--port", str(self.port), "--workers", "2"],
                cwd=ROOT,
                env=env_of(store, kf),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 60
        while len(set(re.findall(r"serving in process (\d+)", log.read_text()))) < 2:
            assert self.proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def login(base: str, username: str) -> httpx.Client:
    c = httpx.Client(base_url=base, timeout=60, follow_redirects=False)
    form = CSRF.search(c.get("/login").text)  # the login form's token, bound to its cookie
    assert form, "no CSRF token on the login page"
    r = c.post("/login", data={"username": username, "password": PASSWORD, "next": "/", "csrf_token": form.group(1)})
    assert r.status_code == 303, r.text
    return c


def report_case(c: httpx.Client, n: int) -> int:
    """A teacher reports an incident: a new stream, so a new data key, wrapped by the server."""
    token = CSRF.search(c.get("/cases/new").text)
    assert token, "no CSRF token on the report form"
    r = c.post(
        "/cases/new",
        data={
            "csrf_token": token.group(1),
            "channel": "teacher",
            "occurred_at": "2026-10-12T10:00",
            "place": f"操场{n}",
            "forms": "verbal",
            "narrative": f"第{n}次报告",
            "student_no_0": "2026001",
            "part_0": "targeted",
        },
    )
    return r.status_code


def test_a_rotation_while_the_server_writes_strands_nothing(store: Store, clock: Clock, tmp_path: Path) -> None:
    # given a school, a teacher who can log in, and the store's key in a key file
    kf = key_file(store)
    app = open_with_file(store, kf)
    school = make_school(app)
    app.accounts.set_password_hash(school.teacher.staff_id, hash_password(PASSWORD))
    username = app.db.fetchone("SELECT username FROM {t}anxin_staff WHERE staff_id = ?", (school.teacher.staff_id,))[0]
    old = app.keystore.master.kek_id
    app.close()
    log = tmp_path / "serve.log"
    server = Server(store, kf, log)
    statuses: list[int] = []
    stop = threading.Event()
    rotated = threading.Event()
    after_rotation: list[int] = []

    def write() -> None:
        c = login(server.base, username)
        n = 0
        while not stop.is_set() and n < 400:
            n += 1
            status = report_case(c, n)
            statuses.append(status)
            if rotated.is_set():
                after_rotation.append(status)
                if len(after_rotation) >= 6:
                    return

    try:
        writer = threading.Thread(target=write)
        writer.start()
        while len(statuses) < 3:
            assert writer.is_alive(), statuses
            time.sleep(0.05)
        # when the master key is rotated by another process while the server keeps writing
        code, out, err = cli(store, kf, "keys", "rotate")
        assert code == 0, out + err
        rotated.set()
        writer.join(timeout=240)
        stop.set()
        # then every write the server took, before, during and after, was stored
        assert len(after_rotation) >= 6, statuses
        assert set(statuses) == {303}, (statuses, log.read_text()[-3000:])
    finally:
        stop.set()
        server.stop()

    # and after a restart with the new key file alone, every stream decrypts and the trail verifies
    assert [k.kek_id for k in kf.load_all()] != [old]
    settled(store, kf)
    assert everything_decrypts(store, kf) > 0
    server = Server(store, kf, tmp_path / "serve-again.log")
    try:
        c = login(server.base, username)
        assert report_case(c, 999) == 303
        assert c.get("/").status_code == 200
    finally:
        server.stop()
    settled(store, kf)
    with fresh(store, kf) as app:
        cases = app.db.fetch("SELECT COUNT(*) FROM {t}anxin_directory WHERE kind = 'case'")[0][0]
    assert cases == len(statuses) + 1


def test_a_rotation_during_a_long_import_strands_nothing(store: Store, tmp_path: Path) -> None:
    # given a school and a roster of 3,000 students to import
    kf = key_file(store)
    app = open_with_file(store, kf)
    app.roster.add_school(ADMIN, "第一中学")
    app.close()
    rows = ["student_no,name,gender,birth_date,grade,class,guardian_name,guardian_phone,tags"]
    rows += [f"R{i:05d},学生{i},男,2013-05-06,七年级,七年级{i % 8 + 1}班,家长,13912345678," for i in range(3000)]
    csv = tmp_path / "roster.csv"
    csv.write_text("\n".join(rows) + "\n", encoding="utf-8")

    # when the import runs in its own process and the key is rotated 0.3 s after it starts
    importer = subprocess.Popen(
        [sys.executable, "-m", "anxin.cli", "roster", "import", str(csv), "--school", "第一中学"],
        cwd=ROOT,
        env=env_of(store, kf),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(0.3)
    code, out, err = cli(store, kf, "keys", "rotate")
    i_out, i_err = importer.communicate(timeout=240)

    # then both finished, and every one of the 3,000 students is readable with the new key file alone
    assert code == 0, out + err
    assert importer.returncode == 0, i_out + i_err
    settled(store, kf)
    after = open_with_file(store, kf)
    sid = after.roster.school_id("第一中学")
    reader = Actor("principal-reader", frozenset({Role.PRINCIPAL}), school_id=sid)
    names = [r.name for r in after.roster.list_students(reader, sid)]
    assert len(names) == 3000 and "学生2999" in names
    assert everything_decrypts(store, kf) >= 3000


# -- a kill at every step boundary -------------------------------------------------------------
KILL_AT = ["prepared", "switched", "rewrapped-batch", "rewrapped", "retired", "pruned"]
ROTATE_AND_DIE = """
import os, signal, sys
from anxin import keyring
from anxin.cli import CLI_ACTOR
from anxin.service import master_key_file, open_app
app = open_app()
target = sys.argv[1]
def step(name):
    if name == target:
        os.kill(os.getpid(), signal.SIGKILL)
keyring.rotate(app, CLI_ACTOR, key_file=master_key_file(app.config), on_step=step, batch=3)
"""


@pytest.mark.parametrize("kill_at", KILL_AT)
def test_a_rotation_killed_at_any_step_is_finished_by_the_next_and_never_strands_data(
    store: Store, clock: Clock, kill_at: str, run_cli: Any
) -> None:
    # given a school (a dozen data keys, so the re-wrap takes several batches of 3)
    kf = key_file(store)
    app = open_with_file(store, kf, clock)
    school = make_school(app)
    app.erasure.shred(ADMIN, school.student("2026004"), "保存期限届满")
    before = everything_decrypts(store, kf)
    old = app.keystore.master.kek_id

    # when a rotation is killed (SIGKILL) at this step boundary
    r = subprocess.run(
        [sys.executable, "-c", ROTATE_AND_DIE, kill_at],
        cwd=ROOT,
        env=env_of(store, kf),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == -signal.SIGKILL, r.stderr

    # then, as it was left, every record still reads, and the running instance keeps writing
    assert everything_decrypts(store, kf) == before
    sid = enrol(app, school.id, "2026101")
    with fresh(store, kf) as other:
        assert other.student_ref(sid).name == "学生2026101"
    # and `keys status` says whether a rotation is left to finish
    code, out, _ = run_cli("keys", "status")
    assert code == (0 if kill_at == "pruned" else 3), out
    assert ("尚未完成" in out) == (kill_at != "pruned")

    # when the next `anxin keys rotate` runs, it finishes that rotation (no second new key)
    code, out, err = run_cli("keys", "rotate")
    assert code == 0, out + err

    # then the store is settled under one key, nothing lost, and the running instance still writes
    settled(store, kf)
    with fresh(store, kf) as other:
        ring = other.db.keyring()
    assert len(ring) == (3 if kill_at == "pruned" else 2), ring  # after "pruned" it was complete: a new one
    assert old in {r[0] for r in ring if r[1] == "retired"}
    sid2 = enrol(app, school.id, "2026102")
    assert everything_decrypts(store, kf) == before + 2
    with fresh(store, kf) as other:
        assert other.student_ref(sid2).name == "学生2026102"


# -- the key check at open ------------------------------------------------------------------------
def test_a_wrong_master_key_is_refused_at_open_before_anything_is_written(store: Store, clock: Clock) -> None:
    # given a store with data under its key
    app = store.open(clock)
    school = make_school(app)
    expected = app.keystore.master.kek_id
    app.close()
    store.apps.clear()
    probe = store.open(clock)
    before = all_rows(store, probe)
    probe.close()
    store.apps.clear()

    # when it is opened with another valid key
    wrong = MasterKey.generate()
    with pytest.raises(MasterKeyNotHeld) as refused:
        Anxin(store.config, [wrong], clock=clock)

    # then it is refused with a message naming the key id the store expects, and nothing was written
    assert expected in str(refused.value) and wrong.kek_id in str(refused.value)
    again = store.open(clock)
    assert all_rows(store, again) == before
    assert again.roster.list_students(school.principal, school.id)[0].name == "张小明"


def test_the_command_line_with_a_wrong_key_file_writes_nothing_and_names_the_key(store: Store) -> None:
    # given a store made through its key file
    kf = key_file(store)
    app = open_with_file(store, kf)
    app.roster.add_school(ADMIN, "第一中学")
    expected = app.keystore.master.kek_id
    before = all_rows(store, app)
    app.close()
    # when the key file is replaced by another valid key and an administrator adds a school
    wrong = MasterKeyFile(store.data_dir / "other.key")
    other = wrong.create()
    code, out, err = cli(store, wrong, "school", "add", "第二中学")
    # then it is refused, names both keys, and the store is as it was
    assert code != 0 and expected in err and other.kek_id in err, out + err
    after = open_with_file(store, kf)
    assert all_rows(store, after) == before


def test_a_backup_from_before_a_rotation_is_refused_with_todays_key(store: Store, clock: Clock) -> None:
    """A restored database whose data keys are wrapped by the retired key: today's key
    opens none of it, so it is refused at open (naming the key it needs), not written to."""
    kf = key_file(store)
    app = open_with_file(store, kf, clock)
    make_school(app)
    old = app.keystore.master.kek_id
    app.close()
    # a "backup": the key rows and the ring as they were, put back after the rotation
    rotated = open_with_file(store, kf, clock)
    saved_keys = rotated.db.fetch("SELECT stream_id, wrapped, kek_id FROM {t}anxin_keys")
    saved_ring = rotated.db.fetch("SELECT kek_id, state, added_at, changed_at FROM {t}anxin_keyring")
    rotated.rotate_master_key(ADMIN, key_file=kf)
    with rotated.db.transaction() as c:
        c.execute(rotated.db.q("DELETE FROM {t}anxin_keys"))
        c.execute(rotated.db.q("DELETE FROM {t}anxin_keyring"))
        c.executemany(
            rotated.db.q("INSERT INTO {t}anxin_keys (stream_id, wrapped, kek_id) VALUES (?, ?, ?)"), saved_keys
        )
        c.executemany(
            rotated.db.q("INSERT INTO {t}anxin_keyring (kek_id, state, added_at, changed_at) VALUES (?, ?, ?, ?)"),
            saved_ring,
        )
    with pytest.raises(MasterKeyNotHeld, match=old):
        Anxin(store.config, kf.load_all(), clock=clock, key_source=kf.load_all)


def test_a_process_without_the_new_key_refuses_writes_by_name_then_follows_without_a_restart(
    store: Store, clock: Clock, tmp_path: Path
) -> None:
    """Two hosts, each with its own copy of the key file: host B rotates; host A, whose file
    has not been updated, refuses to write a new stream (nothing written); once its file is
    updated, it writes and reads without a restart."""
    kf = key_file(store)
    host_a_file = MasterKeyFile(tmp_path / "host-a.key")
    host_a_file.path.write_text(kf.path.read_text())
    host_a = Anxin(store.config, host_a_file.load_all(), clock=clock, key_source=host_a_file.load_all)
    store.apps.append(host_a)
    school = make_school(host_a)
    host_b = open_with_file(store, kf, clock)

    # when host B rotates (its key file gets the new key, then loses the old one)
    host_b.rotate_master_key(ADMIN, key_file=kf)
    new = host_b.keystore.master.kek_id

    # then host A cannot wrap a new stream's key, says which key it lacks, and writes nothing
    students_before = host_a.db.fetch("SELECT COUNT(*) FROM {t}anxin_directory")
    with pytest.raises(KeyError_, match=new):
        enrol(host_a, school.id, "2026201")
    assert host_a.db.fetch("SELECT COUNT(*) FROM {t}anxin_directory") == students_before
    # nor read a stream it had not read before (its key is now wrapped by the new key)
    with pytest.raises(KeyError_, match=new):
        host_a.keystore.forget(host_a.roster.student_id_for(school.id, "2026002").hex)
        host_a.roster.get_student(school.principal, school.student("2026002"))

    # when host A's key file is updated, it follows without a restart
    host_a_file.path.write_text(kf.path.read_text())
    sid = enrol(host_a, school.id, "2026201")
    assert host_a.roster.get_student(school.principal, school.student("2026002")).name == "李小红"
    assert host_b.student_ref(sid).name == "学生2026201"
    assert host_a.db.fetch_key(host_a.roster.student_id_for(school.id, "2026201").hex)[1] == new
