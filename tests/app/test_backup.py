"""`anxin backup` and `anxin restore`, end to end, each command a real process.

The backup is taken while other processes write: one enrols students one transaction
at a time (numbered, so a consistent copy holds exactly a prefix of them), and on SQLite
a bulk roster import commits a few thousand at once (all or none of them). The copy is
restored into a new place, where every event decrypts and the audit trail verifies; it
holds no key material; and a master key that cannot open it is refused by key id before
anything is written. The same on PostgreSQL (pg_dump), skipped without a server.
"""

from __future__ import annotations

import base64
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import pytest
from cli_support import in_process
from conftest import PG_SKIP_REASON, PG_URL

from anxin.cli import CLI_ACTOR
from anxin.crypto import MasterKey, MasterKeyFile
from anxin.roster_import import import_roster
from anxin.service import Anxin
from anxin.storage import StoreConfig

HEADER = "student_no,name,gender,birth_date,grade,class,guardian_name,guardian_phone,tags"
BASE_SCHOOL, BULK_SCHOOL, WRITER_SCHOOL = "第一中学", "第二中学", "写入中学"
BASE_ROWS, BULK_ROWS = 1500, 3000

# One student per transaction, numbered; stops when the stop file appears.
WRITER = r"""
import sys
from datetime import date
from pathlib import Path
from anxin.cli import CLI_ACTOR
from anxin.service import open_app
stop = Path(sys.argv[1])
app = open_app()
sid = app.roster.school_id(sys.argv[2])
n = 0
while not stop.exists() and n < 20000:
    n += 1
    app.roster.enrol_student(CLI_ACTOR, school_id=sid, student_no=f"W{n:06d}", name=f"写入{n}号", gender="女",
                      birth_date=date(2013, 5, 6), grade="七年级", class_name="七年级3班", guardians=[], tags=[])
    print(n, flush=True)
app.close()
"""


def _rows(prefix: str, n: int) -> list[str]:
    return [
        f"{prefix}{i:05d},{prefix}生{i}号,男,2013-05-06,七年级,七年级{i % 4 + 1}班,家长{i},139{i:08d},"
        for i in range(1, n + 1)
    ]


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("ANXIN_")}


def _pg_exec(sql: str, url: str | None = None) -> None:
    import psycopg

    with psycopg.connect(url or PG_URL, autocommit=True) as conn:
        conn.execute(sql)


def _db_url(name: str) -> str:
    assert PG_URL
    return urlparse(PG_URL)._replace(path=f"/{name}").geturl()


@dataclass
class Site:
    """One store and how to run `anxin` against it."""

    kind: str
    home: Path
    data_dir: Path
    key_file: Path
    env: dict[str, str]
    schema: str | None = None
    databases: list[str] = field(default_factory=list)

    def run(
        self, *args: str, env: dict[str, str] | None = None, data_dir: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        argv = [*args]
        if self.kind == "sqlite" or data_dir is not None:
            argv += ["--data-dir", str(data_dir or self.data_dir)]
        r = in_process(argv, self.env | (env or {}), self.home)  # its entry point, in this process
        assert "Traceback" not in r.stderr, r.stderr
        return r

    def ok(self, *args: str, **kw: object) -> str:
        r = self.run(*args, **kw)  # type: ignore[arg-type]
        assert r.returncode == 0, f"anxin {' '.join(args)} -> {r.returncode}\n{r.stdout}\n{r.stderr}"
        return r.stdout

    def config(self) -> StoreConfig:
        return StoreConfig(url=PG_URL if self.kind == "postgres" else None, data_dir=self.data_dir, schema=self.schema)

    def key(self) -> MasterKey:
        return MasterKeyFile(self.key_file).load_all()[0]

    def secrets(self) -> list[bytes]:
        """Every form the master key and the audit signing key could take in a file."""
        out = []
        for k in MasterKeyFile(self.key_file).load_all():
            out += [k.key, k.encode().encode(), k.key.hex().encode()]
        audit_key = self.key_file.parent / "audit-signing.key"
        text = audit_key.read_text().strip()
        raw = base64.b64decode(text)
        out += [text.encode(), raw, raw.hex().encode()]
        return out

    def new_database(self) -> str:
        name = "anxin_restore_" + uuid.uuid4().hex[:10]
        _pg_exec(f"CREATE DATABASE {name}")
        self.databases.append(name)
        return _db_url(name)


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgres", id="postgres", marks=pytest.mark.skipif(not PG_URL, reason=PG_SKIP_REASON)),
    ]
)
def site(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Site]:
    """An initialised store: three schools, the first with a roster."""
    home = tmp_path / "home"
    home.mkdir()
    env = _clean_env()
    if request.param == "postgres":
        schema = "t_" + uuid.uuid4().hex[:12]
        _pg_exec(f"CREATE SCHEMA {schema}")
        key_file = home / "keys" / "master.key"
        assert PG_URL
        env |= {"ANXIN_DATABASE_URL": PG_URL, "ANXIN_DATABASE_SCHEMA": schema, "ANXIN_MASTER_KEY_FILE": str(key_file)}
        s = Site("postgres", home, home / "unused", key_file, env, schema)
    else:
        data_dir = home / "data"
        s = Site("sqlite", home, data_dir, data_dir / "master.key", env | {"ANXIN_DATA_DIR": str(data_dir)})
    try:
        s.ok("init")
        app = Anxin(s.config(), MasterKeyFile(s.key_file).load_all())
        try:
            ids = [app.roster.add_school(CLI_ACTOR, name) for name in (BASE_SCHOOL, BULK_SCHOOL, WRITER_SCHOOL)]
            import_roster(app, CLI_ACTOR, ids[0], "\n".join([HEADER, *_rows("A", BASE_ROWS)]) + "\n")
        finally:
            app.close()
        s.ok("audit", "checkpoint")  # a signed checkpoint: verify after restore needs the public key
        yield s
    finally:
        for name in s.databases:
            _pg_exec(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        if s.schema:
            _pg_exec(f"DROP SCHEMA {s.schema} CASCADE")


class Writer:
    """The enrolling process, and how many students it has seen committed."""

    def __init__(self, site: Site) -> None:
        self.stop_file = site.home / "stop-writer"
        self.log = site.home / "writer.log"
        with open(self.log, "w") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", WRITER, str(self.stop_file), WRITER_SCHOOL],
                cwd=site.home,
                env=site.env,
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
            )
        self.count = 0
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.count = int(line)

    def wait_for(self, n: int, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while self.count < n:
            assert self.proc.poll() is None, self.log.read_text()
            assert time.monotonic() < deadline, f"the writer wrote only {self.count}"
            time.sleep(0.05)

    def finish(self) -> None:
        self.stop_file.touch()
        self.proc.wait(timeout=120)
        self.thread.join(timeout=10)
        assert self.proc.returncode == 0, self.log.read_text()


def _listing(site: Site, school: str, **kw: object) -> list[tuple[str, ...]]:
    out = site.ok("roster", "list", "--school", school, **kw)
    return [tuple(p.strip() for p in line.split("\t")) for line in out.splitlines()]


def _backup_while_writing(site: Site, out: Path) -> tuple[int, int, str]:
    """`anxin backup` while the enrolling writer runs (and, on SQLite, a bulk import):
    the writer's count just before and just after, and the backup's output."""
    writer = Writer(site)
    importer = reader = None
    try:
        writer.wait_for(30)
        if site.kind == "sqlite":
            csv = site.home / "bulk.csv"
            csv.write_text("\n".join([HEADER, *_rows("B", BULK_ROWS)]) + "\n", encoding="utf-8")
            importer = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "anxin.cli",
                    "roster",
                    "import",
                    str(csv),
                    "--school",
                    BULK_SCHOOL,
                    "--data-dir",
                    str(site.data_dir),
                ],
                cwd=site.home,
                env=site.env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            time.sleep(0.5)  # the import is reading and encrypting; its transaction is on its way
            # A reader holding an old snapshot (as a long page read in the server would): no
            # checkpoint can move later commits into the main file, so from here on they are in
            # the WAL only, and a copy that missed the WAL would miss them.
            reader = sqlite3.connect(site.data_dir / "anxin.db", isolation_level=None)
            reader.execute("BEGIN")
            reader.execute("SELECT COUNT(*) FROM stored_events").fetchone()
            writer.wait_for(writer.count + 3)
        before = writer.count
        printed = site.ok("backup", "--out", str(out))
        after = writer.count
        assert writer.proc.poll() is None, "the writer must still be running when the backup ends"
        assert after > before, "writes must have gone on during the backup"
        writer.wait_for(after + 5)  # and after it
    finally:
        if reader is not None:
            reader.close()
        writer.finish()
        if importer is not None:
            _, err = importer.communicate(timeout=240)
            assert importer.returncode == 0, err
    return before, after, printed


def _assert_no_key_material(site: Site, *blobs: bytes) -> None:
    for secret in site.secrets():
        for blob in blobs:
            assert secret not in blob


def _pg_dump_text(path: Path) -> bytes:
    """The dump decompressed (pg_dump's custom format compresses its data)."""
    r = subprocess.run(["pg_restore", "--file=-", str(path)], capture_output=True, check=True)
    return r.stdout


def test_a_backup_taken_while_processes_write_restores_into_a_new_place_that_verifies_and_decrypts(
    site: Site, tmp_path: Path
) -> None:
    out_dir = tmp_path / "backups"
    out_dir.mkdir()
    out = out_dir / "anxin-backup.bin"
    key_id = site.key().kek_id

    before, after, printed = _backup_while_writing(site, out)

    # The backup: private, complete, no temporary file left, the key id printed.
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    extra = {p.name for p in out_dir.iterdir()} - {out.name, f"{out.name}.manifest.json"}
    assert not extra, extra
    assert key_id in printed and "不含主密钥" in printed
    raw = out.read_bytes()
    blobs = [raw]
    if site.kind == "postgres":
        assert raw.startswith(b"PGDMP")
        blobs += [_pg_dump_text(out), (out.parent / f"{out.name}.manifest.json").read_bytes()]
    else:
        assert raw.startswith(b"SQLite format 3\x00")
    _assert_no_key_material(site, *blobs)

    # Restored into a new place, with the master key given by the environment.
    new = tmp_path / "restored"
    env = {"ANXIN_MASTER_KEY_FILE": str(site.key_file)}
    target: dict[str, str] = {}
    if site.kind == "postgres":
        url = site.new_database()
        restored = site.ok("restore", str(out), "--database-url", url, env=env, data_dir=new)
        target = {"ANXIN_DATABASE_URL": url, "ANXIN_DATABASE_SCHEMA": str(site.schema)}
    else:
        env |= {"ANXIN_DATA_DIR": str(new)}
        restored = site.ok("restore", str(out), env=env, data_dir=new)
        assert {p.name for p in new.iterdir()} >= {"anxin.db"}
        _assert_no_key_material(site, *(p.read_bytes() for p in new.glob("anxin.db*")))
    assert key_id in restored and "审计记录完整" in restored

    def on_restored(*args: str) -> str:
        return site.ok(*args, env=env | target, data_dir=new if site.kind == "sqlite" else None)

    assert "审计记录完整" in on_restored("audit", "verify")
    # Consistent: the one-at-a-time writer's students are exactly a prefix 1..k, with k
    # between what it had committed when the backup began and ended; the bulk import is
    # there whole or not at all; everything committed before is there; names decrypt.
    written = _listing(site, WRITER_SCHOOL, env=env | target, data_dir=new if site.kind == "sqlite" else None)
    k = len(written)
    assert before <= k <= after + 1, (before, k, after)
    assert written == [(f"W{n:06d}", f"写入{n}号", "七年级3班") for n in range(1, k + 1)]
    where = {"env": env | target, "data_dir": new if site.kind == "sqlite" else None}
    base = _listing(site, BASE_SCHOOL, **where)
    assert len(base) == BASE_ROWS and ("A00007", "A生7号", "七年级4班") in base
    bulk = _listing(site, BULK_SCHOOL, **where)
    assert len(bulk) in (0, BULK_ROWS)
    # Every event decrypts (read here, in this process, with the key).
    config = (
        StoreConfig(url=None, data_dir=new)
        if site.kind == "sqlite"
        else StoreConfig(url=target["ANXIN_DATABASE_URL"], data_dir=new, schema=site.schema)
    )
    app = Anxin(config, MasterKeyFile(site.key_file).load_all())
    try:
        events = list(app.decrypt_log())
        assert events and all(e is not None for _, e in events)
        stored = app.db.fetchone(f"SELECT COUNT(*) FROM {{t}}{app.recorder.events_table_name}")
        assert stored is not None and len(events) == stored[0]
    finally:
        app.close()


def test_restore_refuses_a_key_that_cannot_open_the_backup_naming_the_key_id_it_needs(
    site: Site, tmp_path: Path
) -> None:
    out = tmp_path / "b.bin"
    site.ok("backup", "--out", str(out))
    needed = site.key().kek_id
    wrong = MasterKey.generate()

    # A wrong key file copied into the new folder (the way a person would): refused, by id,
    # and nothing restored beside it.
    new = tmp_path / "new"
    new.mkdir()
    (new / "master.key").write_text(wrong.encode() + "\n")
    if site.kind == "postgres":
        url = site.new_database()
        r = site.run(
            "restore",
            str(out),
            "--database-url",
            url,
            env={"ANXIN_MASTER_KEY_FILE": str(new / "master.key")},
            data_dir=new,
        )
        import psycopg

        with psycopg.connect(url) as conn:
            assert (
                conn.execute("SELECT COUNT(*) FROM pg_namespace WHERE nspname = %s", (site.schema,)).fetchone()[0] == 0
            )
    else:
        r = site.run("restore", str(out), env={"ANXIN_DATA_DIR": str(new)}, data_dir=new)
    assert r.returncode != 0
    assert needed in r.stderr and wrong.kek_id in r.stderr and "未写入任何数据" in r.stderr
    assert sorted(p.name for p in new.iterdir()) == ["master.key"]

    # No key at all: refused, naming the key id too.
    empty = tmp_path / "empty"
    if site.kind == "postgres":
        r = site.run(
            "restore", str(out), "--database-url", url, env={"ANXIN_MASTER_KEY_FILE": str(empty / "k")}, data_dir=empty
        )
    else:
        r = site.run("restore", str(out), env={"ANXIN_DATA_DIR": str(empty)}, data_dir=empty)
    assert r.returncode != 0 and needed in r.stderr

    # The right key, copied in: accepted.
    shutil.copy(site.key_file, new / "master.key")
    if site.kind == "postgres":
        site.ok(
            "restore",
            str(out),
            "--database-url",
            url,
            env={"ANXIN_MASTER_KEY_FILE": str(new / "master.key")},
            data_dir=new,
        )
    else:
        site.ok("restore", str(out), env={"ANXIN_DATA_DIR": str(new)}, data_dir=new)


def test_backup_never_overwrites_and_restore_never_writes_over_a_store(site: Site, tmp_path: Path) -> None:
    out = tmp_path / "b.bin"
    out.write_bytes(b"an older backup")
    r = site.run("backup", "--out", str(out))
    assert r.returncode != 0 and "拒绝覆盖" in r.stderr
    assert out.read_bytes() == b"an older backup"
    out.unlink()
    site.ok("backup", "--out", str(out))

    # A truncated backup: a message, no traceback (Site.run), nothing restored.
    cut = tmp_path / "cut.bin"
    cut.write_bytes(out.read_bytes()[: out.stat().st_size // 2])
    somewhere = tmp_path / "somewhere"
    if site.kind == "postgres":
        r = site.run(
            "restore",
            str(cut),
            "--database-url",
            site.new_database(),
            env={"ANXIN_MASTER_KEY_FILE": str(site.key_file)},
            data_dir=somewhere,
        )
    else:
        r = site.run("restore", str(cut), env={"ANXIN_MASTER_KEY_FILE": str(site.key_file)}, data_dir=somewhere)
    assert r.returncode != 0 and r.stderr.startswith("错误：")
    assert not somewhere.exists() or not any(somewhere.iterdir())

    if site.kind == "postgres":  # the store's own database and schema: not empty
        r = site.run(
            "restore",
            str(out),
            "--database-url",
            str(PG_URL),
            env={"ANXIN_MASTER_KEY_FILE": str(site.key_file)},
            data_dir=tmp_path / "x",
        )
        assert r.returncode != 0 and "不是空的" in r.stderr
    else:
        r = site.run("restore", str(out), env={"ANXIN_MASTER_KEY_FILE": str(site.key_file)})  # the live folder
        assert r.returncode != 0 and "不是空的" in r.stderr
        busy = tmp_path / "busy"
        busy.mkdir()
        (busy / "notes.txt").write_text("x")
        r = site.run("restore", str(out), env={"ANXIN_MASTER_KEY_FILE": str(site.key_file)}, data_dir=busy)
        assert r.returncode != 0 and "不是空的" in r.stderr
        assert sorted(p.name for p in busy.iterdir()) == ["notes.txt"]


def test_a_backup_from_before_a_shred_brings_the_student_back(site: Site, tmp_path: Path) -> None:
    """Why backups must expire with the retention policy (docs/operations.md)."""
    before = tmp_path / "before.bin"
    site.ok("backup", "--out", str(before))
    app = Anxin(site.config(), MasterKeyFile(site.key_file).load_all())
    try:
        sid = app.roster.student_id_for(app.roster.school_id(BASE_SCHOOL), "A00001")
        wrapped = app.db.fetch_key(sid.hex)
        assert wrapped is not None and wrapped[0]
        app.erasure.shred(CLI_ACTOR, str(sid), "保存期限届满")
    finally:
        app.close()
    assert ("A00001", "A生1号", "七年级2班") not in _listing(site, BASE_SCHOOL)

    env = {"ANXIN_MASTER_KEY_FILE": str(site.key_file)}
    old = tmp_path / "old"
    if site.kind == "postgres":
        url = site.new_database()
        site.ok("restore", str(before), "--database-url", url, env=env, data_dir=old)
        listed = _listing(site, BASE_SCHOOL, env=env | {"ANXIN_DATABASE_URL": url})
    else:
        site.ok("restore", str(before), env=env, data_dir=old)
        listed = _listing(site, BASE_SCHOOL, env=env, data_dir=old)
    assert ("A00001", "A生1号", "七年级2班") in listed

    if site.kind == "sqlite":
        # A backup after the shred holds no trace of the destroyed key, not even in free
        # pages (VACUUM INTO writes live rows only), though the live file may still.
        after = tmp_path / "after.db"
        site.ok("backup", "--out", str(after))
        assert wrapped[0] not in after.read_bytes()
        with sqlite3.connect(after) as conn:
            assert conn.execute("SELECT wrapped FROM anxin_keys WHERE stream_id = ?", (sid.hex,)).fetchone() == (None,)


def test_after_a_rotation_an_older_backup_needs_the_key_it_was_taken_with(site: Site, tmp_path: Path) -> None:
    """Keys go with backups by id: the key file of the day of the backup, kept aside."""
    out = tmp_path / "b.bin"
    site.ok("backup", "--out", str(out))
    kept = tmp_path / "kept" / "master.key"  # the key file archived with the backup
    kept.parent.mkdir()
    shutil.copy(site.key_file, kept)
    old_id = site.key().kek_id
    site.ok("keys", "rotate")
    new_id = site.key().kek_id
    assert new_id != old_id and [k.kek_id for k in MasterKeyFile(site.key_file).load_all()] == [new_id]

    def restore(key_file: Path, where: Path) -> subprocess.CompletedProcess[str]:
        env = {"ANXIN_MASTER_KEY_FILE": str(key_file)}
        if site.kind == "postgres":
            return site.run("restore", str(out), "--database-url", site.new_database(), env=env, data_dir=where)
        return site.run("restore", str(out), env=env, data_dir=where)

    r = restore(site.key_file, tmp_path / "with-today")
    assert r.returncode != 0 and old_id in r.stderr and new_id in r.stderr
    r = restore(kept, tmp_path / "with-kept")
    assert r.returncode == 0, r.stderr
    assert old_id in r.stdout and "审计记录完整" in r.stdout
