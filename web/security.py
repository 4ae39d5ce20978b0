"""Sessions, CSRF, login throttling and API tokens.

Everything here lives in the database (side tables created on first use, on SQLite and
PostgreSQL alike), so any number of server processes share it: a login made in one
worker is valid in every other, a logout or a password change ends it everywhere.

- Sessions: a random id in an HttpOnly, SameSite=Lax cookie (Secure over HTTPS). The
  table `anxin_web_sessions` holds only the id's SHA-256, the staff id, when the session
  was created and last seen, and its data (flash messages) sealed under a named key and
  bound to the row. Sessions expire after IDLE_SECONDS of inactivity; a login always
  starts a new session (no fixation). `seen` is written at most every TOUCH_SECONDS (not
  on every request), so a session may expire up to TOUCH_SECONDS early, never late.
- CSRF: every state-changing request made with the session cookie carries the session's
  token (form field `csrf_token` or header `X-CSRF-Token`). The token is derived (a keyed
  HMAC of the session id under a key stored wrapped by the master key), never stored.
- Failed logins are counted per login name and per client address, in
  `anxin_login_failures`, as keyed hashes (the blind index, never the name or the address)
  with the time; past the limit the login is refused for a while, even with the right
  password, and each refusal goes to the audit trail.
- API tokens: an administrator issues one per account; only its SHA-256 is stored.

Times are the wall clock (`time.time`, shared by every process); tests pass their own.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from anxin.crypto import Tampered

log = logging.getLogger("anxin.web")

COOKIE = "anxin_session"
LANG_COOKIE = "anxin_lang"
IDLE_SECONDS = 30 * 60
TOUCH_SECONDS = 60
TOKEN_PREFIX = "anx_"
SESSION_KEY_ID = "anxin:web-sessions"  # the named key that seals a session's data


@dataclass
class Session:
    id: str
    staff_id: str
    csrf: str
    created: float
    seen: float
    data: dict[str, Any] = field(default_factory=dict)


def session_hash(sid: str) -> str:
    return hashlib.sha256(sid.encode()).hexdigest()


SESSIONS_TABLE = """CREATE TABLE IF NOT EXISTS {t}anxin_web_sessions (
    sid_hash TEXT PRIMARY KEY, staff_id TEXT NOT NULL, created DOUBLE PRECISION NOT NULL,
    seen DOUBLE PRECISION NOT NULL, data TEXT)"""
SESSIONS_INDEX = "CREATE INDEX IF NOT EXISTS anxin_web_sessions_staff ON {t}anxin_web_sessions (staff_id)"


class SessionStore:
    """Server-side sessions in the database, shared by every worker process."""

    def __init__(self, app: Any, idle_seconds: float = IDLE_SECONDS, clock: Any = time.time,
                 touch_seconds: float = TOUCH_SECONDS) -> None:
        self.app = app
        self.idle = idle_seconds
        self.clock = clock
        self.touch = touch_seconds
        app.db.execute(SESSIONS_TABLE)
        app.db.execute(SESSIONS_INDEX)
        app.keystore.ensure_named_key(SESSION_KEY_ID)

    def _csrf(self, sid: str) -> str:
        return self.app.keystore.blind("web-csrf", sid)  # type: ignore[no-any-return]

    def create(self, staff_id: str, replacing: str | None = None) -> Session:
        now = self.clock()
        sid = secrets.token_urlsafe(32)
        db = self.app.db
        with db.transaction() as c:
            if replacing:
                c.execute(db.q("DELETE FROM {t}anxin_web_sessions WHERE sid_hash = ?"), (session_hash(replacing),))
            self._sweep(c, now)
            c.execute(db.q("INSERT INTO {t}anxin_web_sessions (sid_hash, staff_id, created, seen, data) "
                           "VALUES (?, ?, ?, ?, NULL)"), (session_hash(sid), staff_id, now, now))
        return Session(sid, staff_id, self._csrf(sid), now, now)

    def get(self, sid: str | None) -> Session | None:
        if not sid:
            return None
        now = self.clock()
        h = session_hash(sid)
        db = self.app.db
        row = db.fetchone("SELECT staff_id, created, seen, data FROM {t}anxin_web_sessions WHERE sid_hash = ?", (h,))
        if row is None:
            return None
        staff_id, created, seen, sealed = row
        if now - seen > self.idle:
            db.execute("DELETE FROM {t}anxin_web_sessions WHERE sid_hash = ? AND seen < ?", (h, now - self.idle))
            return None
        if now - seen >= self.touch:  # at most one write per session per TOUCH_SECONDS
            db.execute("UPDATE {t}anxin_web_sessions SET seen = ? WHERE sid_hash = ? AND seen < ?", (now, h, now))
            seen = now
        return Session(sid, staff_id, self._csrf(sid), created, seen, self._open(h, sealed))

    def save_data(self, session: Session) -> None:
        """Store the session's data (sealed), after a change to it (a flash message added or shown)."""
        h = session_hash(session.id)
        sealed = None
        if session.data:
            blob = self.app.seal(SESSION_KEY_ID, json.dumps(session.data, ensure_ascii=False), h.encode())
            sealed = base64.b64encode(blob).decode()
        self.app.db.execute("UPDATE {t}anxin_web_sessions SET data = ? WHERE sid_hash = ?", (sealed, h))

    def _open(self, h: str, sealed: str | None) -> dict[str, Any]:
        if not sealed:
            return {}
        try:
            data = json.loads(self.app.unseal(SESSION_KEY_ID, base64.b64decode(sealed), h.encode()))
        except (ValueError, Tampered):
            log.warning("a session's data could not be opened; dropped")
            return {}
        return data if isinstance(data, dict) else {}

    def drop(self, sid: str | None) -> None:
        if sid:
            self.app.db.execute("DELETE FROM {t}anxin_web_sessions WHERE sid_hash = ?", (session_hash(sid),))

    def drop_staff(self, staff_id: str, keep: str | None = None) -> None:
        """Log a person out everywhere (after a password change, except `keep`)."""
        self.app.db.execute("DELETE FROM {t}anxin_web_sessions WHERE staff_id = ? AND sid_hash <> ?",
                            (staff_id, session_hash(keep) if keep else ""))

    def sweep(self) -> None:
        with self.app.db.transaction() as c:
            self._sweep(c, self.clock())

    def _sweep(self, c: Any, now: float) -> None:
        c.execute(self.app.db.q("DELETE FROM {t}anxin_web_sessions WHERE seen < ?"), (now - self.idle,))


def csrf_ok(session: Session, token: str | None) -> bool:
    return bool(token) and hmac.compare_digest(session.csrf, token or "")


FAILURES_TABLE = """CREATE TABLE IF NOT EXISTS {t}anxin_login_failures (
    who TEXT NOT NULL, at DOUBLE PRECISION NOT NULL)"""
FAILURES_INDEX = "CREATE INDEX IF NOT EXISTS anxin_login_failures_who ON {t}anxin_login_failures (who, at)"


class LoginThrottle:
    """At most `per_user` failures per login name and `per_address` per client address
    within `window` seconds; past that, logins are refused until the window passes.
    Counted in the database (every worker sees every failure), by keyed hash."""

    def __init__(self, app: Any, per_user: int = 5, per_address: int = 20, window: float = 15 * 60,
                 clock: Any = time.time) -> None:
        self.app = app
        self.per_user = per_user
        self.per_address = per_address
        self.window = window
        self.clock = clock
        app.db.execute(FAILURES_TABLE)
        app.db.execute(FAILURES_INDEX)

    def _user(self, username: str) -> str:
        return "u:" + self.app.keystore.blind("login-name", username.lower())

    def _address(self, address: str) -> str:
        return "a:" + self.app.keystore.blind("login-address", address)

    def blocked(self, username: str, address: str) -> bool:
        u, a = self._user(username), self._address(address)
        rows = self.app.db.fetch(
            "SELECT who, COUNT(*) FROM {t}anxin_login_failures WHERE who IN (?, ?) AND at >= ? GROUP BY who",
            (u, a, self.clock() - self.window),
        )
        counts = {r[0]: int(r[1]) for r in rows}
        return counts.get(u, 0) >= self.per_user or counts.get(a, 0) >= self.per_address

    def failed(self, username: str, address: str) -> None:
        now = self.clock()
        db = self.app.db
        with db.transaction() as c:
            c.execute(db.q("DELETE FROM {t}anxin_login_failures WHERE at < ?"), (now - self.window,))
            c.executemany(db.q("INSERT INTO {t}anxin_login_failures (who, at) VALUES (?, ?)"),
                          [(self._user(username), now), (self._address(address), now)])

    def succeeded(self, username: str) -> None:
        self.app.db.execute("DELETE FROM {t}anxin_login_failures WHERE who = ?", (self._user(username),))


# -- API tokens ---------------------------------------------------------------------------
TOKENS_TABLE = """CREATE TABLE IF NOT EXISTS {t}anxin_api_tokens (
    token_hash TEXT PRIMARY KEY, staff_id TEXT NOT NULL, label TEXT NOT NULL,
    created_at TEXT NOT NULL, created_by TEXT NOT NULL, revoked_at TEXT)"""


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class ApiTokens:
    def __init__(self, app: Any) -> None:
        self.app = app
        app.db.execute(TOKENS_TABLE)

    def issue(self, staff_id: str, created_by: str, label: str = "") -> str:
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        self.app.db.execute(
            "INSERT INTO {t}anxin_api_tokens (token_hash, staff_id, label, created_at, created_by) VALUES (?, ?, ?, ?, ?)",
            (token_hash(token), staff_id, label[:40], self.app.now().isoformat(), created_by),
        )
        return token

    def staff_for(self, token: str) -> str | None:
        row = self.app.db.fetchone(
            "SELECT staff_id FROM {t}anxin_api_tokens WHERE token_hash = ? AND revoked_at IS NULL",
            (token_hash(token),),
        )
        return row[0] if row else None

    def of_staff(self, staff_id: str) -> list[dict[str, Any]]:
        rows = self.app.db.fetch(
            "SELECT token_hash, label, created_at, revoked_at FROM {t}anxin_api_tokens WHERE staff_id = ? ORDER BY created_at",
            (staff_id,),
        )
        return [{"id": r[0][:16], "label": r[1], "created_at": r[2], "revoked_at": r[3]} for r in rows]

    def revoke(self, staff_id: str, token_id: str) -> bool:
        rows = self.app.db.fetch(
            "SELECT token_hash FROM {t}anxin_api_tokens WHERE staff_id = ? AND revoked_at IS NULL", (staff_id,)
        )
        for (h,) in rows:
            if h.startswith(token_id) and len(token_id) >= 8:
                self.app.db.execute("UPDATE {t}anxin_api_tokens SET revoked_at = ? WHERE token_hash = ?",
                                    (self.app.now().isoformat(), h))
                return True
        return False
