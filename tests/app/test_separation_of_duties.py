"""Separation of duties (issue 15): an administrator never holds a credential for another
person and never changes their own roles; a content role (counselor, safety lead,
principal, supervisor; and administrator) takes a second person before it takes effect;
an administrator's new account gets a one-time set-up code, never a password; API tokens
are their holder's own, expire, have a scope, and die with a password change."""

from __future__ import annotations

from datetime import timedelta

import pytest
from conftest import ADMIN, Clock, School, make_school

from anxin.accounts import PasswordRejected, SetupCodeInvalid, SetupCodeRefused
from anxin.service import Anxin
from domain.common import Actor, InvalidInput, NotFound, PermissionDenied, WrongState
from domain.roster import Staff

GOOD = "lantern-orbit-42"


def _admin(app: Anxin, name: str = "root") -> Actor:
    sid = app.roster.add_staff(ADMIN, username=name, name="管理员", school_id=None, roles=["administrator"])
    return app.gate.actor(sid)


def _roles(app: Anxin, staff_id: str) -> set[str]:
    return {str(r) for r in app.gate.actor(staff_id).roles}


def _denied(app: Anxin, actor: Actor, action: str) -> int:
    return int(
        app.db.fetchone(
            "SELECT COUNT(*) FROM {t}anxin_access WHERE actor_id = ? AND allowed = 0 AND action = ?",
            (actor.staff_id, action),
        )[0]
    )


def test_an_administrator_cannot_change_their_own_roles(app: Anxin, school: School) -> None:
    root = _admin(app)
    for roles in (["administrator", "supervisor"], ["administrator", "counselor"], ["administrator"]):
        before = _denied(app, root, "account.roles")
        with pytest.raises(PermissionDenied):
            app.roster.change_staff_roles(root, root.staff_id, roles, [], "给自己加角色")
        assert _denied(app, root, "account.roles") == before + 1  # a refusal of the gate, recorded
    assert _roles(app, root.staff_id) == {"administrator"}
    assert app.roster.pending_grants(root) == []


def test_a_content_role_waits_for_a_second_person(app: Anxin, school: School) -> None:
    root, other = _admin(app, "root"), _admin(app, "root2")
    teacher = school.other_teacher
    request_id = app.roster.change_staff_roles(
        root, teacher.staff_id, ["class_teacher", "counselor"], [], "兼任心理老师"
    )
    assert request_id is not None
    assert _roles(app, teacher.staff_id) == {"class_teacher"}  # nothing yet
    # the one who asked, and the account's holder, cannot approve it
    with pytest.raises(PermissionDenied):
        app.roster.approve_role_grant(root, teacher.staff_id, request_id)
    with pytest.raises(PermissionDenied):
        app.roster.approve_role_grant(teacher, teacher.staff_id, request_id)
    with pytest.raises(PermissionDenied):  # a counselor is no second person for accounts
        app.roster.approve_role_grant(school.counselor, teacher.staff_id, request_id)
    listed = app.roster.pending_grants(other)
    assert [g["request_id"] for g in listed] == [request_id] and listed[0]["may_approve"]
    assert not app.roster.pending_grants(root)[0]["may_approve"]  # the requester sees it, waiting
    app.roster.approve_role_grant(other, teacher.staff_id, request_id)
    assert _roles(app, teacher.staff_id) == {"class_teacher", "counselor"}
    assert app.roster.pending_grants(other) == []
    # the request and the approval are events of the account, each with its audit entry
    staff = app.core.load(teacher.staff_id, Staff) if hasattr(app, "core") else app.load(teacher.staff_id, Staff)
    assert staff.roles == ["class_teacher", "counselor"]
    events = app.db.fetch(
        "SELECT actor_id FROM {t}anxin_audit WHERE kind = 'event' AND subject = ? ORDER BY seq", (teacher.staff_id,)
    )
    assert len(events) >= 3  # registered, requested, approved
    with pytest.raises(NotFound):  # approved once: nothing pending any more
        app.roster.approve_role_grant(other, teacher.staff_id, request_id)


def _decisions(app: Anxin, actor: Actor, action: str) -> list[tuple[int, str | None]]:
    """The actor's recorded decisions of `action`: (allowed, the school asked about)."""
    rows = app.db.fetch(
        "SELECT allowed, school_id FROM {t}anxin_access WHERE actor_id = ? AND action = ? ORDER BY id",
        (actor.staff_id, action),
    )
    return [(int(a), s) for a, s in rows]


def test_listing_the_grants_is_one_recorded_decision_at_the_scope_asked(app: Anxin, school: School) -> None:
    root = _admin(app)
    # given two grants waiting in the school (two rows of the list)
    for teacher in (school.teacher, school.other_teacher):
        app.roster.change_staff_roles(root, teacher.staff_id, ["class_teacher", "counselor"], [], "兼任心理老师")
    # when the principal lists their school's grants: one allowed decision, at the school
    assert len(app.roster.pending_grants(school.principal)) == 2
    assert _decisions(app, school.principal, "account.grant.list") == [(1, school.id)]
    # a district's administrator and the supervisor: the district (no school), or one school asked for
    assert len(app.roster.pending_grants(root)) == 2
    assert len(app.roster.pending_grants(root, school.id)) == 2
    assert _decisions(app, root, "account.grant.list") == [(1, None), (1, school.id)]
    assert app.roster.pending_grants(school.supervisor) == []  # school roles: nothing a supervisor approves
    assert _decisions(app, school.supervisor, "account.grant.list") == [(1, None)]
    # no per-row decision is recorded for the list
    assert _decisions(app, school.principal, "account.grant.approve") == []
    # a class teacher, a counselor, or a principal asking for another school: refused, and recorded
    other = make_school(app, "第二中学")
    for who, asked in ((school.teacher, None), (school.counselor, None), (school.principal, other.id)):
        with pytest.raises(PermissionDenied):
            app.roster.pending_grants(who, asked)
        assert _decisions(app, who, "account.grant.list")[-1] == (0, asked or school.id)
    with pytest.raises(NotFound):  # a school that does not exist
        app.roster.pending_grants(root, "no-such-school")
    # approving and declining one are decisions of their own, each recorded, refusals too
    first, second = app.roster.pending_grants(school.principal)
    with pytest.raises(PermissionDenied):
        app.roster.approve_role_grant(root, first["staff_id"], first["request_id"])  # who asked
    app.roster.approve_role_grant(school.principal, first["staff_id"], first["request_id"])
    app.roster.decline_role_grant(school.principal, second["staff_id"], second["request_id"], "不需要")
    assert _decisions(app, root, "account.grant.approve") == [(0, school.id)]
    assert _decisions(app, school.principal, "account.grant.approve") == [(1, school.id), (1, school.id)]


def test_the_schools_principal_approves_school_roles_a_supervisor_the_supervisor_role(
    app: Anxin, school: School
) -> None:
    root = _admin(app)
    teacher = school.other_teacher
    rid = app.roster.change_staff_roles(root, teacher.staff_id, ["class_teacher", "safety_lead"], [], "兼任德育")
    assert rid
    with pytest.raises(PermissionDenied):  # a supervisor approves the supervisor role only
        app.roster.approve_role_grant(school.supervisor, teacher.staff_id, rid)
    app.roster.approve_role_grant(school.principal, teacher.staff_id, rid)
    assert _roles(app, teacher.staff_id) == {"class_teacher", "safety_lead"}
    district = app.roster.add_staff(ADMIN, username="d1", name="区教研员", school_id=None, roles=["administrator"])
    rid = app.roster.change_staff_roles(root, district, ["supervisor"], [], "任督导")
    assert rid
    with pytest.raises(PermissionDenied):  # not a school role
        app.roster.approve_role_grant(school.principal, district, rid)
    app.roster.approve_role_grant(school.supervisor, district, rid)
    assert _roles(app, district) == {"supervisor"}


def test_narrowing_takes_no_second_person_and_drops_a_pending_grant(app: Anxin, school: School) -> None:
    root = _admin(app)
    counselor = school.other_counselor
    rid = app.roster.change_staff_roles(root, counselor.staff_id, ["counselor", "principal"], [], "升任")
    assert rid and _roles(app, counselor.staff_id) == {"counselor"}
    assert app.roster.change_staff_roles(root, counselor.staff_id, ["class_teacher"], ["七年级1班"], "调岗") is None
    assert _roles(app, counselor.staff_id) == {"class_teacher"}
    with pytest.raises(NotFound):  # the grant asked before is gone
        app.roster.approve_role_grant(school.principal, counselor.staff_id, rid)


def test_a_declined_grant_changes_nothing(app: Anxin, school: School) -> None:
    root = _admin(app)
    teacher = school.teacher
    rid = app.roster.change_staff_roles(root, teacher.staff_id, ["class_teacher", "principal"], ["七年级1班"], "升任")
    assert rid
    app.roster.decline_role_grant(school.principal, teacher.staff_id, rid, "没有这个任命")
    assert _roles(app, teacher.staff_id) == {"class_teacher"}
    with pytest.raises(NotFound):
        app.roster.approve_role_grant(school.principal, teacher.staff_id, rid)


def test_the_domain_refuses_self_approval_and_self_change() -> None:
    from datetime import UTC, datetime
    from uuid import uuid4

    at = datetime(2026, 10, 12, tzinfo=UTC)
    staff = Staff.register(
        id=uuid4(), school_id="s", username="u", name="某", roles=["class_teacher"], actor="a", at=at
    )
    with pytest.raises(InvalidInput):
        staff.change_roles(roles=["class_teacher"], classes=[], reason="x", actor=str(staff.id), at=at)
    with pytest.raises(InvalidInput):  # a widening by a content role is never applied at once
        staff.change_roles(roles=["counselor"], classes=[], reason="x", actor="a", at=at)
    staff.request_grant(request_id="r1", roles=["counselor"], classes=[], reason="x", actor="a", at=at)
    with pytest.raises(InvalidInput):
        staff.approve_grant(request_id="r1", actor="a", at=at)
    with pytest.raises(InvalidInput):
        staff.approve_grant(request_id="r1", actor=str(staff.id), at=at)
    with pytest.raises(WrongState):
        staff.approve_grant(request_id="r2", actor="b", at=at)
    staff.approve_grant(request_id="r1", actor="b", at=at)
    assert staff.roles == ["counselor"] and staff.pending_grant() is None


def test_an_administrators_new_account_gets_a_set_up_code_never_a_password(
    app: Anxin, school: School, clock: Clock
) -> None:
    root = _admin(app)
    staff_id, code, rid = app.roster.create_account(
        root, username="newp", name="新校长", school_id=school.id, roles=["principal"]
    )
    assert rid is not None and _roles(app, staff_id) == set()  # the principal role waits for approval
    assert app.db.fetchone("SELECT password_hash FROM {t}anxin_staff WHERE staff_id = ?", (staff_id,))[0] is None
    assert app.accounts.authenticate("newp", "") is None
    with pytest.raises(PasswordRejected):
        app.accounts.set_up(code, "12345678", "12345678")
    assert app.accounts.set_up(code, GOOD, GOOD) == staff_id
    assert app.accounts.authenticate("newp", GOOD) == staff_id
    with pytest.raises(SetupCodeInvalid):  # single use
        app.accounts.set_up(code, GOOD + "x", GOOD + "x")
    assert app.db.fetchone("SELECT COUNT(*) FROM {t}anxin_audit WHERE kind = 'account_setup'")[0] == 1
    # stored hashed only
    assert app.db.fetchone("SELECT COUNT(*) FROM {t}anxin_setup_codes WHERE code_hash = ?", (code,))[0] == 0
    # a code expires
    _sid, late, _rid = app.roster.create_account(
        root, username="late", name="迟到", school_id=school.id, roles=["class_teacher"], classes=["七年级3班"]
    )
    clock.now += timedelta(hours=73)
    with pytest.raises(SetupCodeInvalid):
        app.accounts.set_up(late, GOOD, GOOD)


def test_an_administrator_reissues_an_expired_or_lost_set_up_code_and_the_old_one_stops_working(
    app: Anxin, school: School, clock: Clock
) -> None:
    root = _admin(app)
    staff_id, first, _rid = app.roster.create_account(
        root, username="newt", name="新老师", school_id=school.id, roles=["class_teacher"], classes=["七年级3班"]
    )
    assert app.accounts.setup_state(staff_id).expires_at == clock.now + timedelta(hours=72)
    # lost: a new code while the first still works; the first stops at once
    lost = app.accounts.reissue_setup_code(root, staff_id)
    assert lost.code != first and lost.expires_at == clock.now + timedelta(hours=72)
    assert app.accounts.setup_staff(first) is None and app.accounts.setup_staff(lost.code) == staff_id
    with pytest.raises(SetupCodeInvalid):
        app.accounts.set_up(first, GOOD, GOOD)
    # expired: nothing live, then a new one
    clock.now += timedelta(hours=73)
    assert app.accounts.setup_state(staff_id).expires_at is None
    assert app.accounts.setup_staff(lost.code) is None
    fresh = app.accounts.reissue_setup_code(root, staff_id)
    assert app.accounts.setup_state(staff_id).expires_at == fresh.expires_at
    # each issue is recorded: the gate's allowed decision and a setup_code_issue entry
    issued = app.db.fetch("SELECT actor_id, subject FROM {t}anxin_audit WHERE kind = 'setup_code_issue' ORDER BY seq")
    assert issued == [(root.staff_id, staff_id)] * 2
    allowed = app.db.fetchone(
        "SELECT COUNT(*) FROM {t}anxin_access WHERE actor_id = ? AND action = 'account.admin' "
        "AND resource_id = ? AND allowed = 1",
        (root.staff_id, staff_id),
    )[0]
    assert allowed == 2
    # nobody but an administrator: refused, recorded, no code made
    before = _denied(app, school.principal, "account.admin")
    with pytest.raises(PermissionDenied):
        app.accounts.reissue_setup_code(school.principal, staff_id)
    assert _denied(app, school.principal, "account.admin") == before + 1
    assert app.accounts.setup_staff(fresh.code) == staff_id  # the live one untouched
    # used once: the code cannot be used again, and no new code is issued for the account
    assert app.accounts.set_up(fresh.code, GOOD, GOOD) == staff_id
    with pytest.raises(SetupCodeInvalid):
        app.accounts.set_up(fresh.code, GOOD + "x", GOOD + "x")
    with pytest.raises(SetupCodeRefused) as refused:
        app.accounts.reissue_setup_code(root, staff_id)
    assert refused.value.problem == "done"
    assert app.accounts.authenticate("newt", GOOD) == staff_id  # the password stays
    # a deactivated account gets none either
    other, _code, _rid = app.roster.create_account(
        root, username="gone", name="离职", school_id=school.id, roles=["class_teacher"], classes=["七年级3班"]
    )
    app.roster.deactivate_staff(root, other, "调离")
    with pytest.raises(SetupCodeRefused):
        app.accounts.reissue_setup_code(root, other)
    assert len(app.db.fetch("SELECT 1 FROM {t}anxin_audit WHERE kind = 'setup_code_issue'")) == 2


def test_an_administrator_cannot_obtain_a_token_for_another_account(app: Anxin, school: School) -> None:
    import inspect

    root = _admin(app)
    # the only way to make a token names no account: it is the signed-in person's own
    params = list(inspect.signature(app.accounts.issue_token).parameters)
    assert params[:2] == ["actor", "label"] and "staff_id" not in params
    token = app.accounts.issue_token(root, "mine")
    assert app.accounts.token_staff(token) == root.staff_id
    assert app.accounts.tokens_of(school.principal.staff_id) == []


def test_tokens_expire_are_listed_revocable_and_die_with_a_password_change(
    app: Anxin, school: School, clock: Clock
) -> None:
    from anxin.passwords import hash_password

    me = school.counselor
    app.accounts.set_password_hash(me.staff_id, hash_password("old-passw0rd"))
    short = app.accounts.issue_token(me, "a", days=30, scope="read")
    long = app.accounts.issue_token(me, "b", days=90, scope="write")
    listed = app.accounts.tokens_of(me.staff_id)
    assert {(t["label"], t["scope"], t["live"]) for t in listed} == {("a", "read", True), ("b", "write", True)}
    grant = app.accounts.token(long)
    assert grant is not None and grant.scope == "write" and grant.staff_id == me.staff_id
    clock.now += timedelta(days=31)
    assert app.accounts.token(short) is None and app.accounts.token(long) is not None  # expired
    assert not next(t for t in app.accounts.tokens_of(me.staff_id) if t["label"] == "a")["live"]
    app.accounts.change_password(me, "old-passw0rd", "new-passw0rd", "new-passw0rd")
    assert app.accounts.token(long) is None  # revoked with the password change
    assert all(t["revoked_at"] for t in app.accounts.tokens_of(me.staff_id) if t["label"] == "b")
