"""The school calendar: which days are school days, and counting deadlines in them.

Pure: no clock, no I/O. A region's calendar comes from its policy file (domain.policy):
weekends off by default, public holidays (`holidays`) off, and make-up working days (调休,
`workdays`: a Saturday or Sunday the State Council's holiday notice makes a working day, e.g.
before and after National Day) on. Some regions count a deadline in school days, others in
calendar days; the policy says which, per deadline."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta

SATURDAY, SUNDAY = 5, 6


@dataclass(frozen=True)
class SchoolCalendar:
    """Weekdays off (`weekend`: Monday is 0), days off (`holidays`) and working days that fall
    on a weekend (`workdays`). A day both a holiday and a workday is a holiday."""

    holidays: frozenset[date] = field(default_factory=frozenset)
    workdays: frozenset[date] = field(default_factory=frozenset)
    weekend: frozenset[int] = frozenset({SATURDAY, SUNDAY})

    @classmethod
    def of(cls, holidays: Iterable[date] = (), workdays: Iterable[date] = ()) -> SchoolCalendar:
        return cls(holidays=frozenset(holidays), workdays=frozenset(workdays))


WEEKDAYS_ONLY = SchoolCalendar()


def is_school_day(day: date, calendar: SchoolCalendar = WEEKDAYS_ONLY) -> bool:
    if day in calendar.holidays:
        return False
    return day in calendar.workdays or day.weekday() not in calendar.weekend


def add_school_days(day: date, n: int, calendar: SchoolCalendar = WEEKDAYS_ONLY) -> date:
    """The n-th school day after `day` (`day` itself when n is 0): a deadline of n school days
    from `day`. Raises ValueError for a negative n, or a calendar with no school day in a year."""
    if n < 0:
        raise ValueError("n must not be negative")
    found = day
    empty = 0
    while n > 0:
        found += timedelta(days=1)
        if is_school_day(found, calendar):
            n -= 1
            empty = 0
        else:
            empty += 1
            if empty > 366:
                raise ValueError("the calendar has no school day in a year")
    return found


def add_days(day: date, n: int, calendar: SchoolCalendar, school_days: bool) -> date:
    """A deadline n days after `day`, in school days or calendar days."""
    return add_school_days(day, n, calendar) if school_days else day + timedelta(days=n)


__all__ = ["SchoolCalendar", "WEEKDAYS_ONLY", "add_days", "add_school_days", "is_school_day"]
