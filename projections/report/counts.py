"""The report's pre-aggregated counts as the fold keeps them: deltas gathered per batch
(or per erase) and added to the count tables in one go; students' screening days and
pairings' overdue runs worked out again from the rows at a flush; an erased stream's share."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, Table, bindparam, delete, select

from projections.base import insert_many, select_in
from projections.report.statements import (
    DELETE_RUN,
    ERASED_CHECK_INS,
    ERASED_FACTS,
    ERASED_FILE_SPANS,
    ERASED_RUNS,
    ERASED_SCREENINGS,
    ERASED_SPANS,
    INSERT,
    RECORD,
)
from projections.report.tables import (
    AGGREGATES,
    OPEN,
    check_in_days,
    check_ins,
    fact_counts,
    file_span_counts,
    overdue_counts,
    overdue_runs,
    pairing_span_counts,
    pairing_spans,
    pairings,
    screened_days,
    screening_days,
    screenings,
)

Deltas = dict[Table, dict[tuple[Any, ...], list[int]]]


def add(deltas: Deltas, table: Table, key: tuple[Any, ...], *values: int) -> None:
    found = deltas.setdefault(table, {}).get(key)
    if found is None:
        deltas[table][key] = list(values)
    else:
        for i, v in enumerate(values):
            found[i] += v


def move(deltas: Deltas, table: Table, before: tuple[Any, ...], after: tuple[Any, ...]) -> None:
    """One count moved from one key to another (a span that ended, a fact re-dated)."""
    add(deltas, table, before, -1)
    add(deltas, table, after, 1)


def file_span_key(
    school: str, status: str, level: str, from_day: int, to_day: int | None, review_due: int | None
) -> tuple[Any, ...]:
    return (school, status, level, from_day, OPEN if to_day is None else to_day, review_due or 0)


def pairing_span_key(school: str, from_day: int, to_day: int | None, cadence: int) -> tuple[Any, ...]:
    return (school, from_day, OPEN if to_day is None else to_day, cadence)


def _screened_pairs(days: Iterable[int]) -> Counter[tuple[int, int]]:
    """A student's contribution to `screened_days`: each distinct day with the one before (0: none)."""
    out: Counter[tuple[int, int]] = Counter()
    prev = 0
    for d in sorted(set(days)):
        out[(d, prev)] += 1
        prev = d
    return out


def screened_change(deltas: Deltas, school: str, before: list[int], after: list[int]) -> None:
    """What a student's screening days going from `before` to `after` does to `screened_days`."""
    change = _screened_pairs(after)
    change.subtract(_screened_pairs(before))
    for (day, prev), n in change.items():
        if n:
            add(deltas, screened_days, (school, day, prev), n)


def overdue_days(paired_day: int, spans: Iterable[tuple[int, int, int]], held: Iterable[int]) -> list[tuple[int, int]]:
    """The days a pairing's check-in is overdue on, as sorted, disjoint, non-adjacent
    `[from, to)` runs: day x is in them when a span `(from, to, cadence)` is active on x
    (from <= x < to) and base(x) + cadence < x, where base(x) is the last check-in day
    held on or before x, or the pairing day if none was (what `queries._count` asked of the rows
    for the period end, for every day at once)."""
    days = sorted(set(held))
    # base(x) is constant on each segment [start, end): the pairing day up to the first
    # check-in, then each check-in day up to the next.
    bounds = [0, *days, OPEN]
    bases = [paired_day, *days]
    runs: list[tuple[int, int]] = []
    for f, t, cadence in spans:
        for k, base in enumerate(bases):
            lo, hi = max(f, bounds[k], base + cadence + 1), min(t, bounds[k + 1])
            if lo < hi:
                runs.append((lo, hi))
    runs.sort()
    merged: list[tuple[int, int]] = []
    for lo, hi in runs:
        if merged and lo <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(hi, merged[-1][1]))
        else:
            merged.append((lo, hi))
    return merged


_UPSERTS: dict[tuple[str, str], Any] = {}


def _upsert(dialect: str, table: Table) -> Any:
    """INSERT … ON CONFLICT (the key) DO UPDATE SET each count = count + the new one."""
    found = _UPSERTS.get((dialect, table.name))
    if found is None:
        stmt: Any
        if dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as postgresql_insert

            stmt = postgresql_insert(table)
        else:
            from sqlalchemy.dialects.sqlite import insert as sqlite_insert

            stmt = sqlite_insert(table)
        found = _UPSERTS[(dialect, table.name)] = stmt.on_conflict_do_update(
            index_elements=list(table.primary_key.columns),
            set_={c.name: c + stmt.excluded[c.name] for c in table.c if not c.primary_key},
        )
    return found


def apply(conn: Connection, deltas: Deltas) -> None:
    """Add the deltas to the aggregates; delete the rows they bring to nought. Tables and
    rows in one order (the tables', then the keys'), so that two transactions changing the
    same counts (a batch, and a shred's erase beside it) lock them in the same order."""
    for table in sorted(deltas, key=AGGREGATES.index):
        changes = deltas[table]
        keys = [c.name for c in table.primary_key.columns]
        counts = [c.name for c in table.c if not c.primary_key]
        rows = [
            {**dict(zip(keys, k, strict=True)), **dict(zip(counts, v, strict=True))}
            for k, v in sorted(changes.items())
            if any(v)
        ]
        if not rows:
            continue
        conn.execute(_upsert(conn.dialect.name, table), rows)
        gone = [dict(zip([f"b_{k}" for k in keys], k, strict=True)) for k, v in changes.items() if min(v) < 0]
        if gone:
            conn.execute(delete(table).where(*(table.c[k] == bindparam(f"b_{k}") for k in keys), table.c.n == 0), gone)
    deltas.clear()


# -- worked out again from the rows, at a flush or an erase --------------------------------
def overdue_runs_again(conn: Connection, deltas: Deltas, touched: list[str]) -> None:
    """The overdue runs of the pairings `touched` (sorted) since the last flush, worked out
    again from their rows (every row is written), and the counts moved by the difference."""
    for i in range(0, len(touched), 500):
        chunk = touched[i : i + 500]
        paired = {
            pid: (school, day)
            for pid, school, day in select_in(
                conn, pairings, ("pairing_id", "school_id", "paired_day"), "pairing_id", chunk
            )
        }
        spans: dict[str, list[tuple[int, int, int]]] = {}
        for pid, f, t, cadence in select_in(
            conn, pairing_spans, ("pairing_id", "from_day", "to_day", "cadence"), "pairing_id", chunk
        ):
            spans.setdefault(pid, []).append((f, OPEN if t is None else t, cadence))
        held: dict[str, list[int]] = {}
        for pid, day in select_in(conn, check_ins, ("pairing_id", "held_day"), "pairing_id", chunk):
            held.setdefault(pid, []).append(day)
        before: dict[str, set[tuple[int, int]]] = {}
        schools: dict[str, str] = {}
        for pid, f, t, school in select_in(
            conn, overdue_runs, ("pairing_id", "from_day", "to_day", "school_id"), "pairing_id", chunk
        ):
            before.setdefault(pid, set()).add((f, t))
            schools[pid] = school
        gone: list[dict[str, Any]] = []
        new: list[dict[str, Any]] = []
        for pid in chunk:
            old = before.get(pid, set())
            now: set[tuple[int, int]] = set()
            if pid in paired:
                school, day = paired[pid]
                schools[pid] = school
                now = set(overdue_days(day, spans.get(pid, []), held.get(pid, [])))
            for f, t in old - now:
                gone.append({"b_id": pid, "b_from": f})
                add(deltas, overdue_counts, (schools[pid], f, t), -1)
            for f, t in now - old:
                new.append({"pairing_id": pid, "from_day": f, "to_day": t, "school_id": schools[pid]})
                add(deltas, overdue_counts, (schools[pid], f, t), 1)
        if gone:
            conn.execute(DELETE_RUN, gone)
        if new:
            insert_many(conn, INSERT["v_report_overdue_runs"], new)


def screened_again(conn: Connection, deltas: Deltas, touched: dict[tuple[str, str], set[tuple[str, str]]]) -> None:
    """`screened_days` for the students screened since the last flush (`touched`: (school,
    student) -> the (record, screening) keys added): their days now (every row is
    written) against their days before (without the rows just added)."""
    students = sorted({student for _, student in touched})
    sc = screenings
    for i in range(0, len(students), 500):
        now: dict[tuple[str, str], list[int]] = {}
        before: dict[tuple[str, str], list[int]] = {}
        for school, student, rid, scr, day in conn.execute(
            select(sc.c.school_id, sc.c.student_id, sc.c.record_id, sc.c.screening_id, sc.c.screened_day).where(
                sc.c.student_id.in_(students[i : i + 500])
            )
        ):
            who = (school, student)
            now.setdefault(who, []).append(day)
            if who not in touched or (rid, scr) not in touched[who]:
                before.setdefault(who, []).append(day)
        for who, days in now.items():
            if who in touched:
                screened_change(deltas, who[0], before.get(who, []), days)


def erased(conn: Connection, sid: str) -> Deltas:
    """What the stream `sid`'s rows added to the aggregates, to take out before they are deleted."""
    deltas: Deltas = {}
    for school, day, n in conn.execute(ERASED_CHECK_INS, {"b_id": sid}):
        add(deltas, check_in_days, (school, day), -n)
    for school, from_day, to_day, cadence, n in conn.execute(ERASED_SPANS, {"b_id": sid}):
        add(deltas, pairing_span_counts, (school, from_day, to_day, cadence), -n)
    for school, day, kind, detail, n in conn.execute(ERASED_FACTS, {"b_id": sid}):
        add(deltas, fact_counts, (school, day, kind, detail), -n)
    for school, status, level, from_day, to_day, due in conn.execute(ERASED_FILE_SPANS, {"b_id": sid}):
        add(deltas, file_span_counts, file_span_key(school, status, level, from_day, to_day, due), -1)
    for school, from_day, to_day in conn.execute(ERASED_RUNS, {"b_id": sid}):
        add(deltas, overdue_counts, (school, from_day, to_day), -1)
    for school, day, inst, n, flagged, crisis in conn.execute(ERASED_SCREENINGS, {"b_id": sid}):
        add(deltas, screening_days, (school, day, inst), -n, -int(flagged or 0), -int(crisis or 0))
    record = conn.execute(RECORD, {"b_id": sid}).first()
    if record is not None:
        school, student = record
        sc = screenings
        days = conn.execute(
            select(sc.c.record_id, sc.c.screened_day).where(sc.c.student_id == student, sc.c.school_id == school)
        ).all()
        screened_change(deltas, school, [d for _, d in days], [d for r, d in days if r != sid])
    return deltas
