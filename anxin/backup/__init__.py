"""`anxin backup` and `anxin restore`: a consistent copy of the store taken while other
processes write, and its restoration into a new, empty place.

SQLite: `VACUUM INTO` from the live database (one read snapshot; writers go on, WAL),
into a temporary file beside the target, checked, fsynced and linked into place (never
over an existing file). VACUUM rewrites rows, so free pages (a shredded key's old bytes
among them) are not carried into the copy. A manifest table in the copy records which
master keys (by id) its data keys need. PostgreSQL: `pg_dump -Fc` of the store's schema,
run on a snapshot exported by a transaction that also reads the manifest (written
beside the dump as FILE.manifest.json).

Neither holds a key: the master key and the audit signing key are files, never rows.
Restore checks the given master key against every live data key of the backup before it
writes anything, and refuses by key id.

The package: manifest.py (what a backup says of itself), keys.py (the key check before a
restore writes), files.py (files written whole), sqlite.py and postgres.py (each store's
backup and restore), verify.py (the restored store opened and verified).
"""

from __future__ import annotations

from pathlib import Path

from anxin.backup.files import _check_out
from anxin.backup.keys import BackupKeyRefused, check_keys, local_key_ids, needed_ids
from anxin.backup.manifest import (
    FORMAT_VERSION,
    MANIFEST_TABLE,
    PGDUMP_MAGIC,
    SQLITE_MAGIC,
    TARGET_MAY_HOLD,
    BackupError,
    Manifest,
    backup_kind,
)
from anxin.backup.postgres import _backup_postgres, _restore_postgres
from anxin.backup.sqlite import _backup_sqlite, _restore_sqlite, sqlite_file
from anxin.backup.verify import Restored
from anxin.storage import StoreConfig

__all__ = [
    "FORMAT_VERSION",
    "MANIFEST_TABLE",
    "PGDUMP_MAGIC",
    "SQLITE_MAGIC",
    "TARGET_MAY_HOLD",
    "BackupError",
    "BackupKeyRefused",
    "Manifest",
    "Restored",
    "backup",
    "backup_kind",
    "check_keys",
    "local_key_ids",
    "needed_ids",
    "restore",
    "sqlite_file",
]


def backup(config: StoreConfig, out: Path) -> tuple[Manifest, list[Path]]:
    """A consistent copy of the store at `out`; the manifest and the files written."""
    out = Path(out).absolute()
    _check_out(out)
    if config.is_postgres:
        return _backup_postgres(config, out)
    return _backup_sqlite(config, out), [out]


def restore(file: Path, config: StoreConfig) -> Restored:
    """Restore `file` into the store `config` names (a new data folder on SQLite; a
    database and schema on PostgreSQL), then open, decrypt and verify it."""
    file = Path(file).absolute()
    kind = backup_kind(file)
    if kind == "sqlite":
        return _restore_sqlite(file, config)
    if not config.is_postgres:
        raise BackupError(
            "这是 PostgreSQL 备份（pg_dump）：请用 --database-url（或 ANXIN_DATABASE_URL）指定要恢复到的数据库"
        )
    return _restore_postgres(file, config)
