"""The server's log cannot be forged from a request: whatever a request put in a line
(its path, a header, a name) is written with its control characters escaped, so a `%0a`
in a path never starts a line of its own. Every line goes through the formatter of
`SERVE_LOG_CONFIG` (the one logging configuration of `anxin serve`, in every worker)."""

from __future__ import annotations

import io
import logging
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from browser_support import free_port
from conftest import PG_URL, Store

from anxin.cli.serve import SERVE_LOG_CONFIG

ROOT = Path(__file__).resolve().parents[2]


def serve_formatter() -> logging.Formatter:
    """The formatter `anxin serve` gives its one log handler, made as dictConfig makes it."""
    from logging.config import DictConfigurator

    return DictConfigurator({}).configure_formatter(dict(SERVE_LOG_CONFIG["formatters"]["plain"]))  # type: ignore[no-any-return]


def test_a_newline_in_a_requested_path_does_not_start_a_line_of_the_server_log(store: Store, tmp_path: Path) -> None:
    # given `anxin serve` running, its log in a file
    store.open()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANXIN_")}
    env["ANXIN_MASTER_KEY"] = store.master_key.encode()
    if store.kind == "postgres":
        assert PG_URL and store.schema
        env["ANXIN_DATABASE_URL"] = PG_URL
        env["ANXIN_DATABASE_SCHEMA"] = store.schema
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "anxin.cli", "serve", "--data-dir", str(store.data_dir), "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 60
        while "serving in process" not in log_path.read_text():
            assert server.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, "the server did not start within 60 s:\n" + log_path.read_text()
            time.sleep(0.1)

        # when a request's path holds an encoded line feed, carriage return and line separator
        r = httpx.get(base + "/x%0aFORGED%20line%0d%e2%80%a8FORGED2", timeout=30)
        assert r.status_code == 404
        deadline = time.monotonic() + 10
        while "anxin.web.access GET /x" not in log_path.read_text() and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, 9)
            server.wait()

    # then the log has no line the request wrote: the path is on the access line, escaped
    text = log_path.read_text(encoding="utf-8")
    lines = text.splitlines()  # (splits at \r and U+2028 too, as a log reader might)
    assert not [line for line in lines if line.startswith("FORGED")], text
    assert "anxin.web.access GET /x\\nFORGED line\\r\\u2028FORGED2 404" in text, text


def test_every_part_of_a_record_is_escaped_by_the_servers_formatter() -> None:
    # given the server's formatter, and records carrying text from a request: in the
    # message, in its arguments, in an exception's message, and in other controls
    formatter = serve_formatter()
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    logger = logging.getLogger("anxin.test.forged-log")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("login refused for %s", "bob\nFORGED by args\x1b[31m\x85\u2029")
        logger.warning("path /x\r\nFORGED by message")
        try:
            raise ValueError("bad value 'x\nFORGED by exception'")
        except ValueError:
            logger.exception("unhandled on GET %s", "/y\nFORGED by path")
    finally:
        logger.removeHandler(handler)

    # then no line starts where the request's text did, and each control is shown escaped
    text = out.getvalue()
    assert not [line for line in re.split(r"\r\n|[\n\r\x85\u2028\u2029]", text) if line.startswith("FORGED")], text
    assert "login refused for bob\\nFORGED by args\\x1b[31m\\x85\\u2029" in text
    assert "path /x\\r\\nFORGED by message" in text
    assert "unhandled on GET /y\\nFORGED by path" in text
    assert "Traceback (most recent call last):" in text and "ValueError: bad value" in text  # the traceback kept


@pytest.mark.parametrize("name", ["uvicorn.error", "anxin.web", "anxin.web.access"])
def test_the_server_log_config_sends_every_logger_through_that_formatter(name: str) -> None:
    # no logger of the server has a handler of its own (one without the escaping formatter)
    assert "loggers" not in SERVE_LOG_CONFIG or name not in SERVE_LOG_CONFIG["loggers"]
    assert SERVE_LOG_CONFIG["root"]["handlers"] == ["stderr"]
    assert SERVE_LOG_CONFIG["handlers"]["stderr"]["formatter"] == "plain"
