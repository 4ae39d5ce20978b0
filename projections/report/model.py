"""What a periodic report is: its metrics (stable English ids, sections, Chinese
labels), one row of counts per school, and the `Report` itself. Counts only."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime

from domain.bullying import AUTHORITIES, COUNTY_REVIEW_OUTCOMES, DISPOSITION_KINDS, FORMS, SEVERITIES, STATUS_LABELS
from domain.policy import RISK_LABELS, RISK_LEVELS


@dataclass(frozen=True)
class Metric:
    id: str  # stable English id (a CSV column)
    group: str  # the section it is printed in
    label: str  # Chinese label


GROUPS = {
    "cases": "校园欺凌案件（报告期内）",
    "cases_end": "校园欺凌案件（期末状态）",
    "files": "心理健康档案",
    "screenings": "心理筛查（报告期内）",
    "check_ins": "一岗双带谈心谈话",
    "overdue": "期末超期事项",
}


def metrics_for(instruments: Iterable[str]) -> list[Metric]:
    m: list[Metric] = [Metric("cases_reported", "cases", "新报告案件")]
    m += [Metric(f"cases_form_{k}", "cases", f"其中：{v}") for k, v in FORMS.items()]
    m += [
        Metric("determinations", "cases", "认定（经批准或复查变更）"),
        Metric("determinations_not_bullying", "cases", "认定：不构成欺凌"),
    ]
    m += [Metric(f"determinations_{k}", "cases", f"认定：{v}") for k, v in SEVERITIES.items()]
    m += [
        Metric("mandatory_reports", "cases", "强制报告"),
        Metric("appeals_lodged", "cases", "申诉"),
        Metric("cases_closed", "cases", "结案"),
        Metric("cases_reopened", "cases", "重新开启"),
    ]
    # Remedies (issue 17, part C): reports to the authorities, dispositions, county reviews.
    m += [Metric("authority_reports", "cases", "向公安机关/教育行政部门报告")]
    m += [Metric(f"authority_reports_{k}", "cases", f"其中：向{v}报告") for k, v in AUTHORITIES.items()]
    m += [Metric("dispositions", "cases", "对欺凌学生的处理决定")]
    m += [Metric(f"dispositions_{k}", "cases", f"处理：{v}") for k, v in DISPOSITION_KINDS.items()]
    m += [Metric("county_reviews_applied", "cases", "申请县级复查")]
    m += [Metric("county_reviews_decided", "cases", "县级复查结果")]
    m += [Metric(f"county_reviews_decided_{k}", "cases", f"复查：{v}") for k, v in COUNTY_REVIEW_OUTCOMES.items()]
    m += [
        Metric("authority_reports_pending_end", "cases_end", "期末待报告（公安/教育部门）"),
        Metric("county_reviews_pending_end", "cases_end", "期末待复查"),
    ]
    m += [Metric("cases_open_end", "cases_end", "期末未结案件")]
    m += [Metric(f"cases_end_{k}", "cases_end", f"期末状态：{v}") for k, v in STATUS_LABELS.items()]
    m += [Metric("files_opened", "files", "新建档案")]
    m += [Metric(f"files_opened_{k}", "files", f"新建：{RISK_LABELS[k]}") for k in RISK_LEVELS]
    m += [Metric("files_closed", "files", "结案档案")]
    m += [Metric(f"files_closed_{k}", "files", f"结案：{RISK_LABELS[k]}") for k in RISK_LEVELS]
    m += [
        Metric("files_reopened", "files", "重新开启"),
        Metric("files_risk_raised", "files", "风险等级提高"),
        Metric("files_risk_lowered", "files", "风险等级降低"),
        Metric("file_reviews", "files", "方案复评"),
        Metric("crisis_interventions", "files", "危机干预"),
        Metric("files_open_end", "files", "期末在档"),
    ]
    m += [Metric(f"files_end_{k}", "files", f"期末在档：{RISK_LABELS[k]}") for k in RISK_LEVELS]
    m += [
        Metric("screenings", "screenings", "筛查人次"),
        Metric("students_screened", "screenings", "筛查人数"),
        Metric("screenings_flagged", "screenings", "达到关注线（人次）"),
        Metric("screenings_crisis", "screenings", "危机信号（人次）"),
    ]
    for inst in instruments:
        key = instrument_key(inst)
        m += [
            Metric(f"screenings_{key}", "screenings", f"{inst}：人次"),
            Metric(f"screenings_flagged_{key}", "screenings", f"{inst}：达到关注线"),
        ]
    m += [
        Metric("pairings_active_end", "check_ins", "期末结对数"),
        Metric("check_ins_due", "check_ins", "应谈心次数"),
        Metric("check_ins_done", "check_ins", "已谈心次数"),
    ]
    m += [
        Metric("overdue_end", "overdue", "期末超期事项合计"),
        Metric("investigations_overdue_end", "overdue", "调查超期（案件）"),
        Metric("follow_ups_overdue_end", "overdue", "回访超期（案件）"),
        Metric("reviews_overdue_end", "overdue", "复评超期（档案）"),
        Metric("check_ins_overdue_end", "overdue", "谈心逾期（结对）"),
        Metric("authority_reports_overdue_end", "overdue", "报告超期（向公安/教育部门）"),
        Metric("county_reviews_overdue_end", "overdue", "复查超期（县级）"),
    ]
    return m


def instrument_key(instrument: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", instrument.lower()).strip("_") or "other"


@dataclass(frozen=True)
class SchoolReport:
    school_id: str  # "" for the total row
    school: str  # the school's name (a school, never a person), or 合计
    counts: dict[str, int]

    def __getitem__(self, metric: str) -> int:
        return self.counts.get(metric, 0)


@dataclass(frozen=True)
class Report:
    """A periodic report: counts only, per school and summed."""

    date_from: date
    date_to: date
    as_of: date  # the day "at period end" figures are taken on: the period end, or today if earlier
    generated_at: datetime
    scope: str  # "district" or "school"
    district: str
    metrics: list[Metric]
    schools: list[SchoolReport]
    total: SchoolReport
    groups: dict[str, str] = field(default_factory=lambda: dict(GROUPS))

    def school(self, school_id: str) -> SchoolReport:
        for s in self.schools:
            if s.school_id == school_id:
                return s
        raise KeyError(school_id)
