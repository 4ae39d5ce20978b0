"""`anxin check` and the readiness probe: is the store whole, can this process's master
key open it, does every record authenticate, is the audit chain intact, are the views
caught up, and which streams are quarantined. One line per finding, in Chinese; ids and
codes only, never content.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast
from uuid import UUID

from eventsourcing.persistence import StoredEvent

from anxin import quarantine
from anxin.crypto import INDEX_KEY_ID, KeyError_, StreamErased, StreamMapper, Tampered, stream_key

if TYPE_CHECKING:
    from anxin.core import Core
    from anxin.storage import StoreConfig
    from projections.base import Source

# How many events the views may be behind the log before the store counts as not ready
# (`/readyz`) or not healthy (`anxin check`). The server's background loop catches up
# every few seconds; a bulk import in another process may put them this far behind.
DEFAULT_MAX_LAG = 1000
BATCH = 5000
KIND_LABELS = {
    "student": "学生",
    "staff": "教职工",
    "case": "欺凌案件",
    "file": "心理档案",
    "screening": "心理筛查",
    "pairing": "一岗双带",
}
FAILED_LABELS = {"event": "事件未通过认证", "key": "数据密钥未通过认证", "snapshot": "快照未通过认证"}


def max_lag_from_env() -> int:
    try:
        return max(0, int(os.environ.get("ANXIN_READY_MAX_LAG", DEFAULT_MAX_LAG)))
    except ValueError:
        return DEFAULT_MAX_LAG


@dataclass(frozen=True)
class Finding:
    ok: bool
    text: str

    def line(self) -> str:
        return f"{'正常' if self.ok else '异常'}：{self.text}"


# -- the pieces -----------------------------------------------------------------------------
def database_integrity(config: StoreConfig) -> list[Finding]:
    """SQLite: `PRAGMA integrity_check`. PostgreSQL: every table of the store read to the
    end (a damaged page fails the read; with data checksums on, a flipped bit does), and
    with the amcheck extension installed, every B-tree index checked against its table."""
    if config.is_postgres:
        return _postgres_integrity(config)
    path = config.env()["SQLITE_DBNAME"]
    if not os.path.exists(path):
        return [Finding(False, f"找不到数据库文件：{path}")]
    try:
        conn = sqlite3.connect(path, timeout=30)
        try:
            rows = [r[0] for r in conn.execute("PRAGMA integrity_check")]
        finally:
            conn.close()
    except sqlite3.DatabaseError as e:
        return [Finding(False, f"数据库文件无法读取（{path}）：{e}")]
    if rows == ["ok"]:
        return [Finding(True, "数据库完整性检查通过（SQLite integrity_check）")]
    return [Finding(False, f"数据库完整性检查发现问题（SQLite integrity_check）：{r}") for r in rows[:20]]


def _postgres_integrity(config: StoreConfig) -> list[Finding]:
    import psycopg

    assert config.url
    out: list[Finding] = []
    try:
        conn = psycopg.connect(config.url, autocommit=True)
    except psycopg.Error as e:
        return [Finding(False, f"无法连接数据库：{type(e).__name__}")]
    with conn:
        schema = config.schema or conn.execute("SELECT current_schema()").fetchone()[0]  # type: ignore[index]
        tables = [
            r[0]
            for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = %s ORDER BY tablename", (schema,))
        ]
        bad = 0
        for t in tables:
            try:
                # A whole-row reference: every heap page is read (no index-only count).
                conn.execute(f'SELECT count(r) FROM "{schema}"."{t}" AS r').fetchone()
            except psycopg.Error as e:
                bad += 1
                out.append(Finding(False, f"数据表 {schema}.{t} 无法完整读取：{str(e).splitlines()[0]}"))
        has_amcheck = conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'amcheck'").fetchone() is not None
        checked = 0
        if has_amcheck:
            indexes = [
                r[0]
                for r in conn.execute(
                    "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                    "JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_am am ON am.oid = c.relam "
                    "WHERE n.nspname = %s AND am.amname = 'btree' ORDER BY c.relname",
                    (schema,),
                )
            ]
            for ix in indexes:
                try:
                    conn.execute("SELECT bt_index_check(%s::regclass)", (f'"{schema}"."{ix}"',))
                    checked += 1
                except psycopg.Error as e:
                    bad += 1
                    out.append(Finding(False, f"索引 {schema}.{ix} 校验失败（amcheck）：{str(e).splitlines()[0]}"))
    if not bad:
        how = f"，{checked} 个索引经 amcheck 校验" if has_amcheck else "（未安装 amcheck 扩展，索引未校验）"
        out.append(Finding(True, f"数据库 {len(tables)} 张表均可完整读取{how}（PostgreSQL）"))
    return out


def _held(app: Core, kek_id: str) -> bool:
    ks = app.keystore
    if kek_id in ks.keks:
        return True
    get = getattr(ks, "kek", None)  # reads the key file again (a rotation by another process)
    if get is None:
        return False
    try:
        get(kek_id)
        return True
    except KeyError_:
        return False


def key_problem(app: Core) -> str | None:
    """For the readiness probe, quickly: None when this process holds the store's current
    master key and every key that wraps a live data key, and the blind-index key opens;
    else a short code."""
    ks = app.keystore
    try:
        ks.master  # noqa: B018 (the store's current key, which this process must hold)
    except KeyError_:
        return "current_key_not_held"
    for (kek_id,) in app.db.fetch("SELECT DISTINCT kek_id FROM {t}anxin_keys WHERE wrapped IS NOT NULL"):
        if not _held(app, kek_id):
            return "key_not_held"
    row = app.db.fetch_key(INDEX_KEY_ID)
    if row is not None and row[0] is not None:
        try:
            ks._unwrap(INDEX_KEY_ID, row[0], row[1])
        except (Tampered, KeyError_):
            return "index_key_unreadable"
    return None


@dataclass
class Scan:
    """What a full pass over the keys, events and snapshots found (stream ids as hex)."""

    keys: int = 0
    events: int = 0
    snapshots: int = 0
    bad: dict[str, tuple[str, int]] | None = None  # stream -> (what failed, version)
    named: list[str] | None = None  # named keys that fail
    not_held: dict[str, int] | None = None  # master key id -> data keys it wraps
    unheld: set[str] | None = None  # streams whose key is wrapped by a master key not held


def scan(app: Core, progress: Callable[[str], None] | None = None) -> Scan:
    """Every live data key unwraps, every event and snapshot authenticates (each decrypted
    once; keys unwrapped together, events read in batches of the log)."""
    ks = app.keystore
    s = Scan(bad={}, named=[], not_held={}, unheld=set())
    assert s.bad is not None and s.named is not None and s.not_held is not None and s.unheld is not None
    every = app.db.all_keys()
    rows = [r for r in every if r[1] is not None]
    erased = {r[0] for r in every if r[1] is None}  # shredded: nothing left to authenticate
    held = {k: _held(app, k) for k in {r[2] for r in rows}}
    for sid, wrapped, kek_id in rows:
        if not held[kek_id]:
            s.not_held[kek_id] = s.not_held.get(kek_id, 0) + 1
            s.unheld.add(sid)
            continue
        try:
            ks._unwrap(sid, wrapped, kek_id)  # type: ignore[arg-type]
            s.keys += 1
        except Tampered:
            if quarantine.stream_uuid(sid) is None:
                s.named.append(sid)
            else:
                s.bad[sid] = ("key", 0)
    if progress:
        progress("keys")
    try:
        ks.preload()  # (a key that fails is left out: its stream is already in `bad`)
    except KeyError_:
        pass
    pos = 1
    while True:
        notes = app.recorder.select_notifications(start=pos, limit=BATCH)
        if not notes:
            break
        for n in notes:
            sid = stream_key(n.originator_id)
            if sid in s.bad or sid in s.unheld or sid in erased:
                continue
            try:
                cast(StreamMapper, app.mapper).decrypt_state(n)  # type: ignore[attr-defined]
                s.events += 1
            except StreamErased:
                pass
            except Tampered as e:
                s.bad[sid] = ("key", 0) if e.version == 0 else ("event", n.originator_version)
            except KeyError_:
                s.unheld.add(sid)
        pos = notes[-1].id + 1
    if progress:
        progress("events")
    _scan_snapshots(app, s)
    return s


def _scan_snapshots(app: Core, s: Scan) -> None:
    assert s.bad is not None and s.unheld is not None
    if app.snapshots is None:
        return
    table = app.db.t(app.snapshots.recorder.events_table_name)  # type: ignore[attr-defined]
    after: tuple[Any, int] | None = None
    while True:
        sql = f"SELECT originator_id, originator_version, topic, state FROM {table}"
        params: tuple[Any, ...] = ()
        if after is not None:
            sql += " WHERE originator_id > ? OR (originator_id = ? AND originator_version > ?)"
            params = (after[0], after[0], after[1])
        rows = app.db.fetch(sql + f" ORDER BY originator_id, originator_version LIMIT {BATCH}", params)
        if not rows:
            return
        for oid, version, topic, state in rows:
            uid = oid if isinstance(oid, UUID) else UUID(str(oid))
            sid = uid.hex
            if sid in s.bad or sid in s.unheld:
                continue
            try:
                cast(StreamMapper, app.mapper).decrypt_state(
                    StoredEvent(
                        originator_id=uid,
                        originator_version=version,  # type: ignore[attr-defined]
                        topic=topic,
                        state=bytes(state),
                    )
                )
                s.snapshots += 1
            except StreamErased:
                pass
            except Tampered as e:
                s.bad[sid] = ("key", 0) if e.version == 0 else ("snapshot", version)
            except KeyError_:
                s.unheld.add(sid)
        after = (rows[-1][0], rows[-1][1])


def view_lag(app: Core) -> tuple[int, dict[str, int]] | None:
    """(the log's head, each view's position), or None if the views were never set up."""
    head = app.recorder.max_notification_id() or 0
    try:
        rows = app.db.fetch("SELECT view, position FROM {t}view_tracking")
    except Exception:
        return None
    positions = {str(r[0]): int(r[1]) for r in rows}
    try:
        from projections import all_views

        # Only the views' names are read: a bare core (no views of its own) serves as their source.
        names = [v.name for v in all_views(cast("Source", app))]
        positions = {n: positions.get(n, 0) for n in names}
    except Exception:  # (a store opened without a key: every view that has a position)
        pass
    return head, positions


def describe(app: Core, stream_id: str) -> str:
    """A stream for an operator: its id, kind and school (ids and codes only)."""
    sid = quarantine.stream_uuid(stream_id) or stream_id
    row = app.db.fetchone(
        "SELECT d.kind, d.school_id, s.name FROM {t}anxin_directory d LEFT JOIN {t}anxin_schools s "
        "ON s.school_id = d.school_id WHERE d.stream_id = ?",
        (sid,),
    )
    if row is None:
        return f"记录 {sid}（目录中没有这条记录）"
    kind = KIND_LABELS.get(row[0], row[0])
    school = f"学校「{row[2]}」{row[1]}" if row[1] else "不属于任何学校"
    return f"记录 {sid}（{kind}，{school}）"


# -- `anxin check` --------------------------------------------------------------------------
def check(config: StoreConfig, *, max_lag: int | None = None, out: Callable[[str], None] = print) -> int:
    """Every check, one line per finding; 0 only when everything is healthy, else 2."""
    from anxin import audit
    from anxin.core import Core
    from anxin.service import load_master_keys

    max_lag = max_lag_from_env() if max_lag is None else max_lag
    findings: list[Finding] = []

    def say(f: Finding) -> None:
        findings.append(f)
        out(f.line())

    for f in database_integrity(config):
        say(f)
    keys: list[Any] = []
    try:
        keys = load_master_keys(config)
    except (KeyError_, OSError, ValueError) as e:
        say(Finding(False, f"主密钥无法读取：{e}"))
    app: Core | None = None
    keyless = not keys
    try:
        if keys:
            try:
                app = Core(config, keys, key_source=lambda: load_master_keys(config))
            except KeyError_ as e:
                say(Finding(False, f"主密钥检查未通过：{e}"))
                keyless = True
        if app is None:
            app = Core(config, [])  # a reader that decrypts nothing: the chain and the views
    except Exception as e:
        say(Finding(False, f"无法打开数据存储：{type(e).__name__}: {e}"))
        return _verdict(findings, out)
    try:
        if not keyless:
            _check_records(app, say)
        report = audit.verify(app)
        say(Finding(report.ok, report.summary().splitlines()[0]))
        lag = view_lag(app)
        if lag is None:
            say(Finding(False, "视图尚未建立：请运行 `anxin projections rebuild`"))
        else:
            head, positions = lag
            behind = {v: head - p for v, p in positions.items() if head - p > max_lag}
            for v, n in sorted(behind.items()):
                say(Finding(False, f"视图 {v} 落后日志 {n} 个事件（位置 {positions[v]}，日志 {head}；上限 {max_lag}）"))
            if not behind:
                most = max((head - p for p in positions.values()), default=0)
                say(
                    Finding(
                        True, f"视图 {len(positions)} 个已追上日志（最多落后 {max(most, 0)} 个事件，上限 {max_lag}）"
                    )
                )
    finally:
        app.close()
    return _verdict(findings, out)


def _check_records(app: Core, say: Callable[[Finding], None]) -> None:
    started = time.perf_counter()
    s = scan(app)
    assert s.bad is not None and s.named is not None and s.not_held is not None
    for kek_id, n in sorted(s.not_held.items()):
        say(Finding(False, f"{n} 个数据密钥由本进程没有的主密钥（编号 {kek_id}）封装：请放置含该密钥的密钥文件"))
    for key_id in s.named:
        say(
            Finding(
                False,
                f"命名密钥 {key_id} 未通过认证（被改动）：依赖它的功能无法使用，请从备份恢复 anxin_keys 中的这一行",
            )
        )
    tampered = s.bad
    for sid, (failed, version) in sorted(tampered.items()):
        quarantine.record(app, sid, version, failed)
    listed = {q.stream_id: q for q in quarantine.listed(app)}
    found = {quarantine.stream_uuid(sid) for sid in tampered}
    restored = sorted(set(listed) - found)
    quarantine.release(app, restored)
    for sid in restored:
        say(
            Finding(
                True,
                f"{describe(app, sid)}已能通过认证（已从备份恢复？），解除隔离；请运行 `anxin projections rebuild`",
            )
        )
    for sid, (failed, version) in sorted(tampered.items()):
        q = listed.get(quarantine.stream_uuid(sid) or "")
        where = f"第 {version} 版" if failed != "key" else ""
        since = f"，{q.found_at} 起隔离" if q else "，已隔离"
        say(
            Finding(
                False,
                f"{describe(app, sid)}：{where}{FAILED_LABELS[failed]}{since}；其余记录不受影响，请从备份恢复该记录",
            )
        )
    if not s.not_held and not s.named:
        say(
            Finding(
                True,
                f"数据密钥 {s.keys} 个均可用主密钥解开"
                + (
                    f"（另有 {sum(1 for v in tampered.values() if v[0] == 'key')} 个未通过认证，见上）"
                    if any(v[0] == "key" for v in tampered.values())
                    else ""
                ),
            )
        )
    say(
        Finding(
            not tampered,
            f"事件 {s.events} 个、快照 {s.snapshots} 个通过认证"
            + (f"；{len(tampered)} 条记录未通过认证，已隔离（见上）" if tampered else "")
            + f"（用时 {time.perf_counter() - started:.1f} 秒）",
        )
    )


def _verdict(findings: list[Finding], out: Callable[[str], None]) -> int:
    problems = sum(1 for f in findings if not f.ok)
    out("结论：健康" if not problems else f"结论：发现 {problems} 个问题")
    return 0 if not problems else 2


# -- the readiness probe --------------------------------------------------------------------
KEY_CHECK_SECONDS = 10.0


def readiness(app: Any, max_lag: int | None = None) -> tuple[bool, dict[str, Any]]:
    """(ready, what was checked): the store answers, the key check passes (its result kept
    for KEY_CHECK_SECONDS), the views are within `max_lag` events of the log. Counts and
    codes only."""
    max_lag = max_lag_from_env() if max_lag is None else max_lag
    checks: dict[str, Any] = {}
    try:
        app.db.fetch("SELECT 1")
        head = app.recorder.max_notification_id() or 0
        checks["store"] = "ok"
    except Exception:
        checks["store"] = "unavailable"
        return False, checks
    now = time.monotonic()
    cached = app.__dict__.get("_ready_key_check")
    if cached is None or now - cached[0] > KEY_CHECK_SECONDS:
        try:
            problem = key_problem(app)
        except Exception:
            problem = "key_check_failed"
        cached = app.__dict__["_ready_key_check"] = (now, problem)
    checks["keys"] = cached[1] or "ok"
    try:
        positions = app.views.positions()
        names = list(app.views.by_name)
        lag = max((head - positions.get(n, 0) for n in names), default=0)
        checks["views"] = {"lag": max(lag, 0), "max_lag": max_lag}
        views_ok = lag <= max_lag
    except Exception:
        checks["views"] = "unavailable"
        views_ok = False
    try:
        checks["quarantined"] = quarantine.count(app)
    except Exception:
        checks["quarantined"] = None
    return checks["keys"] == "ok" and views_ok, checks


__all__ = ["check", "readiness", "scan", "describe", "key_problem", "database_integrity", "DEFAULT_MAX_LAG"]
