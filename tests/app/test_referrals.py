"""Referrals through the application, on both stores: the district's registry of agencies
(kept by the district's administrator or a supervisor; anyone else refused, recorded), a
referral on a file picking an active agency of the school's district, its states, the
feedback's overdue item in the counselor's queue, and the crisis checklist's referral picking
from the same registry."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from conftest import ADMIN, Clock, School, make_school

from anxin.commands.agencies import AgencyExists, AgencyUnknown
from anxin.service import Anxin
from domain.common import Actor, DomainError, InvalidInput, PermissionDenied
from projections.work_queue import work_queue


def _denied(app: Anxin, actor: Actor, action: str) -> int:
    rows = app.db.fetch("SELECT detail FROM {t}anxin_audit WHERE kind = 'access' AND actor_id = ?", (actor.staff_id,))
    return sum(1 for (d,) in rows if json.loads(d)["action"] == action and not json.loads(d)["allowed"])


def test_the_district_administrator_and_a_supervisor_keep_the_registry(app: Anxin, school: School) -> None:
    hospital = app.agencies.add_agency(ADMIN, kind="mental_health", name="安心市精神卫生中心")
    app.agencies.add_agency(school.supervisor, kind="police", name="安心区公安分局")
    names = [(a.kind, a.name, a.active) for a in app.agencies.registry(school.supervisor)]
    assert names == [("mental_health", "安心市精神卫生中心", True), ("police", "安心区公安分局", True)]
    # a name twice, a kind not in the list, an empty name: refused in Chinese, nothing added
    with pytest.raises(AgencyExists) as e:
        app.agencies.add_agency(ADMIN, kind="hospital", name="安心市精神卫生中心")
    assert "名录中已有同名机构" in e.value.text
    with pytest.raises(InvalidInput):
        app.agencies.add_agency(ADMIN, kind="school", name="某学校")
    with pytest.raises(InvalidInput):
        app.agencies.add_agency(ADMIN, kind="hospital", name="  ")
    assert len(app.agencies.registry(ADMIN)) == 2
    # retired: out of the pick lists, still in the registry
    app.agencies.retire_agency(school.supervisor, hospital)
    assert [a.name for a in app.agencies.for_school(school.id)] == ["安心区公安分局"]
    assert [a.active for a in app.agencies.registry(ADMIN)] == [True, False]


def test_nobody_else_keeps_the_registry_and_each_refusal_is_recorded(app: Anxin, school: School) -> None:
    agency = app.agencies.add_agency(ADMIN, kind="hospital", name="第一人民医院")
    school_admin = app.gate.actor(
        app.roster.add_staff(
            ADMIN, username="sa-1", name="校管理员", school_id=school.id, roles=["administrator"], classes=[]
        )
    )
    for who in (school.counselor, school.principal, school.teacher, school.safety, school_admin):
        with pytest.raises(PermissionDenied):
            app.agencies.registry(who)
        with pytest.raises(PermissionDenied):
            app.agencies.add_agency(who, kind="hospital", name="越权添加")
        with pytest.raises(PermissionDenied):
            app.agencies.retire_agency(who, agency)
        assert _denied(app, who, "agency.admin") == 3
    assert [a.name for a in app.agencies.registry(ADMIN)] == ["第一人民医院"]
    # another district's supervisor neither sees nor changes this district's registry
    other = make_school(app, "外区中学", district="别区")
    with pytest.raises(AgencyUnknown):
        app.agencies.retire_agency(other.supervisor, agency)
    assert app.agencies.registry(other.supervisor) == []


def test_a_referral_picks_an_active_agency_of_the_schools_district_and_moves_through_its_states(
    app: Anxin, school: School, clock: Clock
) -> None:
    agency = app.agencies.add_agency(ADMIN, kind="mental_health", name="安心市精神卫生中心")
    retired = app.agencies.add_agency(ADMIN, kind="hospital", name="旧医院")
    app.agencies.retire_agency(ADMIN, retired)
    elsewhere = make_school(app, "外区中学", district="别区")
    far = app.agencies.add_agency(elsewhere.supervisor, kind="hospital", name="别区医院")
    c = school.counselor
    fid = app.support.open_support_file(
        c, school.student("2026001"), category="情绪困扰", risk_level="key", reason="筛查"
    )
    version = app.support.get_support_file(c, fid).version
    for bad in (retired, far, "nothing"):
        with pytest.raises(AgencyUnknown) as e:
            app.support.send_referral(c, fid, agency_id=bad, reason="需要专科评估")
        assert e.value.text == "请从本区的转介机构名录中选择机构"
    assert app.support.get_support_file(c, fid).version == version
    rid = app.support.send_referral(c, fid, agency_id=agency, reason="需要专科评估")
    f = app.support.get_support_file(c, fid)
    entry = f.entries[rid]
    assert (entry["status"], entry["to"], entry["agency_id"]) == ("sent", "安心市精神卫生中心", agency)
    due = clock.today + timedelta(days=app.policy.referral_feedback_days)
    assert entry["feedback_due"] == due
    # the counselor's queue: the feedback owed, overdue the day after it was due
    items = [(i.kind, i.stream_id, i.due, i.overdue) for i in work_queue(app, c, names=False)]
    assert ("referral", fid, due, False) in items
    late = [
        (i.kind, i.overdue) for i in work_queue(app, c, due + timedelta(days=1), names=False) if i.kind == "referral"
    ]
    assert late == [("referral", True)]
    # a reassignment moves it; the feedback ends it
    app.support.reassign_support_file(school.principal, fid, school.other_counselor.staff_id, "调整")
    assert "referral" in [i.kind for i in work_queue(app, school.other_counselor, names=False)]
    assert "referral" not in [i.kind for i in work_queue(app, c, names=False)]
    o = school.other_counselor
    app.support.accept_referral(o, fid, rid, note="已预约")
    assert "referral" in [i.kind for i in work_queue(app, o, names=False)]
    with pytest.raises(DomainError):
        app.support.accept_referral(o, fid, rid)  # accepted already: refused
    app.support.receive_referral_feedback(o, fid, rid, summary="建议住院评估")
    assert "referral" not in [i.kind for i in work_queue(app, o, names=False)]
    app.support.close_referral(o, fid, rid, reason="已按回执调整方案")
    f = app.support.get_support_file(o, fid)
    assert [s["state"] for s in f.entries[rid]["steps"]] == ["accepted", "feedback", "closed"]
    # and a rebuild gives the same queue
    before = [work_queue(app, p, names=False) for p in (c, o)]
    app.views.rebuild(["work_queue"])
    assert [work_queue(app, p, names=False) for p in (c, o)] == before


def test_only_the_files_counselor_or_the_principal_refers(app: Anxin, school: School) -> None:
    agency = app.agencies.add_agency(ADMIN, kind="hospital", name="第一人民医院")
    fid = app.support.open_support_file(
        school.counselor, school.student("2026002"), category="情绪困扰", risk_level="key", reason="筛查"
    )
    for who in (school.other_counselor, school.teacher, school.supervisor):
        with pytest.raises(PermissionDenied):
            app.support.send_referral(who, fid, agency_id=agency, reason="越权")
    assert app.support.get_support_file(school.principal, fid).referrals == []


def test_the_crisis_checklists_referral_picks_from_the_same_registry(app: Anxin, school: School) -> None:
    agency = app.agencies.add_agency(ADMIN, kind="mental_health", name="安心市精神卫生中心")
    c = school.counselor
    fid = app.support.open_support_file(
        c, school.student("2026003"), category="情绪困扰", risk_level="key", reason="筛查"
    )
    app.support.record_crisis_intervention(
        c, fid, occurred_on=app.now().date(), what_happened="自伤言语", actions_taken="陪同"
    )
    with pytest.raises(AgencyUnknown):
        app.crisis.record_crisis_referral(school.other_counselor, fid, agency_id="nothing")
    app.crisis.record_crisis_referral(school.other_counselor, fid, agency_id=agency, note="已电话预约")
    done = next(s for s in app.crisis.get_crisis(c, fid).checklist if s["step"] == "referral")["done"]
    assert (done["institution"], done["agency_id"], done["actor"]) == (
        "安心市精神卫生中心",
        agency,
        school.other_counselor.staff_id,
    )
