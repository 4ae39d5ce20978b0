"""`anxin demo` is all or nothing: the demo is written through the same commands people
use (many transactions), so a marker says whether it finished. A demo cut short (a
failure, a kill, a full disk) is reported clearly, by the failing run and by every
later `demo`, even with `--if-empty` (so `make run` stops rather than serve half a demo)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import PG_URL, Store

import anxin.demo
import anxin.service
from anxin import cli
from anxin.demo import HALF_DEMO, demo_state
from domain.common import DomainError

STUDENTS = "200"


def test_a_demo_that_fails_partway_says_so_and_is_refused_afterwards_even_if_empty(
    store: Store, run_cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a demo whose loading fails after both schools' rosters are written
    def fail(*args: Any, **kwargs: Any) -> None:
        raise DomainError("模拟的失败：某条命令被规则拒绝")

    with monkeypatch.context() as patched:
        patched.setattr(anxin.demo, "_staff_outside_schools", fail)

        # when it is loaded
        code, out, err = run_cli("demo", "--students", STUDENTS)

    # then it fails with one line that names the failure and the half-loaded demo
    assert code == 1 and "Traceback" not in err
    assert err.count("\n") == 1 and "载入演示数据失败：模拟的失败" in err and HALF_DEMO in err
    # and every later run refuses, `--if-empty` too, and the summary warns
    for args in (("demo", "--students", STUDENTS, "--if-empty"), ("demo", "--students", STUDENTS)):
        code, out, err = run_cli(*args)
        assert code == 1 and err.strip() == f"错误：{HALF_DEMO}" and "跳过" not in out
    code, out, err = run_cli("summary")
    assert code == 0 and f"注意：{HALF_DEMO}" in out


def test_a_whole_demo_is_marked_complete_and_if_empty_then_skips_it(
    store: Store, run_cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a demo without its casework (the rosters and accounts only: quicker, same marker)
    monkeypatch.setattr(anxin.demo, "_casework", lambda *a, **kw: {})

    # when it is loaded, then loaded again with --if-empty, and without
    first = run_cli("demo", "--students", STUDENTS)
    again = run_cli("demo", "--students", STUDENTS, "--if-empty")
    refused = run_cli("demo", "--students", STUDENTS)

    # then the first loads it, the second skips it, the third refuses a store with data
    assert first[0] == 0 and "已载入演示学区：2 所学校，400 名学生" in first[1]
    assert again[0] == 0 and "演示数据已存在，跳过" in again[1]
    assert refused[0] == 1 and "演示数据只能载入空库" in refused[2]
    assert "注意" not in run_cli("summary")[1]


def test_a_demo_stopped_before_it_wrote_anything_is_simply_loaded_again(
    store: Store, run_cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a store whose demo was marked as loading, then killed before its first write
    app = store.open()
    anxin.demo._mark(app, "loading")
    monkeypatch.setattr(anxin.demo, "_casework", lambda *a, **kw: {})

    # when the demo is loaded with --if-empty
    code, out, err = run_cli("demo", "--students", STUDENTS, "--if-empty")

    # then it is loaded whole (nothing was there to be mixed with)
    assert code == 0, err
    assert demo_state(app) == "complete"


def _streams(store: Store) -> int:
    if store.kind == "postgres":
        import psycopg

        assert PG_URL
        with psycopg.connect(PG_URL) as conn:
            return int(conn.execute(f"SELECT COUNT(*) FROM {store.schema}.anxin_directory").fetchone()[0])
    db = store.data_dir / "anxin.db"
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            return int(conn.execute("SELECT COUNT(*) FROM anxin_directory").fetchone()[0])
    except sqlite3.OperationalError:  # no table yet
        return 0


def test_a_demo_killed_partway_is_reported_by_the_next_run(store: Store, run_cli: Any) -> None:
    # given an initialised store (its key file in place)
    run_cli("summary")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANXIN_")}
    argv = [sys.executable, "-m", "anxin.cli", "demo", "--students", STUDENTS]
    if store.kind == "postgres":
        assert PG_URL and store.schema
        env |= {
            "ANXIN_DATABASE_URL": PG_URL,
            "ANXIN_DATABASE_SCHEMA": store.schema,
            "ANXIN_MASTER_KEY_FILE": str(store.data_dir / "master.key"),
        }
    else:
        argv += ["--data-dir", str(store.data_dir)]

    # when `anxin demo` runs in a process of its own and is killed (SIGKILL) once it has
    # written some of the district
    proc = subprocess.Popen(
        argv, env=env, cwd=Path(__file__).resolve().parents[2], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 120
    while _streams(store) < 50 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read() if proc.stderr else ""
    assert _streams(store) >= 50  # killed with part of the district written
    proc.stderr.close()  # type: ignore[union-attr]

    # then the next `demo --if-empty` (what `make run` does) refuses, with one clear line
    code, out, err = run_cli("demo", "--students", STUDENTS, "--if-empty")
    assert code == 1 and err.strip() == f"错误：{HALF_DEMO}" and "Traceback" not in err


# -- a full disk during the demo --------------------------------------------------------------------
@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2.2 MB file system (a tmpfs; needs root), or skip: room for the empty store (whose
    `init` needs about 1.6 MB at its peak, WAL included), not for the demo. The test grows
    it after the demo fails (space freed), since where the disk filled decides whether the
    next start could catch its views up at all."""
    where = tmp_path / "tiny"
    where.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2200k", "tmpfs", str(where)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {r.stderr.decode().strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def _main(*args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = cli.main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def closing_cli(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Close what the commands opened (the tiny disk is unmounted after)."""
    opened: list[Any] = []
    real_open = anxin.service.open_app  # what the commands open the application with
    monkeypatch.setattr(anxin.service, "open_app", lambda *a, **kw: opened.append(real_open(*a, **kw)) or opened[-1])
    for name in [k for k in os.environ if k.startswith("ANXIN_")]:
        monkeypatch.delenv(name)
    yield
    for app in opened:
        app.close()


def test_a_full_disk_during_the_demo_is_one_clear_line_and_the_half_demo_is_refused_after(
    tiny_disk: Path, closing_cli: None, capsys: pytest.CaptureFixture[str]
) -> None:
    # given a store on a disk with room for little more than its empty tables
    data = str(tiny_disk / "var")
    assert _main("init", "--data-dir", data, capsys=capsys)[0] == 0

    # when the demo is loaded onto it
    code, out, err = _main("demo", "--students", STUDENTS, "--data-dir", data, capsys=capsys)

    # then SQLite's "database or disk is full" is one line in Chinese, naming the half demo
    assert code == 1 and "Traceback" not in err and err.count("\n") == 1
    assert err.startswith("错误：载入演示数据失败：磁盘已满") and HALF_DEMO in err
    # and once space is freed, as the message asks (the tmpfs grown: where the disk filled
    # decides whether the next start could even catch its views up), the next
    # `demo --if-empty` refuses the half demo
    grown = subprocess.run(["mount", "-o", "remount,size=16m", str(tiny_disk)], capture_output=True)
    assert grown.returncode == 0, grown.stderr
    code, out, err = _main("demo", "--students", STUDENTS, "--if-empty", "--data-dir", data, capsys=capsys)
    assert code == 1 and err.strip() == f"错误：{HALF_DEMO}"


def test_sqlite_full_without_a_tiny_disk_takes_the_same_path(
    tmp_path: Path, closing_cli: None, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where no tmpfs can be mounted: SQLite's own page limit makes it report SQLITE_FULL,
    the same error a full disk gives."""
    # given a store whose every connection may not grow the file past 350 pages (~1.4 MB)
    data = str(tmp_path / "var")
    assert _main("init", "--data-dir", data, capsys=capsys)[0] == 0
    connect = sqlite3.connect

    def limited(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        conn = connect(*args, **kwargs)
        conn.execute("PRAGMA max_page_count = 350")
        return conn

    monkeypatch.setattr(sqlite3, "connect", limited)

    # when the demo is loaded
    code, out, err = _main("demo", "--students", STUDENTS, "--data-dir", data, capsys=capsys)

    # then the same single line
    assert code == 1 and "Traceback" not in err and err.count("\n") == 1
    assert err.startswith("错误：载入演示数据失败：磁盘已满") and HALF_DEMO in err
