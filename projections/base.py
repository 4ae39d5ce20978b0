"""Views are folds of the event log into SQLAlchemy tables.

Each view declares its tables and handles the events it cares about. The runner
reads the application's notification log (SQLite has no subscriptions, so it polls),
decrypts each event once, hands it to every view that has not yet seen it, and moves
each view's position in the same transaction as its rows: a view is exactly-once,
because the position only advances by compare-and-set, and a replayed event is a
no-op. Erased streams reach views as `ErasedEvent` placeholders.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from uuid import UUID

from eventsourcing.dispatch import singledispatchmethod
from sqlalchemy import (
    Column,
    Connection,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    create_engine,
    event,
    select,
    update,
)

from anxin.crypto import StreamErased

if TYPE_CHECKING:
    from anxin.app import Core

metadata = MetaData()

tracking = Table(
    "view_tracking",
    metadata,
    Column("view", String(64), primary_key=True),
    Column("position", Integer, nullable=False),
)


@dataclass(frozen=True)
class ErasedEvent:
    """What a view sees of an event whose stream was shredded: ids only."""

    originator_id: UUID
    originator_version: int
    topic: str


def seal_for(app: Core, stream_id: str, text: str) -> bytes:
    """Encrypt a value a view keeps (a name, a label) under its stream's own key, so
    shredding the stream erases it from views too."""
    sid = UUID(str(stream_id)).hex
    aes = app.keystore.cipher_for_read(sid, 1)
    nonce = os.urandom(12)
    return nonce + aes.encrypt(nonce, text.encode(), b"view\x1f" + sid.encode())


def open_for(app: Core, stream_id: str, blob: bytes | None) -> str:
    """The value sealed by `seal_for`, or 已删除 once the stream is erased."""
    from anxin.app import ERASED_LABEL

    if blob is None:
        return ""
    sid = UUID(str(stream_id)).hex
    try:
        aes = app.keystore.cipher_for_read(sid, 1)
        return aes.decrypt(blob[:12], blob[12:], b"view\x1f" + sid.encode()).decode()
    except StreamErased:
        return ERASED_LABEL


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


def engine_for(app: Core) -> Engine:
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
        cur.close()

    return engine


class Runner:
    """Keeps a set of views up to date with the application's log."""

    def __init__(self, app: Core, views: Iterable[View], batch: int = 1000) -> None:
        self.app = app
        self.views = list(views)
        self.by_name = {v.name: v for v in self.views}
        self.batch = batch
        self.engine = engine_for(app)
        self._lock = threading.Lock()
        metadata.create_all(self.engine)
        with self.engine.begin() as conn:
            known = {r[0] for r in conn.execute(select(tracking.c.view))}
            for v in self.views:
                if v.name not in known:
                    conn.execute(tracking.insert().values(view=v.name, position=0))

    def positions(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            return {r[0]: r[1] for r in conn.execute(select(tracking.c.view, tracking.c.position))}

    def catch_up(self, views: Sequence[View] | None = None, progress: Callable[[int, int], None] | None = None) -> int:
        """Process everything recorded so far; returns how many events were applied."""
        views = list(views or self.views)
        applied = 0
        if not views:
            return 0
        with self._lock:
            head = self.app.recorder.max_notification_id() or 0
            while True:
                pos = self.positions()
                start = min(pos[v.name] for v in views)
                if start >= head:
                    break
                notes = self.app.recorder.select_notifications(start=start + 1, limit=self.batch, stop=head)
                if not notes:
                    break
                events = [(n.id, self._decode(n)) for n in notes]
                last = notes[-1].id
                try:
                    self._apply(views, pos, events, last)
                except _Raced:
                    continue
                applied += len(events)
                if progress:
                    progress(last, head)
        return applied

    def _apply(self, views: Sequence[View], pos: dict[str, int], events: list[tuple[int, Any]], last: int) -> None:
        """One transaction: every view's rows for this batch and its new position."""
        with self.engine.begin() as conn:
            for v in views:
                seen = pos[v.name]
                todo = [(i, e) for i, e in events if i > seen]
                if not todo:
                    continue
                handle = v.handle  # bind once: the dispatcher builds a wrapper on each access
                for i, e in todo:
                    handle(e, conn, i)
                v.flush(conn)
                moved = conn.execute(
                    update(tracking).where(tracking.c.view == v.name, tracking.c.position == seen)
                    .values(position=last)
                ).rowcount
                if moved != 1:
                    # Another runner got here first: undo this batch and re-read.
                    raise _Raced()

    def _decode(self, n: Any) -> Any:
        try:
            return self.app.mapper.to_domain_event(n)
        except StreamErased:
            oid = n.originator_id if isinstance(n.originator_id, UUID) else UUID(str(n.originator_id))
            return ErasedEvent(oid, n.originator_version, n.topic)

    def rebuild(self, names: Sequence[str] | None = None, progress: Callable[[int, int], None] | None = None) -> int:
        """Drop a view's rows and fold the whole log again."""
        views = [self.by_name[n] for n in names] if names else self.views
        with self._lock, self.engine.begin() as conn:
            for v in views:
                v.clear(conn)
                conn.execute(update(tracking).where(tracking.c.view == v.name).values(position=0))
        self.app.keystore.preload()
        return self.catch_up(views, progress)

    def erase(self, stream_id: str) -> None:
        with self.engine.begin() as conn:
            for v in self.views:
                v.erase(conn, stream_id)


class _Raced(Exception):
    pass


__all__ = ["View", "Runner", "ErasedEvent", "metadata", "tracking", "Table", "Column", "String", "Integer"]
