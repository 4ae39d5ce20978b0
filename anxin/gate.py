"""The gate: the one place access is decided (by `domain.access.decide`, from what the
directory knows of a stream: ids only) and every decision is recorded in the audit trail.

One `Gate` per application (`Core.gate`). Every command and every read of case or student
content asks it first (`check`, or `authorize` with a `Resource` it described itself).
A command's decisions are not written on their own: inside `deferred_decisions` they
collect in `deferred_access`, and `Core.commit` writes them in the transaction of the
command's events (or, if nothing is saved, they are recorded together as the block ends).
"""

from __future__ import annotations

import contextvars
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Concatenate, Generic, ParamSpec, TypeVar
from uuid import UUID

from anxin import audit
from domain.access import Decision, Resource, decide
from domain.break_glass import SAMPLE_REASON
from domain.common import Actor, DomainError, NotFound, PermissionDenied, Role

if TYPE_CHECKING:
    from anxin.core import Core

# Inside `deferred_decisions`: the gate's decisions (and security events), to be recorded
# with the command's save (`Core.commit`, `Accounts._commit`) or together as the block ends.
deferred_access: contextvars.ContextVar[list[Any] | None] = contextvars.ContextVar(
    "anxin_deferred_access", default=None
)


P = ParamSpec("P")
R = TypeVar("R")


class AskTheGate(Generic[P, R]):
    """A question of the gate asked of the core (`core.check(...)` is `core.gate.check(...)`),
    with the gate method's own signature: `check = AskTheGate(Gate.check)` in `Core`."""

    def __init__(self, method: Callable[Concatenate[Gate, P], R]) -> None:
        self.name = method.__name__

    def __get__(self, core: Core | None, owner: type | None = None) -> Callable[P, R]:
        if core is None:  # (asked of the class)
            return self  # type: ignore[return-value]
        return getattr(core.gate, self.name)  # type: ignore[no-any-return]


class DecisionsDropped(Exception):
    """Raised through `deferred_decisions` by an attempt that will run again (a command
    that lost a version race, see `anxin.core.retried_on_race`): its decisions are dropped,
    since the next attempt decides again."""


class Gate:
    """Describes a stream for the rule, asks the rule, records the answer."""

    def __init__(self, core: Core) -> None:
        self.core = core
        self._districts: dict[str, str] = {}  # a school never changes district

    def resource(self, kind: str, stream_id: str | UUID | None = None, school_id: str | None = None) -> Resource:
        """What the gate needs about a stream, from the directory (ids only)."""
        if stream_id is None:
            return Resource(kind=kind, school_id=school_id, district=self.district_of(school_id))
        sid = str(stream_id)
        # The stream's row, with one more row per student it involves (their classes): one query.
        rows = self.core.db.fetch(
            "SELECT d.kind, d.school_id, d.class_name, d.owner_id, d.erased, s.class_name AS party_class "
            "FROM {t}anxin_directory d LEFT JOIN {t}anxin_links l ON l.stream_id = d.stream_id "
            "LEFT JOIN {t}anxin_directory s ON s.stream_id = l.student_id WHERE d.stream_id = ?",
            (sid,),
        )
        if not rows:
            raise NotFound()
        row = rows[0]
        classes = {row[2]} if row[0] == "student" and row[2] else set()
        classes |= {r[5] for r in rows if r[5]}
        staff: frozenset[tuple[str, str]] = frozenset()
        if row[0] == "file":  # who else has a part on a support file (the escalating teacher, 包联人)
            staff = frozenset(
                (str(p), str(s))
                for p, s in self.core.db.fetch(
                    "SELECT part, staff_id FROM {t}anxin_stream_staff WHERE stream_id = ?", (sid,)
                )
            )
        return Resource(
            kind=row[0],
            id=sid,
            school_id=row[1],
            classes=frozenset(classes),
            owner_id=row[3],
            district=self.district_of(row[1]),
            staff=staff,
        )

    def district_of(self, school_id: str | None) -> str:
        """A school's district (kept once read)."""
        if school_id is None:
            return "default"
        found = self._districts.get(school_id)
        if found is None:
            row = self.core.db.fetchone("SELECT district FROM {t}anxin_schools WHERE school_id = ?", (school_id,))
            if row is None:
                return "default"
            found = self._districts[school_id] = row[0]
        return found

    def actor(self, staff_id: str) -> Actor:
        """The acting person as the gate sees them (ids and roles, from the directory)."""
        row = self.core.db.fetchone(
            "SELECT staff_id, school_id, roles, classes, district, active FROM {t}anxin_staff WHERE staff_id = ?",
            (staff_id,),
        )
        if row is None or not row[5]:
            raise PermissionDenied(reason="账号不存在或已停用")
        return Actor(
            staff_id=row[0],
            school_id=row[1],
            roles=frozenset(Role(r) for r in row[2].split(",") if r),
            classes=frozenset(json.loads(row[3])),
            district=row[4],
        )

    def authorize(
        self,
        actor: Actor,
        action: str,
        resource: Resource,
        break_glass: str | None = None,
        *,
        stated_reason: str | None = None,
    ) -> Decision:
        """The one place access is decided; every decision is recorded. `stated_reason`: a
        reason the rule does not ask for but the person gave (a supervisor's audit lookup),
        kept sealed with an allowed decision as a break-glass reason is."""
        decision = decide(actor, action, resource, break_glass)
        sealed = break_glass if decision.break_glass else (stated_reason or None) if decision.allowed else None
        self.record_access(actor, action, resource, decision, sealed)
        if not decision.allowed:
            raise PermissionDenied(reason=decision.reason)
        return decision

    def check(
        self,
        actor: Actor,
        action: str,
        kind: str,
        stream_id: str | UUID | None = None,
        school_id: str | None = None,
        break_glass: str | None = None,
        *,
        stated_reason: str | None = None,
    ) -> Decision:
        """`authorize` on the stream (or the school) as the directory describes it."""
        return self.authorize(
            actor, action, self.resource(kind, stream_id, school_id), break_glass, stated_reason=stated_reason
        )

    def permits(
        self,
        actor: Actor,
        action: str,
        kind: str,
        stream_id: str | UUID | None = None,
        school_id: str | None = None,
        break_glass: str | None = None,
    ) -> bool:
        """Whether the gate would allow this, asked without recording a decision: for a part
        of a page the viewer did not ask for by name (a student's screening on their
        timeline), which the page leaves out if not allowed. A refusal in the audit trail
        means somebody asked for something and was refused, so what a page quietly leaves
        out records nothing; what it does show is read through `authorize`/`check`, which
        records the allowed decision. False for a stream the directory does not know."""
        try:
            resource = self.resource(kind, stream_id, school_id)
        except DomainError:
            return False
        return decide(actor, action, resource, break_glass).allowed

    def needs_reason(self, actor: Actor, action: str, kind: str, stream_id: str | UUID) -> bool:
        """Whether the gate would allow this read only with a stated reason (break-glass):
        the rule is asked without recording a decision, so a page can show the reason form
        before anything is read. The read itself still passes `authorize`."""
        try:
            resource = self.resource(kind, stream_id)
        except DomainError:
            return False
        return (
            not decide(actor, action, resource).allowed and decide(actor, action, resource, SAMPLE_REASON).break_glass
        )

    @contextmanager
    def deferred_decisions(self, own: bool) -> Iterator[None]:
        """Collect the gate's decisions made inside (`authorize` appends them) and record
        whatever a save has not already written, in one transaction, as the block ends.
        `own`: a scope of its own even inside another (a command's decisions go with its
        save); otherwise an enclosing scope, if any, takes them."""
        if not own and deferred_access.get() is not None:
            yield
            return
        rows: list[Any] = []
        token = deferred_access.set(rows)
        try:
            yield
        except DecisionsDropped:
            rows.clear()  # the command runs again and decides again (retried_on_race)
            raise
        finally:
            deferred_access.reset(token)
            if rows:  # not written by a save
                audit.record_many(self.core, rows)

    def record_access(
        self, actor: Actor, action: str, resource: Resource, decision: Decision, break_glass: str | None
    ) -> None:
        """An `access` entry of the audit trail (anxin.audit). The stated reason is
        free text: it is kept encrypted under the opened stream's key, bound to its entry."""
        row = audit.access_row(self.core, actor, action, resource, decision, break_glass)
        deferred = deferred_access.get()
        if deferred is not None:
            deferred.append(row)  # written with the command's save (see Core.editing)
        else:
            audit.record(self.core, row)

    def record_security_event(
        self, kind: str, actor_id: str, subject: str = "", detail: str | dict[str, Any] = ""
    ) -> int | None:
        """A login, login_failed, logout, export, report, shred or key_rotation entry of the
        audit trail: ids and codes only (a login name via `audit.login_subject`). Its seq;
        None inside a block that records the gate's decisions together (`decisions_together`,
        a command), where it is written with them, in order, as that block ends."""
        row = audit.security_row(self.core, kind, actor_id, subject, detail)
        deferred = deferred_access.get()
        if deferred is not None:
            deferred.append(row)
            return None
        return audit.record(self.core, row)

    def access_log(self, actor: Actor, *, allowed: bool | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        """Access decisions, newest first (for supervisors; itself an audited read, by
        access.AUDIT_READ): the audit trail's access entries about the district's schools
        or by its people."""
        return audit.access_log(self.core, actor, allowed=allowed, limit=limit)
