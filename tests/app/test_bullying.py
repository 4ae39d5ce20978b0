"""The bullying case (校园欺凌案件) through the application: every lifecycle rule and
every gate decision, on SQLite and PostgreSQL (the `app` fixture runs both)."""

from __future__ import annotations

from datetime import date, timedelta
from uuid import UUID, uuid4

import pytest
from conftest import ADMIN, Clock, School, make_school
from determination_support import appeal_legacy, determine_legacy, ready_to_determine

from anxin.service import Anxin
from domain.bullying import (
    AppealPending,
    AppealRetired,
    AuthorityReportsRequired,
    BullyingCase,
    CaseClosed,
    DeterminationNotApproved,
    InterventionsRequired,
    MandatoryReportRequired,
    NotAParty,
    SelfApproval,
    TargetedPartyRequired,
    UnknownStaff,
    UnknownStudent,
    UnknownSupportFile,
    is_serious,
)
from domain.common import Conflict, InvalidInput, PermissionDenied, WrongState
from domain.policy import Policy

TARGETED = "2026001"  # 七年级1班: the class teacher's class
WITNESS = "2026002"  # 七年级1班
BULLYING = "2026003"  # 七年级2班
OTHER = "2026004"  # 七年级2班
NARRATIVE = "课间在走廊被推倒并被抢走饭卡，对方多次辱骂"
PLACE = "教学楼三楼走廊"
STAGES = ("reported", "investigating", "awaiting_determination", "determined", "approved", "ready")


def report(app: Anxin, school: School, clock: Clock, actor=None, parties=None, **changes) -> str:
    fields = dict(
        school_id=school.id,
        channel="teacher",
        occurred_at=clock.now - timedelta(hours=2),
        place=PLACE,
        forms=["physical", "verbal", "property"],
        narrative=NARRATIVE,
        parties=parties
        if parties is not None
        else [
            (school.student(TARGETED), "targeted"),
            (school.student(BULLYING), "bullying"),
            (school.student(WITNESS), "witness"),
        ],
    )
    fields.update(changes)
    return app.cases.report_bullying(actor or school.teacher, **fields)


def given_case(
    app: Anxin,
    school: School,
    clock: Clock,
    upto: str = "reported",
    *,
    bullying: bool = True,
    severity: str | None = "minor",
    horseplay: bool = False,
    parties=None,
) -> str:
    """A case walked through the lifecycle up to a stage (see STAGES)."""
    cid = report(app, school, clock, parties=parties)
    stage = STAGES.index(upto)
    if stage >= 1:
        app.cases.start_investigation(school.safety, cid)
    if stage >= 2:
        app.cases.record_statement(
            school.safety, cid, text="他推我，还抢了我的饭卡", from_student_id=school.student(TARGETED)
        )
        app.cases.complete_investigation(school.safety, cid, findings="多名证人证实，连续两周发生")
        ready_to_determine(app, school.safety, cid)
    if stage >= 3 and severity == "suspected_offence":  # an older stream: the legacy severity
        determine_legacy(app, school.safety, cid, reason="学生欺凌治理委员会会议认定", ready=False)
    elif stage >= 3:
        app.cases.determine(
            school.safety,
            cid,
            bullying=bullying,
            severity=severity if bullying else None,
            horseplay=horseplay,
            reason="学生欺凌治理委员会会议认定",
        )
    if stage >= 4:
        app.cases.approve_determination(school.principal, cid, reason="同意委员会认定")
    if stage >= 5 and bullying:
        plan_both_sides(app, school, cid)
        if is_serious(severity) and severity != "suspected_offence":
            report_to_authorities(app, school, cid)
    return cid


def report_to_authorities(app: Anxin, school: School, cid: str) -> None:
    """The reports of 未成年人保护法 art. 39, to the police and to the education bureau."""
    for authority, unit in (("police", "城关派出所"), ("bureau", "县教育局")):
        app.cases.record_authority_report(
            school.safety, cid, authority=authority, unit=unit, method="phone", reported_at=app.now()
        )


def plan_both_sides(app: Anxin, school: School, cid: str) -> tuple[str, str]:
    support = app.cases.plan_intervention(
        school.safety,
        cid,
        student_id=school.student(TARGETED),
        kind="counselling",
        plan="每周一次心理辅导",
        responsible_staff_id=school.counselor.staff_id,
    )
    education = app.cases.plan_intervention(
        school.safety,
        cid,
        student_id=school.student(BULLYING),
        kind="education",
        plan="了解动机，书面道歉，法治教育",
        responsible_staff_id=school.teacher.staff_id,
    )
    return support, education


def case(app: Anxin, school: School, cid: str) -> BullyingCase:
    return app.cases.get_case(school.principal, cid)


def event_names(app: Anxin, cid: str) -> list[str]:
    return [type(e).__name__ for e in app.events.get(UUID(cid))]


def access_rows(app: Anxin, cid: str) -> list[tuple]:
    return app.db.fetch(
        "SELECT actor_id, action, allowed FROM {t}anxin_access WHERE resource_id = ? ORDER BY id", (cid,)
    )


# -- report ---------------------------------------------------------------------------------------
def test_any_staff_member_of_the_school_can_report_and_the_investigation_falls_due_per_policy(app, school, clock):
    # given a class teacher who saw it happen
    # when they report, linking the check-in it came from
    source = {"kind": "pairing", "id": str(uuid4()), "check_in_id": "abc"}
    cid = report(app, school, clock, source=source, reporter_note="学生课后主动反映")
    # then the case is open, its investigation to start within the policy's one school day (the
    # report is on a Monday) and due when it starts, with who, when, and the link kept
    c = case(app, school, cid)
    assert c.status == "reported"
    assert c.opened_on == clock.today
    assert (c.intake_due, c.investigation_due) == (clock.today + timedelta(days=1), None)
    assert c.reported_by == school.teacher.staff_id
    assert c.source == source
    assert c.forms == ["physical", "verbal", "property"]
    assert sorted(c.links) == sorted(
        [
            (school.student(TARGETED), "targeted"),
            (school.student(BULLYING), "bullying"),
            (school.student(WITNESS), "witness"),
        ]
    )
    assert event_names(app, cid) == ["Reported"]
    # and a counselor may report too (every staff member can)
    assert report(app, school, clock, actor=school.counselor)


def test_the_investigation_deadline_is_the_policy_not_a_constant(app, school, clock):
    app.policy = Policy(investigation_days=3)
    cid = report(app, school, clock)
    clock.advance(days=1)
    app.cases.start_investigation(school.safety, cid)
    assert case(app, school, cid).investigation_due == clock.today + timedelta(days=3)


def test_a_report_needs_at_least_one_targeted_student_and_saves_nothing_otherwise(app, school, clock):
    with pytest.raises(TargetedPartyRequired) as e:
        report(app, school, clock, parties=[(school.student(BULLYING), "bullying")])
    assert e.value.code == "targeted_party_required"
    assert app.cases.cases_of_school(school.principal, school.id) == []


def test_a_report_about_another_schools_student_or_by_another_schools_staff_is_refused(app, school, clock):
    other = make_school(app, "第二中学")
    with pytest.raises(UnknownStudent):
        report(app, school, clock, parties=[(other.student(TARGETED), "targeted")])
    with pytest.raises(PermissionDenied):
        report(app, school, clock, actor=other.teacher)
    assert app.cases.cases_of_school(school.principal, school.id) == []


def test_the_directory_knows_status_and_parties_but_no_narrative_names_or_place(app, school, clock):
    cid = given_case(app, school, clock, "investigating")
    row = app.db.fetchone(
        "SELECT kind, school_id, owner_id, status FROM {t}anxin_directory WHERE stream_id = ?", (cid,)
    )
    assert row == ("case", school.id, school.safety.staff_id, "investigating")
    links = app.db.fetch("SELECT student_id, part FROM {t}anxin_links WHERE stream_id = ? ORDER BY part", (cid,))
    assert links == [
        (school.student(BULLYING), "bullying"),
        (school.student(TARGETED), "targeted"),
        (school.student(WITNESS), "witness"),
    ]
    clear = repr([app.db.fetch(f"SELECT * FROM {{t}}{t}") for t in ("anxin_directory", "anxin_links", "anxin_access")])
    for secret in (NARRATIVE, PLACE, "张小明", "他推我"):
        assert secret not in clear


# -- parties --------------------------------------------------------------------------------------
def test_a_party_is_added_and_removed_with_a_reason_and_the_gate_follows(app, school, clock):
    cid = given_case(app, school, clock)
    other = school.student(OTHER)
    # given the other class's only student is removed: their class teacher no longer sees the case
    app.cases.remove_party(school.safety, cid, student_id=school.student(BULLYING), reason="调查发现认错人")
    with pytest.raises(PermissionDenied):
        app.cases.case_status(school.other_teacher, cid)
    # when a student of their class is added
    app.cases.add_party(school.safety, cid, student_id=other, part="bullying", reason="监控显示其参与")
    # then they see its status line, and the history names both steps and why
    assert app.cases.case_status(school.other_teacher, cid)["status"] == "reported"
    c = case(app, school, cid)
    assert (other, "bullying") in c.links and (school.student(BULLYING), "bullying") not in c.links
    assert c.removed_parties[0]["reason"] == "调查发现认错人"
    assert event_names(app, cid)[-2:] == ["PartyRemoved", "PartyAdded"]


def test_the_last_targeted_student_cannot_be_removed_and_nothing_changes(app, school, clock):
    cid = given_case(app, school, clock)
    before = case(app, school, cid).version
    with pytest.raises(TargetedPartyRequired):
        app.cases.remove_party(school.safety, cid, student_id=school.student(TARGETED), reason="误报")
    with pytest.raises(UnknownStudent):
        app.cases.add_party(school.safety, cid, student_id=str(uuid4()), part="witness", reason="新证人")
    assert case(app, school, cid).version == before


def test_parties_cannot_change_once_a_determination_is_recorded(app, school, clock):
    cid = given_case(app, school, clock, "determined")
    with pytest.raises(WrongState):
        app.cases.add_party(school.safety, cid, student_id=school.student(OTHER), part="witness", reason="新证人")


# -- safety measures ------------------------------------------------------------------------------
def test_safety_measures_are_recorded_at_once_with_whose_guardian_how_and_when(app, school, clock):
    cid = given_case(app, school, clock)
    t, b = school.student(TARGETED), school.student(BULLYING)
    sep = app.cases.take_safety_measure(
        school.safety, cid, kind="separate_students", student_ids=[t, b], note="调换座位"
    )
    told = app.cases.notify_guardian(
        school.safety,
        cid,
        student_id=t,
        method="phone",
        notified_at=clock.now - timedelta(minutes=30),
        note="家长已知情",
    )
    med = app.cases.take_safety_measure(school.safety, cid, kind="medical_care", student_ids=[t], note="校医检查擦伤")
    c = case(app, school, cid)
    assert c.measures[sep]["student_ids"] == [t, b]
    assert (
        c.measures[told]["kind"],
        c.measures[told]["student_ids"],
        c.measures[told]["method"],
        c.measures[told]["notified_at"],
    ) == ("guardian_notified", [t], "phone", clock.now - timedelta(minutes=30))
    assert c.measures[med]["by"] == school.safety.staff_id
    assert event_names(app, cid).count("SafetyMeasureTaken") == 3


def test_a_guardian_notification_must_name_a_party_a_method_and_a_time(app, school, clock):
    cid = given_case(app, school, clock)
    with pytest.raises(InvalidInput):
        app.cases.take_safety_measure(
            school.safety, cid, kind="guardian_notified", student_ids=[school.student(TARGETED)]
        )
    with pytest.raises(NotAParty):
        app.cases.notify_guardian(
            school.safety, cid, student_id=school.student(OTHER), method="phone", notified_at=clock.now
        )
    assert case(app, school, cid).measures == {}


# -- statements, evidence, investigation ----------------------------------------------------------
def test_statements_come_from_a_party_student_or_a_described_person(app, school, clock):
    cid = given_case(app, school, clock, "investigating")
    s1 = app.cases.record_statement(school.safety, cid, text="我看见他推人", from_student_id=school.student(WITNESS))
    s2 = app.cases.record_statement(school.safety, cid, text="值班时听到争吵", from_person="食堂工作人员（值班）")
    ev = app.cases.add_evidence(school.safety, cid, description="走廊监控截图三张", reference="证据柜A-12")
    c = case(app, school, cid)
    assert c.statements[s1]["from_student_id"] == school.student(WITNESS)
    assert c.statements[s2]["from_person"] == "食堂工作人员（值班）"
    assert c.evidence[ev]["reference"] == "证据柜A-12"
    with pytest.raises(InvalidInput):
        app.cases.record_statement(
            school.safety, cid, text="两者都填", from_student_id=school.student(WITNESS), from_person="某人"
        )
    with pytest.raises(NotAParty):
        app.cases.record_statement(school.safety, cid, text="不是当事人", from_student_id=school.student(OTHER))


def test_statements_and_evidence_are_refused_once_the_investigation_is_complete(app, school, clock):
    cid = given_case(app, school, clock, "awaiting_determination")
    with pytest.raises(WrongState):
        app.cases.record_statement(school.safety, cid, text="补充", from_person="家长")
    with pytest.raises(WrongState):
        app.cases.add_evidence(school.safety, cid, description="补充截图")


def test_a_closed_case_cannot_take_new_statements(app, school, clock):
    cid = given_case(app, school, clock, "ready")
    app.cases.close_case(school.principal, cid, reason="干预完成，回访无复发")
    before = case(app, school, cid).version
    with pytest.raises(CaseClosed) as e:
        app.cases.record_statement(school.safety, cid, text="补充陈述", from_person="家长")
    assert e.value.code == "case_closed"
    with pytest.raises(CaseClosed):
        app.cases.take_safety_measure(school.safety, cid, kind="other", note="补充")
    assert case(app, school, cid).version == before


def test_an_investigation_is_completed_only_after_it_has_started(app, school, clock):
    cid = given_case(app, school, clock)
    with pytest.raises(WrongState):
        app.cases.complete_investigation(school.safety, cid, findings="结论")
    app.cases.start_investigation(school.safety, cid)
    with pytest.raises(WrongState):
        app.cases.start_investigation(school.safety, cid)
    app.cases.complete_investigation(school.safety, cid, findings="结论")
    assert case(app, school, cid).status == "awaiting_determination"


def test_an_open_investigation_is_overdue_the_day_after_its_due_date_and_never_once_complete(app, school, clock):
    late = given_case(app, school, clock, "investigating")
    done = given_case(app, school, clock, "awaiting_determination")
    clock.advance(days=10)
    assert app.cases.case_status(school.teacher, late)["overdue"] is False
    clock.advance(days=1)
    assert app.cases.case_status(school.teacher, late)["overdue"] is True
    assert case(app, school, late).investigation_overdue(clock.today)
    assert app.cases.case_status(school.teacher, done)["overdue"] is False


# -- determination and approval ------------------------------------------------------------------
def test_a_determination_waits_for_a_completed_investigation(app, school, clock):
    cid = given_case(app, school, clock, "investigating")
    with pytest.raises(WrongState):
        app.cases.determine(school.safety, cid, bullying=True, severity="minor", reason="认定")


def test_a_bullying_determination_needs_a_severity_and_a_reason(app, school, clock):
    cid = given_case(app, school, clock, "awaiting_determination")
    with pytest.raises(InvalidInput):
        app.cases.determine(school.safety, cid, bullying=True, reason="认定")
    with pytest.raises(InvalidInput):
        app.cases.determine(school.safety, cid, bullying=True, severity="serious", reason=" ")
    app.cases.determine(school.safety, cid, bullying=True, severity="serious", reason="多次殴打，情节较重")
    c = case(app, school, cid)
    assert (c.status, c.determination["severity"], c.determination["by"]) == (
        "determined",
        "serious",
        school.safety.staff_id,
    )
    # a determination awaiting approval has no severity in force yet
    assert app.cases.case_status(school.teacher, cid)["severity"] is None


def test_only_the_principal_approves_a_determination(app, school, clock):
    cid = given_case(app, school, clock, "determined")
    before = case(app, school, cid).version
    with pytest.raises(PermissionDenied):
        app.cases.approve_determination(school.safety, cid, reason="同意")
    assert case(app, school, cid).version == before
    app.cases.approve_determination(school.principal, cid, reason="同意")
    c = case(app, school, cid)
    assert (c.status, c.determination["approved_by"], c.severity) == ("intervening", school.principal.staff_id, "minor")
    assert app.cases.case_status(school.teacher, cid)["severity"] == "minor"


def test_the_principal_cannot_approve_a_determination_they_recorded(app, school, clock):
    cid = given_case(app, school, clock, "awaiting_determination")
    app.cases.determine(school.principal, cid, bullying=False, reason="打闹嬉戏")
    with pytest.raises(SelfApproval) as e:
        app.cases.approve_determination(school.principal, cid, reason="同意")
    assert e.value.code == "self_approval"


def test_a_returned_determination_goes_back_to_the_committee(app, school, clock):
    cid = given_case(app, school, clock, "determined")
    app.cases.return_determination(school.principal, cid, reason="证据不足以认定情节轻微，请复议")
    assert case(app, school, cid).status == "awaiting_determination"
    ready_to_determine(app, school.safety, cid)  # the body meets again
    app.cases.determine(school.safety, cid, bullying=True, severity="serious", reason="复议后认定情节较重")
    c = case(app, school, cid)
    assert [d["returned"] for d in c.determinations] == [True, False]
    assert c.determination["severity"] == "serious"


def test_horseplay_is_determined_not_bullying_and_closes_straight_after_approval(app, school, clock):
    cid = given_case(app, school, clock, "approved", bullying=False, horseplay=True)
    c = case(app, school, cid)
    assert (c.status, c.determination["horseplay"], c.severity, c.next_follow_up_due) == ("concluded", True, None, None)
    app.cases.close_case(school.principal, cid, reason="系打闹嬉戏，已批评教育")
    assert case(app, school, cid).status == "closed"


def test_a_case_without_an_approved_determination_cannot_close(app, school, clock):
    cid = given_case(app, school, clock, "determined")
    with pytest.raises(DeterminationNotApproved) as e:
        app.cases.close_case(school.principal, cid, reason="结案")
    assert e.value.code == "determination_not_approved"


# -- mandatory report -------------------------------------------------------------------------------
def test_a_suspected_offence_cannot_close_before_the_mandatory_report_is_recorded(app, school, clock):
    cid = given_case(app, school, clock, "ready", severity="suspected_offence")
    before = case(app, school, cid).version
    with pytest.raises(MandatoryReportRequired) as e:
        app.cases.close_case(school.principal, cid, reason="结案")
    assert e.value.code == "mandatory_report_required"
    assert case(app, school, cid).version == before
    when = clock.now - timedelta(days=1)
    rid = app.cases.record_mandatory_report(
        school.safety, cid, agency="城关派出所", reported_at=when, reference="受案回执2026-118"
    )
    report_ = case(app, school, cid).mandatory_reports[rid]
    assert (report_["agency"], report_["reported_at"], report_["reference"]) == ("城关派出所", when, "受案回执2026-118")
    # and (未成年人保护法 art. 39) the reports to the police and the education bureau as well
    with pytest.raises(AuthorityReportsRequired):
        app.cases.close_case(school.principal, cid, reason="结案")
    for authority, unit in (("police", "城关派出所"), ("bureau", "县教育局")):
        app.cases.record_authority_report(
            school.safety, cid, authority=authority, unit=unit, method="written", reported_at=when
        )
    app.cases.close_case(school.principal, cid, reason="已移交公安，校内干预完成")
    assert case(app, school, cid).status == "closed"


# -- interventions --------------------------------------------------------------------------------
def test_a_bullying_case_cannot_close_until_both_sides_have_interventions(app, school, clock):
    cid = given_case(app, school, clock, "approved")
    app.cases.plan_intervention(
        school.safety,
        cid,
        student_id=school.student(TARGETED),
        kind="support",
        plan="同伴支持",
        responsible_staff_id=school.teacher.staff_id,
    )
    with pytest.raises(InterventionsRequired) as e:
        app.cases.close_case(school.principal, cid, reason="结案")
    assert e.value.details["student_ids"] == [school.student(BULLYING)]
    # counselling is not an education plan for the bullying student
    app.cases.plan_intervention(
        school.safety,
        cid,
        student_id=school.student(BULLYING),
        kind="counselling",
        plan="心理辅导",
        responsible_staff_id=school.counselor.staff_id,
    )
    with pytest.raises(InterventionsRequired):
        app.cases.close_case(school.principal, cid, reason="结案")
    app.cases.plan_intervention(
        school.safety,
        cid,
        student_id=school.student(BULLYING),
        kind="education",
        plan="专门教育计划",
        responsible_staff_id=school.teacher.staff_id,
    )
    app.cases.close_case(school.principal, cid, reason="双方干预已落实")
    assert case(app, school, cid).status == "closed"


def test_interventions_are_planned_only_after_the_determination_is_approved(app, school, clock):
    cid = given_case(app, school, clock, "determined")
    with pytest.raises(DeterminationNotApproved):
        app.cases.plan_intervention(
            school.safety,
            cid,
            student_id=school.student(TARGETED),
            kind="counselling",
            plan="辅导",
            responsible_staff_id=school.counselor.staff_id,
        )


def test_an_intervention_records_progress_until_it_is_complete(app, school, clock):
    cid = given_case(app, school, clock, "approved")
    support, _ = plan_both_sides(app, school, cid)
    app.cases.record_intervention_progress(school.safety, cid, support, note="第一次辅导，情绪稳定")
    app.cases.complete_intervention(school.safety, cid, support, outcome="已恢复正常学习生活")
    i = case(app, school, cid).interventions[support]
    assert (i["active"], i["outcome"], [p["note"] for p in i["progress"]]) == (
        False,
        "已恢复正常学习生活",
        ["第一次辅导，情绪稳定"],
    )
    with pytest.raises(WrongState):
        app.cases.record_intervention_progress(school.safety, cid, support, note="再次")


def test_an_intervention_may_reference_the_students_support_file_and_needs_school_staff(app, school, clock):
    cid = given_case(app, school, clock, "approved")
    t = school.student(TARGETED)
    # given a support file of the targeted student (its stream belongs to the support module)
    file_id = str(uuid4())
    app.db.execute(
        "INSERT INTO {t}anxin_directory (stream_id, kind, school_id, subject_id, status) "
        "VALUES (?, 'file', ?, ?, 'open')",
        (file_id, school.id, t),
    )
    iid = app.cases.plan_intervention(
        school.safety,
        cid,
        student_id=t,
        kind="counselling",
        plan="按一人一策辅导",
        responsible_staff_id=school.counselor.staff_id,
        support_file_id=file_id,
    )
    assert case(app, school, cid).interventions[iid]["support_file_id"] == file_id
    with pytest.raises(UnknownSupportFile):
        app.cases.plan_intervention(
            school.safety,
            cid,
            student_id=school.student(WITNESS),
            kind="counselling",
            plan="辅导",
            responsible_staff_id=school.counselor.staff_id,
            support_file_id=file_id,
        )
    with pytest.raises(UnknownStaff):
        app.cases.plan_intervention(
            school.safety,
            cid,
            student_id=t,
            kind="support",
            plan="帮扶",
            responsible_staff_id=school.supervisor.staff_id,
        )


# -- appeal -------------------------------------------------------------------------------------------
def test_a_pending_appeal_blocks_closure_until_the_county_upholds_the_determination(app, school, clock):
    cid = given_case(app, school, clock, "ready")
    clock.advance(days=15)
    aid = appeal_legacy(app, school.safety, cid, party_id=school.student(BULLYING), grounds="认为只是玩笑，不构成欺凌")
    assert case(app, school, cid).status == "appealed"
    assert app.cases.case_status(school.teacher, cid)["status"] == "appealed"
    with pytest.raises(AppealPending) as e:
        app.cases.close_case(school.principal, cid, reason="结案")
    assert e.value.code == "appeal_pending"
    with pytest.raises(AppealPending):
        app.cases.apply_for_county_review(
            school.safety, cid, party_id=school.student(TARGETED), county_body="县欺凌防治办", grounds="认为应更重"
        )
    app.cases.record_appeal_outcome(school.safety, cid, aid, outcome="upheld", reason="县防治办复查维持原认定")
    c = case(app, school, cid)
    assert (c.status, c.appeals[aid]["outcome"]) == ("intervening", "upheld")
    app.cases.close_case(school.principal, cid, reason="复查维持，干预完成")


def test_no_new_appeal_is_recorded_the_county_review_replaces_it(app, school, clock):
    # given an approved determination within the window to apply
    cid = given_case(app, school, clock, "approved")
    before = case(app, school, cid).version
    # when the school tries to record an appeal (申诉) the old way
    with pytest.raises(AppealRetired) as e:
        app.cases.lodge_appeal(school.safety, cid, party_id=school.student(BULLYING), grounds="不服")
    # then it is refused, saying where a party's disagreement goes, and nothing is recorded
    assert e.value.code == "appeal_retired" and "县级复查" in str(e.value)
    assert case(app, school, cid).version == before and case(app, school, cid).appeals == {}
    # and the party's application for the county review (复查) is what records it
    app.cases.apply_for_county_review(
        school.safety, cid, party_id=school.student(BULLYING), county_body="县欺凌防治办", grounds="不服"
    )
    assert case(app, school, cid).status == "appealed"


def test_a_changed_determination_on_review_takes_effect_with_its_duties(app, school, clock):
    cid = given_case(app, school, clock, "ready")
    aid = appeal_legacy(app, school.safety, cid, party_id=school.student(TARGETED), grounds="伤情鉴定为轻微伤")
    new_id = app.cases.record_appeal_outcome(
        school.safety,
        cid,
        aid,
        outcome="changed",
        bullying=True,
        severity="egregious",
        reason="复查认定情节恶劣",
    )
    c = case(app, school, cid)
    assert (c.status, c.severity, c.determination["id"], c.determination["source"]) == (
        "intervening",
        "egregious",
        new_id,
        "appeal_review",
    )
    with pytest.raises(AuthorityReportsRequired):
        app.cases.close_case(school.principal, cid, reason="结案")
    with pytest.raises(InvalidInput):
        app.cases.apply_for_county_review(
            school.safety, cid, party_id=school.student(BULLYING), county_body="县欺凌防治办", grounds="再申诉"
        )


def test_a_review_that_reopens_the_investigation_restarts_it_with_a_new_due_date(app, school, clock):
    cid = given_case(app, school, clock, "ready")
    clock.advance(days=5)
    aid = appeal_legacy(app, school.safety, cid, party_id=school.student(BULLYING), grounds="有新证人")
    clock.advance(days=3)
    app.cases.record_appeal_outcome(school.safety, cid, aid, outcome="reopened", reason="需补充调查新证人")
    c = case(app, school, cid)
    assert (c.status, c.determination, c.investigation_due) == ("investigating", None, clock.today + timedelta(days=10))
    app.cases.record_statement(school.safety, cid, text="我当时也在场", from_student_id=school.student(WITNESS))
    with pytest.raises(DeterminationNotApproved):
        app.cases.close_case(school.principal, cid, reason="结案")


# -- follow-ups ---------------------------------------------------------------------------------------
def test_follow_ups_fall_due_at_the_policy_interval_and_surface_when_missed(app, school, clock):
    cid = given_case(app, school, clock, "ready")
    approved_on = clock.today
    assert case(app, school, cid).next_follow_up_due == approved_on + timedelta(days=30)
    clock.advance(days=20)
    fid = app.cases.record_follow_up(school.safety, cid, notes="双方关系正常，未再发生")
    c = case(app, school, cid)
    assert (c.status, c.next_follow_up_due, c.follow_ups[fid]["held_on"]) == (
        "following_up",
        clock.today + timedelta(days=30),
        clock.today,
    )
    clock.advance(days=31)
    assert app.cases.case_status(school.teacher, cid)["overdue"] is True
    app.cases.record_follow_up(school.safety, cid, notes="第二次回访正常")
    assert app.cases.case_status(school.teacher, cid)["overdue"] is False


def test_follow_ups_need_an_approved_determination(app, school, clock):
    cid = given_case(app, school, clock, "determined")
    with pytest.raises(DeterminationNotApproved):
        app.cases.record_follow_up(school.safety, cid, notes="回访")


# -- closure and reopening ------------------------------------------------------------------------------
def test_only_the_principal_closes_a_case(app, school, clock):
    cid = given_case(app, school, clock, "ready")
    with pytest.raises(PermissionDenied):
        app.cases.close_case(school.safety, cid, reason="结案")
    app.cases.close_case(school.principal, cid, reason="干预完成")
    c = case(app, school, cid)
    assert (c.status, c.close_reason, c.closures[-1]["by"]) == ("closed", "干预完成", school.principal.staff_id)
    assert app.cases.cases_of_school(school.principal, school.id) == [{"case_id": cid, "status": "closed"}]


def test_a_closed_case_is_reopened_on_recurrence_and_investigated_anew(app, school, clock):
    cid = given_case(app, school, clock, "ready")
    with pytest.raises(WrongState):
        app.cases.reopen_case(school.safety, cid, reason="再次发生")
    app.cases.close_case(school.principal, cid, reason="干预完成")
    clock.advance(days=40)
    app.cases.reopen_case(school.safety, cid, reason="同一学生再次在宿舍实施欺凌")
    c = case(app, school, cid)
    assert (c.status, c.cycle, c.intake_due, c.investigation_due, c.determination) == (
        "reopened",
        1,
        app.policy.intake_due(clock.today),
        None,
        None,
    )
    # the recurrence is investigated and determined again, and needs its own interventions
    app.cases.start_investigation(school.safety, cid)
    app.cases.complete_investigation(school.safety, cid, findings="再次发生属实")
    ready_to_determine(app, school.safety, cid)
    app.cases.determine(school.safety, cid, bullying=True, severity="serious", reason="屡教不改，情节较重")
    app.cases.approve_determination(school.principal, cid, reason="同意")
    report_to_authorities(app, school, cid)
    with pytest.raises(InterventionsRequired):
        app.cases.close_case(school.principal, cid, reason="结案")
    plan_both_sides(app, school, cid)
    app.cases.close_case(school.principal, cid, reason="第二轮干预完成")
    assert event_names(app, cid).count("Closed") == 2


# -- corrections --------------------------------------------------------------------------------------
def test_a_correction_is_a_new_event_that_names_what_it_corrects_and_keeps_the_original(app, school, clock):
    cid = given_case(app, school, clock, "investigating")
    sid = app.cases.record_statement(school.safety, cid, text="他推了我两次", from_student_id=school.student(TARGETED))
    ev = app.cases.add_evidence(school.safety, cid, description="监控截图", reference="A-1")
    app.cases.correct_statement(school.safety, cid, sid, text="他推了我三次", reason="笔录誊写错误")
    app.cases.correct_evidence(school.safety, cid, ev, reference="A-2", reason="编号写错")
    app.cases.correct_narrative(school.safety, cid, narrative="课间在走廊被推倒", reason="原记录夸大")
    app.cases.correct_report(school.safety, cid, place="教学楼二楼走廊", forms=["physical"], reason="地点与形式更正")
    events = list(app.events.get(UUID(cid)))
    corrected = {type(e).__name__: e for e in events[-4:]}
    assert corrected["StatementCorrected"].corrects == sid
    assert corrected["EvidenceCorrected"].corrects == ev
    assert corrected["NarrativeCorrected"].corrects == "narrative"
    assert corrected["ReportCorrected"].changes == {"place": "教学楼二楼走廊", "forms": ["physical"]}
    c = case(app, school, cid)
    assert (c.statements[sid]["text"], c.statements[sid]["corrections"][0]["previous"]) == (
        "他推了我三次",
        "他推了我两次",
    )
    assert (c.evidence[ev]["reference"], c.narrative, c.place, c.forms) == (
        "A-2",
        "课间在走廊被推倒",
        "教学楼二楼走廊",
        ["physical"],
    )
    assert [x["reason"] for x in c.corrections] == ["笔录誊写错误", "编号写错", "原记录夸大", "地点与形式更正"]
    with pytest.raises(InvalidInput):
        app.cases.correct_statement(school.safety, cid, sid, text="再改", reason=" ")


def test_a_follow_up_note_is_corrected_even_after_closure(app, school, clock):
    cid = given_case(app, school, clock, "ready")
    fid = app.cases.record_follow_up(school.safety, cid, notes="双方正常")
    app.cases.close_case(school.principal, cid, reason="完成")
    app.cases.correct_follow_up(school.safety, cid, fid, notes="双方正常，家长满意", reason="补记家长意见")
    fu = case(app, school, cid).follow_ups[fid]
    assert (fu["notes"], fu["corrections"][0]["previous"]) == ("双方正常，家长满意", "双方正常")


# -- who may see and do what ----------------------------------------------------------------------------
def test_a_class_teacher_sees_only_a_status_line_of_a_case_of_their_class(app, school, clock):
    cid = given_case(app, school, clock, "approved")
    line = app.cases.case_status(school.teacher, cid)
    assert line == {"status": "intervening", "severity": "minor", "opened": clock.today, "overdue": False}
    with pytest.raises(PermissionDenied):
        app.cases.get_case(school.teacher, cid)
    assert (school.teacher.staff_id, "case.read", 0) in access_rows(app, cid)


def test_a_class_teacher_cannot_see_a_case_of_another_class_at_all(app, school, clock):
    theirs = given_case(app, school, clock)
    other = given_case(
        app, school, clock, parties=[(school.student(OTHER), "targeted"), (school.student(BULLYING), "bullying")]
    )
    with pytest.raises(PermissionDenied):
        app.cases.case_status(school.teacher, other)
    with pytest.raises(PermissionDenied):
        app.cases.get_case(school.teacher, other)
    assert app.cases.cases_of_school(school.teacher, school.id) == [{"case_id": theirs, "status": "reported"}]
    assert {c["case_id"] for c in app.cases.cases_of_school(school.other_teacher, school.id)} == {theirs, other}
    assert {c["case_id"] for c in app.cases.cases_of_school(school.safety, school.id)} == {theirs, other}


def test_a_class_teacher_or_counselor_cannot_write_to_a_case(app, school, clock):
    cid = given_case(app, school, clock, "investigating")
    before = case(app, school, cid).version
    for who in (school.counselor, school.teacher):
        with pytest.raises(PermissionDenied):
            app.cases.record_statement(who, cid, text="我来补充", from_person="本人")
        with pytest.raises(PermissionDenied):
            app.cases.complete_investigation(who, cid, findings="结论")
    with pytest.raises(PermissionDenied):
        app.cases.get_case(school.counselor, cid)
    assert case(app, school, cid).version == before
    denied = [r for r in access_rows(app, cid) if r[2] == 0]
    assert (school.counselor.staff_id, "case.write", 0) in denied


def test_every_case_command_is_gated_before_it_does_anything(app, school, clock):
    cid = given_case(app, school, clock, "ready")
    t = school.student(TARGETED)
    commands = [
        lambda a: app.cases.add_party(a, cid, student_id=school.student(OTHER), part="witness", reason="r"),
        lambda a: app.cases.remove_party(a, cid, student_id=school.student(WITNESS), reason="r"),
        lambda a: app.cases.take_safety_measure(a, cid, kind="other", note="n"),
        lambda a: app.cases.notify_guardian(a, cid, student_id=t, method="phone", notified_at=clock.now),
        lambda a: app.cases.add_evidence(a, cid, description="d"),
        lambda a: app.cases.start_investigation(a, cid),
        lambda a: app.cases.determine(a, cid, bullying=False, reason="r"),
        lambda a: app.cases.approve_determination(a, cid, reason="r"),
        lambda a: app.cases.return_determination(a, cid, reason="r"),
        lambda a: app.cases.record_mandatory_report(a, cid, agency="派出所", reported_at=clock.now),
        lambda a: app.cases.plan_intervention(
            a, cid, student_id=t, kind="support", plan="p", responsible_staff_id=school.teacher.staff_id
        ),
        lambda a: app.cases.lodge_appeal(a, cid, party_id=t, grounds="g"),
        lambda a: app.cases.record_follow_up(a, cid, notes="n"),
        lambda a: app.cases.close_case(a, cid, reason="r"),
        lambda a: app.cases.reopen_case(a, cid, reason="r"),
        lambda a: app.cases.correct_narrative(a, cid, narrative="n", reason="r"),
        lambda a: app.cases.invite_guardian(a, cid, student_id=t, method="phone"),
        lambda a: app.cases.record_guardian_participation(a, cid, student_id=t, participation="attended"),
    ]
    before = case(app, school, cid).version
    for actor in (school.teacher, school.counselor, school.admin, school.supervisor):
        for command in commands:
            with pytest.raises(PermissionDenied):
                command(actor)
    assert case(app, school, cid).version == before
    denied = [r for r in access_rows(app, cid) if r[2] == 0]
    assert len(denied) == 4 * len(commands)
    # the safety lead may run the case but neither approve nor close it
    for command in (commands[7], commands[8], commands[13]):
        with pytest.raises(PermissionDenied):
            command(school.safety)


def test_an_administrator_cannot_read_any_case_content(app, school, clock):
    cid = given_case(app, school, clock)
    for read in (
        lambda: app.cases.get_case(ADMIN, cid),
        lambda: app.cases.case_status(ADMIN, cid),
        lambda: app.cases.cases_of_school(ADMIN, school.id),
        lambda: app.cases.case_parties(ADMIN, cid),
    ):
        with pytest.raises(PermissionDenied):
            read()


def test_a_supervisor_reads_a_case_only_with_a_stated_reason_and_that_is_recorded(app, school, clock):
    cid = given_case(app, school, clock)
    with pytest.raises(PermissionDenied):
        app.cases.get_case(school.supervisor, cid)
    with pytest.raises(PermissionDenied):
        app.cases.get_case(school.supervisor, cid, break_glass="看")
    c = app.cases.get_case(school.supervisor, cid, break_glass="家长投诉处理不当，督导核查")
    assert c.narrative == NARRATIVE
    glass = [r for r in app.gate.access_log(school.supervisor, allowed=True) if r["break_glass"]]
    assert glass[0]["resource_id"] == cid and glass[0]["break_glass"] == "家长投诉处理不当，督导核查"


def test_the_safety_lead_of_another_school_cannot_touch_the_case(app, school, clock):
    cid = given_case(app, school, clock)
    other = make_school(app, "第二中学")
    with pytest.raises(PermissionDenied):
        app.cases.get_case(other.safety, cid)
    with pytest.raises(PermissionDenied):
        app.cases.start_investigation(other.safety, cid)
    with pytest.raises(PermissionDenied):
        app.cases.cases_of_school(other.principal, school.id)


# -- concurrency, erasure, storage ----------------------------------------------------------------------
def test_two_edits_from_the_same_stale_version_one_wins_and_the_other_conflicts(app, school, clock):
    cid = given_case(app, school, clock, "investigating")
    seen = case(app, school, cid).version
    first = app.cases.add_evidence(school.safety, cid, description="监控截图", expected_version=seen)
    with pytest.raises(Conflict) as e:
        app.cases.add_evidence(school.principal, cid, description="聊天记录", expected_version=seen)
    assert e.value.code == "conflict"
    c = case(app, school, cid)
    assert (c.version, list(c.evidence)) == (seen + 1, [first])


def test_the_store_refuses_a_second_save_from_the_same_version(app, school, clock):
    cid = given_case(app, school, clock, "investigating")
    a, b = app.load(cid, BullyingCase), app.load(cid, BullyingCase)
    a.add_evidence(evidence_id="a", description="第一份", actor=school.safety.staff_id, at=clock.now)
    b.add_evidence(evidence_id="b", description="第二份", actor=school.principal.staff_id, at=clock.now)
    app.commit(a)
    with pytest.raises(Conflict):
        app.commit(b)
    assert list(case(app, school, cid).evidence) == ["a"]


def test_an_erased_student_shows_as_erased_in_the_case_and_the_case_still_works(app, school, clock):
    cid = given_case(app, school, clock)
    app.erasure.shred(ADMIN, school.student(WITNESS), reason="保存期限届满")
    parties = {p["student_id"]: p for p in app.cases.case_parties(school.safety, cid)}
    assert parties[school.student(WITNESS)]["name"] == "已删除" and parties[school.student(WITNESS)]["erased"]
    assert parties[school.student(TARGETED)]["name"] == "张小明"
    app.cases.start_investigation(school.safety, cid)
    assert app.cases.case_status(school.teacher, cid)["status"] == "investigating"


def _as_lists(value):
    if isinstance(value, (list, tuple)):
        return [_as_lists(v) for v in value]
    if isinstance(value, dict):
        return {k: _as_lists(v) for k, v in value.items()}
    return value


def test_a_case_loads_the_same_from_a_snapshot(app, school, clock):
    cid = given_case(app, school, clock, "ready", severity="suspected_offence")
    app.cases.record_mandatory_report(school.safety, cid, agency="派出所", reported_at=clock.now)
    app.cases.record_follow_up(school.safety, cid, notes="正常")
    replayed = case(app, school, cid)
    app.take_snapshot(UUID(cid))
    restored = case(app, school, cid)
    # (a snapshot is JSON: a tuple of entries comes back a list, the same entries)
    assert _as_lists(restored.__dict__) == _as_lists(replayed.__dict__)
    assert restored.status == "following_up" and restored.next_follow_up_due == date(2026, 11, 11)
