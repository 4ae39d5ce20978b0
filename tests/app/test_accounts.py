"""Staff accounts in the application (anxin.accounts): a password change is one command,
an API token goes in with its audit entry or not at all, and the staff lists the pages
pick people from are read through the application (the pairing one decided by the gate)."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import ADMIN, School

from anxin import audit
from anxin.accounts import AccountInactive, PasswordRejected
from anxin.passwords import hash_password, verify_password
from anxin.service import Anxin
from domain.common import PermissionDenied

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


def test_a_token_goes_in_with_the_gates_decision_and_its_audit_entry(app: Anxin, school: School) -> None:
    staff_id = school.counselor.staff_id
    token = app.accounts.issue_token(ADMIN, staff_id, "报表系统")
    assert app.accounts.token_staff(token) == staff_id
    issued = _entries(app, "token_issue", staff_id)
    assert [a for _seq, a in issued] == [ADMIN.staff_id]
    # the decision of the gate (ACCOUNT_ADMIN) is the entry just before, in the same transaction
    before = app.db.fetchone("SELECT kind, actor_id, detail FROM {t}anxin_audit WHERE seq = ?", (issued[0][0] - 1,))
    assert before[0] == "access" and before[1] == ADMIN.staff_id and '"action":"account.admin"' in before[2]
    token_id = app.accounts.tokens_of(staff_id)[0]["id"]
    assert app.accounts.revoke_token(ADMIN, staff_id, token_id) is True
    assert app.accounts.token_staff(token) is None
    assert len(_entries(app, "token_revoke", staff_id)) == 1
    assert app.accounts.revoke_token(ADMIN, staff_id, token_id) is False  # nothing left to revoke
    assert len(_entries(app, "token_revoke", staff_id)) == 1


def test_a_token_whose_audit_entry_fails_is_not_stored(
    app: Anxin, school: School, monkeypatch: pytest.MonkeyPatch
) -> None:
    staff_id = school.counselor.staff_id
    decisions = app.db.fetchone("SELECT COUNT(*) FROM {t}anxin_audit WHERE kind = 'access'")[0]

    def fails(*args: Any, **kwargs: Any) -> int:
        raise RuntimeError("the audit trail could not be written")

    monkeypatch.setattr(audit, "append", fails)
    with pytest.raises(RuntimeError):
        app.accounts.issue_token(ADMIN, staff_id, "报表系统")
    assert app.accounts.tokens_of(staff_id) == []
    # the gate's decision is still recorded, on its own (as for any command that saved nothing)
    assert app.db.fetchone("SELECT COUNT(*) FROM {t}anxin_audit WHERE kind = 'access'")[0] == decisions + 1


def test_tokens_only_for_active_accounts_the_actor_manages(app: Anxin, school: School) -> None:
    staff_id = school.other_teacher.staff_id
    app.roster.deactivate_staff(ADMIN, staff_id, "调离")
    with pytest.raises(AccountInactive):
        app.accounts.issue_token(ADMIN, staff_id)
    with pytest.raises(PermissionDenied):  # a principal does not manage accounts
        app.accounts.issue_token(school.principal, school.counselor.staff_id)
    assert app.accounts.tokens_of(staff_id) == [] and app.accounts.tokens_of(school.counselor.staff_id) == []


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
