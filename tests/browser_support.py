"""Real-browser fixtures: the demo district in its own SQLite file, served by uvicorn on a
free 127.0.0.1 port in a background thread, and Debian's Chromium driven by Playwright.

Never `playwright install`: the system Chromium (/usr/bin/chromium, with fonts-noto-cjk)
is used. Screenshots go to test-artifacts/screenshots/ (git-ignored)."""

from __future__ import annotations

import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from anxin.crypto import MasterKey
from anxin.demo import DEMO_PASSWORD, load_demo
from anxin.service import Anxin
from anxin.storage import StoreConfig
from web.app import create_app

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SHOTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "screenshots"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LiveServer:
    """The real application behind uvicorn in a thread of this process."""

    def __init__(self, app: Anxin, web: Any) -> None:
        self.app = app
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(web, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="anxin-live-server", daemon=True)

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/login", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError("the live server did not answer within 30 s")

    def stop(self) -> bool:
        """Whether the server has stopped (its requests finished)."""
        self.server.should_exit = True
        self.thread.join(timeout=30)
        return not self.thread.is_alive()


@pytest.fixture(scope="session", name="live")
def live_fixture() -> Iterator[LiveServer]:
    with tempfile.TemporaryDirectory() as tmp:
        app = Anxin(StoreConfig(url=None, data_dir=Path(tmp)), [MasterKey.generate()])
        load_demo(app, students_per_school=200)
        server = LiveServer(app, create_app(app, background_seconds=None))
        server.start()
        try:
            yield server
        finally:
            # A request still running holds the store: closing it under a sqlite3 call
            # would crash the process, so a server that did not stop keeps it open.
            if server.stop():
                app.close()


@pytest.fixture(scope="session", name="chromium")
def chromium_fixture() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


class Session:
    """One person's browser context (own cookies) with a page; collects any JS dialog."""

    def __init__(self, browser: Any, live: LiveServer, **context: Any) -> None:
        context.setdefault("viewport", {"width": 1280, "height": 900})
        self.context = browser.new_context(base_url=live.url, locale="zh-CN", **context)
        self.context.set_default_timeout(10_000)
        self.page = self.context.new_page()
        self.dialogs: list[str] = []

        def on_dialog(d: Any) -> None:
            self.dialogs.append(d.message)
            d.dismiss()

        self.page.on("dialog", on_dialog)

    def login(self, username: str, password: str = DEMO_PASSWORD) -> Any:
        page = self.page
        page.goto("/login")
        page.get_by_label("用户名").fill(username)
        page.get_by_label("密码").fill(password)
        page.get_by_role("button", name="登录").click()
        page.wait_for_load_state()
        return page

    def shot(self, name: str) -> Path:
        SHOTS.mkdir(parents=True, exist_ok=True)
        path = SHOTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def close(self) -> None:
        self.context.close()


@pytest.fixture(name="open_session")
def open_session_fixture(chromium: Any, live: LiveServer) -> Iterator[Any]:
    """open_session(**context) -> a fresh Session (closed after the test)."""
    made: list[Session] = []

    def make(**context: Any) -> Session:
        s = Session(chromium, live, **context)
        made.append(s)
        return s

    yield make
    for s in made:
        s.close()
