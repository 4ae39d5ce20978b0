"""Signing in per OWASP ASVS level 2 (issue 15): the throttle counted before any password
is checked (100 parallel logins verify at most the budget), a progressive delay rather
than a lockout, known and unknown names alike in time, X-Forwarded-For only from a
configured proxy, an absolute session lifetime, and the current-password check of a
password change throttled and audited. Each test has its own store and web application
(the throttle's counters and clock are its own)."""

from __future__ import annotations

import re
import statistics
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from conftest import ADMIN, Store, make_school
from fastapi.testclient import TestClient

from anxin import passwords
from anxin.accounts import AttemptRule
from anxin.passwords import hash_password
from anxin.service import Anxin
from web.app import create_app
from web.security import COOKIE, IDLE_SECONDS, LOGIN_COOKIE, LoginPolicy, TrustedProxies

PASSWORD = "login-tests-2026"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


class Time:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Site:
    app: Anxin
    web: Any
    time: Time
    username: str
    staff_id: str
    other: str  # a second account's login name
    _clients: list[TestClient]

    @property
    def throttle(self) -> Any:
        return self.web.state.web.throttle

    def client(self, address: str = "testclient") -> TestClient:
        c = TestClient(self.web, base_url="http://testserver", client=(address, 50000))
        c.__enter__()
        self._clients.append(c)
        return c

    def form(self, c: TestClient) -> str:
        found = CSRF.search(c.get("/login").text)
        assert found
        return found.group(1)

    def login(
        self, c: TestClient, password: str = PASSWORD, username: str | None = None, **headers: str
    ) -> httpx.Response:
        data = {"username": username or self.username, "password": password, "csrf_token": self.form(c)}
        return c.post("/login", data=data, headers=headers, follow_redirects=False)

    def audit(self, reason: str) -> int:
        from anxin.audit.chain import settle

        settle(self.app)  # entries recorded while the chain was busy, chained now (PostgreSQL)
        rows = self.app.db.fetch("SELECT detail FROM {t}anxin_audit WHERE kind = 'login_failed'")
        return sum(f'"reason":"{reason}"' in r[0] for r in rows)


@pytest.fixture
def site(store: Store) -> Iterator[Site]:
    app = store.open()
    school = make_school(app)
    pw = hash_password(PASSWORD)
    for actor in (school.teacher, school.counselor):
        app.accounts.set_password_hash(actor.staff_id, pw)
    names = dict(app.db.fetch("SELECT staff_id, username FROM {t}anxin_staff"))
    web = create_app(app, background_seconds=None)
    clock = Time()
    web.state.web.sessions.clock = clock
    web.state.web.throttle.clock = clock
    s = Site(
        app, web, clock, names[school.teacher.staff_id], school.teacher.staff_id, names[school.counselor.staff_id], []
    )
    try:
        yield s
    finally:
        for c in s._clients:
            c.__exit__(None, None, None)


@pytest.fixture
def verifies(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Every argon2 verification made (its duration), counted at the hasher."""
    made: list[float] = []
    lock = threading.Lock()
    real = passwords._hasher

    class Counting:
        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

        def verify(self, h: str, password: str) -> bool:
            started = time.perf_counter()
            try:
                return real.verify(h, password)
            finally:
                with lock:
                    made.append(time.perf_counter() - started)

    monkeypatch.setattr(passwords, "_hasher", Counting())
    return made


def test_100_parallel_logins_check_at_most_the_budget_of_passwords(site: Site, verifies: list[float]) -> None:
    c = site.client()
    token = site.form(c)
    cookie = c.cookies.get(LOGIN_COOKIE)
    c.cookies.clear()  # each request names the form's cookie itself
    budget = site.throttle.policy.pair.free

    def attempt(n: int) -> int:
        password = PASSWORD if n == 50 else f"wrong-guess-{n}"  # the right one in the middle
        r = c.post(
            "/login",
            data={"username": site.username, "password": password, "csrf_token": token},
            headers={"cookie": f"{LOGIN_COOKIE}={cookie}"},
            follow_redirects=False,
        )
        return r.status_code

    with ThreadPoolExecutor(max_workers=100) as pool:
        statuses = list(pool.map(attempt, range(100)))
    assert len(verifies) <= budget, f"{len(verifies)} passwords checked, budget {budget}"
    assert statuses.count(429) >= 100 - budget
    assert statuses.count(401) + statuses.count(303) == len(verifies)
    assert site.audit("throttled") == statuses.count(429)


def test_unknown_and_known_names_answer_in_the_same_time(site: Site, verifies: list[float]) -> None:
    roomy = AttemptRule(free=1000, base=1, cap=1, forget=900)
    site.throttle.policy = LoginPolicy(pair=roomy, name=roomy, address=roomy, check=roomy)
    c = site.client()
    known: list[float] = []
    unknown: list[float] = []
    for n in range(9):
        for name, times in ((site.username, known), (f"nobody-{n}", unknown)):
            data = {"username": name, "password": "wrong-password", "csrf_token": site.form(c)}
            started = time.perf_counter()
            assert c.post("/login", data=data).status_code == 401
            times.append(time.perf_counter() - started)
    assert len(verifies) == 18  # one verification each, the unknown names' against a dummy hash
    ratio = statistics.median(unknown) / statistics.median(known)
    assert 0.5 < ratio < 2, f"unknown {statistics.median(unknown):.3f}s, known {statistics.median(known):.3f}s"


def test_the_delay_grows_and_a_right_password_after_it_signs_in(site: Site) -> None:
    c = site.client()
    for _ in range(5):
        assert site.login(c, "wrong-password").status_code == 401
    r = site.login(c)  # the right password, but the next attempt must wait
    assert r.status_code == 429 and r.headers["retry-after"] == "2" and "2 秒后再试" in r.text
    site.time.advance(2)
    assert site.login(c, "wrong-password").status_code == 401
    r = site.login(c)
    assert r.status_code == 429 and r.headers["retry-after"] == "4"  # twice as long
    site.time.advance(4)
    assert site.login(c).status_code == 303  # no 15-minute lockout
    again = site.client()  # the same address
    for _ in range(5):  # and a success starts the count again
        assert site.login(again, "wrong-password").status_code == 401


def test_an_attacker_elsewhere_does_not_lock_the_person_out(site: Site) -> None:
    site.throttle.proxies = TrustedProxies("10.0.0.0/8")
    proxy = site.client("10.0.0.2")
    for _ in range(10):  # someone hammering the principal's name from one address
        site.login(proxy, "wrong-password", **{"x-forwarded-for": "198.51.100.66"})
    assert site.login(proxy, **{"x-forwarded-for": "198.51.100.66"}).status_code == 429
    # the person themselves, from their own school's address, signs in
    assert site.login(proxy, **{"x-forwarded-for": "203.0.113.10"}).status_code == 303


def test_a_school_behind_one_address_is_not_locked_out_by_a_few_mistakes(site: Site) -> None:
    c = site.client("203.0.113.20")
    for n in range(20):  # twenty colleagues mistype (the old limit per address)
        assert site.login(c, "wrong-password", username=f"colleague{n}").status_code == 401
    assert site.login(c, username=site.other).status_code == 303


def test_x_forwarded_for_is_ignored_unless_the_peer_is_a_configured_proxy(site: Site) -> None:
    assert TrustedProxies.from_env({}).networks == []  # none by default
    c = site.client("127.0.0.1")
    for n in range(5):
        assert site.login(c, "wrong-password", **{"x-forwarded-for": f"192.0.2.{n}"}).status_code == 401
    # the header changed every time, but the address counted is the peer's: throttled
    assert site.login(c, "wrong-password", **{"x-forwarded-for": "192.0.2.99"}).status_code == 429
    # from a configured proxy, the header names the client: another address, another count
    site.throttle.proxies = TrustedProxies("127.0.0.1, 10.0.0.0/8")
    assert site.login(c, "wrong-password", **{"x-forwarded-for": "192.0.2.100"}).status_code == 401
    proxies = site.throttle.proxies
    assert proxies.client("127.0.0.1", "192.0.2.7, 10.1.2.3") == "192.0.2.7"  # proxies skipped
    assert proxies.client("192.0.2.8", "10.9.9.9") == "192.0.2.8"  # not from a proxy: ignored


def test_a_session_past_its_absolute_lifetime_is_refused(site: Site) -> None:
    c = site.client()
    r = site.login(c)
    sid = r.cookies.get(COOKIE)
    assert sid and "Max-Age=43200" in r.headers["set-cookie"]
    lifetime = site.web.state.web.sessions.lifetime
    assert lifetime == 12 * 3600
    elapsed = 0.0
    while elapsed + IDLE_SECONDS / 2 < lifetime:  # busy all day: never idle
        site.time.advance(IDLE_SECONDS / 2)
        elapsed += IDLE_SECONDS / 2
        assert c.get("/", follow_redirects=False).status_code == 200, elapsed
    site.time.advance(lifetime - elapsed + 1)
    r = c.get("/", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/login")
    assert site.login(c).status_code == 303  # signing in again works


def test_current_password_checks_are_throttled_and_audited(site: Site) -> None:
    c = site.client()
    site.login(c)
    token = CSRF.search(c.get("/account/password").text).group(1)  # type: ignore[union-attr]
    new = "a-fresh-passw0rd"

    def change(current: str) -> httpx.Response:
        data = {"csrf_token": token, "current": current, "new": new, "again": new}
        return c.post("/account/password", data=data, follow_redirects=False)

    for _ in range(5):
        assert change("not-my-password").status_code == 400
    assert site.audit("current_password") == 5
    r = change(PASSWORD)  # throttled: not even the right one is checked
    assert r.status_code == 429 and "秒后再试" in r.text
    assert site.audit("current_password_throttled") == 1
    site.time.advance(2)
    assert change(PASSWORD).status_code == 303


def test_guessed_set_up_codes_are_throttled_but_a_staff_room_setting_up_behind_one_address_is_not(
    site: Site,
) -> None:
    school = site.app.roster.school_id("第一中学")
    codes = []
    for n in range(8):  # more people than the free attempts of one address
        _sid, code, _rid = site.app.roster.create_account(
            ADMIN, username=f"room{n}", name="新老师", school_id=school, roles=["class_teacher"], classes=["七年级3班"]
        )
        codes.append(code)
    c = site.client("10.0.0.9")  # the school's one address
    free = site.throttle.policy.check.free
    # each with a valid code, one with a refused password first: never slowed down
    assert c.post(f"/setup/{codes[0]}", data={"new": "short", "again": "short"}).status_code == 400
    for code in codes:
        r = c.post(f"/setup/{code}", data={"new": PASSWORD, "again": PASSWORD}, follow_redirects=False)
        assert r.status_code == 303, r.status_code
    # guessed codes count: past the free attempts the address waits, whatever the code
    guesses = [c.post(f"/setup/guess-{n}", data={"new": PASSWORD, "again": PASSWORD}) for n in range(free + 1)]
    assert [g.status_code for g in guesses] == [404] * free + [429]
    assert "请" in guesses[-1].text and guesses[-1].status_code == 429
