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
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from cryptography.exceptions import InvalidTag

from anxin.crypto import KeyError_, MasterKey
from anxin.storage import StoreConfig

MANIFEST_TABLE = "anxin_backup_manifest"
FORMAT_VERSION = 1
SQLITE_MAGIC = b"SQLite format 3\x00"
PGDUMP_MAGIC = b"PGDMP"
# What a restore target folder may already hold: the keys and policy the operator put there.
TARGET_MAY_HOLD = {"master.key", "audit-signing.key", "audit-signing.pub", "policy.toml"}


class BackupError(Exception):
    """A backup or restore refused or failed; the message is for the operator."""


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


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _publish(tmp: Path, out: Path) -> None:
    """The finished temporary file under its name, never over an existing file (a hard
    link fails if the name is taken), then the folder fsynced."""
    try:
        os.link(tmp, out)
    except FileExistsError:
        raise BackupError(f"文件已存在，拒绝覆盖：{out}") from None
    except OSError:  # a file system without hard links: claim the name first, then replace
        try:
            os.close(os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except FileExistsError:
            raise BackupError(f"文件已存在，拒绝覆盖：{out}") from None
        os.replace(tmp, out)
    else:
        os.unlink(tmp)
    _fsync_path(out.parent)


def _temp_beside(out: Path) -> Path:
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)  # 0600
    os.close(fd)
    return Path(tmp)


def _remove(*paths: Path) -> None:
    for p in paths:
        for q in (p, Path(f"{p}-journal"), Path(f"{p}-wal"), Path(f"{p}-shm")):
            with suppress(FileNotFoundError):
                q.unlink()


def _check_out(out: Path) -> None:
    if out.exists():
        raise BackupError(f"文件已存在，拒绝覆盖：{out}")
    if not out.parent.is_dir():
        raise BackupError(f"目录不存在：{out.parent}")


def sqlite_file(config: StoreConfig) -> Path:
    if config.url and config.url.startswith("sqlite:///"):
        return Path(config.url[len("sqlite:///") :])
    return config.sqlite_path


def _audit_public_key(config: StoreConfig) -> str | None:
    """The audit trail's public key (not secret), so `audit verify` works after a restore."""
    from anxin import audit

    try:
        pub = audit.load_public_key(config)
    except Exception:  # noqa: BLE001 - a missing or unreadable key only leaves it out
        return None
    return audit.public_key_text(pub) if pub is not None else None


def local_key_ids(config: StoreConfig) -> list[str] | None:
    """Ids of the master keys this host holds for the store (None: none found). Only ids:
    the key itself never goes near the backup."""
    from anxin.service import load_master_keys

    try:
        return [k.kek_id for k in load_master_keys(config)]
    except (KeyError_, OSError, ValueError):
        return None


# -- backup ------------------------------------------------------------------------------
def backup(config: StoreConfig, out: Path) -> tuple[Manifest, list[Path]]:
    """A consistent copy of the store at `out`; the manifest and the files written."""
    out = Path(out).absolute()
    _check_out(out)
    if config.is_postgres:
        return _backup_postgres(config, out)
    return _backup_sqlite(config, out), [out]


def _sqlite_manifest(conn: sqlite3.Connection, config: StoreConfig) -> Manifest:
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
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
    tmp = _temp_beside(out)
    try:
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
            check = copy.execute("PRAGMA integrity_check").fetchall()
            if check != [("ok",)]:
                raise BackupError(f"备份副本未通过完整性检查：{check[0][0]}")
        finally:
            copy.close()
        _fsync_path(tmp)
        _publish(tmp, out)
    except sqlite3.Error as e:
        raise BackupError(f"备份失败：{e}") from e
    finally:
        _remove(tmp)
    return manifest


def _libpq(url: str) -> tuple[str, dict[str, str]]:
    """The URL without its password (which goes to the child's environment, not its
    command line, where `ps` would show it)."""
    u = urlparse(url)
    env = dict(os.environ)
    if u.password is not None:
        env["PGPASSWORD"] = unquote(u.password)
        host = u.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        netloc = f"{u.username or ''}@{host}" + (f":{u.port}" if u.port else "")
        url = u._replace(netloc=netloc).geturl()
    return url.replace("postgres://", "postgresql://", 1), env


def _pg_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise BackupError(f"找不到 {name}：请安装与数据库服务器同版本的 PostgreSQL 客户端工具")
    return path


def _pg_schema(config: StoreConfig) -> str:
    return config.schema or "public"


def _backup_postgres(config: StoreConfig, out: Path) -> tuple[Manifest, list[Path]]:
    import psycopg
    from psycopg import sql

    assert config.url
    schema = _pg_schema(config)
    side = out.with_name(out.name + ".manifest.json")
    _check_out(side)
    url, env = _libpq(config.url)
    tmp = _temp_beside(out)
    try:
        with psycopg.connect(config.url) as conn:
            # The dump and the manifest read one snapshot: this transaction exports it and
            # stays open until pg_dump has run on it.
            conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            conn.read_only = True
            snapshot = conn.execute("SELECT pg_export_snapshot()").fetchone()[0]

            def t(name: str) -> sql.Composed:
                return sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(name))

            def exists(name: str) -> bool:
                return conn.execute("SELECT to_regclass(%s)", (f'"{schema}"."{name}"',)).fetchone()[0] is not None

            if not exists("anxin_keys"):
                raise BackupError(f"schema {schema} 中没有安心的数据（没有 anxin_keys 表）")
            data_keys = dict(
                conn.execute(
                    sql.SQL("SELECT kek_id, COUNT(*) FROM {} WHERE wrapped IS NOT NULL GROUP BY kek_id").format(
                        t("anxin_keys")
                    )
                ).fetchall()
            )
            ring: list[dict[str, Any]] = []
            if exists("anxin_keyring"):
                cur = conn.execute(sql.SQL("SELECT * FROM {}").format(t("anxin_keyring")))
                cols = [d.name for d in cur.description or ()]
                ring = [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]
            events = 0
            for name in ("stored_events", "anxin_events"):
                if exists(name):
                    events = conn.execute(
                        sql.SQL("SELECT COALESCE(MAX(notification_id), 0) FROM {}").format(t(name))
                    ).fetchone()[0]
            head = (
                conn.execute(sql.SQL("SELECT COALESCE(MAX(seq), 0) FROM {}").format(t("anxin_audit"))).fetchone()[0]
                if exists("anxin_audit")
                else 0
            )
            manifest = Manifest(
                "postgres",
                _now(),
                {k: int(v) for k, v in data_keys.items()},
                ring,
                int(events),
                int(head),
                _audit_public_key(config),
                schema,
            )
            with open(tmp, "wb") as f:
                r = subprocess.run(
                    [
                        _pg_tool("pg_dump"),
                        "--format=custom",
                        f"--snapshot={snapshot}",
                        "--schema=" + '"' + schema.replace('"', '""') + '"',
                        "--no-owner",
                        "--no-privileges",
                        f"--dbname={url}",
                    ],
                    stdout=f,
                    stderr=subprocess.PIPE,
                    env=env,
                    text=False,
                    check=False,
                )
                if r.returncode != 0:
                    raise BackupError(f"pg_dump 失败：{r.stderr.decode(errors='replace').strip()}")
                f.flush()
                os.fsync(f.fileno())
            conn.rollback()
        _publish(tmp, out)
        side_tmp = _temp_beside(side)
        try:
            side_tmp.write_text(manifest.to_json() + "\n", encoding="utf-8")
            _fsync_path(side_tmp)
            _publish(side_tmp, side)
        finally:
            _remove(side_tmp)
    except psycopg.Error as e:
        raise BackupError(f"备份失败：{e}") from e
    finally:
        _remove(tmp)
    return manifest, [out, side]


# -- restore -----------------------------------------------------------------------------
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


def _read_only(path: Path) -> sqlite3.Connection:
    # immutable: nothing writes the backup file, and no lock or -shm file is made beside it
    return sqlite3.connect(path.as_uri() + "?mode=ro&immutable=1", uri=True)


def _restore_sqlite(file: Path, target: StoreConfig) -> Restored:
    from anxin.service import load_master_keys

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
            names = {r[0] for r in src.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if MANIFEST_TABLE not in names:
                raise BackupError(f"不是 `anxin backup` 生成的完整备份（缺少 {MANIFEST_TABLE}）：{file}")
            try:
                manifest = Manifest.from_json(
                    src.execute(f"SELECT value FROM {MANIFEST_TABLE} WHERE name = 'manifest'").fetchone()[0]
                )
            except (TypeError, ValueError) as e:
                raise BackupError(f"备份说明无法读取：{file}") from e
            check = src.execute("PRAGMA integrity_check").fetchall()
            if check != [("ok",)]:
                raise BackupError(f"备份文件已损坏（完整性检查：{check[0][0]}）：{file}")
            rows = src.execute("SELECT stream_id, wrapped, kek_id FROM anxin_keys WHERE wrapped IS NOT NULL").fetchall()
            ring = []
            if "anxin_keyring" in names:
                ring = [{"kek_id": r[0], "state": r[1]} for r in src.execute("SELECT kek_id, state FROM anxin_keyring")]
            needed = needed_ids(rows, ring)
            try:
                keys = load_master_keys(config)
            except KeyError_ as e:
                raise BackupKeyRefused(needed, [], str(folder / "master.key"), str(e)) from e
            damaged = check_keys(keys, iter(rows), needed, str(folder / "master.key"))
        finally:
            src.close()
    except sqlite3.Error as e:
        raise BackupError(f"备份文件无法读取：{e}") from e

    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    db = sqlite_file(config)
    tmp = _temp_beside(db)
    try:
        src = _read_only(file)
        dst = sqlite3.connect(str(tmp))
        try:
            src.backup(dst)
        finally:
            dst.close()
            src.close()
        _fsync_path(tmp)
        _publish(tmp, db)
    except sqlite3.Error as e:
        raise BackupError(f"恢复失败：{e}") from e
    finally:
        _remove(tmp)
    result = Restored(config, manifest, damaged_keys=damaged)
    _place_public_key(config, manifest, result)
    _open_and_verify(config, result, undo=lambda: _remove(db, Path(f"{db}.open-lock")))
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


def _open_and_verify(config: StoreConfig, result: Restored, undo: Any) -> None:
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


# PostgreSQL ----------------------------------------------------------------------------
def _copy_unescape(field_: str) -> str | None:
    """One field of COPY's text format."""
    if field_ == "\\N":
        return None
    if "\\" not in field_:
        return field_
    out, i = [], 0
    simple = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "\\": "\\"}
    while i < len(field_):
        ch = field_[i]
        if ch == "\\" and i + 1 < len(field_):
            nxt = field_[i + 1]
            out.append(simple.get(nxt, nxt))
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def _dump_rows(file: Path, table: str) -> Iterator[dict[str, str | None]]:
    """The rows of one table in the dump, read by pg_restore without restoring anything."""
    proc = subprocess.Popen(
        [_pg_tool("pg_restore"), "--data-only", f"--table={table}", "--file=-", str(file)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        encoding="utf-8",
    )
    assert proc.stdout is not None
    cols: list[str] | None = None
    try:
        for line in proc.stdout:
            line = line.rstrip("\n")
            if cols is None:
                if line.startswith("COPY ") and line.endswith(" FROM stdin;"):
                    cols = [c.strip() for c in line[line.index("(") + 1 : line.rindex(")")].split(",")]
                continue
            if line == "\\.":
                cols = None
                continue
            yield dict(zip(cols, map(_copy_unescape, line.split("\t")), strict=True))
    finally:
        proc.stdout.close()
        err = proc.stderr.read() if proc.stderr else ""
        if proc.wait() != 0:
            raise BackupError(f"pg_restore 无法读取备份：{err.strip()}")


def _dump_schema(file: Path) -> tuple[str, list[str]]:
    """The schema the dump holds the store in, and its table of contents."""
    r = subprocess.run([_pg_tool("pg_restore"), "--list", str(file)], capture_output=True, text=True, check=False)
    if r.returncode != 0:
        raise BackupError(f"pg_restore 无法读取备份：{r.stderr.strip()}")
    toc = r.stdout.splitlines()
    for line in toc:
        parts = line.split()
        # "260; 1259 81766 TABLE t_abc anxin_keys owner"
        if len(parts) >= 6 and parts[3] == "TABLE" and parts[5] == "anxin_keys":
            return parts[4], toc
    raise BackupError(f"不是安心的备份（没有 anxin_keys 表）：{file}")


def _restore_postgres(file: Path, config: StoreConfig) -> Restored:
    import psycopg
    from psycopg import sql

    from anxin.service import load_master_keys

    assert config.url
    schema, toc = _dump_schema(file)
    if config.schema and config.schema != schema:
        raise BackupError(
            f"备份中的数据在 schema {schema}，pg_restore 不能改名恢复：请恢复到一个新数据库中的同名 schema"
            f"（ANXIN_DATABASE_SCHEMA={schema}，或不设置 --schema）"
        )
    config = StoreConfig(
        url=config.url, data_dir=Path(config.data_dir).absolute(), schema=None if schema == "public" else schema
    )
    side = file.with_name(file.name + ".manifest.json")
    manifest = Manifest.from_json(side.read_text(encoding="utf-8")) if side.exists() else None

    # The key check, on the dump's own rows, before anything is written.
    ring = [r for r in _dump_rows(file, "anxin_keyring")] if any(" anxin_keyring " in line for line in toc) else []
    live: list[tuple[str, bytes, str]] = []
    for r in _dump_rows(file, "anxin_keys"):
        w = r.get("wrapped")
        if w is not None:  # bytea in COPY's text format: \x and hex digits
            live.append(
                (str(r["stream_id"]), bytes.fromhex(w[2:]) if w.startswith("\\x") else w.encode(), str(r["kek_id"]))
            )
    needed = needed_ids(live, ring)
    if manifest is None:
        counts: dict[str, int] = {}
        for _, _, kek in live:
            counts[kek] = counts.get(kek, 0) + 1
        manifest = Manifest("postgres", "", counts, ring, schema=schema)
    try:
        keys = load_master_keys(config)
    except KeyError_ as e:
        raise BackupKeyRefused(needed, [], why=str(e)) from e
    damaged = check_keys(keys, iter(live), needed)

    url, env = _libpq(config.url)
    created = False
    try:
        with psycopg.connect(config.url, autocommit=True) as conn:
            row = conn.execute("SELECT oid FROM pg_namespace WHERE nspname = %s", (schema,)).fetchone()
            if row is not None:
                n = conn.execute(
                    "SELECT (SELECT COUNT(*) FROM pg_class WHERE relnamespace = %(ns)s)"
                    " + (SELECT COUNT(*) FROM pg_proc WHERE pronamespace = %(ns)s)"
                    " + (SELECT COUNT(*) FROM pg_type WHERE typnamespace = %(ns)s)",
                    {"ns": row[0]},
                ).fetchone()[0]
                if n:
                    raise BackupError(f"目标数据库中的 schema {schema} 不是空的，拒绝恢复：请恢复到新的数据库")
            else:
                conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
                created = True
        # The schema itself is made above (it may be there already, empty): the rest from the dump.
        listing = [line for line in toc if not (" SCHEMA - " in line or " COMMENT - SCHEMA " in line)]
        with tempfile.NamedTemporaryFile("w", suffix=".list", delete=False) as lf:
            lf.write("\n".join(listing) + "\n")
        try:
            r = subprocess.run(
                [
                    _pg_tool("pg_restore"),
                    "--single-transaction",
                    "--exit-on-error",
                    "--no-owner",
                    "--no-privileges",
                    f"--use-list={lf.name}",
                    f"--dbname={url}",
                    str(file),
                ],
                capture_output=True,
                text=True,
                env=env,
                check=False,
            )
        finally:
            os.unlink(lf.name)
        if r.returncode != 0:
            raise BackupError(f"pg_restore 失败（未恢复任何数据）：{r.stderr.strip()}")
    except BaseException:
        if created:
            _pg_drop_schema(config.url, schema)
        raise
    result = Restored(config, manifest, damaged_keys=damaged)
    _place_public_key(config, manifest, result)

    def undo() -> None:
        if created:
            _pg_drop_schema(str(config.url), schema)

    _open_and_verify(config, result, undo)
    return result


def _pg_drop_schema(url: str, schema: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
