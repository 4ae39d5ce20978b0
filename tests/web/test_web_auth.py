"""Accounts and sessions: login, logout, password change, throttling, CSRF, cookies,
security headers."""

from __future__ import annotations

from web_support import DemoSite

from web.security import COOKIE


def test_login_page_is_chinese_and_login_lands_on_the_work_queue(site: DemoSite) -> None:
    b = site.browser()
    page = b.get("/login")
    assert page.status_code == 200 and "登录" in page.text and 'lang="zh-Hans"' in page.text
    b.login("teacher1")
    home = b.get("/")
    assert home.status_code == 200 and "我的待办" in home.text


def test_pages_need_a_session(site: DemoSite) -> None:
    b = site.browser()
    r = b.get("/", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/login?next=")


def test_session_cookie_is_httponly_and_lax_and_renewed_on_login(site: DemoSite) -> None:
    b = site.browser()
    b.client.cookies.set(COOKIE, "planted-by-attacker", domain="testserver.local")
    r = b.client.post(
        "/login",
        data={"username": "teacher1", "password": "anxin-demo-2026", "csrf_token": b.login_token()},
        follow_redirects=False,
    )
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie.replace("Lax", "lax")
    sid = r.cookies.get(COOKIE)
    assert sid and sid != "planted-by-attacker" and len(sid) >= 40


def test_wrong_password_is_refused_and_recorded(site: DemoSite) -> None:
    b = site.browser()
    before = site.app.db.fetchone("SELECT COUNT(*) FROM {t}anxin_audit WHERE kind = 'login_failed'")[0]
    r = b.client.post(
        "/login", data={"username": "counselor2", "password": "wrong-password", "csrf_token": b.login_token()}
    )
    assert r.status_code == 401 and "用户名或密码不正确" in r.text
    after = site.app.db.fetchone("SELECT COUNT(*) FROM {t}anxin_audit WHERE kind = 'login_failed'")[0]
    assert after == before + 1


def test_repeated_failures_are_throttled_even_with_the_right_password(site: DemoSite) -> None:
    b = site.browser()
    token = b.login_token()
    for _ in range(5):
        r = b.client.post("/login", data={"username": "teacher12", "password": "nope-nope", "csrf_token": token})
        assert r.status_code == 401
    r = b.client.post("/login", data={"username": "teacher12", "password": "anxin-demo-2026", "csrf_token": token})
    # a progressive delay (seconds, growing), not a lockout of 15 minutes
    assert r.status_code == 429 and "秒后再试" in r.text and int(r.headers["retry-after"]) <= 5
    rows = site.app.db.fetch("SELECT detail FROM {t}anxin_audit WHERE kind = 'login_failed' ORDER BY seq DESC LIMIT 1")
    assert "throttled" in rows[0][0]


def test_state_changing_form_without_csrf_token_is_refused(site: DemoSite) -> None:
    b = site.browser("teacher2")
    r = b.post("/logout", csrf=False)
    assert r.status_code == 403 and "CSRF" in r.text
    assert b.post("/logout", {"csrf_token": "forged"}).status_code == 403
    assert b.get("/").status_code == 200  # still logged in: nothing happened
    assert b.post("/logout").status_code == 303
    assert b.get("/", follow_redirects=False).status_code == 303


def test_security_headers(site: DemoSite) -> None:
    b = site.browser("teacher1")
    h = b.get("/").headers
    assert "script-src 'self'" in h["content-security-policy"] and "unsafe-inline" not in h["content-security-policy"]
    assert "frame-ancestors 'none'" in h["content-security-policy"]
    assert h["x-frame-options"] == "DENY" and h["cache-control"] == "no-store"
    assert h["x-content-type-options"] == "nosniff"


def test_change_password_then_old_one_fails(site: DemoSite) -> None:
    b = site.browser("teacher11")
    r = b.post("/account/password", {"current": "wrong", "new": "a-new-passw0rd", "again": "a-new-passw0rd"})
    assert r.status_code == 400 and "当前密码不正确" in r.text
    r = b.post("/account/password", {"current": "anxin-demo-2026", "new": "a-new-passw0rd", "again": "different"})
    assert r.status_code == 400
    r = b.post("/account/password", {"current": "anxin-demo-2026", "new": "a-new-passw0rd", "again": "a-new-passw0rd"})
    assert r.status_code == 303
    fresh = site.browser()
    old = {"username": "teacher11", "password": "anxin-demo-2026", "csrf_token": fresh.login_token()}
    assert fresh.client.post("/login", data=old).status_code == 401
    fresh.login("teacher11", "a-new-passw0rd")
    assert fresh.get("/").status_code == 200


def test_english_switch_translates_labels_and_dates(site: DemoSite) -> None:
    b = site.browser("teacher1")
    r = b.get("/lang/en?next=/", follow_redirects=True)
    assert 'lang="en"' in r.text and "My work" in r.text
    b.get("/lang/zh?next=/")


def test_login_redirect_only_goes_to_this_site(site: DemoSite) -> None:
    b = site.browser()
    r = b.client.post(
        "/login",
        data={
            "username": "teacher3",
            "password": "anxin-demo-2026",
            "next": "//evil.example/x",
            "csrf_token": b.login_token(),
        },
        follow_redirects=False,
    )
    assert r.headers["location"] == "/"


def test_login_without_the_forms_csrf_token_is_refused(site: DemoSite) -> None:
    b = site.browser()
    page = b.get("/login")
    assert 'name="csrf_token"' in page.text and "anxin_login" in page.headers["set-cookie"]
    good = {"username": "teacher4", "password": "anxin-demo-2026"}
    # no token, a forged one, or a token with another browser's cookie: refused, no session
    r = b.client.post("/login", data=good, follow_redirects=False)
    assert r.status_code == 403 and "登录页面已过期" in r.text and COOKIE not in r.cookies
    assert b.client.post("/login", data={**good, "csrf_token": "forged"}).status_code == 403
    other = site.browser()
    theirs = other.login_token()
    assert b.client.post("/login", data={**good, "csrf_token": theirs}, follow_redirects=False).status_code == 403
    # the refusal's page carries a working token again
    r = b.client.post("/login", data={**good, "csrf_token": b.login_token()}, follow_redirects=False)
    assert r.status_code == 303 and r.cookies.get(COOKIE)


def test_a_weak_new_password_is_refused_with_a_clear_message(site: DemoSite) -> None:
    b = site.browser("teacher10")
    for new, message in [
        ("password", "太常见"),
        ("12345678", "重复或连续"),
        ("Teacher10-2026", "包含用户名"),
    ]:
        r = b.post("/account/password", {"current": "anxin-demo-2026", "new": new, "again": new})
        assert r.status_code == 400 and message in r.text, new
    b.get("/lang/en?next=/")
    r = b.post("/account/password", {"current": "anxin-demo-2026", "new": "password", "again": "password"})
    assert r.status_code == 400 and "too common" in r.text
    b.get("/lang/zh?next=/")
