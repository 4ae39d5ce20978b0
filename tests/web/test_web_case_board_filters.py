"""The case board's filters, sort, search and pages (/cases?…): GET parameters, rendered on
the server, the choices kept in the form; each filter narrows to what it says, each sort
orders by what it says, a case number is found however typed and a student by name (the
blind index), a class teacher still sees only their class's cases, and an empty result
says so in Chinese."""

from __future__ import annotations

import html
import re
import uuid
from datetime import date
from typing import Any

import pytest
from web_support import Browser, DemoSite

from projections.case_board import case_board
from web import case_filters, i18n

ROW = re.compile(r'<tr class="(overdue)?"[^>]*>(.*?)</tr>', re.S)
CELL = re.compile(r"<td[^>]*>(.*?)</td>", re.S)
CASE = re.compile(r'href="/cases/([0-9a-f-]{36})"')
DAY = re.compile(r"(\d{4})年(\d{1,2})月(\d{1,2})日")


def _actor(site: DemoSite, username: str) -> Any:
    return site.app.gate.actor(site.app.accounts.account(username)[0])


def _rows(page: str) -> list[dict[str, Any]]:
    """The board's rows: case id, each cell's text, whether marked overdue."""
    body = page.split("<tbody>", 1)[1].split("</tbody>", 1)[0] if "<tbody>" in page else ""
    rows = []
    for overdue, inner in ROW.findall(body):
        cells = [html.unescape(re.sub(r"<[^>]+>", " ", c)).split() for c in CELL.findall(inner)]
        rows.append(
            {"id": CASE.search(inner).group(1), "cells": [" ".join(c) for c in cells], "overdue": bool(overdue)}
        )
    return rows


def _day(text: str) -> date | None:
    m = DAY.search(text)
    return date(int(m[1]), int(m[2]), int(m[3])) if m else None


def _board(b: Browser, query: str = "") -> tuple[str, list[dict[str, Any]]]:
    r = b.get("/cases" + query)
    assert r.status_code == 200, r.status_code
    return r.text, _rows(r.text)


def _student(site: DemoSite, class_name: str, index: int = 0) -> Any:
    admin = _actor(site, "admin")
    school = _actor(site, "safety1").school_id
    found = [s for s in site.app.roster.list_students(admin, school) if s.class_name == class_name and not s.erased]
    return found[index]


def _report(site: DemoSite, b: Browser, student_no: str) -> str:
    when = i18n.local(site.app.now()).strftime("%Y-%m-%dT%H:%M")
    narrative = f"课间在走廊推搡 {uuid.uuid4().hex[:6]}"
    before = {x.case_id for x in case_board(site.app, _actor(site, "safety1"), _actor(site, "safety1").school_id)}
    r = b.post(
        "/cases/new",
        {
            "occurred_at": when,
            "place": "操场",
            "channel": "teacher",
            "forms": ["physical"],
            "narrative": narrative,
            "student_no_0": student_no,
            "part_0": "targeted",
        },
    )
    assert r.status_code == 303, r.text[-400:]
    after = {x.case_id for x in case_board(site.app, _actor(site, "safety1"), _actor(site, "safety1").school_id)}
    (case_id,) = after - before
    return case_id


@pytest.fixture(scope="module")
def reported(site: DemoSite) -> dict[str, Any]:
    """Two new cases of school 1: one about a student of 九年级2班, one of 七年级1班."""
    safety = site.browser("safety1")
    nine = _student(site, "九年级2班", 1)
    seven = _student(site, "七年级1班", 2)
    return {
        "nine": _report(site, safety, nine.student_no),
        "nine_student": nine,
        "seven": _report(site, safety, seven.student_no),
        "seven_student": seven,
    }


def test_the_form_keeps_the_choices_and_works_as_a_plain_get(browse: Any, reported: dict[str, Any]) -> None:
    page, _rows_ = _board(browse("safety1"), "?status=reported&overdue=1&sort=opened&order=asc&grade=九年级")
    assert 'method="get" action="/cases"' in page
    assert '<option value="reported" selected>' in page
    assert 'name="overdue" value="1" checked' in page
    assert '<option value="opened" selected>' in page and '<option value="asc" selected>' in page
    assert '<option value="九年级" selected>' in page
    assert not re.search(r"<script(?![^>]*\bsrc=)", page)  # no inline script: files only (the CSP)


def test_status_filter_shows_only_that_status(browse: Any, reported: dict[str, Any]) -> None:
    b = browse("safety1")
    _page, rows = _board(b, "?status=reported")
    assert reported["nine"] in {r["id"] for r in rows}
    assert rows and all(r["cells"][1] == "已报告" for r in rows), {r["cells"][1] for r in rows}
    _page, closed = _board(b, "?status=closed")
    assert reported["nine"] not in {r["id"] for r in closed}
    assert all(r["cells"][1] == "已结案" for r in closed)
    _page, open_ = _board(b, "?status=open")
    assert reported["nine"] in {r["id"] for r in open_} and all(r["cells"][1] != "已结案" for r in open_)


def test_severity_filter_shows_only_that_severity(site: DemoSite, browse: Any) -> None:
    lines = case_board(site.app, _actor(site, "principal1"), _actor(site, "principal1").school_id)
    severity = next((x.severity for x in lines if x.severity), None)
    assert severity, "the demo has a determined case"
    _page, rows = _board(browse("principal1"), f"?severity={severity}")
    expected = {x.case_id for x in lines if x.severity == severity}
    assert {r["id"] for r in rows} == expected


def test_overdue_filter_shows_only_overdue_cases(site: DemoSite, browse: Any) -> None:
    lines = case_board(site.app, _actor(site, "safety1"), _actor(site, "safety1").school_id)
    _page, rows = _board(browse("safety1"), "?overdue=1")
    assert {r["id"] for r in rows} == {x.case_id for x in lines if x.overdue}
    assert all(r["overdue"] for r in rows)


def test_date_range_and_school_year(site: DemoSite, browse: Any, reported: dict[str, Any]) -> None:
    b = browse("safety1")
    today = i18n.local(site.app.now()).date()
    _page, rows = _board(b, f"?from={today.isoformat()}&to={today.isoformat()}")
    assert reported["nine"] in {r["id"] for r in rows}
    assert all(_day(r["cells"][3]) == today for r in rows)
    _page, later = _board(b, f"?from={date(today.year + 1, 1, 1).isoformat()}")
    assert not later
    year = site.app.policy.school_year_of(today)
    _page, this_year = _board(b, f"?year={year}")
    assert reported["nine"] in {r["id"] for r in this_year}
    assert all(site.app.policy.school_year_of(_day(r["cells"][3])) == year for r in this_year)
    _page, last_year = _board(b, f"?year={year - 1}")
    assert reported["nine"] not in {r["id"] for r in last_year}


def test_a_bad_date_is_said_in_chinese_and_not_used(browse: Any) -> None:
    page, rows = _board(browse("safety1"), "?from=2026-13-45")
    assert "起始日期格式不正确" in page
    assert rows  # the filter was left out, the board still shown
    assert 'name="from" value="2026-13-45"' in page  # what was typed is kept


def test_class_and_grade_filters(site: DemoSite, browse: Any, reported: dict[str, Any]) -> None:
    b = browse("safety1")
    lines = {x.case_id: x for x in case_board(site.app, _actor(site, "safety1"), _actor(site, "safety1").school_id)}
    _page, rows = _board(b, "?class=九年级2班")
    ids = {r["id"] for r in rows}
    assert reported["nine"] in ids and reported["seven"] not in ids
    assert all("九年级2班" in lines[i].classes for i in ids)
    _page, rows = _board(b, "?grade=九年级")
    ids = {r["id"] for r in rows}
    assert reported["nine"] in ids and reported["seven"] not in ids
    assert all(any(c.startswith("九年级") for c in lines[i].classes) for i in ids)


def test_grades_and_classes_are_offered_in_school_order(browse: Any, reported: dict[str, Any]) -> None:
    page, _rows_ = _board(browse("safety1"))
    grade_select = page.split('name="grade"', 1)[1].split("</select>", 1)[0]
    grades = re.findall(r'<option value="([^"]+)"', grade_select)
    assert grades.index("七年级") < grades.index("九年级")
    assert [g for g in grades if g in ("七年级", "八年级", "九年级")] == sorted(
        [g for g in grades if g in ("七年级", "八年级", "九年级")], key=case_filters.grade_key
    )
    assert case_filters.grade_key("八年级") < case_filters.grade_key("九年级") < case_filters.grade_key("高一")


@pytest.mark.parametrize("typed", ["{text}", "{lower}", "{bare}", "{wide}"])
def test_search_finds_a_case_by_its_number_however_typed(
    site: DemoSite, browse: Any, reported: dict[str, Any], typed: str
) -> None:
    number = site.app.record_numbers([reported["nine"]])[reported["nine"]]
    text = number.text  # QL-2026-0012
    bare = f"ql{number.year}{number.seq}"
    wide = text.translate(str.maketrans("QL-0123456789", "ＱＬ－０１２３４５６７８９"))
    q = typed.format(text=text, lower=text.lower(), bare=bare, wide=wide)
    page, rows = _board(browse("safety1"), "?q=" + q)
    assert [r["id"] for r in rows] == [reported["nine"]]
    assert f'value="{html.escape(q)}"' in page  # kept in the search box


def test_search_finds_the_cases_of_a_student_by_name(site: DemoSite, browse: Any, reported: dict[str, Any]) -> None:
    student = reported["nine_student"]
    _page, rows = _board(browse("safety1"), "?q=" + student.name)
    ids = {r["id"] for r in rows}
    assert reported["nine"] in ids and reported["seven"] not in ids
    for cid in ids:  # every case shown involves a student of that name
        case = site.app.cases.get_case(_actor(site, "safety1"), cid)
        names = {site.app.student_ref(p["student_id"]).name for p in case.parties}
        assert student.name in names


def test_a_search_that_finds_nothing_says_so_in_chinese(browse: Any, reported: dict[str, Any]) -> None:
    page, rows = _board(browse("safety1"), "?q=QL-1999-9999")
    assert rows == []
    assert "没有符合条件的案件。" in page and '<a href="/cases">清除筛选</a>' in page


def test_a_class_teacher_still_sees_only_their_class(site: DemoSite, browse: Any, reported: dict[str, Any]) -> None:
    b = browse("teacher1")  # class teacher of 七年级1班
    _page, rows = _board(b)
    assert reported["seven"] in {r["id"] for r in rows} and reported["nine"] not in {r["id"] for r in rows}
    # another class's case by its number, or its student by name: nothing
    number = site.app.record_numbers([reported["nine"]])[reported["nine"]].text
    page, rows = _board(b, "?q=" + number)
    assert rows == [] and "没有符合条件的案件。" in page
    _page, rows = _board(b, "?q=" + reported["nine_student"].name)
    assert reported["nine"] not in {r["id"] for r in rows}
    # the class choice offers only their own classes
    class_select = _page.split('name="class"', 1)[1].split("</select>", 1)[0]
    assert re.findall(r'<option value="([^"]+)"', class_select) == ["七年级1班"]
    _page, rows = _board(b, "?class=九年级2班")
    assert rows == []


def _numbers(site: DemoSite, rows: list[dict[str, Any]]) -> list[tuple[int, int]]:
    found = site.app.record_numbers([r["id"] for r in rows])
    return [(found[r["id"]].year, found[r["id"]].seq) for r in rows]


def test_sort_by_number(site: DemoSite, browse: Any, reported: dict[str, Any]) -> None:
    b = browse("safety1")
    _page, up = _board(b, "?sort=number&order=asc")
    assert len(up) > 2 and _numbers(site, up) == sorted(_numbers(site, up))
    _page, down = _board(b, "?sort=number")  # newest first by default
    assert _numbers(site, down) == sorted(_numbers(site, down), reverse=True)


def test_sort_by_date_opened_and_last_activity(browse: Any, reported: dict[str, Any]) -> None:
    # (an erased case has no dates left: it is shown as 已删除, without them)
    b = browse("safety1")
    _page, rows = _board(b, "?sort=opened&order=asc")
    opened = [d for r in rows if (d := _day(r["cells"][3]))]
    assert len(set(opened)) > 1 and opened == sorted(opened)
    _page, rows = _board(b, "?sort=activity")
    last = [d for r in rows if (d := _day(r["cells"][-1]))]
    assert len(last) > 2 and last == sorted(last, reverse=True)
    newest = {r["id"] for r in rows if _day(r["cells"][-1]) == last[0]}
    assert reported["nine"] in newest and reported["seven"] in newest  # reported today: the latest activity


def test_last_activity_moves_with_any_step(site: DemoSite) -> None:
    # An evidence note (no other field of the board changes) still moves the case's last activity.
    safety = _actor(site, "safety1")
    today = i18n.local(site.app.now()).date()
    lines = case_board(site.app, safety, safety.school_id)
    old = next(
        x
        for x in sorted(lines, key=lambda x: x.case_id)
        if x.status in ("reported", "reopened", "investigating") and x.last_activity and x.last_activity < today
    )
    site.app.cases.add_evidence(safety, old.case_id, description="监控录像截图", reference="德育处")
    (line,) = [x for x in case_board(site.app, safety, safety.school_id) if x.case_id == old.case_id]
    assert line.last_activity == site.app.now().date()
    assert (line.status, line.opened_on) == (old.status, old.opened_on)


def test_sort_by_deadline_puts_the_nearest_running_deadline_first(browse: Any) -> None:
    _page, rows = _board(browse("safety1"), "?sort=deadline")
    due = [_day(r["cells"][5]) for r in rows if r["cells"][1] != "已结案"]
    running = [d for d in due if d]
    assert running and running == sorted(running)
    first_without = next((i for i, d in enumerate(due) if d is None), len(due))
    assert all(d is None for d in due[first_without:])


def test_pages_keep_the_filters(monkeypatch: pytest.MonkeyPatch, browse: Any, reported: dict[str, Any]) -> None:
    monkeypatch.setattr(case_filters, "PAGE_SIZE", 2)
    b = browse("safety1")
    page, rows = _board(b, "?status=open&sort=number")
    assert len(rows) == 2
    link = re.search(r'<a href="([^"]+)" rel="next">下一页</a>', page)
    assert link, "a next page"
    target = html.unescape(link.group(1))
    assert "status=open" in target and "sort=number" in target and "page=2" in target
    page2, rows2 = _board(b, target[len("/cases") :])
    assert len(rows2) >= 1 and not ({r["id"] for r in rows2} & {r["id"] for r in rows})
    assert "第 2 / " in page2 and 'rel="prev"' in page2


def test_filters_in_english_mode(browse: Any) -> None:
    b = browse("safety1")
    b.client.cookies.set("anxin_lang", "en")
    page, _rows_ = _board(b, "?q=QL-1999-9999")
    assert "Filter cases" in page and "Clear filters" in page and "No cases match these filters." in page
    assert "没有符合条件的案件" not in page


def test_the_school_boards_open_count_leads_to_the_same_cases(browse: Any) -> None:
    b = browse("principal1")
    board = b.get("/board").text
    link = re.search(r'<a href="(/cases\?status=open)" id="board-open-cases">(\d+) ', board)
    assert link, "the open-cases count links to the board's filter"
    _page, rows = _board(b, link.group(1)[len("/cases") :])
    assert len(rows) == int(link.group(2))
