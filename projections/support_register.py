"""The support-file register (心理档案台账) of a school, and screening coverage.

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
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any
from uuid import UUID

from eventsourcing.dispatch import singledispatchmethod
from sqlalchemy import (
    Boolean,
    Connection,
    Date,
    Index,
    LargeBinary,
    bindparam,
    delete,
    select,
    text,
    update,
)

from domain import access
from domain.access import decide
from domain.common import Actor, ContentErased
from domain.policy import RISK_LABELS, RISK_LEVELS
from domain.roster import Student
from domain.screening import ScreeningRecord
from domain.support import SupportFile
from projections.base import (
    Column,
    ErasedEvent,
    Integer,
    String,
    StudentRef,
    Table,
    View,
    WriteBehind,
    metadata,
    open_for,
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
DIRECTORY_ROW = text(
    "SELECT school_id, class_name, owner_id, subject_id, status FROM anxin_directory WHERE stream_id = :sid"
)

# What is left of a shredded file's line: its ids (from the directory) and nothing else.
ERASED_FILE = {
    "risk_level": None,
    "sealed_category": None,
    "status": "erased",
    "opened_on": None,
    "next_review_due": None,
    "erased": True,
}


def seal_det(app: Source, stream_id: str, value: str, salt: str) -> bytes | None:
    """Seal a value under its stream's key, readable with `projections.base.open_for`.

    The nonce is derived from the stream, the column and the event's position, so the
    same event always seals to the same bytes (a rebuild gives identical rows) and no
    nonce is ever used for two different plaintexts under one key."""
    sid = UUID(str(stream_id)).hex
    try:
        aes = app.keystore.cipher_for_read(sid, 1)
    except ContentErased:
        return None
    nonce = hmac.new(b"anxin-view-nonce", f"{sid}\x1f{salt}".encode(), hashlib.sha256).digest()[:12]
    return nonce + aes.encrypt(nonce, value.encode(), b"view\x1f" + sid.encode())


def directory_row(conn: Connection, stream_id: str) -> Any:
    """The clear directory row of a stream (for an erased stream's first event: the
    only ids left of it). The view's engine reaches the same database and schema."""
    return conn.execute(DIRECTORY_ROW, {"sid": stream_id}).first()


def aggregate_of(topic: str) -> tuple[str, str]:
    """('BullyingCase', 'Reported') from 'domain.bullying:BullyingCase.Reported'."""
    qual = topic.rsplit(":", 1)[-1]
    agg, _, name = qual.rpartition(".")
    return agg, name


class BulkInserts(WriteBehind):
    """Rows a view inserts, kept back and written in bulk: see `projections.base.WriteBehind`."""


class SupportRegisterView(BulkInserts, View):
    name = NAME
    tables = (files, enrolment, screened)

    def __init__(self, app: Source) -> None:
        self.app = app
        self._counts: dict[str, dict[str, Any]] = {}  # screened rows kept back, by record id
        self._reset()

    @singledispatchmethod
    def fold(self, event: Any, conn: Connection, position: int) -> None:  # type: ignore[override]
        """Events this view does not know are ignored (each view has its own dispatcher)."""

    def _reset(self) -> None:
        super()._reset()
        self._counts = {}

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
        row = {
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


# -- queries ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RegisterLine:
    """One line of the register: ids, level, dates; the category opened at read time."""

    file_id: str
    student_id: str | None
    class_name: str | None
    risk_level: str | None
    category: str | None
    responsible_id: str | None
    status: str
    next_review_due: date | None
    review_overdue: bool = False
    erased: bool = False

    @property
    def risk_label(self) -> str:
        return RISK_LABELS.get(self.risk_level or "", "")


def register(
    app: Source, actor: Actor, school_id: str, today: date | None = None, *, include_closed: bool = True
) -> list[RegisterLine]:
    """The school's support-file register (FILE_LIST): open files first, highest risk
    first, then by next review. No notes; the category is opened from its seal."""
    app.check(actor, access.FILE_LIST, "file", school_id=school_id)
    app.views.catch_up()  # type: ignore[attr-defined]
    today = today or app.now().date()
    q = (
        select(files, enrolment.c.class_name)
        .select_from(files.outerjoin(enrolment, enrolment.c.student_id == files.c.student_id))
        .where(files.c.school_id == school_id)
    )
    if not include_closed:
        q = q.where(files.c.status == "open")
    with app.views.engine.connect() as conn:  # type: ignore[attr-defined]
        rows = conn.execute(q).mappings().all()
    lines = []
    for r in rows:
        category = open_for(app, r["file_id"], r["sealed_category"]) if r["sealed_category"] is not None else None
        due = r["next_review_due"]
        lines.append(
            RegisterLine(
                file_id=r["file_id"],
                student_id=r["student_id"],
                class_name=r["class_name"],
                risk_level=r["risk_level"],
                category=category,
                responsible_id=r["responsible_id"],
                status=r["status"],
                next_review_due=due,
                review_overdue=r["status"] == "open" and due is not None and today > due,
                erased=bool(r["erased"]),
            )
        )
    return sorted(
        lines,
        key=lambda x: (
            x.status != "open",
            -RISK_LEVELS.index(x.risk_level) if x.risk_level else 0,
            x.next_review_due or date.max,
            x.file_id,
        ),
    )


@dataclass(frozen=True)
class ClassCoverage:
    enrolled: int
    screened: int

    @property
    def rate(self) -> float:
        return self.screened / self.enrolled if self.enrolled else 0.0


@dataclass(frozen=True)
class Coverage:
    """Screening coverage of a school for a school year (students, not rows).
    `not_screened` (student ids, by class) only for those with FILE_LIST; `names` only
    when asked for, resolved from the student streams at read time (已删除 if erased)."""

    school_year: int
    enrolled: int
    screened: int
    per_class: dict[str, ClassCoverage]
    not_screened: list[str]
    names: dict[str, str] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.screened / self.enrolled if self.enrolled else 0.0


def coverage(
    app: Source,
    actor: Actor,
    school_id: str,
    school_year: int | None = None,
    *,
    today: date | None = None,
    with_names: bool = False,
) -> Coverage:
    """Students screened / enrolled in a school year (default: the current one), per
    class, with the students not yet screened. Gate: FILE_LIST (counts and the list of
    students), else STATS_READ (counts only)."""
    school = app.resource("file", school_id=school_id)
    listed = decide(actor, access.FILE_LIST, school).allowed
    app.authorize(
        actor,
        access.FILE_LIST if listed else access.STATS_READ,
        school if listed else app.resource("school", school_id=school_id),
    )
    app.views.catch_up()  # type: ignore[attr-defined]
    year = school_year if school_year is not None else app.policy.school_year_of(today or app.now().date())
    done = select(screened.c.student_id).where(
        screened.c.school_id == school_id,
        screened.c.school_year == year,
        screened.c.screenings > 0,
    )
    q = select(enrolment.c.student_id, enrolment.c.class_name, enrolment.c.student_id.in_(done).label("done")).where(
        enrolment.c.school_id == school_id, enrolment.c.active.is_(True), enrolment.c.erased.is_(False)
    )
    with app.views.engine.connect() as conn:  # type: ignore[attr-defined]
        rows = conn.execute(q).all()
    per_class: dict[str, list[int]] = {}
    missing: list[tuple[str, str]] = []
    for sid, class_name, was_screened in rows:
        counts = per_class.setdefault(class_name or "", [0, 0])
        counts[0] += 1
        if was_screened:
            counts[1] += 1
        else:
            missing.append((class_name or "", sid))
    not_screened = [sid for _, sid in sorted(missing)] if listed else []
    names = {r.id: r.name for r in student_refs(app, not_screened)} if with_names else {}
    return Coverage(
        school_year=year,
        enrolled=len(rows),
        screened=sum(c[1] for c in per_class.values()),
        per_class={k: ClassCoverage(*v) for k, v in sorted(per_class.items())},
        not_screened=not_screened,
        names=names,
    )


def risk_counts(app: Source, actor: Actor, school_id: str) -> dict[str, int]:
    """Open support files of a school per risk level (RISK_LEVELS order): counts only,
    no names and no ids, for anyone with the school's statistics (STATS_READ)."""
    app.check(actor, access.STATS_READ, "school", school_id=school_id)
    app.views.catch_up()  # type: ignore[attr-defined]
    q = select(files.c.risk_level).where(
        files.c.school_id == school_id, files.c.status == "open", files.c.erased.is_(False)
    )
    counts = dict.fromkeys(RISK_LEVELS, 0)
    with app.views.engine.connect() as conn:  # type: ignore[attr-defined]
        for (level,) in conn.execute(q):
            if level in counts:
                counts[level] += 1
    return counts


def student_refs(app: Source, ids: list[str]) -> list[StudentRef]:
    """Names resolved now, from the student streams: loaded together where the
    application can (one query for all), else one by one; 已删除 once erased."""
    load_many = getattr(app, "_load_many", None)
    if load_many is None:
        return [app.student_ref(i) for i in ids]
    loaded = load_many([UUID(i) for i in ids], Student)
    return [
        StudentRef(i, s.school_id, s.class_name, s.student_no, s.name)
        if (s := loaded.get(i)) is not None
        else app.student_ref(i)
        for i in ids
    ]


__all__ = [
    "SupportRegisterView",
    "RegisterLine",
    "Coverage",
    "ClassCoverage",
    "register",
    "coverage",
    "risk_counts",
    "views",
]
