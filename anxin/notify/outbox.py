"""The outbox: notices written in the same transaction as the events that raise them.

A save hands the recorder its notices as side statements (Core.commit), so a notice
exists exactly when its fact does: never lost (a crash before the commit loses both),
never decided twice (its id is its fact's, `INSERT … ON CONFLICT DO NOTHING`).
Delivery (anxin.notify.delivery) later turns each notice into inbox items and messages.

Tables hold ids, codes and times only: who a notice goes to is resolved from the roster
when it is delivered, an address when it is sent; nothing here names a student."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from domain.notices import KINDS, NoticeSpec, notices_for

NOTICES = "anxin_notices"
DELIVERIES = "anxin_deliveries"
INBOX = "anxin_inbox"
PREFERENCES = "anxin_notify_prefs"
SCHOOL_HOOKS = "anxin_school_hooks"

TABLES = {
    # One row per notice: what kind, about which stream of which school, due when, who is
    # not to be told (who did it); expanded once into inbox items and deliveries.
    NOTICES: (
        "notice_id TEXT PRIMARY KEY, kind TEXT NOT NULL, school_id TEXT, district TEXT, stream_id TEXT NOT NULL, "
        "due_at TEXT, not_to TEXT, to_staff TEXT, created_at TEXT NOT NULL, expanded_at TEXT"
    ),
    # One row per message to send (email to a person, a school's group bot): at least once,
    # with retries and a lease, its id the idempotency key the receiver sees.
    DELIVERIES: (
        "delivery_id TEXT PRIMARY KEY, notice_id TEXT NOT NULL, channel TEXT NOT NULL, recipient TEXT NOT NULL, "
        "state TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, next_at TEXT NOT NULL, lease_until TEXT, "
        "last_error TEXT, sent_at TEXT, created_at TEXT NOT NULL"
    ),
    # The in-app inbox: one row per notice and person.
    INBOX: (
        "notice_id TEXT NOT NULL, staff_id TEXT NOT NULL, created_at TEXT NOT NULL, read_at TEXT, "
        "PRIMARY KEY (staff_id, notice_id)"
    ),
    # Each person's choice per kind (domain.notices.MODES); no row: immediate.
    PREFERENCES: "staff_id TEXT NOT NULL, kind TEXT NOT NULL, mode TEXT NOT NULL, PRIMARY KEY (staff_id, kind)",
    # A school's group-bot address (企业微信 / 钉钉 webhook), sealed: it holds the bot's key.
    SCHOOL_HOOKS: "school_id TEXT PRIMARY KEY, sealed {blob} NOT NULL, set_by TEXT NOT NULL, set_at TEXT NOT NULL",
}
INDEXES = [
    "CREATE INDEX IF NOT EXISTS {p}anxin_notices_todo ON {t}anxin_notices (created_at) WHERE expanded_at IS NULL",
    "CREATE INDEX IF NOT EXISTS {p}anxin_deliveries_due ON {t}anxin_deliveries (next_at) WHERE state = 'pending'",
    "CREATE INDEX IF NOT EXISTS {p}anxin_inbox_unread ON {t}anxin_inbox (staff_id) WHERE read_at IS NULL",
]


def utc(moment: datetime) -> str:
    """Instants as text that sorts as time does (UTC, fixed width)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def notice_id(spec: NoticeSpec) -> str:
    return hashlib.sha256(f"{spec.kind}|{spec.origin}".encode()).hexdigest()[:32]


def insert_statement(spec: NoticeSpec, now: datetime, district: str | None = None) -> tuple[str, tuple[Any, ...]]:
    return (
        "INSERT INTO {t}anxin_notices (notice_id, kind, school_id, district, stream_id, due_at, not_to, to_staff, "
        "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (notice_id) DO NOTHING",
        (
            notice_id(spec),
            spec.kind,
            spec.school_id,
            district,
            spec.stream_id,
            utc(spec.due) if spec.due else None,
            spec.not_to,
            spec.to,
            utc(now),
        ),
    )


def statements_for(aggregates: Iterable[Any], now: datetime) -> list[tuple[str, tuple[Any, ...]]]:
    """The notices the pending events of `aggregates` raise, as statements for the save."""
    out = []
    for a in aggregates:
        events = list(getattr(a, "pending_events", ()))
        if not events:
            continue
        school_id = a.scope().school_id
        for e in events:
            out += [insert_statement(spec, now) for spec in notices_for(e, school_id) if spec.kind in KINDS]
    return out
