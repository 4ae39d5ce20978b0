"""Readable pages (issue 18): grades in school order, dates that do not wrap, yes/no in
words rather than 0/1, and district tables whose group is said once in a grouped header."""

from __future__ import annotations

import re
from typing import Any

from test_web_no_codes import parse

from domain.grades import class_sort_key


def _texts(html: str, tag: str) -> list[str]:
    return [text for t, text in parse(html).texts if t == tag]


def test_class_lists_are_in_grade_order(browse: Any) -> None:
    """The school board's pairings per class and the pairing board's classes: 七, 八, 九
    (a code-point sort gave 七, 九, 八)."""
    principal = browse("principal1")
    for path in ("/board", "/pairings"):
        html = principal.get(path).text
        if path == "/pairings":  # the school's pairings per class (the form's lists follow their own order)
            html = html.split('<section id="school">', 1)[1].split("</table>", 1)[0]
        classes = [c for c in dict.fromkeys(re.findall(r"[七八九]年级\d+班", html))]
        grades = [c[0] for c in classes]
        assert set(grades) == {"七", "八", "九"}, (path, classes)
        firsts = list(dict.fromkeys(grades))
        assert firsts == ["七", "八", "九"], (path, classes)
        assert classes == sorted(classes, key=class_sort_key), (path, classes)


def test_the_case_board_shows_yes_or_no_and_dates_that_do_not_wrap(browse: Any) -> None:
    html = browse("principal1").get("/cases").text
    rows = re.findall(r"<tr class=\"[^\"]*\"[^>]*>(.*?)</tr>", html, re.S)
    assert rows
    for row in rows:
        cells = re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
        reports, appeals = cells[-3], cells[-2]  # before the last column, 最近进展
        for cell in (reports, appeals):
            bare = re.sub(r"<[^>]+>", "", cell).strip()
            assert not re.fullmatch(r"\d+", bare), f"a bare count {bare!r} in {cell!r}"
            assert bare.startswith(("是", "否", "—")), bare
        assert re.search(r'<td class="date"[ >]', row)
    css = browse("principal1").get("/static/app.css").text
    assert re.search(r"td\.date[^{]*\{[^}]*white-space:\s*nowrap", css)


def test_district_columns_say_their_group_once(browse: Any) -> None:
    html = browse("supervisor1").get("/district").text
    headers = _texts(html, "th")
    assert not [
        h for h in headers if h.startswith("期末状态：") or h.startswith("期末在档：") or h.startswith("认定：")
    ]
    assert "期末状态" in headers and "调查中" in headers and "高危" in headers
    assert 'colspan="' in html
