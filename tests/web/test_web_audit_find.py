"""The supervisor finds a record on the audit page by the number every page shows (or a
student by school and student number), with a stated reason, and reads its history in
words; the trail's verification from the page. And the labels: every event topic ever
stored has one."""

from __future__ import annotations

import csv
import io
import json
import re
import uuid
from datetime import date, timedelta
from pathlib import Path

from web_support import DemoSite

from anxin.audit import labels
from anxin.audit.chain import KINDS
from domain.access import ACTION_LABELS

TOPICS = Path(__file__).resolve().parents[1] / "event_topics.txt"
SCHOOL_TIME = re.compile(r"\d{4}年\d{1,2}月\d{1,2}日 \d{2}:\d{2}")
ISO_TIME = re.compile(r">\s*\d{4}-\d{2}-\d{2}T\d{2}:\d{2}")


def _actor(site: DemoSite, username: str):  # type: ignore[no-untyped-def]
    return site.app.gate.actor(site.app.accounts.account(username)[0])


def _student(site: DemoSite) -> str:
    """A student of the class teacher teacher1's class."""
    teacher, admin = _actor(site, "teacher1"), _actor(site, "admin")
    return str(
        next(
            s
            for s in site.app.roster.list_students(admin, teacher.school_id)
            if s.class_name in teacher.classes and not s.erased
        ).id
    )


def _new_case(site: DemoSite) -> str:
    teacher = _actor(site, "teacher1")
    return site.app.cases.report_bullying(
        teacher,
        school_id=teacher.school_id,
        channel="teacher",
        occurred_at=site.app.now() - timedelta(hours=1),
        place="操场",
        forms=["verbal"],
        parties=[(_student(site), "targeted")],
        narrative="课间被同学起外号 " + uuid.uuid4().hex[:6],
    )


# This run's own reason: the demo store is shared with other tests (the browser's supervisor
# states a reason of the same words), so a list is searched for this one only.
REASON = "核查家长投诉 " + uuid.uuid4().hex[:6]


def _find(b, **fields):  # type: ignore[no-untyped-def]
    return b.post("/audit/find", {"way": "case", "reason": REASON, **fields})


# -- the labels ---------------------------------------------------------------------------------------
def test_every_event_topic_ever_stored_has_a_chinese_label() -> None:
    topics = [t.strip() for t in TOPICS.read_text(encoding="utf-8").splitlines() if t.strip() and not t.startswith("#")]
    assert len(topics) > 50
    missing = [t for t in topics if t not in labels.TOPIC_LABELS]
    assert not missing, missing
    assert labels.topic_label("domain.bullying:BullyingCase.Reported") == "报告疑似欺凌（案件创建）"
    assert labels.topic_label("domain.bullying:BullyingCase.InvestigationStarted") == "开始调查"
    assert all(re.search(r"[\u4e00-\u9fff]", labels.TOPIC_LABELS[t]) for t in topics)


def test_every_action_and_entry_kind_has_a_chinese_label() -> None:
    from domain import access

    actions = {v for k, v in vars(access).items() if k.isupper() and isinstance(v, str) and "." in v or v == "shred"}
    assert actions <= set(ACTION_LABELS)
    assert labels.action_label("case.read") == "查看案件全部内容"
    assert set(KINDS) <= set(labels.ENTRY_KIND_LABELS)
    assert labels.kind_label("access") == "访问" and labels.kind_label("event") == "记录"


# -- finding a record -------------------------------------------------------------------------------
NUMBER = re.compile(r"QL-\d{4}-\d{4,}")


def _board_number(site: DemoSite, browse, case_id: str) -> str:  # type: ignore[no-untyped-def]
    """The number the school's case board shows for the case (as its safety lead reads it)."""
    board = browse("safety1").get("/cases")
    found = re.search(rf'href="/cases/{case_id}">([^<]+)</a>', board.text)
    assert found, "the case is not on the board"
    return found.group(1)


def _reads(site: DemoSite, supervisor_id: str, stream_id: str) -> int:
    """The supervisor's audit reads of one record, with a reason sealed with the decision."""
    return int(
        site.app.db.fetchone(
            "SELECT COUNT(*) FROM {t}anxin_access WHERE actor_id = ? AND action = 'audit.read' AND resource_id = ?",
            (supervisor_id, stream_id),
        )[0]
    )


def test_the_number_shown_on_the_board_finds_the_case_and_the_history_reads_in_words(site: DemoSite, browse) -> None:
    case_id = _new_case(site)
    supervisor = _actor(site, "supervisor1")
    number = _board_number(site, browse, case_id)
    assert NUMBER.fullmatch(number)
    school = site.app.record_numbers([case_id])[case_id].school
    b = browse("supervisor1")

    page = _find(b, number=number)

    assert page.status_code == 200, page.text[-2000:]
    text = page.text
    assert f"欺凌案件 {number} · {school} 的完整历史" in text
    assert "报告疑似欺凌（案件创建）" in text
    teacher_name = site.app.roster.staff_name(site.app.accounts.account("teacher1")[0])
    assert teacher_name in text  # who reported, by name
    assert SCHOOL_TIME.search(text) and not ISO_TIME.search(text)  # times in school time, in words
    assert ">access<" not in text and ">event<" not in text
    # the stated reason is kept, sealed, with the gate's decision about the lookup
    sealed = site.app.db.fetchone(
        "SELECT COUNT(*) FROM {t}anxin_access WHERE actor_id = ? AND action = 'audit.read' AND resource_id = ? "
        "AND break_glass IS NOT NULL",
        (supervisor.staff_id, case_id),
    )[0]
    assert sealed == 1
    # and it is no break-glass: the break-glass list does not show it
    again = _find(b, number=case_id)  # a full id still works
    assert again.status_code == 200 and REASON in again.text  # the first lookup, with its reason
    old = _find(b, number=case_id[:8])  # and the 8 digits pages showed before
    assert old.status_code == 200 and f"欺凌案件 {number} · {school} 的完整历史" in old.text
    assert REASON not in b.get("/audit?what=break-glass").text


def test_a_number_is_found_however_it_is_typed(site: DemoSite, browse) -> None:
    case_id = _new_case(site)
    number = site.app.record_numbers([case_id])[case_id]
    b = browse("supervisor1")
    spellings = [
        f"ql-{number.year}-{number.seq}",
        f"QL{number.year}{number.seq:04d}",
        f" Ql {number.year} {number.seq:06d} ",
        "ＱＬ－" + "".join(chr(ord(c) + 0xFEE0) for c in f"{number.year}") + f"－{number.seq}",
    ]
    for typed in spellings:
        page = _find(b, number=typed)
        assert page.status_code == 200, (typed, page.text[-1500:])
        assert f"欺凌案件 {number.text} · {number.school} 的完整历史" in page.text, typed


def test_a_number_of_two_records_lists_both_to_choose(site: DemoSite, browse) -> None:
    case_id = _new_case(site)
    twin = case_id[:9] + uuid.uuid4().hex[:4] + case_id[13:]
    school = _actor(site, "teacher1").school_id
    with site.app.db.transaction() as c:
        c.execute(
            site.app.db.q("INSERT INTO {t}anxin_directory (stream_id, kind, school_id) VALUES (?, 'case', ?)"),
            (twin, school),
        )
    try:
        b = browse("supervisor1")
        page = _find(b, number=case_id[:8].upper())
        assert page.status_code == 409
        assert f"编号 {case_id[:8].upper()} 对应多条记录，请选择其中一条" in page.text
        assert page.text.count('action="/audit/find"') >= 3  # the search, and one choice per record
        assert f'value="{case_id}"' in page.text and f'value="{twin}"' in page.text
        chosen = b.post("/audit/find", {"way": "case", "reason": REASON, "stream": case_id})
        assert chosen.status_code == 200 and "报告疑似欺凌（案件创建）" in chosen.text
    finally:
        with site.app.db.transaction() as c:
            c.execute(site.app.db.q("DELETE FROM {t}anxin_directory WHERE stream_id = ?"), (twin,))


def test_a_number_that_two_schools_of_the_district_have_asks_which_school(site: DemoSite, browse) -> None:
    # given a case, and a record of another school of the district with the same number
    case_id = _new_case(site)
    number = site.app.record_numbers([case_id])[case_id]
    other = next(sid for sid, _, district in site.app.schools() if sid != number.school_id and district == "安心区")
    other_name = dict((sid, name) for sid, name, _ in site.app.schools())[other]
    twin = str(uuid.uuid4())
    with site.app.db.transaction() as c:
        c.execute(
            site.app.db.q(
                "INSERT INTO {t}anxin_numbers (stream_id, kind, school_id, year, seq) VALUES (?, 'case', ?, ?, ?)"
            ),
            (twin, other, number.year, number.seq),
        )
    try:
        b = browse("supervisor1")
        # when the number is typed without a school
        page = _find(b, number=number.text)
        # then both schools are listed to choose, and nothing was read
        assert page.status_code == 409, page.text[-1500:]
        assert f"编号 {number.text} 对应多条记录，请选择其中一条" in page.text
        assert number.school in page.text and other_name in page.text
        assert "报告疑似欺凌（案件创建）" not in page.text
        # and with the school chosen, it is the case of that school
        chosen = _find(b, number=number.text.lower(), in_school=number.school_id)
        assert chosen.status_code == 200 and f"欺凌案件 {number.text} · {number.school} 的完整历史" in chosen.text
        # a school that has no such number says so
        missing = _find(b, number="QL-1999-0001", in_school=number.school_id)
        assert missing.status_code == 404 and "所选学校没有编号为 QL-1999-0001 的记录" in missing.text
    finally:
        with site.app.db.transaction() as c:
            c.execute(site.app.db.q("DELETE FROM {t}anxin_numbers WHERE stream_id = ?"), (twin,))


def test_an_unknown_or_malformed_number_or_no_reason_is_said_in_chinese(site: DemoSite, browse) -> None:
    b = browse("supervisor1")
    unknown = _find(b, number="0000abcd")
    assert unknown.status_code == 404 and "本区没有编号为 0000abcd 的记录" in unknown.text
    unknown = _find(b, number="XL-1999-0001")
    assert unknown.status_code == 404 and "本区没有编号为 XL-1999-0001 的记录" in unknown.text
    bad = _find(b, number="张三")
    assert bad.status_code == 400 and "编号应为页面上显示的编号，例如 QL-2026-0003" in bad.text
    case_id = _new_case(site)
    no_reason = _find(b, number=site.app.record_numbers([case_id])[case_id].text, reason="看看")
    assert (
        no_reason.status_code == 400
        and "请写明调阅原因（如：核查家长投诉、上级交办的复查），不少于6个字" in no_reason.text
    )
    assert "报告疑似欺凌" not in no_reason.text
    b.get("/lang/en?next=/audit")
    english = _find(b, number="0000abcd")
    assert "No record of this district has the number 0000abcd" in english.text
    b.get("/lang/zh?next=/audit")


# -- every way into a history asks for the reason first --------------------------------------------------
def test_a_link_to_a_history_opens_the_search_with_the_record_chosen_and_reads_nothing(site: DemoSite, browse) -> None:
    # given a case a supervisor opened with a break-glass reason: a row of the break-glass list
    case_id = _new_case(site)
    supervisor = _actor(site, "supervisor1")
    number = site.app.record_numbers([case_id])[case_id]
    site.app.cases.get_case(supervisor, case_id, break_glass="核查家长投诉 " + uuid.uuid4().hex[:6])
    b = browse("supervisor1")
    listing = b.get("/audit?what=break-glass")
    assert f"{number.text} · {number.school}" in listing.text  # the row names the record by its number
    link = f"/audit?what=case-history&amp;id={case_id}"
    assert link in listing.text
    reads = _reads(site, supervisor.staff_id, case_id)

    # when the supervisor follows the link
    page = b.get(link.replace("&amp;", "&"))

    # then the search form comes with the record chosen (its number, its school), and
    # nothing of its history is read or shown, nor recorded as read
    assert page.status_code == 200
    assert f'name="number" value="{number.text}"' in page.text
    assert f'<option value="{number.school_id}" selected>' in page.text
    assert f"已选记录：欺凌案件 {number.text} · {number.school}" in page.text
    assert "audit-history" not in page.text and "报告疑似欺凌" not in page.text
    assert _reads(site, supervisor.staff_id, case_id) == reads
    # and with a reason stated, the same form reads it
    read = b.post(
        "/audit/find", {"way": "case", "reason": REASON, "number": number.text, "in_school": number.school_id}
    )
    assert read.status_code == 200 and "报告疑似欺凌（案件创建）" in read.text
    assert _reads(site, supervisor.staff_id, case_id) == reads + 1
    # a record of no number (a student) is chosen by the form itself, without showing its id
    student = _student(site)
    student_reads = _reads(site, supervisor.staff_id, student)
    chosen = b.get(f"/audit?what=case-history&id={student}")
    assert chosen.status_code == 200 and f'name="stream" value="{student}"' in chosen.text
    assert "已选记录：学生信息" in chosen.text and 'name="number" value=""' in chosen.text
    assert _reads(site, supervisor.staff_id, student) == student_reads
    # an id of no record of the district is said so
    assert b.get(f"/audit?what=case-history&id={uuid.uuid4()}").status_code == 404
    # and the history's CSV is never a GET
    assert b.get(f"/audit.csv?what=case-history&id={case_id}").status_code == 400
    assert _reads(site, supervisor.staff_id, case_id) == reads + 1


def test_a_student_is_found_by_school_and_student_number(site: DemoSite, browse) -> None:
    admin, teacher = _actor(site, "admin"), _actor(site, "teacher1")
    no = "A" + uuid.uuid4().hex[:7]
    sid = site.app.roster.enrol_student(
        admin,
        school_id=teacher.school_id,
        student_no=no,
        name="审计" + uuid.uuid4().hex[:3],
        gender="女",
        birth_date=date(2012, 3, 1),
        grade="七年级",
        class_name="七年级1班",
    )
    site.app.roster.get_student(teacher, sid)
    b = browse("supervisor1")
    page = b.post(
        "/audit/find", {"way": "student", "school": teacher.school_id, "student_no": no, "reason": "核查访问情况"}
    )
    assert page.status_code == 200, page.text[-1500:]
    assert "查看学生身份信息" in page.text  # the class teacher's read, in words
    assert site.app.roster.staff_name(teacher.staff_id) in page.text
    # and its CSV is who accessed the student, recorded as such an export
    exported = b.post("/audit/history.csv", {"way": "student", "stream": sid, "reason": "核查访问情况"})
    assert exported.status_code == 200
    assert "student.read" in exported.text and "student-access" in exported.headers["content-disposition"]
    [detail] = site.app.db.fetchone(
        "SELECT detail FROM {t}anxin_audit WHERE kind = 'export' AND subject = ? ORDER BY seq DESC LIMIT 1", (sid,)
    )
    assert json.loads(detail)["what"] == "student-access"
    missing = b.post(
        "/audit/find", {"way": "student", "school": teacher.school_id, "student_no": "NOPE-1", "reason": "核查访问情况"}
    )
    assert missing.status_code == 404 and "该校没有学号为 NOPE-1 的学生" in missing.text


def test_school_staff_cannot_search_the_trail(site: DemoSite, browse) -> None:
    r = browse("principal1").post("/audit/find", {"way": "case", "number": "0000abcd", "reason": "核查家长投诉"})
    assert r.status_code == 403


# -- verification ---------------------------------------------------------------------------------
def test_the_supervisor_verifies_the_chain_from_the_page(site: DemoSite, browse) -> None:
    from anxin import audit

    if not audit.signing_key_path(site.app.config).exists():
        audit.create_signing_key(site.app.config)
    site.app.checkpoint("system")
    b = browse("supervisor1")
    before = b.get("/audit")
    assert "最近的签名检查点" in before.text and 'action="/audit/verify"' in before.text
    supervisor = _actor(site, "supervisor1")
    reads = "SELECT COUNT(*) FROM {t}anxin_access WHERE actor_id = ? AND action = 'audit.read' AND resource_kind = 'district'"
    n = site.app.db.fetchone(reads, (supervisor.staff_id,))[0]

    page = b.post("/audit/verify", {})

    assert page.status_code == 200, page.text[-1500:]
    assert "核验通过" in page.text and "审计记录完整，未被改动" in page.text
    assert site.app.db.fetchone(reads, (supervisor.staff_id,))[0] == n + 1  # the verification, through the gate
    # and the verification is an entry of the trail of its own: who, when, what it found
    seq, at, detail = site.app.db.fetchone(
        "SELECT seq, at, detail FROM {t}anxin_audit WHERE kind = 'audit_verify' AND actor_id = ? "
        "ORDER BY seq DESC LIMIT 1",
        (supervisor.staff_id,),
    )
    found = json.loads(detail)
    assert found["result"] == "ok" and 0 < found["head_seq"] < seq and SCHOOL_TIME.search(page.text)
    assert labels.kind_label("audit_verify") == "核验审计记录"
    assert "审计记录中最近一次核验" in page.text and "结果完整（核验到第" in page.text
    assert "核验通过" in b.get("/audit").text  # the last result stays on the page
    assert b.post("/audit/verify", {}, csrf=False).status_code == 403
    assert browse("principal1").post("/audit/verify", {}).status_code == 403


# -- the history printed and exported ---------------------------------------------------------------
def test_the_history_prints_with_its_header_and_exports_as_csv_with_the_same_reason(site: DemoSite, browse) -> None:
    # given a case that a supervisor opened with a reason a spreadsheet would run as a formula
    case_id = _new_case(site)
    supervisor = _actor(site, "supervisor1")
    link = f'=HYPERLINK("http://x/{uuid.uuid4().hex}")'
    site.app.cases.get_case(supervisor, case_id, break_glass=link)
    number = site.app.record_numbers([case_id])[case_id]
    b = browse("supervisor1")

    # when its history is found with a reason
    page = b.post("/audit/find", {"way": "case", "reason": REASON, "number": number.text})

    # then the page carries a header for paper: the number, the school, the reason, who and when
    assert page.status_code == 200
    head = page.text[page.text.index('class="history-head"') : page.text.index('class="audit-history"')]
    for shown in (
        number.text,
        number.school,
        REASON,
        site.app.roster.staff_name(supervisor.staff_id),
        "安心 · 审计记录",
    ):
        assert shown in head, shown
    assert SCHOOL_TIME.search(head)
    # and the print stylesheet leaves out the menu, the forms and the footer, and shows the header
    css = b.get("/static/app.css").text
    printing = css[css.index("@media print") :]
    assert "header.top, footer, nav, form, .no-print { display:none !important; }" in printing
    assert ".print-only { display:block; }" in printing and "break-inside:avoid" in printing

    # when the supervisor downloads it as CSV (a POST with the same reason)
    exports = "SELECT COUNT(*) FROM {t}anxin_audit WHERE kind = 'export' AND subject = ?"
    before_exports, before_reads = (
        site.app.db.fetchone(exports, (case_id,))[0],
        _reads(site, supervisor.staff_id, case_id),
    )
    r = b.post("/audit/history.csv", {"way": "case", "stream": case_id, "reason": REASON})

    # then it is the history, every cell safe in a spreadsheet, the record by its number
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert number.text in r.headers["content-disposition"]
    header, *rows = list(csv.reader(io.StringIO(r.text.lstrip("\ufeff"))))
    assert "编号" in header and rows
    assert {row[header.index("编号")] for row in rows} == {f"{number.text} {number.school}"}
    reasons = [row[header.index("调阅理由")] for row in rows]
    assert "'" + link in reasons and link not in reasons
    assert not any(cell.startswith(("=", "+", "-", "@", "\t", "\r")) for row in rows for cell in row)
    # and it was read with the reason (sealed with the gate's decision) and recorded as an export
    assert _reads(site, supervisor.staff_id, case_id) == before_reads + 1
    assert site.app.db.fetchone(exports, (case_id,))[0] == before_exports + 1
    [detail] = site.app.db.fetchone(
        "SELECT detail FROM {t}anxin_audit WHERE kind = 'export' AND subject = ? ORDER BY seq DESC LIMIT 1", (case_id,)
    )
    assert json.loads(detail) == {"rows": len(rows), "what": "case-history"}

    # without a reason nothing is read, exported or recorded
    refused = b.post("/audit/history.csv", {"way": "case", "stream": case_id, "reason": "看"})
    assert refused.status_code == 400 and "请写明调阅原因" in refused.text
    assert site.app.db.fetchone(exports, (case_id,))[0] == before_exports + 1
    assert _reads(site, supervisor.staff_id, case_id) == before_reads + 1
    # and school staff cannot export a history
    assert browse("principal1").post("/audit/history.csv", {"stream": case_id, "reason": REASON}).status_code == 403


def test_the_api_reads_a_history_only_with_a_stated_reason(site: DemoSite, browse) -> None:
    case_id = _new_case(site)
    supervisor = _actor(site, "supervisor1")
    b = browse("supervisor1")
    reads = _reads(site, supervisor.staff_id, case_id)

    refused = b.api("GET", "/api/v1/audit/case-history", params={"id": case_id})
    assert refused.status_code == 400 and "请写明调阅原因" in refused.text
    assert _reads(site, supervisor.staff_id, case_id) == reads

    read = b.api("GET", "/api/v1/audit/case-history", params={"id": case_id, "reason": REASON})
    assert read.status_code == 200, read.text[-500:]
    assert any(r["what"] == "domain.bullying:BullyingCase.Reported" for r in read.json())
    assert _reads(site, supervisor.staff_id, case_id) == reads + 1
