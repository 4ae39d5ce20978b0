"""Break-glass reviewed: a reason opens only what it asked for, every use waits for the
school's principal and the district's other supervisors (never the user), and one of them
marks it justified or not, once; the review is an entry of the audit trail, its comment
sealed, its state changed by compare-and-set so that of two reviewers at once one is
refused. Every test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import json
import threading
from datetime import timedelta
from typing import Any

import pytest
from conftest import ADMIN, Clock, School, Store, make_school
from store_support import Raw, raw_bytes

from anxin import audit
from anxin.service import Anxin
from domain import access
from domain.break_glass import REASON_RULE, AlreadyReviewed
from domain.common import Actor, InvalidInput, NotFound, PermissionDenied
from projections.timeline import timeline

REASON = "家长来电反映孩子被孤立，需要核实"
NARRATIVE = "课间多次被同学围堵并抢走饭卡"
COMMENT = "理由充分：家长投诉已登记，核实范围恰当"


def second_supervisor(app: Anxin, username: str = "sup-two", district: str = "default") -> Actor:
    return app.gate.actor(
        app.roster.add_staff(
            ADMIN, username=username, name="二号督导", school_id=None, roles=["supervisor"], district=district
        )
    )


def a_case(app: Anxin, school: School, clock: Clock) -> str:
    return app.cases.report_bullying(
        school.teacher,
        school_id=school.id,
        channel="teacher",
        occurred_at=clock.now - timedelta(hours=1),
        place="食堂",
        forms=["physical"],
        narrative=NARRATIVE,
        parties=[(school.student("2026001"), "targeted"), (school.student("2026003"), "bullying")],
    )


def break_glass_entries(app: Anxin, actor: Actor) -> list[tuple[int, str, str]]:
    """(seq, action, record) of the actor's break-glass reads, in order."""
    rows = app.db.fetch(
        "SELECT seq, detail, subject FROM {t}anxin_audit WHERE kind = 'access' AND actor_id = ? ORDER BY seq",
        (actor.staff_id,),
    )
    return [(s, json.loads(d)["action"], subj) for s, d, subj in rows if json.loads(d)["break_glass"]]


def reviews_of(app: Anxin, access_seq: int) -> list[tuple[str, str, dict[str, Any], bytes | None]]:
    """The `break_glass_review` entries about one use: (actor, subject, detail, sealed)."""
    return [
        (actor, subject, json.loads(detail), sealed)
        for actor, subject, detail, sealed in app.db.fetch(
            "SELECT actor_id, subject, detail, sealed FROM {t}anxin_audit WHERE kind = 'break_glass_review' "
            "AND subject = ?",
            (str(access_seq),),
        )
    ]


# -- a reason opens only what it asked for -----------------------------------------------------------
def test_a_reason_for_a_student_opens_the_student_and_lists_their_records_without_content(
    app: Anxin, school: School, clock: Clock
) -> None:
    # given a student who is a party to a case and has a support file
    sid = school.student("2026001")
    case_id = a_case(app, school, clock)
    app.support.open_support_file(school.counselor, sid, category="情绪困扰", risk_level="key", reason="情绪低落")

    # when a supervisor opens the student's timeline with a reason
    line = timeline(app, school.supervisor, sid, break_glass=REASON)

    # then one break-glass read is recorded, of the student, and nothing of the case's content is read
    assert [(act, subj) for _s, act, subj in break_glass_entries(app, school.supervisor)] == [
        (access.STUDENT_READ, sid)
    ]
    assert line.scoped and line.name == "张小明"
    assert {e.kind for e in line.entries} == {"student"}
    assert {(r.kind, r.part) for r in line.records} == {("case", "targeted"), ("file", None)}
    listed = {r.kind: r for r in line.records}
    assert listed["case"].stream_id == case_id and listed["case"].status_label == "已报告"
    assert listed["case"].opened is not None and listed["file"].status_label == "跟进中"
    shown = repr(line)
    for secret in (NARRATIVE, "食堂", "王小刚", "情绪低落"):
        assert secret not in shown

    # when the supervisor then reads the case, with a reason of its own
    app.cases.get_case(school.supervisor, case_id, break_glass="核查欺凌案件的处理经过")

    # then that is a second break-glass read, of the case alone
    assert [(act, subj) for _s, act, subj in break_glass_entries(app, school.supervisor)] == [
        (access.STUDENT_READ, sid),
        (access.CASE_READ, case_id),
    ]


def test_a_reason_that_says_nothing_opens_nothing_and_the_refusal_says_what_is_expected(
    app: Anxin, school: School, clock: Clock
) -> None:
    case_id = a_case(app, school, clock)
    for weak in ("....", "核查", "看看看看看看看"):
        with pytest.raises(PermissionDenied) as refused:
            app.cases.get_case(school.supervisor, case_id, break_glass=weak)
        assert refused.value.details["reason"] == REASON_RULE
    assert break_glass_entries(app, school.supervisor) == []
    assert app.db.fetchone("SELECT COUNT(*) FROM {t}anxin_break_glass_reviews")[0] == 0


# -- told: the principal and the other supervisors, not the user ---------------------------------------
def test_each_use_waits_for_the_principal_and_the_other_supervisors_never_the_user(
    app: Anxin, school: School, clock: Clock
) -> None:
    # given a second supervisor of the district, another district's, and another school's principal
    other_sup = second_supervisor(app)
    far_sup = second_supervisor(app, "sup-far", district="north")
    other_school = make_school(app, "第二中学")
    case_id = a_case(app, school, clock)

    # when the first supervisor reads the case with a reason
    app.cases.get_case(school.supervisor, case_id, break_glass=REASON)
    [(seq, _act, _subj)] = break_glass_entries(app, school.supervisor)

    # then the school's principal and the other supervisor have it to review, with the reason
    for reviewer in (school.principal, other_sup):
        assert audit.pending_review_count(app, reviewer) == 1
        [use] = audit.review_queue(app, reviewer)
        assert (use.seq, use.user_id, use.resource_kind, use.resource_id, use.school_id, use.reason) == (
            seq,
            school.supervisor.staff_id,
            "case",
            case_id,
            school.id,
            REASON,
        )
        assert use.user == "督导员" and use.school == "第一中学" and use.state_label == "待复核"
        assert NARRATIVE not in repr(use)
    # and nobody else: not the user, not another school's principal, another district, an admin
    assert audit.pending_review_count(app, school.supervisor) == 0
    assert audit.review_queue(app, school.supervisor) == []
    assert audit.pending_review_count(app, other_school.principal) == 0
    assert audit.pending_review_count(app, far_sup) == 0
    for nobody in (ADMIN, school.teacher, school.safety):
        assert audit.pending_review_count(app, nobody) is None
        with pytest.raises(PermissionDenied):
            audit.review_queue(app, nobody)
    # the item is ids and codes only, kept beside the trail for a later outbox
    [item] = app.db.fetch(
        "SELECT access_seq, user_id, action, resource_kind, resource_id, school_id, district, state "
        "FROM {t}anxin_break_glass_reviews"
    )
    assert item == (seq, school.supervisor.staff_id, access.CASE_READ, "case", case_id, school.id, "default", "pending")


# -- the review ----------------------------------------------------------------------------------
def test_a_principal_marks_a_use_justified_and_the_review_is_an_entry_of_the_trail(
    store: Store, app: Anxin, school: School, clock: Clock
) -> None:
    case_id = a_case(app, school, clock)
    app.cases.get_case(school.supervisor, case_id, break_glass=REASON)
    [(seq, _a, _s)] = break_glass_entries(app, school.supervisor)
    clock.advance(hours=2)

    result = audit.review_break_glass(app, school.principal, seq, "justified", COMMENT)

    # the review is an entry: by the principal, about the use, its verdict, the comment sealed
    [(actor, subject, detail, sealed)] = reviews_of(app, seq)
    assert (actor, subject, detail) == (school.principal.staff_id, str(seq), {"verdict": "justified"})
    assert sealed is not None and COMMENT.encode() not in bytes(sealed)
    assert COMMENT.encode() not in raw_bytes(store)
    assert result["review_seq"] > seq and result["state"] == "justified"
    # passed the gate, which recorded it (the record's id, the review action)
    decision = app.db.fetchone(
        "SELECT resource_id, allowed FROM {t}anxin_access WHERE actor_id = ? AND action = ? ORDER BY id DESC",
        (school.principal.staff_id, access.AUDIT_REVIEW),
    )
    assert decision == (case_id, 1)
    # no longer waiting; the audit's break-glass list shows who said what
    assert audit.pending_review_count(app, school.principal) == 0
    [row] = [r for r in audit.break_glass_log(app, school.supervisor) if r["seq"] == seq]
    review = row["review"]
    assert (review["state"], review["state_label"], review["reviewer"], review["comment"]) == (
        "justified",
        "合理",
        "钱校长",
        COMMENT,
    )
    assert review["reviewed_at"] == clock.now
    # and the whole trail still verifies
    report = audit.verify(app)
    assert report.ok, report.summary()


def test_a_use_is_reviewed_once_and_a_second_review_is_refused_without_a_trace_of_it(
    app: Anxin, school: School, clock: Clock
) -> None:
    other_sup = second_supervisor(app)
    case_id = a_case(app, school, clock)
    app.cases.get_case(school.supervisor, case_id, break_glass=REASON)
    [(seq, _a, _s)] = break_glass_entries(app, school.supervisor)
    audit.review_break_glass(app, other_sup, seq, "unjustified", "与该校的投诉无关")

    with pytest.raises(AlreadyReviewed):
        audit.review_break_glass(app, school.principal, seq, "justified", "")

    assert [(a, d["verdict"]) for a, _s, d, _x in reviews_of(app, seq)] == [(other_sup.staff_id, "unjustified")]
    state = audit.review_states(app, [seq])[seq]
    assert (state["state"], state["reviewer_id"], state["comment"]) == (
        "unjustified",
        other_sup.staff_id,
        "与该校的投诉无关",
    )


def test_the_user_and_an_administrator_cannot_review_and_their_refusal_is_recorded(
    app: Anxin, school: School, clock: Clock
) -> None:
    case_id = a_case(app, school, clock)
    app.cases.get_case(school.supervisor, case_id, break_glass=REASON)
    [(seq, _a, _s)] = break_glass_entries(app, school.supervisor)

    for who in (school.supervisor, ADMIN, school.safety):
        with pytest.raises(PermissionDenied):
            audit.review_break_glass(app, who, seq, "justified", "本人认为合理")
        refused = app.db.fetchone(
            "SELECT allowed, resource_id FROM {t}anxin_access WHERE actor_id = ? AND action = ? ORDER BY id DESC",
            (who.staff_id, access.AUDIT_REVIEW),
        )
        assert refused == (0, case_id)
    assert reviews_of(app, seq) == []
    assert audit.review_states(app, [seq])[seq]["state"] == "pending"


def test_bad_input_to_a_review_is_refused_in_words_and_changes_nothing(
    app: Anxin, school: School, clock: Clock
) -> None:
    case_id = a_case(app, school, clock)
    app.cases.get_case(school.supervisor, case_id, break_glass=REASON)
    [(seq, _a, _s)] = break_glass_entries(app, school.supervisor)

    with pytest.raises(InvalidInput, match="不合理时请写明原因"):
        audit.review_break_glass(app, school.principal, seq, "unjustified", "  ")
    with pytest.raises(InvalidInput, match="复核结论"):
        audit.review_break_glass(app, school.principal, seq, "maybe", "")
    with pytest.raises(NotFound):
        audit.review_break_glass(app, school.principal, seq + 100_000, "justified", "")

    assert reviews_of(app, seq) == []
    assert audit.pending_review_count(app, school.principal) == 1


def test_two_reviewers_at_once_one_is_refused_and_nothing_is_overwritten(
    store: Store, app: Anxin, school: School, clock: Clock
) -> None:
    # given a use, and two instances of the application (two workers) for two reviewers
    other_sup = second_supervisor(app)
    case_id = a_case(app, school, clock)
    app.cases.get_case(school.supervisor, case_id, break_glass=REASON)
    [(seq, _a, _s)] = break_glass_entries(app, school.supervisor)
    second = store.open(clock)
    # both have read the use as pending and passed the gate before either writes: each
    # instance's gate waits at the barrier after deciding (the read-check-write race)
    barrier = threading.Barrier(2, timeout=30)
    for instance in (app, second):
        decide_then_wait(instance, barrier)
    outcomes: dict[str, str] = {}

    def review(instance: Anxin, who: Actor, verdict: str, comment: str) -> None:
        try:
            audit.review_break_glass(instance, who, seq, verdict, comment)
            outcomes[who.staff_id] = "reviewed"
        except AlreadyReviewed:
            outcomes[who.staff_id] = "refused"

    threads = [
        threading.Thread(target=review, args=(app, school.principal, "justified", "合理")),
        threading.Thread(target=review, args=(second, other_sup, "unjustified", "查阅范围过宽")),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    # then exactly one review stands, the other was refused, and what stands is the winner's
    assert sorted(outcomes.values()) == ["refused", "reviewed"]
    [winner] = [who for who, o in outcomes.items() if o == "reviewed"]
    entries = reviews_of(app, seq)
    assert [a for a, *_ in entries] == [winner]
    state = audit.review_states(app, [seq])[seq]
    assert state["reviewer_id"] == winner and state["state"] == entries[0][2]["verdict"]
    assert audit.verify(app).ok


def decide_then_wait(instance: Anxin, barrier: threading.Barrier) -> None:
    """This instance's gate, once it has decided a review, waits for the other's (so both
    have read the use as pending before either writes)."""
    gate = instance.gate
    decide = gate.authorize

    def authorize(actor: Actor, action: str, *args: Any, **kwargs: Any) -> Any:
        decision = decide(actor, action, *args, **kwargs)
        if action == access.AUDIT_REVIEW:
            barrier.wait()
        return decision

    gate.authorize = authorize  # type: ignore[method-assign]


def test_shredding_the_record_erases_the_reason_and_the_comment_the_review_stays(
    app: Anxin, school: School, clock: Clock
) -> None:
    case_id = a_case(app, school, clock)
    app.cases.get_case(school.supervisor, case_id, break_glass=REASON)
    [(seq, _a, _s)] = break_glass_entries(app, school.supervisor)
    audit.review_break_glass(app, school.principal, seq, "justified", COMMENT)

    app.erasure.shred(ADMIN, case_id, "保存期限届满")

    [row] = [r for r in audit.break_glass_log(app, school.supervisor) if r["seq"] == seq]
    assert row["break_glass"] == "已删除"
    assert (row["review"]["state"], row["review"]["comment"]) == ("justified", "已删除")
    assert audit.verify(app).ok


def test_uses_from_before_reviews_existed_wait_for_review_once_the_store_is_opened(
    store: Store, app: Anxin, school: School, clock: Clock
) -> None:
    # given a store whose trail held a break-glass use before there was a review state
    case_id = a_case(app, school, clock)
    app.cases.get_case(school.supervisor, case_id, break_glass=REASON)
    [(seq, _a, _s)] = break_glass_entries(app, school.supervisor)
    raw = Raw(store, app)
    raw("DELETE FROM {t}anxin_break_glass_reviews")
    raw("DELETE FROM {t}anxin_audit_meta WHERE name = 'break_glass_reviews'")

    # when the store is opened again
    fresh = store.open(clock)

    # then that use waits for review, once (opening again adds nothing)
    assert [u.seq for u in audit.review_queue(fresh, school.principal)] == [seq]
    store.open(clock)
    assert fresh.db.fetchone("SELECT COUNT(*) FROM {t}anxin_break_glass_reviews")[0] == 1
