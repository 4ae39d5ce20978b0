"""Grades in the order schools count them (issue 18): 一年级 … 六年级, 七/八/九年级 (or
初一/初二/初三), 高一/高二/高三, then the class number (七年级2班 before 七年级10班). A plain
string sort puts 七年级 before 九年级 before 八年级 (by code point); every list of classes or
grades sorts with `class_sort_key`."""

from __future__ import annotations

import re

_NUMERALS = {"一": 1, "二": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9, "十": 10}
_GRADE = re.compile(
    r"^\s*(?:(?P<stage>初|高)(?P<n1>[一二三1-3])|(?P<n2>十[一二]?|[一二三四五六七八九]|1[0-2]|[1-9])\s*年级)"
)
_CLASS_NO = re.compile(r"(\d+)")
_CN_CLASS_NO = re.compile(r"([一二三四五六七八九十]+)\s*班")
UNKNOWN = 99  # a class whose grade is not recognised: after the known ones, by name


def _number(text: str) -> int:
    if text.isdigit():
        return int(text)
    if text.startswith("十"):
        return 10 + (_NUMERALS[text[1]] if len(text) > 1 else 0)
    if len(text) == 2 and text[1] == "十":
        return _NUMERALS[text[0]] * 10
    if len(text) == 3 and text[1] == "十":
        return _NUMERALS[text[0]] * 10 + _NUMERALS[text[2]]
    return _NUMERALS.get(text, UNKNOWN)


def grade_number(name: str | None) -> int:
    """The grade a class or grade name is in, counted from 一年级 = 1 (初一 = 7, 高一 = 10);
    UNKNOWN when it names none."""
    m = _GRADE.match(name or "")
    if not m:
        return UNKNOWN
    if m.group("stage"):
        return _number(m.group("n1")) + (6 if m.group("stage") == "初" else 9)
    return _number(m.group("n2"))


def class_sort_key(name: str | None) -> tuple[int, int, int, str]:
    """Sort key of a class (or grade) name: no name last, then by grade, class number, name."""
    if not name:
        return (1, UNKNOWN, 0, "")
    m = _GRADE.match(name)
    rest = name[m.end() :] if m else name
    digits = _CLASS_NO.search(rest)
    if digits:
        class_no = int(digits.group(1))
    else:
        cn = _CN_CLASS_NO.search(rest)
        class_no = _number(cn.group(1)) if cn else 0
    return (0, grade_number(name), class_no, name)
