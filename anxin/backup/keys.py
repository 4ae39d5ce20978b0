"""The master keys a backup needs, by id, checked against those given before a restore
writes anything. Neither a backup nor a restore ever holds a key itself."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from cryptography.exceptions import InvalidTag

from anxin.backup.manifest import BackupError
from anxin.crypto import KeyError_, MasterKey
from anxin.storage import StoreConfig


class BackupKeyRefused(KeyError_):
    """The master key given cannot open the backup: names the key ids it needs."""

    def __init__(self, needed: list[str], held: list[str], where: str = "", why: str = "") -> None:
        self.needed, self.held = needed, held
        hint = f"（或复制到 {where}）" if where else ""
        given = f"（{why}）" if why else f"，提供的主密钥编号为 {'、'.join(held) or '（无）'}"
        super().__init__(
            f"此备份需要主密钥编号 {'、'.join(needed)}{given}："
            f"请用 ANXIN_MASTER_KEY_FILE 指定备份时在用的密钥文件{hint}。未写入任何数据。"
        )


def local_key_ids(config: StoreConfig) -> list[str] | None:
    """Ids of the master keys this host holds for the store (None: none found). Only ids:
    the key itself never goes near the backup."""
    from anxin.service import load_master_keys

    try:
        return [k.kek_id for k in load_master_keys(config)]
    except (KeyError_, OSError, ValueError):
        return None


def needed_ids(rows: list[tuple[str, bytes, str]], ring: list[dict[str, Any]]) -> list[str]:
    """The master key ids a store needs: those wrapping its live data keys, and the one its
    key ring names current (new data keys are wrapped by it)."""
    return sorted({r[2] for r in rows} | {str(r["kek_id"]) for r in ring if r.get("state") == "current"})


def check_keys(
    keys: list[MasterKey], rows: Iterator[tuple[str, bytes, str]], needed: list[str], where: str = ""
) -> list[str]:
    """Every live data key of the backup unwrapped by the given keys, before anything is
    written. A key id not held refuses the restore; a row that does not unwrap under the
    key of its own id (ids are the key's hash, so that key is the right one) is damaged
    and named, and refuses only if no row of that key unwraps. The damaged stream ids."""
    held = {k.kek_id: k for k in keys}
    missing = [kid for kid in needed if kid not in held]
    if missing:
        raise BackupKeyRefused(needed, sorted(held), where)
    good: dict[str, int] = {}
    damaged: list[str] = []
    for stream_id, wrapped, kek_id in rows:
        kek = held.get(kek_id)
        if kek is None:
            raise BackupKeyRefused(sorted({*needed, kek_id}), sorted(held), where)
        try:
            kek.unwrap(stream_id, bytes(wrapped))
            good[kek_id] = good.get(kek_id, 0) + 1
        except InvalidTag:
            damaged.append(stream_id)
    if damaged and not good:
        raise BackupError(f"备份中的数据密钥都无法解开（{len(damaged)} 个）：备份已损坏")
    return damaged


def _check_given_keys(
    config: StoreConfig, rows: list[tuple[str, bytes, str]], needed: list[str], where: str = ""
) -> list[str]:
    """The master keys given for a restore (ANXIN_MASTER_KEY_FILE, ANXIN_MASTER_KEY, or the
    key file in the target folder) checked against every live data key of the backup
    (check_keys), before anything is written; refused by key id. The damaged stream ids."""
    from anxin.service import load_master_keys

    try:
        keys = load_master_keys(config)
    except KeyError_ as e:
        raise BackupKeyRefused(needed, [], where, str(e)) from e
    return check_keys(keys, iter(rows), needed, where)
