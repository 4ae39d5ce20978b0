"""Every page names a case, a support file or a pairing by its number (QL-2026-0003,
anxin.numbers), the one a teacher reads aloud and a supervisor types: the case board, the
case page, a class teacher's status line, the support register and file, the pairing board
and page, a student's timeline and the work queue; a district reader sees the school beside
it. Never the fragment of an id the pages showed before."""

from __future__ import annotations

import re
import uuid
from datetime import date, timedelta
from typing import Any

from web_support import DemoSite

from domain.common import Actor

NUMBER = {"case": r"QL-\d{4}-\d{4,}", "file": r"XL-\d{4}-\d{4,}", "pairing": r"JD-\d{4}-\d{4,}"}


def _actor(site: DemoSite, username: str) -> Actor:
    return site.app.gate.actor(site.app.accounts.account(username)[0])


def _new_student(site: DemoSite) -> str:
    """A student of teacher1's class of this test's own (no other test has a file or a pairing for them)."""
    teacher = _actor(site, "teacher1")
    return site.app.roster.enrol_student(
        _actor(site, "admin"),
        school_id=teacher.school_id,
        student_no="N" + uuid.uuid4().hex[:9],
        name="编号" + uuid.uuid4().hex[:3],
        gender="女",
        birth_date=date(2012, 4, 1),
        grade="七年级",
        class_name=sorted(teacher.classes)[0],
    )


def _number(site: DemoSite, stream_id: str, kind: str) -> str:
    found = site.app.record_numbers([stream_id])[stream_id]
    assert re.fullmatch(NUMBER[kind], found.text)
    return found.text


def _no_id_fragment(text: str, stream_id: str) -> None:
    """The id's first 8 digits are no longer shown as the number (a link may carry the id)."""
    assert f">{stream_id[:8]}<" not in text and f" {stream_id[:8]} " not in text


def test_a_case_is_named_by_its_number_on_the_board_its_page_the_status_line_and_the_timeline(
    site: DemoSite, browse: Any
) -> None:
    student = _new_student(site)
    teacher = _actor(site, "teacher1")
    case_id = site.app.cases.report_bullying(
        teacher,
        school_id=teacher.school_id,
        channel="teacher",
        occurred_at=site.app.now() - timedelta(hours=1),
        place="走廊",
        forms=["verbal"],
        parties=[(student, "targeted")],
        narrative="被起外号 " + uuid.uuid4().hex[:6],
    )
    number = _number(site, case_id, "case")
    safety = browse("safety1")

    board = safety.get("/cases")
    assert board.status_code == 200 and f'<a href="/cases/{case_id}">{number}</a>' in board.text
    assert "案件编号" in board.text
    page = safety.get(f"/cases/{case_id}")
    assert page.status_code == 200 and f"<h1>欺凌案件 {number} " in page.text
    assert re.search(rf"<title>欺凌案件 {number} ", page.text)
    _no_id_fragment(page.text, case_id)

    own = browse("teacher1")
    status = own.get(f"/cases/{case_id}")  # the class teacher: the status line only
    assert status.status_code == 200 and f"<dd>{number}</dd>" in status.text
    timeline = own.get(f"/students/{student}")
    assert timeline.status_code == 200 and f'<span class="number">{number}</span>' in timeline.text

    # a district reader (a supervisor, with a stated reason) sees the school beside it
    school = site.app.record_numbers([case_id])[case_id].school
    opened = browse("supervisor1").post(f"/cases/{case_id}/open", {"break_glass_reason": "核查家长投诉的处理"})
    assert opened.status_code == 200 and f"<h1>欺凌案件 {number} · {school} " in opened.text


def test_a_support_file_is_named_by_its_number_in_the_caseload_the_register_and_on_its_page(
    site: DemoSite, browse: Any
) -> None:
    student = _new_student(site)
    file_id = site.app.support.open_support_file(
        _actor(site, "counselor1"), student, category="情绪困扰", risk_level="key", reason="近期情绪低落"
    )
    number = _number(site, file_id, "file")
    counselor = browse("counselor1")

    listing = counselor.get("/support")
    assert listing.status_code == 200
    assert listing.text.count(f'<a href="/support/{file_id}">{number}</a>') == 2  # my files, and the register
    assert "档案编号" in listing.text
    page = counselor.get(f"/support/{file_id}")
    assert page.status_code == 200 and f'<dd id="file-number">{number}</dd>' in page.text
    _no_id_fragment(page.text, file_id)
    timeline = counselor.get(f"/students/{student}")
    assert timeline.status_code == 200 and number in timeline.text
    # and in the counselor's work queue, where the file's review waits
    home = counselor.get("/")
    assert home.status_code == 200 and re.search(f"<td[^>]*>{number}</td>", home.text)


def test_a_pairing_is_named_by_its_number_on_the_boards_and_its_page(site: DemoSite, browse: Any) -> None:
    student = _new_student(site)
    teacher = _actor(site, "teacher1")
    pairing_id = site.app.pairings.pair(_actor(site, "principal1"), staff_id=teacher.staff_id, student_id=student)
    number = _number(site, pairing_id, "pairing")

    mine = browse("teacher1").get("/pairings")
    assert mine.status_code == 200 and f'<a href="/pairings/{pairing_id}">{number}</a>' in mine.text
    assert "结对编号" in mine.text
    page = browse("teacher1").get(f"/pairings/{pairing_id}")
    assert page.status_code == 200 and f'<dd id="pairing-number">{number}</dd>' in page.text
    _no_id_fragment(page.text, pairing_id)
    school_board = browse("principal1").get(f"/pairings?class={sorted(teacher.classes)[0]}")
    assert school_board.status_code == 200 and f'<a href="/pairings/{pairing_id}">{number}</a>' in school_board.text
