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
    DomainError,
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


# Roles whose grant (or widening) takes a second person before it takes effect: the ones
# that open content (counselor, safety lead, principal, supervisor) and the one that could
# approve such a grant itself (administrator). Narrowing needs nobody else.
SECOND_PERSON_ROLES = frozenset(
    {
        Role.COUNSELOR.value,
        Role.SAFETY_LEAD.value,
        Role.PRINCIPAL.value,
        Role.SUPERVISOR.value,
        Role.ADMINISTRATOR.value,
    }
)


# The roles that open case or student content (the second-person roles but the
# administrator's, who sees none): the ones a school may require two-step verification of.
CONTENT_ROLES = SECOND_PERSON_ROLES - {Role.ADMINISTRATOR.value}


def widened_roles(current: list[str] | tuple[str, ...], wanted: list[str]) -> list[str]:
    """The roles of `wanted` not held now that take a second person's approval."""
    return sorted((set(wanted) - set(current)) & SECOND_PERSON_ROLES)


def checked_email(value: str) -> str:
    """An email address as a mail server takes it (one @, a dotted domain, no spaces or
    angle brackets: nothing that could add a header); '' (none) is allowed."""
    address = (value or "").strip()
    if not address:
        return ""
    local, at, domain = address.rpartition("@")
    bad = set(' <>,;:"\\()[]\r\n\t')
    if (
        not at
        or not local
        or "." not in domain.strip(".")
        or domain.startswith(".")
        or domain.endswith(".")
        or any(c in bad for c in address)
        or not address.isascii()
        or len(address) > 254
    ):
        raise InvalidInput("邮箱地址「{value}」格式不正确，例如 zhang.san@school.edu.cn", value=address[:60])
    return address


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


class StudentNotFound(DomainError):
    """What was typed into a student field fits no student the person may pick."""

    code = "student_not_found"
    message = "没有找到与「{typed}」相符的学生：请输入姓名、学号、拼音或拼音首字母（如 zxm），并从建议中选择"


class StudentAmbiguous(DomainError):
    """What was typed fits several students: the person chooses one."""

    code = "student_ambiguous"
    message = "「{typed}」与多名学生相符：{who}。请从建议中选择一名，或填写其学号"


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
        self.pending: dict[str, Any] | None = None

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
        grant_request_id: str | None = None,
    ) -> Staff:
        """A new account. With `grant_request_id` (an administrator's page), the roles of
        SECOND_PERSON_ROLES among `roles` are not held yet: they are asked for in a
        RoleGrantRequested event and wait for another person's approval."""
        require_aware(at)
        roles = parse_roles(roles)
        if Role.SUPERVISOR.value not in roles and Role.ADMINISTRATOR.value not in roles:
            require(school_id is not None, "该角色必须属于一所学校")
        username = require_text(username, "用户名")
        require(username.isascii() and " " not in username, "用户名只能包含英文字母、数字和符号")
        held = roles if grant_request_id is None else [r for r in roles if r not in SECOND_PERSON_ROLES]
        kept_classes = [c.strip() for c in (classes or []) if c.strip()]
        staff = cls(
            id=id,
            school_id=school_id,
            username=username,
            name=require_text(name, "姓名"),
            roles=held,
            classes=kept_classes,
            district=district,
            actor=actor,
            at=at,
        )
        if grant_request_id is not None and held != roles:
            staff.request_grant(
                request_id=grant_request_id, roles=roles, classes=kept_classes, reason="新建账号", actor=actor, at=at
            )
        return staff

    def change_roles(self, *, roles: list[str], classes: list[str], reason: str, actor: str, at: datetime) -> None:
        """Roles changed at once: only a narrowing, or a widening by roles that need no
        second person (`widened_roles` empty); never by the account's own holder. A
        pending grant is dropped (the change says what the roles are now)."""
        require_aware(at)
        require(self.active, "账号已停用")
        require(actor != str(self.id), "不能修改本人的角色")
        roles = parse_roles(roles)
        require(not widened_roles(self.roles, roles), "授予这些角色须经另一人批准")
        self._roles_changed(roles=roles, classes=classes, reason=require_text(reason, "原因"), actor=actor, at=at)

    def request_grant(
        self, *, request_id: str, roles: list[str], classes: list[str], reason: str, actor: str, at: datetime
    ) -> None:
        """Ask for roles that widen the account by a role of SECOND_PERSON_ROLES: nothing
        changes until another person approves (`approve_grant`). A later request takes
        the place of a pending one."""
        require_aware(at)
        require(self.active, "账号已停用")
        require(actor != str(self.id), "不能修改本人的角色")
        roles = parse_roles(roles)
        require(bool(widened_roles(self.roles, roles)), "这些角色无须批准")
        self._grant_requested(
            request_id=request_id,
            roles=roles,
            classes=[c.strip() for c in classes if c.strip()],
            reason=require_text(reason, "原因"),
            actor=actor,
            at=at,
        )

    class RoleGrantRequested(CaseAggregate.Event):
        request_id: str
        roles: list[str]
        classes: list[str]
        reason: str
        actor: str
        at: datetime

    @event(RoleGrantRequested)
    def _grant_requested(
        self, request_id: str, roles: list[str], classes: list[str], reason: str, actor: str, at: datetime
    ) -> None:
        self.pending = {"request_id": request_id, "roles": roles, "classes": classes, "actor": actor, "at": at}

    def pending_grant(self) -> dict[str, Any] | None:
        """The grant waiting for approval: request_id, roles, classes, actor (who asked), at."""
        return getattr(self, "pending", None)

    def _the_pending(self, request_id: str, actor: str) -> dict[str, Any]:
        pending = self.pending_grant()
        if pending is None or pending["request_id"] != request_id:
            raise WrongState(state="没有待批准的角色授予", action="批准或拒绝")
        require(actor != pending["actor"], "提出授予的人不能自己批准")
        require(actor != str(self.id), "不能批准授予本人的角色")
        return pending

    def approve_grant(self, *, request_id: str, actor: str, at: datetime) -> None:
        """A second person approves the pending grant: the roles take effect now."""
        require_aware(at)
        require(self.active, "账号已停用")
        pending = self._the_pending(request_id, actor)
        self._grant_approved(
            request_id=request_id, roles=pending["roles"], classes=pending["classes"], actor=actor, at=at
        )

    class RoleGrantApproved(CaseAggregate.Event):
        request_id: str
        roles: list[str]
        classes: list[str]
        actor: str
        at: datetime

    @event(RoleGrantApproved)
    def _grant_approved(self, request_id: str, roles: list[str], classes: list[str], actor: str, at: datetime) -> None:
        self.roles = roles
        self.classes = classes
        self.pending = None

    def decline_grant(self, *, request_id: str, reason: str, actor: str, at: datetime) -> None:
        """A second person declines the pending grant: the roles stay as they are."""
        require_aware(at)
        self._the_pending(request_id, actor)
        self._grant_declined(request_id=request_id, reason=require_text(reason, "原因"), actor=actor, at=at)

    class RoleGrantDeclined(CaseAggregate.Event):
        request_id: str
        reason: str
        actor: str
        at: datetime

    @event(RoleGrantDeclined)
    def _grant_declined(self, request_id: str, reason: str, actor: str, at: datetime) -> None:
        self.pending = None

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
        self.pending = None

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
        self.pending = None

    def set_email(self, *, email: str, actor: str, at: datetime) -> None:
        """The address notifications are sent to (anxin.notify), set by the person on their
        account page or by an administrator. Kept in this stream only (encrypted); an empty
        value removes it (no email is sent then; the in-app inbox still holds everything)."""
        require_aware(at)
        address = checked_email(email)
        if address == (getattr(self, "email", "") or ""):
            return
        self._email_set(email=address, actor=actor, at=at)

    class EmailSet(CaseAggregate.Event):
        email: str
        actor: str
        at: datetime

    @event(EmailSet)
    def _email_set(self, email: str, actor: str, at: datetime) -> None:
        self.email = email

    def scope(self) -> Scope:
        return Scope(
            kind="staff",
            school_id=self.school_id,
            owner_id=str(self.id),
            status="active" if self.active else "inactive",
        )
