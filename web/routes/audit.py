"""The supervisor's audit pages (审计): a record's full history, who accessed a student
and why, every break-glass access and every refused request, each as CSV too; a record
found by the number every page shows (QL-2026-0003, anxin.numbers; or an old 8-digit one,
or a student by school and student number), always with a stated reason: a link to a
history opens the search with the record chosen, never the history itself; the history
printable and exported (POST, with the same reason); the trail's integrity (last signed
checkpoint, verification on demand, itself an `audit_verify` entry). The queries
(anxin.audit) pass the gate (AUDIT_READ), which records them; a CSV download is itself an
`export` entry of the trail."""

from __future__ import annotations

import io
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from anxin import audit
from anxin.audit import labels
from domain import access
from domain.access import Resource
from domain.common import Actor, DomainError, InvalidInput, NotFound, PermissionDenied
from web import i18n
from web.deps import App, Form, PageUser, get_web, render
from web.forms import text

router = APIRouter(include_in_schema=False)

QUERIES = {
    "break-glass": "紧急查阅记录",
    "denied": "被拒绝的访问",
    "case-history": "案件完整历史",
    "student-access": "学生记录的访问情况",
}
NEEDS_ID = {"case-history", "student-access"}


def _params(request: Request) -> tuple[str, str | None, str | None]:
    q = request.query_params
    what = q.get("what") or "break-glass"
    return what, (q.get("id") or "").strip() or None, q.get("school") or None


def _when(at: str) -> datetime | None:
    try:
        return datetime.fromisoformat(at)
    except (TypeError, ValueError):
        return None


def _shown(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each trail row in words: what happened (an event's label, an action's), the kind of
    entry, who (staff by name; the system and the command line said so), when (a time)."""
    out = []
    for r in rows:
        kind = r.get("kind", "")
        what = r.get("what", "")
        if kind == "event":
            label = labels.topic_label(what)
        elif kind == "access":
            label = labels.action_label(what)
        else:
            label = labels.kind_label(kind)
        actor_id = r.get("actor_id") or ""
        actor = labels.ACTOR_LABELS.get(actor_id) or r.get("actor") or ""
        out.append(
            r
            | {
                "when": _when(r.get("at", "")),
                "label": label,
                "kind_label": labels.kind_label(kind),
                "actor_label": actor,
                "raw": f"{what} #{r['version']}" if r.get("version") is not None else what,
            }
        )
    return out


def _context(request: Request, user: Any, app: Any, what: str, **more: Any) -> dict[str, Any]:
    schools = [(sid, name) for sid, name, d in app.schools() if d == user.actor.district]
    checkpoint = audit.last_checkpoint(app)
    if checkpoint is not None:
        checkpoint["when"] = _when(checkpoint["at"])
        checkpoint["actor"] = labels.ACTOR_LABELS.get(checkpoint["actor_id"]) or get_web(request).staff_name(
            checkpoint["actor_id"]
        )
    recorded = audit.last_verification(app)
    if recorded is not None:
        recorded["when"] = _when(recorded["at"])
        recorded["actor"] = get_web(request).staff_name(recorded["actor_id"])
    context: dict[str, Any] = {
        "queries": QUERIES,
        "what": what,
        "id": "",
        "school": "",
        "schools": schools,
        "rows": None,
        "error": None,
        "query": request.url.query,
        "found": None,
        "matches": None,
        "picked": None,
        "reason": "",
        "number": "",
        "in_school": "",
        "student_no": "",
        "checkpoint": checkpoint,
        "verification": get_web(request).last_verification,
        "recorded_verification": recorded,
        "kinds": labels.record_kind_label,
        "numbers": {},
    }
    return context | more


def _numbers(app: Any, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The numbers (QL-2026-0003) of the records the rows are about, in one query."""
    return app.record_numbers({str(r["subject"]) for r in rows if r.get("subject")})  # type: ignore[no-any-return]


@router.get("/audit")
def audit_page(request: Request, user: PageUser, app: App) -> Response:
    what, id_, school = _params(request)
    context = _context(request, user, app, what, id=id_ or "", school=school or "")
    if what not in QUERIES:
        return render(request, "audit/audit.html", 400, **context | {"error": i18n.gettext("未知的查询类别")})
    if what in NEEDS_ID:
        return _find_form(request, user, app, context, id_)
    rows = audit.query(app, user.actor, what, id_, school)
    return render(request, "audit/audit.html", **context | {"rows": _shown(rows), "numbers": _numbers(app, rows)})


def _find_form(request: Request, user: Any, app: Any, context: dict[str, Any], id_: str | None) -> Response:
    """A record's history is read only with a stated reason: a link to one (from a row of
    the lists) opens the search form with the record chosen (its number, its school), and
    reads nothing of its history. Looking the record up is a search of the district's
    directory, which passes the gate as a read of the district's trail (as the search does)."""
    if not id_:
        return render(request, "audit/audit.html", **context)
    _district(app, user.actor)
    try:
        matches = audit.find_streams(app, user.actor, id_)
    except InvalidInput:
        matches = []
    if len(matches) != 1:
        return render(request, "audit/audit.html", 404, **context | {"error": i18n.gettext("找不到该编号的记录")})
    picked = matches[0] | {"label": _record_label(matches[0])}
    return render(
        request,
        "audit/audit.html",
        **context | {"picked": picked, "number": picked["number"] or "", "in_school": picked["school_id"]},
    )


def _district(app: Any, actor: Actor) -> None:
    """The district's trail, through the gate (recorded): searching it."""
    app.authorize(actor, access.AUDIT_READ, Resource(kind="district", district=actor.district))


def _chosen(app: Any, actor: Actor, form: dict[str, Any]) -> str:
    """The record (or student) the search form names: a student by school and student
    number; a typed number, at the school chosen when it exists at several (`in_school`);
    else a record chosen from a link or from a list of several (`stream`: its id)."""
    if (text(form, "way") or "case") == "student":
        return str(audit.resolve_student(app, actor, text(form, "school"), text(form, "student_no")))
    number, picked = text(form, "number"), text(form, "stream")
    if not number and not picked:
        raise InvalidInput("请填写编号")
    if number:
        return str(audit.resolve_stream(app, actor, number, text(form, "in_school") or None))
    return str(audit.resolve_stream(app, actor, picked))


def _found(app: Any, actor: Actor, stream: str, way: str) -> dict[str, Any]:
    """What the history is of, for its header: the record's kind, number and school (none
    known for a record of no school, e.g. a district staff member's)."""
    matches = audit.find_streams(app, actor, stream)
    match = matches[0] if matches else {"id": stream, "kind": None, "school_id": None, "school": "", "number": None}
    return match | {"way": way, "label": _record_label(match)}


def _record_label(match: dict[str, Any]) -> str:
    """A record in words for a header: its kind, its number, its school (欺凌案件 QL-2026-0003
    · 第一中学); a record without a number by its kind and school alone."""
    kind = i18n.gettext(labels.record_kind_label(match["kind"])) if match.get("kind") else i18n.gettext("记录")
    return " · ".join(p for p in (f"{kind} {match['number'] or ''}".strip(), match.get("school") or "") if p)


@router.post("/audit/find")
def audit_find(request: Request, user: PageUser, form: Form) -> Response:
    """A record by its number (QL-2026-0003, an old 8-digit one or a full id), or a student
    by school and student number; read with the stated reason, which the gate keeps sealed
    with its decision. The page is also the history's printable form (a print stylesheet)
    and its CSV export (POST /audit/history.csv, with the same reason)."""
    way = text(form, "way") or "case"
    reason = text(form, "reason")
    fields = {k: text(form, k) for k in ("number", "school", "student_no", "in_school")}
    with get_web(request).writing() as app:
        what = "student-access" if way == "student" else "case-history"
        context = _context(request, user, app, what, **fields, reason=reason)
        _district(app, user.actor)
        try:
            audit.require_reason(reason)
            stream = _chosen(app, user.actor, form)
            rows = audit.query(app, user.actor, what, stream, reason=reason)
        except audit.Ambiguous as e:
            return render(
                request, "audit/audit.html", 409, **context | {"error": i18n.error_text(e), "matches": e.matches}
            )
        except NotFound as e:
            return render(request, "audit/audit.html", 404, **context | {"error": i18n.error_text(e)})
        except InvalidInput as e:
            return render(request, "audit/audit.html", 400, **context | {"error": i18n.error_text(e)})
        found = _found(app, user.actor, stream, way)
        printed = {"by": get_web(request).staff_name(user.actor.staff_id), "at": app.now()}
        return render(
            request,
            "audit/audit.html",
            **context
            | {"rows": _shown(rows), "numbers": _numbers(app, rows), "found": found, "id": stream, "printed": printed},
        )


@router.post("/audit/history.csv")
def audit_history_csv(request: Request, user: PageUser, form: Form) -> Response:
    """A history found on the page, as CSV: read again with the same stated reason (the gate
    records the read with it) and recorded as an `export` entry of the trail; every cell
    through the CSV neutraliser. Made in memory, nothing written to disk."""
    way = text(form, "way") or "case"
    what = "student-access" if way == "student" else "case-history"
    out = io.StringIO()
    with get_web(request).writing() as app:
        _district(app, user.actor)
        try:
            reason = audit.require_reason(text(form, "reason"))
            stream = audit.resolve_stream(app, user.actor, text(form, "stream"))
            audit.export_csv(app, user.actor, what, out, stream, reason=reason)
        except (InvalidInput, NotFound) as e:
            status = 404 if isinstance(e, NotFound) else 400
            return Response(i18n.error_text(e), status_code=status, media_type="text/plain; charset=utf-8")
        number = app.record_numbers([stream]).get(stream)
    name = f"anxin-audit-{what}-{number.text if number is not None else stream[:8]}.csv"
    return _csv(out, name)


@router.post("/audit/verify")
def audit_verify(request: Request, user: PageUser) -> Response:
    """Verify the whole trail now (what `anxin audit verify` does) and show the result; the
    request passes the gate as a read of the district's trail, and the verification is an
    `audit_verify` entry of the trail with its result (anxin.audit.verify_requested)."""
    web = get_web(request)
    with web.writing() as app:
        try:
            report = audit.verify_requested(app, user.actor)
            result: dict[str, Any] = {
                "ok": report.ok,
                "entries": report.entries,
                "events": report.events,
                "checkpoints": report.checkpoints,
                "head_seq": report.head_seq,
                "problem": report.problem,
                "seconds": report.seconds,
            }
        except PermissionDenied:
            raise
        except DomainError as e:  # no public key to check the checkpoints with
            result = {"ok": False, "error": i18n.error_text(e), "problem": None}
        result |= {"when": app.now(), "by": web.staff_name(user.actor.staff_id)}
        web.last_verification = result
        context = _context(request, user, app, "break-glass")
    return render(request, "audit/audit.html", 200 if result["ok"] else 409, **context | {"verified_now": True})


@router.get("/audit.csv")
def audit_csv(request: Request, user: PageUser) -> Response:
    """A list (break-glass accesses, refused requests) as CSV, recorded as an `export` entry.
    A record's history is exported from its page, with the stated reason (POST)."""
    what, id_, school = _params(request)
    if what not in QUERIES or what in NEEDS_ID:
        return Response(i18n.gettext("未知的查询类别"), status_code=400, media_type="text/plain; charset=utf-8")
    out = io.StringIO()
    with get_web(request).writing() as app:
        audit.export_csv(app, user.actor, what, out, id_, school)
    return _csv(out, f"anxin-audit-{what}.csv")


def _csv(out: io.StringIO, name: str) -> Response:
    return Response(
        "\ufeff" + out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
