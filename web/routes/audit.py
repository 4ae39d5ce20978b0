"""The supervisor's audit pages (审计): a case's full history, who accessed a student
and why, every break-glass access and every refused request, each as CSV too; a record
found by the number every page shows (or a student by school and student number), with
a stated reason; the trail's integrity (last signed checkpoint, verification on demand).
The queries (anxin.audit) pass the gate (AUDIT_READ), which records them; a CSV
download is itself an `export` entry of the trail."""

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
from domain.break_glass import require_meaningful_reason
from domain.common import Actor, DomainError, InvalidInput, NotFound
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
        "reason": "",
        "number": "",
        "student_no": "",
        "checkpoint": checkpoint,
        "verification": get_web(request).last_verification,
        "kinds": labels.record_kind_label,
    }
    return context | more


@router.get("/audit")
def audit_page(request: Request, user: PageUser, app: App) -> Response:
    what, id_, school = _params(request)
    context = _context(request, user, app, what, id=id_ or "", school=school or "")
    if what not in QUERIES:
        return render(request, "audit/audit.html", 400, **context | {"error": i18n.gettext("未知的查询类别")})
    if what in NEEDS_ID and not id_:
        return render(request, "audit/audit.html", **context)
    try:
        rows = audit.query(app, user.actor, what, id_, school)
    except InvalidInput as e:
        return render(request, "audit/audit.html", 400, **context | {"error": i18n.error_text(e)})
    except NotFound:
        if what not in NEEDS_ID:
            raise
        return render(request, "audit/audit.html", 404, **context | {"error": i18n.gettext("找不到该编号的记录")})
    except ValueError:  # not an id at all
        return render(request, "audit/audit.html", 400, **context | {"error": i18n.gettext("找不到该编号的记录")})
    return render(request, "audit/audit.html", **context | {"rows": _shown(rows)})


def _district(app: Any, actor: Actor) -> None:
    """The district's trail, through the gate (recorded): searching it, verifying it."""
    app.authorize(actor, access.AUDIT_READ, Resource(kind="district", district=actor.district))


@router.post("/audit/find")
def audit_find(request: Request, user: PageUser, form: Form) -> Response:
    """A record by its number (or full id), or a student by school and student number; read
    with the stated reason, which the gate keeps sealed with its decision."""
    way = text(form, "way") or "case"
    number, school, student_no, reason = (
        text(form, "number"),
        text(form, "school"),
        text(form, "student_no"),
        text(form, "reason"),
    )
    with get_web(request).writing() as app:
        what = "student-access" if way == "student" else "case-history"
        context = _context(request, user, app, what, number=number, school=school, student_no=student_no, reason=reason)
        _district(app, user.actor)
        try:
            require_meaningful_reason(reason)
            if way == "student":
                stream = audit.resolve_student(app, user.actor, school, student_no)
            else:
                if not number:
                    raise InvalidInput("请填写编号")
                stream = audit.resolve_stream(app, user.actor, number)
            rows = audit.query(app, user.actor, what, stream, reason=reason.strip())
        except audit.Ambiguous as e:
            return render(
                request,
                "audit/audit.html",
                409,
                **context | {"error": i18n.error_text(e), "matches": e.matches},
            )
        except NotFound as e:
            return render(request, "audit/audit.html", 404, **context | {"error": i18n.error_text(e)})
        except InvalidInput as e:
            return render(request, "audit/audit.html", 400, **context | {"error": i18n.error_text(e)})
        found = {"id": stream, "number": stream[: audit.SHORT_NUMBER], "way": way}
        return render(request, "audit/audit.html", **context | {"rows": _shown(rows), "found": found, "id": stream})


@router.post("/audit/verify")
def audit_verify(request: Request, user: PageUser) -> Response:
    """Verify the whole trail now (what `anxin audit verify` does) and show the result;
    the request passes the gate as a read of the district's trail, which records it."""
    web = get_web(request)
    with web.writing() as app:
        _district(app, user.actor)
        try:
            report = audit.verify(app)
            result: dict[str, Any] = {
                "ok": report.ok,
                "entries": report.entries,
                "events": report.events,
                "checkpoints": report.checkpoints,
                "head_seq": report.head_seq,
                "problem": report.problem,
                "seconds": report.seconds,
            }
        except DomainError as e:  # no public key to check the checkpoints with
            result = {"ok": False, "error": i18n.error_text(e), "problem": None}
        result |= {"when": app.now(), "by": web.staff_name(user.actor.staff_id)}
        web.last_verification = result
        context = _context(request, user, app, "break-glass")
    return render(request, "audit/audit.html", 200 if result["ok"] else 409, **context | {"verified_now": True})


@router.get("/audit.csv")
def audit_csv(request: Request, user: PageUser) -> Response:
    what, id_, school = _params(request)
    if what not in QUERIES or (what in NEEDS_ID and not id_):
        return Response(i18n.gettext("未知的查询类别"), status_code=400, media_type="text/plain; charset=utf-8")
    out = io.StringIO()
    with get_web(request).writing() as app:
        audit.export_csv(app, user.actor, what, out, id_, school)
    return Response(
        "\ufeff" + out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="anxin-audit-{what}.csv"'},
    )
