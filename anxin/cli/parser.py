"""The `anxin` command's arguments: one subparser per subcommand, each naming its function."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from datetime import date

from anxin.cli.audit import cmd_audit_checkpoint, cmd_audit_export, cmd_audit_verify
from anxin.cli.backup import cmd_backup, cmd_restore
from anxin.cli.data import cmd_demo, cmd_init, cmd_shred, cmd_summary
from anxin.cli.directory import (
    cmd_roster_import,
    cmd_roster_list,
    cmd_school_add,
    cmd_school_list,
    cmd_user_add,
    cmd_user_setup_code,
)
from anxin.cli.keys import cmd_keys_add, cmd_keys_rotate, cmd_keys_status
from anxin.cli.notify import cmd_notifications_deliver
from anxin.cli.serve import cmd_check, cmd_serve
from anxin.cli.views import cmd_projections_rebuild, cmd_report
from domain.common import Role, day_or_none


def _date_arg(text: str) -> date:
    day = day_or_none(text)
    if day is None:
        raise argparse.ArgumentTypeError(f"日期格式应为 YYYY-MM-DD：{text}")
    return day


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
    p = add(
        roster.add_parser(
            "import",
            help="导入花名册 CSV 或 .xlsx（与本校花名册核对：新增、更正；全部成功或全部不写入）",
            description="导入花名册（CSV：UTF-8 或 GB18030/GBK；或 Excel .xlsx），与本校现有花名册核对："
            "新学号入学（转入），信息有变的更正，不变的不动；文件中没有的本校学生只列出，加 --leavers 才标记离校。",
        ),
        cmd_roster_import,
    )
    p.add_argument("file")
    p.add_argument("--school", required=True)
    p.add_argument("--dry-run", action="store_true", help="只显示预览（新增、更正、不变、文件中没有的学生），不写入")
    p.add_argument("--leavers", action="store_true", help="把本校在校、但文件中没有的学生标记为离校")
    p.add_argument(
        "--leave-reason", default="", help="离校原因（与 --leavers 一起用；默认：花名册导入：新花名册中没有该学生…）"
    )
    p = add(roster.add_parser("list", help="列出学生"), cmd_roster_list)
    p.add_argument("--school", required=True)

    user = sub.add_parser("user", help="账号").add_subparsers(dest="user_cmd", required=True)
    base_help = "网站地址，用于拼出设置链接（默认 ANXIN_BASE_URL 或 http://127.0.0.1:8000）"
    p = add(
        user.add_parser(
            "add",
            help="添加教职工账号（显示一次性设置链接，由本人设置密码）",
            description="添加教职工账号。不设密码：显示一次性设置链接和设置码，请交给本人，由本人设置自己的密码。",
        ),
        cmd_user_add,
    )
    p.add_argument("--username", required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--school")
    p.add_argument("--role", action="append", required=True, choices=[r.value for r in Role])
    p.add_argument("--class", dest="class_", action="append", default=[])
    p.add_argument("--password", help=argparse.SUPPRESS)  # refused with a message: see cmd_user_add
    p.add_argument("--district", default=None)
    p.add_argument("--email", default="", help="接收提醒的邮箱（本人也可在“提醒”页面设置）")
    p.add_argument("--base-url", metavar="URL", help=base_help)
    p = add(
        user.add_parser("setup-code", help="重新生成设置链接（原链接过期或遗失；原链接立即作废）"),
        cmd_user_setup_code,
    )
    p.add_argument("username", metavar="USERNAME")
    p.add_argument("--base-url", metavar="URL", help=base_help)

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
    p.add_argument("--reason", help="查阅理由（case-history、student-access 必填，加密保存在审计记录中）")
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

    notifications = sub.add_parser("notifications", help="提醒（站内、邮件、群机器人）").add_subparsers(
        dest="notifications_cmd", required=True
    )
    add(
        notifications.add_parser("deliver", help="发送到期的提醒一次后退出（供定时任务使用）"),
        cmd_notifications_deliver,
    )

    p = add(sub.add_parser("serve", help="启动网页服务"), cmd_serve)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--workers", type=int, default=1, help="工作进程数（默认 1）")
    return parser
