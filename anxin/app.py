"""The application: every command and every read of case or student content goes
through here, and through the gate (`authorize`), which decides by role and scope
and records the decision. Routes and the CLI never reach the store directly.

Command methods load a stream, check the actor's right to it, call the aggregate
(which checks the domain rules) and save. A refused command changes nothing.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import json
import os
import random
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from typing import Any, TypeVar
from uuid import UUID, uuid4
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cryptography.exceptions import InvalidTag
from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.persistence import (
    IntegrityError,
    JSONTranscoder,
    RecordConflictError,
    Transcoding,
)

from anxin import audit, quarantine
from anxin.crypto import KeyStore, MasterKey, StreamErased, StreamMapper, Tampered, stream_key
from anxin.quarantine import UNREADABLE_LABEL, Unreadable
from anxin.storage import (
    Database,
    StoreConfig,
    opening,
)
from domain import access
from domain.access import Decision, Resource, decide
from domain.common import (
    ERASED_LABEL,
    SYSTEM,
    Actor,
    CaseAggregate,
    Conflict,
    DomainError,
    Erased,
    InvalidInput,
    NotFound,
    PermissionDenied,
    Role,
    Scope,
    require,
    require_text,
)
from domain.pairing import Pairing
from domain.policy import Policy
from domain.roster import Staff, Student
from projections.base import StudentRef

A = TypeVar("A", bound=CaseAggregate)


class DateAsISO(Transcoding):
    type = date
    name = "date_iso"

    def encode(self, obj: date) -> str:
        return obj.isoformat()

    def decode(self, data: str) -> date:
        return date.fromisoformat(data)


class SetAsList(Transcoding):
    type = set
    name = "set"

    def encode(self, obj: set[Any]) -> list[Any]:
        return sorted(obj)

    def decode(self, data: list[Any]) -> set[Any]:
        return set(data)


def utcnow() -> datetime:
    return datetime.now(UTC)


def school_clock(timezone: str) -> Callable[[], datetime]:
    """The current time on the schools' wall clock (an aware datetime in that zone)."""
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(reason=f"未知的时区：{timezone}") from None
    return lambda: datetime.now(zone)


KIND_LABELS = {
    "student": "学生",
    "case": "欺凌案件",
    "file": "心理档案",
    "pairing": "一岗双带结对",
    "staff": "教职工账号",
    "screening": "心理筛查记录",
}
# A student's own streams: about them alone, so erased with them. A bullying case is the
# school's record of an incident among several people: it stays (see Erasure.kept).
OWN_KINDS = ("pairing", "file", "screening")
SHARED_REMAINS = (
    "案件中该生的当事人身份（如被欺凌学生）和学生编号仍在；其陈述、针对其的干预和家长通知，"
    "以及案件文字中写到的姓名，仍可由有权查看该案件的人读到；显示其姓名之处改为“已删除”"
)


@dataclass(frozen=True)
class ErasureItem:
    """One stream in an erasure: its id, kind and status (from the directory), and for a
    stream shared with other students, the erased student's part(s) in it."""

    stream_id: str
    kind: str
    status: str | None = None
    parts: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return KIND_LABELS.get(self.kind, self.kind)


@dataclass(frozen=True)
class Erasure:
    """What shredding a stream destroys and what it leaves: for a student, their own
    stream and every stream about them alone (`destroyed`, the student first), and the
    streams shared with other students that stay readable (`kept`: bullying cases)."""

    stream_id: str
    kind: str
    school_id: str | None
    class_name: str | None
    erased: bool  # the stream itself was erased before
    destroyed: tuple[ErasureItem, ...]
    kept: tuple[ErasureItem, ...] = ()

    @property
    def label(self) -> str:
        return KIND_LABELS.get(self.kind, self.kind)


# Inside `Core._editing(check=...)`: the gate's decisions, to be recorded with the save.
deferred_access: contextvars.ContextVar[list[Any] | None] = contextvars.ContextVar(
    "anxin_deferred_access", default=None
)
# Inside a command that `retried_on_race` runs: whether a lost version race may be retried.
race_retry: contextvars.ContextVar[_RaceRetry | None] = contextvars.ContextVar("anxin_race_retry", default=None)
# During `Core.after_save`: the events the save wrote, as (notification id, domain event).
just_saved: contextvars.ContextVar[Sequence[tuple[int, Any]]] = contextvars.ContextVar("anxin_just_saved", default=())
AUDIT_NOTES = audit.AUDIT_NOTES


def project(aggregate: Any, events: Iterable[Any]) -> Any:
    """The library's `project_aggregate` without its per-event `isinstance` against a
    runtime Protocol (slow on Python 3.11): every stored event here is an aggregate event."""
    for e in events:
        aggregate = e.mutate(aggregate)
    return aggregate


class _RaceLost(Conflict):
    """A plain append lost a version race to another writer and is about to be run again
    on the stream's fresh state (only ever raised inside `retried_on_race`)."""


@dataclass
class _RaceRetry:
    again: bool  # another attempt follows if this one loses a race
    saved: bool = False  # this attempt committed a save: running it again would repeat that


# Each lost race means another writer's save went in, so the stream moves on; with many
# writers at once a writer may still lose several times running (six writers: about one
# command in six loses ten in a row without backoff), hence a generous bound and a
# growing, jittered wait.
RACE_ATTEMPTS = 20


def retried_on_race(fn: Callable[..., Any]) -> Callable[..., Any]:
    """A command that takes `expected_version`. Called without one (a plain append: a
    check-in, a note, a session), it is run again on the stream's fresh state when another
    writer saved the same stream between its load and its save, up to RACE_ATTEMPTS times,
    rather than refused with a conflict the person did not cause. With `expected_version`,
    the person edited what a page showed them: a race is a real conflict, refused at once.
    Each attempt's gate decisions are recorded with its save, or on their own if it fails;
    those of an attempt that lost a race are dropped with it (the next attempt decides
    again), so the trail holds one decision per saved command. Applied by `Core` to every
    public command that has `expected_version`; nested commands leave it to the outermost."""
    index = list(inspect.signature(fn).parameters).index("expected_version") - 1  # after self

    @functools.wraps(fn)
    def run(self: Core, *args: Any, **kwargs: Any) -> Any:
        if race_retry.get() is not None:  # inside another command: that one retries
            return fn(self, *args, **kwargs)
        expected = kwargs.get("expected_version", args[index] if len(args) > index else None)
        attempts = 1 if expected is not None else RACE_ATTEMPTS
        for attempt in range(attempts):
            token = race_retry.set(_RaceRetry(again=attempt < attempts - 1))
            try:
                with self._deferred_decisions(own=True):
                    return fn(self, *args, **kwargs)
            except _RaceLost:
                # Someone else's save won: wait a moment (jittered, so racers spread out).
                time.sleep(random.uniform(0, min(0.2, 0.002 * 2**attempt)))
            finally:
                race_retry.reset(token)
        raise AssertionError("unreachable: the last attempt raises Conflict, never _RaceLost")

    run.retried_on_race = True  # type: ignore[attr-defined]
    return run


def _retry_plain_appends(cls: type) -> None:
    for name, fn in list(vars(cls).items()):
        if (
            not name.startswith("_")
            and inspect.isfunction(fn)
            and not getattr(fn, "retried_on_race", False)
            and "expected_version" in inspect.signature(fn).parameters
        ):
            setattr(cls, name, retried_on_race(fn))


class Core(Application[UUID]):
    """Storage, keys, the gate, the roster, accounts and pairings. The bullying and
    support-file commands are mixed in by `Anxin` below."""

    name = "anxin"
    is_snapshotting_enabled = True
    # A snapshot every 10 versions: a command replays at most 9 events after it.
    SNAPSHOT_EVERY = 10

    def __init__(
        self,
        config: StoreConfig,
        master_keys: list[MasterKey],
        policy: Policy | None = None,
        clock: Callable[[], datetime] | None = None,
        key_source: Callable[[], list[MasterKey]] | None = None,
    ) -> None:
        """`key_source`: where to read the master keys again when the store names one this
        process does not hold (another process rotated): the key file."""
        self.config = config
        self.keystore = KeyStore(master_keys, reload=key_source)
        self.policy = policy or Policy()
        # The default clock reads the schools' wall clock (policy.timezone), so that
        # `now().date()` is the schools' today; instants compare the same in any zone.
        self.clock = clock or school_clock(self.policy.timezone)
        with opening(config):  # the tables made or checked by one process at a time
            super().__init__(env=config.env())
            self.db = Database(self.recorder, self.keystore)
            self.keystore.db = self.db
            self.keystore.on_tampered = lambda sid, version: quarantine.record(self, sid, version)
            self.db.create_tables()
            try:
                if master_keys or key_source:  # (no key at all: a reader that decrypts nothing)
                    self.keystore.check_at_open()  # before anything else is written
            except BaseException:
                Application.close(self)  # (the views are not open yet)
                raise

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _retry_plain_appends(cls)  # the commands mixed in (cases, support files, escalation)

    # -- library seams ----------------------------------------------------------------
    def construct_mapper(self) -> StreamMapper:  # type: ignore[override]
        return StreamMapper(self.construct_transcoder(), self.keystore)

    def register_transcodings(self, transcoder: JSONTranscoder) -> None:
        super().register_transcodings(transcoder)
        transcoder.register(DateAsISO())
        transcoder.register(SetAsList())

    # -- saving and loading -----------------------------------------------------------
    def _save(
        self,
        *aggregates: CaseAggregate,
        extra: Iterable[tuple[str, tuple[Any, ...]]] = (),
        loaded_scope: Scope | None = None,
    ) -> None:
        """Save aggregates with their directory rows and new keys, atomically.
        `loaded_scope`: a single aggregate's scope as it was loaded; if the change leaves
        it as it was, its directory row and links are left alone."""
        # All upserts, then all link deletions, then all link insertions: each
        # aggregate's own order is kept, and the recorder sends each run of one
        # statement as a single executemany.
        upserts, deletes, inserts = [], [], []
        for a in aggregates:
            scope = a.scope()
            if loaded_scope is not None and len(aggregates) == 1 and scope == loaded_scope:
                continue
            u, d, i = self._directory_statements(scope, a.id)
            upserts += u
            deletes += d
            inserts += i
        statements = upserts + deletes + inserts + list(extra)
        sids = [stream_key(a.id) for a in aggregates]
        # The gate's decisions for this command go in with its events (if it has any).
        decisions = deferred_access.get() if any(a.pending_events for a in aggregates) else None
        # What the recorder writes in the events' transaction (the library hands a save's
        # keyword arguments to the recorder's insert): see Database.write_with_events.
        with_events = {
            "side_statements": statements,
            "audit_meta": audit.pending_event_meta(aggregates),  # actors for the audit trail
            "audit_first": list(decisions) if decisions else (),
        }
        try:
            if len(aggregates) > 20:
                # A batch of new or changed streams: straight to the event store, which
                # skips the per-object protocol checks of Application.save.
                # (What EventStore.put does, without building a Recording per event.)
                events = [e for a in aggregates for e in a.collect_events()]
                to_stored = self.mapper.to_stored_event
                ids = self.recorder.insert_events([to_stored(e) for e in events], **with_events) or []
                written = list(zip(ids, events, strict=True))
            else:
                written = [(r.notification.id, r.domain_event) for r in self.save(*aggregates, **with_events)]
        except RecordConflictError as e:
            self.keystore.abandoned(sids)
            retry = race_retry.get()
            if retry is not None and retry.again and not retry.saved:
                raise _RaceLost() from e  # a plain append: run again on the fresh state
            raise Conflict() from e
        except BaseException:
            self.keystore.abandoned(sids)
            raise
        if decisions:
            decisions.clear()  # recorded in the save's transaction
        retry = race_retry.get()
        if retry is not None:
            retry.saved = True
        self.keystore.committed(sids)
        self._take_periodic_snapshots(aggregates)
        # The events just written, with their positions in the log: the read side folds
        # these as they are, rather than reading them back and decrypting them again.
        fresh = just_saved.set(written)
        try:
            self.after_save()
        finally:
            just_saved.reset(fresh)

    def after_save(self) -> None:
        """Called once a save has committed (the read side catches up here; `just_saved`
        holds the events this save wrote, by position)."""

    def after_shred(self, stream_id: str) -> None:
        """Called once a stream's key is destroyed (views forget what they derived)."""

    def analyze(self, changed: int | None = None) -> bool:
        """Refresh PostgreSQL's planner statistics of the store (see Database.analyze)."""
        assert self.snapshots is not None
        return self.db.analyze([self.snapshots.recorder.events_table_name], changed)  # type: ignore[attr-defined]

    def save_many(self, aggregates: list[CaseAggregate], extra: Iterable[tuple[str, tuple[Any, ...]]] = ()) -> None:
        """One transaction for a batch (imports): keys, events and directory together."""
        self._save(*aggregates, extra=extra)

    def take_snapshot(self, aggregate_id: UUID, version: int | None = None, projector_func: Any = project) -> None:
        """The library's, except that a snapshot already stored at that version (history
        never changes, so it is the same) makes this a no-op rather than an error."""
        try:
            super().take_snapshot(aggregate_id, version=version, projector_func=projector_func)
        except IntegrityError:
            pass

    def _take_periodic_snapshots(self, aggregates: Iterable[CaseAggregate]) -> None:
        """Snapshot the aggregates just saved that reached a multiple of SNAPSHOT_EVERY,
        from the state in hand (it is what replaying their events gives: tested)."""
        assert self.snapshots is not None
        for a in aggregates:
            if a.version % self.SNAPSHOT_EVERY == 0:
                snapshot_class = getattr(type(a), "Snapshot", type(self).snapshot_class)
                try:
                    self.snapshots.put([snapshot_class.take(a)])
                except IntegrityError:
                    pass  # already taken at this version

    Statements = list[tuple[str, tuple[Any, ...]]]

    def _directory_statements(self, scope: Scope, stream_id: UUID) -> tuple[Statements, Statements, Statements]:
        """The directory row and links of a stream: ids and status only."""
        sid = str(stream_id)
        upsert = [
            (
                "INSERT INTO {t}anxin_directory (stream_id, kind, school_id, class_name, owner_id, "
                "subject_id, status) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (stream_id) DO UPDATE SET "
                "kind = excluded.kind, school_id = excluded.school_id, class_name = excluded.class_name, "
                "owner_id = excluded.owner_id, subject_id = excluded.subject_id, status = excluded.status",
                (sid, scope.kind, scope.school_id, scope.class_name, scope.owner_id, scope.subject_id, scope.status),
            )
        ]
        if not scope.links and scope.kind not in ("case", "file", "pairing"):
            return upsert, [], []
        delete = [("DELETE FROM {t}anxin_links WHERE stream_id = ?", (sid,))]
        insert = [
            ("INSERT INTO {t}anxin_links (stream_id, student_id, part) VALUES (?, ?, ?)", (sid, student_id, part))
            for student_id, part in sorted(set(scope.links))
        ]
        return upsert, delete, insert

    def _load(self, stream_id: str | UUID, cls: type[A]) -> A:
        try:
            uid = stream_id if isinstance(stream_id, UUID) else UUID(str(stream_id))
        except ValueError as e:
            raise NotFound() from e
        try:
            agg = self.repository.get(uid, projector_func=project)
        except AggregateNotFoundError as e:
            raise NotFound() from e
        except StreamErased as e:
            raise Erased() from e
        except Tampered as e:  # this stream alone: set aside, every other keeps serving
            raise quarantine.unreadable(self, e) from e
        if not isinstance(agg, cls):
            raise NotFound()
        return agg

    def _expect(self, agg: CaseAggregate, expected_version: int | None) -> None:
        """Refuse an edit made from a stale page: someone else changed it since."""
        if expected_version is not None and agg.version != expected_version:
            raise Conflict()

    @contextmanager
    def _editing(
        self,
        stream_id: str | UUID,
        cls: type[A],
        expected_version: int | None = None,
        check: tuple[Actor, str, str] | None = None,
    ) -> Iterator[A]:
        """Load a stream, let the caller change it, save it. With `check` (actor, action,
        kind): first the gate decides on the stream; its decision is recorded in the
        save's own transaction, or on its own if nothing is saved (refused, failed)."""
        with self._deferred_decisions(own=True) if check is not None else nullcontext():
            if check is not None:
                actor, action, kind = check
                self.check(actor, action, kind, stream_id)
            agg = self._load(stream_id, cls)
            self._expect(agg, expected_version)
            loaded = agg.scope()
            yield agg
            self._save(agg, loaded_scope=loaded)

    def now(self) -> datetime:
        return self.clock()

    # -- the gate -----------------------------------------------------------------
    def resource(self, kind: str, stream_id: str | UUID | None = None, school_id: str | None = None) -> Resource:
        """What the gate needs about a stream, from the directory (ids only)."""
        if stream_id is None:
            return Resource(kind=kind, school_id=school_id, district=self._district_of(school_id))
        sid = str(stream_id)
        # The stream's row, with one more row per student it involves (their classes): one query.
        rows = self.db.fetch(
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
        return Resource(
            kind=row[0],
            id=sid,
            school_id=row[1],
            classes=frozenset(classes),
            owner_id=row[3],
            district=self._district_of(row[1]),
        )

    def _district_of(self, school_id: str | None) -> str:
        """A school's district (a school never changes district, so it is kept once read)."""
        if school_id is None:
            return "default"
        cache: dict[str, str] = self.__dict__.setdefault("_districts", {})
        found = cache.get(school_id)
        if found is None:
            row = self.db.fetchone("SELECT district FROM {t}anxin_schools WHERE school_id = ?", (school_id,))
            if row is None:
                return "default"
            found = cache[school_id] = row[0]
        return found

    def authorize(self, actor: Actor, action: str, resource: Resource, break_glass: str | None = None) -> Decision:
        """The one place access is decided; every decision is recorded."""
        decision = decide(actor, action, resource, break_glass)
        self.record_access(actor, action, resource, decision, break_glass if decision.break_glass else None)
        if not decision.allowed:
            raise PermissionDenied(reason=decision.reason)
        return decision

    def decisions_together(self) -> AbstractContextManager[None]:
        """The gate's decisions made inside the block (a page that reads several views) are
        recorded together, in one transaction, as the block ends, whether it ends well or
        not; nothing read inside leaves the block before they are. Inside a command or
        another such block, they go where that one's go."""
        return self._deferred_decisions(own=False)

    @contextmanager
    def _deferred_decisions(self, own: bool) -> Iterator[None]:
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
        except _RaceLost:
            rows.clear()  # the command runs again and decides again (retried_on_race)
            raise
        finally:
            deferred_access.reset(token)
            if rows:  # not written by a save
                audit.record_many(self, rows)

    def needs_reason(self, actor: Actor, action: str, kind: str, stream_id: str | UUID) -> bool:
        """Whether the gate would allow this read only with a stated reason (break-glass):
        the rule is asked without recording a decision, so a page can show the reason form
        before anything is read. The read itself still passes `authorize`."""
        try:
            resource = self.resource(kind, stream_id)
        except DomainError:
            return False
        return (
            not decide(actor, action, resource).allowed and decide(actor, action, resource, "break-glass").break_glass
        )

    def check(
        self,
        actor: Actor,
        action: str,
        kind: str,
        stream_id: str | UUID | None = None,
        school_id: str | None = None,
        break_glass: str | None = None,
    ) -> Decision:
        return self.authorize(actor, action, self.resource(kind, stream_id, school_id), break_glass)

    def record_access(
        self, actor: Actor, action: str, resource: Resource, decision: Decision, break_glass: str | None
    ) -> None:
        """An `access` entry of the audit trail (anxin.audit). The stated reason is
        free text: it is kept encrypted under the opened stream's key, bound to its entry."""
        row = audit.access_row(self, actor, action, resource, decision, break_glass)
        deferred = deferred_access.get()
        if deferred is not None:
            deferred.append(row)  # written with the command's save (see _editing)
        else:
            audit.record(self, row)

    def record_security_event(
        self, kind: str, actor_id: str, subject: str = "", detail: str | dict[str, Any] = ""
    ) -> int | None:
        """A login, login_failed, logout, export, report, shred or key_rotation entry of the
        audit trail: ids and codes only (a login name via `audit.login_subject`). Its seq;
        None inside a block that records the gate's decisions together (`decisions_together`,
        a command), where it is written with them, in order, as that block ends."""
        row = audit.security_row(self, kind, actor_id, subject, detail)
        deferred = deferred_access.get()
        if deferred is not None:
            deferred.append(row)
            return None
        return audit.record(self, row)

    def checkpoint(self, actor_id: str = "system") -> audit.Checkpoint:
        """Sign the audit trail's head (the signing key is kept like the master key)."""
        return audit.take_checkpoint(self, actor_id)

    def maybe_checkpoint(
        self, *, every_entries: int | None = None, every_seconds: float | None = None
    ) -> audit.Checkpoint | None:
        """A scheduled checkpoint, if one is due (the server's background loop calls this)."""
        return audit.maybe_checkpoint(self, every_entries=every_entries, every_seconds=every_seconds)

    def seal(self, key_id: str, text: str, bound_to: bytes = b"") -> bytes:
        """Encrypt a free-text value that lives outside any stream (e.g. a reason)."""
        nonce = os.urandom(12)
        aad = key_id.encode() + b"\x1f" + bound_to
        return nonce + self.keystore.named_cipher(key_id).encrypt(nonce, text.encode(), aad)

    def unseal(self, key_id: str, blob: bytes, bound_to: bytes = b"") -> str:
        try:
            aes = self.keystore.named_cipher(key_id)
            aad = key_id.encode() + b"\x1f" + bound_to
            return aes.decrypt(blob[:12], blob[12:], aad).decode()
        except StreamErased:
            return ERASED_LABEL
        except InvalidTag as e:
            raise Tampered(key_id, 0) from e

    def access_log(self, actor: Actor, *, allowed: bool | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        """Access decisions, newest first (for supervisors; itself an audited read, by
        access.AUDIT_READ): the audit trail's access entries about the district's schools
        or by its people."""
        return audit.access_log(self, actor, allowed=allowed, limit=limit)

    # -- schools --------------------------------------------------------------------
    def add_school(self, actor: Actor, name: str, district: str = "default") -> str:
        self.check(actor, access.ACCOUNT_ADMIN, "account")
        name = require_text(name, "学校名称")
        if self.school_id(name, missing_ok=True):
            raise InvalidInput(reason=f"学校「{name}」已存在")
        sid = str(uuid4())
        self.db.execute(
            "INSERT INTO {t}anxin_schools (school_id, name, district) VALUES (?, ?, ?)", (sid, name, district)
        )
        return sid

    def school_id(self, name: str, missing_ok: bool = False) -> str | None:
        row = self.db.fetchone("SELECT school_id FROM {t}anxin_schools WHERE name = ?", (name.strip(),))
        if row is None and not missing_ok:
            raise InvalidInput(reason=f"找不到学校「{name}」")
        return row[0] if row else None

    def schools(self) -> list[tuple[str, str, str]]:
        return [
            (r[0], r[1], r[2])
            for r in self.db.fetch("SELECT school_id, name, district FROM {t}anxin_schools ORDER BY name")
        ]

    # -- staff and accounts ---------------------------------------------------------------
    def add_staff(
        self,
        actor: Actor,
        *,
        username: str,
        name: str,
        school_id: str | None,
        roles: list[str],
        classes: list[str] | None = None,
        password_hash: str | None = None,
        district: str | None = None,
    ) -> str:
        """Register a staff member and their account."""
        self.check(actor, access.ACCOUNT_ADMIN, "account", school_id=school_id)
        if self.db.fetchone("SELECT 1 FROM {t}anxin_staff WHERE username = ?", (username,)):
            raise InvalidInput(reason=f"用户名「{username}」已被使用")
        district = district or self._district_of(school_id)
        staff = Staff.register(
            id=uuid4(),
            school_id=school_id,
            username=username,
            name=name,
            roles=roles,
            classes=classes,
            district=district,
            actor=actor.staff_id,
            at=self.now(),
        )
        self._save(staff, extra=[self._staff_row(staff, password_hash)])
        return str(staff.id)

    @staticmethod
    def _staff_row(staff: Staff, password_hash: str | None) -> tuple[str, tuple[Any, ...]]:
        return (
            "INSERT INTO {t}anxin_staff (staff_id, username, school_id, roles, classes, district, password_hash, active) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (staff_id) DO UPDATE SET roles = excluded.roles, "
            "classes = excluded.classes, active = excluded.active",
            (
                str(staff.id),
                staff.username,
                staff.school_id,
                ",".join(staff.roles),
                json.dumps(staff.classes, ensure_ascii=False),
                staff.district,
                password_hash,
                1 if staff.active else 0,
            ),
        )

    def change_staff_roles(
        self, actor: Actor, staff_id: str, roles: list[str], classes: list[str], reason: str
    ) -> None:
        staff = self._load(staff_id, Staff)
        self.check(actor, access.ACCOUNT_ADMIN, "account", school_id=staff.school_id)
        staff.change_roles(roles=roles, classes=classes, reason=reason, actor=actor.staff_id, at=self.now())
        self._save(staff, extra=[self._staff_row(staff, None)])

    def deactivate_staff(self, actor: Actor, staff_id: str, reason: str) -> None:
        staff = self._load(staff_id, Staff)
        self.check(actor, access.ACCOUNT_ADMIN, "account", school_id=staff.school_id)
        staff.deactivate(reason=reason, actor=actor.staff_id, at=self.now())
        self._save(staff, extra=[self._staff_row(staff, None)])

    def actor(self, staff_id: str) -> Actor:
        """The acting person as the gate sees them (ids and roles, from the directory)."""
        row = self.db.fetchone(
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

    def account(self, username: str) -> tuple[str, str | None] | None:
        """(staff_id, password_hash) for a login name."""
        row = self.db.fetchone(
            "SELECT staff_id, password_hash FROM {t}anxin_staff WHERE username = ? AND active = 1", (username,)
        )
        return (row[0], row[1]) if row else None

    def set_password_hash(self, staff_id: str, password_hash: str) -> None:
        self.db.execute("UPDATE {t}anxin_staff SET password_hash = ? WHERE staff_id = ?", (password_hash, staff_id))

    @functools.cached_property
    def accounts(self) -> Any:
        """Staff accounts, passwords, web sessions, failed logins, API tokens and staff
        lists (anxin.accounts.Accounts): what the web and the CLI ask of them."""
        from anxin.accounts import Accounts  # (here: it reads this module's decisions in progress)

        return Accounts(self)

    def staff_name(self, staff_id: str) -> str:
        try:
            return self._load(staff_id, Staff).name
        except (Erased, NotFound):
            return ERASED_LABEL
        except Unreadable:
            return UNREADABLE_LABEL

    # -- students -------------------------------------------------------------------
    def student_id_for(self, school_id: str, student_no: str) -> UUID:
        """A student's stream id is keyed on (school, student number): re-enrolling the
        same number is refused by the store itself, and the id reveals nothing."""
        return self.keystore.deterministic_id("student", f"{school_id}\x1f{student_no.strip()}")

    def enrol_student(self, actor: Actor, *, school_id: str, **fields: Any) -> str:
        self.check(actor, access.STUDENT_WRITE, "student", school_id=school_id)
        student = self._new_student(actor, school_id, fields)
        if self.db.fetchone("SELECT 1 FROM {t}anxin_directory WHERE stream_id = ?", (str(student.id),)):
            raise InvalidInput(reason=f"学号「{student.student_no}」在本校已存在")
        try:
            self._save(student)
        except Conflict as e:
            raise InvalidInput(reason=f"学号「{student.student_no}」在本校已存在") from e
        return str(student.id)

    def _new_student(self, actor: Actor, school_id: str, fields: dict[str, Any]) -> Student:
        student_no = require_text(fields.get("student_no"), "学号")
        return Student.enrol(
            id=self.student_id_for(school_id, student_no),
            school_id=school_id,
            actor=actor.staff_id,
            at=self.now(),
            **fields,
        )

    def get_student(self, actor: Actor, student_id: str, break_glass: str | None = None) -> Student:
        """A student's identity, for those allowed to see it."""
        self.check(actor, access.STUDENT_READ, "student", student_id, break_glass=break_glass)
        return self._load(student_id, Student)

    def correct_student(
        self, actor: Actor, student_id: str, changes: dict[str, Any], reason: str, expected_version: int | None = None
    ) -> None:
        with self._editing(student_id, Student, expected_version, check=(actor, access.STUDENT_WRITE, "student")) as s:
            s.correct(changes=changes, reason=reason, actor=actor.staff_id, at=self.now())

    def leave_student(self, actor: Actor, student_id: str, reason: str, expected_version: int | None = None) -> None:
        """A student leaves the school (transfer, graduation); their history stays."""
        with self._editing(student_id, Student, expected_version, check=(actor, access.STUDENT_WRITE, "student")) as s:
            s.leave(reason=reason, actor=actor.staff_id, at=self.now())

    def student_ref(self, student_id: str) -> StudentRef:
        """Name for display inside an already-authorised view; 已删除 once erased."""
        row = self.db.fetchone(
            "SELECT school_id, class_name FROM {t}anxin_directory WHERE stream_id = ?", (student_id,)
        )
        try:
            s = self._load(student_id, Student)
        except (Erased, NotFound):
            return StudentRef(student_id, row[0] if row else None, row[1] if row else None, None, ERASED_LABEL, True)
        except Unreadable:
            return StudentRef(
                student_id, row[0] if row else None, row[1] if row else None, None, UNREADABLE_LABEL, unreadable=True
            )
        return StudentRef(student_id, s.school_id, s.class_name, s.student_no, s.name)

    def list_students(self, actor: Actor, school_id: str, class_name: str | None = None) -> list[StudentRef]:
        """The school's roster (or one class of it: what a class teacher may list),
        decrypted; erased students show as 已删除."""
        resource = self.resource("student", school_id=school_id)
        if class_name is not None:
            resource = replace(resource, classes=frozenset({class_name}))
        self.authorize(actor, access.STUDENT_READ, resource)
        sql = "SELECT stream_id FROM {t}anxin_directory WHERE school_id = ? AND kind = 'student'"
        args: tuple[Any, ...] = (school_id,)
        if class_name is not None:
            sql, args = sql + " AND class_name = ?", (school_id, class_name)
        ids = [r[0] for r in self.db.fetch(sql, args)]
        self.keystore.preload()
        refs = [self.student_ref(i) for i in ids]
        return sorted(refs, key=lambda r: (r.erased, r.class_name or "", r.student_no or ""))

    def existing_student_ids(self, ids: Iterable[str]) -> set[str]:
        return {
            r[0]
            for r in self.db.fetch_in(
                "SELECT stream_id FROM {t}anxin_directory WHERE stream_id IN ({marks})", list(ids)
            )
        }

    # -- pairings (一岗双带) ---------------------------------------------------------------
    def pair(self, actor: Actor, *, staff_id: str, student_id: str, cadence_days: int | None = None) -> str:
        """Pair a staff member with a student on the policy's cadence."""
        student = self.resource("student", student_id)
        self.authorize(
            actor, access.PAIRING_CREATE, Resource(kind="pairing", school_id=student.school_id, classes=student.classes)
        )
        staff = self.actor(staff_id)
        require(staff.school_id == student.school_id, "只能与本校学生结对")
        existing = self.db.fetchone(
            "SELECT stream_id FROM {t}anxin_directory WHERE kind = 'pairing' AND owner_id = ? AND subject_id = ? "
            "AND status = 'active'",
            (staff_id, student_id),
        )
        require(existing is None, "该教师已与该学生结对")
        p = Pairing.pair(
            id=uuid4(),
            school_id=student.school_id or "",
            staff_id=staff_id,
            student_id=student_id,
            cadence_days=cadence_days or self.policy.check_in_cadence_days,
            actor=actor.staff_id,
            at=self.now(),
        )
        self._save(p)
        return str(p.id)

    def get_pairing(self, actor: Actor, pairing_id: str, break_glass: str | None = None) -> Pairing:
        self.check(actor, access.PAIRING_READ, "pairing", pairing_id, break_glass=break_glass)
        return self._load(pairing_id, Pairing)

    def record_check_in(
        self,
        actor: Actor,
        pairing_id: str,
        *,
        held_on: date,
        notes: dict[str, str],
        concern: bool = False,
        concern_note: str = "",
        expected_version: int | None = None,
    ) -> str:
        """Record a 谈心谈话 with a paired student."""
        check_in_id = uuid4().hex
        with self._editing(pairing_id, Pairing, expected_version, check=(actor, access.PAIRING_WRITE, "pairing")) as p:
            p.record_check_in(
                check_in_id=check_in_id,
                held_on=held_on,
                notes=notes,
                concern=concern,
                concern_note=concern_note,
                actor=actor.staff_id,
                at=self.now(),
            )
        return check_in_id

    def correct_check_in(
        self,
        actor: Actor,
        pairing_id: str,
        check_in_id: str,
        *,
        reason: str,
        expected_version: int | None = None,
        **changes: Any,
    ) -> None:
        with self._editing(pairing_id, Pairing, expected_version, check=(actor, access.PAIRING_WRITE, "pairing")) as p:
            p.correct_check_in(check_in_id=check_in_id, reason=reason, actor=actor.staff_id, at=self.now(), **changes)

    def end_pairing(self, actor: Actor, pairing_id: str, reason: str) -> None:
        self.check(actor, access.PAIRING_WRITE, "pairing", pairing_id)
        with self._editing(pairing_id, Pairing) as p:
            p.end(reason=reason, actor=actor.staff_id, at=self.now())

    def my_pairings(self, actor: Actor) -> list[Pairing]:
        """The actor's own active pairings, each read through the gate."""
        ids = [
            r[0]
            for r in self.db.fetch(
                "SELECT stream_id FROM {t}anxin_directory WHERE kind = 'pairing' AND owner_id = ? AND status = 'active' "
                "AND erased = 0",
                (actor.staff_id,),
            )
        ]
        out = []
        for i in ids:
            try:
                out.append(self.get_pairing(actor, i))
            except (Erased, Unreadable):
                continue
        return out

    # -- erasure and keys ---------------------------------------------------------------
    def shred(self, actor: Actor, stream_id: str, reason: str) -> str:
        """Destroy a stream's key (a student's: with every stream about them alone, see
        `erase`): its content is erased everywhere, for good. The stream's kind."""
        return self.erase(actor, stream_id, reason).kind

    def erasure(self, actor: Actor, stream_id: str) -> Erasure:
        """What `erase` would destroy and leave (ids, kinds, statuses: no content), after
        the gate (SHRED) for the stream's school."""
        try:
            UUID(str(stream_id))
        except ValueError:
            raise NotFound() from None
        row = self.db.fetchone(
            "SELECT kind, school_id, class_name, erased FROM {t}anxin_directory WHERE stream_id = ?", (stream_id,)
        )
        if row is None:
            raise NotFound()
        self.check(actor, access.SHRED, "keys", school_id=row[1])
        kind, erased = row[0], bool(row[3])
        own: list[ErasureItem] = [] if erased else [ErasureItem(stream_id, kind)]
        kept: list[ErasureItem] = []
        if kind == "student":
            # Every stream linked to the student, with its part(s) and how many students it has.
            found: dict[str, tuple[str, str | None, bool, list[str], int]] = {}
            for sid, k, status, gone, part, students in self.db.fetch(
                "SELECT d.stream_id, d.kind, d.status, d.erased, l.part, (SELECT COUNT(DISTINCT l2.student_id) "
                "FROM {t}anxin_links l2 WHERE l2.stream_id = d.stream_id) FROM {t}anxin_links l "
                "JOIN {t}anxin_directory d ON d.stream_id = l.stream_id WHERE l.student_id = ? "
                "ORDER BY d.kind, d.stream_id, l.part",
                (stream_id,),
            ):
                found.setdefault(sid, (k, status, bool(gone), [], int(students)))[3].append(part)
            for sid, (k, status, gone, parts, students) in found.items():
                if k in OWN_KINDS and students == 1:
                    if not gone:
                        own.append(ErasureItem(sid, k, status))
                elif not gone:
                    kept.append(ErasureItem(sid, k, status, tuple(parts)))
        return Erasure(stream_id, kind, row[1], row[2], erased, tuple(own), tuple(kept))

    def erase(self, actor: Actor, stream_id: str, reason: str) -> Erasure:
        """Destroy the keys of a stream and, for a student, of every stream about them
        alone (their pairings, support files, screenings), in one transaction with the
        directory's flags and one `shred` entry of the audit trail per stream: all or
        nothing. Streams shared with other students (bullying cases) stay, and are named
        in the result (`kept`). A student erased before (by a version that erased only
        their own stream) has the rest erased now."""
        require_text(reason, "删除原因")
        plan = self.erasure(actor, stream_id)
        if not plan.destroyed:
            raise Erased()
        now = self.now().isoformat()
        entries = [
            audit.security_row(
                self,
                "shred",
                actor.staff_id,
                e.stream_id,
                {"kind": e.kind} if e.stream_id == stream_id else {"kind": e.kind, "of": stream_id},
            )
            for e in plan.destroyed
        ]
        with self.db.transaction() as c:
            c.executemany(
                self.db.q("UPDATE {t}anxin_keys SET wrapped = NULL, shredded_at = ? WHERE stream_id = ?"),
                [(now, UUID(e.stream_id).hex) for e in plan.destroyed],
            )
            c.executemany(
                self.db.q("UPDATE {t}anxin_directory SET erased = 1 WHERE stream_id = ?"),
                [(e.stream_id,) for e in plan.destroyed],
            )
            audit.append(c, self.db, entries)
        for e in plan.destroyed:
            self.keystore.forget(UUID(e.stream_id).hex)
            self.after_shred(e.stream_id)
            if self.repository.cache is not None:
                self.repository.cache.put(UUID(e.stream_id), None)  # type: ignore[arg-type]
        return plan

    def notice_shreds(self) -> bool:
        """Whether any process has shredded a stream since this one last asked (one indexed
        count: a shredded key is never restored in a store, so the count only grows). If
        so, the keys of shredded streams cached here are dropped, and the caller drops what
        it derived from them (names it keeps). Cheap enough to ask once per page."""
        n = int(self.db.fetchone("SELECT COUNT(*) FROM {t}anxin_keys WHERE wrapped IS NULL")[0])
        if self.__dict__.get("_shreds_seen") == n:
            return False
        for (sid,) in self.db.fetch("SELECT stream_id FROM {t}anxin_keys WHERE wrapped IS NULL"):
            self.keystore.forget(sid)
        self._shreds_seen = n
        return True

    def quarantine_stream(self, stream_id: str, version: int) -> None:
        """Set aside a stream whose event (or, at version 0, key) failed authentication
        (anxin.quarantine): what folds or lists content calls this, then goes on."""
        quarantine.record(self, stream_id, version)

    def is_erased(self, stream_id: str) -> bool:
        return self.keystore.is_erased(UUID(stream_id).hex)

    def rotate_master_key(
        self,
        actor: Actor,
        new_key: MasterKey | None = None,
        key_file: Any = None,
        on_step: Callable[[str], None] | None = None,
    ) -> int:
        """Rotate the master key (anxin.keyring.rotate): the data keys re-wrapped; events
        are not rewritten. How many data keys were re-wrapped."""
        from anxin import keyring

        self.check(actor, access.KEYS_ADMIN, "keys")
        return keyring.rotate(self, actor, new_key=new_key, key_file=key_file, on_step=on_step).rewrapped

    def log_head(self) -> int:
        """The position of the event log's last event (0: none yet)."""
        return self.recorder.max_notification_id() or 0

    def decrypt_log(self, start: int = 1, batch: int = 1000) -> Iterator[tuple[int, Any]]:
        """Every event in order, decrypted; erased streams yield None (never raise)."""
        self.keystore.preload()
        pos = start
        while True:
            notes = self.recorder.select_notifications(start=pos, limit=batch)
            if not notes:
                return
            for n in notes:
                try:
                    yield n.id, self.mapper.to_domain_event(n)
                except StreamErased:
                    yield n.id, None
            pos = notes[-1].id + 1


_retry_plain_appends(Core)

__all__ = ["Core", "Tampered", "SYSTEM", "StudentRef", "ERASED_LABEL", "Erasure", "ErasureItem", "KIND_LABELS"]
