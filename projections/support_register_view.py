"""The view behind the support-file register (心理档案台账) and screening coverage.

Three tables, every row ids, codes and dates:

- `v_register_files`: one row per support file: student, risk level, responsible
  staff, status, next review date. The category (一类一案) is free text, so it is kept
  sealed under the file's own key (`sealed_category`): shredding the file erases it here too.
- `v_register_enrolment`: one row per student: school, current class, active or left
  (from Student.Enrolled / DetailsCorrected / Left), erased once the student is shredded.
- `v_register_screened`: one row per screening record (a student's school year), with
  how many screenings it holds.

Coverage (students screened / enrolled this school year, per class, with who is not
yet screened) is then one query over the enrolment and screened tables. "Overdue" is
computed at query time from the stored due dates and the query's `today`.

Erased streams: a shredded file keeps a line with its ids and status `erased` (its
level, category and dates are gone); a shredded student stays in the enrolment table
as erased (their class kept, from the directory) and no longer counts as enrolled; a
shredded screening record no longer counts. A rebuild gives the same rows: the
handlers of an erased stream's first event take the ids from the directory.

The queries (the register, coverage, risk counts) are in `projections.support_register`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    Boolean,
    Connection,
    Date,
    Index,
    LargeBinary,
    bindparam,
    delete,
    update,
)

from domain.roster import Student
from domain.screening import ScreeningRecord
from domain.support import SupportFile
from projections.base import (
    Column,
    ErasedEvent,
    Integer,
    String,
    Table,
    View,
    WriteBehind,
    aggregate_of,
    directory_row,
    metadata,
    own_fold,
    seal_det,
)

if TYPE_CHECKING:
    from projections.base import Source


NAME = "support_register"

files = Table(
    "v_register_files",
    metadata,
    Column("file_id", String(36), primary_key=True),
    Column("school_id", String(36), nullable=True),
    Column("student_id", String(36), nullable=True),
    Column("risk_level", String(16), nullable=True),
    Column("sealed_category", LargeBinary, nullable=True),
    Column("responsible_id", String(64), nullable=True),
    Column("status", String(16), nullable=False),
    Column("opened_on", Date, nullable=True),
    Column("next_review_due", Date, nullable=True),
    Column("erased", Boolean, nullable=False, default=False),
    Index("v_register_files_school", "school_id", "status"),
)

enrolment = Table(
    "v_register_enrolment",
    metadata,
    Column("student_id", String(36), primary_key=True),
    Column("school_id", String(36), nullable=True),
    Column("class_name", String(64), nullable=True),
    Column("active", Boolean, nullable=False),
    Column("erased", Boolean, nullable=False, default=False),
    Index("v_register_enrolment_school", "school_id", "class_name"),
)

screened = Table(
    "v_register_screened",
    metadata,
    Column("record_id", String(36), primary_key=True),
    Column("school_id", String(36), nullable=False),
    Column("student_id", String(36), nullable=False),
    Column("school_year", Integer, nullable=False),
    Column("screenings", Integer, nullable=False),
    Index("v_register_screened_year", "school_id", "school_year", "student_id"),
)

# Statements built once (a handler only binds values: no statement building per event).
KEY = "key_"
INSERT_FILE = files.insert()
INSERT_ENROLMENT = enrolment.insert()
INSERT_SCREENED = screened.insert()
UPDATE_FILE = update(files).where(files.c.file_id == bindparam(KEY))
UPDATE_ENROLMENT = update(enrolment).where(enrolment.c.student_id == bindparam(KEY))
COUNT_SCREENING = (
    update(screened).where(screened.c.record_id == bindparam(KEY)).values(screenings=screened.c.screenings + 1)
)
DELETE_SCREENED = delete(screened).where(screened.c.record_id == bindparam(KEY))

# What is left of a shredded file's line: its ids (from the directory) and nothing else.
ERASED_FILE = {
    "risk_level": None,
    "sealed_category": None,
    "status": "erased",
    "opened_on": None,
    "next_review_due": None,
    "erased": True,
}


# Rows a view inserts, kept back and written in bulk: see `projections.writebehind.WriteBehind`.
BulkInserts = WriteBehind


class SupportRegisterView(WriteBehind, View):
    name = NAME
    tables = (files, enrolment, screened)
    fold = own_fold()

    def _reset(self) -> None:
        super()._reset()
        self._counts: dict[str, dict[str, Any]] = {}  # screened rows kept back, by record id

    @fold.register
    def _(self, e: Student.Enrolled, conn: Connection, position: int) -> None:
        self._insert(
            conn,
            INSERT_ENROLMENT,
            {
                "student_id": str(e.originator_id),
                "school_id": e.school_id,
                "class_name": e.class_name,
                "active": True,
                "erased": False,
            },
            position,
        )

    @fold.register
    def _(self, e: Student.DetailsCorrected, conn: Connection, position: int) -> None:
        if "class_name" in e.changes:
            self._execute(
                conn, UPDATE_ENROLMENT, {KEY: str(e.originator_id), "class_name": e.changes["class_name"]}, position
            )

    @fold.register
    def _(self, e: Student.Left, conn: Connection, position: int) -> None:
        self._execute(conn, UPDATE_ENROLMENT, {KEY: str(e.originator_id), "active": False}, position)

    @fold.register
    def _(self, e: SupportFile.Opened, conn: Connection, position: int) -> None:
        fid = str(e.originator_id)
        self._insert(
            conn,
            INSERT_FILE,
            {
                "file_id": fid,
                "school_id": e.school_id,
                "student_id": e.student_id,
                "risk_level": e.risk_level,
                "sealed_category": seal_det(self.app, fid, e.category, f"{NAME}.category#{position}"),
                "responsible_id": e.responsible_id,
                "status": "open",
                "opened_on": e.at.date(),
                "next_review_due": e.next_review_due,
                "erased": False,
            },
            position,
        )

    def _file(self, e: Any, conn: Connection, position: int, **values: Any) -> None:
        self._execute(conn, UPDATE_FILE, {KEY: str(e.originator_id), **values}, position)

    @fold.register
    def _(self, e: SupportFile.RiskLevelRaised, conn: Connection, position: int) -> None:
        self._file(e, conn, position, risk_level=e.to_level, next_review_due=e.next_review_due)

    @fold.register
    def _(self, e: SupportFile.RiskLevelLowered, conn: Connection, position: int) -> None:
        self._file(e, conn, position, risk_level=e.to_level, next_review_due=e.next_review_due)

    @fold.register
    def _(self, e: SupportFile.CategoryChanged, conn: Connection, position: int) -> None:
        sealed = seal_det(self.app, str(e.originator_id), e.to_category, f"{NAME}.category#{position}")
        self._file(e, conn, position, sealed_category=sealed)

    @fold.register
    def _(self, e: SupportFile.ResponsibleReassigned, conn: Connection, position: int) -> None:
        self._file(e, conn, position, responsible_id=e.to_id)

    @fold.register
    def _(self, e: SupportFile.PlanReviewed, conn: Connection, position: int) -> None:
        self._file(e, conn, position, next_review_due=e.next_review_due)

    @fold.register
    def _(self, e: SupportFile.Closed, conn: Connection, position: int) -> None:
        self._file(e, conn, position, status="closed", next_review_due=None)

    @fold.register
    def _(self, e: SupportFile.Reopened, conn: Connection, position: int) -> None:
        self._file(e, conn, position, status="open", next_review_due=e.next_review_due)

    @fold.register
    def _(self, e: ScreeningRecord.ScreeningRecordOpened, conn: Connection, position: int) -> None:
        row: dict[str, Any] = {
            "record_id": str(e.originator_id),
            "school_id": e.school_id,
            "student_id": e.student_id,
            "school_year": e.school_year,
            "screenings": 0,
        }
        self._insert(conn, INSERT_SCREENED, row, position)
        if self.bulk:
            self._counts[row["record_id"]] = row  # an import opens and records at once: count in the row

    @fold.register
    def _(self, e: ScreeningRecord.ScreeningRecorded, conn: Connection, position: int) -> None:
        if self.bulk:
            kept = self._counts.get(str(e.originator_id))
            if kept is not None:
                kept["screenings"] += 1
                return
        self._execute(conn, COUNT_SCREENING, {KEY: str(e.originator_id)}, position)

    @fold.register
    def _(self, e: ErasedEvent, conn: Connection, position: int) -> None:
        if e.originator_version != 1:
            return
        agg, _ = aggregate_of(e.topic)
        sid = str(e.originator_id)
        if agg == "SupportFile":
            row = directory_row(conn, sid)
            self._insert(
                conn,
                INSERT_FILE,
                {
                    "file_id": sid,
                    "school_id": row[0] if row else None,
                    "student_id": row[3] if row else None,
                    "responsible_id": row[2] if row else None,
                    **ERASED_FILE,
                },
                position,
            )
        elif agg == "Student":
            row = directory_row(conn, sid)
            self._insert(
                conn,
                INSERT_ENROLMENT,
                {
                    "student_id": sid,
                    "school_id": row[0] if row else None,
                    "class_name": row[1] if row else None,
                    "active": bool(row and row[4] == "active"),
                    "erased": True,
                },
                position,
            )
        # An erased screening record no longer counts: nothing to keep.

    def flush(self, conn: Connection) -> None:
        self._counts = {}
        super().flush(conn)

    def erase(self, conn: Connection, stream_id: str) -> None:
        conn.execute(UPDATE_FILE, {KEY: stream_id, **ERASED_FILE})
        conn.execute(UPDATE_ENROLMENT, {KEY: stream_id, "erased": True})
        conn.execute(DELETE_SCREENED, {KEY: stream_id})


def views(app: Source) -> list[View]:
    return [SupportRegisterView(app)]
