"""The `anxin` command. Every subcommand takes `--data-dir DIR` (default ./var), or
reads ANXIN_DATABASE_URL and ANXIN_MASTER_KEY_FILE from the environment.

The command line is run by whoever holds the master key: it acts as the system
administrator, through the same gate as everyone else (so it never sees case content).
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import os
import sys
import time
from collections.abc import Callable, Sequence
from datetime import date
from pathlib import Path
from typing import Any

from eventsourcing.persistence import PersistenceError

from anxin.crypto import KeyError_, MasterKeyFile, Tampered
from anxin.errors import store_problem
from anxin.storage import StoreConfig, config_from_env
from domain.common import Actor, DomainError, Erased, Role

CLI_ACTOR = Actor("cli", frozenset({Role.ADMINISTRATOR}))


class CLIError(Exception):
    pass


def _config(args: argparse.Namespace) -> StoreConfig:
    return config_from_env(args.data_dir)


def _open(args: argparse.Namespace) -> Any:
    from anxin.service import open_app

    return open_app(_config(args))


def _key_file(config: StoreConfig) -> MasterKeyFile:
    from anxin.service import master_key_file

    return master_key_file(config)


def _progress(label: str) -> Callable[[int, int], None]:
    def show(done: int, total: int) -> None:
        if total < 1000 or not sys.stderr.isatty() and done not in (0, total):
            return
        width = 30
        filled = int(width * done / max(total, 1))
        sys.stderr.write(f"\r{label} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
        if done >= total:
            sys.stderr.write("\n")
        sys.stderr.flush()

    return show


def _school(app: Any, name: str) -> str:
    sid = app.roster.school_id(name, missing_ok=True)
    if sid is None:
        raise CLIError(f'找不到学校「{name}」。可先运行：anxin school add "{name}"')
    return str(sid)


def _redact(url: str | None) -> str:
    """A database URL fit to print: the password masked."""
    userinfo, at, host = (url or "").partition("://")[2].partition("/")[0].rpartition("@")
    if not at or ":" not in userinfo:
        return url or ""
    return (url or "").replace(f"{userinfo}@{host}", f"{userinfo.split(':', 1)[0]}:***@{host}", 1)


# -- subcommands -------------------------------------------------------------------
def cmd_init(args: argparse.Namespace) -> int:
    config = _config(args)
    keyfile = _key_file(config)
    if keyfile.exists() or os.environ.get("ANXIN_MASTER_KEY"):
        if args.if_missing:
            _open(args).close()
            print(f"已初始化，主密钥位于 {keyfile.path}")
            _ensure_audit_key(config)
            return 0
        raise CLIError(f"主密钥已存在，拒绝覆盖：{keyfile.path}")
    keyfile.create()
    try:
        app = _open(args)
    except KeyError_ as e:
        # A store set up with another master key: the new key opens none of it, and the
        # key check at open wrote nothing. Take the new file back rather than pretend.
        keyfile.path.unlink()
        raise CLIError(
            "数据库中已有用另一把主密钥加密的数据，拒绝创建新的主密钥：请找回原来的密钥文件"
            f"（放在数据目录中，或用 ANXIN_MASTER_KEY_FILE 指定）。{e}"
        ) from None
    app.close()
    where = _redact(config.url) if config.is_postgres else config.sqlite_path
    print(f"已创建主密钥 {keyfile.path}（权限 0600，请妥善备份，切勿提交到 git）")
    print(f"数据存储：{where}")
    _ensure_audit_key(config)
    return 0


def _ensure_audit_key(config: StoreConfig) -> None:
    """The audit trail's Ed25519 signing key, kept like the master key; its public half
    is printed for the supervisor, who keeps it outside the system."""
    from anxin import audit

    path = audit.signing_key_path(config)
    if path.exists():
        return
    pub = audit.create_signing_key(config)
    print(f"已创建审计签名密钥 {path}（权限 0600，与主密钥一样妥善保管）")
    print(f"审计公钥（交给督导在系统之外保存，用于核验检查点；另存于 {audit.public_key_path(config)}）：")
    print(f"  {audit.public_key_text(pub)}")


def cmd_school_add(args: argparse.Namespace) -> int:
    app = _open(args)
    sid = app.roster.add_school(CLI_ACTOR, args.name, args.district)
    print(f"已添加学校「{args.name}」({sid})")
    return 0


def cmd_school_list(args: argparse.Namespace) -> int:
    app = _open(args)
    for sid, name, district in app.schools():
        print(f"{name}\t{district}\t{sid}")
    return 0


def cmd_roster_import(args: argparse.Namespace) -> int:
    from anxin.roster_import import ImportRejected, import_roster

    app = _open(args)
    school_id = _school(app, args.school)
    try:
        text = Path(args.file).read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise CLIError(f"文件不是 UTF-8 编码：{args.file}") from e
    except OSError as e:
        raise CLIError(f"无法读取文件：{e}") from e
    try:
        result = import_roster(app, CLI_ACTOR, school_id, text, progress=_progress("导入"))
    except ImportRejected as e:
        print(e.report(), file=sys.stderr)
        return 2
    print(f"已导入 {result.imported} 名学生到「{args.school}」")
    return 0


def cmd_roster_list(args: argparse.Namespace) -> int:
    app = _open(args)
    school_id = _school(app, args.school)
    for ref in app.roster.list_students(CLI_ACTOR, school_id):
        if ref.erased:
            print(f"{'-':<12}\t已删除 (erased)\t{ref.class_name or ''}")
        elif ref.unreadable:  # quarantined: its id, for `anxin check`
            print(f"{'-':<12}\t无法读取 (unreadable)\t{ref.class_name or ''}\t{ref.id}")
        else:
            print(f"{ref.student_no:<12}\t{ref.name}\t{ref.class_name}")
    return 0


def cmd_user_add(args: argparse.Namespace) -> int:
    from anxin.passwords import hash_password

    app = _open(args)
    school_id = _school(app, args.school) if args.school else None
    password = args.password or getpass.getpass("密码：")
    try:
        pw_hash = hash_password(password)
    except ValueError as e:
        raise CLIError(str(e)) from e
    staff_id = app.roster.add_staff(
        CLI_ACTOR,
        username=args.username,
        name=args.name,
        school_id=school_id,
        roles=args.role,
        classes=args.class_,
        password_hash=pw_hash,
        district=args.district,
    )
    print(f"已添加用户 {args.username}（{', '.join(Role(r).label for r in args.role)}）{staff_id}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from anxin.demo import DEMO_PASSWORD, HALF_DEMO, demo_state, load_demo, store_is_empty

    app = _open(args)
    state = demo_state(app)
    if state == "loading" and not store_is_empty(app):
        raise CLIError(HALF_DEMO)  # with --if-empty too: `make run` must not serve half a demo
    if args.if_empty and (state == "complete" or app.schools()):
        print("演示数据已存在，跳过。")
        return 0
    if app.schools():
        raise CLIError("数据库中已有学校，演示数据只能载入空库（使用 --if-empty 跳过）")
    try:
        summary = load_demo(
            app, password=args.password or DEMO_PASSWORD, seed=args.seed, students_per_school=args.students
        )
    except Exception as e:
        try:
            empty = store_is_empty(app)
        except Exception:  # noqa: BLE001 - the store may be what failed
            empty = False
        if empty:
            raise  # nothing was written: the error alone says it
        why = store_problem(e, _where(args)) or (e.text if isinstance(e, DomainError) else None)
        if why is None:  # not the store's fault: a bug, whose traceback helps
            print(f"错误：载入演示数据失败。{HALF_DEMO}", file=sys.stderr)
            raise
        raise CLIError(f"载入演示数据失败：{why}。{HALF_DEMO}") from e
    print(summary)
    return 0


def cmd_summary(args: argparse.Namespace) -> int:
    from anxin.demo import (
        DEMO_PASSWORD,
        DEMO_USERS,
        HALF_DEMO,
        demo_state,
        directory_counts,
        store_is_empty,
    )

    app = _open(args)
    print("安心 Anxin —— 数据概况")
    if demo_state(app) == "loading" and not store_is_empty(app):
        print(f"注意：{HALF_DEMO}")
    students, counts = directory_counts(app)
    for sid, name, district in app.schools():
        print(f"  {name}（{district}）：学生 {students.get(sid, 0)} 名")
    print("  " + "，".join(f"{k} {v}" for k, v in sorted(counts.items())))
    print(f"演示账号（默认密码 {DEMO_PASSWORD}，除非载入时用 --password 另行指定）：")
    for username, label in DEMO_USERS:
        print(f"  {username:<12} {label}")
    return 0


def cmd_shred(args: argparse.Namespace) -> int:
    app = _open(args)
    if args.student:
        if not args.school:
            raise CLIError("--student 需要同时给出 --school")
        school_id = _school(app, args.school)
        stream_id = str(app.roster.student_id_for(school_id, args.student))
        what = f"学生 {args.student}（{args.school}）的身份信息"
    else:
        stream_id = args.stream
        what = f"记录 {stream_id}"
    plan = app.erasure.plan(CLI_ACTOR, stream_id)
    if not plan.destroyed:
        raise Erased()
    _print_erasure(plan)
    if not args.yes:
        if not sys.stdin.isatty():
            raise CLIError("需要确认：请加 --yes，或在终端中运行")
        answer = input(f"将永久销毁{what}及上列记录的密钥，无法恢复。输入 yes 确认：")
        if answer.strip().lower() != "yes":
            print("已取消。")
            return 1
    done = app.erasure.erase(CLI_ACTOR, stream_id, args.reason)
    if done.erased:
        print(f"{what}此前已删除；已销毁其余 {len(done.destroyed)} 条该生独有记录的密钥，其内容已不可读。")
    else:
        print(f"已销毁{what}的密钥（{done.kind}），其内容已不可读。")
        if len(done.destroyed) > 1:
            print(f"同时销毁该生独有的 {len(done.destroyed) - 1} 条记录的密钥（一岗双带结对、心理档案、心理筛查）。")
    if done.kept:
        print(f"保留 {len(done.kept)} 条涉及其他学生的共享记录（见上），其中该生的部分仍在。")
    return 0


def _print_erasure(plan: Any) -> None:
    """What a shred destroys and what it leaves, by id and kind (no content)."""
    from anxin.commands.erasure import SHARED_REMAINS
    from domain.bullying import PARTS, STATUS_LABELS

    print(f"将销毁以下 {len(plan.destroyed)} 条记录的密钥（所有进程中立即不可读，无法恢复）：")
    for item in plan.destroyed:
        print(f"  {item.label}\t{item.stream_id}")
    if plan.kept:
        print(f"以下 {len(plan.kept)} 条共享记录涉及其他学生，不会删除：")
        for item in plan.kept:
            status = STATUS_LABELS.get(item.status or "", item.status or "")
            parts = "、".join(PARTS.get(p, p) for p in item.parts)
            print(f"  {item.label}\t{item.stream_id}\t{status}\t该生身份：{parts}")
        print(f"  说明：{SHARED_REMAINS}。如需删除整个案件，请用 anxin shred --stream 案件编号。")


def _rotation_key_file(config: StoreConfig) -> MasterKeyFile:
    if os.environ.get("ANXIN_MASTER_KEY"):
        raise CLIError("主密钥来自环境变量 ANXIN_MASTER_KEY：请改用密钥文件（ANXIN_MASTER_KEY_FILE）后再轮换")
    return _key_file(config)


def cmd_keys_rotate(args: argparse.Namespace) -> int:
    """Rotate the master key, or finish a rotation that was interrupted (anxin.keyring)."""
    keyfile = _rotation_key_file(_config(args))
    app = _open(args)
    r = app.rotate_master_key(CLI_ACTOR, key_file=keyfile)
    from anxin import keyring

    st = keyring.status(app, keyfile)
    print(f"已轮换主密钥：当前主密钥编号 {st.current}；重新封装 {r} 个数据密钥（事件未改写）。")
    print(f"密钥文件 {keyfile.path} 现只含：{'、'.join(st.file_ids or [])}。多台服务器请把它复制到每台服务器。")
    return 0


def cmd_keys_add(args: argparse.Namespace) -> int:
    """Step 1 of a rotation on several hosts: a new key in the key file, not used yet."""
    from anxin import keyring

    keyfile = _rotation_key_file(_config(args))
    key = keyring.prepare(keyfile)
    print(f"已在 {keyfile.path} 中加入新主密钥（编号 {key.kek_id}），尚未启用。")
    print("请把该密钥文件复制到每台运行 anxin 的服务器，然后在任一台运行 `anxin keys rotate`。")
    return 0


def cmd_keys_status(args: argparse.Namespace) -> int:
    """The key ring: ids, how many data keys each wraps, a rotation in progress."""
    from anxin import keyring

    config = _config(args)
    keyfile = None if os.environ.get("ANXIN_MASTER_KEY") else _key_file(config)
    app = _open(args)
    st = keyring.status(app, keyfile)
    names = {"current": "当前", "previous": "待退役", "retired": "已退役"}
    print(f"当前主密钥：{st.current}")
    for k in st.keys:
        where = "在密钥文件中" if k["in_file"] else "不在密钥文件中"
        print(f"  {k['id']}  {names.get(k['state'], k['state'])}  封装 {k['data_keys']} 个数据密钥  {where}")
    for kid in st.prepared:
        print(f"  {kid}  已加入密钥文件，尚未启用（`anxin keys rotate` 将启用它）")
    if st.in_progress:
        print("有一次轮换尚未完成：运行 `anxin keys rotate` 即可继续完成。")
        return 3
    print("没有进行中的轮换。")
    return 0


def cmd_audit_checkpoint(args: argparse.Namespace) -> int:
    app = _open(args)
    cp = app.checkpoint(CLI_ACTOR.staff_id)
    if not args.out:
        sys.stdout.write(cp.to_json())
        return 0
    with open(args.out, "x", encoding="utf-8") as f:  # never overwrite a kept checkpoint
        f.write(cp.to_json())
    print(f"已签名审计检查点：seq {cp.seq}，链头 {cp.entry_hash}")
    print(f"已写入 {args.out}：请交给督导，在系统之外保存")
    return 0


def cmd_audit_verify(args: argparse.Namespace) -> int:
    from anxin import audit

    app = _open(args)
    report = audit.verify(app, checkpoint=args.checkpoint)
    print(report.summary())
    rate = report.entries / report.seconds if report.ok and report.seconds else 0
    if rate:
        print(f"用时 {report.seconds:.2f} 秒（每秒 {rate:,.0f} 条）")
    return 0 if report.ok else 2


def cmd_audit_export(args: argparse.Namespace) -> int:
    import io

    from anxin import audit

    app = _open(args)
    account = app.accounts.account(args.as_user)
    if account is None:
        raise CLIError(f"找不到账号「{args.as_user}」（或已停用）")
    actor = app.gate.actor(account[0])
    school_id = _school(app, args.school) if args.school else None
    buf = io.StringIO()
    n = audit.export_csv(app, actor, args.kind, buf, id=args.id, school_id=school_id)
    with open(args.out, "x", encoding="utf-8-sig", newline="") as f:
        f.write(buf.getvalue())
    print(f"已导出 {n} 行到 {args.out}（本次查询和导出均已记入审计记录）")
    return 0


def _date_arg(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"日期格式应为 YYYY-MM-DD：{text}") from e


def _write_whole(path: Path, text: str, encoding: str) -> None:
    """Write the file whole or not at all: a temporary file beside it, renamed over it,
    and removed if anything fails (no temporary file is ever left behind)."""
    import tempfile

    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding=encoding, newline="") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def cmd_report(args: argparse.Namespace) -> int:
    """定期报送. The command line's own actor is the administrator, who may not read
    statistics (separation of duties): the report is made as a named supervisor or
    principal account (`--as`), through the gate, and recorded in the audit trail."""
    from projections.report import periodic_report, report_csv, report_html

    app = _open(args)
    account = app.accounts.account(args.as_user)
    if account is None:
        raise CLIError(f"找不到账号「{args.as_user}」（或已停用）")
    actor = app.gate.actor(account[0])
    school_id = _school(app, args.school) if args.school else None
    report = periodic_report(app, actor, date_from=args.date_from, date_to=args.date_to, school_id=school_id)
    text = report_csv(report) if args.format == "csv" else report_html(report)
    if not args.out:
        sys.stdout.write(text)
        return 0
    out = Path(args.out)
    if out.is_dir():
        raise CLIError(f"--out 应为文件，而不是目录：{out}")
    if not out.parent.is_dir():
        raise CLIError(f"目录不存在：{out.parent}")
    _write_whole(out, text, "utf-8-sig" if args.format == "csv" else "utf-8")
    print(f"已生成定期报送（{args.date_from} 至 {args.date_to}，{len(report.schools)} 所学校），写入 {out}")
    return 0


class _RebuildProgress:
    """A progress bar on stderr: redrawn in place on a terminal, else one line per tenth."""

    def __init__(self, label: str, width: int = 30) -> None:
        self.label, self.width = label, width
        self.tty = sys.stderr.isatty()
        self.shown = -1  # the last tenth drawn

    def __call__(self, done: int, total: int) -> None:
        part = done / total if total else 1.0
        tenth = int(10 * part)
        if not self.tty and tenth == self.shown:
            return
        self.shown = tenth
        filled = int(self.width * part)
        bar = f"{self.label} [{'#' * filled}{'.' * (self.width - filled)}] {int(100 * part):3d}% {done}/{total}"
        sys.stderr.write(f"\r{bar}" if self.tty else f"{bar}\n")
        sys.stderr.flush()

    def finish(self, head: int) -> None:
        if self.tty or self.shown != 10:
            self.shown = -1
            self(head, head)
        if self.tty:
            sys.stderr.write("\n")
            sys.stderr.flush()


def cmd_projections_rebuild(args: argparse.Namespace) -> int:
    app = _open(args)
    runner = app.views
    known = list(runner.by_name)
    unknown = [n for n in args.views if n not in runner.by_name]
    if unknown:
        raise CLIError(f"未知的视图：{'、'.join(unknown)}。可用的视图：{'、'.join(known)}")
    names = list(dict.fromkeys(args.views)) or known
    progress = _RebuildProgress("重建视图")
    started = time.perf_counter()
    n = runner.rebuild(names, progress=progress)
    seconds = time.perf_counter() - started
    progress.finish(app.log_head())
    rate = n / seconds if seconds > 0 else 0.0
    print(f"已重建视图 {'、'.join(names)}：{n} 个事件，用时 {seconds:.2f} 秒（每秒 {rate:,.0f} 个事件）")
    if runner.skipped:
        from anxin.health import describe

        print(f"跳过 {len(runner.skipped)} 条未通过认证的记录（已隔离；其余记录照常重建）：")
        for sid, version in sorted(runner.skipped.items()):
            print(f"  {describe(app, sid)}，自第 {version} 版起")
        print("运行 `anxin check` 查看详情；从备份恢复这些记录后，请再次重建视图。")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from anxin.health import check

    return check(_config(args), max_lag=args.max_lag)


# The server's log: the application's own lines (method, path, status; startup) at INFO,
# uvicorn's at WARNING. A dict, not basicConfig: uvicorn applies it in every worker process.
SERVE_LOG_CONFIG: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s [%(process)d] %(name)s %(message)s"}},
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"level": "INFO", "handlers": ["stderr"]},
}


def cmd_serve(args: argparse.Namespace) -> int:
    """The web application, named to uvicorn by its import path: the application layer
    composes nothing of the web (dependencies point from web to the application)."""
    import uvicorn

    if args.workers < 1:
        raise CLIError("--workers 至少为 1")
    os.environ.setdefault("ANXIN_DATA_DIR", args.data_dir or "var")
    # Opened here first: a missing key or an unreachable database fails now with its message,
    # and the side tables (sessions, login failures) exist before several workers start.
    app = _open(args)
    app.accounts.prepare()
    app.close()
    print(f"安心 Anxin 网页服务：http://{args.host}:{args.port}/ （{args.workers} 个进程，Ctrl+C 停止）", flush=True)
    # uvicorn's access log would print query strings (a name searched for); the
    # application logs method, path and status itself. Each process (one, or several
    # workers) opens the application from the environment (ANXIN_DATA_DIR or
    # ANXIN_DATABASE_URL, as set above); sessions and the login throttle live in the
    # database, so any worker serves any request.
    uvicorn.run(
        "web.app:create_app",
        factory=True,
        workers=args.workers if args.workers > 1 else None,
        host=args.host,
        port=args.port,
        access_log=False,
        log_level="warning",
        log_config=SERVE_LOG_CONFIG,
    )
    return 0


def cmd_backup(args: argparse.Namespace) -> int:
    from anxin.backup import BackupError, backup, local_key_ids

    config = _config(args)
    try:
        manifest, files = backup(config, Path(args.out))
    except BackupError as e:
        raise CLIError(str(e)) from e
    kind = "PostgreSQL pg_dump" if manifest.kind == "postgres" else "SQLite"
    print(f"已备份到 {files[0]}（{kind}，{manifest.events} 个事件，审计链头 seq {manifest.audit_head}，权限 0600）")
    if len(files) > 1:
        print(f"备份说明（所需密钥编号等）：{files[1]}")
    print(f"恢复此备份需要主密钥编号：{manifest.describe_keys()}")
    held = local_key_ids(config)
    if held is not None:
        lacking = [k for k in manifest.needed if k not in held]
        if lacking:
            print(f"注意：本机的主密钥文件中没有编号 {'、'.join(lacking)}", file=sys.stderr)
    print("备份中不含主密钥和审计签名密钥：请按编号另行保管密钥文件，与备份分开存放。")
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    from anxin.backup import BackupError, restore

    config = _config(args)
    if args.database_url:
        config = StoreConfig(url=args.database_url, data_dir=config.data_dir, schema=config.schema)
    if args.schema:
        config = StoreConfig(url=config.url, data_dir=config.data_dir, schema=args.schema)
    try:
        result = restore(Path(args.file), config)
    except BackupError as e:
        raise CLIError(str(e)) from e
    m, cfg = result.manifest, result.config
    where = f"{_redact(cfg.url)}（schema {cfg.schema or 'public'}）" if cfg.is_postgres else str(cfg.data_dir)
    print(f"已恢复到 {where}" + (f"：备份时间 {m.created_at}" if m and m.created_at else ""))
    if m:
        print(f"所需主密钥编号：{m.describe_keys()}（已用提供的主密钥逐一解开）")
    erased = f"（其中 {result.erased} 个属于已删除的记录）" if result.erased else ""
    print(f"已解密全部 {result.events} 个事件{erased}")
    for note in result.notes:
        print(note)
    if result.damaged_keys:
        print(f"损坏的数据密钥 {len(result.damaged_keys)} 个：{'、'.join(result.damaged_keys[:10])}", file=sys.stderr)
    print(result.audit_summary)
    if cfg.is_postgres:
        print(f"使用：ANXIN_DATABASE_URL={_redact(cfg.url)} ANXIN_DATABASE_SCHEMA={cfg.schema or ''} anxin summary")
    else:
        print(f"使用：anxin summary --data-dir {cfg.data_dir}")
        if os.environ.get("ANXIN_DATABASE_URL"):
            print("注意：已设置 ANXIN_DATABASE_URL，运行其他命令前请取消它，否则不会用到恢复的数据", file=sys.stderr)
    return 0 if result.ok else 2


# -- parser -------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="anxin", description="安心 Anxin 校园安全个案管理")
    sub = parser.add_subparsers(dest="command", required=True)

    def add(p: argparse.ArgumentParser, func: Callable[[argparse.Namespace], int]) -> argparse.ArgumentParser:
        p.add_argument("--data-dir", default=None, help="数据目录（默认 ./var）")
        p.set_defaults(func=func)
        return p

    p = add(sub.add_parser("init", help="创建数据存储和主密钥"), cmd_init)
    p.add_argument("--if-missing", action="store_true", help="已初始化时不报错")

    school = sub.add_parser("school", help="学校").add_subparsers(dest="school_cmd", required=True)
    p = add(school.add_parser("add", help="添加学校"), cmd_school_add)
    p.add_argument("name")
    p.add_argument("--district", default="default")
    add(school.add_parser("list", help="列出学校"), cmd_school_list)

    roster = sub.add_parser("roster", help="花名册").add_subparsers(dest="roster_cmd", required=True)
    p = add(roster.add_parser("import", help="导入学生 CSV（全部成功或全部不写入）"), cmd_roster_import)
    p.add_argument("file")
    p.add_argument("--school", required=True)
    p = add(roster.add_parser("list", help="列出学生"), cmd_roster_list)
    p.add_argument("--school", required=True)

    user = sub.add_parser("user", help="账号").add_subparsers(dest="user_cmd", required=True)
    p = add(user.add_parser("add", help="添加教职工账号"), cmd_user_add)
    p.add_argument("--username", required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--school")
    p.add_argument("--role", action="append", required=True, choices=[r.value for r in Role])
    p.add_argument("--class", dest="class_", action="append", default=[])
    p.add_argument("--password")
    p.add_argument("--district", default=None)

    p = add(sub.add_parser("demo", help="载入演示学区"), cmd_demo)
    p.add_argument("--password")
    p.add_argument("--seed", type=int, default=2026)
    p.add_argument("--students", type=int, default=300, help="每校学生数")
    p.add_argument("--if-empty", action="store_true")

    add(sub.add_parser("summary", help="数据概况和演示账号"), cmd_summary)

    p = add(sub.add_parser("shred", help="销毁密钥以删除记录（不可恢复）"), cmd_shred)
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--student")
    g.add_argument("--stream")
    p.add_argument("--school")
    p.add_argument("--reason", default="保存期限届满")
    p.add_argument("--yes", action="store_true")

    keys = sub.add_parser("keys", help="密钥").add_subparsers(dest="keys_cmd", required=True)
    add(keys.add_parser("rotate", help="轮换主密钥（或继续完成中断的轮换）"), cmd_keys_rotate)
    add(keys.add_parser("add", help="在密钥文件中加入新主密钥（多台服务器轮换的第一步）"), cmd_keys_add)
    add(keys.add_parser("status", help="主密钥编号、各封装多少数据密钥、是否有未完成的轮换"), cmd_keys_status)

    audit = sub.add_parser("audit", help="审计记录").add_subparsers(dest="audit_cmd", required=True)
    p = add(audit.add_parser("checkpoint", help="签名当前审计链头，生成检查点文件"), cmd_audit_checkpoint)
    p.add_argument("--out", help="检查点文件（默认输出到屏幕）")
    p = add(audit.add_parser("verify", help="校验审计记录和全部事件是否被改动"), cmd_audit_verify)
    p.add_argument("--checkpoint", help="督导保存的检查点文件")
    p = add(audit.add_parser("export", help="导出审计查询（CSV）"), cmd_audit_export)
    p.add_argument("--kind", required=True, choices=["case-history", "student-access", "break-glass", "denied"])
    p.add_argument("--id", help="案件/记录 id（case-history）或学生 id（student-access）")
    p.add_argument("--school", help="只看这所学校（break-glass、denied）")
    p.add_argument(
        "--as", dest="as_user", required=True, help="以该账号身份查询（督导或校长；经权限检查，并记入审计记录）"
    )
    p.add_argument("--out", required=True)

    p = add(
        sub.add_parser(
            "report",
            help="定期报送：按学校和全区的统计（无姓名、无文字记录）",
            description="定期报送。命令行本身以系统管理员身份运行，而管理员不能查看统计（职责分离），"
            "所以报表以 --as 指定的督导或校长账号生成，经权限检查并记入审计记录。",
        ),
        cmd_report,
    )
    p.add_argument(
        "--from", dest="date_from", required=True, type=_date_arg, metavar="DATE", help="起始日期 YYYY-MM-DD（含）"
    )
    p.add_argument(
        "--to", dest="date_to", required=True, type=_date_arg, metavar="DATE", help="截止日期 YYYY-MM-DD（含）"
    )
    p.add_argument("--school", metavar="NAME", help="只报这所学校（默认：督导为全区，校长为本校）")
    p.add_argument("--format", choices=["csv", "html"], default="csv", help="csv（默认）或 html（可打印）")
    p.add_argument("--out", metavar="FILE", help="输出文件（默认输出到屏幕）")
    p.add_argument(
        "--as",
        dest="as_user",
        required=True,
        metavar="USERNAME",
        help="以该账号身份生成（督导：全区；校长：本校；经权限检查，并记入审计记录）",
    )

    projections = sub.add_parser("projections", help="视图（读模型）").add_subparsers(
        dest="projections_cmd", required=True
    )
    p = add(projections.add_parser("rebuild", help="清空并从事件流重建视图（显示进度）"), cmd_projections_rebuild)
    p.add_argument("views", nargs="*", metavar="VIEW", help="要重建的视图（默认全部）")

    p = add(sub.add_parser("check", help="健康检查：数据库、密钥、每条记录、审计链、视图进度、隔离的记录"), cmd_check)
    p.add_argument(
        "--max-lag",
        type=int,
        default=None,
        metavar="N",
        help="视图最多可落后日志多少个事件（默认 ANXIN_READY_MAX_LAG 或 1000）",
    )

    p = add(sub.add_parser("backup", help="备份数据库（运行中也可；不含密钥）"), cmd_backup)
    p.add_argument("--out", required=True, metavar="FILE", help="备份文件（不会覆盖已有文件）")
    p = add(sub.add_parser("restore", help="把备份恢复到新的数据目录（或新的 PostgreSQL 数据库），并校验"), cmd_restore)
    p.add_argument("file", metavar="FILE")
    p.add_argument("--database-url", help="PostgreSQL 备份恢复到的数据库（默认 ANXIN_DATABASE_URL）")
    p.add_argument("--schema", help="PostgreSQL：恢复到的 schema（须与备份时相同；默认与备份相同）")

    p = add(sub.add_parser("serve", help="启动网页服务"), cmd_serve)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--workers", type=int, default=1, help="工作进程数（默认 1）")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except KeyError_ as e:  # (each names the key id or the file, and what to do)
        print(f"错误：{e}", file=sys.stderr)
        return 1
    except Tampered as e:  # one record failed authentication: that one only (see `anxin check`)
        from anxin.quarantine import Unreadable

        print(f"错误：{Unreadable(e.stream_id, e.version)}（记录 {e.stream_id}）", file=sys.stderr)
        return 1
    except (CLIError, DomainError, FileExistsError, FileNotFoundError) as e:
        print(f"错误：{e}", file=sys.stderr)
        return 1
    except PersistenceError as e:
        print(f"错误：{store_problem(e, _where(args)) or f'无法访问数据库：{e}'}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        sys.stderr.close()
        return 0
    except Exception as e:
        # The disk, the database file or the data folder failed under the command.
        problem = store_problem(e, _where(args))
        if problem is None:
            raise
        print(f"错误：{problem}", file=sys.stderr)
        return 1


def _where(args: argparse.Namespace) -> str | None:
    """The store as a message may name it: the SQLite file, or nothing for PostgreSQL."""
    config = _config(args)
    if config.is_postgres:
        return None
    if config.url and config.url.startswith("sqlite:///"):
        return config.url[len("sqlite:///") :]
    return str(config.sqlite_path)


if __name__ == "__main__":
    sys.exit(main())
