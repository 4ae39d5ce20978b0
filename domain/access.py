"""Who may do what: the role-permission table of DOMAIN.md as one pure function.

`decide(actor, action, resource)` answers with a Decision (allowed or not, and why).
The application's gate calls it for every command and every read, records the
decision, and raises PermissionDenied when it says no. Nothing else decides access.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from domain import break_glass
from domain.common import Actor, Role

# Actions, by the kind of thing they touch.
STUDENT_READ = "student.read"  # identity: name, guardians
STUDENT_WRITE = "student.write"  # roster import / edit
CASE_REPORT = "case.report"
CASE_READ = "case.read"  # full content
CASE_STATUS = "case.status"  # status-only line (class teacher)
CASE_WRITE = "case.write"
CASE_APPROVE = "case.approve"  # approve a determination, close
FILE_LIST = "file.list"  # the school's register, no content
FILE_OPEN = "file.open"
FILE_READ = "file.read"
FILE_WRITE = "file.write"
# A support file's status only (it exists, who is responsible, the next step's date, whether
# a crisis is open; never its level, trigger, plan or notes): the staff member who escalated
# the concern that opened it, and the class teachers of the student's class while a crisis
# is open (DOMAIN.md, "The crisis pathway": the class teacher knows what to watch for, not
# the content). The school's counselors have the register instead; the principal, all.
FILE_STATUS = "file.status"
# The part of a support file its one-to-one responsible person (一对一包联人, any staff member
# of the school) needs: the plan (goals, measures), their own tasks and the guardian contacts;
# never the counselling sessions, crisis records, reviews' notes or screening answers (those
# stay FILE_READ's: the responsible counselor's and the principal's). A separate action rather
# than a scoped FILE_READ, so that every decision in the trail says which part was opened,
# and no rule that grants FILE_READ can leak the notes to a person named for the plan.
FILE_PLAN = "file.plan"
SCREENING_IMPORT = "screening.import"
SCREENING_READ = "screening.read"  # a student's screening results (scores, answers)
PAIRING_CREATE = "pairing.create"
PAIRING_READ = "pairing.read"
PAIRING_WRITE = "pairing.write"
STATS_READ = "stats.read"  # counts without names
ACCOUNT_ADMIN = "account.admin"
ACCOUNT_ROLES = "account.roles"  # change an account's roles: never one's own
ROLE_GRANT_APPROVE = "account.grant.approve"  # the second person of a grant of roles
ROLE_GRANT_LIST = "account.grant.list"  # the grants waiting for a second person, of a school or the district
KEYS_ADMIN = "keys.admin"
SHRED = "shred"
AUDIT_READ = "audit.read"  # the audit trail: case histories, who accessed whom, break-glass, denials
AUDIT_REVIEW = "audit.review"  # mark another person's break-glass use justified or not (domain.break_glass)
QUEUE_READ = "queue.read"  # a staff member's work queue (待办): their open items and due dates
NOTICES_OWN = "notices.own"  # one's own notices (站内提醒), email address and notification settings
NOTIFY_ADMIN = "notify.admin"  # a school's group bot, undeliverable messages (errors only)
# The crisis pathway (心理危机干预): any staff member may raise a crisis signal about a student
# of their school (a check-in, a bullying case); every counselor of the school and the
# principal read and act on a crisis's checklist (not the file's counselling notes).
# The district's registry of agencies referrals go to: its administrator (of the district, not
# a school's) or a supervisor maintain it. Institutions, not personal data.
AGENCY_ADMIN = "agency.admin"
CRISIS_REPORT = "crisis.report"
CRISIS_READ = "crisis.read"
CRISIS_WRITE = "crisis.write"
# A school's bullying governance body (学生欺凌治理委员会, domain.committee): the principal
# appoints and removes its members; the principal and the safety lead, who records the case's
# meeting, read who sits on it (names of adults in a capacity, no student's).
COMMITTEE_ADMIN = "committee.admin"
COMMITTEE_READ = "committee.read"

CONTENT_ACTIONS = {
    STUDENT_READ,
    CASE_READ,
    CASE_STATUS,
    FILE_READ,
    FILE_STATUS,
    FILE_PLAN,
    PAIRING_READ,
    SCREENING_READ,
    CRISIS_READ,
}
READ_ACTIONS = CONTENT_ACTIONS | {FILE_LIST, STATS_READ}
# Every action in words, as the permission table (docs/permissions.md) and the audit pages name it.
ACTION_LABELS: dict[str, str] = {
    STUDENT_READ: "查看学生身份信息",
    STUDENT_WRITE: "维护花名册",
    CASE_REPORT: "报告疑似欺凌",
    CASE_STATUS: "查看案件状态（仅状态）",
    CASE_READ: "查看案件全部内容",
    CASE_WRITE: "办理案件",
    CASE_APPROVE: "批准认定、结案",
    FILE_LIST: "查看心理档案名册",
    FILE_OPEN: "建立心理档案",
    FILE_READ: "查看心理档案内容",
    FILE_WRITE: "更新心理档案",
    FILE_STATUS: "查看心理档案状态（仅状态）",
    FILE_PLAN: "查看帮扶方案与家校联系（一对一包联人）",
    SCREENING_IMPORT: "导入心理筛查",
    SCREENING_READ: "查看筛查结果",
    PAIRING_CREATE: "安排结对",
    PAIRING_READ: "查看结对与谈心",
    PAIRING_WRITE: "记录谈心",
    STATS_READ: "统计（无姓名）",
    ACCOUNT_ADMIN: "管理账号",
    KEYS_ADMIN: "轮换密钥",
    SHRED: "销毁（删除）记录",
    AUDIT_READ: "审计查询",
    QUEUE_READ: "查看待办事项",
    ACCOUNT_ROLES: "调整账号角色",
    ROLE_GRANT_APPROVE: "批准角色授予",
    NOTICES_OWN: "查看本人的提醒、设置提醒方式",
    NOTIFY_ADMIN: "设置学校群机器人、查看发送失败的提醒",
    AUDIT_REVIEW: "复核紧急查阅",
    ROLE_GRANT_LIST: "查看待批准的角色授予",
    CRISIS_REPORT: "报告心理危机信号",
    CRISIS_READ: "查看危机干预清单",
    CRISIS_WRITE: "办理危机干预",
    AGENCY_ADMIN: "维护转介机构名录",
    COMMITTEE_ADMIN: "维护学生欺凌治理委员会成员",
    COMMITTEE_READ: "查看学生欺凌治理委员会成员",
}
# What a supervisor may open with a stated reason (break-glass): reads only. What a reason
# must say is domain.break_glass's rule (is_meaningful_reason); the refusal says it in words.
BREAK_GLASS_ACTIONS = {STUDENT_READ, CASE_READ, FILE_READ, PAIRING_READ, SCREENING_READ}


@dataclass(frozen=True)
class Resource:
    """What the gate needs to know about a thing: ids, never names."""

    kind: str  # student, case, file, pairing, school, district, account, keys
    id: str | None = None
    school_id: str | None = None
    classes: frozenset[str] = field(default_factory=frozenset)  # classes of students involved
    owner_id: str | None = None  # responsible staff: file's counselor, pairing's teacher; who asked for a grant
    district: str = "default"
    roles: frozenset[str] = field(default_factory=frozenset)  # a grant's roles that need a second person
    # (part, staff_id) of staff with a part on the stream, and marks about it (a support file's
    # "escalated" and "person" (包联人), ("crisis", "") while a crisis is open): see Scope.staff.
    staff: frozenset[tuple[str, str]] = field(default_factory=frozenset)


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str
    break_glass: bool = False


def allow(reason: str) -> Decision:
    return Decision(True, reason)


def deny(reason: str) -> Decision:
    return Decision(False, reason)


# The roles a school's principal may approve for their school (a grant of supervisor or
# administrator takes a supervisor or another administrator).
SCHOOL_ROLES = frozenset({Role.CLASS_TEACHER.value, Role.COUNSELOR.value, Role.SAFETY_LEAD.value, Role.PRINCIPAL.value})
SCHOOL_STAFF_ROLES = frozenset({Role.CLASS_TEACHER, Role.COUNSELOR, Role.SAFETY_LEAD, Role.PRINCIPAL})


def _accounts_rule(actor: Actor, action: str, resource: Resource, same_school: bool) -> Decision:
    """Separation of duties on accounts: nobody changes their own roles or approves a grant
    they asked for or that is for themselves; a grant's second person is another
    administrator, the school's principal (school roles), or a supervisor (supervisor)."""
    roles = actor.roles
    if resource.id == actor.staff_id:
        return deny("不能修改或批准本人的角色（职责分离）")
    admin_here = Role.ADMINISTRATOR in roles and (actor.school_id is None or same_school)
    if action == ACCOUNT_ROLES:
        return allow("管理员职责") if admin_here else deny("不在您的职责范围内")
    if resource.owner_id == actor.staff_id:
        return deny("提出授予的人不能自己批准（职责分离）")
    if admin_here and resource.district == actor.district:
        return allow("另一位管理员批准角色授予")
    if Role.PRINCIPAL in roles and same_school and resource.roles <= SCHOOL_ROLES:
        return allow("校长：批准本校的角色授予")
    if Role.SUPERVISOR in roles and resource.district == actor.district and resource.roles <= {Role.SUPERVISOR.value}:
        return allow("督导：批准督导角色的授予")
    return deny("不在您的职责范围内")


def _review_rule(actor: Actor, resource: Resource, same_school: bool) -> Decision:
    """Who reviews a break-glass use (`resource`: the record it opened, `owner_id` who
    used it; or, without an owner, a school's or the district's queue): the school's
    principal or another supervisor of the district; never the person who used it, and
    never an administrator (separation of duties: who keeps the accounts does not judge
    who read what)."""
    roles = actor.roles
    if Role.ADMINISTRATOR in roles:
        return deny("系统管理员不能复核紧急查阅（职责分离）")
    if resource.owner_id is not None and resource.owner_id == actor.staff_id:
        return deny("不能复核本人的紧急查阅（职责分离）")
    if Role.PRINCIPAL in roles and same_school:
        return allow("校长：复核本校的紧急查阅")
    if Role.SUPERVISOR in roles and resource.district == actor.district:
        return allow("督导：复核本区他人的紧急查阅")
    return deny("不在您的职责范围内")


def _grant_list_rule(actor: Actor, resource: Resource, same_school: bool) -> Decision:
    """Who lists the grants waiting for a second person, of one school (`resource.school_id`)
    or of the district (none): those who ask for them, the administrators (a school's own
    administrator, their school only), and those who may approve them: a school's
    principal (their school) and a supervisor (their district). Which rows each may act on
    is ROLE_GRANT_APPROVE's, row by row."""
    roles = actor.roles
    in_district = resource.district == actor.district
    if Role.ADMINISTRATOR in roles and in_district and (actor.school_id is None or same_school):
        return allow("管理员：待批准的角色授予")
    if Role.PRINCIPAL in roles and same_school:
        return allow("校长：本校待批准的角色授予")
    if Role.SUPERVISOR in roles and in_district and actor.school_id is None:
        return allow("督导：本区待批准的角色授予")
    return deny("不在您的职责范围内")


def decide(actor: Actor, action: str, resource: Resource, break_glass_reason: str | None = None) -> Decision:
    """The whole permission table. Order matters only where a rule says 'no more'."""
    same_school = actor.school_id is not None and actor.school_id == resource.school_id
    roles = actor.roles
    if action in (ACCOUNT_ROLES, ROLE_GRANT_APPROVE):
        return _accounts_rule(actor, action, resource, same_school)
    if action == AUDIT_REVIEW:
        return _review_rule(actor, resource, same_school)
    if action == ROLE_GRANT_LIST:
        return _grant_list_rule(actor, resource, same_school)

    if action in (FILE_STATUS, FILE_PLAN) and (whole := decide(actor, FILE_READ, resource)).allowed:
        return whole  # whoever may read the whole file may read these parts of it
    if action == NOTICES_OWN:
        return allow("本人的提醒") if resource.owner_id == actor.staff_id else deny("只能查看本人的提醒")
    if Role.ADMINISTRATOR in roles:
        if action == NOTIFY_ADMIN and (actor.school_id is None or same_school) and resource.district == actor.district:
            return allow("管理员职责")
        if action in (STUDENT_WRITE, STUDENT_READ) and (actor.school_id is None or same_school):
            return allow("管理员维护花名册")
        if action in (ACCOUNT_ADMIN, KEYS_ADMIN, SHRED) and (actor.school_id is None or same_school):
            return allow("管理员职责")
        if action == AGENCY_ADMIN and actor.school_id is None and resource.district == actor.district:
            return allow("区级管理员：维护转介机构名录")
    if Role.PRINCIPAL in roles and same_school and action != SHRED:
        if action not in (ACCOUNT_ADMIN, KEYS_ADMIN, STUDENT_WRITE, NOTIFY_ADMIN):
            return allow("校长：本校全部事项")
    if Role.SAFETY_LEAD in roles and same_school:
        if action in (CASE_REPORT, CASE_READ, CASE_STATUS, CASE_WRITE, STATS_READ):
            return allow("德育/安全负责人：本校欺凌案件")
        if action == STUDENT_READ:
            return allow("德育/安全负责人：办案需要查看学生")
        if action in (PAIRING_CREATE,):
            return allow("德育/安全负责人：安排一岗双带")
        if action == COMMITTEE_READ:
            return allow("德育/安全负责人：记录欺凌治理委员会的认定会议")
    if Role.COUNSELOR in roles and same_school:
        if action in (FILE_LIST, FILE_OPEN, SCREENING_IMPORT, STATS_READ):
            return allow("心理老师：本校心理档案")
        if action == SCREENING_READ:
            return allow("心理老师：本校学生的心理筛查结果")
        if action in (CRISIS_READ, CRISIS_WRITE):
            return allow("心理老师：本校学生的心理危机干预")
        if action in (FILE_READ, FILE_WRITE):
            if resource.owner_id == actor.staff_id:
                return allow("心理老师：本人负责的档案")
            if resource.kind == "file" and resource.id is None:
                return allow("心理老师：新建档案")
        if action == STUDENT_READ:
            return allow("心理老师：本校学生")
        if action == CASE_REPORT:
            return allow("教职工均可报告疑似欺凌")
    if Role.CLASS_TEACHER in roles and same_school:
        mine = bool(resource.classes & actor.classes)
        if action in (PAIRING_READ, PAIRING_WRITE) and resource.owner_id == actor.staff_id:
            return allow("班主任：本人结对的学生")
        if action == STUDENT_READ and mine:
            return allow("班主任：本班学生")
        if action == CASE_STATUS and mine:
            return allow("班主任：本班学生所涉案件（仅状态）")
        if action == CASE_REPORT:
            return allow("教职工均可报告疑似欺凌")
        if action == FILE_OPEN and mine:
            return allow("班主任：将谈心中的担忧转为心理档案")
        if action == FILE_STATUS and mine and ("crisis", "") in resource.staff:
            return allow("班主任：本班学生正在危机干预中（仅状态）")
    if same_school and action == CASE_REPORT and roles:
        return allow("教职工均可报告疑似欺凌")
    if same_school and Role.ADMINISTRATOR not in roles and roles & SCHOOL_STAFF_ROLES:
        if action in (FILE_STATUS, FILE_PLAN) and ("person", actor.staff_id) in resource.staff:
            return allow("一对一包联人：帮扶方案、本人的待办与家校联系")
        if action == FILE_STATUS and ("escalated", actor.staff_id) in resource.staff:
            return allow("上报人：本人上报而建立的档案（仅状态）")
    if same_school and action == CRISIS_REPORT and roles & SCHOOL_STAFF_ROLES:
        return allow("教职工均可报告心理危机信号")
    if same_school and action in (PAIRING_READ, PAIRING_WRITE) and resource.owner_id == actor.staff_id:
        return allow("本人结对的学生")
    if action == QUEUE_READ and resource.owner_id == actor.staff_id and resource.school_id == actor.school_id:
        return allow("本人的待办事项")
    if Role.SUPERVISOR in roles and resource.district == actor.district:
        if action == STATS_READ:
            return allow("督导：全区统计（无姓名）")
        if action == AUDIT_READ:
            return allow("督导：本区审计记录")
        if action == AGENCY_ADMIN:
            return allow("督导：维护转介机构名录")
        if action in BREAK_GLASS_ACTIONS:
            if break_glass.is_meaningful_reason(break_glass_reason):
                return Decision(True, "督导：说明理由后查看实名记录", break_glass=True)
            return deny(break_glass.REASON_RULE)  # (what a reason must be, in words; the text is a translation's key)
    if Role.ADMINISTRATOR in roles and action in CONTENT_ACTIONS | {CASE_WRITE, FILE_WRITE}:
        return deny("系统管理员不能查看或修改案件内容（职责分离）")
    return deny("不在您的职责范围内")
