"""Roster import from a school's file: read in memory, compared with the school's roster,
shown as a preview, applied all or nothing.

Reading (`read_roster`): a CSV in UTF-8 (with or without a BOM) or GB18030 (which
contains GBK: what Excel saves as "CSV (逗号分隔)" on a Chinese system), tried in that
order; or an Excel workbook (.xlsx, its first sheet, opened read-only from memory). The
header may be in Chinese (学号, 姓名, …) or English (student_no, name, …); a title row
above it is skipped; columns the importer does not know are listed and not read. In a
workbook, a number Excel made of a student number or a phone is read back as its digits
(no ".0"; a "000000" cell format keeps its leading zeros), a date cell as its date, and a
formula as the value Excel last calculated and saved with the file (a formula with no
saved value, or an error value such as #N/A, is refused by cell).

Comparing (`plan_import`): a student number not in the school yet is a new student
(Enrolled: a transfer-in); one whose details differ is corrected (DetailsCorrected, reason
"花名册导入更新", naming only the fields that change); one alike is left alone. Students
of the school missing from the file are listed, never removed: the person may mark them
as leavers (Left, with their reason) when confirming. An empty guardian or tags cell
leaves what is stored as it is (an import never clears a guardian's contact). Every
problem of every row is reported together, by row and column, and then nothing is
applied.

Applying (`apply_import`): the plan is made again from the same rows against the roster
as it is now; if it is not the plan the person confirmed (someone changed the roster
since), nothing is applied. Otherwise every new student, correction and leaver is saved
in one transaction with the gate's decisions.

Nothing is written to disk on the way: the file is parsed from bytes in memory, and
between the preview and the confirmation the web keeps the rows sealed (AES-GCM under a
named key, bound to the person, the school and the session) in the confirmation form
itself, never in a table or a file (`seal_rows` / `open_rows`)."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import os
import re
import time
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

from cryptography.exceptions import InvalidTag

from domain import access
from domain.common import Actor, CaseAggregate, DomainError, InvalidInput, day_or_none
from domain.roster import (
    FIELD_LIMITS,
    GENDER_LABELS,
    GENDERS,
    MAX_TAGS,
    Student,
    birth_date_problem,
    check_phone,
    text_problem,
)

if TYPE_CHECKING:
    from anxin.core import Core

# The columns, by their English names, and the Chinese names a school's file may use.
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
    "tags": "标签",
}
CHINESE_HEADER = [LABELS[k] for k in HEADER]
ALIASES = {
    **{k: k for k in HEADER},
    **{v: k for k, v in LABELS.items()},
    "class_name": "class",
    "学生姓名": "name",
    "家长姓名": "guardian_name",
    "家长电话": "guardian_phone",
    "监护人手机": "guardian_phone",
    "家长手机": "guardian_phone",
    "联系电话": "guardian_phone",
}
CORRECTION_REASON = "花名册导入更新"
DEFAULT_LEAVE_REASON = "花名册导入：新花名册中没有该学生（转出、毕业或退学）"
MAX_FILE_BYTES = 10 * 1024 * 1024  # a roster of a large school is well under 1 MB
MAX_XLSX_UNPACKED = 100 * 1024 * 1024  # what a workbook may unpack to (a zip bomb is refused)
PREVIEW_KEY_ID = "anxin:roster-preview"  # the named key that seals the rows between preview and confirm
PREVIEW_SECONDS = 2 * 3600  # how long a preview can be confirmed
ENCODINGS_HINT = (
    "支持的编码：UTF-8（可带 BOM）和 GB18030/GBK（中文版 Excel“CSV（逗号分隔）”的默认编码）；"
    "也可以直接上传 Excel 文件（.xlsx）"
)

# The domain's limits of each column (FIELD_LIMITS).
_LIMIT_OF = {
    "student_no": "student_no",
    "name": "name",
    "gender": "gender",
    "grade": "grade",
    "class": "class_name",
    "guardian_name": "guardian_name",
    "guardian_phone": "guardian_phone",
}


class ImportRejected(DomainError):
    """Nothing was applied; `problems` lists (line, column label or "", what is wrong)
    for every problem of every bad row; `errors` the same by line, joined."""

    code = "import_rejected"
    message = "导入被拒绝，未写入任何数据：共 {count} 行有错误"

    def __init__(self, problems: list[tuple[int, str, str]]) -> None:
        self.problems = sorted(problems, key=lambda p: p[0])
        super().__init__(count=len({p[0] for p in self.problems}))

    @property
    def errors(self) -> list[tuple[int, str]]:
        """(line, every problem of the line joined by ；), by line."""
        return [(line, "；".join(texts)) for line, texts in by_line(self.problems)]

    def report(self) -> str:
        return "\n".join([self.text] + [f"第 {line} 行：{reason}" for line, reason in self.errors])


def by_line(problems: list[tuple[int, str, str]]) -> list[tuple[int, list[str]]]:
    """Problems grouped by line, each as "列名：问题" (or the problem alone)."""
    out: dict[int, list[str]] = {}
    for line, column, text in problems:
        out.setdefault(line, []).append(f"{column}：{text}" if column else text)
    return sorted(out.items())


# -- reading ------------------------------------------------------------------------------
@dataclass
class Rows:
    """A file read: the columns found (English names), each data row by its line (CSV) or
    row number (Excel) with its values as text, the problems met while reading (a cell's
    formula without a value, a line the CSV reader cannot read), the header names not
    read, and what the file was."""

    columns: list[str]
    rows: list[tuple[int, list[str]]]
    problems: list[tuple[int, str, str]] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    source: str = "CSV"

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> Rows:
        d = json.loads(text)
        return cls(
            columns=list(d["columns"]),
            rows=[(int(n), [str(v) for v in vs]) for n, vs in d["rows"]],
            problems=[(int(n), str(c), str(t)) for n, c, t in d["problems"]],
            ignored=[str(x) for x in d["ignored"]],
            source=str(d["source"]),
        )


def read_roster(data: bytes, filename: str = "") -> Rows:
    """A roster file's rows, read from its bytes in memory (see the module's docstring)."""
    if len(data) > MAX_FILE_BYTES:
        raise InvalidInput(reason=f"文件过大：最多 {MAX_FILE_BYTES // (1024 * 1024)} MB")
    if not data.strip():
        raise ImportRejected([(1, "", "文件为空")])
    if data.startswith(b"PK\x03\x04") or filename.lower().endswith((".xlsx", ".xlsm")):
        return _read_xlsx(data)
    if data.startswith(b"\xd0\xcf\x11\xe0"):
        raise InvalidInput(reason="不支持旧版 Excel 文件（.xls）：请在 Excel 中另存为 .xlsx 或 CSV 后再导入")
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise InvalidInput(reason=f"文件是 UTF-16 编码（Excel 的“Unicode 文本”），不能导入。{ENCODINGS_HINT}")
    text, encoding = decode_csv(data)
    return _read_csv(text, f"CSV（{encoding}）")


def decode_csv(data: bytes) -> tuple[str, str]:
    """The text of a CSV file and its encoding: UTF-8 (a BOM dropped) if it decodes as
    UTF-8, else GB18030 (a superset of GBK and GB2312) if it decodes as that; otherwise
    InvalidInput naming the encodings accepted. UTF-8 goes first: it is strict, so a GBK
    file almost never passes for UTF-8, while many UTF-8 files would pass for GB18030."""
    try:
        return data.decode("utf-8-sig"), "UTF-8"
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("gb18030"), "GB18030/GBK"
    except UnicodeDecodeError:
        raise InvalidInput(reason=f"无法识别文件的编码。{ENCODINGS_HINT}") from None


def _header_key(name: str) -> str | None:
    cleaned = name.replace("\ufeff", "").replace("\u3000", " ").strip().strip("*＊").strip().lower()
    return ALIASES.get(cleaned)


def _header_index(candidates: list[tuple[int, list[str]]]) -> int:
    """Which of the first rows is the header: the first naming at least two known
    columns (a title row above it is skipped); the first row if none does."""
    for i, (_line, values) in enumerate(candidates[:10]):
        if sum(1 for v in values if _header_key(v)) >= 2:
            return i
    return 0


def _map_header(line: int, names: list[str]) -> tuple[list[str | None], list[str], list[tuple[int, str, str]]]:
    """Each column's English name (None: not read), the names not read, and the header's
    problems (a required column missing, a column given twice)."""
    keys: list[str | None] = []
    ignored: list[str] = []
    problems: list[tuple[int, str, str]] = []
    seen: dict[str, str] = {}
    for raw in names:
        name = raw.strip()
        key = _header_key(name)
        if key is None:
            if name:
                ignored.append(name)
            keys.append(None)
            continue
        if key in seen:
            problems.append((line, "", f"表头中「{seen[key]}」和「{name}」是同一列（{LABELS[key]}），只能保留一个"))
            keys.append(None)
            continue
        seen[key] = name
        keys.append(key)
    missing = [LABELS[k] for k in REQUIRED if k not in seen]
    if missing:
        problems.append(
            (
                line,
                "",
                f"表头缺少列：{'、'.join(missing)}（表头应为 {','.join(CHINESE_HEADER)}，"
                f"或英文 {','.join(HEADER)}；监护人姓名、监护人电话、标签三列可以没有）",
            )
        )
    return keys, ignored, problems


def _to_rows(records: list[tuple[int, list[str]]], problems: list[tuple[int, str, str]], source: str) -> Rows:
    """Rows from the records of a file (line, values), the header found among them."""
    nonblank = [(n, vs) for n, vs in records if any(v.strip() for v in vs)]
    if not nonblank:
        raise ImportRejected(problems or [(1, "", "文件为空")])
    at = _header_index(nonblank)
    header_line, names = nonblank[at]
    keys, ignored, header_problems = _map_header(header_line, names)
    if header_problems:
        raise ImportRejected(header_problems)
    columns = [k for k in keys if k is not None]
    rows: list[tuple[int, list[str]]] = []
    for line, values in nonblank[at + 1 :]:
        extra = values[len(keys) :]
        if any(v.strip() for v in extra):
            problems.append((line, "", f"比表头多出 {len(extra)} 列（表头有 {len(keys)} 列）"))
        padded = values[: len(keys)] + [""] * max(0, len(keys) - len(values))
        rows.append((line, [v for k, v in zip(keys, padded, strict=True) if k is not None]))
    problems = [p for p in problems if p[0] > header_line]  # a cell above the header is not read
    if not rows:
        problems.append((header_line, "", "文件中没有学生数据（只有表头）"))
    return Rows(columns=columns, rows=rows, problems=problems, ignored=ignored, source=source)


def _read_csv(text: str, source: str) -> Rows:
    records: list[tuple[int, list[str]]] = []
    problems: list[tuple[int, str, str]] = []
    for start, values, problem in csv_records(text):
        if values is None:  # reported; the other lines still read
            problems.append((start, "", problem))
            continue
        records.append((start, values))
    return _to_rows(records, problems, source)


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


def cell_text(value: Any, number_format: str | None = None) -> str:
    """A workbook cell's value as the text a person typed: a whole number without ".0"
    (a "000000" format's leading zeros kept), a date as YYYY-MM-DD."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "是" if value else "否"
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, int | float):
        if isinstance(value, float) and not (value.is_integer() and abs(value) < 1e15):
            return repr(value)
        digits = str(int(value))
        fmt = (number_format or "").strip()
        if fmt and set(fmt) == {"0"} and value >= 0:
            digits = digits.zfill(len(fmt))
        return digits
    return str(value)


def _read_xlsx(data: bytes) -> Rows:
    """The first sheet of a workbook, opened read-only from memory twice: for the values
    Excel saved, and to see which cells are formulas."""
    import openpyxl  # (only when a workbook is imported)

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            if sum(i.file_size for i in z.infolist()) > MAX_XLSX_UNPACKED:
                raise InvalidInput(reason="Excel 文件解压后过大，不能导入")
        values_book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
        formula_book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=False)
    except InvalidInput:
        raise
    except Exception:  # not a workbook openpyxl can read (a damaged or a renamed file)
        raise InvalidInput(reason=f"无法读取 Excel 文件：请确认是 .xlsx 格式且未损坏。{ENCODINGS_HINT}") from None
    try:
        values_sheet = values_book.worksheets[0]
        formula_sheet = formula_book.worksheets[0]
        records: list[tuple[int, list[str]]] = []
        problems: list[tuple[int, str, str]] = []
        formula_rows = formula_sheet.iter_rows()
        for number, cells in enumerate(values_sheet.iter_rows(), start=1):
            formulas = next(formula_rows, ())
            texts = []
            for col, cell in enumerate(cells, start=1):
                formula = formulas[col - 1] if col - 1 < len(formulas) else None
                is_formula = getattr(formula, "data_type", None) == "f"
                if getattr(cell, "data_type", None) == "e":
                    problems.append((number, f"第 {col} 列", f"单元格是错误值 {cell.value}，请改正后再导入"))
                    texts.append("")
                    continue
                if is_formula and cell.value is None:
                    problems.append(
                        (
                            number,
                            f"第 {col} 列",
                            "单元格是公式，但文件中没有保存计算结果：请在 Excel 中打开、保存后再导入（或改为数值）",
                        )
                    )
                    texts.append("")
                    continue
                texts.append(cell_text(cell.value, getattr(cell, "number_format", None)))
            records.append((number, texts))
    finally:
        values_book.close()
        formula_book.close()
    rows = _to_rows(records, problems, "Excel（.xlsx）")
    if len(values_book.sheetnames) > 1:
        rows.ignored.append(f"（只读取第一个工作表「{values_book.sheetnames[0]}」）")
    return rows


# -- checking each row --------------------------------------------------------------------
@dataclass
class Line:
    """One row of the file, checked: its details as the domain takes them (only the
    columns the file has; an empty guardian or tags cell is left out)."""

    line: int
    student_no: str
    details: dict[str, Any]


def _field_problem(column: str, value: str) -> str | None:
    """A field too long, or holding a NUL or another control character (said without the
    column's name: the report puts it in front)."""
    label = LABELS[column]
    if column == "tags":
        tags = [t.strip() for t in value.replace("；", ";").split(";") if t.strip()]
        if len(tags) > MAX_TAGS:
            return f"最多 {MAX_TAGS} 个，实际为 {len(tags)} 个"
        problem = next(
            (p for t in tags if (p := text_problem(t, "每个标签", FIELD_LIMITS["tag"])) is not None),
            text_problem(value, label, FIELD_LIMITS["tag"] * MAX_TAGS + MAX_TAGS),
        )
        return _without_label(problem, label)
    limit = FIELD_LIMITS[_LIMIT_OF[column]] if column in _LIMIT_OF else 10
    return _without_label(text_problem(value, label, limit), label)


def _without_label(problem: str | None, label: str) -> str | None:
    """The domain's "姓名过长：51 个字符…" as the report puts it after the column's name:
    "过长（51 个字符…）"."""
    if problem is None:
        return None
    text = problem.removeprefix(label)
    return f"过长（{text[3:]}）" if text.startswith("过长：") else text


_YEAR_MONTH_DAY = str.maketrans({chr(0x5E74): "-", chr(0x6708): "-", chr(0x65E5): None})  # 年 月 日


def _parse_birth(text: str) -> date | None:
    day = day_or_none(text)
    if day is None:  # 2013年5月6日
        day = day_or_none(text.strip().translate(_YEAR_MONTH_DAY).replace(" ", ""))
    if day is None and re.fullmatch(r"\d{8}", t := text.strip()):
        day = day_or_none(f"{t[:4]}-{t[4:6]}-{t[6:8]}")
    return day


def check_line(
    line: int, columns: list[str], values: list[str], today: date
) -> tuple[Line | None, list[tuple[int, str, str]]]:
    """A row's details, or every problem of the row (column label, what is wrong)."""
    row = {k: (v or "").strip() for k, v in zip(columns, values, strict=True)}
    problems: list[tuple[str, str]] = []
    for k, v in row.items():
        if (p := _field_problem(k, v)) is not None:
            problems.append((LABELS[k], p))
    bad = {label for label, _ in problems}
    for k in REQUIRED:
        if not row.get(k) and LABELS[k] not in bad:
            problems.append((LABELS[k], "必填，不能为空"))
            bad.add(LABELS[k])
    details: dict[str, Any] = {}
    if row.get("gender") and "性别" not in bad:
        gender = GENDERS.get(row["gender"].lower())
        if gender is None:
            problems.append(("性别", f"「{row['gender']}」无法识别（应为 男 或 女）"))
        details["gender"] = gender
    if row.get("birth_date") and "出生日期" not in bad:
        birth = _parse_birth(row["birth_date"])
        if birth is None:
            problems.append(("出生日期", f"「{row['birth_date']}」不是有效日期（应为 2013-05-06 或 2013/5/6）"))
        elif (p := birth_date_problem(birth, today)) is not None:
            problems.append(("出生日期", p))
        details["birth_date"] = birth
    g_name, g_phone = row.get("guardian_name", ""), row.get("guardian_phone", "")
    if (g_name or g_phone) and not ({"监护人姓名", "监护人电话"} & bad):
        if not g_name:
            problems.append(("监护人姓名", "填写了监护人电话时必填"))
        phone = ""
        if not g_phone:
            problems.append(("监护人电话", "填写了监护人姓名时必填"))
        else:
            try:
                phone = check_phone(g_phone)
            except DomainError:
                problems.append(
                    (
                        "监护人电话",
                        f"「{g_phone}」格式不正确（应为 11 位手机号、座机号（可带区号）或 + 开头的国际号码）",
                    )
                )
        details["guardian"] = {"name": g_name, "phone": phone}
    if row.get("tags") and "标签" not in bad:
        details["tags"] = [t.strip() for t in row["tags"].replace("；", ";").split(";") if t.strip()]
    if problems:
        return None, [(line, label, text) for label, text in problems]
    for k, key in (("name", "name"), ("grade", "grade"), ("class", "class_name")):
        details[key] = row[k]
    return Line(line=line, student_no=row["student_no"], details=details), []


# -- the plan -----------------------------------------------------------------------------
@dataclass
class NewStudent:
    line: int
    student_no: str
    name: str
    class_name: str


@dataclass
class Changed:
    """An existing student whose details differ: the fields that change (as the domain
    takes them) and, for the preview, each as (column label, before, after)."""

    line: int
    student_id: str
    student_no: str
    name: str
    class_name: str
    version: int
    changes: dict[str, Any]
    shown: list[tuple[str, str, str]]


@dataclass
class Missing:
    """A student of the school (at school) whom the file does not list."""

    student_id: str
    student_no: str
    name: str
    class_name: str
    version: int


@dataclass
class Plan:
    school_id: str
    source: str
    new: list[NewStudent]
    changed: list[Changed]
    unchanged: int
    missing: list[Missing]
    ignored: list[str]
    rows: int
    fingerprint: str = ""
    # the aggregates the plan would save (not shown; made again on confirmation)
    _enrol: list[Student] = field(default_factory=list, repr=False)
    _loaded: dict[str, Student] = field(default_factory=dict, repr=False)


@dataclass
class ImportResult:
    imported: int
    school_id: str
    student_ids: list[str] = field(default_factory=list)
    corrected: int = 0
    unchanged: int = 0
    left: int = 0
    missing: int = 0


def _shown_guardian(g: dict[str, Any] | None) -> tuple[str, str]:
    return (str(g.get("name", "")), str(g.get("phone", ""))) if g else ("", "")


def _differences(student: Student, details: dict[str, Any]) -> tuple[dict[str, Any], list[tuple[str, str, str]]]:
    """What a row changes of a student: the correction's `changes` and the lines shown."""
    changes: dict[str, Any] = {}
    shown: list[tuple[str, str, str]] = []
    for key, label in (("name", "姓名"), ("grade", "年级"), ("class_name", "班级")):
        if details[key] != getattr(student, key):
            changes[key] = details[key]
            shown.append((label, str(getattr(student, key)), details[key]))
    if details["gender"] != student.gender:
        changes["gender"] = details["gender"]
        shown.append(("性别", GENDER_LABELS.get(student.gender, student.gender), GENDER_LABELS[details["gender"]]))
    if details["birth_date"] != student.birth_date:
        changes["birth_date"] = details["birth_date"]
        shown.append(("出生日期", student.birth_date.isoformat(), details["birth_date"].isoformat()))
    guardian = details.get("guardian")
    stored = list(student.guardians or [])
    if guardian is not None:
        first = stored[0] if stored else None
        if first is None or (first.get("name"), first.get("phone")) != (guardian["name"], guardian["phone"]):
            changes["guardians"] = [guardian, *stored[1:]]
            before_name, before_phone = _shown_guardian(first)
            if before_name != guardian["name"]:
                shown.append(("监护人姓名", before_name, guardian["name"]))
            if before_phone != guardian["phone"]:
                shown.append(("监护人电话", before_phone, guardian["phone"]))
    tags = details.get("tags")
    if tags is not None and sorted(tags) != sorted(student.tags or []):
        changes["tags"] = tags
        shown.append(("标签", "；".join(student.tags or []), "；".join(tags)))
    return changes, shown


def plan_import(
    app: Core,
    actor: Actor,
    school_id: str,
    rows: Rows,
    progress: Callable[[int, int], None] | None = None,
) -> Plan:
    """What importing these rows into the school would do, or ImportRejected naming every
    problem of every bad row. Passes the gate (STUDENT_WRITE, and STUDENT_READ of the
    school's roster, which it compares) and changes nothing."""
    pass_gate(app, actor, school_id)
    return _plan(app, actor, school_id, rows, progress)


def pass_gate(app: Core, actor: Actor, school_id: str) -> None:
    """The gate's decisions of an import, before anything of the file is read: the
    roster may be written (STUDENT_WRITE) and read, to compare (STUDENT_READ)."""
    app.check(actor, access.STUDENT_WRITE, "student", school_id=school_id)
    if school_id not in {sid for sid, _name, _d in app.roster.schools()}:
        raise InvalidInput(reason="找不到该学校")
    app.authorize(actor, access.STUDENT_READ, app.resource("student", school_id=school_id))


def _plan(
    app: Core,
    actor: Actor,
    school_id: str,
    rows: Rows,
    progress: Callable[[int, int], None] | None = None,
) -> Plan:
    at = app.now()
    problems: list[tuple[int, str, str]] = list(rows.problems)
    lines: list[Line] = []
    seen: dict[str, int] = {}
    for i, (line, values) in enumerate(rows.rows):
        if progress and i % 500 == 0:
            progress(i, len(rows.rows))
        checked, found = check_line(line, rows.columns, values, at.date())
        number = (values[rows.columns.index("student_no")] or "").strip()
        if number and number in seen and not any(f[1] == "学号" for f in found):
            found.append((line, "学号", f"「{number}」在文件中重复（第 {seen[number]} 行已出现）"))
            checked = None
        elif number:
            seen.setdefault(number, line)
        if found:
            problems += found
        elif checked is not None:
            lines.append(checked)
    roster = app.roster.school_roster(school_id)  # {student id: (status, erased)}
    ids = {ln.student_no: str(app.roster.student_id_for(school_id, ln.student_no)) for ln in lines}
    loaded: dict[str, Student] = app.load_many([UUID(i) for i in roster], Student)
    new: list[NewStudent] = []
    enrol: list[Student] = []
    changed: list[Changed] = []
    unchanged = 0
    listed: set[str] = set()
    for ln in lines:
        sid = ids[ln.student_no]
        listed.add(sid)
        d = ln.details
        if sid not in roster:
            guardian = d.get("guardian")
            try:
                enrol.append(
                    Student.enrol(
                        id=UUID(sid),
                        school_id=school_id,
                        student_no=ln.student_no,
                        name=d["name"],
                        gender=d["gender"],
                        birth_date=d["birth_date"],
                        grade=d["grade"],
                        class_name=d["class_name"],
                        guardians=[guardian] if guardian else [],
                        tags=d.get("tags", []),
                        actor=actor.staff_id,
                        at=at,
                    )
                )
            except DomainError as e:
                problems.append((ln.line, "", str(e.details.get("reason", e.text))))
                continue
            new.append(NewStudent(ln.line, ln.student_no, d["name"], d["class_name"]))
            continue
        student = loaded.get(sid)
        if student is None:
            status, erased = roster[sid]
            why = "该学号的学生记录已销毁（已删除），不能再次使用" if erased else "该学号的学生记录无法读取（已隔离）"
            problems.append((ln.line, "学号", f"「{ln.student_no}」{why}"))
            continue
        if not student.active:
            problems.append(
                (ln.line, "学号", f"「{ln.student_no}」的学生已办理离校，导入不能恢复离校学生；请从文件中删去此行")
            )
            continue
        changes, shown = _differences(student, d)
        if not changes:
            unchanged += 1
            continue
        changed.append(
            Changed(ln.line, sid, ln.student_no, student.name, student.class_name, student.version, changes, shown)
        )
    if problems:
        raise ImportRejected(problems)
    missing = sorted(
        (
            Missing(sid, s.student_no, s.name, s.class_name, s.version)
            for sid, s in loaded.items()
            if s.active and sid not in listed
        ),
        key=lambda m: (m.class_name, m.student_no),
    )
    plan = Plan(
        school_id=school_id,
        source=rows.source,
        new=new,
        changed=changed,
        unchanged=unchanged,
        missing=missing,
        ignored=rows.ignored,
        rows=len(rows.rows),
        _enrol=enrol,
        _loaded=loaded,
    )
    plan.fingerprint = _fingerprint(plan)
    if progress:
        progress(len(rows.rows), len(rows.rows))
    return plan


def _fingerprint(plan: Plan) -> str:
    """What the plan does, as a digest: the same rows planned again against a roster that
    changed since (a student enrolled, corrected or left meanwhile) give another."""
    summary = {
        "new": [n.student_no for n in plan.new],
        "changed": [
            [c.student_id, c.version, json.dumps(c.changes, default=str, sort_keys=True)] for c in plan.changed
        ],
        "missing": [[m.student_id, m.version] for m in plan.missing],
        "unchanged": plan.unchanged,
    }
    return hashlib.sha256(json.dumps(summary, sort_keys=True).encode()).hexdigest()[:32]


def apply_import(
    app: Core,
    actor: Actor,
    school_id: str,
    rows: Rows,
    *,
    leavers: list[str] | None = None,
    leave_reason: str = "",
    fingerprint: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ImportResult:
    """Plan the rows again and apply the plan in one transaction, or nothing: every new
    student enrolled, every change corrected (reason 花名册导入更新), and the missing
    students named in `leavers` (their ids) marked as left with `leave_reason`. Given the
    `fingerprint` of the plan the person confirmed, a plan that differs now is refused
    (PlanChanged: the roster changed since the preview)."""
    with app.gate.deferred_decisions(own=True):
        plan = plan_import(app, actor, school_id, rows, progress)
        if fingerprint is not None and plan.fingerprint != fingerprint:
            raise PlanChanged(plan)
        return _apply(app, actor, plan, leavers or [], leave_reason)


def _apply(app: Core, actor: Actor, plan: Plan, leavers: list[str], leave_reason: str) -> ImportResult:
    """Save the plan in one transaction (inside the caller's block of decisions)."""
    chosen = list(dict.fromkeys(leavers))
    missing = {m.student_id for m in plan.missing}
    if any(s not in missing for s in chosen):
        raise InvalidInput(reason="要标记离校的学生不在本次导入的“文件中没有的学生”之中，请重新预览")
    if chosen and not leave_reason.strip():
        raise InvalidInput(reason="标记离校须填写离校原因")
    at = app.now()
    touched: list[CaseAggregate] = list(plan._enrol)
    for c in plan.changed:
        s = plan._loaded[c.student_id]
        s.correct(changes=c.changes, reason=CORRECTION_REASON, actor=actor.staff_id, at=at)
        touched.append(s)
    for sid in chosen:
        s = plan._loaded[sid]
        s.leave(reason=leave_reason, actor=actor.staff_id, at=at)
        touched.append(s)
    if touched:
        app.save_many(touched)
    if plan._enrol:
        app.analyze(changed=len(plan._enrol))  # statistics refreshed if the import is large beside the store
    return ImportResult(
        imported=len(plan.new),
        school_id=plan.school_id,
        student_ids=[str(s.id) for s in plan._enrol],
        corrected=len(plan.changed),
        unchanged=plan.unchanged,
        left=len(chosen),
        missing=len(plan.missing),
    )


def preview_upload(
    app: Core, actor: Actor, school_id: str, upload: Callable[[], tuple[bytes, str]], context: str
) -> tuple[Plan, str]:
    """An uploaded file's preview (the web's first step): the gate first, then the file
    (`upload()`: its bytes and name) read from memory and planned; with the rows sealed for
    the confirmation (seal_rows)."""
    pass_gate(app, actor, school_id)
    rows = read_roster(*upload())
    return _plan(app, actor, school_id, rows), seal_rows(app, actor, school_id, rows, context)


def confirm_upload(
    app: Core,
    actor: Actor,
    school_id: str,
    sealed: str,
    context: str,
    *,
    fingerprint: str,
    leavers: list[str],
    leave_reason: str,
) -> ImportResult:
    """The confirmation (the web's second step): the gate first, then the sealed rows
    opened, planned again and applied if the plan is the one previewed (`fingerprint`);
    otherwise PlanChanged, carrying the plan as it is now."""
    with app.gate.deferred_decisions(own=True):
        pass_gate(app, actor, school_id)
        rows = open_rows(app, actor, school_id, sealed, context)
        plan = _plan(app, actor, school_id, rows)
        if plan.fingerprint != fingerprint:
            raise PlanChanged(plan)
        return _apply(app, actor, plan, leavers, leave_reason)


class PlanChanged(DomainError):
    """The roster changed between the preview and the confirmation: nothing applied;
    `plan` is what the same rows would do now."""

    code = "roster_changed"
    message = "预览之后本校花名册已有变动（有人新增、更正或办理了离校），未写入任何数据；请核对新的预览后再确认"

    def __init__(self, plan: Plan | None = None) -> None:
        self.plan = plan
        super().__init__()


def import_roster(
    app: Core,
    actor: Actor,
    school_id: str,
    content: str | bytes,
    progress: Callable[[int, int], None] | None = None,
    filename: str = "",
) -> ImportResult:
    """Read a file and apply it at once (no preview; the missing students only counted):
    the benches', the demo's and the tests' way."""
    rows = read_roster(content, filename) if isinstance(content, bytes) else _read_csv(content.lstrip("\ufeff"), "CSV")
    return apply_import(app, actor, school_id, rows, progress=progress)


# -- between the preview and the confirmation ---------------------------------------------------
def _bound(actor: Actor, school_id: str, context: str) -> bytes:
    return f"{PREVIEW_KEY_ID}\x1f{actor.staff_id}\x1f{school_id}\x1f{context}".encode()


def seal_rows(app: Core, actor: Actor, school_id: str, rows: Rows, context: str = "") -> str:
    """The rows sealed for the confirmation form: compressed, encrypted and authenticated
    under a named key, bound to the person, the school and `context` (the web session),
    with the time it stops being accepted; text a form can carry."""
    plain = json.dumps({"until": time.time() + PREVIEW_SECONDS, "rows": rows.to_json()}).encode()
    nonce = os.urandom(12)
    sealed = app.keystore.named_cipher(PREVIEW_KEY_ID).encrypt(
        nonce, zlib.compress(plain, 6), _bound(actor, school_id, context)
    )
    return base64.urlsafe_b64encode(nonce + sealed).decode()


def open_rows(app: Core, actor: Actor, school_id: str, token: str, context: str = "") -> Rows:
    """The rows a confirmation form carries back, if sealed for this person, school and
    context and not expired; otherwise InvalidInput (upload the file again)."""
    expired = InvalidInput(reason="预览已失效（超过两小时，或不是本人本次的预览），请重新上传文件")
    try:
        blob = base64.urlsafe_b64decode(token.encode())
        plain = app.keystore.named_cipher(PREVIEW_KEY_ID).decrypt(
            blob[:12], blob[12:], _bound(actor, school_id, context)
        )
        d = json.loads(zlib.decompress(plain))
    except (ValueError, InvalidTag, zlib.error):
        raise expired from None
    if float(d.get("until", 0)) < time.time():
        raise expired
    return Rows.from_json(d["rows"])


def template_csv() -> bytes:
    """The template a school fills in: the Chinese header, with a BOM so that Excel opens
    it as UTF-8. No example row (a template uploaded as it is would enrol it)."""
    return ("\ufeff" + ",".join(CHINESE_HEADER) + "\r\n").encode("utf-8")


def template_xlsx() -> bytes:
    """The same template as an Excel workbook: the student number and phone columns as text
    (so Excel keeps leading zeros and long numbers), the birth date column as dates."""
    import openpyxl

    wb = openpyxl.Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = "花名册"
    ws.append(CHINESE_HEADER)
    for col, width in zip("ABCDEFGHI", (12, 10, 6, 12, 8, 12, 12, 14, 16), strict=True):
        ws.column_dimensions[col].width = width
    ws.column_dimensions["A"].number_format = "@"
    ws.column_dimensions["H"].number_format = "@"
    ws.column_dimensions["D"].number_format = "yyyy-mm-dd"
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()
