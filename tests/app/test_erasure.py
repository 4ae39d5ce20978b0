"""Erasure that says what it leaves: shredding a student destroys the keys of their own
stream and of every stream about them alone (pairings, support files, screenings), in
one transaction (a kill leaves all or nothing); bullying cases, shared with other
students, stay and are listed with the student's part in them. Names cached in a
running process (the web server's) are forgotten as soon as any process shreds."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from conftest import ADMIN, Clock, School, Store
from fastapi.testclient import TestClient
from web_support import Browser

from anxin import audit
from anxin.passwords import hash_password
from anxin.service import Anxin
from domain.common import Erased
from web.app import create_app

PASSWORD = "correct-horse-battery-9"
SCHOOL_NAME = "第一中学"


def scene(app: Anxin, school: School, clock: Clock) -> dict[str, str]:
    """Student 2026001 with a pairing (and a check-in), a support file (and a session), a
    screening, and a bullying case shared with 2026003; 2026002 with a pairing of their own."""
    s1, s2, s3 = school.student("2026001"), school.student("2026002"), school.student("2026003")
    ids = {"student": s1, "other": s2, "bully": s3}
    ids["pairing"] = app.pairings.pair(school.principal, staff_id=school.teacher.staff_id, student_id=s1)
    ids["other_pairing"] = app.pairings.pair(school.principal, staff_id=school.teacher.staff_id, student_id=s2)
    clock.advance(days=1)
    app.pairings.record_check_in(school.teacher, ids["pairing"], held_on=clock.today, notes={"family": "父母外出务工"})
    ids["file"] = app.support.open_support_file(
        school.counselor, s1, category="情绪困扰", risk_level="key", reason="情绪低落"
    )
    app.support.record_session(school.counselor, ids["file"], held_on=clock.today, summary="建立关系")
    app.screenings.record_screening(
        school.counselor, s1, instrument="PHQ-9", screened_on=clock.today, answers="0,1,0,1,0,0,1,0,0"
    )
    ids["screening"] = app.db.fetchone(
        "SELECT stream_id FROM {t}anxin_directory WHERE kind = 'screening' AND subject_id = ?", (s1,)
    )[0]
    ids["case"] = app.cases.report_bullying(
        school.safety,
        school_id=school.id,
        channel="teacher",
        occurred_at=clock.now - timedelta(hours=2),
        place="操场",
        forms=["verbal"],
        parties=[(s1, "targeted"), (s3, "bullying")],
        narrative="张小明被起外号",
    )
    return ids


def erased_flags(app: Anxin, ids: list[str]) -> dict[str, tuple[bool, bool]]:
    """stream -> (key destroyed, directory says erased), read from the database."""
    out = {}
    for sid in ids:
        key = app.db.fetch_key(UUID(sid).hex)
        flag = app.db.fetchone("SELECT erased FROM {t}anxin_directory WHERE stream_id = ?", (sid,))
        out[sid] = (key is not None and key[0] is None, bool(flag and flag[0]))
    return out


def shred_entries(app: Anxin) -> list[tuple[str, str]]:
    return [
        (r[0], r[1])
        for r in app.db.fetch("SELECT subject, detail FROM {t}anxin_audit WHERE kind = 'shred' ORDER BY seq")
    ]


# -- the application ----------------------------------------------------------------------------
def test_shredding_a_student_destroys_their_own_streams_and_lists_the_shared_case(
    store: Store, app: Anxin, school: School, clock: Clock
) -> None:
    # given the scene, and a second instance (another process) that has read it all
    ids = scene(app, school, clock)
    other = store.open(clock)
    assert other.pairings.get_pairing(school.teacher, ids["pairing"]).check_ins
    assert other.support.get_support_file(school.counselor, ids["file"]).sessions

    # when the administrator looks, then shreds the student
    plan = app.erasure.plan(ADMIN, ids["student"])
    done = app.erasure.erase(ADMIN, ids["student"], reason="毕业满五年，保存期限届满")

    # then the plan said exactly what happened: the student and their three streams destroyed,
    # the case kept, with the student's part in it
    assert done == plan
    assert [(e.kind, e.stream_id) for e in done.destroyed] == [
        ("student", ids["student"]),
        ("file", ids["file"]),
        ("pairing", ids["pairing"]),
        ("screening", ids["screening"]),
    ]
    assert [(e.kind, e.stream_id, e.parts) for e in done.kept] == [("case", ids["case"], ("targeted",))]
    own = [ids[k] for k in ("student", "pairing", "file", "screening")]
    assert erased_flags(app, own) == {sid: (True, True) for sid in own}
    assert erased_flags(app, [ids["case"], ids["other"], ids["other_pairing"], ids["bully"]]) == {
        sid: (False, False) for sid in (ids["case"], ids["other"], ids["other_pairing"], ids["bully"])
    }
    # and on either instance nothing of them reads, while the rest does
    for instance in (app, other):
        with pytest.raises(Erased):
            instance.pairings.get_pairing(school.teacher, ids["pairing"])
        with pytest.raises(Erased):
            instance.support.get_support_file(school.counselor, ids["file"])
        assert instance.pairings.get_pairing(school.teacher, ids["other_pairing"]).student_id == ids["other"]
        # the case still reads: the student's part is there, their name is not
        parties = {p["student_id"]: p for p in instance.cases.case_parties(school.safety, ids["case"])}
        assert parties[ids["student"]]["part"] == "targeted" and parties[ids["student"]]["name"] == "已删除"
        assert parties[ids["bully"]]["name"] == "王小刚"
    # and the trail has one shred entry per stream, the student's own as before
    entries = shred_entries(app)
    assert entries[0] == (ids["student"], '{"kind":"student"}')
    assert sorted(entries[1:]) == sorted(
        (ids[k], json.dumps({"kind": k, "of": ids["student"]}, separators=(",", ":")))
        for k in ("pairing", "file", "screening")
    )
    assert audit.verify(app).ok


def test_shredding_again_finishes_what_an_earlier_shred_left_and_then_refuses(
    app: Anxin, school: School, clock: Clock
) -> None:
    # given a student whose own stream alone was shredded (as versions before this one did)
    ids = scene(app, school, clock)
    with app.db.transaction() as c:
        c.execute(app.db.q("UPDATE {t}anxin_keys SET wrapped = NULL WHERE stream_id = ?"), (UUID(ids["student"]).hex,))
        c.execute(app.db.q("UPDATE {t}anxin_directory SET erased = 1 WHERE stream_id = ?"), (ids["student"],))
    app.keystore.forget(UUID(ids["student"]).hex)

    # when the student is shredded again
    done = app.erasure.erase(ADMIN, ids["student"], reason="补全删除")

    # then what was left of them goes, and a third time there is nothing left to do
    assert done.erased and {e.kind for e in done.destroyed} == {"pairing", "file", "screening"}
    with pytest.raises(Erased):
        app.erasure.erase(ADMIN, ids["student"], reason="再来一次")


def test_a_failure_inside_the_shred_leaves_everything_as_it_was(
    app: Anxin, school: School, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given the scene, and an audit append that fails after the keys were nulled in the transaction
    ids = scene(app, school, clock)
    entries_before = shred_entries(app)

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("disk gone")

    # when the student is shredded
    with monkeypatch.context() as patched, pytest.raises(RuntimeError):
        patched.setattr(audit, "append", broken)
        app.erasure.erase(ADMIN, ids["student"], reason="保存期限届满")

    # then nothing was destroyed, flagged or recorded, and everything still reads
    own = [ids[k] for k in ("student", "pairing", "file", "screening")]
    assert erased_flags(app, own) == {sid: (False, False) for sid in own}
    assert shred_entries(app) == entries_before
    assert app.roster.get_student(school.principal, ids["student"]).name == "张小明"
    assert app.pairings.get_pairing(school.teacher, ids["pairing"]).check_ins


KILLED_MID_SHRED = """
import json, os, signal, sys
from pathlib import Path
from anxin.crypto import MasterKey
from anxin.service import Anxin
from anxin.storage import StoreConfig
from conftest import ADMIN
from anxin import audit

spec = json.loads(sys.argv[1])
config = StoreConfig(url=spec["url"], data_dir=Path(spec["data_dir"]), schema=spec["schema"])
app = Anxin(config, [MasterKey.decode(spec["key"])])
def die(c, db, rows, **kw):  # inside the transaction, after the keys and flags were written
    sys.stdout.write("dying\\n"); sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)
audit.append = die
app.erasure.erase(ADMIN, spec["student"], reason="保存期限届满")
"""


def test_a_process_killed_in_the_middle_of_a_shred_leaves_all_or_nothing(
    store: Store, app: Anxin, school: School, clock: Clock
) -> None:
    # given the scene
    ids = scene(app, school, clock)
    spec = {
        "url": store.config.url,
        "data_dir": str(store.data_dir),
        "schema": store.schema,
        "key": store.master_key.encode(),
        "student": ids["student"],
    }

    # when a process shreds the student and is killed (SIGKILL) inside the transaction
    r = subprocess.run(
        [sys.executable, "-c", KILLED_MID_SHRED, json.dumps(spec)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[1],
        env=os.environ
        | {
            "PYTHONPATH": os.pathsep.join(
                [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parents[2])]
            )
        },
    )
    assert r.returncode == -signal.SIGKILL and "dying" in r.stdout, r.stderr

    # then nothing of it is there: a fresh instance reads everything, and the trail verifies
    fresh = store.open(clock)
    own = [ids[k] for k in ("student", "pairing", "file", "screening")]
    assert erased_flags(fresh, own) == {sid: (False, False) for sid in own}
    assert fresh.roster.get_student(school.principal, ids["student"]).name == "张小明"
    assert audit.verify(fresh).ok
    # and the shred done again goes through whole
    assert len(fresh.erasure.erase(ADMIN, ids["student"], reason="保存期限届满").destroyed) == 4


# -- the command line ---------------------------------------------------------------------------
def test_the_cli_says_what_a_student_shred_destroys_and_what_it_leaves(
    run_cli: Any, app: Anxin, school: School, clock: Clock
) -> None:
    # given the scene
    ids = scene(app, school, clock)

    # when the student is shredded by number
    code, out, err = run_cli("shred", "--student", "2026001", "--school", SCHOOL_NAME, "--yes")

    # then it lists every stream destroyed and the case kept, by id, with the student's part
    assert code == 0, err
    for kind in ("pairing", "file", "screening"):
        assert ids[kind] in out
    assert "将销毁以下 4 条记录的密钥" in out
    kept = next(line for line in out.splitlines() if ids["case"] in line)
    assert "欺凌案件" in kept and "该生身份：被欺凌学生" in kept and "已报告" in kept
    assert "当事人身份" in out and "anxin shred --stream" in out
    assert "已销毁学生 2026001" in out and "同时销毁该生独有的 3 条记录" in out and "保留 1 条" in out
    assert "张小明" not in out  # ids and kinds only, never a name
    # and the streams are gone, the case is not
    assert (
        app.erasure.is_erased(ids["pairing"])
        and app.erasure.is_erased(ids["file"])
        and not app.erasure.is_erased(ids["case"])
    )
    # and a second shred says there is nothing left, without a traceback
    code, out, err = run_cli("shred", "--student", "2026001", "--school", SCHOOL_NAME, "--yes")
    assert code == 1 and "已被删除" in err and "Traceback" not in err


def test_the_cli_shreds_a_shared_case_only_when_named_by_its_id(
    run_cli: Any, app: Anxin, school: School, clock: Clock
) -> None:
    ids = scene(app, school, clock)

    code, out, err = run_cli("shred", "--stream", ids["case"], "--yes")

    assert code == 0, err
    assert f"已销毁记录 {ids['case']}的密钥" in out and "将销毁以下 1 条记录的密钥" in out
    assert app.erasure.is_erased(ids["case"]) and not app.erasure.is_erased(ids["student"])


# -- caches in a running process ------------------------------------------------------------------
@pytest.fixture
def served(store: Store, app: Anxin, school: School, clock: Clock) -> Iterator[tuple[Browser, dict[str, str]]]:
    """The scene served by a web application on instance `app`, a principal logged in."""
    ids = scene(app, school, clock)
    app.roster.add_staff(
        ADMIN,
        username="head",
        name="钱校长",
        school_id=school.id,
        roles=["principal"],
        password_hash=hash_password(PASSWORD),
    )
    with TestClient(create_app(app, background_seconds=None), base_url="http://testserver") as client:
        yield Browser(client, None).login("head", PASSWORD), ids


def test_a_running_server_stops_showing_names_shredded_by_another_process(
    store: Store, served: tuple[Browser, dict[str, str]], school: School, clock: Clock
) -> None:
    # given the support register, which shows the student and their counselor by name
    browser, ids = served
    page = browser.get("/support")
    assert page.status_code == 200 and "张小明" in page.text and "刘心理" in page.text

    # when another process (the command line, with an instance of its own) shreds the
    # student and the counselor's own record
    cli_side = store.open(clock)
    cli_side.erasure.erase(ADMIN, ids["student"], reason="保存期限届满")
    cli_side.erasure.erase(ADMIN, school.counselor.staff_id, reason="离职满五年")

    # then the server's next page shows neither name (its caches noticed at once)
    page = browser.get("/support")
    assert page.status_code == 200
    assert "张小明" not in page.text and "刘心理" not in page.text and "已删除" in page.text


def test_a_running_server_keeps_its_name_cache_while_nothing_is_shredded(
    store: Store, served: tuple[Browser, dict[str, str]], school: School, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a page seen once (names now cached)
    browser, _ids = served
    assert "刘心理" in browser.get("/support").text
    web = browser.client.app.state.web  # type: ignore[attr-defined]
    loads: list[str] = []
    real = web.app.roster.staff_name
    monkeypatch.setattr(web.app.roster, "staff_name", lambda sid: loads.append(sid) or real(sid))

    # when the page is seen again with nothing shredded anywhere
    assert "刘心理" in browser.get("/support").text

    # then no staff record was read again
    assert loads == []


def test_the_shred_pages_list_what_is_destroyed_and_what_stays(
    served: tuple[Browser, dict[str, str]], store: Store, app: Anxin, school: School
) -> None:
    # given an administrator of the district
    _browser, ids = served
    app.roster.add_staff(
        ADMIN,
        username="root",
        name="管理员",
        school_id=None,
        roles=["administrator"],
        password_hash=hash_password(PASSWORD),
        district="default",
    )
    admin = Browser(_browser.client, None).login("root", PASSWORD)

    # when they look at the student before shredding
    page = admin.post("/admin/shred", {"school": school.id, "student_no": "2026001"})

    # then the page lists the four streams destroyed and the case that stays, with the part
    assert page.status_code == 200
    for kind in ("student", "pairing", "file", "screening", "case"):
        assert ids[kind] in page.text
    assert "将销毁密钥的记录（4 条）" in page.text and "不会删除的共享记录（1 条" in page.text
    assert "被欺凌学生" in page.text and "张小明" not in page.text
    # and confirming destroys them and says how many
    done = admin.post(
        "/admin/shred/confirm",
        {"school": school.id, "student_no": "2026001", "reason": "保存期限届满", "confirm": "2026001"},
    )
    assert done.status_code == 303
    assert "共销毁 4 条记录的密钥；保留 1 条" in admin.get("/admin/shred").text
    assert app.erasure.is_erased(ids["file"]) and not app.erasure.is_erased(ids["case"])
