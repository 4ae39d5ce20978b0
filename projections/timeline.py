"""The student timeline, and searching students by name with a keyed blind index.

Timeline (`v_timeline_links`, `v_timeline_entries`): every event of every stream about
a student, in the order the log recorded them: their own Student stream, the bullying
cases where they are a party, their support files, their screening records and their
pairings (with the check-ins). An entry is ids only: the stream, its kind, the event
type, the event's position in the log and its time; `v_timeline_links` says which
students a stream is about (a party added later sees the whole case, a party removed
no longer does). No text is stored.

At read time the gate decides per entry, once per stream shown (not once per entry, so
a page view records a handful of decisions, not hundreds): STUDENT_READ for the
student's own stream, CASE_READ (else CASE_STATUS: labels only) for a case, FILE_READ
for a file, PAIRING_READ for a pairing, SCREENING_READ for a screening record. Entries
of a stream the viewer may not see are left out, and since nobody asked for them by
name, leaving them out records nothing (the rule is asked without recording, `permits`;
a refusal in the audit trail means a request was refused: here, only the student's own
stream, which is what the page asks for). Every entry shown has a short Chinese
label from `LABELS`, and details (the note, the statement, the result) only where the
viewer may read the whole stream, loaded from the stream then (both in
`projections.timeline_labels`).

Name search (`v_student_names`, `search_students`) is in `projections.student_names`;
its view is kept up to date with the timeline's (`views`).

A reason opens only what it was asked for. A supervisor reads a student with a stated
reason (break-glass): that one recorded read shows the student's own record and the list of
their cases, files and pairings (`Timeline.records`: kind, status, the student's part in a
case, when it began and last changed; no narrative, no note, no other party), and nothing
of those records' content: each is opened on its own, with a reason of its own, recorded
on its own. The reason is never passed on to the other streams.

Erased streams: their entries stay as erased (type and position, no time, no
details); a rebuild gives the same rows (an erased stream's links come from the
directory, as the gate knows them).

Each party's timeline shows only what concerns them (issue 17). A case entry that names
one or more students (`NAMING_FIELDS`: an intervention plan, a disposition, a county-review
application, a guardian's invitation or participation, a statement, a safety measure,
signs of self-harm, an appeal) is shown on those students' timelines only; a case-level
entry (reported, a party added or removed, investigation started/completed, determined,
approved, an appeal's or review's outcome, closed...) on every party's timeline; a
follow-up that refers to an earlier entry by id (`REFERS`: an intervention's progress and
completion, a statement's correction, a review's panel) inherits that entry's students.
See `concerns`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

from sqlalchemy import (
    BigInteger,
    Boolean,
    Connection,
    Index,
    PrimaryKeyConstraint,
    and_,
    bindparam,
    delete,
    exists,
    not_,
    or_,
    select,
    text,
    update,
)

from domain import access
from domain.access import Decision
from domain.bullying import PARTS
from domain.common import (
    Actor,
    CaseAggregate,
    ContentErased,
    ContentTampered,
    NotFound,
    PermissionDenied,
)
from projections.base import (
    Column,
    ErasedEvent,
    Integer,
    String,
    Table,
    View,
    WriteBehind,
    aggregate_of,
    metadata,
    own_fold,
    stream_id_of,
)
from projections.student_names import (
    NAMES,
    StudentNamesView,
    name_parts,
    name_tokens,
    names,
    normalize_name,
    query_tokens,
    search_students,
    split_name,
)
from projections.timeline_labels import DETAIL_FIELDS, KIND_LABELS, LABELS, STATUS_LABELS, details_of

if TYPE_CHECKING:
    from projections.base import Source

NAME = "timeline"

# The streams a timeline shows, by aggregate class name.
KINDS = {
    "Student": "student",
    "BullyingCase": "case",
    "SupportFile": "file",
    "ScreeningRecord": "screening",
    "Pairing": "pairing",
}

links = Table(
    "v_timeline_links",
    metadata,
    Column("stream_id", String(36), nullable=False),
    Column("student_id", String(36), nullable=False),
    Column("kind", String(16), nullable=False),
    PrimaryKeyConstraint("stream_id", "student_id"),
    Index("v_timeline_links_student", "student_id"),
)

entries = Table(
    "v_timeline_entries",
    metadata,
    Column("position", BigInteger, primary_key=True, autoincrement=False),
    Column("stream_id", String(36), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("event_type", String(64), nullable=False),
    Column("version", Integer, nullable=False),
    Column("at", String(40), nullable=True),  # ISO 8601; gone once the stream is erased
    Column("erased", Boolean, nullable=False),
    Index("v_timeline_entries_stream", "stream_id", "position"),
)

concerns = Table(
    "v_timeline_concerns",
    metadata,
    Column("position", BigInteger, nullable=False),
    Column("student_id", String(36), nullable=False),
    Column("stream_id", String(36), nullable=False),
    Column("subject", String(36), nullable=True),  # the id later entries refer to (an intervention's, ...)
    PrimaryKeyConstraint("position", "student_id"),
    Index("v_timeline_concerns_student", "student_id", "position"),
    Index("v_timeline_concerns_subject", "stream_id", "subject"),
)
"""Which students a case entry concerns, when it names some: one row per (entry, student),
ids only. An entry with no row is case-level: on every party's timeline.

Why a table filled at fold time rather than a filter computed at read time: which students
an entry names is in its content, encrypted in the log. A filter at read time would have to
decrypt every entry of every case of the student just to decide which to show (and a viewer
with status-only access never has the content decrypted at all), where the table answers in
the same indexed query that reads the entries. The fold reads the fields anyway (it is
given the decrypted event), and a follow-up finds the students of the entry it refers to
here (`subject`) without reading the log again.

A rebuild gives the same rows: the rows come from the events alone, in log order. An erased
stream's events cannot be read, so they give no rows, and erasing a stream deletes its rows
(`erase`): incrementally and rebuilt alike, an erased entry of a type that may name students
(`SCOPED_TYPES`) is then shown on no one's timeline (whom it concerned is not known any more,
and showing it to every party would say the other side had, say, a disposition), and any
other erased entry on every party's, as before."""

# The fields of a case event that name the students it concerns. PartyAdded and
# PartyRemoved name a student too, but who is a party is the case's own business (every
# party sees who joined or left it), and Reported names every party: both case-level.
NAMING_FIELDS: dict[str, tuple[str, ...]] = {
    "SafetyMeasureTaken": ("student_ids",),
    "StatementRecorded": ("from_student_id",),
    "InterventionPlanned": ("student_id",),
    "AppealLodged": ("party_id",),
    "SelfHarmNoted": ("student_id",),
    "GuardianInvitationRecorded": ("student_id",),
    "GuardianParticipationRecorded": ("student_id",),
    "DispositionDecided": ("student_id",),
    "CountyReviewApplied": ("party_id",),
}
# The field holding the id of what an entry that names students started, which later
# entries refer to.
SUBJECT_FIELDS: dict[str, str] = {
    "StatementRecorded": "statement_id",
    "InterventionPlanned": "intervention_id",
    "CountyReviewApplied": "review_id",
}
# Follow-ups: the field that refers to an earlier entry, whose students they inherit. An
# appeal's and a county review's outcome are not here on purpose: they decide the
# determination in force for the whole case (case-level).
REFERS: dict[str, str] = {
    "InterventionProgressRecorded": "intervention_id",
    "InterventionCompleted": "intervention_id",
    "StatementCorrected": "corrects",
    "CountyReviewPanelRecorded": "review_id",
}
# Entries that may concern some students only: erased, they are shown on no one's timeline.
SCOPED_TYPES = frozenset(NAMING_FIELDS) | frozenset(REFERS)


def named_students(e: Any, event_type: str) -> list[str]:
    """The students a case event names (none: a case-level entry, or one that refers)."""
    out: list[str] = []
    for f in NAMING_FIELDS.get(event_type, ()):
        v = getattr(e, f, None)
        if isinstance(v, str) and v:
            out.append(v)
        elif isinstance(v, list | tuple):
            out.extend(str(x) for x in v if x)
    return sorted(set(out))


# Statements built once (a handler only binds values: no statement building per event).
INSERT_LINK = links.insert()
DELETE_LINK = delete(links).where(links.c.stream_id == bindparam("sid"), links.c.student_id == bindparam("student"))
INSERT_ENTRY = entries.insert()
ERASE_ENTRIES = update(entries).where(entries.c.stream_id == bindparam("sid")).values(at=None, erased=True)
INSERT_CONCERN = concerns.insert()
SUBJECT_STUDENTS = select(concerns.c.student_id).where(
    concerns.c.stream_id == bindparam("sid"), concerns.c.subject == bindparam("subject")
)
ERASE_CONCERNS = delete(concerns).where(concerns.c.stream_id == bindparam("sid"))
LINKED_STUDENTS = text("SELECT DISTINCT student_id FROM anxin_links WHERE stream_id = :sid")


_KIND_OF: dict[type, tuple[str | None, str]] = {}  # (stream kind, event type) by event class


class TimelineView(WriteBehind, View):
    name = NAME
    tables = (links, entries, concerns)
    fold = own_fold()

    def _link(self, conn: Connection, stream_id: str, student_ids: Iterable[str], kind: str, position: int) -> None:
        rows = [{"stream_id": stream_id, "student_id": s, "kind": kind} for s in sorted(set(student_ids))]
        if rows:
            self._insert(conn, INSERT_LINK, rows, position)

    def _entry(
        self, conn: Connection, position: int, e: Any, sid: str, kind: str, event_type: str, at: str | None
    ) -> None:
        """The event's entry (`at` None: its stream is erased)."""
        self._insert(
            conn,
            INSERT_ENTRY,
            {
                "position": position,
                "stream_id": sid,
                "kind": kind,
                "event_type": event_type,
                "version": e.originator_version,
                "at": at,
                "erased": at is None,
            },
            position,
        )

    @fold.register(CaseAggregate.Event)
    def _event(self, e: Any, conn: Connection, position: int) -> None:
        cls = type(e)
        found = _KIND_OF.get(cls)
        if found is None:
            found = _KIND_OF[cls] = (KINDS.get(cls.__qualname__.split(".")[0]), cls.__name__)
        kind, event_type = found
        if kind is None:
            return
        sid = stream_id_of(e)
        if e.originator_version == 1:
            if kind == "student":
                self._link(conn, sid, [sid], kind, position)
            elif kind == "case":
                self._link(conn, sid, [p["student_id"] for p in e.parties], kind, position)
            else:
                self._link(conn, sid, [e.student_id], kind, position)
        elif kind == "case" and event_type == "PartyAdded":
            self._link(conn, sid, [e.student_id], kind, position)
        elif kind == "case" and event_type == "PartyRemoved":
            self._execute(conn, DELETE_LINK, {"sid": sid, "student": e.student_id}, position)
        at = getattr(e, "at", None) or e.timestamp
        self._entry(conn, position, e, sid, kind, event_type, at.isoformat())
        if kind == "case" and event_type in SCOPED_TYPES:
            self._concerns(conn, position, e, sid, event_type)

    def _concerns(self, conn: Connection, position: int, e: Any, sid: str, event_type: str) -> None:
        """The students a case entry concerns (`concerns`): those it names, or those of the
        entry it refers to."""
        ref = REFERS.get(event_type)
        if ref is not None:
            subject = getattr(e, ref, None)
            students = sorted({r[0] for r in conn.execute(SUBJECT_STUDENTS, {"sid": sid, "subject": subject})})
        else:
            subject = getattr(e, SUBJECT_FIELDS[event_type], None) if event_type in SUBJECT_FIELDS else None
            students = named_students(e, event_type)
        rows = [{"position": position, "student_id": s, "stream_id": sid, "subject": subject} for s in students]
        if rows:
            self._insert(conn, INSERT_CONCERN, rows, position)

    @fold.register(ErasedEvent)
    def _erased(self, e: ErasedEvent, conn: Connection, position: int) -> None:
        agg, event_type = aggregate_of(e.topic)
        kind = KINDS.get(agg)
        if kind is None:
            return
        sid = str(e.originator_id)
        if e.originator_version == 1:
            if kind == "student":
                self._link(conn, sid, [sid], kind, position)
            else:
                linked = [r[0] for r in conn.execute(LINKED_STUDENTS, {"sid": sid})]  # the directory's, not ours
                self._link(conn, sid, linked, kind, position)
        self._entry(conn, position, e, sid, kind, event_type, None)

    def erase(self, conn: Connection, stream_id: str) -> None:
        # Which students it was about stays (ids, as the directory keeps them); when it
        # happened and everything it said is gone with the key.
        conn.execute(ERASE_ENTRIES, {"sid": stream_id})
        # Whom each entry concerned is read from its content: gone with it (see `concerns`).
        conn.execute(ERASE_CONCERNS, {"sid": stream_id})


def views(app: Source) -> list[View]:
    return [TimelineView(app), StudentNamesView(app)]


# -- queries ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TimelineEntry:
    position: int
    at: datetime | None
    stream_id: str
    kind: str
    event_type: str
    label: str
    access: str  # "full": details shown; "status": the label only
    erased: bool = False
    details: dict[str, Any] | None = None
    unreadable: bool = False  # failed authentication: its stream is quarantined

    @property
    def kind_label(self) -> str:
        return KIND_LABELS[self.kind]


@dataclass(frozen=True)
class RecordLine:
    """One of the student's cases, files or pairings as a read of the student with a
    stated reason lists it: ids and codes in words, never its content."""

    stream_id: str
    kind: str
    status: str | None
    part: str | None  # the student's part in a case
    opened: datetime | None
    changed: datetime | None
    erased: bool = False
    owner_id: str | None = None  # who answers for it (a file's counselor, a pairing's teacher)
    # What the viewer may open of it (the profile's list; "" in a list read with a reason):
    # "full", "status" (a case's or file's status line), "plan" (a file's plan, 一对一包联人).
    access: str = ""

    @property
    def kind_label(self) -> str:
        return KIND_LABELS[self.kind]

    @property
    def is_open(self) -> bool:
        return not self.erased and self.status not in DONE_STATUSES.get(self.kind, ())

    @property
    def status_label(self) -> str:
        if self.erased:
            return "已删除"
        return STATUS_LABELS.get(self.kind, {}).get(self.status or "", "")

    @property
    def part_label(self) -> str:
        return PARTS.get(self.part or "", "")


@dataclass(frozen=True)
class Timeline:
    student_id: str
    name: str | None  # None when the viewer may not see the student's identity
    entries: list[TimelineEntry]
    # Read with a stated reason: the entries are the student's own record only, and their
    # other records are listed here, each to be opened with a reason of its own.
    scoped: bool = False
    records: list[RecordLine] = field(default_factory=list)
    # Read without a reason: the student's cases, files and pairings this viewer may see
    # (each as far as the gate lets them: `RecordLine.access`), open ones first; what they
    # may not see is left out, not hinted at.
    linked: list[RecordLine] = field(default_factory=list)


# The right that shows a stream's entries, by kind; a case falls back to its status line.
READ_ACTION = {
    "student": access.STUDENT_READ,
    "case": access.CASE_READ,
    "file": access.FILE_READ,
    "pairing": access.PAIRING_READ,
    "screening": access.SCREENING_READ,
}


def _decide_student(app: Source, actor: Actor, student_id: str, break_glass: str | None) -> Decision | None:
    """Pass the gate for the student asked for: its decision, or None (refused, and the
    gate recorded the refusal: this is what the request asked for)."""
    res = app.resource("student", student_id)
    if res.kind != "student":
        raise NotFound()
    try:
        return app.authorize(actor, access.STUDENT_READ, res, break_glass)
    except PermissionDenied:
        return None


def _decide_stream(app: Source, actor: Actor, kind: str, stream_id: str) -> str | None:
    """What the timeline shows of one of the student's other records: "full", "status" (a
    case's status line) or None (left out). Nobody asked for it by name, so the rule is
    asked without recording (`permits`); only what is shown passes the gate, which records
    the allowed read: one recorded decision per stream shown, no refusal for what is left out."""
    action = READ_ACTION[kind]
    if not app.permits(actor, action, kind, stream_id):
        if kind != "case" or not app.permits(actor, access.CASE_STATUS, kind, stream_id):
            return None
        action = access.CASE_STATUS
    try:
        app.check(actor, action, kind, stream_id)
    except PermissionDenied:  # changed in between (rare): the refusal is recorded, nothing shown
        return None
    return "full" if action == READ_ACTION[kind] else "status"


_UNREADABLE: dict[str, Any] = {}  # the details of an event that failed authentication


def _stream_details(app: Source, stream_id: str) -> dict[int, dict[str, Any]]:
    """Details of every event of a stream, by version; {} if it was erased meanwhile; an
    event that fails authentication is `_UNREADABLE` (its stream quarantined), the rest shown."""
    uid = UUID(stream_id)
    out: dict[int, dict[str, Any]] = {}
    try:
        app.keystore.check_live(uid.hex)
        for stored in app.recorder.select_events(uid):
            try:
                out[stored.originator_version] = details_of(app.mapper.to_domain_event(stored))
            except ContentTampered as e:
                app.quarantine_stream(e.stream_id, e.version)
                out[stored.originator_version] = _UNREADABLE
    except ContentErased:
        return {}
    return out


# What a read of a student with a stated reason lists of their other records.
LISTED_KINDS = ("case", "file", "pairing")
# The directory's statuses of a record no longer being worked on, by kind.
DONE_STATUSES = {"case": ("closed",), "file": ("closed",), "pairing": ("ended",)}


def _file_part(app: Source, actor: Actor, stream_id: str) -> str | None:
    """What the viewer may see of a file they may not read whole: its plan (the one-to-one
    responsible person, FILE_PLAN) or its status (FILE_STATUS), passed through the gate and
    recorded like any read shown; None: nothing (left out, nothing recorded)."""
    for action, level in ((access.FILE_PLAN, "plan"), (access.FILE_STATUS, "status")):
        if app.permits(actor, action, "file", stream_id):
            try:
                app.check(actor, action, "file", stream_id)
            except PermissionDenied:
                return None
            return level
    return None


def _record_lines(
    app: Source, student_id: str, streams: list[tuple[str, str]], access: dict[str, str] | None = None
) -> list[RecordLine]:
    """The student's cases, files and pairings as a list (ids and codes from the
    directory, dates from this view's entries): no content is read. `access`: what the
    viewer may open of each (the profile's list)."""
    listed = [sid for sid, kind in streams if kind in LISTED_KINDS and sid != student_id]
    if not listed:
        return []
    directory = {
        r[0]: (r[1], r[2], bool(r[3]), r[4])
        for r in app.db.fetch_in(
            "SELECT stream_id, kind, status, erased, owner_id FROM {t}anxin_directory WHERE stream_id IN ({marks})",
            listed,
        )
    }
    parts = {
        r[0]: r[1]
        for r in app.db.fetch_in(
            "SELECT stream_id, part FROM {t}anxin_links WHERE student_id = ? AND stream_id IN ({marks})",
            listed,
            (student_id,),
        )
    }
    dates: dict[str, list[datetime]] = {}
    with app.views.engine.connect() as conn:
        for sid, at in conn.execute(
            select(entries.c.stream_id, entries.c.at)
            .where(entries.c.stream_id.in_(listed), entries.c.at.is_not(None))
            .order_by(entries.c.position)
        ):
            dates.setdefault(sid, []).append(datetime.fromisoformat(at))
    out = []
    for sid in listed:
        kind, status, erased, owner = directory.get(sid, (dict(streams)[sid], None, True, None))
        when = dates.get(sid, [])
        out.append(
            RecordLine(
                stream_id=sid,
                kind=kind,
                status=status,
                part=parts.get(sid) if kind == "case" else None,
                opened=when[0] if when else None,
                changed=when[-1] if when else None,
                erased=erased,
                owner_id=owner if kind in ("file", "pairing") else None,
                access=(access or {}).get(sid, ""),
            )
        )
    # Newest first; erased ones (no dates left) last.
    return sorted(out, key=lambda r: (r.opened is not None, r.opened or datetime.min, r.stream_id), reverse=True)


def _entries_of(student_id: str, visible: list[str]) -> Any:
    """The entries of the visible streams that the student's timeline shows, in log order:
    an entry that concerns some students only if this student is one of them; an erased
    entry that may have concerned some students only (whom is not known any more), never;
    any other, always (see `concerns`). One indexed query."""
    mine = exists().where(concerns.c.position == entries.c.position, concerns.c.student_id == student_id)
    anyone = exists().where(concerns.c.position == entries.c.position)
    erased_scoped = and_(entries.c.kind == "case", entries.c.erased, entries.c.event_type.in_(sorted(SCOPED_TYPES)))
    return (
        select(entries)
        .where(entries.c.stream_id.in_(visible), or_(mine, and_(~anyone, not_(erased_scoped))))
        .order_by(entries.c.position)
    )


def timeline(app: Source, actor: Actor, student_id: str, break_glass: str | None = None) -> Timeline:
    """Everything about one student, oldest first, as far as the viewer may see it. With a
    stated reason (a supervisor's break-glass): the student's own record and the list of
    their other records, one recorded read (see the module's docstring)."""
    decision = _decide_student(app, actor, student_id, break_glass)
    if decision is None:
        # Not this person's student: no timeline at all, not even the status lines of
        # cases they may otherwise follow (that would say who else is involved).
        raise PermissionDenied(reason="无权查看该学生的记录")
    scoped = decision.break_glass
    decisions: dict[str, str | None] = {student_id: "full"}
    app.views.catch_up()
    with app.views.engine.connect() as conn:
        streams = [
            (str(sid), str(kind))
            for sid, kind in conn.execute(
                select(links.c.stream_id, links.c.kind)
                .where(links.c.student_id == student_id)
                .order_by(links.c.kind, links.c.stream_id)
            ).all()
        ]
    for sid, kind in streams:
        if sid not in decisions and not scoped:
            decisions[sid] = _decide_stream(app, actor, kind, sid)
    visible = [sid for sid, d in decisions.items() if d is not None]
    if not visible:
        raise PermissionDenied(reason="无权查看该学生的任何记录")
    with app.views.engine.connect() as conn:
        rows = conn.execute(_entries_of(student_id, visible)).mappings().all()
    details: dict[str, dict[int, dict[str, Any]]] = {}
    out = []
    for r in rows:
        sid, level, erased = r["stream_id"], decisions[r["stream_id"]], bool(r["erased"])
        d = None
        if level == "full" and not erased:
            if sid not in details:
                details[sid] = _stream_details(app, sid)
            d = details[sid].get(r["version"])
        unreadable = d is _UNREADABLE
        if unreadable:
            d = None
        out.append(
            TimelineEntry(
                position=r["position"],
                at=datetime.fromisoformat(r["at"]) if r["at"] else None,
                stream_id=sid,
                kind=r["kind"],
                event_type=r["event_type"],
                label=LABELS.get((r["kind"], r["event_type"]), r["event_type"]),
                access=level or "status",
                erased=erased or (level == "full" and d is None and not unreadable),
                details=d,
                unreadable=unreadable,
            )
        )
    name = app.student_ref(student_id).name if decisions[student_id] == "full" else None
    records = _record_lines(app, student_id, streams) if scoped else []
    linked: list[RecordLine] = []
    if not scoped:
        shown = {sid: d for sid, d in decisions.items() if d is not None}
        for sid, kind in streams:
            if kind == "file" and sid not in shown and (part := _file_part(app, actor, sid)) is not None:
                shown[sid] = part
        lines = _record_lines(app, student_id, [(sid, k) for sid, k in streams if sid in shown], shown)
        linked = sorted(lines, key=lambda r: (not r.is_open, LISTED_KINDS.index(r.kind)))  # stable: newest first
    return Timeline(student_id=student_id, name=name, entries=out, scoped=scoped, records=records, linked=linked)


__all__ = [
    "TimelineView",
    "StudentNamesView",
    "NAMING_FIELDS",
    "REFERS",
    "SCOPED_TYPES",
    "named_students",
    "Timeline",
    "TimelineEntry",
    "RecordLine",
    "LABELS",
    "KIND_LABELS",
    "DETAIL_FIELDS",
    "timeline",
    "search_students",
    "name_tokens",
    "query_tokens",
    "name_parts",
    "split_name",
    "normalize_name",
    "NAMES",
    "names",
    "views",
]
