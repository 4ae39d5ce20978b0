"""Screenings (心理筛查): one record per student and school year, filled by a CSV import of
a school's results or by hand, each result scored by its instrument; a result that asks
for it opens or raises the student's support file in the same transaction. And the reads:
a student's results, a school's coverage.

Every command passes the gate first: SCREENING_IMPORT to record, SCREENING_READ to read a
student's results, FILE_LIST for the coverage.

An import is all or nothing: every row is checked before anything is built, and if any
row is bad the whole file is refused with every bad line named (anxin.commands.screening_csv).
A good import saves every screening record and every support file it opens or raises in
one transaction.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any
from uuid import UUID, uuid4

from anxin.commands.base import Commands, check_responsible, student_resource
from anxin.commands.screening_csv import Row, check_csv, check_values
from anxin.commands.support import StudentNotActive
from anxin.quarantine import Unreadable
from domain import access
from domain.access import Resource
from domain.common import Actor, Erased, InvalidInput, require
from domain.screening import (
    DEFAULT_INSTRUMENTS,
    ImportRejected,
    Instrument,
    ScreeningRecord,
    instruments_from_config,
)
from domain.support import SupportFile, rank

if TYPE_CHECKING:
    from anxin.commands.roster import RosterCommands
    from anxin.core import Core


@dataclass(frozen=True)
class ImportResult:
    """What an import did. Counts are rows (imported, flagged, crisis) and files."""

    import_id: str
    imported: int
    flagged: int
    crisis: int
    files_opened: int
    files_raised: int
    crises_opened: int = 0  # crisis pathways opened (a signal on an open crisis adds to it)
    crisis_student_ids: list[str] = field(default_factory=list)
    file_ids: list[str] = field(default_factory=list)  # files opened or raised


@dataclass(frozen=True)
class ClassCoverage:
    enrolled: int
    screened: int


@dataclass(frozen=True)
class Coverage:
    """Screening coverage of a school for a school year (students, not rows)."""

    school_year: int
    enrolled: int
    screened: int
    per_class: dict[str, ClassCoverage]
    not_screened: list[str]

    @property
    def rate(self) -> float:
        return self.screened / self.enrolled if self.enrolled else 0.0


@dataclass
class _Want:
    """What one student's results in an import ask of their support file."""

    level: str
    category: str
    row: Row
    crisis: bool = False
    reasons: list[str] = field(default_factory=list)


class ScreeningCommands(Commands):
    """Record and import screenings; a student's results, a school's coverage."""

    def __init__(self, core: Core, roster: RosterCommands) -> None:
        super().__init__(core)
        self.roster = roster  # student ids by number, which of them exist

    @property
    def instruments(self) -> dict[str, Instrument]:
        """Instruments by upper-cased id: the defaults, added to or replaced by the policy's."""
        configured = getattr(self.policy, "screening_instruments", ())
        cached = getattr(self, "_instruments_cache", None)
        if cached is None or cached[0] is not configured:
            merged = {**DEFAULT_INSTRUMENTS, **(instruments_from_config(configured) if configured else {})}
            cached = (configured, merged)
            self._instruments_cache = cached
        return cached[1]

    def screening_record_id(self, student_id: str, school_year: int) -> UUID:
        return self.core.keystore.deterministic_id("screening", f"{student_id}:{school_year}")

    def student_screenings(self, actor: Actor, student_id: str, break_glass: str | None = None) -> list[dict[str, Any]]:
        """Every screening result of a student, oldest first (all school years)."""
        student = student_resource(self.core, student_id)
        self.core.authorize(
            actor,
            access.SCREENING_READ,
            Resource(
                kind="screening",
                id=student_id,
                school_id=student.school_id,
                classes=student.classes,
                district=student.district,
            ),
            break_glass,
        )
        ids = [
            r[0]
            for r in self.db.fetch(
                "SELECT stream_id FROM {t}anxin_directory WHERE kind = 'screening' AND subject_id = ?", (student_id,)
            )
        ]
        out: list[dict[str, Any]] = []
        for i in ids:
            try:
                rec = self.core.load(i, ScreeningRecord)
            except (Erased, Unreadable):
                continue
            out.extend({**s, "school_year": rec.school_year, "record_id": i} for s in rec.screenings)
        return sorted(out, key=lambda s: (s["screened_on"], s["at"]))

    def screening_coverage(self, actor: Actor, school_id: str, school_year: int | None = None) -> Coverage:
        """Students screened / enrolled this school year, per class, and who is not yet screened."""
        self.core.check(actor, access.FILE_LIST, "file", school_id=school_id)
        year = school_year if school_year is not None else self.policy.school_year_of(self.now().date())
        students = self.db.fetch(
            "SELECT stream_id, class_name FROM {t}anxin_directory WHERE school_id = ? AND kind = 'student' "
            "AND status = 'active' AND erased = 0",
            (school_id,),
        )
        records = {
            r[0]
            for r in self.db.fetch(
                "SELECT stream_id FROM {t}anxin_directory WHERE school_id = ? AND kind = 'screening'", (school_id,)
            )
        }
        per_class: dict[str, list[int]] = {}
        missing: list[tuple[str, str]] = []
        for sid, class_name in students:
            counts = per_class.setdefault(class_name or "", [0, 0])
            counts[0] += 1
            if str(self.screening_record_id(sid, year)) in records:
                counts[1] += 1
            else:
                missing.append((class_name or "", sid))
        return Coverage(
            school_year=year,
            enrolled=len(students),
            screened=sum(c[1] for c in per_class.values()),
            per_class={k: ClassCoverage(*v) for k, v in sorted(per_class.items())},
            not_screened=[sid for _, sid in sorted(missing)],
        )

    # -- screenings -------------------------------------------------------------------
    def record_screening(
        self, actor: Actor, student_id: str, *, instrument: str, screened_on: date, answers: Sequence[int] | str
    ) -> ImportResult:
        """Record one student's screening by hand; same rules and consequences as an import.
        `answers` may be the item scores as typed in one field (see `parse_answers`)."""
        student = student_resource(self.core, student_id)
        self.core.check(actor, access.SCREENING_IMPORT, "screening", school_id=student.school_id)
        if isinstance(answers, str):
            answers = parse_answers(answers)
        school_id = student.school_id or ""
        row_ = self.db.fetchone("SELECT status, erased FROM {t}anxin_directory WHERE stream_id = ?", (student_id,))
        if row_ is None or row_[0] != "active" or row_[1]:
            raise StudentNotActive()
        reasons: list[str] = []
        require(isinstance(screened_on, date), "筛查日期格式不正确")
        row = check_values(
            self,
            1,
            student_id,
            instrument,
            screened_on,
            [int(a) for a in answers],
            reasons,
            self.now().date(),
            self.instruments,
        )
        if row is None:
            raise InvalidInput(reason="；".join(reasons))
        rows = [row]
        existing = self.core.load_many([row.record_id], ScreeningRecord)
        self._check_not_recorded(rows, existing, [], reasons, self.roster.existing_student_ids([str(row.record_id)]))
        if reasons:
            raise InvalidInput(reason="；".join(reasons))
        return self._apply_screenings(actor, school_id, rows, existing)

    def import_screenings(self, actor: Actor, school_id: str, csv_text: str) -> ImportResult:
        """Import a screening results CSV: all rows or none; every bad line is named."""
        self.core.check(actor, access.SCREENING_IMPORT, "screening", school_id=school_id)
        rows, errors = check_csv(self, school_id, csv_text)
        existing: dict[str, ScreeningRecord] = {}
        if rows:
            known = self.roster.existing_student_ids(str(r.record_id) for r in rows)
            existing = self.core.load_many([UUID(i) for i in known], ScreeningRecord)
            self._check_not_recorded(rows, existing, errors, None, known)
        if errors:
            raise ImportRejected(errors)
        if not rows:
            raise ImportRejected([(1, "文件中没有数据行")])
        result = self._apply_screenings(actor, school_id, rows, existing)
        self.core.analyze(changed=len(rows))  # type: ignore[attr-defined]  # if large beside the store
        return result

    def _check_not_recorded(
        self,
        rows: list[Row],
        existing: dict[str, ScreeningRecord],
        errors: list[tuple[int, str]],
        reasons: list[str] | None,
        known: set[str] | None = None,
    ) -> None:
        """Refuse a row already recorded (re-importing a file never duplicates)."""
        bad: list[int] = []
        for i, r in enumerate(rows):
            rid = str(r.record_id)
            rec = existing.get(rid)
            if rec is None and known is not None and rid in known:
                why = "该学生本学年的筛查记录已被删除，不能追加"
            elif rec is not None and rec.has(r.instrument.id, r.screened_on):
                why = f"该学生 {r.screened_on.isoformat()} 的 {r.instrument.id} 筛查已导入过"
            else:
                continue
            if reasons is not None:
                reasons.append(why)
            else:
                errors.append((r.line, why))
            bad.append(i)
        for i in reversed(bad):
            del rows[i]

    def _apply_screenings(
        self, actor: Actor, school_id: str, rows: list[Row], existing: dict[str, ScreeningRecord]
    ) -> ImportResult:
        """Score, decide what each result asks of a support file, and save it all at once."""
        at = self.now()
        import_id = uuid4().hex
        results = [r.instrument.score(r.answers) for r in rows]
        # What each student's results ask of a support file: the highest level, and why.
        wants: dict[str, _Want] = {}
        for r, res in zip(rows, results, strict=True):
            if res.risk_level is None:
                continue
            why = f"心理筛查预警：{r.instrument.name}（{r.screened_on.isoformat()}）总分 {res.total}，{res.band_label}"
            if res.crisis and r.instrument.crisis is not None:
                why += f"；第 {r.instrument.crisis.item} 题（{r.instrument.crisis.label}）阳性，危机信号"
            want = wants.get(r.student_id)
            if want is None:
                want = wants[r.student_id] = _Want(res.risk_level, r.instrument.category, r)
            elif rank(res.risk_level) > rank(want.level):
                want.level, want.row = res.risk_level, r
            if res.crisis and r.instrument.crisis is not None and not want.crisis:
                want.crisis, want.category = True, r.instrument.crisis.category
            want.reasons.append(why)
        files: dict[str, SupportFile] = {}
        opened = raised = crises_opened = 0
        if wants:
            open_files = {
                r[1]: r[0]
                for r in self.db.fetch(
                    "SELECT stream_id, subject_id FROM {t}anxin_directory WHERE school_id = ? AND kind = 'file' "
                    "AND status = 'open' AND erased = 0",
                    (school_id,),
                )
            }
            check_responsible(self.core, school_id, actor.staff_id)
            for student_id, want in wants.items():
                source = {"kind": "screening", "id": str(want.row.record_id), "import_id": import_id}
                reason = "；".join(want.reasons)
                fid = open_files.get(student_id)
                if fid is None:
                    f = SupportFile.open(
                        id=uuid4(),
                        school_id=school_id,
                        student_id=student_id,
                        category=want.category,
                        risk_level=want.level,
                        reason=reason,
                        responsible_id=actor.staff_id,
                        origin="screening",
                        source=source,
                        policy=self.policy,
                        actor=actor.staff_id,
                        at=at,
                    )
                    opened += 1
                else:
                    f = self.core.load(fid, SupportFile)
                    if rank(want.level) > rank(f.risk_level):
                        f.raise_risk_level(
                            to_level=want.level,
                            reason=reason,
                            policy=self.policy,
                            actor=actor.staff_id,
                            at=at,
                            source=source,
                        )
                        raised += 1
                if want.crisis:
                    # A crisis signal: the crisis pathway opens on the file (or the signal is
                    # added to the crisis already open), in this same save.
                    crises_opened += f.open_crisis(
                        crisis_id=uuid4().hex,
                        trigger="screening",
                        source=source,
                        reason=reason,
                        policy=self.policy,
                        actor=actor.staff_id,
                        at=at,
                    )
                files[student_id] = f  # opened, raised, or already at that level: linked either way
        records: dict[str, ScreeningRecord] = dict(existing)
        crisis_ids: list[str] = []
        flagged = crises = 0
        for r, res in zip(rows, results, strict=True):
            rid = str(r.record_id)
            rec = records.get(rid)
            if rec is None:
                rec = records[rid] = ScreeningRecord.open(
                    id=r.record_id,
                    school_id=school_id,
                    student_id=r.student_id,
                    school_year=r.school_year,
                    actor=actor.staff_id,
                    at=at,
                )
            linked = files.get(r.student_id) if res.risk_level else None
            rec.record(
                screening_id=uuid4().hex,
                instrument=r.instrument,
                answers=r.answers,
                screened_on=r.screened_on,
                school_year=r.school_year,
                support_file_id=str(linked.id) if linked else None,
                import_id=import_id,
                actor=actor.staff_id,
                at=at,
            )
            flagged += res.flagged
            if res.crisis:
                crises += 1
                if r.student_id not in crisis_ids:
                    crisis_ids.append(r.student_id)
        changed_files = [f for f in files.values() if f.pending_events]
        self.core.commit(*[rec for rec in records.values() if rec.pending_events], *changed_files)
        return ImportResult(
            import_id=import_id,
            imported=len(rows),
            flagged=flagged,
            crisis=crises,
            files_opened=opened,
            files_raised=raised,
            crises_opened=crises_opened,
            crisis_student_ids=crisis_ids,
            file_ids=[str(f.id) for f in changed_files],
        )


def parse_answers(text: str) -> list[int]:
    """Item scores typed in one field: separated by commas (either width), 、 or spaces."""
    parts = [p for p in re.split(r"[\s,，、]+", text.strip()) if p]
    if not parts or not all(p.isdigit() for p in parts):
        raise InvalidInput(reason="各题得分应为整数，用逗号分隔")
    return [int(p) for p in parts]


__all__ = ["ScreeningCommands", "ImportResult", "Coverage", "ClassCoverage", "ImportRejected", "parse_answers"]
