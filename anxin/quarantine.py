"""Quarantine: a stream whose event or data key fails authentication (altered or moved
bytes) is set aside, and every other stream keeps serving.

The stream is recorded once in `anxin_quarantine` (ids and codes only: its id, kind and
school from the directory, the version that failed, whether an event or the key failed,
when it was first found), lists show it as 无法读取, a page that opens it answers with
`Unreadable`, and the views' runner skips its unreadable events. `anxin check` reports
every quarantined stream and releases the ones that read again (restored from a backup).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

from anxin.crypto import Tampered
from domain.common import UNREADABLE_LABEL, DomainError

if TYPE_CHECKING:
    from anxin.core import Core

log = logging.getLogger("anxin.quarantine")


class Unreadable(Tampered, DomainError):
    """`Tampered` as the application says it to a person: still a Tampered (the stream and
    version that failed) for code that checks for one, and a DomainError that pages, the
    API and the command line answer with this message."""

    code = "unreadable"
    message = (
        "该记录未通过完整性校验，已隔离，暂时无法读取；其他记录不受影响。请联系管理员运行 anxin check 并从备份恢复"
    )

    def __init__(self, stream_id: str = "", version: int = 0) -> None:
        Tampered.__init__(self, stream_id, version)
        self.details: dict[str, Any] = {}
        self.text = self.message

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class Quarantined:
    stream_id: str
    kind: str | None
    school_id: str | None
    version: int
    failed: str  # "event", "key" or "snapshot"
    found_at: str


def stream_uuid(stream_id: str) -> str | None:
    """The directory's form of a stream id; None for a named key's id (not a stream)."""
    try:
        return str(UUID(str(stream_id)))
    except ValueError:
        return None


_lock = threading.Lock()


def record(app: Core, stream_id: str, version: int, failed: str | None = None) -> bool:
    """Set a stream aside (once; later finds leave the first row). `version` 0, or
    `failed` "key": its data key failed. Never raises: a read must still answer. Whether
    a row was written now."""
    sid = stream_uuid(stream_id)
    failed = failed or ("key" if version == 0 else "event")
    seen: set[str] = app.__dict__.setdefault("_quarantined", set())
    if sid is None or sid in seen:  # (a named key is no stream: `anxin check` reports it)
        return False
    log.warning("quarantined stream %s (%s failed authentication, version %d)", sid, failed, version)
    try:
        with _lock:
            row = app.db.fetchone("SELECT kind, school_id FROM {t}anxin_directory WHERE stream_id = ?", (sid,))
            app.db.execute(
                "INSERT INTO {t}anxin_quarantine (stream_id, kind, school_id, version, failed, found_at) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (stream_id) DO NOTHING",
                (
                    sid,
                    row[0] if row else None,
                    row[1] if row else None,
                    version,
                    failed,
                    datetime.now(UTC).isoformat(timespec="seconds"),
                ),
            )
    except Exception:  # e.g. a read-only replica, or the database busy: reported again next time
        log.exception("could not record the quarantine of %s", sid)
        return False
    seen.add(sid)
    return True


def listed(app: Core) -> list[Quarantined]:
    return [
        Quarantined(r[0], r[1], r[2], int(r[3]), r[4], r[5])
        for r in app.db.fetch(
            "SELECT stream_id, kind, school_id, version, failed, found_at FROM {t}anxin_quarantine "
            "ORDER BY found_at, stream_id"
        )
    ]


def release(app: Core, stream_ids: list[str]) -> None:
    """Streams that read again (restored): no longer quarantined."""
    if not stream_ids:
        return
    with app.db.transaction() as c:
        c.executemany(app.db.q("DELETE FROM {t}anxin_quarantine WHERE stream_id = ?"), [(s,) for s in stream_ids])
    seen: set[str] = app.__dict__.setdefault("_quarantined", set())
    seen.difference_update(stream_ids)


def count(app: Core) -> int:
    return int(app.db.fetchone("SELECT COUNT(*) FROM {t}anxin_quarantine")[0])  # type: ignore[index]


def unreadable(app: Core, error: Any) -> Unreadable:
    """A `Tampered` met while reading a stream: recorded, and said to the reader."""
    record(app, error.stream_id, error.version)
    return Unreadable(error.stream_id, error.version)


__all__ = ["UNREADABLE_LABEL", "Unreadable", "Quarantined", "record", "listed", "release", "count", "unreadable"]
