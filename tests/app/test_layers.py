"""The layers keep to their side: the web and the CLI talk to the application only.

Read from the code itself with `ast`, so a comment or a docstring that mentions SQL or
the store does not count, and code does wherever it hides (inside a function, an f-string,
a constant defined elsewhere in the module)."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# What reaches the store: the application's database and recorder, and the drivers.
STORE_ATTRIBUTES = {"db", "recorder"}
STORE_MODULES = {"sqlite3", "psycopg", "psycopg2", "psycopg_pool", "sqlalchemy"}
# SQL in a string: a statement's keywords (as this code base writes them, in capitals) or
# the `{t}` placeholder of a table name.
SQL = re.compile(
    r"\bSELECT\b[\s\S]*\bFROM\b|\bINSERT\s+INTO\b|\bUPDATE\b[\s\S]*\bSET\b|\bDELETE\s+FROM\b"
    r"|\b(?:CREATE|DROP|ALTER)\s+(?:TABLE|INDEX|VIEW)\b|\bTRUNCATE\b|\{t\}"
)


def _docstrings(tree: ast.AST) -> set[int]:
    """The ids of the string constants that are docstrings (of the module, a class, a function)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if (
                body
                and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)
            ):
                found.add(id(body[0].value))
    return found


def store_reaches(source: str) -> list[str]:
    """Where a module's code touches the store or SQL: (line) what."""
    tree = ast.parse(source)
    docs = _docstrings(tree)
    found = []
    for node in ast.walk(tree):
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.Attribute) and node.attr in STORE_ATTRIBUTES:
            found.append(f"{line}: .{node.attr}")
        elif isinstance(node, ast.Import):
            found += [f"{line}: import {a.name}" for a in node.names if a.name.split(".")[0] in STORE_MODULES]
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in STORE_MODULES:
            found.append(f"{line}: from {node.module}")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
            if SQL.search(node.value):
                found.append(f"{line}: SQL {node.value[:60]!r}")
    return found


def outside_modules() -> Iterator[Path]:
    """The modules outside the application layer that must go through it: the web, and
    the CLI (inside the `anxin` package, but a client of the application like the web)."""
    yield from sorted((ROOT / "web").rglob("*.py"))
    yield from sorted((ROOT / "anxin" / "cli").rglob("*.py"))


def test_the_web_and_the_cli_never_touch_the_database_or_sql() -> None:
    # given every module of web/ and the CLI; then none reaches the store or holds SQL
    offending = {
        str(p.relative_to(ROOT)): found
        for p in outside_modules()
        if (found := store_reaches(p.read_text(encoding="utf-8")))
    }
    assert offending == {}, "go through a named method of the application layer (anxin/) instead"


def test_the_store_check_sees_code_and_not_comments_or_docstrings() -> None:
    # given a module that mentions SQL and the store only in a docstring and comments
    quiet = (
        '"""Reads SELECT x FROM {t}anxin_staff through app.db."""\n# app.db.fetch("DELETE FROM t")\n'
        'def f(app):\n    """Like UPDATE t SET x; never sqlite3."""\n    return app.accounts.staff("x")\n'
    )
    # then nothing is found
    assert store_reaches(quiet) == []
    # and code that reaches the store is found, wherever it hides
    loud = (
        'import sqlite3\nfrom sqlalchemy import select\nQ = "SELECT staff_id FROM {t}anxin_staff"\n'
        "def f(app, x):\n    app.db.fetch(Q)\n    app.recorder.max_notification_id()\n"
        '    return f"DELETE FROM t WHERE id = {x}", "INSERT INTO t VALUES (1)", "UPDATE t SET a = 1"\n'
    )
    found = store_reaches(loud)
    assert [f.split(":")[0] for f in found].count("1") == 1 and any("from sqlalchemy" in f for f in found)
    assert any(".db" in f for f in found) and any(".recorder" in f for f in found)
    assert sum("SQL" in f for f in found) == 4
    # and an ordinary sentence in a string is not SQL
    assert store_reaches('MSG = "Select a school, then update the form"\n') == []
