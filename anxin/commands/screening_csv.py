"""Checking a screening results CSV (and a row typed by hand) before anything is built:
every bad line is named with every reason, and a row comes back only if all is well."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING
from uuid import UUID

from anxin.roster_import import csv_records
from domain.common import day_or_none
from domain.screening import Instrument

if TYPE_CHECKING:
    from anxin.commands.screenings import ScreeningCommands

ITEM_RE = re.compile(r"^item(\d+)$")


@dataclass
class Row:
    """A checked screening row, ready to score and record."""

    line: int
    student_id: str
    instrument: Instrument
    screened_on: date
    answers: list[int]
    school_year: int
    record_id: UUID


def check_csv(screenings: ScreeningCommands, school_id: str, csv_text: str) -> tuple[list[Row], list[tuple[int, str]]]:
    """The rows of a school's CSV, checked; or the bad lines, each with every reason."""
    text = csv_text[1:] if csv_text.startswith("\ufeff") else csv_text
    records = csv_records(text)
    first = next(records, None)
    if first is not None and first[1] is None:  # a header the csv module cannot read
        return [], [(first[0], first[2])]
    header = [h.strip().lower() for h in first[1] or []] if first is not None else []
    width = check_header(header)
    if width is None:
        n = max(i.items for i in screenings.instruments.values())
        expected = "student_no,instrument,date," + ",".join(f"item{i}" for i in range(1, n + 1))
        return [], [(1, f"表头不正确，应为：{expected}")]
    students = {
        r[0]: (r[1], r[2])
        for r in screenings.db.fetch(
            "SELECT stream_id, status, erased FROM {t}anxin_directory WHERE school_id = ? AND kind = 'student'",
            (school_id,),
        )
    }
    today = screenings.now().date()
    instruments = screenings.instruments
    rows: list[Row] = []
    errors: list[tuple[int, str]] = []
    seen: dict[tuple[str, str, date], int] = {}
    for line, read, problem in records:
        if read is None:
            errors.append((line, problem))
            continue
        cells = read
        if not any(c.strip() for c in cells):
            continue
        reasons: list[str] = []
        if any(c.strip() for c in cells[3 + width :]):
            reasons.append(f"列数多于表头（表头有 {3 + width} 列）")
        cells = [c.strip() for c in cells] + [""] * (3 + width - len(cells))
        no, inst_text, day_text = cells[0], cells[1], cells[2]
        student_id = None
        if not no:
            reasons.append("学号为空")
        else:
            sid = str(screenings.roster.student_id_for(school_id, no))
            known = students.get(sid)
            if known is None or known[1]:
                reasons.append(f"学号「{no}」不是本校学生")
            elif known[0] != "active":
                reasons.append(f"学号「{no}」的学生已离校")
            else:
                student_id = sid
        day = day_or_none(day_text)
        if day is None:
            reasons.append(f"日期「{day_text}」格式不正确（应为 YYYY-MM-DD）")
        answers: list[int] | None = []
        items = cells[3 : 3 + width]
        while items and items[-1] == "":
            items.pop()
        for n, a in enumerate(items, 1):
            if not (a.isascii() and a.isdigit()):
                reasons.append(f"第 {n} 题得分「{a}」不是有效分值" if a else f"第 {n} 题未作答")
                answers = None
                break
            assert answers is not None
            answers.append(int(a))
        row = check_values(screenings, line, student_id, inst_text, day, answers, reasons, today, instruments)
        if row is not None:
            key = (row.student_id, row.instrument.id, row.screened_on)
            if key in seen:
                reasons.append(f"与第 {seen[key]} 行重复（同一学生、量表、日期）")
            else:
                seen[key] = line
        if reasons:
            errors.append((line, "；".join(reasons)))
        elif row is not None:
            rows.append(row)
    return rows, errors


def check_header(header: list[str]) -> int | None:
    """The number of item columns, or None if the header is not ours."""
    if header[:3] != ["student_no", "instrument", "date"] or len(header) < 4:
        return None
    for n, h in enumerate(header[3:], 1):
        m = ITEM_RE.match(h)
        if not m or int(m[1]) != n:
            return None
    return len(header) - 3


def check_values(
    screenings: ScreeningCommands,
    line: int,
    student_id: str | None,
    inst_text: str,
    day: date | None,
    answers: list[int] | None,
    reasons: list[str],
    today: date,
    instruments: dict[str, Instrument],
) -> Row | None:
    """Check what can be checked of one row; a row comes back only if all is well."""
    inst = instruments.get((inst_text or "").strip().upper())
    before = len(reasons)
    if inst is None:
        reasons.append(f"未知的筛查量表「{inst_text}」" if inst_text else "量表为空")
    if day is not None and day > today:
        reasons.append(f"筛查日期 {day.isoformat()} 晚于今天")
    if inst is not None and answers is not None:
        if len(answers) != inst.items:
            reasons.append(f"{inst.id} 应有 {inst.items} 题，实际 {len(answers)} 题")
        else:
            bad = [n for n, a in enumerate(answers, 1) if not inst.item_min <= a <= inst.item_max]
            if bad:
                reasons.append(f"第 {'、'.join(map(str, bad))} 题得分超出范围 {inst.item_min}-{inst.item_max}")
    if len(reasons) > before or inst is None or student_id is None or day is None or answers is None:
        return None
    year = screenings.policy.school_year_of(day)
    return Row(line, student_id, inst, day, answers, year, screenings.screening_record_id(student_id, year))
