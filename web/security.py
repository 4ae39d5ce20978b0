"""Sessions, CSRF, login throttling and API tokens: the web's policies over what the
application keeps (`anxin.accounts`, reached as `app.accounts`; nothing here touches the
store).

Everything lives in the database, so any number of server processes share it: a login
made in one worker is valid in every other, a logout or a password change ends it
everywhere.

- Sessions: a random id in an HttpOnly, SameSite=Lax cookie (Secure over HTTPS). The
  application keeps only the id's SHA-256, the staff id, when the session was created and
  last seen, and its data (flash messages) sealed under a named key and bound to the row.
  Sessions expire after IDLE_SECONDS of inactivity; a login always starts a new session
  (no fixation). `seen` is written at most every TOUCH_SECONDS (not on every request), so
  a session may expire up to TOUCH_SECONDS early, never late.
- CSRF: every state-changing request made with the session cookie carries the session's
  token (form field `csrf_token` or header `X-CSRF-Token`). The token is derived (a keyed
  HMAC of the session id under a key stored wrapped by the master key), never stored.
- Failed logins are counted per login name and per client address, as keyed hashes (the
  blind index, never the name or the address) with the time; past the limit the login is
  refused for a while, even with the right password, and each refusal goes to the audit
  trail.
- API tokens: an administrator issues one per account (`app.accounts.issue_token`); only
  its SHA-256 is stored.

Times are the wall clock (`time.time`, shared by every process); tests pass their own.
"""

from __future__ import annotations

import hmac
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from anxin.accounts import SESSION_KEY_ID, TOKEN_PREFIX, session_hash, token_hash

if TYPE_CHECKING:
    from anxin.service import Anxin

COOKIE = "anxin_session"
LANG_COOKIE = "anxin_lang"
IDLE_SECONDS = 30 * 60
TOUCH_SECONDS = 60
__all__ = [
    "COOKIE",
    "LANG_COOKIE",
    "IDLE_SECONDS",
    "TOUCH_SECONDS",
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
    ) -> None:
        self.app = app
        self.idle = idle_seconds
        self.clock = clock
        self.touch = touch_seconds
        app.accounts.prepare()

    def _csrf(self, sid: str) -> str:
        return self.app.keystore.blind("web-csrf", sid)  # type: ignore[no-any-return]

    def create(self, staff_id: str, replacing: str | None = None) -> Session:
        now = self.clock()
        sid = self.app.accounts.start_session(staff_id, now, expired_before=now - self.idle, replacing=replacing)
        return Session(sid, staff_id, self._csrf(sid), now, now)

    def get(self, sid: str | None) -> Session | None:
        if not sid:
            return None
        now = self.clock()
        found = self.app.accounts.session(sid, now=now, idle=self.idle)  # (None once idle too long)
        if found is None:
            return None
        seen = found.seen
        if now - seen >= self.touch:  # at most one write per session per TOUCH_SECONDS
            self.app.accounts.touch_session(sid, now)
            seen = now
        return Session(sid, found.staff_id, self._csrf(sid), found.created, seen, found.data)

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
        self.app.accounts.sweep_sessions(self.clock() - self.idle)


def csrf_ok(session: Session, token: str | None) -> bool:
    return bool(token) and hmac.compare_digest(session.csrf, token or "")


class LoginThrottle:
    """At most `per_user` failures per login name and `per_address` per client address
    within `window` seconds; past that, logins are refused until the window passes.
    Counted by the application (every worker sees every failure), by keyed hash."""

    def __init__(
        self, app: Anxin, per_user: int = 5, per_address: int = 20, window: float = 15 * 60, clock: Any = time.time
    ) -> None:
        self.app = app
        self.per_user = per_user
        self.per_address = per_address
        self.window = window
        self.clock = clock
        app.accounts.prepare()

    def blocked(self, username: str, address: str) -> bool:
        by_user, by_address = self.app.accounts.login_failures(username, address, self.clock() - self.window)
        return by_user >= self.per_user or by_address >= self.per_address

    def failed(self, username: str, address: str) -> None:
        now = self.clock()
        self.app.accounts.login_failed(username, address, now, forget_before=now - self.window)

    def succeeded(self, username: str) -> None:
        self.app.accounts.login_succeeded(username)


class ApiTokens:
    """Who a bearer token signs in, and an account's tokens (issued and revoked by the
    application's commands `app.accounts.issue_token` / `revoke_token`)."""

    def __init__(self, app: Anxin) -> None:
        self.app = app
        app.accounts.prepare()

    def staff_for(self, token: str) -> str | None:
        return self.app.accounts.token_staff(token)  # type: ignore[no-any-return]

    def of_staff(self, staff_id: str) -> list[dict[str, Any]]:
        return self.app.accounts.tokens_of(staff_id)  # type: ignore[no-any-return]
