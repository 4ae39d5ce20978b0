"""Two-step verification through the pages: enrolment on one's own page (a QR code drawn in
the page, the secret in groups, confirmed by a first code, ten recovery codes shown once);
a login then asks the code, and until it is given no page or API answers; a wrong code is
refused and audited like a wrong password, counted by the throttle first; a replayed code
is refused; a recovery code works once; the half-login expires; a school's requirement
takes its content roles to enrolment before any other page; an administrator's reset;
turning it off.

Each test has its own store, school and web application, with one clock for the
application (the codes' time steps) and the web (sessions, the throttle); codes are
computed with pyotp from the secret the page shows."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pyotp
import pytest
from conftest import ADMIN, Clock, School, Store, make_school
from fastapi.testclient import TestClient

from anxin.passwords import hash_password
from anxin.service import Anxin
from web.app import create_app
from web.security import COOKIE

PASSWORD = "two-step-web-2026"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
SECRET = re.compile(r'<code class="token secret">([A-Z2-7 ]+)</code>')
RECOVERY = re.compile(r"<li><code>([a-z2-9]{5}-[a-z2-9]{5})</code></li>")


@dataclass
class Site:
    app: Anxin
    web: Any
    clock: Clock
    school: School
    admin: str  # the district's administrator's staff id
    names: dict[str, str]  # staff id -> login name
    clients: list[TestClient]

    def client(self) -> TestClient:
        c = TestClient(self.web, base_url="http://testserver")
        c.__enter__()
        self.clients.append(c)
        return c

    def login(self, c: TestClient, staff_id: str, password: str = PASSWORD, next: str = "/") -> httpx.Response:
        token = CSRF.search(c.get("/login").text)
        assert token
        data = {"username": self.names[staff_id], "password": password, "next": next, "csrf_token": token.group(1)}
        return c.post("/login", data=data, follow_redirects=False)

    def code(self, secret: str, steps: int = 0) -> str:
        return str(pyotp.TOTP(secret).at(self.clock.now.timestamp() + 30 * steps))

    def wrong_code(self, secret: str) -> str:
        """Six digits that are no code of this secret's within the window."""
        window = {self.code(secret, n) for n in (-1, 0, 1)}
        return next(c for c in ("000000", "111111", "222222", "333333") if c not in window)

    def entries(self, kind: str, who: str | None = None) -> list[tuple[str, str, str]]:
        rows = self.app.db.fetch(
            "SELECT actor_id, subject, detail FROM {t}anxin_audit WHERE kind = ? ORDER BY seq", (kind,)
        )
        return [(a, s, d) for a, s, d in rows if who is None or who in (a, s)]


@pytest.fixture
def site(store: Store, clock: Clock) -> Iterator[Site]:
    app = store.open(clock)
    school = make_school(app)
    admin = app.roster.add_staff(ADMIN, username="admin-web", name="管理员", school_id=None, roles=["administrator"])
    pw = hash_password(PASSWORD)
    for staff_id, *_rest in app.db.fetch("SELECT staff_id FROM {t}anxin_staff"):
        app.accounts.set_password_hash(staff_id, pw)
    web = create_app(app, background_seconds=None)
    web.state.web.sessions.clock = web.state.web.throttle.clock = lambda: clock.now.timestamp()
    names = dict(app.db.fetch("SELECT staff_id, username FROM {t}anxin_staff"))
    s = Site(app, web, clock, school, admin, names, [])
    try:
        yield s
    finally:
        for c in s.clients:
            c.__exit__(None, None, None)


def csrf_of(page: httpx.Response) -> str:
    found = CSRF.search(page.text)
    assert found, page.text[:500]
    return found.group(1)


def signed_in(site: Site, staff_id: str) -> TestClient:
    c = site.client()
    r = site.login(c, staff_id)
    assert r.status_code == 303 and r.headers["location"] == "/", r.headers.get("location")
    return c


def enrol_on_own_page(site: Site, c: TestClient) -> tuple[str, list[str]]:
    """Through the account page: open enrolment, read the secret shown, confirm with a code."""
    page = c.get("/account/two-step/enrol")
    assert page.status_code == 200
    secret = SECRET.search(page.text)
    assert secret
    key = secret.group(1).replace(" ", "")
    done = c.post(
        "/account/two-step/enrol", data={"code": site.code(key), "csrf_token": csrf_of(page)}, follow_redirects=False
    )
    assert done.status_code == 200, done.text[:300]
    return key, RECOVERY.findall(done.text)


def enrolled(site: Site, staff_id: str) -> str:
    c = signed_in(site, staff_id)
    key, _ = enrol_on_own_page(site, c)
    site.clock.advance(seconds=30)  # the confirming code's step is spent
    return key


def second_step(site: Site, c: TestClient, code: str) -> httpx.Response:
    page = c.get("/login/two-step")
    assert page.status_code == 200, page.status_code
    return c.post("/login/two-step", data={"code": code, "csrf_token": csrf_of(page)}, follow_redirects=False)


# -- enrolment ---------------------------------------------------------------------------------------
def test_enrolment_on_ones_own_page_shows_a_qr_code_and_takes_effect_once_confirmed(site: Site) -> None:
    me = site.school.counselor.staff_id
    c = signed_in(site, me)

    # the account page offers it; the header links to it
    page = c.get("/account/two-step")
    assert "未开启" in page.text and 'href="/account/two-step/enrol"' in page.text
    assert 'href="/account/two-step"' in c.get("/").text

    # the enrolment page: a QR code drawn in the page (no request leaves the site), the secret in groups of four
    page = c.get("/account/two-step/enrol")
    assert page.status_code == 200 and "<svg" in page.text and 'class="segno"' in page.text
    assert "<img" not in page.text and "http://" not in page.text.split("<svg", 1)[1].split("</svg>", 1)[0]
    shown = SECRET.search(page.text)
    assert shown and re.fullmatch(r"([A-Z2-7]{4} )+[A-Z2-7]{4}", shown.group(1))
    key = shown.group(1).replace(" ", "")
    assert c.get("/account/two-step/enrol").text.count(shown.group(1)) == 1  # the same secret until confirmed

    # a wrong code: refused with a clear message, nothing on
    r = c.post(
        "/account/two-step/enrol",
        data={"code": site.wrong_code(key), "csrf_token": csrf_of(page)},
        follow_redirects=False,
    )
    assert r.status_code == 400 and "验证码不正确" in html.unescape(r.text)
    assert not site.app.two_step.enrolled(me)

    # the app's code: on, and the ten recovery codes shown this once
    r = c.post(
        "/account/two-step/enrol", data={"code": site.code(key), "csrf_token": csrf_of(page)}, follow_redirects=False
    )
    assert r.status_code == 200 and "两步验证已开启" in r.text
    assert len(set(RECOVERY.findall(r.text))) == 10
    assert site.app.two_step.enrolled(me)
    assert "已开启" in c.get("/account/two-step").text
    assert c.get("/account/two-step/enrol", follow_redirects=False).status_code == 303  # nothing more to enrol
    assert len(site.entries("two_step_enrol", me)) == 1


# -- the login ------------------------------------------------------------------------------------------
def test_a_login_then_needs_the_code_and_the_half_login_opens_no_page(site: Site) -> None:
    me = site.school.counselor.staff_id
    key = enrolled(site, me)
    c = site.client()

    r = site.login(c, me, next="/students")
    assert r.status_code == 303 and r.headers["location"] == "/login/two-step"

    # the half-login is no session: pages send it to the login, the API refuses it
    for path in ("/", "/students", "/account/two-step", "/account/tokens"):
        r = c.get(path, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].startswith("/login"), path
    assert c.get("/api/v1/me").status_code == 401
    page = c.get("/login/two-step")
    assert "6 位验证码" in page.text
    assert (
        c.post("/account/two-step/disable", data={"csrf_token": csrf_of(page)}, follow_redirects=False).status_code
        == 303
    )

    # the code: signed in (a new session id), to where the person was going, audited
    half = c.cookies.get(COOKIE)
    r = second_step(site, c, site.code(key))
    assert r.status_code == 303 and r.headers["location"] == "/students"
    assert c.cookies.get(COOKIE) != half
    assert c.get("/students", follow_redirects=False).status_code == 200
    assert any('"two_step":"code"' in d for _a, _s, d in site.entries("login", me))


def test_a_wrong_code_is_refused_and_audited_like_a_failed_login(site: Site) -> None:
    me = site.school.counselor.staff_id
    key = enrolled(site, me)
    c = site.client()
    site.login(c, me)

    r = second_step(site, c, site.wrong_code(key))
    assert r.status_code == 401 and "验证码不正确" in html.unescape(r.text)
    r = second_step(site, c, "abcde-fghjk")  # no recovery code of theirs
    assert r.status_code == 401
    assert c.get("/", follow_redirects=False).status_code == 303  # still not signed in
    failed = [d for _a, _s, d in site.entries("login_failed", me)]
    assert len(failed) == 2 and all('"reason":"two_step_code"' in d for d in failed)
    # then the right one passes
    assert second_step(site, c, site.code(key)).status_code == 303


def test_a_code_already_used_is_refused(site: Site) -> None:
    me = site.school.counselor.staff_id
    key = enrolled(site, me)
    code = site.code(key)
    first = site.client()
    site.login(first, me)
    assert second_step(site, first, code).status_code == 303

    # the same code again, within its 30 seconds, from another browser
    again = site.client()
    site.login(again, me)
    r = second_step(site, again, code)
    assert r.status_code == 401 and again.get("/", follow_redirects=False).status_code == 303


def test_wrong_codes_are_throttled_before_they_are_checked(site: Site) -> None:
    me = site.school.counselor.staff_id
    key = enrolled(site, me)
    c = site.client()
    site.login(c, me)
    free = site.web.state.web.throttle.policy.code.free

    for _ in range(free):
        assert second_step(site, c, site.wrong_code(key)).status_code == 401
    r = second_step(site, c, site.code(key))  # even the right code waits: counted before it is checked
    assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
    assert any('"reason":"two_step_throttled"' in d for _a, _s, d in site.entries("login_failed", me))
    site.clock.advance(seconds=int(r.headers["Retry-After"]))
    assert second_step(site, c, site.code(key)).status_code == 303


def test_a_recovery_code_works_once(site: Site) -> None:
    me = site.school.counselor.staff_id
    c = signed_in(site, me)
    _key, codes = enrol_on_own_page(site, c)
    assert len(codes) == 10

    first = site.client()
    site.login(first, me)
    r = second_step(site, first, codes[0])
    assert r.status_code == 200 and "还剩 9 个" in r.text  # told how many are left
    assert first.get("/", follow_redirects=False).status_code == 200
    assert any('"two_step":"recovery"' in d for _a, _s, d in site.entries("login", me))

    again = site.client()
    site.login(again, me)
    assert second_step(site, again, codes[0]).status_code == 401


def test_the_half_login_expires_in_a_few_minutes(site: Site) -> None:
    me = site.school.counselor.staff_id
    key = enrolled(site, me)
    c = site.client()
    site.login(c, me)
    page = c.get("/login/two-step")

    site.clock.advance(minutes=6)
    r = c.post("/login/two-step", data={"code": site.code(key), "csrf_token": csrf_of(page)}, follow_redirects=False)
    assert r.status_code == 401 and "验证已超时" in r.text
    assert c.get("/", follow_redirects=False).status_code == 303
    assert c.get("/login/two-step", follow_redirects=False).headers["location"] == "/login"


# -- the school's requirement -------------------------------------------------------------------------
def _require(site: Site, admin: TestClient, scope: str, on: bool = True) -> httpx.Response:
    page = admin.get("/admin/two-step")
    assert page.status_code == 200
    return admin.post(
        "/admin/two-step",
        data={"scope": scope, "required": "1" if on else "0", "csrf_token": csrf_of(page)},
        follow_redirects=False,
    )


def test_a_schools_requirement_takes_its_content_roles_to_enrolment_before_any_page(site: Site) -> None:
    admin = signed_in(site, site.admin)
    page = admin.get("/admin/two-step")
    assert "第一中学" in page.text and "区级账号（督导）" in page.text
    r = _require(site, admin, site.school.id)
    assert r.status_code == 303
    assert "已保存" in admin.get(r.headers["location"]).text
    assert [(a, s) for a, s, _d in site.entries("school_setting")] == [(site.admin, site.school.id)]

    # a class teacher of the school signs in as before
    assert signed_in(site, site.school.teacher.staff_id).get("/").status_code == 200

    # a counselor: to enrolment, and nowhere else until it is done
    me = site.school.counselor.staff_id
    c = site.client()
    r = site.login(c, me, next="/support")
    assert r.status_code == 303 and r.headers["location"] == "/login/enrol"
    for path in ("/", "/support", "/account/password", "/account/two-step"):
        assert c.get(path, follow_redirects=False).status_code == 303, path
    assert c.get("/login/two-step", follow_redirects=False).headers["location"] == "/login"
    page = c.get("/login/enrol")
    assert page.status_code == 200 and "本单位要求" in page.text and "<svg" in page.text
    found = SECRET.search(page.text)
    assert found
    key = found.group(1).replace(" ", "")
    r = c.post("/login/enrol", data={"code": site.code(key), "csrf_token": csrf_of(page)}, follow_redirects=False)
    assert r.status_code == 200 and len(RECOVERY.findall(r.text)) == 10 and 'href="/support"' in r.text
    assert c.get("/support", follow_redirects=False).status_code == 200
    assert site.app.two_step.enrolled(me)

    # and the next login asks the code
    site.clock.advance(seconds=30)
    c2 = site.client()
    assert site.login(c2, me).headers["location"] == "/login/two-step"
    assert second_step(site, c2, site.code(key)).status_code == 303


def test_only_an_administrator_sets_the_requirement(site: Site) -> None:
    principal = signed_in(site, site.school.principal.staff_id)
    assert principal.get("/admin/two-step").status_code == 403
    page = principal.get("/account/two-step")
    r = principal.post(
        "/admin/two-step",
        data={"scope": site.school.id, "required": "1", "csrf_token": csrf_of(page)},
        follow_redirects=False,
    )
    assert r.status_code == 403
    assert not site.app.two_step.required_for(site.school.counselor.staff_id)
    assert site.entries("school_setting") == []


# -- the administrator's reset --------------------------------------------------------------------------
def test_an_administrator_resets_a_lost_phone_without_ever_seeing_the_secret(site: Site) -> None:
    me = site.school.counselor.staff_id
    person = signed_in(site, me)
    key, codes = enrol_on_own_page(site, person)
    admin = signed_in(site, site.admin)
    assert _require(site, admin, site.school.id).status_code == 303

    page = admin.get(f"/admin/accounts/{me}")
    assert page.status_code == 200 and "已开启" in page.text
    assert f'action="/admin/accounts/{me}/two-step/reset"' in page.text
    assert key not in page.text and not any(code in page.text for code in codes)
    r = admin.post(f"/admin/accounts/{me}/two-step/reset", data={"csrf_token": csrf_of(page)}, follow_redirects=False)
    assert r.status_code == 303
    after = admin.get(r.headers["location"]).text
    assert "已重置两步验证" in after and "下次登录时须设置" in after
    assert not site.app.two_step.enrolled(me)
    assert [(a, s) for a, s, _d in site.entries("two_step_reset")] == [(site.admin, me)]

    # the person's session ended; at the next login the school has them enrol again
    assert person.get("/", follow_redirects=False).status_code == 303
    c = site.client()
    assert site.login(c, me).headers["location"] == "/login/enrol"


def test_an_administrator_cannot_reset_their_own(site: Site) -> None:
    admin = signed_in(site, site.admin)
    enrol_on_own_page(site, admin)
    page = admin.get(f"/admin/accounts/{site.admin}")
    assert "/two-step/reset" not in page.text
    r = admin.post(
        f"/admin/accounts/{site.admin}/two-step/reset", data={"csrf_token": csrf_of(page)}, follow_redirects=False
    )
    assert r.status_code == 303 and "不能重置本人的两步验证" in admin.get(r.headers["location"]).text
    assert site.app.two_step.enrolled(site.admin)


# -- turning it off -------------------------------------------------------------------------------------
def test_turning_it_off_takes_the_password_and_a_code(site: Site) -> None:
    me = site.school.counselor.staff_id
    c = signed_in(site, me)
    key, _codes = enrol_on_own_page(site, c)
    site.clock.advance(seconds=30)
    page = c.get("/account/two-step")
    token = csrf_of(page)

    r = c.post("/account/two-step/disable", data={"password": "wrong-one", "code": site.code(key), "csrf_token": token})
    assert r.status_code == 400 and "当前密码不正确" in r.text and site.app.two_step.enrolled(me)
    r = c.post("/account/two-step/disable", data={"password": PASSWORD, "code": "abcde-abcde", "csrf_token": token})
    assert r.status_code == 400 and site.app.two_step.enrolled(me)

    r = c.post(
        "/account/two-step/disable",
        data={"password": PASSWORD, "code": site.code(key), "csrf_token": token},
        follow_redirects=False,
    )
    assert r.status_code == 303 and not site.app.two_step.enrolled(me)
    assert "已关闭两步验证" in c.get(r.headers["location"]).text
    assert len(site.entries("two_step_disable", me)) == 1
    assert site.login(site.client(), me).headers["location"] == "/"


def test_turning_it_off_where_the_school_requires_it_leads_to_enrolling_again(site: Site) -> None:
    me = site.school.counselor.staff_id
    c = signed_in(site, me)
    key, _codes = enrol_on_own_page(site, c)
    admin = signed_in(site, site.admin)
    _require(site, admin, site.school.id)
    site.clock.advance(seconds=30)

    page = c.get("/account/two-step")
    assert "关闭后须立即用新手机重新开启" in page.text
    r = c.post(
        "/account/two-step/disable",
        data={"password": PASSWORD, "code": site.code(key), "csrf_token": csrf_of(page)},
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"] == "/login/enrol"
    assert c.get("/", follow_redirects=False).status_code == 303
    assert "<svg" in c.get("/login/enrol").text
