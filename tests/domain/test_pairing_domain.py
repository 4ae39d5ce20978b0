"""一岗双带 (the pairing of a staff member with a student) as a pure domain object: no
database, no application, no clock. Every command takes its actor and an aware `at`;
a refused command leaves the pairing exactly as it was, with no event behind it."""

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

from domain.common import DomainError, InvalidInput, WrongState
from domain.pairing import Pairing

SH = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 9, 1, 9, 0, tzinfo=SH)  # paired on Tuesday 1 September 2026
PAIRED_ON = date(2026, 9, 1)
TEACHER, HEAD = "teacher-1", "safety-1"
STUDENT = "student-1"
NOTES = {"thinking": "情绪平稳", "studies": "数学成绩下滑"}


def at(days: float = 0) -> datetime:
    return T0 + timedelta(days=days)


def new_pairing(cadence_days: int = 14, when: datetime = T0) -> Pairing:
    return Pairing.pair(
        id=uuid4(),
        school_id="school-1",
        staff_id=TEACHER,
        student_id=STUDENT,
        cadence_days=cadence_days,
        actor=HEAD,
        at=when,
    )


def saved(p: Pairing) -> Pairing:
    """As if saved: its pending events collected."""
    p.collect_events()
    return p


def names(p: Pairing) -> list[str]:
    return [type(e).__name__ for e in p.collect_events()]


def check_in(p: Pairing, check_in_id: str = "c1", days: int = 3, **kw: Any) -> None:
    """A check-in held `days` after pairing, recorded the same day."""
    args: dict[str, Any] = dict(
        check_in_id=check_in_id,
        held_on=PAIRED_ON + timedelta(days=days),
        notes=NOTES,
        concern=False,
        actor=TEACHER,
        at=at(days),
    )
    args.update(kw)
    p.record_check_in(**args)


def with_concern(p: Pairing, check_in_id: str = "c1", days: int = 3) -> None:
    check_in(p, check_in_id, days, concern=True, concern_note="提到不想上学，夜里失眠")


def state(p: Pairing) -> dict[str, Any]:
    return deepcopy({k: v for k, v in vars(p).items() if k != "_pending_events"})


def refused(agg: Pairing, error: type[DomainError], command: Any, /, **kw: Any) -> DomainError:
    """The command raises `error` and the pairing is unchanged: same version, same
    pending events, same state."""
    before = (agg.version, len(agg.pending_events), state(agg))
    with pytest.raises(error) as e:
        command(**kw)
    assert (agg.version, len(agg.pending_events), state(agg)) == before
    return e.value


def replay(events: list[Any]) -> Pairing:
    agg = reduce(lambda a, e: e.mutate(a), events, None)
    assert isinstance(agg, Pairing)
    return agg


# -- pairing -----------------------------------------------------------------------------------
def test_a_pairing_records_staff_student_cadence_who_and_when_and_is_active() -> None:
    p = new_pairing(cadence_days=14)

    (e,) = p.collect_events()
    assert type(e).__name__ == "Paired"
    assert (e.school_id, e.staff_id, e.student_id, e.cadence_days, e.actor, e.at) == (
        "school-1",
        TEACHER,
        STUDENT,
        14,
        HEAD,
        T0,
    )
    assert (p.version, p.status, p.active, p.paired_on, p.cadence_days) == (1, "active", True, PAIRED_ON, 14)
    assert (p.check_ins, p.escalations, p.last_check_in, p.open_concerns) == ({}, [], None, [])


def test_the_first_check_in_is_due_one_cadence_after_pairing() -> None:
    p = new_pairing(cadence_days=14)
    assert p.next_due == date(2026, 9, 15)


def test_the_pairing_day_is_the_day_in_china_not_in_utc() -> None:
    # 00:30 on 1 September in Shanghai is still 31 August in UTC
    p = new_pairing(when=datetime(2026, 9, 1, 0, 30, tzinfo=SH))
    assert p.paired_on == date(2026, 9, 1)


def test_the_scope_names_the_staff_as_owner_and_the_student_by_id_only() -> None:
    p = new_pairing()
    s = p.scope()
    assert (s.kind, s.school_id, s.owner_id, s.subject_id, s.status, s.links) == (
        "pairing",
        "school-1",
        TEACHER,
        STUDENT,
        "active",
        ((STUDENT, "paired"),),
    )


@pytest.mark.parametrize("cadence_days", [0, -7])
def test_a_pairing_needs_a_positive_cadence(cadence_days: int) -> None:
    with pytest.raises(InvalidInput) as e:
        new_pairing(cadence_days=cadence_days)
    assert e.value.code == "invalid_input" and "谈心频率必须为正数天" in e.value.text


def test_a_pairing_needs_an_aware_time() -> None:
    with pytest.raises(InvalidInput) as e:
        new_pairing(when=datetime(2026, 9, 1, 9, 0))
    assert "时间必须带时区" in e.value.text


# -- check-ins ---------------------------------------------------------------------------------
def test_a_check_in_records_the_four_dimensions_a_concern_and_who_and_when() -> None:
    p = saved(new_pairing())

    p.record_check_in(
        check_in_id="c1",
        held_on=date(2026, 9, 4),
        notes={"thinking": "  情绪平稳 ", "family": "父母在外打工"},
        concern=True,
        concern_note="  提到不想上学 ",
        actor=TEACHER,
        at=at(3),
    )

    (e,) = p.collect_events()
    assert type(e).__name__ == "CheckInRecorded"
    # every dimension is present (blank where not filled in), trimmed; the note is trimmed
    expected_notes = {"thinking": "情绪平稳", "studies": "", "family": "父母在外打工", "difficulties": ""}
    assert (e.check_in_id, e.held_on, e.notes, e.concern, e.concern_note, e.actor, e.at) == (
        "c1",
        date(2026, 9, 4),
        expected_notes,
        True,
        "提到不想上学",
        TEACHER,
        at(3),
    )
    ci = p.check_ins["c1"]
    assert (ci["held_on"], ci["notes"], ci["concern"], ci["actor"], ci["escalated_to"], ci["corrections"]) == (
        date(2026, 9, 4),
        expected_notes,
        True,
        TEACHER,
        [],
        [],
    )
    assert p.version == 2 and p.last_check_in == date(2026, 9, 4)
    assert [c["id"] for c in p.open_concerns] == ["c1"]


def test_a_check_in_without_a_concern_keeps_no_concern_note_and_is_not_an_open_concern() -> None:
    p = saved(new_pairing())
    check_in(p)
    assert p.check_ins["c1"]["concern"] is False and p.check_ins["c1"]["concern_note"] == ""
    assert p.open_concerns == []


def test_a_check_in_may_be_held_on_the_pairing_day_and_recorded_the_same_day() -> None:
    p = saved(new_pairing())
    check_in(p, days=0)
    assert names(p) == ["CheckInRecorded"] and p.last_check_in == PAIRED_ON


def test_a_check_in_held_today_in_china_is_not_in_the_future_just_after_midnight() -> None:
    # 00:10 on 5 September in Shanghai (4 September in UTC): a check-in held on the 5th is today
    p = saved(new_pairing())
    check_in(p, held_on=date(2026, 9, 5), at=datetime(2026, 9, 5, 0, 10, tzinfo=SH))
    assert names(p) == ["CheckInRecorded"]


@pytest.mark.parametrize(
    "changes, reason",
    [
        ({"held_on": date(2026, 9, 5), "at": at(3)}, "谈心日期不能晚于今天"),
        ({"held_on": PAIRED_ON - timedelta(days=1)}, "谈心日期不能早于结对日期"),
        ({"notes": {"thinking": "好", "hobbies": "篮球"}}, "未知的谈心维度：hobbies"),
        ({"notes": {"thinking": "  ", "studies": ""}}, "四个方面至少填写一项"),
        ({"notes": {}}, "四个方面至少填写一项"),
        ({"concern": True, "concern_note": "  "}, "担忧说明不能为空"),
        ({"concern": True}, "担忧说明不能为空"),
        ({"at": datetime(2026, 9, 4, 9, 0)}, "时间必须带时区"),
    ],
)
def test_an_incomplete_or_misdated_check_in_is_refused_and_records_nothing(
    changes: dict[str, Any], reason: str
) -> None:
    p = saved(new_pairing())
    err = refused(p, InvalidInput, check_in, p=p, **changes)
    assert err.code == "invalid_input" and reason in err.text
    assert p.check_ins == {}


def test_a_check_in_id_is_recorded_once() -> None:
    p = saved(new_pairing())
    check_in(p, "c1", days=3)
    p.collect_events()
    err = refused(p, InvalidInput, check_in, p=p, check_in_id="c1", days=5)
    assert "该谈心记录已存在" in err.text
    assert p.check_ins["c1"]["held_on"] == date(2026, 9, 4)


def test_an_ended_pairing_takes_no_more_check_ins() -> None:
    p = new_pairing()
    p.end(reason="学生转学", actor=HEAD, at=at(10))
    p.collect_events()
    err = refused(p, WrongState, check_in, p=p, days=11)
    assert err.code == "wrong_state" and "已结束" in err.text and "记录谈心" in err.text


# -- cadence and overdue -----------------------------------------------------------------------
def test_the_next_check_in_is_due_one_cadence_after_the_last_and_overdue_only_the_day_after() -> None:
    p = saved(new_pairing(cadence_days=14))
    assert not p.is_overdue(date(2026, 9, 15)) and p.is_overdue(date(2026, 9, 16))

    check_in(p, days=10)  # held 11 September

    assert p.next_due == date(2026, 9, 25)
    assert not p.is_overdue(date(2026, 9, 16))
    assert not p.is_overdue(date(2026, 9, 25)) and p.is_overdue(date(2026, 9, 26))


def test_a_back_dated_check_in_does_not_bring_the_next_due_date_forward() -> None:
    p = saved(new_pairing(cadence_days=14))
    check_in(p, "late", days=10)
    # recorded on the 12th, but held on the 3rd
    check_in(p, "earlier", held_on=date(2026, 9, 3), at=at(11))
    assert p.last_check_in == date(2026, 9, 11) and p.next_due == date(2026, 9, 25)


def test_a_cadence_change_records_why_and_moves_the_next_due_date() -> None:
    p = saved(new_pairing(cadence_days=14))
    check_in(p, days=3)  # held 4 September
    p.collect_events()

    p.change_cadence(cadence_days=7, reason="近期情绪波动，改为每周一次", actor=HEAD, at=at(5))

    (e,) = p.collect_events()
    assert type(e).__name__ == "CadenceChanged"
    assert (e.cadence_days, e.reason, e.actor, e.at) == (7, "近期情绪波动，改为每周一次", HEAD, at(5))
    assert p.cadence_days == 7 and p.next_due == date(2026, 9, 11)
    assert p.is_overdue(date(2026, 9, 12))


@pytest.mark.parametrize(
    "cadence_days, reason, message",
    [
        (14, "再次确认", "频率没有变化"),
        (0, "暂停", "谈心频率必须为正数天"),
        (-1, "暂停", "谈心频率必须为正数天"),
        (7, "  ", "原因不能为空"),
    ],
)
def test_a_cadence_change_to_the_same_or_a_non_positive_cadence_or_without_a_reason_is_refused(
    cadence_days: int, reason: str, message: str
) -> None:
    p = saved(new_pairing(cadence_days=14))
    err = refused(p, InvalidInput, p.change_cadence, cadence_days=cadence_days, reason=reason, actor=HEAD, at=at(1))
    assert message in err.text and p.cadence_days == 14


def test_the_cadence_of_an_ended_pairing_cannot_change() -> None:
    p = new_pairing()
    p.end(reason="学生毕业", actor=HEAD, at=at(10))
    p.collect_events()
    err = refused(p, WrongState, p.change_cadence, cadence_days=7, reason="调整", actor=HEAD, at=at(11))
    assert err.code == "wrong_state" and "调整频率" in err.text


@given(
    cadence=st.integers(min_value=1, max_value=60),
    held=st.lists(st.integers(min_value=0, max_value=120), max_size=6),
    today=st.integers(min_value=0, max_value=250),
)
def test_next_due_is_the_latest_check_in_plus_the_cadence_and_overdue_means_past_it(
    cadence: int, held: list[int], today: int
) -> None:
    # given check-ins held on any days after pairing, recorded in any order
    p = new_pairing(cadence_days=cadence)
    for n, d in enumerate(held):
        check_in(p, f"c{n}", held_on=PAIRED_ON + timedelta(days=d), at=at(200))
    # then the next one is due a cadence after the latest (or after pairing, if none)
    latest = PAIRED_ON + timedelta(days=max(held, default=0))
    assert p.next_due == latest + timedelta(days=cadence)
    day = PAIRED_ON + timedelta(days=today)
    assert p.is_overdue(day) == (day > latest + timedelta(days=cadence))


# -- corrections -------------------------------------------------------------------------------
def test_a_correction_is_a_new_event_naming_the_check_in_it_corrects() -> None:
    p = saved(new_pairing())
    check_in(p, notes={"thinking": "情绪平稳", "studies": "数学下滑"})
    (recorded,) = p.collect_events()

    p.correct_check_in(check_in_id="c1", notes={"studies": " 物理下滑 "}, reason="科目记错", actor=TEACHER, at=at(4))

    (e,) = p.collect_events()
    assert type(e).__name__ == "CheckInCorrected"
    assert (e.corrects, e.reason, e.actor, e.at) == ("c1", "科目记错", TEACHER, at(4))
    assert e.changes == {"notes": {"thinking": "情绪平稳", "studies": "物理下滑", "family": "", "difficulties": ""}}
    # the named dimension is corrected, the others kept, and the correction is on the record
    ci = p.check_ins["c1"]
    assert ci["notes"] == {"thinking": "情绪平稳", "studies": "物理下滑", "family": "", "difficulties": ""}
    assert ci["corrections"] == [{"reason": "科目记错", "actor": TEACHER, "at": at(4)}]
    # and the original record is untouched: history is never edited
    assert recorded.notes["studies"] == "数学下滑"
    assert (ci["held_on"], ci["actor"], ci["at"]) == (date(2026, 9, 4), TEACHER, at(3))


def test_a_correction_can_raise_a_concern_with_its_note_and_it_becomes_open() -> None:
    p = saved(new_pairing())
    check_in(p)
    p.collect_events()
    p.correct_check_in(
        check_in_id="c1", concern=True, concern_note="  补记：有自伤言语 ", reason="漏记", actor=TEACHER, at=at(4)
    )
    assert (p.check_ins["c1"]["concern"], p.check_ins["c1"]["concern_note"]) == (True, "补记：有自伤言语")
    assert [c["id"] for c in p.open_concerns] == ["c1"]
    assert names(p) == ["CheckInCorrected"]


def test_a_correction_withdrawing_a_concern_closes_it_and_successive_corrections_accumulate() -> None:
    p = saved(new_pairing())
    with_concern(p)
    p.collect_events()
    p.correct_check_in(check_in_id="c1", concern=False, reason="误勾选", actor=TEACHER, at=at(4))
    p.correct_check_in(check_in_id="c1", concern_note="", reason="清除说明", actor=TEACHER, at=at(5))
    assert p.open_concerns == [] and p.check_ins["c1"]["concern_note"] == ""
    assert [c["reason"] for c in p.check_ins["c1"]["corrections"]] == ["误勾选", "清除说明"]
    assert names(p) == ["CheckInCorrected", "CheckInCorrected"]


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"check_in_id": "nope", "notes": {"thinking": "x"}}, "找不到该谈心记录"),
        ({"notes": {"hobbies": "篮球"}}, "未知的谈心维度：hobbies"),
        ({}, "没有要更正的内容"),
        ({"concern": True}, "担忧说明不能为空"),
        ({"concern": True, "concern_note": "  "}, "担忧说明不能为空"),
        ({"notes": {"thinking": "x"}, "reason": " "}, "更正原因不能为空"),
        ({"notes": {"thinking": "x"}, "at": datetime(2026, 9, 5, 9, 0)}, "时间必须带时区"),
    ],
)
def test_a_correction_of_a_missing_check_in_an_unknown_dimension_nothing_or_without_a_reason_is_refused(
    kw: dict[str, Any], message: str
) -> None:
    p = saved(new_pairing())
    check_in(p)  # no concern, so no concern note yet
    p.collect_events()
    args: dict[str, Any] = dict(check_in_id="c1", reason="笔误", actor=TEACHER, at=at(4)) | kw
    err = refused(p, InvalidInput, p.correct_check_in, **args)
    assert err.code == "invalid_input" and message in err.text


def test_withdrawing_the_note_of_a_standing_concern_is_refused() -> None:
    p = saved(new_pairing())
    with_concern(p)
    p.collect_events()
    err = refused(
        p, InvalidInput, p.correct_check_in, check_in_id="c1", concern_note=" ", reason="删掉", actor=TEACHER, at=at(4)
    )
    assert "担忧说明不能为空" in err.text


# -- escalation --------------------------------------------------------------------------------
def test_a_concern_escalated_to_a_support_file_links_both_ways_and_is_no_longer_open() -> None:
    p = saved(new_pairing())
    with_concern(p)
    p.collect_events()

    p.escalate(
        check_in_id="c1", target="support_file", target_id="file-9", reason="需心理老师跟进", actor=TEACHER, at=at(4)
    )

    (e,) = p.collect_events()
    assert type(e).__name__ == "ConcernEscalated"
    assert (e.check_in_id, e.target, e.target_id, e.reason, e.actor, e.at) == (
        "c1",
        "support_file",
        "file-9",
        "需心理老师跟进",
        TEACHER,
        at(4),
    )
    link = {"check_in_id": "c1", "target": "support_file", "target_id": "file-9", "at": at(4)}
    assert p.check_ins["c1"]["escalated_to"] == [link] and p.escalations == [link]
    assert p.open_concerns == []


def test_one_concern_may_become_both_a_support_file_and_a_bullying_report_but_each_only_once() -> None:
    p = saved(new_pairing())
    with_concern(p)
    p.escalate(check_in_id="c1", target="support_file", target_id="f1", reason="情绪", actor=TEACHER, at=at(4))
    p.escalate(check_in_id="c1", target="bullying_case", target_id="b1", reason="被同学孤立", actor=TEACHER, at=at(4))
    assert [(x["target"], x["target_id"]) for x in p.escalations] == [("support_file", "f1"), ("bullying_case", "b1")]
    p.collect_events()

    err = refused(
        p,
        InvalidInput,
        p.escalate,
        check_in_id="c1",
        target="support_file",
        target_id="f2",
        reason="再报",
        actor=TEACHER,
        at=at(5),
    )
    assert "该担忧已上报过同类事项" in err.text


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"check_in_id": "plain"}, "只有标记了担忧的谈心记录才能上报"),
        ({"check_in_id": "nope"}, "找不到该谈心记录"),
        ({"target": "police"}, "只能转为心理档案或欺凌报告"),
        ({"reason": "  "}, "上报原因不能为空"),
        ({"at": datetime(2026, 9, 5, 9, 0)}, "时间必须带时区"),
    ],
)
def test_only_a_concern_can_be_escalated_to_a_file_or_a_bullying_report_with_a_reason(
    kw: dict[str, Any], message: str
) -> None:
    p = saved(new_pairing())
    with_concern(p, "worry")
    check_in(p, "plain")
    p.collect_events()
    args: dict[str, Any] = (
        dict(check_in_id="worry", target="support_file", target_id="f1", reason="需跟进", actor=TEACHER, at=at(4)) | kw
    )
    err = refused(p, InvalidInput, p.escalate, **args)
    assert message in err.text
    assert [c["id"] for c in p.open_concerns] == ["worry"]


# -- end ---------------------------------------------------------------------------------------
def test_ending_a_pairing_records_why_and_it_is_no_longer_due_or_overdue() -> None:
    p = saved(new_pairing(cadence_days=14))

    p.end(reason="学生转学", actor=HEAD, at=at(30))

    (e,) = p.collect_events()
    assert type(e).__name__ == "Ended"
    assert (e.reason, e.actor, e.at) == ("学生转学", HEAD, at(30))
    assert (p.status, p.active, p.ended_on, p.next_due) == ("ended", False, date(2026, 10, 1), None)
    assert not p.is_overdue(date(2027, 9, 1))
    assert p.scope().status == "ended"


def test_a_pairing_ends_once_and_only_with_a_reason() -> None:
    p = saved(new_pairing())
    err = refused(p, InvalidInput, p.end, reason=" ", actor=HEAD, at=at(1))
    assert "结束原因不能为空" in err.text and p.status == "active"
    p.end(reason="学生毕业", actor=HEAD, at=at(2))
    p.collect_events()
    err = refused(p, WrongState, p.end, reason="再次结束", actor=HEAD, at=at(3))
    assert err.code == "wrong_state" and "结束结对" in err.text


# -- replay ------------------------------------------------------------------------------------
def test_replaying_the_events_rebuilds_the_same_pairing_even_past_its_end() -> None:
    p = new_pairing(cadence_days=14)
    check_in(p, "c1", days=3)
    with_concern(p, "c2", days=10)
    p.correct_check_in(check_in_id="c1", notes={"family": "父亲住院"}, reason="补充", actor=TEACHER, at=at(11))
    p.escalate(check_in_id="c2", target="support_file", target_id="f1", reason="转介", actor=TEACHER, at=at(11))
    p.change_cadence(cadence_days=7, reason="加密关注", actor=HEAD, at=at(12))
    p.end(reason="学生转学", actor=HEAD, at=at(20))
    events = p.collect_events()
    assert [type(e).__name__ for e in events] == [
        "Paired",
        "CheckInRecorded",
        "CheckInRecorded",
        "CheckInCorrected",
        "ConcernEscalated",
        "CadenceChanged",
        "Ended",
    ]

    # an ended pairing would refuse these commands today; replay only applies the events
    copy = replay(events)

    assert copy.__dict__ == p.__dict__
    assert (copy.version, copy.status, copy.cadence_days, copy.check_ins["c1"]["notes"]["family"]) == (
        7,
        "ended",
        7,
        "父亲住院",
    )


def test_every_event_records_who_and_an_aware_when() -> None:
    p = new_pairing()
    with_concern(p)
    p.correct_check_in(check_in_id="c1", notes={"thinking": "好转"}, reason="更新", actor=TEACHER, at=at(4))
    p.escalate(check_in_id="c1", target="bullying_case", target_id="b1", reason="疑似欺凌", actor=TEACHER, at=at(4))
    p.change_cadence(cadence_days=7, reason="加密", actor=HEAD, at=at(5))
    p.end(reason="结束", actor=HEAD, at=at(6))
    events = p.collect_events()
    assert len(events) == 6
    for e in events:
        assert e.actor in (TEACHER, HEAD) and e.at.tzinfo is not None


# -- gaps closed: the same rules on every path -------------------------------------------
def test_a_correction_cannot_blank_all_four_dimensions() -> None:
    p = new_pairing()
    check_in(p)
    saved(p)
    blank = {k: "" for k in ("thinking", "studies", "family", "difficulties")}
    e = refused(
        p, InvalidInput, p.correct_check_in, check_in_id="c1", notes=blank, reason="误录", actor=TEACHER, at=at(4)
    )
    assert "四个方面至少填写一项" in str(e)


@pytest.mark.parametrize("missing", ["staff_id", "student_id"])
def test_a_pairing_names_both_the_staff_member_and_the_student(missing: str) -> None:
    fields: dict[str, Any] = dict(
        id=uuid4(), school_id="school-1", staff_id=TEACHER, student_id=STUDENT, cadence_days=14, actor=HEAD, at=T0
    )
    fields[missing] = " "
    with pytest.raises(InvalidInput):
        Pairing.pair(**fields)


@pytest.mark.parametrize("command", ["change_cadence", "end"])
def test_changing_or_ending_a_pairing_needs_an_aware_time(command: str) -> None:
    p = saved(new_pairing())
    kw: dict[str, Any] = {"reason": "学期调整", "actor": HEAD, "at": datetime(2026, 9, 2, 9, 0)}
    if command == "change_cadence":
        kw["cadence_days"] = 7
    refused(p, InvalidInput, getattr(p, command), **kw)
