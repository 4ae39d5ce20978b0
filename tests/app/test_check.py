"""`anxin check` and the health endpoints. `check` says, one line per finding, whether
the database is whole, the master key opens every data key, every event authenticates,
the audit chain verifies, the views are caught up, and which streams are quarantined;
it exits 0 only when all is well, and names a bad stream by id, kind and school.
`/healthz` says the process is alive; `/readyz` says whether it should be sent traffic
(store open, key check passed, views within the bound), without login or personal data.
Every test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import os
from uuid import uuid4

import pytest
from conftest import ADMIN, STUDENTS, Clock, School, Store
from fastapi.testclient import TestClient
from health_support import cli, damage, repair
from store_support import Raw

from anxin.core import Core
from anxin.crypto import MasterKey
from anxin.service import Anxin
from web.app import create_app

SECURITY_HEADERS = ("Content-Security-Policy", "X-Frame-Options", "X-Content-Type-Options", "Referrer-Policy")


def findings(stdout: str) -> list[str]:
    return [line for line in stdout.splitlines() if line.startswith(("正常：", "异常："))]


# -- anxin check ----------------------------------------------------------------------------------------
def test_check_passes_a_healthy_store(store: Store, app: Anxin, school: School, clock: Clock) -> None:
    # given a store in ordinary use (a school, a pairing with a check-in)
    pid = app.pairings.pair(school.principal, staff_id=school.teacher.staff_id, student_id=school.student("2026001"))
    clock.advance(days=1)
    app.pairings.record_check_in(school.teacher, pid, held_on=clock.today, notes={"thinking": "最近不错"})

    # when it is checked
    r = cli(store, "check")

    # then every finding is healthy, one line each, and it exits 0
    assert r.returncode == 0, r.stdout + r.stderr
    lines = findings(r.stdout)
    assert lines and all(line.startswith("正常：") for line in lines), r.stdout
    assert r.stdout.rstrip().endswith("结论：健康")
    text = r.stdout
    assert "完整性检查通过" in text or "均可完整读取" in text  # SQLite / PostgreSQL
    assert "数据密钥" in text and "审计记录完整" in text and "视图" in text
    assert not any(name in text for _, name, _, _ in STUDENTS)  # ids and counts only


@pytest.mark.parametrize("what", ["event", "key"])
def test_check_names_a_bad_stream_exits_non_zero_and_releases_it_once_restored(
    store: Store, app: Anxin, school: School, clock: Clock, what: str
) -> None:
    # given one student's event (or wrapped key) altered in the database
    bad = school.student("2026002")
    damage(store, app, bad, what)

    # when the store is checked
    r = cli(store, "check")

    # then it exits non-zero, naming the stream, its kind and its school, and what failed
    assert r.returncode == 2, r.stdout + r.stderr
    [line] = [line for line in findings(r.stdout) if bad in line and "隔离" in line]
    assert line.startswith("异常：") and "学生" in line and "第一中学" in line and school.id in line
    assert ("第 1 版事件未通过认证" if what == "event" else "数据密钥未通过认证") in line
    assert "李小红" not in r.stdout
    assert "结论：发现" in r.stdout
    rows = app.db.fetch("SELECT stream_id, kind, school_id, failed FROM {t}anxin_quarantine")
    assert rows == [(bad, "student", school.id, what)]

    # when the record is restored (as from a backup) and checked again
    repair(store, app, bad, what)
    r = cli(store, "check")

    # then it is healthy again and the stream is no longer quarantined
    assert r.returncode == 0, r.stdout + r.stderr
    assert any(bad in line and "解除隔离" in line for line in findings(r.stdout))
    assert app.db.fetch("SELECT stream_id FROM {t}anxin_quarantine") == []


def test_check_reports_views_behind_the_log(store: Store, app: Anxin, school: School) -> None:
    # given the timeline view's position moved back to the start of the log
    Raw(store, app)("UPDATE {t}view_tracking SET position = 0 WHERE view = 'timeline'")

    # when the store is checked with a bound below that lag
    r = cli(store, "check", "--max-lag", "5")

    # then it exits non-zero and says which view is how far behind
    head = app.recorder.max_notification_id()
    assert r.returncode == 2, r.stdout + r.stderr
    assert [line for line in findings(r.stdout) if line.startswith("异常：")] == [
        f"异常：视图 timeline 落后日志 {head} 个事件（位置 0，日志 {head}；上限 5）"
    ]


def test_check_refuses_a_wrong_master_key_with_a_message(store: Store, app: Anxin, school: School) -> None:
    # given the store checked with another master key than its own
    other = Store(store.kind, store.config, MasterKey.generate(), store.data_dir, store.schema)

    # when it is checked, then it exits non-zero with a message (not a traceback), writing no key
    keys_before = app.db.fetchone("SELECT COUNT(*) FROM {t}anxin_keys")
    r = cli(other, "check")
    assert r.returncode == 2, r.stdout + r.stderr
    assert any(line.startswith("异常：") and "主密钥" in line for line in findings(r.stdout)), r.stdout
    assert app.db.fetchone("SELECT COUNT(*) FROM {t}anxin_keys") == keys_before


# -- /healthz and /readyz ------------------------------------------------------------------------------------
@pytest.fixture
def client(app: Anxin, school: School) -> TestClient:
    with TestClient(create_app(app, background_seconds=None), base_url="http://testserver") as c:
        yield c


def test_healthz_and_readyz_answer_without_login_and_without_personal_data(
    client: TestClient, app: Anxin, school: School
) -> None:
    # when the probes are asked by someone not logged in
    alive = client.get("/healthz", follow_redirects=False)
    ready = client.get("/readyz", follow_redirects=False)

    # then both answer (no redirect to the login page), with the usual security headers
    assert alive.status_code == 200 and alive.json() == {"status": "ok"}
    assert ready.status_code == 200 and ready.json()["status"] == "ready", ready.text
    checks = ready.json()["checks"]
    assert checks["store"] == "ok" and checks["keys"] == "ok" and checks["views"]["lag"] == 0
    for r in (alive, ready):
        assert all(h in r.headers for h in SECURITY_HEADERS) and r.headers["Cache-Control"] == "no-store"
        assert "set-cookie" not in r.headers
        # and nothing personal: no names, no ids
        assert not any(name in r.text for _, name, _, _ in STUDENTS)
        assert school.id not in r.text and school.student("2026001") not in r.text
    # and only GET: nothing to post, so no form and no CSRF token involved
    assert client.post("/readyz").status_code == 405


def test_readyz_is_503_while_the_views_lag_beyond_the_bound(
    client: TestClient, store: Store, app: Anxin, school: School, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given events written by another process, not yet folded into this server's views
    monkeypatch.setenv("ANXIN_READY_MAX_LAG", "1")
    other = Core(store.config, [store.master_key], clock=clock)
    try:
        for no in ("2026101", "2026102"):
            other.roster.enrol_student(
                ADMIN,
                school_id=school.id,
                student_no=no,
                name="新同学",
                gender="女",
                birth_date=clock.today.replace(year=2013),
                grade="七年级",
                class_name="七年级1班",
            )
    finally:
        other.close()

    # when readiness is asked, then 503, saying how far behind
    r = client.get("/readyz")
    assert r.status_code == 503 and r.json()["status"] == "unready"
    assert r.json()["checks"]["views"] == {"lag": 2, "max_lag": 1}

    # when the views catch up (the server's background loop), then ready again
    app.views.catch_up()
    assert client.get("/readyz").status_code == 200


def test_readyz_is_503_when_the_key_check_fails(client: TestClient, store: Store, app: Anxin, school: School) -> None:
    # given a data key wrapped by a master key this process does not hold (another host
    # rotated to a key this one was never given)
    stranger = MasterKey.generate()
    sid = uuid4().hex
    Raw(store, app)(
        "INSERT INTO {t}anxin_keys (stream_id, wrapped, kek_id) VALUES (?, ?, ?)",
        (sid, stranger.wrap(sid, os.urandom(32)), stranger.kek_id),
    )

    # when readiness is asked, then 503 with the key check named (and no key id, no stream id)
    r = client.get("/readyz")
    assert r.status_code == 503 and r.json()["checks"]["keys"] == "key_not_held"
    assert sid not in r.text and stranger.kek_id not in r.text
    # and /healthz still says the process is alive
    assert client.get("/healthz").status_code == 200
