"""`anxin ...` run in the test's own process (faster than a subprocess), against the
`store` fixture's store: SQLite by --data-dir, PostgreSQL by the environment."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import Store

from anxin import cli
from anxin.service import Anxin


@pytest.fixture
def run_cli(store: Store, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """run_cli("roster", "list", ...) -> (exit code, stdout, stderr). The store's master
    key is put in its key file first; the command runs as `in_process` runs it."""
    key_file = store.data_dir / "master.key"
    if not key_file.exists():
        key_file.write_text(store.master_key.encode() + "\n")
    for name in [k for k in os.environ if k.startswith("ANXIN_")]:
        monkeypatch.delenv(name)
    if store.kind == "postgres":
        assert store.config.url and store.schema
        monkeypatch.setenv("ANXIN_DATABASE_URL", store.config.url)
        monkeypatch.setenv("ANXIN_DATABASE_SCHEMA", store.schema)
        monkeypatch.setenv("ANXIN_MASTER_KEY_FILE", str(key_file))

    def run(*args: str) -> tuple[int, str, str]:
        argv = list(args) if store.kind == "postgres" else [*args, "--data-dir", str(store.data_dir)]
        r = in_process(argv, dict(os.environ), Path.cwd())
        return r.returncode, r.stdout, r.stderr

    yield run


def in_process(argv: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """The command's entry point called here, as its process would run it: this environment
    and working directory, no input, its output captured; the applications it opened are
    closed after (a process would close them by ending)."""
    import anxin.service

    saved_env, saved_cwd, saved_stdin = dict(os.environ), os.getcwd(), sys.stdin
    opened: list[Anxin] = []
    real_open = anxin.service.open_app

    def open_and_keep(*a: Any, **kw: Any) -> Anxin:
        app = real_open(*a, **kw)
        opened.append(app)
        return app

    out, err = io.StringIO(), io.StringIO()
    os.environ.clear()
    os.environ.update(env)
    os.chdir(cwd)
    sys.stdin = io.StringIO("")
    anxin.service.open_app = open_and_keep  # type: ignore[assignment]
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = cli.main(argv)
            except SystemExit as e:  # argparse's usage errors
                code = e.code if isinstance(e.code, int) else 1
    finally:
        anxin.service.open_app = real_open  # type: ignore[assignment]
        sys.stdin = saved_stdin
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
        for app in opened:
            app.close()
    return subprocess.CompletedProcess(["anxin", *argv], code, out.getvalue(), err.getvalue())
