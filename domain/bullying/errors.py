"""The named errors of domain.bullying: each a code and a reason a person understands."""

from __future__ import annotations

from domain.common import (
    DomainError,
    InvalidInput,
    WrongState,
)


class CaseClosed(WrongState):
    code = "case_closed"
    message = "案件已结案，不能{action}；如再次发生请重新开启案件"


class NotAParty(InvalidInput):
    code = "not_a_party"
    message = "该学生不是本案当事人"


class AlreadyAParty(InvalidInput):
    code = "already_a_party"
    message = "该学生已是本案当事人（{part}）"


class TargetedPartyRequired(InvalidInput):
    code = "targeted_party_required"
    message = "案件至少要有一名被欺凌学生"


class UnknownStudent(InvalidInput):
    code = "unknown_student"
    message = "找不到该学生，或该学生不属于本校"


class UnknownStaff(InvalidInput):
    code = "unknown_staff"
    message = "负责人必须是本校在职教职工"


class UnknownSupportFile(InvalidInput):
    code = "unknown_support_file"
    message = "找不到该学生的心理档案"


class DeterminationNotApproved(WrongState):
    code = "determination_not_approved"
    message = "尚无经校长批准的认定，不能{action}"


class SelfApproval(DomainError):
    code = "self_approval"
    message = "认定须由记录人以外的校长审批"


class MandatoryReportRequired(DomainError):
    code = "mandatory_report_required"
    message = "涉嫌违反治安管理或犯罪的案件，须先记录强制报告（向哪个机关、何时报告）才能结案"


class InterventionsRequired(DomainError):
    code = "interventions_required"
    message = "认定为欺凌的案件须先为{missing}制定干预措施才能结案"


class AppealPending(WrongState):
    code = "appeal_pending"
    message = "有尚未审结的申诉，不能{action}"


class AppealWindowClosed(DomainError):
    code = "appeal_window_closed"
    message = "申诉期已过（截止{until}），不能再申诉"


# -- remedies (issue 17, part C) ------------------------------------------------------------------
class AuthorityReportsRequired(DomainError):
    code = "authority_reports_required"
    message = (
        "{grounds}须及时向公安机关和教育行政部门报告（未成年人保护法第三十九条）：尚未记录向{missing}的报告，不能结案"
    )


class NotABullyingParty(InvalidInput):
    code = "not_a_bullying_party"
    message = "{student}不是经批准认定的欺凌案件中的欺凌学生，不能对其作出处理决定（教督〔2017〕10号）"


class ReviewPanelIncomplete(InvalidInput):
    code = "review_panel_incomplete"
    message = "复查小组须有学校代表、家长代表和校外专家（教督〔2017〕10号）：缺少{missing}"


class ReviewApplicationWindowClosed(DomainError):
    code = "review_application_window_closed"
    message = "{student}申请复查的期限已过（截止{until}），不能再申请"
