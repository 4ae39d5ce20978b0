"""The support file (一人一策), screening instruments and the screening record as pure
domain objects: no database, no clock. Rules live in the public commands; the
private events only change state, so a refused command leaves no event behind."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest

from domain.common import InvalidInput
from domain.policy import Policy
from domain.screening import (
    DEFAULT_INSTRUMENTS,
    DuplicateScreening,
    Instrument,
    InvalidAnswers,
    ScreeningRecord,
    instruments_from_config,
)
from domain.support import (
    EntryNotFound,
    FileClosed,
    FileNotClosed,
    PlanExists,
    PlanMissing,
    ReviewDateOutOfRange,
    RiskLevelUnchanged,
    SupportFile,
    WrongRiskDirection,
)

POLICY = Policy()
T0 = datetime(2026, 10, 12, 9, 0, tzinfo=UTC)
COUNSELOR = "counselor-1"
STUDENT = "student-1"
PHQ9 = DEFAULT_INSTRUMENTS["PHQ-9"]
GAD7 = DEFAULT_INSTRUMENTS["GAD-7"]


def new_file(level: str = "key", at: datetime = T0, **kw: Any) -> SupportFile:
    args: dict[str, Any] = dict(
        id=uuid4(),
        school_id="school-1",
        student_id=STUDENT,
        category="情绪困扰",
        risk_level=level,
        reason="近期情绪低落，多次哭泣",
        responsible_id=COUNSELOR,
        policy=POLICY,
        actor=COUNSELOR,
        at=at,
    )
    args.update(kw)
    return SupportFile.open(**args)


def saved(f: SupportFile) -> SupportFile:
    """As if saved: pending events collected (their names returned by `names`)."""
    f.collect_events()
    return f


def names(f: SupportFile) -> list[str]:
    return [type(e).__name__ for e in f.collect_events()]


def later(days: int = 1) -> datetime:
    return T0 + timedelta(days=days)


def replay(f: SupportFile, events: list[Any]) -> SupportFile:
    agg = None
    for e in events:
        agg = e.mutate(agg)
    assert isinstance(agg, SupportFile)
    return agg


# -- opening --------------------------------------------------------------------------------
def test_an_opened_file_has_its_level_category_responsible_and_a_review_date_from_policy() -> None:
    # when a counselor opens a 高危 file
    f = new_file("high", source={"kind": "screening", "id": "rec-1"}, origin="screening")

    # then it is open, at that level, with the one-to-one responsible staff as its owner
    assert (f.status, f.risk_level, f.risk_label, f.category) == ("open", "high", "高危", "情绪困扰")
    assert (
        f.responsible_id == COUNSELOR and f.origin == "screening" and f.source == {"kind": "screening", "id": "rec-1"}
    )
    # and the next review is a month away (policy for 高危)
    assert f.next_review_due == T0.date() + timedelta(days=POLICY.review_days["high"])
    assert names(f) == ["Opened"]
    # and the gate knows ids only
    scope = f.scope()
    assert (scope.kind, scope.owner_id, scope.subject_id, scope.status, scope.links) == (
        "file",
        COUNSELOR,
        STUDENT,
        "open",
        ((STUDENT, "supported"),),
    )


def test_a_general_file_is_reviewed_each_term() -> None:
    f = new_file("general")
    assert f.next_review_due == T0.date() + timedelta(days=POLICY.review_days["general"])


@pytest.mark.parametrize(
    "change, code",
    [
        ({"risk_level": "red"}, "invalid_input"),
        ({"reason": "  "}, "invalid_input"),
        ({"category": ""}, "invalid_input"),
        ({"responsible_id": ""}, "invalid_input"),
        ({"origin": "rumour"}, "invalid_input"),
        ({"at": datetime(2026, 10, 12, 9, 0)}, "invalid_input"),
    ],
)
def test_opening_a_file_without_what_it_needs_is_refused(change: dict[str, Any], code: str) -> None:
    with pytest.raises(InvalidInput) as e:
        new_file(**change)
    assert e.value.code == code


# -- risk level ----------------------------------------------------------------------------
def test_raising_the_level_records_why_and_brings_the_review_forward() -> None:
    # given a 重点关注 file
    f = saved(new_file("key"))
    # when the counselor raises it to 高危 ten days later
    f.raise_risk_level(to_level="high", reason="出现自伤言语", policy=POLICY, actor=COUNSELOR, at=later(10))
    # then the level, the reason and the new review date are recorded in one RiskLevelRaised
    assert f.risk_level == "high" and names(f) == ["RiskLevelRaised"]
    assert f.risk_history[-1] | {"at": None} == {
        "from": "key",
        "to": "high",
        "reason": "出现自伤言语",
        "actor": COUNSELOR,
        "at": None,
    }
    assert f.next_review_due == later(10).date() + timedelta(days=POLICY.review_days["high"])


def test_lowering_the_level_is_its_own_event_and_moves_the_review_out() -> None:
    f = saved(new_file("high"))
    f.lower_risk_level(to_level="general", reason="情绪稳定两个月", policy=POLICY, actor=COUNSELOR, at=later(60))
    assert f.risk_level == "general" and names(f) == ["RiskLevelLowered"]
    assert f.next_review_due == later(60).date() + timedelta(days=POLICY.review_days["general"])


def test_a_change_to_the_same_level_is_refused_and_changes_nothing() -> None:
    f = saved(new_file("key"))
    with pytest.raises(RiskLevelUnchanged) as e:
        f.raise_risk_level(to_level="key", reason="再次确认", policy=POLICY, actor=COUNSELOR, at=later())
    assert e.value.code == "risk_level_unchanged" and "重点关注" in e.value.text
    assert (f.version, f.risk_level, names(f)) == (1, "key", [])


@pytest.mark.parametrize("method, to_level", [("raise_risk_level", "general"), ("lower_risk_level", "high")])
def test_a_change_in_the_wrong_direction_is_refused(method: str, to_level: str) -> None:
    f = saved(new_file("key"))
    with pytest.raises(WrongRiskDirection) as e:
        getattr(f, method)(to_level=to_level, reason="调整", policy=POLICY, actor=COUNSELOR, at=later())
    assert e.value.code == "risk_level_wrong_direction"
    assert (f.risk_level, names(f)) == ("key", [])


def test_a_level_change_needs_a_reason() -> None:
    f = saved(new_file("key"))
    with pytest.raises(InvalidInput):
        f.raise_risk_level(to_level="high", reason=" ", policy=POLICY, actor=COUNSELOR, at=later())
    assert names(f) == []


# -- plan, category, responsibility ---------------------------------------------------------
MEASURES = [{"text": "每周一次个体辅导", "by": "心理老师"}, {"text": "每日关注课堂状态", "by": "班主任"}]


def test_a_plan_is_drawn_up_once_then_revised_with_a_reason() -> None:
    f = saved(new_file())
    # when the plan is drawn up
    f.draw_up_plan(goals=["情绪稳定"], measures=MEASURES, actor=COUNSELOR, at=later())
    assert f.plan is not None and (f.plan["version"], f.plan["goals"]) == (1, ["情绪稳定"])
    # then drawing it up again is refused: it must be revised
    with pytest.raises(PlanExists):
        f.draw_up_plan(goals=["别的"], measures=MEASURES, actor=COUNSELOR, at=later())
    # and a revision is a new event with its reason; the first plan stays in history
    f.revise_plan(
        goals=["情绪稳定", "恢复作息"], measures=MEASURES[:1], reason="月度复评调整", actor=COUNSELOR, at=later(30)
    )
    assert names(f) == ["PlanDrawnUp", "PlanRevised"]
    assert [p["version"] for p in f.plan_history] == [1, 2] and f.plan["reason"] == "月度复评调整"
    assert f.plan_history[0]["goals"] == ["情绪稳定"]


@pytest.mark.parametrize(
    "goals, measures",
    [
        ([], MEASURES),
        (["目标"], []),
        (["目标"], [{"text": "辅导", "by": ""}]),
        (["目标"], [{"text": "", "by": "我"}]),
    ],
)
def test_a_plan_needs_goals_and_measures_each_with_who_carries_it_out(goals: list[str], measures: list[Any]) -> None:
    f = saved(new_file())
    with pytest.raises(InvalidInput):
        f.draw_up_plan(goals=goals, measures=measures, actor=COUNSELOR, at=later())
    assert f.plan is None and names(f) == []


def test_a_plan_cannot_be_revised_before_it_exists_or_without_a_change() -> None:
    f = saved(new_file())
    with pytest.raises(PlanMissing):
        f.revise_plan(goals=["x"], measures=MEASURES, reason="调整", actor=COUNSELOR, at=later())
    f.draw_up_plan(goals=["情绪稳定"], measures=MEASURES, actor=COUNSELOR, at=later())
    with pytest.raises(InvalidInput):
        f.revise_plan(goals=["情绪稳定"], measures=MEASURES, reason="调整", actor=COUNSELOR, at=later())


def test_the_responsible_staff_is_reassigned_with_a_reason_and_becomes_the_owner() -> None:
    f = saved(new_file())
    with pytest.raises(InvalidInput):
        f.reassign(responsible_id=COUNSELOR, reason="同一人", actor=COUNSELOR, at=later())
    f.reassign(responsible_id="counselor-2", reason="原负责人休产假", actor="principal", at=later())
    assert f.responsible_id == "counselor-2" and f.scope().owner_id == "counselor-2"
    assert names(f) == ["ResponsibleReassigned"]
    assert f.responsible_history[-1]["reason"] == "原负责人休产假"


def test_the_category_changes_with_a_reason() -> None:
    f = saved(new_file())
    f.change_category(category="家庭变故", reason="了解到父母离异", actor=COUNSELOR, at=later())
    assert f.category == "家庭变故" and names(f) == ["CategoryChanged"]
    with pytest.raises(InvalidInput):
        f.change_category(category="家庭变故", reason="再改", actor=COUNSELOR, at=later())


# -- the record of the work -----------------------------------------------------------------
def test_sessions_guardian_contacts_and_referrals_are_recorded_in_date_order() -> None:
    f = saved(new_file())
    f.record_session(
        entry_id="s2",
        held_on=date(2026, 10, 12),
        summary="第二次辅导",
        duration_minutes=40,
        actor=COUNSELOR,
        at=later(),
    )
    f.record_session(entry_id="s1", held_on=date(2026, 10, 10), summary="初次访谈", actor=COUNSELOR, at=later())
    f.record_guardian_contact(
        entry_id="g1",
        contacted_on=date(2026, 10, 12),
        guardian="母亲",
        method="phone",
        summary="告知在校情况",
        actor=COUNSELOR,
        at=later(),
    )
    f.record_referral(
        entry_id="r1",
        referred_on=date(2026, 10, 13),
        to="市精神卫生中心",
        reason="需专业评估",
        actor=COUNSELOR,
        at=later(),
    )
    assert names(f) == ["SessionRecorded", "SessionRecorded", "GuardianContacted", "ReferralMade"]
    assert [s["id"] for s in f.sessions] == ["s1", "s2"]
    assert f.guardian_contacts[0]["method"] == "phone" and f.referrals[0]["to"] == "市精神卫生中心"


@pytest.mark.parametrize(
    "call",
    [
        lambda f: f.record_session(
            entry_id="x", held_on=date(2026, 10, 14), summary="未来", actor=COUNSELOR, at=later()
        ),
        lambda f: f.record_session(entry_id="x", held_on=date(2026, 10, 12), summary=" ", actor=COUNSELOR, at=later()),
        lambda f: f.record_session(
            entry_id="x", held_on=date(2026, 10, 12), summary="好", duration_minutes=0, actor=COUNSELOR, at=later()
        ),
        lambda f: f.record_guardian_contact(
            entry_id="x",
            contacted_on=date(2026, 10, 12),
            guardian="母亲",
            method="pigeon",
            summary="沟通",
            actor=COUNSELOR,
            at=later(),
        ),
        lambda f: f.record_guardian_contact(
            entry_id="x",
            contacted_on=date(2026, 10, 12),
            guardian="",
            method="phone",
            summary="沟通",
            actor=COUNSELOR,
            at=later(),
        ),
        lambda f: f.record_referral(
            entry_id="x", referred_on=date(2026, 10, 12), to="", reason="评估", actor=COUNSELOR, at=later()
        ),
        lambda f: f.record_review(
            entry_id="x",
            reviewed_on=date(2026, 10, 12),
            notes="好转",
            outcome="stop",
            policy=POLICY,
            actor=COUNSELOR,
            at=later(),
        ),
    ],
)
def test_an_incomplete_or_future_entry_is_refused_and_leaves_no_event(call: Any) -> None:
    f = saved(new_file())
    with pytest.raises(InvalidInput):
        call(f)
    assert names(f) == [] and f.entries == {}


def test_a_crisis_intervention_raises_the_file_to_high_as_its_own_event() -> None:
    # given a 重点关注 file
    f = saved(new_file("key"))
    # when a crisis intervention is recorded
    f.record_crisis_intervention(
        entry_id="c1",
        occurred_on=date(2026, 10, 13),
        what_happened="课间表达轻生念头",
        actions_taken="全程陪护，通知家长",
        policy=POLICY,
        actor=COUNSELOR,
        at=later(),
    )
    # then the intervention, a separate RiskLevelRaised (with its reason) and the crisis
    # pathway's opening are all recorded
    assert names(f) == ["CrisisInterventionRecorded", "RiskLevelRaised", "CrisisOpened"]
    assert f.risk_level == "high" and f.crises[0]["actions_taken"] == "全程陪护，通知家长"
    assert "危机干预" in f.risk_history[-1]["reason"]
    assert f.next_review_due == later().date() + timedelta(days=POLICY.review_days["high"])
    assert f.crisis is not None and f.crisis["trigger"] == "counselor"


def test_a_crisis_on_a_high_file_adds_only_the_intervention() -> None:
    f = saved(new_file("high"))
    f.record_crisis_intervention(
        entry_id="c1",
        occurred_on=date(2026, 10, 12),
        what_happened="情绪崩溃",
        actions_taken="陪护",
        policy=POLICY,
        actor=COUNSELOR,
        at=later(),
    )
    assert names(f) == ["CrisisInterventionRecorded", "CrisisOpened"]


def test_a_crisis_intervention_needs_what_happened_and_what_was_done() -> None:
    f = saved(new_file("key"))
    with pytest.raises(InvalidInput):
        f.record_crisis_intervention(
            entry_id="c1",
            occurred_on=date(2026, 10, 12),
            what_happened="情绪崩溃",
            actions_taken=" ",
            policy=POLICY,
            actor=COUNSELOR,
            at=later(),
        )
    assert (f.risk_level, names(f)) == ("key", [])


# -- reviews -------------------------------------------------------------------------------
def with_plan(f: SupportFile) -> SupportFile:
    f.draw_up_plan(goals=["情绪稳定"], measures=MEASURES, actor=COUNSELOR, at=T0)
    return saved(f)


def test_a_review_resets_the_next_review_and_an_unreviewed_file_becomes_overdue() -> None:
    f = with_plan(saved(new_file("high")))
    due = f.next_review_due
    assert due is not None
    # then it is not overdue on its due date, and is the day after
    assert not f.review_overdue(due) and f.review_overdue(due + timedelta(days=1))
    # when a review is recorded
    f.record_review(
        entry_id="v1",
        reviewed_on=due,
        notes="情绪好转，维持方案",
        outcome="continue",
        policy=POLICY,
        actor=COUNSELOR,
        at=datetime.combine(due, T0.timetz()),
    )
    # then the next review is set from the review date, and it is no longer overdue
    assert f.next_review_due == due + timedelta(days=POLICY.review_days["high"])
    assert not f.review_overdue(due + timedelta(days=1))
    assert f.reviews[0]["outcome"] == "continue" and names(f) == ["PlanReviewed"]


def review(f: SupportFile, reviewed_on: date = date(2026, 10, 13), **kw: Any) -> None:
    f.record_review(
        entry_id=kw.pop("entry_id", "v1"),
        reviewed_on=reviewed_on,
        notes="复评",
        outcome="continue",
        policy=POLICY,
        actor=COUNSELOR,
        at=later(),
        **kw,
    )


def test_a_plan_review_before_any_plan_is_refused_and_leaves_no_event() -> None:
    f = saved(new_file("key"))
    with pytest.raises(PlanMissing) as refused:
        review(f)
    assert refused.value.text == "尚未制定帮扶方案，不能记录方案复评"
    assert names(f) == [] and f.reviews == []
    # once a plan is drawn up, the same review is recorded
    review(with_plan(f))
    assert names(f) == ["PlanReviewed"]


@pytest.mark.parametrize("level", ["general", "key", "high"])
def test_the_next_review_may_be_chosen_within_the_policys_bounds_for_the_risk_level(level: str) -> None:
    # given a file with a plan, at each risk level, reviewed on 13 October
    on = date(2026, 10, 13)
    days = POLICY.review_days[level]
    for chosen in (on + timedelta(days=1), on + timedelta(days=days // 2 or 1), on + timedelta(days=days)):
        f = with_plan(saved(new_file(level)))
        # when the counselor chooses a day from the next day to the policy's interval
        review(f, on, next_review_due=chosen)
        # then that day is the next review, stored in the event
        assert f.next_review_due == chosen and f.reviews[0]["next_review_due"] == chosen
    # left empty, it is the policy's day
    f = with_plan(saved(new_file(level)))
    review(f, on)
    assert f.next_review_due == POLICY.next_review(level, on) == POLICY.review_bounds(level, on)[1]


@pytest.mark.parametrize(
    ("level", "offset"), [("high", 8), ("high", 0), ("key", 31), ("key", -3), ("general", 91), ("general", 0)]
)
def test_a_next_review_outside_the_policys_bounds_is_refused_naming_the_range(level: str, offset: int) -> None:
    f = with_plan(saved(new_file(level)))
    on = date(2026, 10, 13)
    with pytest.raises(ReviewDateOutOfRange) as refused:
        review(f, on, next_review_due=on + timedelta(days=offset))
    latest = on + timedelta(days=POLICY.review_days[level])
    assert refused.value.text == (
        f"下次复评日期应在 2026年10月14日 至 {latest.year}年{latest.month}月{latest.day}日 之间"
        f"（{ {'general': '一般关注', 'key': '重点关注', 'high': '高危'}[level] }档案最长每 "
        f"{POLICY.review_days[level]} 天复评一次）"
    )
    assert names(f) == [] and f.reviews == []


def test_the_review_bounds_follow_a_regions_policy() -> None:
    policy = Policy(review_days={"general": 60, "key": 14, "high": 3})
    assert policy.review_bounds("high", date(2026, 10, 13)) == (date(2026, 10, 14), date(2026, 10, 16))
    f = with_plan(saved(new_file("high")))
    with pytest.raises(ReviewDateOutOfRange):
        f.record_review(
            entry_id="v",
            reviewed_on=date(2026, 10, 13),
            notes="复评",
            outcome="continue",
            policy=policy,
            actor=COUNSELOR,
            at=later(),
            next_review_due=date(2026, 10, 20),  # within the default week, not this region's 3 days
        )


# -- corrections ---------------------------------------------------------------------------
def test_a_correction_names_the_entry_it_corrects_and_keeps_the_history() -> None:
    f = saved(new_file())
    f.record_session(entry_id="s1", held_on=date(2026, 10, 12), summary="谈话记录有误", actor=COUNSELOR, at=later())
    f.collect_events()
    f.correct_entry(entry_id="s1", changes={"summary": "谈及与同学的矛盾"}, reason="笔误", actor=COUNSELOR, at=later(2))
    events = f.collect_events()
    assert [type(e).__name__ for e in events] == ["EntryCorrected"]
    assert (events[0].corrects, events[0].entry_kind) == ("s1", "session")  # type: ignore[attr-defined]
    s = f.sessions[0]
    assert s["summary"] == "谈及与同学的矛盾" and s["corrections"][0]["reason"] == "笔误"
    assert s["corrections"][0]["changes"] == {"summary": "谈及与同学的矛盾"}


def test_a_correction_of_a_missing_entry_a_wrong_field_or_nothing_is_refused() -> None:
    f = saved(new_file())
    f.record_session(entry_id="s1", held_on=date(2026, 10, 12), summary="记录", actor=COUNSELOR, at=later())
    f.collect_events()
    with pytest.raises(EntryNotFound):
        f.correct_entry(entry_id="nope", changes={"summary": "x"}, reason="笔误", actor=COUNSELOR, at=later())
    with pytest.raises(InvalidInput):
        f.correct_entry(entry_id="s1", changes={"outcome": "adjust"}, reason="笔误", actor=COUNSELOR, at=later())
    with pytest.raises(InvalidInput):
        f.correct_entry(entry_id="s1", changes={"summary": "记录"}, reason="笔误", actor=COUNSELOR, at=later())
    with pytest.raises(InvalidInput):
        f.correct_entry(
            entry_id="s1", changes={"held_on": date(2027, 1, 1)}, reason="日期", actor=COUNSELOR, at=later()
        )
    assert names(f) == []


# -- closure -------------------------------------------------------------------------------
def test_a_closed_file_refuses_new_entries_until_it_is_reopened() -> None:
    # given a closed file
    f = saved(new_file("key"))
    f.close(reason="情绪稳定，风险解除", actor=COUNSELOR, at=later(90))
    assert (f.status, f.next_review_due, f.review_overdue(later(400).date())) == ("closed", None, False)
    f.collect_events()
    # then new entries and level changes are refused with a named error
    for call in (
        lambda: f.record_session(entry_id="s", held_on=later(91).date(), summary="随访", actor=COUNSELOR, at=later(91)),
        lambda: f.raise_risk_level(to_level="high", reason="复发", policy=POLICY, actor=COUNSELOR, at=later(91)),
        lambda: f.close(reason="再关", actor=COUNSELOR, at=later(91)),
        lambda: f.draw_up_plan(goals=["g"], measures=MEASURES, actor=COUNSELOR, at=later(91)),
    ):
        with pytest.raises(FileClosed) as e:
            call()
        assert e.value.code == "file_closed"
    assert names(f) == []
    # when it is reopened with a reason
    f.reopen(reason="再次出现失眠", policy=POLICY, actor=COUNSELOR, at=later(100))
    # then it is open again, with a review date from today, and takes entries
    assert f.status == "open" and f.next_review_due == later(100).date() + timedelta(days=POLICY.review_days["key"])
    f.record_session(entry_id="s", held_on=later(100).date(), summary="重新评估", actor=COUNSELOR, at=later(100))
    assert names(f) == ["Reopened", "SessionRecorded"]
    assert f.closures[0]["reopen_reason"] == "再次出现失眠"


def test_an_open_file_cannot_be_reopened() -> None:
    f = saved(new_file())
    with pytest.raises(FileNotClosed):
        f.reopen(reason="重开", policy=POLICY, actor=COUNSELOR, at=later())


def test_replaying_the_history_rebuilds_the_same_file_without_rerunning_rules() -> None:
    # given a file with a full history
    f = new_file("general")
    f.draw_up_plan(goals=["情绪稳定"], measures=MEASURES, actor=COUNSELOR, at=later())
    f.record_crisis_intervention(
        entry_id="c1",
        occurred_on=later(2).date(),
        what_happened="事件",
        actions_taken="干预",
        policy=POLICY,
        actor=COUNSELOR,
        at=later(2),
    )
    f.record_session(entry_id="s1", held_on=later(3).date(), summary="辅导", actor=COUNSELOR, at=later(3))
    f.correct_entry(entry_id="s1", changes={"summary": "辅导（更正）"}, reason="补充", actor=COUNSELOR, at=later(4))
    f.note_medical_advice(advice="可复学，定期复诊", actor=COUNSELOR, at=later(4))
    f.record_return_assessment(assessment="情绪平稳", actor=COUNSELOR, at=later(4))
    f.revise_plan(goals=["复学适应"], measures=MEASURES, reason="复学", actor=COUNSELOR, at=later(4))
    f.close(reason="风险解除", actor=COUNSELOR, at=later(5))
    events = f.collect_events()
    # when it is replayed (a closed file would refuse these commands today)
    copy = replay(f, events)
    # then the state is the same
    assert copy.__dict__ == f.__dict__


# -- instruments ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "total, band, flagged",
    [
        (0, "minimal", False),
        (4, "minimal", False),
        (5, "mild", False),
        (9, "mild", False),
        (10, "moderate", True),
        (14, "moderate", True),
        (15, "moderately_severe", True),
        (19, "moderately_severe", True),
        (20, "severe", True),
        (27, "severe", True),
    ],
)
def test_phq9_totals_fall_in_the_published_bands(total: int, band: str, flagged: bool) -> None:
    # items 1-8 carry up to 24; above that item 9 (the crisis item) must be used
    answers = [min(3, max(0, total - 3 * i)) for i in range(8)] + [max(0, total - 24)]
    r = PHQ9.score(answers)
    assert (r.total, r.band, r.flagged, r.crisis) == (total, band, flagged, total > 24)
    assert r.risk_level == ("high" if total > 24 else "key" if flagged else None)


def test_any_answer_above_zero_on_phq9_item_9_is_a_crisis_whatever_the_total() -> None:
    r = PHQ9.score([0, 0, 0, 0, 0, 0, 0, 0, 1])
    assert (r.total, r.band, r.flagged, r.crisis, r.risk_level) == (1, "minimal", False, True, "high")
    assert PHQ9.category_for(r) == "自伤风险"
    r = PHQ9.score([3] * 9)
    assert (r.total, r.band, r.crisis) == (27, "severe", True)


@pytest.mark.parametrize(
    "total, band, flagged",
    [
        (0, "minimal", False),
        (4, "minimal", False),
        (5, "mild", False),
        (9, "mild", False),
        (10, "moderate", True),
        (14, "moderate", True),
        (15, "severe", True),
        (21, "severe", True),
    ],
)
def test_gad7_totals_fall_in_the_published_bands(total: int, band: str, flagged: bool) -> None:
    answers = [min(3, max(0, total - 3 * i)) for i in range(7)]
    r = GAD7.score(answers)
    assert (r.total, r.band, r.flagged, r.crisis) == (total, band, flagged, False)
    assert GAD7.category_for(r) == "情绪困扰"


@pytest.mark.parametrize(
    "answers, message",
    [
        ([0] * 8, "应有 9 题"),
        ([0] * 10, "应有 9 题"),
        ([0] * 8 + [4], "第 9 题"),
        ([-1] + [0] * 8, "第 1 题"),
        ([True] + [0] * 8, "第 1 题"),
    ],
)
def test_answers_of_the_wrong_count_or_out_of_range_are_refused(answers: list[Any], message: str) -> None:
    with pytest.raises(InvalidAnswers) as e:
        PHQ9.score(answers)
    assert message in e.value.text


def test_an_instrument_is_data_that_round_trips_through_a_dict() -> None:
    for inst in DEFAULT_INSTRUMENTS.values():
        assert Instrument.from_dict(inst.to_dict()) == inst
    assert (PHQ9.items, PHQ9.item_min, PHQ9.item_max, PHQ9.max_total, PHQ9.flag_from) == (9, 0, 3, 27, "moderate")
    assert PHQ9.crisis is not None and (PHQ9.crisis.item, PHQ9.crisis.above) == (9, 0)
    assert GAD7.crisis is None and GAD7.max_total == 21


def test_a_school_threshold_and_a_new_instrument_come_from_configuration() -> None:
    # given a region that flags PHQ-9 only from moderately severe, and adds its own instrument
    phq = PHQ9.to_dict() | {"flag_from": "moderately_severe"}
    own = {
        "id": "SCL-5",
        "name": "五项简表",
        "items": 5,
        "item_range": [1, 5],
        "flag_from": "high",
        "bands": [{"name": "low", "min": 5, "max": 12}, {"name": "high", "min": 13, "max": 25, "risk_level": "high"}],
        "crisis": {"item": 5, "above": 3},
    }
    instruments = instruments_from_config([phq, own])
    # then 12 on PHQ-9 is no longer flagged, and the new instrument scores by its own bands
    assert not instruments["PHQ-9"].score([3, 3, 3, 3, 0, 0, 0, 0, 0]).flagged
    r = instruments["SCL-5"].score([5, 5, 1, 1, 1])
    assert (r.total, r.band, r.flagged, r.risk_level, r.crisis) == (13, "high", True, "high", False)
    assert instruments["SCL-5"].score([1, 1, 1, 1, 4]).crisis


@pytest.mark.parametrize(
    "change",
    [
        {"bands": [{"name": "a", "min": 0, "max": 10}, {"name": "b", "min": 12, "max": 27}]},  # a gap
        {"bands": [{"name": "a", "min": 0, "max": 20}]},  # does not reach the maximum
        {"flag_from": "extreme"},
        {"crisis": {"item": 10, "above": 0}},
        {"crisis": {"item": 9, "above": 3}},
        {"items": 0},
        {"flag_risk_level": "red"},
        {"colour": "blue"},
    ],
)
def test_a_bad_instrument_configuration_is_refused(change: dict[str, Any]) -> None:
    with pytest.raises(InvalidInput):
        Instrument.from_dict(PHQ9.to_dict() | change)


def test_instruments_come_from_the_policy_file_and_a_bad_one_is_refused_on_load() -> None:
    toml = """
[policy]
review_days = { high = 14 }

[[policy.screening_instruments]]
id = "PHQ-9"
name = "PHQ-9（本区）"
items = 9
item_range = [0, 3]
flag_from = "severe"
bands = [
  { name = "minimal", min = 0, max = 4 }, { name = "mild", min = 5, max = 9 },
  { name = "moderate", min = 10, max = 14 }, { name = "moderately_severe", min = 15, max = 19 },
  { name = "severe", min = 20, max = 27 },
]
crisis = { item = 9, above = 0 }
"""
    policy = Policy.from_toml(toml)
    assert instruments_from_config(policy.screening_instruments)["PHQ-9"].flag_from == "severe"
    with pytest.raises(InvalidInput):
        Policy.from_toml(toml.replace('flag_from = "severe"', 'flag_from = "awful"'))


# -- the screening record ------------------------------------------------------------------
def new_record() -> ScreeningRecord:
    return ScreeningRecord.open(
        id=uuid4(), school_id="school-1", student_id=STUDENT, school_year=2026, actor=COUNSELOR, at=T0
    )


def test_a_screening_record_scores_and_keeps_each_result_of_the_year() -> None:
    rec = new_record()
    r = rec.record(
        screening_id="a",
        instrument=PHQ9,
        answers=[2, 2, 2, 2, 2, 0, 0, 0, 0],
        screened_on=date(2026, 10, 10),
        school_year=2026,
        actor=COUNSELOR,
        at=T0,
    )
    rec.record(
        screening_id="b",
        instrument=GAD7,
        answers=[0] * 7,
        screened_on=date(2026, 10, 10),
        school_year=2026,
        actor=COUNSELOR,
        at=T0,
    )
    assert (r.total, r.band, r.flagged) == (10, "moderate", True)
    assert [type(e).__name__ for e in rec.collect_events()] == [
        "ScreeningRecordOpened",
        "ScreeningRecorded",
        "ScreeningRecorded",
    ]
    assert [(s["instrument"], s["total"], s["band"]) for s in rec.screenings] == [
        ("PHQ-9", 10, "moderate"),
        ("GAD-7", 0, "minimal"),
    ]
    assert rec.flagged and not rec.crisis
    assert rec.scope().kind == "screening" and rec.scope().subject_id == STUDENT


@pytest.mark.parametrize(
    "screened_on, school_year, error",
    [
        (date(2026, 10, 10), 2026, DuplicateScreening),  # the same instrument on the same day again
        (date(2026, 10, 13), 2026, InvalidInput),  # in the future
        (date(2026, 8, 31), 2025, InvalidInput),  # another school year's stream
    ],
)
def test_a_duplicate_a_future_or_another_years_screening_is_refused(
    screened_on: date, school_year: int, error: type[Exception]
) -> None:
    rec = new_record()
    rec.record(
        screening_id="a",
        instrument=PHQ9,
        answers=[0] * 9,
        screened_on=date(2026, 10, 10),
        school_year=2026,
        actor=COUNSELOR,
        at=T0,
    )
    rec.collect_events()
    with pytest.raises(error):
        rec.record(
            screening_id="b",
            instrument=PHQ9,
            answers=[0] * 9,
            screened_on=screened_on,
            school_year=school_year,
            actor=COUNSELOR,
            at=T0,
        )
    assert rec.collect_events() == [] and len(rec.screenings) == 1
