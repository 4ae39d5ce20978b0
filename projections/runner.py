"""The runner (`Runner`): keeps a set of views up to date with the application's log.

It reads the application's notification log (SQLite has no subscriptions, so it polls),
decrypts each event once, hands it to every view that has not yet seen it, and moves
each view's position (`tracking`) in the same transaction as its rows: a view is
exactly-once, because the position only advances by compare-and-set, and a replayed
event is a no-op. Erased streams reach views as `ErasedEvent` placeholders. A view
whose tables changed shape (`view_schema`) is made anew and folded again; a rebuild
folds the log in larger batches."""

from __future__ import annotations

import gc
import hashlib
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any
from uuid import UUID

from sqlalchemy import Column, Engine, Integer, String, Table, create_engine, event, select, update

from domain.common import ContentErased, ContentTampered
from projections.view import ErasedEvent, UnreadableEvent, View, group_by_class, metadata

if TYPE_CHECKING:
    from projections.source import Source

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
