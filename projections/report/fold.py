"""The report view: `ReportView` folds the events into the report's tables and counts,
through the bookkeeping of `ReportState` (projections.report.state).

A fact is dated by the day it happened where the event says so (a mandatory report's
`reported_at`, an appeal's `lodged_on` and `decided_on`, a review's `reviewed_on`, a
crisis's `occurred_on`, a check-in's `held_on`, a screening's `screened_on`), else by
the day it was recorded (`at`), as the domain does (`opened_on = at.date()`). Days are
stored as proleptic ordinals (`date.toordinal()`)."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Connection, text
from sqlalchemy.schema import CreateIndex

from domain.bullying import BullyingCase
from domain.pairing import Pairing
from domain.screening import ScreeningRecord
from domain.support import SupportFile
from projections.base import View, own_fold, stream_id_of
from projections.days import ordinal
from projections.report.counts import add, apply, erased, file_span_key, move, pairing_span_key
from projections.report.state import ReportState
from projections.report.statements import (
    DONE_DUE,
    ERASE,
    FACTS_OF_REF,
    INSERT,
    PAIRING_SCHOOL,
    RECORD,
    REDATE_FACT,
    SET_CASE_FORMS,
    SET_LAST_HELD,
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

_sid = stream_id_of


def _opening_due(event: Any) -> int | None:
    """What a report or a reopening makes due while the investigation is open: the start of the
    investigation (v2: `intake_due`), or its end (v1: `investigation_due`), as a day."""
    due = event.investigation_due if event.investigation_due is not None else event.intake_due
    return ordinal(due) if due is not None else None


class ReportView(ReportState, View):
    """Per-school daily facts and state spans for the periodic report."""

    name = VIEW_NAME
    tables = TABLES
    fold = own_fold()  # events the report does not count are ignored (erased ones included)

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

    # -- bullying cases -------------------------------------------------------------
    @fold.register(BullyingCase.Reported)
    def _case_reported(self, event: Any, conn: Connection, position: int) -> None:
        day = ordinal(event.at)
        st = {
            "school": event.school_id,
            "cycle": 0,
            "closed": False,
            "appeal": False,
            "det": None,
            "followed": [],
            "started": False,
            "completed": False,
            "due": _opening_due(event),
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

    @fold.register(BullyingCase.InvestigationStarted)
    def _case_started(self, event: Any, conn: Connection, position: int) -> None:
        # v2: the investigation is due from its start; v1: the report's due date stands.
        due = event.investigation_due
        self._case(conn, event, lambda st: st.update(started=True, **({"due": ordinal(due)} if due else {})))

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
            st["follow_up_due"] = ordinal(event.follow_up_due) if event.follow_up_due else None

        st = self._case(conn, event, change)
        if st is not None:
            self._determination_fact(conn, event, st)

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
                st["follow_up_due"] = ordinal(event.follow_up_due) if event.follow_up_due else None
            elif event.outcome == "reopened":
                st.update(
                    det=None, started=True, completed=False, follow_up_due=None, due=ordinal(event.investigation_due)
                )

        st = self._case(conn, event, change)
        if st is None:
            return
        self._fact(conn, event, st["school"], ordinal(event.decided_on), "case.appeal_reviewed", event.outcome)
        if new:
            # A determination changed on review is in force at once: it counts as one.
            self._determination_fact(conn, event, st)

    # -- remedies (issue 17, part C) -------------------------------------------------
    @fold.register(BullyingCase.AuthorityReportsDue)
    def _case_reports_due(self, event: Any, conn: Connection, position: int) -> None:
        st = self._case(conn, event, lambda st: None)
        if st is None:
            return
        for authority in event.authorities:
            conn.execute(
                INSERT["v_report_dues"],
                {
                    "stream_id": _sid(event),
                    "item": f"{authority}:{st['cycle']}",
                    "kind": "authority_report",
                    "school_id": st["school"],
                    "from_day": ordinal(event.at),
                    "due_day": ordinal(event.due_at),
                    "done_day": None,
                },
            )

    @fold.register(BullyingCase.AuthorityReportMade)
    def _case_authority_report(self, event: Any, conn: Connection, position: int) -> None:
        st = self._case(conn, event, lambda st: None)
        if st is None:
            return
        self._fact(conn, event, st["school"], ordinal(event.reported_at), "case.authority_report", event.authority)
        conn.execute(
            DONE_DUE,
            {"b_id": _sid(event), "b_item": f"{event.authority}:{st['cycle']}", "b_day": ordinal(event.reported_at)},
        )

    @fold.register(BullyingCase.DispositionDecided)
    def _case_disposition(self, event: Any, conn: Connection, position: int) -> None:
        st = self._case(conn, event, lambda st: None)
        if st is not None:
            self._fact(conn, event, st["school"], ordinal(event.decided_on), "case.disposition", event.kind)

    @fold.register(BullyingCase.CountyReviewApplied)
    def _case_review_applied(self, event: Any, conn: Connection, position: int) -> None:
        st = self._case(conn, event, lambda st: st.update(appeal=True))
        if st is None:
            return
        self._fact(conn, event, st["school"], ordinal(event.applied_on), "case.review_applied")
        conn.execute(
            INSERT["v_report_dues"],
            {
                "stream_id": _sid(event),
                "item": event.review_id,
                "kind": "county_review",
                "school_id": st["school"],
                "from_day": ordinal(event.applied_on),
                "due_day": ordinal(event.due_on),
                "done_day": None,
            },
        )

    @fold.register(BullyingCase.CountyReviewDecided)
    def _case_review_decided(self, event: Any, conn: Connection, position: int) -> None:
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
                st["follow_up_due"] = ordinal(event.follow_up_due) if event.follow_up_due else None
            elif event.outcome == "sent_back":
                st.update(det=None, follow_up_due=None)

        st = self._case(conn, event, change)
        if st is None:
            return
        self._fact(conn, event, st["school"], ordinal(event.decided_on), "case.review_decided", event.outcome)
        conn.execute(DONE_DUE, {"b_id": _sid(event), "b_item": event.review_id, "b_day": ordinal(event.decided_on)})
        if new:
            self._determination_fact(conn, event, st)

    @fold.register(BullyingCase.FollowUpRecorded)
    def _case_followed_up(self, event: Any, conn: Connection, position: int) -> None:
        def change(st: dict[str, Any]) -> None:
            if event.determination_id not in st["followed"]:
                st["followed"].append(event.determination_id)
            st["follow_up_due"] = ordinal(event.next_due) if event.next_due else None

        self._case(conn, event, change)

    @fold.register(BullyingCase.Closed)
    @fold.register(BullyingCase.ClueDismissed)
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
                due=_opening_due(event),
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
        day, due = ordinal(event.at), ordinal(event.next_review_due)
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
            day = ordinal(event.changes["occurred_on"])
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
        day = ordinal(event.at)
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
        pid, day = _sid(event), ordinal(event.held_on)
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
        day, instrument = ordinal(event.screened_on), event.instrument.upper()
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
