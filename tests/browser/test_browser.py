"""Real-browser journeys: Debian's Chromium (Playwright) against the real application served
by uvicorn, on the demo district in its own SQLite file. Each role logs in through the
login form and walks its pages; screenshots land in test-artifacts/screenshots/."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
from browser_support import LiveServer

pytest.importorskip("playwright.sync_api", reason="Playwright is not installed")

from playwright.sync_api import expect  # noqa: E402

XSS = "<script>alert(1)</script>\"' ; DROP TABLE x; --"


def _no_boxes(page: Any) -> None:
    """The page is in Chinese and its fonts have the glyphs: the brand text is laid out
    with a real width (a missing CJK font would still lay out, so the screenshot is the
    visual check; this asserts the text is there and the document language is zh-Hans)."""
    expect(page.locator("html")).to_have_attribute("lang", "zh-Hans")
    expect(page.locator("header .brand")).to_contain_text("安心")


def test_login_refuses_a_wrong_password_then_shows_the_work_queue(open_session: Any) -> None:
    s = open_session()
    page = s.login("teacher1", "wrong-password")
    expect(page).to_have_url(re.compile(r"/login"))
    expect(page.get_by_role("alert")).to_be_visible()
    expect(page.get_by_label("用户名")).to_have_value("teacher1")
    s.shot("login-error")
    page = s.login("teacher1")
    expect(page.get_by_role("heading", name="我的待办")).to_be_visible()
    expect(page.locator("p.summary")).to_contain_text("共")
    _no_boxes(page)
    s.shot("teacher1-work-queue")
    # Signed out, the work queue sends the reader back to the login form.
    page.get_by_role("button", name="退出").click()
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/login"))


@pytest.mark.parametrize(
    "username, path, heading",
    [
        ("counselor1", "/", "我的待办"),
        ("safety1", "/", "我的待办"),
        ("principal1", "/", "我的待办"),
        ("supervisor1", "/district", None),
        ("admin", "/admin/accounts", None),
    ],
)
def test_each_role_main_page(open_session: Any, username: str, path: str, heading: str | None) -> None:
    s = open_session()
    page = s.login(username)
    page.goto(path)
    expect(page.locator("main h1").first).to_be_visible()
    if heading:
        expect(page.get_by_role("heading", name=heading)).to_be_visible()
    # The main menu is there and marks no error.
    expect(page.get_by_role("navigation", name="主菜单")).to_be_visible()
    expect(page.locator("main .error")).to_have_count(0)
    _no_boxes(page)
    s.shot(f"{username}-main")


def test_english_switch_and_back(open_session: Any) -> None:
    s = open_session()
    page = s.login("teacher1")
    page.get_by_role("link", name="English").click()
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.get_by_role("heading", name="My work", exact=True)).to_be_visible()
    s.shot("teacher1-work-queue-en")
    page.get_by_role("link", name="简体中文").click()
    expect(page.get_by_role("heading", name="我的待办")).to_be_visible()


def test_phone_viewport_work_queue(open_session: Any) -> None:
    s = open_session(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    page = s.login("teacher1")
    expect(page.get_by_role("heading", name="我的待办")).to_be_visible()
    # Nothing wider than the phone: no horizontal scrolling of the page.
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390 + 1, f"the page is {width}px wide on a 390px phone"
    s.shot("teacher1-work-queue-phone")


def test_supervisor_reads_dashboard_and_report(open_session: Any, live: LiveServer) -> None:
    s = open_session()
    page = s.login("supervisor1")
    page.goto("/district")
    expect(page.locator("main h1").first).to_be_visible()
    s.shot("supervisor1-district")
    page.get_by_role("main").get_by_role("link", name="定期报送").click()
    expect(page).to_have_url(re.compile(r"/reports"))
    page.get_by_label("起始日期").fill("2026-09-01")
    page.get_by_label("截止日期").fill(live.app.now().date().isoformat())
    page.get_by_role("button", name="生成报告").click()
    expect(page).to_have_url(re.compile(r"/reports\?.*from=2026-09-01"))
    expect(page.get_by_role("link", name="下载 CSV")).to_be_visible()
    expect(page.locator("main .error")).to_have_count(0)
    s.shot("supervisor1-report")
    # A school member is refused the district view, and the supervisor sees that denial
    # in the audit trail (one more denied row of that person than before).
    t = open_session()
    t.login("teacher1")
    teacher_name = t.page.locator("header .who a[href='/account/password']").inner_text().strip()

    def denials() -> Any:
        page.goto("/audit")
        page.get_by_role("link", name="被拒绝的访问").click()
        expect(page.locator("main p.summary")).to_be_visible()
        return page.locator("main ol.audit-history li", has_text=teacher_name)

    before = denials().count()
    response = t.page.goto("/district")
    assert response is not None and response.status == 403
    t.shot("teacher1-district-denied")
    rows = denials()
    expect(rows).to_have_count(before + 1)
    expect(rows.first.locator(".tag.bad")).to_have_text("拒绝")
    s.shot("supervisor1-audit-denials")


def test_admin_adds_an_account_who_then_changes_the_password(open_session: Any) -> None:
    s = open_session(permissions=["clipboard-read", "clipboard-write"])
    page = s.login("admin")
    page.goto("/admin/accounts")
    username = "bt" + uuid.uuid4().hex[:8]
    page.locator("details.action summary", has_text="新建账号").click()
    form = page.locator("form[action='/admin/accounts']")
    form.get_by_label("用户名").fill(username)
    form.get_by_label("姓名").fill(XSS)
    form.get_by_label("学校").select_option(label="安心市第一中学")
    form.get_by_label("班主任", exact=True).check()
    form.get_by_label("班级（班主任，逗号分隔）").fill("七年级1班")
    expect(form.locator("input[type=password]")).to_have_count(0)  # the admin never chooses a password
    form.get_by_role("button", name="新建账号").click()
    expect(page.get_by_role("heading", name=username)).to_be_visible()
    # The script-like name shows as text, and nothing ran.
    expect(page.locator("dl.facts")).to_contain_text("<script>alert(1)</script>")
    # The one-time set-up link, shown once as a full address with its expiry, is what the
    # admin hands over: the copy button puts it on the clipboard (the site's own script).
    link = page.locator("#setup-link").input_value()
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/setup/\S+", link), link
    expect(page.locator("main")).to_contain_text("有效期至")
    page.get_by_role("button", name="复制链接").click()
    expect(page.get_by_role("button", name="已复制")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == link
    s.shot("admin-account-added")
    page.set_viewport_size({"width": 390, "height": 844})
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390 + 1, f"the account page is {width}px wide on a 390px phone"
    s.shot("admin-account-added-phone")
    assert s.dialogs == []
    # The new person chooses their own password through the link, then logs in and
    # changes it on /account/password.
    n = open_session()
    n.page.goto(link)
    n.page.get_by_label("新密码", exact=True).fill("Lantern-river-58")
    n.page.get_by_label("再次输入新密码").fill("Lantern-river-58")
    n.page.get_by_role("button", name="保存").click()
    expect(n.page).to_have_url(re.compile(r"/login"))
    expect(n.page.get_by_role("status")).to_contain_text("密码已设置，请用新密码登录")
    page = n.login(username, "Lantern-river-58")
    expect(page.get_by_role("heading", name="我的待办")).to_be_visible()
    assert n.dialogs == []
    page.goto("/account/password")
    page.get_by_label("当前密码").fill("Lantern-river-58")
    page.get_by_label("新密码", exact=True).fill("Harbor-maple-73")
    page.get_by_label("再次输入新密码").fill("Harbor-maple-73")
    page.locator("main form button[type=submit]").click()
    expect(page.get_by_role("status")).to_contain_text("密码已修改")
    expect(page.locator("main .error")).to_have_count(0)
    n.shot("password-changed")
    # The old password no longer works; the new one does; the link is spent.
    page.get_by_role("button", name="退出").click()
    page = n.login(username, "Lantern-river-58")
    expect(page).to_have_url(re.compile(r"/login"))
    page = n.login(username, "Harbor-maple-73")
    expect(page.get_by_role("heading", name="我的待办")).to_be_visible()
    assert n.page.goto(link).status == 404


def test_admin_roster_import_with_a_bad_line_lists_the_errors(open_session: Any, tmp_path: Any) -> None:
    s = open_session()
    page = s.login("admin")
    page.goto("/admin/roster")
    suffix = uuid.uuid4().hex[:6]
    csv = (
        "student_no,name,gender,birth_date,grade,class,guardian_name,guardian_phone,tags\n"
        f"BT{suffix}1,测试学生甲,女,2013-05-01,七年级,七年级1班,家长甲,13800000001,\n"
        f"BT{suffix}2,测试学生乙,男,不是日期,七年级,七年级1班,家长乙,13800000002,\n"
    )
    path = tmp_path / "roster.csv"
    path.write_text(csv, encoding="utf-8")
    page.get_by_label("学校").select_option(label="安心市第一中学")
    page.get_by_label("花名册文件").set_input_files(str(path))
    page.get_by_role("button", name="上传并预览").click()
    expect(page.get_by_role("alert")).to_be_visible()
    errors = page.locator("table.errors tbody tr")
    expect(errors).to_have_count(1)
    expect(errors.first).to_contain_text("第 3 行")
    s.shot("admin-roster-errors")
    # Nothing was written: the good line is not a student now either.
    page.goto("/admin/roster")
    expect(page.locator("table.errors")).to_have_count(0)


def test_supervisor_opens_a_named_record_only_with_a_reason_which_the_audit_lists(
    open_session: Any, live: LiveServer
) -> None:
    admin = live.app.gate.actor(live.app.accounts.account("admin")[0])
    school = live.app.gate.actor(live.app.accounts.account("teacher1")[0]).school_id
    student = live.app.roster.list_students(admin, school, "七年级1班")[0]
    reason = f"核查家长投诉 {uuid.uuid4().hex[:6]}"
    s = open_session()
    page = s.login("supervisor1")
    page.goto(f"/students/{student.id}")
    # The reason form comes first: nothing about the student is on the page yet.
    expect(page.get_by_label("查阅理由")).to_be_visible()
    expect(page.locator("main")).not_to_contain_text(student.name)
    s.shot("supervisor1-break-glass-form")
    page.get_by_label("查阅理由").fill("  看看  ")  # too short once trimmed: the gate refuses, the form says why
    page.get_by_role("button", name="说明理由并查看").click()
    expect(page.get_by_role("alert")).to_be_visible()
    page.get_by_label("查阅理由").fill(reason)
    page.get_by_role("button", name="说明理由并查看").click()
    expect(page.locator("main")).to_contain_text(student.name)
    s.shot("supervisor1-break-glass-timeline")
    page.goto("/audit")
    page.get_by_role("link", name="紧急查阅记录").click()
    # One row: the reason opened the student (their other records are listed, each opened on its own).
    expect(page.locator("main ol.audit-history li", has_text=reason).first).to_be_visible()
    s.shot("supervisor1-audit-break-glass")
