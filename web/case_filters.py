"""The case board's filters, sort, search and pages (/cases?…), read from GET parameters so
a choice can be bookmarked and works without JavaScript.

What the board shows is decided by the gate before anything here runs
(`projections.case_board.case_board`: a safety lead's or principal's whole board, a class
teacher's status lines of their classes); these only narrow and order those lines. A
search by student name goes through the students' search (`search_students`: a keyed
blind index, the gate deciding whose names the reader may look up), and its ids narrow the
board's query; a case number is matched however it is typed (anxin.numbers.parse).
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from anxin import numbers as record_numbers
from domain.bullying import SEVERITIES, STATUS_LABELS
from domain.common import InvalidInput, parse_day
from projections.case_board import BoardLine
from web import i18n

PAGE_SIZE = 50
OPEN = "open"  # every status but closed
SORTS = {
    "urgent": "紧急程度（超期在前）",
    "number": "案件编号",
    "opened": "立案日期",
    "activity": "最近进展",
    "deadline": "调查期限",
}
ORDERS = {"desc": "降序（新的、大的在前）", "asc": "升序（旧的、小的在前）"}
NATURAL = {"number": "desc", "opened": "desc", "activity": "desc", "deadline": "asc"}  # when no order is chosen
GRADE = re.compile(r"^(.*?)(\d+)\s*(\D?)$")  # a grade, the class's number, and a word for class


def grade_of(class_name: str) -> str:
    """七年级1班 -> 七年级 (a class name without its class number); the name itself otherwise."""
    m = GRADE.match(class_name)
    return m.group(1) if m and m.group(1) else class_name


def grade_key(grade: str) -> tuple[str, int, str]:
    """Grades in school order (七年级, 八年级, 九年级; 高一, 高二), not in code-point order: the
    words before the grade's number (none, or a stage such as 高), then the number, read from
    Chinese or Arabic numerals (unicodedata: 七 is 7, 十二 is 12)."""
    prefix, n, seen = "", 0, False
    for ch in grade:
        try:
            value = int(unicodedata.numeric(ch))
        except (TypeError, ValueError):
            if seen:
                break
            prefix += ch
            continue
        seen = True
        n = n * 10 + value if value < 10 else max(n, 1) * value
    return (prefix if seen else "\uffff", n, grade)


def class_key(name: str) -> tuple[tuple[str, int, str], int, str]:
    m = GRADE.match(name)
    return (grade_key(grade_of(name)), int(m.group(2)) if m else 0, name)


@dataclass
class BoardQuery:
    """The board's choices as typed (kept in the form), and what was wrong with any."""

    q: str = ""
    status: str = ""
    severity: str = ""
    overdue: bool = False
    year: str = ""
    from_: str = ""
    to: str = ""
    class_name: str = ""
    grade: str = ""
    sort: str = "urgent"
    order: str = ""
    page: int = 1
    errors: list[str] = field(default_factory=list)

    @property
    def narrowed(self) -> bool:
        return bool(
            self.q
            or self.status
            or self.severity
            or self.overdue
            or self.year
            or self.from_
            or self.to
            or self.class_name
            or self.grade
        )

    def url(self, **change: Any) -> str:
        """This query's address with `change` (e.g. another page), for links."""
        from urllib.parse import urlencode

        values = {
            "q": self.q,
            "status": self.status,
            "severity": self.severity,
            "overdue": "1" if self.overdue else "",
            "year": self.year,
            "from": self.from_,
            "to": self.to,
            "class": self.class_name,
            "grade": self.grade,
            "sort": self.sort if self.sort != "urgent" else "",
            "order": self.order,
            "page": str(self.page) if self.page > 1 else "",
        }
        values.update({k: str(v) for k, v in change.items()})
        kept = {k: v for k, v in values.items() if v}
        return "/cases" + ("?" + urlencode(kept) if kept else "")


def read_query(params: Mapping[str, str]) -> BoardQuery:
    """The query from the address; unknown values are dropped (a stale bookmark still opens)."""

    def get(key: str) -> str:
        return (params.get(key) or "").strip()[:100]

    bq = BoardQuery(
        q=get("q"),
        status=get("status") if get("status") in (*STATUS_LABELS, OPEN) else "",
        severity=get("severity") if get("severity") in SEVERITIES else "",
        overdue=get("overdue") in ("1", "on", "yes"),
        year=get("year") if get("year").isdigit() else "",
        from_=get("from"),
        to=get("to"),
        class_name=get("class"),
        grade=get("grade"),
        sort=get("sort") if get("sort") in SORTS else "urgent",
        order=get("order") if get("order") in ORDERS else "",
    )
    page = get("page")
    bq.page = int(page) if page.isdigit() and int(page) > 0 else 1
    return bq


def _day(bq: BoardQuery, typed: str, what: str) -> date | None:
    if not typed:
        return None
    try:
        return parse_day(typed, what)
    except InvalidInput:
        bq.errors.append(
            i18n.gettext("{what}格式不正确，应为 年-月-日（如 2026-09-01），该条件未使用", what=i18n.gettext(what))
        )
        return None


@dataclass(frozen=True)
class BoardPage:
    lines: list[BoardLine]  # this page's
    total: int  # every line the reader may see
    matched: int  # after the filters
    overdue: int  # of every line
    page: int
    pages: int
    classes: list[str]
    grades: list[str]
    years: list[int]


def apply(
    bq: BoardQuery,
    lines: list[BoardLine],
    numbers: Mapping[str, Any],
    school_year_of: Callable[[date], int],
    named: set[str] | None = None,
) -> BoardPage:
    """Narrow, order and cut into pages the lines the gate let the reader see; `named`: the
    cases involving the students a name search found (None: not a name search)."""
    classes = sorted({c for line in lines for c in line.classes}, key=class_key)
    grades = sorted({grade_of(c) for c in classes}, key=grade_key)
    years = sorted({school_year_of(x.opened_on) for x in lines if x.opened_on}, reverse=True)
    start, end = _day(bq, bq.from_, "起始日期"), _day(bq, bq.to, "截止日期")
    wanted_number = record_numbers.parse(bq.q) if bq.q else None
    found = list(lines)
    if wanted_number is not None:
        kind, year, seq = wanted_number
        found = [
            x
            for x in found
            if (n := numbers.get(x.case_id)) is not None and (n.kind, n.year, n.seq) == (kind, year, seq)
        ]
    if named is not None:
        found = [x for x in found if x.case_id in named]
    if bq.status == OPEN:
        found = [x for x in found if x.status not in ("closed", "erased")]
    elif bq.status:
        found = [x for x in found if x.status == bq.status]
    if bq.severity:
        found = [x for x in found if x.severity == bq.severity]
    if bq.overdue:
        found = [x for x in found if x.overdue]
    if bq.year:
        found = [x for x in found if x.opened_on and school_year_of(x.opened_on) == int(bq.year)]
    if start:
        found = [x for x in found if x.opened_on and x.opened_on >= start]
    if end:
        found = [x for x in found if x.opened_on and x.opened_on <= end]
    if bq.class_name:
        found = [x for x in found if bq.class_name in x.classes]
    if bq.grade:
        found = [x for x in found if any(grade_of(c) == bq.grade for c in x.classes)]
    found = _sorted(bq, found, numbers)
    pages = max(1, math.ceil(len(found) / PAGE_SIZE))
    page = min(bq.page, pages)
    bq.page = page
    return BoardPage(
        lines=found[(page - 1) * PAGE_SIZE : page * PAGE_SIZE],
        total=len(lines),
        matched=len(found),
        overdue=sum(1 for x in lines if x.overdue),
        page=page,
        pages=pages,
        classes=classes,
        grades=grades,
        years=years,
    )


def _sorted(bq: BoardQuery, lines: list[BoardLine], numbers: Mapping[str, Any]) -> list[BoardLine]:
    if bq.sort == "urgent":  # the board's own order: open before closed, overdue first, oldest first
        return lines
    reverse = (bq.order or NATURAL[bq.sort]) == "desc"

    def number(x: BoardLine) -> tuple[int, int, str]:
        n = numbers.get(x.case_id)
        return (n.year, n.seq, x.case_id) if n is not None else (0, 0, x.case_id)

    keys: dict[str, Callable[[BoardLine], Any]] = {
        "number": number,
        "opened": lambda x: (x.opened_on or date.min, number(x)),
        "activity": lambda x: (x.last_activity or x.opened_on or date.min, number(x)),
        "deadline": lambda x: (x.investigation_due or x.intake_due or date.max, number(x)),
    }
    ordered = sorted(lines, key=keys[bq.sort], reverse=reverse)
    if bq.sort == "deadline":  # cases with no deadline running (closed, not started) go last either way
        running = [x for x in ordered if (x.investigation_due or x.intake_due) and x.status not in ("closed", "erased")]
        return running + [x for x in ordered if x not in running]
    return ordered
