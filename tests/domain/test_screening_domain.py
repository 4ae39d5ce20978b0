"""Screening instruments (PHQ-9, GAD-7, or a region's own) and a student's screening
record as pure domain objects: no database, no application, no clock.

The band cut-offs below are the published ones, written out here rather than read
from the configuration, so a change to the configuration shows up as a failure."""

from __future__ import annotations

from copy import deepcopy
from datetime import date, datetime, timedelta
from functools import reduce
from typing import Any
from uuid import uuid4
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.common import DomainError, InvalidInput
from domain.screening import (
    DEFAULT_INSTRUMENTS,
    DuplicateScreening,
    ImportRejected,
    Instrument,
    InvalidAnswers,
    ScreeningRecord,
    UnknownInstrument,
    instruments_from_config,
)

SH = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 10, 12, 15, 0, tzinfo=SH)
SCREENED_ON = date(2026, 10, 12)
COUNSELOR, STUDENT = "counselor-1", "student-1"
PHQ9 = DEFAULT_INSTRUMENTS["PHQ-9"]
GAD7 = DEFAULT_INSTRUMENTS["GAD-7"]

# (first total, last total, band, Chinese label), as published
PHQ9_BANDS = [
    (0, 4, "minimal", "无/极轻微"),
    (5, 9, "mild", "轻度"),
    (10, 14, "moderate", "中度"),
    (15, 19, "moderately_severe", "中重度"),
    (20, 27, "severe", "重度"),
]
GAD7_BANDS = [
    (0, 4, "minimal", "无/极轻微"),
    (5, 9, "mild", "轻度"),
    (10, 14, "moderate", "中度"),
    (15, 21, "severe", "重度"),
]


def answers_for(total: int, items: int, crisis_item: int | None = None) -> list[int]:
    """Answers 0-3 adding up to `total`, leaving the crisis item at 0 while the others
    can carry the total."""
    order = [i for i in range(items) if i != (crisis_item or 0) - 1] + ([crisis_item - 1] if crisis_item else [])
    answers = [0] * items
    left = total
    for i in order:
        answers[i] = min(3, left)
        left -= answers[i]
    assert left == 0
    return answers


def edges(bands: list[tuple[int, int, str, str]]) -> list[tuple[int, str, str]]:
    return [(t, name, label) for lo, hi, name, label in bands for t in sorted({lo, hi})]


def band_index(inst: Instrument, band: str) -> int:
    return [b.name for b in inst.bands].index(band)


# -- PHQ-9 -------------------------------------------------------------------------------------
@pytest.mark.parametrize("total, band, label", edges(PHQ9_BANDS))
def test_phq9_scores_each_band_edge_into_its_published_band(total: int, band: str, label: str) -> None:
    r = PHQ9.score(answers_for(total, 9, crisis_item=9))
    assert (r.total, r.band, r.band_label) == (total, band, label)
    # flagged from 中度 (10) upwards
    assert r.flagged is (total >= 10)


@pytest.mark.parametrize("total", [9, 10])
def test_phq9_asks_for_a_key_support_file_from_moderate_and_nothing_below(total: int) -> None:
    r = PHQ9.score(answers_for(total, 9, crisis_item=9))
    assert (r.crisis, r.risk_level) == (False, "key" if total >= 10 else None)
    assert PHQ9.category_for(r) == "情绪困扰"


def test_phq9_item_9_answered_above_zero_is_a_crisis_whatever_the_total() -> None:
    # the lowest possible total with item 9 (thoughts of self-harm) answered "several days"
    r = PHQ9.score([0, 0, 0, 0, 0, 0, 0, 0, 1])
    assert (r.total, r.band, r.flagged, r.crisis, r.risk_level) == (1, "minimal", False, True, "high")
    assert PHQ9.category_for(r) == "自伤风险"


def test_phq9_at_24_with_item_9_at_zero_is_severe_but_not_a_crisis() -> None:
    r = PHQ9.score([3, 3, 3, 3, 3, 3, 3, 3, 0])
    assert (r.total, r.band, r.flagged, r.crisis, r.risk_level) == (24, "severe", True, False, "key")
    assert PHQ9.category_for(r) == "情绪困扰"


def test_phq9_a_maximal_answer_on_another_item_is_not_a_crisis() -> None:
    r = PHQ9.score([3, 0, 0, 0, 0, 0, 0, 0, 0])
    assert (r.crisis, r.risk_level) == (False, None)


def test_the_phq9_crisis_rule_is_on_item_9_above_zero() -> None:
    assert PHQ9.crisis is not None
    assert (PHQ9.crisis.item, PHQ9.crisis.above, PHQ9.crisis.label) == (9, 0, "自伤/自杀念头")


# -- GAD-7 -------------------------------------------------------------------------------------
@pytest.mark.parametrize("total, band, label", edges(GAD7_BANDS))
def test_gad7_scores_each_band_edge_into_its_published_band(total: int, band: str, label: str) -> None:
    r = GAD7.score(answers_for(total, 7))
    assert (r.total, r.band, r.band_label) == (total, band, label)
    assert r.flagged is (total >= 10)
    assert r.risk_level == ("key" if total >= 10 else None)


def test_gad7_has_no_crisis_item_even_at_the_maximum() -> None:
    r = GAD7.score([3] * 7)
    assert (r.total, r.band, r.crisis, r.risk_level) == (21, "severe", False, "key")
    assert GAD7.crisis is None and GAD7.category_for(r) == "情绪困扰"


# -- invalid answers ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "inst, answers, message",
    [
        (PHQ9, [], "应有 9 题，实际 0 题"),
        (PHQ9, [0] * 8, "应有 9 题，实际 8 题"),
        (PHQ9, [0] * 10, "应有 9 题，实际 10 题"),
        (GAD7, [0] * 9, "应有 7 题，实际 9 题"),
        (PHQ9, [4] + [0] * 8, "第 1 题得分「4」超出范围 0-3"),
        (PHQ9, [0] * 8 + [-1], "第 9 题得分「-1」超出范围 0-3"),
        (GAD7, [0, 0, 0, 0, 0, 0, 7], "第 7 题得分「7」超出范围 0-3"),
        (PHQ9, [0, 1.0] + [0] * 7, "第 2 题"),
        (PHQ9, [0, 0, "2"] + [0] * 6, "第 3 题"),
        (PHQ9, [0, 0, 0, None] + [0] * 5, "第 4 题"),
        (PHQ9, [0, 0, 0, 0, True] + [0] * 4, "第 5 题"),
    ],
)
def test_answers_of_the_wrong_count_out_of_range_or_not_whole_numbers_are_refused(
    inst: Instrument, answers: list[Any], message: str
) -> None:
    with pytest.raises(InvalidAnswers) as e:
        inst.score(answers)
    assert e.value.code == "invalid_answers" and isinstance(e.value, InvalidInput)
    assert e.value.text.startswith("答题数据无效：") and inst.name in e.value.text and message in e.value.text


# -- properties of scoring ---------------------------------------------------------------------
phq9_answers = st.lists(st.integers(min_value=0, max_value=3), min_size=9, max_size=9)


@given(answers=phq9_answers)
def test_a_phq9_score_is_the_sum_of_its_answers_within_range_and_in_the_band_that_holds_it(
    answers: list[int],
) -> None:
    r = PHQ9.score(answers)
    assert r.total == sum(answers) and 0 <= r.total <= 27
    (lo, hi, label) = next((lo, hi, label) for lo, hi, name, label in PHQ9_BANDS if name == r.band)
    assert lo <= r.total <= hi and r.band_label == label
    # a crisis is item 9 above zero, and it decides the risk level over the total
    assert r.crisis is (answers[8] > 0)
    assert r.risk_level == ("high" if r.crisis else "key" if r.flagged else None)


@given(a=phq9_answers, b=phq9_answers)
def test_the_band_and_the_flag_never_go_down_as_the_total_goes_up(a: list[int], b: list[int]) -> None:
    low, high = sorted([PHQ9.score(a), PHQ9.score(b)], key=lambda r: r.total)
    assert band_index(PHQ9, low.band) <= band_index(PHQ9, high.band)
    assert not (low.flagged and not high.flagged)


@given(answers=st.lists(st.integers(min_value=0, max_value=3), min_size=7, max_size=7))
def test_a_gad7_score_is_the_sum_of_its_answers_and_never_a_crisis(answers: list[int]) -> None:
    r = GAD7.score(answers)
    assert r.total == sum(answers) and 0 <= r.total <= GAD7.max_total == 21
    assert not r.crisis and r.flagged is (r.total >= 10)


@st.composite
def instruments(draw: st.DrawFn) -> tuple[Instrument, list[int]]:
    """Any well-formed instrument (bands cut anywhere) and a valid set of answers to it."""
    items = draw(st.integers(min_value=1, max_value=12))
    lo = draw(st.integers(min_value=0, max_value=2))
    hi = draw(st.integers(min_value=lo + 1, max_value=lo + 5))
    first, last = items * lo, items * hi
    starts = sorted(draw(st.sets(st.integers(min_value=first + 1, max_value=last), max_size=5)))
    bounds = [first, *starts, last + 1]
    bands = [{"name": f"b{n}", "min": bounds[n], "max": bounds[n + 1] - 1} for n in range(len(bounds) - 1)]
    flag_from = draw(st.sampled_from([b["name"] for b in bands]))
    inst = Instrument.from_dict(
        {"id": "X-1", "items": items, "item_range": [lo, hi], "bands": bands, "flag_from": flag_from}
    )
    answers = draw(st.lists(st.integers(min_value=lo, max_value=hi), min_size=items, max_size=items))
    return inst, answers


@given(case=instruments())
def test_any_configured_instrument_scores_the_sum_into_the_band_holding_it_and_flags_from_its_threshold(
    case: tuple[Instrument, list[int]],
) -> None:
    inst, answers = case
    r = inst.score(answers)
    (band,) = [b for b in inst.bands if b.name == r.band]
    assert r.total == sum(answers) and band.min <= r.total <= band.max
    assert r.flagged is (band_index(inst, r.band) >= band_index(inst, inst.flag_from))
    assert Instrument.from_dict(inst.to_dict()) == inst


# -- instruments as configuration --------------------------------------------------------------
def test_a_flagged_band_may_ask_for_its_own_risk_level_and_the_instrument_for_its_own_defaults() -> None:
    inst = Instrument.from_dict(
        {
            "id": "K-3",
            "items": 3,
            "item_range": [0, 2],
            "flag_from": "mid",
            "flag_risk_level": "general",
            "crisis_risk_level": "key",
            "crisis": {"item": 1, "above": 1, "category": "危机"},
            "bands": [
                {"name": "low", "min": 0, "max": 2},
                {"name": "mid", "min": 3, "max": 4},
                {"name": "top", "min": 5, "max": 6, "risk_level": "high"},
            ],
        }
    )
    assert inst.score([0, 1, 2]).risk_level == "general"  # mid: the instrument's level
    assert inst.score([1, 2, 2]).risk_level == "high"  # top: the band's own level
    crisis = inst.score([2, 0, 0])  # item 1 above 1
    assert (crisis.crisis, crisis.flagged, crisis.risk_level, inst.category_for(crisis)) == (True, False, "key", "危机")


@pytest.mark.parametrize(
    "change, message",
    [
        ({"id": " "}, "量表编号不能为空"),
        ({"item_range": [3, 3]}, "每题分值范围不正确"),
        ({"bands": [{"name": "a", "min": 1, "max": 27}]}, "应从 0 分开始"),
        (
            {"bands": [{"name": "a", "min": 0, "max": 10}, {"name": "b", "min": 10, "max": 27}]},
            "分段「b」应从 11 分开始",
        ),
        ({"bands": [{"name": "a", "min": 0, "max": 10}, {"name": "a", "min": 11, "max": 27}]}, "分段名称重复"),
        ({"bands": [{"name": "moderate", "min": 0, "max": 27, "risk_level": "red"}]}, "风险等级无效"),
        ({"crisis_risk_level": "urgent"}, "风险等级无效"),
        ({"crisis": {"item": 0, "above": 0}}, "危机题号超出范围"),
        ({"crisis": {"item": 9, "above": -1}}, "危机阈值超出分值范围"),
        ({"items": "nine"}, "量表配置不完整或格式错误"),
    ],
)
def test_a_malformed_instrument_is_refused_when_read(change: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInput) as e:
        Instrument.from_dict(PHQ9.to_dict() | change)
    assert message in e.value.text


def test_an_instrument_without_its_items_or_bands_is_refused_when_read() -> None:
    with pytest.raises(InvalidInput) as e:
        Instrument.from_dict({"id": "X"})
    assert "量表配置不完整或格式错误" in e.value.text


def test_instruments_are_looked_up_by_upper_cased_id_and_an_id_twice_is_refused() -> None:
    own = PHQ9.to_dict() | {"id": "phq-9-bj", "name": "PHQ-9（北京）"}
    found = instruments_from_config([own, GAD7.to_dict()])
    assert sorted(found) == ["GAD-7", "PHQ-9-BJ"] and found["PHQ-9-BJ"].id == "phq-9-bj"
    with pytest.raises(InvalidInput) as e:
        instruments_from_config([PHQ9.to_dict(), PHQ9.to_dict() | {"id": "phq-9"}])
    assert "量表编号「phq-9」重复" in e.value.text


def test_the_named_screening_errors_say_what_was_refused() -> None:
    assert UnknownInstrument(instrument="SCL-90").code == "unknown_instrument"
    assert UnknownInstrument(instrument="SCL-90").text == "未知的筛查量表「SCL-90」"
    dup = DuplicateScreening(instrument="PHQ-9", screened_on="2026-10-10")
    assert dup.code == "duplicate_screening" and dup.text == "该学生 2026-10-10 的 PHQ-9 筛查已记录，不能重复导入"


def test_a_rejected_import_lists_every_bad_row_in_line_order() -> None:
    e = ImportRejected([(7, "第 3 题超出范围"), (2, "学号不存在"), (4, "日期格式错误")])
    assert e.code == "import_rejected" and e.errors == [(2, "学号不存在"), (4, "日期格式错误"), (7, "第 3 题超出范围")]
    assert e.text == "导入被拒绝：共 3 行有误，未导入任何数据"


# -- the screening record ----------------------------------------------------------------------
def new_record(**changes: Any) -> ScreeningRecord:
    fields: dict[str, Any] = dict(
        id=uuid4(), school_id="school-1", student_id=STUDENT, school_year=2026, actor=COUNSELOR, at=T0
    )
    fields.update(changes)
    return ScreeningRecord.open(**fields)


def record(rec: ScreeningRecord, **changes: Any) -> Any:
    fields: dict[str, Any] = dict(
        screening_id="s1",
        instrument=PHQ9,
        answers=[2, 2, 2, 2, 2, 0, 0, 0, 0],
        screened_on=SCREENED_ON,
        school_year=2026,
        actor=COUNSELOR,
        at=T0,
    )
    fields.update(changes)
    return rec.record(**fields)


def state(agg: ScreeningRecord) -> dict[str, Any]:
    return deepcopy({k: v for k, v in vars(agg).items() if k != "_pending_events"})


def refused(agg: ScreeningRecord, error: type[DomainError], **changes: Any) -> DomainError:
    """Recording raises `error` and the record is unchanged."""
    before = (agg.version, len(agg.pending_events), state(agg))
    with pytest.raises(error) as e:
        record(agg, **changes)
    assert (agg.version, len(agg.pending_events), state(agg)) == before
    return e.value


def test_a_screening_record_is_opened_for_one_student_and_school_year() -> None:
    rec = new_record()
    (e,) = rec.collect_events()
    assert type(e).__name__ == "ScreeningRecordOpened"
    assert (e.school_id, e.student_id, e.school_year, e.actor, e.at) == ("school-1", STUDENT, 2026, COUNSELOR, T0)
    assert (rec.screenings, rec.flagged, rec.crisis, rec.version) == ([], False, False, 1)
    s = rec.scope()
    assert (s.kind, s.school_id, s.subject_id, s.status, s.links) == (
        "screening",
        "school-1",
        STUDENT,
        "recorded",
        ((STUDENT, "screened"),),
    )


@pytest.mark.parametrize(
    "changes, message",
    [({"student_id": ""}, "学生不能为空"), ({"at": datetime(2026, 10, 12, 15, 0)}, "时间必须带时区")],
)
def test_a_screening_record_needs_a_student_and_an_aware_time(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInput) as e:
        new_record(**changes)
    assert message in e.value.text


def test_recording_a_screening_scores_it_and_records_the_result_who_and_when() -> None:
    rec = new_record()
    rec.collect_events()

    r = record(rec, support_file_id="file-3", import_id="imp-1")

    assert (r.total, r.band, r.band_label, r.flagged, r.crisis, r.risk_level) == (
        10,
        "moderate",
        "中度",
        True,
        False,
        "key",
    )
    (e,) = rec.collect_events()
    assert type(e).__name__ == "ScreeningRecorded"
    assert (e.screening_id, e.instrument, e.instrument_name, e.answers) == (
        "s1",
        "PHQ-9",
        "PHQ-9 抑郁筛查量表",
        [2, 2, 2, 2, 2, 0, 0, 0, 0],
    )
    assert (e.total, e.band, e.band_label, e.flagged, e.crisis, e.screened_on) == (
        10,
        "moderate",
        "中度",
        True,
        False,
        SCREENED_ON,
    )
    assert (e.support_file_id, e.import_id, e.actor, e.at) == ("file-3", "imp-1", COUNSELOR, T0)
    (s,) = rec.screenings
    assert (s["id"], s["instrument"], s["total"], s["band"], s["support_file_id"], s["import_id"]) == (
        "s1",
        "PHQ-9",
        10,
        "moderate",
        "file-3",
        "imp-1",
    )
    assert rec.flagged and not rec.crisis and rec.version == 2


def test_a_crisis_answer_marks_the_record_as_a_crisis_even_when_not_flagged() -> None:
    rec = new_record()
    r = record(rec, answers=[0, 0, 0, 0, 0, 0, 0, 0, 2])
    assert (r.crisis, r.flagged) == (True, False)
    assert (rec.crisis, rec.flagged, rec.screenings[0]["crisis"]) == (True, False, True)


def test_the_recorded_answers_are_a_copy_of_what_was_passed_in() -> None:
    rec = new_record()
    answers = [0] * 9
    record(rec, answers=answers)
    answers[8] = 3  # the caller reuses its list afterwards
    (_, e) = rec.collect_events()
    assert e.answers == [0] * 9 and rec.screenings[0]["answers"] == [0] * 9


def test_several_instruments_and_several_days_are_kept_in_one_years_record() -> None:
    rec = new_record()
    record(rec, screening_id="a", instrument=PHQ9, answers=[0] * 9, screened_on=date(2026, 9, 20))
    record(rec, screening_id="b", instrument=GAD7, answers=[3] * 7, screened_on=date(2026, 9, 20))
    record(rec, screening_id="c", instrument=PHQ9, answers=[1] * 9, screened_on=SCREENED_ON)
    assert [(s["id"], s["instrument"], s["total"], s["band"]) for s in rec.screenings] == [
        ("a", "PHQ-9", 0, "minimal"),
        ("b", "GAD-7", 21, "severe"),
        ("c", "PHQ-9", 9, "mild"),
    ]
    assert rec.has("phq-9", date(2026, 9, 20)) and rec.has("GAD-7", date(2026, 9, 20))
    assert not rec.has("GAD-7", SCREENED_ON)


def test_a_screening_taken_today_in_china_is_not_in_the_future_just_after_midnight() -> None:
    # 00:10 on 12 October in Shanghai is still 11 October in UTC
    rec = new_record()
    record(rec, screened_on=date(2026, 10, 12), at=datetime(2026, 10, 12, 0, 10, tzinfo=SH))
    assert len(rec.screenings) == 1


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"answers": [0] * 8}, "应有 9 题，实际 8 题"),
        ({"answers": [0] * 8 + [4]}, "第 9 题得分「4」超出范围 0-3"),
        ({"instrument": GAD7, "answers": [0] * 9}, "应有 7 题，实际 9 题"),
    ],
)
def test_a_screening_with_invalid_answers_is_refused_and_records_nothing(changes: dict[str, Any], message: str) -> None:
    rec = new_record()
    rec.collect_events()
    err = refused(rec, InvalidAnswers, **changes)
    assert err.code == "invalid_answers" and message in err.text
    assert rec.screenings == []


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"screened_on": SCREENED_ON + timedelta(days=1)}, "筛查日期不能晚于今天"),
        ({"screened_on": datetime(2026, 10, 10, 9, 0, tzinfo=SH)}, "筛查日期格式不正确"),
        ({"school_year": 2025}, "筛查日期不在本档案的学年内"),
        ({"at": datetime(2026, 10, 12, 15, 0)}, "时间必须带时区"),
    ],
)
def test_a_future_misdated_or_other_years_screening_is_refused_and_records_nothing(
    changes: dict[str, Any], message: str
) -> None:
    rec = new_record()
    rec.collect_events()
    err = refused(rec, InvalidInput, **changes)
    assert err.code == "invalid_input" and message in err.text


def test_the_same_instrument_on_the_same_day_is_recorded_once_whatever_the_case_of_its_id() -> None:
    rec = new_record()
    record(rec, screening_id="a")
    rec.collect_events()
    lower = Instrument.from_dict(PHQ9.to_dict() | {"id": "phq-9"})
    err = refused(rec, DuplicateScreening, screening_id="b", instrument=lower, answers=[3] * 9)
    assert err.code == "duplicate_screening" and "2026-10-12" in err.text and "phq-9" in err.text
    assert [s["id"] for s in rec.screenings] == ["a"] and not rec.crisis


def test_replaying_a_screening_record_rebuilds_the_same_record() -> None:
    rec = new_record()
    record(rec, screening_id="a", answers=[0] * 8 + [1], screened_on=date(2026, 9, 20))
    record(rec, screening_id="b", instrument=GAD7, answers=[2] * 7, import_id="imp-1")
    events = rec.collect_events()
    assert [type(e).__name__ for e in events] == ["ScreeningRecordOpened", "ScreeningRecorded", "ScreeningRecorded"]

    copy = reduce(lambda a, e: e.mutate(a), events, None)

    assert isinstance(copy, ScreeningRecord) and copy.__dict__ == rec.__dict__
    assert (copy.flagged, copy.crisis, copy.version) == (True, True, 3)
