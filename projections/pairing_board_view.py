"""The view behind the pairing board (一岗双带): for each active pairing, the last
check-in, the next one due (whether it is overdue is decided when the board is read, in
`projections.pairing_board`, from `today`), and the open concerns
(a check-in's concern not yet escalated to a support file or a bullying report); per
teacher, per class and per school.

Rows hold ids, days and counts only. Days are ordinals (`date.toordinal()`), so a
check-in moves the next due date in one UPDATE on SQLite and PostgreSQL alike; the
rule is the domain's (`Pairing.next_due`: the last check-in held, or the pairing day,
plus the cadence). Open concerns are counted in the pairing's row; the concern state
of each flagged check-in is kept beside it, so a correction or an escalation (rare)
reads one row and a check-in (frequent) reads none.

A student's name is resolved when the board is read (`app.student_ref`: 已删除 once the
student is erased) and their class comes from the clear directory, which keeps it even
after erasure. The row keeps that class too (`class_name`), so that a school's counts per
class come from this table's index alone: taken from the directory when the pairing is
folded (the student's class now, in a rebuild as incrementally), and moved when a
correction of the student's details moves the student to another class. An ended
pairing leaves the board. A shredded pairing leaves the table (its events can no longer
be read, so a rebuild could not keep it either) and is shown from the directory as an
erased line.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    Connection,
    Index,
    Integer,
    String,
    Table,
    bindparam,
    case,
    delete,
    insert,
    or_,
    select,
    update,
)

from domain.pairing import Pairing
from domain.roster import Student
from projections.base import ErasedEvent, View, WriteBehind, metadata, own_fold, stream_id_of
from projections.days import ordinal

pairings = Table(
    "v_pairing_board",
    metadata,
    Column("pairing_id", String(36), primary_key=True),
    Column("school_id", String(36), nullable=False),
    Column("staff_id", String(36), nullable=False),
    Column("student_id", String(36), nullable=False),
    Column("cadence_days", Integer, nullable=False),
    Column("paired_day", Integer, nullable=False),  # ordinal days
    Column("last_day", Integer),
    Column("due_day", Integer, nullable=False),
    Column("check_ins", Integer, nullable=False),
    Column("open_concerns", Integer, nullable=False),
    Column("class_name", String(64)),  # the student's class (None: no student of this school on record)
    Index("v_pairing_board_staff", "staff_id"),
    # The school's pairings, and what the school board counts of them per class, from the index alone.
    Index("v_pairing_board_school", "school_id", "class_name", "due_day", "open_concerns"),
)
concerns = Table(
    "v_pairing_concerns",
    metadata,
    Column("pairing_id", String(36), primary_key=True),
    Column("check_in_id", String(64), primary_key=True),
    Column("concern", Boolean, nullable=False),
    Column("escalated", Boolean, nullable=False),
)

_p = pairings.c
_k = concerns.c
_pid: Any = bindparam("b_pid")
_day = bindparam("b_day", type_=Integer)
_latest = case((or_(_p.last_day.is_(None), _p.last_day < _day), _day), else_=_p.last_day)
_check_in = (
    update(pairings)
    .where(_p.pairing_id == _pid)
    .values(
        last_day=_latest,
        due_day=_latest + _p.cadence_days,
        check_ins=_p.check_ins + 1,
        open_concerns=_p.open_concerns + bindparam("b_open", type_=Integer),
    )
)
_INSERT_PAIRING = pairings.insert()
_INSERT_CONCERN = concerns.insert()
_concern_row = (_k.pairing_id == _pid) & (_k.check_in_id == bindparam("b_ci"))
_move_class = update(pairings).where(_p.student_id == bindparam("b_student")).values(class_name=bindparam("b_class"))
# Students' classes (kept after erasure, with the flag) from the clear directory.
STUDENT_CLASSES = "SELECT stream_id, school_id, class_name, erased FROM {t}anxin_directory WHERE kind = 'student'"


class PairingBoardView(WriteBehind, View):
    name = "pairing_board"
    tables = (pairings, concerns)

    fold = own_fold()

    @fold.register(Pairing.Paired)
    def _paired(self, e: Any, conn: Connection, position: int) -> None:
        day = ordinal(e.at.date())
        pid = stream_id_of(e)
        self._insert(
            conn,
            _INSERT_PAIRING,
            {
                "pairing_id": pid,
                "school_id": e.school_id,
                "staff_id": e.staff_id,
                "student_id": e.student_id,
                "cadence_days": e.cadence_days,
                "paired_day": day,
                "last_day": None,
                "due_day": day + e.cadence_days,
                "check_ins": 0,
                "open_concerns": 0,
                "class_name": None,  # (set as the rows are written: `flush`)
            },
            position,
            key=pid,
        )

    @fold.register(Student.DetailsCorrected)
    def _student_corrected(self, e: Any, conn: Connection, position: int) -> None:
        if "class_name" in e.changes:
            conn.execute(_move_class, {"b_student": stream_id_of(e), "b_class": e.changes["class_name"]})

    def flush(self, conn: Connection) -> None:
        """New pairings' rows get their student's class from the directory, all of a
        batch's in one query, as they are written."""
        new = self._rows.get(_INSERT_PAIRING)
        if new:
            found = {
                sid: (school, cls)
                for sid, school, cls, _ in self.app.db.fetch_in(
                    STUDENT_CLASSES + " AND stream_id IN ({marks})", list({r["student_id"] for r in new})
                )
            }
            for r in new:
                school_class = found.get(r["student_id"])
                r["class_name"] = school_class[1] if school_class and school_class[0] == r["school_id"] else None
        super().flush(conn)

    @fold.register(Pairing.CheckInRecorded)
    def _checked_in(self, e: Any, conn: Connection, position: int) -> None:
        pid = stream_id_of(e)
        day = ordinal(e.held_on)
        opened = 1 if e.concern else 0
        row = self.kept(pid)
        if row is not None:
            # Paired in this batch and not written yet: the same change as `_check_in`, on the row.
            last = row["last_day"]
            latest = day if last is None or last < day else last
            row.update(
                last_day=latest,
                due_day=latest + row["cadence_days"],
                check_ins=row["check_ins"] + 1,
                open_concerns=row["open_concerns"] + opened,
            )
        else:
            conn.execute(_check_in, {"b_pid": pid, "b_day": day, "b_open": opened})
        if e.concern:
            self._insert(
                conn,
                _INSERT_CONCERN,
                {"pairing_id": pid, "check_in_id": e.check_in_id, "concern": True, "escalated": False},
                position,
            )

    @fold.register(Pairing.CheckInCorrected)
    def _corrected(self, e: Any, conn: Connection, position: int) -> None:
        if "concern" in e.changes:
            self._concern_changed(conn, str(e.originator_id), e.corrects, concern=bool(e.changes["concern"]))

    @fold.register(Pairing.ConcernEscalated)
    def _escalated(self, e: Any, conn: Connection, position: int) -> None:
        self._concern_changed(conn, str(e.originator_id), e.check_in_id, escalated=True)

    @staticmethod
    def _concern_changed(
        conn: Connection, pid: str, check_in_id: str, *, concern: bool | None = None, escalated: bool | None = None
    ) -> None:
        """A flagged check-in's concern changed (corrected, or escalated): keep its row
        and move the pairing's count of open concerns by the difference."""
        keys = {"b_pid": pid, "b_ci": check_in_id}
        row = conn.execute(select(_k.concern, _k.escalated).where(_concern_row), keys).first()
        was_concern, was_escalated = (bool(row[0]), bool(row[1])) if row else (False, False)
        now_concern = was_concern if concern is None else concern
        now_escalated = was_escalated if escalated is None else escalated
        if row is None:
            conn.execute(
                insert(concerns).values(
                    pairing_id=pid, check_in_id=check_in_id, concern=now_concern, escalated=now_escalated
                )
            )
        else:
            conn.execute(
                update(concerns).where(_concern_row).values(concern=now_concern, escalated=now_escalated), keys
            )
        delta = int(now_concern and not now_escalated) - int(was_concern and not was_escalated)
        if delta:
            conn.execute(
                update(pairings).where(_p.pairing_id == _pid).values(open_concerns=_p.open_concerns + delta),
                {"b_pid": pid},
            )

    @fold.register(Pairing.CadenceChanged)
    def _cadence_changed(self, e: Any, conn: Connection, position: int) -> None:
        conn.execute(
            update(pairings)
            .where(_p.pairing_id == _pid)
            .values(
                cadence_days=e.cadence_days,
                due_day=case((_p.last_day.is_(None), _p.paired_day), else_=_p.last_day) + e.cadence_days,
            ),
            {"b_pid": str(e.originator_id)},
        )

    @fold.register(Pairing.Ended)
    def _ended(self, e: Any, conn: Connection, position: int) -> None:
        self._forget(conn, str(e.originator_id))

    @fold.register(ErasedEvent)
    def _erased(self, e: ErasedEvent, conn: Connection, position: int) -> None:
        if e.topic.startswith("domain.pairing:"):
            self._forget(conn, str(e.originator_id))

    def erase(self, conn: Connection, stream_id: str) -> None:
        self._forget(conn, str(stream_id))

    @staticmethod
    def _forget(conn: Connection, pid: str) -> None:
        conn.execute(delete(concerns).where(_k.pairing_id == _pid), {"b_pid": pid})
        conn.execute(delete(pairings).where(_p.pairing_id == _pid), {"b_pid": pid})


def views(app: Any) -> list[View]:
    return [PairingBoardView(app)]
