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
from domain.common import SYSTEM, Actor, Role
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


def load_demo(app: Any, *, password: str = DEMO_PASSWORD, seed: int = 2026, students_per_school: int = 300) -> str:
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
    lines += [f"  {k}：{v}" for k, v in counts.items()]
    return "\n".join(lines)


def _roster(app: Any, fake: Faker, rng: random.Random, pw: str, per_school: int, clock: SimClock) -> list[DemoSchool]:
    schools = []
    teacher_no = counselor_no = safety_no = principal_no = 0
    for name, grades, per_grade in SCHOOLS:
        sid = app.add_school(ADMIN_ACTOR, name, "安心区")
        classes = [f"{g}{i}班" for g in grades for i in range(1, per_grade + 1)]
        ds = DemoSchool(sid, name, classes)

        def staff(username: str, roles: list[str], classes_: list[str] | None = None) -> Actor:
            staff_id = app.add_staff(ADMIN_ACTOR, username=username, name=fake.name(), school_id=sid,
                                     roles=roles, classes=classes_, password_hash=pw)
            return app.actor(staff_id)

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
            students.append(Student.enrol(
                id=app.student_id_for(sid, no), school_id=sid, student_no=no, name=student_name,
                gender=gender, birth_date=date(base_year - grades.index(grade), rng.randint(1, 12), rng.randint(1, 28)),
                grade=grade, class_name=cls,
                guardians=[{"name": student_name[0] + fake.first_name(), "phone": fake.phone_number()}],
                tags=tags, actor=ADMIN_ACTOR.staff_id, at=clock(),
            ))
            ds.students.setdefault(cls, []).append(str(students[-1].id))
        app.save_many(students)
        schools.append(ds)
    return schools


def _staff_outside_schools(app: Any, pw: str) -> None:
    app.add_staff(ADMIN_ACTOR, username="supervisor1", name="督导 林建国", school_id=None, roles=["supervisor"],
                  password_hash=pw, district="安心区")
    app.add_staff(ADMIN_ACTOR, username="admin", name="管理员 周敏", school_id=None, roles=["administrator"],
                  password_hash=pw, district="安心区")


CHECK_IN_NOTES = {
    "thinking": ["思想积极，能主动与老师交流", "近期情绪有些低落，不愿多说", "对未来有明确目标", "有些焦虑，担心考试"],
    "studies": ["成绩稳定", "数学成绩下滑明显", "作业按时完成", "上课注意力不集中"],
    "family": ["父母在外务工，与祖父母同住", "家庭关系和睦", "父母离异，随母亲生活", "家长配合度高"],
    "difficulties": ["暂无明显困难", "与同学相处有摩擦", "经济上有一定困难", "睡眠不好"],
}


def _casework(app: Any, rng: random.Random, fake: Faker, schools: list[DemoSchool], clock: SimClock,
              today: datetime) -> dict[str, int]:
    counts = {"结对": 0, "谈心记录": 0}
    end = today
    start = clock.now
    schedule: list[tuple[datetime, int, Actor, str]] = []
    for ds in schools:
        assert ds.principal is not None
        for cls, teacher in ds.teachers.items():
            for student_id in ds.students[cls][:6]:
                pid = app.pair(ds.principal, staff_id=teacher.staff_id, student_id=student_id)
                counts["结对"] += 1
                # Plan the term: most keep their cadence, some fall overdue.
                diligent = rng.random() < 0.7
                when = start
                while True:
                    when += timedelta(days=rng.randint(10, 15) if diligent else rng.randint(20, 40))
                    if when >= end - timedelta(days=1):
                        break
                    schedule.append((when, len(schedule), teacher, pid))
    for when, _, teacher, pid in sorted(schedule):
        clock.now = when
        concern = rng.random() < 0.08
        app.record_check_in(
            teacher, pid, held_on=when.date(),
            notes={k: rng.choice(v) for k, v in CHECK_IN_NOTES.items()},
            concern=concern, concern_note="发现该生近期常独自一人，疑似被孤立" if concern else "",
        )
        counts["谈心记录"] += 1
    clock.now = end
    extra = getattr(app, "demo_casework", None)
    if extra is not None:
        counts.update(extra(rng, fake, schools, clock, end))
    return counts
