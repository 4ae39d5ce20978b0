"""Screenings through the application, on SQLite and PostgreSQL: the all-or-nothing
CSV import that names every bad line, totals, bands and flags, the support files a
crisis or a flagged result opens or raises (in the same transaction), re-imports,
coverage of the school year, and who may see results."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from conftest import ADMIN, Clock, School, Store, make_school

from anxin.commands.screenings import ImportResult
from anxin.service import Anxin
from domain.common import InvalidInput, PermissionDenied
from domain.policy import Policy
from domain.screening import ImportRejected, ScreeningRecord
from domain.support import SupportFile

HEADER = "student_no,instrument,date," + ",".join(f"item{i}" for i in range(1, 10))
CALM = "0,1,0,1,0,0,1,0,0"  # PHQ-9 total 3, minimal
MODERATE = "2,2,2,1,1,1,1,1,0"  # PHQ-9 total 11, moderate: flagged
CRISIS = "1,0,0,0,0,0,0,0,2"  # PHQ-9 total 3, but item 9 > 0
GAD_SEVERE = "3,3,3,3,2,2,0,,"  # GAD-7 total 16, severe


def csv(*rows: str, header: str = HEADER) -> str:
    return "\n".join([header, *rows]) + "\n"


def event_count(app: Anxin) -> int:
    return app.recorder.max_notification_id() or 0


def state(app: Anxin) -> tuple[int, list[tuple[Any, ...]]]:
    return event_count(app), app.db.fetch("SELECT * FROM {t}anxin_directory ORDER BY stream_id")


def files_of(app: Anxin, school: School) -> dict[str, SupportFile]:
    return {
        line.student_id: app.support.get_support_file(school.principal, line.file_id)
        for line in app.support.support_register(school.principal, school.id)
    }


# -- a good import ---------------------------------------------------------------------------
def test_an_import_computes_totals_bands_and_flags_for_every_row(app: Anxin, school: School) -> None:
    # when the counselor imports a class's results
    result = app.screenings.import_screenings(
        school.counselor,
        school.id,
        csv(
            f"2026001,PHQ-9,2026-10-10,{CALM}",
            f"2026002,PHQ-9,2026/10/10,{MODERATE}",
            f"2026003,gad-7,2026-10-11,{GAD_SEVERE}",
        ),
    )
    # then every row is recorded with its total, band and flag
    assert (result.imported, result.flagged, result.crisis) == (3, 2, 0)
    got = {
        no: app.screenings.student_screenings(school.counselor, school.student(no))
        for no in ("2026001", "2026002", "2026003")
    }
    assert [(s["instrument"], s["total"], s["band"], s["flagged"], s["crisis"]) for s in got["2026001"]] == [
        ("PHQ-9", 3, "minimal", False, False)
    ]
    assert (got["2026002"][0]["total"], got["2026002"][0]["band"], got["2026002"][0]["screened_on"]) == (
        11,
        "moderate",
        date(2026, 10, 10),
    )
    assert got["2026002"][0]["answers"] == [2, 2, 2, 1, 1, 1, 1, 1, 0]
    assert [(s["instrument"], s["total"], s["band"]) for s in got["2026003"]] == [("GAD-7", 16, "severe")]
    # and each student's year is one stream, keyed on (student, school year), holding no name
    rid = str(app.screenings.screening_record_id(school.student("2026001"), 2026))
    assert app.db.fetchone(
        "SELECT kind, school_id, subject_id FROM {t}anxin_directory WHERE stream_id = ?", (rid,)
    ) == ("screening", school.id, school.student("2026001"))


def test_a_flagged_result_opens_a_key_file_held_by_the_importing_counselor(app: Anxin, school: School) -> None:
    result = app.screenings.import_screenings(school.counselor, school.id, csv(f"2026002,PHQ-9,2026-10-10,{MODERATE}"))
    assert (result.files_opened, result.files_raised, result.crisis_student_ids) == (1, 0, [])
    f = files_of(app, school)[school.student("2026002")]
    assert (f.risk_level, f.category, f.origin, f.responsible_id) == (
        "key",
        "情绪困扰",
        "screening",
        school.counselor.staff_id,
    )
    assert "PHQ-9" in f.open_reason and "总分 11" in f.open_reason
    # and the link is kept on both sides
    rid = str(app.screenings.screening_record_id(school.student("2026002"), 2026))
    assert f.source is not None and (f.source["kind"], f.source["id"]) == ("screening", rid)
    assert app.screenings.student_screenings(school.counselor, school.student("2026002"))[0]["support_file_id"] == str(
        f.id
    )
    assert result.file_ids == [str(f.id)]


def test_a_crisis_row_opens_a_high_risk_file_and_is_put_in_front_of_counselors(app: Anxin, school: School) -> None:
    # when a row has a crisis signal (PHQ-9 item 9 above 0) with a low total
    result = app.screenings.import_screenings(
        school.counselor,
        school.id,
        csv(
            f"2026001,PHQ-9,2026-10-10,{CRISIS}",
            f"2026003,PHQ-9,2026-10-10,{CALM}",
        ),
    )
    # then a 高危 file is opened for that student, and the student is named in the result
    assert (result.crisis, result.files_opened, result.crisis_student_ids) == (1, 1, [school.student("2026001")])
    f = files_of(app, school)[school.student("2026001")]
    assert (f.risk_level, f.category, f.status) == ("high", "自伤风险", "open")
    assert "危机信号" in f.open_reason
    assert app.screenings.student_screenings(school.counselor, school.student("2026001"))[0]["crisis"] is True
    # and nothing is opened for the calm row
    assert school.student("2026003") not in files_of(app, school)


def test_a_crisis_raises_the_level_of_an_existing_open_file(app: Anxin, school: School) -> None:
    # given a 一般关注 file held by the other counselor
    fid = app.support.open_support_file(
        school.other_counselor, school.student("2026001"), category="学业压力", risk_level="general", reason="考试焦虑"
    )
    # when an import shows a crisis for that student
    result = app.screenings.import_screenings(school.counselor, school.id, csv(f"2026001,PHQ-9,2026-10-10,{CRISIS}"))
    # then the same file is raised to 高危 (no second file), still held by its counselor,
    # and the crisis pathway opens on it
    assert (result.files_opened, result.files_raised, result.crises_opened) == (0, 1, 1)
    f = app.support.get_support_file(school.other_counselor, fid)
    assert (f.risk_level, f.responsible_id, f.version) == ("high", school.other_counselor.staff_id, 3)
    assert f.crisis is not None and f.crisis["trigger"] == "screening"
    assert f.risk_history[-1]["from"] == "general" and "危机信号" in f.risk_history[-1]["reason"]
    assert len(app.support.support_register(school.principal, school.id)) == 1


def test_a_flagged_result_does_not_lower_or_touch_a_file_already_at_or_above_its_level(
    app: Anxin, school: School
) -> None:
    fid = app.support.open_support_file(
        school.counselor, school.student("2026002"), category="情绪困扰", risk_level="high", reason="既往自伤史"
    )
    result = app.screenings.import_screenings(school.counselor, school.id, csv(f"2026002,PHQ-9,2026-10-10,{MODERATE}"))
    assert (result.flagged, result.files_opened, result.files_raised, result.file_ids) == (1, 0, 0, [])
    assert app.support.get_support_file(school.counselor, fid).version == 1
    assert app.screenings.student_screenings(school.counselor, school.student("2026002"))[0]["support_file_id"] == fid


def test_several_results_of_one_student_open_one_file_at_the_highest_level(app: Anxin, school: School) -> None:
    result = app.screenings.import_screenings(
        school.counselor,
        school.id,
        csv(
            f"2026004,GAD-7,2026-10-10,{GAD_SEVERE}",
            f"2026004,PHQ-9,2026-10-10,{CRISIS}",
        ),
    )
    assert (result.imported, result.files_opened) == (2, 1)
    f = files_of(app, school)[school.student("2026004")]
    assert (f.risk_level, f.category) == ("high", "自伤风险")
    assert "GAD-7" in f.open_reason and "PHQ-9" in f.open_reason


def test_an_import_saves_every_record_and_file_in_one_save(
    app: Anxin, school: School, monkeypatch: pytest.MonkeyPatch
) -> None:
    saves: list[list[str]] = []
    original = app.commit

    def counting(*aggregates: Any, **kw: Any) -> None:
        saves.append(sorted(type(a).__name__ for a in aggregates))
        original(*aggregates, **kw)

    monkeypatch.setattr(app, "commit", counting)
    app.screenings.import_screenings(
        school.counselor,
        school.id,
        csv(
            f"2026001,PHQ-9,2026-10-10,{CRISIS}",
            f"2026002,PHQ-9,2026-10-10,{MODERATE}",
            f"2026003,PHQ-9,2026-10-10,{CALM}",
        ),
    )
    assert saves == [["ScreeningRecord"] * 3 + ["SupportFile"] * 2]


def test_a_failed_save_leaves_no_record_and_no_file(
    app: Anxin, school: School, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a store that fails while saving (after records and files are built)
    before = state(app)
    original = app.events.put

    def failing(events: Any, **kw: Any) -> Any:
        raise RuntimeError("disk full")

    monkeypatch.setattr(app.events, "put", failing)
    monkeypatch.setattr(app, "save", lambda *a, **k: failing(a))
    with pytest.raises(RuntimeError):
        app.screenings.import_screenings(school.counselor, school.id, csv(f"2026001,PHQ-9,2026-10-10,{CRISIS}"))
    monkeypatch.setattr(app.events, "put", original)
    # then nothing at all was written
    assert state(app) == before


def test_a_later_screening_of_the_same_year_appends_to_the_students_record(
    app: Anxin, school: School, clock: Clock
) -> None:
    app.screenings.import_screenings(school.counselor, school.id, csv(f"2026001,PHQ-9,2026-10-10,{CALM}"))
    clock.advance(days=30)
    result = app.screenings.import_screenings(
        school.counselor, school.id, csv(f"2026001,PHQ-9,2026-11-10,{CALM}", f"2026001,GAD-7,2026-11-10,{GAD_SEVERE}")
    )
    assert result.imported == 2
    rid = app.screenings.screening_record_id(school.student("2026001"), 2026)
    rec = app.load(rid, ScreeningRecord)
    assert (
        rec.version == 4
        and [s["screened_on"] for s in rec.screenings] == [date(2026, 10, 10)] + [date(2026, 11, 10)] * 2
    )
    # and a screening in the next school year is another stream
    clock.advance(days=330)
    app.screenings.import_screenings(school.counselor, school.id, csv(f"2026001,PHQ-9,2027-09-20,{CALM}"))
    assert app.load(app.screenings.screening_record_id(school.student("2026001"), 2027), ScreeningRecord).version == 2
    assert len(app.screenings.student_screenings(school.counselor, school.student("2026001"))) == 4


# -- a bad import: nothing applied, every bad line named ----------------------------------------
def test_a_half_valid_file_applies_nothing_and_names_every_bad_line(app: Anxin, school: School) -> None:
    # given a file where some rows are good and some are bad in every way
    before = state(app)
    text = csv(
        f"2026001,PHQ-9,2026-10-10,{CRISIS}",  # 2 good (a crisis!)
        f"2099999,PHQ-9,2026-10-10,{CALM}",  # 3 unknown student number
        f"2026002,PHQ-8,2026-10-10,{CALM}",  # 4 unknown instrument
        f"2026002,PHQ-9,2026-13-40,{CALM}",  # 5 bad date
        f"2026003,PHQ-9,2026-10-13,{CALM}",  # 6 in the future
        "2026003,PHQ-9,2026-10-10,1,1,1,1,1,1,1,1,",  # 7 eight answers for nine items
        "2026004,GAD-7,2026-10-10,1,1,1,4,1,1,1,,",  # 8 an answer out of range
        f"2026002,PHQ-9,2026-10-10,{MODERATE}",  # 9 good
        "",  # 10 a blank line is skipped
        f"2026001,PHQ-9,2026-10-10,{CALM}",  # 11 duplicate of line 2
        "2026004,GAD-7,2026-10-10,1,x,1,1,1,1,1,,",  # 12 not a number
        f",PHQ-9,2026-10-10,{CALM}",  # 13 no student number
    )
    # when it is imported
    with pytest.raises(ImportRejected) as e:
        app.screenings.import_screenings(school.counselor, school.id, text)
    # then every bad line is named with a reason a person understands
    errors = dict(e.value.errors)
    assert sorted(errors) == [3, 4, 5, 6, 7, 8, 11, 12, 13]
    assert "2099999" in errors[3] and "不是本校学生" in errors[3]
    assert "PHQ-8" in errors[4]
    assert "2026-13-40" in errors[5]
    assert "晚于今天" in errors[6]
    assert "应有 9 题" in errors[7]
    assert "超出范围" in errors[8] and "第 4 题" in errors[8]
    assert "第 2 行" in errors[11]
    assert "「x」" in errors[12]
    assert "学号为空" in errors[13]
    assert e.value.code == "import_rejected" and "9 行" in e.value.text
    # and nothing was applied: no record, no file, no event
    assert state(app) == before
    assert app.support.support_register(school.counselor, school.id) == []


def test_a_row_with_several_problems_lists_them_all(app: Anxin, school: School) -> None:
    with pytest.raises(ImportRejected) as e:
        app.screenings.import_screenings(school.counselor, school.id, csv("2099999,XYZ,someday,1"))
    ((line, reason),) = e.value.errors
    assert line == 2 and "2099999" in reason and "XYZ" in reason and "someday" in reason


def test_re_importing_the_same_file_is_refused_and_never_duplicates(app: Anxin, school: School) -> None:
    text = csv(f"2026001,PHQ-9,2026-10-10,{CRISIS}", f"2026002,PHQ-9,2026-10-10,{MODERATE}")
    app.screenings.import_screenings(school.counselor, school.id, text)
    before = state(app)
    with pytest.raises(ImportRejected) as e:
        app.screenings.import_screenings(school.counselor, school.id, text)
    assert [line for line, _ in e.value.errors] == [2, 3]
    assert all("已导入过" in reason for _, reason in e.value.errors)
    assert state(app) == before
    assert len(app.screenings.student_screenings(school.counselor, school.student("2026001"))) == 1


def test_a_row_for_a_student_who_has_left_is_refused(app: Anxin, school: School) -> None:
    app.roster.leave_student(ADMIN, school.student("2026004"), "转学")
    with pytest.raises(ImportRejected) as e:
        app.screenings.import_screenings(school.counselor, school.id, csv(f"2026004,PHQ-9,2026-10-10,{CALM}"))
    assert e.value.errors == [(2, "学号「2026004」的学生已离校")]


def test_a_student_of_another_school_is_unknown_here(app: Anxin, school: School) -> None:
    other = make_school(app, "第二中学")  # same student numbers, other students
    app.screenings.import_screenings(other.counselor, other.id, csv(f"2026001,PHQ-9,2026-10-10,{CALM}"))
    assert app.screenings.student_screenings(school.counselor, school.student("2026001")) == []
    assert len(app.screenings.student_screenings(other.counselor, other.student("2026001"))) == 1


@pytest.mark.parametrize(
    "text",
    [
        "",
        "学号,量表,日期\n2026001,PHQ-9,2026-10-10\n",
        "student_no,instrument,date,item2\n",
        "student_no,instrument,date\n",
    ],
)
def test_a_file_without_our_header_is_refused_on_line_1(app: Anxin, school: School, text: str) -> None:
    with pytest.raises(ImportRejected) as e:
        app.screenings.import_screenings(school.counselor, school.id, text)
    assert e.value.errors[0][0] == 1 and "表头" in e.value.errors[0][1]


def test_a_file_with_only_a_header_is_refused(app: Anxin, school: School) -> None:
    with pytest.raises(ImportRejected) as e:
        app.screenings.import_screenings(school.counselor, school.id, "\ufeff" + csv())
    assert e.value.errors == [(1, "文件中没有数据行")]


# -- a single screening by hand --------------------------------------------------------------
def test_a_single_screening_follows_the_same_rules(app: Anxin, school: School) -> None:
    result = app.screenings.record_screening(
        school.counselor,
        school.student("2026003"),
        instrument="PHQ-9",
        screened_on=date(2026, 10, 11),
        answers=[1, 0, 0, 0, 0, 0, 0, 0, 1],
    )
    assert isinstance(result, ImportResult) and (result.crisis, result.files_opened) == (1, 1)
    with pytest.raises(InvalidInput) as e:
        app.screenings.record_screening(
            school.counselor,
            school.student("2026003"),
            instrument="PHQ-9",
            screened_on=date(2026, 10, 11),
            answers=[0] * 9,
        )
    assert "已导入过" in e.value.text
    with pytest.raises(InvalidInput):
        app.screenings.record_screening(
            school.counselor,
            school.student("2026003"),
            instrument="PHQ-9",
            screened_on=date(2026, 10, 11),
            answers=[0] * 7,
        )


# -- the gate --------------------------------------------------------------------------------
@pytest.mark.parametrize("who", ["teacher", "safety", "admin", "supervisor"])
def test_only_counselors_and_the_principal_import(app: Anxin, school: School, who: str) -> None:
    before = state(app)
    with pytest.raises(PermissionDenied):
        app.screenings.import_screenings(getattr(school, who), school.id, csv(f"2026001,PHQ-9,2026-10-10,{CALM}"))
    assert state(app) == before


def test_the_principal_imports_and_holds_the_files_it_opens(app: Anxin, school: School) -> None:
    result = app.screenings.import_screenings(school.principal, school.id, csv(f"2026001,PHQ-9,2026-10-10,{CRISIS}"))
    assert files_of(app, school)[school.student("2026001")].responsible_id == school.principal.staff_id
    assert result.files_opened == 1


def test_another_schools_counselor_cannot_import_here(app: Anxin, school: School) -> None:
    other = make_school(app, "第二中学")
    with pytest.raises(PermissionDenied):
        app.screenings.import_screenings(other.counselor, school.id, csv(f"2026001,PHQ-9,2026-10-10,{CALM}"))


def test_results_are_seen_by_the_schools_counselors_and_a_supervisor_only_with_a_reason(
    app: Anxin, school: School
) -> None:
    app.screenings.import_screenings(school.counselor, school.id, csv(f"2026001,PHQ-9,2026-10-10,{MODERATE}"))
    sid = school.student("2026001")
    assert len(app.screenings.student_screenings(school.other_counselor, sid)) == 1
    assert len(app.screenings.student_screenings(school.principal, sid)) == 1
    for who in (school.teacher, school.safety, ADMIN, school.supervisor):
        with pytest.raises(PermissionDenied):
            app.screenings.student_screenings(who, sid)
    assert len(app.screenings.student_screenings(school.supervisor, sid, break_glass="区级复核筛查预警名单")) == 1


# -- coverage --------------------------------------------------------------------------------
def test_coverage_counts_screened_students_per_class_and_names_who_is_missing(
    app: Anxin, school: School, clock: Clock
) -> None:
    # given three of four students screened this year (one of them twice)
    app.screenings.import_screenings(
        school.counselor,
        school.id,
        csv(
            f"2026001,PHQ-9,2026-10-10,{CALM}",
            f"2026001,GAD-7,2026-10-10,{GAD_SEVERE}",
            f"2026002,PHQ-9,2026-10-10,{CALM}",
            f"2026003,PHQ-9,2026-10-10,{CALM}",
        ),
    )
    # then coverage counts students, per class, and names the one not screened
    cov = app.screenings.screening_coverage(school.counselor, school.id)
    assert (cov.school_year, cov.enrolled, cov.screened, cov.not_screened) == (2026, 4, 3, [school.student("2026004")])
    assert {k: (v.enrolled, v.screened) for k, v in cov.per_class.items()} == {"七年级1班": (2, 2), "七年级2班": (2, 1)}
    assert cov.rate == 0.75
    # and a student who left no longer counts
    app.roster.leave_student(ADMIN, school.student("2026004"), "转学")
    cov = app.screenings.screening_coverage(school.counselor, school.id)
    assert (cov.enrolled, cov.screened, cov.not_screened) == (3, 3, [])
    # and next school year starts from zero
    cov = app.screenings.screening_coverage(school.counselor, school.id, 2027)
    assert (cov.school_year, cov.screened, len(cov.not_screened)) == (2027, 0, 3)
    with pytest.raises(PermissionDenied):
        app.screenings.screening_coverage(school.teacher, school.id)


# -- configuration and scale ------------------------------------------------------------------
def test_a_regions_instruments_and_threshold_come_from_its_policy(store: Store, clock: Clock) -> None:
    # given a region that flags PHQ-9 only from "severe" and uses its own five-item scale
    phq = {
        "id": "PHQ-9",
        "name": "PHQ-9",
        "items": 9,
        "item_range": [0, 3],
        "flag_from": "severe",
        "bands": [
            {"name": "minimal", "min": 0, "max": 4},
            {"name": "mild", "min": 5, "max": 9},
            {"name": "moderate", "min": 10, "max": 14},
            {"name": "moderately_severe", "min": 15, "max": 19},
            {"name": "severe", "min": 20, "max": 27},
        ],
        "crisis": {"item": 9, "above": 0},
    }
    own = {
        "id": "MH-5",
        "name": "五项简表",
        "items": 5,
        "item_range": [1, 4],
        "flag_from": "high",
        "bands": [{"name": "low", "min": 5, "max": 14}, {"name": "high", "min": 15, "max": 20}],
    }
    app = Anxin(store.config, [store.master_key], Policy.from_mapping({"screening_instruments": [phq, own]}), clock)
    store.apps.append(app)
    school = make_school(app)
    # when results are imported
    result = app.screenings.import_screenings(
        school.counselor,
        school.id,
        csv(
            f"2026001,PHQ-9,2026-10-10,{MODERATE}",
            "2026002,MH-5,2026-10-10,4,4,4,3,1,,,,",
            "2026003,GAD-7,2026-10-10,0,0,0,0,0,0,0,,",
        ),
    )
    # then the region's threshold and instrument apply, and the defaults remain
    assert (result.imported, result.flagged, result.files_opened) == (3, 1, 1)
    (s,) = app.screenings.student_screenings(school.counselor, school.student("2026002"))
    assert (s["instrument"], s["total"], s["band"], s["flagged"]) == ("MH-5", 16, "high", True)


def test_an_import_of_a_whole_grade_is_one_batch(app: Anxin, school: School) -> None:
    # given a grade of 300 students
    students = [
        app.roster._new_student(
            ADMIN,
            school.id,
            {
                "student_no": f"G{i:04d}",
                "name": f"学生{i}",
                "gender": "男",
                "birth_date": date(2013, 1, 1),
                "grade": "七年级",
                "class_name": f"七年级{3 + i % 6}班",
            },
        )
        for i in range(300)
    ]
    app.save_many(students)
    before = event_count(app)
    # when their screening is imported, every 50th with a crisis
    rows = [f"G{i:04d},PHQ-9,2026-10-10," + (CRISIS if i % 50 == 0 else CALM) for i in range(300)]
    result = app.screenings.import_screenings(school.counselor, school.id, csv(*rows))
    # then all are recorded (two events each: the year's record opened, the result) plus six
    # files, each opened with its crisis
    assert (result.imported, result.crisis, result.files_opened, result.crises_opened) == (300, 6, 6, 6)
    assert event_count(app) - before == 300 * 2 + 6 * 2
    cov = app.screenings.screening_coverage(school.counselor, school.id)
    assert (cov.enrolled, cov.screened) == (304, 300)
    # and a second instrument for the same students loads their records in bulk and appends
    rows = [f"G{i:04d},GAD-7,2026-10-11,0,0,0,0,0,0,0,," for i in range(300)]
    assert app.screenings.import_screenings(school.counselor, school.id, csv(*rows)).imported == 300
    assert event_count(app) - before == 300 * 3 + 6 * 2


def test_cells_beyond_the_header_are_refused_unless_empty(app: Anxin, school: School) -> None:
    with pytest.raises(ImportRejected) as e:
        app.screenings.import_screenings(
            school.counselor, school.id, csv(f"2026001,PHQ-9,2026-10-10,{CALM},,", f"2026002,PHQ-9,2026-10-10,{CALM},3")
        )
    assert [line for line, _ in e.value.errors] == [3] and "列数多于表头" in e.value.errors[0][1]
