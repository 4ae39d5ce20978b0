"""The words of domain.bullying: choices and their Chinese labels, and the states."""

from __future__ import annotations

CHANNELS = {
    "student": "学生",
    "parent": "家长",
    "teacher": "教师",
    "hotline": "举报电话",
    "anonymous": "匿名举报",
    "public": "社会公众",
}

# The five forms of 《未成年人学校保护规定》(2021) art. 20: physical, verbal, property, social
# (malicious exclusion and isolation) and online. Codes are stored: a new form is added, never
# renamed.
FORMS = {"physical": "肢体", "verbal": "言语", "online": "网络", "property": "财物", "exclusion": "恶意排斥、孤立"}

PARTS = {"targeted": "被欺凌学生", "bullying": "涉嫌欺凌学生", "witness": "旁观/证人"}

MEASURES = {
    "separate_students": "隔离双方",
    "guardian_notified": "告知家长",
    "medical_care": "就医/救护",
    "other": "其他措施",
}

CONTACT_METHODS = {"phone": "电话", "in_person": "当面", "message": "短信/微信", "letter": "书面", "other": "其他"}

SEVERITIES = {"minor": "情节轻微", "serious": "情节较重/恶劣", "suspected_offence": "违反治安管理或涉嫌犯罪"}

INTERVENTION_KINDS = {"counselling": "心理辅导", "support": "关爱帮扶", "education": "教育矫治"}

KINDS_BY_PART = {
    "targeted": ("counselling", "support"),
    "witness": ("counselling", "support"),
    "bullying": ("education", "counselling"),
}

# What closure needs for a bullying determination (any one of these, per student of the part).
REQUIRED_KINDS = {"targeted": ("counselling", "support"), "bullying": ("education",)}

APPEAL_OUTCOMES = {"upheld": "维持原认定", "changed": "变更认定", "reopened": "重新调查"}

STATUS_LABELS = {
    "reported": "已报告",
    "reopened": "已重新开启",
    "investigating": "调查中",
    "awaiting_determination": "待认定",
    "determined": "待校长审批",
    "concluded": "不构成欺凌（已批准）",
    "intervening": "干预中",
    "following_up": "回访中",
    "appealed": "申诉中",
    "closed": "已结案",
}

PARTY_EDIT_STATES = ("reported", "reopened", "investigating", "awaiting_determination")

INVESTIGATION_OPEN_STATES = ("reported", "reopened", "investigating")

APPROVED_STATES = ("concluded", "intervening", "following_up")

# -- the guardians' part in the determination (未成年人保护法 art. 39) ------------------------------
# How a guardian was told of the determination and invited to take part (每次通知一条记录).
GUARDIAN_INVITATION_METHODS = {"phone": "电话", "in_person": "当面", "written": "书面通知"}
# What a guardian did: the determination needs one of these for the guardian of every
# targeted and every bullying student ("unreachable" only after the policy's attempts).
GUARDIAN_PARTICIPATION = {
    "attended": "出席认定会议",
    "written_views": "书面提出意见",
    "declined": "明确拒绝参与",
    "unreachable": "多次联系未果",
}
# The parts whose guardians take part (both sides; not the witnesses').
GUARDIAN_PARTS = ("targeted", "bullying")
# What is missing for a party's guardian before the determination (the refusal says it).
GUARDIAN_MISSING = {
    "uninvited": "尚未通知监护人参与认定",
    "unrecorded": "尚未记录监护人的参与情况（出席、书面意见、拒绝或联系未果）",
}

# How a clue (线索) that names no targeted student ends without a determination (查无欺凌).
CLUE_FINDINGS = {"not_bullying": "查无欺凌", "not_our_students": "不涉及本校学生"}

# A case with no targeted student yet: how pages and queues name its student.
UNCONFIRMED_LABEL = "未确认学生"
