"""The named errors of domain.support: each a code and a reason a person understands."""

from __future__ import annotations

from domain.common import (
    DomainError,
    WrongState,
)


class FileClosed(WrongState):
    code = "file_closed"
    message = "档案已结案，不能{action}；如需继续跟进，请先重新开启档案"


class FileNotClosed(WrongState):
    code = "file_not_closed"
    message = "档案尚未结案，不能{action}"


class RiskLevelUnchanged(DomainError):
    code = "risk_level_unchanged"
    message = "风险等级已经是「{level}」，无需变更"


class WrongRiskDirection(DomainError):
    code = "risk_level_wrong_direction"
    message = "从「{current}」到「{target}」不是{direction}"


class EntryNotFound(DomainError):
    code = "entry_not_found"
    message = "档案中找不到要更正的记录"


class PlanMissing(WrongState):
    code = "plan_missing"
    message = "尚未制定帮扶方案，不能{action}"


class ReviewDateOutOfRange(DomainError):
    code = "review_date_out_of_range"
    message = "下次复评日期应在 {earliest} 至 {latest} 之间（{level}档案最长每 {days} 天复评一次）"


class PlanExists(WrongState):
    code = "plan_exists"
    message = "帮扶方案已制定，请使用「修订方案」"


class NoOpenCrisis(WrongState):
    code = "no_open_crisis"
    message = "该档案没有进行中的危机干预，不能{action}"


class CrisisStepDone(DomainError):
    code = "crisis_step_done"
    message = "「{step}」已记录，无需重复记录"


class CrisisStepOutOfOrder(DomainError):
    code = "crisis_step_out_of_order"
    message = "请先记录「{before}」，再{action}"


class ReturnAssessmentMissing(DomainError):
    code = "return_assessment_missing"
    message = "危机干预尚未完成复学评估，不能{action}：还缺少{missing}"


class ReferralWrongState(DomainError):
    code = "referral_wrong_state"
    message = "该转介目前为「{state}」，不能{action}"


class ReferralAgencyLocked(DomainError):
    code = "referral_agency_locked"
    message = "转介机构选自机构名录，不能更正为其他文字；如转错机构，请结束该转介并重新转介"
