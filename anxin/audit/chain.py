"""The audit trail's chain: the table, the entry format and hashes, and appending
entries (events in their own transaction, the gate's decisions, security entries)."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID, uuid4

from cryptography.exceptions import InvalidTag

from anxin.crypto import StreamErased, Tampered
from anxin.notify.outbox import insert_statement as notice_insert
from domain.access import Decision, Resource
from domain.common import Actor, DomainError
from domain.notices import NoticeSpec

if TYPE_CHECKING:
    from anxin.core import Core
    from anxin.storage import Cursor, Database


TABLE = "anxin_audit"
META_TABLE = "anxin_audit_meta"
# Column definitions, for anxin.storage.SIDE_TABLES ({int8} and {blob} per database).
TABLE_COLUMNS = (
    "seq {int8} PRIMARY KEY, at TEXT NOT NULL, kind TEXT NOT NULL, actor_id TEXT NOT NULL, "
    "subject TEXT NOT NULL, detail TEXT NOT NULL, payload_hash TEXT NOT NULL, sealed {blob}, "
    "prev_hash TEXT NOT NULL, entry_hash TEXT NOT NULL"
)
META_COLUMNS = "name TEXT PRIMARY KEY, value TEXT NOT NULL"
# The review of each break-glass use (anxin.audit.reviews), one row per use keyed by its
# access entry's seq, written in the transaction of that entry (`_insert`): ids and codes
# only (who used it, which record, which school; the state and who reviewed it, with the
# seq of the review's own entry). The trail is the record; this is its review state, what
# the reviewers' queue and the count on their home page read from one index. A later
# outbox (email, group bots) can pick the new uses up in order of `access_seq`.
REVIEWS_TABLE = "anxin_break_glass_reviews"
REVIEWS_COLUMNS = (
    "access_seq {int8} PRIMARY KEY, at TEXT NOT NULL, user_id TEXT NOT NULL, action TEXT NOT NULL, "
    "resource_kind TEXT NOT NULL, resource_id TEXT, school_id TEXT, district TEXT NOT NULL, "
    "state TEXT NOT NULL, reviewer_id TEXT, reviewed_at TEXT, review_seq {int8}"
)
# A case's history and a student's accesses are read by subject; the partial indexes
# cost an insert nothing unless the entry is a checkpoint, a verification or holds a
# sealed reason (the audit page shows the last checkpoint and the last verification).
INDEXES = [
    "CREATE INDEX IF NOT EXISTS {p}anxin_audit_subject ON {t}anxin_audit (subject)",
    "CREATE INDEX IF NOT EXISTS {p}anxin_audit_checkpoints ON {t}anxin_audit (seq) WHERE kind = 'checkpoint'",
    "CREATE INDEX IF NOT EXISTS {p}anxin_audit_sealed ON {t}anxin_audit (seq) WHERE sealed IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS {p}anxin_audit_verifications ON {t}anxin_audit (seq) WHERE kind = 'audit_verify'",
    # The uses waiting for review, by district and school (the queue, the home page's count).
    "CREATE INDEX IF NOT EXISTS {p}anxin_break_glass_reviews_pending ON {t}anxin_break_glass_reviews "
    "(district, school_id) WHERE state = 'pending'",
]

FORMAT = "anxin-audit-1"
CHECKPOINT_FORMAT = "anxin-audit-checkpoint-1"
SEP = "\x1f"
KINDS = frozenset(
    {
        "event",
        "access",
        "login",
        "login_failed",
        "logout",
        "export",
        "report",
        "shred",
        "key_rotation",
        "checkpoint",
        "password_change",
        "token_issue",
        "token_revoke",
        "account_setup",
        "group_bot",
        "two_step_enrol",
        "two_step_disable",
        "two_step_reset",
        "school_setting",
        "audit_verify",
        "break_glass_review",
        "setup_code_issue",
    }
)
# Kinds anyone may record through Core.record_security_event (the others have their own writers).
SECURITY_KINDS = KINDS - {"event", "access", "checkpoint", "break_glass_review"}
AUDIT_NOTES = "anxin:audit-notes"  # the named key for a reason that belongs to no stream
ERASED_LABEL = "已删除"

Row = tuple[str, str, str, str, str, str, bytes | None]  # at, kind, actor_id, subject, detail, payload_hash, sealed
COLUMNS = "seq, at, kind, actor_id, subject, detail, payload_hash, sealed, prev_hash, entry_hash"
_INSERT = f"INSERT INTO {{t}}anxin_audit ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
# PostgreSQL: entries recorded but not yet chained (see `record_many`), each durable the moment
# its statement commits, in the order of `id` (a sequence: no lock to take one); chained, in
# that order, by whoever next holds the chain's lock (`CHAIN_FUNCTION`), and removed from here
# in the transaction that chains them. Only entries without a sealed reason wait here.
PENDING_TABLE = "anxin_audit_pending"
PENDING_COLUMNS = (
    "id BIGSERIAL PRIMARY KEY, at TEXT NOT NULL, kind TEXT NOT NULL, actor_id TEXT NOT NULL, "
    "subject TEXT NOT NULL, detail TEXT NOT NULL, payload_hash TEXT NOT NULL"
)
# The chain's lock (PostgreSQL): the row of `anxin_audit_meta` that names the store, taken FOR
# UPDATE by every transaction that extends the chain; a plain read of it never waits.
# The server-side functions, by version (a new shape gets a new name, so processes of two
# versions never call each other's): `anxin_audit_chain_1(wait, most)` takes the chain's lock
# (waiting for it, or not at all: then it returns nothing) and chains up to `most` pending
# entries in the order of their ids, computing each entry's hash exactly as `entry_hash` does
# (SHA-256 of the UTF-8 bytes of the eight fields joined by U+001F); it returns (id, seq) of
# each entry it chained. `anxin_audit_record_1(fields[])` (each entry's at, kind, actor_id,
# subject, detail and payload_hash in turn) records entries as pending, then chains whatever
# is pending if nobody holds the lock at that moment, all in one statement; the seq of its
# last entry, or NULL if it was left for the next holder of the lock.
CHAIN_FUNCTION = "anxin_audit_chain_1"
RECORD_FUNCTION = "anxin_audit_record_1"
_FUNCTIONS = """
CREATE OR REPLACE FUNCTION {t}anxin_audit_chain_1(wait boolean, most integer)
RETURNS TABLE (moved_id bigint, moved_seq bigint) LANGUAGE plpgsql AS $fn$
DECLARE
    n bigint;
    h text;
    r record;
BEGIN
    IF wait THEN
        PERFORM 1 FROM {t}anxin_audit_meta WHERE name = 'store_id' FOR UPDATE;
    ELSE
        PERFORM 1 FROM {t}anxin_audit_meta WHERE name = 'store_id' FOR UPDATE SKIP LOCKED;
        IF NOT FOUND THEN
            RETURN;
        END IF;
    END IF;
    IF most <= 0 THEN
        RETURN;
    END IF;
    SELECT a.seq, a.entry_hash INTO n, h FROM {t}anxin_audit a ORDER BY a.seq DESC LIMIT 1;
    IF n IS NULL THEN
        n := 0;
        SELECT encode(sha256(convert_to('anxin-audit-1' || chr(31) || m.value, 'UTF8')), 'hex') INTO h
        FROM {t}anxin_audit_meta m WHERE m.name = 'store_id';
    END IF;
    FOR r IN SELECT p.id, p.at, p.kind, p.actor_id, p.subject, p.detail, p.payload_hash
             FROM {t}anxin_audit_pending p ORDER BY p.id LIMIT most LOOP
        n := n + 1;
        INSERT INTO {t}anxin_audit (seq, at, kind, actor_id, subject, detail, payload_hash, sealed, prev_hash, entry_hash)
        VALUES (n, r.at, r.kind, r.actor_id, r.subject, r.detail, r.payload_hash, NULL, h,
                encode(sha256(convert_to(h || chr(31) || n || chr(31) || r.at || chr(31) || r.kind || chr(31)
                    || r.actor_id || chr(31) || r.subject || chr(31) || r.detail || chr(31) || r.payload_hash,
                    'UTF8')), 'hex'))
        RETURNING entry_hash INTO h;
        DELETE FROM {t}anxin_audit_pending WHERE id = r.id;
        moved_id := r.id;
        moved_seq := n;
        RETURN NEXT;
    END LOOP;
END
$fn$;
CREATE OR REPLACE FUNCTION {t}anxin_audit_record_1(f text[]) RETURNS bigint LANGUAGE plpgsql AS $fn$
DECLARE
    last_id bigint;
    last_seq bigint;
BEGIN
    FOR i IN 0 .. array_length(f, 1) / 6 - 1 LOOP
        INSERT INTO {t}anxin_audit_pending (at, kind, actor_id, subject, detail, payload_hash)
        VALUES (f[6 * i + 1], f[6 * i + 2], f[6 * i + 3], f[6 * i + 4], f[6 * i + 5], f[6 * i + 6])
        RETURNING id INTO last_id;
    END LOOP;
    SELECT c.moved_seq INTO last_seq FROM {t}anxin_audit_chain_1(false, 10000) c WHERE c.moved_id = last_id;
    RETURN last_seq;
END
$fn$;
"""
_HEAD = "SELECT seq, entry_hash FROM {t}anxin_audit ORDER BY seq DESC LIMIT 1"
_STORE = "SELECT value FROM {t}anxin_audit_meta WHERE name = 'store_id'"


class AuditKeyMissing(DomainError):
    code = "audit_key_missing"
    message = "找不到审计签名密钥：{where}。请先运行 `anxin init`，或设置 ANXIN_AUDIT_KEY_FILE。"


# -- the format ---------------------------------------------------------------------------
def canonical_json(value: Any) -> str:
    """Sorted keys, no spaces, non-ASCII as \\uXXXX escapes: one spelling for one value,
    in plain ASCII (which also hashes faster than UTF-8 text)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def genesis_hash(store_id: str) -> str:
    """The `prev_hash` of entry 1: binds the chain to its store."""
    return hashlib.sha256(f"{FORMAT}{SEP}{store_id}".encode()).hexdigest()


def entry_hash(
    prev_hash: str, seq: int, at: str, kind: str, actor_id: str, subject: str, detail: str, payload_hash: str
) -> str:
    """SHA-256 of the UTF-8 bytes of the eight fields joined by U+001F."""
    return hashlib.sha256(
        f"{prev_hash}{SEP}{seq}{SEP}{at}{SEP}{kind}{SEP}{actor_id}{SEP}{subject}{SEP}{detail}{SEP}{payload_hash}".encode()
    ).hexdigest()


def event_payload_hash(originator_hex: str, version: int, topic: str, state: bytes) -> str:
    """SHA-256 over a stored event's row: id (32 hex digits), version, topic, then the
    stored (encrypted) state bytes exactly as the database holds them."""
    h = hashlib.sha256(f"{originator_hex}{SEP}{version}{SEP}{topic}{SEP}".encode())
    h.update(state)
    return h.hexdigest()


def checkpoint_message(store_id: str, seq: int, head_hash: str, at: str) -> bytes:
    """What a checkpoint's Ed25519 signature covers."""
    return canonical_json({"at": at, "entry_hash": head_hash, "seq": seq, "store": store_id}).encode()


# -- tables ------------------------------------------------------------------------------
def setup(c: Cursor, db: Database) -> None:
    """Run by Database.create_tables after the tables exist: the store's id, the
    `anxin_access` view, and a first entry for every event stored before the trail."""
    for stmt in INDEXES:
        c.execute(stmt.format(t=db.prefix, p=""))
    c.execute(
        db.q("INSERT INTO {t}anxin_audit_meta (name, value) VALUES ('store_id', ?) ON CONFLICT (name) DO NOTHING"),
        (str(uuid4()),),
    )
    if db.dialect == "postgres":
        _create_functions(c, db)
    _create_access_view(c, db)
    if c.execute(db.q(_HEAD)).fetchone() is None:
        _adopt_existing_events(c, db)
    _adopt_break_glass_uses(c, db)


def _create_functions(c: Cursor, db: Database) -> None:
    """PostgreSQL: the pending entries' table and the functions that record and chain them
    (made once per version; a store from before them gets them at its next opening: its
    chain goes on from its head, unchanged)."""
    c.execute(db.q(f"CREATE TABLE IF NOT EXISTS {{t}}{PENDING_TABLE} ({PENDING_COLUMNS})"))
    have = c.execute(
        "SELECT to_regprocedure(?) IS NOT NULL AND to_regprocedure(?) IS NOT NULL",
        (db.t(CHAIN_FUNCTION) + "(boolean, integer)", db.t(RECORD_FUNCTION) + "(text[])"),
    ).fetchone()
    if not (have and have[0]):
        c.execute(_FUNCTIONS.format(t=db.prefix))


def _create_access_view(c: Cursor, db: Database) -> None:
    """`anxin_access`: the trail's access entries, one decoded column per field (read
    only; the table of that name before the trail existed is kept as anxin_access_v0)."""
    name = db.t("anxin_access")
    # Decode `detail` only where it is an access entry's JSON, whatever order the
    # database evaluates a query's conditions in.
    if db.dialect == "postgres":
        row = c.execute("SELECT relkind FROM pg_class WHERE oid = to_regclass(?)", (name,)).fetchone()
        get = "(CASE WHEN kind = 'access' THEN detail::jsonb ->> '{0}' END)"
        allowed = "CAST(CASE WHEN kind = 'access' THEN detail::jsonb ->> 'allowed' END AS INTEGER)"
    else:
        row = c.execute(
            "SELECT CASE type WHEN 'table' THEN 'r' ELSE 'v' END FROM sqlite_master WHERE name = ?", ("anxin_access",)
        ).fetchone()
        get = "(CASE WHEN kind = 'access' THEN json_extract(detail, '$.{0}') END)"
        allowed = get.format("allowed")
    if row is not None and row[0] == "v":
        return
    if row is not None:
        c.execute(f"ALTER TABLE {name} RENAME TO anxin_access_v0")
    c.execute(
        f"CREATE VIEW {name} AS SELECT seq AS id, at, actor_id, {get.format('action')} AS action, "
        f"{get.format('kind')} AS resource_kind, NULLIF(subject, '') AS resource_id, {allowed} AS allowed, "
        f"{get.format('rule')} AS reason, sealed AS break_glass, {get.format('school')} AS school_id, "
        f"{get.format('district')} AS district FROM {db.t(TABLE)} WHERE kind = 'access'"
    )


def _adopt_existing_events(c: Cursor, db: Database) -> None:
    """A store that held events before it had a trail: record them now (actor unknown,
    `at` the adoption time), so verification covers them from here on."""
    table = db.t(db.recorder.events_table_name)
    nid = "notification_id" if db.dialect == "postgres" else "rowid"
    at = datetime.now(UTC).isoformat()
    last = 0
    while True:
        rows = c.execute(
            f"SELECT {nid}, originator_id, originator_version, topic, state FROM {table} WHERE {nid} > ? "
            f"ORDER BY {nid} LIMIT 5000",
            (last,),
        ).fetchall()
        if not rows:
            return
        out: list[Row] = []
        for _, oid, version, topic, state in rows:
            uid = oid if isinstance(oid, UUID) else UUID(str(oid))
            out.append(
                (
                    at,
                    "event",
                    "",
                    str(uid),
                    f"{topic}#{version}",
                    event_payload_hash(uid.hex, version, topic, bytes(state)),
                    None,
                )
            )
        append(c, db, out, standalone=False)
        last = rows[-1][0]


def _adopt_break_glass_uses(c: Cursor, db: Database) -> None:
    """A store whose trail held break-glass uses before they were reviewed: each becomes a
    use waiting for review, once (the meta row `break_glass_reviews` says it was done)."""
    done = c.execute(db.q("SELECT 1 FROM {t}anxin_audit_meta WHERE name = 'break_glass_reviews'")).fetchone()
    if done is not None:
        return
    rows = c.execute(
        db.q(
            "SELECT seq, at, kind, actor_id, subject, detail, sealed FROM {t}anxin_audit "
            "WHERE sealed IS NOT NULL AND kind = 'access' ORDER BY seq"
        )
    ).fetchall()
    _review_items(c, db, rows, tell=False)  # (no one is told now of uses from before)
    c.execute(db.q("INSERT INTO {t}anxin_audit_meta (name, value) VALUES ('break_glass_reviews', 'adopted')"))


# An access entry's detail (canonical JSON) for a decision that broke the glass.
_BROKE_GLASS = '"break_glass":1'


def _review_items(c: Cursor, db: Database, entries: Iterable[tuple[Any, ...]], *, tell: bool = True) -> None:
    """A use waiting for review for each break-glass access among `entries` (seq, at, kind,
    actor_id, subject, detail, sealed, ...): in the caller's transaction, the entry's own;
    with `tell`, a notice to the school's principal and the district's other supervisors
    (anxin.notify) in the same transaction."""
    items = []
    notices = []
    for seq, at, kind, actor_id, subject, detail, sealed, *_ in entries:
        if kind != "access" or sealed is None or _BROKE_GLASS not in detail:
            continue
        d = json.loads(detail)
        items.append(
            (
                seq,
                at,
                actor_id,
                d.get("action", ""),
                d.get("kind", ""),
                subject or None,
                d.get("school"),
                d.get("district", "default"),
            )
        )
        if tell:
            spec = NoticeSpec(
                kind="break_glass",
                school_id=d.get("school"),
                stream_id=subject or "",
                due=None,
                not_to=actor_id,
                origin=f"access#{seq}",
            )
            notices.append(notice_insert(spec, datetime.fromisoformat(at), d.get("district", "default")))
    for sql, params in notices:
        c.execute(db.q(sql), params)
    if items:
        c.executemany(
            db.q(
                "INSERT INTO {t}anxin_break_glass_reviews (access_seq, at, user_id, action, resource_kind, "
                "resource_id, school_id, district, state) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'pending') "
                "ON CONFLICT (access_seq) DO NOTHING"
            ),
            items,
        )


def store_id(db: Database) -> str:
    row = db.fetchone(_STORE)
    assert row is not None, "the audit trail's tables were not set up"
    return str(row[0])


# -- appending ---------------------------------------------------------------------------
def lock_chain(c: Cursor, db: Database, chain_pending: int = 0) -> None:
    """PostgreSQL: take the chain's lock (one row's, waiting for it) in the caller's
    transaction, chaining up to `chain_pending` of the entries waiting to be chained first."""
    c.execute(db.q(f"SELECT count(*) FROM {{t}}{CHAIN_FUNCTION}(true, ?)"), (chain_pending,))


def _lock_head(c: Cursor, db: Database, standalone: bool) -> tuple[int, str]:
    """Serialise appends and read the chain's head (seq 0: the genesis hash). On PostgreSQL
    the entries waiting to be chained are chained first (up to a few thousand: the rest by
    the next holder), so they keep their place before this transaction's own."""
    if db.dialect == "postgres":
        lock_chain(c, db, 5000)
    elif standalone:
        # Take SQLite's write lock before reading the head, so no other process can
        # append between the read and the insert.
        c.execute(db.q("UPDATE {t}anxin_audit_meta SET value = value WHERE name = 'store_id'"))
    row = c.execute(db.q(_HEAD)).fetchone()
    if row is not None:
        return int(row[0]), str(row[1])
    sid = c.execute(db.q(_STORE)).fetchone()
    assert sid is not None, "the audit trail's tables were not set up"
    return 0, genesis_hash(str(sid[0]))


def _insert(c: Cursor, db: Database, seq: int, prev: str, rows: Iterable[Row]) -> tuple[int, str]:
    out = []
    for at, kind, actor_id, subject, detail, payload, sealed in rows:
        seq += 1
        text = f"{prev}{SEP}{seq}{SEP}{at}{SEP}{kind}{SEP}{actor_id}{SEP}{subject}{SEP}{detail}{SEP}{payload}"
        if text.count(SEP) != 7:
            raise ValueError("an audit field may not contain U+001F")
        h = hashlib.sha256(text.encode()).hexdigest()
        out.append((seq, at, kind, actor_id, subject, detail, payload, sealed, prev, h))
        prev = h
    if out:
        c.executemany(db.q(_INSERT), out)
        # (seq, at, kind, actor, subject, detail, payload, sealed): a break-glass use waits for review
        _review_items(c, db, ((r[0], r[1], r[2], r[3], r[4], r[5], r[7]) for r in out))
    return seq, prev


def append(c: Cursor, db: Database, rows: Sequence[Row], *, standalone: bool = True) -> int:
    """Append entries inside the caller's transaction; returns the last seq.
    `standalone=False` when the transaction already holds SQLite's write lock."""
    seq, prev = _lock_head(c, db, standalone)
    return _insert(c, db, seq, prev, rows)[0]


def record(app: Core, row: Row) -> int | None:
    """Append one entry in a transaction of its own; returns its seq (see `record_many`)."""
    return record_many(app, [row])


def record_many(app: Core, rows: Sequence[Row]) -> int | None:
    """Append entries in a transaction of their own; returns the last seq (None on
    PostgreSQL if it is not chained yet).

    On PostgreSQL, entries without a sealed reason (the gate's decisions on every page view,
    logins, reports) are recorded in ONE statement, autocommitted, so durable before it
    returns, that takes no lock anyone waits for: it inserts them as pending (ordered by a
    sequence) and chains everything pending only if nobody else holds the chain's lock at
    that moment; otherwise the holder's successor chains them (every writer, the server's
    background loop, `settle`, and a verification or checkpoint first)."""
    if not rows:
        return None
    db = app.db
    if db.dialect == "postgres" and all(r[6] is None for r in rows):
        for r in rows:
            if any(SEP in str(f) for f in r[:6]):
                raise ValueError("an audit field may not contain U+001F")
        fields = [f for r in rows for f in r[:6]]  # (each entry's six fields in turn)
        row = db.fetchone(f"SELECT {{t}}{RECORD_FUNCTION}(?::text[])", (fields,))
        return None if row is None or row[0] is None else int(row[0])
    with db.transaction() as c:
        return append(c, db, rows)


def settle(app: Core) -> int:
    """Chain every entry recorded so far but not yet chained (PostgreSQL; nothing waits on
    SQLite), waiting for the chain's lock; how many were chained. Nothing pending: the
    lock is not even asked for (one read of an index)."""
    db = app.db
    if db.dialect != "postgres" or db.fetchone(f"SELECT 1 FROM {{t}}{PENDING_TABLE} LIMIT 1") is None:
        return 0
    total = 0
    while True:
        with db.transaction() as c:
            n = int(c.execute(db.q(f"SELECT count(*) FROM {{t}}{CHAIN_FUNCTION}(true, 10000)")).fetchone()[0])  # type: ignore[index]
        total += n
        if n < 10000:
            return total


def append_events(
    c: Cursor,
    db: Database,
    stored_events: Sequence[Any],
    meta: dict[tuple[str, int], tuple[str, str]] | None,
    first: Sequence[Row] = (),
) -> None:
    """The recorder's hook, inside the events' transaction: one entry per event, in
    the order they are inserted, after `first` (the gate's decisions for this command).
    `meta` maps (stream hex, version) to (actor, at)."""
    meta = meta or {}
    now = ""
    rows: list[Row] = list(first)
    for e in stored_events:
        oid = e.originator_id
        uid = oid if isinstance(oid, UUID) else UUID(str(oid))
        hexid, version, topic = uid.hex, e.originator_version, e.topic
        found = meta.get((hexid, version))
        if found is None:  # saved outside Core.commit: the actor is inside the ciphertext only
            now = now or datetime.now(UTC).isoformat()
            found = ("", now)
        rows.append(
            (
                found[1],
                "event",
                found[0],
                str(uid),
                f"{topic}#{version}",
                event_payload_hash(hexid, version, topic, e.state),
                None,
            )
        )
    append(c, db, rows, standalone=False)


def pending_event_meta(aggregates: Iterable[Any]) -> dict[tuple[str, int], tuple[str, str]]:
    """(actor, at) of each pending event, for the recorder's hook (see Core.commit)."""
    out = {}
    for a in aggregates:
        for e in a.pending_events:
            at = getattr(e, "at", None) or e.timestamp
            out[(e.originator_id.hex, e.originator_version)] = (
                str(getattr(e, "actor", "") or ""),
                at.isoformat() if hasattr(at, "isoformat") else str(at),
            )
    return out


# -- access decisions and security events ---------------------------------------------------
def _bound(at: str, actor_id: str, label: str, subject: str | None) -> bytes:
    return SEP.join((at, actor_id, label, subject or "")).encode()


def _stream_hex(subject: str | None) -> str | None:
    try:
        return UUID(subject).hex if subject else None
    except ValueError:
        return None


def seal_reason(app: Core, text: str, at: str, actor_id: str, label: str, subject: str | None) -> bytes:
    """A stated reason, encrypted and bound to its entry: under the key of the stream
    it concerns (so shredding the stream erases it too), else under the audit-notes key."""
    bound = _bound(at, actor_id, label, subject)
    nonce = os.urandom(12)
    sid = _stream_hex(subject)
    if sid is not None:
        try:
            aes = app.keystore.cipher_for_read(sid, 0)
            return b"S" + nonce + aes.encrypt(nonce, text.encode(), b"anxin-access" + SEP.encode() + bound)
        except (StreamErased, Tampered):  # (a quarantined stream's key: the decision is still recorded)
            pass
    aes = app.keystore.named_cipher(AUDIT_NOTES)
    return b"N" + nonce + aes.encrypt(nonce, text.encode(), AUDIT_NOTES.encode() + SEP.encode() + bound)


def unseal_reason(app: Core, blob: bytes, at: str, actor_id: str, label: str, subject: str | None) -> str:
    """The reason in clear, or 已删除 once the stream it was sealed under is shredded."""
    bound = _bound(at, actor_id, label, subject)
    blob = bytes(blob)
    try:
        if blob[:1] == b"S":
            sid = _stream_hex(subject)
            if sid is None:
                raise Tampered(str(subject), 0)
            app.keystore.check_live(sid)
            try:
                aes = app.keystore.cipher_for_read(sid, 0)
            except Tampered:  # that stream's own key failed: it is quarantined, the log still reads
                from anxin.quarantine import UNREADABLE_LABEL, record

                record(app, sid, 0)
                return UNREADABLE_LABEL
            aad = b"anxin-access" + SEP.encode() + bound
        elif blob[:1] == b"N":
            aes = app.keystore.named_cipher(AUDIT_NOTES)
            aad = AUDIT_NOTES.encode() + SEP.encode() + bound
        else:
            raise Tampered(AUDIT_NOTES, 0)
        return aes.decrypt(blob[1:13], blob[13:], aad).decode()
    except StreamErased:
        return ERASED_LABEL
    except InvalidTag as e:
        raise Tampered(subject or AUDIT_NOTES, 0) from e


def access_row(
    app: Core, actor: Actor, action: str, resource: Resource, decision: Decision, break_glass: str | None
) -> Row:
    """The entry for one decision of the gate: ids and the rule that decided, no text;
    for a request signed in by an API token, the token's id (`token`)."""
    at = app.now().isoformat()
    fields: dict[str, Any] = {
        "action": action,
        "allowed": 1 if decision.allowed else 0,
        "break_glass": 1 if decision.break_glass else 0,
        "district": resource.district,
        "kind": resource.kind,
        "rule": decision.reason,
        "school": resource.school_id,
    }
    if actor.token_id:  # made with an API token: which one
        fields["token"] = actor.token_id
    detail = canonical_json(fields)
    sealed = seal_reason(app, break_glass, at, actor.staff_id, action, resource.id) if break_glass else None
    payload = hashlib.sha256(sealed).hexdigest() if sealed else ""
    return (at, "access", actor.staff_id, resource.id or "", detail, payload, sealed)


def security_row(app: Core, kind: str, actor_id: str, subject: str = "", detail: str | dict[str, Any] = "") -> Row:
    """A login, failed login, logout, export, report, shred or key rotation: ids and
    codes only (`subject` a stream or resource id, or `login_subject(...)`)."""
    if kind not in SECURITY_KINDS:
        raise ValueError(f"not a security event kind: {kind}")
    text = detail if isinstance(detail, str) else canonical_json(detail)
    return (app.now().isoformat(), kind, actor_id, subject or "", text, "", None)


def login_subject(app: Core, username: str) -> str:
    """A login name as the trail may hold it: a keyed hash, never the name."""
    return "user:" + app.keystore.blind("audit-login", username.strip().lower())[:32]
