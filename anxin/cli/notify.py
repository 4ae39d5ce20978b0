"""`anxin notifications deliver`: send what is due once and exit (for cron, and for a
store served without `anxin serve`, whose background loop does the same)."""

from __future__ import annotations

import argparse

from anxin.cli.common import _open


def cmd_notifications_deliver(args: argparse.Namespace) -> int:
    app = _open(args)
    done = app.notifications.deliver()
    print(
        f"新提醒 {done.expanded} 条（站内 {done.inbox} 人次）；已发送 {done.sent}，"
        f"失败待重试 {done.failed - done.dead}，放弃 {done.dead}，无需发送 {done.skipped}"
    )
    for error in sorted(set(done.errors)):
        print(f"  发送失败：{error}")
    return 1 if done.failed else 0
