"""Finding a student by what people type: the name, its pinyin or initials (and their
beginnings), the student number (and its beginning), through a keyed blind index
(projections/student_names.py) that never holds any of them in clear."""

from __future__ import annotations

from datetime import date

import pytest
from conftest import ADMIN, Clock, School, Store, make_school
from sqlalchemy import text, update
from store_support import raw_bytes

from anxin.service import Anxin
from domain.common import PermissionDenied
from projections import student_names as sn
from projections.runner import view_schema

# conftest's school: 张小明 2026001, 李小红 2026002 (七年级1班); 王小刚 2026003, 赵小丽 2026004 (七年级2班)
S1, S2, S3, S4 = "2026001", "2026002", "2026003", "2026004"


def enrol(app: Anxin, school: School, no: str, name: str, class_name: str = "七年级2班") -> str:
    return app.roster.enrol_student(
        ADMIN,
        school_id=school.id,
        student_no=no,
        name=name,
        gender="男",
        birth_date=date(2013, 3, 3),
        grade="七年级",
        class_name=class_name,
    )


def ids(app: Anxin, school: School, query: str, who: str = "counselor", **kw: object) -> list[str]:
    return [r.id for r in sn.search_students(app, getattr(school, who), school.id, query, **kw)]  # type: ignore[arg-type]


def access_rows(app: Anxin, actor_id: str) -> list[tuple[str, int]]:
    return [
        (r[0], r[1])
        for r in app.db.fetch("SELECT action, allowed FROM {t}anxin_access WHERE actor_id = ? ORDER BY id", (actor_id,))
    ]


# -- spellings ----------------------------------------------------------------------------------
def test_a_name_is_spelled_in_pinyin_whole_by_initials_and_by_its_parts() -> None:
    [zhang] = sn.spellings("张小明")
    assert (zhang.full, zhang.initials, zhang.surname, zhang.given, zhang.given_initials) == (
        "zhangxiaoming",
        "zxm",
        "zhang",
        "xiaoming",
        "xm",
    )
    assert [s.full for s in sn.spellings("欧阳明月")] == ["ouyangmingyue"]  # 复姓
    assert [s.initials for s in sn.spellings("尉迟恭")] == ["ycg"]
    assert [s.full for s in sn.spellings("吕布")] == ["lvbu", "lubu"]  # ü as v and as u
    assert [s.full for s in sn.spellings("Ali Khan")] == ["alikhan"]


@pytest.mark.parametrize(
    ("name", "surname_reading", "everyday"),
    [("单雄信", "shan", "dan"), ("曾小贤", "zeng", "ceng"), ("解晓东", "xie", "jie"), ("仇大山", "qiu", "chou")],
)
def test_a_polyphonic_surname_is_spelled_as_a_surname_first_and_as_usually_read_too(
    name: str, surname_reading: str, everyday: str
) -> None:
    assert [s.surname for s in sn.spellings(name)] == [surname_reading, everyday]


# -- the search ---------------------------------------------------------------------------------
def test_students_are_found_by_pinyin_initials_and_their_beginnings(app: Anxin, school: School) -> None:
    s1 = school.student(S1)
    for typed in ("zhangxiaoming", "ZhangXiaoMing", "zhang xiao ming", "zxm", "ZXM", "zhangx", "zhan", "xiaoming"):
        assert ids(app, school, typed) == [s1], typed
    assert ids(app, school, "zhangxiaominga") == []  # more than the name
    assert ids(app, school, "xm") == [s1]  # the given name's initials
    assert ids(app, school, "zhao") == [school.student(S4)]  # 赵小丽
    # "z" begins both 张 and 赵: both, 七年级1班 first
    assert ids(app, school, "z") == ids(app, school, "zx") == [s1, school.student(S4)]
    # the written name's beginning
    assert ids(app, school, "张小") == [s1]


def test_the_closest_fit_comes_first(app: Anxin, school: School) -> None:
    s1 = school.student(S1)
    zs = enrol(app, school, "2026010", "张三")
    zsf = enrol(app, school, "2026011", "张三丰")
    zhou = enrol(app, school, "2026012", "周顺", "七年级1班")
    assert ids(app, school, "zhangsan") == [zs, zsf]  # the whole pinyin before a beginning of one
    # initials exactly (周顺 and 张三, by class), then a beginning of initials (张三丰: zsf)
    assert ids(app, school, "zs") == [zhou, zs, zsf]
    assert ids(app, school, "zs", limit=2) == [zhou, zs]
    assert ids(app, school, "zha") == [s1, school.student(S4), zs, zsf]  # 张, 赵 (zhao): by class, number
    assert ids(app, school, "张三") == [zs, zsf]
    assert ids(app, school, "zhang")[:1] in ([s1], [zs], [zsf])  # every 张 is a surname fit (rank 1)


def test_a_polyphonic_surname_is_found_both_ways(app: Anxin, school: School) -> None:
    shan = enrol(app, school, "2026020", "单雄信")
    zeng = enrol(app, school, "2026021", "曾小贤")
    assert ids(app, school, "shanxiongxin") == [shan]
    assert ids(app, school, "sxx") == [shan]
    assert ids(app, school, "danxiongxin") == [shan]  # as 单 is usually read: people type that too
    assert ids(app, school, "zengx") == [zeng]
    assert ids(app, school, "zxx") == [zeng]


def test_students_are_found_by_their_number_and_its_beginning(app: Anxin, school: School) -> None:
    assert ids(app, school, "2026003") == [school.student(S3)]
    assert ids(app, school, " ２０２６００３ ") == [school.student(S3)]  # full-width digits, spaces
    assert set(ids(app, school, "2026")) == set(school.students.values())
    assert set(ids(app, school, "202600")) == set(school.students.values())
    assert ids(app, school, "202") == []  # fewer than NUMBER_PREFIX characters: not indexed
    assert ids(app, school, "20260031") == []
    other = make_school(app, "第二中学")  # the same numbers in another school are that school's
    assert ids(app, other, "2026003") == [other.student(S3)]


def test_a_class_teacher_finds_by_pinyin_or_number_only_in_their_class(app: Anxin, school: School) -> None:
    assert ids(app, school, "zxm", "teacher") == [school.student(S1)]
    assert ids(app, school, "wxg", "teacher") == []  # 王小刚 is in 七年级2班
    assert ids(app, school, "2026003", "teacher") == []
    assert set(ids(app, school, "2026", "teacher")) == {school.student(S1), school.student(S2)}
    assert access_rows(app, school.teacher.staff_id)[-1] == ("student.read", 1)
    with pytest.raises(PermissionDenied):
        ids(app, school, "wxg", "supervisor")
    assert access_rows(app, school.supervisor.staff_id)[-1] == ("student.read", 0)


def test_every_search_is_one_recorded_decision(app: Anxin, school: School) -> None:
    before = len(access_rows(app, school.counselor.staff_id))
    ids(app, school, "z")
    ids(app, school, "zx")
    assert access_rows(app, school.counselor.staff_id)[before:] == [("student.read", 1)] * 2


def test_a_student_who_left_is_left_out_of_a_pick_but_found_by_the_search(app: Anxin, school: School) -> None:
    s2 = school.student(S2)
    app.roster.leave_student(ADMIN, s2, "转学")
    assert ids(app, school, "lxh") == [s2]
    assert ids(app, school, "lxh", active_only=True) == []
    assert [(r.id, rank) for r, rank in sn.ranked_students(app, school.counselor, school.id, "zxm")] == [
        (school.student(S1), 0)
    ]


def test_a_corrected_name_keeps_the_number_and_changes_the_pinyin(app: Anxin, school: School) -> None:
    s1 = school.student(S1)
    app.roster.correct_student(ADMIN, s1, {"name": "章晓明"}, "身份证姓名为准")
    assert ids(app, school, "zhangxiaoming") == [s1]  # 章 is also zhang
    assert ids(app, school, "2026001") == [s1]
    assert ids(app, school, "张小") == []
    app.roster.correct_student(ADMIN, s1, {"name": "李晓明"}, "更正")
    assert ids(app, school, "zxm") == []
    assert set(ids(app, school, "lxm")) == {s1}
    assert ids(app, school, "2026001") == [s1]


def test_a_shredded_student_is_found_no_way(app: Anxin, school: School) -> None:
    s1 = school.student(S1)
    app.erasure.shred(ADMIN, s1, "保存期限届满")
    assert ids(app, school, "zxm") == ids(app, school, "2026001") == []
    app.views.rebuild([sn.NAMES])
    assert ids(app, school, "zxm") == ids(app, school, "2026001") == []


# -- nothing in clear -----------------------------------------------------------------------------
def test_no_pinyin_initials_or_number_is_in_the_raw_database(store: Store, app: Anxin, school: School) -> None:
    enrol(app, school, "XQ-889977", "单雄信")
    assert ids(app, school, "sxx") and ids(app, school, "xq-8899")
    raw = raw_bytes(store)
    assert "七年级1班".encode() in raw  # the scan sees clear text where there is some
    spelled = [
        w
        for name in ("张小明", "李小红", "王小刚", "赵小丽", "单雄信")
        for s in sn.spellings(name)
        for w in (s.full, s.given)
    ]
    assert "shanxiongxin" in spelled
    found = [w for w in spelled + ["xq-889977", "XQ-889977", "xq-8899"] if w.encode() in raw]
    assert found == []


# -- existing stores get the index ----------------------------------------------------------------
def test_a_store_folded_with_the_old_name_index_is_indexed_anew_when_opened(
    store: Store, clock: Clock, app: Anxin, school: School
) -> None:
    # given a store whose name index has the shape it had before (full name, surname and
    # given name tokens only), as an older Anxin left it
    with app.views.engine.begin() as conn:
        conn.execute(text("DROP TABLE v_student_names"))
        conn.execute(
            text(
                "CREATE TABLE v_student_names (token VARCHAR(64) NOT NULL, student_id VARCHAR(36) NOT NULL, "
                "school_id VARCHAR(36) NOT NULL, PRIMARY KEY (token, student_id))"
            )
        )
        conn.execute(update(view_schema).where(view_schema.c.view == sn.NAMES).values(signature="old-shape"))
    app.close()
    store.apps.remove(app)

    # when it is opened by this version
    again = store.open(clock)

    # then the index is made anew from the events: pinyin, initials and numbers are found
    assert ids(again, school, "zxm") == [school.student(S1)]
    assert ids(again, school, "2026003") == [school.student(S3)]
    assert ids(again, school, "张小明") == [school.student(S1)]
