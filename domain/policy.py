"""Deadlines and cadences. Every number here is a default a region overrides in its
policy file (TOML); the domain asks the policy, never a constant."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields, replace
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from domain.calendar import SchoolCalendar, add_days, add_school_days
from domain.common import InvalidInput

RISK_LEVELS = ("general", "key", "high")  # 一般关注 / 重点关注 / 高危
RISK_LABELS = {"general": "一般关注", "key": "重点关注", "high": "高危"}


@dataclass(frozen=True)
class Policy:
    investigation_days: int = 10
    follow_up_days: int = 30
    # 一般关注 every term (about 90 days), 重点关注 every month, 高危 every week.
    review_days: dict[str, int] = field(default_factory=lambda: {"general": 90, "key": 30, "high": 7})
    check_in_cadence_days: int = 14
    screenings_per_school_year: int = 1
    school_year_start_month: int = 9
    school_year_start_day: int = 1
    # The window for a party to apply for the county review (复查) of an approved
    # determination, in days from the approval: a local rule. `review_application_days` is
    # its name; `appeal_days` is the name older policy files use for the same window, still
    # read (the new name wins when both are set).
    appeal_days: int = 15
    review_application_days: int | None = None
    # 教督〔2017〕10号: the county body completes a review within 15 days of the application.
    # (Not `review_days`, which is the support files' plan-review cadence per risk level.)
    county_review_days: int = 15
    # 未成年人保护法 art. 39: serious bullying is reported "promptly" (及时) to the police and
    # the education bureau, art. 11 "at once" (立即); neither gives a number. The default is
    # 24 hours from the moment it is known: the same working day in practice, and a
    # determination approved in the evening can still be reported the next morning by phone
    # with the written report following; regions that require the same calendar day set it lower.
    authority_report_hours: int = 24
    report_interval_months: int = 2
    # The schools' time zone: "today" (deadlines, "not later than today", due dates) is
    # the date on the school's wall clock, not in UTC. An IANA name.
    timezone: str = "Asia/Shanghai"
    # Screening instruments as data (see domain.screening); they add to or replace, by
    # id, the defaults (PHQ-9, GAD-7). In TOML: [[policy.screening_instruments]] tables.
    screening_instruments: tuple[dict[str, Any], ...] = ()
    # The crisis pathway (心理危机干预): a counselor sees the student and assesses the risk
    # within these hours of the signal; the guardian is informed (and their consent or
    # refusal recorded) and the student kept under supervision until handed to them the
    # same day; a referral is made within these days, and its feedback (回执) received
    # within these days of the referral.
    crisis_assessment_hours: int = 4
    crisis_referral_days: int = 2
    crisis_feedback_days: int = 14
    # A file opened from a teacher's escalation: the counselor's first contact within
    # these school days (Monday to Friday).
    first_contact_school_days: int = 2
    # A referral (转介) to an agency: its feedback (回执) is due within these days.
    referral_feedback_days: int = 14
    # A guardian is recorded as unreachable for a bullying determination (未成年人保护法
    # art. 39) only after at least this many unanswered invitations.
    guardian_contact_attempts: int = 3
    # The quorum of a school's 学生欺凌治理委员会 meeting that determines a case: "majority" (more
    # than half of its members at the time) or a number of members present.
    committee_quorum: int | str = "majority"
    # Issue 17 (A): a bullying report is investigated at once (未成年人学校保护规定 art. 24): the
    # investigation starts within `intake_days` of the report; it is completed within
    # `investigation_days` of its start (教督〔2017〕10号: 10 days).
    intake_days: int = 1
    # The school calendar (domain.calendar): public holidays off, make-up working days (调休)
    # on, weekends off. In TOML: holidays = [2026-10-01, ...]; workdays = [2026-09-27, ...].
    holidays: tuple[date, ...] = ()
    workdays: tuple[date, ...] = ()
    # Per deadline, whether it counts school days ("school_days") or calendar days
    # ("calendar_days"). In TOML: a [day_counting] table.
    day_counting: dict[str, str] = field(
        default_factory=lambda: {"intake": "school_days", "investigation": "calendar_days"}
    )

    @property
    def calendar(self) -> SchoolCalendar:
        return SchoolCalendar.of(self.holidays, self.workdays)

    def counts_school_days(self, deadline: str) -> bool:
        return self.day_counting.get(deadline) == "school_days"

    def investigation_due(self, started: date) -> date:
        """The investigation is completed within `investigation_days` of its start."""
        return add_days(started, self.investigation_days, self.calendar, self.counts_school_days("investigation"))

    def intake_due(self, reported: date) -> date:
        """The investigation of a report starts within `intake_days` of it."""
        return add_days(reported, self.intake_days, self.calendar, self.counts_school_days("intake"))

    def follow_up_due(self, since: date) -> date:
        """The next follow-up visit of a determined case (the first: from the approval)."""
        return since + timedelta(days=self.follow_up_days)

    def appeal_until(self, approved: date) -> date:
        """The last day a party may apply for a review of (appeal) a determination approved
        that day: `review_application_days`, else the older `appeal_days`."""
        return approved + timedelta(days=self.review_application_window)

    @property
    def review_application_window(self) -> int:
        return self.review_application_days if self.review_application_days is not None else self.appeal_days

    def county_review_due(self, applied: date) -> date:
        """The day the county body's review (复查) must be completed by."""
        return applied + timedelta(days=self.county_review_days)

    def authority_report_due(self, known: datetime) -> datetime:
        """When the reports of 未成年人保护法 art. 39 are due, from the moment serious bullying
        (or the police track) is known: `authority_report_hours` later, on the school's clock."""
        return self.local(known + timedelta(hours=self.authority_report_hours))

    def next_review(self, risk_level: str, since: date) -> date:
        return since + timedelta(days=self.review_days[risk_level])

    def review_bounds(self, risk_level: str, reviewed_on: date) -> tuple[date, date]:
        """The days a plan review on `reviewed_on` may set the next one to: from the next day
        to the policy's interval for the risk level (`next_review`, the default), so a
        counselor may look again sooner, never later than the policy allows."""
        return reviewed_on + timedelta(days=1), self.next_review(risk_level, reviewed_on)

    def zone(self) -> ZoneInfo:
        try:
            return ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise InvalidInput(reason=f"未知的时区：{self.timezone}") from None

    def local(self, at: datetime) -> datetime:
        """A moment on the school's wall clock."""
        return at.astimezone(self.zone())

    def end_of_day(self, at: datetime) -> datetime:
        """The last minute of the school's day that `at` falls in ("the same day")."""
        day = self.local(at).date()
        return datetime.combine(day, time(23, 59), tzinfo=self.zone())

    def crisis_dues(self, opened: datetime) -> dict[str, datetime]:
        """When each step of the crisis pathway is due, from the moment the signal came in
        (the referral's feedback is due from the referral: `crisis_feedback_due`)."""
        same_day = self.end_of_day(opened)
        return {
            "assessed": self.local(opened + timedelta(hours=self.crisis_assessment_hours)),
            "guardian_informed": same_day,
            "guardian_response": same_day,
            "supervision": same_day,
            "handed_over": same_day,
            "referral": self.end_of_day(opened + timedelta(days=self.crisis_referral_days)),
        }

    def crisis_feedback_due(self, referred: datetime) -> datetime:
        return self.end_of_day(referred + timedelta(days=self.crisis_feedback_days))

    def school_days_after(self, start: date, n: int) -> date:
        """The n-th school day after `start` in the school calendar (weekends and holidays
        off, make-up working days on)."""
        return add_school_days(start, n, self.calendar)

    def committee_quorum_for(self, members: int) -> int:
        """How many of a body of `members` must be present for its meeting to determine."""
        if self.committee_quorum == "majority":
            return members // 2 + 1
        return int(self.committee_quorum)

    def referral_feedback_due(self, referred: date) -> date:
        return referred + timedelta(days=self.referral_feedback_days)

    def first_contact_due(self, opened: date) -> date:
        return self.school_days_after(opened, self.first_contact_school_days)

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
            elif name == "committee_quorum":
                if value != "majority":
                    _require_days(name, value)
            elif name not in ("review_days", "screening_instruments", *CALENDAR_KEYS):
                _require_days(name, value)
        policy = replace(
            cls(),
            **{k: v for k, v in data.items() if k not in ("review_days", "screening_instruments", *CALENDAR_KEYS)},
        )
        policy = _with_calendar(policy, data)
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


CALENDAR_KEYS = ("holidays", "workdays", "day_counting")
DAY_COUNTINGS = ("school_days", "calendar_days")
COUNTED_DEADLINES = ("intake", "investigation")


def _dates(name: str, value: Any) -> tuple[date, ...]:
    if not isinstance(value, list | tuple):
        raise InvalidInput(reason=f"{name} 应为日期列表，例如 [2026-10-01, 2026-10-02]")
    out = []
    for v in value:
        if isinstance(v, str):
            try:
                v = date.fromisoformat(v.strip())
            except ValueError:
                raise InvalidInput(reason=f"{name} 中的「{v}」不是日期（应为 2026-10-01 这样的格式）") from None
        if isinstance(v, datetime) or not isinstance(v, date):
            raise InvalidInput(reason=f"{name} 中的 {v!r} 不是日期（应为 2026-10-01 这样的格式）")
        out.append(v)
    return tuple(sorted(set(out)))


def _with_calendar(policy: Policy, data: dict[str, Any]) -> Policy:
    """The school calendar and per-deadline day counting of a policy file, checked."""
    changes: dict[str, Any] = {}
    for name in ("holidays", "workdays"):
        if name in data:
            changes[name] = _dates(name, data[name])
    if "day_counting" in data:
        counting = data["day_counting"]
        if not isinstance(counting, dict):
            raise InvalidInput(reason="day_counting 应为表（intake、investigation 各为 school_days 或 calendar_days）")
        unknown = set(counting) - set(COUNTED_DEADLINES)
        if unknown:
            raise InvalidInput(reason=f"day_counting 中有未知的期限：{', '.join(sorted(unknown))}")
        for k, v in counting.items():
            if v not in DAY_COUNTINGS:
                raise InvalidInput(reason=f"day_counting.{k} 应为 school_days 或 calendar_days（当前为 {v!r}）")
        changes["day_counting"] = {**policy.day_counting, **counting}
    policy = replace(policy, **changes)
    both = set(policy.holidays) & set(policy.workdays)
    if both:
        raise InvalidInput(
            reason=f"同一天不能既是节假日又是调休上班日：{', '.join(d.isoformat() for d in sorted(both))}"
        )
    return policy


def _require_days(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise InvalidInput(reason=f"{name} 必须为正整数（当前为 {value!r}）")
