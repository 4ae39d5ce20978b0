"""What a supervisor asks of the trail is itself in the trail: a verification made at their
request is an `audit_verify` entry with what it found (a reviewer sees who verified when,
and the result), and a history exported with a stated reason is read with that reason and
recorded as an `export` entry, each row naming its record by number."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import Clock, School, Store
from store_support import Raw

from anxin import audit
from anxin.service import Anxin
from domain.common import InvalidInput, PermissionDenied


def _verifications(app: Anxin) -> list[tuple[int, str, dict[str, object]]]:
    return [
        (int(seq), actor, json.loads(detail))
        for seq, actor, detail in app.db.fetch(
            "SELECT seq, actor_id, detail FROM {t}anxin_audit WHERE kind = 'audit_verify' ORDER BY seq"
        )
    ]


def _case(app: Anxin, school: School) -> str:
    return app.cases.report_bullying(
        school.teacher,
        school_id=school.id,
        channel="teacher",
        occurred_at=app.now() - timedelta(hours=1),
        place="操场",
        forms=["verbal"],
        parties=[(school.student("2026001"), "targeted")],
        narrative="课间被同学起外号",
    )


def test_a_verification_asked_for_is_an_entry_of_its_own_with_its_result(
    store: Store, app: Anxin, school: School
) -> None:
    _case(app, school)
    # when the supervisor verifies the trail
    report = audit.verify_requested(app, school.supervisor)

    # then an entry of its own says who, and that the trail was intact up to its head
    assert report.ok
    [(seq, actor, detail)] = _verifications(app)
    assert (actor, detail) == (school.supervisor.staff_id, {"head_seq": report.head_seq, "result": "ok"})
    assert seq == report.head_seq + 1
    found = audit.last_verification(app)
    assert found is not None and found["ok"] and found["actor_id"] == school.supervisor.staff_id

    # when an entry has been edited since, the next verification records where it failed
    raw = Raw(store, app)
    raw("UPDATE {t}anxin_audit SET actor_id = ? WHERE seq = ?", (school.principal.staff_id, 3))
    failed = audit.verify_requested(app, school.supervisor)
    assert not failed.ok
    last = _verifications(app)[-1][2]
    assert last == {"head_seq": failed.head_seq, "problem": "entry_altered", "result": "failed", "seq": 3}
    assert audit.last_verification(app)["ok"] is False  # type: ignore[index]

    # and school staff may not verify the district's trail (refused, nothing verified)
    with pytest.raises(PermissionDenied):
        audit.verify_requested(app, school.principal)
    assert len(_verifications(app)) == 2


def test_a_history_exported_with_its_reason_is_read_with_it_and_recorded(
    app: Anxin, school: School, clock: Clock
) -> None:
    case_id = _case(app, school)
    number = app.record_numbers([case_id])[case_id]
    out = io.StringIO()

    n = audit.export_csv(app, school.supervisor, "case-history", out, case_id, reason="核查家长投诉的处理")

    # then the read carries the stated reason (sealed with the gate's decision)
    [sealed] = app.db.fetchone(
        "SELECT break_glass FROM {t}anxin_access WHERE action = 'audit.read' AND resource_id = ?", (case_id,)
    )
    at, actor = app.db.fetchone(
        "SELECT at, actor_id FROM {t}anxin_access WHERE action = 'audit.read' AND resource_id = ?", (case_id,)
    )
    assert audit.unseal_reason(app, sealed, at, actor, "audit.read", case_id) == "核查家长投诉的处理"
    # and every row names the record by its number and school
    header, *rows = list(csv.reader(io.StringIO(out.getvalue())))
    assert len(rows) == n and {r[header.index("编号")] for r in rows} == {f"{number.text} {number.school}"}
    [detail] = app.db.fetchone("SELECT detail FROM {t}anxin_audit WHERE kind = 'export' AND subject = ?", (case_id,))
    assert json.loads(detail) == {"rows": n, "what": "case-history"}
    # a reason too short to say anything is refused before anything is read
    with pytest.raises(InvalidInput):
        audit.require_reason(" 看看 ")


def test_the_command_line_exports_a_history_only_with_a_stated_reason(
    store: Store, app: Anxin, school: School, run_cli: Any, tmp_path: Path
) -> None:
    case_id = _case(app, school)
    username = f"sup-{school.id[:4]}"
    out = tmp_path / "history.csv"
    reads = "SELECT COUNT(*) FROM {t}anxin_access WHERE action = 'audit.read' AND resource_id = ?"

    code, _, err = run_cli(
        "audit", "export", "--kind", "case-history", "--id", case_id, "--as", username, "--out", str(out)
    )
    assert code == 1 and "请写明调阅原因" in err and not out.exists()
    assert app.db.fetchone(reads, (case_id,))[0] == 0

    code, _, err = run_cli(
        "audit", "export", "--kind", "case-history", "--id", case_id, "--reason", "核查家长投诉的处理",
        "--as", username, "--out", str(out),
    )  # fmt: skip
    assert code == 0, err
    assert "domain.bullying:BullyingCase.Reported" in out.read_text(encoding="utf-8-sig")
    assert app.db.fetchone(reads + " AND break_glass IS NOT NULL", (case_id,))[0] == 1
