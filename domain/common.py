"""What every aggregate shares: the acting person, named domain errors, and events
that record who did what, when and (where a person decides) why.

The domain never reads a clock or the environment: the application passes `at`
(an aware datetime) and the `actor` (a staff id, or "system") into every command.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from eventsourcing.domain import Aggregate


class Role(StrEnum):
    """The roles of DOMAIN.md. A person may hold several."""

    CLASS_TEACHER = "class_teacher"
    COUNSELOR = "counselor"
    SAFETY_LEAD = "safety_lead"
    PRINCIPAL = "principal"
    SUPERVISOR = "supervisor"
    ADMINISTRATOR = "administrator"

    @property
    def label(self) -> str:
        return ROLE_LABELS[self]


ROLE_LABELS = {
    Role.CLASS_TEACHER: "班主任",
    Role.COUNSELOR: "心理老师",
    Role.SAFETY_LEAD: "德育主任/安全副校长",
    Role.PRINCIPAL: "校长",
    Role.SUPERVISOR: "教育局督导",
    Role.ADMINISTRATOR: "系统管理员",
}


@dataclass(frozen=True)
class Actor:
    """The person acting, as the gate sees them: ids and roles, never a name."""

    staff_id: str
    roles: frozenset[Role]
    school_id: str | None = None
    classes: frozenset[str] = field(default_factory=frozenset)
    district: str = "default"
    token_id: str | None = None  # signed in by an API token: its id (the audit trail records it)

    def has(self, role: Role) -> bool:
        return role in self.roles


SYSTEM = Actor(staff_id="system", roles=frozenset())


class DomainError(Exception):
    """A rule refused a command. `code` is a stable English identifier; the message
    is for a person, in Chinese. A refused command changes nothing."""

    code = "domain_error"
    message = "操作被拒绝"

    def __init__(self, message: str | None = None, **details: Any) -> None:
        self.details = details
        text = message or self.message
        if details:
            try:
                text = text.format(**details)
            except (KeyError, IndexError):
                pass
        self.text = text
        super().__init__(text)


class InvalidInput(DomainError):
    code = "invalid_input"
    message = "输入无效：{reason}"


class WrongState(DomainError):
    code = "wrong_state"
    message = "当前状态为「{state}」，不能{action}"


class NotFound(DomainError):
    code = "not_found"
    message = "找不到该记录"


class Erased(DomainError):
    code = "erased"
    message = "该记录已被删除（已销毁密钥），无法查看或修改"


class Conflict(DomainError):
    code = "conflict"
    message = "该记录已被他人修改，请刷新后重试；您的修改未保存"


class ContentErased(Exception):  # noqa: N818 - a condition of content, not an error of code
    """A stream's content is gone for good: its key was destroyed (erased). Raised by the
    store; what reads content (views, lists) shows ERASED_LABEL instead."""

    stream_id: str


class ContentTampered(Exception):  # noqa: N818
    """A stream's stored bytes failed authentication (altered or moved): that stream is set
    aside and shown as UNREADABLE_LABEL; every other stream keeps serving."""

    stream_id: str
    version: int


ERASED_LABEL = "已删除"
UNREADABLE_LABEL = "无法读取"


class PermissionDenied(DomainError):
    code = "permission_denied"
    message = "无权执行此操作：{reason}"


def require(condition: bool, reason: str) -> None:
    """Raise InvalidInput with a reason a person understands unless condition holds."""
    if not condition:
        raise InvalidInput(reason=reason)


def require_text(value: str | None, what: str) -> str:
    text = (value or "").strip()
    require(bool(text), f"{what}不能为空")
    return text


def require_aware(at: datetime) -> datetime:
    require(isinstance(at, datetime) and at.tzinfo is not None, "时间必须带时区")
    return at


def as_date(value: date | datetime) -> date:
    return value.date() if isinstance(value, datetime) else value


_DAY = re.compile(r"^(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})$")


def day_or_none(text: str | None) -> date | None:
    """The one reading of a typed or imported day: YYYY-MM-DD, or with / or . as
    spreadsheets write it (2026/9/1); None if it is not a real date."""
    m = _DAY.match((text or "").strip())
    if not m:
        return None
    try:
        return date(int(m[1]), int(m[2]), int(m[3]))
    except ValueError:
        return None


def parse_day(text: str | None, what: str = "日期") -> date:
    """A day a person typed, or InvalidInput naming the field and the expected form."""
    day = day_or_none(text)
    if day is None:
        raise InvalidInput(reason=f"{what}格式应为 YYYY-MM-DD")
    return day


@dataclass(frozen=True)
class Scope:
    """What the gate and the directory know of a stream: ids and a status, no names
    and no text. `links` are (student_id, part) pairs: the students a stream is about;
    `staff` are (part, staff_id) pairs: staff members with a part on it that the gate
    decides on (a support file's `escalated`, `person`), and marks about it (`crisis`, '')."""

    kind: str
    school_id: str | None
    class_name: str | None = None
    owner_id: str | None = None
    subject_id: str | None = None
    status: str | None = None
    links: tuple[tuple[str, str], ...] = ()
    staff: tuple[tuple[str, str], ...] = ()


class CaseAggregate(Aggregate):
    """Base for every Anxin stream: each says what the gate needs to know of it."""

    school_id: str

    def scope(self) -> Scope:
        raise NotImplementedError
