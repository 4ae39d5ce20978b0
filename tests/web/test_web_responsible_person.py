"""The one-to-one responsible person (一对一包联人) over HTTP, on both stores: the counselor names a
class teacher from the file's page; the teacher's 待办 has the student, its link opens the
plan part of the file (the plan, their task, the guardian contacts) and never the counselling
notes; the API answers the same; a bad choice is refused in Chinese, nothing changed."""

from __future__ import annotations

import random
import re
from typing import Any

from web_support import DemoSite

from domain.common import Actor

VERSION = re.compile(r'name="expected_version" value="(\d+)"')
SESSION_NOTE = "学生谈到父母离异后长期失眠"


def _actor(site: DemoSite, username: str) -> Actor:
    return site.app.gate.actor(site.app.accounts.account(username)[0])


def _file(site: DemoSite) -> str:
    """A file of counselor1's with a plan, a session and a guardian contact, on a student of
    another class than teacher1's, with no open file yet."""
    app = site.app
    c1 = _actor(site, "counselor1")
    with_file = {
        r[0] for r in app.db.fetch("SELECT subject_id FROM {t}anxin_directory WHERE kind = 'file' AND status = 'open'")
    }
    rows = sorted(
        r[0]
        for r in app.db.fetch(
            "SELECT stream_id FROM {t}anxin_directory WHERE school_id = ? AND kind = 'student' AND status = 'active' "
            "AND erased = 0 AND class_name = '八年级1班'",
            (c1.school_id,),
        )
        if r[0] not in with_file
    )
    student = random.Random(7).choice(rows)
    fid = app.support.open_support_file(c1, student, category="情绪困扰", risk_level="key", reason="筛查提示")
    app.support.draw_up_plan(c1, fid, goals=["恢复规律作息"], measures=[{"text": "每周谈心一次", "by": "班主任"}])
    app.support.record_session(c1, fid, held_on=app.now().date(), summary=SESSION_NOTE)
    app.support.record_guardian_contact(
        c1, fid, contacted_on=app.now().date(), guardian="母亲", method="phone", summary="约定每晚十点前睡觉"
    )
    return fid


def test_the_counselor_names_a_teacher_who_then_sees_the_plan_but_not_the_notes(site: DemoSite, browse: Any) -> None:
    fid = _file(site)
    teacher = _actor(site, "teacher1")
    c = browse("counselor1")
    page = c.get(f"/support/{fid}").text
    assert 'action="/support/' + fid + '/person"' in page and "指定一对一包联人" in page
    assert f'<option value="{teacher.staff_id}"' in page  # any staff member, not only counselors
    version = VERSION.search(page)
    assert version is not None
    # no reason: refused in Chinese, nothing changed
    r = c.post(f"/support/{fid}/person", {"staff_id": teacher.staff_id, "reason": "", "expected_version": version[1]})
    assert r.status_code == 400 and "指定原因不能为空" in r.text
    # an administrator is no staff member to name
    admin_id = site.app.accounts.account("admin")[0]
    r = c.post(f"/support/{fid}/person", {"staff_id": admin_id, "reason": "包联", "expected_version": version[1]})
    assert r.status_code == 400 and "一对一包联人须为本校在岗的教职工" in r.text
    assert site.app.support.get_support_file(_actor(site, "counselor1"), fid).person_id is None
    r = c.post(
        f"/support/{fid}/person",
        {"staff_id": teacher.staff_id, "reason": "班主任熟悉学生", "expected_version": version[1]},
    )
    assert r.status_code == 303
    shown = c.get(f"/support/{fid}").text
    assert site.app.roster.staff_name(teacher.staff_id) in shown.split('id="file-person">', 1)[1].split("</dd>", 1)[0]
    # the teacher's 待办: the student, due on the plan's next review, linking to the file
    t = browse("teacher1")
    home = t.get("/").text
    rows = [r for r in re.findall(r"<tr[^>]*>(.*?)</tr>", home, re.S) if "一对一包联学生" in r and fid in r]
    assert len(rows) == 1 and f'href="/support/{fid}"' in rows[0]
    # the page: the plan, their task, the guardian contacts; never the session's note
    page = t.get(f"/support/{fid}")
    assert page.status_code == 200 and "一对一包联" in page.text
    assert "恢复规律作息" in page.text and "每周谈心一次" in page.text and "约定每晚十点前睡觉" in page.text
    assert "方案复评前" in page.text
    assert SESSION_NOTE not in page.text and "心理辅导" not in page.text and "筛查提示" not in page.text
    assert "重点关注" not in page.text and 'action="/support/' not in page.text
    # the API answers the same: the plan part yes, the whole file no
    api = t.api("GET", f"/api/v1/support-files/{fid}/plan")
    assert api.status_code == 200 and api.json()["plan"]["goals"] == ["恢复规律作息"]
    assert SESSION_NOTE not in api.text
    assert t.api("GET", f"/api/v1/support-files/{fid}").status_code == 403
    # and the forms of the file stay closed to them
    assert t.post(f"/support/{fid}/session", {"summary": "越权"}).status_code == 403
    # another teacher gets nothing
    assert browse("teacher2").get(f"/support/{fid}").status_code == 403
