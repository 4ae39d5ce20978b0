"""The administrator's journeys: accounts (add, change roles, deactivate, API tokens),
roster import (all or nothing, every bad line listed), and, on a store of their own,
master key rotation, audit checkpoints and crypto-shredding."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from conftest import ADMIN, STORES, Clock, fresh_app, make_school
from fastapi.testclient import TestClient
from web_support import Browser, DemoSite

from anxin import audit
from anxin.crypto import MasterKeyFile
from anxin.passwords import hash_password
from web.app import create_app
from web.i18n import fmt_datetime

PASSWORD = "admin-test-pass-1"


def _denials(site: DemoSite, staff_id: str) -> int:
    return site.app.db.fetchone("SELECT COUNT(*) FROM {t}anxin_access WHERE actor_id = ? AND allowed = 0", (staff_id,))[
        0
    ]


def _school(site: DemoSite, name: str = "安心市第一中学") -> str:
    return next(sid for sid, n, _d in site.app.schools() if n == name)


def test_school_staff_get_403_on_admin_pages(site: DemoSite, browse) -> None:
    for username in ("teacher1", "counselor1"):
        b = browse(username)
        staff = site.app.accounts.account(username)[0]
        for path in ("/admin/accounts", "/admin/roster", "/admin/keys", "/admin/shred"):
            before = _denials(site, staff)
            assert b.get(path).status_code == 403, (username, path)
            assert _denials(site, staff) == before + 1
    b = browse("teacher1")
    before = _denials(site, site.app.accounts.account("teacher1")[0])
    r = b.post(
        "/admin/accounts",
        {"username": "x" + uuid.uuid4().hex[:6], "name": "某人", "roles": "administrator", "password": PASSWORD},
    )
    assert r.status_code == 403 and _denials(site, site.app.accounts.account("teacher1")[0]) == before + 1


SETUP = re.compile(r"/setup/[A-Za-z0-9_-]{20,}")


def _add_account(
    b: Browser, site: DemoSite, username: str, roles: str | list[str] = "class_teacher"
) -> tuple[str, str]:
    """The administrator adds an account: (its staff id, the one-time set-up link shown)."""
    r = b.post(
        "/admin/accounts",
        {"username": username, "name": "新 老师", "school": _school(site), "roles": roles, "classes": "七年级3班"},
    )
    assert r.status_code == 200, r.text
    found = SETUP.search(r.text)
    assert found, "the account page shows the set-up link"
    staff_id = site.app.accounts.account(username)[0]
    return staff_id, found.group(0)


def test_admin_adds_an_account_that_can_log_in_then_changes_and_deactivates_it(site: DemoSite, browse) -> None:
    b = browse("admin")
    page = b.get("/admin/accounts")
    assert page.status_code == 200 and "teacher1" in page.text and "supervisor1" in page.text
    username = "newteacher" + uuid.uuid4().hex[:6]
    staff_id, link = _add_account(b, site, username)
    detail = b.get(f"/admin/accounts/{staff_id}")
    assert detail.status_code == 200 and username in detail.text and "七年级3班" in detail.text
    assert link not in detail.text  # the link is shown once
    # No password until the person sets theirs with the link.
    anonymous = site.browser()
    r = anonymous.client.post(
        "/login",
        data={"username": username, "password": PASSWORD, "next": "/", "csrf_token": anonymous.login_token()},
        follow_redirects=False,
    )
    assert r.status_code != 303
    person = site.browser()
    assert person.get(link).status_code == 200
    r = person.post(link, {"new": PASSWORD, "again": PASSWORD}, csrf=False)
    assert r.status_code == 303 and r.headers["location"] == "/login"
    # the login page says, once, that the password is set
    assert "密码已设置，请用新密码登录" in person.get("/login").text
    assert "密码已设置" not in person.get("/login").text
    assert person.get(link).status_code == 404  # used once
    newcomer = site.browser().login(username, PASSWORD)
    assert newcomer.get("/").status_code == 200
    # A content role waits for a second person: the administrator asks, the principal approves.
    r = b.post(
        f"/admin/accounts/{staff_id}/roles",
        {"roles": ["class_teacher", "counselor"], "classes": "七年级4班", "reason": "兼任心理老师"},
    )
    assert r.status_code == 303
    actor = site.app.gate.actor(staff_id)
    assert {str(x) for x in actor.roles} == {"class_teacher"}  # not yet
    grants = b.get("/grants")
    assert grants.status_code == 200 and username in grants.text
    admin = site.app.gate.actor(site.app.accounts.account("admin")[0])
    request_id = next(g["request_id"] for g in site.app.roster.pending_grants(admin) if g["staff_id"] == staff_id)
    approve = f"/grants/{staff_id}/{request_id}/approve"
    assert f'action="{approve}"' not in grants.text  # the requester is not offered to approve
    assert b.post(approve).status_code == 403
    principal = browse("principal1")
    assert f'action="{approve}"' in principal.get("/grants").text
    assert principal.post(approve).status_code == 303
    actor = site.app.gate.actor(staff_id)
    assert {str(x) for x in actor.roles} == {"class_teacher", "counselor"} and actor.classes == {"七年级4班"}
    assert b.post(f"/admin/accounts/{staff_id}/deactivate", {"reason": "调离本校"}).status_code == 303
    assert newcomer.get("/", follow_redirects=False).status_code == 303  # logged out
    assert site.app.accounts.account(username) is None


def test_the_set_up_link_is_a_full_address_with_a_copy_button_and_its_expiry(
    site: DemoSite, browse, monkeypatch: pytest.MonkeyPatch
) -> None:
    b = browse("admin")
    monkeypatch.delenv("ANXIN_BASE_URL", raising=False)
    r = b.post(
        "/admin/accounts",
        {"username": "u" + uuid.uuid4().hex[:6], "name": "新 老师", "school": _school(site), "roles": "class_teacher"},
    )
    assert r.status_code == 200
    # the scheme and host the administrator's request came to
    field = re.search(r'<input id="setup-link"[^>]* value="(http://testserver/setup/[A-Za-z0-9_-]{20,})"', r.text)
    assert field, "the link as a full address, in a field the copy button reads"
    assert 'data-copy="setup-link"' in r.text and "复制链接" in r.text
    # the copy button's script is the site's own (no external library), served with the page's CSP
    scripts = re.findall(r'<script[^>]*src="([^"]+)"', r.text)
    assert "/static/copy.js" in scripts and all(s.startswith("/static/") for s in scripts)
    js = b.get("/static/copy.js")
    assert js.status_code == 200 and "clipboard" in js.text and "execCommand" in js.text
    staff_id = site.app.accounts.setup_staff(field.group(1).rsplit("/", 1)[1])
    assert staff_id is not None
    when = site.app.accounts.setup_state(staff_id).expires_at
    assert when is not None
    assert f"有效期至 {fmt_datetime(when, 'zh')}" in r.text and "年" in fmt_datetime(when, "zh")  # in Chinese
    # behind a proxy: the configured address
    monkeypatch.setenv("ANXIN_BASE_URL", "https://anxin.example.cn/")
    r = b.post(
        "/admin/accounts",
        {"username": "u" + uuid.uuid4().hex[:6], "name": "新 老师", "school": _school(site), "roles": "class_teacher"},
    )
    assert re.search(r'value="https://anxin\.example\.cn/setup/[A-Za-z0-9_-]{20,}"', r.text)


def test_an_expired_set_up_link_is_replaced_from_the_account_page_and_the_old_one_stops(site: DemoSite, browse) -> None:
    b = browse("admin")
    username = "u" + uuid.uuid4().hex[:6]
    staff_id, first = _add_account(b, site, username)
    page = b.get(f"/admin/accounts/{staff_id}")
    assert "本人尚未设置密码" in page.text and f'action="/admin/accounts/{staff_id}/setup-code"' in page.text
    assert first not in page.text  # the link itself is shown only when made
    r = b.post(f"/admin/accounts/{staff_id}/setup-code")
    assert r.status_code == 200
    second = SETUP.search(r.text)
    assert second and second.group(0) != first
    person = site.browser()
    assert person.get(first).status_code == 404  # void at once
    assert person.post(first, {"new": PASSWORD, "again": PASSWORD}, csrf=False).status_code == 404
    issued = site.app.db.fetchone(
        "SELECT COUNT(*) FROM {t}anxin_audit WHERE kind = 'setup_code_issue' AND subject = ?", (staff_id,)
    )[0]
    assert issued == 1
    # a principal cannot: refused by the gate, recorded, no new link
    principal = browse("principal1")
    before = _denials(site, site.app.accounts.account("principal1")[0])
    assert principal.post(f"/admin/accounts/{staff_id}/setup-code").status_code == 403
    assert _denials(site, site.app.accounts.account("principal1")[0]) == before + 1
    # once used, the account page offers no new link, and asking is refused in words
    assert person.post(second.group(0), {"new": PASSWORD, "again": PASSWORD}, csrf=False).status_code == 303
    page = b.get(f"/admin/accounts/{staff_id}")
    assert "setup-code" not in page.text
    r = b.post(f"/admin/accounts/{staff_id}/setup-code")
    assert r.status_code == 400 and "该账号已设置密码" in r.text and not SETUP.search(r.text)
    assert person.get(second.group(0)).status_code == 404


def test_the_grants_list_is_for_those_who_ask_or_approve_and_a_refusal_is_recorded(site: DemoSite, browse) -> None:
    teacher = browse("teacher1")
    staff = site.app.accounts.account("teacher1")[0]
    before = _denials(site, staff)
    assert teacher.get("/grants").status_code == 403
    assert _denials(site, staff) == before + 1
    # the supervisor and a district's administrator may narrow the list to one school
    admin = browse("admin")
    school = _school(site)
    page = admin.get(f"/grants?school={school}")
    assert page.status_code == 200 and f'<option value="{school}" selected>' in page.text
    principal = browse("principal1")
    other = _school(site, "安心市实验小学")
    pid = site.app.accounts.account("principal1")[0]
    before = _denials(site, pid)
    assert principal.get(f"/grants?school={other}").status_code == 403  # another school's: refused, recorded
    assert _denials(site, pid) == before + 1
    assert admin.get("/grants?school=no-such-school").status_code == 404


def test_the_administrator_cannot_change_their_own_roles(site: DemoSite, browse) -> None:
    b = browse("admin")
    admin_id = site.app.accounts.account("admin")[0]
    before = _denials(site, admin_id)
    r = b.post(f"/admin/accounts/{admin_id}/roles", {"roles": ["administrator", "supervisor"], "reason": "自我授权"})
    assert r.status_code == 403 and _denials(site, admin_id) == before + 1
    assert {str(x) for x in site.app.gate.actor(admin_id).roles} == {"administrator"}


def test_bad_account_form_rerenders_with_message_and_values(site: DemoSite, browse) -> None:
    b = browse("admin")
    r = b.post(
        "/admin/accounts",
        {
            "username": "teacher1",
            "name": "重名 <script>alert(1)</script>",
            "school": _school(site),
            "roles": "class_teacher",
        },
    )
    assert r.status_code == 400 and "已被使用" in r.text
    assert "重名 &lt;script&gt;alert(1)&lt;/script&gt;" in r.text and "<script>alert(1)" not in r.text


def test_the_set_up_page_refuses_a_short_or_common_password(site: DemoSite, browse) -> None:
    username = "u" + uuid.uuid4().hex[:6]
    _staff_id, link = _add_account(browse("admin"), site, username)
    person = site.browser()
    r = person.post(link, {"new": "short", "again": "short"}, csrf=False)
    assert r.status_code == 400 and "至少" in r.text
    r = person.post(link, {"new": "password123", "again": "password123"}, csrf=False)
    assert r.status_code == 400 and "太常见" in r.text
    r = person.post(link, {"new": PASSWORD, "again": PASSWORD + "x"}, csrf=False)
    assert r.status_code == 400
    assert person.post(link, {"new": PASSWORD, "again": PASSWORD}, csrf=False).status_code == 303
    assert site.browser().login(username, PASSWORD).get("/").status_code == 200
    r = site.browser().get("/setup/not-a-code")
    assert r.status_code == 404 and 'name="new"' not in r.text


def test_token_is_shown_once_works_and_can_be_revoked(site: DemoSite, browse) -> None:
    b = browse("counselor2")
    staff_id = site.app.accounts.account("counselor2")[0]
    r = b.post("/account/tokens", {"label": "报表系统", "days": "90", "scope": "read"})
    assert r.status_code == 200
    token = re.search(r"anx_[A-Za-z0-9_\-]+", r.text).group(0)
    assert site.web.state.web.tokens.staff_for(token) == staff_id
    bearer = {"Authorization": f"Bearer {token}"}
    assert site.browser().get("/api/v1/me", headers=bearer).status_code == 200
    listed = b.get("/account/tokens").text
    assert token not in listed and "报表系统" in listed  # shown once only, listed by its name
    issued = site.app.db.fetchone(
        "SELECT COUNT(*) FROM {t}anxin_audit WHERE kind = 'token_issue' AND actor_id = ? AND subject = ?",
        (staff_id, staff_id),
    )[0]
    assert issued >= 1
    token_id = next(t["id"] for t in site.web.state.web.tokens.of_staff(staff_id) if t["label"] == "报表系统")
    # Nobody else revokes it: another person's revoke leaves it live.
    assert browse("counselor1").post(f"/account/tokens/{token_id}/revoke").status_code == 303
    assert site.web.state.web.tokens.staff_for(token) == staff_id
    assert b.post(f"/account/tokens/{token_id}/revoke").status_code == 303
    assert site.web.state.web.tokens.staff_for(token) is None
    assert site.browser().get("/api/v1/me", headers=bearer).status_code == 401
    revoked = site.app.db.fetchone(
        "SELECT COUNT(*) FROM {t}anxin_audit WHERE kind = 'token_revoke' AND subject = ?", (staff_id,)
    )[0]
    assert revoked >= 1


HEADER = "student_no,name,gender,birth_date,grade,class,guardian_name,guardian_phone,tags\n"


def test_roster_import_good_file_applies_after_its_preview_bad_file_applies_nothing(site: DemoSite, browse) -> None:
    b = browse("admin")
    school = _school(site, "安心市实验小学")
    admin = site.app.gate.actor(site.app.accounts.account("admin")[0])
    tag = uuid.uuid4().hex[:6]
    good = (
        HEADER + f"X{tag}1,导入 甲,男,2015-03-01,三年级,三年级9班,家长,13900000000,\n"
        f"X{tag}2,导入 乙,女,2015-04-01,三年级,三年级9班,,,\n"
    )
    before = len(site.app.roster.list_students(admin, school))
    r = b.post("/admin/roster", {"school": school}, files={"file": ("roster.csv", good.encode(), "text/csv")})
    assert r.status_code == 200 and 'id="count-new">2' in r.text  # the preview: nothing written yet
    assert len(site.app.roster.list_students(admin, school)) == before
    fields = {
        k: re.search(rf'name="{k}" value="([^"]*)"', r.text).group(1) for k in ("school", "fingerprint", "sealed")
    }
    r = b.post("/admin/roster/confirm", {**fields, "leave_reason": ""})  # nobody of the demo ticked as a leaver
    assert r.status_code == 303
    assert "花名册已导入：新增 2 名" in b.get("/admin/roster").text
    assert len(site.app.roster.list_students(admin, school)) == before + 2
    bad = (
        HEADER + f"Y{tag}1,好 学生,男,2015-03-01,三年级,三年级9班,,,\n"
        f"Y{tag}2,坏 日期,女,2015-14-01,三年级,三年级9班,,,\n"
        f"Y{tag}3,,男,2015-03-01,三年级,三年级9班,,,\n"
        f"X{tag}1,重复 学号,男,2015-03-01,三年级,三年级9班,,abc,\n"
    )
    r = b.post("/admin/roster", {"school": school}, files={"file": ("roster.csv", bad.encode(), "text/csv")})
    assert r.status_code == 400 and "未写入任何数据" in r.text
    for line in ("第 3 行", "第 4 行", "第 5 行"):
        assert line in r.text
    assert "第 2 行" not in r.text and "出生日期" in r.text and "监护人姓名" in r.text
    assert len(site.app.roster.list_students(admin, school)) == before + 2  # nothing applied


# -- on a store of their own: key rotation, checkpoints, shredding -------------------------
@pytest.fixture(params=STORES)
def own(request: pytest.FixtureRequest) -> Iterator[tuple[object, object, Browser]]:
    clock = Clock(datetime.now(UTC))
    with fresh_app(request.param, clock) as app:
        school = make_school(app)
        app.roster.add_staff(
            ADMIN,
            username="root",
            name="管理员",
            school_id=None,
            roles=["administrator"],
            password_hash=hash_password(PASSWORD),
            district="default",
        )
        app.cases.report_bullying(
            school.teacher,
            school_id=school.id,
            channel="teacher",
            occurred_at=clock.now - timedelta(hours=1),
            place="操场",
            forms=["verbal"],
            parties=[(school.student("2026001"), "targeted")],
            narrative="被起外号",
        )
        web = create_app(app, background_seconds=None)
        with TestClient(web, base_url="http://testserver") as client:
            yield app, school, Browser(client, None).login("root", PASSWORD)


def test_key_rotation_needs_confirmation_and_keeps_data_readable(own) -> None:
    app, school, b = own
    old = app.keystore.master.kek_id
    page = b.get("/admin/keys")
    assert page.status_code == 200 and old in page.text
    r = b.post("/admin/keys/rotate", {})
    assert r.status_code == 400 and "请勾选确认" in r.text and app.keystore.master.kek_id == old
    r = b.post("/admin/keys/rotate", {"confirm": "rotate"})
    assert r.status_code == 303
    assert "已轮换主密钥" in b.get("/admin/keys").text
    assert app.keystore.master.kek_id != old
    assert MasterKeyFile(app.config.data_dir / "master.key").load_all() == [app.keystore.master]
    assert app.student_ref(school.student("2026002")).name == "李小红"
    rotations = app.db.fetch("SELECT detail FROM {t}anxin_audit WHERE kind = 'key_rotation' ORDER BY seq")
    assert ['"step":"switched"' in d for (d,) in rotations] == [True, False]  # switched, then the old key retired
    assert '"step":"retired"' in rotations[1][0]
    missing = b.post("/admin/keys/checkpoint")  # no signing key yet: said so on the page
    assert missing.status_code == 400 and "审计签名密钥" in missing.text
    audit.create_signing_key(app.config)
    cp = b.post("/admin/keys/checkpoint")
    assert cp.status_code == 200 and "entry_hash" in cp.text, re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", cp.text))[
        -400:
    ]


def test_shred_student_shows_what_is_destroyed_and_needs_the_number(own) -> None:
    app, school, b = own
    r = b.post("/admin/shred", {"school": school.id, "student_no": "2026001"})
    assert r.status_code == 200
    assert "2026001" in r.text and "七年级1班" in r.text and "案件 1 件" in r.text
    assert "张小明" not in r.text  # the administrator sees no names here
    r = b.post(
        "/admin/shred/confirm",
        {"school": school.id, "student_no": "2026001", "reason": "毕业满五年", "confirm": "2026002"},
    )
    assert r.status_code == 400 and "不一致" in r.text
    assert app.student_ref(school.student("2026001")).name == "张小明"  # nothing destroyed
    r = b.post(
        "/admin/shred/confirm",
        {"school": school.id, "student_no": "2026001", "reason": "毕业满五年", "confirm": "2026001"},
    )
    assert r.status_code == 303
    assert app.student_ref(school.student("2026001")).name == "已删除"
    again = b.post("/admin/shred", {"school": school.id, "student_no": "2026001"})
    assert again.status_code == 200 and "已删除" in again.text
    assert app.db.fetchone("SELECT COUNT(*) FROM {t}anxin_audit WHERE kind = 'shred'")[0] == 1


def test_shred_a_stream_by_id(own) -> None:
    app, school, b = own
    case_id = app.db.fetchone("SELECT stream_id FROM {t}anxin_directory WHERE kind = 'case'")[0]
    r = b.post("/admin/shred", {"stream_id": case_id})
    assert r.status_code == 200 and "欺凌案件" in r.text and case_id in r.text
    assert "被起外号" not in r.text  # the administrator never sees case content
    assert (
        b.post("/admin/shred/confirm", {"stream_id": case_id, "reason": "依法删除", "confirm": case_id}).status_code
        == 303
    )
    assert app.erasure.is_erased(case_id)
    assert "已删除" in b.post("/admin/shred", {"stream_id": case_id}).text
    unknown = b.post("/admin/shred", {"stream_id": str(uuid.uuid4())})
    assert unknown.status_code == 400 and "找不到该记录" in unknown.text
