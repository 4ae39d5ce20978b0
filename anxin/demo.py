"""A realistic demo district: two schools, ~600 students (Faker zh_CN), staff in every
role, and pairings, support files and bullying cases in every state. Deterministic
for a seed. History is written through the same commands people use, on a simulated
clock that walks from a term's start to today."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from faker import Faker

from anxin.passwords import hash_password
from domain.common import Actor, DomainError, Role
from domain.roster import PRIORITY_TAGS, Student

DEMO_PASSWORD = "anxin-demo-2026"
DEMO_USERS = [
    ("teacher1", "班主任（安心市第一中学 七年级1班）"),
    ("counselor1", "心理老师（安心市第一中学）"),
    ("safety1", "德育主任（安心市第一中学）"),
    ("principal1", "校长（安心市第一中学）"),
    ("supervisor1", "教育局督导（全区）"),
    ("admin", "系统管理员"),
]
ADMIN_ACTOR = Actor("demo-admin", frozenset({Role.ADMINISTRATOR}))

SCHOOLS = [
    ("安心市第一中学", ["七年级", "八年级", "九年级"], 2),
    ("安心市实验小学", ["四年级", "五年级", "六年级"], 2),
]


class SimClock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


@dataclass
class DemoSchool:
    id: str
    name: str
    classes: list[str]
    students: dict[str, list[str]] = field(default_factory=dict)  # class -> student ids
    teachers: dict[str, Actor] = field(default_factory=dict)  # class -> teacher
    counselors: list[Actor] = field(default_factory=list)
    safety: Actor | None = None
    principal: Actor | None = None


MIN_STUDENTS_PER_SCHOOL = 200  # every class needs enough pupils for the demo's cases and files


# The demo is written through the same commands people use, one transaction each, so it
# cannot be one transaction: a marker says whether it finished (`demo_state`), so a demo
# cut short (killed, a full disk) is told apart from a whole one and from real data.
DEMO_TABLE = "anxin_demo"
HALF_DEMO = (
    "演示数据没有载入完成（被中断或出错），库中只有部分演示数据：请换一个空的数据目录"
    "（PostgreSQL：清空该数据库或 schema）后重新运行 anxin init 和 anxin demo"
)


def demo_state(app: Any) -> str | None:
    """Whether a demo was loaded here: "complete", "loading" (started and never finished:
    killed or failed), or None (never started)."""
    if app.db.dialect == "postgres":
        exists = app.db.fetchone("SELECT to_regclass(?) IS NOT NULL", (app.db.t(DEMO_TABLE),))[0]
    else:
        exists = app.db.fetchone("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (DEMO_TABLE,))
    if not exists:  # (read without DDL: `summary` beside a running server writes nothing)
        return None
    row = app.db.fetchone(f"SELECT value FROM {{t}}{DEMO_TABLE} WHERE name = 'state'")
    return str(row[0]) if row else None


def _mark(app: Any, state: str) -> None:
    app.db.execute(f"CREATE TABLE IF NOT EXISTS {{t}}{DEMO_TABLE} (name TEXT PRIMARY KEY, value TEXT NOT NULL)")
    app.db.execute(
        f"INSERT INTO {{t}}{DEMO_TABLE} (name, value) VALUES ('state', ?) "
        "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        (state,),
    )


def store_is_empty(app: Any) -> bool:
    """No school, no account and no stream: nothing a demo could be mixed with."""
    return not any(
        app.db.fetchone(f"SELECT 1 FROM {{t}}{table} LIMIT 1")
        for table in ("anxin_schools", "anxin_staff", "anxin_directory")
    )


def directory_counts(app: Any) -> tuple[dict[str, int], dict[str, int]]:
    """What `anxin summary` counts, from the directory (ids and kinds only): students per
    school id, and streams per kind."""
    students = dict(
        app.db.fetch("SELECT school_id, COUNT(*) FROM {t}anxin_directory WHERE kind = 'student' GROUP BY school_id")
    )
    kinds = dict(app.db.fetch("SELECT kind, COUNT(*) FROM {t}anxin_directory GROUP BY kind"))
    return students, kinds


# What `anxin summary` and `anxin demo` call each kind of record, with its counting word:
# one list, so the two commands say the same thing of the same store (issue 18).
KIND_NAMES = {
    "student": ("学生", "人"),
    "staff": ("教职工", "人"),
    "case": ("欺凌案件", "件"),
    "file": ("心理档案", "份"),
    "pairing": ("一岗双带结对", "对"),
    "screening": ("心理筛查记录", "份"),
    "committee": ("学生欺凌治理委员会", "个"),
}


def totals_line(kinds: dict[str, int]) -> str:
    """The store's records by kind, in Chinese (from `directory_counts`): the line both
    commands print. A kind this list does not name yet is counted as 其他记录."""
    parts = [f"{name} {kinds[k]} {unit}" for k, (name, unit) in KIND_NAMES.items() if kinds.get(k)]
    other = sum(v for k, v in kinds.items() if k not in KIND_NAMES)
    if other:
        parts.append(f"其他记录 {other} 条")
    return "记录总数：" + "，".join(parts)


# What the demo did that the directory does not count (its casework's counts under other names
# would differ from the totals: cases and files are also opened by escalations and screenings).
DEMO_ONLY = ("谈心记录", "上报的担忧", "已结束结对")


class HalfDemo(DomainError):
    code = "half_demo"
    message = HALF_DEMO


DEMO_MAIL_DOMAIN = "demo.anxin.test"  # every demo account's address: USERNAME@demo.anxin.test


def load_demo(app: Any, *, password: str = DEMO_PASSWORD, seed: int = 2026, students_per_school: int = 300) -> str:
    """Load the demo into an empty store. The marker says "loading" before the first write
    and "complete" after the last: a demo cut short stays marked, and is refused (HalfDemo)
    rather than loaded over or taken for a whole one."""
    if students_per_school < MIN_STUDENTS_PER_SCHOOL:
        raise DomainError(f"演示数据每校至少需要 {MIN_STUDENTS_PER_SCHOOL} 名学生")
    state = demo_state(app)
    if state == "loading" and not store_is_empty(app):
        raise HalfDemo()
    _mark(app, "loading")
    summary = _load(app, password, seed, students_per_school)
    _mark(app, "complete")
    return summary


def _load(app: Any, password: str, seed: int, students_per_school: int) -> str:
    rng = random.Random(seed)
    fake = Faker("zh_CN")
    fake.seed_instance(seed)
    real_clock = app.clock
    today = real_clock()
    clock = SimClock(today - timedelta(days=75))
    app.clock = clock
    pw = hash_password(password)
    try:
        schools = _roster(app, fake, rng, pw, students_per_school, clock)
        _staff_outside_schools(app, pw)
        counts = _casework(app, rng, fake, schools, clock, today)
    finally:
        app.clock = real_clock
    total = sum(len(v) for s in schools for v in s.students.values())
    lines = [f"已载入演示学区：{len(schools)} 所学校，{total} 名学生。"]
    lines.append("  " + totals_line(directory_counts(app)[1]))
    done = [f"{k} {counts[k]}" for k in DEMO_ONLY if counts.get(k)]
    if done:
        lines.append("  演示中还记录了：" + "，".join(done))
    return "\n".join(lines)


def _roster(app: Any, fake: Faker, rng: random.Random, pw: str, per_school: int, clock: SimClock) -> list[DemoSchool]:
    schools: list[DemoSchool] = []
    teacher_no = counselor_no = safety_no = principal_no = 0
    for name, grades, per_grade in SCHOOLS:
        sid = app.roster.add_school(ADMIN_ACTOR, name, "安心区")
        classes = [f"{g}{i}班" for g in grades for i in range(1, per_grade + 1)]
        ds = DemoSchool(sid, name, classes)

        def staff(username: str, roles: list[str], classes_: list[str] | None = None, sid: str = sid) -> Actor:
            staff_id = app.roster.add_staff(
                ADMIN_ACTOR,
                username=username,
                name=fake.name(),
                school_id=sid,
                roles=roles,
                classes=classes_,
                password_hash=pw,
                email=f"{username}@{DEMO_MAIL_DOMAIN}",
            )
            return app.gate.actor(staff_id)

        principal_no += 1
        ds.principal = staff(f"principal{principal_no}", ["principal"])
        safety_no += 1
        ds.safety = staff(f"safety{safety_no}", ["safety_lead"])
        for _ in range(2):
            counselor_no += 1
            ds.counselors.append(staff(f"counselor{counselor_no}", ["counselor"]))
        for cls in classes:
            teacher_no += 1
            ds.teachers[cls] = staff(f"teacher{teacher_no}", ["class_teacher"], [cls])
        students: list[Student] = []
        base_year = 2013 if "中学" in name else 2016
        for i in range(per_school):
            cls = classes[i % len(classes)]
            grade = cls[:3]
            no = f"{2026}{len(schools) + 1:02d}{i + 1:04d}"
            gender = rng.choice(["男", "女"])
            tags = []
            if rng.random() < 0.18:
                tags = rng.sample(PRIORITY_TAGS, k=rng.choice([1, 1, 2]))
            student_name = fake.name_male() if gender == "男" else fake.name_female()
            students.append(
                Student.enrol(
                    id=app.roster.student_id_for(sid, no),
                    school_id=sid,
                    student_no=no,
                    name=student_name,
                    gender=gender,
                    birth_date=date(base_year - grades.index(grade), rng.randint(1, 12), rng.randint(1, 28)),
                    grade=grade,
                    class_name=cls,
                    guardians=[{"name": student_name[0] + fake.first_name(), "phone": fake.phone_number()}],
                    tags=tags,
                    actor=ADMIN_ACTOR.staff_id,
                    at=clock(),
                )
            )
            ds.students.setdefault(cls, []).append(str(students[-1].id))
        app.save_many(students)
        schools.append(ds)
    return schools


def _staff_outside_schools(app: Any, pw: str) -> None:
    app.roster.add_staff(
        ADMIN_ACTOR,
        username="supervisor1",
        name="督导 林建国",
        school_id=None,
        roles=["supervisor"],
        password_hash=pw,
        district="安心区",
        email=f"supervisor1@{DEMO_MAIL_DOMAIN}",
    )
    app.roster.add_staff(
        ADMIN_ACTOR,
        username="admin",
        name="管理员 周敏",
        school_id=None,
        roles=["administrator"],
        password_hash=pw,
        district="安心区",
        email=f"admin@{DEMO_MAIL_DOMAIN}",
    )


CHECK_IN_NOTES = {
    "thinking": ["思想积极，能主动与老师交流", "近期情绪有些低落，不愿多说", "对未来有明确目标", "有些焦虑，担心考试"],
    "studies": ["成绩稳定", "数学成绩下滑明显", "作业按时完成", "上课注意力不集中"],
    "family": ["父母在外务工，与祖父母同住", "家庭关系和睦", "父母离异，随母亲生活", "家长配合度高"],
    "difficulties": ["暂无明显困难", "与同学相处有摩擦", "经济上有一定困难", "睡眠不好"],
}


def _casework(
    app: Any, rng: random.Random, fake: Faker, schools: list[DemoSchool], clock: SimClock, today: datetime
) -> dict[str, int]:
    counts = {"结对": 0, "谈心记录": 0}
    end = today
    start = clock.now
    schedule: list[tuple[datetime, int, Actor, str]] = []
    for ds in schools:
        assert ds.principal is not None
        for cls, teacher in ds.teachers.items():
            for student_id in ds.students[cls][:6]:
                pid = app.pairings.pair(ds.principal, staff_id=teacher.staff_id, student_id=student_id)
                counts["结对"] += 1
                # Plan the term: most keep their cadence, some fall overdue.
                diligent = rng.random() < 0.7
                when = start
                while True:
                    when += timedelta(days=rng.randint(10, 15) if diligent else rng.randint(20, 40))
                    if when >= end - timedelta(days=1):
                        break
                    schedule.append((when, len(schedule), teacher, pid))
    concerns: list[tuple[Actor, str, str]] = []
    for when, _, teacher, pid in sorted(schedule):
        clock.now = when
        concern = rng.random() < 0.08
        ci = app.pairings.record_check_in(
            teacher,
            pid,
            held_on=when.date(),
            notes={k: rng.choice(v) for k, v in CHECK_IN_NOTES.items()},
            concern=concern,
            concern_note="发现该生近期常独自一人，疑似被孤立" if concern else "",
        )
        counts["谈心记录"] += 1
        if concern:
            concerns.append((teacher, pid, ci))
    # Some concerns went on to a support file or a bullying report; some pairings ended.
    clock.now = end - timedelta(hours=3)
    escalated: set[str] = set()
    for n, (teacher, pid, ci) in enumerate(concerns[:4]):
        if pid in escalated:
            continue
        escalated.add(pid)
        try:
            if n % 2 == 0:
                app.escalations.escalate_to_support_file(
                    teacher, pid, ci, category="人际关系", risk_level="key", reason="谈心中发现该生被孤立，需心理支持"
                )
            else:
                app.escalations.escalate_to_bullying_report(
                    teacher,
                    pid,
                    ci,
                    occurred_at=clock.now - timedelta(days=2),
                    place="教室",
                    forms=["verbal"],
                    narrative="该生反映被同学排挤、起绰号",
                    reason="谈心中学生自述",
                )
            counts["上报的担忧"] = counts.get("上报的担忧", 0) + 1
        except DomainError:
            continue  # e.g. the student already has an open file
    for ds in schools:
        assert ds.principal is not None
        teacher = next(iter(ds.teachers.values()))
        for pairing in app.pairings.my_pairings(teacher)[-1:]:
            app.pairings.end_pairing(teacher, str(pairing.id), "学生转班，改由新班主任结对")
            counts["已结束结对"] = counts.get("已结束结对", 0) + 1
    clock.now = end
    for ds in schools:
        counts_case = bullying_cases(app, rng, ds, clock, end)
        counts_file = _files(app, rng, ds, clock, end)
        for k, v in {**counts_case, **counts_file}.items():
            counts[k] = counts.get(k, 0) + v
    clock.now = end
    return counts


# Each demo case walks the lifecycle up to one of these stages, so every state shows.
CASE_STAGES = [
    "reported",
    "investigating",
    "awaiting_determination",
    "determined",
    "concluded",
    "intervening",
    "following_up",
    "appealed",
    "closed",
    "closed_offence",
    "reopened",
]
# The demo schools' 学生欺凌治理委员会 (made-up names, like every name here).
GOVERNING_BODY = [
    ("周建国", "school_leader"),
    ("吴警官", "rule_of_law_vice_principal"),
    ("郑律师", "legal_adviser"),
    ("冯医生", "expert"),
    ("陈家长", "parent_rep"),
    ("林同学", "student_rep"),
]
NARRATIVES = [
    ("physical", "课间在走廊被几名同学推搡，头部撞到墙上", "教学楼三楼走廊"),
    ("verbal", "多名同学长期给该生起侮辱性绰号并当众嘲笑", "七年级教室"),
    ("online", "有同学在班级群里发布该生的丑化图片并跟帖辱骂", "班级微信群"),
    ("property", "该生的文具和零花钱多次被同学强行拿走", "学校操场"),
]


def bullying_cases(app: Any, rng: random.Random, ds: DemoSchool, clock: SimClock, end: datetime) -> dict[str, int]:
    """A bullying case at every stage of CASE_STAGES in one school, made through the commands."""
    assert ds.safety is not None and ds.principal is not None
    safety, principal = ds.safety, ds.principal
    made = 0
    for n, stage in enumerate(CASE_STAGES):
        clock.now = end - timedelta(days=60 - n * 4, hours=rng.randint(0, 6))
        cls = ds.classes[n % len(ds.classes)]
        pupils = ds.students[cls][10:]
        target, bully, witness = rng.sample(pupils, 3)
        form, narrative, place = NARRATIVES[n % len(NARRATIVES)]
        reporter = ds.teachers[cls]
        case = app.cases.report_bullying(
            reporter,
            school_id=ds.id,
            channel=rng.choice(["teacher", "parent", "student", "hotline"]),
            occurred_at=clock.now - timedelta(days=1),
            place=place,
            forms=[form],
            parties=[(target, "targeted"), (bully, "bullying"), (witness, "witness")],
            narrative=narrative,
        )
        made += 1
        step = _stepper(clock, rng)
        app.cases.take_safety_measure(
            safety, case, kind="separate_students", student_ids=[target, bully], note="调整座位，课间由老师陪同"
        )
        app.cases.notify_guardian(
            safety,
            case,
            student_id=target,
            method="phone",
            notified_at=clock.now,
            note="已电话告知家长，家长同意配合调查",
        )
        if stage == "reported":
            continue
        step()
        app.cases.start_investigation(safety, case)
        app.cases.record_statement(safety, case, text="被欺凌学生陈述了事情经过，情绪较为激动", from_student_id=target)
        app.cases.record_statement(safety, case, text="旁观学生证实了推搡和辱骂的经过", from_student_id=witness)
        app.cases.add_evidence(safety, case, description="走廊监控录像截图", reference="保卫处存档")
        if stage == "investigating":
            continue
        step()
        app.cases.complete_investigation(safety, case, findings="调查属实：存在多次故意欺凌行为")
        # 未成年人保护法 art. 39: both sides' guardians are invited to take part in the determination.
        app.cases.invite_guardian(safety, case, student_id=target, method="in_person", note="约定认定会议时间")
        app.cases.record_guardian_participation(safety, case, student_id=target, participation="attended")
        if stage == "awaiting_determination":
            continue
        app.cases.invite_guardian(safety, case, student_id=bully, method="phone", note="电话邀请参加认定会议")
        app.cases.record_guardian_participation(
            safety, case, student_id=bully, participation="written_views", note="家长书面表示孩子会道歉，希望从轻处理"
        )
        step()
        not_bullying = stage == "concluded"
        # 未成年人学校保护规定 art. 23-24: the school's governance body meets and determines.
        members = app.committee.active_member_ids(ds.id) or [
            app.committee.appoint_member(principal, school_id=ds.id, name=name, capacity=capacity)
            for name, capacity in GOVERNING_BODY
        ]
        app.cases.record_committee_meeting(
            safety,
            case,
            members_present=members[:4],
            summary="法治副校长和法律顾问分析了行为性质，家长代表、专家发表了意见",
            decision="经表决，认定不构成欺凌" if not_bullying else "经表决，认定构成学生欺凌",
        )
        # A suspected offence goes to the police track (公安机关处理); the tier is the 2017 plan's.
        severity = "egregious" if stage == "closed_offence" else rng.choice(["minor", "serious"])
        if stage == "closed_offence":
            app.cases.open_police_track(safety, case, kind="public_order", reason="殴打致同学轻微伤，已报警处理")
        app.cases.determine(
            safety,
            case,
            bullying=not not_bullying,
            horseplay=not_bullying,
            severity=None if not_bullying else severity,
            reason="学生欺凌治理委员会集体认定" if not not_bullying else "经认定属于同学间打闹嬉戏",
        )
        if stage == "determined":
            continue
        step()
        app.cases.approve_determination(principal, case, reason="同意委员会认定")
        for authority in _reports_owed(app, principal, case):  # 未成年人保护法 art. 39
            app.cases.record_authority_report(
                safety,
                case,
                authority=authority,
                unit={"police": "辖区派出所", "bureau": "区教育局"}[authority],
                method="phone",
                reported_at=clock.now,
            )
        if stage == "concluded":
            continue
        counselor = ds.counselors[n % len(ds.counselors)]
        app.cases.plan_intervention(
            safety,
            case,
            student_id=target,
            kind="counselling",
            plan="每周一次心理辅导，关注情绪变化",
            responsible_staff_id=counselor.staff_id,
        )
        app.cases.plan_intervention(
            safety,
            case,
            student_id=bully,
            kind="education",
            plan="开展法治教育和谈心，了解动机，书面道歉",
            responsible_staff_id=ds.teachers[cls].staff_id,
        )
        if stage == "closed_offence":
            app.cases.record_mandatory_report(
                principal, case, agency="辖区派出所", reported_at=clock.now, reference=f"JB-2026-{n:03d}"
            )
        if stage == "intervening":
            continue
        if stage == "appealed":
            # 教督〔2017〕10号: the family applies to the county body for a review (复查).
            app.cases.apply_for_county_review(
                safety,
                case,
                party_id=bully,
                county_body="区防治学生欺凌工作办公室",
                grounds="家长认为属于同学间玩笑，不应认定为欺凌",
            )
            continue
        step()
        app.cases.record_follow_up(safety, case, notes="回访：双方关系缓和，被欺凌学生情绪稳定")
        if stage == "following_up":
            continue
        step()
        app.cases.close_case(principal, case, reason="干预措施已落实，回访情况良好")
        if stage == "reopened":
            step()
            app.cases.reopen_case(safety, case, reason="再次发生类似行为")
    return {"欺凌案件": made}


def _stepper(clock: SimClock, rng: random.Random) -> Any:
    def step() -> None:
        clock.now += timedelta(days=rng.randint(1, 3), hours=rng.randint(0, 5))

    return step


FILE_PLANS = [
    ("情绪困扰", "general", "学业压力大，情绪波动"),
    ("人际关系", "key", "与同学关系紧张，常独处"),
    ("家庭变故", "key", "父母离异后情绪低落"),
    ("自伤风险", "high", "筛查提示存在自伤想法"),
    ("学业压力", "general", "考试焦虑明显"),
    ("情绪困扰", "high", "持续失眠、情绪低落"),
]


def _files(app: Any, rng: random.Random, ds: DemoSchool, clock: SimClock, end: datetime) -> dict[str, int]:
    """Support files at every risk level and stage, and this year's screening for one grade."""
    made = 0
    pupils = [sid for cls in ds.classes for sid in ds.students[cls][20:24]]
    for n, (category, level, reason) in enumerate(FILE_PLANS):
        counselor = ds.counselors[n % len(ds.counselors)]
        clock.now = end - timedelta(days=70 - n * 6)
        fid = app.support.open_support_file(counselor, pupils[n], category=category, risk_level=level, reason=reason)
        made += 1
        app.support.draw_up_plan(
            counselor,
            fid,
            goals=["情绪稳定", "恢复正常作息"],
            measures=[
                {"text": "每两周一次个体辅导", "by": "心理老师"},
                {"text": "班主任每周关注课堂表现", "by": "班主任"},
            ],
        )
        clock.now += timedelta(days=3)
        app.support.record_session(counselor, fid, held_on=clock.now.date(), summary="建立关系，了解近期困扰")
        app.support.record_guardian_contact(
            counselor,
            fid,
            contacted_on=clock.now.date(),
            guardian="母亲",
            method="phone",
            summary="与家长沟通在家情况，家长表示配合",
        )
        if level == "high":
            clock.now += timedelta(days=2)
            app.support.record_referral(
                counselor, fid, referred_on=clock.now.date(), to="市精神卫生中心", reason="建议专业评估"
            )
        if n == 5:
            clock.now += timedelta(days=1)
            app.support.record_crisis_intervention(
                counselor,
                fid,
                occurred_on=clock.now.date(),
                what_happened="课间情绪崩溃，表达轻生念头",
                actions_taken="全程陪护，立即通知家长并转介医院",
            )
        if n == 0:
            clock.now += timedelta(days=20)
            app.support.record_review(
                counselor, fid, reviewed_on=clock.now.date(), notes="情绪明显好转", outcome="continue"
            )
            app.support.close_support_file(counselor, fid, "风险已解除")
        if n == 2:
            clock.now += timedelta(days=10)
            app.support.lower_risk_level(counselor, fid, "general", "家庭情况趋于稳定")
    # This school year's PHQ-9 screening for the first grade (the rest not yet screened).
    clock.now = end - timedelta(days=5)
    grade_classes = ds.classes[:2]
    lines = ["student_no,instrument,date," + ",".join(f"item{i}" for i in range(1, 10))]
    screened = 0
    for cls in grade_classes:
        for sid in ds.students[cls]:
            ref = app.student_ref(sid)
            items = [rng.choice([0, 0, 0, 1, 1, 2]) for _ in range(9)]
            if rng.random() < 0.05:
                items = [rng.choice([2, 3]) for _ in range(9)]
            if rng.random() > 0.02:
                items[8] = 0
            lines.append(f"{ref.student_no},PHQ-9,{clock.now.date().isoformat()}," + ",".join(map(str, items)))
            screened += 1
    counselor = ds.counselors[0]
    app.screenings.import_screenings(counselor, ds.id, "\n".join(lines) + "\n")
    _crisis_steps_taken(app, ds, clock)
    return {"心理档案": made, "心理筛查": screened}


def _crisis_steps_taken(app: Any, ds: DemoSchool, clock: SimClock) -> None:
    """The crises the demo's history opened, handled as a school would that same day (the
    student seen, the guardian informed and consenting, supervised until handed over, a
    referral made): each still open, waiting for the hospital's feedback and the
    return-to-school assessment, none overdue on the demo's last day."""
    counselor = ds.counselors[0]
    for line in app.support.support_register(ds.principal, ds.id):
        f = app.support.get_support_file(ds.principal, line.file_id)
        if f.crisis is None:
            continue
        opened = clock.now
        steps = [
            ("record_crisis_assessment", {"assessment": "心理老师当面评估：有自伤念头，无具体计划"}),
            ("record_guardian_informed", {"guardian": "母亲", "method": "phone", "response": "consented"}),
            ("record_supervision", {"supervisors": "班主任、心理老师轮流陪同"}),
            ("record_handover", {"guardian": "母亲"}),
            ("record_crisis_referral", {"institution": "市精神卫生中心"}),
        ]
        for hours, (step, fields) in enumerate(steps, start=1):
            clock.now = opened + timedelta(hours=hours)
            getattr(app.crisis, step)(counselor, line.file_id, **fields)
        clock.now = opened


def _reports_owed(app: Any, actor: Actor, case_id: str) -> list[str]:
    """The authorities a case owes a report this cycle (police, bureau)."""
    return app.cases.get_case(actor, case_id).outstanding_authority_reports()
