"""The words of domain.support: choices and their Chinese labels, and the states."""

from __future__ import annotations

CATEGORIES = ("情绪困扰", "学业压力", "家庭变故", "人际关系", "自伤风险", "欺凌受害", "网络成瘾", "其他")

ORIGINS = {
    "screening": "心理筛查",
    "referral": "他人转介",
    "escalation": "谈心谈话上报",
    "bullying_case": "欺凌案件干预",
    "judgement": "心理老师判断",
}

CONTACT_METHODS = {"phone": "电话", "meeting": "面谈", "visit": "家访", "message": "线上消息", "other": "其他"}

REVIEW_OUTCOMES = {"continue": "维持方案", "adjust": "调整方案"}

ENTRY_KINDS = {
    "session": "心理辅导",
    "guardian_contact": "家校联系",
    "referral": "转介",
    "crisis": "危机干预",
    "review": "方案复评",
}

CORRECTABLE = {
    "session": ("held_on", "summary", "duration_minutes", "next_steps"),
    "guardian_contact": ("contacted_on", "guardian", "method", "summary"),
    "referral": ("referred_on", "to", "reason"),
    "crisis": ("occurred_on", "what_happened", "actions_taken"),
    "review": ("notes",),
}

ENTRY_DATE_FIELD = {
    "session": "held_on",
    "guardian_contact": "contacted_on",
    "referral": "referred_on",
    "crisis": "occurred_on",
    "review": "reviewed_on",
}

# The crisis pathway (心理危机干预): what can open a crisis, and the steps of its checklist.
CRISIS_TRIGGERS = {
    "screening": "心理筛查危机信号",
    "counselor": "心理老师记录危机事件",
    "check_in": "谈心谈话中发现可能危及生命",
    "bullying_case": "欺凌案件中发现自伤迹象",
}
CRISIS_STEPS = {
    "assessed": "面谈学生并评估风险",
    "guardian_informed": "告知监护人",
    "guardian_response": "记录监护人知情同意或拒绝",
    "supervision": "安排安全监护（不离人）",
    "handed_over": "移交监护人",
    "referral": "转介精神卫生医疗机构",
    "feedback": "收到转介回执",
    "return_assessment": "复学评估",
}
# The three parts of the return-to-school assessment (复学评估).
RETURN_PARTS = {
    "medical_advice": "医生建议",
    "return_assessed": "心理老师评估",
    "plan_revised": "修订后的帮扶方案",
}
GUARDIAN_METHODS = {"phone": "电话", "in_person": "当面", "written": "书面告知书"}
GUARDIAN_RESPONSES = {"consented": "知情同意", "refused": "拒绝", "pending": "尚未答复"}
# The next step on a file, as its status page names it (to those who see the status only).
NEXT_STEPS = {"first_contact": "心理老师首次接触学生", "review": "方案复评"}
# Referrals (转介) to an agency of the district's registry: its kinds, and a referral's states
# (sent → accepted → feedback received → closed; closed from any state, with a reason).
AGENCY_KINDS = {
    "mental_health": "精神卫生中心",
    "hospital": "医院",
    "police": "公安",
    "civil_affairs": "民政/社工",
    "procuratorate": "检察院",
}
REFERRAL_STATES = {
    "sent": "已转介，待机构接收",
    "accepted": "机构已接收，待回执",
    "feedback": "已收到回执",
    "closed": "已结束",
}
