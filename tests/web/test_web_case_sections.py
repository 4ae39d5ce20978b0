"""The case page's contents and sections: every section one link away, the section where
the next step is done open (and marked), the rest collapsed to a line that says what is in
them; a refused form's section open with its error once; a closed case opens on its
determination and its closing; a reader who may not write (a supervisor reading with a
stated reason) is shown no form."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from typing import Any

from web_support import DemoSite

from web import case_sections
from web.routes import cases as case_routes

SECTION = re.compile(r'<details class="card section" id="([a-z-]+)"( open)?>')
TOC = re.compile(r'<nav class="case-toc".*?</nav>', re.S)
VERSION = re.compile(r'name="expected_version" value="(\d+)"')


def _actor(site: DemoSite, username: str) -> Any:
    return site.app.gate.actor(site.app.accounts.account(username)[0])


def _new_case(site: DemoSite) -> str:
    t1 = _actor(site, "teacher1")
    admin = _actor(site, "admin")
    target = next(
        s for s in site.app.roster.list_students(admin, t1.school_id) if s.class_name == "七年级1班" and not s.erased
    )
    return str(
        site.app.cases.report_bullying(
            t1,
            school_id=t1.school_id,
            channel="teacher",
            occurred_at=site.app.now() - timedelta(hours=1),
            place="食堂",
            forms=["verbal"],
            parties=[(target.id, "targeted")],
            narrative=f"起外号 {uuid.uuid4().hex[:6]}",
        )
    )


def _sections(page: str) -> dict[str, bool]:
    return {sid: bool(opened) for sid, opened in SECTION.findall(page)}


def test_every_step_form_belongs_to_a_section() -> None:
    assert set(case_sections.STEP_SECTION) == set(case_routes.STEPS)
    assert set(case_sections.STEP_SECTION.values()) <= {sid for sid, _ in case_sections.SECTIONS}


def test_the_contents_link_every_section_on_the_page(site: DemoSite, browse: Any) -> None:
    page = browse("safety1").get(f"/cases/{_new_case(site)}").text
    toc = TOC.search(page)
    assert toc, "a table of contents"
    targets = re.findall(r'href="#([a-z-]+)-start"', toc.group(0))
    sections = _sections(page)
    assert targets == list(sections), (targets, list(sections))  # each section, in page order
    for sid in sections:  # each link's target is inside its section (a closed one opens on the way)
        assert re.search(
            rf'id="{sid}"( open)?>\s*<summary>.*?</summary><span class="section-start" id="{sid}-start">', page
        )
    assert len(sections) >= 15


def test_a_new_case_opens_on_what_to_do_next(site: DemoSite, browse: Any) -> None:
    page = browse("safety1").get(f"/cases/{_new_case(site)}").text
    sections = _sections(page)
    assert sections["report"] and sections["parties"] and sections["investigation"]
    assert not sections["interventions"] and not sections["follow-ups"] and not sections["closure"]
    assert sum(sections.values()) <= 4, sections
    assert re.search(r'<a href="#investigation-start" class="toc-now">', page)
    assert 'id="next-step"' in page and "开始调查" in page.split('id="next-step"', 1)[1][:300]
    # a collapsed section says what is in it
    assert re.search(r'id="follow-ups">\s*<summary><h2>回访</h2><span class="muted brief">尚无</span></summary>', page)


def test_a_refused_form_opens_its_section_with_the_error_once(site: DemoSite, browse: Any) -> None:
    case_id = _new_case(site)
    b = browse("safety1")
    page = b.get(f"/cases/{case_id}").text
    version = VERSION.search(page).group(1)
    # a follow-up before any determination: refused by the rules, its section is closed at first
    assert not _sections(page)["measures"]
    r = b.post(
        f"/cases/{case_id}/safety_measure",
        {"expected_version": version, "kind": "no_such_kind", "note": "分开座位 保留所填"},
        follow_redirects=True,
    )
    assert r.status_code == 400
    sections = _sections(r.text)
    assert sections["measures"], sections
    assert len(re.findall(r'class="error" role="alert"', r.text)) == 1
    assert "分开座位 保留所填" in r.text  # what was typed is kept


def test_a_closed_case_opens_on_its_determination_and_closing(site: DemoSite, browse: Any) -> None:
    principal = _actor(site, "principal1")
    closed = next(
        c["case_id"]
        for c in site.app.cases.cases_of_school(principal, principal.school_id)
        if site.app.cases.get_case(principal, c["case_id"]).status == "closed"
    )
    page = browse("principal1").get(f"/cases/{closed}").text
    sections = _sections(page)
    assert sections["determination"] and sections["closure"]
    assert not sections["investigation"] and not sections["measures"]
    assert 'id="next-step"' not in page


def test_a_supervisor_reading_with_a_reason_is_shown_no_form(site: DemoSite, browse: Any) -> None:
    case_id = _new_case(site)
    b = browse("supervisor1")
    page = b.post(f"/cases/{case_id}/open", {"break_glass_reason": "核查家长投诉的处理进度"})
    assert page.status_code == 200 and 'class="case-toc"' in page.text
    assert f'action="/cases/{case_id}/' not in page.text  # no step form at all
    assert 'id="next-step"' not in page.text
