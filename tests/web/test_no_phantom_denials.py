"""A refused decision in the audit trail means somebody asked for something and was refused.

Pages that show only what a viewer may see (a student's timeline leaving out the screenings
or pairings the viewer may not read, a board of only their classes' cases, a work queue)
must not record refusals for what they quietly left out: otherwise the supervisor's list
of refused accesses fills with accesses nobody attempted.

Every role of the demo district opens every page and API read it may open (the GET rows of
the permission matrix, which lists every route, plus the timelines of the students with the
most records); whatever answers other than 403 must leave no refused decision in the trail.
A real refusal (a class teacher asking for another class's student) still is one.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from test_permission_matrix import MATRIX, QUERIES, ROLES
from web_support import DemoSite

# Students whose timelines gather the most records of other kinds (opened by everyone too).
BUSY = ["busy_own_student", "busy_other_student", "busy_file_student", "paired_screened_student"]


def _refusals(site: DemoSite, staff_id: str) -> list[tuple[str, str | None]]:
    """The person's refused `access` entries of the audit trail: (action, resource id)."""
    rows = site.app.db.fetch(
        "SELECT seq, subject, detail FROM {t}anxin_audit WHERE kind = 'access' AND actor_id = ? ORDER BY seq",
        (staff_id,),
    )
    out = []
    for _seq, subject, detail in rows:
        d = json.loads(detail)
        if not d["allowed"]:
            out.append((d["action"], subject or None))
    return out


def _staff_id(site: DemoSite, username: str) -> str:
    return str(site.app.accounts.account(username)[0])


def _ids(site: DemoSite) -> dict[str, str]:
    """Records of school 1 for the matrix's placeholders, read from the directory (ids
    only, no decision of the gate): nothing is made for this test."""
    db = site.app.db
    teacher1, teacher2, counselor1 = (_staff_id(site, u) for u in ("teacher1", "teacher2", "counselor1"))
    school = db.fetchone("SELECT school_id FROM {t}anxin_staff WHERE staff_id = ?", (teacher1,))[0]

    def streams(kind: str, **where: str) -> list[str]:
        sql = "SELECT stream_id FROM {t}anxin_directory WHERE kind = ? AND school_id = ? AND erased = 0"
        args: list[Any] = [kind, school]
        for column, value in where.items():
            sql += f" AND {column} = ?"
            args.append(value)
        return [r[0] for r in db.fetch(sql + " ORDER BY stream_id", tuple(args))]

    def classes_of(stream_id: str) -> set[str]:
        return {
            r[0]
            for r in db.fetch(
                "SELECT s.class_name FROM {t}anxin_links l JOIN {t}anxin_directory s ON s.stream_id = l.student_id "
                "WHERE l.stream_id = ?",
                (stream_id,),
            )
            if r[0]
        }

    def kinds_linked(student_id: str) -> int:
        return db.fetchone(
            "SELECT COUNT(DISTINCT d.kind) * 100 + COUNT(*) FROM {t}anxin_links l "
            "JOIN {t}anxin_directory d ON d.stream_id = l.stream_id WHERE l.student_id = ? AND d.erased = 0",
            (student_id,),
        )[0]

    def linked_kinds(student_id: str) -> set[str]:
        return {
            r[0]
            for r in db.fetch(
                "SELECT d.kind FROM {t}anxin_links l JOIN {t}anxin_directory d ON d.stream_id = l.stream_id "
                "WHERE l.student_id = ? AND d.erased = 0",
                (student_id,),
            )
        }

    own_class = streams("student", class_name="七年级1班")
    other_class = streams("student", class_name="七年级2班")
    cases = streams("case")
    files = streams("file", owner_id=counselor1)
    file_students = [
        r[0]
        for r in db.fetch(
            "SELECT l.student_id FROM {t}anxin_links l WHERE l.stream_id IN ("
            + ",".join("?" * len(files))
            + ") ORDER BY l.student_id",
            tuple(files),
        )
    ]

    def part_of(part: str, staff_id: str) -> str:
        """A file teacher1 has a part on (escalated it, is its 包联人), else counselor1's first."""
        row = db.fetchone(
            "SELECT s.stream_id FROM {t}anxin_stream_staff s JOIN {t}anxin_directory d ON d.stream_id = s.stream_id "
            "WHERE s.part = ? AND s.staff_id = ? AND d.erased = 0 ORDER BY s.stream_id",
            (part, staff_id),
        )
        return str(row[0]) if row else files[0]

    return {
        "esc_file": part_of("escalated", teacher1),
        "person_file": part_of("person", teacher1),
        "own_student": own_class[0],
        "other_student": other_class[0],
        "busy_own_student": max(own_class, key=kinds_linked),
        "busy_other_student": max(other_class, key=kinds_linked),
        "busy_file_student": max(file_students, key=kinds_linked),
        "paired_screened_student": next(
            s for s in own_class + other_class if {"pairing", "screening"} <= linked_kinds(s)
        ),
        "own_pairing": streams("pairing", owner_id=teacher1)[0],
        "other_pairing": streams("pairing", owner_id=teacher2)[0],
        "class_case": next(c for c in cases if "七年级1班" in classes_of(c)),
        "other_case": next(c for c in cases if "七年级1班" not in classes_of(c)),
        "c1_file": files[0],
        "spare_staff": teacher2,
        "audit_what": "denied",
        "school": school,
    }


def _reads() -> list[tuple[str, dict[str, str]]]:
    """Every GET of the matrix (pages and API), with the audit page's lists and the busy
    students' timelines."""
    gets = [(path, QUERIES.get(path, {})) for method, path, _ in MATRIX if method == "GET"]
    gets += [("/audit", {"what": what}) for what in ("break-glass", "denied")]
    gets += [("/pairings", {"class": "七年级1班"})]
    for key in BUSY:
        gets += [(f"/students/{{{key}}}", {}), (f"/api/v1/students/{{{key}}}/timeline", {})]
    return gets


@pytest.mark.parametrize("role", ROLES)
def test_opening_a_page_records_no_refusal_unless_the_request_was_refused(site: DemoSite, role: str) -> None:
    ids = _ids(site)
    b = site.browser(role)
    me = _staff_id(site, role)
    phantom: list[str] = []
    opened = 0
    for path, query in _reads():
        url = path.format(**ids)
        params = {k: v.format(**ids) for k, v in query.items()}
        before = len(_refusals(site, me))
        if path.startswith("/api/"):
            r = b.api("GET", url, params=params)
        else:
            r = b.get(url, params=params, follow_redirects=False)
        refused = _refusals(site, me)[before:]
        if r.status_code == 403:
            continue  # the request itself was refused: its refusal belongs in the trail
        opened += 1
        if refused:
            phantom.append(f"GET {path} {params or ''} -> {r.status_code}, recorded refusals: {refused}")
    assert opened, f"{role} opened nothing"
    assert not phantom, f"{role}:\n" + "\n".join(phantom)


def test_a_refused_request_is_still_recorded(site: DemoSite) -> None:
    ids = _ids(site)
    b = site.browser("teacher1")
    me = _staff_id(site, "teacher1")
    before = len(_refusals(site, me))
    r = b.get(f"/students/{ids['other_student']}", follow_redirects=False)
    assert r.status_code == 403
    assert _refusals(site, me)[before:] == [("student.read", ids["other_student"])]
    before = len(_refusals(site, me))
    r = b.api("GET", f"/api/v1/students/{ids['other_student']}/timeline")
    assert r.status_code == 403
    assert _refusals(site, me)[before:] == [("student.read", ids["other_student"])]


def test_the_safety_leads_timeline_of_a_busy_student_records_only_what_was_read(site: DemoSite) -> None:
    # given a student with screenings and a pairing, which the safety lead may not read
    ids = _ids(site)
    student = ids["paired_screened_student"]
    me = _staff_id(site, "safety1")
    b = site.browser("safety1")
    last = "SELECT MAX(seq) FROM {t}anxin_audit WHERE kind = 'access' AND actor_id = ?"
    before = site.app.db.fetchone(last, (me,))[0]
    # when they open the timeline
    r = b.get(f"/students/{student}", follow_redirects=False)
    # then it is shown, with allowed reads recorded and no refusal
    assert r.status_code == 200
    rows = [
        json.loads(d)
        for (d,) in site.app.db.fetch(
            "SELECT detail FROM {t}anxin_audit WHERE kind = 'access' AND actor_id = ? AND seq > ? ORDER BY seq",
            (me, before or 0),
        )
    ]
    assert rows and all(d["allowed"] for d in rows), rows
    assert {d["action"] for d in rows} >= {"student.read"}
    assert not {d["action"] for d in rows} & {"screening.read", "pairing.read"}


def test_the_supervisors_denied_list_says_it_lists_refused_requests(site: DemoSite) -> None:
    b = site.browser("supervisor1")
    page = b.get("/audit", params={"what": "denied"})
    assert page.status_code == 200
    assert "被拒绝的请求" in page.text and "略去的内容不记为拒绝" in page.text
    assert "被拒绝的请求" not in b.get("/audit", params={"what": "break-glass"}).text
    b.get("/lang/en?next=/audit")
    english = b.get("/audit", params={"what": "denied"}).text
    assert "Refused requests" in english and "is not recorded as a refusal" in english
