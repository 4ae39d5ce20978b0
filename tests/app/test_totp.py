"""Two-step verification in the application (anxin.two_step): an enrolment takes effect
only once a first code confirms it; a code is accepted one step either side of now and
never twice; a recovery code once; the secret is never in clear in the database and still
opens after a master-key rotation; turning it off takes the password and a code; a school's
requirement concerns its content roles only; an administrator resets, never sees.

Every test runs on a real SQLite file and a real PostgreSQL schema; codes are computed
with pyotp from the secret, at the test's clock."""

from __future__ import annotations

import base64
from typing import Any

import pyotp
import pytest
from conftest import ADMIN, Clock, School, Store, make_school
from store_support import raw_bytes

from anxin import keyring
from anxin.accounts import PasswordRejected
from anxin.crypto import MasterKey
from anxin.passwords import hash_password
from anxin.service import Anxin
from anxin.two_step import (
    DISTRICT_SCOPE,
    AlreadyEnrolled,
    CodeRejected,
    EnrolmentExpired,
    NotEnrolled,
    OwnReset,
    new_secret,
)
from domain.common import Actor, NotFound, PermissionDenied

PASSWORD = "two-step-pass-2026"


def code_at(secret: str, clock: Clock, steps: int = 0) -> str:
    """The code the person's app shows at the test's clock (`steps` of 30 s later)."""
    return str(pyotp.TOTP(secret).at(clock.now.timestamp() + 30 * steps))


def enrolled(app: Anxin, who: Actor, clock: Clock) -> tuple[str, list[str]]:
    secret = new_secret()
    return secret, app.two_step.enrol(who.staff_id, secret, code_at(secret, clock))


def entries(app: Anxin, kind: str, subject: str | None = None) -> list[tuple[str, str, str]]:
    rows = app.db.fetch("SELECT actor_id, subject, detail FROM {t}anxin_audit WHERE kind = ? ORDER BY seq", (kind,))
    return [(a, s, d) for a, s, d in rows if subject is None or s == subject]


def with_password(app: Anxin, who: Actor) -> Actor:
    app.accounts.set_password_hash(who.staff_id, hash_password(PASSWORD))
    return who


# -- enrolment ---------------------------------------------------------------------------------------
def test_an_enrolment_takes_effect_only_once_a_first_code_confirms_it(app: Anxin, school: School, clock: Clock) -> None:
    me = school.counselor
    secret = new_secret()

    # when a wrong code is sent, then nothing is stored and nothing recorded
    with pytest.raises(CodeRejected):
        app.two_step.enrol(me.staff_id, secret, "000000" if code_at(secret, clock) != "000000" else "111111")
    assert not app.two_step.enrolled(me.staff_id)
    assert app.two_step.stage_after_password(me.staff_id) is None
    assert entries(app, "two_step_enrol") == []

    # when the app's code is sent, then it is on, with ten single-use recovery codes, audited
    codes = app.two_step.enrol(me.staff_id, secret, code_at(secret, clock))
    assert len(codes) == 10 and len(set(codes)) == 10
    assert all(len(c) == 11 and c[5] == "-" for c in codes)
    assert app.two_step.enrolled(me.staff_id)
    assert app.two_step.stage_after_password(me.staff_id) == "code"
    assert app.two_step.status(me.staff_id).recovery_left == 10
    assert [(a, s) for a, s, _ in entries(app, "two_step_enrol")] == [(me.staff_id, me.staff_id)]

    # and a second enrolment is refused while one is on
    with pytest.raises(AlreadyEnrolled):
        app.two_step.enrol(me.staff_id, new_secret(), "123456")


def test_an_enrolment_without_a_secret_of_ours_is_refused(app: Anxin, school: School) -> None:
    # given no enrolment under way (a stale page: no secret), a short key, or one not base32
    for secret in ("", "ABCDEFGHIJKLMNOP", "not base32 at all!!!!!!!!!!!!"):
        with pytest.raises(EnrolmentExpired):
            app.two_step.enrol(school.counselor.staff_id, secret, "123456")
    assert not app.two_step.enrolled(school.counselor.staff_id)


# -- codes --------------------------------------------------------------------------------------------
def test_a_code_passes_one_step_either_side_of_now_and_never_twice(app: Anxin, school: School, clock: Clock) -> None:
    me = school.counselor
    secret, _codes = enrolled(app, me, clock)

    # the code that confirmed the enrolment does not pass again
    assert app.two_step.passes(me.staff_id, code_at(secret, clock)) is None

    # a minute later: two steps back is too old; one step back passes, once
    clock.advance(seconds=60)
    assert app.two_step.passes(me.staff_id, code_at(secret, clock, -2)) is None
    passed = app.two_step.passes(me.staff_id, code_at(secret, clock, -1))
    assert passed is not None and passed.method == "code"
    assert app.two_step.passes(me.staff_id, code_at(secret, clock, -1)) is None  # replayed

    # a phone a step ahead passes; then today's code, now behind the last one used, does not
    assert app.two_step.passes(me.staff_id, " " + code_at(secret, clock, 1)[:3] + " " + code_at(secret, clock, 1)[3:])
    assert app.two_step.passes(me.staff_id, code_at(secret, clock)) is None
    assert app.two_step.passes(me.staff_id, code_at(secret, clock, 2)) is None  # too far ahead

    # another person's code is not this person's
    other_secret, _ = enrolled(app, school.other_counselor, clock)
    clock.advance(seconds=90)
    assert app.two_step.passes(me.staff_id, code_at(other_secret, clock)) is None


def test_a_recovery_code_passes_once_instead_of_a_code(app: Anxin, school: School, clock: Clock) -> None:
    me = school.counselor
    _secret, codes = enrolled(app, me, clock)

    passed = app.two_step.passes(me.staff_id, codes[3].upper().replace("-", " "))
    assert passed is not None and (passed.method, passed.recovery_left) == ("recovery", 9)
    assert app.two_step.passes(me.staff_id, codes[3]) is None
    assert app.two_step.passes(school.other_counselor.staff_id, codes[4]) is None  # not anyone else's
    assert app.two_step.passes(me.staff_id, "abcde-fghjk") is None
    assert app.two_step.status(me.staff_id).recovery_left == 9


def test_the_secret_and_the_recovery_codes_are_never_in_clear_in_the_database(
    store: Store, app: Anxin, school: School, clock: Clock
) -> None:
    secret, codes = enrolled(app, school.counselor, clock)

    raw = raw_bytes(store)

    assert secret.encode() not in raw and secret.lower().encode() not in raw
    assert base64.b32decode(secret) not in raw  # nor the key bytes themselves
    for code in codes:
        assert code.encode() not in raw and code.replace("-", "").encode() not in raw


def test_a_sealed_secret_moved_to_another_account_does_not_open(app: Anxin, school: School, clock: Clock) -> None:
    from anxin.crypto import Tampered

    enrolled(app, school.counselor, clock)
    enrolled(app, school.other_counselor, clock)
    mine = app.db.fetchone("SELECT sealed FROM {t}anxin_two_step WHERE staff_id = ?", (school.counselor.staff_id,))
    app.db.execute(
        "UPDATE {t}anxin_two_step SET sealed = ? WHERE staff_id = ?", (mine[0], school.other_counselor.staff_id)
    )
    with pytest.raises(Tampered):
        app.two_step.passes(school.other_counselor.staff_id, "123456")


def test_a_code_still_passes_after_a_master_key_rotation(store: Store, clock: Clock) -> None:
    app = store.open(clock)
    school = make_school(app)
    secret, _ = enrolled(app, school.counselor, clock)
    new_key = MasterKey.generate()

    keyring.rotate(app, ADMIN, new_key=new_key)
    clock.advance(seconds=30)

    # a process holding only the new key opens the secret and checks the code
    after = store.open(clock, keys=[new_key])
    passed = after.two_step.passes(school.counselor.staff_id, code_at(secret, clock))
    assert passed is not None and passed.method == "code"


# -- turning it off -----------------------------------------------------------------------------------
def test_turning_it_off_takes_the_password_and_a_current_code(app: Anxin, school: School, clock: Clock) -> None:
    me = with_password(app, school.counselor)
    with pytest.raises(NotEnrolled):
        app.two_step.disable(me, PASSWORD, "123456")
    secret, _ = enrolled(app, me, clock)
    clock.advance(seconds=30)

    # a wrong password: refused, audited, still on (and the code not spent)
    with pytest.raises(PasswordRejected):
        app.two_step.disable(me, "wrong-password", code_at(secret, clock))
    assert app.two_step.enrolled(me.staff_id)
    assert any('"current_password"' in d for _a, _s, d in entries(app, "login_failed", me.staff_id))

    # a wrong code: refused, audited, still on
    with pytest.raises(CodeRejected):
        app.two_step.disable(me, PASSWORD, "abcde-abcde")
    assert app.two_step.enrolled(me.staff_id)
    assert any('"two_step_code"' in d for _a, _s, d in entries(app, "login_failed", me.staff_id))

    # both right: off, recovery codes gone, audited
    app.two_step.disable(me, PASSWORD, code_at(secret, clock))
    assert not app.two_step.enrolled(me.staff_id)
    assert app.two_step.status(me.staff_id).recovery_left == 0
    assert app.db.fetchone("SELECT COUNT(*) FROM {t}anxin_two_step_recovery WHERE staff_id = ?", (me.staff_id,)) == (0,)
    assert [a for a, _s, _d in entries(app, "two_step_disable", me.staff_id)] == [me.staff_id]


# -- the school's requirement -------------------------------------------------------------------------
def test_a_schools_requirement_concerns_the_content_roles_of_that_school_only(
    app: Anxin, school: School, clock: Clock
) -> None:
    other = make_school(app, "第二中学")
    assert not app.two_step.required_for(school.counselor.staff_id)

    # when the district's administrator turns it on for the first school
    assert app.two_step.set_required(ADMIN, school.id, True) is True

    # then its counselor, safety lead and principal must enrol; its class teacher need not,
    # nor the district's supervisor, nor the other school's counselor
    for who in (school.counselor, school.safety, school.principal):
        assert app.two_step.required_for(who.staff_id)
        assert app.two_step.stage_after_password(who.staff_id) == "enrol"
    for who in (school.teacher, school.supervisor, other.counselor):
        assert not app.two_step.required_for(who.staff_id)
        assert app.two_step.stage_after_password(who.staff_id) is None

    # the change is an audit entry (ids and codes), once: the same setting again changes nothing
    assert app.two_step.set_required(ADMIN, school.id, True) is False
    ((actor, subject, detail),) = entries(app, "school_setting")
    assert (actor, subject) == (ADMIN.staff_id, school.id) and '"value":"1"' in detail

    # the district's own accounts are a scope of their own
    app.two_step.set_required(ADMIN, DISTRICT_SCOPE + "default", True)
    assert app.two_step.required_for(school.supervisor.staff_id)
    settings = {s.scope: s for s in app.two_step.settings(ADMIN)}
    assert settings[school.id].required and not settings[other.id].required
    assert (settings[school.id].content_staff, settings[school.id].enrolled) == (
        4,
        0,
    )  # two counselors, the safety lead, the principal

    # turned off again: nobody must
    app.two_step.set_required(ADMIN, school.id, False)
    assert not app.two_step.required_for(school.counselor.staff_id)


def test_only_an_administrator_of_the_school_or_the_district_sets_the_requirement(app: Anxin, school: School) -> None:
    other = make_school(app, "第二中学")
    other_admin = app.gate.actor(
        app.roster.add_staff(ADMIN, username="admin-2", name="二中管理员", school_id=other.id, roles=["administrator"])
    )
    elsewhere = Actor("far-admin", frozenset(ADMIN.roles), district="another")
    refusals_before = app.db.fetchone("SELECT COUNT(*) FROM {t}anxin_access WHERE allowed = 0")[0]

    for who in (school.principal, school.counselor, school.supervisor, other_admin):
        with pytest.raises(PermissionDenied):
            app.two_step.set_required(who, school.id, True)
    with pytest.raises(PermissionDenied):  # the district's own accounts: the district's administrator only
        app.two_step.set_required(other_admin, DISTRICT_SCOPE + "default", True)
    with pytest.raises(NotFound):  # another district's administrator: not a school of theirs
        app.two_step.set_required(elsewhere, school.id, True)

    assert not app.two_step.required_for(school.counselor.staff_id)
    refusals = app.db.fetchone("SELECT COUNT(*) FROM {t}anxin_access WHERE allowed = 0")[0]
    assert refusals - refusals_before == 5  # each refusal decided and recorded by the gate
    assert entries(app, "school_setting") == []
    # the school's own administrator may
    assert app.two_step.set_required(other_admin, other.id, True) is True


# -- the administrator's reset ------------------------------------------------------------------------
def _admin(app: Anxin, school_id: str | None = None) -> Actor:
    return app.gate.actor(
        app.roster.add_staff(ADMIN, username="admin-r", name="管理员", school_id=school_id, roles=["administrator"])
    )


def test_an_administrator_resets_a_lost_phone_and_ends_the_persons_sessions(
    app: Anxin, school: School, clock: Clock
) -> None:
    admin = _admin(app)
    me = school.counselor
    secret, _codes = enrolled(app, me, clock)
    app.accounts.prepare()
    app.accounts.start_session(me.staff_id, 0.0, expired_before=-1.0)

    assert app.two_step.reset(admin, me.staff_id) is True

    assert not app.two_step.enrolled(me.staff_id)
    assert app.db.fetchone("SELECT COUNT(*) FROM {t}anxin_web_sessions WHERE staff_id = ?", (me.staff_id,)) == (0,)
    assert app.db.fetchone("SELECT COUNT(*) FROM {t}anxin_two_step_recovery WHERE staff_id = ?", (me.staff_id,)) == (0,)
    ((actor, subject, detail),) = entries(app, "two_step_reset")
    assert (actor, subject) == (admin.staff_id, me.staff_id) and secret not in detail
    # nothing more to reset
    assert app.two_step.reset(admin, me.staff_id) is False


def test_a_reset_is_the_administrators_and_never_their_own(app: Anxin, school: School, clock: Clock) -> None:
    admin = _admin(app)
    enrolled(app, admin, clock)
    enrolled(app, school.counselor, clock)

    for who in (school.principal, school.supervisor, school.other_counselor):
        with pytest.raises(PermissionDenied):
            app.two_step.reset(who, school.counselor.staff_id)
    with pytest.raises(OwnReset):
        app.two_step.reset(admin, admin.staff_id)
    school_admin = _school_admin(app, make_school(app, "第二中学").id)
    with pytest.raises(NotFound):  # another school's account is not theirs to manage
        app.two_step.reset(school_admin, school.counselor.staff_id)

    assert app.two_step.enrolled(school.counselor.staff_id) and app.two_step.enrolled(admin.staff_id)
    assert entries(app, "two_step_reset") == []


def _school_admin(app: Anxin, school_id: str) -> Actor:
    return app.gate.actor(
        app.roster.add_staff(ADMIN, username="admin-s", name="学校管理员", school_id=school_id, roles=["administrator"])
    )


def test_what_an_administrator_sees_of_an_account_holds_no_secret(app: Anxin, school: School, clock: Clock) -> None:
    admin = _admin(app)
    secret, codes = enrolled(app, school.counselor, clock)

    seen: Any = app.two_step.status_of(admin, school.counselor.staff_id)

    assert seen.enrolled and seen.recovery_left == 10
    assert not any(secret in str(v) or any(c in str(v) for c in codes) for v in vars(seen).values())
    with pytest.raises(PermissionDenied):
        app.two_step.status_of(school.principal, school.counselor.staff_id)
