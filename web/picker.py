"""The student picker (选择学生): one text field on every form that names a student.

People type a name, a student number, pinyin or its initials (张小明, 2026001, zhangxiaoming,
zxm); web/static/picker.js offers the students that fit as they type (from
`GET /api/v1/students/suggest`, the same gated, recorded search as the student search)
and, when one is chosen, puts its label in the field: 张小明（七年级1班，2026001）. The form
posts that text; without JavaScript it posts what was typed. `picked_student` turns either
into a student id:

- a label (its number between the last brackets) or a student number: that student, as
  the number field always took it (a class teacher may name any student of the school by
  number; the command checks the student);
- anything else: the search, as the person may see it: the one student whose whole name,
  pinyin, initials or number it is, or the only one it fits; none or several is a
  message naming what was typed (several: the students it fits, to choose from).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from typing import Any, NoReturn

from anxin.service import Anxin
from domain.common import Actor, DomainError, PermissionDenied
from domain.roster import StudentAmbiguous, StudentNotFound
from projections.source import StudentRef
from projections.student_names import enrolled_in, ranked_students

SUGGESTIONS = 8  # students offered at most as one types
CHOICES_NAMED = 5  # students named at most in the message for an ambiguous entry
# A label's student number: the last item between the final brackets, 张小明（七年级1班，2026001）.
_LABELLED = re.compile(r"[（(](?:[^（()）]*[，,])?\s*([^，,（()）\s]+)\s*[）)]\s*$")
_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")


def label(ref: StudentRef | Any) -> str:
    """How a chosen student shows in the field (and how the server reads it back): a
    StudentRef or anything with its name, class_name and student_no (a Student)."""
    if ref.class_name:
        return f"{ref.name}（{ref.class_name}，{ref.student_no}）"
    return f"{ref.name}（{ref.student_no}）"


def suggestion(ref: StudentRef) -> dict[str, Any]:
    return {
        "id": ref.id,
        "name": ref.name,
        "class_name": ref.class_name,
        "student_no": ref.student_no,
        "label": label(ref),
    }


def suggestions(app: Anxin, actor: Actor, school_id: str, typed: str) -> list[dict[str, Any]]:
    """Students the actor may see that fit what was typed, best first (one recorded decision)."""
    return [suggestion(ref) for ref, _ in ranked_students(app, actor, school_id, typed, limit=SUGGESTIONS)]


def typed_number(typed: str) -> str | None:
    """The student number in what was typed: a label's, or the text itself when it looks
    like a number (no Chinese, no space, a digit in it)."""
    text = unicodedata.normalize("NFKC", typed).strip()
    m = _LABELLED.search(text)
    if m:
        return m.group(1)
    if text and not _CJK.search(text) and not any(c.isspace() for c in text) and any(c.isdigit() for c in text):
        return text
    return None


def picked_student(app: Anxin, actor: Actor, typed: str, guard: Callable[[], object] | None = None) -> str:
    """The id of the student meant by what was typed into a picker (see the module).
    `guard`: the gate's check of the command the form runs, asked (and recorded) before
    saying that no student or several fit, so a person the command would refuse is
    refused (403), not told about students."""
    school_id = actor.school_id or ""
    shown = typed.strip()[:60]
    number = typed_number(typed)
    if number is not None:
        student_id = str(app.roster.student_id_for(school_id, number))
        if not enrolled_in(app, school_id, student_id):
            _refuse(guard, StudentNotFound(typed=shown))
        return student_id
    try:
        found = ranked_students(app, actor, school_id, typed, limit=CHOICES_NAMED + 1)
    except PermissionDenied:
        if guard is not None:
            guard()  # refused by the command's own rule first, if it would be
        raise
    if not found:
        _refuse(guard, StudentNotFound(typed=shown))
    exact = [ref for ref, rank in found if rank == 0]
    if len(found) == 1 or len(exact) == 1:
        return (exact or [found[0][0]])[0].id
    who = "、".join(label(ref) for ref, _ in found[:CHOICES_NAMED]) + ("……" if len(found) > CHOICES_NAMED else "")
    _refuse(guard, StudentAmbiguous(typed=shown, who=who))
    raise AssertionError("unreachable")


def _refuse(guard: Callable[[], object] | None, error: DomainError) -> NoReturn:
    if guard is not None:
        guard()
    raise error


__all__ = ["label", "suggestion", "suggestions", "picked_student", "typed_number", "SUGGESTIONS"]
