"""The student picker on the web: suggestions as one types (GET /api/v1/students/suggest,
the gated and recorded search) and forms that settle what was typed without JavaScript
(web/picker.py): a chosen label, a student number, or a name / pinyin / initials that fit
one student; none or several is a Chinese message naming what was typed, which is kept."""

from __future__ import annotations

import re
import uuid
from datetime import date, timedelta
from typing import Any

from web_support import Browser, DemoSite

from domain.common import Actor
from projections import student_names as sn

# Rare characters, so a name made of them is nobody else's in the demo district.
RARE = "翀翦翮翯翾耄耋聃聿肇胤芃苒茕荀莪"


def _actor(site: DemoSite, username: str) -> Actor:
    return site.app.gate.actor(site.app.accounts.account(username)[0])


def _enrol(site: DemoSite, class_name: str, name: str | None = None) -> tuple[str, str, str]:
    """A new student of school 1 (id, name, student number), named uniquely unless told."""
    school = _actor(site, "teacher1").school_id or ""
    tag = uuid.uuid4().hex
    name = name or "覃" + "".join(RARE[int(c, 16)] for c in tag[:3])
    number = "9" + str(int(tag[:12], 16))[:9]
    sid = site.app.roster.enrol_student(
        _actor(site, "admin"),
        school_id=school,
        student_no=number,
        name=name,
        gender="女",
        birth_date=site.app.now().date() - timedelta(days=13 * 366),
        grade=class_name[:3],
        class_name=class_name,
    )
    return sid, name, number


def _decisions(site: DemoSite, username: str) -> list[tuple[str, int]]:
    rows = site.app.db.fetch(
        "SELECT action, allowed FROM {t}anxin_access WHERE actor_id = ? ORDER BY id", (_actor(site, username).staff_id,)
    )
    return [(r[0], r[1]) for r in rows]


def _suggest(b: Browser, q: str) -> Any:
    return b.api("GET", "/api/v1/students/suggest", params={"q": q})


def _report(site: DemoSite, b: Browser, typed: str, narrative: str) -> Any:
    when = (site.app.now() - timedelta(hours=2)).astimezone().strftime("%Y-%m-%dT%H:%M")
    return b.post(
        "/cases/new",
        {
            "occurred_at": when,
            "place": "操场",
            "channel": "teacher",
            "forms": ["verbal"],
            "narrative": narrative,
            "student_no_0": typed,
            "part_0": "targeted",
        },
    )


# -- suggestions --------------------------------------------------------------------------------
def test_suggestions_come_by_initials_pinyin_number_and_name_each_a_recorded_search(site: DemoSite, browse) -> None:
    sid, name, number = _enrol(site, "七年级1班")
    spelling = sn.spellings(name)[0]  # 覃 read as a surname (qin)
    assert spelling.initials.startswith("q")  # 覃 as a surname: qin
    b = browse("teacher1")
    before = len(_decisions(site, "teacher1"))
    for typed in (spelling.initials, spelling.initials.upper(), spelling.full, spelling.full[:6], number, name):
        r = _suggest(b, typed)
        assert r.status_code == 200, typed
        found = {s["id"]: s for s in r.json()}
        assert sid in found, typed
    assert found[sid] == {
        "id": sid,
        "name": name,
        "class_name": "七年级1班",
        "student_no": number,
        "label": f"{name}（七年级1班，{number}）",
    }
    assert [s["id"] for s in _suggest(b, spelling.full).json()][:1] == [sid]  # the whole pinyin: first
    assert len(_suggest(b, "z").json()) <= 8
    # one recorded decision per request (7 above + 2), all allowed, about reading students
    assert _decisions(site, "teacher1")[before:] == [("student.read", 1)] * 8


def test_suggestions_are_only_what_the_person_may_see(site: DemoSite, browse) -> None:
    other, name, number = _enrol(site, "七年级2班")
    spelling = sn.spellings(name)[0]  # 覃 read as a surname (qin)
    # a class teacher of another class: not offered, by initials or by number
    t = browse("teacher1")
    assert other not in {s["id"] for s in _suggest(t, spelling.initials).json()}
    assert _suggest(t, number).json() == []
    # the school's counselor: offered
    assert other in {s["id"] for s in _suggest(browse("counselor1"), spelling.initials).json()}
    # the supervisor (no stated reason): refused, and the refusal recorded
    before = len(_decisions(site, "supervisor1"))
    r = browse("supervisor1").api(
        "GET",
        "/api/v1/students/suggest",
        params={"q": spelling.initials, "school_id": _actor(site, "teacher1").school_id},
    )
    assert r.status_code == 403 and _decisions(site, "supervisor1")[before:] == [("student.read", 0)]
    # a student who has left is not offered
    site.app.roster.leave_student(_actor(site, "admin"), other, "转学")
    assert other not in {s["id"] for s in _suggest(browse("counselor1"), spelling.initials).json()}
    # nothing typed: refused by the request's rules, nothing searched
    assert browse("counselor1").api("GET", "/api/v1/students/suggest", params={"q": ""}).status_code == 422


# -- the forms ----------------------------------------------------------------------------------
def test_every_form_that_names_a_student_has_the_picker_and_no_inline_script(site: DemoSite, browse) -> None:
    pages = {
        "safety1": ["/cases/new"],
        "counselor1": ["/support/new", "/screenings"],
        "principal1": ["/pairings"],
    }
    for who, paths in pages.items():
        b = browse(who)
        for path in paths:
            page = b.get(path)
            assert page.status_code == 200, path
            assert "data-student-picker" in page.text and 'role="combobox"' in page.text, path
            assert 'aria-autocomplete="list"' in page.text and 'role="listbox"' in page.text, path
            assert '<script src="/static/picker.js" defer></script>' in page.text, path
            assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", page.text), path  # no inline script
    assert browse("safety1").get("/static/picker.js").status_code == 200


def test_the_report_form_takes_pinyin_initials_a_label_or_a_number_without_javascript(site: DemoSite, browse) -> None:
    s = browse("safety1")
    for how in ("initials", "pinyin", "label", "number"):
        sid, name, number = _enrol(site, "八年级1班")
        spelling = sn.spellings(name)[0]  # 覃 read as a surname (qin)
        typed = {
            "initials": spelling.initials,
            "pinyin": spelling.full,
            "label": f"{name}（八年级1班，{number}）",
            "number": number,
        }[how]
        r = _report(site, s, typed, f"起绰号 {how}")
        assert r.status_code == 303, (how, r.text[:300])
        case_id = r.headers["location"].rsplit("/", 1)[1]
        case = site.app.cases.get_case(_actor(site, "safety1"), case_id)
        assert [p["student_id"] for p in case.parties] == [sid], how


def test_an_unknown_or_ambiguous_student_is_named_and_kept(site: DemoSite, browse) -> None:
    s = browse("safety1")
    r = _report(site, s, "qqqzzzxxx", "保留这段经过")
    assert r.status_code == 400
    assert "没有找到与「qqqzzzxxx」相符的学生" in r.text and 'value="qqqzzzxxx"' in r.text and "保留这段经过" in r.text
    # two students of the same name: both named in the message, the typed text kept
    _, name, _ = _enrol(site, "八年级2班")
    first = _enrol(site, "八年级2班", name)
    second = _enrol(site, "九年级1班", name)
    r = _report(site, s, name, "两个同名")
    assert r.status_code == 400 and f"「{name}」与多名学生相符" in r.text
    for _, _, number in (first, second):
        assert number in r.text
    assert f'value="{name}"' in r.text
    # the label the picker puts in the field settles it
    r = _report(site, s, f"{name}（九年级1班，{second[2]}）", "选定一名")
    assert r.status_code == 303


def test_a_class_teacher_names_a_student_of_another_class_by_number_only(site: DemoSite, browse) -> None:
    other, name, number = _enrol(site, "七年级2班")
    t = browse("teacher1")
    r = _report(site, t, name, "看见别班同学被推")
    assert r.status_code == 400 and f"没有找到与「{name}」相符的学生" in r.text  # not a student they may see by name
    r = _report(site, t, number, "看见别班同学被推")
    assert r.status_code == 303  # by number, as the form always took it


def test_a_support_file_and_a_screening_name_their_student_by_pinyin(site: DemoSite, browse) -> None:
    sid, name, _ = _enrol(site, "八年级1班")
    spelling = sn.spellings(name)[0]  # 覃 read as a surname (qin)
    c = browse("counselor1")
    r = c.post(
        "/support/new",
        {
            "student_no": spelling.full,
            "origin": "judgement",
            "risk_level": "general",
            "category": "学业压力",
            "reason": "期中后情绪低落",
            "responsible_id": _actor(site, "counselor1").staff_id,
        },
    )
    assert r.status_code == 303, r.text[:300]
    file_id = r.headers["location"].rsplit("/", 1)[1]
    assert site.app.support.get_support_file(_actor(site, "counselor1"), file_id).student_id == sid
    r = c.post(
        "/screenings/record",
        {
            "student": spelling.initials,
            "instrument": "PHQ-9",
            "screened_on": str(date(2026, 11, 2)),
            "answers": "0,0,0,0,0,0,0,0,0",
        },
    )
    assert r.status_code == 303, r.text[:300]
    assert [x["total"] for x in site.app.screenings.student_screenings(_actor(site, "counselor1"), sid)] == [0]
