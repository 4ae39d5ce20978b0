"""A restored store opened, every event decrypted, the audit trail verified."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from anxin.backup.manifest import Manifest
from anxin.crypto import KeyError_
from anxin.storage import StoreConfig


@dataclass
class Restored:
    config: StoreConfig
    manifest: Manifest | None
    events: int = 0
    erased: int = 0
    damaged_keys: list[str] = field(default_factory=list)
    audit_summary: str = ""
    ok: bool = False
    notes: list[str] = field(default_factory=list)


def _restored(config: StoreConfig, manifest: Manifest | None, damaged: list[str], undo: Callable[[], None]) -> Restored:
    """A restore's result: the audit public key put in place, then the restored store
    opened, decrypted and verified (undo: a key refused at open undoes the restore)."""
    result = Restored(config, manifest, damaged_keys=damaged)
    _place_public_key(config, manifest, result)
    _open_and_verify(config, result, undo)
    return result


def _place_public_key(config: StoreConfig, manifest: Manifest | None, result: Restored) -> None:
    """The audit public key from the manifest, where `audit verify` looks for it, if none is
    there and that place is inside the restored folder."""
    from anxin import audit

    if manifest is None or not manifest.audit_public_key:
        return
    path = audit.public_key_path(config)
    if path.exists() or audit.signing_key_path(config).exists():
        return
    if path.parent.absolute() != Path(config.data_dir).absolute():
        result.notes.append(f"审计公钥（备份时）：{manifest.audit_public_key}")
        return
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.write_text(manifest.audit_public_key + "\n", encoding="ascii")
    result.notes.append(f"已写入审计公钥 {path}（签名密钥不在备份中：需要签检查点时请放回 audit-signing.key）")


def _open_and_verify(config: StoreConfig, result: Restored, undo: Callable[[], None]) -> None:
    """Open the restored store (the key check at open), read every event decrypted, verify
    the audit trail. A key refused at open undoes the restore (nothing was usable)."""
    from anxin import audit
    from anxin.core import Tampered
    from anxin.service import open_app

    try:
        app = open_app(config)
    except KeyError_:
        undo()
        raise
    try:
        try:
            for _, event in app.decrypt_log():
                result.events += 1
                result.erased += event is None
        except Tampered as e:
            result.audit_summary = f"事件无法解密：{e}"
            return
        pub = None
        if result.manifest and result.manifest.audit_public_key:
            pub = audit.parse_public_key(result.manifest.audit_public_key)
        report = audit.verify(app, public_key=audit.load_public_key(config) or pub)
        result.audit_summary = report.summary()
        result.ok = report.ok and not result.damaged_keys
    finally:
        app.close()
