"""Record numbers (编号) that people read aloud and type: one for every bullying case,
support file and mentoring pair, counted per kind, school and calendar year, e.g.
`QL-2026-0003`, the third bullying case the school recorded in 2026.

Why this form, rather than the bureau's `欺凌〔2026〕第0003号` or a fragment of the id:
- the kind is the pinyin initials of the word teachers use for it: **QL** 欺凌 (a
  bullying case), **XL** 心理 (a psychological-support file), **JD** 结对 (a mentoring
  pair). Two capital letters are said aloud ("Q L") over the phone and typed on any
  keyboard without switching the input method, which 〔〕 and 第…号 are not; they share
  no letter with the hex digits of the old numbers, so both can be typed in one field;
- the calendar year (in the schools' time zone: a case recorded at 01:00 on 1 January in
  Beijing is of the new year), then the count within it: four digits with leading zeros
  (a school records far fewer than 10,000 of a kind a year; a 10,000th has five digits);
- dashes to read the groups; typed in lower case, without the dashes or without the
  leading zeros (`ql-2026-3`, `QL20260003`), it is the same number (`parse`).
Numbers start again at every school, so the number does not say which school: where a
reader sees several schools (a supervisor), the school is named beside it.

A number is allocated once, when the stream's first event is saved, in that event's
transaction (the recorder's seam, `Database.write_with_events`): no record exists
without its number, and a failed save takes its number back. The last number of each
(kind, school, year) is one row of `anxin_number_counters`, moved by an upsert that
returns the new count: two saves at once that number the same kind at the same school in
the same year queue on that one row (SQLite: on its single writer), and nothing else
does; the UNIQUE (kind, school, year, seq) constraint would refuse a duplicate anyway. A
counter's first row starts from the numbers already given (a store from before counters).
Streams saved before numbers existed are numbered when a process opens the store
(`number_existing`), in the order they were created.

The table holds ids and numbers only. A number says how many records of its kind a
school had that year, which a school's own staff may know; it names no one.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

if TYPE_CHECKING:
    from anxin.storage import Cursor, Database

TABLE = "anxin_numbers"
COLUMNS = (
    "stream_id TEXT PRIMARY KEY, kind TEXT NOT NULL, school_id TEXT NOT NULL, year INTEGER NOT NULL, "
    "seq INTEGER NOT NULL, UNIQUE (kind, school_id, year, seq)"
)
# The last number given per kind, school and year: the one row an allocation locks.
COUNTERS_TABLE = "anxin_number_counters"
COUNTERS_COLUMNS = (
    "kind TEXT NOT NULL, school_id TEXT NOT NULL, year INTEGER NOT NULL, last INTEGER NOT NULL, "
    "PRIMARY KEY (kind, school_id, year)"
)
# The kinds of record that are numbered (the directory's `kind`), by their letters.
PREFIXES = {"case": "QL", "file": "XL", "pairing": "JD"}
KINDS = {prefix: kind for kind, prefix in PREFIXES.items()}
WIDTH = 4  # digits of the count, with leading zeros

# The next `k` numbers of (kind, school, year), counted inside the saving transaction: the
# counter's row moved by k (made, the first time, from the numbers given before), locked
# until the save commits; it returns the last of them.
_COUNT = (
    "INSERT INTO {t}anxin_number_counters AS c (kind, school_id, year, last) "
    "SELECT ?, ?, ?, COALESCE((SELECT MAX(seq) FROM {t}anxin_numbers WHERE kind = ? AND school_id = ? "
    "AND year = ?), 0) + ? WHERE 1 = 1 "
    "ON CONFLICT (kind, school_id, year) DO UPDATE SET last = c.last + ? RETURNING last"
)
_NUMBER = (
    "INSERT INTO {t}anxin_numbers (stream_id, kind, school_id, year, seq) VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT (stream_id) DO NOTHING"
)
_UNNUMBERED = (
    "SELECT d.stream_id, d.kind, d.school_id FROM {t}anxin_directory d "
    "LEFT JOIN {t}anxin_numbers n ON n.stream_id = d.stream_id "
    "WHERE n.stream_id IS NULL AND d.school_id IS NOT NULL AND d.kind IN ('case', 'file', 'pairing')"
)


@dataclass(frozen=True)
class RecordNumber:
    """A record's number, with its school (id and name) for a reader who sees several."""

    stream_id: str
    kind: str
    school_id: str
    school: str
    year: int
    seq: int

    @property
    def text(self) -> str:
        return format_number(self.kind, self.year, self.seq)

    def __str__(self) -> str:
        return self.text


def format_number(kind: str, year: int, seq: int) -> str:
    """`QL-2026-0003`."""
    return f"{PREFIXES[kind]}-{year}-{seq:0{WIDTH}d}"


# Letters, year and count, any of - _ . space or a dash of a Chinese keyboard between them.
_TYPED = re.compile(r"^(QL|XL|JD)[\s\-_.—–－]*(\d{4})[\s\-_.—–－]*0*(\d{1,7})$")


def parse(typed: str) -> tuple[str, int, int] | None:
    """(kind, year, count) of a typed number, however it was spelled: upper or lower case,
    full-width letters or digits (a Chinese input method's), with or without the dashes
    and the leading zeros. None if it is not one."""
    text = unicodedata.normalize("NFKC", typed or "").strip().upper()
    m = _TYPED.match(text)
    if m is None or int(m[3]) == 0:
        return None
    return KINDS[m[1]], int(m[2]), int(m[3])


@functools.lru_cache(maxsize=8)
def _zone(timezone: str) -> ZoneInfo:
    return ZoneInfo(timezone)


def year_of(at: datetime, timezone: str) -> int:
    """The calendar year of a moment on the schools' wall clock (naive: UTC)."""
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at.astimezone(_zone(timezone)).year


# -- allocation, in the events' transaction ------------------------------------------------------
Allocation = tuple[str, str, str, int]  # stream id, kind, school id, year


def _allocation(stream_id: str, kind: str, school_id: str, year: int) -> Allocation:
    return (stream_id, kind, school_id, year)


def _number(c: Cursor, db: Database, allocations: Sequence[Allocation]) -> None:
    """Number the streams in the order given, in the caller's transaction: each (kind, school,
    year)'s counter moved once by as many as it numbers, then their rows in one go."""
    groups: dict[tuple[str, str, int], list[str]] = {}
    for stream_id, kind, school_id, year in allocations:
        groups.setdefault((kind, school_id, year), []).append(stream_id)
    rows = []
    for (kind, school_id, year), streams in groups.items():
        k = len(streams)
        last = int(c.execute(db.q(_COUNT), (kind, school_id, year, kind, school_id, year, k, k)).fetchone()[0])  # type: ignore[index]
        rows += [(sid, kind, school_id, year, last - k + 1 + n) for n, sid in enumerate(streams)]
    c.executemany(db.q(_NUMBER), rows)


def for_new_streams(aggregates: Iterable[Any], timezone: str) -> list[Allocation]:
    """What `Core.commit` asks the recorder to number: each aggregate of a numbered kind
    whose first event is in this save, in the year of that event's `at`."""
    out = []
    for a in aggregates:
        pending = a.pending_events
        if not pending or pending[0].originator_version != 1:
            continue
        scope = a.scope()
        if scope.kind not in PREFIXES or not scope.school_id:
            continue
        at = getattr(pending[0], "at", None) or pending[0].timestamp
        out.append(_allocation(str(a.id), scope.kind, scope.school_id, year_of(at, timezone)))
    return out


def allocate(c: Cursor, db: Database, allocations: Sequence[Allocation]) -> None:
    """Number new streams inside the transaction that saves their first events (called by
    the recorder after the trail's entries)."""
    if allocations:
        _number(c, db, allocations)


# -- streams from before numbers -------------------------------------------------------------------
def number_existing(c: Cursor, db: Database, timezone: str) -> int:
    """Number every case, file and pairing that has none (saved before numbers existed, or
    by a process of an older version), in the order they were created: by their first
    event's entry in the audit trail (its position, and its `at` for the year; for an event
    older than the trail itself, the time the trail adopted it). Run at
    every opening of the store, inside its setup transaction: cheap when there is nothing
    to do (one anti-join on primary keys), and done once (a numbered stream is never
    numbered again). On PostgreSQL it takes the trail's lock first, as a save does, so the
    trail's order is settled and a stream saved meanwhile by a running process is numbered
    after these. How many streams were numbered."""
    if not c.execute(db.q(_UNNUMBERED + " LIMIT 1")).fetchone():
        return 0
    if db.dialect == "postgres":
        from anxin.audit.chain import lock_chain

        lock_chain(c, db)
    streams = c.execute(db.q(_UNNUMBERED)).fetchall()
    first = _first_entries(c, db, [str(s[0]) for s in streams])
    fallback = (float("inf"), datetime.now(UTC).isoformat())  # (no entry: never expected)
    ordered = sorted(streams, key=lambda s: (first.get(str(s[0]), fallback)[0], str(s[0])))
    _number(
        c,
        db,
        [
            _allocation(str(sid), kind, school, year_of(_moment(first.get(str(sid), fallback)[1]), timezone))
            for sid, kind, school in ordered
        ],
    )
    return len(ordered)


def _first_entries(c: Cursor, db: Database, stream_ids: Sequence[str]) -> dict[str, tuple[int, str]]:
    """(seq, at) of each stream's first event in the audit trail (version 1)."""
    out: dict[str, tuple[int, str]] = {}
    for n in range(0, len(stream_ids), 500):
        part = stream_ids[n : n + 500]
        rows = c.execute(
            db.q(
                "SELECT subject, seq, at FROM {t}anxin_audit WHERE kind = 'event' AND detail LIKE ? "
                f"AND subject IN ({','.join('?' * len(part))})"
            ),
            ("%#1", *part),
        ).fetchall()
        for subject, seq, at in rows:
            if str(subject) not in out or int(seq) < out[str(subject)][0]:
                out[str(subject)] = (int(seq), str(at))
    return out


def _moment(at: str) -> datetime:
    try:
        return datetime.fromisoformat(at)
    except ValueError:
        return datetime.now(UTC)


# -- reading ----------------------------------------------------------------------------------------
_SELECT = (
    "SELECT n.stream_id, n.kind, n.school_id, COALESCE(s.name, ''), n.year, n.seq FROM {t}anxin_numbers n "
    "LEFT JOIN {t}anxin_schools s ON s.school_id = n.school_id "
)


def _record_number(row: tuple[Any, ...]) -> RecordNumber:
    return RecordNumber(str(row[0]), str(row[1]), str(row[2]), str(row[3]), int(row[4]), int(row[5]))


def numbers_for(db: Database, stream_ids: Iterable[str]) -> dict[str, RecordNumber]:
    """The numbers of many records at once (one query per 500 ids), by id; a record without
    one (not numbered: a student, a screening; or not yet) is left out."""
    ids = sorted({str(i) for i in stream_ids if i})
    rows = db.fetch_in(_SELECT + "WHERE n.stream_id IN ({marks})", ids) if ids else []
    return {str(r[0]): _record_number(r) for r in rows}


def records_numbered(db: Database, district: str, kind: str, year: int, seq: int) -> list[RecordNumber]:
    """The records of a district's schools that have this number (one per school at most)."""
    rows = db.fetch(
        _SELECT + "WHERE n.kind = ? AND n.year = ? AND n.seq = ? AND s.district = ? ORDER BY s.name, n.school_id",
        (kind, year, seq, district),
    )
    return [_record_number(r) for r in rows]
