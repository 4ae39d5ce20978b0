"""The work queue (待办事项): for each staff member, the open items they answer for,
each with its due date, and whether it is overdue (decided when asked, from `today`),
through the application's gate.

The view (`WorkQueueView`, its table `items`) is in `projections.work_queue_view`. The
label of an item (the student it is about) is resolved when the queue is read
(`app.student_ref`), so it shows 已删除 once the student is erased; a shredded case, file
or pairing is shown from the clear directory as an erased item.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

from sqlalchemy import and_, func, or_, select

from domain import access
from domain.bullying import UNCONFIRMED_LABEL
from domain.common import ERASED_LABEL, Actor, NotFound
from domain.support import referral_feedback_overdue
from projections.days import from_ordinal, today_of
from projections.source import StudentRef, ref_of
from projections.work_queue_view import (
    CRISIS_CLOCKS,
    PRINCIPAL,
    SAFETY_LEAD,
    WorkQueueView,
    case_reports,
    items,
    referrals,
    tasks,
    views,
)

if TYPE_CHECKING:
    from projections.base import Source

KINDS = ("intake", "investigation", "determination", "approval", "follow_up", "plan_review", "check_in")
KIND_LABELS = {
    "intake": "欺凌报告待启动调查",
    "investigation": "欺凌案件调查期限",
    "determination": "待作出认定",
    "approval": "待审批认定",
    "follow_up": "欺凌案件回访",
    "plan_review": "心理档案方案复评",
    "check_in": "一岗双带谈心谈话",
    "crisis": "心理危机干预",
    "watch": "关注该学生",
    "first_contact": "心理档案首次接触",
    "person": "一对一包联学生",
    "referral": "转介回执",
    "authority_report": "向公安机关/教育行政部门报告",
}
# A support file's tasks (v_file_tasks): a crisis (every counselor of the school and the
# principal), its status-only watch item (the class teachers of the student's class: no
# trigger, no notes, no link), the first contact of an escalated file (its responsible).
# The one-to-one responsible person (一对一包联人) of a file: its plan's next review (person).
TASK_KINDS = ("crisis", "watch", "first_contact", "person", "referral")
URGENT = ("crisis", "watch")  # always at the top of a queue
COUNSELOR, CLASS_TEACHER = "counselor", "class_teacher"
_c = items.c
_t = tasks.c


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
    due_at: datetime | None = None  # a crisis: the earliest open step's due time (UTC)

    @property
    def kind_label(self) -> str:
        return KIND_LABELS[self.kind]

    @property
    def unconfirmed(self) -> bool:
        """A case whose targeted student is not identified yet (a clue): 未确认学生."""
        return self.stream_kind == "case" and self.label_key is None and not self.erased


def _staff(app: Source, actor: Actor, staff_id: str) -> tuple[str | None, frozenset[str], frozenset[str]] | None:
    """(school, roles, classes) of the staff member whose queue is asked for; None if unknown."""
    if staff_id == actor.staff_id:
        return actor.school_id, frozenset(r.value for r in actor.roles), frozenset(actor.classes)
    staff = app.accounts.staff(staff_id)
    if staff is None:
        return None
    return staff.school_id, frozenset(staff.roles), frozenset(staff.classes)


def work_queue(
    app: Source, actor: Actor, today: date | None = None, *, staff_id: str | None = None, names: bool = True
) -> list[WorkItem]:
    """A staff member's open items (by default the actor's own), overdue first, then by
    due date. Anyone may read their own queue; a principal, any queue of their school."""
    target = staff_id or actor.staff_id
    known = _staff(app, actor, target)
    school, roles, classes = known if known else (None, frozenset(), frozenset())
    app.authorize(actor, access.QUEUE_READ, replace(app.resource("queue", school_id=school), owner_id=target))
    if known is None:
        raise NotFound()
    app.views.catch_up()
    day = today_of(app, today)
    mine = _c.owner_id == target
    shared = [_c.owner_role.in_(sorted(roles))] if roles else []
    if school is not None and shared:
        mine = or_(mine, and_(_c.owner_id.is_(None), _c.school_id == school, *shared))
    query = select(_c.kind, _c.stream_id, _c.stream_kind, _c.subject_id, _c.due_day, _c.since_day).where(
        _c.kind.is_not(None),
        mine,
        or_(_c.excluded_id.is_(None), _c.excluded_id != target),
    )
    with app.views.engine.connect() as conn:
        rows = conn.execute(query).all()
    labels = _Labels(app, names)
    labels.prefetch(r[3] for r in rows)
    out = [
        WorkItem(
            kind=k,
            stream_id=sid,
            stream_kind=sk,
            label_key=subject,
            label=labels(subject) if subject or sk != "case" or not names else UNCONFIRMED_LABEL,
            due=from_ordinal(due),
            overdue=due is not None and day.toordinal() > due,
            since=from_ordinal(since),
            erased=labels.erased(subject),
        )
        for k, sid, sk, subject, due, since in rows
    ]
    out += _task_items(app, target, school, roles, classes, labels, day if today is not None else None)
    out += _referral_items(app, target, labels, day)
    out += _authority_report_items(app, school, roles, labels, today)
    seen = {i.stream_id for i in out}
    if school is not None:
        out += [i for i in _erased_items(app, school, target, roles) if i.stream_id not in seen]
    return sorted(out, key=_order)


_ORDER = (*URGENT, *KINDS, "first_contact", "person", "referral", "authority_report")


def _order(i: WorkItem) -> tuple[Any, ...]:
    return (i.kind not in URGENT, not i.overdue, i.due is None, i.due or date.max, _ORDER.index(i.kind), i.stream_id)


def _task_items(
    app: Source,
    target: str,
    school: str | None,
    roles: frozenset[str],
    classes: frozenset[str],
    labels: _Labels,
    today: date | None,
) -> list[WorkItem]:
    """A file's tasks in this person's queue: the school's crises (counselors, the principal),
    a watch item for each crisis of a student of their class (class teachers), their first
    contacts. Overdue: a crisis step past its due time (or, when `today` is asked for, its day)."""
    conds = [_t.owner_id == target]
    acts = school is not None and bool(roles & {COUNSELOR, PRINCIPAL})
    watches = school is not None and CLASS_TEACHER in roles and bool(classes)
    if acts or watches:
        conds.append(and_(_t.school_id == school, _t.task == "crisis"))
    clocks = [_t[f"s_{step}"] for step in CRISIS_CLOCKS]
    query = select(_t.task, _t.stream_id, _t.subject_id, _t.since_day, _t.due_day, *clocks).where(or_(*conds))
    with app.views.engine.connect() as conn:
        rows = conn.execute(query).all()
    if not rows:
        return []
    now = app.now()
    class_of: dict[str, str] = {}
    if watches and not acts:
        subjects = sorted({r[2] for r in rows if r[0] == "crisis" and r[2]})
        if subjects:
            marks = ", ".join("?" for _ in subjects)
            class_of = dict(
                app.db.fetch(
                    f"SELECT stream_id, class_name FROM {{t}}anxin_directory WHERE stream_id IN ({marks})",
                    tuple(subjects),
                )
            )
    labels.prefetch(r[2] for r in rows)
    out: list[WorkItem] = []
    for task, sid, subject, since, due_day, *dues in rows:
        if task == "person":
            if since is None:  # the file is closed: nothing is due
                continue
            out.append(
                WorkItem(
                    kind="person",
                    stream_id=sid,
                    stream_kind="file",
                    label_key=subject,
                    label=labels(subject),
                    due=from_ordinal(due_day),
                    overdue=due_day is not None and (today or now.date()).toordinal() > due_day,
                    since=from_ordinal(since),
                    erased=labels.erased(subject),
                )
            )
        elif task == "first_contact":
            out.append(
                WorkItem(
                    kind="first_contact",
                    stream_id=sid,
                    stream_kind="file",
                    label_key=subject,
                    label=labels(subject),
                    due=from_ordinal(due_day),
                    overdue=due_day is not None and (today or now.date()).toordinal() > due_day,
                    since=from_ordinal(since),
                    erased=labels.erased(subject),
                )
            )
        elif acts:
            open_dues = [d for d in dues if d is not None]
            due_at = datetime.fromtimestamp(min(open_dues), UTC) if open_dues else None
            if due_at is None:
                overdue = False
            elif today is not None:
                overdue = today > app.policy.local(due_at).date()
            else:
                overdue = now > due_at
            out.append(
                WorkItem(
                    kind="crisis",
                    stream_id=sid,
                    stream_kind="crisis",
                    label_key=subject,
                    label=labels(subject),
                    due=app.policy.local(due_at).date() if due_at else None,
                    overdue=overdue,
                    since=from_ordinal(since),
                    erased=labels.erased(subject),
                    due_at=due_at,
                )
            )
        elif subject and class_of.get(subject) in classes:
            # Status only: the student and that the school's counselors are acting.
            out.append(
                WorkItem(
                    kind="watch",
                    stream_id=sid,
                    stream_kind="watch",
                    label_key=subject,
                    label=labels(subject),
                    due=None,
                    overdue=False,
                    since=from_ordinal(since),
                    erased=labels.erased(subject),
                )
            )
    return out


def _referral_items(app: Source, target: str, labels: _Labels, today: date) -> list[WorkItem]:
    """A file's referrals waiting for their feedback (回执), in its responsible counselor's
    queue; overdue by the domain's rule (`referral_feedback_overdue`) once past the due day."""
    r = referrals.c
    query = select(r.stream_id, r.subject_id, r.since_day, r.due_day).where(
        r.owner_id == target, r.since_day.is_not(None)
    )
    with app.views.engine.connect() as conn:
        rows = conn.execute(query).all()
    labels.prefetch(row[1] for row in rows)
    return [
        WorkItem(
            kind="referral",
            stream_id=sid,
            stream_kind="file",
            label_key=subject,
            label=labels(subject),
            due=from_ordinal(due),
            overdue=referral_feedback_overdue("sent", from_ordinal(due), today),
            since=from_ordinal(since),
            erased=labels.erased(subject),
        )
        for sid, subject, since, due in rows
    ]


def _authority_report_items(
    app: Source, school: str | None, roles: frozenset[str], labels: _Labels, today: date | None
) -> list[WorkItem]:
    """A case's reports to the police or the education bureau still owed (未成年人保护法
    art. 39), in the queues of the school's safety leads and principals, one per authority;
    overdue past its due time (or, when `today` is asked for, its day)."""
    if school is None or not roles & {SAFETY_LEAD, PRINCIPAL}:
        return []
    a = case_reports.c
    query = select(a.stream_id, a.subject_id, a.since_day, a.due_at).where(a.school_id == school)
    with app.views.engine.connect() as conn:
        rows = conn.execute(query).all()
    labels.prefetch(row[1] for row in rows)
    now = app.now()
    out = []
    for sid, subject, since, due in rows:
        due_at = datetime.fromtimestamp(due, UTC) if due is not None else None
        if due_at is None:
            overdue = False
        elif today is not None:
            overdue = today > app.policy.local(due_at).date()
        else:
            overdue = now > due_at
        out.append(
            WorkItem(
                kind="authority_report",
                stream_id=sid,
                stream_kind="case",
                label_key=subject,
                label=labels(subject),
                due=app.policy.local(due_at).date() if due_at else None,
                overdue=overdue,
                since=from_ordinal(since),
                erased=labels.erased(subject),
                due_at=due_at,
            )
        )
    return out


class _Labels:
    """Student names for display, each resolved once per query (已删除 once erased)."""

    def __init__(self, app: Source, names: bool) -> None:
        self.app, self.names = app, names
        self.refs: dict[str, StudentRef] = {}

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
            self.refs[sid] = ref_of(sid, s)


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
    app.views.catch_up()
    day = today_of(app, today).toordinal()
    query = (
        select(_c.kind, func.count())
        .where(_c.school_id == school_id, _c.kind.is_not(None), _c.due_day < day)
        .group_by(_c.kind)
    )
    counts = dict.fromkeys(KINDS, 0)
    with app.views.engine.connect() as conn:
        counts.update({k: n for k, n in conn.execute(query)})
    return counts


def deadlines(app: Source, today: date, kinds: Iterable[str], soon_days: int) -> list[dict[str, Any]]:
    """Open items of `kinds` that fall due within `soon_days` or are overdue, for the
    notices the system raises about them (anxin.notify): ids, kinds and days only. Not a
    person's read (nothing is shown to anyone here), so no gate decision."""
    app.views.catch_up()
    day = today.toordinal()
    query = select(_c.kind, _c.stream_id, _c.school_id, _c.owner_id, _c.due_day).where(
        _c.kind.in_(list(kinds)), _c.due_day.is_not(None), _c.due_day <= day + soon_days
    )
    with app.views.engine.connect() as conn:
        rows = conn.execute(query).all()
    return [
        {
            "kind": k,
            "stream_id": sid,
            "school_id": school,
            "owner_id": owner,
            "due": date.fromordinal(due),
            "overdue": due < day,
        }
        for k, sid, school, owner, due in rows
    ]


def overdue_items(app: Source, today: date) -> list[dict[str, Any]]:
    """Every overdue item of the work queue (cases, files, pairings), with who must act on
    it (a person, or a role at a school, less who may not), for each person's daily digest
    (anxin.notify): ids, kinds and days only; no gate decision (nothing is shown here)."""
    app.views.catch_up()
    query = select(_c.kind, _c.stream_id, _c.school_id, _c.owner_id, _c.owner_role, _c.excluded_id, _c.due_day).where(
        _c.kind.is_not(None), _c.due_day.is_not(None), _c.due_day < today.toordinal()
    )
    with app.views.engine.connect() as conn:
        rows = conn.execute(query).all()
    return [
        {
            "kind": k,
            "label": KIND_LABELS.get(k, k),
            "stream_id": sid,
            "school_id": school,
            "owner_id": owner,
            "owner_role": role,
            "excluded_id": excluded,
            "due": date.fromordinal(due),
        }
        for k, sid, school, owner, role, excluded, due in rows
    ]


__all__ = [
    "overdue_items",
    "deadlines",
    "WorkItem",
    "WorkQueueView",
    "work_queue",
    "overdue_counts",
    "KINDS",
    "KIND_LABELS",
    "TASK_KINDS",
    "tasks",
    "SAFETY_LEAD",
    "PRINCIPAL",
    "items",
    "views",
]
