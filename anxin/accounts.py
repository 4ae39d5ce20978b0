"""Staff accounts and what signs a person in: passwords, web sessions, failed logins and
API tokens, and the staff lists the pages pick people from.

The application's side of `web/security.py` and `web/routes/auth.py`: the accounts'
rows (`anxin_staff`'s credentials and directory columns) and the web's side tables
(`anxin_web_sessions`, `anxin_login_throttle`, created on first use,
on SQLite and PostgreSQL alike) are read and written here, so the web and the CLI never
touch the store. The web keeps its policies (cookies, idle and absolute expiry, how often
`seen` is written, throttling budgets, CSRF) and passes the times in; this module stores
and answers. `Core.accounts` is the one instance of an application.

Logins are throttled before any password is checked: `admit` counts an attempt against
each of its counters (`anxin_login_throttle`, one row per keyed hash of a login name, an
address, or both) in one transaction that reads each row and moves it on only if it is
still as read (compare and set: on PostgreSQL the row lock, on SQLite the write lock
taken at BEGIN), so however many requests arrive at once, no more attempts are let
through than the budget allows. Past its free attempts, a counter makes the next attempt
wait, twice as long each time (up to a cap): a progressive delay, never a lockout, and a
success starts it again (`attempt_succeeded`).

What is stored: a session's id and an API token only as their SHA-256; login attempts
counted under keyed hashes (the blind index) of the login name and the address; a session's data
(flash messages) sealed under a named key and bound to its row.

Commands that change an account and write an audit entry do both in one transaction:
`change_password` (the new hash, the person's other sessions ended, `password_change`;
a wrong current password is a `login_failed` entry with reason `current_password`),
`issue_token` (the person's own token, `token_issue`) and `revoke_token`, `set_up`
(an administrator-made account's password chosen with its one-time set-up code,
`account_setup`) and `reissue_setup_code` (a new code for an account not yet set up, the
old one void, `setup_code_issue`). Nobody holds a credential of another account: an
administrator's new account gets a set-up code, never a password; a token is issued by
its holder.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from anxin import audit
from anxin.crypto import Tampered
from anxin.passwords import (
    MIN_LENGTH,
    dummy_verify,
    hash_password,
    needs_rehash,
    password_problem,
    verify_password,
)
from domain import access
from domain.access import SCHOOL_STAFF_ROLES, Resource
from domain.common import Actor, InvalidInput, NotFound, Role

if TYPE_CHECKING:
    from anxin.core import Core

log = logging.getLogger("anxin.web")

TOKEN_PREFIX = "anx_"
TOKEN_SCOPES = ("read", "write")  # read-only (GET) or read-write
TOKEN_DAYS = (30, 90)  # the lifetimes a holder may choose
SETUP_HOURS = 72  # how long a set-up code of a new account stays usable
SESSION_KEY_ID = "anxin:web-sessions"  # the named key that seals a session's data

SESSIONS_TABLE = """CREATE TABLE IF NOT EXISTS {t}anxin_web_sessions (
    sid_hash TEXT PRIMARY KEY, staff_id TEXT NOT NULL, created DOUBLE PRECISION NOT NULL,
    seen DOUBLE PRECISION NOT NULL, data TEXT)"""
SESSIONS_INDEX = "CREATE INDEX IF NOT EXISTS anxin_web_sessions_staff ON {t}anxin_web_sessions (staff_id)"
# One row per counter of login attempts (a keyed hash): attempts counted since the count
# last started again, when the last one was let through, and when the next one may be.
THROTTLE_TABLE = """CREATE TABLE IF NOT EXISTS {t}anxin_login_throttle (
    who TEXT PRIMARY KEY, tries INTEGER NOT NULL, last DOUBLE PRECISION NOT NULL,
    next_at DOUBLE PRECISION NOT NULL)"""
# (anxin_api_tokens, the tokens administrators issued before issue 15, is no longer read:
# every such token stopped working; tokens live in anxin_personal_tokens, a side table.)

_STAFF_COLUMNS = "staff_id, username, school_id, roles, classes, district, active"


def session_hash(sid: str) -> str:
    return hashlib.sha256(sid.encode()).hexdigest()


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class PasswordRejected(InvalidInput):
    """A password change refused: `problem` is "current" (the current password is wrong),
    "mismatch" (typed twice differently), "same" (the new one is the current one), or what
    the password policy refuses (`anxin.passwords.password_problem`): "short" (under
    MIN_LENGTH), "common" (a common password), "pattern" (repeated or running characters),
    "username" (the login name in it)."""

    MESSAGES = {
        "current": "当前密码不正确",
        "short": "新密码至少 {n} 位",
        "mismatch": "两次输入的新密码不一致",
        "same": "新密码不能与当前密码相同",
        "common": "这个密码太常见，容易被猜到，请换一个",
        "pattern": "新密码不能是重复或连续的字符（如 11111111、12345678、qwertyui）",
        "username": "新密码不能包含用户名",
    }

    def __init__(self, problem: str) -> None:
        self.problem = problem
        super().__init__(self.MESSAGES[problem], n=MIN_LENGTH)


class SetupCodeInvalid(InvalidInput):
    """A set-up code that is unknown, already used, expired, or for a deactivated account."""

    message = "设置链接无效、已使用或已过期，请联系管理员重新创建"


class SetupCodeRefused(InvalidInput):
    """No new set-up code for this account: `problem` is "done" (its person has set their
    password: a set-up link would let whoever holds it take the account over) or
    "inactive" (deactivated)."""

    MESSAGES = {
        "done": "该账号已设置密码，不能再生成设置链接",
        "inactive": "账号已停用，不能生成设置链接",
    }

    def __init__(self, problem: str) -> None:
        self.problem = problem
        super().__init__(self.MESSAGES[problem])


@dataclass(frozen=True)
class SetupCode:
    """A set-up code just made: the code itself (shown this once, never stored) and when
    it stops working."""

    code: str
    expires_at: datetime


@dataclass(frozen=True)
class SetupState:
    """Where an account's set-up stands, for its administrator's page: whether its person
    has set a password, and until when its live set-up code works (None: none live, the
    last one expired or void)."""

    password_set: bool
    expires_at: datetime | None


def setup_link(base_url: str, code: str) -> str:
    """The full address of a set-up code's page, on the site at `base_url`."""
    return f"{base_url.rstrip('/')}/setup/{code}"


@dataclass(frozen=True)
class TokenGrant:
    """What a live API token signs in: whose it is, its id (the start of its hash, as
    the audit trail names it) and its scope ("read" or "write")."""

    staff_id: str
    token_id: str
    scope: str


class AccountInactive(InvalidInput):
    """An API token asked for a deactivated account."""

    message = "账号已停用，不能签发令牌"


@dataclass(frozen=True)
class AttemptRule:
    """The budget of one kind of attempt counter: `free` attempts let through at once;
    after those, the next waits `base` seconds, doubling with each attempt let through
    (at most `cap`); a counter left alone for `forget` seconds starts again from nothing."""

    free: int
    base: float
    cap: float
    forget: float

    def wait_after(self, tries: int) -> float:
        if tries < self.free:
            return 0.0
        return float(min(self.cap, self.base * 2 ** min(tries - self.free, 40)))


class _Moved(Exception):
    """A counter changed between its read and its update (another request took the slot)."""


@dataclass(frozen=True)
class StaffEntry:
    """A staff member as the directory holds them: ids, roles and classes, no name."""

    id: str
    username: str
    school_id: str | None
    roles: tuple[str, ...]
    classes: tuple[str, ...]
    district: str
    active: bool

    @classmethod
    def of(cls, row: Sequence[Any]) -> StaffEntry:
        staff_id, username, school_id, roles, classes, district, active = row
        return cls(
            staff_id,
            username,
            school_id,
            tuple(r for r in str(roles).split(",") if r),
            tuple(json.loads(classes or "[]")),
            district,
            bool(active),
        )


@dataclass(frozen=True)
class StoredSession:
    """A web session's row: who, when made and last seen, and its data (opened)."""

    staff_id: str
    created: float
    seen: float
    data: dict[str, Any]


class Accounts:
    """Staff accounts, passwords, web sessions, failed logins and API tokens of one
    application (`Core.accounts`)."""

    def __init__(self, app: Core) -> None:
        self.app = app
        self.db = app.db
        self._prepared = False

    def prepare(self) -> None:
        """The web's side tables and the sessions' named key, made if missing (once per
        process; the web server does this as it starts)."""
        if self._prepared:
            return
        for ddl in (SESSIONS_TABLE, SESSIONS_INDEX, THROTTLE_TABLE):
            self.db.execute(ddl)
        self.app.keystore.ensure_named_key(SESSION_KEY_ID)
        self._prepared = True

    def _commit(self, statements: Iterable[tuple[str, tuple[Any, ...]]], *entries: audit.Row) -> None:
        """The statements and the audit entries in one transaction, after the gate's
        decisions of the command so far (made inside `Gate.deferred_decisions`, which
        records them on their own instead if this fails)."""
        from anxin.gate import deferred_access

        decisions = deferred_access.get()
        rows = list(decisions or ())
        with self.db.transaction() as c:
            for sql, params in statements:
                c.execute(self.db.q(sql), params)
            audit.append(c, self.db, [*rows, *entries])
        if decisions:
            del decisions[: len(rows)]  # recorded in this transaction

    # -- the staff directory ----------------------------------------------------------
    def account(self, username: str) -> tuple[str, str | None] | None:
        """(staff_id, password_hash) for a login name."""
        row = self.db.fetchone(
            "SELECT staff_id, password_hash FROM {t}anxin_staff WHERE username = ? AND active = 1", (username,)
        )
        return (row[0], row[1]) if row else None

    def authenticate(self, username: str, password: str) -> str | None:
        """The staff id a login name and password sign in, or None. A name with no active
        account costs one verification too (against a dummy hash), so that known and
        unknown names answer alike; a hash made with older parameters is made again with
        today's (only if it is still the one just verified)."""
        account = self.account(username) if username else None
        stored = account[1] if account else None
        if account is None or not stored:
            dummy_verify(password)
            return None
        staff_id = account[0]
        if not verify_password(stored, password):
            return None
        if needs_rehash(stored):
            self.db.execute(
                "UPDATE {t}anxin_staff SET password_hash = ? WHERE staff_id = ? AND password_hash = ?",
                (hash_password(password), staff_id, stored),
            )
        return staff_id

    def set_password_hash(self, staff_id: str, password_hash: str) -> None:
        self.db.execute("UPDATE {t}anxin_staff SET password_hash = ? WHERE staff_id = ?", (password_hash, staff_id))

    def staff(self, staff_id: str) -> StaffEntry | None:
        """One staff member's directory row (ids, roles, classes; no name), or None. Not
        decided by the gate: what the application asks to decide or to check a command
        (whose school a queue or a pairing is, whether a responsible person qualifies)."""
        row = self.db.fetchone(f"SELECT {_STAFF_COLUMNS} FROM {{t}}anxin_staff WHERE staff_id = ?", (staff_id,))
        return StaffEntry.of(row) if row else None

    def staff_by_username(self, username: str) -> StaffEntry | None:
        """The directory row of a login name, active or not (None: no such account)."""
        row = self.db.fetchone(f"SELECT {_STAFF_COLUMNS} FROM {{t}}anxin_staff WHERE username = ?", (username.strip(),))
        return StaffEntry.of(row) if row else None

    def staff_accounts(self, actor: Actor, staff_id: str | None = None) -> list[StaffEntry]:
        """The accounts an administrator manages (the gate decides ACCOUNT_ADMIN first):
        the district's, or only their school's for a school's administrator; with
        `staff_id`, that one account (none if it is not theirs to manage)."""
        self.app.check(actor, access.ACCOUNT_ADMIN, "account", school_id=actor.school_id)
        sql = f"SELECT {_STAFF_COLUMNS} FROM {{t}}anxin_staff WHERE district = ?"
        params: tuple[Any, ...] = (actor.district,)
        if staff_id:
            sql += " AND staff_id = ?"
            params += (staff_id,)
        found = [StaffEntry.of(r) for r in self.db.fetch(sql, params)]
        return [s for s in found if not actor.school_id or s.school_id == actor.school_id]

    def _managed(self, actor: Actor, staff_id: str) -> StaffEntry:
        found = self.staff_accounts(actor, staff_id)
        if not found:
            raise NotFound()
        return found[0]

    def _active_staff(self, school_id: str, roles: set[str]) -> list[tuple[str, list[str]]]:
        """(id, classes) of a school's active staff with any of `roles`."""
        rows = self.db.fetch(
            "SELECT staff_id, roles, classes FROM {t}anxin_staff WHERE school_id = ? AND active = 1", (school_id,)
        )
        return [(sid, json.loads(classes)) for sid, r, classes in rows if roles & set(str(r).split(","))]

    def pairable_staff(self, actor: Actor) -> list[dict[str, Any]]:
        """Who in the actor's school may be paired with a student (its active class
        teachers and counselors: ids, names and classes), for the form that pairs them;
        the gate decides PAIRING_CREATE first."""
        school = actor.school_id
        self.app.check(actor, access.PAIRING_CREATE, "pairing", school_id=school)
        if school is None:
            return []
        out = [
            {"id": sid, "name": self.app.roster.staff_name(sid), "classes": classes}
            for sid, classes in self._active_staff(school, {Role.CLASS_TEACHER.value, Role.COUNSELOR.value})
        ]
        return sorted(out, key=lambda s: (not s["classes"], s["classes"], s["name"]))

    def responsible_candidates(self, actor: Actor) -> list[tuple[str, str]]:
        """Who may be the one-to-one responsible staff of a support file in the actor's own
        school (its active counselors and principal): ids and names, by name, for the
        pick lists. No school, nobody.

        The rule, and why the gate does not decide this read: it is a list of colleagues'
        names in one's own school, nothing about a student or a case. Like `staff_name`
        (which every page uses to show who did what) and `schools()`, the gate does not
        decide it; the school is the actor's own (not a parameter, so no other school's
        staff can be listed), and only ids and names of the people a file may be
        assigned to are returned. Choosing one is a command the gate does decide
        (FILE_OPEN, FILE_WRITE), and the command checks the choice again."""
        school = actor.school_id
        if school is None:
            return []
        found = self._active_staff(school, {Role.COUNSELOR.value, Role.PRINCIPAL.value})
        return sorted(((sid, self.app.roster.staff_name(sid)) for sid, _classes in found), key=lambda x: x[1])

    def person_candidates(self, actor: Actor) -> list[tuple[str, str]]:
        """Who may be a support file's one-to-one responsible person (一对一包联人) in the
        actor's own school: every active staff member with a school role (class teachers,
        counselors, safety leads, the principal), ids and names, by name, for the pick list.
        Not decided by the gate, for the reasons `responsible_candidates` gives; naming one is
        a command the gate decides (FILE_WRITE), and the command checks the choice again."""
        school = actor.school_id
        if school is None:
            return []
        found = self._active_staff(school, {r.value for r in SCHOOL_STAFF_ROLES})
        return sorted(((sid, self.app.roster.staff_name(sid)) for sid, _classes in found), key=lambda x: x[1])

    # -- passwords --------------------------------------------------------------------
    def change_password(
        self, actor: Actor, current: str, new: str, again: str | None = None, *, keep_session: str | None = None
    ) -> None:
        """The signed-in person changes their own password, proving the current one. In one
        transaction: the new hash (only if the stored one is still the one just
        verified), every other session of theirs ended (`keep_session`, the one asking,
        stays), every API token of theirs revoked, and a `password_change` entry of the audit trail. `again`: the new
        password typed a second time, if the form asks for it. Refused with
        PasswordRejected, nothing written but, for a wrong current password, a
        `login_failed` entry (reason `current_password`). The new password must pass the
        password policy (`anxin.passwords.password_problem`, with the login name).
        Callers throttle the attempts (the web: `LoginThrottle.admit_password_check`)."""
        staff_id = actor.staff_id
        row = self.db.fetchone("SELECT password_hash, username FROM {t}anxin_staff WHERE staff_id = ?", (staff_id,))
        if row is None or not verify_password(row[0], current):
            self.app.record_security_event("login_failed", staff_id, staff_id, {"reason": "current_password"})
            raise PasswordRejected("current")
        problem = password_problem(new, row[1])
        if problem:
            raise PasswordRejected(problem)
        if again is not None and new != again:
            raise PasswordRejected("mismatch")
        if new == current:
            raise PasswordRejected("same")
        self.prepare()
        new_hash = hash_password(new)
        entry = audit.security_row(self.app, "password_change", staff_id, staff_id)
        with self.db.transaction() as c:
            c.execute(
                self.db.q("UPDATE {t}anxin_staff SET password_hash = ? WHERE staff_id = ? AND password_hash = ?"),
                (new_hash, staff_id, row[0]),
            )
            now_stored = c.execute(
                self.db.q("SELECT password_hash FROM {t}anxin_staff WHERE staff_id = ?"), (staff_id,)
            ).fetchone()
            if now_stored is None or now_stored[0] != new_hash:  # changed by someone else since it was verified
                raise PasswordRejected("current")
            c.execute(
                self.db.q("DELETE FROM {t}anxin_web_sessions WHERE staff_id = ? AND sid_hash <> ?"),
                (staff_id, session_hash(keep_session) if keep_session else ""),
            )
            c.execute(
                self.db.q(
                    "UPDATE {t}anxin_personal_tokens SET revoked_at = ? WHERE staff_id = ? AND revoked_at IS NULL"
                ),
                (self.app.now().isoformat(), staff_id),
            )
            audit.append(c, self.db, [entry])

    # -- web sessions -----------------------------------------------------------------
    def start_session(
        self,
        staff_id: str,
        now: float,
        *,
        expired_before: float,
        replacing: str | None = None,
        created_before: float | None = None,
    ) -> str:
        """A new session for a person who just signed in (its id; the one it replaces, if
        any, ended), sweeping sessions not seen since `expired_before` (and, given
        `created_before`, those made before it: past their absolute lifetime)."""
        sid = secrets.token_urlsafe(32)
        db = self.db
        with db.transaction() as c:
            if replacing:
                c.execute(db.q("DELETE FROM {t}anxin_web_sessions WHERE sid_hash = ?"), (session_hash(replacing),))
            c.execute(db.q("DELETE FROM {t}anxin_web_sessions WHERE seen < ?"), (expired_before,))
            if created_before is not None:
                c.execute(db.q("DELETE FROM {t}anxin_web_sessions WHERE created < ?"), (created_before,))
            c.execute(
                db.q(
                    "INSERT INTO {t}anxin_web_sessions (sid_hash, staff_id, created, seen, data) "
                    "VALUES (?, ?, ?, ?, NULL)"
                ),
                (session_hash(sid), staff_id, now, now),
            )
        return sid

    def session(self, sid: str, *, now: float, idle: float, lifetime: float | None = None) -> StoredSession | None:
        """A live session; None if unknown, unseen for more than `idle` seconds at `now`,
        or (given `lifetime`) made more than `lifetime` seconds before `now`, however
        busy since (then it is ended)."""
        h = session_hash(sid)
        row = self.db.fetchone(
            "SELECT staff_id, created, seen, data FROM {t}anxin_web_sessions WHERE sid_hash = ?", (h,)
        )
        if row is None:
            return None
        staff_id, created, seen, sealed = row
        if now - seen > idle:
            self.db.execute("DELETE FROM {t}anxin_web_sessions WHERE sid_hash = ? AND seen < ?", (h, now - idle))
            return None
        if lifetime is not None and now - created > lifetime:
            self.db.execute("DELETE FROM {t}anxin_web_sessions WHERE sid_hash = ?", (h,))
            return None
        return StoredSession(staff_id, created, seen, self._open(h, sealed))

    def touch_session(self, sid: str, now: float) -> None:
        """The session was seen at `now` (never moved back)."""
        self.db.execute(
            "UPDATE {t}anxin_web_sessions SET seen = ? WHERE sid_hash = ? AND seen < ?", (now, session_hash(sid), now)
        )

    def save_session_data(self, sid: str, data: dict[str, Any]) -> None:
        """Store a session's data, sealed and bound to its row (none: NULL)."""
        h = session_hash(sid)
        sealed = None
        if data:
            blob = self.app.seal(SESSION_KEY_ID, json.dumps(data, ensure_ascii=False), h.encode())
            sealed = base64.b64encode(blob).decode()
        self.db.execute("UPDATE {t}anxin_web_sessions SET data = ? WHERE sid_hash = ?", (sealed, h))

    def _open(self, h: str, sealed: str | None) -> dict[str, Any]:
        if not sealed:
            return {}
        try:
            data = json.loads(self.app.unseal(SESSION_KEY_ID, base64.b64decode(sealed), h.encode()))
        except (ValueError, Tampered):
            log.warning("a session's data could not be opened; dropped")
            return {}
        return data if isinstance(data, dict) else {}

    def end_session(self, sid: str) -> None:
        """End a session (logout, or its account deactivated since)."""
        self.db.execute("DELETE FROM {t}anxin_web_sessions WHERE sid_hash = ?", (session_hash(sid),))

    def end_sessions_of(self, staff_id: str, keep: str | None = None) -> None:
        """Sign a person out everywhere (a deactivated account), except session `keep`."""
        self.db.execute(
            "DELETE FROM {t}anxin_web_sessions WHERE staff_id = ? AND sid_hash <> ?",
            (staff_id, session_hash(keep) if keep else ""),
        )

    def sweep_sessions(self, expired_before: float, created_before: float | None = None) -> None:
        self.db.execute("DELETE FROM {t}anxin_web_sessions WHERE seen < ?", (expired_before,))
        if created_before is not None:
            self.db.execute("DELETE FROM {t}anxin_web_sessions WHERE created < ?", (created_before,))

    # -- login attempts -------------------------------------------------------------------
    def attempt_key(self, kind: str, *parts: str) -> str:
        """A counter's key: a keyed hash (the blind index) of what it counts, never the
        name or the address itself. `kind`: "name", "address", "pair" (a name from one
        address), "check" (a signed-in person's current-password checks) or "code" (an
        account's second-step codes, anxin.two_step)."""
        value = "\x1f".join(p.strip().lower() for p in parts)
        return kind[0] + ":" + self.app.keystore.blind(f"login-{kind}", value)

    def admit(self, counters: Sequence[tuple[str, AttemptRule]], now: float) -> float:
        """Count one attempt against every counter and let it through (0.0), or refuse it
        (the seconds to wait, nothing counted) while any counter makes it wait. Atomic:
        each row is moved on only if it is still as read, else all is read again, so no
        more attempts pass than the budgets allow however many ask at once."""
        self.prepare()
        keys = [k for k, _ in counters]
        marks = ", ".join("?" for _ in keys)
        for _round in range(200):
            try:
                with self.db.write_transaction() as c:
                    c.executemany(
                        self.db.q(
                            "INSERT INTO {t}anxin_login_throttle (who, tries, last, next_at) VALUES (?, 0, 0, 0) "
                            "ON CONFLICT (who) DO NOTHING"
                        ),
                        [(k,) for k in keys],
                    )
                    rows = c.execute(
                        self.db.q(
                            f"SELECT who, tries, last, next_at FROM {{t}}anxin_login_throttle WHERE who IN ({marks})"
                        ),
                        tuple(keys),
                    ).fetchall()
                    found = {r[0]: (int(r[1]), float(r[2]), float(r[3])) for r in rows}
                    wait = max((found[k][2] - now for k in keys), default=0.0)
                    if wait > 0:
                        return wait
                    for key, rule in counters:
                        tries, last, _next = found[key]
                        counted = (0 if now - last > rule.forget else tries) + 1
                        # Within the free attempts no wait at all (0), not "from now": requests
                        # at the same moment read their clocks just before they queue for the
                        # lock, so one that read an earlier time than the one ahead of it would
                        # otherwise find a wait of microseconds and be refused (a staff room
                        # behind one address logging in at once).
                        after = rule.wait_after(counted)
                        moved = c.execute(
                            self.db.q(
                                "UPDATE {t}anxin_login_throttle SET tries = ?, last = ?, next_at = ? "
                                "WHERE who = ? AND tries = ? AND last = ? RETURNING tries"
                            ),
                            (counted, now, now + after if after else 0.0, key, tries, last),
                        ).fetchone()
                        if moved is None:  # another request moved it since it was read
                            raise _Moved()
                    return 0.0
            except _Moved:
                continue
        return 1.0  # never settled: ask again in a moment

    def attempt_succeeded(self, reset: Sequence[str], refund: Sequence[str] = ()) -> None:
        """An attempt let through proved the password: the `reset` counters start again;
        the `refund` ones (an address many people share) give back the attempt."""
        with self.db.transaction() as c:
            for key in reset:
                c.execute(self.db.q("DELETE FROM {t}anxin_login_throttle WHERE who = ?"), (key,))
            for key in refund:
                c.execute(
                    self.db.q("UPDATE {t}anxin_login_throttle SET tries = tries - 1 WHERE who = ? AND tries > 0"),
                    (key,),
                )

    def sweep_attempts(self, before: float) -> None:
        """Counters not moved since `before` go."""
        self.db.execute("DELETE FROM {t}anxin_login_throttle WHERE last < ?", (before,))

    # -- set-up codes -------------------------------------------------------------------
    def setup_code_row(self, staff_id: str) -> tuple[str, tuple[str, tuple[Any, ...]]]:
        """A new one-time set-up code for an account just made by an administrator, and
        the statement that stores it (its SHA-256 only, expiring in SETUP_HOURS), for the
        command's transaction. The code is shown this once, to be handed to the person."""
        made = self._new_setup_code()
        return made.code, self._setup_code_insert(staff_id, made)

    def _new_setup_code(self) -> SetupCode:
        return SetupCode(secrets.token_urlsafe(24), self.app.now() + timedelta(hours=SETUP_HOURS))

    def _setup_code_insert(self, staff_id: str, made: SetupCode) -> tuple[str, tuple[Any, ...]]:
        return (
            "INSERT INTO {t}anxin_setup_codes (code_hash, staff_id, created_at, expires_at) VALUES (?, ?, ?, ?)",
            (token_hash(made.code), staff_id, self.app.now().isoformat(), made.expires_at.isoformat()),
        )

    def setup_state(self, staff_id: str) -> SetupState:
        """Whether the account's password is set, and the expiry of its live set-up code.
        Ids and times only, for the page of an account its administrator has opened (the
        gate decided ACCOUNT_ADMIN for it)."""
        row = self.db.fetchone("SELECT password_hash FROM {t}anxin_staff WHERE staff_id = ?", (staff_id,))
        unused = self.db.fetch(
            "SELECT expires_at FROM {t}anxin_setup_codes WHERE staff_id = ? AND used_at IS NULL", (staff_id,)
        )
        now = self.app.now()
        live = [t for t in (datetime.fromisoformat(r[0]) for r in unused) if t > now]
        return SetupState(password_set=bool(row and row[0]), expires_at=max(live, default=None))

    def reissue_setup_code(self, actor: Actor, staff_id: str) -> SetupCode:
        """A new set-up code for an account whose person has not set a password yet (the
        code expired, or was lost): the gate decides ACCOUNT_ADMIN on the account first.
        In one transaction, with the decision: every earlier unused code of the account
        stops working at once (its expiry moved to now), the new one is stored (its SHA-256
        only, expiring in SETUP_HOURS), and a `setup_code_issue` entry of the audit trail
        names the account and the new expiry. Refused (SetupCodeRefused) for an account
        whose password is set (a link would let whoever holds it take the account over; a
        used code is never renewed) or that is deactivated."""
        with self.app.gate.deferred_decisions(own=True):
            entry = self.staff(staff_id)
            if entry is None:
                raise NotFound()
            resource = Resource(kind="account", id=staff_id, school_id=entry.school_id, district=entry.district)
            self.app.authorize(actor, access.ACCOUNT_ADMIN, resource)
            if not entry.active:
                raise SetupCodeRefused("inactive")
            if self.setup_state(staff_id).password_set:
                raise SetupCodeRefused("done")
            made = self._new_setup_code()
            now = self.app.now().isoformat()
            void = (
                "UPDATE {t}anxin_setup_codes SET expires_at = ? WHERE staff_id = ? AND used_at IS NULL",
                (now, staff_id),
            )
            self._commit(
                [void, self._setup_code_insert(staff_id, made)],
                audit.security_row(
                    self.app, "setup_code_issue", actor.staff_id, staff_id, {"expires": made.expires_at.isoformat()}
                ),
            )
        return made

    def setup_staff(self, code: str) -> str | None:
        """Whose account an unused, unexpired set-up code sets up (None otherwise)."""
        row = self.db.fetchone(
            "SELECT c.staff_id, c.expires_at FROM {t}anxin_setup_codes c JOIN {t}anxin_staff s "
            "ON s.staff_id = c.staff_id WHERE c.code_hash = ? AND c.used_at IS NULL AND s.active = 1",
            (token_hash(code or ""),),
        )
        if row is None or datetime.fromisoformat(row[1]) <= self.app.now():
            return None
        return str(row[0])

    def set_up(self, code: str, new: str, again: str | None = None) -> str:
        """The person an administrator made an account for chooses their password with
        the one-time set-up code (SetupCodeInvalid: unknown, used, expired, or the
        account deactivated). The password policy applies (PasswordRejected). In one
        transaction: the code spent (only if still unused), the hash, any sessions and
        tokens of the account ended, and an `account_setup` entry. The staff id."""
        self.prepare()
        staff_id = self.setup_staff(code)
        if staff_id is None:
            raise SetupCodeInvalid()
        row = self.db.fetchone("SELECT username FROM {t}anxin_staff WHERE staff_id = ?", (staff_id,))
        problem = password_problem(new, row[0] if row else "")
        if problem:
            raise PasswordRejected(problem)
        if again is not None and new != again:
            raise PasswordRejected("mismatch")
        new_hash = hash_password(new)
        now = self.app.now().isoformat()
        entry = audit.security_row(self.app, "account_setup", staff_id, staff_id)
        with self.db.transaction() as c:
            spent = c.execute(
                self.db.q(
                    "UPDATE {t}anxin_setup_codes SET used_at = ? WHERE code_hash = ? AND used_at IS NULL "
                    "RETURNING staff_id"
                ),
                (now, token_hash(code)),
            ).fetchone()
            if spent is None:  # spent meanwhile by another request
                raise SetupCodeInvalid()
            c.execute(
                self.db.q("UPDATE {t}anxin_setup_codes SET used_at = ? WHERE staff_id = ? AND used_at IS NULL"),
                (now, staff_id),
            )
            c.execute(self.db.q("UPDATE {t}anxin_staff SET password_hash = ? WHERE staff_id = ?"), (new_hash, staff_id))
            c.execute(self.db.q("DELETE FROM {t}anxin_web_sessions WHERE staff_id = ?"), (staff_id,))
            c.execute(
                self.db.q(
                    "UPDATE {t}anxin_personal_tokens SET revoked_at = ? WHERE staff_id = ? AND revoked_at IS NULL"
                ),
                (now, staff_id),
            )
            audit.append(c, self.db, [entry])
        return staff_id

    # -- API tokens -------------------------------------------------------------------
    def issue_token(self, actor: Actor, label: str = "", *, days: int = 30, scope: str = "read") -> str:
        """A new API token for the signed-in person themselves (nobody issues one for
        another account): `scope` "read" (GET only) or "write", expiring in `days`
        (TOKEN_DAYS). Shown this once: only its SHA-256 is kept. The token and a
        `token_issue` entry of the audit trail (its id, scope, expiry) in one transaction."""
        self.prepare()
        if scope not in TOKEN_SCOPES:
            raise InvalidInput(reason="令牌权限应为只读或读写")
        if days not in TOKEN_DAYS:
            raise InvalidInput(reason="令牌有效期应为 30 天或 90 天")
        if self.staff(actor.staff_id) is None or not self.staff(actor.staff_id).active:  # type: ignore[union-attr]
            raise AccountInactive()
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        h = token_hash(token)
        now = self.app.now()
        expires = (now + timedelta(days=days)).isoformat()
        self._commit(
            [
                (
                    "INSERT INTO {t}anxin_personal_tokens (token_hash, staff_id, label, scope, created_at, expires_at) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (h, actor.staff_id, label.strip()[:40], scope, now.isoformat(), expires),
                )
            ],
            audit.security_row(
                self.app,
                "token_issue",
                actor.staff_id,
                actor.staff_id,
                {"token": h[:16], "scope": scope, "expires": expires},
            ),
        )
        return token

    def revoke_token(self, actor: Actor, token_id: str) -> bool:
        """The signed-in person revokes one of their own tokens, named by its id (the
        start of its hash, at least 8 characters). With a `token_revoke` entry of the
        audit trail, in one transaction. Whether one was."""
        self.prepare()
        if len(token_id) < 8:
            return False
        rows = self.db.fetch(
            "SELECT token_hash FROM {t}anxin_personal_tokens WHERE staff_id = ? AND revoked_at IS NULL",
            (actor.staff_id,),
        )
        for (h,) in rows:
            if h.startswith(token_id):
                self._commit(
                    [
                        (
                            "UPDATE {t}anxin_personal_tokens SET revoked_at = ? WHERE token_hash = ?",
                            (self.app.now().isoformat(), h),
                        )
                    ],
                    audit.security_row(self.app, "token_revoke", actor.staff_id, actor.staff_id, {"token": h[:16]}),
                )
                return True
        return False

    def token(self, token: str) -> TokenGrant | None:
        """Whose live token this is, its id and scope (None: unknown, revoked or expired)."""
        row = self.db.fetchone(
            "SELECT staff_id, token_hash, scope, expires_at FROM {t}anxin_personal_tokens "
            "WHERE token_hash = ? AND revoked_at IS NULL",
            (token_hash(token),),
        )
        if row is None or datetime.fromisoformat(row[3]) <= self.app.now():
            return None
        return TokenGrant(staff_id=row[0], token_id=row[1][:16], scope=row[2])

    def token_staff(self, token: str) -> str | None:
        """Whose live token this is (None: unknown, revoked or expired)."""
        found = self.token(token)
        return found.staff_id if found else None

    def tokens_of(self, staff_id: str) -> list[dict[str, Any]]:
        """An account's tokens, newest first: id (the start of the hash), label, scope,
        times, and whether it is still live."""
        rows = self.db.fetch(
            "SELECT token_hash, label, scope, created_at, expires_at, revoked_at FROM {t}anxin_personal_tokens "
            "WHERE staff_id = ? ORDER BY created_at DESC",
            (staff_id,),
        )
        now = self.app.now()
        return [
            {
                "id": r[0][:16],
                "label": r[1],
                "scope": r[2],
                "created_at": r[3],
                "expires_at": r[4],
                "revoked_at": r[5],
                "live": r[5] is None and datetime.fromisoformat(r[4]) > now,
            }
            for r in rows
        ]


__all__ = [
    "Accounts",
    "SetupCode",
    "SetupCodeInvalid",
    "SetupCodeRefused",
    "SetupState",
    "setup_link",
    "TokenGrant",
    "SETUP_HOURS",
    "TOKEN_DAYS",
    "TOKEN_SCOPES",
    "AttemptRule",
    "AccountInactive",
    "PasswordRejected",
    "StaffEntry",
    "StoredSession",
    "SESSION_KEY_ID",
    "TOKEN_PREFIX",
    "session_hash",
    "token_hash",
]
