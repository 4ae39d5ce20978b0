"""Policy: DOMAIN.md's defaults, overridden by a region's TOML file; a bad file is
refused with a Chinese message that says what is wrong (never a crash)."""

from __future__ import annotations

from datetime import date

import pytest

from domain.common import InvalidInput
from domain.policy import Policy


def test_the_defaults_are_those_of_the_domain_brief() -> None:
    p = Policy()
    # investigation within 10 days, check-ins every 2 weeks, one screening a school year,
    # high-risk files reviewed weekly, 重点关注 monthly, 一般关注 each term, reports every two months
    assert p.investigation_days == 10
    assert p.check_in_cadence_days == 14
    assert p.screenings_per_school_year == 1
    assert p.review_days == {"high": 7, "key": 30, "general": 90}
    assert p.report_interval_months == 2
    assert p.investigation_due(date(2026, 10, 12)) == date(2026, 10, 22)
    assert p.next_check_in(date(2026, 10, 12)) == date(2026, 10, 26)
    assert p.next_check_in(date(2026, 10, 12), cadence_days=7) == date(2026, 10, 19)
    assert p.next_review("high", date(2026, 10, 1)) == date(2026, 10, 8)


def test_the_appeal_window_and_the_next_follow_up_count_from_the_day_given() -> None:
    # given the defaults (15 days to appeal, a follow-up visit every 30 days) and a region's own numbers
    default, region = Policy(), Policy(appeal_days=7, follow_up_days=14)
    # then the appeal window ends appeal_days after the approval, the next visit follow_up_days after
    assert default.appeal_until(date(2026, 10, 12)) == date(2026, 10, 27)
    assert region.appeal_until(date(2026, 10, 12)) == date(2026, 10, 19)
    assert default.follow_up_due(date(2026, 12, 20)) == date(2027, 1, 19)
    assert region.follow_up_due(date(2026, 10, 12)) == date(2026, 10, 26)


def test_the_school_year_starts_on_the_configured_day() -> None:
    p = Policy()
    assert p.school_year_of(date(2026, 8, 31)) == 2025
    assert p.school_year_of(date(2026, 9, 1)) == 2026
    assert p.school_year_start(2026) == date(2026, 9, 1)
    spring = Policy.from_toml("school_year_start_month = 2\nschool_year_start_day = 15\n")
    assert spring.school_year_of(date(2026, 2, 14)) == 2025
    assert spring.school_year_of(date(2026, 2, 15)) == 2026


def test_a_toml_file_overrides_only_what_it_names() -> None:
    # given a region's policy file with a [policy] table
    text = """
    [policy]
    investigation_days = 7
    check_in_cadence_days = 10

    [policy.review_days]
    high = 14
    """
    # when it is loaded
    p = Policy.from_toml(text)
    # then the named values change and the rest keep their defaults
    assert (p.investigation_days, p.check_in_cadence_days) == (7, 10)
    assert p.review_days == {"general": 90, "key": 30, "high": 14}
    assert p.follow_up_days == Policy().follow_up_days
    assert p.investigation_due(date(2026, 10, 12)) == date(2026, 10, 19)
    # and a file without the [policy] table reads the same
    assert Policy.from_toml("investigation_days = 7\ncheck_in_cadence_days = 10\n[review_days]\nhigh = 14\n") == p
    # and an empty file gives the defaults
    assert Policy.from_toml("") == Policy()


@pytest.mark.parametrize(
    "text, says",
    [
        ("investigation_days = ", "策略文件格式错误"),
        ("[policy\ninvestigation_days = 7", "策略文件格式错误"),
        ("investigation_dayz = 7", "未知配置项：investigation_dayz"),
        ("[policy]\ncolour = 'red'\nsize = 2", "未知配置项：colour, size"),
        ("investigation_days = 0", "investigation_days 必须为正整数"),
        ("check_in_cadence_days = -14", "check_in_cadence_days 必须为正整数"),
        ("[review_days]\nurgent = 3", "review_days 只能包含 general、key、high"),
    ],
)
def test_a_bad_policy_file_is_refused_in_chinese(text: str, says: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        Policy.from_toml(text)
    assert raised.value.code == "invalid_input"
    assert says in raised.value.text
    assert raised.value.text.startswith("输入无效：")


def test_a_policy_value_that_is_not_a_positive_whole_number_of_days_is_refused() -> None:
    texts = [
        "[review_days]\nhigh = 0",
        "[review_days]\nkey = -30",
        "investigation_days = 'ten'",
        "investigation_days = 10.5",
        "investigation_days = true",
        "review_days = 30",
    ]
    not_refused = []
    for text in texts:
        try:
            Policy.from_toml(text)
        except InvalidInput:
            continue
        except Exception as e:  # a crash is not a refusal a person can read
            not_refused.append((text, type(e).__name__))
        else:
            not_refused.append((text, "accepted"))
    assert not_refused == []


def test_today_is_the_schools_date_not_the_utc_date(tmp_path) -> None:
    # given a store opened without a clock (as `anxin serve` does); then its clock reads
    # the schools' wall clock, so at 07:00 in Shanghai (23:00 UTC the day before) "today"
    # is already the Shanghai date
    from datetime import UTC, datetime, timedelta

    from anxin.core import school_clock
    from anxin.crypto import MasterKey
    from anxin.service import Anxin
    from anxin.storage import StoreConfig

    app = Anxin(StoreConfig(url=None, data_dir=tmp_path), [MasterKey.generate()])
    try:
        now = app.now()
        assert now.utcoffset() == timedelta(hours=8)
        assert now.date() == datetime.now(UTC).astimezone(now.tzinfo).date()
    finally:
        app.close()
    assert Policy.from_toml('timezone = "Asia/Urumqi"').timezone == "Asia/Urumqi"
    with pytest.raises(InvalidInput):
        Policy.from_toml("timezone = 8")
    with pytest.raises(InvalidInput):
        school_clock("Mars/Olympus_Mons")
