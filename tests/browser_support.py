"""Real-browser fixtures: the demo district in its own SQLite file, served by uvicorn on a
free 127.0.0.1 port in a background thread, and Debian's Chromium driven by Playwright.

Never `playwright install`: the system Chromium (/usr/bin/chromium, with fonts-noto-cjk)
is used. Screenshots go to test-artifacts/screenshots/ (git-ignored).

Every page a browser test visits is checked with axe-core (WCAG 2.1 A and AA): the script
is added to every document of a Session's context (from the npm registry, installed by
.ci/axe-core into tests/browser/node_modules) and runs once the page has loaded; its
result is collected before the test's next action on a page (a click, a fill: Playwright's
locator handler, which waits while the page's check has not finished), before `goto`, and
when the test ends; any violation fails the test, listing each page, rule and element."""

from __future__ import annotations

import json
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
AXE = Path(__file__).resolve().parent / "browser" / "node_modules" / "axe-core" / "axe.min.js"
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
# Added to every document after axe itself: once the page has loaded, axe runs on it, once
# (window.__anxinAxe: the violations, a promise); a check asked before that starts it.
AXE_AUTO = """(() => {
  const tags = __TAGS__;
  window.__anxinAxeRun = () => window.axe.run(document, { runOnly: { type: "tag", values: tags }, resultTypes: ["violations"] })
    .then((result) => result.violations.map((v) => ({
      id: v.id, impact: v.impact, help: v.help,
      nodes: v.nodes.slice(0, 5).map((n) => n.target.join(" ") + ": " + (n.failureSummary || "").replace(/\\s+/g, " ")),
    })));
  window.addEventListener("load", () => { if (!window.__anxinAxe) { window.__anxinAxe = window.__anxinAxeRun(); } });
})();""".replace("__TAGS__", json.dumps(AXE_TAGS))
AXE_PENDING = "html:not([data-axe-collected])"  # a page whose check the test has not collected
# Asked of a page (Playwright's evaluate is not an inline script: the CSP stays as served):
# this document's violations, waiting for its run; `again`, a new run after that one.
AXE_RESULT = """async (again) => {
  if (!window.__anxinAxeRun) { return null; }
  if (!window.__anxinAxe) { window.__anxinAxe = window.__anxinAxeRun(); }
  if (again) { window.__anxinAxe = window.__anxinAxe.then(() => window.__anxinAxeRun()); }
  // never wait for ever: a run that has not answered in 20 s is started once more, then given up
  const within = (p) => Promise.race([p, new Promise((r) => setTimeout(() => r("__timeout__"), 20000))]);
  let found = await within(window.__anxinAxe);
  if (found === "__timeout__") { window.__anxinAxe = window.__anxinAxeRun(); found = await within(window.__anxinAxe); }
  document.documentElement.setAttribute("data-axe-collected", "");
  return found;
}"""


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
    """One person's browser context (own cookies) with a page; collects any JS dialog, and
    checks every page it loads with axe-core (`checked`, `violations`)."""

    def __init__(self, browser: Any, live: LiveServer, **context: Any) -> None:
        if not AXE.is_file():
            raise RuntimeError(f"axe-core is not installed ({AXE}): run .ci/axe-core (make test's set-up does)")
        context.setdefault("viewport", {"width": 1280, "height": 900})
        self.context = browser.new_context(base_url=live.url, locale="zh-CN", **context)
        self.context.set_default_timeout(10_000)
        # Without script (a test of the pages as served to a browser that runs none) axe-core
        # cannot run: those pages are checked by the tests that load them with script.
        self.scripts = context.get("java_script_enabled", True)
        if self.scripts:
            self.context.add_init_script(path=str(AXE))
            self.context.add_init_script(script=AXE_AUTO)
        self.page = self.context.new_page()
        self.dialogs: list[str] = []
        self.checked: list[str] = []  # each page checked with axe-core, by address
        self.violations: list[str] = []
        # Before the test acts on a page (which may leave it), that page's check is collected.
        if self.scripts:
            self.page.add_locator_handler(
                self.page.locator(AXE_PENDING), lambda _locator: self.check_accessibility(), no_wait_after=True
            )
        goto = self.page.goto

        def checked_goto(*args: Any, **kwargs: Any) -> Any:
            self.check_accessibility()
            return goto(*args, **kwargs)

        self.page.goto = checked_goto  # type: ignore[method-assign]

        def on_dialog(d: Any) -> None:
            self.dialogs.append(d.message)
            d.dismiss()

        self.page.on("dialog", on_dialog)

    def check_accessibility(self, again: bool = False) -> list[str]:
        """The violations (WCAG 2.1 A/AA) axe-core finds on the page as it loaded (`again`:
        as it is now), each kept in `violations` (and returned) as one line: the address,
        the rule, its help and the elements."""
        from playwright.sync_api import Error as PlaywrightError

        page = self.page
        url = page.url
        if url == "about:blank" or not self.scripts:
            return []
        try:
            found = page.evaluate(AXE_RESULT, again)
        except PlaywrightError as e:
            if "destroyed" in str(e) or "navigat" in str(e) or "closed" in str(e):
                return []  # the page went away by itself (a script, a closed tab)
            raise
        if found is None:  # no document of ours (about:blank, a download)
            return []
        if found == "__timeout__":
            raise AssertionError(f"axe-core did not finish its check of {url} (twice 20 s)")
        self.checked.append(url)
        lines = [f"{url}: {v['id']} ({v['impact']}) {v['help']} -> {' | '.join(v['nodes'])}" for v in found]
        self.violations += [line for line in lines if line not in self.violations]
        return lines

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
        s.check_accessibility()  # the page the test ended on, as it was left
        s.close()
    found = [line for s in made for line in s.violations]
    assert not found, "axe-core (WCAG 2.1 A/AA) found violations:\n" + "\n".join(found)
