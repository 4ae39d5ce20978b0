"""A school's 学生欺凌治理委员会 (domain.committee) on its own: members appointed in a
capacity and leaving with a reason; no database, no gate."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import reduce
from uuid import uuid4

import pytest

from domain.committee import CAPACITIES, GoverningBody, UnknownMember
from domain.common import InvalidInput

T0 = datetime(2026, 10, 12, 9, 0, tzinfo=UTC)


def body() -> GoverningBody:
    return GoverningBody.constitute(id=uuid4(), school_id="school-1", actor="principal-1", at=T0)


def test_members_sit_in_a_capacity_and_one_who_leaves_is_kept_with_why():
    b = body()
    b.appoint(member_id="m1", name="钱警官", capacity="rule_of_law_vice_principal", actor="principal-1", at=T0)
    b.appoint(member_id="m2", name="家长甲", capacity="parent_rep", actor="principal-1", at=T0)
    b.remove(member_id="m2", reason="孩子已毕业", actor="principal-1", at=T0)
    assert [m["id"] for m in b.active_members] == ["m1"]
    assert b.members["m2"]["left_reason"] == "孩子已毕业"
    assert b.scope().kind == "committee" and b.scope().links == ()
    replayed = reduce(lambda agg, e: e.mutate(agg), b.collect_events(), None)
    assert replayed.members == b.members


@pytest.mark.parametrize(
    "changes",
    [{"capacity": "mascot"}, {"name": " "}, {"name": "名" * 51}, {"member_id": "m1"}],
)
def test_a_bad_appointment_is_refused_and_changes_nothing(changes):
    b = body()
    b.appoint(member_id="m1", name="赵校长", capacity="school_leader", actor="p", at=T0)
    fields = {"member_id": "m2", "name": "孙律师", "capacity": "legal_adviser", "actor": "p", "at": T0, **changes}
    with pytest.raises(InvalidInput):
        b.appoint(**fields)
    assert list(b.members) == ["m1"] and len(b.pending_events) == 2


def test_only_a_current_member_leaves_or_is_present():
    b = body()
    b.appoint(member_id="m1", name="赵校长", capacity="school_leader", actor="p", at=T0)
    b.remove(member_id="m1", reason="调离", actor="p", at=T0)
    with pytest.raises(UnknownMember):
        b.remove(member_id="m1", reason="再次", actor="p", at=T0)
    with pytest.raises(UnknownMember):
        b.check_present(["m1"])


def test_the_capacities_are_those_of_the_regulation():
    assert {"法治副校长", "法律顾问", "专家", "家长代表", "学生代表"} <= set(CAPACITIES.values())
