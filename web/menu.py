"""The top menu: each page with what its reader must be allowed, asked of the permission
table the gate uses (`domain.access.decide`), so the menu offers exactly what the role may
do and there is no second list of who may see what.

A menu is not an access: nothing is read, so nothing is recorded (like `Gate.permits`).
Each item names the gate's actions its page needs and the scope it asks them in:

- "school": the reader's own school (only for someone of a school);
- "own": a record of their own in their school (their work queue, their pairings);
- "class": students of the classes they teach, in their school;
- "home": their school, or, for a district account, the district (the administrator's pages);
- "district": the district as a whole (no school).

An item shows when the gate allows every action of `all_of` and one of `any_of`.
"""

from __future__ import annotations

from dataclasses import dataclass

from domain import access
from domain.access import Resource, decide
from domain.common import Actor

Need = tuple[str, str]  # (action, scope)


@dataclass(frozen=True)
class Item:
    path: str
    label: str  # a translation key (web/locale)
    any_of: tuple[Need, ...]
    all_of: tuple[Need, ...] = ()


MENU: tuple[Item, ...] = (
    Item("/", "我的待办", ((access.QUEUE_READ, "own"),)),
    # Every post also mentors students (一岗双带): one's own pairings, or arranging the school's.
    Item("/pairings", "一岗双带", ((access.PAIRING_WRITE, "own"), (access.PAIRING_CREATE, "school"))),
    Item("/cases/new", "报告欺凌", ((access.CASE_REPORT, "school"),)),
    Item("/support", "一人一策", ((access.FILE_LIST, "school"),)),
    Item("/screenings", "心理筛查", ((access.SCREENING_IMPORT, "school"),)),
    Item("/cases", "欺凌案件", ((access.CASE_READ, "school"), (access.CASE_STATUS, "class"))),
    Item("/board", "学校看板", ((access.CASE_READ, "school"),), ((access.STATS_READ, "school"),)),
    Item("/committee", "欺凌治理委员会", ((access.COMMITTEE_READ, "school"),)),
    Item("/students", "学生", ((access.STUDENT_READ, "school"), (access.STUDENT_READ, "class"))),
    Item("/district", "全区概况", ((access.STATS_READ, "district"),)),
    Item("/reports", "定期报送", ((access.STATS_READ, "home"),)),
    Item("/audit", "审计", ((access.AUDIT_READ, "district"),)),
    Item("/grants", "角色审批", ((access.ROLE_GRANT_LIST, "home"),)),
    Item("/reviews", "紧急查阅复核", ((access.AUDIT_REVIEW, "home"),)),
    Item("/agencies", "转介机构", ((access.AGENCY_ADMIN, "district"),)),
    Item("/admin/accounts", "账号", ((access.ACCOUNT_ADMIN, "home"),)),
    Item("/admin/roster", "花名册", ((access.STUDENT_WRITE, "home"),)),
    Item("/admin/keys", "密钥", ((access.KEYS_ADMIN, "home"),)),
    Item("/admin/two-step", "两步验证要求", ((access.ACCOUNT_ADMIN, "home"),)),
    Item("/admin/shred", "删除", ((access.SHRED, "home"),)),
    Item("/admin/notifications", "提醒发送", ((access.NOTIFY_ADMIN, "home"),)),
)


def _resource(actor: Actor, scope: str) -> Resource | None:
    """The resource a scope stands for, for this reader; None where it means nothing for them
    (a school's page for a district account)."""
    school = actor.school_id
    if scope == "district":
        return Resource(kind="district", district=actor.district)
    if scope == "home":
        return Resource(kind="school", school_id=school, district=actor.district)
    if school is None:
        return None
    if scope == "school":
        return Resource(kind="school", school_id=school, district=actor.district)
    if scope == "own":
        return Resource(kind="own", school_id=school, owner_id=actor.staff_id, district=actor.district)
    if scope == "class":
        if not actor.classes:
            return None
        return Resource(kind="student", school_id=school, classes=frozenset(actor.classes), district=actor.district)
    raise ValueError(f"unknown menu scope: {scope}")


def allowed(actor: Actor, need: Need) -> bool:
    action, scope = need
    resource = _resource(actor, scope)
    return resource is not None and decide(actor, action, resource).allowed


def items_for(actor: Actor) -> list[Item]:
    """The menu's items this reader may use, in the menu's order."""
    return [
        item
        for item in MENU
        if any(allowed(actor, n) for n in item.any_of) and all(allowed(actor, n) for n in item.all_of)
    ]


def current(path: str, hrefs: list[str]) -> str | None:
    """The one menu item a page belongs to: the item whose address is the longest prefix of
    the page's path (/cases/new is 报告欺凌, not also 欺凌案件); none for a page of no item."""
    best: str | None = None
    for href in hrefs:
        if path == href or (href != "/" and path.startswith(href + "/")):
            if best is None or len(href) > len(best):
                best = href
    return best
