"""The bullying-case board (欺凌案件台账) of a school.

One row per case with the facts its status is derived from, kept by plain updates
(no read per event): opened date, forms (codes), the investigation's due date and
whether it started / completed (and, for reports since issue 17, when it must start:
`intake_due`), the determination in force (id, approved, bullying,
severity), whether the public-security track (公安机关处理) is open this cycle, the determination
last followed up, the pending appeal, counts of appeals
and mandatory reports (with the reports' dates), the closing date and the cycle. The
status is derived from those at read time by `status_of`, the same rules as
`BullyingCase.status`; days open and "investigation overdue" are computed from the
query's `today`. A second table keeps the case's parties (student ids), so a class
teacher sees the cases of their class only.

No narrative, place, agency or any other text is kept here.

Erased cases: a shredded case keeps a line with its id, school and parties (from the
directory, as the gate knows them) and status `erased`; a rebuild gives the same rows.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace
from datetime import date
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    Boolean,
    Connection,
    Date,
    Index,
    and_,
    bindparam,
    delete,
    exists,
    select,
    text,
    update,
)

from domain import access
from domain.access import Resource, decide
from domain.bullying import LEGACY_SEVERITIES, SEVERITIES, STATUS_LABELS, BullyingCase, case_status
from domain.common import Actor
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
)
from projections.support_register_view import enrolment

if TYPE_CHECKING:
    from projections.base import Source

NAME = "case_board"

cases = Table(
    "v_case_board",
    metadata,
    Column("case_id", String(36), primary_key=True),
    Column("school_id", String(36), nullable=True),
    Column("opened_on", Date, nullable=True),
    Column("forms", String(64), nullable=True),  # codes, comma-separated: physical,verbal
    Column("cycle", Integer, nullable=True),
    Column("investigation_due", Date, nullable=True),
    Column("intake_due", Date, nullable=True),  # the investigation starts by then (v2 reports)
    Column("investigation_started", Boolean, nullable=True),
    Column("investigation_completed", Boolean, nullable=True),
    Column("handler_id", String(64), nullable=True),
    Column("determination_id", String(64), nullable=True),
    Column("determination_approved", Boolean, nullable=True),
    Column("bullying", Boolean, nullable=True),
    Column("severity", String(32), nullable=True),
    Column("followed_up_determination_id", String(64), nullable=True),
    Column("pending_appeal_id", String(64), nullable=True),
    Column("appeals", Integer, nullable=True),
    Column("mandatory_reports", Integer, nullable=True),
    Column("mandatory_report_dates", String(2000), nullable=True),  # ISO dates, each followed by ","
    Column("closed_on", Date, nullable=True),
    Column("police_track", Boolean, nullable=True),  # opened this cycle (PoliceTrackOpened)
    Column("last_on", Date, nullable=True),  # the day of the case's latest event (the board's "last activity")
    Column("erased", Boolean, nullable=False, default=False),
    Index("v_case_board_school", "school_id"),
)

parties = Table(
    "v_case_board_parties",
    metadata,
    Column("case_id", String(36), primary_key=True),
    Column("student_id", String(36), primary_key=True),
    Column("part", String(16), nullable=True),  # targeted | bullying | witness (a code)
    Index("v_case_board_parties_student", "student_id"),
)

# Everything but the ids is gone once a case is shredded.
ERASED_CASE: dict[str, Any] = {
    c.name: None for c in cases.columns if c.name not in ("case_id", "school_id", "erased")
} | {"erased": True}
NO_DETERMINATION = {"determination_id": None, "determination_approved": None, "bullying": None, "severity": None}

# Statements built once (a handler only binds values: no statement building per event).
KEY = "key_"
INSERT_CASE = cases.insert()
INSERT_PARTY = parties.insert()
UPDATE_CASE = update(cases).where(cases.c.case_id == bindparam(KEY))
DELETE_PARTY = delete(parties).where(parties.c.case_id == bindparam(KEY), parties.c.student_id == bindparam("sid"))
REPORT_MADE = UPDATE_CASE.values(
    mandatory_reports=cases.c.mandatory_reports + 1,
    mandatory_report_dates=cases.c.mandatory_report_dates + bindparam("day", type_=String),
)
TOUCHED = UPDATE_CASE.values(last_on=bindparam("day", type_=Date))
APPEAL_LODGED = UPDATE_CASE.values(appeals=cases.c.appeals + 1, pending_appeal_id=bindparam("appeal"))
REOPENED = UPDATE_CASE.values(
    cycle=cases.c.cycle + 1,
    closed_on=None,
    police_track=False,
    **NO_DETERMINATION,
    handler_id=None,
    investigation_started=False,
    investigation_completed=False,
    investigation_due=bindparam("due", type_=Date),
    intake_due=bindparam("intake_due", type_=Date),
)
LINKED_STUDENTS = text(
    "SELECT student_id, MIN(part) FROM anxin_links WHERE stream_id = :sid GROUP BY student_id ORDER BY student_id"
)


class CaseBoardView(WriteBehind, View):
    name = NAME
    tables = (cases, parties)
    fold = own_fold()

    def _set(self, e: Any, conn: Connection, **values: Any) -> None:
        conn.execute(UPDATE_CASE, {KEY: str(e.originator_id), **values})

    # The last activity: every event of a case moves its day, whatever the event (one
    # update per case per batch, after the batch's own handlers).
    def handle(self, event: Any, conn: Connection, position: int) -> None:
        super().handle(event, conn, position)
        self._touch([event], conn)

    def handle_batch(
        self, events: Sequence[tuple[int, Any]], conn: Connection, by_class: dict[type, list[int]] | None = None
    ) -> None:
        super().handle_batch(events, conn, by_class)
        self._touch([e for _, e in events], conn)

    def _touch(self, events: Sequence[Any], conn: Connection) -> None:
        last: dict[str, date] = {}
        for e in events:
            if isinstance(e, BullyingCase.Event) and (at := getattr(e, "at", None)) is not None:
                cid = str(e.originator_id)
                day = at.date()
                if cid not in last or day > last[cid]:
                    last[cid] = day
        if last:
            self.flush(conn)  # the rows kept back first: a case reported in this batch
            conn.execute(TOUCHED, [{KEY: cid, "day": day} for cid, day in last.items()])

    @fold.register
    def _(self, e: BullyingCase.Reported, conn: Connection, position: int) -> None:
        cid = str(e.originator_id)
        conn.execute(
            INSERT_CASE,
            dict(
                case_id=cid,
                school_id=e.school_id,
                opened_on=e.at.date(),
                forms=",".join(e.forms),
                cycle=0,
                investigation_due=e.investigation_due,
                intake_due=e.intake_due,
                investigation_started=False,
                investigation_completed=False,
                handler_id=None,
                **NO_DETERMINATION,
                followed_up_determination_id=None,
                pending_appeal_id=None,
                appeals=0,
                mandatory_reports=0,
                mandatory_report_dates="",
                closed_on=None,
                police_track=False,
                last_on=e.at.date(),
                erased=False,
            ),
        )
        named = sorted({(p["student_id"], p["part"]) for p in e.parties})
        if named:
            conn.execute(INSERT_PARTY, [{"case_id": cid, "student_id": s, "part": part} for s, part in named])

    @fold.register
    def _(self, e: BullyingCase.PartyAdded, conn: Connection, position: int) -> None:
        conn.execute(INSERT_PARTY, {"case_id": str(e.originator_id), "student_id": e.student_id, "part": e.part})

    @fold.register
    def _(self, e: BullyingCase.PartyRemoved, conn: Connection, position: int) -> None:
        conn.execute(DELETE_PARTY, {KEY: str(e.originator_id), "sid": e.student_id})

    @fold.register
    def _(self, e: BullyingCase.ReportCorrected, conn: Connection, position: int) -> None:
        if "forms" in e.changes:
            self._set(e, conn, forms=",".join(e.changes["forms"]))

    @fold.register
    def _(self, e: BullyingCase.InvestigationStarted, conn: Connection, position: int) -> None:
        if e.investigation_due is None:  # v1: the due date of the report stands
            self._set(e, conn, investigation_started=True, handler_id=e.handler_id)
        else:
            self._set(
                e, conn, investigation_started=True, handler_id=e.handler_id, investigation_due=e.investigation_due
            )

    @fold.register
    def _(self, e: BullyingCase.InvestigationCompleted, conn: Connection, position: int) -> None:
        self._set(e, conn, investigation_completed=True)

    @fold.register
    def _(self, e: BullyingCase.Determined, conn: Connection, position: int) -> None:
        self._set(
            e,
            conn,
            determination_id=e.determination_id,
            determination_approved=False,
            bullying=e.bullying,
            severity=e.severity,
        )

    @fold.register
    def _(self, e: BullyingCase.DeterminationApproved, conn: Connection, position: int) -> None:
        self._set(e, conn, determination_approved=True)

    @fold.register
    def _(self, e: BullyingCase.DeterminationReturned, conn: Connection, position: int) -> None:
        self._set(e, conn, **NO_DETERMINATION)

    @fold.register
    def _(self, e: BullyingCase.MandatoryReportMade, conn: Connection, position: int) -> None:
        conn.execute(REPORT_MADE, {KEY: str(e.originator_id), "day": f"{e.reported_at.date().isoformat()},"})

    @fold.register
    def _(self, e: BullyingCase.AppealLodged, conn: Connection, position: int) -> None:
        conn.execute(APPEAL_LODGED, {KEY: str(e.originator_id), "appeal": e.appeal_id})

    @fold.register
    def _(self, e: BullyingCase.AppealReviewed, conn: Connection, position: int) -> None:
        values: dict[str, Any] = {"pending_appeal_id": None}
        new = e.new_determination
        if e.outcome == "changed" and new:
            values.update(
                determination_id=new["id"],
                determination_approved=True,
                bullying=new["bullying"],
                severity=new["severity"],
            )
        elif e.outcome == "reopened":
            values.update(
                **NO_DETERMINATION,
                investigation_started=True,
                investigation_completed=False,
                investigation_due=e.investigation_due,
            )
        self._set(e, conn, **values)

    # -- remedies (issue 17, part C): the county review (复查) counts as an appeal here ---------
    @fold.register
    def _(self, e: BullyingCase.CountyReviewApplied, conn: Connection, position: int) -> None:
        conn.execute(APPEAL_LODGED, {KEY: str(e.originator_id), "appeal": e.review_id})

    @fold.register
    def _(self, e: BullyingCase.CountyReviewDecided, conn: Connection, position: int) -> None:
        values: dict[str, Any] = {"pending_appeal_id": None}
        new = e.new_determination
        if e.outcome == "changed" and new:
            values.update(
                determination_id=new["id"],
                determination_approved=True,
                bullying=new["bullying"],
                severity=new["severity"],
            )
        elif e.outcome == "sent_back":
            values.update(**NO_DETERMINATION)
        self._set(e, conn, **values)

    @fold.register
    def _(self, e: BullyingCase.FollowUpRecorded, conn: Connection, position: int) -> None:
        self._set(e, conn, followed_up_determination_id=e.determination_id)

    @fold.register
    def _(self, e: BullyingCase.Closed, conn: Connection, position: int) -> None:
        self._set(e, conn, closed_on=e.at.date())

    @fold.register
    def _(self, e: BullyingCase.ClueDismissed, conn: Connection, position: int) -> None:
        self._set(e, conn, closed_on=e.at.date())

    @fold.register
    def _(self, e: BullyingCase.PoliceTrackOpened, conn: Connection, position: int) -> None:
        self._set(e, conn, police_track=True)

    @fold.register
    def _(self, e: BullyingCase.Reopened, conn: Connection, position: int) -> None:
        conn.execute(REOPENED, {KEY: str(e.originator_id), "due": e.investigation_due, "intake_due": e.intake_due})

    @fold.register
    def _(self, e: ErasedEvent, conn: Connection, position: int) -> None:
        if e.originator_version != 1 or aggregate_of(e.topic)[0] != "BullyingCase":
            return
        cid = str(e.originator_id)
        row = directory_row(conn, cid)
        conn.execute(INSERT_CASE, {"case_id": cid, "school_id": row[0] if row else None, **ERASED_CASE})
        named = [(r[0], r[1]) for r in conn.execute(LINKED_STUDENTS, {"sid": cid})]
        if named:
            conn.execute(INSERT_PARTY, [{"case_id": cid, "student_id": s, "part": part} for s, part in named])

    def erase(self, conn: Connection, stream_id: str) -> None:
        # The parties stay: they are ids, as in the directory the gate reads.
        conn.execute(UPDATE_CASE, {KEY: stream_id, **ERASED_CASE})


def views(app: Source) -> list[View]:
    return [CaseBoardView(app)]


# -- queries ------------------------------------------------------------------------------------
def status_of(row: Any) -> str:
    """A case's status from its board row: the rules of `BullyingCase.status`."""
    if row["erased"]:
        return "erased"
    determined = row["determination_id"] is not None
    return case_status(
        closed=row["closed_on"] is not None,
        appealed=row["pending_appeal_id"] is not None,
        determined=determined,
        approved=bool(row["determination_approved"]),
        bullying=bool(row["bullying"]),
        followed_up=determined and row["followed_up_determination_id"] == row["determination_id"],
        investigation_completed=bool(row["investigation_completed"]),
        investigation_started=bool(row["investigation_started"]),
        reopened=bool(row["cycle"]),
    )


@dataclass(frozen=True)
class BoardLine:
    """One case on the board. `full` lines (safety lead, principal) carry forms,
    mandatory reports and appeals; a class teacher's status lines leave them None."""

    case_id: str
    status: str
    severity: str | None
    opened_on: date | None
    days_open: int | None
    investigation_due: date | None
    investigation_overdue: bool
    closed_on: date | None
    erased: bool
    full: bool
    forms: list[str] | None = None
    mandatory_reports: int | None = None
    mandatory_report_dates: list[date] | None = None
    appeals: int | None = None
    appeal_pending: bool | None = None
    # No targeted student identified yet (a clue): shown as 未确认学生.
    unconfirmed: bool = False
    # The investigation must start by then (reports since issue 17); overdue if it has not.
    intake_due: date | None = None
    intake_overdue: bool = False
    # The public-security track (公安机关处理) is open this cycle, or (an older case) the
    # determination in force has the legacy severity 违反治安管理或涉嫌犯罪. Full lines only.
    police_track: bool = False
    # The day of the case's latest event, and the classes of its students (a class teacher:
    # only their own classes among them).
    last_activity: date | None = None
    classes: tuple[str, ...] = ()

    @property
    def overdue(self) -> bool:
        return self.investigation_overdue or self.intake_overdue

    @property
    def status_label(self) -> str:
        return "已删除" if self.status == "erased" else STATUS_LABELS[self.status]

    @property
    def severity_label(self) -> str:
        return SEVERITIES.get(self.severity or "", "")


def _line(row: Any, today: date, full: bool, classes: tuple[str, ...] = ()) -> BoardLine:
    status = status_of(row)
    approved_bullying = row["determination_approved"] and row["bullying"]
    opened, closed = row["opened_on"], row["closed_on"]
    overdue = (
        status not in ("erased", "closed")
        and not row["investigation_completed"]
        and row["investigation_due"] is not None
        and today > row["investigation_due"]
    )
    intake_overdue = (
        status in ("reported", "reopened")
        and not row["investigation_started"]
        and row["intake_due"] is not None
        and today > row["intake_due"]
    )
    line = BoardLine(
        case_id=row["case_id"],
        status=status,
        severity=row["severity"] if approved_bullying else None,
        opened_on=opened,
        days_open=((closed or today) - opened).days if opened else None,
        investigation_due=row["investigation_due"],
        investigation_overdue=overdue,
        closed_on=closed,
        erased=bool(row["erased"]),
        full=full,
        unconfirmed=not row["erased"] and not row["has_targeted"],
        intake_due=row["intake_due"],
        intake_overdue=intake_overdue,
        last_activity=row["last_on"] if not row["erased"] else None,
        classes=classes,
    )
    if not full or row["erased"]:
        return line
    return replace(
        line,
        forms=[f for f in (row["forms"] or "").split(",") if f],
        mandatory_reports=row["mandatory_reports"],
        mandatory_report_dates=sorted(
            date.fromisoformat(d) for d in (row["mandatory_report_dates"] or "").split(",") if d
        ),
        appeals=row["appeals"],
        appeal_pending=row["pending_appeal_id"] is not None,
        police_track=bool(row["police_track"]) or bool(approved_bullying and row["severity"] in LEGACY_SEVERITIES),
    )


def case_board(app: Source, actor: Actor, school_id: str, today: date | None = None) -> list[BoardLine]:
    """The school's cases. The safety lead and the principal (CASE_READ for the school)
    see every case with forms, mandatory reports and appeals, never a narrative; a class
    teacher (CASE_STATUS for their classes) sees status lines of the cases involving a
    student of their class; anyone else is refused. One recorded decision per view."""
    school = app.resource("case", school_id=school_id)
    full = decide(actor, access.CASE_READ, school).allowed
    if full:
        app.authorize(actor, access.CASE_READ, school)
    else:
        app.authorize(
            actor,
            access.CASE_STATUS,
            Resource(
                kind="case",
                school_id=school_id,
                classes=frozenset(actor.classes),
                district=school.district,
            ),
        )
    app.views.catch_up()
    today = today or app.now().date()
    has_targeted = (
        exists().where(parties.c.case_id == cases.c.case_id, parties.c.part == "targeted").label("has_targeted")
    )
    q = select(cases, has_targeted).where(cases.c.school_id == school_id)
    if not full:
        mine = exists().where(
            parties.c.case_id == cases.c.case_id,
            enrolment.c.student_id == parties.c.student_id,
            and_(enrolment.c.class_name.in_(sorted(actor.classes)), enrolment.c.school_id == school_id),
        )
        q = q.where(mine)
    # The classes of each case's students (a class teacher: their own classes only).
    cq = (
        select(parties.c.case_id, enrolment.c.class_name)
        .distinct()
        .join(enrolment, enrolment.c.student_id == parties.c.student_id)
        .join(cases, cases.c.case_id == parties.c.case_id)
        .where(cases.c.school_id == school_id, enrolment.c.class_name.is_not(None))
    )
    if not full:
        cq = cq.where(enrolment.c.class_name.in_(sorted(actor.classes)))
    with app.views.engine.connect() as conn:
        rows = conn.execute(q).mappings().all()
        class_rows = conn.execute(cq).all()
    classes: dict[str, list[str]] = {}
    for cid, name in class_rows:
        classes.setdefault(cid, []).append(name)
    lines = [_line(r, today, full, tuple(sorted(classes.get(r["case_id"], ())))) for r in rows]
    return sorted(
        lines,
        key=lambda x: (
            x.erased,
            x.status == "closed",
            not x.overdue,
            x.opened_on or date.min,
            x.case_id,
        ),
    )


def involving(app: Source, case_ids: Collection[str], student_ids: Collection[str]) -> set[str]:
    """Which of these cases (lines of a board the gate has let the reader see) involve one
    of these students (ids a search the gate decided has found): a narrowing of what was
    already allowed, ids only, so no decision of its own."""
    if not case_ids or not student_ids:
        return set()
    q = (
        select(parties.c.case_id)
        .distinct()
        .where(parties.c.case_id.in_(sorted(case_ids)), parties.c.student_id.in_(sorted(student_ids)))
    )
    with app.views.engine.connect() as conn:
        return {r[0] for r in conn.execute(q)}


__all__ = ["CaseBoardView", "BoardLine", "case_board", "involving", "status_of", "views"]
