"""Reading the trail and the event log fast for verification: batches read ahead in a
thread, on a connection of their own where the database allows."""

from __future__ import annotations

import hashlib
import queue
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from itertools import accumulate
from operator import methodcaller
from typing import TYPE_CHECKING, Any
from urllib.parse import quote
from uuid import UUID

if TYPE_CHECKING:
    from anxin.storage import Database
from anxin.audit.chain import COLUMNS, SEP


def _raw_rows(db: Database, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    """Rows as plain tuples straight from the driver (no per-value conversion: verify
    reads every row of two tables, so this is its hot path)."""
    with db.transaction(commit=False) as c:
        if db.dialect == "postgres":
            from psycopg.rows import tuple_row

            cur = c.raw.connection.cursor(row_factory=tuple_row, binary=True)
            cur.execute(sql.replace("?", "%s"), params)
            return cur.fetchall()
        cur = c.raw.sqlite_cursor
        cur.row_factory = None
        cur.execute(sql, params)
        return cur.fetchall()


class _Events:
    """The stored events in notification order, read in batches, with their payload
    hashes (computed from the raw stored bytes; nothing is decrypted).

    On SQLite a batch is one aggregate row: every event's hashed bytes (id as 32 hex
    digits, version, topic, separators, then the stored state) end to end, and their
    lengths, built by SQLite in one step; the rows themselves (notification id,
    bytes) are made only when a problem has to be described. On PostgreSQL rows come
    as (notification id, prefix, state)."""

    def __init__(self, db: Database, batch: int, after: int = 0, before: int | None = None) -> None:
        """Events after notification id `after` and (if given) before `before`."""
        self.db = db
        self.pg = db.dialect == "postgres"
        table = db.t(db.recorder.events_table_name)
        upto = "" if before is None else f" AND {'notification_id' if self.pg else 'rowid'} < {int(before)}"
        if self.pg:
            # The hash's prefix (id as 32 hex digits, version, topic) comes ready-made, as bytes.
            cols = (
                "notification_id, convert_to(replace(originator_id::text, '-', '') || chr(31) || "
                "originator_version || chr(31) || topic || chr(31), 'UTF8'), state"
            )
            self.sql = (
                f"SELECT {cols} FROM {table} WHERE notification_id > ?{upto} ORDER BY notification_id "
                f"LIMIT {int(batch)}"
            )
        else:
            stored = (
                "CAST(originator_id || char(31) || originator_version || char(31) || topic || char(31) "
                "|| state AS BLOB)"
            )
            cols = f"rowid, {stored}"
            self.rows_sql = f"SELECT {cols} FROM {table} WHERE rowid > ?{upto} ORDER BY rowid LIMIT {int(batch)}"
            self.sql = (
                "SELECT count(*), max(n), CAST(group_concat(m, '') AS BLOB), group_concat(length(m), ',') "
                f"FROM (SELECT rowid AS n, {stored} AS m FROM {table} WHERE rowid > ?{upto} "
                f"ORDER BY rowid LIMIT {int(batch)})"
            )
            self.nth_sql = f"SELECT rowid FROM {table} WHERE rowid > ? ORDER BY rowid LIMIT 1 OFFSET ?"
        self.point_sql = f"SELECT {cols} FROM {table} WHERE originator_id = ? AND originator_version = ?"
        self.rows: Sequence[tuple[Any, ...]] = []
        self.hashes: list[str] = []
        self.pos = 0
        self.last = 0
        self.count = 0  # events taken so far
        self.source = self._batches(after)

    def _batches(self, after: int) -> Iterator[Any]:
        # (Module functions, not methods: a reading thread must not keep this object alive.)
        # The next batches are read in a thread, while this one is checked: on PostgreSQL
        # through its own pooled connection; on SQLite through a read-only connection that
        # the thread opens, alone uses and closes (never one of the store's: closing the
        # store while a thread was inside one of its connections crashed the process).
        if self.pg:
            return _prefetched(_paged(self.db, self.sql, after))
        path = self.db.sqlite_path()
        if path is None:
            return _aggregated(self.db, self.sql, after)
        return _prefetched(_aggregated_own(path, self.sql, after))

    def _load(self) -> bool:
        item = next(self.source, None)
        if item is None:  # at the end: look again (events may have been written since), from here on
            self.source = self._batches(self.last)
            item = next(self.source, None)
        if item is None:
            self.rows, self.hashes, self.pos = [], [], 0
            return False
        if self.pg:
            self.rows, self.hashes, self.last = item, self._hashes(item), item[-1][0]
        else:
            after, n, self.last, blob, lengths = item
            sizes = list(map(int, lengths.split(","))) if lengths else []
            if len(sizes) == n:
                ends = list(accumulate(sizes, initial=0))
                view = memoryview(blob)
                self.hashes = list(
                    map(_hexdigest, map(hashlib.sha256, map(view.__getitem__, map(slice, ends, ends[1:]))))
                )
                self.rows = _BatchRows(self.db, self.nth_sql, after, view, ends, 0, n)
            else:  # a row without bytes (a NULL where the table should hold a value): one by one
                self.rows = _raw_rows(self.db, self.rows_sql, (after,))
                self.hashes = self._hashes(self.rows)
        self.pos = 0
        return True

    def take(self) -> tuple[list[str], Sequence[tuple[Any, ...]]]:
        """The rest of the current batch (or the next batch): payload hashes and rows;
        empty at the end."""
        if self.pos == len(self.hashes) and not self._load():
            return [], []
        hashes, rows = self.hashes[self.pos :], self.rows[self.pos :]
        self.pos = len(self.hashes)
        self.count += len(hashes)
        return hashes, rows

    def give_back(self, n: int) -> None:
        """Un-take the last n events (all taken from the current buffer)."""
        self.pos -= n
        self.count -= n

    def peek(self) -> tuple[Any, ...] | None:
        if self.pos == len(self.hashes) and not self._load():
            return None
        return self.rows[self.pos]

    @staticmethod
    def _stored(row: tuple[Any, ...]) -> bytes:
        """The hashed bytes of a row: (id, bytes) on SQLite, (id, prefix, state) on PostgreSQL."""
        return bytes(row[1]) if len(row) == 2 else bytes(row[1]) + bytes(row[2])

    @classmethod
    def _hashes(cls, rows: Sequence[tuple[Any, ...]]) -> list[str]:
        sha = hashlib.sha256
        if rows and len(rows[0]) == 2:
            return [sha(stored).hexdigest() for _, stored in rows]
        return [sha(prefix + state).hexdigest() for _, prefix, state in rows]

    def described(self, row: tuple[Any, ...]) -> tuple[int, str, int, str]:
        """(notification id, stream hex, version, payload hash) of an event row."""
        stored = self._stored(row)
        oid, v, _ = stored.split(SEP.encode(), 2)
        return row[0], oid.decode(), int(v), hashlib.sha256(stored).hexdigest()

    def find(self, stream_hex: str, version: int) -> tuple[int, str, int, str] | None:
        oid: Any = UUID(stream_hex) if self.pg else stream_hex
        rows = _raw_rows(self.db, self.point_sql, (oid, version))
        return self.described(rows[0]) if rows else None


_hexdigest = methodcaller("hexdigest")


class _BatchRows(Sequence[tuple[Any, ...]]):
    """The rows (notification id, stored bytes) of one SQLite batch, made when asked for
    (the notification id by one more query: only to describe a problem)."""

    def __init__(
        self, db: Database, nth_sql: str, after: int, view: memoryview, ends: list[int], start: int, stop: int
    ) -> None:
        self.db, self.nth_sql, self.after, self.view, self.ends = db, nth_sql, after, view, ends
        self.start, self.stop = start, stop

    def __len__(self) -> int:
        return self.stop - self.start

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            a, b, _ = i.indices(len(self))
            return _BatchRows(
                self.db, self.nth_sql, self.after, self.view, self.ends, self.start + a, self.start + max(a, b)
            )
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(i)
        j = self.start + i
        nid = int(_raw_rows(self.db, self.nth_sql, (self.after, j))[0][0])
        return nid, bytes(self.view[self.ends[j] : self.ends[j + 1]])


def _aggregated(db: Database, sql: str, after: int) -> Iterator[tuple[int, int, int, bytes, str]]:
    """SQLite's batches of events as aggregate rows (see _Events), until one is empty."""
    return _aggregate_rows(lambda a: _raw_rows(db, sql, (a,))[0], after)


def _aggregated_own(path: str, sql: str, after: int) -> Iterator[tuple[int, int, int, bytes, str]]:
    """As `_aggregated`, through a connection of its own, opened on first use (so in the
    thread that reads) and closed when done or dropped."""
    con = sqlite3.connect(f"file:{quote(path)}?mode=ro", uri=True, timeout=30, check_same_thread=False)
    try:
        yield from _aggregate_rows(lambda a: con.execute(sql, (a,)).fetchone(), after)
    finally:
        con.close()


def _aggregate_rows(fetch: Any, after: int) -> Iterator[tuple[int, int, int, bytes, str]]:
    while True:
        n, last, blob, lengths = fetch(after)
        if not n:
            return
        yield after, int(n), int(last), blob, lengths
        after = last


def _paged(db: Database, sql: str, after: int) -> Iterator[list[tuple[Any, ...]]]:
    """Batches of `sql` (which takes the last key seen and orders by it) until empty."""
    while True:
        rows = _raw_rows(db, sql, (after,))
        if not rows:
            return
        yield rows
        after = rows[-1][0]


def _trail_batches(db: Database, after: int, batch: int, upto: int | None = None) -> Iterator[list[tuple[Any, ...]]]:
    bound = "" if upto is None else f" AND seq <= {int(upto)}"
    sql = db.q(f"SELECT {COLUMNS} FROM {{t}}anxin_audit WHERE seq > ?{bound} ORDER BY seq LIMIT {int(batch)}")
    batches = _paged(db, sql, after)
    return _prefetched(batches) if db.dialect == "postgres" else batches


_END = object()


def _prefetched(batches: Iterator[Any], depth: int = 2) -> Iterator[Any]:
    """Read the next batches in a thread while this one is checked: on PostgreSQL the
    wait for the server then overlaps the hashing. On SQLite only the events' aggregate
    batches are read ahead (each is built in one step, with the GIL released); rows
    fetched one by one there, as the trail's are, would only contend for the GIL."""
    q: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in batches:
                if not put(item):
                    return
            put(_END)
        except BaseException as e:  # handed to the reader, raised there
            put(e)

    threading.Thread(target=produce, name="anxin-audit-verify", daemon=True).start()
    try:
        while True:
            item = q.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
