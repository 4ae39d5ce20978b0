"""Two-step verification (两步验证): after the password, a 6-digit code from an
authenticator app on the person's phone (TOTP, RFC 6238: 30-second steps), or one of ten
single-use recovery codes; and the school setting that requires it of the content roles.

Why it is built this way:
- The secret never lies in clear: a confirmed enrolment's secret is sealed under a named
  key (`KEY_ID`, stored wrapped by the master key like every data key, so a master-key
  rotation re-wraps it and the secret itself never changes) and bound to its account (a
  sealed secret copied to another account's row fails to open). An enrolment not yet
  confirmed is no row at all: the web keeps its secret in the person's session (sealed
  too) until a first code proves the app has it, so only a confirmed enrolment takes
  effect, and an abandoned one leaves nothing behind.
- A code is accepted for the step before, the current one or the one after (a phone's
  clock a little off), and never twice: the row keeps the last step a code was accepted
  for, moved on by compare and set, so the same code sent twice at once passes once.
- Recovery codes are kept as keyed hashes (the blind index: guessing one offline needs
  the master key), each spent by compare and set.
- An administrator can reset someone's verification (a lost phone) but never sees or sets
  a secret: the reset deletes it, ends the person's sessions, and is an audit entry; the
  person enrols again at their next login if their school requires it.
- Who must use it: a person holding a content role (`domain.roster.CONTENT_ROLES`) at a
  school whose administrator turned the setting on (or, for the district's own accounts
  such as supervisors, the district's administrator). The setting is a row of codes
  (`anxin_school_settings`) and each change an audit entry.

The web asks `stage_after_password` after a correct password and then `passes` with the
code typed; the attempts are counted by the login throttle before any code is checked,
and the web records a wrong code as a failed login, as it does a wrong password.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pyotp

from anxin import audit
from anxin.accounts import PasswordRejected
from anxin.passwords import verify_password
from domain import access
from domain.common import Actor, InvalidInput, NotFound
from domain.roster import CONTENT_ROLES

if TYPE_CHECKING:
    from anxin.core import Core

KEY_ID = "anxin:two-step"  # the named key that seals the secrets
ISSUER = "安心"  # as the authenticator app lists the account
STEP_SECONDS = 30
DIGITS = 6
WINDOW = 1  # steps either side of now a code may be for
RECOVERY_CODES = 10
RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i to misread
RECOVERY_LENGTH = 10  # ~50 bits each, shown as xxxxx-xxxxx
SETTING = "two_step_required"
DISTRICT_SCOPE = "district:"  # + the district's name: the accounts of no school (supervisors)


class CodeRejected(InvalidInput):
    """A code that is wrong, for a step too far from now, already used, or a recovery
    code that is unknown or spent."""

    message = "验证码不正确或已用过：请输入验证器应用当前显示的 6 位数字，或一个未用过的恢复码"


class NotEnrolled(InvalidInput):
    message = "尚未开启两步验证"


class AlreadyEnrolled(InvalidInput):
    message = "已经开启了两步验证"


class EnrolmentExpired(InvalidInput):
    """A confirmation with no enrolment under way (the page was left open too long, or
    opened in another session)."""

    message = "开启页面已过期：请重新扫描新的二维码后再输入验证码"


class OwnReset(InvalidInput):
    """An administrator asked to reset their own verification (a second person does it:
    otherwise the password alone would undo the second step)."""

    message = "不能重置本人的两步验证：请在本人的两步验证页面关闭，或请另一位管理员重置"


@dataclass(frozen=True)
class Status:
    """A person's two-step verification as their own page shows it (no secret)."""

    enrolled: bool
    enrolled_at: datetime | None
    recovery_left: int
    required: bool


@dataclass(frozen=True)
class Passed:
    """A second step passed: with a "code" from the app or a "recovery" code (and how
    many recovery codes are left)."""

    method: str
    recovery_left: int


@dataclass(frozen=True)
class ScopeSetting:
    """One school's (or the district's own accounts') requirement, with how many of its
    people hold a content role and how many of those have enrolled: counts only."""

    scope: str
    school_id: str | None
    required: bool
    content_staff: int
    enrolled: int


def new_secret() -> str:
    """A fresh authenticator secret (base32, 160 bits), for an enrolment to confirm."""
    return pyotp.random_base32()


def grouped(secret: str) -> str:
    """The secret in groups of four, as a person types it into an app by hand."""
    return " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))


def provisioning_uri(secret: str, login_name: str) -> str:
    """The otpauth:// address the QR code carries (the login name, never a person's name)."""
    return pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS).provisioning_uri(
        name=login_name, issuer_name=ISSUER
    )


def _typed(code: str) -> str:
    """What was typed, without spaces, dashes or case."""
    return "".join(ch for ch in str(code or "").lower() if ch.isalnum())


def _is_app_code(typed: str) -> bool:
    return len(typed) == DIGITS and typed.isdigit()


def _usable_secret(secret: str) -> bool:
    """A secret of ours: base32, at least 128 bits (what `new_secret` makes is 160)."""
    if len(secret) < 26:
        return False
    try:
        base64.b32decode(secret + "=" * (-len(secret) % 8))
    except (binascii.Error, ValueError):
        return False
    return True


def _new_recovery_code() -> str:
    raw = "".join(secrets.choice(RECOVERY_ALPHABET) for _ in range(RECOVERY_LENGTH))
    return raw[:5] + "-" + raw[5:]


class TwoStep:
    """Two-step verification of one application (`Core.two_step`)."""

    def __init__(self, app: Core) -> None:
        self.app = app
        self.db = app.db

    # -- steps and codes ----------------------------------------------------------------
    def _now_step(self) -> int:
        return int(self.app.now().timestamp()) // STEP_SECONDS

    def _matching_step(self, secret: str, typed: str, after: int | None = None) -> int | None:
        """The step within the window a code is for (the earliest not yet used), or None."""
        if not _is_app_code(typed):
            return None
        totp = pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS)
        now = self._now_step()
        for step in range(now - WINDOW, now + WINDOW + 1):
            if (after is None or step > after) and hmac.compare_digest(totp.generate_otp(step), typed):
                return step
        return None

    def _recovery_hash(self, staff_id: str, typed: str) -> str:
        return str(self.app.keystore.blind("two-step-recovery", f"{staff_id}\x1f{typed}"))

    def _seal(self, staff_id: str, secret: str) -> bytes:
        return self.app.seal(KEY_ID, secret, staff_id.encode())

    def _secret(self, staff_id: str) -> tuple[str, int | None] | None:
        """The enrolled secret (opened) and the last step a code was accepted for."""
        row = self.db.fetchone("SELECT sealed, last_step FROM {t}anxin_two_step WHERE staff_id = ?", (staff_id,))
        if row is None:
            return None
        return self.app.unseal(KEY_ID, bytes(row[0]), staff_id.encode()), (None if row[1] is None else int(row[1]))

    def _commit(self, statements: Iterable[tuple[str, tuple[Any, ...]]], *entries: audit.Row) -> None:
        """The statements and audit entries in one transaction, with the gate's decisions
        of the command so far (as `Accounts._commit`)."""
        from anxin.gate import deferred_access

        decisions = deferred_access.get()
        rows = list(decisions or ())
        with self.db.transaction() as c:
            for sql, params in statements:
                c.execute(self.db.q(sql), params)
            audit.append(c, self.db, [*rows, *entries])
        if decisions:
            del decisions[: len(rows)]

    # -- one's own -------------------------------------------------------------------------
    def enrolled(self, staff_id: str) -> bool:
        return self.db.fetchone("SELECT 1 FROM {t}anxin_two_step WHERE staff_id = ?", (staff_id,)) is not None

    def status(self, staff_id: str) -> Status:
        row = self.db.fetchone("SELECT enrolled_at FROM {t}anxin_two_step WHERE staff_id = ?", (staff_id,))
        left = self.db.fetchone(
            "SELECT COUNT(*) FROM {t}anxin_two_step_recovery WHERE staff_id = ? AND used_at IS NULL", (staff_id,)
        )
        return Status(
            enrolled=row is not None,
            enrolled_at=datetime.fromisoformat(row[0]) if row else None,
            recovery_left=int(left[0]) if left and row else 0,
            required=self.required_for(staff_id),
        )

    def enrol(self, staff_id: str, secret: str, code: str) -> list[str]:
        """Confirm an enrolment: `secret` is the one shown to the person (kept by the web
        until now), `code` the first code their app made from it. In one transaction: the
        sealed secret (the confirming code's step counted as used), ten new recovery codes
        (their keyed hashes), and a `two_step_enrol` entry. The recovery codes, shown this
        once. CodeRejected: a wrong code (nothing stored); AlreadyEnrolled."""
        if self.enrolled(staff_id):
            raise AlreadyEnrolled()
        secret = str(secret or "").strip().upper()
        if not _usable_secret(secret):  # none under way (the page is stale): never an empty key
            raise EnrolmentExpired()
        step = self._matching_step(secret, _typed(code))
        if step is None:
            raise CodeRejected()
        codes = [_new_recovery_code() for _ in range(RECOVERY_CODES)]
        now = self.app.now().isoformat()
        sealed = self._seal(staff_id, secret)
        with self.db.transaction() as c:
            made = c.execute(
                self.db.q(
                    "INSERT INTO {t}anxin_two_step (staff_id, sealed, enrolled_at, last_step) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (staff_id) DO NOTHING RETURNING staff_id"
                ),
                (staff_id, sealed, now, step),
            ).fetchone()
            if made is None:  # confirmed meanwhile by another request
                raise AlreadyEnrolled()
            c.execute(self.db.q("DELETE FROM {t}anxin_two_step_recovery WHERE staff_id = ?"), (staff_id,))
            c.executemany(
                self.db.q("INSERT INTO {t}anxin_two_step_recovery (code_hash, staff_id) VALUES (?, ?)"),
                [(self._recovery_hash(staff_id, _typed(k)), staff_id) for k in codes],
            )
            entry = audit.security_row(self.app, "two_step_enrol", staff_id, staff_id, {"recovery_codes": len(codes)})
            audit.append(c, self.db, [entry])
        return codes

    def passes(self, staff_id: str, code: str) -> Passed | None:
        """Whether `code` passes the second step for this person, spending it: a code of
        their app for a step within the window after the last one accepted, or an unused
        recovery code. None otherwise (and nothing changes). Callers count the attempt
        first (the login throttle) and record a refusal."""
        typed = _typed(code)
        if _is_app_code(typed):
            found = self._secret(staff_id)
            if found is None:
                return None
            secret, last = found
            step = self._matching_step(secret, typed, after=last)
            if step is None:
                return None
            moved = self._move_step(staff_id, step)
            return Passed("code", self._recovery_left(staff_id)) if moved else None
        if not typed or not self.enrolled(staff_id):
            return None
        spent = self._spend(staff_id, self._recovery_hash(staff_id, typed))
        return Passed("recovery", self._recovery_left(staff_id)) if spent else None

    def _spend(self, staff_id: str, code_hash: str) -> bool:
        """A recovery code marked used, only if it is still unused."""
        with self.db.transaction() as c:
            spent = c.execute(
                self.db.q(
                    "UPDATE {t}anxin_two_step_recovery SET used_at = ? WHERE code_hash = ? AND staff_id = ? "
                    "AND used_at IS NULL RETURNING code_hash"
                ),
                (self.app.now().isoformat(), code_hash, staff_id),
            ).fetchone()
        return spent is not None

    def _move_step(self, staff_id: str, step: int) -> bool:
        """The last accepted step moved on to `step`, only if it is still before it (so
        a code sent twice at once passes once)."""
        with self.db.transaction() as c:
            moved = c.execute(
                self.db.q(
                    "UPDATE {t}anxin_two_step SET last_step = ? WHERE staff_id = ? "
                    "AND (last_step IS NULL OR last_step < ?) RETURNING staff_id"
                ),
                (step, staff_id, step),
            ).fetchone()
        return moved is not None

    def _recovery_left(self, staff_id: str) -> int:
        row = self.db.fetchone(
            "SELECT COUNT(*) FROM {t}anxin_two_step_recovery WHERE staff_id = ? AND used_at IS NULL", (staff_id,)
        )
        return int(row[0]) if row else 0

    def disable(self, actor: Actor, password: str, code: str) -> None:
        """The signed-in person turns their verification off, proving their password and a
        current code (or a recovery code). A wrong password: PasswordRejected("current"),
        a `login_failed` entry (reason `current_password`); a wrong code: CodeRejected, a
        `login_failed` entry (reason `two_step_code`). Then, in one transaction, the secret
        and the recovery codes deleted and a `two_step_disable` entry. Callers throttle the
        attempts (the password's and the code's counters)."""
        staff_id = actor.staff_id
        row = self.db.fetchone("SELECT password_hash FROM {t}anxin_staff WHERE staff_id = ?", (staff_id,))
        if row is None or not row[0] or not verify_password(row[0], password):
            self.app.record_security_event("login_failed", staff_id, staff_id, {"reason": "current_password"})
            raise PasswordRejected("current")
        if not self.enrolled(staff_id):
            raise NotEnrolled()
        if self.passes(staff_id, code) is None:
            self.app.record_security_event("login_failed", staff_id, staff_id, {"reason": "two_step_code"})
            raise CodeRejected()
        self._commit(self._removal(staff_id), audit.security_row(self.app, "two_step_disable", staff_id, staff_id))

    @staticmethod
    def _removal(staff_id: str) -> list[tuple[str, tuple[Any, ...]]]:
        return [
            ("DELETE FROM {t}anxin_two_step WHERE staff_id = ?", (staff_id,)),
            ("DELETE FROM {t}anxin_two_step_recovery WHERE staff_id = ?", (staff_id,)),
        ]

    # -- what the login asks ---------------------------------------------------------------
    def required_for(self, staff_id: str) -> bool:
        """Whether this person must use two-step verification: they hold a content role and
        their school (or, without one, their district) requires it."""
        entry = self.app.accounts.staff(staff_id)
        if entry is None or not CONTENT_ROLES & set(entry.roles):
            return False
        return self._required(entry.school_id or DISTRICT_SCOPE + entry.district)

    def stage_after_password(self, staff_id: str) -> str | None:
        """What a correct password leads to: "code" (enrolled: the code is asked), "enrol"
        (required and not enrolled: enrolment first), or None (signed in)."""
        if self.enrolled(staff_id):
            return "code"
        if self.required_for(staff_id):
            return "enrol"
        return None

    # -- administrators ---------------------------------------------------------------------
    def status_of(self, actor: Actor, staff_id: str) -> Status:
        """An account's verification as its administrator sees it (whether it is on, how many
        recovery codes are left; never the secret). The gate decides ACCOUNT_ADMIN first."""
        if not self.app.accounts.staff_accounts(actor, staff_id):
            raise NotFound()
        return self.status(staff_id)

    def reset(self, actor: Actor, staff_id: str) -> bool:
        """An administrator resets someone's verification (a lost phone): the gate decides
        ACCOUNT_ADMIN for the account; never one's own (OwnReset). In one transaction, with
        the gate's decision: the secret and recovery codes deleted, the person's sessions
        ended, a `two_step_reset` entry. Whether there was one to reset."""
        with self.app.gate.deferred_decisions(own=True):
            if not self.app.accounts.staff_accounts(actor, staff_id):
                raise NotFound()
            if staff_id == actor.staff_id:
                raise OwnReset()
            if not self.enrolled(staff_id):
                return False
            self.app.accounts.prepare()  # (the sessions' table)
            self._commit(
                [*self._removal(staff_id), ("DELETE FROM {t}anxin_web_sessions WHERE staff_id = ?", (staff_id,))],
                audit.security_row(self.app, "two_step_reset", actor.staff_id, staff_id),
            )
        return True

    def _required(self, scope: str) -> bool:
        row = self.db.fetchone(
            "SELECT value FROM {t}anxin_school_settings WHERE scope = ? AND setting = ?", (scope, SETTING)
        )
        return bool(row and row[0] == "1")

    def _scopes(self, actor: Actor) -> list[tuple[str, str | None]]:
        """The scopes an administrator sets: their school, or every school of their
        district and the district's own accounts."""
        scopes: list[tuple[str, str | None]] = [
            (sid, sid)
            for sid, _name, district in self.app.schools()
            if district == actor.district and actor.school_id in (None, sid)
        ]
        if actor.school_id is None:
            scopes.append((DISTRICT_SCOPE + actor.district, None))
        return scopes

    def settings(self, actor: Actor) -> list[ScopeSetting]:
        """The requirement of each school the administrator manages (and, for the
        district's administrator, of the district's own accounts), with counts of the
        people it concerns. The gate decides ACCOUNT_ADMIN first."""
        self.app.check(actor, access.ACCOUNT_ADMIN, "account", school_id=actor.school_id)
        enrolled = {r[0] for r in self.db.fetch("SELECT staff_id FROM {t}anxin_two_step")}
        counts: dict[str, list[int]] = {}
        for entry in self.app.accounts.staff_accounts(actor):
            if entry.active and CONTENT_ROLES & set(entry.roles):
                tally = counts.setdefault(entry.school_id or DISTRICT_SCOPE + entry.district, [0, 0])
                tally[0] += 1
                tally[1] += entry.id in enrolled
        return [
            ScopeSetting(scope, school_id, self._required(scope), *counts.get(scope, [0, 0]))
            for scope, school_id in self._scopes(actor)
        ]

    def set_required(self, actor: Actor, scope: str, required: bool) -> bool:
        """Turn the requirement on or off for a school (its administrator, or the
        district's) or for the district's own accounts (the district's administrator): the
        gate decides ACCOUNT_ADMIN for that school first. In one transaction with the
        decision: the setting and a `school_setting` entry. Whether it changed."""
        school_id = None if scope.startswith(DISTRICT_SCOPE) else scope
        with self.app.gate.deferred_decisions(own=True):
            self.app.check(actor, access.ACCOUNT_ADMIN, "account", school_id=school_id)
            if scope not in {s for s, _ in self._scopes(actor)}:
                raise NotFound()
            if self._required(scope) == required:
                return False
            value = "1" if required else "0"
            self._commit(
                [
                    (
                        "INSERT INTO {t}anxin_school_settings (scope, setting, value, changed_at) VALUES (?, ?, ?, ?) "
                        "ON CONFLICT (scope, setting) DO UPDATE SET value = excluded.value, "
                        "changed_at = excluded.changed_at",
                        (scope, SETTING, value, self.app.now().isoformat()),
                    )
                ],
                audit.security_row(
                    self.app, "school_setting", actor.staff_id, scope, {"setting": SETTING, "value": value}
                ),
            )
        return True


__all__ = [
    "AlreadyEnrolled",
    "CodeRejected",
    "EnrolmentExpired",
    "DISTRICT_SCOPE",
    "NotEnrolled",
    "OwnReset",
    "Passed",
    "ScopeSetting",
    "Status",
    "TwoStep",
    "grouped",
    "new_secret",
    "provisioning_uri",
]
