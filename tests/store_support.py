"""The database straight, under the application's feet, as someone with access to
its files or its server could read or change it: for tests of encryption at rest,
tampering and quarantine."""

from __future__ import annotations

import sqlite3
from typing import Any
from uuid import UUID

from conftest import PG_URL, Store

from anxin import audit
from anxin.service import Anxin


def raw_bytes(store: Store) -> bytes:
    """Everything the database holds, as bytes: the SQLite files (main, WAL, journal) or
    a dump of every table of the test's PostgreSQL schema."""
    if store.kind == "sqlite":
        main = store.config.sqlite_path
        files = [p for p in main.parent.iterdir() if p.name.startswith(main.name)]
        assert main in files
        return b"".join(p.read_bytes() for p in files)
    import psycopg

    assert PG_URL and store.schema
    out: list[bytes] = []
    with psycopg.connect(PG_URL) as conn:
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (store.schema,)
            )
        ]
        assert len(tables) >= 8, tables
        for table in tables:
            for row in conn.execute(f'SELECT * FROM "{store.schema}"."{table}"'):
                for value in row:
                    if isinstance(value, bytes | bytearray | memoryview):
                        out.append(bytes(value))
                    elif value is not None:
                        out.append(str(value).encode())
    return b"\x00".join(out)


class Raw:
    """The database, straight, under the application's feet (as someone with write
    access to it could). `{t}` is the schema prefix, `{events}` the events table,
    `{nid}` its notification-id column."""

    def __init__(self, store: Store, app: Anxin) -> None:
        self.store = store
        self.pg = store.kind == "postgres"
        self.events = app.recorder.events_table_name
        self.nid = "notification_id" if self.pg else "rowid"

    def __call__(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        sql = sql.replace("{events}", "{t}" + self.events).replace("{nid}", self.nid)
        if self.pg:
            import psycopg

            assert PG_URL
            with psycopg.connect(PG_URL) as conn:
                cur = conn.execute(sql.replace("{t}", f"{self.store.schema}.").replace("?", "%s"), params)
                return (
                    [tuple(bytes(v) if isinstance(v, memoryview) else v for v in r) for r in cur.fetchall()]
                    if cur.description
                    else []
                )
        conn = sqlite3.connect(self.store.config.sqlite_path)
        try:
            rows = conn.execute(sql.replace("{t}", ""), params).fetchall()
            conn.commit()
            return rows
        finally:
            conn.close()

    def oid(self, stream_id: str) -> Any:
        """A stream id as the events table stores it."""
        return UUID(stream_id) if self.pg else UUID(stream_id).hex

    def entry(self, seq: int) -> tuple[Any, ...]:
        return self(f"SELECT {audit.COLUMNS} FROM {{t}}anxin_audit WHERE seq = ?", (seq,))[0]

    def flip_last_byte(self, stream_id: str, version: int) -> int:
        """Flip the last byte of a stored event's state (its ciphertext); its notification id."""
        [(nid, state)] = self(
            "SELECT {nid}, state FROM {events} WHERE originator_id = ? AND originator_version = ?",
            (self.oid(stream_id), version),
        )
        state = bytes(state)
        self("UPDATE {events} SET state = ? WHERE {nid} = ?", (state[:-1] + bytes([state[-1] ^ 1]), nid))
        return int(nid)

    def event_entry(self, stream_id: str, version: int) -> int:
        """The seq of a stream's event entry."""
        [seq] = [
            s
            for s, d in self(
                "SELECT seq, detail FROM {t}anxin_audit WHERE kind = 'event' AND subject = ?", (stream_id,)
            )
            if d.endswith(f"#{version}")
        ]
        return int(seq)

    def head(self) -> int:
        return int(self("SELECT MAX(seq) FROM {t}anxin_audit")[0][0])
