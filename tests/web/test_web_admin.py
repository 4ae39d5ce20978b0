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


def test_admin_adds_an_account_that_can_log_in_then_changes_and_deactivates_it(site: DemoSite, browse) -> None:
    b = browse("admin")
    page = b.get("/admin/accounts")
    assert page.status_code == 200 and "teacher1" in page.text and "supervisor1" in page.text
    username = "newteacher" + uuid.uuid4().hex[:6]
    r = b.post(
        "/admin/accounts",
        {
            "username": username,
            "name": "新 老师",
            "school": _school(site),
            "roles": "class_teacher",
            "classes": "七年级3班",
            "password": PASSWORD,
        },
    )
    assert r.status_code == 303
    detail = b.get(r.headers["location"])
    assert detail.status_code == 200 and username in detail.text and "七年级3班" in detail.text
    staff_id = r.headers["location"].rsplit("/", 1)[1]
    newcomer = site.browser().login(username, PASSWORD)
    assert newcomer.get("/").status_code == 200
    r = b.post(
        f"/admin/accounts/{staff_id}/roles",
        {"roles": ["class_teacher", "counselor"], "classes": "七年级4班", "reason": "兼任心理老师"},
    )
    assert r.status_code == 303
    actor = site.app.gate.actor(staff_id)
    assert {str(x) for x in actor.roles} == {"class_teacher", "counselor"} and actor.classes == {"七年级4班"}
    assert b.post(f"/admin/accounts/{staff_id}/deactivate", {"reason": "调离本校"}).status_code == 303
    assert newcomer.get("/", follow_redirects=False).status_code == 303  # logged out
    assert site.app.accounts.account(username) is None


def test_bad_account_form_rerenders_with_message_and_values(site: DemoSite, browse) -> None:
    b = browse("admin")
    r = b.post(
        "/admin/accounts",
        {
            "username": "teacher1",
            "name": "重名 <script>alert(1)</script>",
            "school": _school(site),
            "roles": "class_teacher",
            "password": PASSWORD,
        },
    )
    assert r.status_code == 400 and "已被使用" in r.text
    assert "重名 &lt;script&gt;alert(1)&lt;/script&gt;" in r.text and "<script>alert(1)" not in r.text
    r = b.post(
        "/admin/accounts",
        {
            "username": "u" + uuid.uuid4().hex[:6],
            "name": "某人",
            "roles": "counselor",
            "school": _school(site),
            "password": "short",
        },
    )
    assert r.status_code == 400 and "密码至少 8 位" in r.text


def test_token_is_shown_once_works_and_can_be_revoked(site: DemoSite, browse) -> None:
    b = browse("admin")
    admin_id = site.app.accounts.account("admin")[0]
    staff_id = site.app.accounts.account("counselor2")[0]
    r = b.post(f"/admin/accounts/{staff_id}/tokens", {"label": "报表系统"})
    assert r.status_code == 200
    token = re.search(r"anx_[A-Za-z0-9_\-]+", r.text).group(0)
    assert site.web.state.web.tokens.staff_for(token) == staff_id
    api_paths = [
        r.path
        for r in site.web.routes
        if getattr(r, "path", "").startswith("/api/v1/") and "{" not in r.path and "GET" in getattr(r, "methods", set())
    ]
    bearer = {"Authorization": f"Bearer {token}"}
    api_paths.sort(key=lambda p: (p != "/api/v1/me", p))
    if api_paths:  # the JSON API, once it is there, takes the token
        assert site.browser().get(api_paths[0], headers=bearer).status_code not in (401, 403)
    assert token not in b.get(f"/admin/accounts/{staff_id}").text  # shown once only
    issued = site.app.db.fetchone(
        "SELECT COUNT(*) FROM {t}anxin_audit WHERE kind = 'token_issue' AND actor_id = ? AND subject = ?",
        (admin_id, staff_id),
    )[0]
    assert issued >= 1
    token_id = site.web.state.web.tokens.of_staff(staff_id)[-1]["id"]
    assert b.post(f"/admin/accounts/{staff_id}/tokens/{token_id}/revoke").status_code == 303
    assert site.web.state.web.tokens.staff_for(token) is None
    if api_paths:
        assert site.browser().get(api_paths[0], headers=bearer).status_code == 401
    revoked = site.app.db.fetchone(
        "SELECT COUNT(*) FROM {t}anxin_audit WHERE kind = 'token_revoke' AND subject = ?", (staff_id,)
    )[0]
    assert revoked >= 1


HEADER = "student_no,name,gender,birth_date,grade,class,guardian_name,guardian_phone,tags\n"


def test_roster_import_good_file_applies_bad_file_applies_nothing(site: DemoSite, browse) -> None:
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
    assert r.status_code == 303
    assert "已导入 2 名学生" in b.get("/admin/roster").text
    assert len(site.app.roster.list_students(admin, school)) == before + 2
    bad = (
        HEADER + f"Y{tag}1,好 学生,男,2015-03-01,三年级,三年级9班,,,\n"
        f"Y{tag}2,坏 日期,女,2015/04/01,三年级,三年级9班,,,\n"
        f"Y{tag}3,,男,2015-03-01,三年级,三年级9班,,,\n"
        f"X{tag}1,重复 学号,男,2015-03-01,三年级,三年级9班,,,\n"
    )
    r = b.post("/admin/roster", {"school": school}, files={"file": ("roster.csv", bad.encode(), "text/csv")})
    assert r.status_code == 400 and "未写入任何数据" in r.text
    for line in ("第 3 行", "第 4 行", "第 5 行"):
        assert line in r.text
    assert "第 2 行" not in r.text and "出生日期" in r.text and "已存在" in r.text
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
