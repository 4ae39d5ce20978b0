"""Statements sent straight through the database driver, for the paths that run after
every command or fold many rows at once: a plain INSERT of many rows (executemany on
SQLite, COPY on PostgreSQL), and a `SELECT … WHERE key IN (…)` of plain columns."""

from __future__ import annotations

from collections.abc import Sequence
from operator import itemgetter
from typing import Any

from sqlalchemy import Connection, Insert, Table


def _getter(keys: Sequence[str]) -> Any:
    """A row's values for `keys`, as a tuple, in that order."""
    return itemgetter(*keys) if len(keys) > 1 else (lambda r, k=keys[0]: (r[k],))


_COMPILED: dict[tuple[Any, tuple[str, ...]], tuple[str, Any, list[tuple[int, Any]]]] = {}


def insert_many(conn: Connection, stmt: Any, rows: list[dict[str, Any]]) -> None:
    """`conn.execute(stmt, rows)` for a plain INSERT of rows with the same keys, on
    SQLite straight through the driver's executemany (the statement compiled once, the
    column types' bind processing applied as SQLAlchemy would), without SQLAlchemy's
    per-row parameter handling. Rows whose keys differ go through SQLAlchemy."""
    if not rows:
        return
    dialect = conn.dialect
    keys = tuple(rows[0])
    n_keys = len(keys)
    if len(rows) < 2 or any(len(r) != n_keys for r in rows):
        conn.execute(stmt, rows)
        return
    if dialect.name == "postgresql":
        _copy_many(conn, stmt, keys, rows)
        return
    if dialect.name != "sqlite":
        conn.execute(stmt, rows)
        return
    cache_key = (stmt, keys)
    found = _COMPILED.get(cache_key)
    if found is None:
        compiled = stmt.compile(dialect=dialect, column_keys=list(keys))
        names = list(compiled.positiontup or ())
        if sorted(names) != sorted(keys):
            conn.execute(stmt, rows)
            return
        procs = [
            (i, p)
            for i, n in enumerate(names)
            if (p := compiled.binds[n].type._cached_bind_processor(dialect)) is not None
        ]
        get = _getter(names)
        found = _COMPILED[cache_key] = (str(compiled), get, procs)
    sql, get, procs = found
    try:
        if procs:
            params: list[Any] = []
            for r in rows:
                t = list(get(r))
                for i, p in procs:
                    if t[i] is not None:
                        t[i] = p(t[i])
                params.append(tuple(t))
        else:
            params = list(map(get, rows))
    except KeyError:  # rows with other keys: SQLAlchemy says what is wrong
        conn.execute(stmt, rows)
        return
    conn.exec_driver_sql(sql, params)


def driver_mark(conn: Connection) -> str:
    """The driver's placeholder, for SQL sent through `exec_driver_sql`."""
    return "?" if conn.dialect.paramstyle == "qmark" else "%s"


def select_in(
    conn: Connection, table: Table, columns: Sequence[str], key: str, values: Sequence[Any]
) -> list[tuple[Any, ...]]:
    """`SELECT columns FROM table WHERE key IN (values)` straight through the driver: for
    columns whose values need no conversion (text, integers), on the paths that run
    after every command, where SQLAlchemy's statement handling (an expanding IN) cost more
    than the query."""
    if not values:
        return []
    for name in (*columns, key):
        if name not in table.c:
            raise KeyError(f"{table.name} has no column {name}")
    mark = driver_mark(conn)
    sql = f"SELECT {', '.join(columns)} FROM {table.name} WHERE {key} IN ({', '.join([mark] * len(values))})"
    return [tuple(r) for r in conn.exec_driver_sql(sql, tuple(values))]


def _plain_insert(stmt: Any) -> bool:
    """A `table.insert()` with nothing else (no values, no SELECT, no RETURNING)."""
    return (
        isinstance(stmt, Insert)
        and stmt.select is None
        and not stmt._values
        and not stmt._multi_values
        and not stmt._returning
        and not stmt._post_values_clause
        and isinstance(stmt.table, Table)
    )


def _copy_many(conn: Connection, stmt: Any, keys: tuple[str, ...], rows: list[dict[str, Any]]) -> None:
    """PostgreSQL: the rows of a plain INSERT sent with COPY, on the connection's own
    transaction (so they commit or roll back with the view's position)."""
    if not _plain_insert(stmt):
        conn.execute(stmt, rows)
        return
    from psycopg import sql

    table: Table = stmt.table
    try:
        columns = [table.c[k] for k in keys]
    except KeyError:
        conn.execute(stmt, rows)
        return
    dialect = conn.dialect
    procs = [(i, p) for i, c in enumerate(columns) if (p := c.type._cached_bind_processor(dialect)) is not None]
    get = _getter(keys)
    copy = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(table.name), sql.SQL(", ").join(sql.Identifier(c.name) for c in columns)
    )
    raw = conn.connection.driver_connection
    assert raw is not None
    with raw.cursor() as cur, cur.copy(copy) as cp:
        for r in rows:
            values = get(r)
            if procs:
                values = list(values)
                for i, p in procs:
                    if values[i] is not None:
                        values[i] = p(values[i])
            cp.write_row(values)
