"""Severity tiers of 教督〔2017〕10号 and the public-security track (公安机关处理), issue 17, on
their own: no database, no clock, no gate."""

from __future__ import annotations

import pytest
from test_bullying_domain import PRINCIPAL, SAFETY, advance, at, new_case, ready_case, refused, replay

from domain.bullying import (
    NEW_SEVERITIES,
    SEVERITIES,
    AuthorityReportsRequired,
    BullyingCase,
    CaseClosed,
    PoliceTrackAlreadyOpen,
    SeverityRetired,
    is_serious,
)
from domain.common import InvalidInput


def track_fields(when: float = 3.5, kind: str = "criminal") -> dict:
    return dict(kind=kind, reason="殴打致轻伤，已报警", authority_report_due=at(when + 1), actor=SAFETY, at=at(when))


def open_track(c: BullyingCase, when: float = 3.5, kind: str = "criminal") -> None:
    c.open_police_track(**track_fields(when, kind))


# -- the tiers ------------------------------------------------------------------------------------
def test_new_determinations_choose_among_the_three_tiers_of_the_2017_plan():
    assert NEW_SEVERITIES == ("minor", "serious", "egregious")
    assert [SEVERITIES[s] for s in NEW_SEVERITIES] == ["一般欺凌（情节轻微）", "严重欺凌", "屡教不改或者情节恶劣"]
    c = advance(new_case(), "approved", severity="egregious")
    assert c.severity == "egregious"
    # serious or worse: the reports of art. 39 are due
    assert is_serious("egregious") and is_serious("serious") and not is_serious("minor")
    assert c.authority_duty is not None and c.authority_duty["grounds"] == "serious_bullying"


def test_the_legacy_severity_is_refused_for_a_new_determination_pointing_to_the_police_track():
    c = advance(new_case(), "awaiting_determination")
    ready_case(c, SAFETY, at(2.5))
    e = refused(
        c,
        SeverityRetired,
        c.determine,
        determination_id="d1",
        bullying=True,
        severity="suspected_offence",
        reason="委员会认定",
        actor=SAFETY,
        at=at(3),
    )
    assert e.code == "severity_retired" and "公安机关处理" in str(e) and "教督〔2017〕10号" in str(e)
    refused(
        c,
        InvalidInput,
        c.determine,
        determination_id="d1",
        bullying=True,
        severity="grave",
        reason="委员会认定",
        actor=SAFETY,
        at=at(3),
    )


def test_an_old_stream_with_the_legacy_severity_loads_and_counts_as_the_police_track():
    # given a determination recorded before the tiers changed (the legacy code in the event)
    c = advance(new_case(), "approved", severity="suspected_offence")
    again = replay(c)
    # then it loads, keeps its code and label, and shows as the police track (no event written)
    assert again.severity == "suspected_offence"
    assert SEVERITIES[again.severity] == "违反治安管理或涉嫌犯罪"
    track = again.police_track
    assert track is not None and (track["kind"], track["legacy"], track["label"]) == (
        "legacy",
        True,
        "违反治安管理或涉嫌犯罪",
    )
    assert again.police_tracks == ()
    assert not any(type(e).__name__ == "PoliceTrackOpened" for e in c.collect_events())
    # and the track cannot be opened again in that cycle
    refused(again, PoliceTrackAlreadyOpen, again.open_police_track, **track_fields(when=5))


# -- the police track -----------------------------------------------------------------------------
@pytest.mark.parametrize("upto", ["investigating", "awaiting_determination", "determined", "approved"])
def test_the_police_track_opens_at_any_step_before_closure_and_makes_both_reports_due(upto):
    c = advance(new_case(), upto, severity="minor")
    open_track(c, when=4.5, kind="public_order")
    track = c.police_track
    assert track is not None
    assert (track["kind"], track["label"], track["by"], track["at"], track["legacy"]) == (
        "public_order",
        "违反治安管理",
        SAFETY,
        at(4.5),
        False,
    )
    duty = c.authority_duty
    assert duty is not None
    assert (duty["grounds"], duty["known_at"], duty["due_at"]) == ("police_track", at(4.5), at(5.5))
    assert c.outstanding_authority_reports() == ["police", "bureau"]
    assert [type(e).__name__ for e in c.pending_events[-2:]] == ["PoliceTrackOpened", "AuthorityReportsDue"]
    assert replay(c).police_track == track


def test_the_police_track_opens_once_per_cycle():
    c = advance(new_case(), "investigating")
    open_track(c, when=1.5)
    e = refused(c, PoliceTrackAlreadyOpen, c.open_police_track, **track_fields(when=2, kind="public_order"))
    assert e.code == "police_track_already_open" and "涉嫌犯罪" in str(e)


def test_the_police_track_needs_a_known_kind_and_a_reason():
    c = advance(new_case(), "investigating")
    refused(
        c,
        InvalidInput,
        c.open_police_track,
        kind="theft",
        reason="x",
        authority_report_due=at(3),
        actor=SAFETY,
        at=at(2),
    )
    refused(
        c,
        InvalidInput,
        c.open_police_track,
        kind="criminal",
        reason=" ",
        authority_report_due=at(3),
        actor=SAFETY,
        at=at(2),
    )


def test_the_police_track_is_not_opened_on_a_closed_case_and_its_reports_block_closure():
    c = advance(new_case(), "ready", severity="minor")
    open_track(c, when=4.5)
    # the reports it made due must be recorded before closing
    refused(c, AuthorityReportsRequired, c.close, reason="结案", actor=PRINCIPAL, at=at(6))
    for authority, unit in (("police", "城东派出所"), ("bureau", "区教育局")):
        c.record_authority_report(
            report_id=authority,
            authority=authority,
            unit=unit,
            method="phone",
            reported_at=at(5),
            actor=SAFETY,
            at=at(5),
        )
    c.close(reason="结案", actor=PRINCIPAL, at=at(6))
    refused(c, CaseClosed, c.open_police_track, **track_fields(when=7))
    # a recurrence is a new cycle: the track may open again
    c.reopen(reason="再次发生", investigation_due=at(20).date(), actor=SAFETY, at=at(10))
    assert c.police_track is None
    open_track(c, when=11)
    assert c.police_track is not None and c.police_track["cycle"] == 1
