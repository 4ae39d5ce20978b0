"""The school calendar (domain.calendar) and the policy's deadlines in school or calendar days:
properties that hold for any calendar (hypothesis), and the policy file's checks."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.calendar import SchoolCalendar, add_school_days, is_school_day
from domain.common import InvalidInput
from domain.policy import Policy

DAYS = st.dates(min_value=date(2024, 1, 1), max_value=date(2028, 12, 31))
CALENDARS = st.builds(
    SchoolCalendar.of,
    st.lists(DAYS, max_size=30),
    st.lists(DAYS.filter(lambda d: d.weekday() >= 5), max_size=10),
)


@given(day=DAYS, n=st.integers(0, 40), calendar=CALENDARS)
def test_n_school_days_after_a_day_is_a_school_day_with_exactly_n_school_days_in_between(day, n, calendar):
    due = add_school_days(day, n, calendar)
    counted = sum(is_school_day(day + timedelta(days=k), calendar) for k in range(1, (due - day).days + 1))
    assert counted == n
    assert due == day if n == 0 else (due > day and is_school_day(due, calendar))


@given(day=DAYS, n=st.integers(0, 30), calendar=CALENDARS)
def test_one_more_school_day_is_later_and_a_holiday_never_makes_a_deadline_earlier(day, n, calendar):
    assert add_school_days(day, n + 1, calendar) > add_school_days(day, n, calendar)
    fewer = SchoolCalendar.of(calendar.holidays, ())
    assert add_school_days(day, n, fewer) >= add_school_days(day, n, SchoolCalendar.of((), ()))


@given(day=DAYS, n=st.integers(0, 30))
def test_without_holidays_school_days_are_monday_to_friday(day, n):
    due = add_school_days(day, n)
    weekdays = [d for d in (day + timedelta(days=k) for k in range(1, (due - day).days + 1)) if d.weekday() < 5]
    assert len(weekdays) == n


def test_a_make_up_working_day_counts_and_a_holiday_does_not():
    # 2026: National Day off 1-7 October; Sunday 27 September and Saturday 10 October worked
    cal = SchoolCalendar.of([date(2026, 10, d) for d in range(1, 8)], [date(2026, 9, 27), date(2026, 10, 10)])
    assert add_school_days(date(2026, 9, 26), 1, cal) == date(2026, 9, 27)
    assert add_school_days(date(2026, 9, 30), 1, cal) == date(2026, 10, 8)
    assert add_school_days(date(2026, 10, 8), 1, cal) == date(2026, 10, 9)
    assert add_school_days(date(2026, 10, 9), 1, cal) == date(2026, 10, 10)
    with pytest.raises(ValueError):
        add_school_days(date(2026, 10, 9), -1, cal)


def test_the_policy_says_per_deadline_whether_it_counts_school_days():
    # given the defaults: starting the investigation in 1 school day, completing it in 10 calendar days
    p = Policy()
    friday = date(2026, 10, 16)
    assert p.intake_due(friday) == date(2026, 10, 19)
    assert p.investigation_due(friday) == date(2026, 10, 26)
    # when a region counts the investigation in school days, with a holiday
    region = Policy.from_toml('holidays = ["2026-10-19"]\n[day_counting]\ninvestigation = "school_days"\n')
    # then both deadlines skip the weekend and the holiday
    assert region.intake_due(friday) == date(2026, 10, 20)
    assert region.investigation_due(friday) == date(2026, 11, 2)
    assert region.school_days_after(friday, 1) == date(2026, 10, 20)


@pytest.mark.parametrize(
    "toml, says",
    [
        ("holidays = 3", "holidays 应为日期列表"),
        ('holidays = ["10月1日"]', "不是日期"),
        ("workdays = [2026-10-10T09:00:00]", "不是日期"),
        ("holidays = [2026-10-10]\nworkdays = [2026-10-10]", "既是节假日又是调休上班日"),
        ('[day_counting]\nintake = "weekdays"', "school_days 或 calendar_days"),
        ('[day_counting]\nappeal = "school_days"', "未知的期限"),
        ("intake_days = 0", "intake_days 必须为正整数"),
    ],
)
def test_a_bad_calendar_in_the_policy_file_is_refused_with_a_clear_message(toml, says):
    with pytest.raises(InvalidInput) as e:
        Policy.from_toml(toml)
    assert says in str(e.value)
