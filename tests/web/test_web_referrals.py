"""Referrals over HTTP, on both stores: a supervisor keeps the district's registry of agencies
(others refused, 403 and recorded); the counselor picks an agency on the file's page and moves
the referral through its states with the forms; the feedback owed is in their 待办."""

from __future__ import annotations

import random
import re
from typing import Any

from web_support import DemoSite

from domain.common import Actor

VERSION = re.compile(r'name="expected_version" value="(\d+)"')


def _actor(site: DemoSite, username: str) -> Actor:
    return site.app.gate.actor(site.app.accounts.account(username)[0])


def _denials(site: DemoSite, username: str) -> int:
    return site.app.db.fetchone(
        "SELECT COUNT(*) FROM {t}anxin_access WHERE actor_id = ? AND action = 'agency.admin' AND allowed = 0",
        (_actor(site, username).staff_id,),
    )[0]


def test_a_supervisor_keeps_the_registry_and_a_counselor_may_not(site: DemoSite, browse: Any) -> None:
    s = browse("supervisor1")
    page = s.get("/agencies")
    assert page.status_code == 200 and "转介机构名录" in page.text and 'href="/agencies"' in page.text
    name = f"安心市精神卫生中心{random.Random(1).randint(100, 999)}"
    r = s.post("/agencies", {"kind": "mental_health", "name": name})
    assert r.status_code == 303
    page = s.get("/agencies").text
    assert name in page and "精神卫生中心" in page
    # the same name again: refused in Chinese, kept in the form
    r = s.post("/agencies", {"kind": "hospital", "name": name})
    assert r.status_code == 400 and "名录中已有同名机构" in r.text
    # a counselor: 403, and the refusal recorded
    before = _denials(site, "counselor1")
    c = browse("counselor1")
    assert c.get("/agencies").status_code == 403
    assert c.post("/agencies", {"kind": "hospital", "name": "越权"}).status_code == 403
    assert _denials(site, "counselor1") == before + 2
    assert "越权" not in s.get("/agencies").text


def test_the_counselor_refers_to_an_agency_and_moves_the_referral_on(site: DemoSite, browse: Any) -> None:
    app = site.app
    name = f"安心区第一人民医院{random.Random(2).randint(100, 999)}"
    agency = app.agencies.add_agency(_actor(site, "supervisor1"), kind="hospital", name=name)
    c1 = _actor(site, "counselor1")
    with_file = {
        r[0] for r in app.db.fetch("SELECT subject_id FROM {t}anxin_directory WHERE kind = 'file' AND status = 'open'")
    }
    student = sorted(
        r[0]
        for r in app.db.fetch(
            "SELECT stream_id FROM {t}anxin_directory WHERE school_id = ? AND kind = 'student' AND status = 'active' "
            "AND erased = 0 AND class_name = '九年级1班'",
            (c1.school_id,),
        )
        if r[0] not in with_file
    )[0]
    fid = app.support.open_support_file(c1, student, category="情绪困扰", risk_level="key", reason="筛查提示")
    b = browse("counselor1")
    page = b.get(f"/support/{fid}").text
    assert f'<option value="{agency}"' in page and name in page
    version = VERSION.search(page)
    assert version is not None
    # no reason: refused in Chinese, nothing recorded
    r = b.post(f"/support/{fid}/referral", {"agency_id": agency, "reason": "", "expected_version": version[1]})
    assert r.status_code == 400 and "转介原因不能为空" in r.text
    r = b.post(
        f"/support/{fid}/referral", {"agency_id": agency, "reason": "需要专科评估", "expected_version": version[1]}
    )
    assert r.status_code == 303
    f = app.support.get_support_file(c1, fid)
    (entry,) = f.referrals
    rid = entry["id"]
    shown = b.get(f"/support/{fid}").text
    block = shown.split(f'id="referral-{rid}"', 1)[1].split("</article>", 1)[0]
    assert "已转介，待机构接收" in block and "回执截止" in block and "机构已接收" in block
    # the feedback owed is in the counselor's 待办, linking to the file
    home = b.get("/").text
    rows = [r for r in re.findall(r"<tr[^>]*>(.*?)</tr>", home, re.S) if "转介回执" in r and fid in r]
    assert len(rows) == 1
    # the feedback before the agency accepted it: refused, nothing changed
    r = b.post(f"/support/{fid}/referrals/{rid}/feedback", {"summary": "回执"})
    assert r.status_code == 400 and "该转介目前为「已转介，待机构接收」" in r.text
    assert b.post(f"/support/{fid}/referrals/{rid}/accepted", {"note": "已预约门诊"}).status_code == 303
    assert b.post(f"/support/{fid}/referrals/{rid}/feedback", {"summary": "建议药物治疗"}).status_code == 303
    home = b.get("/").text
    assert not [r for r in re.findall(r"<tr[^>]*>(.*?)</tr>", home, re.S) if "转介回执" in r and fid in r]
    assert b.post(f"/support/{fid}/referrals/{rid}/close", {"reason": "已调整方案"}).status_code == 303
    f = app.support.get_support_file(c1, fid)
    assert [s["state"] for s in f.entries[rid]["steps"]] == ["accepted", "feedback", "closed"]
    assert b.post(f"/support/{fid}/referrals/{rid}/teleport", {}).status_code == 404
