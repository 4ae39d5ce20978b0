"""The Makefile's dependency graph (issue 18, first run): `make run` installs only what running
needs (the package: no browser, no apt-get, no root); the browser and the CJK font come with
`make test`'s set-up; `.ci/run` still installs everything from nothing through `make test`.

Each target's commands are read with `make -n -B` (print every command the target would run,
as on a machine with nothing installed, and run none of them)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# What only the browser tests need, and what would need root.
BROWSER_OR_ROOT = ("browser-deps", "apt-get", "apt ", "sudo", "chromium", "fonts-noto-cjk", "playwright install")

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="GNU make is not installed")


def commands(target: str) -> list[str]:
    """Every command `make TARGET` runs on a machine where nothing is installed yet."""
    done = subprocess.run(
        ["make", "-n", "-B", "--no-print-directory", target],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return [line.strip() for line in done.stdout.splitlines() if line.strip()]


def test_make_run_installs_the_package_and_serves_without_the_browser_or_root() -> None:
    run = commands("run")
    assert not [c for c in run if any(word in c for word in BROWSER_OR_ROOT)], run
    # the package without the test tools, then the application
    assert any(c.endswith("pip install --quiet -e .") for c in run), run
    assert not [c for c in run if "[dev]" in c], run
    assert run[-1].endswith("anxin serve --host 127.0.0.1 --port 8000")


def test_make_test_also_sets_up_the_browser_and_the_test_tools_before_pytest() -> None:
    test = commands("test")
    browser = test.index("./.ci/browser-deps")
    dev = next(i for i, c in enumerate(test) if "-e '.[dev]'" in c)
    pytest_ = next(i for i, c in enumerate(test) if "/pytest " in c)
    assert dev < pytest_ and browser < pytest_
    # the only place that installs the browser and font asks apt for exactly those, when missing
    script = (ROOT / ".ci" / "browser-deps").read_text(encoding="utf-8")
    assert "apt-get install" in script and "chromium" in script and "fonts-noto-cjk" in script
    assert "[ -x /usr/bin/chromium ] || need+=(chromium)" in script


@pytest.mark.parametrize("target", ["lint", "fmt", "bench"])
def test_lint_fmt_and_bench_need_the_test_tools_but_not_the_browser(target: str) -> None:
    cmds = commands(target)
    assert any("-e '.[dev]'" in c for c in cmds), cmds
    assert not [c for c in cmds if any(word in c for word in BROWSER_OR_ROOT)], cmds


def test_ci_installs_everything_from_nothing_through_make_test() -> None:
    script = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "make test" in script.splitlines()[-1]
    # and nothing else installs the browser behind make test's back
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert makefile.count("./.ci/browser-deps") == 1
