"""Several worker processes: sessions and the login throttle live in the database,
so two applications over one store (as two uvicorn workers are) share them; and
`anxin serve --workers 2` really serves one session from either process."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from browser_support import free_port
from conftest import PG_URL, Store, make_school
from fastapi.testclient import TestClient
from store_support import raw_bytes

from anxin.passwords import hash_password
from anxin.service import Anxin
from web.app import create_app
from web.security import COOKIE, IDLE_SECONDS, TOUCH_SECONDS, session_hash

PASSWORD = "workers-pass-2026"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
ROOT = Path(__file__).resolve().parents[2]


class Time:
    """Seconds the test moves by hand (the sessions' and the throttle's clock)."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def username_of(app: Anxin, staff_id: str) -> str:
    row = app.db.fetchone("SELECT username FROM {t}anxin_staff WHERE staff_id = ?", (staff_id,))
    assert row is not None
    return str(row[0])


@dataclass
class Workers:
    """Two web applications, each with its own `Anxin`, over one store."""

    apps: list[Anxin]
    clients: list[TestClient]
    time: Time
    username: str
    staff_id: str

    def login_token(self, worker: int) -> str:
        """The login form's CSRF token (GET /login sets the cookie it is bound to)."""
        found = CSRF.search(self.clients[worker].get("/login").text)
        assert found
        return found.group(1)

    def login(self, worker: int, password: str = PASSWORD, username: str | None = None) -> httpx.Response:
        c = self.clients[worker]
        c.cookies.clear()
        data = {"username": username or self.username, "password": password, "next": "/"}
        return c.post("/login", data={**data, "csrf_token": self.login_token(worker)}, follow_redirects=False)

    def get(self, worker: int, sid: str, path: str = "/") -> httpx.Response:
        c = self.clients[worker]
        c.cookies.set(COOKIE, sid, domain="testserver.local")
        return c.get(path, follow_redirects=False)

    def post(self, worker: int, sid: str, path: str, data: dict[str, str]) -> httpx.Response:
        c = self.clients[worker]
        c.cookies.set(COOKIE, sid, domain="testserver.local")
        return c.post(path, data=data, follow_redirects=False)

    def csrf(self, worker: int, sid: str) -> str:
        found = CSRF.search(self.get(worker, sid, "/account/password").text)
        assert found
        return found.group(1)

    def row(self, sid: str) -> tuple[Any, ...] | None:
        return self.apps[0].db.fetchone(
            "SELECT staff_id, created, seen, data FROM {t}anxin_web_sessions WHERE sid_hash = ?", (session_hash(sid),)
        )


@pytest.fixture
def workers(store: Store) -> Iterator[Workers]:
    first = store.open()
    school = make_school(first)
    first.accounts.set_password_hash(school.teacher.staff_id, hash_password(PASSWORD))
    second = store.open()  # a second process's application: its own connections and caches
    clock = Time()
    clients = []
    for app in (first, second):
        web = create_app(app, background_seconds=None)
        web.state.web.sessions.clock = clock
        web.state.web.throttle.clock = clock
        client = TestClient(web, base_url="http://testserver")
        client.__enter__()
        clients.append(client)
    try:
        yield Workers(
            [first, second], clients, clock, username_of(first, school.teacher.staff_id), school.teacher.staff_id
        )
    finally:
        for c in clients:
            c.__exit__(None, None, None)


def sid_of(r: httpx.Response) -> str:
    assert r.status_code == 303, r.status_code
    sid = r.cookies.get(COOKIE)
    assert sid
    return sid


def test_a_login_in_one_worker_is_valid_in_the_other_and_a_logout_in_either_ends_it(workers: Workers) -> None:
    sid = sid_of(workers.login(0))
    home = workers.get(1, sid)
    assert home.status_code == 200 and "我的待办" in home.text
    # the CSRF token is the same whichever worker renders the form, and it is not stored
    token = workers.csrf(0, sid)
    assert workers.csrf(1, sid) == token
    assert workers.post(1, sid, "/logout", {"csrf_token": "forged"}).status_code == 403
    assert workers.post(1, sid, "/logout", {"csrf_token": token}).status_code == 303
    assert workers.row(sid) is None
    for w in (0, 1):
        r = workers.get(w, sid)
        assert r.status_code == 303 and r.headers["location"].startswith("/login")


def test_a_new_session_id_on_every_login_and_the_old_one_ends(workers: Workers) -> None:
    first = sid_of(workers.login(0))
    workers.clients[1].cookies.clear()
    token = workers.login_token(1)
    workers.clients[1].cookies.set(COOKIE, first, domain="testserver.local")
    again = workers.clients[1].post(
        "/login",
        data={"username": workers.username, "password": PASSWORD, "csrf_token": token},
        follow_redirects=False,
    )
    second = sid_of(again)
    assert second != first
    assert workers.get(0, first).status_code == 303
    assert workers.get(0, second).status_code == 200


def test_failed_logins_are_counted_across_workers(workers: Workers) -> None:
    for w in (0, 1, 0, 1, 0):
        assert workers.login(w, "wrong-password").status_code == 401
    for w in (0, 1):  # past the five free attempts, in either worker, the next one waits in both
        r = workers.login(w)
        assert r.status_code == 429 and "2 秒后再试" in r.text
    rows = workers.apps[1].db.fetch("SELECT detail FROM {t}anxin_audit WHERE kind = 'login_failed' ORDER BY seq")
    assert len(rows) == 7 and sum("throttled" in r[0] for r in rows) == 2
    workers.time.advance(2)  # the delay passes (seconds, not a lockout)
    assert workers.login(1).status_code == 303
    who = [r[0] for r in workers.apps[0].db.fetch("SELECT who FROM {t}anxin_login_throttle")]
    assert len(who) == 1 and who[0].startswith("a:")  # the name's counters started again by the login


def test_failures_per_address_delay_every_name_from_it_across_workers(workers: Workers) -> None:
    for n in range(30):  # a whole school behind one address may mistype 30 times
        assert workers.login(n % 2, "x-wrong-x", username=f"nobody{n}").status_code == 401
    assert workers.login(0).status_code == 429


def test_a_session_expires_after_inactivity_and_seen_is_written_at_most_once_a_minute(workers: Workers) -> None:
    sid = sid_of(workers.login(0))
    created = workers.row(sid)
    assert created is not None and created[0] == workers.staff_id and created[2] == workers.time.now
    workers.time.advance(TOUCH_SECONDS - 1)
    assert workers.get(1, sid).status_code == 200
    assert workers.row(sid) == created  # no write within the minute
    workers.time.advance(20 * 60)
    assert workers.get(1, sid).status_code == 200
    row = workers.row(sid)
    assert row is not None and row[2] == workers.time.now  # seen moved
    workers.time.advance(IDLE_SECONDS - 60)  # 49 minutes after login, 29 after the last request
    assert workers.get(0, sid).status_code == 200
    workers.time.advance(IDLE_SECONDS + 1)
    r = workers.get(1, sid)
    assert r.status_code == 303 and r.headers["location"].startswith("/login")
    assert workers.row(sid) is None


def test_expired_sessions_are_swept_at_the_next_login(workers: Workers) -> None:
    old = sid_of(workers.login(0))
    workers.time.advance(IDLE_SECONDS + 1)
    new = sid_of(workers.login(1))
    assert workers.row(old) is None and workers.row(new) is not None


def test_a_password_change_in_one_worker_ends_the_persons_other_sessions(workers: Workers) -> None:
    here = sid_of(workers.login(0))
    elsewhere = sid_of(workers.login(1))
    r = workers.post(
        0,
        here,
        "/account/password",
        {
            "csrf_token": workers.csrf(0, here),
            "current": PASSWORD,
            "new": "another-passw0rd",
            "again": "another-passw0rd",
        },
    )
    assert r.status_code == 303
    assert workers.get(1, elsewhere).status_code == 303
    # the confirmation is kept with the session, and shown once by whichever worker serves next
    page = workers.get(1, here)
    assert page.status_code == 200 and "密码已修改" in page.text
    assert "密码已修改" not in workers.get(0, here).text
    assert workers.row(here)[3] is None  # type: ignore[index]


def test_nothing_stored_for_sessions_or_failed_logins_is_in_clear(workers: Workers, store: Store) -> None:
    stranger = "张三丰-no-such-account"
    assert workers.login(0, "x-wrong-x", username=stranger).status_code == 401
    sid = sid_of(workers.login(1))
    token = workers.csrf(1, sid)
    r = workers.post(
        0,
        sid,
        "/account/password",
        {"csrf_token": token, "current": PASSWORD, "new": "another-passw0rd", "again": "another-passw0rd"},
    )
    assert r.status_code == 303
    row = workers.row(sid)
    assert row is not None and row[3]  # the flash waits in the session, sealed
    raw = raw_bytes(store)
    assert session_hash(sid).encode() in raw  # the scan does see the sessions table
    for clear in (sid, token, stranger, "密码已修改", "testclient"):
        assert clear.encode() not in raw, clear


# -- the real thing: `anxin serve --workers 2` ------------------------------------------------
def test_anxin_serve_with_two_workers_serves_one_session_from_both(store: Store, tmp_path: Path) -> None:
    app = store.open()
    school = make_school(app)
    app.accounts.set_password_hash(school.teacher.staff_id, hash_password(PASSWORD))
    username = username_of(app, school.teacher.staff_id)
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
            [
                sys.executable,
                "-m",
                "anxin.cli",
                "serve",
                "--data-dir",
                str(store.data_dir),
                "--port",
                str(port),
                "--workers",
                "2",
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        # both workers up: each logs the process it serves in
        deadline = time.monotonic() + 60
        while len(set(re.findall(r"serving in process (\d+)", log_path.read_text()))) < 2:
            assert server.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, "the workers did not start within 60 s:\n" + log_path.read_text()
            time.sleep(0.1)
        with httpx.Client(base_url=base) as c:
            form = CSRF.search(c.get("/login").text)
            assert form
            login = c.post("/login", data={"username": username, "password": PASSWORD, "csrf_token": form.group(1)})
        sid = sid_of(login)
        statuses: list[int] = []
        lock = threading.Lock()

        def browse() -> None:
            for _ in range(5):  # a new connection per request: any worker may take it
                r = httpx.get(base + "/", cookies={COOKIE: sid}, follow_redirects=False, timeout=30)
                with lock:
                    statuses.append(r.status_code)

        threads = [threading.Thread(target=browse) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert statuses == [200] * 20, statuses
        served = set(re.findall(r"\[(\d+)\] anxin\.web\.access GET / 200", log_path.read_text()))
        assert len(served) == 2, log_path.read_text()  # both workers served the one session
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, 9)
            server.wait()


def test_connections_on_a_socket_bound_by_uvicorn_for_workers_get_nodelay() -> None:
    """uvicorn binds the workers' listening socket with proto 0; asyncio would leave Nagle on
    for its connections (each response then waits ~40 ms for the client's delayed ACK)."""
    import asyncio.base_events as base_events
    import socket

    from web.app import _nodelay_on_every_tcp_socket  # what create_app installs in every worker

    _nodelay_on_every_tcp_socket()
    sock = socket.socket(socket.AF_INET)  # as uvicorn's Config.bind_socket makes it
    try:
        assert sock.proto == 0
        base_events._set_nodelay(sock)
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    finally:
        sock.close()


# -- workers starting together ----------------------------------------------------------------
_OPEN = """
import os, sys, time
from pathlib import Path
from anxin.crypto import MasterKey
from anxin.service import Anxin
from anxin.storage import StoreConfig

config = StoreConfig(url=os.environ.get("T_URL") or None, data_dir=Path(sys.argv[1]),
                     schema=os.environ.get("T_SCHEMA") or None)
key = MasterKey.decode(os.environ["T_KEY"])
print("ready", flush=True)
while not os.path.exists(sys.argv[2]):
    time.sleep(0.001)
Anxin(config, [key]).close()
print("opened", flush=True)
"""


def test_worker_processes_opening_one_store_at_once_all_start(store: Store, tmp_path: Path) -> None:
    """As `anxin serve --workers N` starts N processes that each open the store at the same
    moment (and make or check its tables): none may fail with "database is locked" or a
    duplicate table. Four processes, three times: on a new store, then on the one made."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANXIN_")}
    env["T_KEY"] = store.master_key.encode()
    if store.kind == "postgres":
        assert PG_URL and store.schema
        env["T_URL"], env["T_SCHEMA"] = PG_URL, store.schema
    for attempt in range(3):
        go = tmp_path / f"go-{attempt}"
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", _OPEN, str(store.data_dir), str(go)],
                cwd=ROOT,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(4)
        ]
        try:
            for p in procs:
                assert p.stdout is not None
                assert p.stdout.readline().strip() == "ready", p.communicate()[1]
            go.touch()  # all four imported and waiting: open the store together
            outs = [p.communicate(timeout=120) for p in procs]
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
        failed = [err for p, (_out, err) in zip(procs, outs, strict=True) if p.returncode != 0]
        assert not failed, failed[0]
        assert all(out.strip() == "opened" for out, _err in outs)
    app = store.open()  # and the store they made is whole: its tables and views answer
    assert app.views.positions()
