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

# The tiers of 教督〔2017〕10号: 一般 (minor), 严重 (serious), 屡教不改或者情节恶劣 (egregious; a
# bullying student may be transferred to a 专门学校). `suspected_offence` is a legacy code: older
# determinations keep it and show it with its label; a new determination chooses among
# NEW_SEVERITIES, and a suspected offence opens the public-security track (POLICE_TRACK_KINDS).
SEVERITIES = {
    "minor": "一般欺凌（情节轻微）",
    "serious": "严重欺凌",
    "egregious": "屡教不改或者情节恶劣",
    "suspected_offence": "违反治安管理或涉嫌犯罪",
}
NEW_SEVERITIES = ("minor", "serious", "egregious")
LEGACY_SEVERITIES = ("suspected_offence",)

# The public-security track (公安机关处理): what the police handle it as.
POLICE_TRACK_KINDS = {"public_order": "违反治安管理", "criminal": "涉嫌犯罪"}

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
    "appealed": "复查中",
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

# -- remedies (issue 17, part C): reports to the authorities, dispositions, the county review --
# 未成年人保护法 art. 39: serious bullying is reported promptly to the public security organ and
# the education administration; art. 11: anyone who finds a minor harmed reports it.
AUTHORITIES = {"police": "公安机关", "bureau": "教育行政部门"}
AUTHORITY_REPORT_METHODS = {"phone": "电话", "written": "书面", "online": "网上报送", "in_person": "当面"}
# Why a report to both is due: a determination of serious bullying or worse, or the
# public-security track (违反治安管理或涉嫌犯罪) opened on the case.
AUTHORITY_REPORT_GROUNDS = {"serious_bullying": "严重欺凌", "police_track": "涉嫌违反治安管理或犯罪"}

# Dispositions for a bullying student (教督〔2017〕10号; 中小学教育惩戒规则（试行）2020).
DISPOSITION_KINDS = {
    "criticism": "批评教育",
    "apology": "赔礼道歉",
    "compensation": "赔偿",
    "education_discipline": "教育惩戒",
    "disciplinary_sanction": "纪律处分",
    "police_admonition": "训诫（公安机关）",
    "evaluation_record": "记入综合素质评价",
    "special_school": "转送专门学校",
    "guardian_supervision": "责令家长加强管教",
    "family_guidance": "家庭教育指导",
}
# The level a kind takes (none for the others).
DISPOSITION_LEVELS = {
    "apology": {"in_person": "当面道歉", "written": "书面道歉"},
    "education_discipline": {"general": "一般教育惩戒", "heavier": "较重教育惩戒", "severe": "严重教育惩戒"},
    "disciplinary_sanction": {
        "warning": "警告",
        "serious_warning": "严重警告",
        "demerit": "记过",
        "probation": "留校察看",
    },
}
# The measures of 中小学教育惩戒规则 art. 8 (一般), art. 9 (较重) and art. 10 (严重), by level.
DISCIPLINE_MEASURES = {
    "general": {
        "named_criticism": "点名批评",
        "apology_or_self_criticism": "责令赔礼道歉、做口头或者书面检讨",
        "extra_tasks": "适当增加额外的教学或者班级公益服务任务",
        "standing": "一节课堂教学时间内的教室内站立",
        "after_class_guidance": "课后教导",
        "other_general": "校规校纪或班规、班级公约规定的其他适当措施",
    },
    "heavier": {
        "moral_lead_admonition": "由学校德育工作负责人予以训导",
        "school_service": "承担校内公益服务任务",
        "rules_education": "安排接受专门的校规校纪、行为规则教育",
        "activities_suspended": "暂停或者限制参加游览、校外集体活动等外出集体活动",
        "other_heavier": "校规校纪规定的其他适当措施",
    },
    "severe": {
        "suspension": "不超过一周的停课或者停学，要求家长在家进行教育、管教",
        "legal_vice_principal_admonition": "由法治副校长或者法治辅导员予以训诫",
        "professional_intervention": "安排专门的课程或者教育场所，由社会工作者或者其他专业人员进行心理辅导、行为干预",
    },
}
# Who decided a disposition: the school's bodies decide the school's measures; 训诫 is the
# police's, and a transfer to a 专门学校 the education administration's.
DISPOSITION_DECIDERS = {
    "committee": "学生欺凌治理委员会",
    "principal": "校长",
    "school": "学校",
    "police": "公安机关",
    "bureau": "教育行政部门",
}
DECIDERS_BY_KIND = {
    "police_admonition": ("police",),
    "special_school": ("bureau",),
}
SCHOOL_DECIDERS = ("committee", "principal", "school")

# The county review (复查, 教督〔2017〕10号): who sits on the panel, and its outcomes.
REVIEW_CAPACITIES = {
    "school": "学校代表",
    "parent": "家长代表",
    "expert": "校外专家",
    "legal": "法律工作者",
    "other": "其他成员",
}
REQUIRED_REVIEW_CAPACITIES = ("school", "parent", "expert")
COUNTY_REVIEW_OUTCOMES = {"upheld": "维持原认定", "changed": "变更认定", "sent_back": "发回重新认定"}
