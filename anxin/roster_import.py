"""Roster import from a school's CSV: all or nothing, every bad line named."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING

from domain import access
from domain.common import Actor, DomainError
from domain.roster import FIELD_LIMITS, GENDERS, MAX_TAGS, Student, birth_date_problem, text_problem

if TYPE_CHECKING:
    from anxin.core import Core

HEADER = [
    "student_no",
    "name",
    "gender",
    "birth_date",
    "grade",
    "class",
    "guardian_name",
    "guardian_phone",
    "tags",
]
REQUIRED = ["student_no", "name", "gender", "birth_date", "grade", "class"]
LABELS = {
    "student_no": "学号",
    "name": "姓名",
    "gender": "性别",
    "birth_date": "出生日期",
    "grade": "年级",
    "class": "班级",
    "guardian_name": "监护人姓名",
    "guardian_phone": "监护人电话",
}


class ImportRejected(DomainError):
    """Nothing was applied; `errors` lists (line, reason) for every bad line."""

    code = "import_rejected"
    message = "导入被拒绝，未写入任何数据：共 {count} 行有错误"

    def __init__(self, errors: list[tuple[int, str]]) -> None:
        self.errors = errors
        super().__init__(count=len(errors))

    def report(self) -> str:
        return "\n".join([self.text] + [f"第 {line} 行：{reason}" for line, reason in self.errors])


# The CSV's columns as the domain's limits name them (FIELD_LIMITS).
_LIMIT_OF = {
    "student_no": "student_no",
    "name": "name",
    "gender": "gender",
    "birth_date": None,
    "grade": "grade",
    "class": "class_name",
    "guardian_name": "guardian_name",
    "guardian_phone": "guardian_phone",
}


def _field_problem(column: str, value: str) -> str | None:
    """A field too long, or holding a NUL or another control character."""
    label = LABELS.get(column, "标签")
    if column == "tags":
        tags = [t.strip() for t in value.split(";") if t.strip()]
        if len(tags) > MAX_TAGS:
            return f"标签最多 {MAX_TAGS} 个，实际为 {len(tags)} 个"
        return next(
            (p for t in tags if (p := text_problem(t, label, FIELD_LIMITS["tag"])) is not None),
            text_problem(value, label, FIELD_LIMITS["tag"] * MAX_TAGS + MAX_TAGS),
        )
    key = _LIMIT_OF.get(column)
    return text_problem(value, label, FIELD_LIMITS[key] if key else 10)


@dataclass
class ImportResult:
    imported: int
    school_id: str
    student_ids: list[str] = field(default_factory=list)


def parse_csv(text: str) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """The header and every non-blank record with the number of the line it starts on.
    A record the csv module cannot read (a field over its size limit) is rejected by
    line, with the others still read, so every bad line is reported at once."""
    if text.startswith("\ufeff"):
        text = text[1:]
    unreadable: list[tuple[int, str]] = []
    rows: list[tuple[int, dict[str, str]]] = []
    header: list[str] | None = None
    for start, values, problem in csv_records(text):
        if values is None:
            unreadable.append((start, problem))
            continue
        if header is None:
            header = [h.strip() for h in values]
            continue
        if not any(v.strip() for v in values):
            continue
        rows.append((start, dict(zip(header, values, strict=False)) | {"__n": str(len(values))}))
    if header is None:
        raise ImportRejected(unreadable or [(1, "文件为空")])
    if unreadable:
        # Nothing is applied anyway: report these with the other rows' problems.
        rows += [(line, {"__error": why}) for line, why in unreadable]
    return header, rows


def csv_records(text: str) -> Iterator[tuple[int, list[str] | None, str]]:
    """(line the record starts on, its fields, "") for each record; (line, None, why) for
    one the csv module cannot read (a field over its size limit), then on to the next."""
    reader = csv.reader(io.StringIO(text))
    while True:
        start = reader.line_num + 1
        try:
            values = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            too_long = "field larger than field limit" in str(e)
            yield (
                start,
                None,
                (
                    f"某一字段过长（超过 {csv.field_size_limit()} 个字符），无法读取"
                    if too_long
                    else f"无法按 CSV 读取此行（{e}）"
                ),
            )
            continue
        yield start, values, ""


def import_roster(
    app: Core,
    actor: Actor,
    school_id: str,
    text: str,
    progress: Callable[[int, int], None] | None = None,
) -> ImportResult:
    """Validate every row, then enrol all students in one transaction, or none."""
    app.check(actor, access.STUDENT_WRITE, "student", school_id=school_id)
    header, rows = parse_csv(text)
    missing = [h for h in HEADER if h not in header]
    if missing:
        raise ImportRejected([(1, f"表头缺少列：{', '.join(missing)}（应为 {','.join(HEADER)}）")])
    errors: list[tuple[int, str]] = []
    students: list[Student] = []
    seen: dict[str, int] = {}
    at = app.now()
    today = at.date()
    for i, (line, row) in enumerate(rows):
        if progress and i % 500 == 0:
            progress(i, len(rows))
        if "__error" in row:
            errors.append((line, row["__error"]))
            continue
        if int(row["__n"]) != len(header):
            errors.append((line, f"列数应为 {len(header)}，实际为 {row['__n']}"))
            continue
        row = {k: (v or "").strip() for k, v in row.items() if k != "__n"}
        # Every field's length and characters first: all of a line's problems at once.
        problems = [p for k in HEADER if (p := _field_problem(k, row.get(k, ""))) is not None]
        if problems:
            errors.append((line, "；".join(problems)))
            continue
        empty = [LABELS[k] for k in REQUIRED if not row.get(k)]
        if empty:
            errors.append((line, f"缺少{'、'.join(empty)}"))
            continue
        no = row["student_no"]
        if no in seen:
            errors.append((line, f"学号「{no}」在文件中重复（第 {seen[no]} 行已出现）"))
            continue
        seen[no] = line
        reasons = []
        birth = None
        try:
            birth = date.fromisoformat(row["birth_date"])
        except ValueError:
            reasons.append(f"出生日期「{row['birth_date']}」格式不正确（应为 YYYY-MM-DD）")
        else:
            if (problem := birth_date_problem(birth, today)) is not None:
                reasons.append(problem)
        if row["gender"].lower() not in GENDERS:
            reasons.append(f"性别「{row['gender']}」无法识别（应为 男/女）")
        if reasons or birth is None:
            errors.append((line, "；".join(reasons)))
            continue
        guardians = []
        if row.get("guardian_name") or row.get("guardian_phone"):
            guardians = [{"name": row.get("guardian_name", ""), "phone": row.get("guardian_phone", "")}]
        try:
            students.append(
                Student.enrol(
                    id=app.roster.student_id_for(school_id, no),
                    school_id=school_id,
                    student_no=no,
                    name=row["name"],
                    gender=row["gender"],
                    birth_date=birth,
                    grade=row["grade"],
                    class_name=row["class"],
                    guardians=guardians,
                    tags=[t for t in row.get("tags", "").split(";") if t.strip()],
                    actor=actor.staff_id,
                    at=at,
                )
            )
        except DomainError as e:
            errors.append((line, str(e.details.get("reason", e.text))))
    existing = app.roster.existing_student_ids(str(s.id) for s in students)
    line_of = {str(app.roster.student_id_for(school_id, no)): ln for no, ln in seen.items()}
    for s in students:
        if str(s.id) in existing:
            errors.append((line_of[str(s.id)], f"学号「{s.student_no}」在本校已存在（可能已导入过此文件）"))
    if not rows:
        errors.append((1, "文件中没有学生数据"))
    if errors:
        raise ImportRejected(sorted(errors))
    app.save_many(list(students))
    app.analyze(changed=len(students))  # statistics refreshed if the import is large beside the store
    if progress:
        progress(len(rows), len(rows))
    return ImportResult(imported=len(students), school_id=school_id, student_ids=[str(s.id) for s in students])
