"""The `anxin` command. Every subcommand takes `--data-dir DIR` (default ./var), or
reads ANXIN_DATABASE_URL and ANXIN_MASTER_KEY_FILE from the environment.

The command line is run by whoever holds the master key: it acts as the system
administrator, through the same gate as everyone else (so it never sees case content).

One module per group of subcommands (data, directory, keys, audit, views, backup,
serve), the parser (parser.py), what they share (common.py, output.py) and the errors
turned into exit codes (errors.py).
"""

from __future__ import annotations

from collections.abc import Sequence

from anxin.cli.common import CLI_ACTOR, CLIError
from anxin.cli.errors import run
from anxin.cli.parser import build_parser

__all__ = ["CLI_ACTOR", "CLIError", "build_parser", "main"]


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run(args)
