"""The support-file register (心理档案台账) of a school, and screening coverage: the
queries people work from, every one through the application's gate.

The view (`SupportRegisterView`, its tables `files`, `enrolment` and `screened`) is in
`projections.support_register_view`. Coverage (students screened / enrolled this school
year, per class, with who is not yet screened) is one query over the enrolment and
screened tables. "Overdue" is computed at query time from the stored due dates and the
query's `today`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING

from sqlalchemy import select

from domain import access
from domain.access import decide
from domain.common import Actor
from domain.grades import class_sort_key
from domain.policy import RISK_LABELS, RISK_LEVELS
from projections.base import aggregate_of, directory_row, open_for, seal_det
from projections.source import student_refs
from projections.support_register_view import (
    NAME,
    BulkInserts,
    SupportRegisterView,
    enrolment,
    files,
    screened,
    views,
)

if TYPE_CHECKING:
    from projections.base import Source


@dataclass(frozen=True)
class RegisterLine:
    """One line of the register: ids, level, dates; the category opened at read time."""

    file_id: str
    student_id: str | None
    class_name: str | None
    risk_level: str | None
    category: str | None
    responsible_id: str | None
    status: str
    next_review_due: date | None
    review_overdue: bool = False
    erased: bool = False

    @property
    def risk_label(self) -> str:
        return RISK_LABELS.get(self.risk_level or "", "")


def register(
    app: Source, actor: Actor, school_id: str, today: date | None = None, *, include_closed: bool = True
) -> list[RegisterLine]:
    """The school's support-file register (FILE_LIST): open files first, highest risk
    first, then by next review. No notes; the category is opened from its seal."""
    app.check(actor, access.FILE_LIST, "file", school_id=school_id)
    app.views.catch_up()
    today = today or app.now().date()
    q = (
        select(files, enrolment.c.class_name)
        .select_from(files.outerjoin(enrolment, enrolment.c.student_id == files.c.student_id))
        .where(files.c.school_id == school_id)
    )
    if not include_closed:
        q = q.where(files.c.status == "open")
    with app.views.engine.connect() as conn:
        rows = conn.execute(q).mappings().all()
    lines = []
    for r in rows:
        category = open_for(app, r["file_id"], r["sealed_category"]) if r["sealed_category"] is not None else None
        due = r["next_review_due"]
        lines.append(
            RegisterLine(
                file_id=r["file_id"],
                student_id=r["student_id"],
                class_name=r["class_name"],
                risk_level=r["risk_level"],
                category=category,
                responsible_id=r["responsible_id"],
                status=r["status"],
                next_review_due=due,
                review_overdue=r["status"] == "open" and due is not None and today > due,
                erased=bool(r["erased"]),
            )
        )
    return sorted(
        lines,
        key=lambda x: (
            x.status != "open",
            -RISK_LEVELS.index(x.risk_level) if x.risk_level else 0,
            x.next_review_due or date.max,
            x.file_id,
        ),
    )


def _rate(screened: int, enrolled: int) -> float:
    return screened / enrolled if enrolled else 0.0


@dataclass(frozen=True)
class ClassCoverage:
    enrolled: int
    screened: int

    @property
    def rate(self) -> float:
        return _rate(self.screened, self.enrolled)


@dataclass(frozen=True)
class Coverage:
    """Screening coverage of a school for a school year (students, not rows).
    `not_screened` (student ids, by class) only for those with FILE_LIST; `names` only
    when asked for, resolved from the student streams at read time (已删除 if erased)."""

    school_year: int
    enrolled: int
    screened: int
    per_class: dict[str, ClassCoverage]
    not_screened: list[str]
    names: dict[str, str] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return _rate(self.screened, self.enrolled)


def coverage(
    app: Source,
    actor: Actor,
    school_id: str,
    school_year: int | None = None,
    *,
    today: date | None = None,
    with_names: bool = False,
) -> Coverage:
    """Students screened / enrolled in a school year (default: the current one), per
    class, with the students not yet screened. Gate: FILE_LIST (counts and the list of
    students), else STATS_READ (counts only)."""
    school = app.resource("file", school_id=school_id)
    listed = decide(actor, access.FILE_LIST, school).allowed
    app.authorize(
        actor,
        access.FILE_LIST if listed else access.STATS_READ,
        school if listed else app.resource("school", school_id=school_id),
    )
    app.views.catch_up()
    year = school_year if school_year is not None else app.policy.school_year_of(today or app.now().date())
    done = select(screened.c.student_id).where(
        screened.c.school_id == school_id,
        screened.c.school_year == year,
        screened.c.screenings > 0,
    )
    q = select(enrolment.c.student_id, enrolment.c.class_name, enrolment.c.student_id.in_(done).label("done")).where(
        enrolment.c.school_id == school_id, enrolment.c.active.is_(True), enrolment.c.erased.is_(False)
    )
    with app.views.engine.connect() as conn:
        rows = conn.execute(q).all()
    per_class: dict[str, list[int]] = {}
    missing: list[tuple[str, str]] = []
    for sid, class_name, was_screened in rows:
        counts = per_class.setdefault(class_name or "", [0, 0])
        counts[0] += 1
        if was_screened:
            counts[1] += 1
        else:
            missing.append((class_name or "", sid))
    not_screened = [sid for _, sid in sorted(missing)] if listed else []
    names = {r.id: r.name for r in student_refs(app, not_screened)} if with_names else {}
    return Coverage(
        school_year=year,
        enrolled=len(rows),
        screened=sum(c[1] for c in per_class.values()),
        per_class={k: ClassCoverage(*v) for k, v in sorted(per_class.items(), key=lambda kv: class_sort_key(kv[0]))},
        not_screened=not_screened,
        names=names,
    )


def risk_counts(app: Source, actor: Actor, school_id: str) -> dict[str, int]:
    """Open support files of a school per risk level (RISK_LEVELS order): counts only,
    no names and no ids, for anyone with the school's statistics (STATS_READ)."""
    app.check(actor, access.STATS_READ, "school", school_id=school_id)
    app.views.catch_up()
    q = select(files.c.risk_level).where(
        files.c.school_id == school_id, files.c.status == "open", files.c.erased.is_(False)
    )
    counts = dict.fromkeys(RISK_LEVELS, 0)
    with app.views.engine.connect() as conn:
        for (level,) in conn.execute(q):
            if level in counts:
                counts[level] += 1
    return counts


__all__ = [
    "NAME",
    "SupportRegisterView",
    "BulkInserts",
    "files",
    "enrolment",
    "screened",
    "aggregate_of",
    "directory_row",
    "seal_det",
    "student_refs",
    "RegisterLine",
    "Coverage",
    "ClassCoverage",
    "register",
    "coverage",
    "risk_counts",
    "views",
]
