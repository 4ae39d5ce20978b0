"""The support plan editor (一人一策: rows of measure + responsible person) and the plan
review (复评) over HTTP: rows added, removed and moved without script, everything typed kept;
the review offered only once a plan exists (and refused in Chinese if posted before); the
next review chosen within the policy's bounds, refused outside them naming the range; who
may use the forms; and none of the typed text in clear at rest."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from conftest import Store, make_school
from fastapi.testclient import TestClient
from store_support import raw_bytes
from web_support import Browser, DemoSite

from anxin.passwords import hash_password
from domain.common import Actor
from domain.policy import Policy
from web.app import create_app

VERSION = re.compile(r'name="expected_version" value="(\d+)"')


def _actor(site: DemoSite, username: str) -> Actor:
    return site.app.gate.actor(site.app.accounts.account(username)[0])


def _new_file(site: DemoSite, level: str = "key") -> str:
    """A file of counselor1's on a student of their school with no open file."""
    app = site.app
    c1 = _actor(site, "counselor1")
    with_file = {
        r[0] for r in app.db.fetch("SELECT subject_id FROM {t}anxin_directory WHERE kind = 'file' AND status = 'open'")
    }
    student = sorted(
        r[0]
        for r in app.db.fetch(
            "SELECT stream_id FROM {t}anxin_directory WHERE school_id = ? AND kind = 'student' AND status = 'active' "
            "AND erased = 0",
            (c1.school_id,),
        )
        if r[0] not in with_file
    )[-1]
    return app.support.open_support_file(c1, student, category="情绪困扰", risk_level=level, reason="情绪低落")


def _version(page: str) -> str:
    found = VERSION.search(page)
    assert found
    return found.group(1)


def _rows(page: str) -> list[tuple[str, str]]:
    """The editor's rows as shown: (measure, responsible person)."""
    editor = page.split('id="plan-editor"', 1)[1].split("</details>", 1)[0]
    texts = re.findall(r'name="measure_text" value="([^"]*)"', editor)
    bys = re.findall(r'name="measure_by" value="([^"]*)"', editor)
    return list(zip(texts, bys, strict=True))


def _plan(site: DemoSite, fid: str) -> Any:
    return site.app.support.get_support_file(_actor(site, "principal1"), fid).plan


def test_rows_are_added_removed_and_moved_without_script_keeping_what_was_typed(site: DemoSite, browse: Any) -> None:
    fid = _new_file(site)
    b = browse("counselor1")
    page = b.get(f"/support/{fid}").text
    assert _rows(page) == [("", "")] * 3  # a new plan: three empty rows
    typed = {
        "expected_version": _version(page),
        "mode": "draw",
        "goals": "情绪稳定\n按时到校",
        "measure_text": ["每周一次个体辅导", "每日关注课堂表现", "家访一次"],
        "measure_by": ["心理老师", "班主任", "家长"],
    }
    # 添加一行: one more, empty; nothing saved
    r = b.post(f"/support/{fid}/plan", {**typed, "plan_action": "add"})
    assert r.status_code == 200 and _plan(site, fid) is None
    assert _rows(r.text) == [
        ("每周一次个体辅导", "心理老师"),
        ("每日关注课堂表现", "班主任"),
        ("家访一次", "家长"),
        ("", ""),
    ]
    assert "情绪稳定\n按时到校" in r.text and 'id="plan-editor" open' in r.text
    # 上移 the third, 删除 the first
    r = b.post(f"/support/{fid}/plan", {**typed, "plan_action": "up:2"})
    assert _rows(r.text) == [("每周一次个体辅导", "心理老师"), ("家访一次", "家长"), ("每日关注课堂表现", "班主任")]
    r = b.post(f"/support/{fid}/plan", {**typed, "plan_action": "remove:0"})
    assert _rows(r.text) == [("每日关注课堂表现", "班主任"), ("家访一次", "家长")]
    assert _plan(site, fid) is None
    # saved: the rows in order, empty rows left out
    r = b.post(
        f"/support/{fid}/plan",
        {**typed, "measure_text": ["家访一次", "", "每日关注课堂表现"], "measure_by": ["家长", "", "班主任"]},
    )
    assert r.status_code == 303
    assert _plan(site, fid)["measures"] == [
        {"text": "家访一次", "by": "家长"},
        {"text": "每日关注课堂表现", "by": "班主任"},
    ]
    # revising: the plan's rows and one empty row; the table shows who is responsible
    page = b.get(f"/support/{fid}").text
    assert _rows(page) == [("家访一次", "家长"), ("每日关注课堂表现", "班主任"), ("", "")]
    table = page.split('class="plan-table plan-measures"', 1)[1].split("</table>", 1)[0]
    assert "<td>家访一次</td><td>家长</td>" in re.sub(r"<td[^>]*>", "<td>", table)


def test_a_half_filled_row_is_refused_in_chinese_with_every_row_kept(site: DemoSite, browse: Any) -> None:
    fid = _new_file(site)
    b = browse("counselor1")
    page = b.get(f"/support/{fid}").text
    r = b.post(
        f"/support/{fid}/plan",
        {
            "expected_version": _version(page),
            "mode": "draw",
            "goals": "情绪稳定",
            "measure_text": ["每周一次个体辅导", "", "每日关注"],
            "measure_by": ["心理老师", "班主任", ""],
        },
    )
    assert r.status_code == 400 and "帮扶措施不能为空" in r.text
    assert _rows(r.text) == [("每周一次个体辅导", "心理老师"), ("", "班主任"), ("每日关注", "")]
    assert _plan(site, fid) is None
    # no measure at all
    r = b.post(
        f"/support/{fid}/plan",
        {"expected_version": _version(page), "mode": "draw", "goals": "情绪稳定", "measure_text": "", "measure_by": ""},
    )
    assert r.status_code == 400 and "帮扶方案至少需要一项措施" in r.text and _plan(site, fid) is None


def test_the_staff_of_the_school_are_offered_as_responsible_persons(site: DemoSite, browse: Any) -> None:
    fid = _new_file(site)
    page = browse("counselor1").get(f"/support/{fid}").text
    people = page.split('<datalist id="plan-people">', 1)[1].split("</datalist>", 1)[0]
    teacher = site.app.roster.staff_name(_actor(site, "teacher1").staff_id)
    assert f'<option value="{teacher}">' in people and '<option value="班主任">' in people
    assert 'list="plan-people"' in page


def test_the_review_is_offered_only_once_a_plan_exists_and_refused_before(site: DemoSite, browse: Any) -> None:
    fid = _new_file(site)
    b = browse("counselor1")
    page = b.get(f"/support/{fid}").text
    assert f'action="/support/{fid}/review"' not in page and "制定方案后才能记录方案复评" in page
    r = b.post(f"/support/{fid}/review", {"expected_version": _version(page), "outcome": "continue", "notes": "复评"})
    assert r.status_code == 400 and "尚未制定帮扶方案，不能记录方案复评" in r.text
    c1 = _actor(site, "counselor1")
    assert site.app.support.get_support_file(c1, fid).reviews == []
    site.app.support.draw_up_plan(c1, fid, goals=["稳定"], measures=[{"text": "辅导", "by": "心理老师"}])
    assert f'action="/support/{fid}/review"' in b.get(f"/support/{fid}").text


@pytest.mark.parametrize("level", ["key", "high"])
def test_the_next_review_is_chosen_within_the_policys_bounds(site: DemoSite, browse: Any, level: str) -> None:
    fid = _new_file(site, level)
    c1 = _actor(site, "counselor1")
    site.app.support.draw_up_plan(c1, fid, goals=["稳定"], measures=[{"text": "辅导", "by": "心理老师"}])
    b = browse("counselor1")
    page = b.get(f"/support/{fid}").text
    today = site.app.now().date()
    days = Policy().review_days[level]
    latest, earliest = today + timedelta(days=days), today + timedelta(days=1)
    field = re.search(r'<input type="date" name="next_review_due"[^>]*>', page)
    assert field is not None
    assert f'value="{latest.isoformat()}"' in field[0] and f'min="{earliest.isoformat()}"' in field[0]
    assert f'max="{latest.isoformat()}"' in field[0]
    # past the policy's interval: refused, the range named, what was typed kept
    late = latest + timedelta(days=1)
    form = {"expected_version": _version(page), "outcome": "continue", "notes": "保留的复评意见"}
    r = b.post(f"/support/{fid}/review", {**form, "next_review_due": late.isoformat()})
    assert r.status_code == 400
    assert f"下次复评日期应在 {earliest.year}年{earliest.month}月{earliest.day}日 至 " in r.text
    assert f"{latest.year}年{latest.month}月{latest.day}日 之间" in r.text and f"每 {days} 天" in r.text
    assert "保留的复评意见" in r.text and f'value="{late.isoformat()}"' in r.text
    assert site.app.support.get_support_file(c1, fid).reviews == []
    # a day within: saved as the next review
    chosen = today + timedelta(days=max(1, days // 2))
    r = b.post(f"/support/{fid}/review", {**form, "next_review_due": chosen.isoformat()})
    assert r.status_code == 303
    assert site.app.support.get_support_file(c1, fid).next_review_due == chosen


def test_only_the_files_counselor_and_the_principal_may_use_the_plan_forms(site: DemoSite, browse: Any) -> None:
    fid = _new_file(site)
    form = {"mode": "draw", "goals": "稳定", "measure_text": "辅导", "measure_by": "心理老师"}
    for username in ("teacher1", "safety1", "counselor2", "admin"):
        if site.app.accounts.account(username) is None:
            continue
        r = browse(username).post(f"/support/{fid}/plan", form)
        assert r.status_code == 403, username
        r = browse(username).post(f"/support/{fid}/plan", {**form, "plan_action": "add"})
        assert r.status_code in (403, 410), username  # a row button reads the file: refused too
        assert "辅导" not in r.text or r.status_code != 200
    assert _plan(site, fid) is None
    assert browse("principal1").post(f"/support/{fid}/plan", form).status_code == 303
    assert _plan(site, fid)["measures"] == [{"text": "辅导", "by": "心理老师"}]


def test_the_plan_and_review_as_typed_are_not_in_clear_at_rest(store: Store) -> None:
    app = store.open()
    school = make_school(app)
    fid = app.support.open_support_file(
        school.counselor, school.student("2026001"), category="其他", risk_level="key", reason="入学适应困难"
    )
    app.accounts.set_password_hash(school.counselor.staff_id, hash_password("counselor-pass-1"))
    secrets = ("每周三下午沙盘辅导", "欧阳老师", "按时完成作业", "沙盘作品有明显进步")
    with TestClient(create_app(app, background_seconds=None), base_url="http://testserver") as client:
        b = Browser(client, None).login(f"counselor-{school.id[:4]}", "counselor-pass-1")
        page = b.get(f"/support/{fid}").text
        r = b.post(
            f"/support/{fid}/plan",
            {
                "expected_version": _version(page),
                "mode": "draw",
                "goals": secrets[2],
                "measure_text": [secrets[0], ""],
                "measure_by": [secrets[1], ""],
            },
        )
        assert r.status_code == 303
        page = b.get(f"/support/{fid}").text
        assert secrets[0] in page and secrets[1] in page
        r = b.post(
            f"/support/{fid}/review", {"expected_version": _version(page), "outcome": "continue", "notes": secrets[3]}
        )
        assert r.status_code == 303
    raw = raw_bytes(store)
    for clear in secrets:
        assert clear.encode() not in raw, clear
