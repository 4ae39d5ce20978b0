"""Importing a school's roster file: the encodings Excel saves (UTF-8 with or without a BOM,
GBK / GB18030), Excel workbooks (numbers and dates as Excel stores them, formulas), Chinese
or English headers, every problem of every row at once, and a re-import that reconciles
with the school's roster (new students enrolled, changed ones corrected, missing ones
listed and marked as left only when the person says so), all or nothing."""

from __future__ import annotations

import io
import re
import zipfile
from datetime import date, datetime
from uuid import UUID

import openpyxl
import pytest
from conftest import ADMIN, Clock, School

from anxin.roster_import import (
    CORRECTION_REASON,
    ImportRejected,
    PlanChanged,
    apply_import,
    cell_text,
    open_rows,
    plan_import,
    read_roster,
    seal_rows,
    template_csv,
    template_xlsx,
)
from anxin.service import Anxin
from domain.common import InvalidInput
from domain.roster import Student

EN = "student_no,name,gender,birth_date,grade,class,guardian_name,guardian_phone,tags"
ZH = "学号,姓名,性别,出生日期,年级,班级,监护人姓名,监护人电话,标签"


def students(app: Anxin, school: School) -> dict[str, Student]:
    """The school's students by number, read back from their streams."""
    ids = [UUID(i) for i in app.roster.school_roster(school.id)]
    return {s.student_no: s for s in app.load_many(ids, Student).values()}


def event_names(app: Anxin, student_id: str) -> list[str]:
    return [type(e).__name__ for e in app.events.get(UUID(student_id))]


def csv_bytes(lines: list[str], encoding: str = "utf-8", header: str = ZH) -> bytes:
    return ("\r\n".join([header, *lines]) + "\r\n").encode(encoding)


# -- encodings ----------------------------------------------------------------------------------
@pytest.mark.parametrize("encoding", ["gbk", "gb18030", "utf-8-sig", "utf-8"])
def test_a_csv_in_gbk_gb18030_or_utf8_with_or_without_a_bom_is_read(app: Anxin, school: School, encoding: str) -> None:
    name = "王𠮷" if encoding != "gbk" else "王喆"  # 𠮷 is in GB18030, not in GBK
    data = csv_bytes([f"2026101,{name},女,2013/9/1,七年级,七年级3班,王家长,13800000001,留守儿童；单亲家庭"], encoding)
    if encoding == "utf-8-sig":
        assert data.startswith(b"\xef\xbb\xbf")

    rows = read_roster(data, "花名册.csv")
    result = apply_import(app, ADMIN, school.id, rows)

    assert result.imported == 1
    s = students(app, school)["2026101"]
    assert (s.name, s.class_name, s.birth_date) == (name, "七年级3班", date(2013, 9, 1))
    assert s.guardians == [{"name": "王家长", "phone": "13800000001"}]
    assert s.tags == ["留守儿童", "单亲家庭"]
    assert rows.source == ("CSV（UTF-8）" if encoding.startswith("utf-8") else "CSV（GB18030/GBK）")


def test_a_file_in_neither_encoding_is_refused_naming_the_encodings_accepted(app: Anxin, school: School) -> None:
    before = students(app, school)
    data = csv_bytes([]) + b"2026101,\x80\xff,\xa1\n"  # neither UTF-8 nor GB18030

    with pytest.raises(InvalidInput) as e:
        read_roster(data, "roster.csv")

    assert "UTF-8" in e.value.text and "GB18030/GBK" in e.value.text and ".xlsx" in e.value.text
    assert students(app, school).keys() == before.keys()


def test_utf16_and_old_xls_files_are_refused_with_what_to_do() -> None:
    with pytest.raises(InvalidInput, match="UTF-16"):
        read_roster(ZH.encode("utf-16"))
    with pytest.raises(InvalidInput, match=r"\.xls"):
        read_roster(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 100, "a.xls")


# -- Excel ---------------------------------------------------------------------------------------
def workbook(rows: list[list[object]], header: list[str] | None = None, title: str | None = None) -> openpyxl.Workbook:
    wb = openpyxl.Workbook()
    ws = wb.active
    assert ws is not None
    if title:
        ws.append([title])
    ws.append(header or ZH.split(","))
    for r in rows:
        ws.append(r)
    return wb


def xlsx(wb: openpyxl.Workbook) -> bytes:
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def test_an_xlsx_with_numbers_for_student_numbers_and_phones_and_date_cells_is_read_as_typed(
    app: Anxin, school: School
) -> None:
    wb = workbook(
        [
            [2026201, "钱一", "男", datetime(2013, 4, 5), "七年级", "七年级3班", "钱家长", 13800000002, None],
            [2026202.0, "钱二", "女", "2013/4/6", "七年级", "七年级3班", "钱家长", 13800000003.0, "留守儿童"],
            [42, "钱三", "女", date(2013, 4, 7), "七年级", "七年级3班", None, None, None],
        ],
        title="第一中学 2026 级花名册",  # a title row above the header is skipped
    )
    ws = wb.active
    assert ws is not None
    ws["A5"].number_format = "000000"  # 42 shown as 000042: its leading zeros kept
    ws["D3"].number_format = "yyyy-mm-dd"

    rows = read_roster(xlsx(wb), "花名册.xlsx")
    result = apply_import(app, ADMIN, school.id, rows)

    assert result.imported == 3 and rows.source == "Excel（.xlsx）"
    got = students(app, school)
    assert {"2026201", "2026202", "000042"} <= got.keys()  # no "2026202.0", no "42"
    assert got["2026201"].birth_date == date(2013, 4, 5)
    assert got["2026202"].birth_date == date(2013, 4, 6)
    assert got["000042"].birth_date == date(2013, 4, 7)
    assert got["2026201"].guardians == [{"name": "钱家长", "phone": "13800000002"}]
    assert got["2026202"].guardians == [{"name": "钱家长", "phone": "13800000003"}]
    assert got["000042"].guardians == []


def _with_cached_value(data: bytes, cell: str, formula: str, value: str) -> bytes:
    """The workbook with `cell` made a formula whose result Excel saved (openpyxl writes
    formulas without results): what a file saved by Excel holds."""
    src = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for item in src.infolist():
            body = src.read(item.filename)
            if item.filename == "xl/worksheets/sheet1.xml":
                text = body.decode()
                text, n = re.subn(
                    rf'<c r="{cell}"[^>]*?(/>|>.*?</c>)',
                    f'<c r="{cell}" t="str"><f>{formula}</f><v>{value}</v></c>',
                    text,
                )
                assert n == 1
                body = text.encode()
            z.writestr(item, body)
    return out.getvalue()


def test_an_xlsx_formula_is_read_as_the_value_excel_saved_and_refused_without_one(app: Anxin, school: School) -> None:
    row = [2026301, "孙一", "男", date(2013, 1, 1), "七年级", "placeholder", "孙家长", "13800000004", None]
    data = _with_cached_value(xlsx(workbook([row])), "F2", 'CONCATENATE(E2,"3班")', "七年级3班")

    apply_import(app, ADMIN, school.id, read_roster(data))

    assert students(app, school)["2026301"].class_name == "七年级3班"

    wb = workbook([[2026302, "孙二", "女", date(2013, 1, 1), "七年级", '=E2&"3班"', "孙家长", "13800000005", None]])
    with pytest.raises(ImportRejected) as e:
        apply_import(app, ADMIN, school.id, read_roster(xlsx(wb)))
    assert any(p[0] == 2 and "没有保存计算结果" in p[2] for p in e.value.problems)
    assert "2026302" not in students(app, school)


def test_cell_text_restores_what_excel_made_numbers_of() -> None:
    assert cell_text(20260001) == "20260001"
    assert cell_text(20260001.0) == "20260001"
    assert cell_text(13800138000.0) == "13800138000"
    assert cell_text(7, "0000") == "0007"
    assert cell_text(1.5) == "1.5"
    assert cell_text(datetime(2013, 5, 6)) == "2013-05-06"
    assert cell_text(None) == ""


# -- headers and templates -----------------------------------------------------------------------
def test_chinese_or_english_headers_and_unknown_columns_listed_as_not_read(app: Anxin, school: School) -> None:
    zh = read_roster(csv_bytes(["2026401,周一,男,2013-01-01,七年级,七年级3班,周家长,13800000006,"]))
    en = read_roster(csv_bytes(["2026402,周二,女,2013-01-01,七年级,七年级3班,周家长,13800000007,"], header=EN))
    extra = read_roster(
        csv_bytes(
            ["2026403,11010120130101001X,周三,男,2013-01-01,七年级,七年级3班"],
            header="学号,身份证号,姓名,性别,出生日期,年级,班级",
        )
    )

    assert zh.columns == en.columns == EN.split(",")
    assert extra.ignored == ["身份证号"]  # not read, not stored
    for rows in (zh, en, extra):
        apply_import(app, ADMIN, school.id, rows)
    got = students(app, school)
    assert {"2026401", "2026402", "2026403"} <= got.keys()
    assert got["2026403"].guardians == [] and got["2026403"].tags == []


def test_a_header_missing_columns_is_refused_naming_them_in_chinese() -> None:
    with pytest.raises(ImportRejected) as e:
        read_roster("学号,姓名,年级\n2026501,吴一,七年级\n".encode())
    [(line, _col, text)] = e.value.problems
    assert line == 1 and "表头缺少列：性别、出生日期、班级" in text and ZH in text


@pytest.mark.parametrize("kind", ["csv", "xlsx"])
def test_the_templates_parse_back_through_the_importer(app: Anxin, school: School, kind: str) -> None:
    if kind == "csv":
        data = template_csv()
        assert data.startswith(b"\xef\xbb\xbf") and data.decode("utf-8-sig").startswith(ZH)
        filled = data + "2026601,郑一,女,2013-02-03,七年级,七年级3班,郑家长,13800000008,\r\n".encode()
    else:
        wb = openpyxl.load_workbook(io.BytesIO(template_xlsx()))
        ws = wb.active
        assert ws is not None
        assert [c.value for c in ws[1]] == ZH.split(",")
        ws.append(["2026601", "郑一", "女", date(2013, 2, 3), "七年级", "七年级3班", "郑家长", "13800000008", None])
        filled = xlsx(wb)

    with pytest.raises(ImportRejected, match="共 1 行"):  # the template alone: a header, no student
        apply_import(app, ADMIN, school.id, read_roster(template_csv() if kind == "csv" else template_xlsx()))
    result = apply_import(app, ADMIN, school.id, read_roster(filled))

    assert result.imported == 1
    assert students(app, school)["2026601"].birth_date == date(2013, 2, 3)


# -- every problem of every row ------------------------------------------------------------------
def test_a_half_valid_file_applies_nothing_and_names_every_problem_of_every_bad_row(app: Anxin, school: School) -> None:
    before = {no: s.version for no, s in students(app, school).items()}
    data = csv_bytes(
        [
            "2026701,冯一,男,2013-01-01,七年级,七年级3班,冯家长,13800000009,",  # good
            "2026702,,x,2013-13-45,七年级,七年级3班,冯家长,abc,",  # name, gender, date and phone all wrong
            "2026703,冯三,女,2013-01-01,,七年级3班,,13800000010,",  # grade empty; a phone without a name
            "2026701,冯四,女,2013-01-01,七年级,七年级3班,,,",  # the number again
            "2026002,李小红,女,2013-05-06,七年级,七年级2班,李家长,12345,",  # an existing student: bad phone too
        ]
    )

    with pytest.raises(ImportRejected) as e:
        apply_import(app, ADMIN, school.id, read_roster(data))

    assert e.value.text == "导入被拒绝，未写入任何数据：共 4 行有错误"
    problems = [(line, col) for line, col, _text in e.value.problems]
    assert problems == [
        (3, "姓名"),
        (3, "性别"),
        (3, "出生日期"),
        (3, "监护人电话"),
        (4, "年级"),
        (4, "监护人姓名"),
        (5, "学号"),
        (6, "监护人电话"),
    ]
    texts = dict(e.value.errors)
    assert "监护人电话：「abc」格式不正确" in texts[3] and "性别：「x」无法识别（应为 男 或 女）" in texts[3]
    assert "出生日期：「2013-13-45」不是有效日期" in texts[3] and "姓名：必填，不能为空" in texts[3]
    assert "学号：「2026701」在文件中重复（第 2 行已出现）" in texts[5]
    assert {no: s.version for no, s in students(app, school).items()} == before  # nothing applied


# -- a re-import reconciles ---------------------------------------------------------------------
def updated_roster(school: School) -> bytes:
    """The school's roster a term later: 张小明 as he was, 李小红 moved to 七年级2班, 王小刚's
    guardian with a new phone, 赵小丽 gone, 陈新生 new."""
    return csv_bytes(
        [
            "2026001,张小明,男,2013-05-06,七年级,七年级1班,张家长,13912345678,留守儿童",
            "2026002,李小红,女,2013-05-06,七年级,七年级2班,李家长,13912345678,留守儿童",
            "2026003,王小刚,男,2013-05-06,七年级,七年级2班,王家长,13700000000,留守儿童",
            "2026005,陈新生,女,2013-08-08,七年级,七年级1班,陈家长,13600000000,",
        ]
    )


def test_a_reimport_enrols_the_new_corrects_the_changed_leaves_the_rest_and_lists_the_missing(
    app: Anxin, school: School, clock: Clock
) -> None:
    rows = read_roster(updated_roster(school))
    versions = {no: s.version for no, s in students(app, school).items()}

    plan = plan_import(app, ADMIN, school.id, rows)

    assert [n.student_no for n in plan.new] == ["2026005"]
    assert {c.student_no: c.shown for c in plan.changed} == {
        "2026002": [("班级", "七年级1班", "七年级2班")],
        "2026003": [("监护人电话", "13912345678", "13700000000")],
    }
    assert plan.unchanged == 1
    assert [(m.student_no, m.name, m.class_name) for m in plan.missing] == [("2026004", "赵小丽", "七年级2班")]
    assert {no: s.version for no, s in students(app, school).items()} == versions  # a preview changes nothing

    result = apply_import(app, ADMIN, school.id, rows, fingerprint=plan.fingerprint)

    assert (result.imported, result.corrected, result.unchanged, result.left, result.missing) == (1, 2, 1, 0, 1)
    got = students(app, school)
    assert got["2026005"].name == "陈新生" and event_names(app, school.student("2026001")) == ["Enrolled"]
    for no, changes in [
        ("2026002", {"class_name": "七年级2班"}),
        ("2026003", {"guardians": [{"name": "王家长", "phone": "13700000000"}]}),
    ]:
        [corrected] = [e for e in app.events.get(UUID(school.student(no))) if type(e).__name__ == "DetailsCorrected"]
        assert corrected.changes == changes and corrected.reason == CORRECTION_REASON
    assert got["2026004"].active  # missing, not removed silently
    assert app.roster.school_roster(school.id)[school.student("2026002")][0] == "active"
    # the class move is the directory's too: 七年级2班's teacher now sees 李小红
    assert "2026002" in {r.student_no for r in app.roster.list_students(school.other_teacher, school.id, "七年级2班")}

    # Confirmed with the missing student marked as a leaver: only then is she Left.
    again = plan_import(app, ADMIN, school.id, rows)
    assert (len(again.new), len(again.changed), again.unchanged) == (0, 0, 4)
    done = apply_import(
        app,
        ADMIN,
        school.id,
        rows,
        leavers=[again.missing[0].student_id],
        leave_reason="转学至外省",
        fingerprint=again.fingerprint,
    )
    assert done.left == 1
    assert event_names(app, school.student("2026004")) == ["Enrolled", "Left"]
    assert not students(app, school)["2026004"].active
    assert plan_import(app, ADMIN, school.id, rows).missing == []  # a leaver is missed no more


def test_a_confirmation_of_a_preview_the_roster_has_moved_past_applies_nothing(app: Anxin, school: School) -> None:
    rows = read_roster(updated_roster(school))
    plan = plan_import(app, ADMIN, school.id, rows)
    # meanwhile someone corrects the student the preview listed as missing
    app.roster.correct_student(ADMIN, school.student("2026004"), {"grade": "八年级"}, "升级")

    with pytest.raises(PlanChanged):
        apply_import(app, ADMIN, school.id, rows, fingerprint=plan.fingerprint)

    assert "2026005" not in students(app, school)
    assert event_names(app, school.student("2026002")) == ["Enrolled"]


def test_leavers_must_be_among_the_missing_and_need_a_reason(app: Anxin, school: School) -> None:
    rows = read_roster(updated_roster(school))
    plan = plan_import(app, ADMIN, school.id, rows)

    with pytest.raises(InvalidInput, match="离校原因"):
        apply_import(app, ADMIN, school.id, rows, leavers=[plan.missing[0].student_id], leave_reason=" ")
    with pytest.raises(InvalidInput, match="不在本次导入"):
        apply_import(app, ADMIN, school.id, rows, leavers=[school.student("2026001")], leave_reason="转学")

    assert "2026005" not in students(app, school)
    assert event_names(app, school.student("2026001")) == ["Enrolled"]


def test_a_row_for_a_student_who_has_left_is_refused_by_row(app: Anxin, school: School) -> None:
    app.roster.leave_student(ADMIN, school.student("2026004"), "转学")

    with pytest.raises(ImportRejected) as e:
        apply_import(
            app, ADMIN, school.id, read_roster(csv_bytes(["2026004,赵小丽,女,2013-05-06,七年级,七年级2班,,,"]))
        )

    [(line, col, text)] = e.value.problems
    assert (line, col) == (2, "学号") and "已办理离校" in text


def test_an_import_passes_the_gate(app: Anxin, school: School) -> None:
    from domain.common import PermissionDenied

    rows = read_roster(updated_roster(school))
    with pytest.raises(PermissionDenied):
        plan_import(app, school.teacher, school.id, rows)
    with pytest.raises(PermissionDenied):
        apply_import(app, school.principal, school.id, rows)
    assert "2026005" not in students(app, school)


# -- between the preview and the confirmation ------------------------------------------------------
def test_sealed_rows_open_only_for_the_same_person_school_and_session(app: Anxin, school: School) -> None:
    rows = read_roster(updated_roster(school))
    token = seal_rows(app, ADMIN, school.id, rows, "session-1")

    assert open_rows(app, ADMIN, school.id, token, "session-1") == rows
    assert "陈新生".encode() not in token.encode() and b"2026005" not in token.encode()
    for actor, sid, context in [
        (school.admin, school.id, "session-2"),
        (school.principal, school.id, "session-1"),
        (ADMIN, "another-school", "session-1"),
    ]:
        with pytest.raises(InvalidInput, match="预览已失效"):
            open_rows(app, actor, sid, token, context)
    tampered = token[:40] + ("A" if token[40] != "A" else "B") + token[41:]
    with pytest.raises(InvalidInput, match="预览已失效"):
        open_rows(app, ADMIN, school.id, tampered, "session-1")
