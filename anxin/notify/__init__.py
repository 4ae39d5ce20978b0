"""Notifications (通知), one mechanism for every kind of case: notices written in the
same transaction as the facts that raise them (outbox), an in-app inbox, email over
SMTP and a school's group bot (delivery), each person's choices per kind.

What people and pages ask of it is `app.notifications` (Notifications): every read and
change passes the gate (NOTICES_OWN: one's own; NOTIFY_ADMIN: a school's bot and the
undeliverable messages)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from anxin.notify.delivery import HOOK_KEY_ID, Delivered, deliver, hook_url, link_for, message
from anxin.notify.outbox import INDEXES, TABLES, statements_for, utc
from domain import access
from domain.access import Resource
from domain.common import Actor, InvalidInput
from domain.notices import KINDS, MODE_LABELS, PERSONAL_KINDS, parse_mode

if TYPE_CHECKING:
    from anxin.core import Core

__all__ = ["INDEXES", "TABLES", "Delivered", "Notifications", "deliver", "message", "statements_for"]


def _when(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None


class Notifications:
    """One's inbox and settings; a school's group bot; what could not be delivered."""

    def __init__(self, core: Core) -> None:
        self.core = core

    def _own(self, actor: Actor) -> None:
        self.core.authorize(
            actor,
            access.NOTICES_OWN,
            Resource(kind="account", id=actor.staff_id, owner_id=actor.staff_id, school_id=actor.school_id),
        )

    # -- the inbox ------------------------------------------------------------------
    def unread_count(self, actor: Actor) -> int:
        """The number in the page header: a count of one's own unread notices (no record is
        read, so no decision is recorded; opening the inbox is)."""
        row = self.core.db.fetchone(
            "SELECT COUNT(*) FROM {t}anxin_inbox WHERE staff_id = ? AND read_at IS NULL", (actor.staff_id,)
        )
        return int(row[0]) if row else 0

    def inbox(self, actor: Actor, limit: int = 100) -> list[dict[str, Any]]:
        """One's notices, newest first: kind, school, the record's kind and number, due."""
        self._own(actor)
        rows = self.core.db.fetch(
            "SELECT i.notice_id, n.kind, n.stream_id, d.kind AS record_kind, s.name, n.due_at, n.created_at, i.read_at "
            "FROM {t}anxin_inbox i JOIN {t}anxin_notices n ON n.notice_id = i.notice_id "
            "LEFT JOIN {t}anxin_directory d ON d.stream_id = n.stream_id "
            "LEFT JOIN {t}anxin_schools s ON s.school_id = n.school_id "
            "WHERE i.staff_id = ? ORDER BY n.created_at DESC LIMIT ?",
            (actor.staff_id, limit),
        )
        numbers = self.core.record_numbers([str(r[2]) for r in rows])
        return [
            {
                "notice_id": r[0],
                "kind": r[1],
                "label": KINDS[r[1]].label if r[1] in KINDS else r[1],
                "stream_id": r[2],
                "record_kind": r[3],
                "number": numbers[str(r[2])].text if str(r[2]) in numbers else str(r[2])[:8],
                "school": r[4],
                "due": _when(r[5]),
                "created": _when(r[6]),
                "read": r[7] is not None,
            }
            for r in rows
        ]

    def open(self, actor: Actor, notice_id: str) -> str:
        """Mark one's notice read; the page it opens (a path)."""
        self._own(actor)
        row = self.core.db.fetchone(
            "SELECT d.kind AS record_kind, n.stream_id, n.kind FROM {t}anxin_inbox i JOIN {t}anxin_notices n ON n.notice_id = i.notice_id "
            "LEFT JOIN {t}anxin_directory d ON d.stream_id = n.stream_id WHERE i.staff_id = ? AND i.notice_id = ?",
            (actor.staff_id, notice_id),
        )
        if row is None:
            from domain.common import NotFound

            raise NotFound("没有这条提醒")
        self.core.db.execute(
            "UPDATE {t}anxin_inbox SET read_at = ? WHERE staff_id = ? AND notice_id = ? AND read_at IS NULL",
            (utc(self.core.now()), actor.staff_id, notice_id),
        )
        return link_for(str(row[2]), row[0], str(row[1]))

    def mark_all_read(self, actor: Actor) -> None:
        self._own(actor)
        self.core.db.execute(
            "UPDATE {t}anxin_inbox SET read_at = ? WHERE staff_id = ? AND read_at IS NULL",
            (utc(self.core.now()), actor.staff_id),
        )

    # -- one's settings ---------------------------------------------------------------
    def settings(self, actor: Actor) -> list[dict[str, Any]]:
        """Per kind: its words, one's choice, whether it may be changed."""
        self._own(actor)
        chosen = dict(
            self.core.db.fetch("SELECT kind, mode FROM {t}anxin_notify_prefs WHERE staff_id = ?", (actor.staff_id,))
        )
        roles = {r.value for r in actor.roles}
        return [
            {
                "kind": k.code,
                "label": k.label,
                "mode": chosen.get(k.code, "immediate") if k.can_turn_off else "immediate",
                "can_turn_off": k.can_turn_off,
                "modes": {m: t for m, t in MODE_LABELS.items() if not (k.code in PERSONAL_KINDS and m == "digest")},
            }
            for k in KINDS.values()
            if roles & {r.value for r in k.roles}
        ]

    def choose(self, actor: Actor, choices: dict[str, str]) -> None:
        """One's choice per kind (all checked before any is kept)."""
        self._own(actor)
        rows = [(actor.staff_id, kind, parse_mode(kind, mode)) for kind, mode in choices.items()]
        with self.core.db.transaction() as c:
            c.executemany(
                self.core.db.q(
                    "INSERT INTO {t}anxin_notify_prefs (staff_id, kind, mode) VALUES (?, ?, ?) "
                    "ON CONFLICT (staff_id, kind) DO UPDATE SET mode = excluded.mode"
                ),
                rows,
            )

    # -- a school's group bot; what could not be delivered (administrators) ------------
    def _admin(self, actor: Actor, school_id: str | None) -> None:
        if school_id is None:
            self.core.authorize(actor, access.NOTIFY_ADMIN, Resource(kind="district", district=actor.district))
        else:
            self.core.check(actor, access.NOTIFY_ADMIN, "school", None, school_id)

    def set_group_bot(self, actor: Actor, school_id: str, url: str) -> None:
        """The school's 企业微信 / 钉钉 robot address (sealed; '' removes it)."""
        self._admin(actor, school_id)
        url = url.strip()
        if url and not url.startswith(("https://", "http://")):
            raise InvalidInput("群机器人地址应以 https:// 开头（企业微信或钉钉群机器人的 Webhook 地址）")
        if not url:
            self.core.db.execute("DELETE FROM {t}anxin_school_hooks WHERE school_id = ?", (school_id,))
        else:
            sealed = self.core.seal(HOOK_KEY_ID, url, school_id.encode())
            self.core.db.execute(
                "INSERT INTO {t}anxin_school_hooks (school_id, sealed, set_by, set_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (school_id) DO UPDATE SET sealed = excluded.sealed, set_by = excluded.set_by, "
                "set_at = excluded.set_at",
                (school_id, sealed, actor.staff_id, utc(self.core.now())),
            )
        self.core.record_security_event("group_bot", actor.staff_id, school_id, "set" if url else "removed")

    def group_bot_set(self, actor: Actor, school_id: str) -> bool:
        """Whether the school has a bot (the address itself is never shown again)."""
        self._admin(actor, school_id)
        return hook_url(self.core, school_id) is not None

    def dead_letters(self, actor: Actor, limit: int = 200) -> list[dict[str, Any]]:
        """Messages that could not be delivered: kind, channel, attempts, the error; no
        content, no address."""
        self._admin(actor, actor.school_id)
        where, params = ("n.school_id = ?", (actor.school_id,)) if actor.school_id else ("1 = 1", ())
        rows = self.core.db.fetch(
            "SELECT l.delivery_id, n.kind, l.channel, l.attempts, l.last_error, l.created_at, s.name "
            "FROM {t}anxin_deliveries l JOIN {t}anxin_notices n ON n.notice_id = l.notice_id "
            "LEFT JOIN {t}anxin_schools s ON s.school_id = n.school_id "
            f"WHERE l.state = 'dead' AND {where} ORDER BY l.created_at DESC LIMIT ?",
            (*params, limit),
        )
        return [
            {
                "id": r[0],
                "label": KINDS[r[1]].label if r[1] in KINDS else r[1],
                "channel": r[2],
                "attempts": r[3],
                "error": r[4],
                "created": _when(r[5]),
                "school": r[6],
            }
            for r in rows
        ]

    def deliver(self, now: datetime | None = None) -> Delivered:
        return deliver(self.core, now)
