"""/docs: the JSON API's reference, rendered on the server from the OpenAPI document
(/openapi.json), so it needs neither a CDN nor an inline script (the CSP forbids both)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from web import i18n
from web.deps import language, render, session_user

router = APIRouter(include_in_schema=False)


def _schema_fields(spec: dict[str, Any], schema: dict[str, Any]) -> list[dict[str, Any]]:
    """(name, type, required, default, description) of a request body's fields."""
    if "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    required = set(schema.get("required", []))
    fields = []
    for name, prop in schema.get("properties", {}).items():
        fields.append(
            {
                "name": name,
                "type": _type(prop),
                "required": name in required,
                "default": prop.get("default"),
                "description": prop.get("description", ""),
            }
        )
    return fields


def _type(prop: dict[str, Any]) -> str:
    if "$ref" in prop:
        return prop["$ref"].rsplit("/", 1)[1]
    if "anyOf" in prop:
        return " | ".join(_type(p) for p in prop["anyOf"])
    if prop.get("type") == "array":
        return f"list[{_type(prop.get('items', {}))}]"
    if "enum" in prop:
        return " | ".join(repr(v) for v in prop["enum"])
    fmt = prop.get("format")
    return f"{prop.get('type', 'any')}{f' ({fmt})' if fmt else ''}"


@router.get("/docs")
def api_docs(request: Request) -> Response:
    i18n.current.set(language(request))
    request.state.user = session_user(request)
    spec = request.app.openapi()
    groups: dict[str, list[dict[str, Any]]] = {}
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            body = op.get("requestBody", {}).get("content", {})
            json_schema = body.get("application/json", {}).get("schema")
            entry = {
                "method": method.upper(),
                "path": path,
                "summary": op.get("summary", ""),
                "doc": op.get("description", ""),
                "params": [
                    {
                        "name": p["name"],
                        "in": p["in"],
                        "required": p.get("required", False),
                        "type": _type(p.get("schema", {})),
                    }
                    for p in op.get("parameters", [])
                ],
                "fields": _schema_fields(spec, json_schema) if json_schema else [],
                "raw_body": next(iter(body), None) if body and not json_schema else None,
            }
            groups.setdefault((op.get("tags") or ["其他"])[0], []).append(entry)
    return render(request, "apidocs/docs.html", spec=spec, groups=groups)
