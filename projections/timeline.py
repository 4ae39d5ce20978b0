"""The student timeline, and searching students by name with a keyed blind index.

Timeline (`v_timeline_links`, `v_timeline_entries`): every event of every stream about
a student, in the order the log recorded them: their own Student stream, the bullying
cases where they are a party, their support files, their screening records and their
pairings (with the check-ins). An entry is ids only: the stream, its kind, the event
type, the event's position in the log and its time; `v_timeline_links` says which
students a stream is about (a party added later sees the whole case, a party removed
no longer does). No text is stored.

At read time the gate decides per entry, once per stream (not once per entry, so a
page view records a handful of decisions, not hundreds): STUDENT_READ for the
student's own stream, CASE_READ (else CASE_STATUS: labels only) for a case, FILE_READ
for a file, PAIRING_READ for a pairing, SCREENING_READ for a screening record. Entries
of a stream the viewer may not see are left out; every entry shown has a short Chinese
label from `LABELS`, and details (the note, the statement, the result) only where the
viewer may read the whole stream, loaded from the stream then.

Name search (`v_student_names`): tokens HMAC(index key, school + normalized name) for
the full name, the surname and the given name of every student (`keystore.blind`);
the table never holds a name. Shredding a student deletes their tokens.

Erased streams: their entries stay as erased (type and position, no time, no
details); a rebuild gives the same rows (an erased stream's links come from the
directory, as the gate knows them).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

from eventsourcing.dispatch import singledispatchmethod
from sqlalchemy import (
    BigInteger,
    Boolean,
    Connection,
    Index,
    PrimaryKeyConstraint,
    bindparam,
    delete,
    select,
    text,
    update,
)

from domain import access
from domain.access import Decision, Resource, decide
from domain.common import (
    Actor,
    CaseAggregate,
    ContentErased,
    ContentTampered,
    NotFound,
    PermissionDenied,
)
from domain.roster import Student
from projections.base import (
    Column,
    ErasedEvent,
    Integer,
    String,
    Table,
    View,
    metadata,
    stream_id_of,
)
from projections.support_register import BulkInserts, aggregate_of, enrolment, student_refs

if TYPE_CHECKING:
    from projections.base import Source, StudentRef

NAME = "timeline"
NAMES = "student_names"

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

names = Table(
    "v_student_names",
    metadata,
    Column("token", String(64), nullable=False),
    Column("student_id", String(36), nullable=False),
    Column("school_id", String(36), nullable=False),
    PrimaryKeyConstraint("token", "student_id"),
    Index("v_student_names_student", "student_id"),
)

# Statements built once (a handler only binds values: no statement building per event).
INSERT_LINK = links.insert()
DELETE_LINK = delete(links).where(links.c.stream_id == bindparam("sid"), links.c.student_id == bindparam("student"))
INSERT_ENTRY = entries.insert()
ERASE_ENTRIES = update(entries).where(entries.c.stream_id == bindparam("sid")).values(at=None, erased=True)
LINKED_STUDENTS = text("SELECT DISTINCT student_id FROM anxin_links WHERE stream_id = :sid")
INSERT_NAME = names.insert()
DELETE_NAMES = delete(names).where(names.c.student_id == bindparam("sid"))
SCHOOL_OF = select(names.c.school_id).where(names.c.student_id == bindparam("sid")).limit(1)

# A short description of every event, by (stream kind, event type).
LABELS: dict[tuple[str, str], str] = {
    ("student", "Enrolled"): "入学登记",
    ("student", "DetailsCorrected"): "更正学生信息",
    ("student", "Left"): "离校",
    ("case", "Reported"): "报告疑似欺凌",
    ("case", "PartyAdded"): "增加当事人",
    ("case", "PartyRemoved"): "移除当事人",
    ("case", "SafetyMeasureTaken"): "采取安全措施",
    ("case", "StatementRecorded"): "记录陈述",
    ("case", "EvidenceNoted"): "记录证据",
    ("case", "InvestigationStarted"): "开始调查",
    ("case", "InvestigationCompleted"): "完成调查",
    ("case", "Determined"): "欺凌治理委员会作出认定",
    ("case", "DeterminationApproved"): "校长批准认定",
    ("case", "DeterminationReturned"): "校长退回认定",
    ("case", "MandatoryReportMade"): "强制报告",
    ("case", "InterventionPlanned"): "制定干预措施",
    ("case", "InterventionProgressRecorded"): "记录干预进展",
    ("case", "InterventionCompleted"): "完成干预",
    ("case", "AppealLodged"): "提出申诉",
    ("case", "AppealReviewed"): "申诉复查结果",
    ("case", "FollowUpRecorded"): "回访",
    ("case", "Closed"): "结案",
    ("case", "Reopened"): "重新开启案件",
    ("case", "StatementCorrected"): "更正陈述",
    ("case", "EvidenceCorrected"): "更正证据",
    ("case", "NarrativeCorrected"): "更正事情经过",
    ("case", "ReportCorrected"): "更正报告信息",
    ("case", "FollowUpCorrected"): "更正回访记录",
    ("file", "Opened"): "建立心理档案",
    ("file", "RiskLevelRaised"): "提高风险等级",
    ("file", "RiskLevelLowered"): "降低风险等级",
    ("file", "CategoryChanged"): "调整档案类别",
    ("file", "ResponsibleReassigned"): "更换一对一负责人",
    ("file", "PlanDrawnUp"): "制定帮扶方案",
    ("file", "PlanRevised"): "修订帮扶方案",
    ("file", "SessionRecorded"): "心理辅导",
    ("file", "GuardianContacted"): "家校联系",
    ("file", "ReferralMade"): "转介",
    ("file", "CrisisInterventionRecorded"): "危机干预",
    ("file", "PlanReviewed"): "方案复评",
    ("file", "EntryCorrected"): "更正档案记录",
    ("file", "Closed"): "档案结案",
    ("file", "Reopened"): "重新开启档案",
    ("screening", "ScreeningRecordOpened"): "建立本学年筛查记录",
    ("screening", "ScreeningRecorded"): "心理筛查",
    ("pairing", "Paired"): "一岗双带结对",
    ("pairing", "CheckInRecorded"): "记录谈心",
    ("pairing", "CheckInCorrected"): "更正谈心记录",
    ("pairing", "ConcernEscalated"): "担忧上报",
    ("pairing", "CadenceChanged"): "调整谈心频率",
    ("pairing", "Ended"): "结束结对",
}
KIND_LABELS = {
    "student": "学生信息",
    "case": "欺凌案件",
    "file": "心理档案",
    "screening": "心理筛查",
    "pairing": "一岗双带",
}

# The fields shown as an entry's details (for a viewer with full read), in this order.
DETAIL_FIELDS = (
    "name",
    "grade",
    "class_name",
    "changes",
    "channel",
    "occurred_at",
    "place",
    "forms",
    "parties",
    "narrative",
    "reporter_note",
    "student_id",
    "part",
    "kind",
    "method",
    "notified_at",
    "student_ids",
    "from_person",
    "from_student_id",
    "taken_on",
    "text",
    "description",
    "reference",
    "findings",
    "bullying",
    "severity",
    "horseplay",
    "agency",
    "reported_at",
    "plan",
    "note",
    "outcome",
    "grounds",
    "lodged_on",
    "decided_on",
    "new_determination",
    "held_on",
    "notes",
    "concern",
    "concern_note",
    "target",
    "target_id",
    "category",
    "risk_level",
    "from_level",
    "to_level",
    "from_category",
    "to_category",
    "goals",
    "measures",
    "summary",
    "duration_minutes",
    "next_steps",
    "contacted_on",
    "guardian",
    "to",
    "occurred_on",
    "what_happened",
    "actions_taken",
    "reviewed_on",
    "instrument",
    "instrument_name",
    "total",
    "band_label",
    "flagged",
    "crisis",
    "screened_on",
    "school_year",
    "cadence_days",
    "corrects",
    "reason",
    "actor",
)


_KIND_OF: dict[type, tuple[str | None, str]] = {}  # (stream kind, event type) by event class


class TimelineView(BulkInserts, View):
    name = NAME
    tables = (links, entries)

    def __init__(self, app: Source) -> None:
        self.app = app
        self._reset()

    @singledispatchmethod
    def fold(self, event: Any, conn: Connection, position: int) -> None:  # type: ignore[override]
        """Events this view does not know are ignored (each view has its own dispatcher)."""

    def _link(self, conn: Connection, stream_id: str, student_ids: Iterable[str], kind: str, position: int) -> None:
        rows = [{"stream_id": stream_id, "student_id": s, "kind": kind} for s in sorted(set(student_ids))]
        if rows:
            self._insert(conn, INSERT_LINK, rows, position)

    @fold.register
    def _(self, e: CaseAggregate.Event, conn: Connection, position: int) -> None:
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
        self._insert(
            conn,
            INSERT_ENTRY,
            {
                "position": position,
                "stream_id": sid,
                "kind": kind,
                "event_type": event_type,
                "version": e.originator_version,
                "at": at.isoformat(),
                "erased": False,
            },
            position,
        )

    @fold.register
    def _(self, e: ErasedEvent, conn: Connection, position: int) -> None:
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
        self._insert(
            conn,
            INSERT_ENTRY,
            {
                "position": position,
                "stream_id": sid,
                "kind": kind,
                "event_type": event_type,
                "version": e.originator_version,
                "at": None,
                "erased": True,
            },
            position,
        )

    def erase(self, conn: Connection, stream_id: str) -> None:
        # Which students it was about stays (ids, as the directory keeps them); when it
        # happened and everything it said is gone with the key.
        conn.execute(ERASE_ENTRIES, {"sid": stream_id})


# -- the blind index --------------------------------------------------------------------------
# Two-character surnames (复姓); any other name's surname is its first character.
COMPOUND_SURNAMES = frozenset(
    "欧阳 司马 上官 诸葛 东方 皇甫 尉迟 公孙 慕容 长孙 宇文 司徒 夏侯 轩辕 令狐 端木 独孤 南宫 西门 百里 "
    "呼延 钟离 闻人 赫连 澹台 公冶 太叔 申屠 濮阳 淳于 单于 仲孙 万俟 司空 鲜于 闾丘 亓官 拓跋 左丘 东郭 "
    "歐陽 諸葛 皇甫 尉遲 長孫 宇文 司徒 夏侯 軒轅 令狐 端木 獨孤 南宮 鍾離".split()
)
_SEPARATORS = re.compile(r"[\s·•・.\-]+")


def name_parts(name: str) -> list[str]:
    """A name, normalized (NFKC, lower case) and cut at spaces and middle dots."""
    text_ = unicodedata.normalize("NFKC", name or "").strip().lower()
    return [p for p in _SEPARATORS.split(text_) if p]


def normalize_name(name: str) -> str:
    return "".join(name_parts(name))


def split_name(name: str) -> tuple[str, str]:
    """(surname, given name). A Chinese name: a two-character surname if it is one of
    the 复姓, else the first character. A name written in parts: the first part, the rest."""
    parts = name_parts(name)
    if not parts:
        return "", ""
    if len(parts) > 1:
        return parts[0], "".join(parts[1:])
    full = parts[0]
    n = 2 if len(full) > 2 and full[:2] in COMPOUND_SURNAMES else 1
    return full[:n], full[n:]


def name_tokens(app: Source, school_id: str, name: str) -> set[str]:
    """Blind-index tokens of a student's name: the full name, the surname, the given
    name, each bound to the school (so tokens say nothing across schools)."""
    surname, given = split_name(name)
    out = set()
    for purpose, value in (
        ("student-name", normalize_name(name)),
        ("student-surname", surname),
        ("student-given", given),
    ):
        if value:
            out.add(app.keystore.blind(purpose, f"{school_id}\x1f{value}"))
    return out


def query_tokens(app: Source, school_id: str, query: str) -> set[str]:
    """What a search for `query` matches: a full name, a surname or a given name."""
    value = normalize_name(query)
    if not value:
        return set()
    return {
        app.keystore.blind(p, f"{school_id}\x1f{value}") for p in ("student-name", "student-surname", "student-given")
    }


class StudentNamesView(BulkInserts, View):
    name = NAMES
    tables = (names,)

    def __init__(self, app: Source) -> None:
        self.app = app
        self._reset()
        # The index key is created on first use: make sure that happens now, not inside
        # a view transaction (SQLite has one writer).
        app.keystore.ensure_index_key()

    @singledispatchmethod
    def fold(self, event: Any, conn: Connection, position: int) -> None:  # type: ignore[override]
        """Events this view does not know are ignored (each view has its own dispatcher)."""

    def _index(self, conn: Connection, student_id: str, school_id: str, name: str, position: int) -> None:
        tokens = sorted(name_tokens(self.app, school_id, name))
        if tokens:
            self._insert(
                conn,
                INSERT_NAME,
                [{"token": t, "student_id": student_id, "school_id": school_id} for t in tokens],
                position,
            )

    @fold.register
    def _(self, e: Student.Enrolled, conn: Connection, position: int) -> None:
        self._index(conn, str(e.originator_id), e.school_id, e.name, position)

    @fold.register
    def _(self, e: Student.DetailsCorrected, conn: Connection, position: int) -> None:
        if "name" not in e.changes:
            return
        sid = str(e.originator_id)
        school_id = self._execute(conn, SCHOOL_OF, {"sid": sid}, position).scalar()
        conn.execute(DELETE_NAMES, {"sid": sid})
        if school_id is not None:
            self._index(conn, sid, school_id, e.changes["name"], position)

    def erase(self, conn: Connection, stream_id: str) -> None:
        conn.execute(DELETE_NAMES, {"sid": stream_id})


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
class Timeline:
    student_id: str
    name: str | None  # None when the viewer may not see the student's identity
    entries: list[TimelineEntry]


# The right that shows a stream's entries, by kind; a case falls back to its status line.
READ_ACTION = {
    "student": access.STUDENT_READ,
    "case": access.CASE_READ,
    "file": access.FILE_READ,
    "pairing": access.PAIRING_READ,
    "screening": access.SCREENING_READ,
}


def _decide_stream(app: Source, actor: Actor, kind: str, stream_id: str, break_glass: str | None) -> str | None:
    """Pass the gate for one stream: "full", "status" (a case's status line) or None
    (denied; the gate recorded it). One recorded decision per stream."""
    res = app.resource(kind, stream_id)
    if res.kind != kind:
        raise NotFound()
    action = READ_ACTION[kind]
    if kind == "case" and not decide(actor, action, res, break_glass).allowed:
        action = access.CASE_STATUS
    try:
        app.authorize(actor, action, res, break_glass)
    except PermissionDenied:
        return None
    return "full" if action == READ_ACTION[kind] else "status"


def _details(e: Any) -> dict[str, Any]:
    state = vars(e)
    out = {}
    for k in DETAIL_FIELDS:
        v = state.get(k)
        if v is None or v == "" or v == [] or v == {}:
            continue
        out[k] = v
    return out


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
                out[stored.originator_version] = _details(app.mapper.to_domain_event(stored))
            except ContentTampered as e:
                app.quarantine_stream(e.stream_id, e.version)
                out[stored.originator_version] = _UNREADABLE
    except ContentErased:
        return {}
    return out


def timeline(app: Source, actor: Actor, student_id: str, break_glass: str | None = None) -> Timeline:
    """Everything about one student, oldest first, as far as the viewer may see it."""
    decisions: dict[str, str | None] = {student_id: _decide_stream(app, actor, "student", student_id, break_glass)}
    if decisions[student_id] is None:
        # Not this person's student: no timeline at all, not even the status lines of
        # cases they may otherwise follow (that would say who else is involved).
        raise PermissionDenied(reason="无权查看该学生的记录")
    app.views.catch_up()  # type: ignore[attr-defined]
    with app.views.engine.connect() as conn:  # type: ignore[attr-defined]
        streams = conn.execute(
            select(links.c.stream_id, links.c.kind)
            .where(links.c.student_id == student_id)
            .order_by(links.c.kind, links.c.stream_id)
        ).all()
    for sid, kind in streams:
        if sid not in decisions:
            decisions[sid] = _decide_stream(app, actor, kind, sid, break_glass)
    visible = [sid for sid, d in decisions.items() if d is not None]
    if not visible:
        raise PermissionDenied(reason="无权查看该学生的任何记录")
    with app.views.engine.connect() as conn:  # type: ignore[attr-defined]
        rows = (
            conn.execute(select(entries).where(entries.c.stream_id.in_(visible)).order_by(entries.c.position))
            .mappings()
            .all()
        )
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
    return Timeline(student_id=student_id, name=name, entries=out)


def search_students(
    app: Source, actor: Actor, school_id: str, name: str, break_glass: str | None = None, *, limit: int = 50
) -> list[StudentRef]:
    """Students of a school whose full name, surname or given name is `name` (at most
    `limit`, by class), with their names resolved now. STUDENT_READ for the school: every
    match; a class teacher (STUDENT_READ for their classes): the matches in their classes;
    anyone else is refused. One recorded decision per search."""
    school = app.resource("student", school_id=school_id)
    whole: Decision = decide(actor, access.STUDENT_READ, school, break_glass)
    if whole.allowed:
        app.authorize(actor, access.STUDENT_READ, school, break_glass)
    else:
        app.authorize(
            actor,
            access.STUDENT_READ,
            Resource(
                kind="student",
                school_id=school_id,
                classes=frozenset(actor.classes),
                district=school.district,
            ),
            break_glass,
        )
    app.views.catch_up()  # type: ignore[attr-defined]
    tokens = sorted(query_tokens(app, school_id, name))
    if not tokens:
        return []
    q = (
        select(names.c.student_id, enrolment.c.class_name)
        .distinct()
        .select_from(names.outerjoin(enrolment, enrolment.c.student_id == names.c.student_id))
        .where(names.c.token.in_(tokens), names.c.school_id == school_id)
    )
    if not whole.allowed:
        q = q.where(enrolment.c.class_name.in_(sorted(actor.classes)))
    q = q.order_by(enrolment.c.class_name, names.c.student_id).limit(limit)
    with app.views.engine.connect() as conn:  # type: ignore[attr-defined]
        ids = [r[0] for r in conn.execute(q)]
    return sorted(student_refs(app, ids), key=lambda r: (r.erased, r.class_name or "", r.student_no or "", r.id))


__all__ = [
    "TimelineView",
    "StudentNamesView",
    "Timeline",
    "TimelineEntry",
    "LABELS",
    "timeline",
    "search_students",
    "name_tokens",
    "split_name",
    "normalize_name",
    "views",
]
