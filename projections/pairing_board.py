"""The pairing board (一岗双带): for each active pairing, the last check-in, the next one
due, whether it is overdue (decided when asked, from `today`), and the open concerns;
per teacher, per class and per school, through the application's gate.

The view (`PairingBoardView`, its tables `pairings` and `concerns`) is in
`projections.pairing_board_view`. A student's name is resolved when the board is read
(`app.student_ref`: 已删除 once the student is erased) and their class comes from the
clear directory, which keeps it even after erasure. A shredded pairing is shown from the
directory as an erased line.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import date
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from domain import access
from domain.common import ERASED_LABEL, Actor, NotFound
from domain.grades import class_sort_key
from projections.base import driver_mark
from projections.days import from_ordinal, today_of
from projections.pairing_board_view import STUDENT_CLASSES, PairingBoardView, concerns, pairings, views
from projections.source import student_refs

if TYPE_CHECKING:
    from projections.base import Source

_p = pairings.c
# Pairings erased while still active, in the clear directory.
_ERASED_ACTIVE = "FROM {t}anxin_directory WHERE kind = 'pairing' AND erased = 1 AND status = 'active' AND school_id = ?"


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
    classes = sorted({p.class_name for p in lines}, key=class_sort_key)
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
    app.views.catch_up()
    lines = _lines(app, school, staff_id, today_of(app, today), staff_id is not None if names is None else names)
    if class_name is not None:
        lines = [p for p in lines if p.class_name == class_name]
    return PairingBoard(lines=lines, by_class=_by_class(lines))


def pairing_counts(app: Source, actor: Actor, school_id: str, today: date | None = None) -> list[ClassCounts]:
    """Per class of a school: pairings, overdue check-ins, open concerns. Counts only
    (no names, no ids), for anyone with the school's statistics (STATS_READ)."""
    app.check(actor, access.STATS_READ, "school", school_id=school_id)
    app.views.catch_up()
    day = today_of(app, today).toordinal()
    # The same counts as _by_class(_lines(...)), summed by the database: a pairing's class
    # is its student's (from the clear directory, a student of this school), else None.
    by_class: dict[str | None, list[int]] = {}
    with app.views.engine.connect() as conn:
        mark = driver_mark(conn)
        for cls, n, overdue, open_concerns in conn.exec_driver_sql(
            f"SELECT class_name, count(*), sum(CASE WHEN due_day < {mark} THEN 1 ELSE 0 END), "
            f"sum(open_concerns) FROM v_pairing_board WHERE school_id = {mark} GROUP BY class_name",
            (day, school_id),
        ):
            by_class[cls] = [int(n), int(overdue or 0), int(open_concerns or 0)]
        # Erased pairings still active in the directory (and no longer in the view): one each.
        gone = app.db.fetch("SELECT stream_id, subject_id " + _ERASED_ACTIVE, (school_id,))
        if gone:
            present = {r[0] for r in conn.execute(select(_p.pairing_id).where(_p.pairing_id.in_([g[0] for g in gone])))}
            for _pid, student in (g for g in gone if g[0] not in present):
                row = app.db.fetchone(
                    "SELECT class_name FROM {t}anxin_directory WHERE stream_id = ? AND kind = 'student' "
                    "AND school_id = ?",
                    (student, school_id),
                )
                by_class.setdefault(row[0] if row else None, [0, 0, 0])[0] += 1
    return [ClassCounts(c, *by_class[c]) for c in sorted(by_class, key=class_sort_key)]


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
    with app.views.engine.connect() as conn:
        rows = conn.execute(query).all()
    erased_sql = "SELECT stream_id, owner_id, subject_id " + _ERASED_ACTIVE
    params: tuple[Any, ...] = (school,)
    if staff_id is not None:
        erased_sql += " AND owner_id = ?"
        params += (staff_id,)
    gone = app.db.fetch(erased_sql, params)
    # Students' classes (and whether they were erased) from the clear directory: the
    # school's, or for one staff member's pairings only their students.
    student_sql = STUDENT_CLASSES + " AND school_id = ?"
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
                paired_on=from_ordinal(paired),
                last_check_in=from_ordinal(last),
                next_due=from_ordinal(due),
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
    "STUDENT_CLASSES",
    "PairingLine",
    "ClassCounts",
    "PairingBoard",
    "pairing_board",
    "pairing_counts",
    "pairings",
    "concerns",
    "views",
]
