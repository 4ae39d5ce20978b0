"""What the read side needs of the application (`Source`), and a student as other
screens show them (`StudentRef`, resolved by `student_refs`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol
from uuid import UUID

from domain.roster import Student

if TYPE_CHECKING:
    from domain.access import Decision, Resource
    from domain.common import Actor
    from domain.policy import Policy


class Source(Protocol):
    """What the views need of the application that feeds them and that their queries read
    through. The application satisfies it; the read side never imports the application
    (dependencies point one way: the application composes the views)."""

    db: Any  # ids-only side tables (fetch, fetchone, fetch_in)
    keystore: Any  # per-stream keys (cipher_for_read, blind, preload, check_live, ensure_index_key)
    recorder: Any  # the event log (select_notifications, select_events, max_notification_id)
    mapper: Any  # stored events to domain events
    config: Any
    policy: Policy
    views: Any  # the runner of these views (catch_up, engine)

    @property
    def accounts(self) -> Any:
        """The staff directory (staff: a member's school and roles)."""

    def now(self) -> datetime: ...

    def authorize(self, actor: Actor, action: str, resource: Resource, break_glass: str | None = None) -> Decision: ...

    def check(
        self,
        actor: Actor,
        action: str,
        kind: str,
        stream_id: str | UUID | None = None,
        school_id: str | None = None,
        break_glass: str | None = None,
    ) -> Decision: ...

    def permits(
        self,
        actor: Actor,
        action: str,
        kind: str,
        stream_id: str | UUID | None = None,
        school_id: str | None = None,
        break_glass: str | None = None,
    ) -> bool:
        """Whether the gate would allow it, asked without recording (a part of a page the
        viewer did not ask for by name, left out if not)."""

    def resource(self, kind: str, stream_id: str | UUID | None = None, school_id: str | None = None) -> Resource: ...

    def student_ref(self, student_id: str) -> StudentRef: ...

    def schools(self) -> list[tuple[str, str, str]]: ...

    def record_security_event(
        self, kind: str, actor_id: str, subject: str = "", detail: str | dict[str, Any] = ""
    ) -> int | None: ...

    def quarantine_stream(self, stream_id: str, version: int) -> None: ...


@dataclass(frozen=True)
class StudentRef:
    """A student as other screens show them: a name, or 已删除 once erased."""

    id: str
    school_id: str | None
    class_name: str | None
    student_no: str | None
    name: str
    erased: bool = False
    unreadable: bool = False  # quarantined: its event or key failed authentication


def student_refs(app: Source, ids: list[str]) -> list[StudentRef]:
    """Names resolved now, from the student streams: loaded together where the
    application can (one query for all), else one by one; 已删除 once erased."""
    load_many = getattr(app, "_load_many", None)
    if load_many is None:
        return [app.student_ref(i) for i in ids]
    loaded = load_many([UUID(i) for i in ids], Student)
    return [ref_of(i, s) if (s := loaded.get(i)) is not None else app.student_ref(i) for i in ids]


def ref_of(student_id: str, student: Student) -> StudentRef:
    """A loaded student as other screens show them."""
    return StudentRef(student_id, student.school_id, student.class_name, student.student_no, student.name)
