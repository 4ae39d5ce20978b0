"""The report view's tables: per-school, per-day rows derived from the streams, and the
pre-aggregated counts the report sums (kept by the fold beside them).

Every row derived from one stream carries its id (`STREAM_COLUMNS`), so `erase`
forgets it. The counts hold school ids, day numbers, instrument ids and cadences only,
and are a function of the rows: a district's report adds up a few thousand of them
instead of scanning ~700,000 check-ins. An erased stream's share is taken out of them
before its rows are deleted; a count fallen to nought is deleted, so a rebuild gives the
same rows. A database made before a table existed is folded again when it is opened (the
runner notices that the view's tables changed shape: projections.base.schema_signature).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Boolean, Column, ColumnClause, Index, Integer, String, Table, Text, func, literal_column

from projections.base import metadata

VIEW_NAME = "report"
OPEN = 99_999_999  # the end day of a span still current (after any real day), where a key needs one

# -- tables ---------------------------------------------------------------------------
# Dated facts, one per event that counts: a case determined (detail = the result), closed,
# reopened, a mandatory report, an appeal; a file opened / closed (detail = the risk level),
# risk raised / lowered, plan reviewed, crisis intervention.
facts = Table(
    "v_report_facts",
    metadata,
    Column("stream_id", String(36), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("kind", String(40), primary_key=True),
    Column("school_id", String(36), nullable=False),
    Column("day", Integer, nullable=False),
    Column("detail", String(40), nullable=False, default=""),
    Column("ref", String(64), nullable=True),  # the entry a later correction may re-date
)

# A case's day reported, its forms and the fold's state; its status, severity, investigation
# due date and follow-up due date over time, as `[from_day, to_day)` spans, so the status on
# any day (the period end) is one range lookup.
cases = Table(
    "v_report_cases",
    metadata,
    Column("case_id", String(36), primary_key=True),
    Column("school_id", String(36), nullable=False),
    Column("reported_day", Integer, nullable=False),
    Column("forms", String(80), nullable=False),  # comma-separated form codes
    Column("state", Text, nullable=False),  # the fold's state (JSON of codes and days)
)
Index("ix_v_report_cases_counts", cases.c.school_id, cases.c.reported_day, cases.c.forms)

case_spans = Table(
    "v_report_case_spans",
    metadata,
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
_OPEN_SQL: ColumnClause[Any] = literal_column(str(OPEN))  # written out, not bound: the index and the query say the same


def until(table: Table) -> Any:
    return func.coalesce(table.c.to_day, _OPEN_SQL)


Index(
    "ix_v_report_case_spans_counts",
    case_spans.c.school_id,
    until(case_spans),
    case_spans.c.from_day,
    case_spans.c.status,
    case_spans.c.investigation_due,
    case_spans.c.follow_up_due,
)

# A support file's status, risk level and next review date, now and over time.
files = Table(
    "v_report_files",
    metadata,
    Column("file_id", String(36), primary_key=True),
    Column("school_id", String(36), nullable=False),
    Column("status", String(16), nullable=False),
    Column("risk_level", String(16), nullable=False),
    Column("review_due", Integer, nullable=True),
    Column("seq", Integer, nullable=False),
)

file_spans = Table(
    "v_report_file_spans",
    metadata,
    Column("file_id", String(36), primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("school_id", String(36), nullable=False),
    Column("from_day", Integer, nullable=False),
    Column("to_day", Integer, nullable=True),
    Column("status", String(16), nullable=False),
    Column("risk_level", String(16), nullable=False),
    Column("review_due", Integer, nullable=True),
)

# Pairings with their cadence over time, and each check-in's day.
pairings = Table(
    "v_report_pairings",
    metadata,
    Column("pairing_id", String(36), primary_key=True),
    Column("school_id", String(36), nullable=False),
    Column("paired_day", Integer, nullable=False),
    Column("last_held_day", Integer, nullable=True),  # the latest check-in's day, whenever recorded
    Column("cadence", Integer, nullable=False),
    Column("seq", Integer, nullable=False),
    Column("active", Boolean, nullable=False),
)

pairing_spans = Table(
    "v_report_pairing_spans",
    metadata,
    Column("pairing_id", String(36), primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("school_id", String(36), nullable=False),
    Column("from_day", Integer, nullable=False),
    Column("to_day", Integer, nullable=True),
    Column("cadence", Integer, nullable=False),
)

check_ins = Table(
    "v_report_check_ins",
    metadata,
    Column("pairing_id", String(36), primary_key=True),
    Column("check_in_id", String(64), primary_key=True),
    Column("school_id", String(36), nullable=False),
    Column("held_day", Integer, nullable=False),
)
Index("ix_v_report_check_ins_pairing_day", check_ins.c.pairing_id, check_ins.c.held_day)

# Screenings done, by instrument, with the flagged and crisis marks.
screening_records = Table(
    "v_report_screening_records",
    metadata,
    Column("record_id", String(36), primary_key=True),
    Column("school_id", String(36), nullable=False),
    Column("student_id", String(36), nullable=False),
)

screenings = Table(
    "v_report_screenings",
    metadata,
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
    "v_report_check_in_days",
    metadata,
    Column("school_id", String(36), primary_key=True),
    Column("day", Integer, primary_key=True),
    Column("n", Integer, nullable=False),  # check-ins held that day
)

screening_days = Table(
    "v_report_screening_days",
    metadata,
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
    "v_report_screened_days",
    metadata,
    Column("school_id", String(36), primary_key=True),
    Column("day", Integer, primary_key=True),
    Column("prev_day", Integer, primary_key=True),
    Column("n", Integer, nullable=False),
)

# Pairing spans with the same school, days and cadence, counted: check-ins due and
# pairings active at period end are sums over these (to_day OPEN while current).
pairing_span_counts = Table(
    "v_report_pairing_span_counts",
    metadata,
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
    "v_report_overdue_runs",
    metadata,
    Column("pairing_id", String(36), primary_key=True),
    Column("from_day", Integer, primary_key=True),
    Column("to_day", Integer, nullable=False),  # exclusive; OPEN: from then on
    Column("school_id", String(36), nullable=False),
)

overdue_counts = Table(
    "v_report_overdue_counts",
    metadata,
    Column("school_id", String(36), primary_key=True),
    Column("from_day", Integer, primary_key=True),
    Column("to_day", Integer, primary_key=True),
    Column("n", Integer, nullable=False),
)

# Dated facts alike (school, day, kind, detail), counted: a screening import opens many
# files on one day.
fact_counts = Table(
    "v_report_fact_counts",
    metadata,
    Column("school_id", String(36), primary_key=True),
    Column("day", Integer, primary_key=True),
    Column("kind", String(40), primary_key=True),
    Column("detail", String(40), primary_key=True),
    Column("n", Integer, nullable=False),
)

# Support-file spans alike, counted (to_day OPEN while current, review_due 0 for none).
file_span_counts = Table(
    "v_report_file_span_counts",
    metadata,
    Column("school_id", String(36), primary_key=True),
    Column("status", String(16), primary_key=True),
    Column("risk_level", String(16), primary_key=True),
    Column("from_day", Integer, primary_key=True),
    Column("to_day", Integer, primary_key=True),
    Column("review_due", Integer, primary_key=True),
    Column("n", Integer, nullable=False),
)

# Remedies (issue 17, part C): what a case owes by a day, and the day it was done: a report to
# the police or the education bureau (kind authority_report, item "<authority>:<cycle>"), a
# county review (county_review, item the review's id; from_day the application). Pending at a
# day d: from_day <= d and not done by d; overdue at d: pending and due_day < d.
dues = Table(
    "v_report_dues",
    metadata,
    Column("stream_id", String(36), primary_key=True),
    Column("item", String(64), primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("school_id", String(36), nullable=False),
    Column("from_day", Integer, nullable=False),
    Column("due_day", Integer, nullable=False),
    Column("done_day", Integer, nullable=True),
)
Index("ix_v_report_dues_school", dues.c.school_id, dues.c.kind)

# Indexes of earlier versions, replaced by the ones above (dropped by a rebuild).
REPLACED_INDEXES = (
    "ix_v_report_facts_school_day",
    "ix_v_report_cases_school_day",
    "ix_v_report_case_spans_school",
    "ix_v_report_file_spans_school",
    "ix_v_report_pairing_spans_school",
    "ix_v_report_check_ins_school_day",
    "ix_v_report_screenings_school_day",
)

AGGREGATES = (
    check_in_days,
    screening_days,
    screened_days,
    pairing_span_counts,
    overdue_counts,
    fact_counts,
    file_span_counts,
)
TABLES = (
    facts,
    cases,
    case_spans,
    files,
    file_spans,
    pairings,
    pairing_spans,
    check_ins,
    screening_records,
    screenings,
    overdue_runs,
    dues,
    *AGGREGATES,
)
STREAM_COLUMNS = (
    (facts, "stream_id"),
    (cases, "case_id"),
    (case_spans, "case_id"),
    (files, "file_id"),
    (file_spans, "file_id"),
    (pairings, "pairing_id"),
    (pairing_spans, "pairing_id"),
    (check_ins, "pairing_id"),
    (screening_records, "record_id"),
    (screenings, "record_id"),
    (overdue_runs, "pairing_id"),
    (dues, "stream_id"),
)
