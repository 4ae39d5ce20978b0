"""What every view is: a `View` (tables plus a fold) over the events the runner hands
it, the placeholders of events it cannot read (`ErasedEvent`, `UnreadableEvent`), the
`metadata` every view's tables are declared on, and what the folds share: an event's
stream id, a batch's events by class, an erased stream's aggregate and directory row."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from eventsourcing.dispatch import singledispatchmethod
from sqlalchemy import Connection, MetaData, Table, text

metadata = MetaData()


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


DIRECTORY_ROW = text(
    "SELECT school_id, class_name, owner_id, subject_id, status FROM anxin_directory WHERE stream_id = :sid"
)


def directory_row(conn: Connection, stream_id: str) -> Any:
    """The clear directory row of a stream (for an erased stream's first event: the
    only ids left of it). The view's engine reaches the same database and schema."""
    return conn.execute(DIRECTORY_ROW, {"sid": stream_id}).first()


def aggregate_of(topic: str) -> tuple[str, str]:
    """('BullyingCase', 'Reported') from 'domain.bullying:BullyingCase.Reported'."""
    qual = topic.rsplit(":", 1)[-1]
    agg, _, name = qual.rpartition(".")
    return agg, name
