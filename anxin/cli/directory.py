"""`anxin school`, `roster` and `user`: schools, students and staff accounts."""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path

from anxin.cli.common import CLI_ACTOR, CLIError, _open, _school
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
