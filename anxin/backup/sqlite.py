"""SQLite: `VACUUM INTO` from the live database, and the copy restored into a new data folder."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from anxin.backup.files import _remove, _written_beside
from anxin.backup.keys import _check_given_keys, needed_ids
from anxin.backup.manifest import MANIFEST_TABLE, TARGET_MAY_HOLD, BackupError, Manifest, _audit_public_key, _now
from anxin.backup.verify import Restored, _restored
from anxin.storage import StoreConfig


def sqlite_file(config: StoreConfig) -> Path:
    if config.url and config.url.startswith("sqlite:///"):
        return Path(config.url[len("sqlite:///") :])
    return config.sqlite_path


def _tables(conn: sqlite3.Connection) -> set[str]:
    return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def _integrity_problem(conn: sqlite3.Connection) -> str | None:
    """SQLite's integrity check: None if the file is sound, else its first finding."""
    check = conn.execute("PRAGMA integrity_check").fetchall()
    return None if check == [("ok",)] else str(check[0][0])


def _sqlite_manifest(conn: sqlite3.Connection, config: StoreConfig) -> Manifest:
    tables = _tables(conn)
    if "anxin_keys" not in tables:
        raise BackupError("这不是安心的数据库（没有 anxin_keys 表）")
    data_keys = dict(
        conn.execute("SELECT kek_id, COUNT(*) FROM anxin_keys WHERE wrapped IS NOT NULL GROUP BY kek_id").fetchall()
    )
    ring: list[dict[str, Any]] = []
    if "anxin_keyring" in tables:
        cur = conn.execute("SELECT * FROM anxin_keyring")
        cols = [d[0] for d in cur.description]
        ring = [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]
    events = 0
    for t in ("stored_events", "anxin_events"):
        if t in tables:
            events = conn.execute(f"SELECT COALESCE(MAX(rowid), 0) FROM {t}").fetchone()[0]
    head = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM anxin_audit").fetchone()[0] if "anxin_audit" in tables else 0
    return Manifest("sqlite", _now(), data_keys, ring, int(events), int(head), _audit_public_key(config))


def _backup_sqlite(config: StoreConfig, out: Path) -> Manifest:
    src = sqlite_file(config)
    if not src.is_file():
        raise BackupError(f"找不到数据库：{src}")
    with _written_beside(out, (sqlite3.Error,), "备份失败") as tmp:
        source = sqlite3.connect(str(src), timeout=60)
        try:
            # One read transaction: the committed state at its start, whatever others write.
            source.execute("VACUUM INTO ?", (str(tmp),))
        finally:
            source.close()
        copy = sqlite3.connect(str(tmp))
        try:
            copy.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
            manifest = _sqlite_manifest(copy, config)
            with copy:
                copy.execute(f"DROP TABLE IF EXISTS {MANIFEST_TABLE}")  # one left by a restore
                copy.execute(f"CREATE TABLE {MANIFEST_TABLE} (name TEXT PRIMARY KEY, value TEXT NOT NULL)")
                copy.execute(f"INSERT INTO {MANIFEST_TABLE} VALUES ('manifest', ?)", (manifest.to_json(),))
            problem = _integrity_problem(copy)
            if problem is not None:
                raise BackupError(f"备份副本未通过完整性检查：{problem}")
        finally:
            copy.close()
    return manifest


def _read_only(path: Path) -> sqlite3.Connection:
    # immutable: nothing writes the backup file, and no lock or -shm file is made beside it
    return sqlite3.connect(path.as_uri() + "?mode=ro&immutable=1", uri=True)


def _restore_sqlite(file: Path, target: StoreConfig) -> Restored:
    config = StoreConfig(url=None, data_dir=Path(target.data_dir).absolute())
    folder = config.data_dir
    if folder.exists():
        if not folder.is_dir():
            raise BackupError(f"目标不是目录：{folder}")
        extra = sorted(p.name for p in folder.iterdir() if p.name not in TARGET_MAY_HOLD)
        if extra:
            raise BackupError(f"目标目录不是空的，拒绝恢复：{folder}（已有 {'、'.join(extra[:5])}）。请指定一个新目录")
    try:
        src = _read_only(file)
        try:
            names = _tables(src)
            if MANIFEST_TABLE not in names:
                raise BackupError(f"不是 `anxin backup` 生成的完整备份（缺少 {MANIFEST_TABLE}）：{file}")
            try:
                manifest = Manifest.from_json(
                    src.execute(f"SELECT value FROM {MANIFEST_TABLE} WHERE name = 'manifest'").fetchone()[0]
                )
            except (TypeError, ValueError) as e:
                raise BackupError(f"备份说明无法读取：{file}") from e
            problem = _integrity_problem(src)
            if problem is not None:
                raise BackupError(f"备份文件已损坏（完整性检查：{problem}）：{file}")
            rows = src.execute("SELECT stream_id, wrapped, kek_id FROM anxin_keys WHERE wrapped IS NOT NULL").fetchall()
            ring = []
            if "anxin_keyring" in names:
                ring = [{"kek_id": r[0], "state": r[1]} for r in src.execute("SELECT kek_id, state FROM anxin_keyring")]
            needed = needed_ids(rows, ring)
            damaged = _check_given_keys(config, rows, needed, str(folder / "master.key"))
        finally:
            src.close()
    except sqlite3.Error as e:
        raise BackupError(f"备份文件无法读取：{e}") from e

    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    db = sqlite_file(config)
    with _written_beside(db, (sqlite3.Error,), "恢复失败") as tmp:
        src = _read_only(file)
        dst = sqlite3.connect(str(tmp))
        try:
            src.backup(dst)
        finally:
            dst.close()
            src.close()
    return _restored(config, manifest, damaged, undo=lambda: _remove(db, Path(f"{db}.open-lock")))
