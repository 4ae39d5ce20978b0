"""Searching students by name with a keyed blind index (`v_student_names`).

Tokens HMAC(index key, school + normalized name) for the full name, the surname and the
given name of every student (`keystore.blind`); the table never holds a name. Shredding
a student deletes their tokens. A search passes the gate (STUDENT_READ) and resolves
the names of the students found when it is made (已删除 once erased).
"""

from __future__ import annotations

import re
import unicodedata
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Index, PrimaryKeyConstraint, bindparam, delete, select

from domain import access
from domain.access import Decision, Resource, decide
from domain.common import Actor
from domain.grades import class_sort_key
from domain.roster import Student
from projections.base import Column, String, Table, View, WriteBehind, metadata, own_fold
from projections.source import student_refs
from projections.support_register_view import enrolment

if TYPE_CHECKING:
    from projections.base import Source, StudentRef

NAMES = "student_names"

names = Table(
    "v_student_names",
    metadata,
    Column("token", String(64), nullable=False),
    Column("student_id", String(36), nullable=False),
    Column("school_id", String(36), nullable=False),
    PrimaryKeyConstraint("token", "student_id"),
    Index("v_student_names_student", "student_id"),
)

# Statements built once (a handler only binds values: no statement building per event).
INSERT_NAME = names.insert()
DELETE_NAMES = delete(names).where(names.c.student_id == bindparam("sid"))
SCHOOL_OF = select(names.c.school_id).where(names.c.student_id == bindparam("sid")).limit(1)


# -- the blind index --------------------------------------------------------------------------
# Two-character surnames (复姓); any other name's surname is its first character.
COMPOUND_SURNAMES = frozenset(
    "欧阳 司马 上官 诸葛 东方 皇甫 尉迟 公孙 慕容 长孙 宇文 司徒 夏侯 轩辕 令狐 端木 独孤 南宫 西门 百里 "
    "呼延 钟离 闻人 赫连 澹台 公冶 太叔 申屠 濮阳 淳于 单于 仲孙 万俟 司空 鲜于 闾丘 亓官 拓跋 左丘 东郭 "
    "歐陽 諸葛 皇甫 尉遲 長孫 宇文 司徒 夏侯 軒轅 令狐 端木 獨孤 南宮 鍾離".split()
)
_SEPARATORS = re.compile(r"[\s·•・.\-]+")


def name_parts(name: str) -> list[str]:
    """A name, normalized (NFKC, lower case) and cut at spaces and middle dots."""
    text_ = unicodedata.normalize("NFKC", name or "").strip().lower()
    return [p for p in _SEPARATORS.split(text_) if p]


def normalize_name(name: str) -> str:
    return "".join(name_parts(name))


def split_name(name: str) -> tuple[str, str]:
    """(surname, given name). A Chinese name: a two-character surname if it is one of
    the 复姓, else the first character. A name written in parts: the first part, the rest."""
    parts = name_parts(name)
    if not parts:
        return "", ""
    if len(parts) > 1:
        return parts[0], "".join(parts[1:])
    full = parts[0]
    n = 2 if len(full) > 2 and full[:2] in COMPOUND_SURNAMES else 1
    return full[:n], full[n:]


# What a token stands for: the full name, the surname, the given name.
PURPOSES = ("student-name", "student-surname", "student-given")


def _token(app: Source, school_id: str, purpose: str, value: str) -> str:
    """A blind-index token, bound to the school (so tokens say nothing across schools)."""
    return app.keystore.blind(purpose, f"{school_id}\x1f{value}")


def name_tokens(app: Source, school_id: str, name: str) -> set[str]:
    """Blind-index tokens of a student's name: the full name, the surname, the given name."""
    surname, given = split_name(name)
    values = (normalize_name(name), surname, given)
    return {_token(app, school_id, purpose, value) for purpose, value in zip(PURPOSES, values, strict=True) if value}


def query_tokens(app: Source, school_id: str, query: str) -> set[str]:
    """What a search for `query` matches: a full name, a surname or a given name."""
    value = normalize_name(query)
    if not value:
        return set()
    return {_token(app, school_id, purpose, value) for purpose in PURPOSES}


class StudentNamesView(WriteBehind, View):
    name = NAMES
    tables = (names,)
    fold = own_fold()

    def __init__(self, app: Source) -> None:
        super().__init__(app)
        # The index key is created on first use: make sure that happens now, not inside
        # a view transaction (SQLite has one writer).
        app.keystore.ensure_index_key()

    def _index(self, conn: Connection, student_id: str, school_id: str, name: str, position: int) -> None:
        tokens = sorted(name_tokens(self.app, school_id, name))
        if tokens:
            self._insert(
                conn,
                INSERT_NAME,
                [{"token": t, "student_id": student_id, "school_id": school_id} for t in tokens],
                position,
            )

    @fold.register
    def _(self, e: Student.Enrolled, conn: Connection, position: int) -> None:
        self._index(conn, str(e.originator_id), e.school_id, e.name, position)

    @fold.register
    def _(self, e: Student.DetailsCorrected, conn: Connection, position: int) -> None:
        if "name" not in e.changes:
            return
        sid = str(e.originator_id)
        school_id = self._execute(conn, SCHOOL_OF, {"sid": sid}, position).scalar()
        conn.execute(DELETE_NAMES, {"sid": sid})
        if school_id is not None:
            self._index(conn, sid, school_id, e.changes["name"], position)

    def erase(self, conn: Connection, stream_id: str) -> None:
        conn.execute(DELETE_NAMES, {"sid": stream_id})


def search_students(
    app: Source, actor: Actor, school_id: str, name: str, break_glass: str | None = None, *, limit: int = 50
) -> list[StudentRef]:
    """Students of a school whose full name, surname or given name is `name` (at most
    `limit`, by class), with their names resolved now. STUDENT_READ for the school: every
    match; a class teacher (STUDENT_READ for their classes): the matches in their classes;
    anyone else is refused. One recorded decision per search."""
    school = app.resource("student", school_id=school_id)
    whole: Decision = decide(actor, access.STUDENT_READ, school, break_glass)
    if whole.allowed:
        app.authorize(actor, access.STUDENT_READ, school, break_glass)
    else:
        app.authorize(
            actor,
            access.STUDENT_READ,
            Resource(
                kind="student",
                school_id=school_id,
                classes=frozenset(actor.classes),
                district=school.district,
            ),
            break_glass,
        )
    app.views.catch_up()
    tokens = sorted(query_tokens(app, school_id, name))
    if not tokens:
        return []
    q = (
        select(names.c.student_id, enrolment.c.class_name)
        .distinct()
        .select_from(names.outerjoin(enrolment, enrolment.c.student_id == names.c.student_id))
        .where(names.c.token.in_(tokens), names.c.school_id == school_id)
    )
    if not whole.allowed:
        q = q.where(enrolment.c.class_name.in_(sorted(actor.classes)))
    q = q.order_by(enrolment.c.class_name, names.c.student_id).limit(limit)
    with app.views.engine.connect() as conn:
        ids = [r[0] for r in conn.execute(q)]
    return sorted(
        student_refs(app, ids), key=lambda r: (r.erased, class_sort_key(r.class_name), r.student_no or "", r.id)
    )


__all__ = [
    "NAMES",
    "names",
    "StudentNamesView",
    "search_students",
    "name_tokens",
    "query_tokens",
    "split_name",
    "normalize_name",
    "name_parts",
]
