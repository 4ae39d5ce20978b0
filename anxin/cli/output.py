"""Output beyond a line of text: progress bars on stderr, and files written whole."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable
from pathlib import Path


def _progress(label: str) -> Callable[[int, int], None]:
    def show(done: int, total: int) -> None:
        if total < 1000 or not sys.stderr.isatty() and done not in (0, total):
            return
        width = 30
        filled = int(width * done / max(total, 1))
        sys.stderr.write(f"\r{label} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
        if done >= total:
            sys.stderr.write("\n")
        sys.stderr.flush()

    return show


def _write_whole(path: Path, text: str, encoding: str) -> None:
    """Write the file whole or not at all: a temporary file beside it, renamed over it,
    and removed if anything fails (no temporary file is ever left behind)."""
    import tempfile

    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding=encoding, newline="") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


class _RebuildProgress:
    """A progress bar on stderr: redrawn in place on a terminal, else one line per tenth."""

    def __init__(self, label: str, width: int = 30) -> None:
        self.label, self.width = label, width
        self.tty = sys.stderr.isatty()
        self.shown = -1  # the last tenth drawn

    def __call__(self, done: int, total: int) -> None:
        part = done / total if total else 1.0
        tenth = int(10 * part)
        if not self.tty and tenth == self.shown:
            return
        self.shown = tenth
        filled = int(self.width * part)
        bar = f"{self.label} [{'#' * filled}{'.' * (self.width - filled)}] {int(100 * part):3d}% {done}/{total}"
        sys.stderr.write(f"\r{bar}" if self.tty else f"{bar}\n")
        sys.stderr.flush()

    def finish(self, head: int) -> None:
        if self.tty or self.shown != 10:
            self.shown = -1
            self(head, head)
        if self.tty:
            sys.stderr.write("\n")
            sys.stderr.flush()
