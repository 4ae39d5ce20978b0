"""What a backup says of itself: its kind, when, which master keys (by id) its data keys
need, how many events, the audit chain's head and public key. Kept in the SQLite copy's
manifest table, or beside a pg_dump as FILE.manifest.json."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from anxin.storage import StoreConfig

MANIFEST_TABLE = "anxin_backup_manifest"
FORMAT_VERSION = 1
SQLITE_MAGIC = b"SQLite format 3\x00"
PGDUMP_MAGIC = b"PGDMP"
# What a restore target folder may already hold: the keys and policy the operator put there.
TARGET_MAY_HOLD = {"master.key", "audit-signing.key", "audit-signing.pub", "policy.toml"}


class BackupError(Exception):
    """A backup or restore refused or failed; the message is for the operator."""


@dataclass
class Manifest:
    kind: str  # sqlite | postgres
    created_at: str
    data_keys: dict[str, int]  # live data keys per master-key id
    keyring: list[dict[str, Any]] = field(default_factory=list)
    events: int = 0
    audit_head: int = 0
    audit_public_key: str | None = None
    schema: str | None = None
    format: int = FORMAT_VERSION

    @property
    def current(self) -> str | None:
        return next((r["kek_id"] for r in self.keyring if r.get("state") == "current"), None)

    @property
    def needed(self) -> list[str]:
        """Every master key id a restore needs: those wrapping data keys, and the current one
        (new data keys are wrapped by it)."""
        ids = set(self.data_keys)
        if self.current:
            ids.add(self.current)
        return sorted(ids)

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, indent=2)

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        d = json.loads(text)
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})

    def describe_keys(self) -> str:
        parts = []
        for kid in self.needed:
            tag = "当前" if kid == self.current else ""
            n = self.data_keys.get(kid, 0)
            parts.append(f"{kid}（{tag + '，' if tag else ''}封装 {n} 个数据密钥）")
        return "、".join(parts) or "（无数据密钥）"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _audit_public_key(config: StoreConfig) -> str | None:
    """The audit trail's public key (not secret), so `audit verify` works after a restore."""
    from anxin import audit

    try:
        pub = audit.load_public_key(config)
    except Exception:  # noqa: BLE001 - a missing or unreadable key only leaves it out
        return None
    return audit.public_key_text(pub) if pub is not None else None


def backup_kind(path: Path) -> str:
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except FileNotFoundError:
        raise BackupError(f"找不到备份文件：{path}") from None
    if head == SQLITE_MAGIC:
        return "sqlite"
    if head.startswith(PGDUMP_MAGIC):
        return "postgres"
    raise BackupError(f"不是安心的备份文件（既不是 SQLite 数据库，也不是 pg_dump 自定义格式）：{path}")
