"""Signed checkpoints of the audit trail: the Ed25519 signing key (kept like the master
key), its public half for the supervisor, and taking a checkpoint of the chain's head."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from domain.common import InvalidInput

if TYPE_CHECKING:
    from anxin.core import Core
    from anxin.storage import StoreConfig
from anxin.audit.chain import (
    _HEAD,
    _STORE,
    CHECKPOINT_FORMAT,
    AuditKeyMissing,
    _insert,
    _lock_head,
    canonical_json,
    checkpoint_message,
    settle,
)


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
        return (
            json.dumps(
                {
                    "format": CHECKPOINT_FORMAT,
                    "store": self.store,
                    "seq": self.seq,
                    "entry_hash": self.entry_hash,
                    "at": self.at,
                    "key_id": self.key_id,
                    "public_key": self.public_key,
                    "signature": self.signature,
                },
                indent=2,
            )
            + "\n"
        )

    @classmethod
    def from_json(cls, text: str) -> Checkpoint:
        try:
            d = json.loads(text)
            if d.get("format") != CHECKPOINT_FORMAT:
                raise ValueError(d.get("format"))
            return cls(
                str(d["store"]),
                int(d["seq"]),
                str(d["entry_hash"]),
                str(d["at"]),
                str(d["key_id"]),
                str(d["public_key"]),
                str(d["signature"]),
            )
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


def maybe_checkpoint(
    app: Core, *, every_entries: int | None = None, every_seconds: float | None = None, actor_id: str = "system"
) -> Checkpoint | None:
    """A checkpoint if one is due: `every_entries` new entries, or `every_seconds` since
    the last one (by the application's clock). Nothing new since the last: none. Run by the
    server's background loop every few seconds, it first chains the entries recorded but not
    yet chained (PostgreSQL), so none waits longer than that."""
    if every_entries is None and every_seconds is None:
        raise ValueError("say how often: every_entries or every_seconds")
    settle(app)
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
