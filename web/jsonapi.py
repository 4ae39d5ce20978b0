"""The JSON API's machinery (its routes are web/routes/api.py): plain JSON of what the
application returns, and an API operation made from an application command.

A command's request body is made from the command's own signature (so the API cannot
drift from the application): the keyword arguments become the body's fields, with their
types and defaults; the ids in the path are its first arguments; `expected_version` is
how a client says which version it edited, and a stale one is refused with 409."""

from __future__ import annotations

import dataclasses
import inspect
import re
import typing
from collections.abc import Callable, Iterable, Mapping
from datetime import date, datetime
from enum import Enum
from typing import Any
from uuid import UUID

from eventsourcing.domain import BaseAggregate
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime, BaseModel, ConfigDict, create_model

from anxin.commands import COMMAND_AREAS
from web.deps import ApiUser, User, get_web


# -- JSON of domain objects ------------------------------------------------------------------
def jsonable(value: Any) -> Any:
    """Plain JSON of what the application returns: aggregates (their public state and
    properties), dataclasses, dates, ids, sets."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, bytes):
        return None  # sealed bytes never leave the server
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = [jsonable(v) for v in value]
        return sorted(items, key=str) if isinstance(value, set | frozenset) else items
    if isinstance(value, BaseAggregate):
        out = {k: jsonable(v) for k, v in vars(value).items() if not k.startswith("_")}
        out.update(id=str(value.id), version=value.version)
        out.update(_properties(value))
        return out
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out = {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
        out.update(_properties(value))
        return out
    return str(value)


def _properties(obj: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, _member in inspect.getmembers(type(obj), lambda m: isinstance(m, property)):
        if not name.startswith("_") and name not in ("state", "pending_events"):
            try:
                out[name] = jsonable(getattr(obj, name))
            except Exception:  # noqa: BLE001 - a property that needs what this object lacks
                continue
    return out


def ok(result: Any = None, status: int = 200) -> JSONResponse:
    return JSONResponse({"ok": True, "result": jsonable(result)}, status_code=status)


# -- operations from the application's own signatures --------------------------------------------
def _field_type(annotation: Any) -> Any:
    """The body type of a parameter: datetimes must carry their time zone; iterables are lists."""
    if annotation is datetime:
        return AwareDatetime
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (Iterable, typing.Sequence, list, tuple) or str(origin) == "<class 'collections.abc.Sequence'>":
        return list[_field_type(args[0]) if args else Any]  # type: ignore[misc]
    if origin is typing.Union or str(origin) == "<class 'types.UnionType'>":
        inner = [_field_type(a) for a in args]
        return typing.Union[tuple(inner)]  # type: ignore[return-value]  # noqa: UP007
    return annotation


def body_model(
    name: str,
    func: Callable[..., Any],
    path_ids: tuple[str, ...],
    overrides: Mapping[str, Any] | None = None,
    skip: tuple[str, ...] = (),
) -> type[BaseModel]:
    hints = typing.get_type_hints(func)
    fields: dict[str, Any] = {}
    for p in inspect.signature(func).parameters.values():
        if p.name in ("self", "actor", *path_ids, *skip):
            continue
        if p.kind is inspect.Parameter.VAR_KEYWORD:
            # **changes: the fields a correction may change, each optional (None: unchanged).
            for field, annotation in VAR_FIELDS[func.__name__].items():
                fields[field] = (annotation | None, None)
            continue
        annotation = (overrides or {}).get(p.name, _field_type(hints.get(p.name, Any)))
        default = ... if p.default is inspect.Parameter.empty else p.default
        fields[p.name] = (annotation, list(default) if isinstance(default, tuple) else default)
    return create_model(name, __config__=ConfigDict(extra="forbid"), **fields)


# What a correction's **changes may hold, per command.
VAR_FIELDS: dict[str, dict[str, Any]] = {
    "correct_report": {"channel": str, "occurred_at": AwareDatetime, "place": str, "forms": list[str]},
    "correct_check_in": {"notes": dict[str, str], "concern": bool, "concern_note": str},
}


def area_of(method: str) -> str:
    """The area of the application's commands (anxin.commands) that has this command."""
    (area,) = [a for a, cls in COMMAND_AREAS.items() if callable(getattr(cls, method, None))]
    return area


def add_command(
    router: APIRouter,
    path: str,
    method: str,
    *,
    status: int = 200,
    tag: str,
    summary: str,
    overrides: Mapping[str, Any] | None = None,
    skip: tuple[str, ...] = (),
) -> None:
    """POST `path`: call the application's command `method` (of the area that has it:
    `app.<area>.<method>`, anxin.commands) with the ids in the path (in their order) and
    the body."""
    area = area_of(method)
    func = getattr(COMMAND_AREAS[area], method)
    path_ids = tuple(re.findall(r"\{(\w+)\}", path))
    model = body_model("".join(w.title() for w in method.split("_")) + "Body", func, path_ids, overrides, skip)

    params = [inspect.Parameter("request", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Request)]
    params += [inspect.Parameter(i, inspect.Parameter.KEYWORD_ONLY, annotation=str) for i in path_ids]
    params += [
        inspect.Parameter("body", inspect.Parameter.KEYWORD_ONLY, annotation=model),
        inspect.Parameter("user", inspect.Parameter.KEYWORD_ONLY, annotation=ApiUser),
    ]

    def wrapper(request: Request, body: Any, user: User, **ids: str) -> JSONResponse:
        web = get_web(request)
        with web.writing():
            values = body.model_dump()
            for field in VAR_FIELDS.get(method, {}):  # an unchanged field of a correction is left out
                if values.get(field) is None:
                    values.pop(field, None)
            result = getattr(getattr(web.app, area), method)(user.actor, *(ids[i] for i in path_ids), **values)
        return ok(result, status)

    wrapper.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    wrapper.__name__ = method
    wrapper.__doc__ = inspect.getdoc(func) or summary
    router.add_api_route(
        path, wrapper, methods=["POST"], tags=[tag], summary=summary, status_code=status, name=f"api_{method}"
    )
