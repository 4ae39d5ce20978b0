"""`anxin school`, `roster` and `user`: schools, students and staff accounts."""

from __future__ import annotations

import argparse
import os
import sys
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from anxin.cli.common import CLI_ACTOR, DEFAULT_BASE_URL, CLIError, _open, _school
from anxin.cli.output import _progress
from domain.common import Role


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
    """Read the file, print what importing it does (new, changed with their changes,
    unchanged, students of the school missing from it), then apply it in one transaction
    (not with --dry-run); the missing students are marked as left only with --leavers."""
    from anxin.roster_import import DEFAULT_LEAVE_REASON, ImportRejected, apply_import, plan_import, read_roster

    app = _open(args)
    school_id = _school(app, args.school)
    try:
        data = Path(args.file).read_bytes()
    except OSError as e:
        raise CLIError(f"无法读取文件：{e}") from e
    reason = (args.leave_reason or DEFAULT_LEAVE_REASON).strip()
    try:
        rows = read_roster(data, args.file)
        plan = plan_import(app, CLI_ACTOR, school_id, rows, progress=_progress("检查"))
        print(_preview(plan, args.school))
        if args.dry_run:
            print("试运行（--dry-run）：未写入任何数据")
            return 0
        leavers = [m.student_id for m in plan.missing] if args.leavers else []
        result = apply_import(
            app,
            CLI_ACTOR,
            school_id,
            rows,
            leavers=leavers,
            leave_reason=reason,
            fingerprint=plan.fingerprint,
            progress=_progress("导入"),
        )
    except ImportRejected as e:
        print(e.report(), file=sys.stderr)
        return 2
    print(
        f"已导入到「{args.school}」：新增 {result.imported} 名，更正 {result.corrected} 名，"
        f"不变 {result.unchanged} 名，标记离校 {result.left} 名"
    )
    if result.missing and not result.left:
        print(f"文件中没有的 {result.missing} 名学生未做处理；确认他们已离校后，加 --leavers 再运行一次即可标记离校")
    return 0


def _preview(plan: Any, school: str) -> str:
    """What an import does, as the command prints it (and --dry-run alone)."""
    out = [f"「{school}」花名册导入预览：{plan.source}，共 {plan.rows} 行学生"]
    out.append(f"新增（转入）：{len(plan.new)} 名")
    out += [f"  第 {n.line} 行\t{n.student_no}\t{n.name}\t{n.class_name}" for n in plan.new]
    out.append(f"信息有变（将更正）：{len(plan.changed)} 名")
    for c in plan.changed:
        changes = "；".join(f"{label} {before or '（空）'} → {after or '（空）'}" for label, before, after in c.shown)
        out.append(f"  第 {c.line} 行\t{c.student_no}\t{c.name}\t{changes}")
    out.append(f"不变：{plan.unchanged} 名")
    out.append(f"本校在校但文件中没有：{len(plan.missing)} 名")
    out += [f"  {m.student_no}\t{m.name}\t{m.class_name}" for m in plan.missing]
    if plan.ignored:
        out.append(f"未读取的列：{'、'.join(plan.ignored)}")
    return "\n".join(out)


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
    """A staff account with its roles and a one-time set-up code, never a password: the
    person chooses theirs at the set-up link printed here."""
    if args.password is not None:
        raise CLIError("anxin user add 不再接受密码：账号建好后会显示一次性设置链接，请交给本人，由本人设置自己的密码")
    app = _open(args)
    school_id = _school(app, args.school) if args.school else None
    staff_id, code = app.roster.add_staff_account(
        CLI_ACTOR,
        username=args.username,
        name=args.name,
        school_id=school_id,
        roles=args.role,
        classes=args.class_,
        district=args.district,
        email=args.email,
    )
    print(f"已添加用户 {args.username}（{', '.join(Role(r).label for r in args.role)}）{staff_id}")
    _print_setup(app, args, code, app.accounts.setup_state(staff_id).expires_at)
    return 0


def cmd_user_setup_code(args: argparse.Namespace) -> int:
    """A new set-up code for an account whose person has not set a password yet (the
    code expired or was lost): the old one stops working at once; recorded in the audit
    trail."""
    app = _open(args)
    account = app.accounts.staff_by_username(args.username)
    if account is None:
        raise CLIError(f"找不到账号「{args.username}」")
    made = app.accounts.reissue_setup_code(CLI_ACTOR, account.id)
    print(f"已为 {args.username} 重新生成设置链接，原来的链接已作废")
    _print_setup(app, args, made.code, made.expires_at)
    return 0


def _base_url(args: argparse.Namespace) -> str:
    """Where the people reach the site: --base-url, or ANXIN_BASE_URL, or the address
    `anxin serve` listens on by default."""
    return str(args.base_url or os.environ.get("ANXIN_BASE_URL") or DEFAULT_BASE_URL)


def _print_setup(app: Any, args: argparse.Namespace, code: str, expires: datetime | None) -> None:
    """The set-up link (shown this once: only the code's hash is kept), the code alone,
    and until when it works, in the schools' time zone."""
    from anxin.accounts import setup_link

    print(f"一次性设置链接（请交给本人，由本人设置密码；只能使用一次，有效期至 {_when(app, expires)}）：")
    print(setup_link(_base_url(args), code))
    print(f"设置码：{code}")


def _when(app: Any, value: datetime | None) -> str:
    if value is None:
        return "—"
    local = value.astimezone(ZoneInfo(app.policy.timezone))
    return f"{local.year}年{local.month}月{local.day}日 {local:%H:%M}"
