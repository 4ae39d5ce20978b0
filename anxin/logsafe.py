"""The server's log lines, safe from what a request put in them (log injection).

A path, a header, a login name reach the log as arguments of a message (the access line,
an error's line, uvicorn's own). A line feed in one of them (`/x%0aFORGED`) would start a
line the server never wrote; a carriage return, a Unicode line separator or a terminal
escape would mislead whoever reads the log. `EscapingFormatter` is the formatter of the
one handler `anxin serve` logs through (`anxin.cli.serve.SERVE_LOG_CONFIG`), so every line
of every logger passes through it, and no route can forget it:

- the record's line (its message with its arguments, and the time, process and logger
  name around it) has every control character escaped: C0 and DEL, C1, and the Unicode
  line and paragraph separators (`\\n`, `\\r`, `\\t`, `\\x1b`, `\\x85`, `\\u2028`, ...);
- a traceback or a stack that follows keeps its own lines, each indented by four spaces
  and escaped the same way, so a line break in an exception's message (which may quote a
  request) starts an indented line, never one that could pass for a record.
"""

from __future__ import annotations

import logging
import re
from typing import Any

CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
INDENT = "    "


def _escaped(match: re.Match[str]) -> str:
    c = match.group()
    return NAMED.get(c) or (f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}")


def escape(text: str) -> str:
    """The text on one line: every control character written as its escape."""
    return CONTROL.sub(_escaped, text)


def escape_block(text: str) -> str:
    """Multi-line text of the server's own (a traceback, a stack): its lines kept, each
    escaped and indented."""
    return "\n".join(INDENT + escape(line) for line in text.rstrip("\n").split("\n"))


class EscapingFormatter(logging.Formatter):
    """`logging.Formatter` whose every line is escaped (see the module)."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        return escape(super().formatMessage(record))

    def formatException(self, ei: Any) -> str:
        return escape_block(super().formatException(ei))

    def formatStack(self, stack_info: str) -> str:
        return escape_block(super().formatStack(stack_info))
