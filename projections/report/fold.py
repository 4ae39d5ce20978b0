"""The report view: `ReportView` folds the events into the report's tables and counts.

A fact is dated by the day it happened where the event says so (a mandatory report's
`reported_at`, an appeal's `lodged_on` and `decided_on`, a review's `reviewed_on`, a
crisis's `occurred_on`, a check-in's `held_on`, a screening's `screened_on`), else by
the day it was recorded (`at`), as the domain does (`opened_on = at.date()`). Days are
stored as proleptic ordinals (`date.toordinal()`)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date, datetime
from typing import Any

from eventsourcing.dispatch import singledispatchmethod
from sqlalchemy import Connection, text
from sqlalchemy.schema import CreateIndex

from domain.bullying import INVESTIGATION_OPEN_STATES, BullyingCase
from domain.bullying import case_status as bullying_status
from domain.pairing import Pairing
from domain.screening import ScreeningRecord
from domain.support import SupportFile
from projections.base import View, WriteBehind, stream_id_of
from projections.report.counts import (
    Deltas,
    add,
    apply,
    erased,
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
    ERASE,
    FACTS_OF_REF,
    FILE_SPAN,
    FILE_STATE,
    INSERT,
    PAIRING_SCHOOL,
    PAIRING_SPAN,
    PAIRING_STATE,
    RECORD,
    REDATE_FACT,
    SET_CASE_FORMS,
    SET_CASE_STATE,
    SET_FILE_STATE,
    SET_LAST_HELD,
    SET_PAIRING,
)
from projections.report.tables import (
    REPLACED_INDEXES,
    TABLES,
    VIEW_NAME,
    check_in_days,
    fact_counts,
    file_span_counts,
    pairing_span_counts,
    screening_days,
)


def _day(value: date | datetime) -> int:
    return (value.date() if isinstance(value, datetime) else value).toordinal()


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


def _result(bullying: bool, severity: str | None) -> str:
    return (severity or "minor") if bullying else "not_bullying"


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
        for name in REPLACED_INDEXES:
            conn.execute(text(f"DROP INDEX IF EXISTS {name}"))
        for table in self.tables:
            for index in table.indexes:
                conn.execute(CreateIndex(index, if_not_exists=True))

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

    @singledispatchmethod
    def fold(self, event: Any, conn: Connection, position: int) -> None:  # type: ignore[override]
        """Events the report does not count are ignored (erased ones included)."""

    # -- helpers ------------------------------------------------------------------
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

    # -- bullying cases -------------------------------------------------------------
    @fold.register(BullyingCase.Reported)
    def _case_reported(self, event: Any, conn: Connection, position: int) -> None:
        day = _day(event.at)
        st = {
            "school": event.school_id,
            "cycle": 0,
            "closed": False,
            "appeal": False,
            "det": None,
            "followed": [],
            "started": False,
            "completed": False,
            "due": _day(event.investigation_due),
            "follow_up_due": None,
            "seq": 1,
        }
        conn.execute(
            INSERT["v_report_cases"],
            {
                "case_id": _sid(event),
                "school_id": event.school_id,
                "reported_day": day,
                "forms": ",".join(event.forms),
                "state": json.dumps(st),
            },
        )
        conn.execute(INSERT["v_report_case_spans"], {"case_id": _sid(event), "seq": 1, **self._case_span(st, day)})

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
        day = _day(event.at)
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
            self._fact(conn, event, st["school"], _day(day), kind, detail)

    @fold.register(BullyingCase.InvestigationStarted)
    def _case_started(self, event: Any, conn: Connection, position: int) -> None:
        self._case(conn, event, lambda st: st.update(started=True))

    @fold.register(BullyingCase.InvestigationCompleted)
    def _case_completed(self, event: Any, conn: Connection, position: int) -> None:
        self._case(conn, event, lambda st: st.update(completed=True))

    @fold.register(BullyingCase.Determined)
    def _case_determined(self, event: Any, conn: Connection, position: int) -> None:
        det = {
            "id": event.determination_id,
            "approved": False,
            "bullying": bool(event.bullying),
            "severity": event.severity,
        }
        self._case(conn, event, lambda st: st.update(det=det))

    @fold.register(BullyingCase.DeterminationApproved)
    def _case_approved(self, event: Any, conn: Connection, position: int) -> None:
        def change(st: dict[str, Any]) -> None:
            st["det"]["approved"] = True
            st["follow_up_due"] = _day(event.follow_up_due) if event.follow_up_due else None

        st = self._case(conn, event, change)
        if st is not None:
            det = st["det"]
            self._fact(
                conn, event, st["school"], _day(event.at), "case.determined", _result(det["bullying"], det["severity"])
            )

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
                st["det"] = {
                    "id": new["id"],
                    "approved": True,
                    "bullying": bool(new["bullying"]),
                    "severity": new.get("severity"),
                }
                st["follow_up_due"] = _day(event.follow_up_due) if event.follow_up_due else None
            elif event.outcome == "reopened":
                st.update(
                    det=None, started=True, completed=False, follow_up_due=None, due=_day(event.investigation_due)
                )

        st = self._case(conn, event, change)
        if st is None:
            return
        self._fact(conn, event, st["school"], _day(event.decided_on), "case.appeal_reviewed", event.outcome)
        if new:
            # A determination changed on review is in force at once: it counts as one.
            self._fact(
                conn,
                event,
                st["school"],
                _day(event.at),
                "case.determined",
                _result(bool(new["bullying"]), new.get("severity")),
            )

    @fold.register(BullyingCase.FollowUpRecorded)
    def _case_followed_up(self, event: Any, conn: Connection, position: int) -> None:
        def change(st: dict[str, Any]) -> None:
            if event.determination_id not in st["followed"]:
                st["followed"].append(event.determination_id)
            st["follow_up_due"] = _day(event.next_due) if event.next_due else None

        self._case(conn, event, change)

    @fold.register(BullyingCase.Closed)
    def _case_closed(self, event: Any, conn: Connection, position: int) -> None:
        self._case_fact(conn, event, lambda st: st.update(closed=True, follow_up_due=None), "case.closed", event.at)

    @fold.register(BullyingCase.Reopened)
    def _case_reopened(self, event: Any, conn: Connection, position: int) -> None:
        def change(st: dict[str, Any]) -> None:
            st.update(
                cycle=st["cycle"] + 1,
                closed=False,
                det=None,
                started=False,
                completed=False,
                due=_day(event.investigation_due),
                follow_up_due=None,
            )

        self._case_fact(conn, event, change, "case.reopened", event.at)

    @fold.register(BullyingCase.ReportCorrected)
    def _case_report_corrected(self, event: Any, conn: Connection, position: int) -> None:
        if "forms" in event.changes:
            conn.execute(SET_CASE_FORMS, {"b_id": _sid(event), "b_forms": ",".join(event.changes["forms"])})

    # -- support files ------------------------------------------------------------
    @fold.register(SupportFile.Opened)
    def _file_opened(self, event: Any, conn: Connection, position: int) -> None:
        day, due = _day(event.at), _day(event.next_review_due)
        self._insert(
            conn,
            INSERT["v_report_files"],
            {
                "file_id": _sid(event),
                "school_id": event.school_id,
                "status": "open",
                "risk_level": event.risk_level,
                "review_due": due,
                "seq": 1,
            },
            position,
        )
        self._insert(
            conn,
            INSERT["v_report_file_spans"],
            {
                "file_id": _sid(event),
                "seq": 1,
                "school_id": event.school_id,
                "from_day": day,
                "to_day": None,
                "status": "open",
                "risk_level": event.risk_level,
                "review_due": due,
            },
            position,
        )
        add(self._deltas, file_span_counts, file_span_key(event.school_id, "open", event.risk_level, day, None, due), 1)
        self._fact(conn, event, event.school_id, day, "file.opened", event.risk_level)

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
        new_due = old_due if due is self._KEEP else (_day(due) if due is not None else None)
        day = _day(event.at)
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
            self._fact(conn, event, school_id, _day(day), kind, level if detail is None else detail, ref)

    @fold.register(SupportFile.RiskLevelRaised)
    @fold.register(SupportFile.RiskLevelLowered)
    def _file_risk_changed(self, event: Any, conn: Connection, position: int) -> None:
        kind = "file.risk_raised" if isinstance(event, SupportFile.RiskLevelRaised) else "file.risk_lowered"
        self._file_fact(conn, event, kind, event.at, event.to_level, level=event.to_level, due=event.next_review_due)

    @fold.register(SupportFile.PlanReviewed)
    def _file_reviewed(self, event: Any, conn: Connection, position: int) -> None:
        self._file_fact(conn, event, "file.reviewed", event.reviewed_on, ref=event.entry_id, due=event.next_review_due)

    @fold.register(SupportFile.CrisisInterventionRecorded)
    def _file_crisis(self, event: Any, conn: Connection, position: int) -> None:
        self._file_fact(conn, event, "file.crisis", event.occurred_on, ref=event.entry_id)

    @fold.register(SupportFile.EntryCorrected)
    def _file_entry_corrected(self, event: Any, conn: Connection, position: int) -> None:
        if event.entry_kind == "crisis" and "occurred_on" in event.changes:
            day = _day(event.changes["occurred_on"])
            for school, old_day, kind, detail in conn.execute(
                FACTS_OF_REF, {"b_id": _sid(event), "b_ref": event.corrects}
            ).all():
                move(self._deltas, fact_counts, (school, old_day, kind, detail), (school, day, kind, detail))
            conn.execute(REDATE_FACT, {"b_id": _sid(event), "b_ref": event.corrects, "b_day": day})

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
        self._insert(
            conn,
            INSERT["v_report_pairings"],
            {
                "pairing_id": pid,
                "school_id": event.school_id,
                "paired_day": day,
                "last_held_day": None,
                "cadence": event.cadence_days,
                "seq": 1,
                "active": True,
            },
            position,
            key=("pairing", pid),
        )
        self._insert(
            conn,
            INSERT["v_report_pairing_spans"],
            {
                "pairing_id": pid,
                "seq": 1,
                "school_id": event.school_id,
                "from_day": day,
                "to_day": None,
                "cadence": event.cadence_days,
            },
            position,
        )
        add(self._deltas, pairing_span_counts, pairing_span_key(event.school_id, day, None, event.cadence_days), 1)
        self._overdue.add(pid)

    @fold.register(Pairing.CheckInRecorded)
    def _checked_in(self, event: Any, conn: Connection, position: int) -> None:
        pid, day = _sid(event), _day(event.held_on)
        row = self.kept(("pairing", pid))
        school = conn.execute(PAIRING_SCHOOL, {"b_id": pid}).scalar() if row is None else row["school_id"]
        if school is None:  # an unknown pairing: nothing to count
            return
        self._insert(
            conn,
            INSERT["v_report_check_ins"],
            {
                "pairing_id": pid,
                "check_in_id": event.check_in_id,
                "school_id": school,
                "held_day": day,
            },
            position,
        )
        if row is None:
            conn.execute(SET_LAST_HELD, {"b_id": pid, "b_day": day})
        elif row["last_held_day"] is None or row["last_held_day"] < day:
            # Paired in this batch and not written yet: the same change, to the row kept back.
            row["last_held_day"] = day
        add(self._deltas, check_in_days, (school, day), 1)
        self._overdue.add(pid)

    def _pairing_span(self, conn: Connection, event: Any, cadence: int | None) -> None:
        """Close the current span; open a new one with `cadence` unless the pairing ended."""
        pid, day = _sid(event), _day(event.at)
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
        self._insert(
            conn,
            INSERT["v_report_screening_records"],
            {"record_id": rid, "school_id": event.school_id, "student_id": event.student_id},
            position,
            key=("screening", rid),
        )

    @fold.register(ScreeningRecord.ScreeningRecorded)
    def _screening_recorded(self, event: Any, conn: Connection, position: int) -> None:
        rid = _sid(event)
        row = self.kept(("screening", rid))
        if row is None:
            found = conn.execute(RECORD, {"b_id": rid}).first()
            if found is None:  # an unknown record: nothing to count
                return
            school, student = found
        else:
            # Its record was opened in this batch and not written yet.
            school, student = row["school_id"], row["student_id"]
        day, instrument = _day(event.screened_on), event.instrument.upper()
        self._insert(
            conn,
            INSERT["v_report_screenings"],
            {
                "record_id": rid,
                "screening_id": event.screening_id,
                "school_id": school,
                "student_id": student,
                "screened_day": day,
                "instrument": instrument,
                "flagged": bool(event.flagged),
                "crisis": bool(event.crisis),
            },
            position,
        )
        add(
            self._deltas,
            screening_days,
            (school, day, instrument),
            1,
            int(bool(event.flagged)),
            int(bool(event.crisis)),
        )
        self._screened.setdefault((school, student), set()).add((rid, event.screening_id))

    # -- erasure --------------------------------------------------------------------
    def erase(self, conn: Connection, stream_id: str) -> None:
        sid = str(stream_id)
        # First take out of the aggregates what the stream's rows added to them (its own
        # deltas: a batch may be under way on another thread).
        apply(conn, erased(conn, sid))
        for stmt in ERASE:
            conn.execute(stmt, {"b_id": sid})


def views(app: Any) -> list[View]:
    return [ReportView(app)]
