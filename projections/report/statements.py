"""The statements the report's fold runs: built once from the tables, executed with
parameters (cheap per event)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    Boolean,
    Integer,
    String,
    Table,
    Text,
    bindparam,
    case,
    delete,
    func,
    or_,
    select,
    update,
)

from projections.report.tables import (
    STREAM_COLUMNS,
    TABLES,
    case_spans,
    cases,
    check_ins,
    dues,
    facts,
    file_spans,
    files,
    overdue_runs,
    pairing_spans,
    pairings,
    screening_records,
    screenings,
    until,
)


def _b(name: str, type_: Any = String) -> Any:
    return bindparam(name, type_=type_)


def _span(table: Table, key: str) -> tuple[Any, Any]:
    """The span `seq` of the stream `b_id` (a case's, a file's or a pairing's)."""
    return table.c[key] == _b("b_id"), table.c.seq == _b("b_seq", Integer)


def _end_span(table: Table, key: str) -> Any:
    return update(table).where(*_span(table, key)).values(to_day=_b("b_day", Integer))


INSERT = {t.name: t.insert() for t in TABLES}
DONE_DUE = (
    update(dues)
    .where(dues.c.stream_id == _b("b_id"), dues.c.item == _b("b_item"), dues.c.done_day.is_(None))
    .values(done_day=_b("b_day", Integer))
)
CASE_STATE = select(cases.c.state).where(cases.c.case_id == _b("b_id"))
SET_CASE_STATE = update(cases).where(cases.c.case_id == _b("b_id")).values(state=_b("b_state", Text))
SET_CASE_FORMS = update(cases).where(cases.c.case_id == _b("b_id")).values(forms=_b("b_forms"))
END_CASE_SPAN = _end_span(case_spans, "case_id")
FILE_STATE = select(files.c.school_id, files.c.status, files.c.risk_level, files.c.review_due, files.c.seq).where(
    files.c.file_id == _b("b_id")
)
SET_FILE_STATE = (
    update(files)
    .where(files.c.file_id == _b("b_id"))
    .values(status=_b("b_status"), risk_level=_b("b_level"), review_due=_b("b_due", Integer), seq=_b("b_seq", Integer))
)
END_FILE_SPAN = _end_span(file_spans, "file_id")
FACTS_OF_REF = select(facts.c.school_id, facts.c.day, facts.c.kind, facts.c.detail).where(
    facts.c.stream_id == _b("b_id"), facts.c.ref == _b("b_ref")
)
FILE_SPAN = select(
    file_spans.c.from_day, file_spans.c.to_day, file_spans.c.status, file_spans.c.risk_level, file_spans.c.review_due
).where(*_span(file_spans, "file_id"))
REDATE_FACT = (
    update(facts).where(facts.c.stream_id == _b("b_id"), facts.c.ref == _b("b_ref")).values(day=_b("b_day", Integer))
)
SET_LAST_HELD = (
    update(pairings)
    .where(pairings.c.pairing_id == _b("b_id"))
    .values(
        last_held_day=case(
            (
                or_(pairings.c.last_held_day.is_(None), pairings.c.last_held_day < _b("b_day", Integer)),
                _b("b_day", Integer),
            ),
            else_=pairings.c.last_held_day,
        )
    )
)
PAIRING_STATE = select(pairings.c.school_id, pairings.c.seq).where(pairings.c.pairing_id == _b("b_id"))
END_PAIRING_SPAN = _end_span(pairing_spans, "pairing_id")
SET_PAIRING = (
    update(pairings)
    .where(pairings.c.pairing_id == _b("b_id"))
    .values(seq=_b("b_seq", Integer), cadence=_b("b_cadence", Integer), active=_b("b_active", Boolean))
)
END_PAIRING = update(pairings).where(pairings.c.pairing_id == _b("b_id")).values(active=False)
ERASE = [delete(t).where(t.c[col] == _b("b_id")) for t, col in STREAM_COLUMNS]
PAIRING_SCHOOL = select(pairings.c.school_id).where(pairings.c.pairing_id == _b("b_id"))
PAIRING_SPAN = select(pairing_spans.c.from_day, pairing_spans.c.to_day, pairing_spans.c.cadence).where(
    *_span(pairing_spans, "pairing_id")
)
RECORD = select(screening_records.c.school_id, screening_records.c.student_id).where(
    screening_records.c.record_id == _b("b_id")
)
# What an erased stream had added to the aggregates.
ERASED_CHECK_INS = (
    select(check_ins.c.school_id, check_ins.c.held_day, func.count())
    .where(check_ins.c.pairing_id == _b("b_id"))
    .group_by(check_ins.c.school_id, check_ins.c.held_day)
)
ERASED_SPANS = (
    select(
        pairing_spans.c.school_id, pairing_spans.c.from_day, until(pairing_spans), pairing_spans.c.cadence, func.count()
    )
    .where(pairing_spans.c.pairing_id == _b("b_id"))
    .group_by(pairing_spans.c.school_id, pairing_spans.c.from_day, until(pairing_spans), pairing_spans.c.cadence)
)
ERASED_FACTS = (
    select(facts.c.school_id, facts.c.day, facts.c.kind, facts.c.detail, func.count())
    .where(facts.c.stream_id == _b("b_id"))
    .group_by(facts.c.school_id, facts.c.day, facts.c.kind, facts.c.detail)
)
ERASED_FILE_SPANS = select(
    file_spans.c.school_id,
    file_spans.c.status,
    file_spans.c.risk_level,
    file_spans.c.from_day,
    file_spans.c.to_day,
    file_spans.c.review_due,
).where(file_spans.c.file_id == _b("b_id"))
ERASED_SCREENINGS = (
    select(
        screenings.c.school_id,
        screenings.c.screened_day,
        screenings.c.instrument,
        func.count(),
        func.sum(case((screenings.c.flagged, 1), else_=0)),
        func.sum(case((screenings.c.crisis, 1), else_=0)),
    )
    .where(screenings.c.record_id == _b("b_id"))
    .group_by(screenings.c.school_id, screenings.c.screened_day, screenings.c.instrument)
)

DELETE_RUN = delete(overdue_runs).where(
    overdue_runs.c.pairing_id == _b("b_id"), overdue_runs.c.from_day == _b("b_from", Integer)
)
ERASED_RUNS = select(overdue_runs.c.school_id, overdue_runs.c.from_day, overdue_runs.c.to_day).where(
    overdue_runs.c.pairing_id == _b("b_id")
)
