"""What a person is told when the store itself fails under a command (the disk is full,
the database file is damaged, the data folder cannot be written): one line in Chinese,
which the command line prints and the web shows on its error page. Found by walking the
error's causes, whichever layer raised it (sqlite3, psycopg, the event library,
SQLAlchemy for the views, the operating system)."""

from __future__ import annotations

import errno
from collections.abc import Iterator

DISK_FULL = "磁盘已满，数据无法写入，本次操作未完成（已提交的数据不受影响）：请腾出磁盘空间后重试"
CORRUPT = "数据库文件已损坏或不是安心的数据库：请停止服务，从备份恢复；不要删除数据目录中的密钥文件"
READ_ONLY = "数据目录不可写（只读文件系统或没有写权限）：请检查数据目录的挂载方式和权限"
CANNOT_OPEN = "无法打开数据库文件：请检查数据目录是否存在、是否可写"


def _causes(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    todo: list[BaseException | None] = [error]
    while todo:
        e = todo.pop(0)
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        orig = getattr(e, "orig", None)  # SQLAlchemy keeps the driver's error here
        todo += [e.__cause__, e.__context__, orig if isinstance(orig, BaseException) else None]


def _find(error: BaseException) -> tuple[str, str | None] | None:
    for e in _causes(error):
        if isinstance(e, OSError) and e.errno is not None:
            if e.errno in (errno.ENOSPC, errno.EDQUOT):
                return DISK_FULL, None
            if e.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
                return READ_ONLY, str(e.filename) if e.filename else None
        text = str(e).lower()
        if "database or disk is full" in text or "no space left on device" in text or "diskfull" in text:
            return DISK_FULL, None
        if "file is not a database" in text or "disk image is malformed" in text:
            return CORRUPT, None
        if "readonly database" in text or "read-only file system" in text:
            return READ_ONLY, None
        if "unable to open database file" in text:
            return CANNOT_OPEN, None
    return None


def store_problem(error: BaseException, where: str | None = None) -> str | None:
    """The message for a failure of the store's disk, file or folder, else None. `where`:
    the database file, named at the end (the file an OS error names, if it names one)."""
    found = _find(error)
    if found is None:
        return None
    message, path = found
    path = path or where
    return f"{message}（{path}）" if path and message != DISK_FULL else message


def store_problem_message(error: BaseException) -> str | None:
    """The same message without any path (for a web page)."""
    found = _find(error)
    return found[0] if found else None


__all__ = ["store_problem", "store_problem_message", "DISK_FULL", "CORRUPT", "READ_ONLY", "CANNOT_OPEN"]
