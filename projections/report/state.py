"""The report fold's bookkeeping (`ReportState`, the base of `ReportView`): each case's,
file's and pairing's state and its `[from_day, to_day)` spans, the dated facts, and what
they add to the pre-aggregated counts (deltas, written with the batch's rows at `flush`).
The handlers in `fold` say which of these each event changes."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection

from domain.bullying import INVESTIGATION_OPEN_STATES
from domain.bullying import case_status as bullying_status
from projections.base import WriteBehind, stream_id_of
from projections.days import ordinal
from projections.report.counts import (
    Deltas,
    add,
    apply,
    file_span_key,
    move,
    overdue_runs_again,
    pairing_span_key,
    screened_again,
)
from projections.report.statements import (
    CASE_STATE,
    END_CASE_SPAN,
    END_FILE_SPAN,
    END_PAIRING,
    END_PAIRING_SPAN,
    FILE_SPAN,
    FILE_STATE,
    INSERT,
    PAIRING_SPAN,
    PAIRING_STATE,
    SET_CASE_STATE,
    SET_FILE_STATE,
    SET_PAIRING,
)
from projections.report.tables import fact_counts, file_span_counts, pairing_span_counts

_sid = stream_id_of


# -- the case fold: the same status as BullyingCase.status, from the events -----------
def case_status(st: dict[str, Any]) -> str:
    """A case's status from the view's state of it (domain.bullying.case_status)."""
    det = st["det"]
    return bullying_status(
        closed=bool(st["closed"]),
        appealed=bool(st["appeal"]),
        determined=det is not None,
        approved=bool(det and det["approved"]),
        bullying=bool(det and det["bullying"]),
        followed_up=bool(det and det["id"] in st["followed"]),
        investigation_completed=bool(st["completed"]),
        investigation_started=bool(st["started"]),
        reopened=bool(st["cycle"]),
    )


def determination_result(bullying: bool, severity: str | None) -> str:
    return (severity or "minor") if bullying else "not_bullying"


class ReportState(WriteBehind):
    """What the report's fold keeps between events and within a batch."""

    def _reset(self) -> None:
        super()._reset()
        # What this batch adds to the aggregates, written with its rows (`flush`).
        self._deltas: Deltas = {}
        # (school, student) -> the (record, screening) keys this batch added for them.
        self._screened: dict[tuple[str, str], set[tuple[str, str]]] = {}
        # Pairings whose overdue runs may have changed since the last flush.
        self._overdue: set[str] = set()

    def flush(self, conn: Connection) -> None:
        super().flush(conn)
        if self._screened:
            touched, self._screened = self._screened, {}
            screened_again(conn, self._deltas, touched)
        if self._overdue:
            pids, self._overdue = sorted(self._overdue), set()
            overdue_runs_again(conn, self._deltas, pids)
        if self._deltas:
            apply(conn, self._deltas)

    def _fact(
        self,
        conn: Connection,
        event: Any,
        school_id: str,
        day: int,
        kind: str,
        detail: str = "",
        ref: str | None = None,
    ) -> None:
        self._insert(
            conn,
            INSERT["v_report_facts"],
            {
                "stream_id": _sid(event),
                "version": event.originator_version,
                "school_id": school_id,
                "day": day,
                "kind": kind,
                "detail": detail,
                "ref": ref,
            },
        )
        add(self._deltas, fact_counts, (school_id, day, kind, detail), 1)

    def _determination_fact(self, conn: Connection, event: Any, st: dict[str, Any]) -> None:
        """The case's determination in force (approved, or changed on review) counted, on
        the day the event was recorded."""
        det = st["det"]
        self._fact(
            conn,
            event,
            st["school"],
            ordinal(event.at),
            "case.determined",
            determination_result(det["bullying"], det["severity"]),
        )

    @staticmethod
    def _case_span(st: dict[str, Any], day: int) -> dict[str, Any]:
        status = case_status(st)
        det = st["det"]
        return {
            "school_id": st["school"],
            "from_day": day,
            "to_day": None,
            "status": status,
            "severity": det["severity"] if det and det["approved"] and det["bullying"] else None,
            "investigation_due": st["due"] if status in INVESTIGATION_OPEN_STATES else None,
            "follow_up_due": st["follow_up_due"] if status != "closed" else None,
        }

    def _case(self, conn: Connection, event: Any, change: Callable[[dict[str, Any]], None]) -> dict[str, Any] | None:
        """Load the case's fold state, apply `change`, and start a new span if the
        status, severity or a due date changed. Returns the new state."""
        cid = _sid(event)
        row = conn.execute(CASE_STATE, {"b_id": cid}).first()
        if row is None:
            return None
        st = json.loads(row[0])
        day = ordinal(event.at)
        before = self._case_span(st, day)
        change(st)
        after = self._case_span(st, day)
        if after != before:
            conn.execute(END_CASE_SPAN, {"b_id": cid, "b_seq": st["seq"], "b_day": day})
            st["seq"] += 1
            conn.execute(INSERT["v_report_case_spans"], {"case_id": cid, "seq": st["seq"], **after})
        conn.execute(SET_CASE_STATE, {"b_id": cid, "b_state": json.dumps(st)})
        return st

    def _case_fact(
        self,
        conn: Connection,
        event: Any,
        change: Callable[[dict[str, Any]], None],
        kind: str,
        day: date | datetime,
        detail: str = "",
    ) -> None:
        st = self._case(conn, event, change)
        if st is not None:
            self._fact(conn, event, st["school"], ordinal(day), kind, detail)

    _KEEP: Any = object()

    def _file(
        self, conn: Connection, event: Any, *, status: str | None = None, level: str | None = None, due: Any = _KEEP
    ) -> tuple[str, str] | None:
        """A new span when the file's status, risk level or next review changes.
        Returns (school_id, risk level) or None for an unknown file."""
        fid = _sid(event)
        row = conn.execute(FILE_STATE, {"b_id": fid}).first()
        if row is None:
            return None
        school_id, old_status, old_level, old_due, seq = row
        new_status = status or old_status
        new_level = level or old_level
        new_due = old_due if due is self._KEEP else (ordinal(due) if due is not None else None)
        day = ordinal(event.at)
        if (new_status, new_level, new_due) != (old_status, old_level, old_due):
            span = conn.execute(FILE_SPAN, {"b_id": fid, "b_seq": seq}).first()
            if span is not None:
                f, t, st, lv, rd = span
                move(
                    self._deltas,
                    file_span_counts,
                    file_span_key(school_id, st, lv, f, t, rd),
                    file_span_key(school_id, st, lv, f, day, rd),
                )
            conn.execute(END_FILE_SPAN, {"b_id": fid, "b_seq": seq, "b_day": day})
            seq += 1
            conn.execute(
                INSERT["v_report_file_spans"],
                {
                    "file_id": fid,
                    "seq": seq,
                    "school_id": school_id,
                    "from_day": day,
                    "to_day": None,
                    "status": new_status,
                    "risk_level": new_level,
                    "review_due": new_due,
                },
            )
            add(self._deltas, file_span_counts, file_span_key(school_id, new_status, new_level, day, None, new_due), 1)
            conn.execute(
                SET_FILE_STATE,
                {"b_id": fid, "b_status": new_status, "b_level": new_level, "b_due": new_due, "b_seq": seq},
            )
        return school_id, new_level

    def _file_fact(
        self,
        conn: Connection,
        event: Any,
        kind: str,
        day: date | datetime,
        detail: str | None = "",
        ref: str | None = None,
        **change: Any,
    ) -> None:
        found = self._file(conn, event, **change)
        if found is not None:
            school_id, level = found
            self._fact(conn, event, school_id, ordinal(day), kind, level if detail is None else detail, ref)

    def _pairing_span(self, conn: Connection, event: Any, cadence: int | None) -> None:
        """Close the current span; open a new one with `cadence` unless the pairing ended."""
        pid, day = _sid(event), ordinal(event.at)
        row = conn.execute(PAIRING_STATE, {"b_id": pid}).first()
        if row is None:
            return
        school_id, seq = row
        span = conn.execute(PAIRING_SPAN, {"b_id": pid, "b_seq": seq}).first()
        if span is not None:
            from_day, to_day, old_cadence = span
            move(
                self._deltas,
                pairing_span_counts,
                pairing_span_key(school_id, from_day, to_day, old_cadence),
                pairing_span_key(school_id, from_day, day, old_cadence),
            )
        conn.execute(END_PAIRING_SPAN, {"b_id": pid, "b_seq": seq, "b_day": day})
        if cadence is None:
            conn.execute(END_PAIRING, {"b_id": pid})
            # Its overdue runs are worked out again at the next flush, so only after the
            # last statement (any statement flushes first).
            self._overdue.add(pid)
            return
        conn.execute(
            INSERT["v_report_pairing_spans"],
            {
                "pairing_id": pid,
                "seq": seq + 1,
                "school_id": school_id,
                "from_day": day,
                "to_day": None,
                "cadence": cadence,
            },
        )
        add(self._deltas, pairing_span_counts, pairing_span_key(school_id, day, None, cadence), 1)
        conn.execute(SET_PAIRING, {"b_id": pid, "b_seq": seq + 1, "b_cadence": cadence, "b_active": True})
        self._overdue.add(pid)
