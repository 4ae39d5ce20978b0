"""Deadlines and cadences. Every number here is a default a region overrides in its
policy file (TOML); the domain asks the policy, never a constant."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields, replace
from datetime import date, timedelta
from typing import Any

from domain.common import InvalidInput

RISK_LEVELS = ("general", "key", "high")  # 一般关注 / 重点关注 / 高危
RISK_LABELS = {"general": "一般关注", "key": "重点关注", "high": "高危"}


@dataclass(frozen=True)
class Policy:
    investigation_days: int = 10
    follow_up_days: int = 30
    review_days: dict[str, int] = field(default_factory=lambda: {"general": 120, "key": 120, "high": 30})
    check_in_cadence_days: int = 14
    screenings_per_school_year: int = 1
    school_year_start_month: int = 9
    school_year_start_day: int = 1
    appeal_days: int = 15
    report_interval_months: int = 2
    # The schools' time zone: "today" (deadlines, "not later than today", due dates) is
    # the date on the school's wall clock, not in UTC. An IANA name.
    timezone: str = "Asia/Shanghai"
    # Screening instruments as data (see domain.screening); they add to or replace, by
    # id, the defaults (PHQ-9, GAD-7). In TOML: [[policy.screening_instruments]] tables.
    screening_instruments: tuple[dict[str, Any], ...] = ()

    def investigation_due(self, opened: date) -> date:
        return opened + timedelta(days=self.investigation_days)

    def follow_up_due(self, since: date) -> date:
        """The next follow-up visit of a determined case (the first: from the approval)."""
        return since + timedelta(days=self.follow_up_days)

    def appeal_until(self, approved: date) -> date:
        """The last day a party may appeal a determination approved that day."""
        return approved + timedelta(days=self.appeal_days)

    def next_review(self, risk_level: str, since: date) -> date:
        return since + timedelta(days=self.review_days[risk_level])

    def next_check_in(self, last: date, cadence_days: int | None = None) -> date:
        return last + timedelta(days=cadence_days or self.check_in_cadence_days)

    def school_year_of(self, day: date) -> int:
        """The school year a day belongs to, named by the calendar year it starts in."""
        start = date(day.year, self.school_year_start_month, self.school_year_start_day)
        return day.year if day >= start else day.year - 1

    def school_year_start(self, year: int) -> date:
        return date(year, self.school_year_start_month, self.school_year_start_day)

    @classmethod
    def from_mapping(cls, data: dict[str, Any]) -> Policy:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise InvalidInput(reason=f"策略文件中有未知配置项：{', '.join(sorted(unknown))}")
        for name, value in data.items():
            if name == "timezone":
                if not isinstance(value, str) or not value.strip():
                    raise InvalidInput(reason="timezone 应为时区名称，例如 Asia/Shanghai")
            elif name not in ("review_days", "screening_instruments"):
                _require_days(name, value)
        policy = replace(cls(), **{k: v for k, v in data.items() if k not in ("review_days", "screening_instruments")})
        if "review_days" in data:
            if not isinstance(data["review_days"], dict):
                raise InvalidInput(reason="review_days 应为表（general、key、high 各自的天数）")
            merged = {**policy.review_days, **data["review_days"]}
            if set(merged) != set(RISK_LEVELS):
                raise InvalidInput(reason="review_days 只能包含 general、key、high")
            for level, days in merged.items():
                _require_days(f"review_days.{level}", days)
            policy = replace(policy, review_days=merged)
        if "screening_instruments" in data:
            # Imported here: domain.screening itself imports this module.
            from domain.screening import instruments_from_config

            configured = data["screening_instruments"]
            if not isinstance(configured, list | tuple):
                raise InvalidInput(reason="screening_instruments 应为量表列表")
            instruments_from_config(configured)  # a bad instrument is refused when the policy loads
            policy = replace(policy, screening_instruments=tuple(dict(i) for i in configured))
        return policy

    @classmethod
    def from_toml(cls, text: str) -> Policy:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise InvalidInput(reason=f"策略文件格式错误：{e}") from e
        return cls.from_mapping(data.get("policy", data))


def _require_days(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise InvalidInput(reason=f"{name} 必须为正整数（当前为 {value!r}）")
