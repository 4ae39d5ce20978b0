"""定期报送: the periodic report, per school and for the district, for a date range.

The view keeps per-school, per-day facts and no names and no text: ids, day numbers,
statuses, risk levels, instrument ids, counts. Days are stored as proleptic ordinals
(`date.toordinal()`), so day arithmetic (a due date plus a cadence) is plain integer
arithmetic on SQLite and PostgreSQL alike.

- `tables`: the view's tables, and the pre-aggregated counts the report sums;
- `statements`: the statements the fold runs, built once;
- `counts`: how the fold keeps the counts (deltas, overdue runs, screened days, erasure);
- `state`: `ReportState`, what the fold keeps of each stream (state, spans, facts, deltas);
- `fold`: `ReportView`, the fold of the events into the tables;
- `model`: `Report`, its rows and metrics;
- `queries`: `periodic_report` (through the gate, STATS_READ) and its cached counts;
- `render`: `report_csv` and `report_html`.

`periodic_report(app, actor, date_from=..., date_to=..., school_id=None)` passes the
gate, catches the view up and returns a `Report`; `report_csv` and `report_html` render
it (the HTML template is projections/templates/report.html)."""

from __future__ import annotations

from projections.report.fold import ReportView, views
from projections.report.model import GROUPS, Metric, Report, SchoolReport
from projections.report.queries import forget_cached_counts, periodic_report
from projections.report.render import report_csv, report_html
from projections.report.state import case_status
from projections.report.tables import (
    AGGREGATES,
    OPEN,
    STREAM_COLUMNS,
    TABLES,
    VIEW_NAME,
    case_spans,
    cases,
    check_in_days,
    check_ins,
    fact_counts,
    facts,
    file_span_counts,
    file_spans,
    files,
    overdue_counts,
    overdue_runs,
    pairing_span_counts,
    pairing_spans,
    pairings,
    screened_days,
    screening_days,
    screening_records,
    screenings,
)

__all__ = [
    "ReportView",
    "Report",
    "SchoolReport",
    "Metric",
    "periodic_report",
    "report_csv",
    "report_html",
    "views",
    "case_status",
    "forget_cached_counts",
    "GROUPS",
    "VIEW_NAME",
    "OPEN",
    "TABLES",
    "AGGREGATES",
    "STREAM_COLUMNS",
    "facts",
    "cases",
    "case_spans",
    "files",
    "file_spans",
    "pairings",
    "pairing_spans",
    "check_ins",
    "screening_records",
    "screenings",
    "overdue_runs",
    "check_in_days",
    "screening_days",
    "screened_days",
    "pairing_span_counts",
    "overdue_counts",
    "fact_counts",
    "file_span_counts",
]
