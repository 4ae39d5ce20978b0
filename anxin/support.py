"""Support-file (心理健康档案 · 一人一策) and screening commands and queries.

Every command passes the gate first: FILE_OPEN to open a file, FILE_WRITE (the
assigned counselor or the principal) to change one, FILE_READ to read one, FILE_LIST
for the school's register, SCREENING_IMPORT / SCREENING_READ for screenings.

A screening import is all or nothing: every row is checked before anything is
built, and if any row is bad the whole file is refused with every bad line named.
A good import saves every screening record and every support file it opens or
raises in one transaction.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any
from uuid import UUID, uuid4

from eventsourcing.persistence import StoredEvent

from anxin import quarantine
from anxin.app import Core
from anxin.crypto import StreamErased, Tampered
from anxin.quarantine import Unreadable
from anxin.roster_import import csv_records
from domain import access
from domain.access import Resource
from domain.common import Actor, DomainError, Erased, InvalidInput, NotFound, Role, require
from domain.screening import (
    DEFAULT_INSTRUMENTS,
    ImportRejected,
    Instrument,
    ScreeningRecord,
    instruments_from_config,
)
from domain.support import SupportFile, rank


class FileAlreadyOpen(DomainError):
    code = "support_file_already_open"
    message = "该学生已有一份未结案的心理档案，请在原档案中继续跟进"


class ResponsibleStaffInvalid(DomainError):
    code = "responsible_staff_invalid"
    message = "一对一负责人须为本校在岗的心理老师或校长"


class StudentNotActive(DomainError):
    code = "student_not_active"
    message = "该学生不在校（已离校或记录已删除）"


@dataclass(frozen=True)
class RegisterLine:
    """One line of a school's support-file register: ids, level, dates. No notes."""

    file_id: str
    student_id: str
    risk_level: str | None
    category: str | None
    status: str
    responsible_id: str | None
    next_review_due: date | None
    review_overdue: bool = False
    erased: bool = False


@dataclass(frozen=True)
class ImportResult:
    """What an import did. Counts are rows (imported, flagged, crisis) and files."""

    import_id: str
    imported: int
    flagged: int
    crisis: int
    files_opened: int
    files_raised: int
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
class _Row:
    """A checked screening row, ready to score and record."""

    line: int
    student_id: str
    instrument: Instrument
    screened_on: date
    answers: list[int]
    school_year: int
    record_id: UUID


@dataclass
class _Want:
    """What one student's results in an import ask of their support file."""

    level: str
    category: str
    row: _Row
    crisis: bool = False
    reasons: list[str] = field(default_factory=list)


DATE_RE = re.compile(r"^(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})$")
ITEM_RE = re.compile(r"^item(\d+)$")


def parse_day(text: str) -> date | None:
    """YYYY-MM-DD, or with / or . as spreadsheets write it; None if not a real date."""
    text = text.strip()
    if len(text) == 10 and text[4] == "-" and text[7] == "-":
        try:
            return date.fromisoformat(text)
        except ValueError:
            return None
    m = DATE_RE.match(text)
    if not m:
        return None
    try:
        return date(int(m[1]), int(m[2]), int(m[3]))
    except ValueError:
        return None


class SupportCommands(Core):
    # -- configuration --------------------------------------------------------------
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
        return self.keystore.deterministic_id("screening", f"{student_id}:{school_year}")

    # -- opening a file ---------------------------------------------------------------
    def open_support_file(
        self,
        actor: Actor,
        student_id: str,
        *,
        category: str,
        risk_level: str,
        reason: str,
        responsible_id: str | None = None,
        origin: str = "judgement",
        source: dict[str, Any] | None = None,
    ) -> str:
        """Open a student's support file (one open file per student)."""
        student = self._student_resource(student_id)
        self.authorize(
            actor,
            access.FILE_OPEN,
            Resource(
                kind="file",
                school_id=student.school_id,
                classes=student.classes,
                district=student.district,
            ),
        )
        f = self._build_support_file(
            actor,
            student_id,
            category=category,
            risk_level=risk_level,
            reason=reason,
            responsible_id=responsible_id,
            origin=origin,
            source=source,
        )
        self._save(f)
        return str(f.id)

    def _build_support_file(
        self,
        actor: Actor,
        student_id: str,
        *,
        category: str,
        risk_level: str,
        reason: str,
        responsible_id: str | None = None,
        origin: str = "judgement",
        source: dict[str, Any] | None = None,
    ) -> SupportFile:
        """The unsaved file (the caller has passed the gate), so another command can
        save it atomically with its own stream (e.g. an escalated check-in)."""
        row = self.db.fetchone(
            "SELECT school_id, status, erased FROM {t}anxin_directory WHERE stream_id = ? AND kind = 'student'",
            (student_id,),
        )
        if row is None:
            raise NotFound()
        school_id, status, erased = row
        if status != "active" or erased:
            raise StudentNotActive()
        if self._open_file_of(student_id) is not None:
            raise FileAlreadyOpen()
        if responsible_id is None:
            responsible_id = actor.staff_id if actor.roles & {Role.COUNSELOR, Role.PRINCIPAL} else ""
        require(bool(responsible_id), "请指定一对一负责人（本校心理老师）")
        self._check_responsible(school_id, responsible_id)
        return SupportFile.open(
            id=uuid4(),
            school_id=school_id,
            student_id=student_id,
            category=category,
            risk_level=risk_level,
            reason=reason,
            responsible_id=responsible_id,
            origin=origin,
            source=source,
            policy=self.policy,
            actor=actor.staff_id,
            at=self.now(),
        )

    def _student_resource(self, student_id: str) -> Resource:
        res = self.resource("student", student_id)
        if res.kind != "student":
            raise NotFound()
        return res

    def _open_file_of(self, student_id: str) -> str | None:
        row = self.db.fetchone(
            "SELECT stream_id FROM {t}anxin_directory WHERE kind = 'file' AND subject_id = ? AND status = 'open' "
            "AND erased = 0",
            (student_id,),
        )
        return row[0] if row else None

    def _check_responsible(self, school_id: str, staff_id: str) -> None:
        staff = self.accounts.staff(staff_id)
        if (
            staff is None
            or staff.school_id != school_id
            or not staff.active
            or not set(staff.roles) & {Role.COUNSELOR.value, Role.PRINCIPAL.value}
        ):
            raise ResponsibleStaffInvalid()

    # -- changing a file (assigned counselor or principal) --------------------------------
    def _write(self, actor: Actor, file_id: str, expected_version: int | None) -> Any:
        return self._editing(file_id, SupportFile, expected_version, check=(actor, access.FILE_WRITE, "file"))

    def raise_risk_level(
        self, actor: Actor, file_id: str, to_level: str, reason: str, expected_version: int | None = None
    ) -> None:
        """Raise a file's risk level, with a reason."""
        with self._write(actor, file_id, expected_version) as f:
            f.raise_risk_level(
                to_level=to_level, reason=reason, policy=self.policy, actor=actor.staff_id, at=self.now()
            )

    def lower_risk_level(
        self, actor: Actor, file_id: str, to_level: str, reason: str, expected_version: int | None = None
    ) -> None:
        """Lower a file's risk level, with a reason."""
        with self._write(actor, file_id, expected_version) as f:
            f.lower_risk_level(
                to_level=to_level, reason=reason, policy=self.policy, actor=actor.staff_id, at=self.now()
            )

    def change_file_category(
        self, actor: Actor, file_id: str, category: str, reason: str, expected_version: int | None = None
    ) -> None:
        with self._write(actor, file_id, expected_version) as f:
            f.change_category(category=category, reason=reason, actor=actor.staff_id, at=self.now())

    def reassign_support_file(
        self, actor: Actor, file_id: str, responsible_id: str, reason: str, expected_version: int | None = None
    ) -> None:
        """Hand the one-to-one responsibility to another counselor of the school."""
        with self._write(actor, file_id, expected_version) as f:
            self._check_responsible(f.school_id, responsible_id)
            f.reassign(responsible_id=responsible_id, reason=reason, actor=actor.staff_id, at=self.now())

    def draw_up_plan(
        self,
        actor: Actor,
        file_id: str,
        *,
        goals: list[str],
        measures: list[dict[str, str]],
        expected_version: int | None = None,
    ) -> None:
        """The personal plan (一人一策): goals, and measures each with who carries it out."""
        with self._write(actor, file_id, expected_version) as f:
            f.draw_up_plan(goals=goals, measures=measures, actor=actor.staff_id, at=self.now())

    def revise_plan(
        self,
        actor: Actor,
        file_id: str,
        *,
        goals: list[str],
        measures: list[dict[str, str]],
        reason: str,
        expected_version: int | None = None,
    ) -> None:
        with self._write(actor, file_id, expected_version) as f:
            f.revise_plan(goals=goals, measures=measures, reason=reason, actor=actor.staff_id, at=self.now())

    def record_session(
        self,
        actor: Actor,
        file_id: str,
        *,
        held_on: date,
        summary: str,
        duration_minutes: int | None = None,
        next_steps: str = "",
        expected_version: int | None = None,
    ) -> str:
        """Record a counselling session; returns the entry id."""
        entry_id = uuid4().hex
        with self._write(actor, file_id, expected_version) as f:
            f.record_session(
                entry_id=entry_id,
                held_on=held_on,
                summary=summary,
                duration_minutes=duration_minutes,
                next_steps=next_steps,
                actor=actor.staff_id,
                at=self.now(),
            )
        return entry_id

    def record_guardian_contact(
        self,
        actor: Actor,
        file_id: str,
        *,
        contacted_on: date,
        guardian: str,
        method: str,
        summary: str,
        expected_version: int | None = None,
    ) -> str:
        """Record a contact with a guardian (家校联系); returns the entry id."""
        entry_id = uuid4().hex
        with self._write(actor, file_id, expected_version) as f:
            f.record_guardian_contact(
                entry_id=entry_id,
                contacted_on=contacted_on,
                guardian=guardian,
                method=method,
                summary=summary,
                actor=actor.staff_id,
                at=self.now(),
            )
        return entry_id

    def record_referral(
        self,
        actor: Actor,
        file_id: str,
        *,
        referred_on: date,
        to: str,
        reason: str,
        expected_version: int | None = None,
    ) -> str:
        """Record a referral (转介); returns the entry id."""
        entry_id = uuid4().hex
        with self._write(actor, file_id, expected_version) as f:
            f.record_referral(
                entry_id=entry_id, referred_on=referred_on, to=to, reason=reason, actor=actor.staff_id, at=self.now()
            )
        return entry_id

    def record_crisis_intervention(
        self,
        actor: Actor,
        file_id: str,
        *,
        occurred_on: date,
        what_happened: str,
        actions_taken: str,
        expected_version: int | None = None,
    ) -> str:
        """Record a crisis intervention (危机干预); the file goes to 高危 in the same save."""
        entry_id = uuid4().hex
        with self._write(actor, file_id, expected_version) as f:
            f.record_crisis_intervention(
                entry_id=entry_id,
                occurred_on=occurred_on,
                what_happened=what_happened,
                actions_taken=actions_taken,
                policy=self.policy,
                actor=actor.staff_id,
                at=self.now(),
            )
        return entry_id

    def record_review(
        self,
        actor: Actor,
        file_id: str,
        *,
        reviewed_on: date,
        notes: str,
        outcome: str,
        expected_version: int | None = None,
    ) -> str:
        """Record a scheduled plan review; the next review date is reset from policy."""
        entry_id = uuid4().hex
        with self._write(actor, file_id, expected_version) as f:
            f.record_review(
                entry_id=entry_id,
                reviewed_on=reviewed_on,
                notes=notes,
                outcome=outcome,
                policy=self.policy,
                actor=actor.staff_id,
                at=self.now(),
            )
        return entry_id

    def correct_file_entry(
        self,
        actor: Actor,
        file_id: str,
        entry_id: str,
        *,
        changes: dict[str, Any],
        reason: str,
        expected_version: int | None = None,
    ) -> None:
        """Correct a recorded entry with a new event naming it; nothing is edited in place."""
        with self._write(actor, file_id, expected_version) as f:
            f.correct_entry(entry_id=entry_id, changes=changes, reason=reason, actor=actor.staff_id, at=self.now())

    def close_support_file(self, actor: Actor, file_id: str, reason: str, expected_version: int | None = None) -> None:
        """Close the file once the risk is resolved."""
        with self._write(actor, file_id, expected_version) as f:
            f.close(reason=reason, actor=actor.staff_id, at=self.now())

    def reopen_support_file(self, actor: Actor, file_id: str, reason: str, expected_version: int | None = None) -> None:
        """Reopen a closed file (refused while the student has another open file)."""
        with self._write(actor, file_id, expected_version) as f:
            if self._open_file_of(f.student_id) is not None:
                raise FileAlreadyOpen()
            f.reopen(reason=reason, policy=self.policy, actor=actor.staff_id, at=self.now())

    # -- reading ----------------------------------------------------------------------
    def get_support_file(self, actor: Actor, file_id: str, break_glass: str | None = None) -> SupportFile:
        """A whole file: the assigned counselor, the principal, or a supervisor with a reason."""
        self.check(actor, access.FILE_READ, "file", file_id, break_glass=break_glass)
        return self._load(file_id, SupportFile)

    def support_register(self, actor: Actor, school_id: str, *, include_closed: bool = True) -> list[RegisterLine]:
        """The school's register of files: level, category, responsible, next review. No notes."""
        self.check(actor, access.FILE_LIST, "file", school_id=school_id)
        sql = "SELECT stream_id FROM {t}anxin_directory WHERE school_id = ? AND kind = 'file'"
        if not include_closed:
            sql += " AND status = 'open'"
        return self._register_lines(r[0] for r in self.db.fetch(sql, (school_id,)))

    def my_support_files(self, actor: Actor) -> list[RegisterLine]:
        """The open files the actor is responsible for (their caseload)."""
        ids = [
            r[0]
            for r in self.db.fetch(
                "SELECT stream_id FROM {t}anxin_directory WHERE kind = 'file' AND owner_id = ? AND status = 'open'",
                (actor.staff_id,),
            )
        ]
        for i in ids:
            self.check(actor, access.FILE_READ, "file", i)
        return self._register_lines(ids)

    def _register_lines(self, ids: Iterable[str]) -> list[RegisterLine]:
        today = self.now().date()
        lines = []
        for i in ids:
            try:
                f = self._load(i, SupportFile)
            except Erased:
                row = self.db.fetchone(
                    "SELECT subject_id, status, owner_id FROM {t}anxin_directory WHERE stream_id = ?", (i,)
                )
                assert row is not None
                lines.append(RegisterLine(i, row[0], None, None, "erased", row[2], None, erased=True))
                continue
            except Unreadable:  # quarantined: the line shows ids only
                row = self.db.fetchone(
                    "SELECT subject_id, status, owner_id FROM {t}anxin_directory WHERE stream_id = ?", (i,)
                )
                lines.append(
                    RegisterLine(i, row[0] if row else "", None, None, "unreadable", row[2] if row else None, None)
                )
                continue
            lines.append(
                RegisterLine(
                    file_id=i,
                    student_id=f.student_id,
                    risk_level=f.risk_level,
                    category=f.category,
                    status=f.status,
                    responsible_id=f.responsible_id,
                    next_review_due=f.next_review_due,
                    review_overdue=f.review_overdue(today),
                )
            )
        return sorted(
            lines,
            key=lambda x: (
                x.status != "open",
                -rank(x.risk_level) if x.risk_level else 0,
                x.next_review_due or date.max,
                x.file_id,
            ),
        )

    def student_screenings(self, actor: Actor, student_id: str, break_glass: str | None = None) -> list[dict[str, Any]]:
        """Every screening result of a student, oldest first (all school years)."""
        student = self._student_resource(student_id)
        self.authorize(
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
                rec = self._load(i, ScreeningRecord)
            except (Erased, Unreadable):
                continue
            out.extend({**s, "school_year": rec.school_year, "record_id": i} for s in rec.screenings)
        return sorted(out, key=lambda s: (s["screened_on"], s["at"]))

    def screening_coverage(self, actor: Actor, school_id: str, school_year: int | None = None) -> Coverage:
        """Students screened / enrolled this school year, per class, and who is not yet screened."""
        self.check(actor, access.FILE_LIST, "file", school_id=school_id)
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
        student = self._student_resource(student_id)
        self.check(actor, access.SCREENING_IMPORT, "screening", school_id=student.school_id)
        if isinstance(answers, str):
            answers = parse_answers(answers)
        school_id = student.school_id or ""
        row_ = self.db.fetchone("SELECT status, erased FROM {t}anxin_directory WHERE stream_id = ?", (student_id,))
        if row_ is None or row_[0] != "active" or row_[1]:
            raise StudentNotActive()
        reasons: list[str] = []
        require(isinstance(screened_on, date), "筛查日期格式不正确")
        row = self._check_values(
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
        existing = self._load_many([row.record_id], ScreeningRecord)
        self._check_not_recorded(rows, existing, [], reasons, self.existing_student_ids([str(row.record_id)]))
        if reasons:
            raise InvalidInput(reason="；".join(reasons))
        return self._apply_screenings(actor, school_id, rows, existing)

    def import_screenings(self, actor: Actor, school_id: str, csv_text: str) -> ImportResult:
        """Import a screening results CSV: all rows or none; every bad line is named."""
        self.check(actor, access.SCREENING_IMPORT, "screening", school_id=school_id)
        rows, errors = self._check_csv(school_id, csv_text)
        existing: dict[str, ScreeningRecord] = {}
        if rows:
            known = self.existing_student_ids(str(r.record_id) for r in rows)
            existing = self._load_many([UUID(i) for i in known], ScreeningRecord)
            self._check_not_recorded(rows, existing, errors, None, known)
        if errors:
            raise ImportRejected(errors)
        if not rows:
            raise ImportRejected([(1, "文件中没有数据行")])
        result = self._apply_screenings(actor, school_id, rows, existing)
        self.analyze(changed=len(rows))  # type: ignore[attr-defined]  # if large beside the store
        return result

    def _check_csv(self, school_id: str, csv_text: str) -> tuple[list[_Row], list[tuple[int, str]]]:
        text = csv_text[1:] if csv_text.startswith("\ufeff") else csv_text
        records = csv_records(text)
        first = next(records, None)
        if first is not None and first[1] is None:  # a header the csv module cannot read
            return [], [(first[0], first[2])]
        header = [h.strip().lower() for h in first[1] or []] if first is not None else []
        width = self._check_header(header)
        if width is None:
            n = max(i.items for i in self.instruments.values())
            expected = "student_no,instrument,date," + ",".join(f"item{i}" for i in range(1, n + 1))
            return [], [(1, f"表头不正确，应为：{expected}")]
        students = {
            r[0]: (r[1], r[2])
            for r in self.db.fetch(
                "SELECT stream_id, status, erased FROM {t}anxin_directory WHERE school_id = ? AND kind = 'student'",
                (school_id,),
            )
        }
        today = self.now().date()
        instruments = self.instruments
        rows: list[_Row] = []
        errors: list[tuple[int, str]] = []
        seen: dict[tuple[str, str, date], int] = {}
        for line, read, problem in records:
            if read is None:
                errors.append((line, problem))
                continue
            cells = read
            if not any(c.strip() for c in cells):
                continue
            reasons: list[str] = []
            if any(c.strip() for c in cells[3 + width :]):
                reasons.append(f"列数多于表头（表头有 {3 + width} 列）")
            cells = [c.strip() for c in cells] + [""] * (3 + width - len(cells))
            no, inst_text, day_text = cells[0], cells[1], cells[2]
            student_id = None
            if not no:
                reasons.append("学号为空")
            else:
                sid = str(self.student_id_for(school_id, no))
                known = students.get(sid)
                if known is None or known[1]:
                    reasons.append(f"学号「{no}」不是本校学生")
                elif known[0] != "active":
                    reasons.append(f"学号「{no}」的学生已离校")
                else:
                    student_id = sid
            day = parse_day(day_text)
            if day is None:
                reasons.append(f"日期「{day_text}」格式不正确（应为 YYYY-MM-DD）")
            answers: list[int] | None = []
            items = cells[3 : 3 + width]
            while items and items[-1] == "":
                items.pop()
            for n, a in enumerate(items, 1):
                if not (a.isascii() and a.isdigit()):
                    reasons.append(f"第 {n} 题得分「{a}」不是有效分值" if a else f"第 {n} 题未作答")
                    answers = None
                    break
                assert answers is not None
                answers.append(int(a))
            row = self._check_values(line, student_id, inst_text, day, answers, reasons, today, instruments)
            if row is not None:
                key = (row.student_id, row.instrument.id, row.screened_on)
                if key in seen:
                    reasons.append(f"与第 {seen[key]} 行重复（同一学生、量表、日期）")
                else:
                    seen[key] = line
            if reasons:
                errors.append((line, "；".join(reasons)))
            elif row is not None:
                rows.append(row)
        return rows, errors

    def _check_header(self, header: list[str]) -> int | None:
        """The number of item columns, or None if the header is not ours."""
        if header[:3] != ["student_no", "instrument", "date"] or len(header) < 4:
            return None
        for n, h in enumerate(header[3:], 1):
            m = ITEM_RE.match(h)
            if not m or int(m[1]) != n:
                return None
        return len(header) - 3

    def _check_values(
        self,
        line: int,
        student_id: str | None,
        inst_text: str,
        day: date | None,
        answers: list[int] | None,
        reasons: list[str],
        today: date,
        instruments: dict[str, Instrument],
    ) -> _Row | None:
        """Check what can be checked of one row; a row comes back only if all is well."""
        inst = instruments.get((inst_text or "").strip().upper())
        before = len(reasons)
        if inst is None:
            reasons.append(f"未知的筛查量表「{inst_text}」" if inst_text else "量表为空")
        if day is not None and day > today:
            reasons.append(f"筛查日期 {day.isoformat()} 晚于今天")
        if inst is not None and answers is not None:
            if len(answers) != inst.items:
                reasons.append(f"{inst.id} 应有 {inst.items} 题，实际 {len(answers)} 题")
            else:
                bad = [n for n, a in enumerate(answers, 1) if not inst.item_min <= a <= inst.item_max]
                if bad:
                    reasons.append(f"第 {'、'.join(map(str, bad))} 题得分超出范围 {inst.item_min}-{inst.item_max}")
        if len(reasons) > before or inst is None or student_id is None or day is None or answers is None:
            return None
        year = self.policy.school_year_of(day)
        return _Row(line, student_id, inst, day, answers, year, self.screening_record_id(student_id, year))

    def _check_not_recorded(
        self,
        rows: list[_Row],
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
        self, actor: Actor, school_id: str, rows: list[_Row], existing: dict[str, ScreeningRecord]
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
        opened = raised = 0
        if wants:
            open_files = {
                r[1]: r[0]
                for r in self.db.fetch(
                    "SELECT stream_id, subject_id FROM {t}anxin_directory WHERE school_id = ? AND kind = 'file' "
                    "AND status = 'open' AND erased = 0",
                    (school_id,),
                )
            }
            self._check_responsible(school_id, actor.staff_id)
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
                    f = self._load(fid, SupportFile)
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
        self._save(*[rec for rec in records.values() if rec.pending_events], *changed_files)
        return ImportResult(
            import_id=import_id,
            imported=len(rows),
            flagged=flagged,
            crisis=crises,
            files_opened=opened,
            files_raised=raised,
            crisis_student_ids=crisis_ids,
            file_ids=[str(f.id) for f in changed_files],
        )

    def _load_many(self, ids: Sequence[UUID], cls: type[Any]) -> dict[str, Any]:
        """Load many streams with one query per 500 (imports): erased ones are left out."""
        out: dict[str, Any] = {}
        if not ids:
            return out
        table = self.db.t(self.recorder.events_table_name)  # type: ignore[attr-defined]
        pg = self.db.dialect == "postgres"
        events: dict[str, list[StoredEvent]] = {}
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            params: tuple[Any, ...]
            if pg:
                sql, params = (
                    (
                        f"SELECT originator_id, originator_version, topic, state FROM {table} "
                        "WHERE originator_id = ANY(?) ORDER BY originator_id, originator_version"
                    ),
                    (list(chunk),),
                )
            else:
                marks = ",".join("?" * len(chunk))
                sql = (
                    f"SELECT originator_id, originator_version, topic, state FROM {table} "
                    f"WHERE originator_id IN ({marks}) ORDER BY originator_id, originator_version"
                )
                params = tuple(u.hex for u in chunk)
            for oid, version, topic, state in self.db.fetch(sql, params):
                uid = oid if isinstance(oid, UUID) else UUID(str(oid))
                events.setdefault(str(uid), []).append(
                    StoredEvent(originator_id=uid, originator_version=version, topic=topic, state=bytes(state))
                )
        self.keystore.prefetch([s[0].originator_id.hex for s in events.values()])  # type: ignore[attr-defined]
        for sid, stored in events.items():
            try:
                agg = None
                for s in stored:
                    agg = self.mapper.to_domain_event(s).mutate(agg)  # type: ignore[attr-defined]
            except StreamErased:
                continue
            except Tampered as e:  # quarantined; the caller reads it alone (and says so)
                quarantine.record(self, e.stream_id, e.version)
                continue
            if isinstance(agg, cls):
                out[sid] = agg
        return out


def parse_answers(text: str) -> list[int]:
    """Item scores typed in one field: separated by commas (either width), 、 or spaces."""
    parts = [p for p in re.split(r"[\s,，、]+", text.strip()) if p]
    if not parts or not all(p.isdigit() for p in parts):
        raise InvalidInput(reason="各题得分应为整数，用逗号分隔")
    return [int(p) for p in parts]


__all__ = [
    "SupportCommands",
    "ImportResult",
    "RegisterLine",
    "Coverage",
    "ClassCoverage",
    "FileAlreadyOpen",
    "ResponsibleStaffInvalid",
    "StudentNotActive",
    "ImportRejected",
]
