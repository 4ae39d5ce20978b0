"""The inbox through the pages: a report made by a class teacher reaches the principal's
header and inbox after one delivery run; the item opens the case and is then read; one's
email address and choices are kept, a bad one refused with nothing changed; the
administrator sets a school's group bot (never shown again) and sees undeliverable
messages without content."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from web_support import DemoSite

from web import i18n


def _actor(site: DemoSite, username: str) -> Any:
    return site.app.gate.actor(site.app.accounts.account(username)[0])


def _report(site: DemoSite, browse: Any) -> set[str]:
    admin = _actor(site, "admin")
    school = _actor(site, "teacher1").school_id
    students = [s for s in site.app.roster.list_students(admin, school) if s.class_name == "七年级1班"]
    teacher = browse("teacher1")
    when = i18n.local(site.app.now() - timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M")
    r = teacher.post(
        "/cases/new",
        {
            "occurred_at": when,
            "place": "操场",
            "channel": "teacher",
            "forms": ["verbal"],
            "narrative": "收件箱测试：课间被起绰号",
            "student_no_0": students[0].student_no,
            "part_0": "targeted",
        },
    )
    assert r.status_code == 303, r.text
    safety = _actor(site, "safety1")
    return {c["case_id"] for c in site.app.cases.cases_of_school(safety, safety.school_id)}


def test_a_report_reaches_the_principals_header_and_inbox_and_opens_the_case(site: DemoSite, browse: Any) -> None:
    principal = browse("principal1")
    site.app.notifications.deliver()  # (what earlier tests on this demo raised)
    before = {i["notice_id"] for i in site.app.notifications.inbox(_actor(site, "principal1"))}
    safety = _actor(site, "safety1")
    cases_before = {c["case_id"] for c in site.app.cases.cases_of_school(safety, safety.school_id)}
    (case_id,) = _report(site, browse) - cases_before
    site.app.notifications.deliver()

    page = principal.get("/inbox")
    assert page.status_code == 200
    assert "新的欺凌报告" in page.text and 'class="badge"' in page.text
    # (other tests on this demo may have raised notices meanwhile: this case's is the one asked about)
    new = [i for i in site.app.notifications.inbox(_actor(site, "principal1")) if i["notice_id"] not in before]
    items = [i for i in new if i["stream_id"] == case_id]
    assert [(i["kind"], i["read"]) for i in items] == [("case_reported", False)]
    # the teacher who reported is not told of their own report
    assert all(i["stream_id"] != case_id for i in site.app.notifications.inbox(_actor(site, "teacher1")))

    opened = principal.get(f"/inbox/{items[0]['notice_id']}")
    assert opened.status_code == 200 and str(opened.url).endswith(f"/cases/{case_id}")
    read = {i["notice_id"]: i["read"] for i in site.app.notifications.inbox(_actor(site, "principal1"))}
    assert read[items[0]["notice_id"]]


def test_ones_address_and_choices_are_kept_and_a_bad_address_changes_nothing(site: DemoSite, browse: Any) -> None:
    safety = browse("safety1")
    ok = safety.post(
        "/inbox/settings", {"email": "sun.zhuren@school.test", "mode_case_reported": "digest"}, follow_redirects=True
    )
    assert ok.status_code == 200 and "提醒设置已保存" in ok.text
    bad = safety.post("/inbox/settings", {"email": "不是邮箱", "mode_case_reported": "off"})
    assert bad.status_code == 400 and "邮箱地址" in bad.text
    actor = _actor(site, "safety1")
    assert site.app.roster.email_of(actor, actor.staff_id) == "sun.zhuren@school.test"
    modes = {s["kind"]: s["mode"] for s in site.app.notifications.settings(actor)}
    assert modes["case_reported"] == "digest"


def test_the_administrator_sets_a_group_bot_that_is_never_shown_again(site: DemoSite, browse: Any) -> None:
    admin = browse("admin")
    school = _actor(site, "teacher1").school_id
    secret = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=SECRET-KEY-123"
    r = admin.post(f"/admin/notifications/{school}/bot", {"url": secret}, follow_redirects=True)
    assert r.status_code == 200 and "群机器人地址已保存" in r.text
    assert "SECRET-KEY-123" not in r.text and "已设置" in r.text
    refused = admin.post(f"/admin/notifications/{school}/bot", {"url": "javascript:alert(1)"})
    assert refused.status_code == 400
    assert site.app.notifications.group_bot_set(_actor(site, "admin"), school)
    admin.post(f"/admin/notifications/{school}/bot", {"url": ""})
    assert not site.app.notifications.group_bot_set(_actor(site, "admin"), school)
