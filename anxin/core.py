"""The event-sourced application: one event store, its mapper (every event encrypted
under its stream's key, anxin.crypto), the transcodings, saving and loading a stream with
its directory row (`commit`, `load`, `load_many`, `expect_version`, `editing`: the events, the
row, a new stream's key and the command's gate decisions in one transaction), a lost
version race turned into a retry (anxin.races), the clock and snapshots.

What every layer shares is here too: the policy, the key store, the gate (`core.gate`,
anxin.gate: `check`, `authorize`, `permits`, `resource`, `record_security_event`, `decisions_together`
are asked of the core), `core.accounts`, the audit trail's checkpoints, the key rotation,
the log reads; and the commands by area, each a class of anxin.commands given this core
(`core.cases`, `.support`, `.screenings`, `.pairings`, `.roster`, `.escalations`,
`.erasure`). `Anxin` (anxin.service) adds the views.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, TypeVar
from uuid import UUID
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cryptography.exceptions import InvalidTag
from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.persistence import (
    IntegrityError,
    JSONTranscoder,
    RecordConflictError,
    StoredEvent,
    Transcoding,
)

from anxin import audit, numbers, quarantine
from anxin.commands import (
    AgencyCommands,
    CaseCommands,
    CommitteeCommands,
    CrisisCommands,
    ErasureCommands,
    EscalationCommands,
    PairingCommands,
    RosterCommands,
    ScreeningCommands,
    SupportCommands,
)
from anxin.crypto import KeyStore, MasterKey, StreamErased, StreamMapper, Tampered, stream_key
from anxin.gate import AskTheGate, Gate, deferred_access
from anxin.notify import outbox as notify_outbox
from anxin.races import _RaceLost, race_retry
from anxin.storage import (
    Database,
    StoreConfig,
    opening,
)
from domain import access
from domain.common import (
    ERASED_LABEL,
    SYSTEM,
    Actor,
    CaseAggregate,
    Conflict,
    Erased,
    InvalidInput,
    NotFound,
    Scope,
)
from domain.policy import Policy
from projections.base import StudentRef

if TYPE_CHECKING:
    from anxin.two_step import TwoStep

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


def school_clock(timezone: str) -> Callable[[], datetime]:
    """The current time on the schools' wall clock (an aware datetime in that zone)."""
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(reason=f"未知的时区：{timezone}") from None
    return lambda: datetime.now(zone)


def project(aggregate: Any, events: Iterable[Any]) -> Any:
    """The library's `project_aggregate` without its per-event `isinstance` against a
    runtime Protocol (slow on Python 3.11): every stored event here is an aggregate event."""
    for e in events:
        aggregate = e.mutate(aggregate)
    return aggregate


class Core(Application[UUID]):
    """The event store, the gate and the commands by area (see the module's docstring)."""

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
        self.gate = Gate(self)
        # The commands, by area, each given this core (composition: anxin.commands).
        self.roster = RosterCommands(self)
        self.pairings = PairingCommands(self)
        self.cases = CaseCommands(self)
        self.support = SupportCommands(self)
        self.screenings = ScreeningCommands(self, self.roster)
        self.escalations = EscalationCommands(self, self.cases, self.support)
        self.crisis = CrisisCommands(self, self.support)
        self.erasure = ErasureCommands(self)
        self.agencies = AgencyCommands(self)
        self.committee = CommitteeCommands(self)
        with opening(config):  # the tables made or checked by one process at a time
            super().__init__(env=config.env())
            self.db = Database(self.recorder, self.keystore)
            self.keystore.db = self.db
            self.keystore.on_tampered = lambda sid, version: quarantine.record(self, sid, version)
            self.db.create_tables(timezone=self.policy.timezone)
            try:
                if master_keys or key_source:  # (no key at all: a reader that decrypts nothing)
                    self.keystore.check_at_open()  # before anything else is written
                    self.support.backfill_stream_staff()  # once per store (files saved before it)
            except BaseException:
                Application.close(self)  # (the views are not open yet)
                raise

    # -- library seams ----------------------------------------------------------------
    def construct_mapper(self) -> StreamMapper:  # type: ignore[override]
        return StreamMapper(self.construct_transcoder(), self.keystore)

    def register_transcodings(self, transcoder: JSONTranscoder) -> None:
        super().register_transcodings(transcoder)
        transcoder.register(DateAsISO())
        transcoder.register(SetAsList())

    # -- saving and loading -----------------------------------------------------------
    def commit(
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
        # The notices the new events raise (anxin.notify), written with them.
        notices = notify_outbox.statements_for(aggregates, self.now())
        statements = upserts + deletes + inserts + list(extra) + notices
        sids = [stream_key(a.id) for a in aggregates]
        # The gate's decisions for this command go in with its events (if it has any).
        decisions = deferred_access.get() if any(a.pending_events for a in aggregates) else None
        # What the recorder writes in the events' transaction (the library hands a save's
        # keyword arguments to the recorder's insert): see Database.write_with_events.
        with_events = {
            "side_statements": statements,
            "audit_meta": audit.pending_event_meta(aggregates),  # actors for the audit trail
            "audit_first": list(decisions) if decisions else (),
            "numbers": numbers.for_new_streams(aggregates, self.policy.timezone),  # QL-2026-0003 ...
        }
        try:
            if len(aggregates) > 20:
                # A batch of new or changed streams: straight to the event store, which
                # skips the per-object protocol checks of Application.save.
                # (What EventStore.put does, without building a Recording per event.)
                events = [e for a in aggregates for e in a.collect_events()]
                to_stored = self.mapper.to_stored_event
                ids = self.recorder.insert_events([to_stored(e) for e in events], **with_events) or []
                written: list[tuple[int, Any]] = list(zip(ids, events, strict=True))
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
        self.after_save(written)

    def after_save(self, written: Sequence[tuple[int, Any]]) -> None:
        """Called once a save has committed, with the events it wrote by their positions in
        the log (the read side catches up here)."""

    def after_shred(self, stream_id: str) -> None:
        """Called once a stream's key is destroyed (views forget what they derived)."""

    def analyze(self, changed: int | None = None) -> bool:
        """Refresh PostgreSQL's planner statistics of the store (see Database.analyze)."""
        assert self.snapshots is not None
        return self.db.analyze([self.snapshots.recorder.events_table_name], changed)  # type: ignore[attr-defined]

    def save_many(self, aggregates: list[CaseAggregate], extra: Iterable[tuple[str, tuple[Any, ...]]] = ()) -> None:
        """One transaction for a batch (imports): keys, events and directory together."""
        self.commit(*aggregates, extra=extra)

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
                assert snapshot_class is not None
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
        if scope.kind == "file" or scope.staff:
            delete.append(("DELETE FROM {t}anxin_stream_staff WHERE stream_id = ?", (sid,)))
            insert += [
                ("INSERT INTO {t}anxin_stream_staff (stream_id, part, staff_id) VALUES (?, ?, ?)", (sid, part, staff))
                for part, staff in sorted(set(scope.staff))
            ]
        return upsert, delete, insert

    def load(self, stream_id: str | UUID, cls: type[A]) -> A:
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

    def load_many(self, ids: Sequence[UUID], cls: type[Any]) -> dict[str, Any]:
        """Load many streams with one query per 500 (imports): erased ones are left out."""
        out: dict[str, Any] = {}
        if not ids:
            return out
        table = self.db.t(self.recorder.events_table_name)  # type: ignore[attr-defined]
        pg = self.db.dialect == "postgres"
        events: dict[str, list[StoredEvent]] = {}
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            params: tuple[Any, ...]
            if pg:
                sql, params = (
                    (
                        f"SELECT originator_id, originator_version, topic, state FROM {table} "
                        "WHERE originator_id = ANY(?) ORDER BY originator_id, originator_version"
                    ),
                    (list(chunk),),
                )
            else:
                marks = ",".join("?" * len(chunk))
                sql = (
                    f"SELECT originator_id, originator_version, topic, state FROM {table} "
                    f"WHERE originator_id IN ({marks}) ORDER BY originator_id, originator_version"
                )
                params = tuple(u.hex for u in chunk)
            for oid, version, topic, state in self.db.fetch(sql, params):
                uid = oid if isinstance(oid, UUID) else UUID(str(oid))
                events.setdefault(str(uid), []).append(
                    StoredEvent(originator_id=uid, originator_version=version, topic=topic, state=bytes(state))
                )
        self.keystore.prefetch([stream_key(s[0].originator_id) for s in events.values()])
        for sid, stored in events.items():
            try:
                agg = None
                for s in stored:
                    agg = self.mapper.to_domain_event(s).mutate(agg)  # type: ignore[attr-defined]
            except StreamErased:
                continue
            except Tampered as e:  # quarantined; the caller reads it alone (and says so)
                quarantine.record(self, e.stream_id, e.version)
                continue
            if isinstance(agg, cls):
                out[sid] = agg
        return out

    def expect_version(self, agg: CaseAggregate, expected_version: int | None) -> None:
        """Refuse an edit made from a stale page: someone else changed it since."""
        if expected_version is not None and agg.version != expected_version:
            raise Conflict()

    @contextmanager
    def editing(
        self,
        stream_id: str | UUID,
        cls: type[A],
        expected_version: int | None = None,
        check: tuple[Actor, str, str] | None = None,
    ) -> Iterator[A]:
        """Load a stream, let the caller change it, save it. With `check` (actor, action,
        kind): first the gate decides on the stream; its decision is recorded in the
        save's own transaction, or on its own if nothing is saved (refused, failed)."""
        with self.gate.deferred_decisions(own=True) if check is not None else nullcontext():
            if check is not None:
                actor, action, kind = check
                self.check(actor, action, kind, stream_id)
            agg = self.load(stream_id, cls)
            self.expect_version(agg, expected_version)
            loaded = agg.scope()
            yield agg
            self.commit(agg, loaded_scope=loaded)

    def now(self) -> datetime:
        return self.clock()

    # -- the gate (anxin.gate): asked of the core by every layer, the read side included --
    resource = AskTheGate(Gate.resource)
    authorize = AskTheGate(Gate.authorize)
    check = AskTheGate(Gate.check)
    permits = AskTheGate(Gate.permits)
    record_security_event = AskTheGate(Gate.record_security_event)

    def decisions_together(self) -> AbstractContextManager[None]:
        """The gate's decisions made inside the block (a page that reads several views) are
        recorded together, in one transaction, as the block ends, whether it ends well or
        not; nothing read inside leaves the block before they are. Inside a command or
        another such block, they go where that one's go."""
        return self.gate.deferred_decisions(own=False)

    @functools.cached_property
    def accounts(self) -> Any:
        """Staff accounts, passwords, web sessions, failed logins, API tokens and staff
        lists (anxin.accounts.Accounts): what the web and the CLI ask of them."""
        from anxin.accounts import Accounts  # (here: it reads the gate's decisions in progress)

        return Accounts(self)

    @functools.cached_property
    def notifications(self) -> Any:
        """One's inbox and notification settings, schools' group bots, undeliverable
        messages (anxin.notify.Notifications); `deliver()` sends what is due."""
        from anxin.notify import Notifications

        return Notifications(self)

    def open_deadlines(self, today: date, kinds: Sequence[str], soon_days: int) -> list[dict[str, Any]]:
        """Open items of `kinds` due within `soon_days` or overdue (ids and days): the read
        side knows them (Anxin, with its views); the core alone knows none."""
        return []

    def overdue_items(self, today: date) -> list[dict[str, Any]]:
        """Every overdue item of the work queue with who must act on it (ids, kinds, days):
        the read side's (Anxin); the core alone knows none."""
        return []

    def record_number(self, stream_id: str) -> str:
        """The number people see for one case, file or pairing (QL-2026-0003; the first 8
        hex digits of its id while it has none yet)."""
        found = self.record_numbers([str(stream_id)]).get(str(stream_id))
        return found.text if found is not None else str(stream_id)[:8]

    @functools.cached_property
    def two_step(self) -> TwoStep:
        """Two-step verification (anxin.two_step.TwoStep): enrolment, the second step of a
        login, and the school setting that requires it."""
        from anxin.two_step import TwoStep

        return TwoStep(self)

    # -- what the read side reads through the core (projections.base.Source) ---------------
    def student_ref(self, student_id: str) -> StudentRef:
        return self.roster.student_ref(student_id)

    def schools(self) -> list[tuple[str, str, str]]:
        return self.roster.schools()

    def record_numbers(self, stream_ids: Iterable[str]) -> dict[str, numbers.RecordNumber]:
        """The numbers people read and type (QL-2026-0003, anxin.numbers) of these cases,
        files and pairings, by id, with their schools: one query. Not decided by the gate,
        like `staff_name`: a number is a count, no content; a page shows it only beside a
        record it was allowed to show."""
        return numbers.numbers_for(self.db, stream_ids)

    def quarantine_stream(self, stream_id: str, version: int) -> None:
        """Set aside a stream whose event (or, at version 0, key) failed authentication
        (anxin.quarantine): what folds or lists content calls this, then goes on."""
        quarantine.record(self, stream_id, version)

    # -- free text outside any stream, the audit trail's checkpoints, keys, the log --------
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


__all__ = ["Core", "Tampered", "SYSTEM", "StudentRef", "ERASED_LABEL", "school_clock"]
