"""Fixtures: the same application on a real SQLite file and a real PostgreSQL
server (one fresh schema per test), a clock the test controls, and a small school
with a person in every role."""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from anxin.crypto import MasterKey
from anxin.service import Anxin
from anxin.storage import StoreConfig
from domain.common import Actor, Role

PG_URL = os.environ.get("ANXIN_TEST_POSTGRES_URL")
PG_SKIP_REASON = (
    "PostgreSQL suite not enabled: set ANXIN_TEST_POSTGRES_URL="
    "postgresql://postgres@127.0.0.1:5432/test to run it (CI does)"
)
STORES = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.skipif(not PG_URL, reason=PG_SKIP_REASON)),
]
ADMIN = Actor("cli-admin", frozenset({Role.ADMINISTRATOR}))


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kw: float) -> None:
        self.now += timedelta(**kw)

    @property
    def today(self) -> date:
        return self.now.date()


@pytest.fixture
def clock() -> Clock:
    return Clock(datetime(2026, 10, 12, 9, 0, tzinfo=UTC))


@dataclass
class Store:
    kind: str
    config: StoreConfig
    master_key: MasterKey
    data_dir: Path
    schema: str | None = None
    apps: list[Anxin] = field(default_factory=list)

    def open(self, clock: Clock | None = None, keys: list[MasterKey] | None = None) -> Anxin:
        kwargs = {"clock": clock} if clock else {}
        app = Anxin(self.config, keys or [self.master_key], **kwargs)
        self.apps.append(app)
        return app


def _pg_exec(sql: str) -> None:
    import psycopg

    assert PG_URL
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(sql)


@pytest.fixture(params=STORES)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "postgres":
        schema = "t_" + uuid.uuid4().hex[:12]
        _pg_exec(f"CREATE SCHEMA {schema}")
        s = Store(
            "postgres",
            StoreConfig(url=PG_URL, data_dir=tmp_path, schema=schema),
            MasterKey.generate(),
            tmp_path,
            schema,
        )
    else:
        s = Store("sqlite", StoreConfig(url=None, data_dir=tmp_path), MasterKey.generate(), tmp_path)
    yield s
    for app in s.apps:
        app.close()
    if s.schema:
        _pg_exec(f"DROP SCHEMA {s.schema} CASCADE")


@contextmanager
def fresh_app(kind: str, clock: Clock) -> Iterator[Anxin]:
    """A new empty store per hypothesis example (function fixtures are not reset between them)."""
    with tempfile.TemporaryDirectory() as tmp:
        schema = None
        if kind == "postgres":
            schema = "t_" + uuid.uuid4().hex[:12]
            _pg_exec(f"CREATE SCHEMA {schema}")
            config = StoreConfig(url=PG_URL, data_dir=Path(tmp), schema=schema)
        else:
            config = StoreConfig(url=None, data_dir=Path(tmp))
        app = Anxin(config, [MasterKey.generate()], clock=clock)
        try:
            yield app
        finally:
            app.close()
            if schema:
                _pg_exec(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture
def app(store: Store, clock: Clock) -> Anxin:
    return store.open(clock)


@dataclass
class School:
    """A school with one person in every role and a few students in two classes."""

    id: str
    admin: Actor
    teacher: Actor  # 班主任 of 七年级1班
    other_teacher: Actor  # 班主任 of 七年级2班
    counselor: Actor
    other_counselor: Actor
    safety: Actor
    principal: Actor
    supervisor: Actor
    students: dict[str, str]  # student_no -> id

    def student(self, no: str) -> str:
        return self.students[no]


STUDENTS = [
    ("2026001", "张小明", "男", "七年级1班"),
    ("2026002", "李小红", "女", "七年级1班"),
    ("2026003", "王小刚", "男", "七年级2班"),
    ("2026004", "赵小丽", "女", "七年级2班"),
]


def make_school(app: Anxin, name: str = "第一中学", district: str = "default") -> School:
    sid = app.roster.add_school(ADMIN, name, district)

    def staff(username: str, label: str, roles: list[str], classes: list[str] | None = None) -> Actor:
        return app.gate.actor(
            app.roster.add_staff(
                ADMIN, username=f"{username}-{sid[:4]}", name=label, school_id=sid, roles=roles, classes=classes
            )
        )

    students = {}
    for no, name_, gender, cls in STUDENTS:
        students[no] = app.roster.enrol_student(
            ADMIN,
            school_id=sid,
            student_no=no,
            name=name_,
            gender=gender,
            birth_date=date(2013, 5, 6),
            grade="七年级",
            class_name=cls,
            guardians=[{"name": name_[0] + "家长", "phone": "13912345678"}],
            tags=["留守儿童"],
        )
    sup = app.gate.actor(
        app.roster.add_staff(
            ADMIN, username=f"sup-{sid[:4]}", name="督导员", school_id=None, roles=["supervisor"], district=district
        )
    )
    return School(
        id=sid,
        admin=ADMIN,
        teacher=staff("teacher", "王老师", ["class_teacher"], ["七年级1班"]),
        other_teacher=staff("teacher2", "陈老师", ["class_teacher"], ["七年级2班"]),
        counselor=staff("counselor", "刘心理", ["counselor"]),
        other_counselor=staff("counselor2", "周心理", ["counselor"]),
        safety=staff("safety", "孙主任", ["safety_lead"]),
        principal=staff("principal", "钱校长", ["principal"]),
        supervisor=sup,
        students=students,
    )


@pytest.fixture
def school(app: Anxin) -> School:
    return make_school(app)


# The web application's fixtures (the demo district served through TestClient), and the
# real-browser ones (one live server and one Chromium for the whole run, shared by every
# tests/browser/test_browser*.py file), and `anxin ...` run in this process (tests/cli_support.py).
from browser_support import chromium_fixture, live_fixture, open_session_fixture  # noqa: E402,F401
from cli_support import run_cli  # noqa: E402,F401
from web_support import _close_demo_stores, browse, site  # noqa: E402,F401
