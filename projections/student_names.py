"""Finding a student: a keyed blind index (`v_student_names`) on what people type.

Tokens HMAC(index key, purpose | school | value), never the value itself (`keystore.blind`),
for every student:
- the name as written: the full name (rank 0), the surname and the given name (rank 1),
  and the full name's first characters (张小 of 张小明, rank 2);
- its pinyin without tones (`spellings`): the whole (zhangxiaoming, rank 0), its first
  letters (zxm, rank 0), the surname's and the given name's pinyin and the given name's
  letters (rank 1), and every beginning of these up to SPELL_PREFIX letters (rank 2).
  A surname read otherwise as a surname (单 shan, 曾 zeng, 解 xie: SURNAME_READINGS) is
  indexed under both readings, and ü both as v (lv) and as u (lu);
- the student number (rank 0) and its beginnings from NUMBER_PREFIX characters (rank 2).

A search (`search_students`) hashes what was typed the same ways and looks the tokens
up; a student matched several ways counts by their best (lowest) rank. Every token is
bound to the school, so tokens say nothing across schools. Prefixes are bounded (at
most SPELL_PREFIX letters, NAME_PREFIX characters), so a student has a few dozen rows;
a longer query is looked up by its first SPELL_PREFIX letters (a longer pinyin is rare).
Shredding a student deletes their tokens. A search passes the gate (STUDENT_READ) and
resolves the names of the students found when it is made (已删除 once erased).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    Connection,
    Index,
    PrimaryKeyConstraint,
    SmallInteger,
    and_,
    bindparam,
    delete,
    func,
    select,
    true,
)

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

# What a row's token was made from: the name ("n": corrected with the name) or the
# student number ("s": never corrected).
FROM_NAME, FROM_NUMBER = "n", "s"

names = Table(
    "v_student_names",
    metadata,
    Column("token", String(64), nullable=False),
    Column("student_id", String(36), nullable=False),
    Column("school_id", String(36), nullable=False),
    # How closely the token fits (0: the whole name, pinyin, initials or number; 1: the
    # surname or the given name; 2: a beginning of one of them): best matches first.
    Column("rank", SmallInteger, nullable=False),
    Column("source", String(1), nullable=False),
    PrimaryKeyConstraint("token", "student_id"),
    Index("v_student_names_student", "student_id"),
)

# Statements built once (a handler only binds values: no statement building per event).
INSERT_NAME = names.insert()
DELETE_NAMES = delete(names).where(names.c.student_id == bindparam("sid"))
DELETE_NAME_TOKENS = delete(names).where(names.c.student_id == bindparam("sid"), names.c.source == FROM_NAME)
SCHOOL_OF = select(names.c.school_id).where(names.c.student_id == bindparam("sid")).limit(1)


# -- names ------------------------------------------------------------------------------------
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


# -- pinyin -----------------------------------------------------------------------------------
# Surnames read otherwise than the character's everyday reading (pypinyin reads 单 dan,
# 曾 ceng, 解 jie; it has no surname mode): the surname's reading first, syllables apart;
# the everyday one is indexed too, since people also type that.
SURNAME_READINGS: dict[str, tuple[str, ...]] = {
    surname: tuple(r.strip() for r in readings.split("/"))
    for surname, readings in (
        line.split(" ", 1)
        for line in """
单 shan
曾 zeng
解 xie
仇 qiu
朴 piao
乐 yue / le
翟 zhai
区 ou
查 zha
覃 qin
盖 ge
缪 miao
繁 po
召 shao
员 yun
黑 he
秘 bi
种 chong
重 chong
折 she
隗 wei
句 gou
阚 kan
祭 zhai
都 du
能 nai
薄 bo
蕃 pi
洗 xian
卜 bu
宓 fu
炅 gui
啜 chuai
尉迟 yu chi
万俟 mo qi
长孙 zhang sun
单于 chan yu
""".strip().splitlines()
    )
}
SPELL_PREFIX = 16  # letters: the longest beginning of a pinyin indexed
NAME_PREFIX = 8  # characters: the longest beginning of a written name indexed
NUMBER_PREFIX = 4  # characters: the shortest beginning of a student number indexed
_LETTERS = re.compile(r"[a-z]+")


@cache
def _lazy_pinyin() -> Any:
    from pypinyin import Style, lazy_pinyin  # loaded on first use (its dictionaries take a moment)

    return lambda text: lazy_pinyin(text, style=Style.NORMAL, errors="default")


def _syllables(text: str) -> list[str]:
    """Pinyin without tones, one item per syllable; anything not Chinese as its letters
    (a name written in Latin letters stays itself); digits and signs dropped."""
    out: list[str] = []
    for item in _lazy_pinyin()(text):
        out += _LETTERS.findall(item.lower())
    return out


def _readings(surname: str) -> list[list[str]]:
    """The surname's readings, each a list of syllables: the surname's own first."""
    out: list[list[str]] = []
    for reading in [r.split() for r in SURNAME_READINGS.get(surname, ())] + [_syllables(surname)]:
        if reading and reading not in out:
            out.append(reading)
    return out


def _with_u(syllables: list[str]) -> list[list[str]]:
    """ü typed as v (lv, the usual way) and as u (lu)."""
    if not any("v" in s for s in syllables):
        return [syllables]
    return [syllables, [s.replace("v", "u") for s in syllables]]


@dataclass(frozen=True)
class Spelling:
    """One way to spell a name in pinyin: the whole, the initials, and its two parts."""

    full: str
    initials: str
    surname: str
    given: str
    given_initials: str


def spellings(name: str) -> list[Spelling]:
    """The pinyin spellings a person may type for this name (surname readings × ü)."""
    parts = name_parts(name)
    if not parts:
        return []
    if all(p.isascii() for p in parts):  # a name written in Latin letters: its letters
        words = [w for p in parts for w in _LETTERS.findall(p)]
        surname_syll, given_sylls = words[:1], [words[1:]]
        surname_options = [surname_syll] if surname_syll else []
    else:
        surname, given = split_name(name)
        surname_options = _readings(surname)
        given_sylls = [[s for s in _syllables(given)]]
    out: list[Spelling] = []
    for sur in surname_options or [[]]:
        for given_s in given_sylls:
            for sylls in _with_u(sur + given_s):
                s, g = sylls[: len(sur)], sylls[len(sur) :]
                spelling = Spelling(
                    full="".join(sylls),
                    initials="".join(x[0] for x in sylls),
                    surname="".join(s),
                    given="".join(g),
                    given_initials="".join(x[0] for x in g),
                )
                if spelling.full and spelling not in out:
                    out.append(spelling)
    return out


# -- the blind index --------------------------------------------------------------------------
# What a token stands for: the written name (whole, surname, given name, a beginning of
# the whole), a pinyin spelling (any of them, and their beginnings), a student number.
PURPOSES = ("student-name", "student-surname", "student-given")
NAME_START = "student-name-start"
SPELL = "student-spell"
NUMBER = "student-number"


def _token(app: Source, school_id: str, purpose: str, value: str) -> str:
    """A blind-index token, bound to the school (so tokens say nothing across schools)."""
    return app.keystore.blind(purpose, f"{school_id}\x1f{value}")


def _best(ranked: Iterable[tuple[str, str, int]]) -> dict[tuple[str, str], int]:
    """(purpose, value) → its best rank, empty values left out."""
    out: dict[tuple[str, str], int] = {}
    for purpose, value, rank in ranked:
        if value and rank < out.get((purpose, value), 99):
            out[(purpose, value)] = rank
    return out


def name_values(name: str) -> dict[tuple[str, str], int]:
    """What a student's name is indexed under, before hashing: (purpose, value) → rank."""
    surname, given = split_name(name)
    whole = normalize_name(name)
    ranked: list[tuple[str, str, int]] = [
        (PURPOSES[0], whole, 0),
        (PURPOSES[1], surname, 1),
        (PURPOSES[2], given, 1),
    ]
    ranked += [(NAME_START, whole[:n], 2) for n in range(1, min(len(whole) - 1, NAME_PREFIX) + 1)]
    for sp in spellings(name):
        ranked += [(SPELL, sp.full, 0), (SPELL, sp.initials, 0)]
        ranked += [(SPELL, sp.surname, 1), (SPELL, sp.given, 1)]
        if len(sp.given_initials) > 1:
            ranked.append((SPELL, sp.given_initials, 1))
        for word in (sp.full, sp.initials, sp.given):
            ranked += [(SPELL, word[:n], 2) for n in range(1, min(len(word), SPELL_PREFIX) + 1)]
    return _best(ranked)


def normalize_number(number: str) -> str:
    return unicodedata.normalize("NFKC", number or "").strip().lower()


def number_values(student_no: str) -> dict[tuple[str, str], int]:
    """What a student number is indexed under: itself, and its beginnings."""
    no = normalize_number(student_no)
    ranked = [(NUMBER, no, 0)] + [(NUMBER, no[:n], 2) for n in range(NUMBER_PREFIX, len(no))]
    return _best(ranked)


def name_tokens(app: Source, school_id: str, name: str) -> dict[str, int]:
    """Blind-index tokens of a student's name, each with its rank."""
    return _hashed(app, school_id, name_values(name))


def number_tokens(app: Source, school_id: str, student_no: str) -> dict[str, int]:
    return _hashed(app, school_id, number_values(student_no))


def _hashed(app: Source, school_id: str, values: dict[tuple[str, str], int]) -> dict[str, int]:
    out: dict[str, int] = {}
    for (purpose, value), rank in values.items():
        token = _token(app, school_id, purpose, value)
        out[token] = min(rank, out.get(token, 99))
    return out


def query_values(query: str) -> set[tuple[str, str]]:
    """What a search for `query` looks up: a written name (whole, surname, given name, a
    beginning), a pinyin spelling or a beginning of one, a student number or its beginning."""
    value = normalize_name(query)
    if not value:
        return set()
    found = {(purpose, value) for purpose in PURPOSES}
    if not value.isascii():
        found.add((NAME_START, value))
    elif value.isalpha():
        found.add((SPELL, value[:SPELL_PREFIX]))
    number = normalize_number(query)
    if number and " " not in number and any(c.isdigit() for c in number):
        found.add((NUMBER, number))
    return found


def query_tokens(app: Source, school_id: str, query: str) -> set[str]:
    return {_token(app, school_id, purpose, value) for purpose, value in query_values(query)}


class StudentNamesView(WriteBehind, View):
    name = NAMES
    tables = (names,)
    fold = own_fold()

    def __init__(self, app: Source) -> None:
        super().__init__(app)
        # The index key is created on first use: make sure that happens now, not inside
        # a view transaction (SQLite has one writer).
        app.keystore.ensure_index_key()

    def _write(self, conn: Connection, rows: list[dict[str, Any]], position: int) -> None:
        if rows:
            self._insert(conn, INSERT_NAME, rows, position)

    def _name_rows(self, student_id: str, school_id: str, name: str) -> list[dict[str, Any]]:
        tokens = name_tokens(self.app, school_id, name)
        return [
            {"token": t, "student_id": student_id, "school_id": school_id, "rank": r, "source": FROM_NAME}
            for t, r in sorted(tokens.items())
        ]

    @fold.register
    def _(self, e: Student.Enrolled, conn: Connection, position: int) -> None:
        sid = str(e.originator_id)
        rows = self._name_rows(sid, e.school_id, e.name)
        by_name = {r["token"] for r in rows}
        rows += [
            {"token": t, "student_id": sid, "school_id": e.school_id, "rank": r, "source": FROM_NUMBER}
            for t, r in sorted(number_tokens(self.app, e.school_id, e.student_no).items())
            if t not in by_name  # (purposes differ: a clash would be a collision of HMACs)
        ]
        self._write(conn, rows, position)

    @fold.register
    def _(self, e: Student.DetailsCorrected, conn: Connection, position: int) -> None:
        if "name" not in e.changes:
            return
        sid = str(e.originator_id)
        school_id = self._execute(conn, SCHOOL_OF, {"sid": sid}, position).scalar()
        conn.execute(DELETE_NAME_TOKENS, {"sid": sid})
        if school_id is not None:
            self._write(conn, self._name_rows(sid, school_id, e.changes["name"]), position)

    def erase(self, conn: Connection, stream_id: str) -> None:
        conn.execute(DELETE_NAMES, {"sid": stream_id})


# -- searching --------------------------------------------------------------------------------
def _authorized_whole_school(app: Source, actor: Actor, school_id: str, break_glass: str | None) -> bool:
    """The gate's decision on a search, recorded: True for the whole school, False for the
    actor's own classes (a class teacher); refused (PermissionDenied) for anyone else."""
    school = app.resource("student", school_id=school_id)
    whole: Decision = decide(actor, access.STUDENT_READ, school, break_glass)
    if whole.allowed:
        app.authorize(actor, access.STUDENT_READ, school, break_glass)
        return True
    app.authorize(
        actor,
        access.STUDENT_READ,
        Resource(kind="student", school_id=school_id, classes=frozenset(actor.classes), district=school.district),
        break_glass,
    )
    return False


def _matches(
    app: Source, actor: Actor, school_id: str, query: str, break_glass: str | None, limit: int, active_only: bool
) -> list[tuple[str, int]]:
    """(student id, best rank) of the students the actor may see that `query` fits, best
    first, then by class; one recorded decision."""
    whole = _authorized_whole_school(app, actor, school_id, break_glass)
    app.views.catch_up()
    tokens = sorted(query_tokens(app, school_id, query))
    if not tokens:
        return []
    rank = func.min(names.c.rank).label("best")
    q = (
        select(names.c.student_id, rank, enrolment.c.class_name)
        .select_from(
            names.outerjoin(
                enrolment, and_(enrolment.c.student_id == names.c.student_id, enrolment.c.school_id == school_id)
            )
        )
        .where(names.c.token.in_(tokens), names.c.school_id == school_id)
        .group_by(names.c.student_id, enrolment.c.class_name)
    )
    if not whole:
        q = q.where(enrolment.c.class_name.in_(sorted(actor.classes)))
    if active_only:
        q = q.where(enrolment.c.active == true())
    q = q.order_by(rank, enrolment.c.class_name, names.c.student_id).limit(limit)
    with app.views.engine.connect() as conn:
        return [(r[0], r[1]) for r in conn.execute(q)]


def search_students(
    app: Source,
    actor: Actor,
    school_id: str,
    name: str,
    break_glass: str | None = None,
    *,
    limit: int = 50,
    active_only: bool = False,
) -> list[StudentRef]:
    """Students of a school that `name` fits: a full name, surname or given name, a
    beginning of the full name, a pinyin spelling or its first letters (or a beginning of
    either), a student number or its beginning (at most `limit`: the closest fits first,
    then by class), with their names resolved now. STUDENT_READ for the school: every
    match; a class teacher (STUDENT_READ for their classes): the matches in their
    classes; anyone else is refused. One recorded decision per search. `active_only`:
    leave out students who have left the school."""
    found = _matches(app, actor, school_id, name, break_glass, limit, active_only)
    ranks = {sid: r for sid, r in found}
    return sorted(
        student_refs(app, [sid for sid, _ in found]),
        key=lambda r: (r.erased, ranks[r.id], class_sort_key(r.class_name), r.student_no or "", r.id),
    )


def ranked_students(
    app: Source, actor: Actor, school_id: str, query: str, *, limit: int = 10, active_only: bool = True
) -> list[tuple[StudentRef, int]]:
    """`search_students` with each student's best rank (0: the whole name, pinyin,
    initials or number), for a form that must settle on one student."""
    found = _matches(app, actor, school_id, query, None, limit, active_only)
    ranks = {sid: r for sid, r in found}
    refs = [r for r in student_refs(app, [sid for sid, _ in found]) if not r.erased and not r.unreadable]
    return sorted(
        ((r, ranks[r.id]) for r in refs), key=lambda x: (x[1], class_sort_key(x[0].class_name), x[0].student_no or "")
    )


def enrolled_in(app: Source, school_id: str, student_id: str) -> bool:
    """Whether a student id is one of the school's students (present or left, not erased):
    ids only, like a command's own check that the student it names exists; no gate."""
    q = select(enrolment.c.student_id).where(
        enrolment.c.student_id == student_id, enrolment.c.school_id == school_id, enrolment.c.erased.is_(False)
    )
    app.views.catch_up()
    with app.views.engine.connect() as conn:
        return conn.execute(q).first() is not None


__all__ = [
    "NAMES",
    "names",
    "StudentNamesView",
    "search_students",
    "ranked_students",
    "enrolled_in",
    "name_tokens",
    "number_tokens",
    "name_values",
    "number_values",
    "query_values",
    "query_tokens",
    "spellings",
    "Spelling",
    "SURNAME_READINGS",
    "split_name",
    "normalize_name",
    "name_parts",
]
