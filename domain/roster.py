"""The roster: students and staff, each their own encrypted stream.

A student's identity (name, birth date, guardians) lives in their stream only; every
other stream refers to a student by id, so shredding a student's key erases their
identity everywhere it would be shown."""

from __future__ import annotations

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
        raise InvalidInput(reason=f"性别「{value}」无法识别（应为 男/女）")
    return g


def check_phone(phone: str) -> str:
    digits = (phone or "").strip().replace("-", "").replace(" ", "")
    require(digits.isdigit() and 7 <= len(digits) <= 15, f"电话号码「{phone}」格式不正确")
    return digits


class Student(CaseAggregate):
    """A student of a school. Identity fields are corrected, never edited."""

    @event("Enrolled")
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
        guardians = [
            {"name": require_text(g.get("name"), "监护人姓名"), "phone": check_phone(g.get("phone", ""))}
            for g in (guardians or [])
        ]
        require(isinstance(birth_date, date), "出生日期格式不正确")
        require(birth_date < at.date(), "出生日期不能晚于今天")
        return cls(
            id=id,
            school_id=school_id,
            student_no=require_text(student_no, "学号"),
            name=require_text(name, "姓名"),
            gender=parse_gender(gender),
            birth_date=birth_date,
            grade=require_text(grade, "年级"),
            class_name=require_text(class_name, "班级"),
            guardians=guardians,
            tags=[t.strip() for t in (tags or []) if t.strip()],
            actor=actor,
            at=at,
        )

    CORRECTABLE = ("name", "gender", "birth_date", "grade", "class_name", "guardians", "tags")

    def correct(self, *, changes: dict[str, Any], reason: str, actor: str, at: datetime) -> None:
        """Correct identity details; the event names the fields it corrects and why."""
        require_aware(at)
        require(self.active, "学生已离校")
        unknown = set(changes) - set(self.CORRECTABLE)
        require(not unknown, f"不能更正的字段：{', '.join(sorted(unknown))}")
        require(bool(changes), "没有要更正的内容")
        if "gender" in changes:
            changes = {**changes, "gender": parse_gender(changes["gender"])}
        self._corrected(changes=changes, reason=require_text(reason, "更正原因"), actor=actor, at=at)

    @event("DetailsCorrected")
    def _corrected(self, changes: dict[str, Any], reason: str, actor: str, at: datetime) -> None:
        for k, v in changes.items():
            setattr(self, k, v)

    def leave(self, *, reason: str, actor: str, at: datetime) -> None:
        if not self.active:
            raise WrongState(state="已离校", action="再次办理离校")
        self._left(reason=require_text(reason, "离校原因"), actor=actor, at=at)

    @event("Left")
    def _left(self, reason: str, actor: str, at: datetime) -> None:
        self.active = False

    def scope(self) -> Scope:
        return Scope(
            kind="student", school_id=self.school_id, class_name=self.class_name,
            subject_id=str(self.id), status="active" if self.active else "left",
        )


class Staff(CaseAggregate):
    """A staff member: identity (name) encrypted here; roles and classes also kept,
    in clear ids, in the directory the gate reads."""

    @event("Registered")
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
        roles = [Role(r).value for r in roles] if roles else []
        require(bool(roles), "至少需要一个角色")
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
        require(self.active, "账号已停用")
        roles = [Role(r).value for r in roles]
        require(bool(roles), "至少需要一个角色")
        self._roles_changed(roles=roles, classes=classes, reason=require_text(reason, "原因"), actor=actor, at=at)

    @event("RolesChanged")
    def _roles_changed(self, roles: list[str], classes: list[str], reason: str, actor: str, at: datetime) -> None:
        self.roles = roles
        self.classes = classes

    def deactivate(self, *, reason: str, actor: str, at: datetime) -> None:
        if not self.active:
            raise WrongState(state="已停用", action="再次停用")
        self._deactivated(reason=require_text(reason, "原因"), actor=actor, at=at)

    @event("Deactivated")
    def _deactivated(self, reason: str, actor: str, at: datetime) -> None:
        self.active = False

    def scope(self) -> Scope:
        return Scope(kind="staff", school_id=self.school_id, owner_id=str(self.id),
                     status="active" if self.active else "inactive")
