"""`anxin backup` and `anxin restore` (anxin.backup does the work)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from anxin.cli.common import CLIError, _config, _redact
from anxin.storage import StoreConfig


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
