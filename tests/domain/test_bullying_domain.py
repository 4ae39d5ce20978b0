"""The bullying-case aggregate on its own: no database, no clock, no gate."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from functools import reduce
from uuid import uuid4

import pytest
from determination_support import lodge_legacy_appeal, ready_case

from domain.bullying import (
    AlreadyAParty,
    AppealPending,
    AppealRetired,
    BullyingCase,
    CaseClosed,
    DeterminationNotApproved,
    InterventionsRequired,
    MandatoryReportRequired,
    NotAParty,
    SelfApproval,
    TargetedPartyRequired,
)
from domain.common import DomainError, InvalidInput, WrongState

T0 = datetime(2026, 10, 12, 9, 0, tzinfo=UTC)
DAY = timedelta(days=1)
SAFETY, PRINCIPAL, COUNSELOR = "safety-1", "principal-1", "counselor-1"
TGT, BUL, WIT, OUT = "student-t", "student-b", "student-w", "student-x"


def new_case(**changes) -> BullyingCase:
    fields = dict(
        id=uuid4(),
        school_id="school-1",
        channel="hotline",
        occurred_at=T0 - DAY,
        place="操场",
        forms=["verbal", "online"],
        parties=[(TGT, "targeted"), (BUL, "bullying"), (WIT, "witness")],
        narrative="连续一周在班级群里辱骂",
        investigation_due=T0.date() + 10 * DAY,
        actor="teacher-1",
        at=T0,
    )
    fields.update(changes)
    return BullyingCase.report(**fields)


def at(days: float = 0) -> datetime:
    return T0 + timedelta(days=days)


def report_to_both(c: BullyingCase, when: datetime) -> None:
    """Reports to the police and the education bureau (未成年人保护法 art. 39), made at `when`."""
    for authority, unit in (("police", "城东派出所"), ("bureau", "区教育局")):
        c.record_authority_report(
            report_id=f"{authority}-{when.isoformat()}",
            authority=authority,
            unit=unit,
            method="phone",
            reported_at=when,
            actor=SAFETY,
            at=when,
        )


def advance(
    c: BullyingCase, upto: str, *, bullying: bool = True, severity: str | None = "minor", horseplay: bool = False
) -> BullyingCase:
    """Walk a case up to a status: investigating, awaiting_determination, determined, approved, ready."""
    steps = ["investigating", "awaiting_determination", "determined", "approved", "ready"]
    n = steps.index(upto)
    c.start_investigation(handler_id=SAFETY, actor=SAFETY, at=at(1))
    if n >= 1:
        c.complete_investigation(findings="属实", actor=SAFETY, at=at(2))
    if n >= 2:
        ready_case(c, SAFETY, at(2.5))
        # The legacy severity is refused for new determinations: an old stream recorded it.
        determine = c._determined if severity == "suspected_offence" else c.determine
        determine(
            determination_id="d1",
            bullying=bullying,
            severity=severity if bullying else None,
            horseplay=horseplay,
            reason="委员会认定",
            actor=SAFETY,
            at=at(3),
        )
    if n >= 3:
        c.approve_determination(
            reason="同意",
            follow_up_due=at(4).date() + 30 * DAY,
            appeal_until=at(4).date() + 15 * DAY,
            actor=PRINCIPAL,
            at=at(4),
            authority_report_due=at(5),
        )
    if n >= 4 and bullying:
        plan(c, "i1", TGT, "support")
        plan(c, "i2", BUL, "education")
    return c


def plan(c: BullyingCase, iid: str, student: str, kind: str, days: float = 5, **kw) -> None:
    c.plan_intervention(
        intervention_id=iid,
        student_id=student,
        kind=kind,
        plan="方案",
        responsible_staff_id=COUNSELOR,
        actor=SAFETY,
        at=at(days),
        **kw,
    )


def refused(c: BullyingCase, error: type[DomainError], command, **kw) -> DomainError:
    """The command raises `error` and records nothing."""
    before = (c.version, len(c.pending_events))
    with pytest.raises(error) as e:
        command(**kw)
    assert (c.version, len(c.pending_events)) == before
    return e.value


def replay(c: BullyingCase) -> BullyingCase:
    return reduce(lambda agg, e: e.mutate(agg), c.collect_events(), None)


# -- report --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "changes, error",
    [
        ({"channel": "rumour"}, InvalidInput),
        ({"forms": []}, InvalidInput),
        ({"forms": ["verbal", "verbal"]}, InvalidInput),
        ({"forms": ["teasing"]}, InvalidInput),
        ({"occurred_at": T0 + DAY}, InvalidInput),
        ({"occurred_at": datetime(2026, 10, 11)}, InvalidInput),
        ({"at": datetime(2026, 10, 12)}, InvalidInput),
        ({"place": " "}, InvalidInput),
        ({"narrative": ""}, InvalidInput),
        ({"parties": [(TGT, "targeted"), (TGT, "witness")]}, InvalidInput),
        ({"parties": [(TGT, "victim")]}, InvalidInput),
        ({"parties": [(BUL, "bullying"), (WIT, "witness")]}, TargetedPartyRequired),
        ({"parties": []}, TargetedPartyRequired),
        ({"source": {"kind": "pairing"}}, InvalidInput),
        ({"source": {"kind": "pairing", "id": "p1", "extra": object()}}, InvalidInput),
        ({"investigation_due": T0.date() - DAY}, InvalidInput),
    ],
)
def test_a_report_with_a_missing_or_wrong_detail_is_refused(changes, error):
    with pytest.raises(error):
        new_case(**changes)


def test_a_report_records_who_when_what_and_the_students_by_id_only():
    c = new_case(
        parties=[{"student_id": TGT, "part": "targeted"}],
        reporter_note="匿名来电",
        source={"kind": "pairing", "id": "p1", "check_in_id": "c1"},
    )
    (e,) = c.pending_events
    assert type(e).__name__ == "Reported"
    assert (e.actor, e.at, e.channel, e.parties, e.source) == (
        "teacher-1",
        T0,
        "hotline",
        [{"student_id": TGT, "part": "targeted"}],
        {"kind": "pairing", "id": "p1", "check_in_id": "c1"},
    )
    assert c.status == "reported" and c.reporter_note == "匿名来电"


def test_the_scope_names_the_parties_and_status_but_carries_no_text():
    c = advance(new_case(), "investigating")
    s = c.scope()
    assert (s.kind, s.school_id, s.owner_id, s.subject_id, s.status) == (
        "case",
        "school-1",
        SAFETY,
        None,
        "investigating",
    )
    assert sorted(s.links) == sorted([(TGT, "targeted"), (BUL, "bullying"), (WIT, "witness")])
    assert "辱骂" not in repr(s) and "操场" not in repr(s)


# -- the state machine -----------------------------------------------------------------------
def test_the_status_follows_the_lifecycle_from_report_to_reopening():
    c = new_case()
    seen = [c.status]
    advance(c, "determined")
    seen.append(c.status)
    c.approve_determination(
        reason="同意", follow_up_due=date(2026, 11, 15), appeal_until=date(2026, 10, 31), actor=PRINCIPAL, at=at(4)
    )
    seen.append(c.status)
    plan(c, "i1", TGT, "counselling")
    plan(c, "i2", BUL, "education")
    c.record_follow_up(
        follow_up_id="f1", held_on=at(10).date(), notes="正常", next_due=at(40).date(), actor=SAFETY, at=at(10)
    )
    seen.append(c.status)
    lodge_legacy_appeal(
        c, appeal_id="a1", party_id=BUL, grounds="不服", lodged_on=at(11).date(), actor=SAFETY, at=at(11)
    )
    seen.append(c.status)
    c.record_appeal_outcome(
        appeal_id="a1", outcome="upheld", reason="维持", decided_on=at(12).date(), actor=SAFETY, at=at(12)
    )
    seen.append(c.status)
    c.close(reason="结案", actor=PRINCIPAL, at=at(13))
    seen.append(c.status)
    c.reopen(reason="再次发生", investigation_due=at(30).date(), actor=SAFETY, at=at(20))
    seen.append(c.status)
    assert seen == [
        "reported",
        "determined",
        "intervening",
        "following_up",
        "appealed",
        "following_up",
        "closed",
        "reopened",
    ]
    assert [type(e).__name__ for e in c.pending_events] == [
        "Reported",
        "InvestigationStarted",
        "InvestigationCompleted",
        *["GuardianInvitationRecorded", "GuardianParticipationRecorded"] * 2,
        "CommitteeMeetingRecorded",
        "Determined",
        "DeterminationApproved",
        "InterventionPlanned",
        "InterventionPlanned",
        "FollowUpRecorded",
        "AppealLodged",
        "AppealReviewed",
        "Closed",
        "Reopened",
    ]


def test_replaying_the_events_rebuilds_the_same_case():
    c = advance(new_case(), "ready", severity="suspected_offence")
    c.record_mandatory_report(report_id="r1", agency="派出所", reported_at=at(4), actor=SAFETY, at=at(5))
    report_to_both(c, at(5))
    c.close(reason="结案", actor=PRINCIPAL, at=at(6))
    c.reopen(reason="复发", investigation_due=at(20).date(), actor=SAFETY, at=at(10))
    copy = replay(c)  # collects (empties) c's pending events
    assert copy.__dict__ == c.__dict__
    assert (copy.status, copy.cycle) == ("reopened", 1)


@pytest.mark.parametrize(
    "upto, command",
    [
        ("reported", "complete_investigation"),
        ("reported", "determine"),
        ("investigating", "start_investigation"),
        ("investigating", "determine"),
        ("awaiting_determination", "approve_determination"),
        ("awaiting_determination", "complete_investigation"),
        ("determined", "determine"),
        ("determined", "start_investigation"),
    ],
)
def test_commands_out_of_order_are_refused_and_record_nothing(upto, command):
    c = new_case() if upto == "reported" else advance(new_case(), upto)
    kwargs = {
        "start_investigation": dict(handler_id=SAFETY),
        "complete_investigation": dict(findings="结论"),
        "determine": dict(determination_id="dx", bullying=False, reason="理由"),
        "approve_determination": dict(reason="同意", follow_up_due=at(40).date(), appeal_until=at(20).date()),
    }[command]
    refused(c, WrongState, getattr(c, command), actor=PRINCIPAL, at=at(9), **kwargs)


def test_every_event_records_who_and_when_and_decisions_record_why():
    c = advance(new_case(), "ready")
    c.close(reason="干预完成", actor=PRINCIPAL, at=at(9))
    for e in c.pending_events:
        assert e.actor and e.at.tzinfo is not None
    decisions = {type(e).__name__: e for e in c.pending_events}
    assert decisions["Determined"].reason == "委员会认定"
    assert decisions["DeterminationApproved"].reason == "同意"
    assert decisions["Closed"].reason == "干预完成"


# -- parties -------------------------------------------------------------------------------
def test_a_student_holds_one_part_in_a_case():
    c = new_case()
    refused(c, AlreadyAParty, c.add_party, student_id=WIT, part="targeted", reason="改为被欺凌", actor=SAFETY, at=at(1))
    refused(c, InvalidInput, c.add_party, student_id=OUT, part="witness", reason=" ", actor=SAFETY, at=at(1))
    c.remove_party(student_id=WIT, reason="身份有误", actor=SAFETY, at=at(1))
    c.add_party(student_id=WIT, part="targeted", reason="实为被欺凌学生", actor=SAFETY, at=at(1))
    c.remove_party(student_id=TGT, reason="认错人", actor=SAFETY, at=at(1))  # WIT is now targeted
    assert sorted(c.links) == [(BUL, "bullying"), (WIT, "targeted")]
    refused(c, TargetedPartyRequired, c.remove_party, student_id=WIT, reason="r", actor=SAFETY, at=at(1))
    refused(c, NotAParty, c.remove_party, student_id=OUT, reason="r", actor=SAFETY, at=at(1))


# -- safety measures -------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kw",
    [
        dict(kind="evacuate", student_ids=[TGT]),
        dict(kind="separate_students", student_ids=[]),
        dict(kind="separate_students", student_ids=[TGT, TGT]),
        dict(kind="medical_care", student_ids=[TGT, BUL]),
        dict(kind="other", note=""),
        dict(kind="guardian_notified", student_ids=[TGT, BUL], method="phone", notified_at=T0),
        dict(kind="guardian_notified", student_ids=[TGT], method="pigeon", notified_at=T0),
        dict(kind="guardian_notified", student_ids=[TGT], method="phone"),
        dict(kind="guardian_notified", student_ids=[TGT], method="phone", notified_at=T0 + DAY),
        dict(kind="medical_care", student_ids=[TGT], method="phone"),
    ],
)
def test_a_safety_measure_must_be_complete_and_fit_its_kind(kw):
    c = new_case()
    refused(c, InvalidInput, c.take_safety_measure, measure_id="m1", actor=SAFETY, at=T0, **kw)


def test_safety_measures_continue_until_closure():
    c = advance(new_case(), "ready")
    c.take_safety_measure(measure_id="m1", kind="separate_students", student_ids=[TGT, BUL], actor=SAFETY, at=at(6))
    c.close(reason="结案", actor=PRINCIPAL, at=at(7))
    refused(c, CaseClosed, c.take_safety_measure, measure_id="m2", kind="other", note="n", actor=SAFETY, at=at(8))


# -- statements and evidence -----------------------------------------------------------------
def test_a_statement_must_not_be_dated_in_the_future_and_must_say_something():
    c = advance(new_case(), "investigating")
    refused(
        c,
        InvalidInput,
        c.record_statement,
        statement_id="s1",
        text="内容",
        taken_on=at(5).date(),
        from_person="家长",
        actor=SAFETY,
        at=at(1),
    )
    refused(
        c,
        InvalidInput,
        c.record_statement,
        statement_id="s1",
        text=" ",
        taken_on=at(1).date(),
        from_person="家长",
        actor=SAFETY,
        at=at(1),
    )
    refused(
        c,
        InvalidInput,
        c.record_statement,
        statement_id="s1",
        text="内容",
        taken_on=at(1).date(),
        actor=SAFETY,
        at=at(1),
    )


# -- determination -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kw",
    [
        dict(bullying=True, severity="terrible"),
        dict(bullying=True, severity=None),
        dict(bullying=True, severity="minor", horseplay=True),
        dict(bullying=False, severity="minor"),
        dict(bullying="yes", severity="minor"),
    ],
)
def test_a_determination_must_be_consistent(kw):
    c = advance(new_case(), "awaiting_determination")
    refused(c, InvalidInput, c.determine, determination_id="d", reason="理由", actor=SAFETY, at=at(3), **kw)


def test_a_determination_is_approved_by_someone_other_than_its_recorder():
    c = advance(new_case(), "determined")
    refused(
        c,
        SelfApproval,
        c.approve_determination,
        reason="同意",
        follow_up_due=at(34).date(),
        appeal_until=at(19).date(),
        actor=SAFETY,
        at=at(4),
    )
    refused(
        c,
        InvalidInput,
        c.approve_determination,
        reason="",
        follow_up_due=at(34).date(),
        appeal_until=at(19).date(),
        actor=PRINCIPAL,
        at=at(4),
    )


def test_a_not_bullying_determination_has_no_follow_up_duty_and_needs_no_interventions():
    c = advance(new_case(), "approved", bullying=False, horseplay=True)
    assert (c.status, c.next_follow_up_due, c.missing_interventions()) == ("concluded", None, {})
    c.record_follow_up(
        follow_up_id="f1", held_on=at(6).date(), notes="关系正常", next_due=at(36).date(), actor=SAFETY, at=at(6)
    )
    assert (c.status, c.next_follow_up_due, c.follow_up_overdue(at(100).date())) == ("concluded", None, False)


# -- mandatory report ---------------------------------------------------------------------------
def test_a_mandatory_report_names_the_agency_and_is_not_dated_in_the_future():
    c = new_case()
    refused(c, InvalidInput, c.record_mandatory_report, report_id="r", agency=" ", reported_at=T0, actor=SAFETY, at=T0)
    refused(
        c,
        InvalidInput,
        c.record_mandatory_report,
        report_id="r",
        agency="派出所",
        reported_at=T0 + DAY,
        actor=SAFETY,
        at=T0,
    )
    c.record_mandatory_report(report_id="r", agency="派出所", reported_at=T0, actor=SAFETY, at=T0)
    assert c.mandatory_reports["r"]["agency"] == "派出所"


def test_a_mandatory_report_of_an_earlier_cycle_does_not_cover_a_recurrence():
    c = advance(new_case(), "ready", severity="suspected_offence")
    c.record_mandatory_report(report_id="r1", agency="派出所", reported_at=at(4), actor=SAFETY, at=at(5))
    report_to_both(c, at(5))
    c.close(reason="结案", actor=PRINCIPAL, at=at(6))
    c.reopen(reason="再次发生", investigation_due=at(20).date(), actor=SAFETY, at=at(10))
    c.start_investigation(handler_id=SAFETY, actor=SAFETY, at=at(11))
    c.complete_investigation(findings="属实", actor=SAFETY, at=at(12))
    ready_case(c, SAFETY, at(12.5))
    c._determined(  # an old stream: the legacy severity, as recorded before the tiers changed
        determination_id="d2",
        bullying=True,
        severity="suspected_offence",
        horseplay=False,
        reason="再犯",
        actor=SAFETY,
        at=at(13),
    )
    c.approve_determination(
        reason="同意",
        follow_up_due=at(44).date(),
        appeal_until=at(29).date(),
        actor=PRINCIPAL,
        at=at(14),
        authority_report_due=at(15),
    )
    plan(c, "i3", TGT, "support", days=15)
    plan(c, "i4", BUL, "education", days=15)
    refused(c, MandatoryReportRequired, c.close, reason="结案", actor=PRINCIPAL, at=at(16))


# -- interventions --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "student, kind, extra, error",
    [
        (TGT, "education", {}, InvalidInput),
        (BUL, "support", {}, InvalidInput),
        (WIT, "education", {}, InvalidInput),
        (BUL, "education", {"support_file_id": "file-1"}, InvalidInput),
        (OUT, "support", {}, NotAParty),
        (TGT, "therapy", {}, InvalidInput),
    ],
)
def test_an_intervention_must_fit_the_students_part(student, kind, extra, error):
    c = advance(new_case(), "approved")
    refused(
        c,
        error,
        c.plan_intervention,
        intervention_id="i",
        student_id=student,
        kind=kind,
        plan="方案",
        responsible_staff_id=COUNSELOR,
        actor=SAFETY,
        at=at(5),
        **extra,
    )


def test_the_interventions_missing_for_closure_are_named_by_side_and_student():
    c = advance(new_case(), "approved")
    assert c.missing_interventions() == {"targeted": [TGT], "bullying": [BUL]}
    e = refused(c, InterventionsRequired, c.close, reason="结案", actor=PRINCIPAL, at=at(6))
    assert e.details["student_ids"] == sorted([TGT, BUL])
    assert "被欺凌学生" in str(e) and "涉嫌欺凌学生" in str(e)


def test_a_student_with_an_active_intervention_cannot_be_removed_after_a_recurrence():
    c = advance(new_case(), "ready")
    c.close(reason="结案", actor=PRINCIPAL, at=at(6))
    c.reopen(reason="复发", investigation_due=at(20).date(), actor=SAFETY, at=at(10))
    refused(c, InvalidInput, c.remove_party, student_id=BUL, reason="r", actor=SAFETY, at=at(11))
    c.complete_intervention(intervention_id="i2", outcome="已完成", actor=SAFETY, at=at(11))
    c.remove_party(student_id=BUL, reason="此次未参与", actor=SAFETY, at=at(11))


# -- appeal -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("party", [BUL, TGT, WIT, OUT])
def test_no_new_appeal_is_recorded_the_county_review_replaces_it(party):
    # given an approved determination, within the window a party has to apply
    c = advance(new_case(), "ready")
    # when an appeal (申诉) is recorded the old way, by any party
    e = refused(
        c,
        AppealRetired,
        c.lodge_appeal,
        appeal_id="a1",
        party_id=party,
        grounds="不服",
        lodged_on=at(5).date(),
        actor=SAFETY,
        at=at(5),
    )
    # then it is refused, naming the county review, and nothing is recorded
    assert e.code == "appeal_retired" and "县级复查" in str(e)
    assert c.appeals == {} and c.status == "intervening" and c.pending_appeal_id is None


def test_an_old_appeal_still_loads_and_takes_its_outcome_and_no_other_is_added():
    # given a stream recorded before the county review: an appeal lodged by the bullying party
    c = advance(new_case(), "ready")
    lodge_legacy_appeal(c, appeal_id="a1", party_id=BUL, grounds="不服", lodged_on=at(5).date(), actor=SAFETY, at=at(5))
    loaded = replay(c)
    # then it loads pending, and its outcome is recorded as before
    assert (loaded.status, loaded.pending_appeal_id, loaded.appeals["a1"]["grounds"]) == ("appealed", "a1", "不服")
    loaded.record_appeal_outcome(
        appeal_id="a1", outcome="upheld", reason="维持", decided_on=at(6).date(), actor=SAFETY, at=at(6)
    )
    assert loaded.appeals["a1"]["outcome"] == "upheld" and loaded.status == "intervening"
    # and the other party's disagreement goes to the county review, not a second appeal
    refused(
        loaded,
        AppealRetired,
        loaded.lodge_appeal,
        appeal_id="a2",
        party_id=TGT,
        grounds="认为应更重",
        lodged_on=at(7).date(),
        actor=SAFETY,
        at=at(7),
    )
    # and the party who appealed cannot apply again on the same determination
    refused(
        loaded,
        InvalidInput,
        loaded.apply_for_county_review,
        review_id="r1",
        party_id=BUL,
        county_body="县欺凌防治办",
        applied_on=at(7).date(),
        due_on=at(22).date(),
        grounds="再次不服",
        actor=SAFETY,
        at=at(7),
    )


@pytest.mark.parametrize(
    "kw",
    [
        dict(appeal_id="nope", outcome="upheld"),
        dict(outcome="dismissed"),
        dict(outcome="changed", new_determination_id="d2", bullying=True, severity="minor"),  # same as before
        dict(outcome="changed", new_determination_id="d2"),
        dict(outcome="changed", new_determination_id="d2", bullying=True, severity="serious", follow_up_due=None),
        dict(outcome="changed", bullying=False),
        dict(outcome="upheld", bullying=False),
        dict(outcome="upheld", decided_on=date(2026, 10, 1)),
        dict(outcome="reopened", investigation_due=None),
    ],
)
def test_an_appeal_outcome_must_be_complete_and_consistent(kw):
    c = advance(new_case(), "ready")
    lodge_legacy_appeal(c, appeal_id="a1", party_id=BUL, grounds="不服", lodged_on=at(5).date(), actor=SAFETY, at=at(5))
    args = (
        dict(
            appeal_id="a1",
            reason="复查意见",
            decided_on=at(6).date(),
            follow_up_due=at(36).date(),
            investigation_due=at(16).date(),
            actor=SAFETY,
            at=at(6),
        )
        | kw
    )
    refused(c, InvalidInput, c.record_appeal_outcome, **args)


def test_a_pending_appeal_freezes_the_determination_but_not_the_support():
    c = advance(new_case(), "approved")
    lodge_legacy_appeal(c, appeal_id="a1", party_id=BUL, grounds="不服", lodged_on=at(5).date(), actor=SAFETY, at=at(5))
    plan(c, "i1", TGT, "support", days=6)
    c.record_follow_up(
        follow_up_id="f1", held_on=at(6).date(), notes="稳定", next_due=at(36).date(), actor=SAFETY, at=at(6)
    )
    assert c.status == "appealed"
    refused(c, AppealPending, c.close, reason="结案", actor=PRINCIPAL, at=at(7))
    refused(c, AppealPending, c.add_party, student_id=OUT, part="witness", reason="r", actor=SAFETY, at=at(7))


def test_a_determination_changed_to_not_bullying_drops_the_follow_up_duty_and_the_intervention_rule():
    c = advance(new_case(), "approved")
    lodge_legacy_appeal(
        c, appeal_id="a1", party_id=BUL, grounds="只是打闹", lodged_on=at(5).date(), actor=SAFETY, at=at(5)
    )
    c.record_appeal_outcome(
        appeal_id="a1",
        outcome="changed",
        new_determination_id="d2",
        bullying=False,
        horseplay=True,
        reason="复查认定为打闹嬉戏",
        decided_on=at(8).date(),
        follow_up_due=at(38).date(),
        actor=SAFETY,
        at=at(8),
    )
    assert (c.status, c.next_follow_up_due, c.severity) == ("concluded", None, None)
    assert [d["id"] for d in c.determinations] == ["d1", "d2"]
    c.close(reason="复查后结案", actor=PRINCIPAL, at=at(9))


# -- follow-ups, closure, reopening -------------------------------------------------------------------
def test_a_follow_up_is_not_dated_before_the_approval_or_in_the_future():
    c = advance(new_case(), "ready")
    kw = dict(follow_up_id="f", notes="回访", next_due=at(40).date(), actor=SAFETY, at=at(10))
    refused(c, InvalidInput, c.record_follow_up, held_on=at(3).date(), **kw)
    refused(c, InvalidInput, c.record_follow_up, held_on=at(11).date(), **kw)


def test_closure_needs_a_reason_and_happens_once():
    c = advance(new_case(), "ready")
    refused(c, InvalidInput, c.close, reason=" ", actor=PRINCIPAL, at=at(6))
    c.close(reason="结案", actor=PRINCIPAL, at=at(6))
    refused(c, CaseClosed, c.close, reason="结案", actor=PRINCIPAL, at=at(7))
    assert not c.is_overdue(at(400).date())


def test_a_reopened_case_is_overdue_against_its_new_due_date():
    c = advance(new_case(), "ready")
    c.close(reason="结案", actor=PRINCIPAL, at=at(6))
    refused(c, InvalidInput, c.reopen, reason="", investigation_due=at(40).date(), actor=SAFETY, at=at(30))
    c.reopen(reason="复发", investigation_due=at(40).date(), actor=SAFETY, at=at(30))
    assert not c.investigation_overdue(at(40).date())
    assert c.investigation_overdue(at(41).date())


# -- corrections ----------------------------------------------------------------------------------------
def test_a_correction_must_change_something_and_give_a_reason():
    c = advance(new_case(), "investigating")
    c.record_statement(
        statement_id="s1", text="原文", taken_on=at(1).date(), from_person="家长", actor=SAFETY, at=at(1)
    )
    refused(c, InvalidInput, c.correct_statement, statement_id="s1", text="原文", reason="无", actor=SAFETY, at=at(2))
    refused(c, InvalidInput, c.correct_statement, statement_id="s9", text="新", reason="笔误", actor=SAFETY, at=at(2))
    refused(c, InvalidInput, c.correct_narrative, narrative=c.narrative, reason="无", actor=SAFETY, at=at(2))
    refused(c, InvalidInput, c.correct_report, changes={"place": "操场"}, reason="无变化", actor=SAFETY, at=at(2))
    refused(c, InvalidInput, c.correct_report, changes={"narrative": "x"}, reason="r", actor=SAFETY, at=at(2))
    refused(c, InvalidInput, c.correct_report, changes={"occurred_at": at(5)}, reason="r", actor=SAFETY, at=at(2))
    c.correct_report(
        changes={"occurred_at": at(-2), "channel": "parent"}, reason="家长来电更正", actor=SAFETY, at=at(2)
    )
    assert (c.occurred_at, c.channel, c.corrections[-1]["fields"]) == (at(-2), "parent", ["channel", "occurred_at"])


def test_refusals_carry_a_stable_code_and_a_chinese_message():
    c = advance(new_case(), "ready", severity="suspected_offence")
    e = refused(c, MandatoryReportRequired, c.close, reason="结案", actor=PRINCIPAL, at=at(6))
    assert e.code == "mandatory_report_required" and "强制报告" in str(e)
    fresh = new_case()
    d = refused(fresh, DeterminationNotApproved, fresh.close, reason="r", actor=PRINCIPAL, at=at(1))
    assert d.code == "determination_not_approved" and "结案" in str(d)


def test_a_case_status_follows_one_rule_in_order_of_precedence() -> None:
    from domain.bullying import case_status

    facts = dict(
        closed=False,
        appealed=False,
        determined=False,
        approved=False,
        bullying=False,
        followed_up=False,
        investigation_completed=False,
        investigation_started=False,
        reopened=False,
    )

    def status(**changed: bool) -> str:
        return case_status(**{**facts, **changed})

    assert status() == "reported"
    assert status(reopened=True) == "reopened"
    assert status(investigation_started=True) == "investigating"
    assert status(investigation_started=True, investigation_completed=True) == "awaiting_determination"
    assert status(investigation_completed=True, determined=True) == "determined"
    assert status(determined=True, approved=True) == "concluded"
    assert status(determined=True, approved=True, bullying=True) == "intervening"
    assert status(determined=True, approved=True, bullying=True, followed_up=True) == "following_up"
    assert status(determined=True, approved=True, bullying=True, appealed=True) == "appealed"
    assert status(appealed=True, closed=True) == "closed"
