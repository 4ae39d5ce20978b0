"""Who is told of what (通知): the kinds of notice, who each goes to, and which of a
case's facts raise one. Pure: the application (anxin.notify) writes the notices a save
raises in the save's own transaction and delivers them.

A notice is about an item of work, never its content: what kind of item, which school,
its number, when it is due, a link. What leaves the system (email, a group bot) carries
nothing else, whatever the kind (DOMAIN.md: "Nobody should have to look to learn that
something urgent is theirs").
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from domain.common import InvalidInput, Role

# What a person may choose per kind (anxin.notify: their settings).
IMMEDIATE = "immediate"
DIGEST = "digest"
OFF = "off"
MODES = (IMMEDIATE, DIGEST, OFF)
MODE_LABELS = {IMMEDIATE: "立即发送邮件", DIGEST: "每日汇总", OFF: "不发邮件（只在站内提醒）"}


@dataclass(frozen=True)
class Kind:
    """A kind of notice: its words, who it goes to (roles of the item's school, or of its
    district for supervisors), whether a person may turn its email off, whether the
    school's group bot is told too."""

    code: str
    label: str
    roles: tuple[Role, ...]
    can_turn_off: bool = True
    to_group_bot: bool = False


KINDS: dict[str, Kind] = {
    k.code: k
    for k in (
        Kind("crisis", "心理危机：今日须处置", (Role.COUNSELOR, Role.PRINCIPAL), can_turn_off=False, to_group_bot=True),
        Kind("case_reported", "新的欺凌报告", (Role.SAFETY_LEAD, Role.PRINCIPAL), to_group_bot=True),
        Kind("determination_pending", "欺凌认定待校长审批", (Role.PRINCIPAL,)),
        Kind("appeal_lodged", "当事人对认定申请复查", (Role.SAFETY_LEAD, Role.PRINCIPAL)),
        Kind("break_glass", "督导说明理由后查阅了实名记录，待复核", (Role.PRINCIPAL, Role.SUPERVISOR)),
        Kind("investigation_due", "欺凌案件调查即将到期", (Role.SAFETY_LEAD,)),
        Kind("investigation_overdue", "欺凌案件调查已逾期", (Role.SAFETY_LEAD, Role.PRINCIPAL)),
        # One person's day (to that person only, by email; no inbox item: the inbox is it).
        Kind("digest", "每日汇总：逾期事项和未读提醒", tuple(Role)),
    )
}
# Kinds whose email is sent however the person has set it (a crisis is acted on today).
ALWAYS_SENT = frozenset(code for code, k in KINDS.items() if not k.can_turn_off)


@dataclass(frozen=True)
class NoticeSpec:
    """What a fact raises: a notice of `kind` about `stream_id` (of `school_id`), due
    at `due`, told to the kind's roles except `not_to` (who did it)."""

    kind: str
    school_id: str | None
    stream_id: str
    due: datetime | None
    not_to: str | None
    # (the event's own identity: the notice is decided once per fact, whoever saves it)
    origin: str
    to: str | None = None  # a person told besides the kind's roles (an item's handler)


# When each person's daily digest goes (the schools' local time).
DIGEST_HOUR = 7
# Kinds that are about one person only, not told to a role.
PERSONAL_KINDS = frozenset({"digest"})

# How many days before its deadline an investigation's handler is reminded.
DUE_SOON_DAYS = 2


def deadline_notice(item: dict[str, Any], school_timezone: Any) -> NoticeSpec | None:
    """The notice an open investigation (to be started, or completed) raises as its deadline nears (DUE_SOON_DAYS) or
    passes: once per item, kind and due day (a new deadline, a new notice). `item`:
    kind, stream_id, school_id, owner_id, due (a day), overdue."""
    if item["kind"] not in ("intake", "investigation"):  # starting it, or completing it
        return None
    if item["kind"] == "intake" and not item["overdue"]:
        return None  # a new report already told the safety leads (case_reported): only a late start is

    kind = "investigation_overdue" if item["overdue"] else "investigation_due"
    due = datetime.combine(item["due"], datetime.max.time().replace(microsecond=0), tzinfo=school_timezone)
    return NoticeSpec(
        kind=kind,
        school_id=item["school_id"],
        stream_id=item["stream_id"],
        due=due,
        not_to=None,
        origin=f"{item['stream_id']}#{kind}#{item['due'].isoformat()}",
        to=item["owner_id"],
    )


def _case_notice(event: Any, kind: str, school_id: str | None, due: datetime | None = None) -> NoticeSpec:
    stream = str(event.originator_id)
    return NoticeSpec(
        kind=kind,
        school_id=school_id,
        stream_id=stream,
        due=due,
        not_to=getattr(event, "actor", None),
        origin=f"{stream}#{event.originator_version}",
    )


def notices_for(event: Any, school_id: str | None) -> list[NoticeSpec]:
    """The notices a newly saved event raises (by its class name: these are permanent,
    see tests/event_topics.txt). `school_id`: the school of the event's stream."""
    name = type(event).__qualname__.rsplit(".", 1)[-1]
    if name == "Reported" and type(event).__module__.startswith("domain.bullying"):
        return [_case_notice(event, "case_reported", school_id, getattr(event, "at", None))]
    if name == "Determined":
        return [_case_notice(event, "determination_pending", school_id, getattr(event, "at", None))]
    # A party's application for the county review (复查), or an appeal of an older stream.
    if name in ("AppealLodged", "CountyReviewApplied"):
        return [_case_notice(event, "appeal_lodged", school_id, getattr(event, "at", None))]
    if name == "CrisisOpened":  # due today, to every counselor (the one who recorded it too: a record)
        return [replace(_case_notice(event, "crisis", school_id, getattr(event, "at", None)), not_to=None)]
    return []


def parse_mode(kind: str, mode: str) -> str:
    """A person's choice for one kind, checked: a kind that cannot be turned off keeps
    its email immediate."""
    if kind not in KINDS:
        raise InvalidInput("没有这种提醒：{kind}", kind=kind)
    if mode not in MODES:
        raise InvalidInput("提醒方式应为：{modes}", modes="、".join(MODE_LABELS.values()))
    if not KINDS[kind].can_turn_off and mode != IMMEDIATE:
        raise InvalidInput("「{label}」的邮件不能关闭或推迟", label=KINDS[kind].label)
    if kind in PERSONAL_KINDS and mode == DIGEST:
        raise InvalidInput("「{label}」本身就是每日汇总：请选择发送或不发", label=KINDS[kind].label)
    return mode
