"""Delivering the outbox: each notice becomes inbox items and messages, each message is
sent at least once, retried with backoff, and set aside (a dead letter) when it keeps
failing.

Safe with several deliverers at once (two web workers, a cron job) and after a kill at
any point: expanding a notice inserts rows whose keys are the notice's and the
person's (`ON CONFLICT DO NOTHING`); a message is claimed by a compare-and-set that
takes a lease, so a deliverer killed between sending and marking sent leaves it to be
sent once more when the lease runs out, never lost. The message's id travels with it
(Message-ID, X-Anxin-Delivery) so a receiver can drop the repeat."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from anxin.notify import channels
from anxin.notify.outbox import SCHOOL_HOOKS, insert_statement, utc
from anxin.notify.outbox import notice_id as notice_key
from domain.notices import (
    ALWAYS_SENT,
    DIGEST_HOUR,
    DUE_SOON_DAYS,
    IMMEDIATE,
    KINDS,
    OFF,
    PERSONAL_KINDS,
    NoticeSpec,
    deadline_notice,
)

if TYPE_CHECKING:
    from anxin.core import Core

HOOK_KEY_ID = "anxin:school-hooks"  # the named key that seals schools' group-bot addresses


def _lease() -> timedelta:
    """How long a claimed message is this deliverer's (ANXIN_NOTIFY_LEASE_SECONDS, 120):
    longer than a send can take, short enough that a killed deliverer's message goes soon."""
    return timedelta(seconds=float(os.environ.get("ANXIN_NOTIFY_LEASE_SECONDS", "120")))


BACKOFF = (timedelta(minutes=1), timedelta(minutes=5), timedelta(minutes=30), timedelta(hours=2), timedelta(hours=6))
MAX_ATTEMPTS = 8  # then a dead letter: about a day of trying
LINKS = {"case": "/cases/{id}", "file": "/support/{id}", "pairing": "/pairings/{id}"}
KIND_LINKS = {"crisis": "/crisis/{id}", "break_glass": "/reviews"}  # where a kind's work is done


def link_for(kind: str, record_kind: str | None, stream_id: str) -> str:
    """The page a notice opens (a path): its kind's, else its record's."""
    return KIND_LINKS.get(kind, LINKS.get(record_kind or "", "/inbox")).format(id=stream_id)


@dataclass
class Delivered:
    """What one run did (counts only)."""

    expanded: int = 0
    inbox: int = 0
    sent: int = 0
    failed: int = 0
    dead: int = 0
    skipped: int = 0
    errors: list[str] = field(default_factory=list)


def base_url() -> str:
    return os.environ.get("ANXIN_BASE_URL", "http://127.0.0.1:8000").rstrip("/")


def smtp_settings() -> channels.SmtpSettings | None:
    url = os.environ.get("ANXIN_SMTP_URL", "").strip()
    if not url:
        return None
    return channels.SmtpSettings.from_url(
        url, os.environ.get("ANXIN_MAIL_FROM", "anxin@localhost"), os.environ.get("ANXIN_SMTP_CA_FILE")
    )


def _delivery_id(notice_id: str, channel: str, recipient: str) -> str:
    return hashlib.sha256(f"{notice_id}|{channel}|{recipient}".encode()).hexdigest()[:32]


# -- expanding notices --------------------------------------------------------------
def _recipients(
    app: Core, kind: str, school_id: str | None, district: str | None, not_to: str | None, to: str | None = None
) -> list[str]:
    """The active staff the kind goes to: its roles at the item's school (supervisors: of
    the district) and the person named (`to`, an item's handler), never the person who
    did it."""
    roles = {r.value for r in KINDS[kind].roles}
    rows = app.db.fetch(
        "SELECT staff_id, roles, school_id, district FROM {t}anxin_staff WHERE active = 1 AND (school_id = ? OR "
        "(school_id IS NULL AND district = ?))",
        (school_id, district or _district_of(app, school_id)),
    )
    out = []
    for staff_id, held, their_school, _ in rows:
        mine = set(held.split(",")) & roles
        if staff_id == to and staff_id != not_to:
            out.append(staff_id)
            continue
        if not mine or staff_id == not_to:
            continue
        if their_school is None and "supervisor" not in mine:
            continue
        out.append(staff_id)
    return sorted(out)


def _active(app: Core, staff_id: str) -> bool:
    return app.db.fetchone("SELECT 1 FROM {t}anxin_staff WHERE staff_id = ? AND active = 1", (staff_id,)) is not None


def _district_of(app: Core, school_id: str | None) -> str | None:
    if school_id is None:
        return None
    row = app.db.fetchone("SELECT district FROM {t}anxin_schools WHERE school_id = ?", (school_id,))
    return row[0] if row else None


def _modes(app: Core, staff_ids: list[str], kind: str) -> dict[str, str]:
    if not staff_ids:
        return {}
    rows = app.db.fetch_in(
        "SELECT staff_id, mode FROM {t}anxin_notify_prefs WHERE kind = ? AND staff_id IN ({marks})", staff_ids, (kind,)
    )
    chosen = dict(rows)
    return {s: IMMEDIATE if kind in ALWAYS_SENT else chosen.get(s, IMMEDIATE) for s in staff_ids}


def _has_hook(app: Core, school_id: str | None) -> bool:
    if school_id is None:
        return False
    return app.db.fetchone(f"SELECT 1 FROM {{t}}{SCHOOL_HOOKS} WHERE school_id = ?", (school_id,)) is not None


def expand(app: Core, now: datetime, limit: int = 200) -> Delivered:
    """Each notice not yet expanded: an inbox item per person told, an email delivery
    per person who wants it now, the school's group bot if the kind goes there."""
    done = Delivered()
    rows = app.db.fetch(
        "SELECT notice_id, kind, school_id, district, not_to, to_staff FROM {t}anxin_notices WHERE expanded_at IS NULL "
        "ORDER BY created_at LIMIT ?",
        (limit,),
    )
    for notice_id, kind, school_id, district, not_to, to in rows:
        if kind not in KINDS:
            continue
        personal = kind in PERSONAL_KINDS
        people = (
            [to] if personal and to and _active(app, to) else _recipients(app, kind, school_id, district, not_to, to)
        )
        modes = _modes(app, people, kind)
        if personal:  # (a digest is the email itself: not in the inbox, sent unless turned off)
            modes = {p: IMMEDIATE for p, m in modes.items() if m != OFF}
        at = utc(now)
        deliveries = [(_delivery_id(notice_id, "email", s), "email", s) for s in people if modes.get(s) == IMMEDIATE]
        if KINDS[kind].to_group_bot and _has_hook(app, school_id):
            deliveries.append((_delivery_id(notice_id, "webhook", str(school_id)), "webhook", str(school_id)))
        with app.db.transaction() as c:
            claimed = c.execute(
                app.db.q(
                    "UPDATE {t}anxin_notices SET expanded_at = ? WHERE notice_id = ? AND expanded_at IS NULL "
                    "RETURNING notice_id"
                ),
                (at, notice_id),
            ).fetchall()
            if not claimed:
                continue  # another deliverer expanded it meanwhile
            c.executemany(
                app.db.q(
                    "INSERT INTO {t}anxin_inbox (notice_id, staff_id, created_at) VALUES (?, ?, ?) "
                    "ON CONFLICT (staff_id, notice_id) DO NOTHING"
                ),
                [] if personal else [(notice_id, s, at) for s in people],
            )
            c.executemany(
                app.db.q(
                    "INSERT INTO {t}anxin_deliveries (delivery_id, notice_id, channel, recipient, state, next_at, "
                    "created_at) VALUES (?, ?, ?, ?, 'pending', ?, ?) ON CONFLICT (delivery_id) DO NOTHING"
                ),
                [(d, notice_id, ch, r, at, at) for d, ch, r in deliveries],
            )
        done.expanded += 1
        done.inbox += 0 if personal else len(people)
    return done


# -- sending ------------------------------------------------------------------------
def _claim_next(app: Core, now: datetime, skip: set[str]) -> tuple[str, str, str, str, int] | None:
    """The next due message, leased to this deliverer by a compare-and-set (one at a time:
    a deliverer killed mid-run holds the lease of one message only)."""
    at = utc(now)
    candidates = app.db.fetch(
        "SELECT delivery_id FROM {t}anxin_deliveries WHERE state = 'pending' AND next_at <= ? "
        "AND (lease_until IS NULL OR lease_until <= ?) ORDER BY next_at LIMIT ?",
        (at, at, len(skip) + 5),
    )
    for (delivery_id,) in candidates:
        if delivery_id in skip:
            continue
        with app.db.transaction() as c:
            row = c.execute(
                app.db.q(
                    "UPDATE {t}anxin_deliveries SET lease_until = ?, attempts = attempts + 1 WHERE delivery_id = ? "
                    "AND state = 'pending' AND (lease_until IS NULL OR lease_until <= ?) "
                    "RETURNING delivery_id, notice_id, channel, recipient, attempts"
                ),
                (utc(now + _lease()), delivery_id, at),
            ).fetchone()
        if row is not None:
            return (row[0], row[1], row[2], row[3], int(row[4]))
    return None


def _finish(app: Core, delivery_id: str, state: str, at: datetime, error: str | None = None) -> None:
    app.db.execute(
        "UPDATE {t}anxin_deliveries SET state = ?, sent_at = ?, lease_until = NULL, last_error = ? "
        "WHERE delivery_id = ?",
        (state, utc(at) if state == "sent" else None, error, delivery_id),
    )


def _retry_later(app: Core, delivery_id: str, attempts: int, now: datetime, error: str) -> bool:
    """Back off, or give up (a dead letter) after MAX_ATTEMPTS. True if dead."""
    if attempts >= MAX_ATTEMPTS:
        _finish(app, delivery_id, "dead", now, error)
        return True
    wait = BACKOFF[min(attempts - 1, len(BACKOFF) - 1)]
    app.db.execute(
        "UPDATE {t}anxin_deliveries SET next_at = ?, lease_until = NULL, last_error = ? WHERE delivery_id = ?",
        (utc(now + wait), error, delivery_id),
    )
    return False


def message(app: Core, notice_id: str) -> tuple[str, str] | None:
    """A notice in words (subject, body): its kind, school, number, due time and link;
    nothing about a student. None if the notice is gone."""
    row = app.db.fetchone(
        "SELECT n.kind, n.stream_id, n.due_at, s.name, d.kind AS record_kind FROM {t}anxin_notices n "
        "LEFT JOIN {t}anxin_schools s ON s.school_id = n.school_id "
        "LEFT JOIN {t}anxin_directory d ON d.stream_id = n.stream_id WHERE n.notice_id = ?",
        (notice_id,),
    )
    if row is None:
        return None
    kind, stream_id, due_at, school, record_kind = row
    if kind == "digest":
        return _digest_message(app, notice_id)
    label = KINDS[kind].label if kind in KINDS else kind
    number = app.record_number(stream_id)
    link = base_url() + link_for(kind, record_kind, stream_id)
    lines = [label, f"学校：{school or '—'}", f"编号：{number}"]
    if due_at:
        due = datetime.fromisoformat(due_at.replace("Z", "+00:00")).astimezone(ZoneInfo(app.policy.timezone))
        lines.append(f"时间：{due:%Y年%m月%d日 %H:%M}")
    lines += [f"查看：{link}", "", "本消息不含学生个人信息，请登录安心系统查看并处理。"]
    return f"【安心】{label}：{school or ''} {number}".strip(), "\n".join(lines)


# -- each person's day ------------------------------------------------------------------
def _people(app: Core) -> dict[str, tuple[str | None, set[str]]]:
    rows = app.db.fetch("SELECT staff_id, school_id, roles FROM {t}anxin_staff WHERE active = 1")
    return {r[0]: (r[1], set(r[2].split(","))) for r in rows}


def _overdue_by_person(app: Core, day: date) -> dict[str, list[dict[str, Any]]]:
    """Each person's overdue items (a person's own, or their role's at their school less
    who may not act), as the work queue gives them."""
    people = _people(app)
    by_school: dict[tuple[str | None, str], list[str]] = {}
    for staff_id, (school, roles) in people.items():
        for role in roles:
            by_school.setdefault((school, role), []).append(staff_id)
    out: dict[str, list[dict[str, Any]]] = {}
    for item in app.overdue_items(day):
        if item["owner_id"]:
            whose = [item["owner_id"]] if item["owner_id"] in people else []
        else:
            whose = [p for p in by_school.get((item["school_id"], item["owner_role"]), []) if p != item["excluded_id"]]
        for p in whose:
            out.setdefault(p, []).append(item)
    return out


def _unread_for_digest(app: Core, staff_id: str | None = None) -> dict[str, list[tuple[str, str]]]:
    """Unread notices of the kinds a person chose to get in the digest: (kind, stream) by person."""
    where, params = ("AND i.staff_id = ?", (staff_id,)) if staff_id else ("", ())
    rows = app.db.fetch(
        "SELECT i.staff_id, n.kind, n.stream_id FROM {t}anxin_inbox i JOIN {t}anxin_notices n "
        "ON n.notice_id = i.notice_id JOIN {t}anxin_notify_prefs p ON p.staff_id = i.staff_id AND p.kind = n.kind "
        f"WHERE i.read_at IS NULL AND p.mode = 'digest' {where} ORDER BY n.created_at",
        params,
    )
    out: dict[str, list[tuple[str, str]]] = {}
    for who, kind, stream in rows:
        out.setdefault(who, []).append((kind, stream))
    return out


def raise_digests(app: Core, now: datetime) -> int:
    """Once a day, from DIGEST_HOUR (the schools' time): a digest for each person with
    overdue items or unread notices they chose to get this way. Decided once per person and
    day (the notice's id); the day's run is marked, so the work is done once, not every
    few seconds."""
    local = now.astimezone(ZoneInfo(app.policy.timezone))
    if local.hour < DIGEST_HOUR:
        return 0
    day = local.date()
    marker = NoticeSpec("digest_run", None, "", None, None, f"digest-run#{day.isoformat()}")
    if app.db.fetchone("SELECT 1 FROM {t}anxin_notices WHERE notice_id = ?", (notice_key(marker),)):
        return 0
    people = _people(app)
    wanted = set(_overdue_by_person(app, day)) | set(_unread_for_digest(app))
    specs = [
        NoticeSpec("digest", people[p][0], "", None, None, f"digest#{p}#{day.isoformat()}", to=p)
        for p in sorted(wanted)
        if p in people
    ]
    with app.db.transaction() as c:
        for spec in specs:
            sql, params = insert_statement(spec, now)
            c.execute(app.db.q(sql), params)
        sql, params = insert_statement(marker, now)
        c.execute(app.db.q(sql), params)
        c.execute(
            app.db.q("UPDATE {t}anxin_notices SET expanded_at = ? WHERE notice_id = ?"), (utc(now), notice_key(marker))
        )
    return len(specs)


def _digest_message(app: Core, notice_id: str) -> tuple[str, str] | None:
    """A person's day in words: their overdue items and unread notices (kind, number, due
    day), as of when it is sent; nothing about a student."""
    row = app.db.fetchone("SELECT to_staff, created_at FROM {t}anxin_notices WHERE notice_id = ?", (notice_id,))
    if row is None or not row[0]:
        return None
    staff_id = str(row[0])
    day = datetime.fromisoformat(str(row[1]).replace("Z", "+00:00")).astimezone(ZoneInfo(app.policy.timezone)).date()
    overdue = sorted(_overdue_by_person(app, day).get(staff_id, []), key=lambda i: i["due"])
    unread = _unread_for_digest(app, staff_id).get(staff_id, [])
    numbers = app.record_numbers([i["stream_id"] for i in overdue] + [s for _, s in unread])

    def number(stream_id: str) -> str:
        found = numbers.get(stream_id)
        return found.text if found is not None else stream_id[:8]

    lines = [f"{day:%Y年%m月%d日} 的待办汇总", ""]
    if overdue:
        lines.append(f"已逾期 {len(overdue)} 项：")
        lines += [f"  {i['label']}  {number(i['stream_id'])}  截止 {i['due']:%m月%d日}" for i in overdue[:50]]
    if unread:
        lines.append(f"未读提醒 {len(unread)} 条：")
        lines += [f"  {KINDS[k].label if k in KINDS else k}  {number(s)}" for k, s in unread[:50]]
    if not overdue and not unread:
        return None
    lines += ["", f"查看：{base_url()}/", "", "本消息不含学生个人信息，请登录安心系统查看并处理。"]
    return f"【安心】每日汇总：逾期 {len(overdue)} 项，未读提醒 {len(unread)} 条", "\n".join(lines)


def _email_of(app: Core, staff_id: str) -> str:
    from domain.roster import Staff

    try:
        staff = app.load(staff_id, Staff)
    except Exception:  # noqa: BLE001 - an erased or unknown account: no address
        return ""
    return str(getattr(staff, "email", "") or "") if staff.active else ""


def hook_url(app: Core, school_id: str) -> str | None:
    row = app.db.fetchone(f"SELECT sealed FROM {{t}}{SCHOOL_HOOKS} WHERE school_id = ?", (school_id,))
    return None if row is None else app.unseal(HOOK_KEY_ID, bytes(row[0]), school_id.encode())


def send_due(app: Core, now: datetime, limit: int = 200) -> Delivered:
    """Send what is due: each claimed message once; a failure retried later."""
    done = Delivered()
    smtp = smtp_settings()
    tried: set[str] = set()
    while len(tried) < limit and (claimed := _claim_next(app, now, tried)) is not None:
        delivery_id, notice_id, channel, recipient, attempts = claimed
        tried.add(delivery_id)
        words = message(app, notice_id)
        if words is None:
            _finish(app, delivery_id, "skipped", now, "notice gone")
            done.skipped += 1
            continue
        subject, body = words
        try:
            if channel == "email":
                address = _email_of(app, recipient)
                if not address:
                    _finish(app, delivery_id, "skipped", now, "no address")
                    done.skipped += 1
                    continue
                if smtp is None:  # no mail server configured: the inbox holds it
                    _finish(app, delivery_id, "skipped", now, "email not configured")
                    done.skipped += 1
                    continue
                channels.send_email(smtp, address, subject, body, delivery_id)
            elif channel == "webhook":
                url = hook_url(app, recipient)
                if not url:
                    _finish(app, delivery_id, "skipped", now, "no group bot")
                    done.skipped += 1
                    continue
                channels.post_webhook(url, body, delivery_id)
            else:
                raise channels.SendFailed(f"unknown channel {channel}")
        except channels.SendFailed as e:
            done.failed += 1
            done.errors.append(e.detail)
            if _retry_later(app, delivery_id, attempts, now, e.detail):
                done.dead += 1
            continue
        _finish(app, delivery_id, "sent", now)
        done.sent += 1
    return done


def raise_due_notices(app: Core, now: datetime) -> int:
    """The notices deadlines raise (an investigation due in two days, or overdue), from
    the open items the application knows (`app.open_deadlines`); each once per item,
    kind and due day. How many were new."""
    specs = [
        spec
        for item in app.open_deadlines(now.date(), ("intake", "investigation"), DUE_SOON_DAYS)
        if (spec := deadline_notice(item, ZoneInfo(app.policy.timezone))) is not None
    ]
    if specs:  # (asked every few seconds: only the new ones are written)
        known = {
            r[0]
            for r in app.db.fetch_in(
                "SELECT notice_id FROM {t}anxin_notices WHERE notice_id IN ({marks})", [notice_key(s) for s in specs]
            )
        }
        specs = [s for s in specs if notice_key(s) not in known]
    if not specs:
        return 0
    with app.db.transaction() as c:
        for spec in specs:
            sql, params = insert_statement(spec, now)
            c.execute(app.db.q(sql), params)
    return len(specs)


def deliver(app: Core, now: datetime | None = None) -> Delivered:
    """One run: expand new notices, send what is due (the server's background loop and
    `anxin notifications deliver` both call this)."""
    now = now or app.now()
    raise_due_notices(app, now)
    expanded = expand(app, now)
    if raise_digests(app, now):  # (after the inbox has today's notices)
        more = expand(app, now)
        expanded.expanded += more.expanded
    sent = send_due(app, now)
    return Delivered(
        expanded=expanded.expanded,
        inbox=expanded.inbox,
        sent=sent.sent,
        failed=sent.failed,
        dead=sent.dead,
        skipped=sent.skipped,
        errors=sent.errors,
    )
