"""Severity tiers and the public-security track (公安机关处理) through the application, on SQLite
and PostgreSQL (the `app` fixture runs both): the gate, the stored events, old streams."""

from __future__ import annotations

import pytest
from test_bullying import given_case, report_to_authorities

from domain.bullying import AuthorityReportsRequired, PoliceTrackAlreadyOpen, SeverityRetired
from domain.common import PermissionDenied


def test_opening_the_police_track_makes_both_reports_due_and_is_stored(app, school, clock):
    cid = given_case(app, school, clock, "investigating")
    app.cases.open_police_track(school.safety, cid, kind="criminal", reason="持械伤人，已报警")
    c = app.cases.get_case(school.safety, cid)
    track = c.police_track
    assert track is not None
    assert (track["kind"], track["by"], track["legacy"]) == ("criminal", school.safety.staff_id, False)
    duty = c.authority_duty
    assert duty is not None and duty["grounds"] == "police_track"
    assert duty["due_at"] == app.policy.authority_report_due(duty["known_at"])
    assert c.outstanding_authority_reports() == ["police", "bureau"]
    with pytest.raises(PoliceTrackAlreadyOpen):
        app.cases.open_police_track(school.principal, cid, kind="public_order", reason="再次移送")


def test_only_those_who_run_the_case_open_the_track(app, school, clock):
    cid = given_case(app, school, clock, "investigating")
    with pytest.raises(PermissionDenied):
        app.cases.open_police_track(school.teacher, cid, kind="criminal", reason="报警")
    assert app.cases.get_case(school.safety, cid).police_track is None


def test_a_case_with_the_police_track_closes_once_both_reports_are_recorded(app, school, clock):
    cid = given_case(app, school, clock, "ready")
    app.cases.open_police_track(school.safety, cid, kind="public_order", reason="敲诈勒索同学财物")
    with pytest.raises(AuthorityReportsRequired):
        app.cases.close_case(school.principal, cid, reason="结案")
    clock.advance(hours=2)
    report_to_authorities(app, school, cid)
    app.cases.close_case(school.principal, cid, reason="结案")
    assert app.cases.get_case(school.safety, cid).status == "closed"


def test_the_legacy_severity_is_refused_and_an_old_stream_still_loads(app, school, clock):
    cid = given_case(app, school, clock, "awaiting_determination")
    with pytest.raises(SeverityRetired):
        app.cases.determine(school.safety, cid, bullying=True, severity="suspected_offence", reason="认定")
    old = given_case(app, school, clock, "approved", severity="suspected_offence")  # written as before
    c = app.cases.get_case(school.safety, old)
    assert c.severity == "suspected_offence" and c.police_track is not None and c.police_track["legacy"]
    assert c.police_tracks == ()
    clock.advance(days=1)
    assert app.cases.get_case(school.safety, old).version == c.version  # reading wrote nothing
