"""The whole statute journey of a bullying case in a real browser (Chromium via Playwright,
the real app under uvicorn), each step through the case page as the role that does it
(docs/permissions.md), asserting what that person reads in Chinese:

a hotline clue with no named student (DOMAIN.md §1.1) → the parties added as the inquiry
identifies them → the guardians of both sides notified and their part recorded (未成年人保护法
art. 39) → the school's 学生欺凌治理委员会 meets with a quorum (未成年人学校保护规定 art. 23-24)
→ determination 严重 approved by the principal → the reports to the police and the education
bureau recorded before their deadline (art. 39) → dispositions for the bullying student
(教督〔2017〕10号; 中小学教育惩戒规则) → the bullying student's family applies for the county
review (复查) → the panel changes the outcome → follow-up → closed.

Screenshots of the case page at the main steps, 1280 and 390 px wide, land in
$ANXIN_SHOTS_DIR (default test-artifacts/screenshots/)."""

from __future__ import annotations

import os
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from browser_support import SHOTS, LiveServer

from web import i18n

pytest.importorskip("playwright.sync_api", reason="Playwright is not installed")

from playwright.sync_api import expect  # noqa: E402


def _actor(live: LiveServer, username: str) -> Any:
    return live.app.gate.actor(live.app.accounts.account(username)[0])


def _case_ids(live: LiveServer) -> set[str]:
    safety = _actor(live, "safety1")
    return {c["case_id"] for c in live.app.cases.cases_of_school(safety, safety.school_id)}


def _shots(page: Any, name: str) -> None:
    """The page as it is, full length, at a desk (1280 px) and on a phone (390 px)."""
    folder = Path(os.environ.get("ANXIN_SHOTS_DIR") or SHOTS)
    folder.mkdir(parents=True, exist_ok=True)
    for width, height in ((1280, 900), (390, 844)):
        page.set_viewport_size({"width": width, "height": height})
        page.screenshot(path=str(folder / f"{name}-{width}.png"), full_page=True)
    page.set_viewport_size({"width": 1280, "height": 900})


def _submit(page: Any, action: str, done: str) -> None:
    """Submit the open form of one step; the page comes back with the step's message and no error."""
    page.locator(f"details#{action} button[type=submit]").click()
    page.wait_for_load_state()
    expect(page.locator("main .error")).to_have_count(0)
    expect(page.locator("p.flash[role=status]").first).to_contain_text(done)


def _open(page: Any, action: str) -> Any:
    """One step's form on the case page, opened (and its section first, if collapsed)."""
    section = page.locator(f"details.section:has(details#{action})")
    if section.count() and section.get_attribute("open") is None:
        section.locator("summary").first.click()
    box = page.locator(f"details#{action}")
    box.locator("summary").click()
    return box


def _pick(box: Any, name: str, label: str) -> None:
    """Choose an option of a select by the words it shows (the student's name, a kind)."""
    box.locator(f"select[name={name}]").select_option(label=label)


def test_a_hotline_clue_goes_through_every_step_the_statutes_set_to_closure(
    open_session: Any, live: LiveServer
) -> None:
    app, admin = live.app, _actor(live, "admin")
    school = _actor(live, "safety1").school_id
    target, bully = [
        s for s in app.roster.list_students(admin, school) if s.class_name == "九年级2班" and not s.erased
    ][2:4]
    tag = uuid.uuid4().hex[:6]
    when = i18n.local(app.now() - timedelta(hours=20)).strftime("%Y-%m-%dT%H:%M")
    before = _case_ids(live)

    # -- 1. the safety lead takes a hotline call: no student is named yet --------------------
    s = open_session()
    page = s.login("safety1")
    page.get_by_role("navigation", name="主菜单").get_by_role("link", name="报告欺凌").click()
    expect(page.get_by_role("heading", name="报告疑似欺凌")).to_be_visible()
    page.get_by_label("发生时间").fill(when)
    page.get_by_label("发生地点").fill("校门外小卖部")
    page.get_by_label("线索来源").select_option(label="举报电话")
    page.get_by_label("肢体").check()
    page.get_by_label("恶意排斥、孤立").check()
    page.get_by_label("学生尚未确认", exact=False).check()
    page.get_by_label("事情经过").fill(f"家长来电：九年级有学生放学后被堵在小卖部门口推搡，同学都不和他说话 {tag}")
    page.get_by_role("button", name="提交报告").click()
    expect(page.locator("p.flash[role=status]")).to_contain_text("已报告")
    (case_id,) = _case_ids(live) - before

    page.goto(f"/cases/{case_id}")
    expect(page.locator("#case-status")).to_have_text("已报告")
    expect(page.locator("#report")).to_contain_text("举报电话")
    expect(page.locator("#report")).to_contain_text("恶意排斥、孤立")
    expect(page.locator("#unconfirmed")).to_contain_text("尚未确认被欺凌学生")
    expect(page.locator("#intake-due")).to_be_visible()  # art. 24: the inquiry starts at once
    # nobody to name yet: the parties say so, and no form asks to pick a student among none
    expect(page.locator("#parties")).to_contain_text("尚无当事人")
    for needs_a_party in ("remove_party", "notify_guardian", "self_harm", "invite_guardian"):
        expect(page.locator(f"details#{needs_a_party}")).to_have_count(0)
    _shots(page, "journey-1-clue")

    # -- 2. the inquiry starts and identifies both students -----------------------------------
    _open(page, "start_investigation")
    _submit(page, "start_investigation", "已开始调查")
    expect(page.locator("#case-status")).to_have_text("调查中")
    expect(page.locator("#investigation-due")).not_to_contain_text("自开始调查起计算")
    for student, part in ((target, "被欺凌学生"), (bully, "涉嫌欺凌学生")):
        box = _open(page, "add_party")
        box.locator("[name=student_no]").fill(student.student_no or "")
        _pick(box, "part", part)
        box.locator("[name=reason]").fill("核查监控和同学陈述后确认")
        _submit(page, "add_party", "已增加当事人")
        expect(page.locator("#parties tbody")).to_contain_text(student.name)
    expect(page.locator("#unconfirmed")).to_have_count(0)
    box = _open(page, "statement")
    box.locator("[name=from_person]").fill("小卖部店主")
    box.locator("[name=text]").fill(f"连续三天放学后看见两名学生推搡同一名学生 {tag}")
    _submit(page, "statement", "已记录陈述")
    box = _open(page, "complete_investigation")
    box.locator("[name=findings]").fill("多次推搡并号召同学孤立对方，造成明显心理伤害")
    _submit(page, "complete_investigation", "调查已完成")
    expect(page.locator("#case-status")).to_have_text("待认定")

    # -- 3. the guardians of both sides are told and take part (未成年人保护法 art. 39) -----------
    guardians = page.locator("#guardians")
    expect(guardians).to_contain_text("尚未通知监护人参与认定")
    for student, method, part in ((target, "当面", "出席认定会议"), (bully, "电话", "书面提出意见")):
        box = _open(page, "invite_guardian")
        _pick(
            box,
            "student_id",
            f"{student.name}（{student.class_name}） · {'被欺凌学生' if student is target else '涉嫌欺凌学生'}",
        )
        _pick(box, "method", method)
        _submit(page, "invite_guardian", "已记录通知监护人")
        box = _open(page, "guardian_participation")
        _pick(
            box,
            "student_id",
            f"{student.name}（{student.class_name}） · {'被欺凌学生' if student is target else '涉嫌欺凌学生'}",
        )
        _pick(box, "participation", part)
        if part == "书面提出意见":
            box.locator("[name=note]").fill("家长书面表示孩子愿意道歉")
        _submit(page, "guardian_participation", "已记录监护人参与情况")
    expect(guardians).to_contain_text("出席认定会议")
    expect(guardians).to_contain_text("书面提出意见")
    expect(guardians).to_contain_text("已联系上")
    expect(guardians.locator(".tag.bad")).to_have_count(0)

    # -- 4. the governance body meets with its members present (未成年人学校保护规定 art. 23-24) ---
    box = _open(page, "committee_meeting")
    members = box.locator("[name=members_present]")
    assert members.count() >= 3
    for i in range(members.count()):
        members.nth(i).check()
    box.locator("[name=summary]").fill("法治副校长、法律顾问和家长代表逐一发表意见")
    box.locator("[name=decision]").fill("经表决，认定构成严重欺凌")
    _submit(page, "committee_meeting", "已记录认定会议")
    expect(page.locator("#meetings")).to_contain_text("达到规定人数")
    expect(page.locator("#meetings")).to_contain_text("法治副校长")

    # -- 5. the determination: 严重, approved by the principal ---------------------------------
    box = _open(page, "determine")
    box.get_by_label("构成欺凌", exact=True).check()
    box.locator("[name=severity]").select_option(label="严重欺凌")
    box.locator("[name=reason]").fill("多次推搡并组织孤立，情节比较恶劣，对身心造成明显伤害")
    _submit(page, "determine", "认定已记录，等待校长审批")
    expect(page.locator("#case-status")).to_have_text("待校长审批")
    # the safety lead cannot approve: the principal does
    expect(page.locator("details#approve")).to_have_count(0)

    p = open_session()
    ppage = p.login("principal1")
    ppage.goto(f"/cases/{case_id}")
    box = _open(ppage, "approve")
    box.locator("[name=reason]").fill("同意委员会认定")
    _submit(ppage, "approve", "认定已批准")
    expect(ppage.locator("#case-status")).to_have_text("干预中")
    expect(ppage.locator("#determination .determination.current")).to_contain_text("构成欺凌 · 严重欺凌")
    reports = ppage.locator("#authority-reports")
    expect(reports).to_contain_text("报告事由：严重欺凌")
    expect(reports).to_contain_text("待报告：公安机关")
    expect(reports).to_contain_text("待报告：教育行政部门")
    expect(reports).not_to_contain_text("已逾期")
    _shots(ppage, "journey-2-serious-approved")

    # -- 6. the reports to the police and the bureau, before their deadline --------------------
    page.goto(f"/cases/{case_id}")
    for authority, unit, receipt in (("公安机关", "城关派出所", f"JJ-{tag}"), ("教育行政部门", "县教育局", "")):
        box = _open(page, "authority_report")
        _pick(box, "authority", authority)
        box.locator("[name=unit]").fill(unit)
        _pick(box, "method", "电话")
        if receipt:
            box.locator("[name=receipt]").fill(receipt)
        _submit(page, "authority_report", "已记录报告")
        expect(page.locator("#authority-reports tbody")).to_contain_text(unit)
    reports = page.locator("#authority-reports")
    expect(reports).to_contain_text("已报告")
    expect(reports).not_to_contain_text("待报告")
    expect(reports).to_contain_text(f"JJ-{tag}")
    c = app.cases.get_case(_actor(live, "principal1"), case_id)
    duty = c.authority_duty
    assert duty is not None and {r["authority"] for r in c.authority_reports} == {"police", "bureau"}
    assert all(r["reported_at"] <= duty["due_at"] for r in c.authority_reports)

    # -- 7. dispositions for the bullying student, and both sides' interventions --------------
    bully_option = f"{bully.name}（{bully.class_name}） · 涉嫌欺凌学生"
    for kind, level, decider in (
        ("批评教育", "", "学生欺凌治理委员会"),
        ("教育惩戒", "较重教育惩戒：承担校内公益服务任务", "学校"),
        ("纪律处分", "警告", "校长"),
        ("责令家长加强管教", "", "学校"),
    ):
        box = _open(page, "disposition")
        _pick(box, "student_id", bully_option)
        _pick(box, "kind", kind)
        if level:
            _pick(box, "level", level)
        _pick(box, "decided_by", decider)
        _submit(page, "disposition", "已记录处理决定")
    dispositions = page.locator("#dispositions tbody")
    expect(dispositions).to_contain_text("批评教育")
    expect(dispositions).to_contain_text("教育惩戒 · 较重教育惩戒 · 承担校内公益服务任务")
    expect(dispositions).to_contain_text("纪律处分 · 警告")
    expect(dispositions).to_contain_text("责令家长加强管教")
    expect(dispositions).not_to_contain_text("—")  # no empty note shown as a dash
    for student, kind, plan in (
        (target, "心理辅导", "每周一次心理辅导，关注情绪和同伴关系"),
        (bully, "教育矫治", "法治教育、谈心了解动机，参加班级公益服务"),
    ):
        box = _open(page, "plan_intervention")
        _pick(
            box,
            "student_id",
            f"{student.name}（{student.class_name}） · {'被欺凌学生' if student is target else '涉嫌欺凌学生'}",
        )
        _pick(box, "kind", kind)
        box.locator("[name=plan]").fill(plan)
        _submit(page, "plan_intervention", "已制定干预措施")
    expect(page.locator("#interventions")).to_contain_text("教育矫治")

    # -- 8. the bullying student's family applies for the county review (复查) -----------------
    expect(page.locator("details#appeal")).to_have_count(0)  # the old 申诉 form is not offered
    expect(page.locator("#appeals")).to_have_count(0)  # nor an empty section for it
    box = _open(page, "review_apply")
    _pick(box, "party_id", bully_option)
    box.locator("[name=county_body]").fill("县防治学生欺凌工作办公室")
    box.locator("[name=grounds]").fill(f"家长认为只是推搡，未造成伤害，不应认定为严重欺凌 {tag}")
    _submit(page, "review_apply", "已记录复查申请")
    review = page.locator("#county-review article.review")
    due = i18n.local(app.now()).date() + timedelta(days=app.policy.county_review_days)
    expect(review).to_contain_text("县防治学生欺凌工作办公室")
    expect(review).to_contain_text(f"复查期限 {due.year}年{due.month}月{due.day}日")
    expect(review).to_contain_text("待复查")
    # the panel: a school, a parent and an outside-expert member
    (review_id,) = [r["id"] for r in app.cases.get_case(_actor(live, "principal1"), case_id).county_reviews]
    box = _open(page, f"review_panel-{review_id}")
    for i, name in enumerate(("李老师", "赵家长", "周教授")):
        box.locator(f"[name=member_{i}]").fill(name)
    _submit(page, f"review_panel-{review_id}", "已记录复查小组")
    expect(review).to_contain_text("复查小组：学校代表 李老师、家长代表 赵家长、校外专家 周教授")
    _shots(page, "journey-3-review-pending")

    # -- 9. the panel changes the outcome: 一般欺凌 --------------------------------------------
    box = _open(page, f"review_outcome-{review_id}")
    _pick(box, "outcome", "变更认定")
    box.get_by_label("构成欺凌", exact=True).check()
    box.locator("[name=severity]").select_option(label="一般欺凌（情节轻微）")
    box.locator("[name=reason]").fill(f"复查小组认为未造成身体伤害，属情节轻微 {tag}")
    _submit(page, f"review_outcome-{review_id}", "已记录复查结果")
    expect(review).to_contain_text("变更认定")
    expect(review).to_contain_text(f"复查小组认为未造成身体伤害，属情节轻微 {tag}")
    current = page.locator("#determination .determination.current")
    expect(current).to_contain_text("构成欺凌 · 一般欺凌（情节轻微）")
    expect(current).to_contain_text("县级复查变更")
    expect(current).to_contain_text("复查决定，即时生效")
    expect(current).not_to_contain_text("已批准")  # no principal approved the county's decision
    superseded = page.locator("#determination .determination:not(.current)")
    expect(superseded).to_contain_text("构成欺凌 · 严重欺凌")
    expect(superseded).to_contain_text("非现行认定")
    expect(page.locator("#case-status")).to_have_text("干预中")
    # the reports already made stay on the case
    expect(page.locator("#authority-reports tbody")).to_contain_text("城关派出所")

    # -- 10. follow-up, and the principal closes ---------------------------------------------
    box = _open(page, "follow_up")
    box.locator("[name=notes]").fill("回访：双方关系缓和，被欺凌学生重新参加集体活动")
    _submit(page, "follow_up", "已记录回访")
    expect(page.locator("#case-status")).to_have_text("回访中")

    ppage.goto(f"/cases/{case_id}")
    box = _open(ppage, "close")
    box.locator("[name=reason]").fill("处理决定已执行，回访情况良好")
    _submit(ppage, "close", "已结案")
    expect(ppage.locator("#case-status")).to_have_text("已结案")
    expect(ppage.locator("#closure")).to_contain_text("处理决定已执行，回访情况良好")
    _shots(ppage, "journey-4-closed")
    assert app.cases.get_case(_actor(live, "principal1"), case_id).status == "closed"
    assert not s.dialogs and not p.dialogs
