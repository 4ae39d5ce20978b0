"""Views are folds of the event log into SQLAlchemy tables.

Each view declares its tables and handles the events it cares about. The runner
reads the application's notification log (SQLite has no subscriptions, so it polls),
decrypts each event once, hands it to every view that has not yet seen it, and moves
each view's position in the same transaction as its rows: a view is exactly-once,
because the position only advances by compare-and-set, and a replayed event is a
no-op. Erased streams reach views as `ErasedEvent` placeholders.

Views are `WriteBehind`: the rows a batch inserts are kept back and written in bulk
(executemany on SQLite, COPY on PostgreSQL) before the position moves, later events
of the same batch change a kept row in place, and any other statement first writes
what was kept back. A rebuild folds the log in larger batches.
"""

from __future__ import annotations

import gc
import hashlib
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from operator import itemgetter
from typing import TYPE_CHECKING, Any, Protocol
from uuid import UUID

from eventsourcing.dispatch import singledispatchmethod
from sqlalchemy import (
    Column,
    Connection,
    Engine,
    Insert,
    Integer,
    MetaData,
    String,
    Table,
    create_engine,
    event,
    select,
    update,
)

from domain.common import ERASED_LABEL, UNREADABLE_LABEL, ContentErased, ContentTampered

if TYPE_CHECKING:
    from domain.access import Decision, Resource
    from domain.common import Actor
    from domain.policy import Policy


class Source(Protocol):
    """What the views need of the application that feeds them and that their queries read
    through. The application satisfies it; the read side never imports the application
    (dependencies point one way: the application composes the views)."""

    db: Any  # ids-only side tables (fetch, fetchone, fetch_in)
    keystore: Any  # per-stream keys (cipher_for_read, blind, preload, check_live, ensure_index_key)
    recorder: Any  # the event log (select_notifications, select_events, max_notification_id)
    mapper: Any  # stored events to domain events
    config: Any
    policy: Policy
    views: Any  # the runner of these views (catch_up, engine)
    accounts: Any  # the staff directory (staff: a member's school and roles)

    def now(self) -> datetime: ...

    def authorize(self, actor: Actor, action: str, resource: Resource, break_glass: str | None = None) -> Decision: ...

    def check(
        self,
        actor: Actor,
        action: str,
        kind: str,
        stream_id: str | UUID | None = None,
        school_id: str | None = None,
        break_glass: str | None = None,
    ) -> Decision: ...

    def resource(self, kind: str, stream_id: str | UUID | None = None, school_id: str | None = None) -> Resource: ...

    def student_ref(self, student_id: str) -> StudentRef: ...

    def schools(self) -> list[tuple[str, str, str]]: ...

    def record_security_event(
        self, kind: str, actor_id: str, subject: str = "", detail: str | dict[str, Any] = ""
    ) -> int | None: ...

    def quarantine_stream(self, stream_id: str, version: int) -> None: ...


@dataclass(frozen=True)
class StudentRef:
    """A student as other screens show them: a name, or 已删除 once erased."""

    id: str
    school_id: str | None
    class_name: str | None
    student_no: str | None
    name: str
    erased: bool = False
    unreadable: bool = False  # quarantined: its event or key failed authentication


metadata = MetaData()

tracking = Table(
    "view_tracking",
    metadata,
    Column("view", String(64), primary_key=True),
    Column("position", Integer, nullable=False),
)

# Each view's table definitions (a hash of their DDL) as its rows were folded: a view whose
# tables have changed since (a new version of Anxin) is made anew and folded again.
view_schema = Table(
    "view_schema",
    metadata,
    Column("view", String(64), primary_key=True),
    Column("signature", String(64), nullable=False),
)


@dataclass(frozen=True)
class ErasedEvent:
    """What a view sees of an event whose stream was shredded: ids only."""

    originator_id: UUID
    originator_version: int
    topic: str


@dataclass(frozen=True)
class UnreadableEvent:
    """An event that failed authentication (its stream is quarantined): no view handles
    it, so it is skipped and the fold goes on."""

    originator_id: UUID
    originator_version: int
    topic: str


def seal_for(app: Source, stream_id: str, text: str) -> bytes:
    """Encrypt a value a view keeps (a name, a label) under its stream's own key, so
    shredding the stream erases it from views too."""
    sid = UUID(str(stream_id)).hex
    aes = app.keystore.cipher_for_read(sid, 1)
    nonce = os.urandom(12)
    return nonce + aes.encrypt(nonce, text.encode(), b"view\x1f" + sid.encode())


def open_for(app: Source, stream_id: str, blob: bytes | None) -> str:
    """The value sealed by `seal_for`, or 已删除 once the stream is erased."""
    if blob is None:
        return ""
    sid = UUID(str(stream_id)).hex
    try:
        aes = app.keystore.cipher_for_read(sid, 1)
        return aes.decrypt(blob[:12], blob[12:], b"view\x1f" + sid.encode()).decode()
    except ContentErased:
        return ERASED_LABEL
    except ContentTampered as e:
        app.quarantine_stream(e.stream_id, e.version)
        return UNREADABLE_LABEL


class View:
    """A read model: tables plus a fold. Subclasses set `name` and `tables`, define
    their own `@singledispatchmethod handle` (a registry of their own: registering on
    `View.handle` would share handlers between views) and register handlers on it."""

    name: str = ""
    tables: Sequence[Table] = ()

    @singledispatchmethod
    def handle(self, event: Any, conn: Connection, position: int) -> None:
        """Events a view does not know are ignored."""

    def flush(self, conn: Connection) -> None:
        """End of a batch: a view that holds writes back sends them now, before its
        position moves in the same transaction."""

    def erase(self, conn: Connection, stream_id: str) -> None:
        """A stream was shredded: forget anything derived from its content."""

    def clear(self, conn: Connection) -> None:
        for t in reversed(self.tables):
            conn.execute(t.delete())


_COMPILED: dict[tuple[Any, tuple[str, ...]], tuple[str, Any, list[tuple[int, Any]]]] = {}


def insert_many(conn: Connection, stmt: Any, rows: list[dict[str, Any]]) -> None:
    """`conn.execute(stmt, rows)` for a plain INSERT of rows with the same keys, on
    SQLite straight through the driver's executemany (the statement compiled once, the
    column types' bind processing applied as SQLAlchemy would), without SQLAlchemy's
    per-row parameter handling. Rows whose keys differ go through SQLAlchemy."""
    if not rows:
        return
    dialect = conn.dialect
    keys = tuple(rows[0])
    n_keys = len(keys)
    if len(rows) < 2 or any(len(r) != n_keys for r in rows):
        conn.execute(stmt, rows)
        return
    if dialect.name == "postgresql":
        _copy_many(conn, stmt, keys, rows)
        return
    if dialect.name != "sqlite":
        conn.execute(stmt, rows)
        return
    cache_key = (stmt, keys)
    found = _COMPILED.get(cache_key)
    if found is None:
        compiled = stmt.compile(dialect=dialect, column_keys=list(keys))
        names = list(compiled.positiontup or ())
        if sorted(names) != sorted(keys):
            conn.execute(stmt, rows)
            return
        procs = [
            (i, p)
            for i, n in enumerate(names)
            if (p := compiled.binds[n].type._cached_bind_processor(dialect)) is not None
        ]
        get = itemgetter(*names) if len(names) > 1 else (lambda r, n=names[0]: (r[n],))
        found = _COMPILED[cache_key] = (str(compiled), get, procs)
    sql, get, procs = found
    try:
        if procs:
            params: list[Any] = []
            for r in rows:
                t = list(get(r))
                for i, p in procs:
                    if t[i] is not None:
                        t[i] = p(t[i])
                params.append(tuple(t))
        else:
            params = list(map(get, rows))
    except KeyError:  # rows with other keys: SQLAlchemy says what is wrong
        conn.execute(stmt, rows)
        return
    conn.exec_driver_sql(sql, params)


def driver_mark(conn: Connection) -> str:
    """The driver's placeholder, for SQL sent through `exec_driver_sql`."""
    return "?" if conn.dialect.paramstyle == "qmark" else "%s"


def select_in(
    conn: Connection, table: Table, columns: Sequence[str], key: str, values: Sequence[Any]
) -> list[tuple[Any, ...]]:
    """`SELECT columns FROM table WHERE key IN (values)` straight through the driver: for
    columns whose values need no conversion (text, integers), on the paths that run
    after every command, where SQLAlchemy's statement handling (an expanding IN) cost more
    than the query."""
    if not values:
        return []
    for name in (*columns, key):
        if name not in table.c:
            raise KeyError(f"{table.name} has no column {name}")
    mark = driver_mark(conn)
    sql = f"SELECT {', '.join(columns)} FROM {table.name} WHERE {key} IN ({', '.join([mark] * len(values))})"
    return [tuple(r) for r in conn.exec_driver_sql(sql, tuple(values))]


_STREAM_IDS: dict[Any, str] = {}


def stream_id_of(event: Any) -> str:
    """`str(event.originator_id)`, remembered: every view needs it for every event, and a
    stream's events come together."""
    oid = event.originator_id
    found = _STREAM_IDS.get(oid)
    if found is None:
        if len(_STREAM_IDS) >= 100_000:
            _STREAM_IDS.clear()
        found = _STREAM_IDS[oid] = str(oid)
    return found


def group_by_class(events: Sequence[tuple[int, Any]]) -> dict[type, list[int]]:
    """The indexes in `events` of each event class's events."""
    out: dict[type, list[int]] = {}
    for k, (_, e) in enumerate(events):
        cls = type(e)
        found = out.get(cls)
        if found is None:
            out[cls] = [k]
        else:
            found.append(k)
    return out


def _plain_insert(stmt: Any) -> bool:
    """A `table.insert()` with nothing else (no values, no SELECT, no RETURNING)."""
    return (
        isinstance(stmt, Insert)
        and stmt.select is None
        and not stmt._values
        and not stmt._multi_values
        and not stmt._returning
        and not stmt._post_values_clause
        and isinstance(stmt.table, Table)
    )


def _copy_many(conn: Connection, stmt: Any, keys: tuple[str, ...], rows: list[dict[str, Any]]) -> None:
    """PostgreSQL: the rows of a plain INSERT sent with COPY, on the connection's own
    transaction (so they commit or roll back with the view's position)."""
    if not _plain_insert(stmt):
        conn.execute(stmt, rows)
        return
    from psycopg import sql

    table: Table = stmt.table
    try:
        columns = [table.c[k] for k in keys]
    except KeyError:
        conn.execute(stmt, rows)
        return
    dialect = conn.dialect
    procs = [(i, p) for i, c in enumerate(columns) if (p := c.type._cached_bind_processor(dialect)) is not None]
    get = itemgetter(*keys) if len(keys) > 1 else (lambda r, k=keys[0]: (r[k],))
    copy = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(table.name), sql.SQL(", ").join(sql.Identifier(c.name) for c in columns)
    )
    raw = conn.connection.driver_connection
    assert raw is not None
    with raw.cursor() as cur, cur.copy(copy) as cp:
        for r in rows:
            values = get(r)
            if procs:
                values = list(values)
                for i, p in procs:
                    if values[i] is not None:
                        values[i] = p(values[i])
            cp.write_row(values)


class _FlushFirst:
    """The connection a write-behind view's handlers see: any statement first writes
    the rows kept back, so the order of effects is the order of the events."""

    __slots__ = ("_conn", "_view")

    def __init__(self, conn: Connection, view: WriteBehind) -> None:
        self._conn = conn
        self._view = view

    def execute(self, *args: Any, **kwargs: Any) -> Any:
        self._view.flush(self._conn)
        return self._conn.execute(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


class WriteBehind:
    """A view that keeps the rows it inserts back and writes them in bulk (one
    executemany per statement) at the end of the runner's batch (`flush(conn)`, called
    after a view's events of a batch and before its position moves). While a row is
    kept back, later events of the same batch may change it in place (`kept`). Any
    other statement (an update, a delete, a read) first writes what was kept back, so
    the order of effects is the order of the events. Without bulk writes (`bulk`
    False) every row is written at once. A batch handled again after a failure starts
    from an empty buffer.

    Subclasses register their handlers on their own `@singledispatchmethod fold`."""

    bulk: bool = True
    fold: Any

    def _reset(self) -> None:
        self._rows: dict[Any, list[dict[str, Any]]] = {}
        self._kept: dict[Any, dict[str, Any]] = {}
        self._seen = 0

    def _folds(self) -> dict[type, Any]:
        cache = self.__dict__.get("_fold_cache")
        if cache is None:
            cache = self.__dict__["_fold_cache"] = {}
        return cache

    def _fold_for(self, cls: type) -> Any:
        """The function registered for events of `cls` (None: the event is ignored)."""
        cache = self._folds()
        try:
            return cache[cls]
        except KeyError:
            pass
        _ = self.fold  # applies deferred registrations
        sdm = next(k.__dict__["fold"] for k in type(self).__mro__ if "fold" in k.__dict__)
        fn = sdm.dispatcher.dispatch(cls)
        cache[cls] = found = None if fn is sdm.func else fn
        return found

    def handle(self, event: Any, conn: Connection, position: int) -> None:
        if position <= self._seen:
            self._reset()  # the batch is being handled again (it failed): what was kept back is void
        self._seen = position
        fn = self._fold_for(type(event))
        if fn is not None:
            fn(self, event, _FlushFirst(conn, self) if self.bulk else conn, position)

    def handle_batch(
        self, events: Sequence[tuple[int, Any]], conn: Connection, by_class: dict[type, list[int]] | None = None
    ) -> None:
        """`handle` for each of a batch's events, in order, dispatched once per event
        class; `by_class`: the indexes in `events` of each class's events."""
        if not events:
            return
        # The runner writes what was kept back at the end of every batch: anything still
        # here is left from a batch that failed, and void.
        self._reset()
        if by_class is None:
            by_class = group_by_class(events)
        fold_for = self._fold_for
        wanted = [(idx, fn) for cls, idx in by_class.items() if (fn := fold_for(cls)) is not None]
        if wanted:
            proxy: Any = _FlushFirst(conn, self) if self.bulk else conn
            if len(wanted) == 1:
                idx, fn = wanted[0]
                for k in idx:
                    i, e = events[k]
                    fn(self, e, proxy, i)
            else:
                fns = {}
                for idx, fn in wanted:
                    fns.update(dict.fromkeys(idx, fn))
                for k in sorted(fns):
                    i, e = events[k]
                    fns[k](self, e, proxy, i)
        self._seen = events[-1][0]

    def _insert(
        self, conn: Any, stmt: Any, rows: dict[str, Any] | list[dict[str, Any]], position: int = 0, key: Any = None
    ) -> None:
        """Insert rows (kept back in bulk mode; `key`: a row later events may change)."""
        if not self.bulk:
            conn.execute(stmt, rows)
            return
        if isinstance(rows, list):
            self._rows.setdefault(stmt, []).extend(rows)
        else:
            self._rows.setdefault(stmt, []).append(rows)
            if key is not None:
                self._kept[key] = rows

    def kept(self, key: Any) -> dict[str, Any] | None:
        """A row inserted in this batch and not written yet (changes to it are written with it)."""
        return self._kept.get(key) if self._kept else None

    def _execute(self, conn: Any, stmt: Any, params: dict[str, Any], position: int = 0) -> Any:
        return conn.execute(stmt, params)

    def flush(self, conn: Connection) -> None:
        if not self._rows:
            return
        rows, self._rows = self._rows, {}
        self._kept = {}
        raw = conn._conn if isinstance(conn, _FlushFirst) else conn
        for stmt, batch in rows.items():
            insert_many(raw, stmt, batch)

    def clear(self, conn: Connection) -> None:
        self._reset()
        super().clear(conn)  # type: ignore[misc]


def engine_for(app: Source) -> Engine:
    """The same database the events live in (a separate connection pool)."""
    cfg = app.config
    if cfg.is_postgres:
        assert cfg.url
        url = cfg.url.replace("postgresql://", "postgresql+psycopg://", 1).replace(
            "postgres://", "postgresql+psycopg://", 1
        )
        connect_args = {"options": f"-csearch_path={cfg.schema}"} if cfg.schema else {}
        return create_engine(url, connect_args=connect_args, pool_size=5, max_overflow=5, pool_pre_ping=True)
    path = app.config.env()["SQLITE_DBNAME"]
    engine = create_engine(f"sqlite:///{path}", connect_args={"timeout": 30})

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn: Any, _: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        # Views are derived: their commits need not wait for the disk. In WAL mode a
        # NORMAL commit survives the process crashing; a power cut may roll back the
        # last view transactions, rows and position together, and the runner folds those
        # events again. The events, keys and trail (the recorder's connections) keep
        # SQLite's default FULL: each of their commits is on disk when it returns.
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    return engine


REBUILD_BATCH = 20_000


def schema_signature(view: View, dialect: Any) -> str:
    """A hash of the DDL of a view's tables and their indexes, as this database would run it."""
    from sqlalchemy.schema import CreateIndex, CreateTable

    h = hashlib.sha256()
    for t in sorted(view.tables, key=lambda t: t.name):
        h.update(str(CreateTable(t).compile(dialect=dialect)).encode())
        for ix in sorted(t.indexes, key=lambda ix: ix.name or ""):
            h.update(str(CreateIndex(ix).compile(dialect=dialect)).encode())
    return h.hexdigest()


# Inside `Runner.reads_together`: the heads at which the views were seen caught up.
_checked: ContextVar[list[int] | None] = ContextVar("anxin_views_checked", default=None)


class Runner:
    """Keeps a set of views up to date with the application's log."""

    def __init__(self, app: Source, views: Iterable[View], batch: int = 1000) -> None:
        self.app = app
        self.views = list(views)
        self.by_name = {v.name: v for v in self.views}
        self.batch = batch
        self.engine = engine_for(app)
        self._lock = threading.Lock()
        # Streams whose events this runner skipped (failed authentication), by stream id:
        # the first version skipped. A rebuild starts it afresh and names them.
        self.skipped: dict[str, int] = {}
        # The log's head at which every view was last seen caught up: a read that finds
        # the head there still needs no position query (a page of four reads asks once).
        self._settled = 0
        metadata.create_all(self.engine)
        with self.engine.begin() as conn:
            # One process at a time (two workers starting together): take the write lock first.
            if conn.dialect.name == "postgresql":
                conn.exec_driver_sql("LOCK TABLE view_schema IN EXCLUSIVE MODE")
            else:
                conn.execute(update(view_schema).where(view_schema.c.view == "").values(signature=""))
            known = {r[0] for r in conn.execute(select(tracking.c.view))}
            signed = {r[0]: r[1] for r in conn.execute(select(view_schema.c.view, view_schema.c.signature))}
            for v in self.views:
                sig = schema_signature(v, conn.dialect)
                if v.name not in known:
                    conn.execute(tracking.insert().values(view=v.name, position=0))
                elif signed.get(v.name) != sig:
                    # Folded into tables of another shape (or before shapes were recorded):
                    # make them anew and fold the whole log again.
                    for t in reversed(v.tables):
                        t.drop(conn, checkfirst=True)
                    for t in v.tables:
                        t.create(conn)
                    conn.execute(update(tracking).where(tracking.c.view == v.name).values(position=0))
                if signed.get(v.name) is None:
                    conn.execute(view_schema.insert().values(view=v.name, signature=sig))
                elif signed[v.name] != sig:
                    conn.execute(update(view_schema).where(view_schema.c.view == v.name).values(signature=sig))

    def positions(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            return {r[0]: r[1] for r in conn.execute(select(tracking.c.view, tracking.c.position))}

    def catch_up(
        self,
        views: Sequence[View] | None = None,
        progress: Callable[[int, int], None] | None = None,
        batch: int | None = None,
        fresh: Sequence[tuple[int, Any]] = (),
    ) -> int:
        """Process everything recorded so far; returns how many events were applied.

        `fresh`: events this process has just written, as (notification id, domain
        event), contiguous. Where the log's next unprocessed stretch is exactly those,
        they are folded as they are, not read back and decrypted again; anything else
        (another process's writes, a gap) is read from the log."""
        views = list(views or self.views)
        batch = batch or self.batch
        applied = 0
        if not views:
            return 0
        every = len(views) == len(self.views)
        mark = _checked.get()
        if every and not fresh:
            # The common case of a read: nothing new since every view was last seen caught
            # up. Asked without the lock, so that a worker's concurrent requests do not
            # queue behind each other for it (the mark only moves forward, but for a rebuild);
            # and once only for the reads of one page (`reads_together`).
            if mark:
                return 0
            head = self.app.recorder.max_notification_id() or 0
            if head <= self._settled:
                if mark is not None:
                    mark.append(head)
                return 0
        with self._lock, _no_gc_pauses():
            head = self.app.recorder.max_notification_id() or 0
            if every and head <= self._settled:
                # Positions only move forward (a rebuild in this process resets the mark;
                # one run by another process, meanwhile, is seen once it has folded anew).
                return 0
            pos = self.positions()
            while True:
                start = min(pos[v.name] for v in views)
                if start >= head:
                    break
                if fresh and fresh[0][0] == start + 1 and fresh[-1][0] - fresh[0][0] == len(fresh) - 1:
                    # (in memory already: as many as a rebuild folds at once, in one transaction)
                    events = list(fresh[: min(max(batch, REBUILD_BATCH), head - start)])
                    fresh = fresh[len(events) :]
                else:
                    notes = self.app.recorder.select_notifications(start=start + 1, limit=batch, stop=head)
                    if not notes:
                        break
                    events = [(n.id, self._decode(n)) for n in notes]
                last = events[-1][0]
                try:
                    self._apply(views, pos, events, last)
                except _Raced:
                    pos = self.positions()  # another runner moved them: where are they now?
                    continue
                for v in views:
                    pos[v.name] = max(pos[v.name], last)
                applied += len(events)
                if progress:
                    progress(last, head)
            if every and all(pos[v.name] >= head for v in views):
                self._settled = max(self._settled, head)
                if mark is not None:
                    mark.append(head)
        return applied

    @contextmanager
    def reads_together(self) -> Iterator[None]:
        """Several reads of the views for one page: the log's head is asked once, by the
        first; the others read the views as that one left them (what a single query
        across them would see). A command inside still folds its own events."""
        if _checked.get() is not None:
            yield
            return
        token = _checked.set([])
        try:
            yield
        finally:
            _checked.reset(token)

    def _apply(self, views: Sequence[View], pos: dict[str, int], events: list[tuple[int, Any]], last: int) -> None:
        """One transaction: every view's new position and its rows for this batch.

        The positions move first, by compare-and-set (one statement for the views that
        were at the same place, usually all of them): that also takes the write lock
        (SQLite) or the tracking rows' locks (PostgreSQL), so a second runner folding the
        same batch at the same time finds the positions moved, undoes its batch and
        re-reads, before it writes any row."""
        by_class: dict[type, list[int]] | None = None
        moving: dict[int, list[str]] = {}  # the views to move to `last`, by where they were
        todos: list[tuple[View, list[tuple[int, Any]], bool]] = []
        for v in views:
            seen = pos[v.name]
            whole = events[0][0] > seen
            todo = events if whole else [(i, e) for i, e in events if i > seen]
            if todo:
                moving.setdefault(seen, []).append(v.name)
                todos.append((v, todo, whole))
        with self.engine.begin() as conn:
            for seen, names in moving.items():
                moved = conn.execute(
                    update(tracking)
                    .where(tracking.c.view.in_(names), tracking.c.position == seen)
                    .values(position=last)
                ).rowcount
                if moved != len(names):
                    # Another runner got here first: undo this batch and re-read.
                    raise _Raced()
            for v, todo, whole in todos:
                batch = getattr(v, "handle_batch", None)
                if batch is not None:
                    if whole and by_class is None:
                        by_class = group_by_class(events)
                    batch(todo, conn, by_class if whole else None)
                else:
                    handle = v.handle  # bind once: the dispatcher builds a wrapper on each access
                    for i, e in todo:
                        handle(e, conn, i)
                v.flush(conn)

    def _decode(self, n: Any) -> Any:
        try:
            return self.app.mapper.to_domain_event(n)
        except ContentErased:
            oid = n.originator_id if isinstance(n.originator_id, UUID) else UUID(str(n.originator_id))
            return ErasedEvent(oid, n.originator_version, n.topic)
        except ContentTampered as e:
            # One altered event (or key) must not stop every view: set its stream aside.
            oid = n.originator_id if isinstance(n.originator_id, UUID) else UUID(str(n.originator_id))
            self.app.quarantine_stream(e.stream_id, e.version)
            self.skipped.setdefault(str(oid), n.originator_version)
            return UnreadableEvent(oid, n.originator_version, n.topic)

    def rebuild(self, names: Sequence[str] | None = None, progress: Callable[[int, int], None] | None = None) -> int:
        """Drop a view's rows and fold the whole log again."""
        views = [self.by_name[n] for n in names] if names else self.views
        with self._lock, self.engine.begin() as conn:
            self._settled = 0
            self.skipped = {}
            for v in views:
                v.clear(conn)
                conn.execute(update(tracking).where(tracking.c.view == v.name).values(position=0))
        self.app.keystore.preload()
        # Larger transactions while folding the whole log: fewer commits, and a stream's
        # events (saved together) mostly land in one batch, where kept-back rows absorb them.
        n = self.catch_up(views, progress, batch=max(self.batch, REBUILD_BATCH))
        self.analyze()
        return n

    def analyze(self) -> None:
        """PostgreSQL: refresh the planner's statistics of the view tables after they were
        filled in bulk (a rebuild), as for the store (`Database.analyze`)."""
        if self.engine.dialect.name != "postgresql":
            return
        with self.engine.begin() as conn:
            for table in metadata.sorted_tables:
                conn.exec_driver_sql(f"ANALYZE {table.name}")

    def erase(self, stream_id: str) -> None:
        with self.engine.begin() as conn:
            for v in self.views:
                v.erase(conn, stream_id)


_GC_LOCK = threading.Lock()
_GC_PAUSES = [0, True]  # pauses under way; whether the collector was on before the first


@contextmanager
def no_gc_pauses() -> Iterator[None]:
    """While the log is folded (or the trail verified): no cyclic garbage collection.
    Decoding makes many small objects that live until their batch is written, so the
    collector would scan them (and the rest of the heap) again and again for nothing;
    reference counting still frees them. Pauses nest across threads (a web server's
    catch-up thread and a request): the collector comes back, as it was before the
    first pause, when the last one ends."""
    with _GC_LOCK:
        if _GC_PAUSES[0] == 0:
            _GC_PAUSES[1] = gc.isenabled()
            gc.disable()
        _GC_PAUSES[0] += 1
    try:
        yield
    finally:
        with _GC_LOCK:
            _GC_PAUSES[0] -= 1
            if _GC_PAUSES[0] == 0 and _GC_PAUSES[1]:
                gc.enable()


_no_gc_pauses = no_gc_pauses


class _Raced(Exception):
    pass


__all__ = [
    "View",
    "WriteBehind",
    "Runner",
    "stream_id_of",
    "ErasedEvent",
    "UnreadableEvent",
    "metadata",
    "tracking",
    "Table",
    "Column",
    "String",
    "Integer",
]
