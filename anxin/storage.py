"""Where Anxin keeps things: the library's own SQLite or PostgreSQL recorders, plus a
few tables of ids (never names or text) that must commit with the events.

The recorders are the library's, extended at one seam (`_insert_events`, which both
run inside the events' transaction) to also write the wrapped data keys of new
streams and the application's directory rows. So a key is stored atomically with its
stream's first event, and the directory can never disagree with the events. Every
event's audit-trail entry (anxin.audit) is appended at the same seam.
"""

from __future__ import annotations

import contextvars
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from eventsourcing.persistence import InterfaceError, OperationalError, StoredEvent
from eventsourcing.postgres import PostgresAggregateRecorder, PostgresApplicationRecorder
from eventsourcing.sqlite import SQLiteApplicationRecorder
from eventsourcing.utils import retry

from anxin import audit as audit_trail
from anxin import numbers as record_numbers
from anxin.crypto import KeyError_, KeyStore, stream_key
from anxin.notify import outbox

SIDE_TABLES = {
    "anxin_keys": ("stream_id TEXT PRIMARY KEY, wrapped {blob}, kek_id TEXT NOT NULL, shredded_at TEXT"),
    # The master keys the store knows, by id (never the keys): exactly one is `current`
    # (every new data key is wrapped by it), `previous` ones still wrap some data keys
    # during a rotation, `retired` ones wrap none. See anxin.keyring.
    "anxin_keyring": "kek_id TEXT PRIMARY KEY, state TEXT NOT NULL, added_at TEXT NOT NULL, changed_at TEXT",
    # Streams set aside because an event or their key failed authentication (anxin.quarantine):
    # ids and codes only.
    "anxin_quarantine": (
        "stream_id TEXT PRIMARY KEY, kind TEXT, school_id TEXT, version INTEGER NOT NULL, "
        "failed TEXT NOT NULL, found_at TEXT NOT NULL"
    ),
    # What the gate decides on: ids, school, class, kind, owner. No names, no text.
    "anxin_directory": (
        "stream_id TEXT PRIMARY KEY, kind TEXT NOT NULL, school_id TEXT, class_name TEXT, "
        "owner_id TEXT, subject_id TEXT, status TEXT, erased INTEGER NOT NULL DEFAULT 0"
    ),
    "anxin_links": (
        "stream_id TEXT NOT NULL, student_id TEXT NOT NULL, part TEXT NOT NULL, "
        "PRIMARY KEY (stream_id, student_id, part)"
    ),
    # Staff members with a part on a stream, and marks about it, that the gate decides on:
    # ids and codes only. A support file's `escalated` (who escalated the check-in concern
    # that opened it), `person` (its one-to-one responsible person, 一对一包联人) and `crisis`
    # (staff_id '': a crisis is open on it, so the class teachers of the student's class
    # need to know its status). Written with the directory row (Core._directory_statements).
    "anxin_stream_staff": (
        "stream_id TEXT NOT NULL, part TEXT NOT NULL, staff_id TEXT NOT NULL, PRIMARY KEY (stream_id, part, staff_id)"
    ),
    # The district's registry of agencies referrals go to (anxin.commands.agencies): ids, a kind
    # code and the institution's name (institutions are not personal data). Never deleted.
    "anxin_agencies": (
        "agency_id TEXT PRIMARY KEY, district TEXT NOT NULL, kind TEXT NOT NULL, name TEXT NOT NULL, "
        "active INTEGER NOT NULL DEFAULT 1, changed_at TEXT NOT NULL, UNIQUE (district, name)"
    ),
    "anxin_schools": ("school_id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, district TEXT NOT NULL"),
    "anxin_staff": (
        "staff_id TEXT PRIMARY KEY, username TEXT NOT NULL UNIQUE, school_id TEXT, "
        "roles TEXT NOT NULL, classes TEXT NOT NULL, district TEXT NOT NULL, "
        "password_hash TEXT, token_hash TEXT, active INTEGER NOT NULL DEFAULT 1"
    ),
    # Grants of roles that wait for a second person (domain.roster.SECOND_PERSON_ROLES),
    # as the approvers' list reads them: ids and role codes; the events are the record.
    "anxin_role_grants": (
        "request_id TEXT PRIMARY KEY, staff_id TEXT NOT NULL, school_id TEXT, district TEXT NOT NULL, "
        "roles TEXT NOT NULL, added TEXT NOT NULL, requested_by TEXT NOT NULL, requested_at TEXT NOT NULL, "
        "state TEXT NOT NULL"
    ),
    # One-time set-up codes of accounts an administrator created (anxin.accounts): only the
    # code's SHA-256; the person chooses their password with it, once, before it expires.
    "anxin_setup_codes": (
        "code_hash TEXT PRIMARY KEY, staff_id TEXT NOT NULL, created_at TEXT NOT NULL, "
        "expires_at TEXT NOT NULL, used_at TEXT"
    ),
    # API tokens, each issued by its holder for themselves (anxin.accounts): the SHA-256,
    # a scope ("read" or "write") and an expiry; revoked by the holder or a password change.
    "anxin_personal_tokens": (
        "token_hash TEXT PRIMARY KEY, staff_id TEXT NOT NULL, label TEXT NOT NULL, scope TEXT NOT NULL, "
        "created_at TEXT NOT NULL, expires_at TEXT NOT NULL, revoked_at TEXT"
    ),
    # Two-step verification (anxin.two_step): a confirmed enrolment's authenticator secret,
    # sealed under a named key and bound to its account, and the last time step a code was
    # accepted for (a code is never accepted twice); recovery codes as keyed hashes only.
    "anxin_two_step": "staff_id TEXT PRIMARY KEY, sealed {blob} NOT NULL, enrolled_at TEXT NOT NULL, last_step {int8}",
    "anxin_two_step_recovery": "code_hash TEXT PRIMARY KEY, staff_id TEXT NOT NULL, used_at TEXT",
    # Settings an administrator turns on for a school (or for the district's own accounts,
    # scope "district:<name>"): codes only, e.g. two_step_required = "1". Each change is an
    # entry of the audit trail.
    "anxin_school_settings": (
        "scope TEXT NOT NULL, setting TEXT NOT NULL, value TEXT NOT NULL, changed_at TEXT NOT NULL, "
        "PRIMARY KEY (scope, setting)"
    ),
    # The number people read and type of every case, file and pairing (anxin.numbers:
    # QL-2026-0003), per kind, school and year, allocated with the stream's first event.
    record_numbers.TABLE: record_numbers.COLUMNS,
    record_numbers.COUNTERS_TABLE: record_numbers.COUNTERS_COLUMNS,
    # The audit trail (anxin.audit): append-only, hash-chained; ids and hashes only.
    # Access decisions are its `access` entries (read them through the anxin_access view).
    audit_trail.TABLE: audit_trail.TABLE_COLUMNS,
    audit_trail.META_TABLE: audit_trail.META_COLUMNS,
    # Notifications (anxin.notify): notices written with their events, the inbox, messages
    # to send, each person's settings, schools' group bots (sealed). Ids and codes only.
    **outbox.TABLES,
    # Each break-glass use's review state, by its access entry's seq (anxin.audit.reviews).
    audit_trail.REVIEWS_TABLE: audit_trail.REVIEWS_COLUMNS,
}
SIDE_INDEXES = [
    "CREATE INDEX IF NOT EXISTS {p}anxin_directory_school ON {t}anxin_directory (school_id, kind)",
    "CREATE INDEX IF NOT EXISTS {p}anxin_links_student ON {t}anxin_links (student_id)",
    "CREATE INDEX IF NOT EXISTS {p}anxin_stream_staff_staff ON {t}anxin_stream_staff (staff_id, part)",
    # The shredded keys only (few): counting them is how cached report figures notice a shred.
    "CREATE INDEX IF NOT EXISTS {p}anxin_keys_shredded ON {t}anxin_keys (stream_id) WHERE wrapped IS NULL",
    "CREATE INDEX IF NOT EXISTS {p}anxin_keys_kek ON {t}anxin_keys (kek_id)",
    "CREATE INDEX IF NOT EXISTS {p}anxin_two_step_recovery_staff ON {t}anxin_two_step_recovery (staff_id)",
    # A typed number is looked up at every school of a district at once.
    "CREATE INDEX IF NOT EXISTS {p}anxin_numbers_number ON {t}anxin_numbers (kind, year, seq)",
    "CREATE UNIQUE INDEX IF NOT EXISTS {p}anxin_keyring_one_current ON {t}anxin_keyring (state) WHERE state = 'current'",
    *outbox.INDEXES,
]


@dataclass(frozen=True)
class StoreConfig:
    """Where the data lives: a SQLite file in the data directory, or PostgreSQL."""

    url: str | None
    data_dir: Path
    schema: str | None = None

    @property
    def is_postgres(self) -> bool:
        return self.url is not None and self.url.startswith(("postgresql://", "postgres://"))

    @property
    def sqlite_path(self) -> Path:
        return self.data_dir / "anxin.db"

    def env(self) -> dict[str, str]:
        """The eventsourcing library's settings for this store."""
        if self.url is not None and self.is_postgres:
            u = urlparse(self.url)
            env = {
                "PERSISTENCE_MODULE": "eventsourcing.postgres",
                "POSTGRES_DBNAME": u.path.lstrip("/") or "postgres",
                "POSTGRES_HOST": u.hostname or "127.0.0.1",
                "POSTGRES_PORT": str(u.port or 5432),
                "POSTGRES_USER": unquote(u.username or "postgres"),
                "POSTGRES_PASSWORD": unquote(u.password or ""),
                "APPLICATION_RECORDER_TOPIC": "anxin.storage:AnxinPostgresRecorder",
                "POSTGRES_POOL_SIZE": "5",
                "POSTGRES_MAX_OVERFLOW": "10",
            }
            if self.schema:
                env["POSTGRES_SCHEMA"] = self.schema
            return env
        if self.url and not self.url.startswith("sqlite"):
            raise ValueError(f"不支持的数据库地址：{self.url}（只支持 postgresql:// 或 SQLite）")
        path = self.sqlite_path
        if self.url and self.url.startswith("sqlite:///"):
            path = Path(self.url[len("sqlite:///") :])
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)  # the data directory is private
        return {
            "PERSISTENCE_MODULE": "eventsourcing.sqlite",
            "SQLITE_DBNAME": str(path),
            "SQLITE_LOCK_TIMEOUT": "10",
            "APPLICATION_RECORDER_TOPIC": "anxin.storage:AnxinSQLiteRecorder",
        }


_opening: contextvars.ContextVar[bool] = contextvars.ContextVar("anxin_opening", default=False)


@contextmanager
def opening(config: StoreConfig) -> Iterator[None]:
    """One process at a time opens the store: makes or checks its tables (the event
    library's, ours, the views'), and refolds a view whose shape changed. Workers of one
    server start at the same moment; on a new PostgreSQL schema two `CREATE TABLE IF NOT
    EXISTS` at once fail ("duplicate key … pg_type"), and two processes would refold the
    same view. PostgreSQL: an advisory lock per schema, held by a connection of its own;
    SQLite: an exclusive lock on a file beside the database. Re-entrant in one thread."""
    if _opening.get():
        yield
        return
    token = _opening.set(True)
    try:
        if config.is_postgres:
            import psycopg

            assert config.url
            with psycopg.connect(config.url, autocommit=True) as conn:
                conn.execute("SELECT pg_advisory_lock(hashtext(%s))", (f"anxin-open:{config.schema or ''}",))
                yield  # closing the connection releases the lock
            return
        name = config.env()["SQLITE_DBNAME"]
        if name == ":memory:" or "mode=memory" in name:  # no other process can open it
            yield
            return
        path = Path(name)
        import fcntl

        fd = os.open(f"{path}.open-lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock
    finally:
        _opening.reset(token)


class Cursor:
    """One placeholder style (`?`) and tuple rows on both databases."""

    def __init__(self, raw: Any, dialect: str) -> None:
        self.raw = raw
        self.dialect = dialect

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s") if self.dialect == "postgres" else sql

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        self.raw.execute(self._sql(sql), tuple(params))
        return self

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            self.raw.executemany(self._sql(sql), [tuple(r) for r in rows])

    def fetchall(self) -> list[tuple[Any, ...]]:
        if self.dialect == "sqlite":  # sqlite3's values are already plain (bytes, not memoryview)
            return list(map(tuple, self.raw.fetchall()))
        return [self._row(r) for r in self.raw.fetchall()]

    def fetchone(self) -> tuple[Any, ...] | None:
        r = self.raw.fetchone()
        return None if r is None else self._row(r)

    @property
    def rowcount(self) -> int:
        """How many rows the last UPDATE or DELETE changed (a compare-and-set's answer)."""
        raw = getattr(self.raw, "sqlite_cursor", self.raw)  # (the library wraps sqlite3's cursor)
        return int(raw.rowcount)

    @staticmethod
    def _row(r: Any) -> tuple[Any, ...]:
        if isinstance(r, dict):
            return tuple(bytes(v) if isinstance(v, memoryview) else v for v in r.values())
        return tuple(bytes(v) if isinstance(v, memoryview) else v for v in r)


class Database:
    """The side tables, reached through the event recorder's own connections."""

    def __init__(self, recorder: Any, keystore: KeyStore) -> None:
        self.recorder = recorder
        self.keystore = keystore
        self.dialect = "postgres" if isinstance(recorder, PostgresApplicationRecorder) else "sqlite"
        schema = getattr(recorder.datastore, "schema", "") if self.dialect == "postgres" else ""
        self.prefix = f"{schema}." if schema else ""
        recorder.anxin_db = self

    def t(self, name: str) -> str:
        return self.prefix + name

    def sqlite_path(self) -> str | None:
        """The SQLite file, for a reader that opens a connection of its own (None on
        PostgreSQL, or for an in-memory SQLite database, which only its own connections see)."""
        pool = getattr(self.recorder.datastore, "pool", None)
        if self.dialect != "sqlite" or pool is None or pool.is_sqlite_memory_mode:
            return None
        return str(pool.db_name)

    def q(self, sql: str) -> str:
        """Qualify `{t}table` names with the schema."""
        return sql.replace("{t}", self.prefix)

    @contextmanager
    def transaction(self, commit: bool = True) -> Iterator[Cursor]:
        with self.recorder.datastore.transaction(commit=commit) as raw:
            yield Cursor(raw, self.dialect)

    @contextmanager
    def write_transaction(self) -> Iterator[Cursor]:
        """A transaction that holds the write lock from its start. Two processes opening
        one SQLite store at once (two web workers) both run `create_tables`: with a plain
        (deferred) BEGIN, the second reads, then finds the first has written since, and
        SQLite refuses it at once ("database is locked", no waiting). BEGIN IMMEDIATE
        waits for the lock instead (the busy timeout), then sees the tables made."""
        if self.dialect != "sqlite":
            with self.transaction() as c:
                yield c
            return
        with self.recorder.datastore.get_connection(commit=True) as conn:
            raw = conn.cursor()
            raw.execute("BEGIN IMMEDIATE")
            try:
                yield Cursor(raw, self.dialect)
            except BaseException:
                conn.rollback()
                raise
            conn.commit()

    def create_tables(self, timezone: str = "Asia/Shanghai") -> None:
        """Make or check the side tables (every opening of the store), and bring them up to
        date: the trail adopts events stored before it, and the cases, files and pairings
        saved before numbers existed are numbered (`timezone`: the schools', for the year)."""
        blob = "BYTEA" if self.dialect == "postgres" else "BLOB"
        serial = "BIGSERIAL PRIMARY KEY" if self.dialect == "postgres" else "INTEGER PRIMARY KEY AUTOINCREMENT"
        int8 = "BIGINT" if self.dialect == "postgres" else "INTEGER"
        with self.write_transaction() as c:
            for name, cols in SIDE_TABLES.items():
                c.execute(
                    f"CREATE TABLE IF NOT EXISTS {self.t(name)} ({cols.format(blob=blob, serial=serial, int8=int8)})"
                )
            for stmt in SIDE_INDEXES:
                c.execute(stmt.format(t=self.prefix, p=""))
            audit_trail.setup(c, self)
            record_numbers.number_existing(c, self, timezone)

    def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        if self.dialect == "postgres":
            # One statement on an autocommit connection is its own transaction: one round
            # trip, where BEGIN … ROLLBACK would take three.
            with self.recorder.datastore.get_connection() as conn:
                return Cursor(conn.cursor(), self.dialect).execute(self.q(sql), params).fetchall()
        # SQLite: likewise, a lone SELECT on the library's autocommit connection reads one
        # consistent snapshot by itself, without BEGIN … ROLLBACK around it.
        with self.recorder.datastore.get_connection(commit=False) as conn:
            return Cursor(conn.cursor(), self.dialect).execute(self.q(sql), params).fetchall()

    def fetch_in(
        self, sql: str, values: Sequence[Any], params: Sequence[Any] = (), chunk: int = 500
    ) -> list[tuple[Any, ...]]:
        """`sql` whose `IN ({marks})` takes `values`, `chunk` at a time (after `params`)."""
        out: list[tuple[Any, ...]] = []
        for n in range(0, len(values), chunk):
            part = tuple(values[n : n + chunk])
            out += self.fetch(sql.replace("{marks}", ",".join("?" * len(part))), (*params, *part))
        return out

    def fetchone(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        rows = self.fetch(sql, params)
        return rows[0] if rows else None

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        with self.transaction() as c:
            c.execute(self.q(sql), params)

    # -- keys -----------------------------------------------------------------------
    def fetch_key(self, stream_id: str) -> tuple[bytes | None, str] | None:
        row = self.fetchone("SELECT wrapped, kek_id FROM {t}anxin_keys WHERE stream_id = ?", (stream_id,))
        return None if row is None else (row[0], row[1])

    def fetch_keys(self, stream_ids: Sequence[str]) -> list[tuple[str, bytes | None, str]]:
        """Many streams' key rows, 500 ids per query."""
        return [
            (r[0], r[1], r[2])
            for r in self.fetch_in(
                "SELECT stream_id, wrapped, kek_id FROM {t}anxin_keys WHERE stream_id IN ({marks})", stream_ids
            )
        ]

    def analyze(self, more: Sequence[str] = (), changed: int | None = None) -> bool:
        """After a bulk load on PostgreSQL: refresh the planner's statistics of the store's
        tables, as the PostgreSQL manual advises after loading much data, rather than wait
        for autovacuum (which may be off, or a minute away). Without them it estimates
        hundreds of thousands of rows for a 16-stream lookup and plans a parallel, JIT-
        compiled scan: 45 ms instead of 1 ms at district scale. SQLite's planner needs no
        statistics for these keyed lookups: nothing to do there. `changed`: how many rows
        were just loaded; then only if that is a tenth of what the statistics know.
        Whether it ran."""
        if self.dialect != "postgres":
            return False
        names = [self.recorder.events_table_name, *more, *SIDE_TABLES]
        with self.recorder.datastore.get_connection() as conn:
            if changed is not None:
                # As autovacuum would (its analyze scale factor): only when the rows just
                # written are a tenth of what the statistics know (-1: never analyzed).
                row = conn.execute(
                    "SELECT reltuples FROM pg_class WHERE oid = to_regclass(%s)",
                    (self.t(self.recorder.events_table_name),),
                ).fetchone()
                known = float(row["reltuples"]) if row else -1.0  # (the library's rows are dicts)
                if known >= 0 and changed < 0.1 * known:
                    return False
            for name in names:
                conn.execute(f"ANALYZE {self.t(name)}")
        return True

    def all_keys(self) -> list[tuple[str, bytes | None, str]]:
        return [(r[0], r[1], r[2]) for r in self.fetch("SELECT stream_id, wrapped, kek_id FROM {t}anxin_keys")]

    def insert_named_key(self, keystore: KeyStore, key_id: str, data_key: bytes) -> None:
        """A named key, wrapped under the current master key in the transaction that stores it."""
        with self.write_transaction() as c:
            c.executemany(
                self.q(
                    "INSERT INTO {t}anxin_keys (stream_id, wrapped, kek_id) VALUES (?, ?, ?) "
                    "ON CONFLICT (stream_id) DO NOTHING"
                ),
                keystore.wrap_current(c, [(key_id, data_key)]),
            )

    # -- the key ring ---------------------------------------------------------------------
    def current_kek_id(self, c: Cursor | None = None) -> str:
        """The id of the store's current master key. Inside a writing transaction `c`, read
        so that a rotation's switch waits for this transaction to end (PostgreSQL: a share
        lock on the row; SQLite: the transaction already holds the only write lock)."""
        if c is None:
            row = self.fetchone("SELECT kek_id FROM {t}anxin_keyring WHERE state = 'current'")
        else:
            sql = self.q("SELECT kek_id FROM {t}anxin_keyring WHERE state = 'current'")
            if self.dialect == "postgres":
                sql += " FOR SHARE"
            row = None
            for _ in range(5):
                # READ COMMITTED: a switch that commits while this waits for the old row leaves
                # it matching nothing; the statement run again sees the new row.
                row = c.execute(sql).fetchone()
                if row is not None:
                    break
        if row is None:
            raise KeyError_("本库没有登记当前主密钥（anxin_keyring 为空）：请运行 `anxin check`")
        return str(row[0])

    def keyring(self) -> list[tuple[str, str, str, str | None]]:
        """(kek_id, state, added_at, changed_at) of every master key the store knows."""
        return [
            (r[0], r[1], r[2], r[3])
            for r in self.fetch(
                "SELECT kek_id, state, added_at, changed_at FROM {t}anxin_keyring ORDER BY added_at, kek_id"
            )
        ]

    def keys_per_kek(self) -> dict[str, int]:
        """How many live data keys each master key wraps."""
        return {
            r[0]: int(r[1])
            for r in self.fetch("SELECT kek_id, COUNT(*) FROM {t}anxin_keys WHERE wrapped IS NOT NULL GROUP BY kek_id")
        }

    def sample_keys(self, kek_id: str, n: int) -> list[tuple[str, bytes]]:
        return [
            (r[0], r[1])
            for r in self.fetch(
                f"SELECT stream_id, wrapped FROM {{t}}anxin_keys WHERE kek_id = ? AND wrapped IS NOT NULL "
                f"ORDER BY stream_id LIMIT {int(n)}",
                (kek_id,),
            )
        ]

    def ensure_keyring(self, keystore: KeyStore) -> None:
        """A store without a ring gets one: a new store's current key is the first this
        process holds; a store from before the ring takes the key wrapping most of its
        data keys as current (others, left by an interrupted rotation, as previous), but
        only if this process holds it. Otherwise nothing is written and the open fails."""
        if self.fetchone("SELECT 1 FROM {t}anxin_keyring"):
            return
        in_use = sorted(self.keys_per_kek().items(), key=lambda kv: (-kv[1], kv[0]))
        if in_use:
            current = in_use[0][0]
            keystore.kek(current)  # raises MasterKeyNotHeld before anything is written
            previous = [k for k, _ in in_use[1:]]
        else:
            if not keystore.keks:
                raise KeyError_("没有主密钥")
            current, previous = next(iter(keystore.keks)), []
        now = datetime.now(UTC).isoformat()
        with self.write_transaction() as c:
            if c.execute(self.q("SELECT 1 FROM {t}anxin_keyring")).fetchone():
                return  # made meanwhile
            c.executemany(
                self.q("INSERT INTO {t}anxin_keyring (kek_id, state, added_at) VALUES (?, ?, ?)"),
                [(current, "current", now), *((k, "previous", now) for k in previous)],
            )

    def write_with_events(
        self,
        raw_cursor: Any,
        stored_events: Sequence[StoredEvent],
        *,
        side_statements: Sequence[tuple[str, tuple[Any, ...]]] = (),
        audit_meta: dict[tuple[str, int], tuple[str, str]] | None = None,
        audit_first: Sequence[Any] = (),
        numbers: Sequence[record_numbers.Allocation] = (),
        **_: Any,
    ) -> None:
        """Called by the recorder inside the events' transaction, with what the save named
        (`Core.commit`'s keyword arguments, which the library passes to the recorder): the new
        streams' data keys, the directory's statements (`side_statements`), and the audit
        trail's entries: the gate's decisions first (`audit_first`), then one per event, with
        its actor and time (`audit_meta`: an event's actor is otherwise only in its ciphertext);
        and the numbers of the new cases, files and pairings (`numbers`, anxin.numbers), after
        the trail's entries, whose lock (PostgreSQL) every writer takes first."""
        c = Cursor(raw_cursor, self.dialect)
        sids = {stream_key(e.originator_id) for e in stored_events if e.originator_version == 1}
        keys = self.keystore.wrap_current(c, self.keystore.take_pending(sids))
        c.executemany(self.q("INSERT INTO {t}anxin_keys (stream_id, wrapped, kek_id) VALUES (?, ?, ?)"), keys)
        # Runs of the same statement go as one executemany (one round trip on PostgreSQL).
        run_sql: str | None = None
        run: list[tuple[Any, ...]] = []
        for sql, params in [*side_statements, (None, ())]:
            if sql != run_sql:
                if run_sql is not None:
                    if len(run) == 1:
                        c.execute(self.q(run_sql), run[0])
                    else:
                        c.executemany(self.q(run_sql), run)
                run_sql, run = sql, []
            run.append(params)
        # Every event's audit entry, in the same transaction (anxin.audit).
        audit_trail.append_events(c, self, stored_events, audit_meta, first=audit_first)
        record_numbers.allocate(c, self, numbers)


class AnxinSQLiteRecorder(SQLiteApplicationRecorder):
    anxin_db: Database | None = None

    def max_notification_id(self) -> int:
        """The library's, as one autocommit SELECT (every read of a view asks it first)."""
        with self.datastore.get_connection(commit=False) as conn:
            c = conn.cursor()
            c.execute(self.select_max_notification_id_statement)
            return c.fetchone()[0]

    def select_events(self, originator_id: Any, **kw: Any) -> Any:
        if self.anxin_db is not None:
            self.anxin_db.keystore.check_live(stream_key(originator_id))
        return super().select_events(originator_id, **kw)

    def _insert_events(self, c: Any, stored_events: Sequence[StoredEvent], **kw: Any) -> Any:
        ids = (
            self._insert_batch(c, stored_events)
            if len(stored_events) > 1
            else (super()._insert_events(c, stored_events, **kw))
        )
        if self.anxin_db is not None:
            self.anxin_db.write_with_events(c, stored_events, **kw)
        return ids

    def _insert_batch(self, c: Any, stored_events: Sequence[StoredEvent]) -> list[int]:
        """The library inserts row by row to learn each rowid. Once the first row is
        in, this transaction holds SQLite's only write lock, so the rest get the
        next rowids in order: insert them in one executemany and check the end."""
        params = [(stream_key(s.originator_id), s.originator_version, s.topic, s.state) for s in stored_events]
        c.execute(self.insert_events_statement, params[0])
        first = c.lastrowid
        c.executemany(self.insert_events_statement, params[1:])
        c.execute(self.select_max_notification_id_statement)
        last = c.fetchone()[0]
        if last != first + len(params) - 1:
            raise RuntimeError("notification ids were not contiguous in a batch insert")
        return list(range(first, last + 1))


class AnxinPostgresRecorder(PostgresApplicationRecorder):
    """The library's recorder, but inserting without pipeline mode and in chunks:
    a single pipelined INSERT of more than ~5 MB (a school's screening import)
    deadlocks psycopg's pipeline, client and server each waiting on the other."""

    anxin_db: Database | None = None
    CHUNK = 2000

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def insert_events(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int] | None:
        ids: list[int] = []
        with self.datastore.get_connection() as conn, conn.transaction(), conn.cursor() as curs:
            self._insert_events(curs, stored_events, **kwargs)
            if stored_events:
                self._lock_table(curs)
                self._notify_channel(curs)
                for i in range(0, len(stored_events), self.CHUNK):
                    chunk = stored_events[i : i + self.CHUNK]
                    PostgresAggregateRecorder._insert_stored_events(self, curs, chunk)
                    ids.extend(self._fetch_ids_after_insert_events(curs, chunk) or [])
        return ids

    def select_events(self, originator_id: Any, **kw: Any) -> Any:
        if self.anxin_db is not None:
            self.anxin_db.keystore.check_live(stream_key(originator_id))
        return super().select_events(originator_id, **kw)

    def _insert_events(self, curs: Any, stored_events: Sequence[StoredEvent], **kw: Any) -> None:
        super()._insert_events(curs, stored_events, **kw)
        if self.anxin_db is not None:
            self.anxin_db.write_with_events(curs, stored_events, **kw)


def config_from_env(data_dir: str | os.PathLike[str] | None = None) -> StoreConfig:
    return StoreConfig(
        url=os.environ.get("ANXIN_DATABASE_URL") or None,
        data_dir=Path(data_dir or os.environ.get("ANXIN_DATA_DIR") or "var"),
        schema=os.environ.get("ANXIN_DATABASE_SCHEMA") or None,
    )
