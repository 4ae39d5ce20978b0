"""Files written whole: a temporary file beside the target, fsynced, then linked into
place, never over an existing file."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from anxin.backup.manifest import BackupError


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _publish(tmp: Path, out: Path) -> None:
    """The finished temporary file under its name, never over an existing file (a hard
    link fails if the name is taken), then the folder fsynced."""
    try:
        os.link(tmp, out)
    except FileExistsError:
        raise BackupError(f"文件已存在，拒绝覆盖：{out}") from None
    except OSError:  # a file system without hard links: claim the name first, then replace
        try:
            os.close(os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except FileExistsError:
            raise BackupError(f"文件已存在，拒绝覆盖：{out}") from None
        os.replace(tmp, out)
    else:
        os.unlink(tmp)
    _fsync_path(out.parent)


def _temp_beside(out: Path) -> Path:
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)  # 0600
    os.close(fd)
    return Path(tmp)


def _remove(*paths: Path) -> None:
    for p in paths:
        for q in (p, Path(f"{p}-journal"), Path(f"{p}-wal"), Path(f"{p}-shm")):
            with suppress(FileNotFoundError):
                q.unlink()


def _check_out(out: Path) -> None:
    if out.exists():
        raise BackupError(f"文件已存在，拒绝覆盖：{out}")
    if not out.parent.is_dir():
        raise BackupError(f"目录不存在：{out.parent}")


@contextmanager
def _written_beside(out: Path, errors: tuple[type[Exception], ...] = (), failed: str = "") -> Iterator[Path]:
    """A temporary file beside `out` (0600) for the block to write; when the block is done,
    fsynced and published as `out` (never over an existing file). An error of the kinds
    `errors` becomes a BackupError: `failed：the error`. The temporary file is removed
    whatever happens."""
    tmp = _temp_beside(out)
    try:
        yield tmp
        _fsync_path(tmp)
        _publish(tmp, out)
    except errors as e:
        raise BackupError(f"{failed}：{e}") from e
    finally:
        _remove(tmp)
