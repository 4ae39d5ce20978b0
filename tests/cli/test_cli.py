"""The `anxin` command, end to end, on a fresh SQLite data directory and on a fresh
PostgreSQL schema (one suite, parametrised).

On SQLite every command gets `--data-dir DIR` after its own arguments; on PostgreSQL
the store comes from the environment alone (ANXIN_DATABASE_URL, ANXIN_DATABASE_SCHEMA,
ANXIN_MASTER_KEY_FILE). Every command under test ("when") runs through its entry point
with its own environment, working directory and no input (`in_process`, fast); a few
run as real processes of their own (an import, the demo, a store named by the
environment alone). The scene ("given") is set through the application; some outcomes
are read here too.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import stat
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
from cli_support import in_process
from conftest import PG_URL, STORES  # PostgreSQL skipped with PG_SKIP_REASON when unset

from anxin.cli import CLI_ACTOR
from anxin.crypto import MasterKeyFile
from anxin.passwords import hash_password, verify_password
from anxin.roster_import import import_roster
from anxin.service import Anxin
from anxin.storage import StoreConfig

SCHOOL = "第一中学"
HEADER = "student_no,name,gender,birth_date,grade,class,guardian_name,guardian_phone,tags"
GOOD_ROWS = [
    "S001,张三丰,男,2013-05-06,七年级,七年级1班,张父,13912345678,留守儿童",
    "S002,李四娘,女,2013-06-07,七年级,七年级1班,李母,13912345679,",
    "S003,王五郎,男,2013-07-08,七年级,七年级2班,,,留守儿童;单亲家庭",
]
GOOD_LISTING = [
    ("S001", "张三丰", "七年级1班"),
    ("S002", "李四娘", "七年级1班"),
    ("S003", "王五郎", "七年级2班"),
]
# Line 1 is the header; lines 2 and 9 are fine, every other line is wrong in its own way.
HALF_VALID_ROWS = [
    "T001,好学生,男,2013-05-06,七年级,七年级1班,家长,13912345678,",
    "T002,,女,2013-06-07,七年级,七年级1班,李母,13912345679,",
    "T003,坏日期,男,2013-13-45,七年级,七年级2班,,,",
    "T004,怪性别,x,2013-07-08,七年级,七年级2班,,,",
    "T001,重复号,男,2013-07-08,七年级,七年级2班,,,",
    "S001,已存在,男,2013-07-08,七年级,七年级2班,,,",
    "T006,坏电话,男,2013-07-08,七年级,七年级2班,家长,abc,",
    "T007,好学生二,女,2013-05-06,七年级,七年级1班,家长,13912345678,",
]
PASSWORD = "correct-horse-battery-9"


def _clean_env() -> dict[str, str]:
    """The test process's environment without any ANXIN_ setting that could leak in."""
    return {k: v for k, v in os.environ.items() if not k.startswith("ANXIN_")}


def _pg_exec(sql: str) -> None:
    import psycopg

    assert PG_URL
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(sql)


@dataclass
class Cli:
    """One store (a SQLite data directory or a PostgreSQL schema) and how to run
    `anxin` against it."""

    kind: str
    home: Path  # the working directory of every command
    data_dir: Path
    key_file: Path
    env: dict[str, str]
    schema: str | None = None

    @property
    def is_postgres(self) -> bool:
        return self.kind == "postgres"

    def _argv(self, args: tuple[str, ...]) -> list[str]:
        # --data-dir goes after the subcommand's own arguments, as a person would type it.
        return [*args, "--data-dir", str(self.data_dir)] if not self.is_postgres else list(args)

    def run(
        self, *args: str, env: dict[str, str] | None = None, process: bool = False
    ) -> subprocess.CompletedProcess[str]:
        """`anxin ARGS`: by its entry point in this process (its environment, working
        directory, empty stdin and output swapped in for the call; every application it
        opens closed after), or with `process`, as a real process of its own."""
        argv = self._argv(args)
        if process:
            r = subprocess.run(
                [sys.executable, "-m", "anxin.cli", *argv],
                cwd=self.home,
                env=self.env | (env or {}),
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=120,
            )
        else:
            r = in_process(argv, self.env | (env or {}), self.home)
        assert "Traceback" not in r.stderr, r.stderr  # every failure is a message, never a crash
        return r

    def ok(self, *args: str, env: dict[str, str] | None = None, process: bool = False) -> str:
        r = self.run(*args, env=env, process=process)
        assert r.returncode == 0, f"anxin {' '.join(args)} -> {r.returncode}\n{r.stdout}\n{r.stderr}"
        return r.stdout

    def init_here(self) -> None:
        """`anxin init`, run by its own entry point in this process."""
        self.ok("init")

    def given(
        self, *schools: str, roster: list[str] | None = None, users: tuple[tuple[str, str, str], ...] = ()
    ) -> None:
        """An initialised store with these schools (district "default"), the roster rows
        imported into the first, and users (username, name, role) of the first."""
        self.init_here()
        with self.app() as app:
            ids = [app.roster.add_school(CLI_ACTOR, name) for name in schools]
            if roster is not None:
                import_roster(app, CLI_ACTOR, ids[0], "\n".join([HEADER, *roster]) + "\n")
            for username, name, role in users:
                app.roster.add_staff(
                    CLI_ACTOR,
                    username=username,
                    name=name,
                    school_id=ids[0],
                    roles=[role],
                    password_hash=hash_password(PASSWORD),
                )

    def csv(self, name: str, rows: list[str], header: str = HEADER, encoding: str = "utf-8") -> str:
        path = self.home / name
        path.write_bytes(("\n".join([header, *rows]) + "\n").encode(encoding))
        return str(path)

    def roster(self, school: str = SCHOOL) -> list[tuple[str, ...]]:
        return [
            tuple(part.strip() for part in line.split("\t"))
            for line in self.ok("roster", "list", "--school", school).splitlines()
        ]

    def listed(self, school: str = SCHOOL) -> list[tuple[str | None, ...]]:
        """The roster as `roster list` shows it, read in this process (cheaper)."""
        with self.app() as app:
            return [
                ("-", "已删除 (erased)", r.class_name) if r.erased else (r.student_no, r.name, r.class_name)
                for r in app.roster.list_students(CLI_ACTOR, app.roster.school_id(school))
            ]

    def config(self) -> StoreConfig:
        return StoreConfig(url=PG_URL if self.is_postgres else None, data_dir=self.data_dir, schema=self.schema)

    @contextmanager
    def app(self) -> Iterator[Anxin]:
        """The application in this test process, for checks the command line has no
        command for."""
        app = Anxin(self.config(), MasterKeyFile(self.key_file).load_all())
        try:
            yield app
        finally:
            app.close()

    def sql(self, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Straight from the database, under the application's feet ({t} = table prefix)."""
        if self.is_postgres:
            import psycopg

            assert PG_URL
            with psycopg.connect(PG_URL) as conn:
                q = query.replace("{t}", f"{self.schema}.").replace("?", "%s")
                return list(conn.execute(q, params).fetchall())
        with sqlite3.connect(self.data_dir / "anxin.db") as conn:
            return list(conn.execute(query.replace("{t}", ""), params).fetchall())

    def tables(self) -> set[str]:
        if self.is_postgres:
            return {
                r[0]
                for r in self.sql(
                    "SELECT table_name FROM information_schema.tables WHERE table_schema = ?", (self.schema,)
                )
            }
        if not (self.data_dir / "anxin.db").exists():
            return set()
        return {r[0] for r in self.sql("SELECT name FROM sqlite_master WHERE type = 'table'")}

    def raw_bytes(self) -> bytes:
        """Everything stored: the SQLite files (main, WAL, journal), or a dump of every
        table of the PostgreSQL schema."""
        if not self.is_postgres:
            return b"".join(p.read_bytes() for p in sorted(self.data_dir.glob("anxin.db*")))
        dump = []
        for table in sorted(self.tables()):
            dump += [r[0] for r in self.sql(f"SELECT CAST(t AS text) FROM {{t}}{table} t")]
        return "\n".join(dump).encode()


@contextmanager
def _stores(kind: str, root: Path) -> Iterator[Callable[[], Cli]]:
    """Makes fresh, empty stores of one kind under root; drops their schemas after."""
    schemas: list[str] = []

    def make() -> Cli:
        home = root / f"store{len(list(root.glob('store*')))}"
        home.mkdir()
        env = _clean_env()
        if kind == "postgres":
            schema = "t_" + uuid.uuid4().hex[:12]
            _pg_exec(f"CREATE SCHEMA {schema}")
            schemas.append(schema)
            key_file = home / "master.key"
            assert PG_URL
            env |= {
                "ANXIN_DATABASE_URL": PG_URL,
                "ANXIN_DATABASE_SCHEMA": schema,
                "ANXIN_MASTER_KEY_FILE": str(key_file),
            }
            return Cli("postgres", home, home / "var", key_file, env, schema)
        data_dir = home / "data"
        return Cli("sqlite", home, data_dir, data_dir / "master.key", env)

    try:
        yield make
    finally:
        for schema in schemas:
            _pg_exec(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture(params=STORES)
def make_cli(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], Cli]]:
    """A factory of fresh, empty stores of the parametrised kind."""
    with _stores(request.param, tmp_path) as make:
        yield make


@pytest.fixture
def cli(make_cli: Callable[[], Cli]) -> Cli:
    return make_cli()


@pytest.fixture
def enrolled(cli: Cli) -> Cli:
    """An initialised store with one school and the three students of the good file."""
    cli.csv("good.csv", GOOD_ROWS)
    cli.given(SCHOOL, roster=GOOD_ROWS)
    return cli


# -- init ---------------------------------------------------------------------------------
def test_init_creates_the_store_and_a_key_file_only_its_owner_can_read(cli: Cli) -> None:
    env = {}
    if cli.is_postgres:  # a password in the URL must not be printed (the test server trusts)
        u = urlparse(PG_URL)
        password = u.password or "not-to-be-printed"
        netloc = f"{u.username or 'postgres'}:{password}@{u.hostname}:{u.port or 5432}"
        env["ANXIN_DATABASE_URL"] = u._replace(netloc=netloc).geturl()

    out = cli.ok("init", env=env)

    assert "已创建主密钥" in out
    assert stat.S_IMODE(cli.key_file.stat().st_mode) == 0o600
    tables = cli.tables()
    assert {"anxin_keys", "anxin_directory", "anxin_schools", "anxin_staff"} <= tables
    assert {"anxin_events", "stored_events"} & tables  # the library's event table
    if cli.is_postgres:
        assert password not in out
    assert cli.key_file.read_text().strip() not in out


def test_a_second_init_refuses_to_overwrite_the_key_and_if_missing_accepts_it(cli: Cli) -> None:
    cli.ok("init")
    key = cli.key_file.read_bytes()

    again = cli.run("init")

    assert again.returncode != 0
    assert "拒绝覆盖" in again.stderr and str(cli.key_file) in again.stderr
    assert cli.key_file.read_bytes() == key

    out = cli.ok("init", "--if-missing")

    assert "已初始化" in out
    assert cli.key_file.read_bytes() == key


def test_init_refuses_a_store_that_already_holds_data_under_another_key(enrolled: Cli) -> None:
    original = enrolled.home / "original.key"
    shutil.move(enrolled.key_file, original)

    r = enrolled.run("init")

    assert r.returncode != 0
    assert "拒绝创建新的主密钥" in r.stderr
    assert not enrolled.key_file.exists()
    shutil.move(original, enrolled.key_file)
    assert enrolled.listed() == GOOD_LISTING  # and nothing was harmed


@pytest.mark.parametrize(
    "command",
    [
        ["school", "add", SCHOOL],
        ["roster", "list", "--school", SCHOOL],
    ],
    ids=["school-add", "roster-list"],
)
def test_a_command_before_init_fails_saying_the_master_key_is_missing(cli: Cli, command: list[str]) -> None:
    r = cli.run(*command)

    assert r.returncode != 0
    assert "找不到主密钥" in r.stderr and "anxin init" in r.stderr
    assert not cli.key_file.exists()
    assert cli.tables() == set()


# -- schools ------------------------------------------------------------------------------
def test_schools_are_added_and_listed_and_a_name_is_taken_once(cli: Cli) -> None:
    cli.given("实验小学")

    first = cli.ok("school", "add", SCHOOL, "--district", "安心区")
    duplicate = cli.run("school", "add", SCHOOL)

    assert f"已添加学校「{SCHOOL}」" in first
    assert duplicate.returncode != 0 and f"学校「{SCHOOL}」已存在" in duplicate.stderr
    listed = [line.split("\t")[:2] for line in cli.ok("school", "list").splitlines()]
    assert sorted(listed) == sorted([[SCHOOL, "安心区"], ["实验小学", "default"]])


# -- roster import --------------------------------------------------------------------------
def test_a_good_roster_file_imports_every_student(cli: Cli) -> None:
    cli.given(SCHOOL)

    out = cli.ok("roster", "import", cli.csv("good.csv", GOOD_ROWS), "--school", SCHOOL, process=True)  # a real process

    assert f"已导入到「{SCHOOL}」：新增 3 名，更正 0 名，不变 0 名，标记离校 0 名" in out
    assert cli.roster() == GOOD_LISTING


def test_a_half_valid_roster_file_applies_nothing_and_names_every_bad_line(enrolled: Cli) -> None:
    r = enrolled.run("roster", "import", enrolled.csv("half.csv", HALF_VALID_ROWS), "--school", SCHOOL)

    assert r.returncode != 0
    errors = r.stderr.splitlines()
    assert errors[0] == "导入被拒绝，未写入任何数据：共 5 行有错误"
    assert errors[1:] == [
        "第 3 行：姓名：必填，不能为空",
        "第 4 行：出生日期：「2013-13-45」不是有效日期（应为 2013-05-06 或 2013/5/6）",
        "第 5 行：性别：「x」无法识别（应为 男 或 女）",
        "第 6 行：学号：「T001」在文件中重复（第 2 行已出现）",
        "第 8 行：监护人电话：「abc」格式不正确（应为 11 位手机号、座机号（可带区号）或 + 开头的国际号码）",
    ]
    assert enrolled.roster() == GOOD_LISTING  # neither T001 nor T007 went in, nor S001's change


def test_importing_the_same_file_again_changes_nothing_and_creates_no_duplicates(enrolled: Cli) -> None:
    out = enrolled.ok("roster", "import", str(enrolled.home / "good.csv"), "--school", SCHOOL)

    assert "新增 0 名，更正 0 名，不变 3 名，标记离校 0 名" in out
    assert enrolled.sql("SELECT COUNT(*) FROM {t}anxin_directory WHERE kind = 'student'") == [(3,)]
    assert enrolled.listed() == GOOD_LISTING


def test_a_reimport_previews_with_dry_run_then_corrects_enrols_and_marks_leavers_only_when_asked(
    enrolled: Cli,
) -> None:
    updated = enrolled.csv(
        "updated.csv",
        [
            "S001,张三丰,男,2013-05-06,七年级,七年级2班,张父,13912345678,留守儿童",  # moved class
            "S002,李四娘,女,2013-06-07,七年级,七年级1班,李母,13800000000,",  # a new phone
            "S004,赵六妹,女,2013-08-09,七年级,七年级1班,赵母,13700000000,",  # new
        ],  # S003 is missing
        encoding="gbk",  # as Excel saves it
    )
    table = "anxin_events" if "anxin_events" in enrolled.tables() else "stored_events"
    events = f"SELECT COUNT(*) FROM {{t}}{table}"

    before = enrolled.sql(events)
    dry = enrolled.ok("roster", "import", updated, "--school", SCHOOL, "--dry-run")

    assert "CSV（GB18030/GBK）" in dry and "新增（转入）：1 名" in dry and "S004\t赵六妹\t七年级1班" in dry
    assert "信息有变（将更正）：2 名" in dry
    assert "S001\t张三丰\t班级 七年级1班 → 七年级2班" in dry
    assert "S002\t李四娘\t监护人电话 13912345679 → 13800000000" in dry
    assert "本校在校但文件中没有：1 名" in dry and "S003\t王五郎\t七年级2班" in dry
    assert "试运行（--dry-run）：未写入任何数据" in dry
    assert enrolled.sql(events) == before and enrolled.listed() == GOOD_LISTING

    out = enrolled.ok("roster", "import", updated, "--school", SCHOOL)
    assert "新增 1 名，更正 2 名，不变 0 名，标记离校 0 名" in out and "加 --leavers" in out
    assert sorted(enrolled.listed()) == [
        ("S001", "张三丰", "七年级2班"),
        ("S002", "李四娘", "七年级1班"),
        ("S003", "王五郎", "七年级2班"),  # still at school: not removed silently
        ("S004", "赵六妹", "七年级1班"),
    ]

    out = enrolled.ok("roster", "import", updated, "--school", SCHOOL, "--leavers", "--leave-reason", "转学")
    assert "新增 0 名，更正 0 名，不变 3 名，标记离校 1 名" in out
    with enrolled.app() as app:
        s3 = app.roster.get_student(CLI_ACTOR, str(app.roster.student_id_for(app.roster.school_id(SCHOOL), "S003")))
        assert not s3.active
    assert "本校在校但文件中没有：0 名" in enrolled.ok("roster", "import", updated, "--school", SCHOOL, "--dry-run")


def test_a_roster_file_in_gbk_is_read_and_one_in_no_known_encoding_is_refused_naming_them(cli: Cli) -> None:
    cli.given(SCHOOL)

    out = cli.ok("roster", "import", cli.csv("gbk.csv", GOOD_ROWS, encoding="gbk"), "--school", SCHOOL)
    assert "新增 3 名" in out and cli.roster() == GOOD_LISTING

    path = cli.home / "bad.csv"
    path.write_bytes(HEADER.encode() + b"\nS009,\x80\xff,\xa1\n")
    r = cli.run("roster", "import", str(path), "--school", SCHOOL)
    assert r.returncode != 0
    assert "无法识别文件的编码" in r.stderr and "UTF-8" in r.stderr and "GB18030/GBK" in r.stderr
    assert cli.sql("SELECT COUNT(*) FROM {t}anxin_directory WHERE kind = 'student'") == [(3,)]


def test_a_roster_header_missing_a_column_is_refused_naming_the_columns(cli: Cli) -> None:
    cli.given(SCHOOL)
    header = HEADER.replace(",grade", "")
    path = cli.csv("header.csv", ["S001,张三丰,男,2013-05-06,七年级1班,张父,13912345678,"], header=header)

    r = cli.run("roster", "import", path, "--school", SCHOOL)

    assert r.returncode != 0
    assert "第 1 行：表头缺少列：年级" in r.stderr
    assert HEADER in r.stderr and "学号,姓名,性别,出生日期,年级,班级,监护人姓名,监护人电话,标签" in r.stderr
    assert cli.sql("SELECT COUNT(*) FROM {t}anxin_directory WHERE kind = 'student'") == [(0,)]


def test_importing_into_an_unknown_school_names_the_school(cli: Cli) -> None:
    cli.given(SCHOOL)

    r = cli.run("roster", "import", cli.csv("good.csv", GOOD_ROWS), "--school", "不存在中学")

    assert r.returncode != 0
    assert "找不到学校「不存在中学」" in r.stderr and "anxin school add" in r.stderr
    assert cli.sql("SELECT COUNT(*) FROM {t}anxin_directory WHERE kind = 'student'") == [(0,)]


# -- users ----------------------------------------------------------------------------------
SETUP_LINK = re.compile(r"^(\S+)/setup/([A-Za-z0-9_-]{20,})$", re.M)


def _setup(out: str) -> tuple[str, str]:
    """(the site's address, the code) of the set-up link a command printed."""
    found = SETUP_LINK.search(out)
    assert found, out
    return found.group(1), found.group(2)


def test_a_user_is_added_with_roles_and_classes_and_a_set_up_link_never_a_password(cli: Cli) -> None:
    cli.given(SCHOOL)

    out = cli.ok(
        "user",
        "add",
        "--username",
        "wang",
        "--name",
        "王老师",
        "--school",
        SCHOOL,
        "--role",
        "counselor",
        "--role",
        "class_teacher",
        "--class",
        "七年级1班",
    )

    assert "已添加用户 wang（心理老师, 班主任）" in out
    base, code = _setup(out)
    assert base == "http://127.0.0.1:8000"  # neither --base-url nor ANXIN_BASE_URL: `anxin serve`'s address
    assert f"设置码：{code}" in out and "有效期至 " in out and "年" in out
    [(roles, classes, pw_hash)] = cli.sql(
        "SELECT roles, classes, password_hash FROM {t}anxin_staff WHERE username = ?", ("wang",)
    )
    assert set(roles.split(",")) == {"counselor", "class_teacher"}  # held at once: the operator's account
    assert json.loads(classes) == ["七年级1班"]
    assert pw_hash is None  # no password until the person sets theirs
    assert code.encode() not in cli.raw_bytes()  # only the code's hash is stored
    with cli.app() as app:
        assert app.accounts.authenticate("wang", PASSWORD) is None
        staff_id = app.accounts.set_up(code, PASSWORD, PASSWORD)
        assert app.accounts.authenticate("wang", PASSWORD) == staff_id


def test_the_set_up_links_address_comes_from_the_option_or_the_environment(cli: Cli) -> None:
    cli.given(SCHOOL)
    add = ("user", "add", "--name", "王老师", "--school", SCHOOL, "--role", "class_teacher")

    from_env = cli.ok(*add, "--username", "a1", env={"ANXIN_BASE_URL": "https://anxin.example.cn/"})
    from_option = cli.ok(
        *add, "--username", "a2", "--base-url", "https://x.example.cn", env={"ANXIN_BASE_URL": "https://y.example.cn"}
    )

    assert _setup(from_env)[0] == "https://anxin.example.cn"
    assert _setup(from_option)[0] == "https://x.example.cn"


def test_user_add_refuses_a_password_a_taken_username_or_an_unknown_school(cli: Cli) -> None:
    cli.given(SCHOOL, users=(("wang", "王老师", "counselor"),))
    add = ("user", "add", "--name", "李老师", "--role", "counselor")

    with_password = cli.run(*add, "--username", "li", "--school", SCHOOL, "--password", PASSWORD)
    taken = cli.run(*add, "--username", "wang", "--school", SCHOOL)
    nowhere = cli.run(*add, "--username", "zhao", "--school", "不存在中学")

    assert with_password.returncode != 0 and "不再接受密码" in with_password.stderr
    assert "/setup/" not in with_password.stdout
    assert taken.returncode != 0 and "用户名「wang」已被使用" in taken.stderr
    assert nowhere.returncode != 0 and "找不到学校「不存在中学」" in nowhere.stderr
    assert cli.sql("SELECT username, roles FROM {t}anxin_staff") == [("wang", "counselor")]


def test_user_setup_code_reissues_the_link_and_the_old_one_stops_working(cli: Cli) -> None:
    cli.given(SCHOOL)
    _base, first = _setup(
        cli.ok("user", "add", "--username", "wang", "--name", "王老师", "--school", SCHOOL, "--role", "counselor")
    )

    out = cli.ok("user", "setup-code", "wang")

    _base, second = _setup(out)
    assert second != first and "原来的链接已作废" in out
    with cli.app() as app:
        assert app.accounts.setup_staff(first) is None  # void at once
        staff_id = app.accounts.set_up(second, PASSWORD, PASSWORD)
    [(actor, subject)] = cli.sql("SELECT actor_id, subject FROM {t}anxin_audit WHERE kind = 'setup_code_issue'")
    assert (actor, subject) == ("cli", staff_id)
    # once the password is set, no new link: and the used one stays used
    again = cli.run("user", "setup-code", "wang")
    assert again.returncode != 0 and "已设置密码" in again.stderr and "/setup/" not in again.stdout
    with cli.app() as app:
        assert app.accounts.setup_staff(second) is None
    unknown = cli.run("user", "setup-code", "nobody")
    assert unknown.returncode != 0 and "找不到账号「nobody」" in unknown.stderr


# -- demo -----------------------------------------------------------------------------------
DEMO_ACCOUNTS = {
    "teacher1": {"class_teacher"},
    "counselor1": {"counselor"},
    "safety1": {"safety_lead"},
    "principal1": {"principal"},
    "supervisor1": {"supervisor"},
    "admin": {"administrator"},
}


@dataclass
class DemoRuns:
    stores: tuple[Cli, Cli]
    outputs: tuple[str, str]


@pytest.fixture(scope="module", params=STORES)
def demo_twice(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoRuns]:
    """Two fresh stores, each loaded by `anxin demo --password PW` with the same (the
    default) seed, side by side: the first of the parametrised kind, the second on SQLite
    (so on PostgreSQL the same seed must give the same district on either store). The
    demo is the slowest command: it runs once per store kind, for tests that only read."""
    root = tmp_path_factory.mktemp("demo")
    with _stores(request.param, root / "first") as make, _stores("sqlite", root / "second") as make_sqlite:
        (root / "first").mkdir()
        (root / "second").mkdir()
        stores = (make(), make_sqlite())
        for store in stores:
            store.given()
        running = [
            subprocess.Popen(
                [sys.executable, "-m", "anxin.cli", *s._argv(("demo", "--password", PASSWORD))],
                cwd=s.home,
                env=s.env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for s in stores
        ]
        outputs = []
        for process in running:
            out, err = process.communicate(timeout=300)
            assert process.returncode == 0, f"{out}\n{err}"
            outputs.append(out)
        yield DemoRuns(stores, (outputs[0], outputs[1]))


def test_the_demo_loads_two_schools_of_600_students_and_the_demo_accounts(demo_twice: DemoRuns) -> None:
    store = demo_twice.stores[0]

    assert "2 所学校，600 名学生" in demo_twice.outputs[0]
    summary = store.ok("summary")
    counts = [line for line in summary.splitlines() if "学生" in line and "名" in line]
    assert len(counts) == 2 and sum(int(line.split("学生")[1].split("名")[0]) for line in counts) == 600
    with store.app() as app:
        for username, roles in DEMO_ACCOUNTS.items():
            account = app.accounts.account(username)
            assert account is not None, username
            staff_id, pw_hash = account
            assert verify_password(pw_hash, PASSWORD), username
            assert {r.value for r in app.gate.actor(staff_id).roles} == roles
        assert app.gate.actor(app.accounts.account("teacher1")[0]).classes == {"七年级1班"}


def test_the_demo_is_the_same_for_the_same_seed(demo_twice: DemoRuns) -> None:
    one, two = demo_twice.stores

    listed = [store.roster("安心市第一中学") for store in (one, two)]

    assert listed[0] == listed[1] and len(listed[0]) == 300
    assert one.listed("安心市实验小学") == two.listed("安心市实验小学")
    assert demo_twice.outputs[0] == demo_twice.outputs[1]


def test_the_demo_refuses_a_store_that_has_data_and_if_empty_skips_it(cli: Cli) -> None:
    cli.given(SCHOOL)

    refused = cli.run("demo", "--students", "10")
    skipped = cli.ok("demo", "--students", "10", "--if-empty")

    assert refused.returncode != 0 and "演示数据只能载入空库" in refused.stderr
    assert "演示数据已存在，跳过" in skipped
    assert [line.split("\t")[0] for line in cli.ok("school", "list").splitlines()] == [SCHOOL]


# -- shred ----------------------------------------------------------------------------------
ERASED_ROW = ("-", "已删除 (erased)", "七年级1班")


def test_shredding_a_student_erases_them_and_leaves_the_others(enrolled: Cli) -> None:
    out = enrolled.ok("shred", "--student", "S002", "--school", SCHOOL, "--yes")

    assert "已销毁学生 S002" in out
    assert enrolled.roster() == [GOOD_LISTING[0], GOOD_LISTING[2], ERASED_ROW]
    assert "李四娘".encode() not in enrolled.ok("roster", "list", "--school", SCHOOL).encode()


def test_shredding_without_yes_and_without_a_terminal_refuses_and_changes_nothing(enrolled: Cli) -> None:
    r = enrolled.run("shred", "--student", "S002", "--school", SCHOOL)

    assert r.returncode != 0 and "需要确认" in r.stderr and "--yes" in r.stderr
    assert enrolled.listed() == GOOD_LISTING
    assert enrolled.sql("SELECT COUNT(*) FROM {t}anxin_keys WHERE wrapped IS NULL") == [(0,)]


def test_shredding_a_stream_by_id_erases_it(enrolled: Cli) -> None:
    with enrolled.app() as app:
        stream_id = str(app.roster.student_id_for(app.roster.school_id(SCHOOL), "S002"))

    out = enrolled.ok("shred", "--stream", stream_id, "--yes")

    assert f"已销毁记录 {stream_id}的密钥" in out
    assert enrolled.roster() == [GOOD_LISTING[0], GOOD_LISTING[2], ERASED_ROW]


def test_shredding_a_stream_that_does_not_exist_is_refused(enrolled: Cli) -> None:
    r = enrolled.run("shred", "--stream", str(uuid.uuid4()), "--yes")

    assert r.returncode != 0 and "找不到该记录" in r.stderr
    assert enrolled.sql("SELECT COUNT(*) FROM {t}anxin_keys WHERE wrapped IS NULL") == [(0,)]


# -- keys -----------------------------------------------------------------------------------
def test_rotating_the_master_key_keeps_every_name_readable_and_retires_the_old_key(enrolled: Cli) -> None:
    old = enrolled.home / "old-copy.key"
    shutil.copy(enrolled.key_file, old)

    out = enrolled.ok("keys", "rotate")

    assert "已轮换主密钥" in out
    assert enrolled.key_file.read_bytes() != old.read_bytes()
    assert stat.S_IMODE(enrolled.key_file.stat().st_mode) == 0o600
    assert list(enrolled.key_file.parent.glob("*.new")) == []
    assert enrolled.roster() == GOOD_LISTING
    stale = enrolled.run("roster", "list", "--school", SCHOOL, env={"ANXIN_MASTER_KEY_FILE": str(old)})
    assert stale.returncode != 0
    assert "本库使用的主密钥编号为" in stale.stderr and "张三丰" not in stale.stdout


# -- where the store is -----------------------------------------------------------------------
def test_the_store_can_be_named_by_the_environment_or_by_data_dir(cli: Cli) -> None:
    """SQLite by ANXIN_DATABASE_URL + ANXIN_MASTER_KEY_FILE alone; PostgreSQL with
    --data-dir (holding the key file) after the command's own arguments."""
    path = cli.csv("good.csv", GOOD_ROWS)
    if cli.is_postgres:
        env = {k: v for k, v in cli.env.items() if k != "ANXIN_MASTER_KEY_FILE"}
        data_dir = cli.home / "pgdata"
        commands = [
            ["init", "--data-dir", str(data_dir)],
            ["school", "add", SCHOOL, "--district", "安心区", "--data-dir", str(data_dir)],
            ["roster", "import", path, "--school", SCHOOL, "--data-dir", str(data_dir)],
            ["roster", "list", "--school", SCHOOL, "--data-dir", str(data_dir)],
        ]
        key_file = data_dir / "master.key"
    else:
        key_file = cli.home / "keys" / "master.key"
        db = cli.home / "elsewhere" / "anxin.db"
        env = cli.env | {"ANXIN_DATABASE_URL": f"sqlite:///{db}", "ANXIN_MASTER_KEY_FILE": str(key_file)}
        commands = [
            ["init"],
            ["school", "add", SCHOOL, "--district", "安心区"],
            ["roster", "import", path, "--school", SCHOOL],
            ["roster", "list", "--school", SCHOOL],
        ]
    outputs = []
    for command in commands:
        r = subprocess.run(
            [sys.executable, "-m", "anxin.cli", *command],
            cwd=cli.home,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert r.returncode == 0, r.stderr
        outputs.append(r.stdout)

    assert key_file.exists() and stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert [tuple(p.strip() for p in line.split("\t")) for line in outputs[-1].splitlines()] == GOOD_LISTING
    stray = sorted(p.name for p in (cli.home / "var").glob("*"))
    assert not (cli.home / "var").exists(), f"written to the default ./var of the working directory: {stray}"
    if not cli.is_postgres:
        assert db.exists() and not cli.data_dir.exists()


def test_summary_is_in_chinese_and_agrees_with_the_demo(demo_twice: DemoRuns) -> None:
    """Issue 18: `anxin summary` printed English kinds (case 24, file 32...) and totals
    other than `demo`'s (欺凌案件 22): both now print one line, from the store's directory."""
    demo_out = demo_twice.outputs[0]
    summary = demo_twice.stores[0].ok("summary")

    def totals(text: str) -> dict[str, int]:
        line = next(line for line in text.splitlines() if "记录总数：" in line)
        found = re.findall(r"([\u4e00-\u9fff]+) (\d+) [\u4e00-\u9fff]", line.split("记录总数：")[1])
        return {name: int(n) for name, n in found}

    assert totals(summary) == totals(demo_out)
    assert {"学生", "教职工", "欺凌案件", "心理档案", "一岗双带结对", "心理筛查记录"} <= set(totals(summary))
    assert totals(summary)["学生"] == 600
    for kind in ("student", "staff", "case", "file", "pairing", "screening", "committee"):
        assert not re.search(rf"\b{kind}\b", summary), f"{kind!r} in the summary"
