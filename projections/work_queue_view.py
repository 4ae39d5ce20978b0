"""The view behind the work queue (待办事项): for each staff member, the open items they
answer for, each with its due date (whether it is overdue is decided when the queue is
read, in `projections.work_queue`, from `today`).

One row per case, file or pairing stream, holding the one item that stream has open
at a time (or none), who must act on it and when it is due:

| kind | stream | who | from → until | due |
| --- | --- | --- | --- | --- |
| `intake` | case | the school's safety leads | Reported / Reopened (v2: with `intake_due`) → InvestigationStarted | `intake_due` of that event |
| `investigation` | case | the handler (before one is named: the school's safety leads) | a v1 Reported / Reopened, InvestigationStarted (v2), appeal reopened → InvestigationCompleted | `investigation_due` of that event (a v1 start keeps the report's) |
| `determination` | case | the handler | InvestigationCompleted / DeterminationReturned → Determined | — |
| `approval` | case | the school's principals, except whoever recorded the determination | Determined → DeterminationApproved / DeterminationReturned | — |
| `follow_up` | case | the handler | an approved bullying determination → Closed / Reopened | `follow_up_due`, then each follow-up's `next_due` |
| `plan_review` | file | the responsible staff member | Opened / Reopened → Closed | `next_review_due` of the last event that set it |
| `check_in` | pairing | the paired staff member | Paired → Ended | last `held_on` (or the pairing day) + cadence |

Besides, a support file's tasks, in `v_file_tasks` (one row per file and task):

| task | who | from → until | due |
| --- | --- | --- | --- |
| `crisis` | every counselor of the school and the principal (the school's class teachers of the student's class see a status-only watch item) | CrisisOpened → CrisisConcluded / Closed | the earliest open step's due time (`s_<step>`, epoch seconds; a step's column is emptied when it is recorded) |
| `first_contact` | the file's responsible staff | FirstContactScheduled → SessionRecorded / CrisisRiskAssessed / Closed | `due` of that event |
| `person` | the file's one-to-one responsible person (一对一包联人) | ResponsiblePersonAssigned → the next one (moved) / Closed (kept without days, back at Reopened) | the file's `next_review_due` (moved with it) |

And a file's referrals to an agency waiting for their feedback (回执), in `v_file_referrals`
(one row per referral): owed by the file's responsible counselor (moved by a reassignment),
from ReferralSent until ReferralFeedbackReceived / ReferralClosed, due on the event's
`feedback_due`; while the file is closed `since_day` is NULL (no item), back at Reopened.

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

from datetime import date
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Index,
    Integer,
    String,
    Table,
    bindparam,
    case,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)

from domain.bullying import BullyingCase
from domain.pairing import Pairing
from domain.support import SupportFile
from projections.base import ErasedEvent, View, WriteBehind, metadata, own_fold, stream_id_of
from projections.days import ordinal, ordinal_or_none

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

# The steps of a crisis that run on a clock, each its own column (see the module's docstring).
CRISIS_CLOCKS = (
    "assessed",
    "guardian_informed",
    "guardian_response",
    "supervision",
    "handed_over",
    "referral",
    "feedback",
)
tasks = Table(
    "v_file_tasks",
    metadata,
    Column("stream_id", String(36), primary_key=True),  # the support file
    Column("task", String(16), primary_key=True),  # crisis | first_contact | person
    Column("school_id", String(36), nullable=False),
    Column("subject_id", String(36)),  # the student
    Column("owner_id", String(36)),  # first_contact: the responsible; person: 包联人; crisis: NULL (counselors)
    Column("since_day", Integer),  # person: NULL while the file is closed (no item)
    Column("due_day", Integer),  # first_contact's day; person: the plan's next review
    *(Column(f"s_{step}", BigInteger) for step in CRISIS_CLOCKS),  # a crisis step's due (epoch s), NULL once done
    Index("v_file_tasks_school", "school_id", "task"),
    Index("v_file_tasks_owner", "owner_id"),
)
_t = tasks.c
referrals = Table(
    "v_file_referrals",
    metadata,
    Column("stream_id", String(36), primary_key=True),  # the support file
    Column("entry_id", String(36), primary_key=True),  # the referral
    Column("school_id", String(36), nullable=False),
    Column("subject_id", String(36)),
    Column("owner_id", String(36)),  # the file's responsible counselor
    Column("since_day", Integer),  # NULL while the file is closed
    Column("due_day", Integer),  # the feedback's due day
    Index("v_file_referrals_owner", "owner_id"),
)
_r = referrals.c
# A case's reports to the authorities still owed (未成年人保护法 art. 39), one row per authority
# (police | bureau): the school's safety leads and principals answer for them, from
# AuthorityReportsDue until the AuthorityReportMade to that authority (or the case closes),
# due at the event's `due_at` (epoch seconds: a deadline in hours).
case_reports = Table(
    "v_case_authority_reports",
    metadata,
    Column("stream_id", String(36), primary_key=True),  # the case
    Column("authority", String(16), primary_key=True),
    Column("school_id", String(36), nullable=False),
    Column("subject_id", String(36)),
    Column("since_day", Integer),
    Column("due_at", BigInteger),
    Index("v_case_authority_reports_school", "school_id"),
)
_a = case_reports.c

_c = items.c
_by_id = _c.stream_id == bindparam("b_id")

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

_delete_item = delete(items).where(_by_id)


def _opening_kind(e: Any) -> str:
    """What a report or a reopening opens: the start of the investigation (`intake`), or, for
    one recorded before the clock started at the investigation (v1), the investigation."""
    return "investigation" if e.investigation_due is not None else "intake"


def _opening_due(e: Any) -> date | None:
    return e.investigation_due if e.investigation_due is not None else e.intake_due


def _epoch(at: Any) -> int | None:
    return int(at.timestamp()) if at is not None else None


class WorkQueueView(WriteBehind, View):
    name = "work_queue"
    tables = (items, tasks, referrals, case_reports)

    fold = own_fold()

    @staticmethod
    def _set(conn: Connection, e: Any, **values: Any) -> None:
        """Set columns of the event's stream's row."""
        conn.execute(update(items).where(_by_id).values(**values), {"b_id": str(e.originator_id)})

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
                kind=_opening_kind(e),
                owner_id=None,
                owner_role=SAFETY_LEAD,
                since_day=ordinal_or_none(e.at.date()),
                due_day=ordinal_or_none(_opening_due(e)),
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
        if e.investigation_due is None:  # v1: the due date of the report stands
            self._set(conn, e, handler_id=e.handler_id, owner_id=e.handler_id)
        else:
            self._set(
                conn,
                e,
                handler_id=e.handler_id,
                owner_id=e.handler_id,
                kind="investigation",
                since_day=ordinal_or_none(e.at.date()),
                due_day=ordinal_or_none(e.investigation_due),
            )

    @fold.register(BullyingCase.InvestigationCompleted)
    @fold.register(BullyingCase.DeterminationReturned)
    def _awaiting_determination(self, e: Any, conn: Connection, position: int) -> None:
        conn.execute(
            _set_handler_item,
            {
                "b_id": str(e.originator_id),
                "b_kind": "determination",
                "b_since": ordinal_or_none(e.at.date()),
                "b_due": None,
            },
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
                "b_since": ordinal_or_none(e.at.date()),
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
                    "b_since": ordinal_or_none(e.at.date()),
                    "b_due": ordinal_or_none(e.investigation_due),
                },
            )

    @fold.register(BullyingCase.Reopened)
    def _case_reopened(self, e: Any, conn: Connection, position: int) -> None:
        self._set(
            conn,
            e,
            handler_id=None,
            kind=_opening_kind(e),
            owner_id=None,
            owner_role=SAFETY_LEAD,
            excluded_id=None,
            since_day=ordinal_or_none(e.at.date()),
            due_day=ordinal_or_none(_opening_due(e)),
        )

    @staticmethod
    def _follow_up(conn: Connection, sid: str, due: date | None, since: date) -> None:
        """A bullying determination in force: follow-ups fall due; otherwise nothing is open."""
        if due is None:
            conn.execute(_no_item, {"b_id": sid})
        else:
            conn.execute(
                _set_handler_item,
                {"b_id": sid, "b_kind": "follow_up", "b_since": ordinal_or_none(since), "b_due": ordinal_or_none(due)},
            )

    # -- remedies (issue 17, part C): reports to the authorities -----------------------------
    @fold.register(BullyingCase.AuthorityReportsDue)
    def _reports_due(self, e: Any, conn: Connection, position: int) -> None:
        sid = str(e.originator_id)
        row = conn.execute(select(_c.school_id, _c.subject_id).where(_c.stream_id == sid)).first()
        if row is None:
            return
        for authority in e.authorities:
            conn.execute(
                insert(case_reports).values(
                    stream_id=sid,
                    authority=authority,
                    school_id=row[0],
                    subject_id=row[1],
                    since_day=ordinal(e.at),
                    due_at=_epoch(e.due_at),
                )
            )

    @fold.register(BullyingCase.AuthorityReportMade)
    def _report_made(self, e: Any, conn: Connection, position: int) -> None:
        conn.execute(delete(case_reports).where(_a.stream_id == str(e.originator_id), _a.authority == e.authority))

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
                since_day=ordinal_or_none(e.at.date()),
                due_day=ordinal_or_none(e.next_review_due),
            ),
            position,
        )

    @fold.register(SupportFile.RiskLevelRaised)
    @fold.register(SupportFile.RiskLevelLowered)
    def _level_changed(self, e: Any, conn: Connection, position: int) -> None:
        self._set(conn, e, due_day=ordinal_or_none(e.next_review_due))
        self._person_due(conn, e, e.next_review_due)

    @fold.register(SupportFile.PlanReviewed)
    def _reviewed(self, e: Any, conn: Connection, position: int) -> None:
        self._set(conn, e, since_day=ordinal_or_none(e.reviewed_on), due_day=ordinal_or_none(e.next_review_due))
        self._person_due(conn, e, e.next_review_due)

    @staticmethod
    def _person_due(conn: Connection, e: Any, due: date | None, **values: Any) -> None:
        """The one-to-one responsible person's item follows the plan's next review."""
        conn.execute(
            update(tasks)
            .where(_t.stream_id == str(e.originator_id), _t.task == "person")
            .values(due_day=ordinal_or_none(due), **values)
        )

    @fold.register(SupportFile.ResponsiblePersonAssigned)
    def _person_assigned(self, e: Any, conn: Connection, position: int) -> None:
        sid = str(e.originator_id)
        row = conn.execute(select(_c.school_id, _c.subject_id, _c.due_day).where(_c.stream_id == sid)).first()
        assert row is not None, "a file's person before its Opened"
        self._drop_task(conn, e, "person")
        conn.execute(
            insert(tasks).values(
                stream_id=sid,
                task="person",
                school_id=row[0],
                subject_id=row[1],
                owner_id=e.person_id,
                since_day=ordinal(e.at),
                due_day=row[2],
            )
        )

    @fold.register(SupportFile.ReferralSent)
    def _referral_sent(self, e: Any, conn: Connection, position: int) -> None:
        school, subject, responsible = self._file_row(conn, e)
        conn.execute(
            insert(referrals).values(
                stream_id=str(e.originator_id),
                entry_id=e.entry_id,
                school_id=school,
                subject_id=subject,
                owner_id=responsible,
                since_day=ordinal(e.referred_on),
                due_day=ordinal(e.feedback_due),
            )
        )

    @fold.register(SupportFile.ReferralFeedbackReceived)
    @fold.register(SupportFile.ReferralClosed)
    def _referral_done(self, e: Any, conn: Connection, position: int) -> None:
        conn.execute(delete(referrals).where(_r.stream_id == str(e.originator_id), _r.entry_id == e.entry_id))

    @fold.register(SupportFile.ResponsibleReassigned)
    def _reassigned(self, e: Any, conn: Connection, position: int) -> None:
        # The file is open (reassigning a closed file is refused), so its item moves too.
        self._set(conn, e, handler_id=e.to_id, owner_id=e.to_id)
        conn.execute(update(referrals).where(_r.stream_id == str(e.originator_id)).values(owner_id=e.to_id))
        conn.execute(
            update(tasks)
            .where(_t.stream_id == str(e.originator_id), _t.task == "first_contact")
            .values(owner_id=e.to_id)
        )

    @fold.register(BullyingCase.Closed)
    @fold.register(BullyingCase.ClueDismissed)
    def _closed(self, e: Any, conn: Connection, position: int) -> None:
        conn.execute(_no_item, {"b_id": str(e.originator_id)})
        conn.execute(delete(case_reports).where(_a.stream_id == str(e.originator_id)))

    @fold.register(SupportFile.Closed)
    def _file_closed(self, e: Any, conn: Connection, position: int) -> None:
        conn.execute(_no_item, {"b_id": str(e.originator_id)})
        conn.execute(delete(tasks).where(_t.stream_id == str(e.originator_id), _t.task != "person"))
        self._person_due(conn, e, None, since_day=None)  # the person stays named, with nothing due
        conn.execute(update(referrals).where(_r.stream_id == str(e.originator_id)).values(since_day=None))

    # -- a file's tasks: the crisis pathway, the first contact -------------------------------
    def _file_row(self, conn: Connection, e: Any) -> tuple[str, str | None, str | None]:
        """(school, student, responsible) of the event's file, from its item row."""
        row = conn.execute(
            select(_c.school_id, _c.subject_id, _c.handler_id).where(_c.stream_id == str(e.originator_id))
        ).first()
        assert row is not None, "a file's task before its Opened"
        return row[0], row[1], row[2]

    def _task_done(self, conn: Connection, e: Any, *steps: str) -> None:
        conn.execute(
            update(tasks)
            .where(_t.stream_id == str(e.originator_id), _t.task == "crisis")
            .values(**dict.fromkeys((f"s_{s}" for s in steps), None))
        )

    def _drop_task(self, conn: Connection, e: Any, task: str) -> None:
        conn.execute(delete(tasks).where(_t.stream_id == str(e.originator_id), _t.task == task))

    @fold.register(SupportFile.CrisisOpened)
    def _crisis_opened(self, e: Any, conn: Connection, position: int) -> None:
        school, subject, _ = self._file_row(conn, e)
        conn.execute(
            insert(tasks).values(
                stream_id=str(e.originator_id),
                task="crisis",
                school_id=school,
                subject_id=subject,
                owner_id=None,
                since_day=ordinal(e.at),
                due_day=None,
                **{f"s_{step}": _epoch(e.due.get(step)) for step in CRISIS_CLOCKS},
            )
        )

    @fold.register(SupportFile.CrisisRiskAssessed)
    def _crisis_assessed(self, e: Any, conn: Connection, position: int) -> None:
        self._task_done(conn, e, "assessed")
        self._drop_task(conn, e, "first_contact")

    @fold.register(SupportFile.CrisisGuardianInformed)
    def _guardian_informed(self, e: Any, conn: Connection, position: int) -> None:
        if e.response == "pending":
            self._task_done(conn, e, "guardian_informed")
        else:
            self._task_done(conn, e, "guardian_informed", "guardian_response")

    @fold.register(SupportFile.CrisisGuardianResponded)
    def _guardian_responded(self, e: Any, conn: Connection, position: int) -> None:
        self._task_done(conn, e, "guardian_response")

    @fold.register(SupportFile.CrisisSupervisionArranged)
    def _supervision(self, e: Any, conn: Connection, position: int) -> None:
        self._task_done(conn, e, "supervision")

    @fold.register(SupportFile.CrisisHandedOver)
    def _handed_over(self, e: Any, conn: Connection, position: int) -> None:
        self._task_done(conn, e, "handed_over")

    @fold.register(SupportFile.CrisisReferralMade)
    def _crisis_referred(self, e: Any, conn: Connection, position: int) -> None:
        conn.execute(
            update(tasks)
            .where(_t.stream_id == str(e.originator_id), _t.task == "crisis")
            .values(s_referral=None, s_feedback=_epoch(e.feedback_due))
        )

    @fold.register(SupportFile.CrisisReferralFeedbackReceived)
    def _feedback(self, e: Any, conn: Connection, position: int) -> None:
        self._task_done(conn, e, "feedback")

    @fold.register(SupportFile.CrisisConcluded)
    def _crisis_concluded(self, e: Any, conn: Connection, position: int) -> None:
        self._drop_task(conn, e, "crisis")

    @fold.register(SupportFile.FirstContactScheduled)
    def _first_contact(self, e: Any, conn: Connection, position: int) -> None:
        school, subject, responsible = self._file_row(conn, e)
        conn.execute(
            insert(tasks).values(
                stream_id=str(e.originator_id),
                task="first_contact",
                school_id=school,
                subject_id=subject,
                owner_id=responsible,
                since_day=ordinal(e.at),
                due_day=ordinal(e.due),
            )
        )

    @fold.register(SupportFile.SessionRecorded)
    def _session(self, e: Any, conn: Connection, position: int) -> None:
        self._drop_task(conn, e, "first_contact")

    @fold.register(SupportFile.Reopened)
    def _file_reopened(self, e: Any, conn: Connection, position: int) -> None:
        self._set(
            conn,
            e,
            kind="plan_review",
            owner_id=_c.handler_id,
            since_day=ordinal_or_none(e.at.date()),
            due_day=ordinal_or_none(e.next_review_due),
        )
        self._person_due(conn, e, e.next_review_due, since_day=ordinal(e.at))
        conn.execute(update(referrals).where(_r.stream_id == str(e.originator_id)).values(since_day=ordinal(e.at)))

    # -- pairings ------------------------------------------------------------------------
    @fold.register(Pairing.Paired)
    def _paired(self, e: Any, conn: Connection, position: int) -> None:
        paired = ordinal(e.at.date())
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
        day = ordinal_or_none(e.held_on)
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
        conn.execute(_delete_item, {"b_id": str(e.originator_id)})

    # -- erasure -------------------------------------------------------------------------
    @fold.register(ErasedEvent)
    def _erased(self, e: ErasedEvent, conn: Connection, position: int) -> None:
        if e.topic.startswith(TRACKED_TOPICS):
            conn.execute(_delete_item, {"b_id": str(e.originator_id)})
            conn.execute(delete(tasks).where(_t.stream_id == str(e.originator_id)))
            conn.execute(delete(referrals).where(_r.stream_id == str(e.originator_id)))
            conn.execute(delete(case_reports).where(_a.stream_id == str(e.originator_id)))

    def erase(self, conn: Connection, stream_id: str) -> None:
        conn.execute(delete(case_reports).where(_a.stream_id == str(stream_id)))
        conn.execute(_delete_item, {"b_id": str(stream_id)})
        conn.execute(delete(tasks).where(_t.stream_id == str(stream_id)))
        conn.execute(delete(referrals).where(_r.stream_id == str(stream_id)))


def views(app: Any) -> list[View]:
    return [WorkQueueView(app)]
