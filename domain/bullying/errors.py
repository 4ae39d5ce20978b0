"""The named errors of domain.bullying: each a code and a reason a person understands."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from domain.bullying.vocabulary import INTERVENTION_KINDS, PARTS, REQUIRED_KINDS
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
    """Closure refused: for a bullying determination every targeted student needs an
    intervention (心理辅导 or 关爱帮扶) and every bullying student an education plan (教育矫治),
    planned this cycle. The message names each student lacking one and the type missing, once;
    the domain knows students by id, so it names them by their part, and the application
    (`anxin.commands.cases`) names them by name (`naming`)."""

    code = "interventions_required"
    message = "认定为欺凌的案件须先制定以下干预措施才能结案：{missing}"

    @classmethod
    def of(
        cls, missing: Mapping[str, Sequence[str]], name_of: Callable[[str], str] | None = None
    ) -> InterventionsRequired:
        """`missing`: the students lacking an intervention, by part (BullyingCase.missing_interventions)."""
        lines = []
        for part, student_ids in missing.items():
            kinds = "或".join(f"「{INTERVENTION_KINDS[k]}」" for k in REQUIRED_KINDS[part])
            for sid in student_ids:
                who = f"{PARTS[part]}{name_of(sid)}" if name_of else PARTS[part]
                lines.append(f"{who}须有{kinds}")
        return cls(
            missing="；".join(lines),
            student_ids=sorted({s for ids in missing.values() for s in ids}),
            parts={part: list(ids) for part, ids in missing.items()},
        )

    def naming(self, name_of: Callable[[str], str]) -> InterventionsRequired:
        """The same refusal, each student named (by the application, which may read names)."""
        return self.of(self.details["parts"], name_of)


class AppealPending(WrongState):
    code = "appeal_pending"
    message = "有尚未审结的申诉，不能{action}"


class AppealRetired(DomainError):
    """The school's own record of an appeal (申诉) is replaced by the county review (复查,
    教督〔2017〕10号): a party who disagrees applies to the county body. Old appeals keep
    loading, showing and taking their outcome; no new one is recorded."""

    code = "appeal_retired"
    message = "不再单独记录申诉：当事人对认定不服的，请在「县级复查」中记录其向县级防治学生欺凌工作部门提出的复查申请"


class AppealWindowClosed(DomainError):
    code = "appeal_window_closed"
    message = "申诉期已过（截止{until}），不能再申诉"


class GuardianParticipationMissing(DomainError):
    """The determination without the guardians of both sides (未成年人保护法 art. 39). The
    domain knows students by id: it names them by their part; the application names them
    (`naming`) before a person reads it."""

    code = "guardian_participation_missing"
    message = "认定前须通知被欺凌学生和欺凌学生的监护人参与认定（未成年人保护法第三十九条）；{students}：{missing}"

    def naming(self, names: dict[str, str]) -> GuardianParticipationMissing:
        ids = list(self.details.get("student_ids", []))
        return type(self)(
            students="、".join(names.get(s, s) for s in ids), missing=self.details["missing"], student_ids=ids
        )


class CommitteeMeetingRequired(DomainError):
    code = "committee_meeting_required"
    message = "认定须由学校学生欺凌治理委员会开会作出（未成年人学校保护规定第二十四条）：请先记录本次认定会议（日期、出席成员、意见摘要、决定）"


class QuorumNotMet(DomainError):
    code = "quorum_not_met"
    message = "认定会议出席成员{present}人，未达到规定人数{quorum}人（委员会现有成员{total}人），不能据此作出认定；请重新召开会议并记录"


# -- issue 17 (A): intake ----------------------------------------------------------------------
class TargetedPartyNotIdentified(WrongState):
    code = "targeted_party_not_identified"
    message = (
        "尚未确认被欺凌学生，不能{action}：请先在“当事人”中增加被欺凌学生；"
        "如核查后查无欺凌或不涉及本校学生，请以“查无欺凌”结束线索"
    )


class ClueHasTargetedParty(WrongState):
    code = "clue_has_targeted_party"
    message = "已确认被欺凌学生的案件须经学生欺凌治理委员会认定，不能以“查无欺凌”结束"


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


# -- severity tiers and the public-security track (issue 17) ------------------------------------
class SeverityRetired(InvalidInput):
    code = "severity_retired"
    message = (
        "“违反治安管理或涉嫌犯罪”已不再作为欺凌的严重程度（教督〔2017〕10号分为一般、严重、屡教不改或者情节恶劣）："
        "请选择其中之一，并在案件中开启“公安机关处理”"
    )


class PoliceTrackAlreadyOpen(WrongState):
    code = "police_track_already_open"
    message = "本轮处理已开启公安机关处理（{kind}），同一轮只能开启一次"
