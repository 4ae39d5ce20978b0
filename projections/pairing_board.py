"""The pairing board (一岗双带): for each active pairing, the last check-in, the next one
due, whether it is overdue (decided when asked, from `today`), and the open concerns
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

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import date
from typing import TYPE_CHECKING, Any

from eventsourcing.dispatch import singledispatchmethod
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

from domain import access
from domain.common import ERASED_LABEL, Actor, NotFound
from domain.pairing import Pairing
from domain.roster import Student
from projections.base import ErasedEvent, View, WriteBehind, driver_mark, metadata, stream_id_of

if TYPE_CHECKING:
    from projections.base import Source

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
_STUDENTS = "SELECT stream_id, school_id, class_name, erased FROM {t}anxin_directory WHERE kind = 'student'"


def _ordinal(value: date) -> int:
    return value.toordinal()


def _date(day: int | None) -> date | None:
    return date.fromordinal(day) if day is not None else None


class PairingBoardView(WriteBehind, View):
    name = "pairing_board"
    tables = (pairings, concerns)

    def __init__(self, app: Any = None) -> None:
        self.app = app
        self._reset()

    @singledispatchmethod
    def fold(self, event: Any, conn: Connection, position: int) -> None:  # type: ignore[override]
        """Events this view does not need are ignored."""

    @fold.register(Pairing.Paired)
    def _paired(self, e: Any, conn: Connection, position: int) -> None:
        day = _ordinal(e.at.date())
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
                    _STUDENTS + " AND stream_id IN ({marks})", list({r["student_id"] for r in new})
                )
            }
            for r in new:
                school_class = found.get(r["student_id"])
                r["class_name"] = school_class[1] if school_class and school_class[0] == r["school_id"] else None
        super().flush(conn)

    @fold.register(Pairing.CheckInRecorded)
    def _checked_in(self, e: Any, conn: Connection, position: int) -> None:
        pid = stream_id_of(e)
        day = _ordinal(e.held_on)
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


# -- queries -------------------------------------------------------------------------------
@dataclass(frozen=True)
class PairingLine:
    """One active pairing as the board shows it."""

    pairing_id: str
    staff_id: str
    student_id: str
    student_name: str  # resolved when asked for ("" otherwise); 已删除 once erased
    class_name: str | None
    paired_on: date | None
    last_check_in: date | None
    next_due: date | None
    overdue: bool
    open_concerns: int
    check_ins: int
    erased: bool = False  # the pairing or the student has been erased


@dataclass(frozen=True)
class ClassCounts:
    """Counts for one class (class_name None: students without a class on record)."""

    class_name: str | None
    pairings: int
    overdue: int
    open_concerns: int


@dataclass(frozen=True)
class PairingBoard:
    lines: list[PairingLine]
    by_class: list[ClassCounts]

    @property
    def totals(self) -> ClassCounts:
        return _count(None, self.lines)


def _count(class_name: str | None, lines: Iterable[PairingLine]) -> ClassCounts:
    lines = list(lines)
    return ClassCounts(class_name, len(lines), sum(1 for p in lines if p.overdue), sum(p.open_concerns for p in lines))


def _by_class(lines: list[PairingLine]) -> list[ClassCounts]:
    classes = sorted({p.class_name for p in lines}, key=lambda c: (c is None, c or ""))
    return [_count(c, (p for p in lines if p.class_name == c)) for c in classes]


def pairing_board(
    app: Source,
    actor: Actor,
    *,
    staff_id: str | None = None,
    class_name: str | None = None,
    school_id: str | None = None,
    today: date | None = None,
    names: bool | None = None,
    break_glass: str | None = None,
) -> PairingBoard:
    """The board of one staff member's pairings (by default the actor's own; any staff
    member sees their own, a principal anyone's in the school), or, with `school_id`
    and no `staff_id`, of a whole school (a principal), optionally of one class. Lines
    are most overdue first; `by_class` counts them per class. Student names are
    resolved for a staff member's board (`names` defaults to True there, False for a
    school's)."""
    if staff_id is None and school_id is None and class_name is None:
        staff_id = actor.staff_id
    if staff_id is not None:
        school = actor.school_id if staff_id == actor.staff_id else _school_of_staff(app, staff_id)
        app.authorize(
            actor,
            access.PAIRING_READ,
            replace(app.resource("pairing", school_id=school), owner_id=staff_id),
            break_glass,
        )
        if school is None:
            raise NotFound()
    else:
        school = school_id or actor.school_id
        resource = app.resource("pairing", school_id=school)
        if class_name is not None:
            resource = replace(resource, classes=frozenset({class_name}))
        app.authorize(actor, access.PAIRING_READ, resource, break_glass)
    app.views.catch_up()  # type: ignore[attr-defined]
    lines = _lines(app, school, staff_id, _today(app, today), staff_id is not None if names is None else names)
    if class_name is not None:
        lines = [p for p in lines if p.class_name == class_name]
    return PairingBoard(lines=lines, by_class=_by_class(lines))


def pairing_counts(app: Source, actor: Actor, school_id: str, today: date | None = None) -> list[ClassCounts]:
    """Per class of a school: pairings, overdue check-ins, open concerns. Counts only
    (no names, no ids), for anyone with the school's statistics (STATS_READ)."""
    app.check(actor, access.STATS_READ, "school", school_id=school_id)
    app.views.catch_up()  # type: ignore[attr-defined]
    day = _today(app, today).toordinal()
    # The same counts as _by_class(_lines(...)), summed by the database: a pairing's class
    # is its student's (from the clear directory, a student of this school), else None.
    by_class: dict[str | None, list[int]] = {}
    with app.views.engine.connect() as conn:  # type: ignore[attr-defined]
        mark = driver_mark(conn)
        for cls, n, overdue, open_concerns in conn.exec_driver_sql(
            f"SELECT class_name, count(*), sum(CASE WHEN due_day < {mark} THEN 1 ELSE 0 END), "
            f"sum(open_concerns) FROM v_pairing_board WHERE school_id = {mark} GROUP BY class_name",
            (day, school_id),
        ):
            by_class[cls] = [int(n), int(overdue or 0), int(open_concerns or 0)]
        # Erased pairings still active in the directory (and no longer in the view): one each.
        gone = app.db.fetch(
            "SELECT stream_id, subject_id FROM {t}anxin_directory WHERE kind = 'pairing' "
            "AND erased = 1 AND status = 'active' AND school_id = ?",
            (school_id,),
        )
        if gone:
            present = {r[0] for r in conn.execute(select(_p.pairing_id).where(_p.pairing_id.in_([g[0] for g in gone])))}
            for _pid, student in (g for g in gone if g[0] not in present):
                row = app.db.fetchone(
                    "SELECT class_name FROM {t}anxin_directory WHERE stream_id = ? AND kind = 'student' "
                    "AND school_id = ?",
                    (student, school_id),
                )
                by_class.setdefault(row[0] if row else None, [0, 0, 0])[0] += 1
    return [ClassCounts(c, *by_class[c]) for c in sorted(by_class, key=lambda c: (c is None, c or ""))]


def _today(app: Source, today: date | None) -> date:
    return today if today is not None else app.now().date()


def _school_of_staff(app: Source, staff_id: str) -> str | None:
    staff = app.accounts.staff(staff_id)
    return staff.school_id if staff else None


def _lines(app: Source, school: str | None, staff_id: str | None, today: date, names: bool) -> list[PairingLine]:
    query = select(
        _p.pairing_id,
        _p.staff_id,
        _p.student_id,
        _p.paired_day,
        _p.last_day,
        _p.due_day,
        _p.open_concerns,
        _p.check_ins,
    )
    query = query.where(_p.staff_id == staff_id) if staff_id is not None else query.where(_p.school_id == school)
    with app.views.engine.connect() as conn:  # type: ignore[attr-defined]
        rows = conn.execute(query).all()
    erased_sql = (
        "SELECT stream_id, owner_id, subject_id FROM {t}anxin_directory WHERE kind = 'pairing' "
        "AND erased = 1 AND status = 'active' AND school_id = ?"
    )
    params: tuple[Any, ...] = (school,)
    if staff_id is not None:
        erased_sql += " AND owner_id = ?"
        params += (staff_id,)
    gone = app.db.fetch(erased_sql, params)
    # Students' classes (and whether they were erased) from the clear directory: the
    # school's, or for one staff member's pairings only their students.
    student_sql = _STUDENTS + " AND school_id = ?"
    if staff_id is None:
        found = app.db.fetch(student_sql, (school,))
    else:
        wanted = list(dict.fromkeys([r[2] for r in rows] + [g[2] for g in gone]))
        found = app.db.fetch_in(student_sql + " AND stream_id IN ({marks})", wanted, (school,))
    students = {sid: (cls, bool(erased)) for sid, _, cls, erased in found}
    seen = {r[0] for r in rows}
    day = today.toordinal()
    refs: dict[str, str] = {}
    if names:
        # The names shown, decrypted from the students' streams loaded together (one query
        # for all, not two per student).
        from projections.support_register import student_refs

        wanted = list(
            dict.fromkeys(student for _, _, student, *_ in rows if not students.get(student, (None, False))[1])
        )
        refs = {r.id: r.name for r in student_refs(app, wanted)}

    def name(student_id: str) -> str:
        if not names:
            return ""
        if student_id not in refs:
            refs[student_id] = app.student_ref(student_id).name
        return refs[student_id]

    lines = []
    for pid, staff, student, paired, last, due, open_concerns, check_ins in rows:
        cls, student_erased = students.get(student, (None, False))
        lines.append(
            PairingLine(
                pairing_id=pid,
                staff_id=staff,
                student_id=student,
                student_name=ERASED_LABEL if student_erased else name(student),
                class_name=cls,
                paired_on=_date(paired),
                last_check_in=_date(last),
                next_due=_date(due),
                overdue=day > due,
                open_concerns=open_concerns,
                check_ins=check_ins,
                erased=student_erased,
            )
        )
    for pid, staff, student in gone:
        if pid in seen:
            continue
        lines.append(
            PairingLine(
                pairing_id=pid,
                staff_id=staff,
                student_id=student,
                student_name=ERASED_LABEL,
                class_name=students.get(student, (None, False))[0],
                paired_on=None,
                last_check_in=None,
                next_due=None,
                overdue=False,
                open_concerns=0,
                check_ins=0,
                erased=True,
            )
        )
    return sorted(lines, key=lambda p: (not p.overdue, p.next_due is None, p.next_due or date.max, p.pairing_id))


__all__ = [
    "PairingBoardView",
    "PairingLine",
    "ClassCounts",
    "PairingBoard",
    "pairing_board",
    "pairing_counts",
    "pairings",
    "concerns",
    "views",
]
