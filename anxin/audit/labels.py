"""The audit trail in words: each event topic, each action, each kind of entry and the
non-person actors as the supervisor's pages show them (Chinese; English through the
catalogues). Every topic ever stored (tests/event_topics.txt) has a label here."""

from __future__ import annotations

from domain.access import ACTION_LABELS
from projections.timeline_labels import KIND_LABELS, LABELS

# The aggregate class of each topic, as the kind of record it is.
_CLASS_KINDS = {
    "Student": "student",
    "BullyingCase": "case",
    "SupportFile": "file",
    "ScreeningRecord": "screening",
    "Pairing": "pairing",
    "GoverningBody": "committee",
}
# The event that creates a record says so.
_CREATES = {
    ("student", "Enrolled"): "入学登记（学生记录建立）",
    ("case", "Reported"): "报告疑似欺凌（案件创建）",
    ("file", "Opened"): "建立心理档案（档案创建）",
    ("screening", "ScreeningRecordOpened"): "建立本学年筛查记录（记录创建）",
    ("pairing", "Paired"): "一岗双带结对（结对创建）",
    ("committee", "Constituted"): "组建学生欺凌治理委员会（记录创建）",
}
_STAFF = {
    "Registered": "登记教职工账号",
    "RolesChanged": "调整教职工角色",
    "Deactivated": "停用教职工账号",
    "RoleGrantRequested": "申请授予角色（待他人批准）",
    "RoleGrantApproved": "批准授予角色",
    "RoleGrantDeclined": "拒绝授予角色",
    "EmailSet": "设置接收提醒的邮箱",
}


def _topic_labels() -> dict[str, str]:
    out: dict[str, str] = {}
    modules = {
        "student": "domain.roster",
        "case": "domain.bullying",
        "file": "domain.support",
        "screening": "domain.screening",
        "pairing": "domain.pairing",
        "committee": "domain.committee",
    }
    for cls, kind in _CLASS_KINDS.items():
        for (k, event), label in LABELS.items():
            if k == kind:
                out[f"{modules[kind]}:{cls}.{event}"] = _CREATES.get((k, event), label)
    for event, label in _STAFF.items():
        out[f"domain.roster:Staff.{event}"] = label
    return out


# "domain.bullying:BullyingCase.Reported" -> "报告疑似欺凌（案件创建）"
TOPIC_LABELS: dict[str, str] = _topic_labels()

# Kinds of trail entries (anxin.audit.chain.KINDS).
ENTRY_KIND_LABELS = {
    "event": "记录",
    "access": "访问",
    "login": "登录",
    "login_failed": "登录失败",
    "logout": "退出登录",
    "export": "导出",
    "report": "生成报表",
    "shred": "销毁记录",
    "key_rotation": "轮换密钥",
    "checkpoint": "签名检查点",
    "password_change": "修改密码",
    "token_issue": "签发接口令牌",
    "token_revoke": "撤销接口令牌",
    "account_setup": "设置账号密码（一次性链接）",
    "group_bot": "设置学校群机器人",
    "two_step_enrol": "开启两步验证",
    "two_step_disable": "关闭两步验证",
    "two_step_reset": "重置两步验证（管理员）",
    "school_setting": "修改学校安全设置",
    "audit_verify": "核验审计记录",
    "break_glass_review": "紧急查阅复核",
    "setup_code_issue": "重新生成账号设置链接",
}
# Actors that are no person.
ACTOR_LABELS = {"system": "系统（自动）", "cli": "命令行（系统维护）"}


def topic_label(topic: str) -> str:
    """A topic's label; an unknown one (never expected) as it is."""
    return TOPIC_LABELS.get(topic, topic)


def action_label(action: str) -> str:
    return ACTION_LABELS.get(action, action)


def kind_label(kind: str) -> str:
    return ENTRY_KIND_LABELS.get(kind, kind)


def record_kind_label(kind: str | None) -> str:
    return KIND_LABELS.get(kind or "", kind or "")
