"""The work queue (待办事项): for each staff member, the open items they answer for,
each with its due date, and whether it is overdue (decided when asked, from `today`).

One row per case, file or pairing stream, holding the one item that stream has open
at a time (or none), who must act on it and when it is due:

| kind | stream | who | from → until | due |
| --- | --- | --- | --- | --- |
| `investigation` | case | the handler (before one is named: the school's safety leads) | Reported / Reopened / appeal reopened → InvestigationCompleted | `investigation_due` of that event |
| `determination` | case | the handler | InvestigationCompleted / DeterminationReturned → Determined | — |
| `approval` | case | the school's principals, except whoever recorded the determination | Determined → DeterminationApproved / DeterminationReturned | — |
| `follow_up` | case | the handler | an approved bullying determination → Closed / Reopened | `follow_up_due`, then each follow-up's `next_due` |
| `plan_review` | file | the responsible staff member | Opened / Reopened → Closed | `next_review_due` of the last event that set it |
| `check_in` | pairing | the paired staff member | Paired → Ended | last `held_on` (or the pairing day) + cadence |

Every due date is one the events carry (the domain computed it from the policy when
the event was recorded), except a check-in's, which is the domain's own rule
(`Pairing.next_due`) applied to the event fields; so a rebuild gives the same rows
whatever today's policy says. Days are stored as ordinals (`date.toordinal()`), so a
check-in moves its due date in one UPDATE, on SQLite and PostgreSQL alike.

No names and no text: ids, kinds and days. The label of an item (the student it is
about) is resolved when the queue is read (`app.student_ref`), so it shows 已删除 once
the student is erased. A shredded case, file or pairing leaves the table (the events
that built its row can no longer be read, so a rebuild could not keep it either) and
is shown from the clear directory as an erased item.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import date
from typing import TYPE_CHECKING, Any
from uuid import UUID

from eventsourcing.dispatch import singledispatchmethod
from sqlalchemy import (
    Column,
    Connection,
    Index,
    Integer,
    String,
    Table,
    and_,
    bindparam,
    case,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)

from domain import access
from domain.bullying import BullyingCase
from domain.common import ERASED_LABEL, Actor, NotFound
from domain.pairing import Pairing
from domain.support import SupportFile
from projections.base import ErasedEvent, StudentRef, View, WriteBehind, metadata, stream_id_of

if TYPE_CHECKING:
    from projections.base import Source

KINDS = ("investigation", "determination", "approval", "follow_up", "plan_review", "check_in")
KIND_LABELS = {
    "investigation": "欺凌案件调查期限",
    "determination": "待作出认定",
    "approval": "待审批认定",
    "follow_up": "欺凌案件回访",
    "plan_review": "心理档案方案复评",
    "check_in": "一岗双带谈心谈话",
}
SAFETY_LEAD = "safety_lead"
PRINCIPAL = "principal"
TRACKED_TOPICS = ("domain.bullying:", "domain.support:", "domain.pairing:")

items = Table(
    "v_work_items",
    metadata,
    Column("stream_id", String(36), primary_key=True),
    Column("stream_kind", String(8), nullable=False),  # case | file | pairing
    Column("school_id", String(36), nullable=False),
    Column("subject_id", String(36)),  # the student the item is about: the label key
    Column("handler_id", String(36)),  # the case's handler, the file's responsible, the pairing's staff
    Column("kind", String(16)),  # the open item (KINDS), NULL when nothing is open
    Column("owner_id", String(36)),  # who must act; NULL: anyone with owner_role in the school
    Column("owner_role", String(16)),
    Column("excluded_id", String(36)),  # who may not act on it (the determiner, for an approval)
    Column("since_day", Integer),  # ordinal day the item opened (a pairing: the day it was paired)
    Column("due_day", Integer),  # ordinal day it falls due; NULL: no deadline
    Column("last_day", Integer),  # a pairing's last check-in
    Column("cadence_days", Integer),  # a pairing's cadence
    Index("v_work_items_owner", "owner_id", "kind"),
    Index("v_work_items_school", "school_id", "kind"),
)

_c = items.c
_by_id = _c.stream_id == bindparam("b_id")


def _day(value: date | None) -> int | None:
    return value.toordinal() if value is not None else None


def _date(day: int | None) -> date | None:
    return date.fromordinal(day) if day is not None else None


# Prepared statements: every handler is one statement by primary key, no SELECT.
_insert_item = insert(items)
_ITEM_COLUMNS = tuple(c.key for c in items.columns)


def _item_row(**values: Any) -> dict[str, Any]:
    """A whole row (NULL where not given), so rows kept back share one INSERT."""
    return {k: values.get(k) for k in _ITEM_COLUMNS}


_set_item = (
    update(items)
    .where(_by_id)
    .values(
        kind=bindparam("b_kind"),
        owner_id=bindparam("b_owner"),
        owner_role=bindparam("b_role"),
        excluded_id=bindparam("b_excluded"),
        since_day=bindparam("b_since", type_=Integer),
        due_day=bindparam("b_due", type_=Integer),
    )
)
# An item for the case's handler (or, while there is none, the school's safety leads).
_set_handler_item = (
    update(items)
    .where(_by_id)
    .values(
        kind=bindparam("b_kind"),
        owner_id=_c.handler_id,
        owner_role=SAFETY_LEAD,
        excluded_id=None,
        since_day=bindparam("b_since", type_=Integer),
        due_day=bindparam("b_due", type_=Integer),
    )
)
_no_item = (
    update(items)
    .where(_by_id)
    .values(
        kind=None,
        owner_id=None,
        owner_role=None,
        excluded_id=None,
        since_day=None,
        due_day=None,
    )
)
_new_day = bindparam("b_day", type_=Integer)
_latest = case((or_(_c.last_day.is_(None), _c.last_day < _new_day), _new_day), else_=_c.last_day)
_check_in = update(items).where(_by_id).values(last_day=_latest, due_day=_latest + _c.cadence_days)
_cadence = bindparam("b_cadence", type_=Integer)
_cadence_changed = (
    update(items)
    .where(_by_id)
    .values(
        cadence_days=_cadence,
        due_day=func.coalesce(_c.last_day, _c.since_day) + _cadence,
    )
)


class WorkQueueView(WriteBehind, View):
    name = "work_queue"
    tables = (items,)

    def __init__(self, app: Any = None) -> None:
        self.app = app
        self._reset()

    @singledispatchmethod
    def fold(self, event: Any, conn: Connection, position: int) -> None:  # type: ignore[override]
        """Events this view does not need are ignored."""

    # -- bullying cases ------------------------------------------------------------------
    @fold.register(BullyingCase.Reported)
    def _reported(self, e: Any, conn: Connection, position: int) -> None:
        subject = next((p["student_id"] for p in e.parties if p["part"] == "targeted"), None)
        self._insert(
            conn,
            _insert_item,
            _item_row(
                stream_id=str(e.originator_id),
                stream_kind="case",
                school_id=e.school_id,
                subject_id=subject,
                handler_id=None,
                kind="investigation",
                owner_id=None,
                owner_role=SAFETY_LEAD,
                since_day=_day(e.at.date()),
                due_day=_day(e.investigation_due),
            ),
            position,
        )

    @fold.register(BullyingCase.PartyAdded)
    def _party_added(self, e: Any, conn: Connection, position: int) -> None:
        if e.part == "targeted":
            conn.execute(
                update(items).where(_by_id, _c.subject_id.is_(None)).values(subject_id=e.student_id),
                {"b_id": str(e.originator_id)},
            )

    @fold.register(BullyingCase.PartyRemoved)
    def _party_removed(self, e: Any, conn: Connection, position: int) -> None:
        conn.execute(
            update(items).where(_by_id, _c.subject_id == e.student_id).values(subject_id=None),
            {"b_id": str(e.originator_id)},
        )

    @fold.register(BullyingCase.InvestigationStarted)
    def _investigation_started(self, e: Any, conn: Connection, position: int) -> None:
        conn.execute(
            update(items).where(_by_id).values(handler_id=e.handler_id, owner_id=e.handler_id),
            {"b_id": str(e.originator_id)},
        )

    @fold.register(BullyingCase.InvestigationCompleted)
    @fold.register(BullyingCase.DeterminationReturned)
    def _awaiting_determination(self, e: Any, conn: Connection, position: int) -> None:
        conn.execute(
            _set_handler_item,
            {"b_id": str(e.originator_id), "b_kind": "determination", "b_since": _day(e.at.date()), "b_due": None},
        )

    @fold.register(BullyingCase.Determined)
    def _determined(self, e: Any, conn: Connection, position: int) -> None:
        conn.execute(
            _set_item,
            {
                "b_id": str(e.originator_id),
                "b_kind": "approval",
                "b_owner": None,
                "b_role": PRINCIPAL,
                "b_excluded": e.actor,
                "b_since": _day(e.at.date()),
                "b_due": None,
            },
        )

    @fold.register(BullyingCase.DeterminationApproved)
    def _approved(self, e: Any, conn: Connection, position: int) -> None:
        self._follow_up(conn, str(e.originator_id), e.follow_up_due, e.at.date())

    @fold.register(BullyingCase.FollowUpRecorded)
    def _followed_up(self, e: Any, conn: Connection, position: int) -> None:
        if e.next_due is not None:
            self._follow_up(conn, str(e.originator_id), e.next_due, e.held_on)

    @fold.register(BullyingCase.AppealReviewed)
    def _appeal_reviewed(self, e: Any, conn: Connection, position: int) -> None:
        sid = str(e.originator_id)
        if e.outcome == "changed":
            self._follow_up(conn, sid, e.follow_up_due, e.at.date())
        elif e.outcome == "reopened":
            conn.execute(
                _set_handler_item,
                {
                    "b_id": sid,
                    "b_kind": "investigation",
                    "b_since": _day(e.at.date()),
                    "b_due": _day(e.investigation_due),
                },
            )

    @fold.register(BullyingCase.Closed)
    def _case_closed(self, e: Any, conn: Connection, position: int) -> None:
        conn.execute(_no_item, {"b_id": str(e.originator_id)})

    @fold.register(BullyingCase.Reopened)
    def _case_reopened(self, e: Any, conn: Connection, position: int) -> None:
        conn.execute(
            update(items)
            .where(_by_id)
            .values(
                handler_id=None,
                kind="investigation",
                owner_id=None,
                owner_role=SAFETY_LEAD,
                excluded_id=None,
                since_day=_day(e.at.date()),
                due_day=_day(e.investigation_due),
            ),
            {"b_id": str(e.originator_id)},
        )

    @staticmethod
    def _follow_up(conn: Connection, sid: str, due: date | None, since: date) -> None:
        """A bullying determination in force: follow-ups fall due; otherwise nothing is open."""
        if due is None:
            conn.execute(_no_item, {"b_id": sid})
        else:
            conn.execute(
                _set_handler_item, {"b_id": sid, "b_kind": "follow_up", "b_since": _day(since), "b_due": _day(due)}
            )

    # -- support files -------------------------------------------------------------------
    @fold.register(SupportFile.Opened)
    def _file_opened(self, e: Any, conn: Connection, position: int) -> None:
        self._insert(
            conn,
            _insert_item,
            _item_row(
                stream_id=str(e.originator_id),
                stream_kind="file",
                school_id=e.school_id,
                subject_id=e.student_id,
                handler_id=e.responsible_id,
                kind="plan_review",
                owner_id=e.responsible_id,
                since_day=_day(e.at.date()),
                due_day=_day(e.next_review_due),
            ),
            position,
        )

    @fold.register(SupportFile.RiskLevelRaised)
    @fold.register(SupportFile.RiskLevelLowered)
    def _level_changed(self, e: Any, conn: Connection, position: int) -> None:
        conn.execute(
            update(items).where(_by_id).values(due_day=_day(e.next_review_due)), {"b_id": str(e.originator_id)}
        )

    @fold.register(SupportFile.PlanReviewed)
    def _reviewed(self, e: Any, conn: Connection, position: int) -> None:
        conn.execute(
            update(items).where(_by_id).values(since_day=_day(e.reviewed_on), due_day=_day(e.next_review_due)),
            {"b_id": str(e.originator_id)},
        )

    @fold.register(SupportFile.ResponsibleReassigned)
    def _reassigned(self, e: Any, conn: Connection, position: int) -> None:
        # The file is open (reassigning a closed file is refused), so its item moves too.
        conn.execute(
            update(items).where(_by_id).values(handler_id=e.to_id, owner_id=e.to_id), {"b_id": str(e.originator_id)}
        )

    @fold.register(SupportFile.Closed)
    def _file_closed(self, e: Any, conn: Connection, position: int) -> None:
        conn.execute(_no_item, {"b_id": str(e.originator_id)})

    @fold.register(SupportFile.Reopened)
    def _file_reopened(self, e: Any, conn: Connection, position: int) -> None:
        conn.execute(
            update(items)
            .where(_by_id)
            .values(
                kind="plan_review",
                owner_id=_c.handler_id,
                since_day=_day(e.at.date()),
                due_day=_day(e.next_review_due),
            ),
            {"b_id": str(e.originator_id)},
        )

    # -- pairings ------------------------------------------------------------------------
    @fold.register(Pairing.Paired)
    def _paired(self, e: Any, conn: Connection, position: int) -> None:
        paired = _day(e.at.date())
        sid = stream_id_of(e)
        self._insert(
            conn,
            _insert_item,
            {
                "stream_id": sid,
                "stream_kind": "pairing",
                "school_id": e.school_id,
                "subject_id": e.student_id,
                "handler_id": e.staff_id,
                "kind": "check_in",
                "owner_id": e.staff_id,
                "owner_role": None,
                "excluded_id": None,
                "since_day": paired,
                "due_day": paired + e.cadence_days,
                "last_day": None,
                "cadence_days": e.cadence_days,
            },
            position,
            key=sid,
        )

    @fold.register(Pairing.CheckInRecorded)
    def _checked_in(self, e: Any, conn: Connection, position: int) -> None:
        sid = stream_id_of(e)
        day = _day(e.held_on)
        row = self.kept(sid)
        if row is not None:
            # Paired in this batch and not written yet: the same change as `_check_in`, on the row.
            last = row["last_day"]
            latest = day if last is None or last < day else last
            row["last_day"] = latest
            row["due_day"] = latest + row["cadence_days"]
        else:
            conn.execute(_check_in, {"b_id": sid, "b_day": day})

    @fold.register(Pairing.CadenceChanged)
    def _cadence_changed(self, e: Any, conn: Connection, position: int) -> None:
        conn.execute(_cadence_changed, {"b_id": str(e.originator_id), "b_cadence": e.cadence_days})

    @fold.register(Pairing.Ended)
    def _ended(self, e: Any, conn: Connection, position: int) -> None:
        conn.execute(delete(items).where(_by_id), {"b_id": str(e.originator_id)})

    # -- erasure -------------------------------------------------------------------------
    @fold.register(ErasedEvent)
    def _erased(self, e: ErasedEvent, conn: Connection, position: int) -> None:
        if e.topic.startswith(TRACKED_TOPICS):
            conn.execute(delete(items).where(_by_id), {"b_id": str(e.originator_id)})

    def erase(self, conn: Connection, stream_id: str) -> None:
        conn.execute(delete(items).where(_by_id), {"b_id": str(stream_id)})


def views(app: Any) -> list[View]:
    return [WorkQueueView(app)]


# -- queries -------------------------------------------------------------------------------
@dataclass(frozen=True)
class WorkItem:
    """One open item: what (kind), on which stream, about whom, due when."""

    kind: str
    stream_id: str
    stream_kind: str  # case | file | pairing
    label_key: str | None  # the student the item is about (an id; resolved into `label`)
    label: str  # the student's name when resolved, 已删除 once erased, "" when not asked for
    due: date | None
    overdue: bool
    since: date | None = None
    erased: bool = False

    @property
    def kind_label(self) -> str:
        return KIND_LABELS[self.kind]


def _today(app: Source, today: date | None) -> date:
    return today if today is not None else app.now().date()


def _staff(app: Source, actor: Actor, staff_id: str) -> tuple[str | None, frozenset[str]] | None:
    """(school, roles) of the staff member whose queue is asked for; None if unknown."""
    if staff_id == actor.staff_id:
        return actor.school_id, frozenset(r.value for r in actor.roles)
    staff = app.accounts.staff(staff_id)
    if staff is None:
        return None
    return staff.school_id, frozenset(staff.roles)


def work_queue(
    app: Source, actor: Actor, today: date | None = None, *, staff_id: str | None = None, names: bool = True
) -> list[WorkItem]:
    """A staff member's open items (by default the actor's own), overdue first, then by
    due date. Anyone may read their own queue; a principal, any queue of their school."""
    target = staff_id or actor.staff_id
    known = _staff(app, actor, target)
    school, roles = known if known else (None, frozenset())
    app.authorize(actor, access.QUEUE_READ, replace(app.resource("queue", school_id=school), owner_id=target))
    if known is None:
        raise NotFound()
    app.views.catch_up()  # type: ignore[attr-defined]
    day = _today(app, today)
    mine = _c.owner_id == target
    shared = [_c.owner_role.in_(sorted(roles))] if roles else []
    if school is not None and shared:
        mine = or_(mine, and_(_c.owner_id.is_(None), _c.school_id == school, *shared))
    query = select(_c.kind, _c.stream_id, _c.stream_kind, _c.subject_id, _c.due_day, _c.since_day).where(
        _c.kind.is_not(None),
        mine,
        or_(_c.excluded_id.is_(None), _c.excluded_id != target),
    )
    with app.views.engine.connect() as conn:  # type: ignore[attr-defined]
        rows = conn.execute(query).all()
    labels = _Labels(app, names)
    labels.prefetch(r[3] for r in rows)
    out = [
        WorkItem(
            kind=k,
            stream_id=sid,
            stream_kind=sk,
            label_key=subject,
            label=labels(subject),
            due=_date(due),
            overdue=due is not None and day.toordinal() > due,
            since=_date(since),
            erased=labels.erased(subject),
        )
        for k, sid, sk, subject, due, since in rows
    ]
    seen = {i.stream_id for i in out}
    if school is not None:
        out += [i for i in _erased_items(app, school, target, roles) if i.stream_id not in seen]
    return sorted(out, key=_order)


def _order(i: WorkItem) -> tuple[Any, ...]:
    return (not i.overdue, i.due is None, i.due or date.max, KINDS.index(i.kind), i.stream_id)


class _Labels:
    """Student names for display, each resolved once per query (已删除 once erased)."""

    def __init__(self, app: Source, names: bool) -> None:
        self.app, self.names, self.refs = app, names, {}  # type: ignore[var-annotated]

    def __call__(self, student_id: str | None) -> str:
        if not self.names or student_id is None:
            return ""
        ref = self.refs.get(student_id)
        if ref is None:
            ref = self.refs[student_id] = self.app.student_ref(student_id)
        return ref.name

    def erased(self, student_id: str | None) -> bool:
        ref = self.refs.get(student_id) if student_id else None
        return bool(ref and ref.erased)

    def prefetch(self, student_ids: Iterable[str | None]) -> None:
        """Resolve many names at once: the student streams read with one query, their
        keys with one more (`_load_many`; a key cached here but since shredded by another
        process is forgotten there, and that name resolved one by one, as 已删除).
        Anything not resolved here is resolved one by one when asked."""
        load_many = getattr(self.app, "_load_many", None)
        wanted: dict[str, str] = {}
        for i in student_ids:
            if i and i not in self.refs:
                try:
                    wanted[str(UUID(i))] = i
                except ValueError:
                    pass
        if not self.names or load_many is None or len(wanted) < 2:
            return
        from domain.roster import Student

        for u, s in load_many([UUID(u) for u in wanted], Student).items():
            sid = wanted.get(u, u)
            self.refs[sid] = StudentRef(sid, s.school_id, s.class_name, s.student_no, s.name)


# What an erased stream still had open, from its directory status (ids and a status only).
_ERASED_CASE_KINDS = {
    "reported": "investigation",
    "reopened": "investigation",
    "investigating": "investigation",
    "awaiting_determination": "determination",
    "determined": "approval",
    "intervening": "follow_up",
    "following_up": "follow_up",
}


def _erased_items(app: Source, school: str, target: str, roles: frozenset[str]) -> list[WorkItem]:
    out = []
    for sid, kind, owner, subject, status in app.db.fetch(
        "SELECT stream_id, kind, owner_id, subject_id, status FROM {t}anxin_directory "
        "WHERE school_id = ? AND erased = 1 AND kind IN ('case', 'file', 'pairing')",
        (school,),
    ):
        if kind == "pairing":
            item, mine = ("check_in" if status == "active" else None), owner == target
        elif kind == "file":
            item, mine = ("plan_review" if status == "open" else None), owner == target
        else:
            item = _ERASED_CASE_KINDS.get(status or "")
            if item == "approval":
                mine = PRINCIPAL in roles
            else:
                mine = owner == target or (owner is None and SAFETY_LEAD in roles)
        if item and mine:
            out.append(
                WorkItem(
                    kind=item,
                    stream_id=sid,
                    stream_kind=kind,
                    label_key=subject,
                    label=ERASED_LABEL,
                    due=None,
                    overdue=False,
                    erased=True,
                )
            )
    return out


def overdue_counts(app: Source, actor: Actor, school_id: str, today: date | None = None) -> dict[str, int]:
    """How many items of each kind are overdue in a school (for the principal's board):
    counts only, no names and no ids."""
    app.check(actor, access.STATS_READ, "school", school_id=school_id)
    app.views.catch_up()  # type: ignore[attr-defined]
    day = _today(app, today).toordinal()
    query = (
        select(_c.kind, func.count())
        .where(_c.school_id == school_id, _c.kind.is_not(None), _c.due_day < day)
        .group_by(_c.kind)
    )
    counts = dict.fromkeys(KINDS, 0)
    with app.views.engine.connect() as conn:  # type: ignore[attr-defined]
        counts.update({k: n for k, n in conn.execute(query)})
    return counts


__all__ = ["WorkItem", "WorkQueueView", "work_queue", "overdue_counts", "KINDS", "KIND_LABELS", "items", "views"]
