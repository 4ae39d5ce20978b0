"""Mental-health screenings: the instruments as configuration data, and each
student's screening record for a school year.

An instrument (PHQ-9, GAD-7, or whatever a region adopts) is data: its items, the
range of an answer, the score bands, an optional crisis rule on one item and the
band from which a result is flagged. A region puts its own instruments in its
policy file; `Instrument.from_dict` reads them. Scoring never branches on an
instrument's id.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from uuid import UUID

from eventsourcing.domain import event

from domain.common import (
    CaseAggregate,
    DomainError,
    InvalidInput,
    Scope,
    require,
    require_aware,
)
from domain.policy import RISK_LEVELS


class UnknownInstrument(DomainError):
    code = "unknown_instrument"
    message = "未知的筛查量表「{instrument}」"


class InvalidAnswers(InvalidInput):
    code = "invalid_answers"
    message = "答题数据无效：{reason}"


class DuplicateScreening(DomainError):
    code = "duplicate_screening"
    message = "该学生 {screened_on} 的 {instrument} 筛查已记录，不能重复导入"


class ImportRejected(DomainError):
    """A screening import with any bad row: nothing was applied. `errors` lists
    every bad row as (line number, reason), the header being line 1."""

    code = "import_rejected"
    message = "导入被拒绝：共 {count} 行有误，未导入任何数据"

    def __init__(self, errors: list[tuple[int, str]]) -> None:
        self.errors = sorted(errors)
        super().__init__(count=len(self.errors))


@dataclass(frozen=True)
class Band:
    """A score band: totals from `min` to `max` inclusive."""

    name: str
    label: str
    min: int
    max: int
    # The risk level a flagged result in this band asks for; None = the instrument's.
    risk_level: str | None = None


@dataclass(frozen=True)
class CrisisRule:
    """One item whose answer above `above` is a crisis signal, whatever the total."""

    item: int  # 1-based, as the questionnaire numbers it
    above: int
    label: str = "自伤/自杀念头"
    category: str = "自伤风险"


@dataclass(frozen=True)
class ScreeningResult:
    total: int
    band: str
    band_label: str
    flagged: bool
    crisis: bool
    risk_level: str | None  # what the result asks of a support file (None: nothing)


@dataclass(frozen=True)
class Instrument:
    id: str
    name: str
    items: int
    item_min: int
    item_max: int
    bands: tuple[Band, ...]
    crisis: CrisisRule | None = None
    flag_from: str = "moderate"  # the school's threshold: this band and above
    category: str = "情绪困扰"  # the file category a flagged result opens
    flag_risk_level: str = "key"
    crisis_risk_level: str = "high"

    def __post_init__(self) -> None:
        require(bool(self.id.strip()), "量表编号不能为空")
        require(bool(self.name.strip()), f"量表「{self.id}」名称不能为空")
        require(self.items > 0, f"量表「{self.id}」题目数必须为正数")
        require(self.item_min < self.item_max, f"量表「{self.id}」每题分值范围不正确")
        require(bool(self.bands), f"量表「{self.id}」至少需要一个分段")
        expected = self.items * self.item_min
        for b in self.bands:
            require(
                b.min == expected and b.max >= b.min,
                f"量表「{self.id}」分段「{b.name}」应从 {expected} 分开始且不重叠、不留空",
            )
            require(
                b.risk_level is None or b.risk_level in RISK_LEVELS, f"量表「{self.id}」分段「{b.name}」的风险等级无效"
            )
            expected = b.max + 1
        require(
            expected - 1 == self.items * self.item_max,
            f"量表「{self.id}」分段应覆盖到满分 {self.items * self.item_max}",
        )
        require(len({b.name for b in self.bands}) == len(self.bands), f"量表「{self.id}」分段名称重复")
        require(
            self.flag_from in {b.name for b in self.bands},
            f"量表「{self.id}」的预警阈值「{self.flag_from}」不是它的分段",
        )
        require(
            self.flag_risk_level in RISK_LEVELS and self.crisis_risk_level in RISK_LEVELS,
            f"量表「{self.id}」的风险等级无效",
        )
        if self.crisis is not None:
            require(1 <= self.crisis.item <= self.items, f"量表「{self.id}」危机题号超出范围")
            require(self.item_min <= self.crisis.above < self.item_max, f"量表「{self.id}」危机阈值超出分值范围")

    @property
    def max_total(self) -> int:
        return self.items * self.item_max

    def check_answers(self, answers: list[int]) -> None:
        """Refuse a wrong number of answers or an answer out of range."""
        if len(answers) != self.items:
            raise InvalidAnswers(reason=f"{self.name} 应有 {self.items} 题，实际 {len(answers)} 题")
        lo, hi = self.item_min, self.item_max
        for n, a in enumerate(answers, 1):
            if type(a) is not int or not lo <= a <= hi:
                raise InvalidAnswers(reason=f"{self.name} 第 {n} 题得分「{a}」超出范围 {self.item_min}-{self.item_max}")

    def score(self, answers: list[int]) -> ScreeningResult:
        self.check_answers(answers)
        total = sum(answers)
        flagged = False
        band = self.bands[-1]
        for b in self.bands:
            if b.name == self.flag_from:
                flagged = True
            if total <= b.max:
                band = b
                break
        crisis = self.crisis is not None and answers[self.crisis.item - 1] > self.crisis.above
        risk: str | None = None
        if crisis:
            risk = self.crisis_risk_level
        elif flagged:
            risk = band.risk_level or self.flag_risk_level
        return ScreeningResult(total, band.name, band.label, flagged, crisis, risk)

    def category_for(self, result: ScreeningResult) -> str:
        if result.crisis and self.crisis is not None:
            return self.crisis.category
        return self.category

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Instrument:
        """Read an instrument from configuration (e.g. a region's policy TOML)."""
        try:
            known = {
                "id",
                "name",
                "items",
                "item_min",
                "item_max",
                "item_range",
                "bands",
                "crisis",
                "flag_from",
                "category",
                "flag_risk_level",
                "crisis_risk_level",
            }
            unknown = set(data) - known
            require(not unknown, f"量表配置中有未知项：{', '.join(sorted(unknown))}")
            lo, hi = data.get("item_range", (data.get("item_min", 0), data.get("item_max", 3)))
            crisis = data.get("crisis")
            return cls(
                id=str(data["id"]).strip(),
                name=str(data.get("name", data["id"])).strip(),
                items=int(data["items"]),
                item_min=int(lo),
                item_max=int(hi),
                bands=tuple(
                    Band(
                        name=str(b["name"]),
                        label=str(b.get("label", b["name"])),
                        min=int(b["min"]),
                        max=int(b["max"]),
                        risk_level=b.get("risk_level"),
                    )
                    for b in data["bands"]
                ),
                crisis=None
                if not crisis
                else CrisisRule(
                    item=int(crisis["item"]),
                    above=int(crisis.get("above", 0)),
                    label=str(crisis.get("label", CrisisRule.label)),
                    category=str(crisis.get("category", CrisisRule.category)),
                ),
                flag_from=str(data.get("flag_from", "moderate")),
                category=str(data.get("category", "情绪困扰")),
                flag_risk_level=str(data.get("flag_risk_level", "key")),
                crisis_risk_level=str(data.get("crisis_risk_level", "high")),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise InvalidInput(reason=f"量表配置不完整或格式错误：{e!r}") from e

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": self.id,
            "name": self.name,
            "items": self.items,
            "item_min": self.item_min,
            "item_max": self.item_max,
            "flag_from": self.flag_from,
            "category": self.category,
            "flag_risk_level": self.flag_risk_level,
            "crisis_risk_level": self.crisis_risk_level,
            "bands": [
                {"name": b.name, "label": b.label, "min": b.min, "max": b.max}
                | ({"risk_level": b.risk_level} if b.risk_level else {})
                for b in self.bands
            ],
        }
        if self.crisis is not None:
            data["crisis"] = {
                "item": self.crisis.item,
                "above": self.crisis.above,
                "label": self.crisis.label,
                "category": self.crisis.category,
            }
        return data


def instruments_from_config(items: Iterable[Mapping[str, Any]]) -> dict[str, Instrument]:
    """Instruments by id (upper-cased for lookup), from a list of dicts."""
    out: dict[str, Instrument] = {}
    for data in items:
        inst = Instrument.from_dict(data)
        require(inst.id.upper() not in out, f"量表编号「{inst.id}」重复")
        out[inst.id.upper()] = inst
    return out


DEFAULT_INSTRUMENT_CONFIG: tuple[dict[str, Any], ...] = (
    {
        "id": "PHQ-9",
        "name": "PHQ-9 抑郁筛查量表",
        "items": 9,
        "item_range": [0, 3],
        "bands": [
            {"name": "minimal", "label": "无/极轻微", "min": 0, "max": 4},
            {"name": "mild", "label": "轻度", "min": 5, "max": 9},
            {"name": "moderate", "label": "中度", "min": 10, "max": 14},
            {"name": "moderately_severe", "label": "中重度", "min": 15, "max": 19},
            {"name": "severe", "label": "重度", "min": 20, "max": 27},
        ],
        "crisis": {"item": 9, "above": 0, "label": "自伤/自杀念头", "category": "自伤风险"},
        "flag_from": "moderate",
        "category": "情绪困扰",
    },
    {
        "id": "GAD-7",
        "name": "GAD-7 焦虑筛查量表",
        "items": 7,
        "item_range": [0, 3],
        "bands": [
            {"name": "minimal", "label": "无/极轻微", "min": 0, "max": 4},
            {"name": "mild", "label": "轻度", "min": 5, "max": 9},
            {"name": "moderate", "label": "中度", "min": 10, "max": 14},
            {"name": "severe", "label": "重度", "min": 15, "max": 21},
        ],
        "flag_from": "moderate",
        "category": "情绪困扰",
    },
)
DEFAULT_INSTRUMENTS: dict[str, Instrument] = instruments_from_config(DEFAULT_INSTRUMENT_CONFIG)


class ScreeningRecord(CaseAggregate):
    """One student's screenings in one school year: one stream, results appended."""

    class ScreeningRecordOpened(CaseAggregate.Created):
        school_id: str
        student_id: str
        school_year: int
        actor: str
        at: datetime

    @event(ScreeningRecordOpened)
    def __init__(self, id: UUID, school_id: str, student_id: str, school_year: int, actor: str, at: datetime) -> None:
        self.school_id = school_id
        self.student_id = student_id
        self.school_year = school_year
        self.screenings: list[dict[str, Any]] = []

    @classmethod
    def open(
        cls, *, id: UUID, school_id: str, student_id: str, school_year: int, actor: str, at: datetime
    ) -> ScreeningRecord:
        require_aware(at)
        require(bool(student_id), "学生不能为空")
        return cls(id=id, school_id=school_id, student_id=student_id, school_year=school_year, actor=actor, at=at)

    def has(self, instrument_id: str, screened_on: date) -> bool:
        key = instrument_id.upper()
        return any(s["instrument"].upper() == key and s["screened_on"] == screened_on for s in self.screenings)

    def record(
        self,
        *,
        screening_id: str,
        instrument: Instrument,
        answers: list[int],
        screened_on: date,
        school_year: int,
        support_file_id: str | None = None,
        import_id: str | None = None,
        actor: str,
        at: datetime,
    ) -> ScreeningResult:
        """Score the answers by the instrument's bands and record the result."""
        require_aware(at)
        require(isinstance(screened_on, date) and not isinstance(screened_on, datetime), "筛查日期格式不正确")
        require(screened_on <= at.date(), "筛查日期不能晚于今天")
        require(school_year == self.school_year, "筛查日期不在本档案的学年内")
        if self.has(instrument.id, screened_on):
            raise DuplicateScreening(instrument=instrument.id, screened_on=screened_on.isoformat())
        result = instrument.score(list(answers))
        self._recorded(
            screening_id=screening_id,
            instrument=instrument.id,
            instrument_name=instrument.name,
            answers=list(answers),
            total=result.total,
            band=result.band,
            band_label=result.band_label,
            flagged=result.flagged,
            crisis=result.crisis,
            screened_on=screened_on,
            support_file_id=support_file_id,
            import_id=import_id,
            actor=actor,
            at=at,
        )
        return result

    class ScreeningRecorded(CaseAggregate.Event):
        screening_id: str
        instrument: str
        instrument_name: str
        answers: list[int]
        total: int
        band: str
        band_label: str
        flagged: bool
        crisis: bool
        screened_on: date
        support_file_id: str | None
        import_id: str | None
        actor: str
        at: datetime

    @event(ScreeningRecorded)
    def _recorded(
        self,
        screening_id: str,
        instrument: str,
        instrument_name: str,
        answers: list[int],
        total: int,
        band: str,
        band_label: str,
        flagged: bool,
        crisis: bool,
        screened_on: date,
        support_file_id: str | None,
        import_id: str | None,
        actor: str,
        at: datetime,
    ) -> None:
        self.screenings.append(
            {
                "id": screening_id,
                "instrument": instrument,
                "instrument_name": instrument_name,
                "answers": answers,
                "total": total,
                "band": band,
                "band_label": band_label,
                "flagged": flagged,
                "crisis": crisis,
                "screened_on": screened_on,
                "support_file_id": support_file_id,
                "import_id": import_id,
                "actor": actor,
                "at": at,
            }
        )

    @property
    def flagged(self) -> bool:
        return any(s["flagged"] for s in self.screenings)

    @property
    def crisis(self) -> bool:
        return any(s["crisis"] for s in self.screenings)

    def scope(self) -> Scope:
        return Scope(
            kind="screening",
            school_id=self.school_id,
            subject_id=self.student_id,
            status="recorded",
            links=((self.student_id, "screened"),),
        )
