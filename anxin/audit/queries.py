"""The supervisor's audit queries, through the gate and themselves audited: a case's
history, a student's accesses, break-glass and denied lists, CSV export."""

from __future__ import annotations

import json
from typing import IO, TYPE_CHECKING, Any
from uuid import UUID

from anxin import numbers
from domain import access
from domain.access import Resource
from domain.common import Actor, DomainError, InvalidInput, NotFound
from projections import csvcells

if TYPE_CHECKING:
    from anxin.core import Core
from anxin.audit.chain import record, security_row, settle, unseal_reason
from anxin.audit.reviews import review_states
from anxin.audit.verification import VerifyReport, verify
from domain.break_glass import require_meaningful_reason


# -- supervisor queries (through the gate, themselves audited) --------------------------------
class _Names:
    """Staff names, resolved at read time (已删除 once erased); ids that name no person
    (system, cli) are shown as they are."""

    def __init__(self, app: Core) -> None:
        self.app = app
        self.cache: dict[str, str] = {}

    def __call__(self, staff_id: str) -> str:
        if staff_id not in self.cache:
            try:
                UUID(staff_id)
            except ValueError:
                self.cache[staff_id] = staff_id
            else:
                self.cache[staff_id] = self.app.roster.staff_name(staff_id)
        return self.cache[staff_id]


def _describe(app: Core, names: _Names, row: tuple[Any, ...]) -> dict[str, Any]:
    seq, at, kind, actor_id, subject, detail, sealed = row
    out: dict[str, Any] = {
        "seq": seq,
        "at": at,
        "kind": kind,
        "actor_id": actor_id,
        "actor": names(actor_id) if actor_id else "",
        "subject": subject,
        "what": "",
        "version": None,
        "allowed": None,
        "rule": "",
        "break_glass": None,
    }
    if kind == "event":
        topic, _, version = detail.rpartition("#")
        out["what"], out["version"] = topic, int(version) if version.isdigit() else None
    elif kind == "access":
        d = json.loads(detail)
        out["what"], out["allowed"], out["rule"] = d.get("action", ""), bool(d.get("allowed")), d.get("rule", "")
        if sealed is not None:
            out["break_glass"] = unseal_reason(app, sealed, at, actor_id, out["what"], subject)
    else:
        out["what"] = detail
    return out


_SELECT = "SELECT seq, at, kind, actor_id, subject, detail, sealed FROM {t}anxin_audit "


def case_history(app: Core, actor: Actor, stream_id: str, reason: str | None = None) -> list[dict[str, Any]]:
    """Everything that happened to one case (or any stream), in order: who wrote which
    event and who was allowed or refused access, and why. `reason`: the supervisor's
    stated reason for looking, kept sealed with the gate's decision."""
    app.check(actor, access.AUDIT_READ, "case", stream_id, stated_reason=reason)
    settle(app)  # (up to this very moment: with the entries recorded but not chained yet)
    names = _Names(app)
    rows = app.db.fetch(_SELECT + "WHERE subject = ? ORDER BY seq", (str(stream_id),))
    return [_describe(app, names, r) for r in rows]


def student_access(app: Core, actor: Actor, student_id: str, reason: str | None = None) -> list[dict[str, Any]]:
    """Who accessed a student's records, and why: decisions about the student's own
    stream and every stream linked to the student (cases, files, pairings, ...)."""
    app.check(actor, access.AUDIT_READ, "student", student_id, stated_reason=reason)
    settle(app)
    streams = [str(student_id)] + [
        r[0]
        for r in app.db.fetch("SELECT DISTINCT stream_id FROM {t}anxin_links WHERE student_id = ?", (str(student_id),))
    ]
    rows: list[tuple[Any, ...]] = []
    for i in range(0, len(streams), 500):
        chunk = streams[i : i + 500]
        rows += app.db.fetch(
            _SELECT + f"WHERE kind = 'access' AND subject IN ({','.join('?' * len(chunk))})", tuple(chunk)
        )
    names = _Names(app)
    return [_describe(app, names, r) for r in sorted(rows)]


def _scope(app: Core, actor: Actor, school_id: str | None) -> tuple[str, tuple[Any, ...]]:
    """Pass the gate for a school's or the actor's district's trail; the matching filter."""
    if school_id is not None:
        app.check(actor, access.AUDIT_READ, "school", school_id=school_id)
        return "school_id = ?", (school_id,)
    app.authorize(actor, access.AUDIT_READ, Resource(kind="district", district=actor.district))
    return (
        "(district = ? OR actor_id IN (SELECT staff_id FROM {t}anxin_staff WHERE district = ?))",
        (actor.district, actor.district),
    )


def _access_rows(app: Core, where: str, params: tuple[Any, ...], limit: int | None = None) -> list[dict[str, Any]]:
    sql = (
        "SELECT id, at, 'access', actor_id, COALESCE(resource_id, ''), action, allowed, reason, break_glass, "
        "resource_kind, school_id FROM {t}anxin_access WHERE " + where + " ORDER BY id DESC"
    )
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    settle(app)
    names = _Names(app)
    out = []
    for seq, at, kind, actor_id, subject, action, allowed, rule, sealed, rkind, school in app.db.fetch(sql, params):
        out.append(
            {
                "seq": seq,
                "at": at,
                "kind": kind,
                "actor_id": actor_id,
                "actor": names(actor_id),
                "subject": subject,
                "what": action,
                "version": None,
                "allowed": bool(allowed),
                "rule": rule,
                "resource_kind": rkind,
                "school_id": school,
                "break_glass": unseal_reason(app, sealed, at, actor_id, action, subject or None) if sealed else None,
            }
        )
    return out


def break_glass_log(app: Core, actor: Actor, school_id: str | None = None) -> list[dict[str, Any]]:
    """Every break-glass access (with its stated reason), newest first, each with its
    review (`review`: 待复核, or the verdict, by whom, when, the comment; anxin.audit.reviews)."""
    where, params = _scope(app, actor, school_id)
    # (an audit lookup's stated reason is sealed the same way, but it is no break-glass)
    rows = _access_rows(app, "break_glass IS NOT NULL AND action <> 'audit.read' AND " + where, params)
    states = review_states(app, [r["seq"] for r in rows])
    return [r | {"review": states.get(r["seq"])} for r in rows]


def denied_log(app: Core, actor: Actor, school_id: str | None = None) -> list[dict[str, Any]]:
    """Every request the gate refused, newest first: somebody asked for something and was
    refused (what a page quietly leaves out, unasked, is not recorded as refused; entries
    recorded before that rule stay as they were)."""
    where, params = _scope(app, actor, school_id)
    return _access_rows(app, "allowed = 0 AND " + where, params)


def access_log(app: Core, actor: Actor, *, allowed: bool | None = None, limit: int = 1000) -> list[dict[str, Any]]:
    """Access decisions of the actor's district (about its schools, or by its people),
    newest first, in the shape `Gate.access_log` (`app.gate.access_log`) has always returned."""
    where, params = _scope(app, actor, None)
    if allowed is not None:
        where += " AND allowed = ?"
        params += (1 if allowed else 0,)
    return [
        {
            "id": r["seq"],
            "at": r["at"],
            "actor_id": r["actor_id"],
            "action": r["what"],
            "resource_kind": r["resource_kind"],
            "resource_id": r["subject"] or None,
            "allowed": r["allowed"],
            "reason": r["rule"],
            "break_glass": r["break_glass"],
        }
        for r in _access_rows(app, where, params, limit)
    ]


EXPORTS = {
    "case-history": "full history of one case (--id CASE)",
    "student-access": "who accessed one student's records, and why (--id STUDENT)",
    "break-glass": "every break-glass access, with its reason",
    "denied": "every refused request (asked for and refused)",
}
CSV_COLUMNS = [
    ("seq", "序号"),
    ("at", "时间"),
    ("kind", "类别"),
    ("actor_id", "操作人ID"),
    ("actor", "操作人"),
    ("subject", "对象ID"),
    ("number", "编号"),
    ("what", "事件/操作"),
    ("version", "版本"),
    ("allowed", "是否允许"),
    ("rule", "依据"),
    ("break_glass", "调阅理由"),
]


def query(
    app: Core,
    actor: Actor,
    what: str,
    id: str | None = None,
    school_id: str | None = None,
    reason: str | None = None,
) -> list[dict[str, Any]]:
    if what in ("case-history", "student-access") and not id:
        raise InvalidInput(reason=f"{what} 需要给出记录 id")
    if what == "case-history":
        return case_history(app, actor, str(id), reason)
    if what == "student-access":
        return student_access(app, actor, str(id), reason)
    if what == "break-glass":
        return break_glass_log(app, actor, school_id)
    if what == "denied":
        return denied_log(app, actor, school_id)
    raise InvalidInput(reason=f"未知的导出类别：{what}")


def require_reason(reason: str | None) -> str:
    """A supervisor's stated reason for reading a named record's history, trimmed; refused
    if too short to say anything (the pages and the API ask it before any history is read)."""
    return require_meaningful_reason(reason)


def export_csv(
    app: Core,
    actor: Actor,
    what: str,
    out: IO[str],
    id: str | None = None,
    school_id: str | None = None,
    reason: str | None = None,
) -> int:
    """Write one supervisor query as CSV (through the gate; `reason`: the stated reason of a
    history's read, sealed with the gate's decision as the page's own read is); the export
    is itself an entry of the trail. Each row's record by its number too (QL-2026-0003).
    Returns the number of rows written."""
    rows = query(app, actor, what, id, school_id, reason)
    known = numbers.numbers_for(app.db, {str(r["subject"]) for r in rows if r.get("subject")})
    for r in rows:
        found = known.get(str(r.get("subject") or ""))
        r["number"] = f"{found.text} {found.school}" if found is not None else None
    w = csvcells.writer(out)  # every cell safe to open in a spreadsheet
    w.writerow([label for _, label in CSV_COLUMNS])
    for r in rows:
        w.writerow(
            [
                "" if r.get(k) is None else ("是" if r[k] is True else "否" if r[k] is False else r[k])
                for k, _ in CSV_COLUMNS
            ]
        )
    subject = id or school_id or f"district:{actor.district}"
    record(app, security_row(app, "export", actor.staff_id, str(subject), {"rows": len(rows), "what": what}))
    return len(rows)


# -- finding a record by the number people see --------------------------------------------------
SHORT_NUMBER = 8  # the number pages showed before record numbers: the first 8 hex digits of an id


class Ambiguous(DomainError):
    """A number that names more than one record of the district (a record number at several
    schools, or an old 8-digit number that two ids begin with): choose one."""

    code = "ambiguous_number"
    message = "编号 {number} 对应多条记录，请选择其中一条"

    def __init__(self, number: str, matches: list[dict[str, Any]]) -> None:
        super().__init__(number=number)
        self.matches = matches


def find_streams(app: Core, actor: Actor, number: str, school_id: str | None = None) -> list[dict[str, Any]]:
    """The records of the actor's district that a typed number names: a record number
    (QL-2026-0003, however typed: anxin.numbers.parse), at the school `school_id` if given,
    else at any school of the district; a full id; or the 8 or more hex digits an id begins
    with (the number pages showed before). Ids, kinds, schools and numbers only, from the
    directory. Passing the gate is the caller's (the history read itself)."""
    parsed = numbers.parse(number)
    if parsed is not None:
        found = numbers.records_numbered(app.db, actor.district, *parsed)
        return [
            _match(n.stream_id, n.kind, n.school_id, n.school, n) for n in found if school_id in (None, n.school_id)
        ]
    text = number.strip().lower().replace("-", "")
    try:
        full = str(UUID(number.strip()))
    except ValueError:
        full = None
    if full is None and not (SHORT_NUMBER <= len(text) <= 32 and all(c in "0123456789abcdef" for c in text)):
        raise InvalidInput("编号应为页面上显示的编号，例如 QL-2026-0003")
    if full is not None:
        where, params = "d.stream_id = ?", (full,)
    else:  # stored with dashes: 8-4-4-4-12
        dashed = "-".join(p for p in (text[:8], text[8:12], text[12:16], text[16:20], text[20:]) if p)
        where, params = "d.stream_id LIKE ?", (dashed + "%",)
    rows = app.db.fetch(
        "SELECT d.stream_id, d.kind, d.school_id, s.name FROM {t}anxin_directory d "
        "JOIN {t}anxin_schools s ON s.school_id = d.school_id WHERE " + where + " AND s.district = ? "
        "ORDER BY d.stream_id LIMIT 50",
        (*params, actor.district),
    )
    known = numbers.numbers_for(app.db, [r[0] for r in rows])
    return [_match(r[0], r[1], r[2], r[3], known.get(str(r[0]))) for r in rows if school_id in (None, r[2])]


def _match(
    stream_id: str, kind: str, school_id: str, school: str, number: numbers.RecordNumber | None
) -> dict[str, Any]:
    return {
        "id": str(stream_id),
        "kind": kind,
        "school_id": school_id,
        "school": school,
        "number": number.text if number is not None else None,
    }


def resolve_stream(app: Core, actor: Actor, number: str, school_id: str | None = None) -> str:
    """The one record of the district a number names (at `school_id`, once the reader has
    chosen among several schools); NotFound if none, Ambiguous if many."""
    matches = find_streams(app, actor, number, school_id)
    if not matches and school_id is not None:
        raise NotFound("所选学校没有编号为 {number} 的记录", number=number.strip())
    if not matches:
        raise NotFound("本区没有编号为 {number} 的记录", number=number.strip())
    if len(matches) > 1:
        raise Ambiguous(number.strip(), matches)
    return str(matches[0]["id"])


def resolve_student(app: Core, actor: Actor, school_id: str, student_no: str) -> str:
    """A student of a school of the actor's district by student number (the roster's
    deterministic id); NotFound if the school has no such student."""
    if not school_id or not student_no.strip():
        raise InvalidInput("请选择学校并填写学号")
    row = app.db.fetchone(
        "SELECT 1 FROM {t}anxin_schools WHERE school_id = ? AND district = ?", (school_id, actor.district)
    )
    if row is None:
        raise NotFound("本区没有这所学校")
    sid = str(app.roster.student_id_for(school_id, student_no))
    if app.db.fetchone("SELECT 1 FROM {t}anxin_directory WHERE stream_id = ? AND kind = 'student'", (sid,)) is None:
        raise NotFound("该校没有学号为 {number} 的学生", number=student_no.strip())
    return sid


def verify_requested(app: Core, actor: Actor) -> VerifyReport:
    """The whole trail verified at a supervisor's request (the audit page's button): through
    the gate, as a read of the district's trail, and recorded as an `audit_verify` entry of
    its own with what it found (ok or failed, the head it reached, where it failed), so a
    reviewer can see who verified when and with what result. A failure to verify at all (no
    public key to check the checkpoints with) is recorded, then raised."""
    app.authorize(actor, access.AUDIT_READ, Resource(kind="district", district=actor.district))
    subject = f"district:{actor.district}"
    try:
        report = verify(app)
    except DomainError as e:
        record(app, security_row(app, "audit_verify", actor.staff_id, subject, {"error": e.code, "result": "failed"}))
        raise
    detail: dict[str, Any] = {"head_seq": report.head_seq, "result": "ok" if report.ok else "failed"}
    if report.problem is not None:
        detail |= {"problem": report.problem.reason, "seq": report.problem.seq}
    record(app, security_row(app, "audit_verify", actor.staff_id, subject, detail))
    return report


def last_verification(app: Core) -> dict[str, Any] | None:
    """The newest verification made at someone's request (its `audit_verify` entry): when,
    by whom, whether the trail was intact and the head it reached; None before the first."""
    settle(app)
    row = app.db.fetchone(
        "SELECT seq, at, actor_id, detail FROM {t}anxin_audit WHERE kind = 'audit_verify' ORDER BY seq DESC LIMIT 1"
    )
    if row is None:
        return None
    found = json.loads(row[3])
    return {
        "seq": int(row[0]),
        "at": row[1],
        "actor_id": row[2],
        "ok": found.get("result") == "ok",
        "head_seq": found.get("head_seq"),
    }


def last_checkpoint(app: Core) -> dict[str, Any] | None:
    """The newest signed checkpoint of the trail (its entry): seq, time, who took it, the
    signing key's id and the head it signed; None before the first."""
    row = app.db.fetchone(
        "SELECT seq, at, actor_id, subject, detail FROM {t}anxin_audit WHERE kind = 'checkpoint' ORDER BY seq DESC LIMIT 1"
    )
    if row is None:
        return None
    signed = json.loads(row[4])
    return {
        "seq": int(row[0]),
        "at": row[1],
        "actor_id": row[2],
        "key_id": row[3],
        "signed_seq": int(signed.get("seq", 0)),
        "entry_hash": str(signed.get("entry_hash", "")),
    }
