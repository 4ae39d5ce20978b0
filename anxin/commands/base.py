"""What the commands of every area share: `Commands`, the base of each area's class
(given the core: composition), and the checks more than one area makes."""

from __future__ import annotations

from collections.abc import Callable, Collection
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID, uuid4

from anxin.races import retry_plain_appends
from domain import access
from domain.access import Resource
from domain.common import Actor, DomainError, NotFound, Role

if TYPE_CHECKING:
    from anxin.core import Core
    from domain.policy import Policy


class ResponsibleStaffInvalid(DomainError):
    code = "responsible_staff_invalid"
    message = "一对一负责人须为本校在岗的心理老师或校长"


class ResponsiblePersonInvalid(DomainError):
    code = "responsible_person_invalid"
    message = "一对一包联人须为本校在岗的教职工"


def check_person(core: Core, school_id: str, staff_id: str) -> None:
    """A support file's one-to-one responsible person (一对一包联人): any active staff member
    of the school with a school role (not an administrator or a supervisor)."""
    staff = core.accounts.staff(staff_id)
    if (
        staff is None
        or staff.school_id != school_id
        or not staff.active
        or not set(staff.roles) & {r.value for r in access.SCHOOL_STAFF_ROLES}
        or Role.ADMINISTRATOR.value in staff.roles
    ):
        raise ResponsiblePersonInvalid()


class Commands:
    """The commands of one area. Each passes the gate first (through the core) and saves
    through the core, so that the gate's decisions go in the transaction of the command's
    events. Every public command that takes `expected_version` is run again when a plain
    append loses a version race (anxin.races)."""

    def __init__(self, core: Core) -> None:
        self.core = core

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        retry_plain_appends(cls)

    @property
    def db(self) -> Any:
        return self.core.db

    @property
    def policy(self) -> Policy:
        return self.core.policy

    def now(self) -> datetime:
        return self.core.now()

    def _entry(
        self,
        editing: AbstractContextManager[Any],
        record: Callable[..., Any],
        id_field: str,
        actor: Actor,
        at: datetime | None = None,
        **fields: Any,
    ) -> str:
        """A new entry of a stream (a statement, a session, a measure): its new id, given
        as `id_field` to `record` (the aggregate's method) with the fields, by the actor, at
        `at` (default: the time once the stream is loaded)."""
        entry_id = uuid4().hex
        with editing as agg:
            record(agg, **{id_field: entry_id}, **fields, actor=actor.staff_id, at=at or self.now())
        return entry_id


@dataclass(frozen=True)
class HistoryEntry:
    """One event of a record's history as a printed case file (案卷) lists it: when, who,
    what (the event's type, which the page puts in words), and the reason it gives, if any."""

    at: datetime | None
    actor: str
    type: str
    reason: str


def stream_history(core: Core, stream_id: str, types: Collection[str] | None = None) -> list[HistoryEntry]:
    """Every event of one stream in order (only those of `types` when given). For a caller
    that has already passed the gate for the stream's content: this reads, it decides nothing."""
    out = []
    for e in core.repository.event_store.get(UUID(str(stream_id))):
        kind = type(e).__name__
        if types is not None and kind not in types:
            continue
        reason = getattr(e, "reason", None)
        out.append(
            HistoryEntry(
                at=getattr(e, "at", None) or getattr(e, "timestamp", None),
                actor=str(getattr(e, "actor", "") or ""),
                type=kind,
                reason=reason if isinstance(reason, str) else "",
            )
        )
    return out


def student_resource(core: Core, student_id: str) -> Resource:
    """The gate's description of a student's own stream (NotFound for any other kind)."""
    res = core.resource("student", student_id)
    if res.kind != "student":
        raise NotFound()
    return res


def authorize_new_file(core: Core, actor: Actor, student: Resource) -> None:
    """The gate's FILE_OPEN for a new support file of this student."""
    core.authorize(
        actor,
        access.FILE_OPEN,
        Resource(kind="file", school_id=student.school_id, classes=student.classes, district=student.district),
    )


def check_responsible(core: Core, school_id: str, staff_id: str) -> None:
    """A support file's one-to-one responsible person: a counselor or the principal,
    active, of the school."""
    staff = core.accounts.staff(staff_id)
    if (
        staff is None
        or staff.school_id != school_id
        or not staff.active
        or not set(staff.roles) & {Role.COUNSELOR.value, Role.PRINCIPAL.value}
    ):
        raise ResponsibleStaffInvalid()
