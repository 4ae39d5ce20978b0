"""The supervisor's audit pages (审计): a case's full history, who accessed a student
and why, every break-glass access and every refused request, each as CSV too. The
queries (anxin.audit) pass the gate (AUDIT_READ), which records them; a CSV
download is itself an `export` entry of the trail."""

from __future__ import annotations

import io
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from anxin import audit
from domain.common import InvalidInput, NotFound
from web import i18n
from web.deps import App, PageUser, get_web, render

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


@router.get("/audit")
def audit_page(request: Request, user: PageUser, app: App) -> Response:
    what, id_, school = _params(request)
    schools = [(sid, name) for sid, name, d in app.schools() if d == user.actor.district]
    context: dict[str, Any] = {
        "queries": QUERIES,
        "what": what,
        "id": id_ or "",
        "school": school or "",
        "schools": schools,
        "rows": None,
        "error": None,
        "query": request.url.query,
    }
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
    return render(request, "audit/audit.html", **context | {"rows": rows})


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
