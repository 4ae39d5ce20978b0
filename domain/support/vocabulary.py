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
