"""Sessions, CSRF, login throttling, trusted proxies and API tokens: the web's policies
over what the application keeps (`anxin.accounts`, reached as `app.accounts`; nothing here
touches the store).

Everything lives in the database, so any number of server processes share it: a login
made in one worker is valid in every other, a logout or a password change ends it
everywhere.

- Sessions: a random id in an HttpOnly, SameSite=Lax cookie (Secure over HTTPS). The
  application keeps only the id's SHA-256, the staff id, when the session was created and
  last seen, and its data (flash messages) sealed under a named key and bound to the row.
  Sessions expire after IDLE_SECONDS of inactivity, and LIFETIME_SECONDS after the login
  however busy (ANXIN_SESSION_MAX_HOURS, 12 by default); a login always starts a new
  session (no fixation). `seen` is written at most every TOUCH_SECONDS (not on every
  request), so a session may expire up to TOUCH_SECONDS early, never late.
- CSRF: every state-changing request made with the session cookie carries the session's
  token (form field `csrf_token` or header `X-CSRF-Token`). The token is derived (a keyed
  HMAC of the session id under a key stored wrapped by the master key), never stored.
  The login form has its own token, bound the same way to a pre-session cookie
  (LOGIN_COOKIE) set with the form: a login posted from another site is refused.
- Login attempts are counted before any password is checked (`app.accounts.admit`,
  atomic in the store): per login name from one address, per login name from anywhere,
  and per address, as keyed hashes (the blind index, never the name or the address).
  Each counter has a free budget (LoginPolicy); past it, the next attempt waits, twice as
  long after each (a progressive delay up to a cap, never a lockout of fixed length
  anyone could set off), and a success starts the name's counters again. A signed-in
  person's current-password checks (password change) are counted the same way. Each
  refusal goes to the audit trail.
- Two-step verification (anxin.two_step): after a correct password, an account with it
  (or required to have it and not yet enrolled) gets a half-login: a session whose data
  names its stage ("code" or "enrol"), which no page or API accepts (`SessionStore.get`
  answers None) and which ends after STAGE_SECONDS; passing the step starts a new session
  (a new id). The codes typed are counted per account before they are checked.
- Client addresses: the direct peer's, unless it is one of the proxies configured in
  ANXIN_TRUSTED_PROXIES (addresses or networks, comma-separated; none by default): only
  then is X-Forwarded-For read, right to left, skipping the trusted proxies.
- API tokens: each person issues their own (`app.accounts.issue_token`, on their account
  page), read-only or read-write, for 30 or 90 days; only its SHA-256 is stored. A
  read-only token is refused any state-changing request; an expired, revoked one (a
  password change revokes them all) signs nobody in; the gate's decisions of a request it
  signs in record its id.

Times are the wall clock (`time.time`, shared by every process); tests pass their own.
"""

from __future__ import annotations

import hmac
import ipaddress
import math
import os
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from anxin.accounts import SESSION_KEY_ID, TOKEN_PREFIX, AttemptRule, TokenGrant, session_hash, token_hash

if TYPE_CHECKING:
    from anxin.service import Anxin

COOKIE = "anxin_session"
LOGIN_COOKIE = "anxin_login"  # the pre-session cookie the login form's CSRF token is bound to
LANG_COOKIE = "anxin_lang"
IDLE_SECONDS = 30 * 60
TOUCH_SECONDS = 60
# How long the state between a correct password and the second step lasts: the code
# asked for, or (required and not yet set up) the enrolment.
STAGE_SECONDS = {"code": 5 * 60, "enrol": 15 * 60}


def _env_number(name: str, default: float, env: Mapping[str, str] | None = None) -> float:
    raw = (env if env is not None else os.environ).get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError as e:
        raise ValueError(f"{name} 应为正数（当前为 {raw!r}）") from e
    if value <= 0:
        raise ValueError(f"{name} 应为正数（当前为 {raw!r}）")
    return value


LIFETIME_SECONDS = _env_number("ANXIN_SESSION_MAX_HOURS", 12) * 3600
__all__ = [
    "COOKIE",
    "LOGIN_COOKIE",
    "LANG_COOKIE",
    "IDLE_SECONDS",
    "LIFETIME_SECONDS",
    "TOUCH_SECONDS",
    "STAGE_SECONDS",
    "LoginPolicy",
    "TrustedProxies",
    "login_csrf",
    "TOKEN_PREFIX",
    "SESSION_KEY_ID",
    "Session",
    "SessionStore",
    "LoginThrottle",
    "ApiTokens",
    "csrf_ok",
    "session_hash",
    "token_hash",
]


@dataclass
class Session:
    id: str
    staff_id: str
    csrf: str
    created: float
    seen: float
    data: dict[str, Any] = field(default_factory=dict)


class SessionStore:
    """Server-side sessions (kept by the application), shared by every worker process."""

    def __init__(
        self,
        app: Anxin,
        idle_seconds: float = IDLE_SECONDS,
        clock: Any = time.time,
        touch_seconds: float = TOUCH_SECONDS,
        lifetime_seconds: float = LIFETIME_SECONDS,
    ) -> None:
        self.app = app
        self.idle = idle_seconds
        self.clock = clock
        self.touch = touch_seconds
        self.lifetime = lifetime_seconds
        app.accounts.prepare()

    def _csrf(self, sid: str) -> str:
        return self.app.keystore.blind("web-csrf", sid)  # type: ignore[no-any-return]

    def create(self, staff_id: str, replacing: str | None = None, stage: dict[str, Any] | None = None) -> Session:
        """A new session (the one `replacing` names ended). With `stage` ({"stage": "code"
        or "enrol", ...}), a half-login: no page or API accepts it (`get` answers None) until
        its second step is passed, and it lasts STAGE_SECONDS[stage] (`staged`)."""
        now = self.clock()
        sid = self.app.accounts.start_session(
            staff_id, now, expired_before=now - self.idle, replacing=replacing, created_before=now - self.lifetime
        )
        session = Session(sid, staff_id, self._csrf(sid), now, now)
        if stage is not None:
            session.data = {**stage, "until": now + STAGE_SECONDS[stage["stage"]]}
            self.save_data(session)
        return session

    def _found(self, sid: str | None) -> Session | None:
        if not sid:
            return None
        now = self.clock()
        # None once idle too long, or older than the absolute lifetime
        found = self.app.accounts.session(sid, now=now, idle=self.idle, lifetime=self.lifetime)
        if found is None:
            return None
        seen = found.seen
        if now - seen >= self.touch:  # at most one write per session per TOUCH_SECONDS
            self.app.accounts.touch_session(sid, now)
            seen = now
        return Session(sid, found.staff_id, self._csrf(sid), found.created, seen, found.data)

    def get(self, sid: str | None) -> Session | None:
        """A signed-in session; never a half-login waiting for its second step."""
        session = self._found(sid)
        return None if session is None or "stage" in session.data else session

    def staged(self, sid: str | None, stage: str) -> Session | None:
        """A half-login at `stage` ("code" or "enrol"), still within its few minutes (past
        them it is ended)."""
        session = self._found(sid)
        if session is None or session.data.get("stage") != stage:
            return None
        if self.clock() >= float(session.data.get("until", 0)):
            self.drop(session.id)
            return None
        return session

    def save_data(self, session: Session) -> None:
        """Store the session's data (sealed), after a change to it (a flash message added or shown)."""
        self.app.accounts.save_session_data(session.id, session.data)

    def drop(self, sid: str | None) -> None:
        if sid:
            self.app.accounts.end_session(sid)

    def drop_staff(self, staff_id: str, keep: str | None = None) -> None:
        """Log a person out everywhere (a deactivated account), except `keep`."""
        self.app.accounts.end_sessions_of(staff_id, keep)

    def sweep(self) -> None:
        now = self.clock()
        self.app.accounts.sweep_sessions(now - self.idle, now - self.lifetime)


def csrf_ok(session: Session, token: str | None) -> bool:
    return bool(token) and hmac.compare_digest(session.csrf, token or "")


def new_login_cookie() -> str:
    """A fresh pre-session cookie's value (the login form's CSRF token is bound to it)."""
    return secrets.token_urlsafe(32)


def login_csrf(app: Anxin, cookie: str) -> str:
    """The login form's CSRF token for a pre-session cookie: derived, never stored."""
    return app.keystore.blind("web-login-csrf", cookie)  # type: ignore[no-any-return]


def login_csrf_ok(app: Anxin, cookie: str | None, token: str | None) -> bool:
    return bool(cookie) and bool(token) and hmac.compare_digest(login_csrf(app, cookie or ""), token or "")


class TrustedProxies:
    """The reverse proxies whose X-Forwarded-For is believed (ANXIN_TRUSTED_PROXIES:
    addresses or networks, comma-separated; none by default, and then the header is
    ignored, whoever sends it)."""

    def __init__(self, spec: str = "") -> None:
        self.networks = [ipaddress.ip_network(p.strip(), strict=False) for p in spec.split(",") if p.strip()]

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> TrustedProxies:
        return cls((env if env is not None else os.environ).get("ANXIN_TRUSTED_PROXIES", ""))

    def trusts(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address.strip())
        except ValueError:
            return False
        return any(ip in n for n in self.networks)

    def client(self, peer: str | None, forwarded_for: str | None) -> str:
        """The client's address: the peer's, or, when the peer is a trusted proxy, the
        nearest address in X-Forwarded-For that is not one."""
        address = peer or "unknown"
        if not forwarded_for or not self.trusts(address):
            return address
        for hop in reversed([h.strip() for h in forwarded_for.split(",") if h.strip()]):
            address = hop
            if not self.trusts(hop):
                break
        return address


@dataclass(frozen=True)
class LoginPolicy:
    """The login throttle's budgets (see `AttemptRule`): per login name from one address
    (the one an attacker meets first), per login name from anywhere (spread over many
    addresses), per address (a school behind one NAT shares it: a generous budget, and
    a success gives its attempt back), and a signed-in person's current-password checks.
    Each from ANXIN_LOGIN_<NAME>_FREE / _BASE / _CAP (seconds) if set."""

    pair: AttemptRule = AttemptRule(free=5, base=2, cap=300, forget=15 * 60)
    name: AttemptRule = AttemptRule(free=20, base=2, cap=60, forget=15 * 60)
    address: AttemptRule = AttemptRule(free=30, base=1, cap=60, forget=15 * 60)
    check: AttemptRule = AttemptRule(free=5, base=2, cap=300, forget=15 * 60)
    code: AttemptRule = AttemptRule(free=5, base=2, cap=300, forget=15 * 60)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> LoginPolicy:
        rules: dict[str, AttemptRule] = {}
        for name in ("pair", "name", "address", "check", "code"):
            rule: AttemptRule = getattr(cls, name)
            prefix = f"ANXIN_LOGIN_{name.upper()}_"
            rules[name] = AttemptRule(
                free=int(_env_number(prefix + "FREE", rule.free, env)),
                base=_env_number(prefix + "BASE", rule.base, env),
                cap=_env_number(prefix + "CAP", rule.cap, env),
                forget=rule.forget,
            )
        return cls(**rules)


class LoginThrottle:
    """Login attempts counted before the password is checked (`admit_login`: 0 to go on,
    else the seconds to wait), by the application (every worker sees every attempt), by
    keyed hash; see LoginPolicy for the budgets. Also the trusted proxies (`proxies`),
    which decide the address counted."""

    def __init__(
        self,
        app: Anxin,
        policy: LoginPolicy | None = None,
        clock: Any = time.time,
        proxies: TrustedProxies | None = None,
    ) -> None:
        self.app = app
        self.policy = policy or LoginPolicy.from_env()
        self.clock = clock
        self.proxies = proxies or TrustedProxies.from_env()
        app.accounts.prepare()

    def _login_counters(self, username: str, address: str) -> list[tuple[str, AttemptRule]]:
        key, p = self.app.accounts.attempt_key, self.policy
        return [
            (key("pair", username, address), p.pair),
            (key("name", username), p.name),
            (key("address", address), p.address),
        ]

    def admit_login(self, username: str, address: str) -> float:
        return self._admitted(self.app.accounts.admit(self._login_counters(username, address), self.clock()))

    def login_succeeded(self, username: str, address: str) -> None:
        pair, name, by_address = (k for k, _ in self._login_counters(username, address))
        self.app.accounts.attempt_succeeded([pair, name], [by_address])
        if secrets.randbelow(50) == 0:  # now and then, counters long left alone go
            self.app.accounts.sweep_attempts(self.clock() - 86400)

    def admit_password_check(self, staff_id: str) -> float:
        """A signed-in person's current-password check (password change)."""
        key = self.app.accounts.attempt_key("check", staff_id)
        return self._admitted(self.app.accounts.admit([(key, self.policy.check)], self.clock()))

    def password_check_succeeded(self, staff_id: str) -> None:
        self.app.accounts.attempt_succeeded([self.app.accounts.attempt_key("check", staff_id)])

    def admit_code(self, staff_id: str) -> float:
        """A second-step code (or recovery code) typed for an account: counted per account,
        whatever the address, before the code is checked."""
        key = self.app.accounts.attempt_key("code", staff_id)
        return self._admitted(self.app.accounts.admit([(key, self.policy.code)], self.clock()))

    def code_succeeded(self, staff_id: str) -> None:
        self.app.accounts.attempt_succeeded([self.app.accounts.attempt_key("code", staff_id)])

    def setup_code_valid(self, address: str) -> None:
        """A set-up attempt (counted as `admit_password_check("setup:" + address)`) whose
        code was valid, whatever became of the password, was no guess: its attempt is given
        back (not the count reset, which one valid code could then do again and again), so
        a staff room setting up its accounts behind one address is not slowed down, while
        guessed codes still count."""
        self.app.accounts.attempt_succeeded([], [self.app.accounts.attempt_key("check", "setup:" + address)])

    @staticmethod
    def _admitted(wait: float) -> float:
        return 0.0 if wait <= 0 else float(max(1, math.ceil(wait)))


class ApiTokens:
    """Who a bearer token signs in (with its id and scope), and an account's tokens
    (issued and revoked by their holder: `app.accounts.issue_token` / `revoke_token`)."""

    def __init__(self, app: Anxin) -> None:
        self.app = app
        app.accounts.prepare()

    def grant_for(self, token: str) -> TokenGrant | None:
        return self.app.accounts.token(token)  # type: ignore[no-any-return]

    def staff_for(self, token: str) -> str | None:
        return self.app.accounts.token_staff(token)  # type: ignore[no-any-return]

    def of_staff(self, staff_id: str) -> list[dict[str, Any]]:
        return self.app.accounts.tokens_of(staff_id)  # type: ignore[no-any-return]
