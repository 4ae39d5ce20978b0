"""Staff accounts in the application (anxin.accounts): a password change is one command,
an API token goes in with its audit entry or not at all, and the staff lists the pages
pick people from are read through the application (the pairing one decided by the gate)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from argon2 import PasswordHasher
from conftest import ADMIN, School

from anxin import audit, passwords
from anxin.accounts import AccountInactive, AttemptRule, PasswordRejected
from anxin.passwords import hash_password, verify_password
from anxin.service import Anxin
from domain.common import InvalidInput, PermissionDenied

OLD, NEW = "old-passw0rd", "new-passw0rd"


def _entries(app: Anxin, kind: str, subject: str) -> list[tuple[Any, ...]]:
    return app.db.fetch(
        "SELECT seq, actor_id FROM {t}anxin_audit WHERE kind = ? AND subject = ? ORDER BY seq", (kind, subject)
    )


def _sessions(app: Anxin, staff_id: str) -> int:
    return int(app.db.fetchone("SELECT COUNT(*) FROM {t}anxin_web_sessions WHERE staff_id = ?", (staff_id,))[0])


def _signed_in_twice(app: Anxin, staff_id: str) -> tuple[str, str]:
    app.accounts.set_password_hash(staff_id, hash_password(OLD))
    app.accounts.prepare()
    now = app.now().timestamp()
    return (
        app.accounts.start_session(staff_id, now, expired_before=now - 60),
        app.accounts.start_session(staff_id, now, expired_before=now - 60),
    )


def _password_is(app: Anxin, staff_id: str, password: str) -> bool:
    row = app.db.fetchone("SELECT password_hash FROM {t}anxin_staff WHERE staff_id = ?", (staff_id,))
    return verify_password(row[0], password)


def test_a_password_change_sets_the_hash_ends_the_other_sessions_and_is_audited(app: Anxin, school: School) -> None:
    me = school.teacher
    here, elsewhere = _signed_in_twice(app, me.staff_id)
    # when the teacher changes their password from one session
    app.accounts.change_password(me, OLD, NEW, NEW, keep_session=here)
    # then the new one works, the other session is ended, this one kept, and one entry says so
    assert _password_is(app, me.staff_id, NEW) and not _password_is(app, me.staff_id, OLD)
    assert app.accounts.session(here, now=app.now().timestamp(), idle=60) is not None
    assert app.accounts.session(elsewhere, now=app.now().timestamp(), idle=60) is None
    assert [a for _seq, a in _entries(app, "password_change", me.staff_id)] == [me.staff_id]


@pytest.mark.parametrize(
    ("current", "new", "again", "problem"),
    [
        ("wrong-passw0rd", NEW, "something-else", "current"),  # the current password is checked first
        (OLD, "short", "short", "short"),
        (OLD, NEW, "something-else", "mismatch"),
    ],
)
def test_a_refused_password_change_changes_nothing(
    app: Anxin, school: School, current: str, new: str, again: str, problem: str
) -> None:
    me = school.teacher
    here, _elsewhere = _signed_in_twice(app, me.staff_id)
    with pytest.raises(PasswordRejected) as refused:
        app.accounts.change_password(me, current, new, again, keep_session=here)
    assert refused.value.problem == problem
    assert _password_is(app, me.staff_id, OLD) and _sessions(app, me.staff_id) == 2
    assert _entries(app, "password_change", me.staff_id) == []


def test_a_password_change_whose_audit_entry_fails_leaves_all_as_it_was(
    app: Anxin, school: School, monkeypatch: pytest.MonkeyPatch
) -> None:
    me = school.teacher
    here, _elsewhere = _signed_in_twice(app, me.staff_id)

    def fails(*args: Any, **kwargs: Any) -> int:
        raise RuntimeError("the audit trail could not be written")

    monkeypatch.setattr(audit, "append", fails)
    with pytest.raises(RuntimeError):
        app.accounts.change_password(me, OLD, NEW, NEW, keep_session=here)
    # one transaction: neither the hash nor the sessions changed
    assert _password_is(app, me.staff_id, OLD) and _sessions(app, me.staff_id) == 2


def test_a_password_changed_meanwhile_is_not_overwritten(
    app: Anxin, school: School, monkeypatch: pytest.MonkeyPatch
) -> None:
    me = school.teacher
    here, _elsewhere = _signed_in_twice(app, me.staff_id)

    def meanwhile(password: str) -> str:  # another request changes it between the check and the write
        app.accounts.set_password_hash(me.staff_id, hash_password("theirs-passw0rd"))
        return hash_password(password)

    monkeypatch.setattr("anxin.accounts.hash_password", meanwhile)
    with pytest.raises(PasswordRejected):
        app.accounts.change_password(me, OLD, NEW, NEW, keep_session=here)
    assert _password_is(app, me.staff_id, "theirs-passw0rd") and _sessions(app, me.staff_id) == 2


def test_a_token_goes_in_with_its_audit_entry_and_is_the_holders_own(app: Anxin, school: School) -> None:
    me = school.counselor
    token = app.accounts.issue_token(me, "报表系统", days=30, scope="read")
    assert app.accounts.token_staff(token) == me.staff_id
    issued = _entries(app, "token_issue", me.staff_id)
    assert [a for _seq, a in issued] == [me.staff_id]
    token_id = app.accounts.tokens_of(me.staff_id)[0]["id"]
    assert app.accounts.revoke_token(school.principal, token_id) is False  # not theirs to revoke
    assert app.accounts.revoke_token(me, token_id) is True
    assert app.accounts.token_staff(token) is None
    assert len(_entries(app, "token_revoke", me.staff_id)) == 1
    assert app.accounts.revoke_token(me, token_id) is False  # nothing left to revoke
    assert len(_entries(app, "token_revoke", me.staff_id)) == 1


def test_a_token_whose_audit_entry_fails_is_not_stored(
    app: Anxin, school: School, monkeypatch: pytest.MonkeyPatch
) -> None:
    me = school.counselor

    def fails(*args: Any, **kwargs: Any) -> int:
        raise RuntimeError("the audit trail could not be written")

    monkeypatch.setattr(audit, "append", fails)
    with pytest.raises(RuntimeError):
        app.accounts.issue_token(me, "报表系统")
    assert app.accounts.tokens_of(me.staff_id) == []


def test_tokens_only_for_active_accounts_with_a_known_scope_and_lifetime(app: Anxin, school: School) -> None:
    me = school.other_teacher
    with pytest.raises(InvalidInput):
        app.accounts.issue_token(me, "x", scope="admin")
    with pytest.raises(InvalidInput):
        app.accounts.issue_token(me, "x", days=3650)
    app.roster.deactivate_staff(ADMIN, me.staff_id, "调离")
    with pytest.raises(AccountInactive):
        app.accounts.issue_token(me)
    assert app.accounts.tokens_of(me.staff_id) == []


def test_the_staff_lists_a_page_picks_from(app: Anxin, school: School) -> None:
    from conftest import make_school

    other = make_school(app, "第二中学")
    # who may be paired: the gate decides (PAIRING_CREATE); the school's teachers and counselors
    pairable = app.accounts.pairable_staff(school.principal)
    assert {p["id"] for p in pairable} == {
        school.teacher.staff_id,
        school.other_teacher.staff_id,
        school.counselor.staff_id,
        school.other_counselor.staff_id,
    }
    with pytest.raises(PermissionDenied):
        app.accounts.pairable_staff(school.teacher)
    # who may be responsible for a file: the actor's own school's counselors and principal only
    ids = {sid for sid, _name in app.accounts.responsible_candidates(school.teacher)}
    assert ids == {school.counselor.staff_id, school.other_counselor.staff_id, school.principal.staff_id}
    assert {sid for sid, _ in app.accounts.responsible_candidates(other.counselor)}.isdisjoint(ids)
    assert app.accounts.responsible_candidates(school.supervisor) == []  # no school, nobody
    # the accounts an administrator manages: every school's of the district
    managed = {s.id for s in app.accounts.staff_accounts(ADMIN)}
    assert school.teacher.staff_id in managed and other.teacher.staff_id in managed


# -- issue 15: signing in per OWASP ASVS level 2 ---------------------------------------------
def _username(app: Anxin, staff_id: str) -> str:
    return str(app.db.fetchone("SELECT username FROM {t}anxin_staff WHERE staff_id = ?", (staff_id,))[0])


@pytest.mark.parametrize(
    ("new", "problem"),
    [
        ("password", "common"),
        ("Password2026!", "common"),  # a common one dressed up
        ("p@ssw0rd", "common"),
        ("woaini1314", "common"),
        ("qwerty123", "common"),
        ("iloveyou", "common"),
        ("abc123456", "common"),
        ("12345678", "pattern"),
        ("11111111", "pattern"),
        ("87654321", "pattern"),
        ("abcabcabc", "pattern"),
        ("short1", "short"),
    ],
)
def test_common_and_patterned_passwords_are_refused(app: Anxin, school: School, new: str, problem: str) -> None:
    me = school.teacher
    here, _elsewhere = _signed_in_twice(app, me.staff_id)
    with pytest.raises(PasswordRejected) as refused:
        app.accounts.change_password(me, OLD, new, new, keep_session=here)
    assert refused.value.problem == problem and _password_is(app, me.staff_id, OLD)


def test_the_username_and_its_trivial_forms_are_refused(app: Anxin, school: School) -> None:
    me = school.teacher
    name = _username(app, me.staff_id)  # teacher-xxxx
    here, _elsewhere = _signed_in_twice(app, me.staff_id)
    for new in (name, name.upper(), name + "2026!", "my-" + name + "-pw", name[::-1]):
        with pytest.raises(PasswordRejected) as refused:
            app.accounts.change_password(me, OLD, new, new, keep_session=here)
        assert refused.value.problem == "username", new
    with pytest.raises(PasswordRejected) as refused:
        app.accounts.change_password(me, OLD, OLD, OLD, keep_session=here)
    assert refused.value.problem == "same"


def test_the_shipped_list_of_common_passwords() -> None:
    common = passwords.common_passwords()
    assert len(common) >= 500
    must = {"password", "12345678", "123456789", "qwerty123", "1q2w3e4r", "a123456", "woaini1314", "iloveyou"}
    assert must <= common and {"abc123456", "11111111"} <= common
    assert passwords.password_problem("anxin-demo-2026") is None
    assert passwords.password_problem("晨读后交作业-2026") is None


def test_a_wrong_current_password_is_audited(app: Anxin, school: School) -> None:
    me = school.teacher
    here, _elsewhere = _signed_in_twice(app, me.staff_id)
    with pytest.raises(PasswordRejected):
        app.accounts.change_password(me, "not-the-one", NEW, NEW, keep_session=here)
    rows = app.db.fetch("SELECT actor_id, subject, detail FROM {t}anxin_audit WHERE kind = 'login_failed'")
    assert rows == [(me.staff_id, me.staff_id, '{"reason":"current_password"}')]


def test_a_hash_with_old_parameters_is_made_again_at_the_next_login(app: Anxin, school: School) -> None:
    staff_id = school.counselor.staff_id
    old = PasswordHasher(time_cost=3, memory_cost=65536, parallelism=4).hash(OLD)
    app.accounts.set_password_hash(staff_id, old)
    name = _username(app, staff_id)
    assert app.accounts.authenticate(name, "wrong-passw0rd") is None
    assert app.db.fetchone("SELECT password_hash FROM {t}anxin_staff WHERE staff_id = ?", (staff_id,))[0] == old
    assert app.accounts.authenticate(name, OLD) == staff_id
    stored = app.db.fetchone("SELECT password_hash FROM {t}anxin_staff WHERE staff_id = ?", (staff_id,))[0]
    assert stored != old and "m=19456,t=2,p=1" in stored and not passwords.needs_rehash(stored)
    assert app.accounts.authenticate(name, OLD) == staff_id  # still the same password


def test_unknown_and_inactive_names_cost_one_verification(
    app: Anxin, school: School, monkeypatch: pytest.MonkeyPatch
) -> None:
    made: list[str] = []
    monkeypatch.setattr("anxin.accounts.dummy_verify", lambda password: made.append(password))
    assert app.accounts.authenticate("no-such-person", "whatever-1") is None
    staff_id = school.other_teacher.staff_id
    app.roster.deactivate_staff(ADMIN, staff_id, "调离")
    assert app.accounts.authenticate(_username(app, staff_id), "whatever-2") is None
    assert made == ["whatever-1", "whatever-2"]


def test_a_session_ends_at_its_absolute_lifetime_however_busy(app: Anxin, school: School) -> None:
    app.accounts.prepare()
    start = 1_800_000_000.0
    sid = app.accounts.start_session(school.teacher.staff_id, start, expired_before=start - 60)
    for hour in range(1, 12):
        app.accounts.touch_session(sid, start + hour * 3600)
        assert app.accounts.session(sid, now=start + hour * 3600, idle=1800, lifetime=12 * 3600) is not None
    app.accounts.touch_session(sid, start + 12 * 3600)
    assert app.accounts.session(sid, now=start + 12 * 3600 + 1, idle=1800, lifetime=12 * 3600) is None
    assert _sessions(app, school.teacher.staff_id) == 0  # ended, not only refused


def test_admission_is_atomic_under_parallel_attempts(app: Anxin) -> None:
    app.accounts.prepare()
    rule = AttemptRule(free=3, base=10, cap=60, forget=900)
    key = app.accounts.attempt_key("pair", "someone", "192.0.2.1")
    with ThreadPoolExecutor(max_workers=16) as pool:
        waits = list(pool.map(lambda _n: app.accounts.admit([(key, rule)], 1000.0), range(40)))
    assert waits.count(0.0) == 3 and all(w == 10.0 for w in waits if w)
    assert app.accounts.admit([(key, rule)], 1010.0) == 0.0  # after the delay, one more
    assert app.accounts.admit([(key, rule)], 1010.0) == 20.0  # and the next waits twice as long
    app.accounts.attempt_succeeded([key])
    assert app.accounts.admit([(key, rule)], 1010.0) == 0.0  # a success starts it again


def test_attempts_at_the_same_moment_within_the_free_ones_never_wait(app: Anxin) -> None:
    # Requests at once read their clocks before they queue for the counter: the one let in
    # second may carry the earlier time. Within the free attempts it must not wait for that.
    app.accounts.prepare()
    rule = AttemptRule(free=30, base=1, cap=60, forget=900)
    key = app.accounts.attempt_key("address", "192.0.2.7")
    assert app.accounts.admit([(key, rule)], 1000.002) == 0.0
    assert app.accounts.admit([(key, rule)], 1000.001) == 0.0
    assert app.accounts.admit([(key, rule)], 1000.000) == 0.0
