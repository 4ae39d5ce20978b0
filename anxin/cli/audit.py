"""`anxin audit checkpoint`, `verify` and `export`: the audit trail (see docs/audit.md)."""

from __future__ import annotations

import argparse
import sys

from anxin.cli.common import CLI_ACTOR, _acting_as, _open, _school


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
    actor = _acting_as(app, args.as_user)
    school_id = _school(app, args.school) if args.school else None
    # A record's history is read only with a stated reason, here as on the audit page.
    reason = audit.require_reason(args.reason) if args.kind in ("case-history", "student-access") else None
    buf = io.StringIO()
    n = audit.export_csv(app, actor, args.kind, buf, id=args.id, school_id=school_id, reason=reason)
    with open(args.out, "x", encoding="utf-8-sig", newline="") as f:
        f.write(buf.getvalue())
    print(f"已导出 {n} 行到 {args.out}（本次查询和导出均已记入审计记录）")
    return 0
