"""PostgreSQL: `pg_dump -Fc` of the store's schema on a snapshot that the manifest is read
from too, and its restoration into a database that has no such schema yet."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

from anxin.backup.files import _check_out, _publish, _remove, _temp_beside, _written_beside
from anxin.backup.keys import _check_given_keys, needed_ids
from anxin.backup.manifest import BackupError, Manifest, _audit_public_key, _now
from anxin.backup.verify import Restored, _restored
from anxin.storage import StoreConfig

if TYPE_CHECKING:
    from psycopg import Cursor


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


def _scalar(cur: Cursor[tuple[Any, ...]]) -> Any:
    """The one value of a query that always returns one row (an aggregate, a function)."""
    row = cur.fetchone()
    assert row is not None
    return row[0]


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
            snapshot = _scalar(conn.execute("SELECT pg_export_snapshot()"))

            def t(name: str) -> sql.Composed:
                return sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(name))

            def exists(name: str) -> bool:
                return _scalar(conn.execute("SELECT to_regclass(%s)", (f'"{schema}"."{name}"',))) is not None

            if not exists("anxin_keys"):
                raise BackupError(f"schema {schema} 中没有安心的数据（没有 anxin_keys 表）")
            data_keys: dict[str, int] = dict(
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
                    events = _scalar(
                        conn.execute(sql.SQL("SELECT COALESCE(MAX(notification_id), 0) FROM {}").format(t(name)))
                    )
            head = (
                _scalar(conn.execute(sql.SQL("SELECT COALESCE(MAX(seq), 0) FROM {}").format(t("anxin_audit"))))
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
        with _written_beside(side) as side_tmp:
            side_tmp.write_text(manifest.to_json() + "\n", encoding="utf-8")
    except psycopg.Error as e:
        raise BackupError(f"备份失败：{e}") from e
    finally:
        _remove(tmp)
    return manifest, [out, side]


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

    assert config.url
    db_url = config.url
    schema, toc = _dump_schema(file)
    if config.schema and config.schema != schema:
        raise BackupError(
            f"备份中的数据在 schema {schema}，pg_restore 不能改名恢复：请恢复到一个新数据库中的同名 schema"
            f"（ANXIN_DATABASE_SCHEMA={schema}，或不设置 --schema）"
        )
    config = StoreConfig(
        url=db_url, data_dir=Path(config.data_dir).absolute(), schema=None if schema == "public" else schema
    )
    side = file.with_name(file.name + ".manifest.json")
    manifest = Manifest.from_json(side.read_text(encoding="utf-8")) if side.exists() else None

    # The key check, on the dump's own rows, before anything is written.
    ring = [r for r in _dump_rows(file, "anxin_keyring")] if any(" anxin_keyring " in line for line in toc) else []
    live: list[tuple[str, bytes, str]] = []
    for key_row in _dump_rows(file, "anxin_keys"):
        w = key_row.get("wrapped")
        if w is not None:  # bytea in COPY's text format: \x and hex digits
            wrapped = bytes.fromhex(w[2:]) if w.startswith("\\x") else w.encode()
            live.append((str(key_row["stream_id"]), wrapped, str(key_row["kek_id"])))
    needed = needed_ids(live, ring)
    if manifest is None:
        counts: dict[str, int] = {}
        for _, _, kek in live:
            counts[kek] = counts.get(kek, 0) + 1
        manifest = Manifest("postgres", "", counts, ring, schema=schema)
    damaged = _check_given_keys(config, live, needed)

    url, env = _libpq(db_url)
    created = False
    try:
        with psycopg.connect(db_url, autocommit=True) as conn:
            row = conn.execute("SELECT oid FROM pg_namespace WHERE nspname = %s", (schema,)).fetchone()
            if row is not None:
                n = _scalar(
                    conn.execute(
                        "SELECT (SELECT COUNT(*) FROM pg_class WHERE relnamespace = %(ns)s)"
                        " + (SELECT COUNT(*) FROM pg_proc WHERE pronamespace = %(ns)s)"
                        " + (SELECT COUNT(*) FROM pg_type WHERE typnamespace = %(ns)s)",
                        {"ns": row[0]},
                    )
                )
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
            _pg_drop_schema(db_url, schema)
        raise

    def undo() -> None:
        if created:
            _pg_drop_schema(db_url, schema)

    return _restored(config, manifest, damaged, undo)


def _pg_drop_schema(url: str, schema: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
