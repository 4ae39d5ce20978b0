"""Checks and derivations of domain.bullying that need no stream: validating input, and what a
case's recorded facts mean."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from domain.bullying.errors import (
    SeverityRetired,
    TargetedPartyRequired,
)
from domain.bullying.vocabulary import (
    FORMS,
    LEGACY_SEVERITIES,
    NEW_SEVERITIES,
    PARTS,
    SEVERITIES,
)
from domain.common import (
    InvalidInput,
    require,
    require_text,
)


def check_choice(value: str | None, options: Mapping[str, str], what: str) -> str:
    value = (value or "").strip()
    require(value in options, f"{what}「{value}」无效，应为：{'、'.join(options.values())}")  # labels, never codes
    return value


def check_forms(forms: Iterable[str]) -> list[str]:
    chosen = [check_choice(f, FORMS, "欺凌形式") for f in forms or ()]
    require(bool(chosen), "至少选择一种欺凌形式（肢体/言语/财物/恶意排斥、孤立/网络）")
    require(len(set(chosen)) == len(chosen), "欺凌形式重复")
    return chosen


def check_parties(parties: Iterable[Any]) -> list[dict[str, str]]:
    """The students named by a report, each with one part; at least one targeted student."""
    out = check_clue_parties(parties)
    if not any(p["part"] == "targeted" for p in out):
        raise TargetedPartyRequired()
    return out


def check_clue_parties(parties: Iterable[Any]) -> list[dict[str, str]]:
    """The students a clue (线索) names, if any: each once, with a known part. A hotline or
    anonymous clue may name nobody yet; parties are added as the inquiry identifies them."""
    out: list[dict[str, str]] = []
    seen: set[str] = set()
    for p in parties or ():
        if isinstance(p, Mapping):
            student_id, part = p.get("student_id"), p.get("part")
        else:
            student_id, part = p
        student_id = require_text(str(student_id or ""), "学生")
        part = check_choice(part, PARTS, "当事人身份")
        if student_id in seen:
            raise InvalidInput(reason="同一学生在一个案件中只能有一种身份")
        seen.add(student_id)
        out.append({"student_id": student_id, "part": part})
    return out


def check_source(source: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if source is None:
        return None
    require(isinstance(source, Mapping), "来源链接格式不正确")
    require(
        bool(str(source.get("kind") or "").strip()) and bool(str(source.get("id") or "").strip()),
        "来源链接须包含 kind 和 id",
    )
    require(all(isinstance(v, (str, int, bool)) or v is None for v in source.values()), "来源链接只能包含简单值")
    return {str(k): v for k, v in source.items()}


def check_aware(value: datetime, what: str) -> datetime:
    require(isinstance(value, datetime) and value.tzinfo is not None, f"{what}必须是带时区的时间")
    return value


def case_status(
    *,
    closed: bool,
    appealed: bool,
    determined: bool,
    approved: bool,
    bullying: bool,
    followed_up: bool,
    investigation_completed: bool,
    investigation_started: bool,
    reopened: bool,
) -> str:
    """A case's status from the facts that decide it: the one rule, which the aggregate
    and every view that keeps a case's status apply to what they hold. `approved`,
    `bullying` and `followed_up` are about the current determination, if `determined`."""
    if closed:
        return "closed"
    if appealed:
        return "appealed"
    if determined:
        if not approved:
            return "determined"
        if not bullying:
            return "concluded"
        return "following_up" if followed_up else "intervening"
    if investigation_completed:
        return "awaiting_determination"
    if investigation_started:
        return "investigating"
    return "reopened" if reopened else "reported"


def determination_of(bullying: bool, severity: str | None, horseplay: bool) -> tuple[bool, str | None, bool]:
    """A new determination (the committee's, or one changed on appeal or review): a tier of
    NEW_SEVERITIES; the legacy `suspected_offence` is refused (the police track instead)."""
    require(isinstance(bullying, bool), "须写明是否构成欺凌")
    if bullying:
        require(not horseplay, "认定为欺凌时不能同时认定为打闹嬉戏")
        if (severity or "").strip() in LEGACY_SEVERITIES:
            raise SeverityRetired()
        tiers = {code: SEVERITIES[code] for code in NEW_SEVERITIES}
        return True, check_choice(severity, tiers, "严重程度"), False
    require(not severity, "不构成欺凌时不填写严重程度")
    return False, None, bool(horseplay)


def is_serious(severity: str | None) -> bool:
    """Serious bullying or worse (情节较重/恶劣 and above): every tier but the lightest. The
    reports of 未成年人保护法 art. 39 are due for these."""
    return severity is not None and severity != "minor"
