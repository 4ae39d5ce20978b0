"""What every subcommand shares: the command line's actor, its error, the store it names
(--data-dir or the environment) and the application opened on it."""

from __future__ import annotations

import argparse
from typing import Any

from anxin.crypto import MasterKeyFile
from anxin.storage import StoreConfig, config_from_env
from domain.common import Actor, Role

CLI_ACTOR = Actor("cli", frozenset({Role.ADMINISTRATOR}))
# Where the people reach the site when neither --base-url nor ANXIN_BASE_URL says: the
# address `anxin serve` listens on by default.
DEFAULT_BASE_URL = "http://127.0.0.1:8000"


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


def _acting_as(app: Any, username: str) -> Any:
    """The actor of a named account (`--as`): a command the administrator may not run
    itself is run as that account, through the gate, and recorded in the audit trail."""
    account = app.accounts.account(username)
    if account is None:
        raise CLIError(f"找不到账号「{username}」（或已停用）")
    return app.gate.actor(account[0])


def _where(args: argparse.Namespace) -> str | None:
    """The store as a message may name it: the SQLite file, or nothing for PostgreSQL."""
    config = _config(args)
    if config.is_postgres:
        return None
    if config.url and config.url.startswith("sqlite:///"):
        return config.url[len("sqlite:///") :]
    return str(config.sqlite_path)
