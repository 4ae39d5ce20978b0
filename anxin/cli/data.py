"""`anxin init`, `demo`, `summary` and `shred`: the store, its demo data, and erasure."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from anxin.cli.common import CLI_ACTOR, CLIError, _config, _key_file, _open, _redact, _school, _where
from anxin.crypto import KeyError_
from anxin.errors import store_problem
from anxin.storage import StoreConfig
from domain.common import DomainError, Erased


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
        totals_line,
    )

    app = _open(args)
    print("安心 Anxin —— 数据概况")
    if demo_state(app) == "loading" and not store_is_empty(app):
        print(f"注意：{HALF_DEMO}")
    students, counts = directory_counts(app)
    for sid, name, district in app.schools():
        print(f"  {name}（{district}）：学生 {students.get(sid, 0)} 名")
    print("  " + totals_line(counts))
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
