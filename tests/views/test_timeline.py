"""The student timeline and the name search (projections.timeline), on SQLite and
PostgreSQL: everything about a student in order, the gate deciding per stream (once
per stream, recorded), details only with full read, erased streams, read-your-writes,
the keyed blind index (no name bytes stored, gone after shredding), and a rebuild equal
to the incremental fold after random histories (checked against the log itself)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest
from conftest import ADMIN, Clock, School, Store, fresh_app, make_school
from determination_support import ready_to_determine
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, update

from anxin.service import Anxin
from domain.common import DomainError, NotFound, PermissionDenied
from projections import student_names as sn
from projections import support_register as sr
from projections import timeline as tl
from projections.base import tracking

S1, S2, S3, S4 = "2026001", "2026002", "2026003", "2026004"  # 张小明, 李小红 (class 1); 王小刚, 赵小丽 (class 2)


def history(app: Anxin, school: School, clock: Clock) -> dict[str, str]:
    """A student (张小明, class 1) with a pairing and a check-in, a case, a file and a screening."""
    s1 = school.student(S1)
    pid = app.pairings.pair(school.safety, staff_id=school.teacher.staff_id, student_id=s1)
    app.pairings.record_check_in(
        school.teacher,
        pid,
        held_on=clock.today,
        notes={"thinking": "最近情绪低落"},
        concern=True,
        concern_note="担心在走廊被人推搡",
    )
    clock.advance(hours=1)
    cid = app.cases.report_bullying(
        school.teacher,
        school_id=school.id,
        channel="teacher",
        occurred_at=clock.now,
        place="走廊",
        forms=["physical"],
        narrative="被推倒并被抢走饭卡",
        parties=[(s1, "targeted"), (school.student(S3), "bullying")],
    )
    fid = app.support.open_support_file(
        school.counselor, s1, category="欺凌受害", risk_level="key", reason="欺凌后情绪低落"
    )
    app.screenings.record_screening(school.counselor, s1, instrument="PHQ-9", screened_on=clock.today, answers=[0] * 9)
    app.cases.start_investigation(school.safety, cid)
    app.cases.record_statement(school.safety, cid, text="他推我，还抢了我的饭卡", from_student_id=s1)
    rid = str(app.screenings.screening_record_id(s1, 2026))  # type: ignore[attr-defined]
    return {"student": s1, "pairing": pid, "case": cid, "file": fid, "screening": rid}


def access_rows(app: Anxin, actor_id: str) -> list[tuple[str, str, str, int]]:
    return [
        (r[0], r[1], r[2], r[3])
        for r in app.db.fetch(
            "SELECT action, resource_kind, resource_id, allowed FROM {t}anxin_access WHERE actor_id = ? ORDER BY id",
            (actor_id,),
        )
    ]


def kinds(t: tl.Timeline) -> dict[str, str]:
    """Stream kind -> the access level the viewer got."""
    return {e.kind: e.access for e in t.entries}


def dump(app: Anxin, view: str) -> dict[str, list[tuple[Any, ...]]]:
    v = app.views.by_name[view]
    with app.views.engine.connect() as conn:
        return {t.name: [tuple(r) for r in conn.execute(select(t).order_by(*t.primary_key.columns))] for t in v.tables}


# -- the timeline -----------------------------------------------------------------------------
def test_the_timeline_shows_everything_about_a_student_in_the_order_it_happened(
    app: Anxin, school: School, clock: Clock
) -> None:
    ids = history(app, school, clock)
    t = tl.timeline(app, school.principal, ids["student"])
    assert t.name == "张小明"
    assert [(e.kind, e.label) for e in t.entries] == [
        ("student", "入学登记"),
        ("pairing", "一岗双带结对"),
        ("pairing", "记录谈心"),
        ("case", "报告疑似欺凌"),
        ("file", "建立心理档案"),
        ("screening", "建立本学年筛查记录"),
        ("screening", "心理筛查"),
        ("case", "开始调查"),
        ("case", "记录陈述"),
    ]
    assert [e.position for e in t.entries] == sorted(e.position for e in t.entries)
    assert all(e.access == "full" and not e.erased and e.at is not None for e in t.entries)
    # details come from the stream, read now: the check-in's note, the statement, the result
    check_in = t.entries[2]
    assert (check_in.details or {})["concern_note"] == "担心在走廊被人推搡"
    assert (check_in.details or {})["notes"]["thinking"] == "最近情绪低落"
    assert (t.entries[8].details or {})["text"] == "他推我，还抢了我的饭卡"
    assert (t.entries[6].details or {})["band_label"] == "无/极轻微"
    assert t.entries[3].at == clock.now
    # the other party of the case sees the case too, and nothing else of this student: not
    # even this student's statement (an entry that names a student is theirs only)
    other = tl.timeline(app, school.principal, school.student(S3))
    assert [(e.kind, e.event_type) for e in other.entries] == [
        ("student", "Enrolled"),
        ("case", "Reported"),
        ("case", "InvestigationStarted"),
    ]


def test_the_view_holds_ids_and_types_only(app: Anxin, school: School, clock: Clock) -> None:
    history(app, school, clock)
    d = dump(app, tl.NAME)
    text = repr(d)
    for secret in ("张小明", "最近情绪低落", "担心在走廊被人推搡", "被推倒", "欺凌受害", "走廊"):
        assert secret not in text


def test_each_viewer_sees_the_entries_their_rights_allow_and_the_gate_records_once_per_stream_shown(
    app: Anxin, school: School, clock: Clock
) -> None:
    ids = history(app, school, clock)
    s1 = ids["student"]
    # the class teacher: the student, their own pairing, the case as status lines only
    before = len(access_rows(app, school.teacher.staff_id))
    t = tl.timeline(app, school.teacher, s1)
    assert kinds(t) == {"student": "full", "pairing": "full", "case": "status"}
    assert all(e.details is None for e in t.entries if e.kind == "case")
    assert t.name == "张小明"
    decided = access_rows(app, school.teacher.staff_id)[before:]
    assert sorted((a, k, r, ok) for a, k, r, ok in decided) == sorted(
        [
            ("student.read", "student", s1, 1),
            ("pairing.read", "pairing", ids["pairing"], 1),
            ("case.status", "case", ids["case"], 1),
        ]
    )  # three streams shown, three decisions; the file and the screening left out, unasked: no refusal
    # the responsible counselor: the student, their file, the screening; not the case, not the pairing
    assert kinds(tl.timeline(app, school.counselor, s1)) == {"student": "full", "file": "full", "screening": "full"}
    # another counselor: not the file they are not responsible for
    assert kinds(tl.timeline(app, school.other_counselor, s1)) == {"student": "full", "screening": "full"}
    # the safety lead: the student and the case
    assert kinds(tl.timeline(app, school.safety, s1)) == {"student": "full", "case": "full"}
    # the administrator: the roster entry only, never case content
    t = tl.timeline(app, school.admin, s1)
    assert kinds(t) == {"student": "full"}
    # what the page left out was not asked for: no refusal recorded, only the read it made
    assert [a for a in access_rows(app, school.admin.staff_id) if not a[-1]] == []
    assert [a[0] for a in access_rows(app, school.admin.staff_id)][-1:] == ["student.read"]


def test_a_teacher_of_another_class_gets_no_timeline_even_of_a_case_they_may_follow(
    app: Anxin, school: School, clock: Clock
) -> None:
    ids = history(app, school, clock)
    # the class-2 teacher may follow the status of the case (it involves a student of their
    # class), but the class-1 student is not theirs: no timeline, so not even who else is in it
    assert app.cases.case_status(school.other_teacher, ids["case"])["status"]
    with pytest.raises(PermissionDenied):
        tl.timeline(app, school.other_teacher, ids["student"])
    refused = [row for row in access_rows(app, school.other_teacher.staff_id) if not row[-1]]
    assert len(refused) == 1


def test_a_viewer_who_may_see_nothing_is_refused_and_the_refusals_are_recorded(
    app: Anxin, school: School, clock: Clock
) -> None:
    ids = history(app, school, clock)
    other = make_school(app, "第二中学")
    for who in (other.principal, school.supervisor):
        with pytest.raises(PermissionDenied):
            tl.timeline(app, who, ids["student"])
        assert {ok for *_, ok in access_rows(app, who.staff_id)} == {0}
        assert len(access_rows(app, who.staff_id)) == 1  # refused at the student: nothing else is asked
    with pytest.raises(NotFound):
        tl.timeline(app, school.principal, ids["case"])  # not a student
    with pytest.raises(NotFound):
        tl.timeline(app, school.principal, str(uuid4()))


def test_a_supervisor_with_a_stated_reason_sees_the_student_and_the_list_of_their_records_only(
    app: Anxin, school: School, clock: Clock
) -> None:
    ids = history(app, school, clock)
    t = tl.timeline(app, school.supervisor, ids["student"], break_glass="督导核查家长投诉")
    # the student's own record, in full; their cases, files and pairings listed, not read
    assert t.scoped and kinds(t) == {"student": "full"}
    assert {(r.kind, r.stream_id) for r in t.records} == {(k, ids[k]) for k in ("case", "file", "pairing")}
    assert {r.kind: r.status_label for r in t.records} == {"case": "调查中", "file": "跟进中", "pairing": "结对中"}
    assert all(r.opened and r.changed and r.opened <= r.changed for r in t.records)
    for secret in ("被推倒并被抢走饭卡", "走廊", "他推我", "最近情绪低落", "欺凌后情绪低落", "王小刚"):
        assert secret not in repr(t)
    # one read was recorded, of the student, with the reason: nothing of the other streams
    rows = app.db.fetch(
        "SELECT resource_id, allowed, break_glass FROM {t}anxin_access WHERE actor_id = ?",
        (school.supervisor.staff_id,),
    )
    assert [(r[0], r[1], r[2] is not None) for r in rows] == [(ids["student"], 1, True)]


def test_a_party_added_later_sees_the_whole_case_and_a_removed_party_no_longer_does(
    app: Anxin, school: School, clock: Clock
) -> None:
    ids = history(app, school, clock)
    s2 = school.student(S2)
    assert kinds(tl.timeline(app, school.principal, s2)) == {"student": "full"}
    app.cases.add_party(school.safety, ids["case"], student_id=s2, part="witness", reason="目击者")
    t = tl.timeline(app, school.principal, s2)
    assert [e.event_type for e in t.entries if e.kind == "case"] == [
        "Reported",
        "InvestigationStarted",
        "PartyAdded",
    ]  # not the statement of another party
    app.cases.remove_party(school.safety, ids["case"], student_id=s2, reason="误报")
    assert kinds(tl.timeline(app, school.principal, s2)) == {"student": "full"}


def remedies(app: Anxin, school: School, clock: Clock, cid: str) -> dict[str, str]:
    """The case of `history` determined and approved; an intervention plan for each side (the
    bullying student's with progress and completion) and a disposition for the bullying student."""
    target, bully = school.student(S1), school.student(S3)
    app.cases.complete_investigation(school.safety, cid, findings="证人证实")
    ready_to_determine(app, school.safety, cid)
    app.cases.determine(school.safety, cid, bullying=True, severity="minor", reason="委员会认定")
    app.cases.approve_determination(school.principal, cid, reason="同意")
    mine = app.cases.plan_intervention(
        school.safety,
        cid,
        student_id=target,
        kind="counselling",
        plan="每周心理辅导",
        responsible_staff_id=school.counselor.staff_id,
    )
    theirs = app.cases.plan_intervention(
        school.safety,
        cid,
        student_id=bully,
        kind="education",
        plan="法治教育每周一次",
        responsible_staff_id=school.teacher.staff_id,
    )
    app.cases.record_intervention_progress(school.safety, cid, theirs, note="已上两次课")
    app.cases.complete_intervention(school.safety, cid, theirs, outcome="认识到错误")
    app.cases.decide_disposition(
        school.safety, cid, student_id=bully, kind="criticism", decided_by="school", note="书面检讨"
    )
    return {"target": target, "bully": bully, "mine": mine, "theirs": theirs}


OTHER_SIDE = {"InterventionProgressRecorded", "InterventionCompleted", "DispositionDecided"}


def test_each_party_sees_the_entries_that_concern_them_and_every_case_level_entry(
    app: Anxin, school: School, clock: Clock
) -> None:
    ids = history(app, school, clock)
    r = remedies(app, school, clock, ids["case"])
    target = tl.timeline(app, school.principal, r["target"])
    bully = tl.timeline(app, school.principal, r["bully"])

    def case_types(t: tl.Timeline) -> list[str]:
        return [e.event_type for e in t.entries if e.kind == "case"]

    # the targeted student's: their own plan, their statement, none of the other side's plan,
    # its progress, its completion, nor the disposition
    mine = [e for e in target.entries if e.event_type == "InterventionPlanned"]
    assert [(e.details or {})["plan"] for e in mine] == ["每周心理辅导"]
    assert not OTHER_SIDE & set(case_types(target))
    assert "法治教育" not in repr(target) and "书面检讨" not in repr(target)
    assert "StatementRecorded" in case_types(target)
    # the bullying student's: their plan with its follow-ups and the disposition, not the
    # targeted student's plan nor statement
    theirs = [e for e in bully.entries if e.event_type == "InterventionPlanned"]
    assert [(e.details or {})["plan"] for e in theirs] == ["法治教育每周一次"]
    assert OTHER_SIDE <= set(case_types(bully))
    assert "StatementRecorded" not in case_types(bully) and "每周心理辅导" not in repr(bully)
    # case-level entries are on both, in the same order
    level = ["Reported", "InvestigationStarted", "InvestigationCompleted", "Determined", "DeterminationApproved"]
    for t in (target, bully):
        assert [x for x in case_types(t) if x in level] == level
    # the guardians' part: each side's own invitation and participation only
    for t, student in ((target, r["target"]), (bully, r["bully"])):
        guardian = [e for e in t.entries if e.event_type.startswith("Guardian")]
        assert len(guardian) == 2 and {(e.details or {})["student_id"] for e in guardian} == {student}
    # the view holds ids only, and a rebuild gives the same rows
    with app.views.engine.connect() as conn:
        assert {(row.student_id, row.subject) for row in conn.execute(select(tl.concerns))} >= {
            (r["target"], r["mine"]),
            (r["bully"], r["theirs"]),
        }
    before = dump(app, tl.NAME)
    app.views.rebuild([tl.NAME])
    assert dump(app, tl.NAME) == before


def test_the_targeted_students_page_does_not_show_the_other_sides_plan(site: Any, browse: Any) -> None:
    tag = uuid4().hex[:6]
    app = site.app
    safety = app.gate.actor(app.accounts.account("safety1")[0])
    principal = app.gate.actor(app.accounts.account("principal1")[0])
    admin = app.gate.actor(app.accounts.account("admin")[0])
    pupils = [x for x in app.roster.list_students(admin, safety.school_id) if x.class_name == "八年级1班"]
    target, bully = pupils[0].id, pupils[1].id
    cid = app.cases.report_bullying(
        safety,
        school_id=safety.school_id,
        channel="teacher",
        occurred_at=app.now(),
        place="操场",
        forms=["physical"],
        narrative=f"推搡 {tag}",
        parties=[(target, "targeted"), (bully, "bullying")],
    )
    app.cases.start_investigation(safety, cid)
    app.cases.complete_investigation(safety, cid, findings="属实")
    ready_to_determine(app, safety, cid)
    app.cases.determine(safety, cid, bullying=True, severity="minor", reason="委员会认定")
    app.cases.approve_determination(principal, cid, reason="同意")
    for student, kind, plan in ((target, "counselling", f"陪伴辅导{tag}"), (bully, "education", f"法治教育{tag}")):
        app.cases.plan_intervention(
            safety, cid, student_id=student, kind=kind, plan=plan, responsible_staff_id=safety.staff_id
        )
    app.cases.decide_disposition(
        safety, cid, student_id=bully, kind="criticism", decided_by="school", note=f"检讨{tag}"
    )
    b = browse("principal1")
    page = b.get(f"/students/{target}")
    assert page.status_code == 200
    assert f"陪伴辅导{tag}" in page.text and f"推搡 {tag}" in page.text
    assert f"法治教育{tag}" not in page.text and f"检讨{tag}" not in page.text and "处理决定" not in page.text
    other = b.get(f"/students/{bully}").text
    assert f"法治教育{tag}" in other and f"检讨{tag}" in other and f"陪伴辅导{tag}" not in other


def test_erased_streams_show_as_erased_and_nothing_crashes(app: Anxin, school: School, clock: Clock) -> None:
    ids = history(app, school, clock)
    app.erasure.shred(ADMIN, ids["case"], "保存期限届满")
    t = tl.timeline(app, school.principal, ids["student"])
    case = [e for e in t.entries if e.kind == "case"]
    # the statement named the student: erased, whom it concerned is not known any more, so it
    # is on no one's timeline (the case-level entries stay, as erased)
    assert [e.label for e in case] == ["报告疑似欺凌", "开始调查"]
    assert all(e.erased and e.details is None and e.at is None for e in case)
    assert all(not e.erased and e.details for e in t.entries if e.kind != "case")
    # once the student is shredded too: their identity is gone, and with it the streams about
    # them alone (pairing, file, screening); the timeline still answers, every entry erased
    app.erasure.shred(ADMIN, ids["student"], "保存期限届满")
    t = tl.timeline(app, school.principal, ids["student"])
    assert t.name == "已删除"
    assert [(e.label, e.erased, e.details) for e in t.entries if e.kind == "student"] == [("入学登记", True, None)]
    assert {e.kind for e in t.entries} >= {"pairing", "file"}
    assert all(e.erased and e.details is None for e in t.entries)


def test_the_timeline_reflects_a_command_as_soon_as_it_returns(app: Anxin, school: School, clock: Clock) -> None:
    ids = history(app, school, clock)
    app.pairings.record_check_in(school.teacher, ids["pairing"], held_on=clock.today, notes={"studies": "成绩回升"})
    head = app.recorder.max_notification_id()
    assert app.views.positions()[tl.NAME] == head
    with app.views.engine.connect() as conn:
        assert conn.execute(select(tl.entries.c.event_type).where(tl.entries.c.position == head)).scalar() == (
            "CheckInRecorded"
        )
    last = tl.timeline(app, school.teacher, ids["student"]).entries[-1]
    assert (last.label, (last.details or {})["notes"]["studies"]) == ("记录谈心", "成绩回升")


def test_every_event_of_a_students_streams_has_a_chinese_label() -> None:
    topics = [
        t.strip()
        for t in (Path(__file__).resolve().parents[1] / "event_topics.txt").read_text().splitlines()
        if t.strip() and not t.startswith("#")
    ]
    missing = []
    for topic in topics:
        agg, name = topic.split(":")[1].split(".")
        if agg in tl.KINDS and (tl.KINDS[agg], name) not in tl.LABELS:
            missing.append(topic)
    assert missing == []


# -- name search ------------------------------------------------------------------------------
def test_students_are_found_by_full_name_surname_or_given_name(app: Anxin, school: School) -> None:
    s1 = school.student(S1)
    assert [r.id for r in tl.search_students(app, school.counselor, school.id, "张小明")] == [s1]
    assert [r.id for r in tl.search_students(app, school.counselor, school.id, "张")] == [s1]
    assert [r.id for r in tl.search_students(app, school.counselor, school.id, "小明")] == [s1]
    assert [r.id for r in tl.search_students(app, school.counselor, school.id, " 张 小明 ")] == [s1]
    assert [r.name for r in tl.search_students(app, school.counselor, school.id, "张小明")] == ["张小明"]
    assert tl.search_students(app, school.counselor, school.id, "小") == []  # no substring matches
    # two students with the same surname
    s5 = app.roster.enrol_student(
        ADMIN,
        school_id=school.id,
        student_no="2026005",
        name="张伟",
        gender="男",
        birth_date=date(2013, 3, 3),
        grade="七年级",
        class_name="七年级2班",
    )
    assert {r.id for r in tl.search_students(app, school.counselor, school.id, "张")} == {s1, s5}
    # a two-character surname (复姓)
    s6 = app.roster.enrol_student(
        ADMIN,
        school_id=school.id,
        student_no="2026006",
        name="欧阳明月",
        gender="女",
        birth_date=date(2013, 3, 3),
        grade="七年级",
        class_name="七年级2班",
    )
    assert [r.id for r in tl.search_students(app, school.counselor, school.id, "欧阳")] == [s6]
    assert [r.id for r in tl.search_students(app, school.counselor, school.id, "明月")] == [s6]
    # another school's students are not found from here
    other = make_school(app, "第二中学")
    assert [r.id for r in tl.search_students(app, other.counselor, other.id, "张小明")] == [other.student(S1)]


def test_a_class_teacher_finds_only_students_of_their_class(app: Anxin, school: School) -> None:
    assert [r.id for r in tl.search_students(app, school.teacher, school.id, "王小刚")] == []
    assert [r.id for r in tl.search_students(app, school.other_teacher, school.id, "王小刚")] == [school.student(S3)]
    assert access_rows(app, school.teacher.staff_id)[-1][::3] == ("student.read", 1)
    other = make_school(app, "第二中学")
    for who in (other.counselor, school.supervisor):
        with pytest.raises(PermissionDenied):
            tl.search_students(app, who, school.id, "王小刚")
        assert access_rows(app, who.staff_id)[-1][::3] == ("student.read", 0)
    # a supervisor with a stated reason may search
    assert len(tl.search_students(app, school.supervisor, school.id, "王小刚", break_glass="核查家长投诉")) == 1


def test_the_name_index_holds_no_name_bytes(app: Anxin, school: School) -> None:
    with app.views.engine.connect() as conn:
        rows = [tuple(r) for r in conn.execute(select(tl.names))]
    # every value the index stands for, one token each: the name, its pinyin, the number
    names = {"张小明": S1, "李小红": S2, "王小刚": S3, "赵小丽": S4}
    expected = sum(len(sn.name_values(n)) + len(sn.number_values(no)) for n, no in names.items())
    assert len(rows) == expected > 4 * 30
    raw = b"\x00".join(str(v).encode() if not isinstance(v, bytes) else v for r in rows for v in r)
    for name, number in names.items():
        for part in (name, name[0], name[1:]):
            assert part.encode() not in raw
        for spelling in sn.spellings(name):
            for word in (spelling.full, spelling.initials, spelling.given):
                assert word.encode() not in raw
        assert number.encode() not in raw
    assert all(len(r[0]) == 64 for r in rows)  # HMAC-SHA256 hex


def test_a_corrected_name_is_found_by_its_new_name_only(app: Anxin, school: School) -> None:
    s1 = school.student(S1)
    app.roster.correct_student(ADMIN, s1, {"name": "张晓明"}, "身份证姓名为准")
    assert [r.id for r in tl.search_students(app, school.counselor, school.id, "张晓明")] == [s1]
    assert [r.id for r in tl.search_students(app, school.counselor, school.id, "晓明")] == [s1]
    assert tl.search_students(app, school.counselor, school.id, "小明") == []


def test_after_shredding_a_student_their_tokens_are_gone_and_search_no_longer_finds_them(
    app: Anxin, school: School
) -> None:
    s1 = school.student(S1)
    app.erasure.shred(ADMIN, s1, "保存期限届满")
    with app.views.engine.connect() as conn:
        assert conn.execute(select(tl.names).where(tl.names.c.student_id == s1)).all() == []
    assert tl.search_students(app, school.counselor, school.id, "张小明") == []
    assert tl.search_students(app, school.counselor, school.id, "张") == []
    # and a rebuild does not bring them back
    app.views.rebuild([tl.NAMES])
    assert tl.search_students(app, school.counselor, school.id, "张") == []
    assert [r.id for r in tl.search_students(app, school.counselor, school.id, "李小红")] == [school.student(S2)]


def test_names_split_into_surname_and_given_name() -> None:
    assert tl.split_name("张小明") == ("张", "小明")
    assert tl.split_name("欧阳明月") == ("欧阳", "明月")
    assert tl.split_name("欧阳") == ("欧", "阳")  # a two-character name is surname + given name
    assert tl.split_name(" Li  Ming ") == ("li", "ming")
    assert tl.split_name("阿依古丽·买买提") == ("阿依古丽", "买买提")
    assert tl.normalize_name("Ｌｉ Ｍｉｎｇ") == "liming"  # full-width letters (NFKC)


# -- rows kept back and written in bulk at the end of a batch ---------------------------------------
BULK_VIEWS = (tl.NAME, tl.NAMES, sr.NAME)


@contextmanager
def bulk_mode(app: Anxin) -> Iterator[None]:
    """The runner as it is meant to end a batch: each view's `flush(conn)` after its events
    and before its position moves (see projections.support_register.BulkInserts)."""
    views = [app.views.by_name[n] for n in BULK_VIEWS]

    def apply(views_: Any, pos: dict[str, int], events: list[tuple[int, Any]], last: int) -> None:
        with app.views.engine.begin() as conn:
            for v in views_:
                todo = [(i, e) for i, e in events if i > pos[v.name]]
                if not todo:
                    continue
                for i, e in todo:
                    v.handle(e, conn, i)
                getattr(v, "flush", lambda c: None)(conn)
                conn.execute(update(tracking).where(tracking.c.view == v.name).values(position=last))

    for v in views:
        v.bulk = True  # type: ignore[attr-defined]
    app.views._apply = apply  # type: ignore[method-assign]
    try:
        yield
    finally:
        del app.views._apply
        for v in views:
            del v.bulk  # type: ignore[attr-defined]


def test_rows_kept_back_and_written_at_the_end_of_a_batch_equal_rows_written_one_by_one(
    app: Anxin, school: School, clock: Clock
) -> None:
    # given a whole history folded as ONE batch: inserts, updates and deletes of the same rows
    app.after_save = lambda written: None  # type: ignore[method-assign]
    start = app.recorder.max_notification_id()
    ids = history(app, school, clock)
    s2 = school.student(S2)
    app.cases.add_party(school.safety, ids["case"], student_id=s2, part="witness", reason="目击")
    app.cases.remove_party(school.safety, ids["case"], student_id=s2, reason="误报")
    app.cases.add_party(school.safety, ids["case"], student_id=s2, part="witness", reason="确认目击")
    app.roster.correct_student(ADMIN, ids["student"], {"name": "张晓明", "class_name": "七年级2班"}, "更正")
    rows = [f"{no},PHQ-9,{clock.today.isoformat()}," + ",".join(["1"] * 9) for no in (S2, S3, S4)]
    app.screenings.import_screenings(
        school.counselor,
        school.id,  # type: ignore[attr-defined]
        "\n".join(["student_no,instrument,date," + ",".join(f"item{i}" for i in range(1, 10)), *rows]) + "\n",
    )
    app.roster.leave_student(ADMIN, school.student(S4), "转学")
    with bulk_mode(app):
        applied = app.views.catch_up(views=[app.views.by_name[n] for n in BULK_VIEWS])
        assert applied == app.recorder.max_notification_id() - start > 20
    kept_back = {n: dump(app, n) for n in BULK_VIEWS}
    # when the same log is folded one row at a time
    app.views.rebuild(list(BULK_VIEWS))
    # then the rows are the same
    assert {n: dump(app, n) for n in BULK_VIEWS} == kept_back
    assert sr.coverage(app, school.counselor, school.id).screened == 3
    assert [r.id for r in tl.search_students(app, school.counselor, school.id, "晓明")] == [ids["student"]]
    # and the other way round
    with bulk_mode(app):
        app.views.rebuild(list(BULK_VIEWS))
        assert {n: dump(app, n) for n in BULK_VIEWS} == kept_back


def test_a_batch_that_failed_half_way_is_folded_again_from_scratch(app: Anxin, school: School, clock: Clock) -> None:
    app.after_save = lambda written: None  # type: ignore[method-assign]
    history(app, school, clock)
    view = app.views.by_name[tl.NAME]
    original = view.handle
    start, fail_at = app.views.positions()[tl.NAME], app.recorder.max_notification_id() - 2
    failed: list[int] = []

    def flaky(e: Any, conn: Any, position: int) -> None:
        if position == fail_at and not failed:
            failed.append(position)
            raise RuntimeError("the database went away")
        original(e, conn, position)

    with bulk_mode(app):
        view.handle = flaky  # type: ignore[method-assign]
        with pytest.raises(RuntimeError):
            app.views.catch_up(views=[view])
        assert app.views.positions()[tl.NAME] == start < fail_at - 4  # nothing of the batch was kept
        app.views.catch_up(views=[view])  # the rows kept back before the failure are not written twice
        del view.handle
        once = dump(app, tl.NAME)
    app.views.rebuild([tl.NAME])
    assert dump(app, tl.NAME) == once


# -- rebuild equals incremental -------------------------------------------------------------------


pupil = st.integers(0, 3)
OPS = st.lists(
    st.one_of(
        st.tuples(st.just("pair"), pupil),
        st.tuples(st.just("check_in"), pupil),
        st.tuples(st.just("check_in"), pupil),
        st.tuples(st.just("report"), pupil, pupil),
        st.tuples(st.just("start"), pupil),
        st.tuples(st.just("add_party"), pupil, pupil),
        st.tuples(st.just("remove_party"), pupil, pupil),
        st.tuples(st.just("open_file"), pupil),
        st.tuples(st.just("session"), pupil),
        st.tuples(st.just("screen"), pupil),
        st.tuples(st.just("rename"), pupil, st.sampled_from(["周杰", "欧阳娜娜", "Li Ming"])),
        st.tuples(st.just("move"), pupil),
        st.tuples(st.just("shred"), pupil, st.sampled_from(["student", "case", "file", "pairing", "screening"])),
        st.tuples(st.just("advance"), st.integers(1, 20)),
        st.tuples(st.just("statement"), pupil),
        st.tuples(st.just("approve"), pupil),
        st.tuples(st.just("plan"), pupil, pupil),
        st.tuples(st.just("progress"), pupil),
        st.tuples(st.just("dispose"), pupil),
    ),
    min_size=4,
    max_size=30,
)


def run(app: Anxin, school: School, clock: Clock, op: tuple[Any, ...]) -> None:
    name, *args = op
    s = [school.student(no) for no in (S1, S2, S3, S4)]
    who = s[args[0]] if args and isinstance(args[0], int) and name != "advance" else ""

    def stream_of(kind: str, student: str) -> str | None:
        row = app.db.fetchone(
            "SELECT l.stream_id FROM {t}anxin_links l JOIN {t}anxin_directory d ON d.stream_id = l.stream_id "
            "WHERE d.kind = ? AND l.student_id = ? AND d.erased = 0 ORDER BY l.stream_id LIMIT 1",
            (kind, student),
        )
        return row[0] if row else None

    lead, p = school.safety, school.principal
    if name == "pair":
        app.pairings.pair(lead, staff_id=school.teacher.staff_id, student_id=who)
    elif name == "report":
        app.cases.report_bullying(
            school.teacher,
            school_id=school.id,
            channel="teacher",
            occurred_at=clock.now,
            place="操场",
            forms=["verbal"],
            narrative="辱骂",
            parties=[(who, "targeted")] + ([(s[args[1]], "bullying")] if args[1] != args[0] else []),
        )
    elif name == "open_file":
        app.support.open_support_file(school.counselor, who, category="情绪困扰", risk_level="key", reason="担忧")
    elif name == "screen":
        app.screenings.record_screening(
            school.counselor, who, instrument="PHQ-9", screened_on=clock.today, answers=[1] * 9
        )
    elif name == "rename":
        app.roster.correct_student(ADMIN, who, {"name": args[1]}, "更正姓名")
    elif name == "move":
        app.roster.correct_student(ADMIN, who, {"class_name": "七年级3班"}, "分班")
    elif name == "advance":
        clock.advance(days=args[0])
    elif name == "shred":
        target = who if args[1] == "student" else stream_of(args[1], who)
        if target:
            app.erasure.shred(ADMIN, target, "保存期限届满")
    elif name in ("check_in",):
        pid = stream_of("pairing", who)
        if pid:
            app.pairings.record_check_in(school.teacher, pid, held_on=clock.today, notes={"family": "家访"})
    elif name == "session":
        fid = stream_of("file", who)
        if fid:
            app.support.record_session(p, fid, held_on=clock.today, summary="辅导")
    elif name in ("start", "add_party", "remove_party", "statement", "approve", "plan", "progress", "dispose"):
        cid = stream_of("case", who)
        if cid is None:
            return
        case = app.cases.get_case(lead, cid)
        parties = sorted(case.parties, key=lambda x: x["student_id"])
        if name == "statement":
            app.cases.record_statement(lead, cid, text="陈述", from_student_id=who)
        elif name == "approve":
            app.cases.complete_investigation(lead, cid, findings="属实")
            ready_to_determine(app, lead, cid)
            app.cases.determine(lead, cid, bullying=True, severity="minor", reason="认定")
            app.cases.approve_determination(p, cid, reason="同意")
        elif name == "plan":
            party = parties[args[1] % len(parties)]
            app.cases.plan_intervention(
                lead,
                cid,
                student_id=party["student_id"],
                kind="education" if party["part"] == "bullying" else "counselling",
                plan="干预",
                responsible_staff_id=school.counselor.staff_id,
            )
        elif name == "progress":
            for iid in sorted(case.interventions)[:1]:
                app.cases.record_intervention_progress(lead, cid, iid, note="进展")
        elif name == "dispose":
            bully = [x["student_id"] for x in parties if x["part"] == "bullying"]
            if bully:
                app.cases.decide_disposition(lead, cid, student_id=bully[0], kind="criticism", decided_by="school")
        elif name == "start":
            app.cases.start_investigation(lead, cid)
        elif name == "add_party":
            app.cases.add_party(lead, cid, student_id=s[args[1]], part="witness", reason="目击")
        else:
            app.cases.remove_party(lead, cid, student_id=s[args[1]], reason="误报")


# Which students a case event concerns, from its fields (written out here, apart from the view).
NAMES_STUDENT = {"StatementRecorded": "from_student_id", "InterventionPlanned": "student_id"}
NAMES_STUDENT |= {"DispositionDecided": "student_id", "GuardianInvitationRecorded": "student_id"}
NAMES_STUDENT |= {"GuardianParticipationRecorded": "student_id"}


def expected_positions(app: Anxin) -> dict[str, list[int]]:
    """From the log itself: for each student, the positions of the events of every stream
    about them, but an event that names students only on theirs (an intervention's
    follow-ups: on its student's), and an erased one that may have named students on no one's."""
    about: dict[str, set[str]] = {}
    for sid, student in app.db.fetch("SELECT stream_id, student_id FROM {t}anxin_links"):
        about.setdefault(sid, set()).add(student)
    interventions: dict[str, str] = {}
    out: dict[str, list[int]] = {}
    for n in app.recorder.select_notifications(start=1, limit=100000):
        agg, event_type = n.topic.split(":")[1].split(".")
        if agg not in tl.KINDS:
            continue
        sid = str(n.originator_id if isinstance(n.originator_id, UUID) else UUID(str(n.originator_id)))
        students = {sid} if agg == "Student" else about.get(sid, set())
        if agg == "BullyingCase" and event_type in tl.SCOPED_TYPES:
            if app.erasure.is_erased(sid):
                continue
            e = app.mapper.to_domain_event(n)
            named = getattr(e, NAMES_STUDENT.get(event_type, ""), None)
            if event_type == "InterventionPlanned":
                interventions[e.intervention_id] = e.student_id
            elif event_type.startswith("Intervention"):
                named = interventions[e.intervention_id]
            if named:
                students = students & {named}
        for student in students:
            out.setdefault(student, []).append(n.id)
    return out


def stream_of_case_alive(app: Anxin, school: School) -> bool:
    """The first case (S1 against S3) was not shredded."""
    row = app.db.fetchone(
        "SELECT COUNT(*) FROM {t}anxin_links l JOIN {t}anxin_directory d ON d.stream_id = l.stream_id "
        "WHERE d.kind = 'case' AND l.student_id = ? AND d.erased = 0",
        (school.student(S3),),
    )
    return bool(row and row[0])


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=OPS)
def test_rebuilt_timelines_and_name_index_equal_the_incremental_ones_after_a_random_history(
    store: Store, ops: list[Any]
) -> None:
    clock = Clock(datetime(2026, 10, 12, 9, 0, tzinfo=UTC))
    with fresh_app(store.kind, clock) as app:
        school = make_school(app)
        # a case of both sides' plans, a statement and a disposition first, then the random ops
        remedies = [("start", 0), ("statement", 0), ("approve", 0), ("plan", 0, 0), ("plan", 0, 1), ("progress", 0)]
        for op in [("pair", 0), ("report", 0, 2), ("open_file", 1), *remedies, ("dispose", 0), *ops]:
            try:
                run(app, school, clock, op)
            except DomainError:
                pass  # a refused command changes nothing
            clock.advance(minutes=5)
        # the principal's timeline of each student is every event about them, in log order
        expected = expected_positions(app)
        for no in (S1, S2, S3, S4):
            sid = school.student(no)
            t = tl.timeline(app, school.principal, sid)
            assert [e.position for e in t.entries] == expected[sid]
            assert all(e.erased == app.erasure.is_erased(e.stream_id) for e in t.entries)
            # and each living student is found by their current name
            if not app.erasure.is_erased(sid):
                name = app.student_ref(sid).name
                assert sid in {r.id for r in tl.search_students(app, school.principal, school.id, name)}
        # and a rebuild gives the very same rows
        before = {v: dump(app, v) for v in (tl.NAME, tl.NAMES)}
        app.views.rebuild([tl.NAME, tl.NAMES])
        assert {v: dump(app, v) for v in (tl.NAME, tl.NAMES)} == before
        assert before[tl.NAME]["v_timeline_entries"]  # the history was not empty
        if not app.erasure.is_erased(school.student(S1)) and stream_of_case_alive(app, school):
            # and some entries concern one side only (the prefix's disposition among them)
            types = {r[3] for r in before[tl.NAME]["v_timeline_entries"]}
            assert before[tl.NAME]["v_timeline_concerns"] and "DispositionDecided" in types
