"""定期报送, the periodic report, on SQLite and PostgreSQL: the counts of a constructed
history across two schools, the edges of the date range, states "at period end",
no names and no free text anywhere in what it prints (nor in its tables), the gate,
read-your-writes, erasure, rebuild equals incremental after random histories (and
agrees with the aggregates themselves), and the `anxin report` and `anxin projections
rebuild` commands as real processes."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from conftest import ADMIN, STUDENTS, Clock, School, make_school
from determination_support import appeal_legacy, ready_to_determine
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from anxin.crypto import MasterKeyFile
from anxin.service import Anxin, open_app
from domain.bullying import BullyingCase
from domain.common import DomainError, InvalidInput, PermissionDenied
from domain.pairing import Pairing
from domain.support import SupportFile
from projections import report as rp
from projections.report import periodic_report, queries, report_csv, report_html

OCT = date(2026, 10, 1), date(2026, 10, 31)
NARRATIVE = "课间在三楼走廊被推搡并被辱骂为胆小鬼"
PLACE = "三楼东侧走廊"
NOTE = "家里最近经常吵架，心情不好"
CONCERN = "提到不想上学，需要关注"
FILE_REASON = "近期情绪低落，上课常走神"
STAFF_NAMES = ["王老师", "陈老师", "刘心理", "周心理", "孙主任", "钱校长", "督导员"]


# -- a small vocabulary of commands -------------------------------------------------------
def report_case(
    app: Anxin, s: School, *, forms: tuple[str, ...] = ("physical",), no: str = "2026001", by: str = "teacher"
) -> str:
    return app.cases.report_bullying(
        getattr(s, by),
        school_id=s.id,
        channel="teacher",
        occurred_at=app.now() - timedelta(hours=1),
        place=PLACE,
        forms=list(forms),
        narrative=NARRATIVE,
        reporter_note="学生私下反映",
        parties=[{"student_id": s.student(no), "part": "targeted"}],
    )


def determine(app: Anxin, s: School, case_id: str, *, bullying: bool, severity: str | None = None) -> None:
    app.cases.start_investigation(s.safety, case_id)
    app.cases.complete_investigation(s.safety, case_id, findings="双方陈述一致，有同学作证")
    ready_to_determine(app, s.safety, case_id)
    app.cases.determine(
        s.safety, case_id, bullying=bullying, severity=severity, horseplay=not bullying, reason="治理委员会会议认定"
    )
    app.cases.approve_determination(s.principal, case_id, reason="同意委员会意见")


def open_file(app: Anxin, s: School, no: str, level: str) -> str:
    return app.support.open_support_file(
        s.counselor, s.student(no), category="情绪困扰", risk_level=level, reason=FILE_REASON
    )


def pair(app: Anxin, s: School, no: str, cadence: int = 14) -> str:
    return app.pairings.pair(s.principal, staff_id=s.teacher.staff_id, student_id=s.student(no), cadence_days=cadence)


def check_in(app: Anxin, s: School, pairing_id: str, held_on: date, concern: bool = False) -> str:
    return app.pairings.record_check_in(
        s.teacher,
        pairing_id,
        held_on=held_on,
        notes={"family": NOTE},
        concern=concern,
        concern_note=CONCERN if concern else "",
    )


def report_for(app: Anxin, actor: Any, period: tuple[date, date] = OCT, **kw: Any) -> rp.Report:
    return periodic_report(app, actor, date_from=period[0], date_to=period[1], **kw)


def nonzero(row: rp.SchoolReport) -> dict[str, int]:
    return {k: v for k, v in row.counts.items() if v}


def dump(app: Anxin) -> dict[str, list[tuple[Any, ...]]]:
    with app.views.engine.connect() as conn:
        return {t.name: [tuple(r) for r in conn.execute(select(t).order_by(*t.primary_key.columns))] for t in rp.TABLES}


# -- counts of a constructed history ------------------------------------------------------
@dataclass
class TwoSchools:
    a: School
    b: School
    gad_level: str  # the level a flagged GAD-7 result opens a file at


@pytest.fixture
def history(app: Anxin, school: School, clock: Clock) -> TwoSchools:
    """October 2026 in two schools (the clock starts on 12 October)."""
    a, b = school, make_school(app, "第二中学")
    # 12 October, school A: three cases, two files, a screening pair, a pairing.
    c1 = report_case(app, a, forms=("physical", "verbal"))
    report_case(app, a, forms=("online",), no="2026003")  # left alone: overdue after 22 October
    c3 = report_case(app, a, forms=("verbal",), no="2026002")
    determine(app, a, c1, bullying=True, severity="serious")  # intervening; follow-up due 11 November
    determine(app, a, c3, bullying=False)  # horseplay: concluded...
    app.cases.close_case(a.principal, c3, reason="打闹嬉戏，已批评教育")  # ...and closed the same day
    open_file(app, a, "2026002", "key")
    f2 = open_file(app, a, "2026004", "general")
    app.screenings.record_screening(
        a.counselor, a.student("2026003"), instrument="PHQ-9", screened_on=clock.today, answers=[0] * 9
    )
    app.screenings.record_screening(
        a.counselor, a.student("2026003"), instrument="GAD-7", screened_on=clock.today, answers=[2] * 7
    )  # moderate: flagged, opens a file
    p1 = pair(app, a, "2026001")
    check_in(app, a, p1, clock.today)
    # 12 October, school B: a case left alone and a weekly pairing never checked in on.
    report_case(app, b, forms=("property",))
    app.pairings.pair(b.principal, staff_id=b.teacher.staff_id, student_id=b.student("2026001"), cadence_days=7)
    # 20 October: a file closed, a second check-in.
    clock.advance(days=8)
    app.support.close_support_file(a.counselor, f2, "风险解除")
    check_in(app, a, p1, clock.today)
    clock.advance(days=16)  # 5 November: the period is over
    gad = app.screenings.instruments["GAD-7"].score([2] * 7)
    assert gad.flagged and gad.risk_level
    return TwoSchools(a, b, gad.risk_level)


def test_the_report_counts_each_school_and_sums_the_district(app: Anxin, history: TwoSchools) -> None:
    # when the supervisor asks for October
    r = report_for(app, history.a.supervisor)
    # then the period end is 31 October, and each school has its own counts
    assert (r.scope, r.as_of, [s.school for s in r.schools]) == (
        "district",
        date(2026, 10, 31),
        ["第一中学", "第二中学"],
    )
    level = history.gad_level
    files_end = {"files_end_key": 1}
    files_end[f"files_end_{level}"] = files_end.get(f"files_end_{level}", 0) + 1
    opened = {"files_opened_key": 1, "files_opened_general": 1}
    opened[f"files_opened_{level}"] = opened.get(f"files_opened_{level}", 0) + 1
    assert nonzero(r.school(history.a.id)) == {
        "cases_reported": 3,
        "cases_form_physical": 1,
        "cases_form_verbal": 2,
        "cases_form_online": 1,
        "determinations": 2,
        "determinations_serious": 1,
        "determinations_not_bullying": 1,
        "cases_closed": 1,
        "cases_open_end": 2,
        "cases_end_intervening": 1,
        "cases_end_reported": 1,
        "cases_end_closed": 1,
        "files_opened": 3,
        **opened,
        "files_closed": 1,
        "files_closed_general": 1,
        "files_open_end": 2,
        **files_end,
        "screenings": 2,
        "students_screened": 1,
        "screenings_flagged": 1,
        "screenings_phq_9": 1,
        "screenings_gad_7": 1,
        "screenings_flagged_gad_7": 1,
        # 12-31 October is 20 days of a fortnightly pairing: one check-in due, two done,
        # the next due on 3 November.
        "pairings_active_end": 1,
        "check_ins_due": 1,
        "check_ins_done": 2,
        # the serious case owes its reports to the police and the bureau (due the next day)
        "authority_reports_pending_end": 2,
        "authority_reports_overdue_end": 2,
        "overdue_end": 3,
        "investigations_overdue_end": 1,
    }
    assert nonzero(r.school(history.b.id)) == {
        "cases_reported": 1,
        "cases_form_property": 1,
        "cases_open_end": 1,
        "cases_end_reported": 1,
        # a weekly pairing: two due in 20 days, none done, overdue since 20 October
        "pairings_active_end": 1,
        "check_ins_due": 2,
        "check_ins_overdue_end": 1,
        "overdue_end": 2,
        "investigations_overdue_end": 1,
    }
    # and the district total is their sum, metric by metric
    assert r.total.school == "全区合计"
    for m in r.metrics:
        assert r.total[m.id] == r.school(history.a.id)[m.id] + r.school(history.b.id)[m.id], m.id


def test_states_at_period_end_are_those_of_that_day_not_of_today(app: Anxin, school: School, clock: Clock) -> None:
    # given a case reported on Monday 12 October (to be started by the 13th), investigated from
    # 15 October (due ten days later, on the 25th), closed on 27 October
    case_id = report_case(app, school)
    clock.advance(days=3)
    app.cases.start_investigation(school.safety, case_id)
    clock.advance(days=12)
    app.cases.complete_investigation(school.safety, case_id, findings="查明属实")
    ready_to_determine(app, school.safety, case_id)
    app.cases.determine(school.safety, case_id, bullying=False, horseplay=True, reason="委员会认定")
    app.cases.approve_determination(school.principal, case_id, reason="同意")
    app.cases.close_case(school.principal, case_id, reason="已教育")
    clock.advance(days=30)

    def at_end(day: int) -> dict[str, int]:
        r = report_for(app, school.principal, (date(2026, 10, 1), date(2026, 10, day)))
        return {k: v for k, v in nonzero(r.total).items() if k.startswith(("cases_end", "investigations"))}

    # then each period end sees the state of its own day
    assert at_end(11) == {}
    assert at_end(12) == {"cases_end_reported": 1}
    assert at_end(13) == {"cases_end_reported": 1}
    # not started on the 14th: late (an investigation overdue counts one not started in time)
    assert at_end(14) == {"cases_end_reported": 1, "investigations_overdue_end": 1}
    assert at_end(15) == {"cases_end_investigating": 1}
    # the investigation was due on 25 October: overdue on the 26th, until completed on the 27th
    assert at_end(25) == {"cases_end_investigating": 1}
    assert at_end(26) == {"cases_end_investigating": 1, "investigations_overdue_end": 1}
    assert at_end(27) == {"cases_end_closed": 1}


def test_both_ends_of_the_date_range_are_included_and_nothing_beyond(app: Anxin, school: School, clock: Clock) -> None:
    # given on 12 October a case, a file and a check-in, and on 13 October a closure
    case_id = report_case(app, school)
    file_id = open_file(app, school, "2026002", "high")
    p = pair(app, school, "2026001")
    check_in(app, school, p, clock.today)
    clock.advance(days=1)
    app.support.close_support_file(school.counselor, file_id, "风险解除")
    determine(app, school, case_id, bullying=False)
    clock.advance(days=30)

    def period(first: int, last: int) -> dict[str, int]:
        r = report_for(app, school.principal, (date(2026, 10, first), date(2026, 10, last)))
        keep = ("cases_reported", "files_opened", "files_closed", "check_ins_done", "determinations")
        return {k: r.total[k] for k in keep}

    # then a period counts what happened on its first and on its last day
    assert period(12, 12) == {
        "cases_reported": 1,
        "files_opened": 1,
        "files_closed": 0,
        "check_ins_done": 1,
        "determinations": 0,
    }
    assert period(1, 12) == period(12, 12)
    assert period(13, 31) == {
        "cases_reported": 0,
        "files_opened": 0,
        "files_closed": 1,
        "check_ins_done": 0,
        "determinations": 1,
    }
    assert period(13, 13) == period(13, 31)
    assert period(1, 11) == dict.fromkeys(period(1, 11), 0)
    assert period(14, 31) == dict.fromkeys(period(1, 11), 0)
    # and a period that ends before it starts is refused
    with pytest.raises(InvalidInput):
        report_for(app, school.principal, (date(2026, 10, 13), date(2026, 10, 12)))


def test_a_period_not_yet_over_is_taken_up_to_today(app: Anxin, school: School, clock: Clock) -> None:
    # given a fortnightly pairing made on 12 October, and today is 2 November
    pair(app, school, "2026001")
    clock.advance(days=21)
    # when the report for the whole of November and October is asked for
    r = report_for(app, school.principal, (date(2026, 10, 1), date(2026, 11, 30)))
    # then "at period end" means today, and only check-ins due by today are due
    assert r.as_of == date(2026, 11, 2)
    assert (r.total["check_ins_due"], r.total["check_ins_overdue_end"]) == (1, 1)


def test_a_changed_cadence_and_an_ended_pairing_count_only_their_own_days(
    app: Anxin, school: School, clock: Clock
) -> None:
    # given a pairing made on 1 October, weekly from 15 October, ended on 29 October
    clock.now = datetime(2026, 10, 1, 9, tzinfo=UTC)
    p = pair(app, school, "2026001", cadence=14)
    clock.now = datetime(2026, 10, 15, 9, tzinfo=UTC)
    with app.editing(p, Pairing) as pairing:  # no application command changes a cadence yet
        pairing.change_cadence(cadence_days=7, reason="重点关注", actor=school.principal.staff_id, at=app.now())
    clock.now = datetime(2026, 10, 29, 9, tzinfo=UTC)
    app.pairings.end_pairing(school.teacher, p, "学生转学")
    clock.advance(days=10)
    r = report_for(app, school.principal)
    # then 14 days at 14 and 14 days at 7 make three due; it is no longer active on 31 October
    assert (r.total["check_ins_due"], r.total["pairings_active_end"], r.total["check_ins_overdue_end"]) == (3, 0, 0)
    # and on 28 October it was active, and overdue (nothing since 1 October)
    r = report_for(app, school.principal, (date(2026, 10, 1), date(2026, 10, 28)))
    assert (r.total["pairings_active_end"], r.total["check_ins_overdue_end"]) == (1, 1)


def test_appeals_count_and_a_changed_determination_counts_as_one(app: Anxin, school: School, clock: Clock) -> None:
    # given two cases determined minor bullying on 12 October and appealed
    changed, reopened = report_case(app, school), report_case(app, school, no="2026002")
    for c in (changed, reopened):
        determine(app, school, c, bullying=True, severity="minor")
        appeal_legacy(
            app,
            school.safety,
            c,
            party_id=app.cases.get_case(school.principal, c).parties[0]["student_id"],
            grounds="认为处理过轻",
        )
    assert report_for(app, school.principal, (clock.today, clock.today)).total["cases_end_appealed"] == 2
    # when on 14 October one is changed to serious and the other reopened for investigation
    clock.advance(days=2)
    app.cases.record_appeal_outcome(
        school.safety,
        changed,
        app.cases.get_case(school.principal, changed).pending_appeal_id,
        outcome="changed",
        reason="复查认为情节较重",
        bullying=True,
        severity="serious",
    )
    app.cases.record_appeal_outcome(
        school.safety,
        reopened,
        app.cases.get_case(school.principal, reopened).pending_appeal_id,
        outcome="reopened",
        reason="事实不清",
    )
    clock.advance(days=30)
    r = report_for(app, school.principal)
    # then both appeals and three determinations count, and the reopened investigation was
    # due ten days after the review (24 October), so it is overdue at the end of October
    assert {
        k: r.total[k]
        for k in (
            "appeals_lodged",
            "determinations",
            "determinations_minor",
            "determinations_serious",
            "cases_end_intervening",
            "cases_end_investigating",
            "investigations_overdue_end",
        )
    } == {
        "appeals_lodged": 2,
        "determinations": 3,
        "determinations_minor": 2,
        "determinations_serious": 1,
        "cases_end_intervening": 1,
        "cases_end_investigating": 1,
        "investigations_overdue_end": 1,
    }


def test_reports_to_the_authorities_reviews_and_dispositions_are_counted_made_owed_and_by_kind(
    app: Anxin, school: School, clock: Clock
) -> None:
    # given two cases of serious bullying approved on 12 October, each with a bullying student
    cases = []
    for target, bully in (("2026001", "2026002"), ("2026003", "2026004")):
        cid = app.cases.report_bullying(
            school.teacher,
            school_id=school.id,
            channel="teacher",
            occurred_at=app.now() - timedelta(hours=1),
            place=PLACE,
            forms=["physical"],
            narrative=NARRATIVE,
            parties=[
                {"student_id": school.student(target), "part": "targeted"},
                {"student_id": school.student(bully), "part": "bullying"},
            ],
        )
        determine(app, school, cid, bullying=True, severity="serious")
        cases.append((cid, school.student(bully)))
    (full, bully_full), (half, bully_half) = cases
    # when the first is reported to both the police and the bureau, the second to the police only
    for cid, authorities in ((full, ("police", "bureau")), (half, ("police",))):
        for authority in authorities:
            app.cases.record_authority_report(
                school.safety,
                cid,
                authority=authority,
                unit="城关派出所或县教育局",
                method="phone",
                reported_at=app.now(),
            )
    # and the bullying students get their dispositions: two kinds for one, one for the other
    app.cases.decide_disposition(school.safety, full, student_id=bully_full, kind="criticism", decided_by="committee")
    app.cases.decide_disposition(
        school.safety,
        full,
        student_id=bully_full,
        kind="disciplinary_sanction",
        level="warning",
        decided_by="principal",
    )
    app.cases.decide_disposition(school.safety, half, student_id=bully_half, kind="criticism", decided_by="school")
    # and on 13 October both families apply for the county review; the first is changed on 20 October
    clock.advance(days=1)
    reviews = {
        cid: app.cases.apply_for_county_review(
            school.safety, cid, party_id=bully, county_body="县防治学生欺凌工作办公室", grounds="不服"
        )
        for cid, bully in cases
    }
    clock.advance(days=7)
    app.cases.record_review_panel(
        school.safety, full, reviews[full], members=[("school", "甲"), ("parent", "乙"), ("expert", "丙")]
    )
    app.cases.record_county_review_outcome(
        school.safety, full, reviews[full], outcome="changed", reason="情节较轻", bullying=True, severity="minor"
    )
    clock.advance(days=30)
    r = report_for(app, school.principal)
    # then the period counts each report made by authority, the one still owed (and overdue, it
    # was due on 13 October), the dispositions by kind, the reviews applied and decided by
    # outcome, and the one pending past its 15 days (due 28 October)
    kept = ("authority_reports", "dispositions", "county_reviews")
    counted = {m.id: r.total[m.id] for m in r.metrics if m.id.startswith(kept)}
    assert {k: v for k, v in counted.items() if v} == {
        "authority_reports": 3,
        "authority_reports_police": 2,
        "authority_reports_bureau": 1,
        "authority_reports_pending_end": 1,
        "authority_reports_overdue_end": 1,
        "dispositions": 3,
        "dispositions_criticism": 2,
        "dispositions_disciplinary_sanction": 1,
        "county_reviews_applied": 2,
        "county_reviews_decided": 1,
        "county_reviews_decided_changed": 1,
        "county_reviews_pending_end": 1,
        "county_reviews_overdue_end": 1,
    }


# -- no names, no free text -----------------------------------------------------------------
def test_nothing_printed_or_stored_holds_a_name_or_a_text(app: Anxin, history: TwoSchools, clock: Clock) -> None:
    # given the history, and a concern and a crisis in school A as well
    a = history.a
    p = pair(app, a, "2026002")
    check_in(app, a, p, clock.today, concern=True)
    file_id = app.db.fetchone(
        "SELECT stream_id FROM {t}anxin_directory WHERE kind = 'file' AND subject_id = ? AND status = 'open'",
        (a.student("2026002"),),
    )[0]
    app.support.record_crisis_intervention(
        a.counselor, file_id, occurred_on=clock.today, what_happened="在天台徘徊", actions_taken="陪同并联系家长"
    )
    texts = [
        NARRATIVE,
        PLACE,
        NOTE,
        CONCERN,
        FILE_REASON,
        "在天台徘徊",
        "陪同并联系家长",
        "学生私下反映",
        "双方陈述一致",
        "治理委员会会议认定",
        "风险解除",
        "打闹嬉戏，已批评教育",
        "情绪困扰",
    ]
    names = [n for _, n, _, _ in STUDENTS] + [n[0] + "家长" for _, n, _, _ in STUDENTS] + STAFF_NAMES
    # when the report is printed, for the district and for one school
    outputs = []
    for kw in ({}, {"school_id": a.id}):
        r = report_for(app, a.supervisor, (date(2026, 10, 1), date(2026, 11, 30)), **kw)
        outputs += [report_csv(r), report_html(r)]
    stored = json.dumps(dump(app), default=str, ensure_ascii=False)
    # then none of the names or texts of the history is in it, nor in the view's tables
    for out in [*outputs, stored]:
        for s in texts + names:
            assert s not in out
    # while the counts are there
    assert "定期报送" in outputs[1] and "第一中学" in outputs[1]


def test_it_prints_as_csv_with_stable_ids_and_as_html_on_a4_with_a_page_per_school(
    app: Anxin, history: TwoSchools
) -> None:
    r = report_for(app, history.a.supervisor)
    # the CSV: English ids, then Chinese labels, then a row per school and the total
    ids, labels, *body = list(csv.reader(io.StringIO(report_csv(r))))
    assert ids[:7] == ["row_type", "school_id", "school", "district", "date_from", "date_to", "as_of"]
    assert ids[7:] == [m.id for m in r.metrics] and labels[7:] == [m.label for m in r.metrics]
    assert all(i.isascii() and i == i.lower() for i in ids)
    assert [(b[0], b[2]) for b in body] == [("school", "第一中学"), ("school", "第二中学"), ("total", "全区合计")]
    col = ids.index("cases_reported")
    assert [int(b[col]) for b in body] == [3, 1, 4]
    # the HTML: titled with the period, bordered tables, A4, and the total and each
    # school on a page of their own
    html = report_html(r)
    assert "<title>定期报送 2026-10-01 至 2026-10-31</title>" in html
    assert "@page { size: A4" in html and "@media print" in html and "border: 0.75pt solid" in html
    assert "生成时间：2026-11-05 09:00" in html
    assert html.count('<section class="page">') == 3


# -- the gate -------------------------------------------------------------------------------
def decisions(app: Anxin, actor_id: str) -> list[tuple[str, str, int]]:
    return [
        (r[0], r[1], int(r[2]))
        for r in app.db.fetch(
            "SELECT action, resource_kind, allowed FROM {t}anxin_access WHERE actor_id = ? AND action = 'stats.read' "
            "ORDER BY id",
            (actor_id,),
        )
    ]


@pytest.fixture
def second(app: Anxin, school: School) -> School:
    return make_school(app, "第二中学")


def test_a_principal_sees_their_own_school_only(app: Anxin, school: School, second: School) -> None:
    a, b = school, second
    # a principal's report is their school's, asked for or not
    mine = report_for(app, a.principal)
    assert (mine.scope, [s.school_id for s in mine.schools]) == ("school", [a.id])
    assert report_for(app, a.principal, school_id=a.id).total.counts == mine.total.counts
    # and another school is refused, and the refusal recorded
    with pytest.raises(PermissionDenied):
        report_for(app, a.principal, school_id=b.id)
    assert decisions(app, a.principal.staff_id) == [("stats.read", "school", 1)] * 2 + [("stats.read", "school", 0)]


def test_a_supervisor_sees_the_district_or_one_school_of_it_but_not_another_district(
    app: Anxin, school: School, second: School
) -> None:
    north = make_school(app, "北区中学", district="north")
    sup = school.supervisor
    assert [s.school_id for s in report_for(app, sup).schools] == [school.id, second.id]
    one = report_for(app, sup, school_id=second.id)
    assert ([s.school_id for s in one.schools], one.total.school) == ([second.id], "合计")
    with pytest.raises(PermissionDenied):
        report_for(app, sup, school_id=north.id)
    # the other district's supervisor sees their own district only
    assert [s.school for s in report_for(app, north.supervisor).schools] == ["北区中学"]
    assert decisions(app, sup.staff_id) == [
        ("stats.read", "district", 1),
        ("stats.read", "school", 1),
        ("stats.read", "school", 0),
    ]


@pytest.mark.parametrize("who", ["teacher", "admin"])
def test_a_class_teacher_and_the_administrator_are_refused(app: Anxin, school: School, who: str) -> None:
    actor = getattr(school, who)
    with pytest.raises(PermissionDenied):
        report_for(app, actor)
    with pytest.raises(PermissionDenied):
        report_for(app, actor, school_id=school.id)
    assert [d[2] for d in decisions(app, actor.staff_id)] == [0, 0]


def test_each_report_made_is_in_the_audit_trail_with_ids_only(app: Anxin, school: School, second: School) -> None:
    report_for(app, school.supervisor)
    report_for(app, school.principal)
    with contextlib.suppress(PermissionDenied):
        report_for(app, school.teacher)
    rows = app.db.fetch("SELECT actor_id, subject, detail FROM {t}anxin_audit WHERE kind = 'report' ORDER BY seq")
    assert [(r[0], r[1], json.loads(r[2])) for r in rows] == [
        (school.supervisor.staff_id, "district:default", {"from": "2026-10-01", "to": "2026-10-31", "schools": 2}),
        (school.principal.staff_id, school.id, {"from": "2026-10-01", "to": "2026-10-31", "schools": 1}),
    ]


# -- read your writes, erasure ---------------------------------------------------------------
def test_a_command_is_in_the_view_as_soon_as_it_returns(app: Anxin, school: School, clock: Clock) -> None:
    case_id = report_case(app, school)
    # no catch-up asked for: the command itself brought the view up to date
    with app.views.engine.connect() as conn:
        row = conn.execute(select(rp.case_spans.c.status).where(rp.case_spans.c.case_id == case_id)).all()
    assert row == [("reported",)]
    p = pair(app, school, "2026001")
    check_in(app, school, p, clock.today)
    with app.views.engine.connect() as conn:
        assert conn.execute(select(rp.check_ins.c.pairing_id)).all() == [(p,)]
    r = report_for(app, school.principal, (clock.today, clock.today))
    assert (r.total["cases_reported"], r.total["check_ins_done"]) == (1, 1)


def test_a_shredded_case_leaves_the_report_and_a_rebuild_agrees(app: Anxin, history: TwoSchools) -> None:
    a = history.a
    before = report_for(app, a.supervisor).school(a.id)
    case_id = app.db.fetchone(
        "SELECT stream_id FROM {t}anxin_directory WHERE kind = 'case' AND school_id = ? AND status = 'closed'", (a.id,)
    )[0]
    # when the closed case is shredded
    app.erasure.shred(ADMIN, case_id, "保存期限届满")
    # then the report no longer counts it (its events can no longer be read), and nothing breaks
    after = report_for(app, a.supervisor).school(a.id)
    changed = {k: (before[k], after[k]) for k in before.counts if before[k] != after[k]}
    assert changed == {
        "cases_reported": (3, 2),
        "cases_form_verbal": (2, 1),
        "determinations": (2, 1),
        "determinations_not_bullying": (1, 0),
        "cases_closed": (1, 0),
        "cases_end_closed": (1, 0),
    }
    rows = dump(app)
    app.views.rebuild([rp.VIEW_NAME])
    assert dump(app) == rows


# -- the count cache ----------------------------------------------------------------------------
def test_counts_are_kept_at_once_until_a_shred_is_seen_then_not_for_a_while(
    app: Anxin, history: TwoSchools, monkeypatch: pytest.MonkeyPatch
) -> None:
    a = history.a
    now = [1000.0]
    monkeypatch.setattr(queries.time, "monotonic", lambda: now[0])
    app.__dict__.pop("_report_counts", None)

    def kept() -> int:
        return len(app.__dict__["_report_counts"]["cache"])

    # with no key ever shredded, the first report's counts are kept at once, and served
    first = report_for(app, a.supervisor)
    assert kept() == 1
    assert report_for(app, a.supervisor).total.counts == first.total.counts
    # when a case is shredded (its key nulled, then its rows deleted)
    case_id = app.db.fetchone(
        "SELECT stream_id FROM {t}anxin_directory WHERE kind = 'case' AND school_id = ? AND status = 'closed'", (a.id,)
    )[0]
    app.erasure.shred(ADMIN, case_id, "保存期限届满")
    # then the next report sees the shred: counts afresh, and keeps nothing while it settles
    after = report_for(app, a.supervisor)
    assert after.total["cases_reported"] == first.total["cases_reported"] - 1
    assert kept() == 0
    now[0] += queries._SHRED_SETTLE_SECONDS / 2
    assert report_for(app, a.supervisor).total.counts == after.total.counts
    assert kept() == 0
    # and once settled, keeps again
    now[0] += queries._SHRED_SETTLE_SECONDS
    assert report_for(app, a.supervisor).total.counts == after.total.counts
    assert kept() == 1
    # a cache started when keys have been shredded settles first (the last shred may be half done)
    app.__dict__.pop("_report_counts", None)
    report_for(app, a.supervisor)
    assert kept() == 0
    now[0] += queries._SHRED_SETTLE_SECONDS
    report_for(app, a.supervisor)
    assert kept() == 1


# -- rebuild equals incremental, after random histories ----------------------------------------
@dataclass
class World:
    """A school and the streams a random history made in it."""

    app: Anxin
    s: School
    clock: Clock
    cases: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    pairings: list[str] = field(default_factory=list)

    def pick(self, items: list[str], i: int) -> str:
        if not items:
            raise InvalidInput(reason="nothing yet")
        return items[i % len(items)]

    def student(self, i: int) -> str:
        return STUDENTS[i % len(STUDENTS)][0]

    def do(self, op: str, i: int, n: int) -> None:
        app, s = self.app, self.s
        # A step on a kind of stream not made yet makes one instead.
        op = (
            {"case": "report", "file": "open_file", "pairing": "pair"}.get(op, op)
            if not {"case": self.cases, "file": self.files, "pairing": self.pairings}.get(op, True)
            else op
        )
        if op == "advance":
            self.clock.advance(days=n % 9 + 1)
        elif op == "report":
            forms = ("physical", "verbal", "online", "property")
            chosen = (forms[n % 4], forms[(n + 1 + i) % 4]) if i % 2 else (forms[n % 4],)
            self.cases.append(report_case(app, s, forms=tuple(dict.fromkeys(chosen)), no=self.student(i)))
        elif op == "case":
            self.case_step(self.pick(self.cases, i), n)
        elif op == "open_file":
            self.files.append(open_file(app, s, self.student(i), ("general", "key", "high")[n % 3]))
        elif op == "file":
            self.file_step(self.pick(self.files, i), n)
        elif op == "screen":
            inst, items = (("PHQ-9", 9), ("GAD-7", 7))[i % 2]
            app.screenings.record_screening(
                s.counselor,
                s.student(self.student(n)),
                instrument=inst,
                screened_on=app.now().date(),
                answers=[(n + k) % 3 for k in range(items)],
            )
        elif op == "pair":
            self.pairings.append(pair(app, s, self.student(i), cadence=(7, 14, 30)[n % 3]))
        elif op == "pairing":
            self.pairing_step(self.pick(self.pairings, i), n)
        elif op == "shred" and n % 4 == 0:
            kind = [self.cases, self.files, self.pairings][n % 3]
            app.erasure.shred(ADMIN, self.pick(kind, i), "保存期限届满")

    def case_step(self, c: str, n: int) -> None:
        """Move a case on from where it is, down one of the branches its status allows."""
        app, s = self.app, self.s
        case = app.cases.get_case(s.principal, c)
        status, severity = case.status, ("minor", "serious", "egregious")[n % 3]
        if status in ("reported", "reopened"):
            app.cases.start_investigation(s.safety, c)
        elif status == "investigating":
            app.cases.complete_investigation(s.safety, c, findings="查明")
        elif status == "awaiting_determination":
            bullying = n % 4 != 0
            ready_to_determine(app, s.safety, c)
            app.cases.determine(
                s.safety,
                c,
                bullying=bullying,
                severity=severity if bullying else None,
                horseplay=not bullying,
                reason="认定",
            )
        elif status == "determined":
            if n % 4 == 0:
                app.cases.return_determination(s.principal, c, reason="退回重议")
            else:
                app.cases.approve_determination(s.principal, c, reason="同意")
        elif status == "appealed" and case.pending_review is not None:
            outcome = ("upheld", "changed", "sent_back")[n % 3]
            kw = {"bullying": case.severity is None, "severity": severity} if outcome == "changed" else {}
            if kw and not kw["bullying"]:
                kw["severity"] = None
            app.cases.record_county_review_outcome(
                s.safety, c, case.pending_review_id or "", outcome=outcome, reason="复查", **kw
            )
        elif status == "appealed":
            outcome = ("upheld", "changed", "reopened")[n % 3]
            kw: dict[str, Any] = (
                {"bullying": case.severity is None, "severity": severity} if outcome == "changed" else {}
            )
            if kw and not kw["bullying"]:
                kw["severity"] = None
            app.cases.record_appeal_outcome(
                s.safety, c, case.pending_appeal_id or "", outcome=outcome, reason="复查", **kw
            )
        elif status == "closed":
            app.cases.reopen_case(s.safety, c, reason="再次发生")
        elif n % 5 == 0 and n % 2:
            appeal_legacy(app, s.safety, c, party_id=case.parties[0]["student_id"], grounds="不服")
        elif n % 5 == 0:
            review = app.cases.apply_for_county_review(
                s.safety, c, party_id=case.parties[0]["student_id"], county_body="区欺凌办", grounds="不服"
            )
            if n % 3:
                app.cases.record_review_panel(
                    s.safety, c, review, members=[("school", "甲"), ("parent", "乙"), ("expert", "丙")]
                )
        elif n % 5 == 1:
            app.cases.record_follow_up(s.safety, c, notes="回访")
        else:
            if case.severity == "suspected_offence" and not case.mandatory_reports_this_cycle:
                app.cases.record_mandatory_report(s.safety, c, agency="派出所", reported_at=app.now())
            # the reports to the authorities owed: sometimes only the first (the close is refused)
            for authority in case.outstanding_authority_reports()[: 2 if n % 3 else 1]:
                app.cases.record_authority_report(
                    s.safety, c, authority=authority, unit="派出所或教育局", method="phone", reported_at=app.now()
                )
            if n % 4 == 2:
                bully = next((p["student_id"] for p in case.parties if p["part"] == "bullying"), None)
                if bully and case.severity:
                    app.cases.decide_disposition(s.safety, c, student_id=bully, kind="criticism", decided_by="school")
            for sid in case.missing_interventions().get("targeted", []):
                app.cases.plan_intervention(
                    s.safety,
                    c,
                    student_id=sid,
                    kind="counselling",
                    plan="辅导",
                    responsible_staff_id=s.counselor.staff_id,
                )
            app.cases.close_case(s.principal, c, reason="结案")

    def file_step(self, f: str, n: int) -> None:
        app, s = self.app, self.s
        level = ("general", "key", "high")[n % 3]
        step = n % 6
        if step == 0:
            try:
                app.support.raise_risk_level(s.counselor, f, level, "加重")
            except DomainError:
                app.support.lower_risk_level(s.counselor, f, level, "好转")
        elif step == 1:
            app.support.record_review(s.counselor, f, reviewed_on=app.now().date(), notes="复评", outcome="continue")
        elif step == 2:
            app.support.record_crisis_intervention(
                s.counselor, f, occurred_on=app.now().date(), what_happened="危机", actions_taken="干预"
            )
        elif step in (3, 4):
            app.support.close_support_file(s.counselor, f, "好转")
        else:
            app.support.reopen_support_file(s.counselor, f, "反复")

    def pairing_step(self, p: str, n: int) -> None:
        app, s = self.app, self.s
        if n % 5 < 3:
            paired = app.pairings.get_pairing(s.principal, p).paired_on
            check_in(app, s, p, max(paired, app.now().date() - timedelta(days=n % 6)))
        elif n % 5 == 3:
            with app.editing(p, Pairing) as pairing:  # no application command changes a cadence yet
                pairing.change_cadence(
                    cadence_days=(7, 14, 30)[n % 3], reason="调整", actor=s.principal.staff_id, at=app.now()
                )
        else:
            app.pairings.end_pairing(s.teacher, p, "结束")

    def check_against_the_aggregates(self) -> None:
        """The report's figures for today are the aggregates' own answers."""
        app, s, today = self.app, self.s, self.clock.today
        r = report_for(app, s.principal, (today, today))
        expected: dict[str, int] = {}

        def add(key: str, n: int = 1) -> None:
            expected[key] = expected.get(key, 0) + n

        def live(kind: str) -> list[str]:  # screenings open files too: every stream of the school
            return [
                row[0]
                for row in app.db.fetch(
                    "SELECT stream_id FROM {t}anxin_directory WHERE school_id = ? AND kind = ? AND erased = 0",
                    (s.id, kind),
                )
            ]

        for sid in live("case"):
            c = app.load(sid, BullyingCase)
            add(f"cases_end_{c.status}")
            # not started, or not completed, in time (issue 17: the clock starts at the start)
            add("investigations_overdue_end", c.investigation_overdue(today) or c.intake_overdue(today))
            add("follow_ups_overdue_end", c.follow_up_overdue(today))
            duty, owed = c.authority_duty, c.outstanding_authority_reports()
            add("authority_reports_pending_end", len(owed))
            add("authority_reports_overdue_end", len(owed) if duty and duty["due_at"].date() < today else 0)
            add("county_reviews_pending_end", c.pending_review is not None)
            add("county_reviews_overdue_end", c.county_review_overdue(today))
        for sid in live("file"):
            f = app.load(sid, SupportFile)
            if f.is_open:
                add(f"files_end_{f.risk_level}")
                add("reviews_overdue_end", f.review_overdue(today))
        for sid in live("pairing"):
            p = app.load(sid, Pairing)
            if p.active:
                add("pairings_active_end")
                add("check_ins_overdue_end", p.is_overdue(today))
        at_end = (
            "cases_end_",
            "files_end_",
            "pairings_active_end",
            "investigations_overdue_end",
            "follow_ups_overdue_end",
            "reviews_overdue_end",
            "check_ins_overdue_end",
            "authority_reports_pending_end",
            "authority_reports_overdue_end",
            "county_reviews_pending_end",
            "county_reviews_overdue_end",
        )
        got = {k: v for k, v in r.total.counts.items() if v and k.startswith(at_end)}
        assert got == {k: v for k, v in expected.items() if v}


# Weighted so that cases get far enough along to be closed, appealed and reopened.
OPS = [
    "advance",
    "report",
    *["case"] * 10,
    "open_file",
    "file",
    "file",
    "file",
    "screen",
    "pair",
    "pairing",
    "pairing",
    "pairing",
    "advance",
    "shred",
]
STEPS = st.lists(st.tuples(st.sampled_from(OPS), st.integers(0, 3), st.integers(0, 30)), min_size=10, max_size=50)


@settings(
    max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(steps=STEPS)
def test_rebuilding_gives_the_rows_built_one_command_at_a_time(
    app: Anxin, clock: Clock, steps: list[tuple[str, int, int]]
) -> None:
    # given a new school and a random history in it (refused commands change nothing)
    world = World(app, make_school(app, f"学校{uuid4().hex[:8]}"), clock)
    for op, i, n in steps:
        with contextlib.suppress(DomainError):
            world.do(op, i, n)
    # then the view agrees with the aggregates, as of today
    world.check_against_the_aggregates()
    # and dropping and refolding it from the streams gives the same rows
    incremental = dump(app)
    app.views.rebuild([rp.VIEW_NAME])
    assert dump(app) == incremental


# -- the command line (real processes, SQLite) -------------------------------------------------
@dataclass
class Store:
    data_dir: Path
    env: dict[str, str]
    a: School
    b: School

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        r = subprocess.run(
            [sys.executable, "-m", "anxin.cli", *args, "--data-dir", str(self.data_dir)],
            cwd=self.data_dir.parent,
            env=self.env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert "Traceback" not in r.stderr, r.stderr
        return r

    def username(self, actor: Any) -> str:
        return str(
            open_sql(self.data_dir, "SELECT username FROM anxin_staff WHERE staff_id = ?", (actor.staff_id,))[0][0]
        )


def open_sql(data_dir: Path, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with contextlib.closing(sqlite3.connect(data_dir / "anxin.db")) as conn:
        return list(conn.execute(query, params).fetchall())


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Store]:
    for name in [k for k in os.environ if k.startswith("ANXIN_")]:
        monkeypatch.delenv(name)
    data_dir = tmp_path / "var"
    data_dir.mkdir()
    MasterKeyFile(data_dir / "master.key").create()  # as `anxin init` does (tested in test_cli)
    app = open_app(data_dir=data_dir)  # the real clock: today
    try:
        a, b = make_school(app, "第一中学"), make_school(app, "第二中学")
        report_case(app, a, forms=("verbal",))
        report_case(app, b, forms=("online",))
        check_in(app, a, pair(app, a, "2026001"), app.now().date())
    finally:
        app.close()
    yield Store(data_dir, dict(os.environ), a, b)


def period_args() -> list[str]:
    # The schools' today (the app's clock reads the policy's timezone), not UTC's: from
    # 16:00 UTC on, Beijing is a day ahead and the day's events would fall after the period.
    from anxin.core import school_clock
    from domain.policy import Policy

    today = school_clock(Policy().timezone)().date()
    return ["--from", (today - timedelta(days=30)).isoformat(), "--to", today.isoformat()]


def test_anxin_report_writes_the_district_csv_to_stdout(cli: Store) -> None:
    r = cli.run("report", *period_args(), "--format", "csv", "--as", cli.username(cli.a.supervisor))
    assert r.returncode == 0, r.stderr
    ids, labels, *rows = list(csv.reader(io.StringIO(r.stdout)))
    assert labels[ids.index("cases_reported")] == "新报告案件"
    got = {
        row[2]: (row[0], int(row[ids.index("cases_reported")]), int(row[ids.index("check_ins_done")])) for row in rows
    }
    assert got == {"第一中学": ("school", 1, 1), "第二中学": ("school", 1, 0), "全区合计": ("total", 2, 1)}
    for text in [NARRATIVE, PLACE, NOTE, *[n for _, n, _, _ in STUDENTS]]:
        assert text not in r.stdout


def test_anxin_report_writes_printable_html_for_one_school_to_a_file_and_nothing_else(cli: Store) -> None:
    out = cli.data_dir.parent / "报送.html"
    before = set(cli.data_dir.parent.iterdir())
    r = cli.run(
        "report",
        *period_args(),
        "--school",
        "第二中学",
        "--format",
        "html",
        "--out",
        str(out),
        "--as",
        cli.username(cli.a.supervisor),
    )
    assert r.returncode == 0, r.stderr
    assert "写入" in r.stdout
    html = out.read_text(encoding="utf-8")
    assert "<h1>定期报送</h1>" in html and "@media print" in html and "<h2>第二中学</h2>" in html
    assert "第一中学" not in html
    # only the report was added: no temporary file left behind
    assert set(cli.data_dir.parent.iterdir()) - before == {out}


def test_anxin_report_refuses_a_principal_asking_for_another_school_and_an_unknown_account(cli: Store) -> None:
    out = cli.data_dir.parent / "r.csv"
    r = cli.run(
        "report", *period_args(), "--school", "第二中学", "--out", str(out), "--as", cli.username(cli.a.principal)
    )
    assert r.returncode == 1 and "无权" in r.stderr and not out.exists()
    r = cli.run("report", *period_args(), "--as", "nobody")
    assert r.returncode == 1 and "nobody" in r.stderr
    r = cli.run("report", "--from", "2026-13-01", "--to", "2026-10-31", "--as", "nobody")
    assert r.returncode == 2 and "YYYY-MM-DD" in r.stderr


def test_anxin_projections_rebuild_shows_progress_and_the_rate_keeps_the_rows_and_names_the_views(cli: Store) -> None:
    def report_rows() -> list[tuple[Any, ...]]:
        return [row for t in rp.TABLES for row in open_sql(cli.data_dir, f"SELECT * FROM {t.name} ORDER BY 1, 2")]

    before = report_rows()
    assert before
    app = open_app(data_dir=cli.data_dir)
    try:
        head = app.recorder.max_notification_id()
    finally:
        app.close()
    # when every view is rebuilt
    r = cli.run("projections", "rebuild")
    # then a progress bar goes to stderr, ending at 100%, and the count and rate to stdout
    assert r.returncode == 0, r.stderr
    assert "重建视图 [" in r.stderr and f"100% {head}/{head}" in r.stderr
    assert f"{head} 个事件" in r.stdout and "每秒" in r.stdout
    assert report_rows() == before
    # and one view by name
    r = cli.run("projections", "rebuild", "report")
    assert r.returncode == 0 and "已重建视图 report：" in r.stdout
    assert report_rows() == before
    # and an unknown view is refused, naming the views there are
    r = cli.run("projections", "rebuild", "report", "no_such_view")
    assert r.returncode == 1
    assert "no_such_view" in r.stderr and "report" in r.stderr.split("可用的视图")[1]


# -- the pre-aggregated counts ------------------------------------------------------------------
def aggregates_from_rows(app: Anxin) -> dict[str, list[tuple[Any, ...]]]:
    """What each aggregate table must hold, computed here from the rows it sums."""
    rows = dump(app)
    check_in_days: dict[tuple[Any, ...], int] = {}
    for _, _, school, day in rows["v_report_check_ins"]:
        check_in_days[(school, day)] = check_in_days.get((school, day), 0) + 1
    screening_days: dict[tuple[Any, ...], list[int]] = {}
    days_of: dict[tuple[str, str], set[int]] = {}
    for _, _, school, student, day, inst, flagged, crisis in rows["v_report_screenings"]:
        c = screening_days.setdefault((school, day, inst), [0, 0, 0])
        c[0], c[1], c[2] = c[0] + 1, c[1] + int(flagged), c[2] + int(crisis)
        days_of.setdefault((school, student), set()).add(day)
    screened: dict[tuple[Any, ...], int] = {}
    for (school, _), days in days_of.items():
        prev = 0
        for day in sorted(days):
            screened[(school, day, prev)] = screened.get((school, day, prev), 0) + 1
            prev = day
    spans: dict[tuple[Any, ...], int] = {}
    for _, _, school, from_day, to_day, cadence in rows["v_report_pairing_spans"]:
        key = (school, from_day, rp.OPEN if to_day is None else to_day, cadence)
        spans[key] = spans.get(key, 0) + 1
    fact_counts: dict[tuple[Any, ...], int] = {}
    for _, _, kind, school, day, detail, _ in rows["v_report_facts"]:
        fact_counts[(school, day, kind, detail)] = fact_counts.get((school, day, kind, detail), 0) + 1
    file_spans: dict[tuple[Any, ...], int] = {}
    for _, _, school, from_day, to_day, status, level, due in rows["v_report_file_spans"]:
        key = (school, status, level, from_day, rp.OPEN if to_day is None else to_day, due or 0)
        file_spans[key] = file_spans.get(key, 0) + 1
    overdue: dict[tuple[Any, ...], int] = {}
    for _, from_day, to_day, school in rows["v_report_overdue_runs"]:
        overdue[(school, from_day, to_day)] = overdue.get((school, from_day, to_day), 0) + 1
    return {
        "v_report_overdue_counts": sorted((*k, n) for k, n in overdue.items()),
        "v_report_fact_counts": sorted((*k, n) for k, n in fact_counts.items()),
        "v_report_file_span_counts": sorted((*k, n) for k, n in file_spans.items()),
        "v_report_check_in_days": sorted((*k, n) for k, n in check_in_days.items()),
        "v_report_screening_days": sorted((*k, *v) for k, v in screening_days.items()),
        "v_report_screened_days": sorted((*k, n) for k, n in screened.items()),
        "v_report_pairing_span_counts": sorted((*k, n) for k, n in spans.items()),
    }


def aggregates(app: Anxin) -> dict[str, list[tuple[Any, ...]]]:
    rows = dump(app)
    return {t.name: sorted(rows[t.name]) for t in rp.AGGREGATES}


def test_each_aggregate_is_the_sum_of_its_rows_after_a_history_a_shred_and_a_rebuild(
    app: Anxin, history: TwoSchools, clock: Clock
) -> None:
    a = history.a
    # given more of each kind of row: a weekly pairing whose cadence changes and which ends,
    # check-ins on the same days, and screenings of a student on several days
    p = pair(app, a, "2026004", cadence=7)
    check_in(app, a, p, clock.today)
    with app.editing(p, Pairing) as pairing:
        pairing.change_cadence(cadence_days=30, reason="调整", actor=a.principal.staff_id, at=app.now())
    clock.advance(days=2)
    app.pairings.end_pairing(a.teacher, p, "结束")
    app.screenings.record_screening(
        a.counselor, a.student("2026004"), instrument="PHQ-9", screened_on=clock.today, answers=[1] * 9
    )
    app.screenings.record_screening(
        a.counselor, a.student("2026003"), instrument="PHQ-9", screened_on=clock.today, answers=[0] * 9
    )
    # and a crisis intervention whose day is corrected (the fact is re-dated)
    file_id = app.db.fetchone(
        "SELECT stream_id FROM {t}anxin_directory WHERE kind = 'file' AND subject_id = ? AND status = 'open'",
        (a.student("2026002"),),
    )[0]
    entry = app.support.record_crisis_intervention(
        a.counselor, file_id, occurred_on=clock.today, what_happened="危机", actions_taken="干预"
    )
    app.support.correct_file_entry(
        a.counselor, file_id, entry, changes={"occurred_on": clock.today - timedelta(days=3)}, reason="日期有误"
    )
    with app.views.engine.connect() as conn:
        crisis_days = conn.execute(
            select(rp.fact_counts.c.day, rp.fact_counts.c.n).where(rp.fact_counts.c.kind == "file.crisis")
        ).all()
    assert crisis_days == [((clock.today - timedelta(days=3)).toordinal(), 1)]
    # then each aggregate holds exactly the sums of its rows, and no row of nought
    got = aggregates(app)
    assert got == aggregates_from_rows(app)
    assert all(
        row[-1] > 0
        for t in (
            "v_report_check_in_days",
            "v_report_screened_days",
            "v_report_pairing_span_counts",
            "v_report_overdue_counts",
            "v_report_fact_counts",
            "v_report_file_span_counts",
        )
        for row in got[t]
    )
    assert all(got[t] for t in got)
    # and after shredding a pairing (its check-ins and spans go), they still do
    app.erasure.shred(ADMIN, p, "保存期限届满")
    assert aggregates(app) == aggregates_from_rows(app)
    # and a rebuild gives the same rows
    incremental = dump(app)
    app.views.rebuild([rp.VIEW_NAME])
    assert dump(app) == incremental


def test_a_student_screened_on_several_days_and_in_two_school_years_counts_once_in_any_period(
    app: Anxin, school: School, clock: Clock
) -> None:
    s = school
    student = s.student("2026001")
    june, sept, oct = date(2026, 6, 1), date(2026, 9, 20), clock.today  # school years 2025 and 2026

    def screen(day: date, inst: str = "PHQ-9") -> None:
        app.screenings.record_screening(
            s.counselor, student, instrument=inst, screened_on=day, answers=[0] * (9 if inst == "PHQ-9" else 7)
        )

    # given screenings on 1 June (two instruments), 20 September and 12 October, and another
    # student screened on 20 September
    screen(june)
    screen(june, "GAD-7")
    screen(oct)
    screen(sept)  # recorded after a later day: the days are put in order
    app.screenings.record_screening(
        s.counselor, s.student("2026002"), instrument="GAD-7", screened_on=sept, answers=[0] * 7
    )
    clock.advance(days=30)

    def screened(first: date, last: date) -> tuple[int, int]:
        r = report_for(app, s.principal, (first, last))
        return r.total["students_screened"], r.total["screenings"]

    # then a student counts once in a period, however many days of it they were screened on
    assert screened(date(2026, 5, 1), date(2026, 10, 31)) == (2, 5)
    assert screened(june, june) == (1, 2)
    assert screened(date(2026, 6, 2), date(2026, 9, 19)) == (0, 0)
    assert screened(sept, sept) == (2, 2)
    assert screened(sept, oct) == (2, 3)
    assert screened(date(2026, 9, 21), oct) == (1, 1)
    assert screened(june, sept) == (2, 4)
    assert aggregates(app) == aggregates_from_rows(app)
    # when this school year's record of the first student is shredded
    record = str(app.screenings.screening_record_id(student, 2026))
    app.erasure.shred(ADMIN, record, "保存期限届满")
    # then their September and October screenings are gone, June's stay
    assert screened(date(2026, 5, 1), date(2026, 10, 31)) == (2, 3)
    assert screened(sept, oct) == (1, 1)
    assert screened(june, june) == (1, 2)
    assert aggregates(app) == aggregates_from_rows(app)
    incremental = dump(app)
    app.views.rebuild([rp.VIEW_NAME])
    assert dump(app) == incremental


def pairings_on(app: Anxin, school_id: str, day: int) -> tuple[int, int]:
    """(active, overdue) pairings of a school on a day, by the rows' own definition: a span
    active that day, and the last check-in held by then (or the pairing day) plus the
    span's cadence before it."""
    rows = dump(app)
    paired = {r[0]: r[2] for r in rows["v_report_pairings"] if r[1] == school_id}
    held: dict[str, list[int]] = {}
    for pid, _, _, d in rows["v_report_check_ins"]:
        held.setdefault(pid, []).append(d)
    active = overdue = 0
    for pid, _, school, from_day, to_day, cadence in rows["v_report_pairing_spans"]:
        if school != school_id or not (from_day <= day and (to_day is None or to_day > day)):
            continue
        active += 1
        base = max((d for d in held.get(pid, []) if d <= day), default=paired[pid])
        overdue += base + cadence < day
    return active, overdue


SHRED_OPS = [*OPS, "screen", "screen", "shred_record"]


@settings(
    max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(
    steps=st.lists(
        st.tuples(st.sampled_from(SHRED_OPS), st.integers(0, 3), st.integers(0, 30)), min_size=10, max_size=50
    )
)
def test_the_aggregates_agree_with_their_rows_on_every_day_after_random_histories(
    app: Anxin, clock: Clock, steps: list[tuple[str, int, int]]
) -> None:
    # given a new school and a random history in it, screening records shredded too
    world = World(app, make_school(app, f"学校{uuid4().hex[:8]}"), clock)
    first = clock.today.toordinal()
    for op, i, n in steps:
        with contextlib.suppress(DomainError):
            if op == "shred_record":
                with app.views.engine.connect() as conn:
                    records = sorted(
                        r[0]
                        for r in conn.execute(
                            select(rp.screening_records.c.record_id).where(
                                rp.screening_records.c.school_id == world.s.id
                            )
                        )
                    )
                if records:
                    app.erasure.shred(ADMIN, records[i % len(records)], "保存期限届满")
            else:
                world.do(op, i, n)
    # then every aggregate holds the sums of its rows
    assert aggregates(app) == aggregates_from_rows(app)
    # and on every day, from before the history to well after it, the pairings active and
    # overdue are those the rows say
    sid = world.s.id
    with app.views.engine.connect() as conn:
        for day in range(first - 2, clock.today.toordinal() + 45):
            counts = queries._count(conn, [sid], day, day, day)[0][sid]
            assert (counts["pairings_active_end"], counts["check_ins_overdue_end"]) == pairings_on(app, sid, day)
    # and a rebuild gives the same rows
    incremental = dump(app)
    app.views.rebuild([rp.VIEW_NAME])
    assert dump(app) == incremental


def test_a_rebuild_brings_the_indexes_of_a_database_made_by_an_earlier_version_up_to_date(
    app: Anxin, history: TwoSchools
) -> None:
    from sqlalchemy import inspect, text

    before = report_for(app, history.a.supervisor)
    # given the view's tables as an earlier version left them: an index since added missing,
    # one since replaced still there
    with app.views.engine.begin() as conn:
        conn.execute(text("DROP INDEX ix_v_report_screenings_student"))
        conn.execute(
            text("CREATE INDEX ix_v_report_screenings_school_day ON v_report_screenings (school_id, screened_day)")
        )

    def indexes() -> set[str]:
        return {i["name"] for i in inspect(app.views.engine).get_indexes("v_report_screenings")}

    assert indexes() == {"ix_v_report_screenings_school_day"}
    # when the report is rebuilt (twice: a second rebuild finds the indexes there)
    app.views.rebuild([rp.VIEW_NAME])
    app.views.rebuild([rp.VIEW_NAME])
    # then it has the indexes of this version, and the same counts
    assert indexes() == {"ix_v_report_screenings_student"}
    assert report_for(app, history.a.supervisor).schools == before.schools


def test_the_csv_neutralises_a_school_name_a_spreadsheet_would_run_as_a_formula(app: Anxin, clock: Clock) -> None:
    # given a school whose name begins as a spreadsheet formula, with a case reported
    link = '=HYPERLINK("http://x")'
    s = make_school(app, link)
    report_case(app, s)
    r = report_for(app, s.supervisor, (clock.today - timedelta(days=30), clock.today))

    # when the report is written as CSV
    ids, _labels, *body = list(csv.reader(io.StringIO(report_csv(r))))

    # then the name begins with a quote (text in a spreadsheet), and the counts are numbers still
    assert [b[ids.index("school")] for b in body] == ["'" + link, "全区合计"]
    assert [b[ids.index("cases_reported")] for b in body] == ["1", "1"]
    assert not any(cell.startswith(("=", "+", "-", "@")) for b in body for cell in b)
