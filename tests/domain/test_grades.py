"""Grades in the order schools count them (issue 18: 七, 九, 八 was a code-point sort)."""

from __future__ import annotations

import random

from domain.grades import UNKNOWN, class_sort_key, grade_number


def test_grades_in_school_order() -> None:
    expected = [
        "一年级1班",
        "二年级1班",
        "三年级二班",
        "三年级十一班",
        "六年级1班",
        "七年级",
        "七年级2班",
        "七年级10班",
        "八年级1班",
        "初二(3)班",
        "九年级1班",
        "初三1班",
        "高一1班",
        "高二2班",
        "高三1班",
        "兴趣班",
        None,
    ]
    shuffled = expected[:]
    random.Random(18).shuffle(shuffled)
    assert sorted(shuffled, key=class_sort_key) == expected


def test_the_code_point_order_is_not_the_school_order() -> None:
    """The bug itself: a plain sort of 七/八/九 gives 七, 九, 八."""
    names = ["八年级1班", "九年级1班", "七年级1班"]
    assert sorted(names) == ["七年级1班", "九年级1班", "八年级1班"]
    assert sorted(names, key=class_sort_key) == ["七年级1班", "八年级1班", "九年级1班"]


def test_grade_numbers() -> None:
    assert [grade_number(g) for g in ("一年级", "六年级", "七年级", "初一", "九年级", "初三", "高一", "高三")] == [
        1,
        6,
        7,
        7,
        9,
        9,
        10,
        12,
    ]
    assert grade_number("7年级3班") == 7
    assert grade_number("兴趣班") == UNKNOWN
    assert grade_number(None) == UNKNOWN
