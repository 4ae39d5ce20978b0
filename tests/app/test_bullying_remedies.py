"""Remedies of a bullying case through the application, on both stores (issue 17, part C):
the reports to the police and the education bureau due from the policy's hours, dispositions
refused with the student named, the county review due from the policy's days."""

from __future__ import annotations

from datetime import timedelta

import pytest
from conftest import Clock, School
from test_bullying import BULLYING, TARGETED, WITNESS, case, given_case, plan_both_sides

from anxin.service import Anxin
from domain.bullying import AuthorityReportsRequired, NotABullyingParty, ReviewApplicationWindowClosed
from domain.common import InvalidInput
from domain.policy import Policy


def test_serious_bullying_approved_makes_both_reports_due_after_the_policys_hours(
    app: Anxin, school: School, clock: Clock
) -> None:
    # given a case determined serious bullying, when the principal approves it
    cid = given_case(app, school, clock, "approved", severity="serious")
    # then a report to the police and one to the education bureau are due 24 hours on
    c = case(app, school, cid)
    assert c.outstanding_authority_reports() == ["police", "bureau"]
    assert c.authority_duty["due_at"] == clock.now + timedelta(hours=app.policy.authority_report_hours)  # type: ignore[index]
    # and when both are recorded (to whom, how, when, receipt), the case may close
    plan_both_sides(app, school, cid)
    with pytest.raises(AuthorityReportsRequired):
        app.cases.close_case(school.principal, cid, reason="结案")
    rid = app.cases.record_authority_report(
        school.safety,
        cid,
        authority="police",
        unit="城关派出所",
        method="in_person",
        reported_at=clock.now,
        receipt="受案回执-118",
    )
    app.cases.record_authority_report(
        school.safety, cid, authority="bureau", unit="县教育局", method="online", reported_at=clock.now
    )
    c = case(app, school, cid)
    (police,) = [r for r in c.authority_reports if r["id"] == rid]
    assert (police["unit"], police["method"], police["receipt"]) == ("城关派出所", "in_person", "受案回执-118")
    app.cases.close_case(school.principal, cid, reason="已报告，干预完成")
    assert case(app, school, cid).status == "closed"


def test_a_report_with_a_bad_method_is_refused_and_nothing_is_saved(app: Anxin, school: School, clock: Clock) -> None:
    cid = given_case(app, school, clock, "reported")
    before = case(app, school, cid).version
    with pytest.raises(InvalidInput) as e:
        app.cases.record_authority_report(
            school.safety, cid, authority="police", unit="派出所", method="pigeon", reported_at=clock.now
        )
    assert "报告方式" in str(e.value)
    assert case(app, school, cid).version == before


def test_a_disposition_is_recorded_for_the_bullying_student_and_refused_for_another_by_name(
    app: Anxin, school: School, clock: Clock
) -> None:
    cid = given_case(app, school, clock, "approved")
    did = app.cases.decide_disposition(
        school.safety,
        cid,
        student_id=school.student(BULLYING),
        kind="education_discipline",
        level="general",
        measure="after_class_guidance",
        decided_by="committee",
        note="每周课后教导两次",
    )
    (d,) = case(app, school, cid).dispositions
    assert (d["id"], d["kind"], d["level"], d["decided_on"]) == (did, "education_discipline", "general", clock.today)
    before = case(app, school, cid).version
    with pytest.raises(NotABullyingParty) as e:
        app.cases.decide_disposition(
            school.safety, cid, student_id=school.student(TARGETED), kind="criticism", decided_by="committee"
        )
    assert "张小明" in str(e.value)  # the targeted student, named
    assert case(app, school, cid).version == before


def test_an_application_for_the_county_review_tells_the_principal_not_the_one_who_recorded_it(
    app: Anxin, school: School, clock: Clock
) -> None:
    # given an approved determination
    cid = given_case(app, school, clock, "approved")

    def told(who: object) -> list[str]:
        app.notifications.deliver()
        return [
            i["kind"] for i in app.notifications.inbox(who) if i["stream_id"] == cid and i["kind"] == "appeal_lodged"
        ]

    assert told(school.principal) == []
    # when the safety lead records a party's application for the county review (复查)
    app.cases.apply_for_county_review(
        school.safety, cid, party_id=school.student(BULLYING), county_body="县防治学生欺凌工作办公室", grounds="不服"
    )
    # then the principal is told once (not the safety lead who recorded it, nor the teacher)
    assert told(school.principal) == ["appeal_lodged"]
    assert told(school.safety) == [] and told(school.teacher) == []


def test_the_county_review_is_due_after_the_policys_days_and_its_panel_and_outcome_recorded(
    app: Anxin, school: School, clock: Clock
) -> None:
    cid = given_case(app, school, clock, "approved")
    rid = app.cases.apply_for_county_review(
        school.safety, cid, party_id=school.student(BULLYING), county_body="县防治学生欺凌工作办公室", grounds="不服"
    )
    c = case(app, school, cid)
    assert c.status == "appealed" and c.pending_review["due_on"] == clock.today + timedelta(days=15)  # type: ignore[index]
    app.cases.record_review_panel(
        school.safety, cid, rid, members=[("school", "李老师"), ("parent", "赵家长"), ("expert", "周律师")]
    )
    new_id = app.cases.record_county_review_outcome(
        school.safety, cid, rid, outcome="changed", reason="情节较重", bullying=True, severity="serious"
    )
    c = case(app, school, cid)
    assert c.determination["id"] == new_id and c.outstanding_authority_reports() == ["police", "bureau"]  # type: ignore[index]


def test_a_party_applying_after_the_window_is_refused_by_name(app: Anxin, school: School, clock: Clock) -> None:
    cid = given_case(app, school, clock, "approved")
    clock.advance(days=app.policy.review_application_window + 1)
    with pytest.raises(ReviewApplicationWindowClosed) as e:
        app.cases.apply_for_county_review(
            school.safety, cid, party_id=school.student(BULLYING), county_body="县欺凌办", grounds="不服"
        )
    assert "王小刚" in str(e.value)
    with pytest.raises(InvalidInput):
        app.cases.apply_for_county_review(
            school.safety, cid, party_id=school.student(WITNESS), county_body="县欺凌办", grounds="不服"
        )


def test_the_window_to_apply_reads_the_new_name_and_still_the_old_one() -> None:
    assert Policy.from_toml("[policy]\nappeal_days = 20\n").review_application_window == 20
    both = Policy.from_toml("[policy]\nappeal_days = 20\nreview_application_days = 30\n")
    assert both.review_application_window == 30
    assert Policy.from_toml("[policy]\ncounty_review_days = 10\n").county_review_due(
        Policy().school_year_start(2026)
    ) == Policy().school_year_start(2026) + timedelta(days=10)
    with pytest.raises(InvalidInput):
        Policy.from_toml("[policy]\nauthority_report_hours = 0\n")
