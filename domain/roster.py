"""The roster: students and staff, each their own encrypted stream.

A student's identity (name, birth date, guardians) lives in their stream only; every
other stream refers to a student by id, so shredding a student's key erases their
identity everywhere it would be shown."""

from __future__ import annotations

import unicodedata
from datetime import date, datetime
from typing import Any
from uuid import UUID

from eventsourcing.domain import event

from domain.common import (
    CaseAggregate,
    InvalidInput,
    Role,
    Scope,
    WrongState,
    require,
    require_aware,
    require_text,
)

GENDERS = {"男": "male", "女": "female", "male": "male", "female": "female", "m": "male", "f": "female"}
GENDER_LABELS = {"male": "男", "female": "女"}
PRIORITY_TAGS = ("留守儿童", "流动儿童", "单亲家庭", "隐性辍学", "身体困难", "家庭困难", "学业困难")


def parse_gender(value: str) -> str:
    g = GENDERS.get((value or "").strip().lower())
    if g is None:
        raise InvalidInput(reason=f"性别「{(value or '')[: FIELD_LIMITS['gender']]}」无法识别（应为 男/女）")
    return g


def check_phone(phone: str) -> str:
    """A guardian's number as digits: a mobile (11 digits, starting 1), a landline with or
    without its area code (7 to 12 digits), or an international number (+ and up to 15)."""
    text = (phone or "").strip()
    problem = text_problem(text, "电话号码", FIELD_LIMITS["guardian_phone"])
    require(problem is None, problem or "")
    digits = text.replace("-", "").replace(" ", "").replace("(", "").replace(")", "")
    international = digits.startswith("+")
    digits = digits.removeprefix("+")
    if international and digits.startswith("86"):
        digits, international = digits[2:], False
    ok = (
        digits.isascii()
        and digits.isdigit()
        and (
            7 <= len(digits) <= 15
            if international
            else len(digits) == 11
            if digits.startswith("1")
            else 7 <= len(digits) <= 12
        )
    )
    require(ok, f"电话号码「{phone}」格式不正确")
    return digits


# The longest value each roster field may hold, in characters: room for long names
# (minority and foreign names), but a pasted paragraph or a binary field is refused.
FIELD_LIMITS = {
    "student_no": 32,
    "name": 50,
    "gender": 8,
    "grade": 20,
    "class_name": 30,
    "guardian_name": 50,
    "guardian_phone": 24,
    "tag": 20,
}
MAX_TAGS = 10
# A K-12 pupil's age on the day they are enrolled: from kindergarten to the oldest upper
# secondary or special-education pupils.
MIN_AGE, MAX_AGE = 3, 25


def text_problem(value: str, label: str, limit: int) -> str | None:
    """Why a text field cannot be stored, or None: a NUL or other control character (a
    binary or mangled file), or more than `limit` characters."""
    if "\x00" in value:
        return f"{label}含有空字符（NUL），文件可能已损坏或不是文本"
    if any(unicodedata.category(c) == "Cc" for c in value):
        return f"{label}含有控制字符（如换行或制表符）"
    if len(value) > limit:
        return f"{label}过长：{len(value)} 个字符，最多 {limit} 个"
    return None


def checked_text(value: str | None, label: str, limit: int) -> str:
    text = require_text(value, label)
    problem = text_problem(text, label, limit)
    require(problem is None, problem or "")
    return text


def age_on(birth: date, day: date) -> int:
    return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))


def birth_date_problem(birth: date, today: date) -> str | None:
    """Why a birth date cannot be a K-12 pupil's, or None."""
    if birth >= today:
        return "出生日期不能晚于今天"
    age = age_on(birth, today)
    if not MIN_AGE <= age <= MAX_AGE:
        return f"出生日期「{birth.isoformat()}」不像中小学生：按此年龄为 {age} 岁，应在 {MIN_AGE} 至 {MAX_AGE} 岁之间"
    return None


def parse_roles(roles: list[str] | None) -> list[str]:
    """Role codes as the domain knows them; an unknown one is refused by name."""
    known = {r.value for r in Role}
    unknown = [r for r in roles or [] if r not in known]
    require(not unknown, f"未知的角色：{'、'.join(map(str, unknown))}")
    require(bool(roles), "至少需要一个角色")
    return [Role(r).value for r in roles or []]


def checked_details(details: dict[str, Any], today: date) -> dict[str, Any]:
    """A student's identity details as enrolment and correction both accept them: each
    field present is checked and normalised by the same rule, whichever command gives it."""
    out = dict(details)
    for key, what in (("student_no", "学号"), ("name", "姓名"), ("grade", "年级"), ("class_name", "班级")):
        if key in details:
            out[key] = checked_text(details[key], what, FIELD_LIMITS[key])
    if "gender" in details:
        out["gender"] = parse_gender(details["gender"])
    if "birth_date" in details:
        birth_date = details["birth_date"]
        require(isinstance(birth_date, date) and not isinstance(birth_date, datetime), "出生日期格式不正确")
        problem = birth_date_problem(birth_date, today)
        require(problem is None, problem or "")
    if "guardians" in details:
        out["guardians"] = [
            {
                "name": checked_text(g.get("name"), "监护人姓名", FIELD_LIMITS["guardian_name"]),
                "phone": check_phone(g.get("phone", "")),
            }
            for g in details["guardians"] or []
        ]
    if "tags" in details:
        tags = [t.strip() for t in details["tags"] or [] if t.strip()]
        require(len(tags) <= MAX_TAGS, f"标签最多 {MAX_TAGS} 个")
        for tag in tags:
            checked_text(tag, "标签", FIELD_LIMITS["tag"])
        out["tags"] = tags
    return out


class Student(CaseAggregate):
    """A student of a school. Identity fields are corrected, never edited."""

    class Enrolled(CaseAggregate.Created):
        school_id: str
        student_no: str
        name: str
        gender: str
        birth_date: date
        grade: str
        class_name: str
        guardians: list[dict[str, str]]
        tags: list[str]
        actor: str
        at: datetime

    @event(Enrolled)
    def __init__(
        self,
        id: UUID,
        school_id: str,
        student_no: str,
        name: str,
        gender: str,
        birth_date: date,
        grade: str,
        class_name: str,
        guardians: list[dict[str, str]],
        tags: list[str],
        actor: str,
        at: datetime,
    ) -> None:
        self.school_id = school_id
        self.student_no = student_no
        self.name = name
        self.gender = gender
        self.birth_date = birth_date
        self.grade = grade
        self.class_name = class_name
        self.guardians = guardians
        self.tags = tags
        self.active = True
        self.enrolled_at = at

    @classmethod
    def enrol(
        cls,
        *,
        id: UUID,
        school_id: str,
        student_no: str,
        name: str,
        gender: str,
        birth_date: date,
        grade: str,
        class_name: str,
        guardians: list[dict[str, str]] | None = None,
        tags: list[str] | None = None,
        actor: str,
        at: datetime,
    ) -> Student:
        require_aware(at)
        details = checked_details(
            {
                "student_no": student_no,
                "name": name,
                "gender": gender,
                "birth_date": birth_date,
                "grade": grade,
                "class_name": class_name,
                "guardians": guardians or [],
                "tags": tags or [],
            },
            today=at.date(),
        )
        return cls(id=id, school_id=school_id, **details, actor=actor, at=at)

    CORRECTABLE = ("name", "gender", "birth_date", "grade", "class_name", "guardians", "tags")

    def correct(self, *, changes: dict[str, Any], reason: str, actor: str, at: datetime) -> None:
        """Correct identity details; the event names the fields it corrects and why."""
        require_aware(at)
        require(self.active, "学生已离校")
        unknown = set(changes) - set(self.CORRECTABLE)
        require(not unknown, f"不能更正的字段：{', '.join(sorted(unknown))}")
        require(bool(changes), "没有要更正的内容")
        changes = checked_details(changes, today=at.date())  # the same rules as enrolment
        self._corrected(changes=changes, reason=require_text(reason, "更正原因"), actor=actor, at=at)

    class DetailsCorrected(CaseAggregate.Event):
        changes: dict[str, Any]
        reason: str
        actor: str
        at: datetime

    @event(DetailsCorrected)
    def _corrected(self, changes: dict[str, Any], reason: str, actor: str, at: datetime) -> None:
        for k, v in changes.items():
            setattr(self, k, v)

    def leave(self, *, reason: str, actor: str, at: datetime) -> None:
        require_aware(at)
        if not self.active:
            raise WrongState(state="已离校", action="再次办理离校")
        self._left(reason=require_text(reason, "离校原因"), actor=actor, at=at)

    class Left(CaseAggregate.Event):
        reason: str
        actor: str
        at: datetime

    @event(Left)
    def _left(self, reason: str, actor: str, at: datetime) -> None:
        self.active = False

    def scope(self) -> Scope:
        return Scope(
            kind="student",
            school_id=self.school_id,
            class_name=self.class_name,
            subject_id=str(self.id),
            status="active" if self.active else "left",
        )


class Staff(CaseAggregate):
    """A staff member: identity (name) encrypted here; roles and classes also kept,
    in clear ids, in the directory the gate reads."""

    class Registered(CaseAggregate.Created):
        school_id: str | None
        username: str
        name: str
        roles: list[str]
        classes: list[str]
        district: str
        actor: str
        at: datetime

    @event(Registered)
    def __init__(
        self,
        id: UUID,
        school_id: str | None,
        username: str,
        name: str,
        roles: list[str],
        classes: list[str],
        district: str,
        actor: str,
        at: datetime,
    ) -> None:
        self.school_id = school_id  # type: ignore[assignment]
        self.username = username
        self.name = name
        self.roles = roles
        self.classes = classes
        self.district = district
        self.active = True

    @classmethod
    def register(
        cls,
        *,
        id: UUID,
        school_id: str | None,
        username: str,
        name: str,
        roles: list[str],
        classes: list[str] | None = None,
        district: str = "default",
        actor: str,
        at: datetime,
    ) -> Staff:
        require_aware(at)
        roles = parse_roles(roles)
        if Role.SUPERVISOR.value not in roles and Role.ADMINISTRATOR.value not in roles:
            require(school_id is not None, "该角色必须属于一所学校")
        username = require_text(username, "用户名")
        require(username.isascii() and " " not in username, "用户名只能包含英文字母、数字和符号")
        return cls(
            id=id,
            school_id=school_id,
            username=username,
            name=require_text(name, "姓名"),
            roles=roles,
            classes=[c.strip() for c in (classes or []) if c.strip()],
            district=district,
            actor=actor,
            at=at,
        )

    def change_roles(self, *, roles: list[str], classes: list[str], reason: str, actor: str, at: datetime) -> None:
        require_aware(at)
        require(self.active, "账号已停用")
        roles = parse_roles(roles)
        self._roles_changed(roles=roles, classes=classes, reason=require_text(reason, "原因"), actor=actor, at=at)

    class RolesChanged(CaseAggregate.Event):
        roles: list[str]
        classes: list[str]
        reason: str
        actor: str
        at: datetime

    @event(RolesChanged)
    def _roles_changed(self, roles: list[str], classes: list[str], reason: str, actor: str, at: datetime) -> None:
        self.roles = roles
        self.classes = classes

    def deactivate(self, *, reason: str, actor: str, at: datetime) -> None:
        require_aware(at)
        if not self.active:
            raise WrongState(state="已停用", action="再次停用")
        self._deactivated(reason=require_text(reason, "原因"), actor=actor, at=at)

    class Deactivated(CaseAggregate.Event):
        reason: str
        actor: str
        at: datetime

    @event(Deactivated)
    def _deactivated(self, reason: str, actor: str, at: datetime) -> None:
        self.active = False

    def scope(self) -> Scope:
        return Scope(
            kind="staff",
            school_id=self.school_id,
            owner_id=str(self.id),
            status="active" if self.active else "inactive",
        )
