"""The audit trail: one append-only, hash-chained table of who did and who saw what.

Every stored event, every decision of the gate (allowed or denied, with the sealed
break-glass reason where one was given), logins, failed logins, exports, reports,
shreds, key rotations and checkpoints are entries of `anxin_audit`. Each entry
commits to the one before it (`prev_hash`) and its own fields (`entry_hash`); an
event's entry also commits to the event's stored bytes, its ciphertext
(`payload_hash`), so the trail verifies without decrypting anything and still
verifies after a stream is shredded. Signed checkpoints (Ed25519) pin the chain's
head so that a rewritten or truncated history is caught by anyone holding the public
key. The format is documented, byte for byte, in docs/audit.md.

The trail holds ids, codes and hashes only, never a name or free text: the one free
text, a break-glass reason, is stored encrypted under the key of the stream it opened
(so shredding the stream erases it too). The trail therefore outlives erasure.

Event entries are written by the event recorder inside the events' own transaction
(`anxin.storage.Database.write_with_events`); the others by `Core.record_access`,
`Core.record_security_event`, `Core.shred`, `Core.rotate_master_key` and the
checkpoint functions below. Appends are serialised: SQLite has one writer, and on
PostgreSQL every append first takes `LOCK TABLE anxin_audit IN EXCLUSIVE MODE`.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import json
import os
import queue
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import accumulate
from operator import methodcaller
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import quote
from uuid import UUID, uuid4

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from anxin.crypto import StreamErased, Tampered
from domain import access
from domain.access import Decision, Resource
from domain.common import Actor, DomainError, InvalidInput

if TYPE_CHECKING:
    from anxin.app import Core
    from anxin.storage import Cursor, Database, StoreConfig

TABLE = "anxin_audit"
META_TABLE = "anxin_audit_meta"
# Column definitions, for anxin.storage.SIDE_TABLES ({int8} and {blob} per database).
TABLE_COLUMNS = (
    "seq {int8} PRIMARY KEY, at TEXT NOT NULL, kind TEXT NOT NULL, actor_id TEXT NOT NULL, "
    "subject TEXT NOT NULL, detail TEXT NOT NULL, payload_hash TEXT NOT NULL, sealed {blob}, "
    "prev_hash TEXT NOT NULL, entry_hash TEXT NOT NULL"
)
META_COLUMNS = "name TEXT PRIMARY KEY, value TEXT NOT NULL"
# A case's history and a student's accesses are read by subject; the partial indexes
# cost an insert nothing unless the entry is a checkpoint or holds a sealed reason.
INDEXES = [
    "CREATE INDEX IF NOT EXISTS {p}anxin_audit_subject ON {t}anxin_audit (subject)",
    "CREATE INDEX IF NOT EXISTS {p}anxin_audit_checkpoints ON {t}anxin_audit (seq) WHERE kind = 'checkpoint'",
    "CREATE INDEX IF NOT EXISTS {p}anxin_audit_sealed ON {t}anxin_audit (seq) WHERE sealed IS NOT NULL",
]

FORMAT = "anxin-audit-1"
CHECKPOINT_FORMAT = "anxin-audit-checkpoint-1"
SEP = "\x1f"
KINDS = frozenset({
    "event", "access", "login", "login_failed", "logout", "export", "report", "shred", "key_rotation",
    "checkpoint", "password_change", "token_issue", "token_revoke",
})
# Kinds anyone may record through Core.record_security_event (the others have their own writers).
SECURITY_KINDS = KINDS - {"event", "access", "checkpoint"}
AUDIT_NOTES = "anxin:audit-notes"  # the named key for a reason that belongs to no stream
ERASED_LABEL = "已删除"

Row = tuple[str, str, str, str, str, str, bytes | None]  # at, kind, actor_id, subject, detail, payload_hash, sealed
COLUMNS = "seq, at, kind, actor_id, subject, detail, payload_hash, sealed, prev_hash, entry_hash"
_INSERT = f"INSERT INTO {{t}}anxin_audit ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
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


def entry_hash(prev_hash: str, seq: int, at: str, kind: str, actor_id: str, subject: str, detail: str,
               payload_hash: str) -> str:
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
    c.execute(db.q("INSERT INTO {t}anxin_audit_meta (name, value) VALUES ('store_id', ?) "
                   "ON CONFLICT (name) DO NOTHING"), (str(uuid4()),))
    _create_access_view(c, db)
    if c.execute(db.q(_HEAD)).fetchone() is None:
        _adopt_existing_events(c, db)


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
        row = c.execute("SELECT CASE type WHEN 'table' THEN 'r' ELSE 'v' END FROM sqlite_master WHERE name = ?",
                        ("anxin_access",)).fetchone()
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
            f"ORDER BY {nid} LIMIT 5000", (last,),
        ).fetchall()
        if not rows:
            return
        out: list[Row] = []
        for _, oid, version, topic, state in rows:
            uid = oid if isinstance(oid, UUID) else UUID(str(oid))
            out.append((at, "event", "", str(uid), f"{topic}#{version}",
                        event_payload_hash(uid.hex, version, topic, bytes(state)), None))
        append(c, db, out, standalone=False)
        last = rows[-1][0]


def store_id(db: Database) -> str:
    row = db.fetchone(_STORE)
    assert row is not None, "the audit trail's tables were not set up"
    return str(row[0])


# -- appending ---------------------------------------------------------------------------
def _lock_head(c: Cursor, db: Database, standalone: bool) -> tuple[int, str]:
    """Serialise appends and read the chain's head (seq 0: the genesis hash)."""
    if db.dialect == "postgres":
        c.execute(db.q("LOCK TABLE {t}anxin_audit IN EXCLUSIVE MODE"))
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
    return seq, prev


def append(c: Cursor, db: Database, rows: Sequence[Row], *, standalone: bool = True) -> int:
    """Append entries inside the caller's transaction; returns the last seq.
    `standalone=False` when the transaction already holds SQLite's write lock."""
    seq, prev = _lock_head(c, db, standalone)
    return _insert(c, db, seq, prev, rows)[0]


def record(app: Core, row: Row) -> int:
    """Append one entry in a transaction of its own; returns its seq."""
    return record_many(app, [row])


def record_many(app: Core, rows: Sequence[Row]) -> int:
    """Append entries in a transaction of their own; returns the last seq."""
    with app.db.transaction() as c:
        return append(c, app.db, rows)


def append_events(c: Cursor, db: Database, stored_events: Sequence[Any],
                  meta: dict[tuple[str, int], tuple[str, str]] | None, first: Sequence[Row] = ()) -> None:
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
        if found is None:  # saved outside Core._save: the actor is inside the ciphertext only
            now = now or datetime.now(UTC).isoformat()
            found = ("", now)
        rows.append((found[1], "event", found[0], str(uid), f"{topic}#{version}",
                     event_payload_hash(hexid, version, topic, e.state), None))
    append(c, db, rows, standalone=False)


def pending_event_meta(aggregates: Iterable[Any]) -> dict[tuple[str, int], tuple[str, str]]:
    """(actor, at) of each pending event, for the recorder's hook (see Core._save)."""
    out = {}
    for a in aggregates:
        for e in a.pending_events:
            at = getattr(e, "at", None) or e.timestamp
            out[(e.originator_id.hex, e.originator_version)] = (
                str(getattr(e, "actor", "") or ""), at.isoformat() if hasattr(at, "isoformat") else str(at),
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


def access_row(app: Core, actor: Actor, action: str, resource: Resource, decision: Decision,
               break_glass: str | None) -> Row:
    """The entry for one decision of the gate: ids and the rule that decided, no text."""
    at = app.now().isoformat()
    detail = canonical_json({
        "action": action, "allowed": 1 if decision.allowed else 0, "break_glass": 1 if decision.break_glass else 0,
        "district": resource.district, "kind": resource.kind, "rule": decision.reason, "school": resource.school_id,
    })
    sealed = seal_reason(app, break_glass, at, actor.staff_id, action, resource.id) if break_glass else None
    payload = hashlib.sha256(sealed).hexdigest() if sealed else ""
    return (at, "access", actor.staff_id, resource.id or "", detail, payload, sealed)


def security_row(app: Core, kind: str, actor_id: str, subject: str = "",
                 detail: str | dict[str, Any] = "") -> Row:
    """A login, failed login, logout, export, report, shred or key rotation: ids and
    codes only (`subject` a stream or resource id, or `login_subject(...)`)."""
    if kind not in SECURITY_KINDS:
        raise ValueError(f"not a security event kind: {kind}")
    text = detail if isinstance(detail, str) else canonical_json(detail)
    return (app.now().isoformat(), kind, actor_id, subject or "", text, "", None)


def login_subject(app: Core, username: str) -> str:
    """A login name as the trail may hold it: a keyed hash, never the name."""
    return "user:" + app.keystore.blind("audit-login", username.strip().lower())[:32]


# -- signing keys ------------------------------------------------------------------------
def signing_key_path(config: StoreConfig) -> Path:
    """ANXIN_AUDIT_KEY_FILE, else `audit-signing.key` beside the master key file (the
    data directory's, or the one ANXIN_MASTER_KEY_FILE names)."""
    path = os.environ.get("ANXIN_AUDIT_KEY_FILE")
    if path:
        return Path(path)
    master = os.environ.get("ANXIN_MASTER_KEY_FILE")
    return (Path(master).parent if master else config.data_dir) / "audit-signing.key"


def public_key_path(config: StoreConfig) -> Path:
    return signing_key_path(config).with_suffix(".pub")


def _raw_public(pub: Ed25519PublicKey) -> bytes:
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    return pub.public_bytes(Encoding.Raw, PublicFormat.Raw)


def public_key_text(pub: Ed25519PublicKey) -> str:
    return base64.b64encode(_raw_public(pub)).decode()


def key_id(pub: Ed25519PublicKey) -> str:
    return hashlib.sha256(_raw_public(pub)).hexdigest()[:16]


def create_signing_key(config: StoreConfig) -> Ed25519PublicKey:
    """A new Ed25519 key: the private half 0600 beside the master key, the public half
    in `audit-signing.pub` (give it to the supervisor). Never overwrites."""
    from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

    path = signing_key_path(config)
    path.parent.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    raw = key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(base64.b64encode(raw).decode() + "\n")
    pub = key.public_key()
    public_key_path(config).write_text(public_key_text(pub) + "\n")
    return pub


def load_signing_key(config: StoreConfig) -> Ed25519PrivateKey:
    path = signing_key_path(config)
    if not path.exists():
        raise AuditKeyMissing(where=str(path))
    return Ed25519PrivateKey.from_private_bytes(base64.b64decode(path.read_text().strip()))


def parse_public_key(text: str) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(base64.b64decode(text.strip()))


def load_public_key(config: StoreConfig) -> Ed25519PublicKey | None:
    pub = public_key_path(config)
    if pub.exists():
        return parse_public_key(pub.read_text())
    if signing_key_path(config).exists():
        return load_signing_key(config).public_key()
    return None


def signing_key(app: Core) -> Ed25519PrivateKey:
    key = getattr(app, "audit_signing_key", None)
    if key is None:
        key = load_signing_key(app.config)
        app.audit_signing_key = key  # type: ignore[attr-defined]
    return key


# -- checkpoints -------------------------------------------------------------------------
@dataclass(frozen=True)
class Checkpoint:
    """A signed statement: this store's trail had this head at this time."""

    store: str
    seq: int
    entry_hash: str
    at: str
    key_id: str
    public_key: str
    signature: str

    def message(self) -> bytes:
        return checkpoint_message(self.store, self.seq, self.entry_hash, self.at)

    def signature_valid(self, pub: Ed25519PublicKey) -> bool:
        try:
            pub.verify(base64.b64decode(self.signature), self.message())
            return True
        except (InvalidSignature, ValueError):
            return False

    def to_json(self) -> str:
        return json.dumps({
            "format": CHECKPOINT_FORMAT, "store": self.store, "seq": self.seq, "entry_hash": self.entry_hash,
            "at": self.at, "key_id": self.key_id, "public_key": self.public_key, "signature": self.signature,
        }, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Checkpoint:
        try:
            d = json.loads(text)
            if d.get("format") != CHECKPOINT_FORMAT:
                raise ValueError(d.get("format"))
            return cls(str(d["store"]), int(d["seq"]), str(d["entry_hash"]), str(d["at"]), str(d["key_id"]),
                       str(d["public_key"]), str(d["signature"]))
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise InvalidInput(reason=f"不是审计检查点文件（{e}）") from e

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Checkpoint:
        return cls.from_json(Path(path).read_text(encoding="utf-8"))


def take_checkpoint(app: Core, actor_id: str = "system") -> Checkpoint:
    """Sign the chain's head and record the signature as the next entry, atomically."""
    key = signing_key(app)
    pub = key.public_key()
    kid = key_id(pub)
    at = app.now().isoformat()
    with app.db.transaction() as c:
        seq, head = _lock_head(c, app.db, standalone=True)
        if seq == 0:
            raise InvalidInput(reason="审计记录为空，没有可签名的内容")
        sid = str(c.execute(app.db.q(_STORE)).fetchone()[0])  # type: ignore[index]
        sig = base64.b64encode(key.sign(checkpoint_message(sid, seq, head, at))).decode()
        detail = canonical_json({"entry_hash": head, "seq": seq, "signature": sig})
        _insert(c, app.db, seq, head, [(at, "checkpoint", actor_id, kid, detail, "", None)])
    return Checkpoint(sid, seq, head, at, kid, public_key_text(pub), sig)


def maybe_checkpoint(app: Core, *, every_entries: int | None = None, every_seconds: float | None = None,
                     actor_id: str = "system") -> Checkpoint | None:
    """A checkpoint if one is due: `every_entries` new entries, or `every_seconds` since
    the last one (by the application's clock). Nothing new since the last: none."""
    if every_entries is None and every_seconds is None:
        raise ValueError("say how often: every_entries or every_seconds")
    head = app.db.fetchone(_HEAD)
    if head is None:
        return None
    last = app.db.fetchone("SELECT seq, at FROM {t}anxin_audit WHERE kind = 'checkpoint' ORDER BY seq DESC LIMIT 1")
    since = int(head[0]) - (int(last[0]) if last else 0)
    if since <= 0:
        return None
    due = every_entries is not None and since >= every_entries
    if every_seconds is not None:
        due = due or last is None or (app.now() - datetime.fromisoformat(last[1])).total_seconds() >= every_seconds
    return take_checkpoint(app, actor_id) if due else None


# -- verification ------------------------------------------------------------------------
@dataclass(frozen=True)
class Problem:
    """The first place where history was changed. `seq` is the trail position."""

    seq: int
    reason: str
    message: str
    notification_id: int | None = None
    stream_id: str | None = None
    version: int | None = None


@dataclass
class VerifyReport:
    entries: int = 0
    events: int = 0
    checkpoints: int = 0
    head_seq: int = 0
    head_hash: str = ""
    checkpoint_file: Checkpoint | None = None
    problem: Problem | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.problem is None

    def summary(self) -> str:
        if self.problem is None:
            lines = [f"审计记录完整（intact）：{self.entries} 条记录，{self.events} 个事件，"
                     f"{self.checkpoints} 个已签名检查点；链头 seq {self.head_seq} {self.head_hash}"]
            if self.checkpoint_file is not None:
                lines.append(f"检查点文件吻合：seq {self.checkpoint_file.seq}（{self.checkpoint_file.at}）")
            return "\n".join(lines)
        p = self.problem
        where = f"第 {p.seq} 条（seq {p.seq}）"
        extra = []
        if p.notification_id is not None:
            extra.append(f"事件位置 {p.notification_id}")
        if p.stream_id is not None:
            extra.append(f"记录 {p.stream_id} 第 {p.version} 版")
        tail = f"（{'，'.join(extra)}）" if extra else ""
        return f"审计记录被改动（tampered）：{where}{tail}：{p.message} [{p.reason}]"


class _Found(Exception):
    def __init__(self, problem: Problem) -> None:
        self.problem = problem


def _raw_rows(db: Database, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    """Rows as plain tuples straight from the driver (no per-value conversion: verify
    reads every row of two tables, so this is its hot path)."""
    with db.transaction(commit=False) as c:
        if db.dialect == "postgres":
            from psycopg.rows import tuple_row

            cur = c.raw.connection.cursor(row_factory=tuple_row, binary=True)
            cur.execute(sql.replace("?", "%s"), params)
            return cur.fetchall()
        cur = c.raw.sqlite_cursor
        cur.row_factory = None
        cur.execute(sql, params)
        return cur.fetchall()


class _Events:
    """The stored events in notification order, read in batches, with their payload
    hashes (computed from the raw stored bytes; nothing is decrypted).

    On SQLite a batch is one aggregate row: every event's hashed bytes (id as 32 hex
    digits, version, topic, separators, then the stored state) end to end, and their
    lengths, built by SQLite in one step; the rows themselves (notification id,
    bytes) are made only when a problem has to be described. On PostgreSQL rows come
    as (notification id, prefix, state)."""

    def __init__(self, db: Database, batch: int, after: int = 0, before: int | None = None) -> None:
        """Events after notification id `after` and (if given) before `before`."""
        self.db = db
        self.pg = db.dialect == "postgres"
        table = db.t(db.recorder.events_table_name)
        upto = "" if before is None else f" AND {'notification_id' if self.pg else 'rowid'} < {int(before)}"
        if self.pg:
            # The hash's prefix (id as 32 hex digits, version, topic) comes ready-made, as bytes.
            cols = ("notification_id, convert_to(replace(originator_id::text, '-', '') || chr(31) || "
                    "originator_version || chr(31) || topic || chr(31), 'UTF8'), state")
            self.sql = (f"SELECT {cols} FROM {table} WHERE notification_id > ?{upto} ORDER BY notification_id "
                        f"LIMIT {int(batch)}")
        else:
            stored = ("CAST(originator_id || char(31) || originator_version || char(31) || topic || char(31) "
                      "|| state AS BLOB)")
            cols = f"rowid, {stored}"
            self.rows_sql = f"SELECT {cols} FROM {table} WHERE rowid > ?{upto} ORDER BY rowid LIMIT {int(batch)}"
            self.sql = ("SELECT count(*), max(n), CAST(group_concat(m, '') AS BLOB), group_concat(length(m), ',') "
                        f"FROM (SELECT rowid AS n, {stored} AS m FROM {table} WHERE rowid > ?{upto} "
                        f"ORDER BY rowid LIMIT {int(batch)})")
            self.nth_sql = f"SELECT rowid FROM {table} WHERE rowid > ? ORDER BY rowid LIMIT 1 OFFSET ?"
        self.point_sql = f"SELECT {cols} FROM {table} WHERE originator_id = ? AND originator_version = ?"
        self.rows: Sequence[tuple[Any, ...]] = []
        self.hashes: list[str] = []
        self.pos = 0
        self.last = 0
        self.count = 0  # events taken so far
        self.source = self._batches(after)

    def _batches(self, after: int) -> Iterator[Any]:
        # (Module functions, not methods: a reading thread must not keep this object alive.)
        # The next batches are read in a thread, while this one is checked: on PostgreSQL
        # through its own pooled connection; on SQLite through a read-only connection that
        # the thread opens, alone uses and closes (never one of the store's: closing the
        # store while a thread was inside one of its connections crashed the process).
        if self.pg:
            return _prefetched(_paged(self.db, self.sql, after))
        path = self.db.sqlite_path()
        if path is None:
            return _aggregated(self.db, self.sql, after)
        return _prefetched(_aggregated_own(path, self.sql, after))

    def _load(self) -> bool:
        item = next(self.source, None)
        if item is None:  # at the end: look again (events may have been written since), from here on
            self.source = self._batches(self.last)
            item = next(self.source, None)
        if item is None:
            self.rows, self.hashes, self.pos = [], [], 0
            return False
        if self.pg:
            self.rows, self.hashes, self.last = item, self._hashes(item), item[-1][0]
        else:
            after, n, self.last, blob, lengths = item
            sizes = list(map(int, lengths.split(","))) if lengths else []
            if len(sizes) == n:
                ends = list(accumulate(sizes, initial=0))
                view = memoryview(blob)
                self.hashes = list(map(_hexdigest, map(hashlib.sha256, map(view.__getitem__,
                                                                             map(slice, ends, ends[1:])))))
                self.rows = _BatchRows(self.db, self.nth_sql, after, view, ends, 0, n)
            else:  # a row without bytes (a NULL where the table should hold a value): one by one
                self.rows = _raw_rows(self.db, self.rows_sql, (after,))
                self.hashes = self._hashes(self.rows)
        self.pos = 0
        return True

    def take(self) -> tuple[list[str], Sequence[tuple[Any, ...]]]:
        """The rest of the current batch (or the next batch): payload hashes and rows;
        empty at the end."""
        if self.pos == len(self.hashes) and not self._load():
            return [], []
        hashes, rows = self.hashes[self.pos:], self.rows[self.pos:]
        self.pos = len(self.hashes)
        self.count += len(hashes)
        return hashes, rows

    def give_back(self, n: int) -> None:
        """Un-take the last n events (all taken from the current buffer)."""
        self.pos -= n
        self.count -= n

    def peek(self) -> tuple[Any, ...] | None:
        if self.pos == len(self.hashes) and not self._load():
            return None
        return self.rows[self.pos]

    @staticmethod
    def _stored(row: tuple[Any, ...]) -> bytes:
        """The hashed bytes of a row: (id, bytes) on SQLite, (id, prefix, state) on PostgreSQL."""
        return bytes(row[1]) if len(row) == 2 else bytes(row[1]) + bytes(row[2])

    @classmethod
    def _hashes(cls, rows: Sequence[tuple[Any, ...]]) -> list[str]:
        sha = hashlib.sha256
        if rows and len(rows[0]) == 2:
            return [sha(stored).hexdigest() for _, stored in rows]
        return [sha(prefix + state).hexdigest() for _, prefix, state in rows]

    def described(self, row: tuple[Any, ...]) -> tuple[int, str, int, str]:
        """(notification id, stream hex, version, payload hash) of an event row."""
        stored = self._stored(row)
        oid, v, _ = stored.split(SEP.encode(), 2)
        return row[0], oid.decode(), int(v), hashlib.sha256(stored).hexdigest()

    def find(self, stream_hex: str, version: int) -> tuple[int, str, int, str] | None:
        oid: Any = UUID(stream_hex) if self.pg else stream_hex
        rows = _raw_rows(self.db, self.point_sql, (oid, version))
        return self.described(rows[0]) if rows else None


_hexdigest = methodcaller("hexdigest")


class _BatchRows(Sequence[tuple[Any, ...]]):
    """The rows (notification id, stored bytes) of one SQLite batch, made when asked for
    (the notification id by one more query: only to describe a problem)."""

    def __init__(self, db: Database, nth_sql: str, after: int, view: memoryview, ends: list[int], start: int,
                 stop: int) -> None:
        self.db, self.nth_sql, self.after, self.view, self.ends = db, nth_sql, after, view, ends
        self.start, self.stop = start, stop

    def __len__(self) -> int:
        return self.stop - self.start

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            a, b, _ = i.indices(len(self))
            return _BatchRows(self.db, self.nth_sql, self.after, self.view, self.ends, self.start + a,
                              self.start + max(a, b))
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(i)
        j = self.start + i
        nid = int(_raw_rows(self.db, self.nth_sql, (self.after, j))[0][0])
        return nid, bytes(self.view[self.ends[j]:self.ends[j + 1]])


def _aggregated(db: Database, sql: str, after: int) -> Iterator[tuple[int, int, int, bytes, str]]:
    """SQLite's batches of events as aggregate rows (see _Events), until one is empty."""
    return _aggregate_rows(lambda a: _raw_rows(db, sql, (a,))[0], after)


def _aggregated_own(path: str, sql: str, after: int) -> Iterator[tuple[int, int, int, bytes, str]]:
    """As `_aggregated`, through a connection of its own, opened on first use (so in the
    thread that reads) and closed when done or dropped."""
    con = sqlite3.connect(f"file:{quote(path)}?mode=ro", uri=True, timeout=30, check_same_thread=False)
    try:
        yield from _aggregate_rows(lambda a: con.execute(sql, (a,)).fetchone(), after)
    finally:
        con.close()


def _aggregate_rows(fetch: Any, after: int) -> Iterator[tuple[int, int, int, bytes, str]]:
    while True:
        n, last, blob, lengths = fetch(after)
        if not n:
            return
        yield after, int(n), int(last), blob, lengths
        after = last


def _event_of(subject: str, detail: str) -> tuple[str | None, int | None]:
    try:
        return UUID(subject).hex, int(detail.rsplit("#", 1)[1])
    except (ValueError, IndexError):
        return None, None


def _unrecorded(seq: int, ev: tuple[int, str, int, str]) -> _Found:
    return _Found(Problem(seq, "event_unrecorded", "事件库中有一个没有审计记录的事件：事件被插入",
                          notification_id=ev[0], stream_id=str(UUID(ev[1])), version=ev[2]))


def _check_event(events: _Events, ev_row: tuple[Any, ...] | None, seq: int, subject: str, detail: str,
                 payload: str) -> None:
    """An event entry whose payload hash differs from the next stored event's: say why."""
    ev = events.described(ev_row) if ev_row is not None else None
    hexid, version = _event_of(subject, detail)
    where: dict[str, Any] = {"stream_id": subject, "version": version}
    altered = "事件的存储内容（密文）与审计记录不符：事件被改动"
    if hexid is None or version is None:
        raise _Found(Problem(seq, "entry_altered", "事件记录的对象或版本无法识别", **where))
    if ev is not None and (ev[1], ev[2]) == (hexid, version):
        raise _Found(Problem(seq, "event_altered", altered, notification_id=ev[0], **where))
    own = events.find(hexid, version)
    if own is None:
        raise _Found(Problem(seq, "event_missing", "审计记录所载的事件已不在事件库中：事件被删除", **where))
    if ev is not None and own[0] > ev[0]:
        raise _unrecorded(seq, ev)
    if own[3] != payload:
        raise _Found(Problem(seq, "event_altered", altered, notification_id=own[0], **where))
    raise _Found(Problem(seq, "event_moved", "事件在事件库中的顺序与审计记录不符", notification_id=own[0], **where))


def _paged(db: Database, sql: str, after: int) -> Iterator[list[tuple[Any, ...]]]:
    """Batches of `sql` (which takes the last key seen and orders by it) until empty."""
    while True:
        rows = _raw_rows(db, sql, (after,))
        if not rows:
            return
        yield rows
        after = rows[-1][0]


def _trail_batches(db: Database, after: int, batch: int, upto: int | None = None
                   ) -> Iterator[list[tuple[Any, ...]]]:
    bound = "" if upto is None else f" AND seq <= {int(upto)}"
    sql = db.q(f"SELECT {COLUMNS} FROM {{t}}anxin_audit WHERE seq > ?{bound} ORDER BY seq LIMIT {int(batch)}")
    batches = _paged(db, sql, after)
    return _prefetched(batches) if db.dialect == "postgres" else batches


_END = object()


def _prefetched(batches: Iterator[Any], depth: int = 2) -> Iterator[Any]:
    """Read the next batches in a thread while this one is checked: on PostgreSQL the
    wait for the server then overlaps the hashing. On SQLite only the events' aggregate
    batches are read ahead (each is built in one step, with the GIL released); rows
    fetched one by one there, as the trail's are, would only contend for the GIL."""
    q: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in batches:
                if not put(item):
                    return
            put(_END)
        except BaseException as e:  # handed to the reader, raised there
            put(e)

    threading.Thread(target=produce, name="anxin-audit-verify", daemon=True).start()
    try:
        while True:
            item = q.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()


def verify(app: Core, checkpoint: Checkpoint | str | os.PathLike[str] | None = None, *,
           public_key: Ed25519PublicKey | None = None, batch: int = 20000,
           parallel_from: int | None = None) -> VerifyReport:
    """Re-read every trail entry and every stored event (raw bytes, nothing decrypted),
    recompute the chain, match events and their entries one to one, check every stored
    checkpoint's signature and, if given, a checkpoint file kept outside the system.
    Stops at the first position where history was changed."""
    started = time.perf_counter()
    report = VerifyReport()
    if checkpoint is not None and not isinstance(checkpoint, Checkpoint):
        checkpoint = Checkpoint.load(checkpoint)
    report.checkpoint_file = checkpoint
    pub = public_key or load_public_key(app.config)
    # The pass makes millions of short-lived rows and strings and no cycles: pause the
    # cyclic collector, which would otherwise walk the whole heap again and again.
    from projections.base import no_gc_pauses

    with no_gc_pauses():
        # A long trail in two halves at once, the second in a process of its own; anything
        # that way not shown intact is verified again in one pass, which says where and why.
        if not _verify_in_halves(app, report, checkpoint, pub, batch,
                                 PARALLEL_FROM if parallel_from is None else parallel_from):
            try:
                _Verifier(app, report, checkpoint, pub, batch).run()
            except _Found as f:
                report.problem = f.problem
    report.seconds = time.perf_counter() - started
    return report


# From how many entries a second process verifies half the trail (its start, about half a
# second on the reference machine, is then well paid for).
PARALLEL_FROM = 200_000


def _verify_in_halves(app: Core, report: VerifyReport, cp: Checkpoint | None, pub: Ed25519PublicKey | None,
                      batch: int, parallel_from: int) -> bool:
    """Entries 1..mid here, and mid+1.. (with the events from the one the first event entry
    after mid names) in a second process, at once; the halves joined where they meet: the
    first half ends at entry mid, with the hash the second half's first entry names as its
    prev_hash, and has taken every event before the second half's first. True when the
    whole trail is so shown intact (the report filled in); False when it was not tried, or
    anything failed (the caller then verifies in one pass)."""
    db = app.db
    head = _raw_rows(db, db.q("SELECT max(seq) FROM {t}anxin_audit"), ())[0][0]
    if not head or head < max(parallel_from, 2):
        return False
    mid = int(head) // 2
    first_event = _raw_rows(db, db.q("SELECT subject, detail FROM {t}anxin_audit WHERE seq > ? AND kind = 'event' "
                                     "ORDER BY seq LIMIT 1"), (mid,))
    meets = _raw_rows(db, db.q("SELECT prev_hash FROM {t}anxin_audit WHERE seq = ?"), (mid + 1,))
    if not first_event or not meets:
        return False
    hexid, version = _event_of(*first_event[0])
    found = _Events(db, 1).find(hexid, version) if hexid is not None and version is not None else None
    if found is None:
        return False
    split, prev_mid = int(found[0]), str(meets[0][0])
    cfg = app.config
    job = {
        "url": cfg.url, "data_dir": str(cfg.data_dir), "schema": cfg.schema,
        "checkpoint": cp.to_json() if cp is not None else None,
        "public_key": _raw_public(pub).hex() if pub is not None else None,
        "batch": batch, "first_seq": mid + 1, "prev": prev_mid, "events_after": split - 1,
    }
    # A plain interpreter running this module's entry (not multiprocessing's spawn, which
    # would import the caller's main script again); the job through its stdin; its answer,
    # one JSON line, through its stdout. It gets no key: verification decrypts nothing.
    child = subprocess.Popen([sys.executable, "-c", "from projections.audit import _second_half; _second_half()"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                             cwd=Path(__file__).resolve().parent.parent)
    try:
        assert child.stdin is not None and child.stdout is not None
        child.stdin.write(json.dumps(job).encode())
        child.stdin.close()
        first = VerifyReport()
        try:
            _Verifier(app, first, cp, pub, batch, last_seq=mid, events_before=split).run()
        except _Found:
            return False
        if first.entries != mid or first.head_hash != prev_mid:
            return False
        try:
            answer = json.loads(child.stdout.read() or b"{}")
        except ValueError:
            return False
        if answer.get("ok") is not True or child.wait() != 0:
            return False
        report.entries = report.head_seq = int(answer["entries"])
        report.events = first.events + int(answer["events"])
        report.checkpoints = first.checkpoints + int(answer["checkpoints"])
        report.head_hash = str(answer["head_hash"])
        return True
    finally:
        if child.poll() is None:
            child.kill()
        child.wait()
        if child.stdout is not None:
            child.stdout.close()


def _second_half() -> None:
    """The second process of `_verify_in_halves`: the job from stdin (the trail from
    first_seq, whose prev_hash is `prev`, with the events after events_after, to the end);
    one JSON line to stdout: {"ok": true, counts…}, or {"ok": false} at a problem or an error
    (which the one-pass verification, run then, will meet and say)."""
    from anxin.app import Core
    from anxin.storage import StoreConfig
    from projections.base import no_gc_pauses

    answer: dict[str, Any] = {"ok": False}
    try:
        job = json.loads(sys.stdin.buffer.read())
        config = StoreConfig(url=job["url"], data_dir=Path(job["data_dir"]), schema=job["schema"])
        app = Core(config, [])  # no key: nothing is decrypted here
        try:
            cp = Checkpoint.from_json(job["checkpoint"]) if job["checkpoint"] else None
            pub = Ed25519PublicKey.from_public_bytes(bytes.fromhex(job["public_key"])) if job["public_key"] else None
            report = VerifyReport()
            with no_gc_pauses():
                _Verifier(app, report, cp, pub, int(job["batch"]), first_seq=int(job["first_seq"]), prev=job["prev"],
                          events_after=int(job["events_after"])).run()
            answer = {"ok": True, "entries": report.entries, "events": report.events,
                      "checkpoints": report.checkpoints, "head_hash": report.head_hash}
        finally:
            app.close()
    except Exception:  # a problem (_Found) or an error: the one pass that follows says which
        answer = {"ok": False}
    sys.stdout.write(json.dumps(answer) + "\n")
    sys.stdout.flush()


class _Verifier:
    """One pass over the trail, in seq order, matching each event entry with the next
    stored event; stops at the first problem. (Plain loop: measured faster here than
    checking whole batches at once.)"""

    def __init__(self, app: Core, report: VerifyReport, cp: Checkpoint | None, pub: Ed25519PublicKey | None,
                 batch: int, *, first_seq: int = 1, prev: str | None = None, last_seq: int | None = None,
                 events_after: int = 0, events_before: int | None = None) -> None:
        """The whole trail; or a part of it: entries first_seq.. (the first naming `prev` as
        its prev_hash) up to last_seq, with the events between events_after and events_before."""
        self.app, self.db, self.report, self.cp, self.pub, self.batch = app, app.db, report, cp, pub, batch
        self.store = store_id(self.db)
        self.kid = key_id(pub) if pub is not None else None
        self.first_seq, self.start_prev, self.last_seq = first_seq, prev, last_seq
        self.events = _Events(self.db, batch, events_after, events_before)

    def run(self) -> None:
        cp, pub = self.cp, self.pub
        if cp is not None:
            if cp.store != self.store:
                raise _Found(Problem(cp.seq, "checkpoint_foreign", "检查点文件属于另一个数据存储"))
            if pub is None:
                raise AuditKeyMissing(where=str(public_key_path(self.app.config)))
            if cp.key_id != self.kid or not cp.signature_valid(pub):
                raise _Found(Problem(cp.seq, "checkpoint_forged", "检查点文件的签名无效（不是本系统的签名密钥所签）"))
        prev = genesis_hash(self.store) if self.start_prev is None else self.start_prev
        expected = self.first_seq
        batches = _trail_batches(self.db, expected - 1, self.batch, self.last_seq)
        while True:
            prev, expected = self._walk(batches, prev, expected)
            # Events after the last entry: perhaps written since the trail was read (each
            # commits with its entry, so read the trail once more before calling it unrecorded).
            ev = self.events.peek()
            if ev is None:
                break
            batches = _trail_batches(self.db, expected - 1, self.batch, self.last_seq)
            first = next(batches, None)
            if first is None:
                raise _unrecorded(expected, self.events.described(ev))
            batches = _chain([first], batches)
        if cp is not None and self.last_seq is None and cp.seq >= expected:
            raise _Found(Problem(expected, "truncated",
                                 f"审计记录在第 {expected - 1} 条结束，但检查点文件签过第 {cp.seq} 条：末尾的记录被删除"))
        self.report.entries = self.report.head_seq = expected - 1
        self.report.events = self.events.count
        self.report.head_hash = prev

    def _walk(self, batches: Iterator[list[tuple[Any, ...]]], prev: str, expected: int) -> tuple[str, int]:
        sha = hashlib.sha256
        cp_seq = self.cp.seq if self.cp is not None else -1
        events = self.events
        got: list[str] = []
        ev_rows: Sequence[tuple[Any, ...]] = []
        i = n = 0  # the next of the n taken events' hashes
        for rows in batches:
            for seq, at, kind, actor_id, subject, detail, payload, sealed, prev_hash, h in rows:
                if seq != expected or prev_hash != prev:
                    if seq != expected:
                        raise _Found(Problem(expected, "entry_missing", (
                            f"第 {expected} 至 {seq - 1} 条审计记录不见了：记录被删除" if seq > expected + 1
                            else f"第 {expected} 条审计记录不见了：记录被删除")))
                    raise _Found(Problem(seq, "entry_moved", "这条记录不接在上一条之后：记录被删除、插入或调换了位置"))
                if sha(f"{prev}\x1f{seq}\x1f{at}\x1f{kind}\x1f{actor_id}\x1f{subject}\x1f{detail}\x1f{payload}"
                       .encode()).hexdigest() != h:
                    raise _Found(Problem(seq, "entry_altered", "这条记录的内容与其哈希不符：记录被改动"))
                if kind == "event":
                    if i == n:
                        got, ev_rows = events.take()
                        i, n = 0, len(got)
                    if i == n or got[i] != payload:
                        _check_event(events, ev_rows[i] if i < len(ev_rows) else None, seq, subject, detail, payload)
                    i += 1
                else:
                    if sealed is not None or payload:
                        if sealed is None or sha(sealed).hexdigest() != payload:
                            raise _Found(Problem(seq, "sealed_altered",
                                                 "这条记录的加密理由与其哈希不符：理由被改动或删除"))
                    if kind == "checkpoint":
                        _check_stored_checkpoint(seq, at, subject, detail, prev, self.store, self.pub, self.kid,
                                                 self.app)
                        self.report.checkpoints += 1
                if seq == cp_seq and h != self.cp.entry_hash:  # type: ignore[union-attr]
                    raise _Found(Problem(seq, "checkpoint_mismatch", "与检查点文件所签的链头不符：此前的历史被改写"))
                prev = h
                expected += 1
        events.give_back(len(got) - i)
        return prev, expected


def _chain(first: list[list[tuple[Any, ...]]], rest: Iterator[list[tuple[Any, ...]]]
           ) -> Iterator[list[tuple[Any, ...]]]:
    yield from first
    yield from rest


def _check_stored_checkpoint(seq: int, at: str, subject: str, detail: str, prev: str, store: str,
                             pub: Ed25519PublicKey | None, kid: str | None, app: Core) -> None:
    try:
        d = json.loads(detail)
        signed = Checkpoint(store, int(d["seq"]), str(d["entry_hash"]), at, subject, "", str(d["signature"]))
    except (ValueError, KeyError, TypeError) as e:
        raise _Found(Problem(seq, "checkpoint_invalid", "检查点记录无法读取")) from e
    if signed.seq != seq - 1 or signed.entry_hash != prev:
        raise _Found(Problem(seq, "checkpoint_mismatch", "此检查点所签的链头与现有记录不符：此前的历史被改写"))
    if pub is None:
        raise AuditKeyMissing(where=str(public_key_path(app.config)))
    if subject != kid or not signed.signature_valid(pub):
        raise _Found(Problem(seq, "checkpoint_invalid", "检查点的签名无效"))


# -- supervisor queries (through the gate, themselves audited) --------------------------------
class _Names:
    """Staff names, resolved at read time (已删除 once erased); ids that name no person
    (system, cli) are shown as they are."""

    def __init__(self, app: Core) -> None:
        self.app = app
        self.cache: dict[str, str] = {}

    def __call__(self, staff_id: str) -> str:
        if staff_id not in self.cache:
            try:
                UUID(staff_id)
            except ValueError:
                self.cache[staff_id] = staff_id
            else:
                self.cache[staff_id] = self.app.staff_name(staff_id)
        return self.cache[staff_id]


def _describe(app: Core, names: _Names, row: tuple[Any, ...]) -> dict[str, Any]:
    seq, at, kind, actor_id, subject, detail, sealed = row
    out: dict[str, Any] = {
        "seq": seq, "at": at, "kind": kind, "actor_id": actor_id, "actor": names(actor_id) if actor_id else "",
        "subject": subject, "what": "", "version": None, "allowed": None, "rule": "", "break_glass": None,
    }
    if kind == "event":
        topic, _, version = detail.rpartition("#")
        out["what"], out["version"] = topic, int(version) if version.isdigit() else None
    elif kind == "access":
        d = json.loads(detail)
        out["what"], out["allowed"], out["rule"] = d.get("action", ""), bool(d.get("allowed")), d.get("rule", "")
        if sealed is not None:
            out["break_glass"] = unseal_reason(app, sealed, at, actor_id, out["what"], subject)
    else:
        out["what"] = detail
    return out


_SELECT = "SELECT seq, at, kind, actor_id, subject, detail, sealed FROM {t}anxin_audit "


def case_history(app: Core, actor: Actor, stream_id: str) -> list[dict[str, Any]]:
    """Everything that happened to one case (or any stream), in order: who wrote which
    event and who was allowed or refused access, and why."""
    app.check(actor, access.AUDIT_READ, "case", stream_id)
    names = _Names(app)
    rows = app.db.fetch(_SELECT + "WHERE subject = ? ORDER BY seq", (str(stream_id),))
    return [_describe(app, names, r) for r in rows]


def student_access(app: Core, actor: Actor, student_id: str) -> list[dict[str, Any]]:
    """Who accessed a student's records, and why: decisions about the student's own
    stream and every stream linked to the student (cases, files, pairings, ...)."""
    app.check(actor, access.AUDIT_READ, "student", student_id)
    streams = [str(student_id)] + [r[0] for r in app.db.fetch(
        "SELECT DISTINCT stream_id FROM {t}anxin_links WHERE student_id = ?", (str(student_id),))]
    rows: list[tuple[Any, ...]] = []
    for i in range(0, len(streams), 500):
        chunk = streams[i:i + 500]
        rows += app.db.fetch(_SELECT + f"WHERE kind = 'access' AND subject IN ({','.join('?' * len(chunk))})",
                             tuple(chunk))
    names = _Names(app)
    return [_describe(app, names, r) for r in sorted(rows)]


def _scope(app: Core, actor: Actor, school_id: str | None) -> tuple[str, tuple[Any, ...]]:
    """Pass the gate for a school's or the actor's district's trail; the matching filter."""
    if school_id is not None:
        app.check(actor, access.AUDIT_READ, "school", school_id=school_id)
        return "school_id = ?", (school_id,)
    app.authorize(actor, access.AUDIT_READ, Resource(kind="district", district=actor.district))
    return ("(district = ? OR actor_id IN (SELECT staff_id FROM {t}anxin_staff WHERE district = ?))",
            (actor.district, actor.district))


def _access_rows(app: Core, where: str, params: tuple[Any, ...], limit: int | None = None) -> list[dict[str, Any]]:
    sql = ("SELECT id, at, 'access', actor_id, COALESCE(resource_id, ''), action, allowed, reason, break_glass, "
           "resource_kind, school_id FROM {t}anxin_access WHERE " + where + " ORDER BY id DESC")
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    names = _Names(app)
    out = []
    for seq, at, kind, actor_id, subject, action, allowed, rule, sealed, rkind, school in app.db.fetch(sql, params):
        out.append({
            "seq": seq, "at": at, "kind": kind, "actor_id": actor_id, "actor": names(actor_id), "subject": subject,
            "what": action, "version": None, "allowed": bool(allowed), "rule": rule, "resource_kind": rkind,
            "school_id": school,
            "break_glass": unseal_reason(app, sealed, at, actor_id, action, subject or None) if sealed else None,
        })
    return out


def break_glass_log(app: Core, actor: Actor, school_id: str | None = None) -> list[dict[str, Any]]:
    """Every break-glass access (with its stated reason), newest first."""
    where, params = _scope(app, actor, school_id)
    return _access_rows(app, "break_glass IS NOT NULL AND " + where, params)


def denied_log(app: Core, actor: Actor, school_id: str | None = None) -> list[dict[str, Any]]:
    """Every access the gate refused, newest first."""
    where, params = _scope(app, actor, school_id)
    return _access_rows(app, "allowed = 0 AND " + where, params)


def access_log(app: Core, actor: Actor, *, allowed: bool | None = None, limit: int = 1000) -> list[dict[str, Any]]:
    """Access decisions of the actor's district (about its schools, or by its people),
    newest first, in the shape `Core.access_log` has always returned."""
    where, params = _scope(app, actor, None)
    if allowed is not None:
        where += " AND allowed = ?"
        params += (1 if allowed else 0,)
    return [
        {"id": r["seq"], "at": r["at"], "actor_id": r["actor_id"], "action": r["what"],
         "resource_kind": r["resource_kind"], "resource_id": r["subject"] or None, "allowed": r["allowed"],
         "reason": r["rule"], "break_glass": r["break_glass"]}
        for r in _access_rows(app, where, params, limit)
    ]


EXPORTS = {
    "case-history": "full history of one case (--id CASE)",
    "student-access": "who accessed one student's records, and why (--id STUDENT)",
    "break-glass": "every break-glass access, with its reason",
    "denied": "every refused access",
}
CSV_COLUMNS = [
    ("seq", "序号"), ("at", "时间"), ("kind", "类别"), ("actor_id", "操作人ID"), ("actor", "操作人"),
    ("subject", "对象ID"), ("what", "事件/操作"), ("version", "版本"), ("allowed", "是否允许"),
    ("rule", "依据"), ("break_glass", "调阅理由"),
]


def query(app: Core, actor: Actor, what: str, id: str | None = None, school_id: str | None = None
          ) -> list[dict[str, Any]]:
    if what in ("case-history", "student-access") and not id:
        raise InvalidInput(reason=f"{what} 需要给出记录 id")
    if what == "case-history":
        return case_history(app, actor, str(id))
    if what == "student-access":
        return student_access(app, actor, str(id))
    if what == "break-glass":
        return break_glass_log(app, actor, school_id)
    if what == "denied":
        return denied_log(app, actor, school_id)
    raise InvalidInput(reason=f"未知的导出类别：{what}")


def export_csv(app: Core, actor: Actor, what: str, out: IO[str], id: str | None = None,
               school_id: str | None = None) -> int:
    """Write one supervisor query as CSV (through the gate); the export is itself an
    entry of the trail. Returns the number of rows written."""
    rows = query(app, actor, what, id, school_id)
    w = csv.writer(out)
    w.writerow([label for _, label in CSV_COLUMNS])
    for r in rows:
        w.writerow(["" if r.get(k) is None else ("是" if r[k] is True else "否" if r[k] is False else r[k])
                    for k, _ in CSV_COLUMNS])
    subject = id or school_id or f"district:{actor.district}"
    record(app, security_row(app, "export", actor.staff_id, str(subject), {"rows": len(rows), "what": what}))
    return len(rows)


__all__ = [
    "AuditKeyMissing", "Checkpoint", "Problem", "VerifyReport", "append", "append_events", "access_row",
    "security_row", "record", "take_checkpoint", "maybe_checkpoint", "verify", "case_history", "student_access",
    "break_glass_log", "denied_log", "access_log", "export_csv", "query", "create_signing_key", "load_signing_key",
    "load_public_key", "signing_key_path", "public_key_path", "login_subject", "entry_hash", "event_payload_hash",
    "checkpoint_message", "genesis_hash",
]
