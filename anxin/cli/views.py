"""`anxin report` and `anxin projections rebuild`: the read side."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from anxin.cli.common import CLIError, _acting_as, _open, _school
from anxin.cli.output import _RebuildProgress, _write_whole


def cmd_report(args: argparse.Namespace) -> int:
    """定期报送. The command line's own actor is the administrator, who may not read
    statistics (separation of duties): the report is made as a named supervisor or
    principal account (`--as`), through the gate, and recorded in the audit trail."""
    from projections.report import periodic_report, report_csv, report_html

    app = _open(args)
    actor = _acting_as(app, args.as_user)
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
