"""Views that keep the rows they insert back and write them in bulk (`WriteBehind`),
each with a dispatcher of its own (`own_fold`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from eventsourcing.dispatch import singledispatchmethod
from sqlalchemy import Connection

from projections.driver import insert_many
from projections.view import group_by_class

if TYPE_CHECKING:
    from projections.source import Source


def _unknown(self: Any, event: Any, conn: Connection, position: int) -> None:
    """Events this view does not know are ignored (each view has its own dispatcher)."""


def own_fold() -> singledispatchmethod[None]:
    """A `fold` dispatcher for one view class (`fold = own_fold()`, then `@fold.register`
    on its handlers): a registry of its own, so views never share handlers."""
    return singledispatchmethod(_unknown)


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

    Subclasses register their handlers on their own `fold` (`own_fold()`)."""

    bulk: bool = True
    fold: Any
    app: Source

    def __init__(self, app: Any = None) -> None:
        self.app = app
        self._reset()

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
