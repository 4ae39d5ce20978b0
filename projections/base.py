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

This module gathers the read side's common parts, each kept in a module of its own:

- `projections.source`: `Source` (what the views need of the application), `StudentRef`;
- `projections.view`: `View`, `metadata`, `ErasedEvent`, `UnreadableEvent` and the
  folds' shared helpers (`stream_id_of`, `aggregate_of`, `directory_row`);
- `projections.writebehind`: `WriteBehind`, `own_fold`;
- `projections.driver`: `insert_many`, `select_in`, `driver_mark` (straight through the driver);
- `projections.sealing`: `seal_for`, `seal_det`, `open_for` (values under a stream's key);
- `projections.runner`: `Runner`, `tracking`, `view_schema`, `engine_for`, `no_gc_pauses`.
"""

from __future__ import annotations

from sqlalchemy import Column, Integer, String, Table

from projections.driver import driver_mark, insert_many, select_in
from projections.runner import (
    REBUILD_BATCH,
    Runner,
    engine_for,
    no_gc_pauses,
    schema_signature,
    tracking,
    view_schema,
)
from projections.sealing import open_for, seal_det, seal_for
from projections.source import Source, StudentRef
from projections.view import (
    ErasedEvent,
    UnreadableEvent,
    View,
    aggregate_of,
    directory_row,
    group_by_class,
    metadata,
    stream_id_of,
)
from projections.writebehind import WriteBehind, own_fold

__all__ = [
    "View",
    "WriteBehind",
    "Runner",
    "Source",
    "StudentRef",
    "stream_id_of",
    "ErasedEvent",
    "UnreadableEvent",
    "metadata",
    "tracking",
    "view_schema",
    "Table",
    "Column",
    "String",
    "Integer",
    "REBUILD_BATCH",
    "engine_for",
    "no_gc_pauses",
    "schema_signature",
    "driver_mark",
    "insert_many",
    "select_in",
    "group_by_class",
    "seal_for",
    "seal_det",
    "open_for",
    "aggregate_of",
    "directory_row",
    "own_fold",
]
