"""Sessions, CSRF, login throttling and API tokens.

- Sessions live in server memory, keyed by a random id in an HttpOnly, SameSite=Lax
  cookie (Secure over HTTPS). They expire after inactivity; a login always starts a
  new session (no fixation). Restarting the server logs everyone out.
- Every state-changing request made with the session cookie carries the session's
  CSRF token (form field `csrf_token` or header `X-CSRF-Token`).
- Failed logins are counted per login name and per client address; past the limit
  the login is refused for a while, even with the right password, and each refusal
  goes to the audit trail.
- API tokens: an administrator issues one per account; only its SHA-256 is stored.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Any

COOKIE = "anxin_session"
LANG_COOKIE = "anxin_lang"
IDLE_SECONDS = 30 * 60
TOKEN_PREFIX = "anx_"


@dataclass
class Session:
    id: str
    staff_id: str
    csrf: str
    created: float
    seen: float
    data: dict[str, Any] = field(default_factory=dict)


class SessionStore:
    def __init__(self, idle_seconds: float = IDLE_SECONDS, clock: Any = time.monotonic) -> None:
        self.idle = idle_seconds
        self.clock = clock
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()

    def create(self, staff_id: str, replacing: str | None = None) -> Session:
        now = self.clock()
        s = Session(secrets.token_urlsafe(32), staff_id, secrets.token_urlsafe(32), now, now)
        with self._lock:
            if replacing:
                self._sessions.pop(replacing, None)
            self._sessions[s.id] = s
            self._sweep(now)
        return s

    def get(self, sid: str | None) -> Session | None:
        if not sid:
            return None
        now = self.clock()
        with self._lock:
            s = self._sessions.get(sid)
            if s is None:
                return None
            if now - s.seen > self.idle:
                del self._sessions[sid]
                return None
            s.seen = now
            return s

    def drop(self, sid: str | None) -> None:
        with self._lock:
            self._sessions.pop(sid or "", None)

    def drop_staff(self, staff_id: str, keep: str | None = None) -> None:
        """Log a person out everywhere (after a password change, except `keep`)."""
        with self._lock:
            for sid in [k for k, s in self._sessions.items() if s.staff_id == staff_id and k != keep]:
                del self._sessions[sid]

    def _sweep(self, now: float) -> None:
        for sid in [k for k, s in self._sessions.items() if now - s.seen > self.idle]:
            del self._sessions[sid]


def csrf_ok(session: Session, token: str | None) -> bool:
    return bool(token) and hmac.compare_digest(session.csrf, token or "")


class LoginThrottle:
    """At most `per_user` failures per login name and `per_address` per client address
    within `window` seconds; past that, logins are refused until the window passes."""

    def __init__(self, per_user: int = 5, per_address: int = 20, window: float = 15 * 60,
                 clock: Any = time.monotonic) -> None:
        self.per_user = per_user
        self.per_address = per_address
        self.window = window
        self.clock = clock
        self._fails: dict[str, deque[float]] = defaultdict(deque)
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> deque[float]:
        q = self._fails[key]
        while q and now - q[0] > self.window:
            q.popleft()
        return q

    def blocked(self, username: str, address: str) -> bool:
        now = self.clock()
        with self._lock:
            return (len(self._recent("u:" + username.lower(), now)) >= self.per_user
                    or len(self._recent("a:" + address, now)) >= self.per_address)

    def failed(self, username: str, address: str) -> None:
        now = self.clock()
        with self._lock:
            self._recent("u:" + username.lower(), now).append(now)
            self._recent("a:" + address, now).append(now)

    def succeeded(self, username: str) -> None:
        with self._lock:
            self._fails.pop("u:" + username.lower(), None)


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
