"""Remedies of a bullying case on their own (issue 17, part C): the reports to the police and
the education bureau (未成年人保护法 art. 11, 39), dispositions for a bullying student
(教督〔2017〕10号, 中小学教育惩戒规则 art. 8-10) and the county review (复查). No database,
no clock, no gate."""

from __future__ import annotations

from datetime import timedelta

import pytest
from determination_support import lodge_legacy_appeal
from test_bullying_domain import (
    BUL,
    DAY,
    OUT,
    PRINCIPAL,
    SAFETY,
    TGT,
    WIT,
    advance,
    at,
    new_case,
    plan,
    refused,
    replay,
)

from domain.bullying import (
    AppealPending,
    AuthorityReportsRequired,
    BullyingCase,
    NotABullyingParty,
    ReviewApplicationWindowClosed,
    ReviewPanelIncomplete,
)
from domain.common import InvalidInput

HOUR = timedelta(hours=1)


def serious(**kw) -> BullyingCase:
    """A case whose serious-bullying determination was approved at at(4), reports due at(5)."""
    return advance(new_case(), "approved", severity="serious", **kw)


def report(c: BullyingCase, authority: str, when=None, rid: str | None = None, **kw) -> None:
    when = when or at(4.5)
    fields = dict(
        report_id=rid or f"{authority}-{when.isoformat()}",
        authority=authority,
        unit={"police": "城东派出所", "bureau": "区教育局"}[authority],
        method="phone",
        reported_at=when,
        receipt="JJ-2026-0042",
        actor=SAFETY,
        at=when,
    )
    fields.update(kw)
    c.record_authority_report(**fields)


def ready_to_close(c: BullyingCase) -> BullyingCase:
    plan(c, "i1", TGT, "support", days=5)
    plan(c, "i2", BUL, "education", days=5)
    return c


# -- reports to the authorities (未成年人保护法 art. 39, 11) ---------------------------------------
def test_approving_serious_bullying_makes_a_report_to_the_police_and_one_to_the_bureau_due():
    # given a case determined serious bullying, when the principal approves it
    c = serious()
    # then both reports are due by the time given (policy.authority_report_hours after approval)
    duty = c.authority_duty
    assert duty is not None
    assert (duty["grounds"], duty["known_at"], duty["due_at"]) == ("serious_bullying", at(4), at(5))
    assert c.outstanding_authority_reports() == ["police", "bureau"]
    assert type(c.pending_events[-1]).__name__ == "AuthorityReportsDue"


@pytest.mark.parametrize("bullying, severity", [(True, "minor"), (False, None)])
def test_no_report_falls_due_for_minor_bullying_or_no_bullying(bullying, severity):
    c = advance(new_case(), "approved", bullying=bullying, severity=severity)
    assert c.authority_duty is None and c.outstanding_authority_reports() == []


def test_a_report_made_from_intake_counts_and_only_the_other_falls_due():
    # given a report to the police made the day the case was opened (art. 11)
    c = new_case()
    report(c, "police", at(0.5))
    # when serious bullying is approved
    c = advance(c, "approved", severity="serious")
    # then only the education bureau is owed a report
    assert c.outstanding_authority_reports() == ["bureau"]


def test_the_police_track_makes_them_due_once_per_cycle():
    # given a case with reports due for the police track
    c = new_case()
    assert c.reports_due(grounds="police_track", known_at=at(1), due_at=at(2), actor=SAFETY, at=at(1)) is True
    # when serious bullying is approved later in the same cycle
    c = advance(c, "approved", severity="serious")
    # then the duty is the first one (its due time is kept)
    assert [d["grounds"] for d in c.authority_duties] == ["police_track"]
    assert c.authority_duty["due_at"] == at(2)  # type: ignore[index]
    # and asking again records nothing
    before = len(c.pending_events)
    assert c.reports_due(grounds="police_track", known_at=at(6), due_at=at(7), actor=SAFETY, at=at(6)) is False
    assert len(c.pending_events) == before


@pytest.mark.parametrize(
    "kw",
    [
        dict(grounds="rumour", known_at=at(1), due_at=at(2)),
        dict(grounds="police_track", known_at=at(2), due_at=at(1)),
        dict(grounds="police_track", known_at=at(1).replace(tzinfo=None), due_at=at(2)),
    ],
)
def test_a_duty_with_bad_input_is_refused(kw):
    c = new_case()
    refused(c, InvalidInput, c.reports_due, actor=SAFETY, at=at(1), **kw)


def test_reports_are_overdue_after_their_due_time_until_made():
    c = serious()
    assert c.authority_reports_overdue(at(5)) == []
    assert c.authority_reports_overdue(at(5) + HOUR) == ["police", "bureau"]
    report(c, "police", at(5) + 2 * HOUR)
    assert c.authority_reports_overdue(at(5) + 3 * HOUR) == ["bureau"]
    report(c, "bureau", at(5) + 3 * HOUR)
    assert c.authority_reports_overdue(at(9)) == []


def test_closing_needs_both_reports_and_names_the_one_missing():
    # given serious bullying with interventions and the police told
    c = ready_to_close(serious())
    report(c, "police")
    # when the principal closes, then it is refused naming the bureau and the statute
    e = refused(c, AuthorityReportsRequired, c.close, reason="结案", actor=PRINCIPAL, at=at(9))
    assert "教育行政部门" in str(e) and "公安机关、" not in str(e) and "第三十九条" in str(e)
    # and once the bureau is told it closes
    report(c, "bureau", at(6))
    c.close(reason="结案", actor=PRINCIPAL, at=at(9))
    assert c.status == "closed"


def test_approving_serious_bullying_without_a_due_time_is_refused():
    c = advance(new_case(), "determined", severity="serious")
    refused(
        c,
        InvalidInput,
        c.approve_determination,
        reason="同意",
        follow_up_due=at(30).date(),
        appeal_until=at(20).date(),
        actor=PRINCIPAL,
        at=at(4),
    )


@pytest.mark.parametrize(
    "change",
    [
        dict(authority="court"),
        dict(method="telepathy"),
        dict(unit="  "),
        dict(reported_at=at(9)),
        dict(reported_at=at(4).replace(tzinfo=None)),
    ],
)
def test_a_report_with_bad_input_is_refused_and_records_nothing(change):
    c = serious()
    fields = dict(
        report_id="r9", authority="police", unit="派出所", method="phone", reported_at=at(4), actor=SAFETY, at=at(5)
    )
    fields.update(change)
    refused(c, InvalidInput, c.record_authority_report, **fields)


def test_a_report_of_an_earlier_cycle_does_not_cover_a_recurrence():
    c = ready_to_close(serious())
    report(c, "police")
    report(c, "bureau")
    c.close(reason="结案", actor=PRINCIPAL, at=at(9))
    c.reopen(reason="再次发生", investigation_due=at(20).date(), actor=SAFETY, at=at(10))
    assert c.authority_duty is None and c.authority_reports_this_cycle == []
    assert c.reports_due(grounds="police_track", known_at=at(11), due_at=at(12), actor=SAFETY, at=at(11))
    assert c.outstanding_authority_reports() == ["police", "bureau"]


def test_replaying_the_remedies_rebuilds_the_same_case():
    c = serious()
    report(c, "police")
    c.decide_disposition(
        disposition_id="x1",
        student_id=BUL,
        kind="criticism",
        decided_by="committee",
        decided_on=at(4).date(),
        actor=SAFETY,
        at=at(5),
    )
    c.apply_for_county_review(
        review_id="r1",
        party_id=BUL,
        county_body="区防治学生欺凌工作办公室",
        applied_on=at(6).date(),
        due_on=at(21).date(),
        grounds="不服",
        actor=SAFETY,
        at=at(6),
    )
    copy = replay(c)
    assert copy.__dict__ == c.__dict__


# -- dispositions --------------------------------------------------------------------------------
def decide(case_: BullyingCase, **kw):
    fields = dict(
        disposition_id="x1",
        student_id=BUL,
        kind="education_discipline",
        level="heavier",
        measure="school_service",
        decided_by="committee",
        decided_on=at(5).date(),
        note="校内公益服务两周",
        actor=SAFETY,
        at=at(5),
        student_label="王小明",
    )
    fields.update(kw)
    return case_.decide_disposition(**fields)


def test_a_disposition_for_the_bullying_student_is_recorded_with_who_decided_and_when():
    c = advance(new_case(), "approved")
    decide(c)
    (d,) = c.dispositions
    assert (d["student_id"], d["kind"], d["level"], d["measure"], d["decided_by"]) == (
        BUL,
        "education_discipline",
        "heavier",
        "school_service",
        "committee",
    )
    assert (d["decided_on"], d["by"], d["determination_id"]) == (at(5).date(), SAFETY, "d1")


@pytest.mark.parametrize("student", [TGT, WIT, OUT])
def test_a_disposition_for_anyone_but_a_bullying_party_is_refused_naming_them(student):
    c = advance(new_case(), "approved")
    e = refused(c, NotABullyingParty, decide, case_=c, student_id=student)
    assert "王小明" in str(e)


@pytest.mark.parametrize("upto", ["determined", "awaiting_determination"])
def test_a_disposition_before_an_approved_determination_is_refused(upto):
    c = advance(new_case(), upto)
    refused(c, NotABullyingParty, decide, case_=c)


def test_a_disposition_when_not_bullying_is_refused():
    c = advance(new_case(), "approved", bullying=False, horseplay=True)
    refused(c, NotABullyingParty, decide, case_=c)


@pytest.mark.parametrize(
    "kw",
    [
        dict(kind="caning", level=None, measure=None),
        dict(kind="apology", level=None, measure=None),
        dict(kind="apology", level="by_fax", measure=None),
        dict(kind="criticism", level="general", measure=None),
        dict(kind="education_discipline", level="severe", measure="school_service"),  # a 较重 measure
        dict(kind="education_discipline", level="heavier", measure=None),
        dict(kind="disciplinary_sanction", level="expulsion", measure=None),
        dict(kind="criticism", level=None, measure="standing"),
        dict(kind="police_admonition", level=None, measure=None, decided_by="committee"),
        dict(kind="special_school", level=None, measure=None, decided_by="principal"),
        dict(kind="criticism", level=None, measure=None, decided_by="neighbours"),
        dict(kind="compensation", level=None, measure=None, note=""),
        dict(kind="criticism", level=None, measure=None, decided_on=at(9).date()),
        dict(kind="criticism", level=None, measure=None, decided_on=at(1).date()),
    ],
)
def test_a_disposition_that_does_not_fit_the_rules_is_refused(kw):
    c = advance(new_case(), "approved")
    refused(c, InvalidInput, decide, case_=c, **kw)


@pytest.mark.parametrize(
    "kw",
    [
        dict(kind="apology", level="written", measure=None),
        dict(kind="disciplinary_sanction", level="demerit", measure=None, decided_by="principal"),
        dict(kind="police_admonition", level=None, measure=None, decided_by="police"),
        dict(kind="special_school", level=None, measure=None, decided_by="bureau"),
        dict(kind="education_discipline", level="severe", measure="suspension"),
        dict(kind="guardian_supervision", level=None, measure=None),
        dict(kind="family_guidance", level=None, measure=None),
    ],
)
def test_each_kind_is_recorded_with_its_own_level_and_decider(kw):
    c = advance(new_case(), "approved")
    decide(c, **kw)
    assert c.dispositions[-1]["kind"] == kw["kind"]


def test_a_disposition_waits_while_a_review_is_pending():
    c = advance(new_case(), "approved")
    apply(c)
    refused(c, AppealPending, decide, case_=c)


# -- the county review (复查) -------------------------------------------------------------------------
def apply(case_: BullyingCase, **kw) -> None:
    fields = dict(
        review_id="r1",
        party_id=BUL,
        county_body="区防治学生欺凌工作办公室",
        applied_on=at(6).date(),
        due_on=at(6).date() + 15 * DAY,
        grounds="认为属于同学间玩闹",
        actor=SAFETY,
        at=at(6),
        student_label="王小明",
    )
    fields.update(kw)
    case_.apply_for_county_review(**fields)


PANEL = [("school", "李老师"), ("parent", "赵家长"), ("expert", "周律师")]


def test_an_application_is_pending_and_due_fifteen_days_on():
    c = advance(new_case(), "approved")
    apply(c)
    assert c.status == "appealed" and c.pending_review["due_on"] == at(21).date()  # type: ignore[index]
    assert not c.county_review_overdue(at(21).date())
    assert c.county_review_overdue(at(22).date())


def test_an_application_after_the_window_is_refused_naming_the_student():
    c = advance(new_case(), "approved")  # appeal_until: at(4) + 15 days
    e = refused(c, ReviewApplicationWindowClosed, apply, case_=c, applied_on=at(20).date(), at=at(20))
    assert "王小明" in str(e) and str(at(19).date()) in str(e)


@pytest.mark.parametrize(
    "kw, error",
    [
        (dict(party_id=WIT), InvalidInput),
        (dict(party_id=OUT), InvalidInput),
        (dict(county_body=" "), InvalidInput),
        (dict(grounds=""), InvalidInput),
        (dict(applied_on=at(7).date()), InvalidInput),
        (dict(applied_on=at(2).date()), InvalidInput),
        (dict(due_on=at(5).date()), InvalidInput),
    ],
)
def test_a_bad_application_is_refused(kw, error):
    c = advance(new_case(), "approved")
    refused(c, error, apply, case_=c, **kw)


def test_a_second_application_while_one_is_pending_is_refused():
    c = advance(new_case(), "approved")
    apply(c)
    refused(c, AppealPending, apply, case_=c, review_id="r2", party_id=TGT)
    refused(c, AppealPending, c.close, reason="结案", actor=PRINCIPAL, at=at(9))


def test_the_panel_must_have_school_parent_and_expert_members():
    c = advance(new_case(), "approved")
    apply(c)
    e = refused(
        c, ReviewPanelIncomplete, c.record_review_panel, review_id="r1", members=PANEL[:1], actor=SAFETY, at=at(7)
    )
    assert "家长代表" in str(e) and "校外专家" in str(e)
    refused(
        c,
        InvalidInput,
        c.record_review_panel,
        review_id="r1",
        members=[*PANEL, ("mayor", "某人")],
        actor=SAFETY,
        at=at(7),
    )
    c.record_review_panel(review_id="r1", members=PANEL, actor=SAFETY, at=at(7))
    assert [m["capacity"] for m in c.pending_review["panel"]] == ["school", "parent", "expert"]  # type: ignore[index]


def outcome(case_: BullyingCase, **kw) -> None:
    fields = dict(
        review_id="r1",
        outcome="upheld",
        reason="事实清楚",
        decided_on=at(8).date(),
        follow_up_due=at(38).date(),
        authority_report_due=at(9),
        actor=SAFETY,
        at=at(8),
    )
    fields.update(kw)
    case_.record_county_review_outcome(**fields)


def test_an_outcome_needs_the_panel_first():
    c = advance(new_case(), "approved")
    apply(c)
    refused(c, InvalidInput, outcome, case_=c)


def test_upheld_returns_to_where_the_case_was():
    c = advance(new_case(), "approved")
    apply(c)
    c.record_review_panel(review_id="r1", members=PANEL, actor=SAFETY, at=at(7))
    outcome(c)
    assert c.status == "intervening" and c.pending_review is None
    assert c.county_reviews[0]["outcome"] == "upheld"


def test_changed_to_serious_is_in_force_at_once_and_makes_the_reports_due():
    c = advance(new_case(), "approved")
    apply(c, party_id=TGT)
    c.record_review_panel(review_id="r1", members=PANEL, actor=SAFETY, at=at(7))
    outcome(c, outcome="changed", new_determination_id="d2", bullying=True, severity="serious")
    assert c.determination["source"] == "county_review" and c.severity == "serious"  # type: ignore[index]
    assert c.authority_duty["due_at"] == at(9)  # type: ignore[index]
    # and a determination changed on review is final here
    refused(c, InvalidInput, apply, case_=c, review_id="r2", party_id=BUL, applied_on=at(8).date(), at=at(8))


def test_sent_back_awaits_a_new_determination_by_the_committee():
    c = advance(new_case(), "approved")
    apply(c)
    c.record_review_panel(review_id="r1", members=PANEL, actor=SAFETY, at=at(7))
    outcome(c, outcome="sent_back")
    assert c.status == "awaiting_determination" and c.next_follow_up_due is None


@pytest.mark.parametrize(
    "kw",
    [
        dict(outcome="overturned"),
        dict(outcome="upheld", bullying=True, severity="serious"),
        dict(outcome="changed", new_determination_id="d2", bullying=True, severity="minor"),  # the same
        dict(outcome="upheld", decided_on=at(5).date()),
        dict(outcome="upheld", reason=" "),
        dict(
            outcome="changed", new_determination_id="d2", bullying=True, severity="serious", authority_report_due=None
        ),
    ],
)
def test_a_bad_outcome_is_refused(kw):
    c = advance(new_case(), "approved")
    apply(c)
    c.record_review_panel(review_id="r1", members=PANEL, actor=SAFETY, at=at(7))
    refused(c, InvalidInput, outcome, case_=c, **kw)


# -- old streams --------------------------------------------------------------------------------------
def test_a_case_recorded_before_the_remedies_loads_and_answers_their_questions():
    # given a stream of the old shape: a mandatory report, an appeal and its review, no new event
    c = advance(new_case(), "ready", severity="minor")
    c.record_mandatory_report(report_id="m1", agency="派出所", reported_at=at(5), actor=SAFETY, at=at(5))
    lodge_legacy_appeal(c, appeal_id="a1", party_id=BUL, grounds="不服", lodged_on=at(6).date(), actor=SAFETY, at=at(6))
    c.record_appeal_outcome(
        appeal_id="a1", outcome="upheld", reason="维持", decided_on=at(7).date(), actor=SAFETY, at=at(7)
    )
    old = list(c.collect_events())
    assert not {type(e).__name__ for e in old} & {"AuthorityReportsDue", "DispositionDecided", "CountyReviewApplied"}
    # when it is replayed
    loaded = reduce_events(old)
    # then it has no duty, no dispositions, no review, and its old facts are there
    assert loaded.authority_duty is None and loaded.dispositions == () and loaded.pending_review is None
    assert list(loaded.mandatory_reports) == ["m1"] and loaded.appeals["a1"]["outcome"] == "upheld"
    # and, like before, it closes
    loaded.close(reason="结案", actor=PRINCIPAL, at=at(9))


def reduce_events(events):
    agg = None
    for e in events:
        agg = e.mutate(agg)
    return agg
