"""One bad record is set aside, never everything. When one byte of one student's
stored event (its last byte) or of their wrapped data key is flipped, that student's
stream fails authentication: it is quarantined (ids and codes only, in
`anxin_quarantine`), shown as 无法读取, and every other student keeps serving, in the
application, on the command line and on the pages; a page that opens a damaged stream
answers with a clear error; a rebuild of the views completes and names what it skipped.
Every test runs on SQLite and on PostgreSQL, once with a damaged event and once with a
damaged key."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import pytest
from conftest import ADMIN, Clock, School, Store
from fastapi.testclient import TestClient
from health_support import cli, damage
from store_support import Raw
from web_support import Browser

from anxin import audit
from anxin.passwords import hash_password
from anxin.quarantine import UNREADABLE_LABEL, Unreadable
from anxin.service import Anxin
from projections.timeline import search_students, timeline
from web.app import create_app

BAD = "2026002"  # 李小红, 七年级1班
OTHERS = {"2026001": "张小明", "2026003": "王小刚", "2026004": "赵小丽"}
PASSWORD = "quarantine-test-9"


@pytest.fixture(params=["event", "key"])
def what(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def quarantined(app: Anxin) -> list[tuple[object, ...]]:
    return app.db.fetch("SELECT stream_id, kind, school_id, version, failed FROM {t}anxin_quarantine")


# -- the application --------------------------------------------------------------------------------
def test_the_other_students_still_list_and_the_bad_one_is_quarantined(
    store: Store, app: Anxin, school: School, clock: Clock, what: str
) -> None:
    # given one student's event (or wrapped key) altered in the database
    bad = school.student(BAD)
    damage(store, app, bad, what)

    # when a process opens the store (its views catch up) and lists the school
    fresh = store.open(clock)
    refs = fresh.roster.list_students(school.principal, school.id)

    # then every other student is listed by name, the bad one as 无法读取 (not as erased)
    assert {r.student_no: r.name for r in refs if not r.unreadable} == OTHERS
    [unreadable] = [r for r in refs if r.unreadable]
    assert (unreadable.id, unreadable.name, unreadable.class_name, unreadable.erased) == (
        bad,
        UNREADABLE_LABEL,
        "七年级1班",
        False,
    )
    # and the stream is quarantined once, by ids and codes only
    assert quarantined(fresh) == [(bad, "student", school.id, 1 if what == "event" else 0, what)]
    # and reading that very student is refused with a clear error, the others still read
    with pytest.raises(Unreadable):
        fresh.roster.get_student(school.principal, bad)
    assert fresh.roster.get_student(school.principal, school.student("2026001")).name == "张小明"
    assert fresh.student_ref(bad).name == UNREADABLE_LABEL


def test_a_rebuild_completes_skips_the_bad_stream_and_names_it(
    store: Store, app: Anxin, school: School, clock: Clock, what: str
) -> None:
    # given a pairing of another student, and one student's event (or key) altered
    good = school.student("2026001")
    app.pairings.pair(school.principal, staff_id=school.teacher.staff_id, student_id=good)
    bad = school.student(BAD)
    damage(store, app, bad, what)

    # when the views are rebuilt from the log
    fresh = store.open(clock)
    fresh.views.rebuild()

    # then it completed: every view is at the log's head, and it names the stream it skipped
    head = fresh.recorder.max_notification_id()
    assert set(fresh.views.positions().values()) == {head}
    assert fresh.views.skipped == {bad: 1}
    # and the views serve the rest: a name search, another student's timeline
    assert [r.name for r in search_students(fresh, school.principal, school.id, "张小明")] == ["张小明"]
    labels = [e.label for e in timeline(fresh, school.principal, good).entries]
    assert labels == ["入学登记", "一岗双带结对"]
    # and the next process opens the store as usual
    assert store.open(clock).roster.list_students(school.principal, school.id)[0].unreadable


def test_the_timeline_of_the_bad_student_marks_its_entries_unreadable(
    store: Store, app: Anxin, school: School, clock: Clock, what: str
) -> None:
    # given a student with two events (enrolled, corrected), the first altered (or their key)
    bad = school.student(BAD)
    app.roster.correct_student(ADMIN, bad, {"grade": "八年级"}, reason="升级")
    damage(store, app, bad, what)

    # when their timeline is read
    line = timeline(store.open(clock), school.principal, bad)

    # then it answers: the altered entries are unreadable (not erased), the rest shown
    unreadable = [e.event_type for e in line.entries if e.unreadable]
    shown = [e.details for e in line.entries if not e.unreadable]
    assert line.name == UNREADABLE_LABEL and not any(e.erased for e in line.entries)
    if what == "event":
        assert unreadable == ["Enrolled"]
        assert len(shown) == 1 and shown[0] is not None and shown[0]["reason"] == "升级"
    else:
        assert unreadable == ["Enrolled", "DetailsCorrected"] and shown == []


def test_the_break_glass_log_still_reads_and_a_new_break_glass_read_is_recorded(
    store: Store, app: Anxin, school: School, clock: Clock
) -> None:
    # given a supervisor's break-glass read of a student, whose wrapped key is then altered
    # (the stated reason was sealed under that student's key)
    bad = school.student(BAD)
    app.roster.get_student(school.supervisor, bad, break_glass="家长投诉需核实")
    damage(store, app, bad, "key")
    fresh = store.open(clock)

    # when the supervisor reads the break-glass log, then it answers, that reason unreadable
    [entry] = audit.break_glass_log(fresh, school.supervisor)
    assert entry["subject"] == bad and entry["break_glass"] == UNREADABLE_LABEL

    # when the supervisor tries again, then the read is refused as unreadable, and the
    # attempt, with its reason, is still in the trail
    with pytest.raises(Unreadable):
        fresh.roster.get_student(school.supervisor, bad, break_glass="再次核实家长反映的情况")
    assert [e["break_glass"] for e in audit.break_glass_log(fresh, school.supervisor)] == [
        "再次核实家长反映的情况",
        UNREADABLE_LABEL,
    ]


# -- the command line -----------------------------------------------------------------------------------
def test_the_command_line_lists_the_others_and_a_rebuild_names_the_stream(
    store: Store, app: Anxin, school: School, clock: Clock, what: str
) -> None:
    # given one student's event (or key) altered
    bad = school.student(BAD)
    damage(store, app, bad, what)

    # when the school's roster is listed, then the others are there, the bad one as unreadable
    r = cli(store, "roster", "list", "--school", "第一中学")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    for no, name in OTHERS.items():
        assert any(line.startswith(no) and name in line for line in lines), r.stdout
    assert [line for line in lines if "无法读取" in line and bad in line and "李小红" not in line]

    # when the views are rebuilt, then it completes and names the stream, its kind and school
    r = cli(store, "projections", "rebuild")
    assert r.returncode == 0, r.stderr
    [named] = [line for line in r.stdout.splitlines() if bad in line]
    assert "学生" in named and "第一中学" in named and school.id in named, r.stdout
    assert "跳过 1 条" in r.stdout
    # and the other commands still work after it
    assert cli(store, "summary").returncode == 0


# -- the pages ----------------------------------------------------------------------------------------
@contextmanager
def teacher_browser(store: Store, clock: Clock) -> Iterator[tuple[Anxin, Browser]]:
    """A fresh process serving the pages, with 七年级1班's class teacher logged in."""
    fresh = store.open(clock)
    with TestClient(create_app(fresh, background_seconds=None), base_url="http://testserver") as client:
        yield fresh, Browser(client, None).login("qteacher", PASSWORD)


def _class_teacher(app: Anxin, school: School) -> str:
    return app.roster.add_staff(
        ADMIN,
        username="qteacher",
        name="郑老师",
        school_id=school.id,
        roles=["class_teacher"],
        classes=["七年级1班"],
        password_hash=hash_password(PASSWORD),
    )


def test_the_pages_answer_and_show_the_bad_student_as_unreadable(
    store: Store, app: Anxin, school: School, clock: Clock, what: str
) -> None:
    # given a class teacher paired with the student whose event (or key) is then altered
    teacher = _class_teacher(app, school)
    bad = school.student(BAD)
    pid = app.pairings.pair(school.principal, staff_id=teacher, student_id=bad)
    damage(store, app, bad, what)

    with teacher_browser(store, clock) as (_, b):
        # then the class list shows the classmate by name and the bad student as unreadable
        page = b.get("/students")
        assert page.status_code == 200 and "张小明" in page.text and UNREADABLE_LABEL in page.text
        # and the pairing board and the pairing itself answer
        board = b.get("/pairings")
        assert board.status_code == 200 and UNREADABLE_LABEL in board.text
        pairing = b.get(f"/pairings/{pid}")
        assert pairing.status_code == 200 and UNREADABLE_LABEL in pairing.text
        # and the bad student's timeline answers, its entries marked unreadable
        line = b.get(f"/students/{bad}")
        assert line.status_code == 200 and UNREADABLE_LABEL in line.text and "李小红" not in line.text
        # and asking for that very student's record says why it cannot be read
        api = b.api("GET", f"/api/v1/students/{bad}")
        assert api.status_code == 503 and api.json()["error"]["code"] == "unreadable"
        # and the classmate's pages are untouched
        other = b.get(f"/students/{school.student('2026001')}")
        assert other.status_code == 200 and "张小明" in other.text


def test_a_page_that_opens_the_damaged_stream_answers_with_a_clear_error(
    store: Store, app: Anxin, school: School, clock: Clock, what: str
) -> None:
    # given a pairing with a check-in, whose stream (its check-in event, or its key) is then altered
    teacher = _class_teacher(app, school)
    pid = app.pairings.pair(school.principal, staff_id=teacher, student_id=school.student("2026001"))
    clock.advance(days=1)
    app.pairings.record_check_in(app.gate.actor(teacher), pid, held_on=clock.today, notes={"thinking": "最近睡得好"})
    raw = Raw(store, app)
    if what == "event":
        raw.flip_last_byte(pid, 2)
    else:
        damage(store, app, pid, "key")

    with teacher_browser(store, clock) as (fresh, b):
        # when the pairing is opened, then a clear error page (503), not a crash
        page = b.get(f"/pairings/{pid}")
        assert page.status_code == 503 and "未通过完整性校验" in page.text and "最近睡得好" not in page.text
        assert "服务器内部错误" not in page.text
        # and the board, and the other pages, still answer
        assert b.get("/pairings").status_code == 200
        assert b.get("/students").status_code == 200
        assert [q[0] for q in quarantined(fresh)] == [pid]
        # and a check-in posted to it is refused the same way, and writes nothing
        before = fresh.recorder.max_notification_id()
        page = b.post(
            f"/pairings/{pid}/check-ins",
            {"held_on": (clock.today + timedelta(days=1)).isoformat(), "thinking": "再谈一次"},
        )
        assert page.status_code == 503 and fresh.recorder.max_notification_id() == before
