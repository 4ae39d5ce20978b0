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

from anxin.crypto import KeyError_, MasterKeyFile, MasterKeyMissing
from anxin.storage import StoreConfig, config_from_env
from domain.common import Actor, DomainError, Role

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
    sid = app.school_id(name, missing_ok=True)
    if sid is None:
        raise CLIError(f"找不到学校「{name}」。可先运行：anxin school add \"{name}\"")
    return str(sid)


def _refuse_store_with_other_key(config: StoreConfig) -> None:
    """A store that already holds data keys was set up with another master key: a new
    key could open none of it, so `init` must not pretend to succeed."""
    from anxin.app import Core
    from anxin.crypto import MasterKey

    # The bare core (no views): it creates tables but never a key, so the probe writes nothing
    # that a throwaway key would have wrapped.
    probe = Core(config, [MasterKey.generate()])
    try:
        held = probe.db.fetchone("SELECT COUNT(*) FROM {t}anxin_keys")[0]
    finally:
        probe.close()
    if held:
        raise CLIError(
            "数据库中已有用另一把主密钥加密的数据，拒绝创建新的主密钥：请找回原来的密钥文件"
            "（放在数据目录中，或用 ANXIN_MASTER_KEY_FILE 指定）"
        )


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
    _refuse_store_with_other_key(config)
    keyfile.create()
    app = _open(args)
    app.close()
    where = _redact(config.url) if config.is_postgres else config.sqlite_path
    print(f"已创建主密钥 {keyfile.path}（权限 0600，请妥善备份，切勿提交到 git）")
    print(f"数据存储：{where}")
    _ensure_audit_key(config)
    return 0


def _ensure_audit_key(config: StoreConfig) -> None:
    """The audit trail's Ed25519 signing key, kept like the master key; its public half
    is printed for the supervisor, who keeps it outside the system."""
    from projections import audit

    path = audit.signing_key_path(config)
    if path.exists():
        return
    pub = audit.create_signing_key(config)
    print(f"已创建审计签名密钥 {path}（权限 0600，与主密钥一样妥善保管）")
    print(f"审计公钥（交给督导在系统之外保存，用于核验检查点；另存于 {audit.public_key_path(config)}）：")
    print(f"  {audit.public_key_text(pub)}")


def cmd_school_add(args: argparse.Namespace) -> int:
    app = _open(args)
    sid = app.add_school(CLI_ACTOR, args.name, args.district)
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
    for ref in app.list_students(CLI_ACTOR, school_id):
        if ref.erased:
            print(f"{'-':<12}\t已删除 (erased)\t{ref.class_name or ''}")
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
    staff_id = app.add_staff(
        CLI_ACTOR, username=args.username, name=args.name, school_id=school_id, roles=args.role,
        classes=args.class_, password_hash=pw_hash, district=args.district,
    )
    print(f"已添加用户 {args.username}（{', '.join(Role(r).label for r in args.role)}）{staff_id}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from anxin.demo import DEMO_PASSWORD, load_demo

    app = _open(args)
    if args.if_empty and app.schools():
        print("演示数据已存在，跳过。")
        return 0
    if app.schools():
        raise CLIError("数据库中已有学校，演示数据只能载入空库（使用 --if-empty 跳过）")
    summary = load_demo(app, password=args.password or DEMO_PASSWORD, seed=args.seed,
                        students_per_school=args.students)
    print(summary)
    return 0


def cmd_summary(args: argparse.Namespace) -> int:
    from anxin.demo import DEMO_PASSWORD, DEMO_USERS

    app = _open(args)
    print("安心 Anxin —— 数据概况")
    for sid, name, district in app.schools():
        n = app.db.fetchone(
            "SELECT COUNT(*) FROM {t}anxin_directory WHERE school_id = ? AND kind = 'student'", (sid,)
        )[0]
        print(f"  {name}（{district}）：学生 {n} 名")
    counts = dict(app.db.fetch("SELECT kind, COUNT(*) FROM {t}anxin_directory GROUP BY kind"))
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
        stream_id = str(app.student_id_for(school_id, args.student))
        what = f"学生 {args.student}（{args.school}）的身份信息"
    else:
        stream_id = args.stream
        what = f"记录 {stream_id}"
    if not args.yes:
        if not sys.stdin.isatty():
            raise CLIError("需要确认：请加 --yes，或在终端中运行")
        answer = input(f"将永久销毁{what}的密钥，无法恢复。输入 yes 确认：")
        if answer.strip().lower() != "yes":
            print("已取消。")
            return 1
    kind = app.shred(CLI_ACTOR, stream_id, args.reason)
    print(f"已销毁{what}的密钥（{kind}），其内容已不可读。")
    return 0


def cmd_keys_rotate(args: argparse.Namespace) -> int:
    config = _config(args)
    if os.environ.get("ANXIN_MASTER_KEY"):
        raise CLIError("主密钥来自环境变量 ANXIN_MASTER_KEY：请改用密钥文件后再轮换")
    keyfile = _key_file(config)
    app = _open(args)
    new_key = keyfile.begin_rotation()
    n = app.rotate_master_key(CLI_ACTOR, new_key)
    keyfile.finish_rotation()
    print(f"已轮换主密钥，重新封装 {n} 个数据密钥（事件未改写）。")
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
    from projections import audit

    app = _open(args)
    report = audit.verify(app, checkpoint=args.checkpoint)
    print(report.summary())
    rate = report.entries / report.seconds if report.ok and report.seconds else 0
    if rate:
        print(f"用时 {report.seconds:.2f} 秒（每秒 {rate:,.0f} 条）")
    return 0 if report.ok else 2


def cmd_audit_export(args: argparse.Namespace) -> int:
    import io

    from projections import audit

    app = _open(args)
    account = app.account(args.as_user)
    if account is None:
        raise CLIError(f"找不到账号「{args.as_user}」（或已停用）")
    actor = app.actor(account[0])
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
    account = app.account(args.as_user)
    if account is None:
        raise CLIError(f"找不到账号「{args.as_user}」（或已停用）")
    actor = app.actor(account[0])
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
    progress.finish(app.recorder.max_notification_id() or 0)
    rate = n / seconds if seconds > 0 else 0.0
    print(f"已重建视图 {'、'.join(names)}：{n} 个事件，用时 {seconds:.2f} 秒（每秒 {rate:,.0f} 个事件）")
    return 0


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
    try:
        import uvicorn

        from web.app import create_app
    except ImportError as e:  # the web application lands with its own issue
        raise CLIError(f"网页应用尚未就绪：{e}") from e
    if args.workers < 1:
        raise CLIError("--workers 至少为 1")
    os.environ.setdefault("ANXIN_DATA_DIR", args.data_dir or "var")
    # Opened here first: a missing key or an unreachable database fails now with its message,
    # and the side tables (sessions, login failures) exist before several workers start.
    web = create_app()
    print(f"安心 Anxin 网页服务：http://{args.host}:{args.port}/ （{args.workers} 个进程，Ctrl+C 停止）", flush=True)
    # uvicorn's access log would print query strings (a name searched for); the
    # application logs method, path and status itself.
    options: dict[str, Any] = {"host": args.host, "port": args.port, "access_log": False,
                               "log_level": "warning", "log_config": SERVE_LOG_CONFIG}
    if args.workers == 1:
        uvicorn.run(web, **options)
    else:
        # Several processes each open the application from the environment (ANXIN_DATA_DIR
        # or ANXIN_DATABASE_URL, as set above); sessions and the login throttle live in the
        # database, so any worker serves any request.
        web.state.web.app.close()
        uvicorn.run("web.app:create_app", factory=True, workers=args.workers, **options)
    return 0


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
    add(keys.add_parser("rotate", help="轮换主密钥"), cmd_keys_rotate)

    audit = sub.add_parser("audit", help="审计记录").add_subparsers(dest="audit_cmd", required=True)
    p = add(audit.add_parser("checkpoint", help="签名当前审计链头，生成检查点文件"), cmd_audit_checkpoint)
    p.add_argument("--out", help="检查点文件（默认输出到屏幕）")
    p = add(audit.add_parser("verify", help="校验审计记录和全部事件是否被改动"), cmd_audit_verify)
    p.add_argument("--checkpoint", help="督导保存的检查点文件")
    p = add(audit.add_parser("export", help="导出审计查询（CSV）"), cmd_audit_export)
    p.add_argument("--kind", required=True, choices=["case-history", "student-access", "break-glass", "denied"])
    p.add_argument("--id", help="案件/记录 id（case-history）或学生 id（student-access）")
    p.add_argument("--school", help="只看这所学校（break-glass、denied）")
    p.add_argument("--as", dest="as_user", required=True,
                   help="以该账号身份查询（督导或校长；经权限检查，并记入审计记录）")
    p.add_argument("--out", required=True)

    p = add(sub.add_parser(
        "report", help="定期报送：按学校和全区的统计（无姓名、无文字记录）",
        description="定期报送。命令行本身以系统管理员身份运行，而管理员不能查看统计（职责分离），"
                    "所以报表以 --as 指定的督导或校长账号生成，经权限检查并记入审计记录。",
    ), cmd_report)
    p.add_argument("--from", dest="date_from", required=True, type=_date_arg, metavar="DATE", help="起始日期 YYYY-MM-DD（含）")
    p.add_argument("--to", dest="date_to", required=True, type=_date_arg, metavar="DATE", help="截止日期 YYYY-MM-DD（含）")
    p.add_argument("--school", metavar="NAME", help="只报这所学校（默认：督导为全区，校长为本校）")
    p.add_argument("--format", choices=["csv", "html"], default="csv", help="csv（默认）或 html（可打印）")
    p.add_argument("--out", metavar="FILE", help="输出文件（默认输出到屏幕）")
    p.add_argument("--as", dest="as_user", required=True, metavar="USERNAME",
                   help="以该账号身份生成（督导：全区；校长：本校；经权限检查，并记入审计记录）")

    projections = sub.add_parser("projections", help="视图（读模型）").add_subparsers(
        dest="projections_cmd", required=True)
    p = add(projections.add_parser("rebuild", help="清空并从事件流重建视图（显示进度）"), cmd_projections_rebuild)
    p.add_argument("views", nargs="*", metavar="VIEW", help="要重建的视图（默认全部）")

    p = add(sub.add_parser("serve", help="启动网页服务"), cmd_serve)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--workers", type=int, default=1, help="工作进程数（默认 1）")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except MasterKeyMissing as e:
        print(f"错误：{e}", file=sys.stderr)
        return 1
    except KeyError_ as e:
        print(f"错误：主密钥打不开这些数据（密钥文件不对，或主密钥已轮换过）：{e}", file=sys.stderr)
        return 1
    except (CLIError, DomainError, FileExistsError, FileNotFoundError) as e:
        print(f"错误：{e}", file=sys.stderr)
        return 1
    except PersistenceError as e:
        print(f"错误：无法访问数据库：{e}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
