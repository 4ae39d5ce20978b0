"""The crisis pathway (心理危机干预) as pure domain objects: a signal opens a crisis on the
support file (raising it to 高危), each step of the checklist is an event with who and when,
each due on its own clock from the policy in the school's time zone, and the file leaves
高危 or closes only after the return-to-school assessment (复学评估). Also the policy's
clocks, the check-in's new choice (a version-2 event, version 1 upcast) and the bullying
case's self-harm note."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import uuid4
from zoneinfo import ZoneInfo

import pytest

from domain.bullying import BullyingCase, NotAParty
from domain.common import InvalidInput
from domain.pairing import Pairing
from domain.policy import Policy
from domain.support import (
    CrisisStepDone,
    CrisisStepOutOfOrder,
    FileClosed,
    NoOpenCrisis,
    ReturnAssessmentMissing,
    SupportFile,
)

POLICY = Policy()
SH = ZoneInfo("Asia/Shanghai")
# 09:00 in Shanghai on a Monday (01:00 UTC)
T0 = datetime(2026, 10, 12, 9, 0, tzinfo=SH)
C = "counselor-1"
SOURCE = {"kind": "screening", "id": "record-1"}
MEASURES = [{"text": "每周辅导", "by": "刘老师"}]


def new_file(level: str = "key", at: datetime = T0, **kw: Any) -> SupportFile:
    f = SupportFile.open(
        id=uuid4(),
        school_id="school-1",
        student_id="student-1",
        category="情绪困扰",
        risk_level=level,
        reason="筛查预警",
        responsible_id=C,
        policy=POLICY,
        actor=C,
        at=at,
        **kw,
    )
    f.collect_events()
    return f


def names(f: SupportFile) -> list[str]:
    return [type(e).__name__ for e in f.collect_events()]


def in_crisis(level: str = "key", at: datetime = T0, trigger: str = "screening") -> SupportFile:
    f = new_file(level, at)
    f.open_crisis(
        crisis_id="k1", trigger=trigger, source=SOURCE, reason="PHQ-9 第9题阳性", policy=POLICY, actor=C, at=at
    )
    f.collect_events()
    return f


def hours(n: float) -> datetime:
    return T0 + timedelta(hours=n)


def step(f: SupportFile, name: str) -> dict[str, Any]:
    return next(s for s in f.crisis_checklist(T0) if s["step"] == name)


def replay(events: list[Any]) -> SupportFile:
    agg = None
    for e in events:
        agg = e.mutate(agg)
    assert isinstance(agg, SupportFile)
    return agg


# -- the policy's clocks --------------------------------------------------------------------------
def test_the_review_intervals_are_a_week_a_month_and_a_term_by_default() -> None:
    assert POLICY.review_days == {"high": 7, "key": 30, "general": 90}


def test_crisis_steps_fall_due_on_their_own_clocks_in_the_schools_time_zone() -> None:
    # given a signal at 09:00 Shanghai time (01:00 UTC)
    due = POLICY.crisis_dues(T0.astimezone(UTC))
    # then the assessment is due 4 hours later, the same-day steps at the end of that school
    # day (Shanghai, not UTC), the referral at the end of the second day after
    assert due["assessed"] == hours(4)
    end = datetime(2026, 10, 12, 23, 59, tzinfo=SH)
    assert due["guardian_informed"] == due["guardian_response"] == due["supervision"] == due["handed_over"] == end
    assert due["referral"] == datetime(2026, 10, 14, 23, 59, tzinfo=SH)
    # and a signal at 23:00 UTC is already the next day in Shanghai
    late = POLICY.crisis_dues(datetime(2026, 10, 12, 23, 0, tzinfo=UTC))
    assert late["supervision"] == datetime(2026, 10, 13, 23, 59, tzinfo=SH)
    # and a region's own numbers change the clocks
    region = Policy.from_toml("crisis_assessment_hours = 2\ncrisis_referral_days = 1\ncrisis_feedback_days = 7\n")
    assert region.crisis_dues(T0)["assessed"] == hours(2)
    assert region.crisis_dues(T0)["referral"] == datetime(2026, 10, 13, 23, 59, tzinfo=SH)
    assert region.crisis_feedback_due(T0) == datetime(2026, 10, 19, 23, 59, tzinfo=SH)


def test_first_contact_counts_school_days_monday_to_friday() -> None:
    # Monday + 2 school days = Wednesday; Thursday + 2 = Monday; Friday + 2 = Tuesday; Saturday + 2 = Tuesday
    assert POLICY.first_contact_due(date(2026, 10, 12)) == date(2026, 10, 14)
    assert POLICY.first_contact_due(date(2026, 10, 15)) == date(2026, 10, 19)
    assert POLICY.first_contact_due(date(2026, 10, 16)) == date(2026, 10, 20)
    assert POLICY.first_contact_due(date(2026, 10, 17)) == date(2026, 10, 20)
    assert Policy(first_contact_school_days=5).first_contact_due(date(2026, 10, 12)) == date(2026, 10, 19)


# -- a signal opens a crisis ----------------------------------------------------------------------
def test_a_signal_raises_the_file_to_high_and_opens_a_crisis_with_its_trigger_and_source() -> None:
    # given a 重点关注 file
    f = new_file("key")
    # when a crisis signal comes in from a screening
    opened = f.open_crisis(
        crisis_id="k1", trigger="screening", source=SOURCE, reason="PHQ-9 第9题阳性", policy=POLICY, actor=C, at=T0
    )
    # then the file goes to 高危 (its own event, reviewed weekly) and the crisis opens
    assert opened and names(f) == ["RiskLevelRaised", "CrisisOpened"]
    assert f.risk_level == "high" and f.next_review_due == T0.date() + timedelta(days=7)
    assert f.crisis is not None and (f.crisis["trigger"], f.crisis["source"]) == ("screening", SOURCE)
    # and every step is open, each due on its own clock
    checklist = f.crisis_checklist(T0)
    assert [s["step"] for s in checklist] == [
        "assessed",
        "guardian_informed",
        "guardian_response",
        "supervision",
        "handed_over",
        "referral",
        "feedback",
        "return_assessment",
    ]
    assert all(s["done"] is None and not s["overdue"] for s in checklist)
    assert step(f, "assessed")["due"] == hours(4) and step(f, "feedback")["due"] is None


def test_a_second_signal_while_a_crisis_is_open_is_added_to_it() -> None:
    f = in_crisis("high")
    opened = f.open_crisis(
        crisis_id="k2",
        trigger="check_in",
        source={"kind": "pairing", "id": "p1"},
        reason="谈心中表达轻生念头",
        policy=POLICY,
        actor="teacher-1",
        at=hours(1),
    )
    assert not opened and names(f) == ["CrisisSignalAdded"]
    assert f.crisis is not None and f.crisis["id"] == "k1" and f.crisis["signals"][0]["trigger"] == "check_in"


@pytest.mark.parametrize(
    "kw, says",
    [
        ({"trigger": "rumour"}, "危机信号来源"),
        ({"source": {}}, "来源记录"),
        ({"reason": "  "}, "危机信号说明不能为空"),
    ],
)
def test_a_signal_without_a_known_trigger_a_source_or_a_reason_is_refused(kw: dict[str, Any], says: str) -> None:
    f = new_file("key")
    args: dict[str, Any] = dict(crisis_id="k1", trigger="screening", source=SOURCE, reason="阳性")
    args.update(kw)
    with pytest.raises(InvalidInput) as e:
        f.open_crisis(**args, policy=POLICY, actor=C, at=T0)
    assert says in e.value.text
    assert names(f) == [] and f.crisis is None and f.risk_level == "key"


def test_a_closed_file_takes_no_crisis() -> None:
    f = new_file("key")
    f.close(reason="好转", actor=C, at=T0)
    with pytest.raises(FileClosed):
        f.open_crisis(crisis_id="k1", trigger="screening", source=SOURCE, reason="阳性", policy=POLICY, actor=C, at=T0)


# -- the checklist --------------------------------------------------------------------------------
def test_each_step_is_an_event_with_who_and_when_and_overdue_on_its_own_clock() -> None:
    f = in_crisis()
    # five hours on, with nothing done: the assessment is overdue, the same-day steps not yet
    now = hours(5)
    over = {s["step"] for s in f.crisis_checklist(now) if s["overdue"]}
    assert over == {"assessed"}
    # at the next day's start every same-day step is overdue too
    over = {s["step"] for s in f.crisis_checklist(datetime(2026, 10, 13, 0, 1, tzinfo=SH)) if s["overdue"]}
    assert over == {"assessed", "guardian_informed", "guardian_response", "supervision", "handed_over"}
    # when each step is recorded
    f.record_crisis_assessment(assessment="存在自伤意念，无具体计划", actor=C, at=hours(1))
    f.record_supervision(supervisors="班主任、心理老师轮流陪同", note="", actor="principal-1", at=hours(1))
    f.record_guardian_informed(guardian="母亲", method="phone", response="pending", note="", actor=C, at=hours(2))
    f.record_guardian_response(response="consented", note="已签告知书", actor=C, at=hours(6))
    f.record_handover(guardian="母亲", note="到校接回", actor=C, at=hours(7))
    f.record_crisis_referral(institution="市精神卫生中心", note="", policy=POLICY, actor=C, at=hours(8))
    assert names(f) == [
        "CrisisRiskAssessed",
        "CrisisSupervisionArranged",
        "CrisisGuardianInformed",
        "CrisisGuardianResponded",
        "CrisisHandedOver",
        "CrisisReferralMade",
    ]
    # then each says who and when, and nothing of those is overdue any more
    checklist = {s["step"]: s for s in f.crisis_checklist(datetime(2026, 10, 13, 0, 1, tzinfo=SH))}
    assert checklist["supervision"]["done"]["actor"] == "principal-1"
    assert checklist["guardian_response"]["done"]["at"] == hours(6)
    assert checklist["guardian_response"]["done"]["response"] == "consented"
    assert not any(s["overdue"] for s in checklist.values())
    # and the referral's feedback is now due 14 days after the referral
    assert checklist["feedback"]["due"] == datetime(2026, 10, 26, 23, 59, tzinfo=SH)
    assert step(f, "feedback")["overdue"] is False
    assert {s["step"] for s in f.crisis_checklist(datetime(2026, 10, 27, 0, 0, tzinfo=SH)) if s["overdue"]} == {
        "feedback"
    }


def test_a_step_done_late_says_so() -> None:
    f = in_crisis()
    f.record_crisis_assessment(assessment="评估", actor=C, at=hours(5))
    assert step(f, "assessed")["late"] is True and step(f, "assessed")["overdue"] is False


def test_a_guardian_answering_at_once_completes_both_guardian_steps() -> None:
    f = in_crisis()
    f.record_guardian_informed(guardian="父亲", method="written", response="refused", note="拒绝就医", actor=C, at=T0)
    assert step(f, "guardian_informed")["done"]["method"] == "written"
    assert step(f, "guardian_response")["done"]["response"] == "refused"
    with pytest.raises(CrisisStepDone):
        f.record_guardian_response(response="consented", note="", actor=C, at=hours(1))


def test_a_step_is_recorded_once() -> None:
    f = in_crisis()
    f.record_crisis_assessment(assessment="评估", actor=C, at=T0)
    with pytest.raises(CrisisStepDone) as e:
        f.record_crisis_assessment(assessment="再评估", actor=C, at=hours(1))
    assert e.value.code == "crisis_step_done" and "面谈学生并评估风险" in e.value.text


@pytest.mark.parametrize(
    "call, before",
    [
        (lambda f: f.record_guardian_response(response="consented", note="", actor=C, at=T0), "告知监护人"),
        (lambda f: f.record_handover(guardian="母亲", note="", actor=C, at=T0), "安排安全监护"),
        (lambda f: f.record_referral_feedback(summary="回执", actor=C, at=T0), "转介精神卫生医疗机构"),
    ],
)
def test_a_step_that_follows_another_waits_for_it(call: Any, before: str) -> None:
    f = in_crisis()
    with pytest.raises(CrisisStepOutOfOrder) as e:
        call(f)
    assert before in e.value.text and names(f) == []


@pytest.mark.parametrize(
    "call",
    [
        lambda f: f.record_guardian_informed(
            guardian="母亲", method="fax", response="pending", note="", actor=C, at=T0
        ),
        lambda f: f.record_guardian_informed(
            guardian="母亲", method="phone", response="maybe", note="", actor=C, at=T0
        ),
        lambda f: f.record_guardian_informed(guardian=" ", method="phone", response="pending", note="", actor=C, at=T0),
        lambda f: f.record_crisis_assessment(assessment="", actor=C, at=T0),
        lambda f: f.record_supervision(supervisors="", note="", actor=C, at=T0),
        lambda f: f.record_crisis_referral(institution="", note="", policy=POLICY, actor=C, at=T0),
        lambda f: f.note_medical_advice(advice="", actor=C, at=T0),
    ],
)
def test_bad_input_to_a_step_changes_nothing(call: Any) -> None:
    f = in_crisis()
    with pytest.raises(InvalidInput):
        call(f)
    assert names(f) == [] and f.crisis is not None and f.crisis["done"] == {}


def test_no_step_without_an_open_crisis() -> None:
    f = new_file("high")
    with pytest.raises(NoOpenCrisis) as e:
        f.record_crisis_assessment(assessment="评估", actor=C, at=T0)
    assert e.value.code == "no_open_crisis"


# -- the return-to-school assessment ---------------------------------------------------------------
def test_the_file_leaves_high_only_after_the_return_assessment_naming_what_is_missing() -> None:
    # given a file in crisis
    f = in_crisis()
    # when it is lowered with nothing of the return assessment, the error names all three parts
    with pytest.raises(ReturnAssessmentMissing) as e:
        f.lower_risk_level(to_level="key", reason="好转", policy=POLICY, actor=C, at=hours(48))
    assert e.value.code == "return_assessment_missing"
    assert "医生建议" in e.value.text and "心理老师评估" in e.value.text and "修订后的帮扶方案" in e.value.text
    assert names(f) == [] and f.risk_level == "high"
    # and after the doctor's advice, only the two others are named
    f.note_medical_advice(advice="可复学，按时服药", actor=C, at=hours(48))
    with pytest.raises(ReturnAssessmentMissing) as e:
        f.close(reason="好转", actor=C, at=hours(48))
    assert "医生建议" not in e.value.text and "心理老师评估" in e.value.text
    # and a plan drawn up before the crisis does not count: it must be revised since
    f.record_return_assessment(assessment="情绪稳定，可复学", actor=C, at=hours(49))
    assert step(f, "return_assessment")["done"] is None
    f.draw_up_plan(goals=["复学适应"], measures=MEASURES, actor=C, at=hours(50))
    assert step(f, "return_assessment")["done"] is not None
    names(f)
    # when it is lowered now, the crisis concludes in the same save, just before the change
    f.lower_risk_level(to_level="key", reason="复学评估通过", policy=POLICY, actor=C, at=hours(51))
    assert names(f) == ["CrisisConcluded", "RiskLevelLowered"]
    assert f.crisis is None and f.past_crises[0]["id"] == "k1" and f.crisis_checklist(hours(51)) == []
    assert f.next_review_due == hours(51).date() + timedelta(days=30)


def test_a_plan_from_before_the_crisis_must_be_revised_for_the_return() -> None:
    f = new_file("key")
    f.draw_up_plan(goals=["情绪稳定"], measures=MEASURES, actor=C, at=T0 - timedelta(days=3))
    f.open_crisis(crisis_id="k1", trigger="screening", source=SOURCE, reason="阳性", policy=POLICY, actor=C, at=T0)
    assert "修订后的帮扶方案" in f.return_parts_missing()
    f.revise_plan(goals=["安全第一"], measures=MEASURES, reason="危机后修订", actor=C, at=hours(30))
    assert "修订后的帮扶方案" not in f.return_parts_missing()


def test_a_file_without_a_crisis_closes_and_lowers_as_before() -> None:
    f = new_file("high")
    f.lower_risk_level(to_level="key", reason="好转", policy=POLICY, actor=C, at=hours(1))
    f.close(reason="好转", actor=C, at=hours(2))
    assert names(f) == ["RiskLevelLowered", "Closed"]


def test_a_new_signal_after_a_crisis_concluded_opens_a_new_one() -> None:
    f = in_crisis()
    f.note_medical_advice(advice="可复学", actor=C, at=hours(1))
    f.record_return_assessment(assessment="稳定", actor=C, at=hours(1))
    f.draw_up_plan(goals=["适应"], measures=MEASURES, actor=C, at=hours(1))
    f.lower_risk_level(to_level="key", reason="好转", policy=POLICY, actor=C, at=hours(2))
    f.open_crisis(
        crisis_id="k2",
        trigger="counselor",
        source={"kind": "file", "id": "x"},
        reason="再次",
        policy=POLICY,
        actor=C,
        at=hours(30),
    )
    assert f.crisis is not None and f.crisis["id"] == "k2" and f.crisis["done"] == {} and f.crisis["parts"] == {}


def test_replaying_a_crisis_rebuilds_the_same_file() -> None:
    f = SupportFile.open(
        id=uuid4(),
        school_id="school-1",
        student_id="student-1",
        category="情绪困扰",
        risk_level="key",
        reason="筛查预警",
        responsible_id=C,
        policy=POLICY,
        actor=C,
        at=T0,
    )
    f.open_crisis(crisis_id="k1", trigger="screening", source=SOURCE, reason="阳性", policy=POLICY, actor=C, at=T0)
    f.record_crisis_assessment(assessment="评估", actor=C, at=hours(1))
    f.record_guardian_informed(guardian="母亲", method="phone", response="consented", note="", actor=C, at=hours(1))
    f.record_crisis_referral(institution="医院", note="", policy=POLICY, actor=C, at=hours(2))
    f.record_referral_feedback(summary="已就诊", actor=C, at=hours(50))
    f.note_medical_advice(advice="可复学", actor=C, at=hours(50))
    f.record_return_assessment(assessment="稳定", actor=C, at=hours(51))
    f.draw_up_plan(goals=["适应"], measures=MEASURES, actor=C, at=hours(51))
    f.close(reason="风险解除", actor=C, at=hours(52))
    copy = replay(f.collect_events())
    assert copy.__dict__ == f.__dict__


# -- escalated files: the first contact ----------------------------------------------------------
def test_a_first_contact_is_due_in_two_school_days_and_a_session_makes_it() -> None:
    # given a file opened on a Thursday from an escalation
    thursday = datetime(2026, 10, 15, 16, 0, tzinfo=SH)
    f = new_file("key", at=thursday)
    f.schedule_first_contact(policy=POLICY, actor="teacher-1", at=thursday)
    assert names(f) == ["FirstContactScheduled"]
    # then it is due the next Monday
    assert f.first_contact_due == date(2026, 10, 19)
    # when the counselor holds a session, it is made
    f.record_session(entry_id="s1", held_on=date(2026, 10, 16), summary="初次面谈", actor=C, at=thursday + timedelta(1))
    assert f.first_contact_due is None


def test_a_crisis_assessment_is_a_first_contact_too() -> None:
    f = new_file("key")
    f.schedule_first_contact(policy=POLICY, actor="teacher-1", at=T0)
    f.open_crisis(
        crisis_id="k1",
        trigger="check_in",
        source={"kind": "pairing", "id": "p"},
        reason="轻生",
        policy=POLICY,
        actor=C,
        at=T0,
    )
    f.record_crisis_assessment(assessment="评估", actor=C, at=hours(1))
    assert f.first_contact_due is None


# -- the other triggers' own streams -----------------------------------------------------------------
def test_a_check_in_may_mark_its_concern_as_a_possible_risk_to_life() -> None:
    p = Pairing.pair(id=uuid4(), school_id="s", staff_id="t", student_id="st", cadence_days=14, actor="t", at=T0)
    p.record_check_in(
        check_in_id="c1",
        held_on=T0.date(),
        notes={"thinking": "低落"},
        concern=False,
        concern_note="说不想活了",
        risk_to_life=True,
        actor="t",
        at=T0,
    )
    # then the check-in is a concern (the risk implies it), and says so
    ci = p.check_ins["c1"]
    assert ci["concern"] is True and ci["risk_to_life"] is True
    # and a risk to life needs the concern's note
    with pytest.raises(InvalidInput):
        p.record_check_in(
            check_in_id="c2",
            held_on=T0.date(),
            notes={"thinking": "低落"},
            concern=False,
            risk_to_life=True,
            actor="t",
            at=T0,
        )


def test_a_version_1_check_in_is_read_as_no_risk_to_life() -> None:
    state: dict[str, Any] = {"check_in_id": "c1", "concern": True}
    Pairing.CheckInRecorded.upcast_v1_v2(state)
    assert state["risk_to_life"] is False and Pairing.CheckInRecorded.class_version == 2


def test_a_bullying_case_notes_self_harm_of_one_of_its_students() -> None:
    case = BullyingCase.report(
        id=uuid4(),
        school_id="s",
        channel="teacher",
        occurred_at=T0 - timedelta(hours=2),
        place="操场",
        forms=["verbal"],
        parties=[("st-1", "targeted"), ("st-2", "bullying")],
        narrative="多次辱骂",
        investigation_due=POLICY.investigation_due(T0.date()),
        actor="t",
        at=T0,
    )
    case.collect_events()
    case.note_self_harm(note_id="n1", student_id="st-1", note="手腕有划痕", actor="safety", at=hours(1))
    assert [type(e).__name__ for e in case.collect_events()] == ["SelfHarmNoted"]
    assert case.self_harm_notes[0]["student_id"] == "st-1"
    # a student who is not a party, or no note: refused, nothing recorded
    with pytest.raises(NotAParty):
        case.note_self_harm(note_id="n2", student_id="st-9", note="划痕", actor="safety", at=hours(1))
    with pytest.raises(InvalidInput):
        case.note_self_harm(note_id="n2", student_id="st-2", note=" ", actor="safety", at=hours(1))
    assert case.collect_events() == [] and len(case.self_harm_notes) == 1
