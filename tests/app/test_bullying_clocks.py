"""Issue 17 (A): the investigation's clock starts when the investigation starts. Cases
reported before keep the due date stored at their report (history is not edited): an
old-shaped stream (Reported, InvestigationStarted and Reopened of version 1) still loads, and
the case board and the work queue read its deadline from its events."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest
from conftest import Clock, School
from sqlalchemy import select

from anxin.crypto import stream_key
from anxin.service import Anxin
from domain.bullying import BullyingCase
from domain.policy import Policy
from projections.case_board import cases as board_cases
from projections.work_queue_view import items


def _old(cls: type, monkeypatch: pytest.MonkeyPatch, app: Anxin, state: dict[str, Any]) -> Any:
    """The stored form of an event as version 1 of its class wrote it."""
    with monkeypatch.context() as m:
        m.setattr(cls, "class_version", 1)
        e = object.__new__(cls)
        object.__setattr__(e, "__dict__", dict(state))
        return app.mapper.to_stored_event(e)


def _v1_stream(app: Anxin, school: School, clock: Clock, monkeypatch: pytest.MonkeyPatch) -> tuple[UUID, Any]:
    """A case as it was stored before issue 17: reported with its investigation due ten days
    after the report, started (no due date of its own), closed, reopened (due from the
    reopening)."""
    cid, now = uuid4(), clock.now
    report_due = now.date() + timedelta(days=10)
    base = {"originator_id": cid, "timestamp": now, "actor": school.safety.staff_id, "at": now}
    reported = {
        **base,
        "originator_version": 1,
        "originator_topic": "domain.bullying:BullyingCase",
        "school_id": school.id,
        "channel": "teacher",
        "occurred_at": now - timedelta(hours=1),
        "place": "操场",
        "forms": ["verbal"],
        "parties": [{"student_id": school.student("2026001"), "part": "targeted"}],
        "narrative": "旧案件",
        "reporter_note": "",
        "source": None,
        "investigation_due": report_due,
    }
    started = {**base, "originator_version": 2, "handler_id": school.safety.staff_id}
    rows = [
        _old(BullyingCase.Reported, monkeypatch, app, reported),
        _old(BullyingCase.InvestigationStarted, monkeypatch, app, started),
    ]
    app.recorder.insert_events(rows)
    app.keystore.committed([stream_key(cid)])
    return cid, report_due


def test_an_old_shaped_case_loads_and_keeps_the_due_date_stored_at_its_report(
    app: Anxin, school: School, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a case stored before issue 17 (Reported and InvestigationStarted of version 1)
    cid, report_due = _v1_stream(app, school, clock, monkeypatch)
    # when the current code loads it
    case = app.load(cid, BullyingCase)
    # then it keeps the investigation's due date of its report, and has no intake due date
    assert (case.status, case.investigation_due, case.intake_due) == ("investigating", report_due, None)
    assert not case.investigation_overdue(report_due) and case.investigation_overdue(report_due + timedelta(days=1))
    assert not case.intake_overdue(report_due + timedelta(days=30))
    # and the views read the same deadline from its events
    app.views.catch_up()
    with app.views.engine.connect() as conn:
        board = conn.execute(select(board_cases).where(board_cases.c.case_id == str(cid))).mappings().one()
        item = conn.execute(select(items).where(items.c.stream_id == str(cid))).mappings().one()
    assert (board["investigation_due"], board["intake_due"], board["investigation_started"]) == (
        report_due,
        None,
        True,
    )
    assert (item["kind"], item["due_day"]) == ("investigation", report_due.toordinal())


def test_an_old_shaped_reopening_loads_with_its_due_date(
    app: Anxin, school: School, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given an old case, closed and reopened before issue 17 (Reopened of version 1)
    cid, _ = _v1_stream(app, school, clock, monkeypatch)
    now = clock.now + timedelta(days=20)
    base = {"originator_id": cid, "timestamp": now, "actor": school.principal.staff_id, "at": now}
    closed = BullyingCase.Closed(**{**base, "originator_version": 3, "reason": "结案", "determination_id": "d0"})
    reopen_due = now.date() + timedelta(days=10)
    reopened = {**base, "originator_version": 4, "reason": "再次发生", "investigation_due": reopen_due}
    app.recorder.insert_events(
        [app.mapper.to_stored_event(closed), _old(BullyingCase.Reopened, monkeypatch, app, reopened)]
    )
    # when it is loaded, then it is reopened with the due date its reopening carried
    case = app.load(cid, BullyingCase)
    assert (case.status, case.cycle, case.investigation_due, case.intake_due) == ("reopened", 1, reopen_due, None)
    # and the work queue owes that investigation, by that date
    app.views.catch_up()
    with app.views.engine.connect() as conn:
        item = conn.execute(select(items).where(items.c.stream_id == str(cid))).mappings().one()
    assert (item["kind"], item["due_day"]) == ("investigation", reopen_due.toordinal())


def test_a_new_reports_investigation_is_due_from_its_start_in_the_days_the_policy_counts(
    app: Anxin, school: School, clock: Clock
) -> None:
    # given a region counting both deadlines in school days, with a National Day holiday (1-9
    # October off) and its make-up working days (Sunday 27 September, Saturday 10 October)
    app.policy = Policy.from_toml(
        "investigation_days = 10\nintake_days = 1\n"
        "holidays = [2026-10-01, 2026-10-02, 2026-10-05, 2026-10-06, 2026-10-07, 2026-10-08, 2026-10-09]\n"
        "workdays = [2026-09-27, 2026-10-10]\n"
        '[day_counting]\nintake = "school_days"\ninvestigation = "school_days"\n'
    )
    clock.now = datetime(2026, 9, 30, 15, 0, tzinfo=clock.now.tzinfo)  # Wednesday before the holiday
    cid = app.cases.report_bullying(
        school.teacher,
        school_id=school.id,
        channel="anonymous",
        occurred_at=clock.now - timedelta(hours=1),
        place="宿舍",
        forms=["exclusion"],
        parties=[],
        narrative="匿名反映有学生被孤立",
        students_unconfirmed=True,
    )
    # then the investigation must start by the next school day: the make-up Saturday, 10 October
    case = app.load(UUID(cid), BullyingCase)
    assert (case.intake_due, case.investigation_due) == (datetime(2026, 10, 10).date(), None)
    # when it starts on Monday 12 October, it is due ten school days later (Monday 26 October)
    clock.now = datetime(2026, 10, 12, 9, 0, tzinfo=clock.now.tzinfo)
    app.cases.start_investigation(school.safety, cid)
    assert app.load(UUID(cid), BullyingCase).investigation_due == datetime(2026, 10, 26).date()
