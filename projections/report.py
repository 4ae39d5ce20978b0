"""定期报送: the periodic report, per school and for the district, for a date range.

The view keeps per-school, per-day facts and no names and no text: ids, day numbers,
statuses, risk levels, instrument ids, counts. Days are stored as proleptic ordinals
(`date.toordinal()`), so day arithmetic (a due date plus a cadence) is plain integer
arithmetic on SQLite and PostgreSQL alike.

A fact is dated by the day it happened where the event says so (a mandatory report's
`reported_at`, an appeal's `lodged_on` and `decided_on`, a review's `reviewed_on`, a
crisis's `occurred_on`, a check-in's `held_on`, a screening's `screened_on`), else by
the day it was recorded (`at`), as the domain does (`opened_on = at.date()`).

Tables (all rows derived from one stream carry its id, so `erase` forgets them):
- `v_report_facts`: dated facts, one per event that counts: a case determined
  (detail = the result), closed, reopened, a mandatory report, an appeal;
  a file opened / closed (detail = the risk level), risk raised / lowered, plan
  reviewed, crisis intervention.
- `v_report_cases` (the day reported, the forms, and the fold's state, JSON of codes
  and days), `v_report_case_spans`: a case's status, severity,
  investigation due date and follow-up due date over time, as `[from_day, to_day)`
  spans, so the status on any day (the period end) is one range lookup.
- `v_report_files`, `v_report_file_spans`: a support file's status, risk level and
  next review date over time.
- `v_report_pairings`, `v_report_pairing_spans`, `v_report_check_ins`: pairings with
  their cadence over time, and each check-in's day.
- `v_report_screening_records`, `v_report_screenings`: screenings done, by instrument,
  with the flagged and crisis marks.
- `v_report_overdue_runs`: per pairing, the days on which its check-in is overdue, as
  `[from_day, to_day)` runs, worked out again from its rows whenever it changes.

What the report sums (kept by the same fold, in the same transaction, so a district's
report adds up a few thousand rows instead of scanning ~700,000 check-ins): counts per
school and day of check-ins held (`v_report_check_in_days`) and of screenings by
instrument with the flagged and crisis marks (`v_report_screening_days`); students'
distinct screening days with the day before (`v_report_screened_days`: the students
screened in any period, without the students); pairing spans alike
(`v_report_pairing_span_counts`: check-ins due, pairings active) and overdue runs alike
(`v_report_overdue_counts`); dated facts alike (`v_report_fact_counts`) and support-file
spans alike (`v_report_file_span_counts`). An erased stream's share is taken out of them before its
rows are deleted; a count fallen to nought is deleted, so a rebuild gives the same rows.
A database made before these tables existed is folded again when it is opened (the runner
notices that the view's tables changed shape: projections.base.schema_signature).

"Overdue" is computed at query time, as of the period end (or today, if the period has
not ended yet): from due dates, and for pairings from their overdue runs (which answer
for every day at once, so no day is stored as "overdue" more than another). Shredding a stream removes
what the report counted of it (its events can no longer be read, so a rebuild could
not count it either): reports count what is still on record.

`periodic_report(app, actor, date_from=..., date_to=..., school_id=None)` passes the
gate (STATS_READ), catches the view up and returns a `Report`; `report_csv` and
`report_html` render it (the HTML template is projections/templates/report.html).
"""

from __future__ import annotations

import csv
import io
import json
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from eventsourcing.dispatch import singledispatchmethod
from sqlalchemy import (
    Boolean,
    Column,
    Connection,
    Index,
    Integer,
    String,
    Table,
    Text,
    and_,
    bindparam,
    case,
    delete,
    func,
    literal,
    literal_column,
    or_,
    select,
    text,
    union_all,
    update,
)
from sqlalchemy.schema import CreateIndex

from domain import access
from domain.access import Resource
from domain.bullying import FORMS, SEVERITIES, STATUS_LABELS, BullyingCase
from domain.common import Actor, InvalidInput, NotFound
from domain.pairing import Pairing
from domain.policy import RISK_LABELS, RISK_LEVELS
from domain.screening import ScreeningRecord
from domain.support import SupportFile
from projections.base import (
    View,
    WriteBehind,
    insert_many,
    metadata,
    select_in,
    stream_id_of,
    tracking,
)

VIEW_NAME = "report"
INVESTIGATION_OPEN = ("reported", "reopened", "investigating")
OPEN = 99_999_999  # the end day of a span still current (after any real day), where a key needs one

# -- tables ---------------------------------------------------------------------------
facts = Table(
    "v_report_facts", metadata,
    Column("stream_id", String(36), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("kind", String(40), primary_key=True),
    Column("school_id", String(36), nullable=False),
    Column("day", Integer, nullable=False),
    Column("detail", String(40), nullable=False, default=""),
    Column("ref", String(64), nullable=True),  # the entry a later correction may re-date
)

cases = Table(
    "v_report_cases", metadata,
    Column("case_id", String(36), primary_key=True),
    Column("school_id", String(36), nullable=False),
    Column("reported_day", Integer, nullable=False),
    Column("forms", String(80), nullable=False),  # comma-separated form codes
    Column("state", Text, nullable=False),  # the fold's state (JSON of codes and days)
)
Index("ix_v_report_cases_counts", cases.c.school_id, cases.c.reported_day, cases.c.forms)

case_spans = Table(
    "v_report_case_spans", metadata,
    Column("case_id", String(36), primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("school_id", String(36), nullable=False),
    Column("from_day", Integer, nullable=False),
    Column("to_day", Integer, nullable=True),  # exclusive; NULL while current
    Column("status", String(32), nullable=False),
    Column("severity", String(32), nullable=True),
    Column("investigation_due", Integer, nullable=True),  # only while the investigation is open
    Column("follow_up_due", Integer, nullable=True),
)
# Spans by the day they end (OPEN while current): those active at a period end are
# near the top, not among every span since the school began. Covering.
_OPEN_SQL = literal_column(str(OPEN))  # written out, not bound: the index and the query say the same


def _until(table: Table) -> Any:
    return func.coalesce(table.c.to_day, _OPEN_SQL)


Index("ix_v_report_case_spans_counts", case_spans.c.school_id, _until(case_spans), case_spans.c.from_day,
      case_spans.c.status, case_spans.c.investigation_due, case_spans.c.follow_up_due)

files = Table(
    "v_report_files", metadata,
    Column("file_id", String(36), primary_key=True),
    Column("school_id", String(36), nullable=False),
    Column("status", String(16), nullable=False),
    Column("risk_level", String(16), nullable=False),
    Column("review_due", Integer, nullable=True),
    Column("seq", Integer, nullable=False),
)

file_spans = Table(
    "v_report_file_spans", metadata,
    Column("file_id", String(36), primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("school_id", String(36), nullable=False),
    Column("from_day", Integer, nullable=False),
    Column("to_day", Integer, nullable=True),
    Column("status", String(16), nullable=False),
    Column("risk_level", String(16), nullable=False),
    Column("review_due", Integer, nullable=True),
)

pairings = Table(
    "v_report_pairings", metadata,
    Column("pairing_id", String(36), primary_key=True),
    Column("school_id", String(36), nullable=False),
    Column("paired_day", Integer, nullable=False),
    Column("last_held_day", Integer, nullable=True),  # the latest check-in's day, whenever recorded
    Column("cadence", Integer, nullable=False),
    Column("seq", Integer, nullable=False),
    Column("active", Boolean, nullable=False),
)

pairing_spans = Table(
    "v_report_pairing_spans", metadata,
    Column("pairing_id", String(36), primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("school_id", String(36), nullable=False),
    Column("from_day", Integer, nullable=False),
    Column("to_day", Integer, nullable=True),
    Column("cadence", Integer, nullable=False),
)

check_ins = Table(
    "v_report_check_ins", metadata,
    Column("pairing_id", String(36), primary_key=True),
    Column("check_in_id", String(64), primary_key=True),
    Column("school_id", String(36), nullable=False),
    Column("held_day", Integer, nullable=False),
)
Index("ix_v_report_check_ins_pairing_day", check_ins.c.pairing_id, check_ins.c.held_day)

screening_records = Table(
    "v_report_screening_records", metadata,
    Column("record_id", String(36), primary_key=True),
    Column("school_id", String(36), nullable=False),
    Column("student_id", String(36), nullable=False),
)

screenings = Table(
    "v_report_screenings", metadata,
    Column("record_id", String(36), primary_key=True),
    Column("screening_id", String(64), primary_key=True),
    Column("school_id", String(36), nullable=False),
    Column("student_id", String(36), nullable=False),
    Column("screened_day", Integer, nullable=False),
    Column("instrument", String(40), nullable=False),
    Column("flagged", Boolean, nullable=False),
    Column("crisis", Boolean, nullable=False),
)

Index("ix_v_report_screenings_student", screenings.c.student_id, screenings.c.screened_day)

# -- pre-aggregated counts, kept by the fold beside the rows they sum -----------------------
# Counts only (school ids, day numbers, instrument ids, cadences): what the report sums
# instead of scanning the rows above (a district has ~700,000 check-ins and a screening
# per student a year). Each is a function of the rows above; a row whose counts fall to
# nought is deleted, so a rebuild gives the very same rows as the incremental fold.

check_in_days = Table(
    "v_report_check_in_days", metadata,
    Column("school_id", String(36), primary_key=True),
    Column("day", Integer, primary_key=True),
    Column("n", Integer, nullable=False),  # check-ins held that day
)

screening_days = Table(
    "v_report_screening_days", metadata,
    Column("school_id", String(36), primary_key=True),
    Column("day", Integer, primary_key=True),
    Column("instrument", String(40), primary_key=True),
    Column("n", Integer, nullable=False),
    Column("flagged", Integer, nullable=False),
    Column("crisis", Integer, nullable=False),
)

# Students screened in a period, counted without the students: for each student, each
# distinct day they were screened on, with the day they were screened on last before it
# (`prev_day`, 0 for none). A student screened in [start, end] has exactly one such day
# in it whose previous day is before `start` (their first in the period), and a student
# not screened in it has none: the count of students screened in any period is the sum
# of `n` over day in [start, end] and prev_day < start. Counted per (school, student),
# across school years (a student has a screening record per school year).
screened_days = Table(
    "v_report_screened_days", metadata,
    Column("school_id", String(36), primary_key=True),
    Column("day", Integer, primary_key=True),
    Column("prev_day", Integer, primary_key=True),
    Column("n", Integer, nullable=False),
)

# Pairing spans with the same school, days and cadence, counted: check-ins due and
# pairings active at period end are sums over these (to_day OPEN while current).
pairing_span_counts = Table(
    "v_report_pairing_span_counts", metadata,
    Column("school_id", String(36), primary_key=True),
    Column("from_day", Integer, primary_key=True),
    Column("to_day", Integer, primary_key=True),
    Column("cadence", Integer, primary_key=True),
    Column("n", Integer, nullable=False),
)

# When each pairing is overdue: the days on which, were the period to end that day, its
# check-in would be overdue (active then, and the last check-in held by then, or the
# pairing day, plus the cadence then is before it), as `[from_day, to_day)` runs; and the
# runs of all pairings alike, counted. A pairing's runs are worked out again from its rows
# whenever a check-in, a cadence or its end is folded (`_overdue_runs`).
overdue_runs = Table(
    "v_report_overdue_runs", metadata,
    Column("pairing_id", String(36), primary_key=True),
    Column("from_day", Integer, primary_key=True),
    Column("to_day", Integer, nullable=False),  # exclusive; OPEN: from then on
    Column("school_id", String(36), nullable=False),
)

overdue_counts = Table(
    "v_report_overdue_counts", metadata,
    Column("school_id", String(36), primary_key=True),
    Column("from_day", Integer, primary_key=True),
    Column("to_day", Integer, primary_key=True),
    Column("n", Integer, nullable=False),
)

# Dated facts alike (school, day, kind, detail), counted: a screening import opens many
# files on one day.
fact_counts = Table(
    "v_report_fact_counts", metadata,
    Column("school_id", String(36), primary_key=True),
    Column("day", Integer, primary_key=True),
    Column("kind", String(40), primary_key=True),
    Column("detail", String(40), primary_key=True),
    Column("n", Integer, nullable=False),
)

# Support-file spans alike, counted (to_day OPEN while current, review_due 0 for none).
file_span_counts = Table(
    "v_report_file_span_counts", metadata,
    Column("school_id", String(36), primary_key=True),
    Column("status", String(16), primary_key=True),
    Column("risk_level", String(16), primary_key=True),
    Column("from_day", Integer, primary_key=True),
    Column("to_day", Integer, primary_key=True),
    Column("review_due", Integer, primary_key=True),
    Column("n", Integer, nullable=False),
)

# Indexes of earlier versions, replaced by the ones above (dropped by a rebuild).
_REPLACED_INDEXES = ("ix_v_report_facts_school_day", "ix_v_report_cases_school_day", "ix_v_report_case_spans_school",
                     "ix_v_report_file_spans_school", "ix_v_report_pairing_spans_school",
                     "ix_v_report_check_ins_school_day", "ix_v_report_screenings_school_day")

AGGREGATES = (check_in_days, screening_days, screened_days, pairing_span_counts, overdue_counts, fact_counts,
              file_span_counts)
TABLES = (facts, cases, case_spans, files, file_spans, pairings, pairing_spans, check_ins,
          screening_records, screenings, overdue_runs, *AGGREGATES)
STREAM_COLUMNS = (
    (facts, "stream_id"), (cases, "case_id"), (case_spans, "case_id"), (files, "file_id"),
    (file_spans, "file_id"), (pairings, "pairing_id"), (pairing_spans, "pairing_id"),
    (check_ins, "pairing_id"), (screening_records, "record_id"), (screenings, "record_id"),
    (overdue_runs, "pairing_id"),
)


def _day(value: date | datetime) -> int:
    return (value.date() if isinstance(value, datetime) else value).toordinal()


def _sid(event: Any) -> str:
    return stream_id_of(event)


# -- the case fold: the same status as BullyingCase.status, from the events -----------
def case_status(st: dict[str, Any]) -> str:
    if st["closed"]:
        return "closed"
    if st["appeal"]:
        return "appealed"
    det = st["det"]
    if det is not None:
        if not det["approved"]:
            return "determined"
        if not det["bullying"]:
            return "concluded"
        return "following_up" if det["id"] in st["followed"] else "intervening"
    if st["completed"]:
        return "awaiting_determination"
    if st["started"]:
        return "investigating"
    return "reopened" if st["cycle"] else "reported"


def _result(bullying: bool, severity: str | None) -> str:
    return (severity or "minor") if bullying else "not_bullying"


# -- prepared statements: built once, executed with parameters (cheap per event) --------
def _b(name: str, type_: Any = String) -> Any:
    return bindparam(name, type_=type_)


_INS = {t.name: t.insert() for t in TABLES}
_CASE_STATE = select(cases.c.state).where(cases.c.case_id == _b("b_id"))
_SET_CASE_STATE = update(cases).where(cases.c.case_id == _b("b_id")).values(state=_b("b_state", Text))
_SET_CASE_FORMS = update(cases).where(cases.c.case_id == _b("b_id")).values(forms=_b("b_forms"))
_END_CASE_SPAN = (update(case_spans).where(case_spans.c.case_id == _b("b_id"), case_spans.c.seq == _b("b_seq", Integer))
                  .values(to_day=_b("b_day", Integer)))
_FILE_STATE = (select(files.c.school_id, files.c.status, files.c.risk_level, files.c.review_due, files.c.seq)
               .where(files.c.file_id == _b("b_id")))
_SET_FILE_STATE = update(files).where(files.c.file_id == _b("b_id")).values(
    status=_b("b_status"), risk_level=_b("b_level"), review_due=_b("b_due", Integer), seq=_b("b_seq", Integer))
_END_FILE_SPAN = (update(file_spans).where(file_spans.c.file_id == _b("b_id"), file_spans.c.seq == _b("b_seq", Integer))
                  .values(to_day=_b("b_day", Integer)))
_FACTS_OF_REF = (select(facts.c.school_id, facts.c.day, facts.c.kind, facts.c.detail)
                 .where(facts.c.stream_id == _b("b_id"), facts.c.ref == _b("b_ref")))
_FILE_SPAN = (select(file_spans.c.from_day, file_spans.c.to_day, file_spans.c.status, file_spans.c.risk_level,
                     file_spans.c.review_due)
              .where(file_spans.c.file_id == _b("b_id"), file_spans.c.seq == _b("b_seq", Integer)))
_REDATE_FACT = (update(facts).where(facts.c.stream_id == _b("b_id"), facts.c.ref == _b("b_ref"))
                .values(day=_b("b_day", Integer)))
_SET_LAST_HELD = update(pairings).where(pairings.c.pairing_id == _b("b_id")).values(
    last_held_day=case(
        (or_(pairings.c.last_held_day.is_(None), pairings.c.last_held_day < _b("b_day", Integer)),
         _b("b_day", Integer)),
        else_=pairings.c.last_held_day,
    ))
_PAIRING_STATE = select(pairings.c.school_id, pairings.c.seq).where(pairings.c.pairing_id == _b("b_id"))
_END_PAIRING_SPAN = (update(pairing_spans)
                     .where(pairing_spans.c.pairing_id == _b("b_id"), pairing_spans.c.seq == _b("b_seq", Integer))
                     .values(to_day=_b("b_day", Integer)))
_SET_PAIRING = update(pairings).where(pairings.c.pairing_id == _b("b_id")).values(
    seq=_b("b_seq", Integer), cadence=_b("b_cadence", Integer), active=_b("b_active", Boolean))
_END_PAIRING = update(pairings).where(pairings.c.pairing_id == _b("b_id")).values(active=False)
_ERASE = [delete(t).where(t.c[col] == _b("b_id")) for t, col in STREAM_COLUMNS]
_PAIRING_SCHOOL = select(pairings.c.school_id).where(pairings.c.pairing_id == _b("b_id"))
_PAIRING_SPAN = (select(pairing_spans.c.from_day, pairing_spans.c.to_day, pairing_spans.c.cadence)
                 .where(pairing_spans.c.pairing_id == _b("b_id"), pairing_spans.c.seq == _b("b_seq", Integer)))
_RECORD = (select(screening_records.c.school_id, screening_records.c.student_id)
           .where(screening_records.c.record_id == _b("b_id")))
# What an erased stream had added to the aggregates.
_ERASED_CHECK_INS = (select(check_ins.c.school_id, check_ins.c.held_day, func.count())
                     .where(check_ins.c.pairing_id == _b("b_id")).group_by(check_ins.c.school_id, check_ins.c.held_day))
_ERASED_SPANS = (select(pairing_spans.c.school_id, pairing_spans.c.from_day, _until(pairing_spans),
                        pairing_spans.c.cadence, func.count())
                 .where(pairing_spans.c.pairing_id == _b("b_id"))
                 .group_by(pairing_spans.c.school_id, pairing_spans.c.from_day, _until(pairing_spans),
                           pairing_spans.c.cadence))
_ERASED_FACTS = (select(facts.c.school_id, facts.c.day, facts.c.kind, facts.c.detail, func.count())
                 .where(facts.c.stream_id == _b("b_id"))
                 .group_by(facts.c.school_id, facts.c.day, facts.c.kind, facts.c.detail))
_ERASED_FILE_SPANS = (select(file_spans.c.school_id, file_spans.c.status, file_spans.c.risk_level,
                             file_spans.c.from_day, file_spans.c.to_day, file_spans.c.review_due)
                      .where(file_spans.c.file_id == _b("b_id")))
_ERASED_SCREENINGS = (select(screenings.c.school_id, screenings.c.screened_day, screenings.c.instrument, func.count(),
                             func.sum(case((screenings.c.flagged, 1), else_=0)),
                             func.sum(case((screenings.c.crisis, 1), else_=0)))
                      .where(screenings.c.record_id == _b("b_id"))
                      .group_by(screenings.c.school_id, screenings.c.screened_day, screenings.c.instrument))

_DELETE_RUN = delete(overdue_runs).where(overdue_runs.c.pairing_id == _b("b_id"),
                                         overdue_runs.c.from_day == _b("b_from", Integer))
_ERASED_RUNS = (select(overdue_runs.c.school_id, overdue_runs.c.from_day, overdue_runs.c.to_day)
                .where(overdue_runs.c.pairing_id == _b("b_id")))

Deltas = dict[Table, dict[tuple[Any, ...], list[int]]]


def _add(deltas: Deltas, table: Table, key: tuple[Any, ...], *values: int) -> None:
    found = deltas.setdefault(table, {}).get(key)
    if found is None:
        deltas[table][key] = list(values)
    else:
        for i, v in enumerate(values):
            found[i] += v


def _file_span_key(school: str, status: str, level: str, from_day: int, to_day: int | None,
                   review_due: int | None) -> tuple[Any, ...]:
    return (school, status, level, from_day, OPEN if to_day is None else to_day, review_due or 0)


def _screened_pairs(days: Iterable[int]) -> Counter[tuple[int, int]]:
    """A student's contribution to `screened_days`: each distinct day with the one before (0: none)."""
    out: Counter[tuple[int, int]] = Counter()
    prev = 0
    for d in sorted(set(days)):
        out[(d, prev)] += 1
        prev = d
    return out


def overdue_days(paired_day: int, spans: Iterable[tuple[int, int, int]], held: Iterable[int]) -> list[tuple[int, int]]:
    """The days a pairing's check-in is overdue on, as sorted, disjoint, non-adjacent
    `[from, to)` runs: day x is in them when a span `(from, to, cadence)` is active on x
    (from <= x < to) and base(x) + cadence < x, where base(x) is the last check-in day
    held on or before x, or the pairing day if none was (what `_count` asked of the rows
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
        if dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        stmt = insert(table)
        found = _UPSERTS[(dialect, table.name)] = stmt.on_conflict_do_update(
            index_elements=list(table.primary_key.columns),
            set_={c.name: c + stmt.excluded[c.name] for c in table.c if not c.primary_key})
    return found


def _apply(conn: Connection, deltas: Deltas) -> None:
    """Add the deltas to the aggregates; delete the rows they bring to nought. Tables and
    rows in one order (the tables', then the keys'), so that two transactions changing the
    same counts (a batch, and a shred's erase beside it) lock them in the same order."""
    for table in sorted(deltas, key=AGGREGATES.index):
        changes = deltas[table]
        keys = [c.name for c in table.primary_key.columns]
        counts = [c.name for c in table.c if not c.primary_key]
        rows = [{**dict(zip(keys, k, strict=True)), **dict(zip(counts, v, strict=True))}
                for k, v in sorted(changes.items()) if any(v)]
        if not rows:
            continue
        conn.execute(_upsert(conn.dialect.name, table), rows)
        gone = [dict(zip([f"b_{k}" for k in keys], k, strict=True)) for k, v in changes.items() if min(v) < 0]
        if gone:
            conn.execute(delete(table).where(*(table.c[k] == bindparam(f"b_{k}") for k in keys), table.c.n == 0), gone)
    deltas.clear()


class ReportView(WriteBehind, View):
    """Per-school daily facts and state spans for the periodic report."""

    name = VIEW_NAME
    tables = TABLES

    def __init__(self, app: Any = None) -> None:
        self.app = app
        self._reset()

    def _reset(self) -> None:
        super()._reset()
        # What this batch adds to the aggregates, written with its rows (`flush`).
        self._deltas: Deltas = {}
        # (school, student) -> the (record, screening) keys this batch added for them.
        self._screened: dict[tuple[str, str], set[tuple[str, str]]] = {}
        # Pairings whose overdue runs may have changed since the last flush.
        self._overdue: set[str] = set()

    def clear(self, conn: Connection) -> None:
        """Drop the rows (a rebuild follows); and make the indexes what they are now: a
        database made by an earlier version has its tables (the runner creates only
        missing ones), so the indexes added since are created here and those replaced
        are dropped. `anxin projections rebuild report` brings such a database up to date."""
        super().clear(conn)
        for name in _REPLACED_INDEXES:
            conn.execute(text(f"DROP INDEX IF EXISTS {name}"))
        for table in self.tables:
            for index in table.indexes:
                conn.execute(CreateIndex(index, if_not_exists=True))

    def flush(self, conn: Connection) -> None:
        super().flush(conn)
        if self._screened:
            self._screened_deltas(conn)
        if self._overdue:
            self._overdue_runs(conn)
        if self._deltas:
            _apply(conn, self._deltas)

    def _overdue_runs(self, conn: Connection) -> None:
        """The overdue runs of the pairings touched since the last flush, worked out again
        from their rows (every row is written), and the counts moved by the difference."""
        touched, self._overdue = sorted(self._overdue), set()
        for i in range(0, len(touched), 500):
            chunk = touched[i : i + 500]
            paired = {pid: (school, day) for pid, school, day in select_in(
                conn, pairings, ("pairing_id", "school_id", "paired_day"), "pairing_id", chunk)}
            spans: dict[str, list[tuple[int, int, int]]] = {}
            for pid, f, t, cadence in select_in(
                    conn, pairing_spans, ("pairing_id", "from_day", "to_day", "cadence"), "pairing_id", chunk):
                spans.setdefault(pid, []).append((f, OPEN if t is None else t, cadence))
            held: dict[str, list[int]] = {}
            for pid, day in select_in(conn, check_ins, ("pairing_id", "held_day"), "pairing_id", chunk):
                held.setdefault(pid, []).append(day)
            before: dict[str, set[tuple[int, int]]] = {}
            schools: dict[str, str] = {}
            for pid, f, t, school in select_in(
                    conn, overdue_runs, ("pairing_id", "from_day", "to_day", "school_id"), "pairing_id", chunk):
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
                    _add(self._deltas, overdue_counts, (schools[pid], f, t), -1)
                for f, t in now - old:
                    new.append({"pairing_id": pid, "from_day": f, "to_day": t, "school_id": schools[pid]})
                    _add(self._deltas, overdue_counts, (schools[pid], f, t), 1)
            if gone:
                conn.execute(_DELETE_RUN, gone)
            if new:
                insert_many(conn, _INS["v_report_overdue_runs"], new)

    def _screened_deltas(self, conn: Connection) -> None:
        """`screened_days` for the students screened since the last flush: their days now
        (every row is written) against their days before (without the rows just added)."""
        touched, self._screened = self._screened, {}
        students = sorted({student for _, student in touched})
        sc = screenings
        for i in range(0, len(students), 500):
            now: dict[tuple[str, str], list[int]] = {}
            before: dict[tuple[str, str], list[int]] = {}
            for school, student, rid, scr, day in conn.execute(
                select(sc.c.school_id, sc.c.student_id, sc.c.record_id, sc.c.screening_id, sc.c.screened_day)
                .where(sc.c.student_id.in_(students[i : i + 500]))
            ):
                who = (school, student)
                now.setdefault(who, []).append(day)
                if who not in touched or (rid, scr) not in touched[who]:
                    before.setdefault(who, []).append(day)
            for who, days in now.items():
                if who in touched:
                    self._screened_change(self._deltas, who[0], before.get(who, []), days)

    @staticmethod
    def _screened_change(deltas: Deltas, school: str, before: list[int], after: list[int]) -> None:
        change = _screened_pairs(after)
        change.subtract(_screened_pairs(before))
        for (day, prev), n in change.items():
            if n:
                _add(deltas, screened_days, (school, day, prev), n)

    @singledispatchmethod
    def fold(self, event: Any, conn: Connection, position: int) -> None:  # type: ignore[override]
        """Events the report does not count are ignored (erased ones included)."""

    # -- helpers ------------------------------------------------------------------
    def _fact(self, conn: Connection, event: Any, school_id: str, day: int, kind: str, detail: str = "",
              ref: str | None = None) -> None:
        self._insert(conn, _INS["v_report_facts"], {
            "stream_id": _sid(event), "version": event.originator_version, "school_id": school_id,
            "day": day, "kind": kind, "detail": detail, "ref": ref,
        })
        _add(self._deltas, fact_counts, (school_id, day, kind, detail), 1)

    # -- bullying cases -------------------------------------------------------------
    @fold.register(BullyingCase.Reported)
    def _case_reported(self, event: Any, conn: Connection, position: int) -> None:
        day = _day(event.at)
        st = {
            "school": event.school_id, "cycle": 0, "closed": False, "appeal": False, "det": None,
            "followed": [], "started": False, "completed": False, "due": _day(event.investigation_due),
            "follow_up_due": None, "seq": 1,
        }
        conn.execute(_INS["v_report_cases"], {
            "case_id": _sid(event), "school_id": event.school_id, "reported_day": day,
            "forms": ",".join(event.forms), "state": json.dumps(st),
        })
        conn.execute(_INS["v_report_case_spans"], {"case_id": _sid(event), "seq": 1, **self._case_span(st, day)})

    @staticmethod
    def _case_span(st: dict[str, Any], day: int) -> dict[str, Any]:
        status = case_status(st)
        det = st["det"]
        return {
            "school_id": st["school"], "from_day": day, "to_day": None, "status": status,
            "severity": det["severity"] if det and det["approved"] and det["bullying"] else None,
            "investigation_due": st["due"] if status in INVESTIGATION_OPEN else None,
            "follow_up_due": st["follow_up_due"] if status != "closed" else None,
        }

    def _case(self, conn: Connection, event: Any, change: Callable[[dict[str, Any]], None]) -> dict[str, Any] | None:
        """Load the case's fold state, apply `change`, and start a new span if the
        status, severity or a due date changed. Returns the new state."""
        cid = _sid(event)
        row = conn.execute(_CASE_STATE, {"b_id": cid}).first()
        if row is None:
            return None
        st = json.loads(row[0])
        day = _day(event.at)
        before = self._case_span(st, day)
        change(st)
        after = self._case_span(st, day)
        if after != before:
            conn.execute(_END_CASE_SPAN, {"b_id": cid, "b_seq": st["seq"], "b_day": day})
            st["seq"] += 1
            conn.execute(_INS["v_report_case_spans"], {"case_id": cid, "seq": st["seq"], **after})
        conn.execute(_SET_CASE_STATE, {"b_id": cid, "b_state": json.dumps(st)})
        return st

    def _case_fact(self, conn: Connection, event: Any, change: Callable[[dict[str, Any]], None], kind: str,
                   day: date | datetime, detail: str = "") -> None:
        st = self._case(conn, event, change)
        if st is not None:
            self._fact(conn, event, st["school"], _day(day), kind, detail)

    @fold.register(BullyingCase.InvestigationStarted)
    def _case_started(self, event: Any, conn: Connection, position: int) -> None:
        self._case(conn, event, lambda st: st.update(started=True))

    @fold.register(BullyingCase.InvestigationCompleted)
    def _case_completed(self, event: Any, conn: Connection, position: int) -> None:
        self._case(conn, event, lambda st: st.update(completed=True))

    @fold.register(BullyingCase.Determined)
    def _case_determined(self, event: Any, conn: Connection, position: int) -> None:
        det = {"id": event.determination_id, "approved": False, "bullying": bool(event.bullying),
               "severity": event.severity}
        self._case(conn, event, lambda st: st.update(det=det))

    @fold.register(BullyingCase.DeterminationApproved)
    def _case_approved(self, event: Any, conn: Connection, position: int) -> None:
        def change(st: dict[str, Any]) -> None:
            st["det"]["approved"] = True
            st["follow_up_due"] = _day(event.follow_up_due) if event.follow_up_due else None

        st = self._case(conn, event, change)
        if st is not None:
            det = st["det"]
            self._fact(conn, event, st["school"], _day(event.at), "case.determined",
                       _result(det["bullying"], det["severity"]))

    @fold.register(BullyingCase.DeterminationReturned)
    def _case_returned(self, event: Any, conn: Connection, position: int) -> None:
        self._case(conn, event, lambda st: st.update(det=None))

    @fold.register(BullyingCase.MandatoryReportMade)
    def _case_mandatory_report(self, event: Any, conn: Connection, position: int) -> None:
        self._case_fact(conn, event, lambda st: None, "case.mandatory_report", event.reported_at)

    @fold.register(BullyingCase.AppealLodged)
    def _case_appealed(self, event: Any, conn: Connection, position: int) -> None:
        self._case_fact(conn, event, lambda st: st.update(appeal=True), "case.appeal_lodged", event.lodged_on)

    @fold.register(BullyingCase.AppealReviewed)
    def _case_appeal_reviewed(self, event: Any, conn: Connection, position: int) -> None:
        new = event.new_determination if event.outcome == "changed" else None

        def change(st: dict[str, Any]) -> None:
            st["appeal"] = False
            if new:
                st["det"] = {"id": new["id"], "approved": True, "bullying": bool(new["bullying"]),
                             "severity": new.get("severity")}
                st["follow_up_due"] = _day(event.follow_up_due) if event.follow_up_due else None
            elif event.outcome == "reopened":
                st.update(det=None, started=True, completed=False, follow_up_due=None,
                          due=_day(event.investigation_due))

        st = self._case(conn, event, change)
        if st is None:
            return
        self._fact(conn, event, st["school"], _day(event.decided_on), "case.appeal_reviewed", event.outcome)
        if new:
            # A determination changed on review is in force at once: it counts as one.
            self._fact(conn, event, st["school"], _day(event.at), "case.determined",
                       _result(bool(new["bullying"]), new.get("severity")))

    @fold.register(BullyingCase.FollowUpRecorded)
    def _case_followed_up(self, event: Any, conn: Connection, position: int) -> None:
        def change(st: dict[str, Any]) -> None:
            if event.determination_id not in st["followed"]:
                st["followed"].append(event.determination_id)
            st["follow_up_due"] = _day(event.next_due) if event.next_due else None

        self._case(conn, event, change)

    @fold.register(BullyingCase.Closed)
    def _case_closed(self, event: Any, conn: Connection, position: int) -> None:
        self._case_fact(conn, event, lambda st: st.update(closed=True, follow_up_due=None), "case.closed",
                        event.at)

    @fold.register(BullyingCase.Reopened)
    def _case_reopened(self, event: Any, conn: Connection, position: int) -> None:
        def change(st: dict[str, Any]) -> None:
            st.update(cycle=st["cycle"] + 1, closed=False, det=None, started=False, completed=False,
                      due=_day(event.investigation_due), follow_up_due=None)

        self._case_fact(conn, event, change, "case.reopened", event.at)

    @fold.register(BullyingCase.ReportCorrected)
    def _case_report_corrected(self, event: Any, conn: Connection, position: int) -> None:
        if "forms" in event.changes:
            conn.execute(_SET_CASE_FORMS, {"b_id": _sid(event), "b_forms": ",".join(event.changes["forms"])})

    # -- support files ------------------------------------------------------------
    @fold.register(SupportFile.Opened)
    def _file_opened(self, event: Any, conn: Connection, position: int) -> None:
        day, due = _day(event.at), _day(event.next_review_due)
        self._insert(conn, _INS["v_report_files"], {
            "file_id": _sid(event), "school_id": event.school_id, "status": "open",
            "risk_level": event.risk_level, "review_due": due, "seq": 1}, position)
        self._insert(conn, _INS["v_report_file_spans"], {
            "file_id": _sid(event), "seq": 1, "school_id": event.school_id, "from_day": day, "to_day": None,
            "status": "open", "risk_level": event.risk_level, "review_due": due,
        }, position)
        _add(self._deltas, file_span_counts,
             _file_span_key(event.school_id, "open", event.risk_level, day, None, due), 1)
        self._fact(conn, event, event.school_id, day, "file.opened", event.risk_level)

    _KEEP: Any = object()

    def _file(self, conn: Connection, event: Any, *, status: str | None = None, level: str | None = None,
              due: Any = _KEEP) -> tuple[str, str] | None:
        """A new span when the file's status, risk level or next review changes.
        Returns (school_id, risk level) or None for an unknown file."""
        fid = _sid(event)
        row = conn.execute(_FILE_STATE, {"b_id": fid}).first()
        if row is None:
            return None
        school_id, old_status, old_level, old_due, seq = row
        new_status = status or old_status
        new_level = level or old_level
        new_due = old_due if due is self._KEEP else (_day(due) if due is not None else None)
        day = _day(event.at)
        if (new_status, new_level, new_due) != (old_status, old_level, old_due):
            span = conn.execute(_FILE_SPAN, {"b_id": fid, "b_seq": seq}).first()
            if span is not None:
                f, t, st, lv, rd = span
                _add(self._deltas, file_span_counts, _file_span_key(school_id, st, lv, f, t, rd), -1)
                _add(self._deltas, file_span_counts, _file_span_key(school_id, st, lv, f, day, rd), 1)
            conn.execute(_END_FILE_SPAN, {"b_id": fid, "b_seq": seq, "b_day": day})
            seq += 1
            conn.execute(_INS["v_report_file_spans"], {
                "file_id": fid, "seq": seq, "school_id": school_id, "from_day": day, "to_day": None,
                "status": new_status, "risk_level": new_level, "review_due": new_due,
            })
            _add(self._deltas, file_span_counts,
                 _file_span_key(school_id, new_status, new_level, day, None, new_due), 1)
            conn.execute(_SET_FILE_STATE, {"b_id": fid, "b_status": new_status, "b_level": new_level,
                                           "b_due": new_due, "b_seq": seq})
        return school_id, new_level

    def _file_fact(self, conn: Connection, event: Any, kind: str, day: date | datetime, detail: str | None = "",
                   ref: str | None = None, **change: Any) -> None:
        found = self._file(conn, event, **change)
        if found is not None:
            school_id, level = found
            self._fact(conn, event, school_id, _day(day), kind, level if detail is None else detail, ref)

    @fold.register(SupportFile.RiskLevelRaised)
    def _file_raised(self, event: Any, conn: Connection, position: int) -> None:
        self._file_fact(conn, event, "file.risk_raised", event.at, event.to_level, level=event.to_level,
                        due=event.next_review_due)

    @fold.register(SupportFile.RiskLevelLowered)
    def _file_lowered(self, event: Any, conn: Connection, position: int) -> None:
        self._file_fact(conn, event, "file.risk_lowered", event.at, event.to_level, level=event.to_level,
                        due=event.next_review_due)

    @fold.register(SupportFile.PlanReviewed)
    def _file_reviewed(self, event: Any, conn: Connection, position: int) -> None:
        self._file_fact(conn, event, "file.reviewed", event.reviewed_on, ref=event.entry_id,
                        due=event.next_review_due)

    @fold.register(SupportFile.CrisisInterventionRecorded)
    def _file_crisis(self, event: Any, conn: Connection, position: int) -> None:
        self._file_fact(conn, event, "file.crisis", event.occurred_on, ref=event.entry_id)

    @fold.register(SupportFile.EntryCorrected)
    def _file_entry_corrected(self, event: Any, conn: Connection, position: int) -> None:
        if event.entry_kind == "crisis" and "occurred_on" in event.changes:
            day = _day(event.changes["occurred_on"])
            for school, old_day, kind, detail in conn.execute(_FACTS_OF_REF, {"b_id": _sid(event),
                                                                              "b_ref": event.corrects}).all():
                _add(self._deltas, fact_counts, (school, old_day, kind, detail), -1)
                _add(self._deltas, fact_counts, (school, day, kind, detail), 1)
            conn.execute(_REDATE_FACT, {"b_id": _sid(event), "b_ref": event.corrects, "b_day": day})

    @fold.register(SupportFile.Closed)
    def _file_closed(self, event: Any, conn: Connection, position: int) -> None:
        self._file_fact(conn, event, "file.closed", event.at, None, status="closed", due=None)

    @fold.register(SupportFile.Reopened)
    def _file_reopened(self, event: Any, conn: Connection, position: int) -> None:
        self._file_fact(conn, event, "file.reopened", event.at, status="open", due=event.next_review_due)

    # -- pairings and check-ins -----------------------------------------------------
    @fold.register(Pairing.Paired)
    def _paired(self, event: Any, conn: Connection, position: int) -> None:
        day = _day(event.at)
        pid = _sid(event)
        self._insert(conn, _INS["v_report_pairings"], {
            "pairing_id": pid, "school_id": event.school_id, "paired_day": day, "last_held_day": None,
            "cadence": event.cadence_days, "seq": 1, "active": True,
        }, position, key=("pairing", pid))
        self._insert(conn, _INS["v_report_pairing_spans"], {
            "pairing_id": pid, "seq": 1, "school_id": event.school_id, "from_day": day, "to_day": None,
            "cadence": event.cadence_days,
        }, position)
        _add(self._deltas, pairing_span_counts, (event.school_id, day, OPEN, event.cadence_days), 1)
        self._overdue.add(pid)

    @fold.register(Pairing.CheckInRecorded)
    def _checked_in(self, event: Any, conn: Connection, position: int) -> None:
        pid, day = _sid(event), _day(event.held_on)
        row = self.kept(("pairing", pid))
        if row is None:
            school = conn.execute(_PAIRING_SCHOOL, {"b_id": pid}).scalar()
            if school is None:  # an unknown pairing: nothing to count
                return
            self._insert(conn, _INS["v_report_check_ins"], {
                "pairing_id": pid, "check_in_id": event.check_in_id, "school_id": school, "held_day": day,
            }, position)
            conn.execute(_SET_LAST_HELD, {"b_id": pid, "b_day": day})
            _add(self._deltas, check_in_days, (school, day), 1)
            self._overdue.add(pid)
            return
        _add(self._deltas, check_in_days, (row["school_id"], day), 1)
        self._overdue.add(pid)
        # Paired in this batch and not written yet: the same rows as the two statements above.
        self._insert(conn, _INS["v_report_check_ins"], {
            "pairing_id": pid, "check_in_id": event.check_in_id, "school_id": row["school_id"], "held_day": day,
        }, position)
        last = row["last_held_day"]
        if last is None or last < day:
            row["last_held_day"] = day

    def _pairing_span(self, conn: Connection, event: Any, cadence: int | None) -> None:
        """Close the current span; open a new one with `cadence` unless the pairing ended."""
        pid, day = _sid(event), _day(event.at)
        row = conn.execute(_PAIRING_STATE, {"b_id": pid}).first()
        if row is None:
            return
        school_id, seq = row
        span = conn.execute(_PAIRING_SPAN, {"b_id": pid, "b_seq": seq}).first()
        if span is not None:
            from_day, to_day, old_cadence = span
            _add(self._deltas, pairing_span_counts, (school_id, from_day, OPEN if to_day is None else to_day,
                                                     old_cadence), -1)
            _add(self._deltas, pairing_span_counts, (school_id, from_day, day, old_cadence), 1)
        conn.execute(_END_PAIRING_SPAN, {"b_id": pid, "b_seq": seq, "b_day": day})
        if cadence is None:
            conn.execute(_END_PAIRING, {"b_id": pid})
            # Its overdue runs are worked out again at the next flush, so only after the
            # last statement (any statement flushes first).
            self._overdue.add(pid)
            return
        conn.execute(_INS["v_report_pairing_spans"], {
            "pairing_id": pid, "seq": seq + 1, "school_id": school_id, "from_day": day, "to_day": None,
            "cadence": cadence,
        })
        _add(self._deltas, pairing_span_counts, (school_id, day, OPEN, cadence), 1)
        conn.execute(_SET_PAIRING, {"b_id": pid, "b_seq": seq + 1, "b_cadence": cadence, "b_active": True})
        self._overdue.add(pid)

    @fold.register(Pairing.CadenceChanged)
    def _cadence_changed(self, event: Any, conn: Connection, position: int) -> None:
        self._pairing_span(conn, event, event.cadence_days)

    @fold.register(Pairing.Ended)
    def _pairing_ended(self, event: Any, conn: Connection, position: int) -> None:
        self._pairing_span(conn, event, None)

    # -- screenings -----------------------------------------------------------------
    @fold.register(ScreeningRecord.ScreeningRecordOpened)
    def _screening_record_opened(self, event: Any, conn: Connection, position: int) -> None:
        rid = _sid(event)
        self._insert(conn, _INS["v_report_screening_records"], {
            "record_id": rid, "school_id": event.school_id, "student_id": event.student_id},
            position, key=("screening", rid))

    @fold.register(ScreeningRecord.ScreeningRecorded)
    def _screened(self, event: Any, conn: Connection, position: int) -> None:
        rid = _sid(event)
        row = self.kept(("screening", rid))
        if row is None:
            found = conn.execute(_RECORD, {"b_id": rid}).first()
            if found is None:  # an unknown record: nothing to count
                return
            school, student = found
        else:
            # Its record was opened in this batch and not written yet.
            school, student = row["school_id"], row["student_id"]
        day, instrument = _day(event.screened_on), event.instrument.upper()
        self._insert(conn, _INS["v_report_screenings"], {
            "record_id": rid, "screening_id": event.screening_id, "school_id": school,
            "student_id": student, "screened_day": day,
            "instrument": instrument, "flagged": bool(event.flagged), "crisis": bool(event.crisis),
        }, position)
        _add(self._deltas, screening_days, (school, day, instrument), 1, int(bool(event.flagged)),
             int(bool(event.crisis)))
        self._screened.setdefault((school, student), set()).add((rid, event.screening_id))

    # -- erasure --------------------------------------------------------------------
    def erase(self, conn: Connection, stream_id: str) -> None:
        sid = str(stream_id)
        # First take out of the aggregates what the stream's rows added to them (its own
        # deltas: a batch may be under way on another thread).
        deltas: Deltas = {}
        for school, day, n in conn.execute(_ERASED_CHECK_INS, {"b_id": sid}):
            _add(deltas, check_in_days, (school, day), -n)
        for school, from_day, to_day, cadence, n in conn.execute(_ERASED_SPANS, {"b_id": sid}):
            _add(deltas, pairing_span_counts, (school, from_day, to_day, cadence), -n)
        for school, day, kind, detail, n in conn.execute(_ERASED_FACTS, {"b_id": sid}):
            _add(deltas, fact_counts, (school, day, kind, detail), -n)
        for school, status, level, from_day, to_day, due in conn.execute(_ERASED_FILE_SPANS, {"b_id": sid}):
            _add(deltas, file_span_counts, _file_span_key(school, status, level, from_day, to_day, due), -1)
        for school, from_day, to_day in conn.execute(_ERASED_RUNS, {"b_id": sid}):
            _add(deltas, overdue_counts, (school, from_day, to_day), -1)
        for school, day, inst, n, flagged, crisis in conn.execute(_ERASED_SCREENINGS, {"b_id": sid}):
            _add(deltas, screening_days, (school, day, inst), -n, -int(flagged or 0), -int(crisis or 0))
        record = conn.execute(_RECORD, {"b_id": sid}).first()
        if record is not None:
            school, student = record
            sc = screenings
            days = conn.execute(select(sc.c.record_id, sc.c.screened_day)
                                .where(sc.c.student_id == student, sc.c.school_id == school)).all()
            self._screened_change(deltas, school, [d for _, d in days], [d for r, d in days if r != sid])
        _apply(conn, deltas)
        for stmt in _ERASE:
            conn.execute(stmt, {"b_id": sid})


def views(app: Any) -> list[View]:
    return [ReportView(app)]


# -- the report -----------------------------------------------------------------------
@dataclass(frozen=True)
class Metric:
    id: str  # stable English id (a CSV column)
    group: str  # the section it is printed in
    label: str  # Chinese label


GROUPS = {
    "cases": "校园欺凌案件（报告期内）",
    "cases_end": "校园欺凌案件（期末状态）",
    "files": "心理健康档案",
    "screenings": "心理筛查（报告期内）",
    "check_ins": "一岗双带谈心谈话",
    "overdue": "期末超期事项",
}


def _metrics(instruments: Iterable[str]) -> list[Metric]:
    m: list[Metric] = [Metric("cases_reported", "cases", "新报告案件")]
    m += [Metric(f"cases_form_{k}", "cases", f"其中：{v}") for k, v in FORMS.items()]
    m += [Metric("determinations", "cases", "认定（经批准或复查变更）"),
          Metric("determinations_not_bullying", "cases", "认定：不构成欺凌")]
    m += [Metric(f"determinations_{k}", "cases", f"认定：{v}") for k, v in SEVERITIES.items()]
    m += [Metric("mandatory_reports", "cases", "强制报告"),
          Metric("appeals_lodged", "cases", "申诉"),
          Metric("cases_closed", "cases", "结案"),
          Metric("cases_reopened", "cases", "重新开启")]
    m += [Metric("cases_open_end", "cases_end", "期末未结案件")]
    m += [Metric(f"cases_end_{k}", "cases_end", f"期末状态：{v}") for k, v in STATUS_LABELS.items()]
    m += [Metric("files_opened", "files", "新建档案")]
    m += [Metric(f"files_opened_{k}", "files", f"新建：{RISK_LABELS[k]}") for k in RISK_LEVELS]
    m += [Metric("files_closed", "files", "结案档案")]
    m += [Metric(f"files_closed_{k}", "files", f"结案：{RISK_LABELS[k]}") for k in RISK_LEVELS]
    m += [Metric("files_reopened", "files", "重新开启"),
          Metric("files_risk_raised", "files", "风险等级提高"),
          Metric("files_risk_lowered", "files", "风险等级降低"),
          Metric("file_reviews", "files", "方案复评"),
          Metric("crisis_interventions", "files", "危机干预"),
          Metric("files_open_end", "files", "期末在档")]
    m += [Metric(f"files_end_{k}", "files", f"期末在档：{RISK_LABELS[k]}") for k in RISK_LEVELS]
    m += [Metric("screenings", "screenings", "筛查人次"),
          Metric("students_screened", "screenings", "筛查人数"),
          Metric("screenings_flagged", "screenings", "达到关注线（人次）"),
          Metric("screenings_crisis", "screenings", "危机信号（人次）")]
    for inst in instruments:
        key = _instrument_key(inst)
        m += [Metric(f"screenings_{key}", "screenings", f"{inst}：人次"),
              Metric(f"screenings_flagged_{key}", "screenings", f"{inst}：达到关注线")]
    m += [Metric("pairings_active_end", "check_ins", "期末结对数"),
          Metric("check_ins_due", "check_ins", "应谈心次数"),
          Metric("check_ins_done", "check_ins", "已谈心次数")]
    m += [Metric("overdue_end", "overdue", "期末超期事项合计"),
          Metric("investigations_overdue_end", "overdue", "调查超期（案件）"),
          Metric("follow_ups_overdue_end", "overdue", "回访超期（案件）"),
          Metric("reviews_overdue_end", "overdue", "复评超期（档案）"),
          Metric("check_ins_overdue_end", "overdue", "谈心逾期（结对）")]
    return m


def _instrument_key(instrument: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", instrument.lower()).strip("_") or "other"


@dataclass(frozen=True)
class SchoolReport:
    school_id: str  # "" for the total row
    school: str  # the school's name (a school, never a person), or 合计
    counts: dict[str, int]

    def __getitem__(self, metric: str) -> int:
        return self.counts.get(metric, 0)


@dataclass(frozen=True)
class Report:
    """A periodic report: counts only, per school and summed."""

    date_from: date
    date_to: date
    as_of: date  # the day "at period end" figures are taken on: the period end, or today if earlier
    generated_at: datetime
    scope: str  # "district" or "school"
    district: str
    metrics: list[Metric]
    schools: list[SchoolReport]
    total: SchoolReport
    groups: dict[str, str] = field(default_factory=lambda: dict(GROUPS))

    def school(self, school_id: str) -> SchoolReport:
        for s in self.schools:
            if s.school_id == school_id:
                return s
        raise KeyError(school_id)


def periodic_report(
    app: Any, actor: Actor, *, date_from: date, date_to: date, school_id: str | None = None,
    today: date | None = None,
) -> Report:
    """The periodic report (定期报送) for [date_from, date_to], both days included.

    With `school_id`: that school (its principal, or a supervisor of its district).
    Without: the actor's own school if they belong to one, else (a supervisor) every
    school of their district, with the district total. Decided by the gate (STATS_READ);
    the decision and the trail's `report` entry are recorded together (one transaction)."""
    together = getattr(app, "decisions_together", None)
    with together() if together is not None else nullcontext():
        return _periodic_report(app, actor, date_from, date_to, school_id, today)


def _periodic_report(app: Any, actor: Actor, date_from: date, date_to: date, school_id: str | None,
                     today: date | None) -> Report:
    if school_id is None and actor.school_id is not None:
        school_id = actor.school_id
    if school_id is not None:
        decision_resource = app.resource("school", None, school_id)
    else:
        decision_resource = Resource(kind="district", district=actor.district)
    app.authorize(actor, access.STATS_READ, decision_resource)
    if not isinstance(date_from, date) or not isinstance(date_to, date) or date_from > date_to:
        raise InvalidInput(reason="报告期的起始日期不能晚于截止日期")
    district = decision_resource.district
    known = {sid: (name, d) for sid, name, d in app.schools()}
    if school_id is not None:
        if school_id not in known:
            raise NotFound()
        chosen = [(school_id, known[school_id][0])]
    else:
        chosen = sorted(((sid, name) for sid, (name, d) in known.items() if d == district), key=lambda s: s[1])
    if hasattr(app, "record_security_event"):
        app.record_security_event(
            "report", actor.staff_id, school_id or f"district:{district}",
            {"from": date_from.isoformat(), "to": date_to.isoformat(), "schools": len(chosen)},
        )
    views_runner = getattr(app, "views", None)
    if views_runner is not None:
        views_runner.catch_up()
    today = today or app.now().date()
    as_of = min(date_to, today)
    ids = [sid for sid, _ in chosen]
    instruments = list(getattr(app, "instruments", {}) or {})
    with views_runner.engine.connect() as conn:
        counts, seen_instruments = _cached_count(app, conn, ids, date_from.toordinal(), date_to.toordinal(),
                                                 as_of.toordinal())
    for inst in sorted(seen_instruments):
        if inst not in instruments:
            instruments.append(inst)
    metrics = _metrics(instruments)
    metric_ids = [m.id for m in metrics]
    rows = [SchoolReport(sid, name, dict(zip(metric_ids, map(counts[sid].__getitem__, metric_ids), strict=True)))
            for sid, name in chosen]
    summed: Counter[str] = Counter()
    for sid in ids:
        summed.update(counts[sid])
    total = SchoolReport("", "全区合计" if school_id is None else "合计",
                         dict(zip(metric_ids, map(summed.__getitem__, metric_ids), strict=True)))
    return Report(
        date_from=date_from, date_to=date_to, as_of=as_of, generated_at=app.now(),
        scope="school" if school_id is not None else "district", district=district, metrics=metrics,
        schools=rows, total=total,
    )


_STATE = select(
    select(tracking.c.position).where(tracking.c.view == VIEW_NAME).scalar_subquery(),
    select(func.count()).select_from(text("anxin_keys")).where(text("wrapped IS NULL")).scalar_subquery(),
)
_CACHE_SIZE = 32
_SHRED_SETTLE_SECONDS = 1.0


def _cached_count(app: Any, conn: Connection, ids: list[str], start: int, end: int,
                  as_of: int) -> tuple[dict[str, Counter[str]], set[str]]:
    """`_count`, kept per application for as long as the view's rows cannot have changed.

    The counts are a function of the arguments and of the view's rows, which change only
    when the view moves on (its position) or a stream is shredded (its rows are deleted,
    and its key nulled: the number of shredded keys only grows). Both are read before
    the counts, so an entry is never older than its key; another process's writes move
    the same position and key, so they are seen at once. Counts only (no personal data).

    The settle: a shred nulls the key first and deletes the view's rows just after, in
    another transaction (perhaps in another process). Counts read in between still hold
    the rows, under the new number of shredded keys; kept, they would be served until the
    view moves on. So when the number is seen to change, nothing is kept for
    `_SHRED_SETTLE_SECONDS`. When the cache starts, the shreds it sees were not seen
    happening, and the last of them may be in that window too (a process started during
    another's shred): it settles as well, unless it sees none at all. With no key
    shredded, no shred can be half done (the key is nulled first), so the counts are kept
    at once; a shred that starts after that changes the number, and the next call sees it."""
    if not hasattr(app, "db"):
        return _count(conn, ids, start, end, as_of)
    # The view's position and the number of shredded keys, in one round trip (the keys
    # live in the same database as the views, on PostgreSQL in the same schema).
    row = conn.execute(_STATE).first()
    pos, shredded = (row[0], row[1] or 0) if row else (None, 0)
    now = time.monotonic()
    state = app.__dict__.get("_report_counts")
    if state is None:
        # Nothing shredded yet: nothing can be half shredded, keep at once (see above).
        since = float("-inf") if shredded == 0 else now
        state = app.__dict__.setdefault("_report_counts", {"shredded": shredded, "since": since, "cache": {}})
    if state["shredded"] != shredded:
        # A stream was shredded since: its key is nulled first, its view rows deleted just
        # after. Counts read meanwhile could still hold those rows, so none is kept a while.
        state.update(shredded=shredded, since=now, cache={})
    cache = state["cache"]
    key = (tuple(ids), start, end, as_of, pos)
    found = cache.get(key)
    if found is None:
        found = _count(conn, ids, start, end, as_of)
        if now - state["since"] >= _SHRED_SETTLE_SECONDS:
            if len(cache) >= _CACHE_SIZE:
                cache.pop(next(iter(cache)))
            cache[key] = found
    counts, instruments = found
    # Callers get their own copies (a Counter per school), never the cached ones.
    return {sid: Counter(c) for sid, c in counts.items()}, set(instruments)


def _active_at(table: Table, day: int) -> Any:
    """from_day <= day < to_day (NULL: still current), as the span indexes read it."""
    return and_(_until(table) > day, table.c.from_day <= day)


def _part(tag: str, school: Any, a: Any = None, b: Any = None, n1: Any = None, n2: Any = None,
          n3: Any = None) -> list[Any]:
    """One part's columns in the shape every part of `_count`'s statement shares:
    (part, school, two codes, three counts)."""
    return [literal(tag, String).label("part"), school.label("school"),
            (a if a is not None else literal("", String)).label("a"),
            (b if b is not None else literal("", String)).label("b"),
            (n1 if n1 is not None else literal(0, Integer)).label("n1"),
            (n2 if n2 is not None else literal(0, Integer)).label("n2"),
            (n3 if n3 is not None else literal(0, Integer)).label("n3")]


def _count_statement(ids: list[str], start: int, end: int, as_of: int) -> Any:
    """Every count of the report in one statement (one round trip): the parts, each a
    grouped count or sum over an index or a small aggregate table, UNION ALL."""
    parts = []
    # Dated facts in the period.
    fc = fact_counts
    parts.append(
        select(*_part("fact", fc.c.school_id, fc.c.kind, fc.c.detail, func.sum(fc.c.n)))
        .where(fc.c.school_id.in_(ids), fc.c.day.between(start, end))
        .group_by(fc.c.school_id, fc.c.kind, fc.c.detail))
    # Cases reported in the period, by their forms.
    parts.append(
        select(*_part("cases", cases.c.school_id, cases.c.forms, None, func.count()))
        .where(cases.c.school_id.in_(ids), cases.c.reported_day.between(start, end))
        .group_by(cases.c.school_id, cases.c.forms))
    # Cases at period end: status, and what was overdue that day.
    s = case_spans
    parts.append(
        select(*_part(
            "case_end", s.c.school_id, s.c.status, None, func.count(),
            func.sum(case((and_(s.c.investigation_due.is_not(None), s.c.investigation_due < as_of), 1), else_=0)),
            func.sum(case((and_(s.c.follow_up_due.is_not(None), s.c.follow_up_due < as_of), 1), else_=0))))
        .where(s.c.school_id.in_(ids), _active_at(s, as_of)).group_by(s.c.school_id, s.c.status))
    # Support files open at period end, by risk level, and reviews overdue that day.
    f = file_span_counts
    parts.append(
        select(*_part("file_end", f.c.school_id, f.c.risk_level, None, func.sum(f.c.n),
                      func.sum(case((and_(f.c.review_due > 0, f.c.review_due < as_of), f.c.n), else_=0))))
        .where(f.c.school_id.in_(ids), f.c.status == "open", f.c.from_day <= as_of, f.c.to_day > as_of)
        .group_by(f.c.school_id, f.c.risk_level))
    # Screenings done in the period, by instrument (summed per day).
    sd = screening_days
    parts.append(
        select(*_part("screenings", sd.c.school_id, sd.c.instrument, None, func.sum(sd.c.n), func.sum(sd.c.flagged),
                      func.sum(sd.c.crisis)))
        .where(sd.c.school_id.in_(ids), sd.c.day.between(start, end)).group_by(sd.c.school_id, sd.c.instrument))
    # Students screened in the period: each one's first day in it (see `screened_days`).
    sf = screened_days
    parts.append(
        select(*_part("screened", sf.c.school_id, None, None, func.sum(sf.c.n)))
        .where(sf.c.school_id.in_(ids), sf.c.day.between(start, end), sf.c.prev_day < start)
        .group_by(sf.c.school_id))
    # Check-ins held in the period (summed per day).
    cd = check_in_days
    parts.append(
        select(*_part("check_ins", cd.c.school_id, None, None, func.sum(cd.c.n)))
        .where(cd.c.school_id.in_(ids), cd.c.day.between(start, end)).group_by(cd.c.school_id))
    # Check-ins due in the period (up to today, if it has not ended): for each span of
    # a pairing's cadence, the days it overlaps the period divided by the cadence,
    # rounded down; spans alike counted together.
    p = pairing_span_counts
    due_end = min(end, as_of)
    if due_end >= start:
        span_end = case((p.c.to_day < due_end + 1, p.c.to_day), else_=due_end + 1)
        span_start = case((p.c.from_day > start, p.c.from_day), else_=start)
        parts.append(
            select(*_part("due", p.c.school_id, None, None, func.sum(p.c.n * ((span_end - span_start) // p.c.cadence))))
            .where(p.c.school_id.in_(ids), p.c.from_day <= due_end, p.c.to_day > start, p.c.to_day > p.c.from_day)
            .group_by(p.c.school_id))
    # Pairings active at period end.
    parts.append(
        select(*_part("active", p.c.school_id, None, None, func.sum(p.c.n)))
        .where(p.c.school_id.in_(ids), p.c.from_day <= as_of, p.c.to_day > as_of).group_by(p.c.school_id))
    # Pairings overdue at period end (see `overdue_runs`).
    od = overdue_counts
    parts.append(
        select(*_part("overdue", od.c.school_id, None, None, func.sum(od.c.n)))
        .where(od.c.school_id.in_(ids), od.c.from_day <= as_of, od.c.to_day > as_of).group_by(od.c.school_id))
    return union_all(*parts)


_FACT_NAMES = {
    "case.mandatory_report": "mandatory_reports", "case.appeal_lodged": "appeals_lodged",
    "case.closed": "cases_closed", "case.reopened": "cases_reopened", "file.reopened": "files_reopened",
    "file.risk_raised": "files_risk_raised", "file.risk_lowered": "files_risk_lowered",
    "file.reviewed": "file_reviews", "file.crisis": "crisis_interventions",
}
_PER_SCHOOL = {"screened": "students_screened", "check_ins": "check_ins_done", "due": "check_ins_due",
               "active": "pairings_active_end", "overdue": "check_ins_overdue_end"}


def _count(conn: Connection, ids: list[str], start: int, end: int, as_of: int) -> tuple[dict[str, Counter[str]], set[str]]:
    out: dict[str, Counter[str]] = {sid: Counter() for sid in ids}
    instruments: set[str] = set()
    if not ids:
        return out, instruments
    for part, school, a, b, n1, n2, n3 in conn.execute(_count_statement(ids, start, end, as_of)):
        c = out[school]
        n1, n2, n3 = int(n1 or 0), int(n2 or 0), int(n3 or 0)
        if part == "fact":
            if a == "case.determined":
                c["determinations"] += n1
                c[f"determinations_{b}"] += n1
            elif a == "file.opened":
                c["files_opened"] += n1
                c[f"files_opened_{b}"] += n1
            elif a == "file.closed":
                c["files_closed"] += n1
                c[f"files_closed_{b}"] += n1
            elif a in _FACT_NAMES:
                c[_FACT_NAMES[a]] += n1
        elif part == "cases":  # a case may take several forms
            c["cases_reported"] += n1
            for form in a.split(","):
                if form:
                    c[f"cases_form_{form}"] += n1
        elif part == "case_end":
            c[f"cases_end_{a}"] += n1
            if a != "closed":
                c["cases_open_end"] += n1
            c["investigations_overdue_end"] += n2
            c["follow_ups_overdue_end"] += n3
        elif part == "file_end":
            c["files_open_end"] += n1
            c[f"files_end_{a}"] += n1
            c["reviews_overdue_end"] += n2
        elif part == "screenings":
            key = _instrument_key(a)
            instruments.add(a)
            c["screenings"] += n1
            c[f"screenings_{key}"] += n1
            c["screenings_flagged"] += n2
            c[f"screenings_flagged_{key}"] += n2
            c["screenings_crisis"] += n3
        else:
            c[_PER_SCHOOL[part]] += n1
    for c in out.values():
        c["overdue_end"] = (c["investigations_overdue_end"] + c["follow_ups_overdue_end"]
                            + c["reviews_overdue_end"] + c["check_ins_overdue_end"])
    return out, instruments


# -- rendering ------------------------------------------------------------------------
ID_COLUMNS = [
    ("row_type", "行类型"), ("school_id", "学校编号"), ("school", "学校"), ("district", "学区"),
    ("date_from", "起始日期"), ("date_to", "截止日期"), ("as_of", "期末状态截至"),
]


def report_csv(report: Report) -> str:
    """One row per school and a total row; the first header row holds the stable
    English column ids, the second their Chinese labels."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow([c for c, _ in ID_COLUMNS] + [m.id for m in report.metrics])
    w.writerow([label for _, label in ID_COLUMNS] + [m.label for m in report.metrics])
    for row_type, r in [*(("school", s) for s in report.schools), ("total", report.total)]:
        w.writerow([row_type, r.school_id, r.school, report.district, report.date_from.isoformat(),
                    report.date_to.isoformat(), report.as_of.isoformat()]
                   + [r[m.id] for m in report.metrics])
    return buf.getvalue()


TEMPLATES = Path(__file__).resolve().parent / "templates"
# The overview table (one row per school): a few metrics under short headings, to fit A4.
OVERVIEW = {
    "cases_reported": "新报告案件", "determinations": "认定", "cases_closed": "结案", "cases_open_end": "期末未结案件",
    "files_opened": "新建档案", "files_open_end": "期末在档", "screenings": "筛查人次", "check_ins_due": "应谈心",
    "check_ins_done": "已谈心", "overdue_end": "期末超期事项",
}


def report_html(report: Report) -> str:
    """The printable report (A4): the overview, then one page per school."""
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    env = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=select_autoescape(["html"]),
                      trim_blocks=True, lstrip_blocks=True)
    by_id = {m.id: m for m in report.metrics}
    sections = [(key, title, [m for m in report.metrics if m.group == key]) for key, title in report.groups.items()]
    return env.get_template("report.html").render(
        report=report, sections=sections, overview=[(by_id[k], short) for k, short in OVERVIEW.items() if k in by_id],
        generated=report.generated_at.strftime("%Y-%m-%d %H:%M %Z").strip(),
    )


__all__ = ["ReportView", "Report", "SchoolReport", "Metric", "periodic_report", "report_csv", "report_html",
           "views", "case_status"]
