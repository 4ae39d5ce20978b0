"""Roster import from a school's CSV: all or nothing, every bad line named."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date

from anxin.app import Core
from domain import access
from domain.common import Actor, DomainError
from domain.roster import GENDERS, Student

HEADER = [
    "student_no", "name", "gender", "birth_date", "grade", "class",
    "guardian_name", "guardian_phone", "tags",
]
REQUIRED = ["student_no", "name", "gender", "birth_date", "grade", "class"]
LABELS = {
    "student_no": "学号", "name": "姓名", "gender": "性别", "birth_date": "出生日期",
    "grade": "年级", "class": "班级", "guardian_name": "监护人姓名", "guardian_phone": "监护人电话",
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


@dataclass
class ImportResult:
    imported: int
    school_id: str
    student_ids: list[str] = field(default_factory=list)


def parse_csv(text: str) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    if text.startswith("\ufeff"):
        text = text[1:]
    reader = csv.reader(io.StringIO(text))
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise ImportRejected([(1, "文件为空")]) from None
    rows = []
    for line_no, values in enumerate(reader, start=2):
        if not any(v.strip() for v in values):
            continue
        rows.append((line_no, dict(zip(header, values, strict=False)) | {"__n": str(len(values))}))
    return header, rows


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
    for i, (line, row) in enumerate(rows):
        if progress and i % 500 == 0:
            progress(i, len(rows))
        if int(row["__n"]) != len(header):
            errors.append((line, f"列数应为 {len(header)}，实际为 {row['__n']}"))
            continue
        row = {k: (v or "").strip() for k, v in row.items() if k != "__n"}
        empty = [LABELS[k] for k in REQUIRED if not row.get(k)]
        if empty:
            errors.append((line, f"缺少{ '、'.join(empty) }"))
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
                    id=app.student_id_for(school_id, no), school_id=school_id, student_no=no,
                    name=row["name"], gender=row["gender"], birth_date=birth, grade=row["grade"],
                    class_name=row["class"], guardians=guardians,
                    tags=[t for t in row.get("tags", "").split(";") if t.strip()],
                    actor=actor.staff_id, at=at,
                )
            )
        except DomainError as e:
            errors.append((line, str(e.details.get("reason", e.text))))
    existing = app.existing_student_ids(str(s.id) for s in students)
    line_of = {str(app.student_id_for(school_id, no)): ln for no, ln in seen.items()}
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
