"""Web fixtures: the demo district loaded once per store (a real SQLite file, and a
real PostgreSQL schema when the PostgreSQL suite is on), served by the real FastAPI
application through Starlette's TestClient.

The demo is shared by every web test of a store: tests create their own records
(new cases, new check-ins) rather than depend on an untouched demo, and tests that
destroy things (shred, key rotation) make their own store.
"""

from __future__ import annotations

import re
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import PG_URL, STORES, _pg_exec
from fastapi.testclient import TestClient

from anxin.crypto import MasterKey
from anxin.demo import DEMO_PASSWORD, load_demo
from anxin.service import Anxin
from anxin.storage import StoreConfig
from web.app import create_app

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


class Browser:
    """A logged-in person: a TestClient with their session cookie, that adds the CSRF
    token to every form it posts (as a browser posting a rendered form would)."""

    def __init__(self, client: TestClient, username: str | None) -> None:
        self.client = client
        self.username = username
        self.csrf = ""

    def login(self, username: str, password: str = DEMO_PASSWORD) -> Browser:
        r = self.client.post(
            "/login",
            data={"username": username, "password": password, "next": "/", "csrf_token": self.login_token()},
            follow_redirects=False,
        )
        assert r.status_code == 303, f"login of {username} failed: {r.status_code}"
        self.username = username
        page = self.client.get("/account/password")
        found = CSRF.search(page.text)
        assert found, "no CSRF token on the password page"
        self.csrf = found.group(1)
        return self

    def login_token(self) -> str:
        """The login form's CSRF token (the form sets the pre-session cookie it is bound to).
        A client still signed in as someone else leaves that session first, as a person
        would: the login page only answers someone signed out."""
        page = self.client.get("/login", follow_redirects=False)
        if page.status_code == 303:
            self.client.cookies.delete("anxin_session")
            page = self.client.get("/login", follow_redirects=False)
        assert page.status_code == 200, page.status_code
        found = CSRF.search(page.text)
        assert found, "no CSRF token on the login page"
        return found.group(1)

    def get(self, path: str, **kw: Any) -> Any:
        return self.client.get(path, **kw)

    def post(self, path: str, data: dict[str, Any] | None = None, *, csrf: bool = True, **kw: Any) -> Any:
        data = dict(data or {})
        if csrf:
            data.setdefault("csrf_token", self.csrf)
        kw.setdefault("follow_redirects", False)
        return self.client.post(path, data=data, **kw)

    def api(self, method: str, path: str, **kw: Any) -> Any:
        headers = kw.pop("headers", {})
        if method.upper() in {"POST", "PUT", "PATCH", "DELETE"}:
            headers.setdefault("X-CSRF-Token", self.csrf)
        return self.client.request(method, path, headers=headers, **kw)


class DemoSite:
    def __init__(self, kind: str, app: Anxin, web: Any) -> None:
        self.kind = kind
        self.app = app
        self.web = web
        self._clients: list[TestClient] = []

    def browser(self, username: str | None = None) -> Browser:
        client = TestClient(self.web, base_url="http://testserver")
        client.__enter__()
        self._clients.append(client)
        b = Browser(client, None)
        return b.login(username) if username else b

    def close(self) -> None:
        for c in self._clients:
            c.__exit__(None, None, None)


# One demo per store per test process. `site` is parametrized by store, so pytest tears
# it down whenever the next test file runs on the other store; building the demo again
# each time cost 12-20 s on PostgreSQL per file. The store is built once here and closed
# when the session ends (`_close_demo_stores`).
_STORES: dict[str, tuple[Anxin, Any, tempfile.TemporaryDirectory[str], str | None]] = {}


def _demo_store(kind: str) -> tuple[Anxin, Any]:
    if kind not in _STORES:
        tmp = tempfile.TemporaryDirectory()
        schema = None
        if kind == "postgres":
            schema = "w_" + uuid.uuid4().hex[:12]
            _pg_exec(f"CREATE SCHEMA {schema}")
            config = StoreConfig(url=PG_URL, data_dir=Path(tmp.name), schema=schema)
        else:
            config = StoreConfig(url=None, data_dir=Path(tmp.name))
        app = Anxin(config, [MasterKey.generate()])
        load_demo(app, students_per_school=200)
        _STORES[kind] = (app, create_app(app, background_seconds=None), tmp, schema)
    app, web, _tmp, _schema = _STORES[kind]
    return app, web


@pytest.fixture(scope="session", autouse=True)
def _close_demo_stores() -> Iterator[None]:
    yield
    while _STORES:
        _kind, (app, _web, tmp, schema) = _STORES.popitem()
        app.close()
        if schema:
            _pg_exec(f"DROP SCHEMA {schema} CASCADE")
        tmp.cleanup()


@pytest.fixture(scope="session", params=STORES)
def site(request: pytest.FixtureRequest) -> Iterator[DemoSite]:
    app, web = _demo_store(request.param)
    s = DemoSite(request.param, app, web)
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def browse(site: DemoSite) -> Any:
    """browse("teacher1") -> a Browser logged in as that demo account."""
    return site.browser
