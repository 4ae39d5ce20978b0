"""Docs that are derived from the code, so they cannot drift: the event catalogue
(from the aggregates' event classes) and the role-permission table (from
domain.access.decide). `python -m anxin.docs` rewrites docs/events.md and
docs/permissions.md; a test fails when either is stale."""

from __future__ import annotations

import dataclasses
import inspect
import sys
from pathlib import Path

from eventsourcing.utils import get_topic

from domain import access
from domain.access import Resource, decide
from domain.bullying import BullyingCase
from domain.committee import GoverningBody
from domain.common import Actor, Role
from domain.pairing import Pairing
from domain.roster import Staff, Student
from domain.screening import ScreeningRecord
from domain.support import SupportFile

AGGREGATES = [
    (Student, "学生（花名册）", "A student's identity; the only place their name lives."),
    (Staff, "教职工", "A staff member's identity and roles."),
    (Pairing, "一岗双带结对", "A staff member paired with a student, checking in on a cadence."),
    (BullyingCase, "校园欺凌案件", "A bullying case from report to closure."),
    (SupportFile, "心理健康档案（一人一策）", "A student's psychological-support file."),
    (ScreeningRecord, "心理筛查记录", "A student's screenings in one school year."),
    (GoverningBody, "学生欺凌治理委员会", "A school's bullying governance body: its members and their capacities."),
]
DOCS = Path(__file__).resolve().parent.parent / "docs"


LIBRARY_CLASSES = {"Event", "Created", "Snapshot"}  # the library's bases, never stored as such
LIBRARY_FIELDS = {"originator_id", "originator_version", "timestamp", "originator_topic"}


def event_fields(event_cls: type) -> dict[str, str]:
    """An event's own fields (the library's left out) and their declared types, in order."""
    declared: dict[str, str] = {}
    for klass in reversed(event_cls.__mro__):
        declared.update(klass.__dict__.get("__annotations__", {}))
    return {f.name: str(declared[f.name]) for f in dataclasses.fields(event_cls) if f.name not in LIBRARY_FIELDS}


def event_classes(cls: type) -> list[type]:
    return [
        v
        for v in vars(cls).values()
        if inspect.isclass(v)
        and issubclass(v, cls.Event)  # type: ignore[attr-defined]
        and v.__name__ not in LIBRARY_CLASSES
        and event_fields(v)
    ]


def all_topics() -> list[str]:
    return [get_topic(e) for cls, _, _ in AGGREGATES for e in event_classes(cls)]


def events_markdown() -> str:
    lines = [
        "# Event catalogue",
        "",
        "Generated from the code by `python -m anxin.docs`; a test fails when it is stale.",
        "Every event also carries `originator_id`, `originator_version` and `timestamp` (the",
        "library's), and is stored encrypted under its stream's key: only the topic below is",
        "in clear. Event classes are permanent: a shape changes with `class_version` and an",
        "`upcast_vN_vN+1`, never by renaming (tests/event_topics.txt lists every topic ever",
        "stored, and a test checks they all still resolve).",
        "",
    ]
    for cls, label, summary in AGGREGATES:
        lines += [
            f"## {cls.__name__} — {label}",
            "",
            summary,
            "",
            "| event (topic) | version | fields |",
            "| --- | --- | --- |",
        ]
        for e in event_classes(cls):
            fields = ", ".join(f"`{k}`: {v}".replace("|", "\\|") for k, v in event_fields(e).items())
            lines.append(f"| `{get_topic(e)}` | {getattr(e, 'class_version', 1)} | {fields} |")
        lines.append("")
    return "\n".join(lines)


ROLE_ORDER = list(Role)
ACTIONS = list(access.ACTION_LABELS.items())


def cell(role: Role, action: str) -> str:
    """Describe, in words, in which scope a role may take an action."""
    me = Actor("me", frozenset({role}), school_id=None if role == Role.SUPERVISOR else "s1", classes=frozenset({"c1"}))
    if role == Role.ADMINISTRATOR:
        me = Actor("me", frozenset({role}), school_id=None)
    scopes = [
        ("任何学校", Resource(kind="x", id="r", school_id="s2", classes=frozenset({"c9"}), owner_id="other")),
        ("本校", Resource(kind="x", id="r", school_id="s1", classes=frozenset({"c9"}), owner_id="other")),
        ("本班学生", Resource(kind="x", id="r", school_id="s1", classes=frozenset({"c1"}), owner_id="other")),
        ("本人负责/结对", Resource(kind="x", id="r", school_id="s1", classes=frozenset({"c9"}), owner_id="me")),
        ("新建（本校）", Resource(kind="file", id=None, school_id="s1")),
    ]
    for label, res in scopes:
        if decide(me, action, res).allowed:
            return label
    if decide(me, action, scopes[0][1], "调查需要：核实上报情况").allowed:
        return "须说明理由（留痕）"
    return "—"


def permissions_markdown() -> str:
    head = "| 操作 | " + " | ".join(f"{r.label}<br>`{r.value}`" for r in ROLE_ORDER) + " |"
    lines = [
        "# Role-permission table",
        "",
        "Generated from `domain/access.py` (`decide`) by `python -m anxin.docs`; a test fails",
        "when it is stale. Each cell names the widest scope in which the role may act:",
        "任何学校 (any school of the district), 本校 (own school), 本班学生 (students of the",
        "classes one teaches), 本人负责/结对 (files one is responsible for, one's own",
        "pairings), 新建 (creating a new one), 须说明理由 (only with a stated reason,",
        "break-glass, itself recorded), — (never). Every decision, allowed or denied, is",
        "recorded by the gate (`anxin.gate.Gate.authorize`, asked as `app.authorize`).",
        "",
        head,
        "|" + " --- |" * (len(ROLE_ORDER) + 1),
    ]
    for action, label in ACTIONS:
        lines.append(f"| {label} `{action}` | " + " | ".join(cell(r, action) for r in ROLE_ORDER) + " |")
    return "\n".join(lines) + "\n"


def generated() -> dict[Path, str]:
    return {DOCS / "events.md": events_markdown(), DOCS / "permissions.md": permissions_markdown()}


def main() -> int:
    for path, text in generated().items():
        path.parent.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
