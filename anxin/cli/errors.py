"""Errors to exit codes: what a subcommand raises becomes one line on stderr (never a
traceback for the store's or the key's failures) and exit 1."""

from __future__ import annotations

import argparse
import sys

from eventsourcing.persistence import PersistenceError

from anxin.cli.common import CLIError, _where
from anxin.crypto import KeyError_, Tampered
from anxin.errors import store_problem
from domain.common import DomainError


def run(args: argparse.Namespace) -> int:
    """The subcommand the arguments name, its errors turned into exit codes."""
    try:
        return int(args.func(args))
    except KeyError_ as e:  # (each names the key id or the file, and what to do)
        print(f"错误：{e}", file=sys.stderr)
        return 1
    except Tampered as e:  # one record failed authentication: that one only (see `anxin check`)
        from anxin.quarantine import Unreadable

        print(f"错误：{Unreadable(e.stream_id, e.version)}（记录 {e.stream_id}）", file=sys.stderr)
        return 1
    except (CLIError, DomainError, FileExistsError, FileNotFoundError) as e:
        print(f"错误：{e}", file=sys.stderr)
        return 1
    except PersistenceError as e:
        print(f"错误：{store_problem(e, _where(args)) or f'无法访问数据库：{e}'}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        sys.stderr.close()
        return 0
    except Exception as e:
        # The disk, the database file or the data folder failed under the command.
        problem = store_problem(e, _where(args))
        if problem is None:
            raise
        print(f"错误：{problem}", file=sys.stderr)
        return 1
