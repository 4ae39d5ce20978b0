"""Referrals (转介) to an agency of the registry, as pure domain objects: the states (sent →
accepted → feedback received → closed) each an event with who and when, refused out of order
with nothing recorded; the feedback's clock from the policy and its overdue rule; the
agency's name not correctable to free text; a crisis referral naming its agency (v2) and a
version 1 one read as typed."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest

from domain.common import InvalidInput
from domain.policy import Policy
from domain.support import (
    EntryNotFound,
    FileClosed,
    ReferralAgencyLocked,
    ReferralWrongState,
    SupportFile,
    referral_feedback_overdue,
)
from domain.support.events import CrisisReferralMade

POLICY = Policy()
T0 = datetime(2026, 10, 12, 9, 0, tzinfo=UTC)
AGENCY = {"id": "agency-1", "kind": "mental_health", "name": "安心市精神卫生中心"}


def new_file() -> SupportFile:
    return SupportFile.open(
        id=uuid4(),
        school_id="school-1",
        student_id="student-1",
        category="情绪困扰",
        risk_level="key",
        reason="情绪低落",
        responsible_id="c1",
        policy=POLICY,
        actor="c1",
        at=T0,
    )


def referred(policy: Policy = POLICY, on: date | None = None) -> tuple[SupportFile, str]:
    on = on or T0.date()
    f = new_file()
    f.send_referral(
        entry_id="r1", referred_on=on, agency=AGENCY, reason="需要专科评估", policy=policy, actor="c1", at=T0
    )
    return f, "r1"


def test_a_referral_moves_sent_accepted_feedback_closed_each_with_who_and_when() -> None:
    f, rid = referred()
    e = f.entries[rid]
    assert (e["status"], e["to"], e["agency_id"], e["agency_kind"]) == (
        "sent",
        AGENCY["name"],
        "agency-1",
        "mental_health",
    )
    assert e["feedback_due"] == T0.date() + timedelta(days=POLICY.referral_feedback_days)
    f.accept_referral(entry_id=rid, accepted_on=T0.date(), note="已预约门诊", actor="c2", at=T0 + timedelta(days=1))
    f.receive_referral_feedback(
        entry_id=rid,
        received_on=T0.date() + timedelta(days=5),
        summary="建议药物治疗并定期复诊",
        actor="c1",
        at=T0 + timedelta(days=5),
    )
    f.close_referral(entry_id=rid, reason="已按回执调整方案", actor="c1", at=T0 + timedelta(days=6))
    e = f.entries[rid]
    assert e["status"] == "closed"
    assert [(s["state"], s["actor"], s["at"]) for s in e["steps"]] == [
        ("accepted", "c2", T0 + timedelta(days=1)),
        ("feedback", "c1", T0 + timedelta(days=5)),
        ("closed", "c1", T0 + timedelta(days=6)),
    ]
    kinds = [type(ev).__name__ for ev in f.collect_events()]
    assert kinds[-4:] == ["ReferralSent", "ReferralAccepted", "ReferralFeedbackReceived", "ReferralClosed"]


@pytest.mark.parametrize(
    "steps, attempt",
    [
        ((), "feedback"),  # the feedback before the agency accepted it
        (("accept",), "accept"),  # accepted twice
        (("accept", "feedback"), "feedback"),
        (("close",), "accept"),
        (("close",), "close"),  # a closed referral stays closed
    ],
)
def test_a_step_out_of_order_is_refused_in_chinese_and_records_nothing(steps: tuple[str, ...], attempt: str) -> None:
    f, rid = referred()
    day = T0.date()
    do = {
        "accept": lambda: f.accept_referral(entry_id=rid, accepted_on=day, note="", actor="c1", at=T0),
        "feedback": lambda: f.receive_referral_feedback(
            entry_id=rid, received_on=day, summary="回执", actor="c1", at=T0
        ),
        "close": lambda: f.close_referral(entry_id=rid, reason="撤回", actor="c1", at=T0),
    }
    for s in steps:
        do[s]()
    before = (f.version, dict(f.entries[rid]))
    with pytest.raises(ReferralWrongState) as e:
        do[attempt]()
    assert "该转介目前为「" in e.value.text and "不能" in e.value.text
    assert (f.version, dict(f.entries[rid])) == before


def test_a_referral_may_be_closed_before_any_feedback_with_a_reason() -> None:
    f, rid = referred()
    with pytest.raises(InvalidInput):
        f.close_referral(entry_id=rid, reason=" ", actor="c1", at=T0)
    f.close_referral(entry_id=rid, reason="机构不接收，改转他处", actor="c1", at=T0)
    assert f.entries[rid]["status"] == "closed"


def test_bad_input_is_refused_and_nothing_changes() -> None:
    f, rid = referred()
    version = f.version
    with pytest.raises(EntryNotFound):
        f.accept_referral(entry_id="nope", accepted_on=T0.date(), note="", actor="c1", at=T0)
    with pytest.raises(InvalidInput):  # no agency picked
        f.send_referral(entry_id="r2", referred_on=T0.date(), agency={}, reason="x", policy=POLICY, actor="c1", at=T0)
    with pytest.raises(InvalidInput):  # accepted before it was sent
        f.accept_referral(entry_id=rid, accepted_on=T0.date() - timedelta(days=1), note="", actor="c1", at=T0)
    with pytest.raises(InvalidInput):  # a feedback in the future
        f.accept_referral(entry_id=rid, accepted_on=T0.date() + timedelta(days=1), note="", actor="c1", at=T0)
    assert f.version == version and f.entries[rid]["status"] == "sent"


def test_a_closed_file_takes_no_referral_step() -> None:
    f, rid = referred()
    f.close(reason="好转", actor="c1", at=T0)
    with pytest.raises(FileClosed):
        f.accept_referral(entry_id=rid, accepted_on=T0.date(), note="", actor="c1", at=T0)


# -- the feedback's clock (pure) -----------------------------------------------------------------
def test_the_feedback_is_due_by_the_policy_and_overdue_only_after_that_day_while_open() -> None:
    policy = Policy(referral_feedback_days=10)
    f, rid = referred(policy)
    due = T0.date() + timedelta(days=10)
    assert f.entries[rid]["feedback_due"] == due
    assert not f.referral_overdue(f.entries[rid], due)
    assert f.referral_overdue(f.entries[rid], due + timedelta(days=1))
    f.accept_referral(entry_id=rid, accepted_on=T0.date(), note="", actor="c1", at=T0)
    assert f.referral_overdue(f.entries[rid], due + timedelta(days=1))  # accepted: still owed
    f.receive_referral_feedback(entry_id=rid, received_on=T0.date(), summary="回执", actor="c1", at=T0)
    assert not f.referral_overdue(f.entries[rid], due + timedelta(days=30))


@pytest.mark.parametrize(
    "status, overdue", [("sent", True), ("accepted", True), ("feedback", False), ("closed", False)]
)
def test_the_overdue_rule_by_state(status: str, overdue: bool) -> None:
    due = date(2026, 10, 26)
    assert referral_feedback_overdue(status, due, due + timedelta(days=1)) is overdue
    assert referral_feedback_overdue(status, due, due) is False
    assert referral_feedback_overdue(status, None, due) is False


def test_an_agency_referral_keeps_the_registrys_name() -> None:
    f, rid = referred()
    with pytest.raises(ReferralAgencyLocked):
        f.correct_entry(entry_id=rid, changes={"to": "别的医院"}, reason="写错", actor="c1", at=T0)
    f.correct_entry(entry_id=rid, changes={"reason": "需要专科评估与诊断"}, reason="补充", actor="c1", at=T0)
    assert f.entries[rid]["to"] == AGENCY["name"]


# -- the crisis checklist's referral names its agency ----------------------------------------------
def test_a_crisis_referral_records_its_agency_and_a_version_1_one_reads_as_typed() -> None:
    f = new_file()
    f.open_crisis(
        crisis_id="k1",
        trigger="counselor",
        source={"kind": "file", "id": "x"},
        reason="自伤言语",
        policy=POLICY,
        actor="c1",
        at=T0,
    )
    f.record_crisis_referral(
        institution=AGENCY["name"], agency_id=AGENCY["id"], note="", policy=POLICY, actor="c1", at=T0
    )
    assert f.crisis is not None and f.crisis["done"]["referral"]["agency_id"] == "agency-1"
    state: dict[str, Any] = {"crisis_id": "k1", "institution": "某医院", "note": ""}
    CrisisReferralMade.upcast_v1_v2(state)
    assert state["agency_id"] is None and CrisisReferralMade.class_version == 2
