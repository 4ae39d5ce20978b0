"""The case page's sections: their order and names for the table of contents, which step
form lives in which, and which are open when the page opens.

Open: the overview (报告), the section where the case's next step is done (from its
status), a section with something overdue or owed (a report to the authorities, a
follow-up), and the section of a form that was just refused (its error and what was typed
are there). The rest are collapsed to one line each, so the page starts short; every
section is one click (or one link of the contents) away.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from domain.bullying import SEVERITIES
from web import i18n

# (id, title) in page order; a section the page leaves out (no corrections yet) is not listed.
SECTIONS: list[tuple[str, str]] = [
    ("report", "报告"),
    ("parties", "当事人"),
    ("measures", "安全措施"),
    ("investigation", "调查"),
    ("guardians", "监护人参与"),
    ("meetings", "认定会议"),
    ("determination", "认定"),
    ("police-track", "公安机关处理"),
    ("mandatory", "强制报告"),
    ("authority-reports", "向公安和教育部门报告"),
    ("interventions", "干预"),
    ("dispositions", "处理"),
    ("appeals", "申诉"),
    ("county-review", "县级复查"),
    ("follow-ups", "回访"),
    ("closure", "结案"),
    ("corrections", "更正记录"),
]

# Each step's form (web.routes.cases.STEPS) is in one section.
STEP_SECTION: dict[str, str] = {
    "correct_narrative": "report",
    "correct_report": "report",
    "add_party": "parties",
    "remove_party": "parties",
    "safety_measure": "measures",
    "notify_guardian": "measures",
    "self_harm": "measures",
    "start_investigation": "investigation",
    "complete_investigation": "investigation",
    "statement": "investigation",
    "evidence": "investigation",
    "correct_statement": "investigation",
    "correct_evidence": "investigation",
    "invite_guardian": "guardians",
    "guardian_participation": "guardians",
    "committee_meeting": "meetings",
    "determine": "determination",
    "approve": "determination",
    "return": "determination",
    "police_track": "police-track",
    "mandatory_report": "mandatory",
    "authority_report": "authority-reports",
    "plan_intervention": "interventions",
    "intervention_progress": "interventions",
    "complete_intervention": "interventions",
    "disposition": "dispositions",
    "appeal": "appeals",
    "appeal_outcome": "appeals",
    "review_apply": "county-review",
    "review_panel": "county-review",
    "review_outcome": "county-review",
    "follow_up": "follow-ups",
    "correct_follow_up": "follow-ups",
    "close": "closure",
    "reopen": "closure",
    "dismiss_clue": "closure",
}

# The next step by status: (the sections where it is done, what it is).
NEXT: dict[str, tuple[tuple[str, ...], str]] = {
    "reported": (("investigation", "parties"), "开始调查"),
    "reopened": (("investigation",), "开始调查"),
    "investigating": (("investigation",), "记录陈述和证据，完成调查"),
    "awaiting_determination": (
        ("guardians", "meetings", "determination"),
        "通知监护人参与，召开委员会会议，记录认定",
    ),
    "determined": (("determination",), "校长审批认定"),
    "concluded": (("closure",), "结案（或先回访）"),
    "intervening": (("interventions", "dispositions"), "落实干预措施和处理决定"),
    "following_up": (("follow-ups",), "回访"),
    "appealed": (("appeals",), "记录申诉的复查结果"),  # an old appeal (申诉) pending
    "closed": ((), ""),
}
# A county review (复查) pending: its outcome is the next step.
REVIEW_PENDING = (("county-review",), "记录县级复查结果")


def _next(case: Any, status: str) -> tuple[tuple[str, ...], str]:
    """The sections of the next step, and what it is."""
    if status == "appealed" and getattr(case, "pending_review_id", None):
        return REVIEW_PENDING
    return NEXT.get(status, ((), ""))


# A closed case opens on how it ended: the determination in force and the closing.
CLOSED_OPEN = ("determination", "closure")


def action_sections(case: Any, status: str, today: date) -> set[str]:
    """The sections where something is to be done now: the next step's, and any with
    something owed or overdue (marked in the contents)."""
    opened = set(_next(case, status)[0])
    if case.students_unconfirmed and status != "closed":
        opened.add("parties")
    if status != "closed":
        if case.outstanding_authority_reports():
            opened.add("authority-reports")
        if case.follow_up_overdue(today):
            opened.add("follow-ups")
        if case.county_review_overdue(today) or case.pending_review_id:
            opened.add("county-review")
    return opened


def open_sections(case: Any, status: str, failed: str | None, today: date, now: datetime) -> set[str]:
    """The sections shown open when the page opens: who and what (报告, 当事人), where
    action is due, how a closed case ended, and the section of a refused form."""
    opened = {"report", "parties"} | action_sections(case, status, today)
    if status == "closed":
        opened.update(CLOSED_OPEN)
    if failed and failed in STEP_SECTION:
        opened.add(STEP_SECTION[failed])
    return opened


def briefs(case: Any, today: date) -> dict[str, str]:
    """One line per section, beside its title when collapsed: what is in it."""
    _ = i18n.gettext
    det = case.determination
    if det is None:
        verdict = _("尚未认定")
    else:
        verdict = (
            _("构成欺凌") + " · " + _(SEVERITIES.get(det["severity"] or "", "")) if det["bullying"] else _("不构成欺凌")
        )
        verdict += " · " + (_("已批准") if det["approved"] else _("待校长审批"))
    interventions = list(case.interventions.values())
    active = sum(1 for i in interventions if i["active"])
    owed = case.outstanding_authority_reports()
    closures = case.closures
    out = {
        "parties": _("{n} 名学生", n=len(case.parties)),
        "measures": _("{n} 项", n=len(case.measures)) if case.measures else _("尚无"),
        "investigation": _("陈述 {s} · 证据 {e}", s=len(case.statements), e=len(case.evidence)),
        "determination": verdict,
        "police-track": _("已开启") if case.police_track else _("未开启"),
        "mandatory": _("{n} 份", n=len(case.mandatory_reports)) if case.mandatory_reports else _("尚无"),
        "authority-reports": (_("待报告") if owed else _("{n} 份", n=len(case.authority_reports)))
        if owed or case.authority_reports
        else _("尚无"),
        "interventions": _("{n} 项，进行中 {a} 项", n=len(interventions), a=active) if interventions else _("尚无"),
        "dispositions": _("{n} 项", n=len(case.dispositions)) if case.dispositions else _("尚无"),
        "appeals": _("{n} 件", n=len(case.appeals)) if case.appeals else _("尚无"),
        "county-review": _("{n} 件", n=len(case.county_reviews)) if case.county_reviews else _("尚无"),
        "follow-ups": _("{n} 次", n=len(case.follow_ups)) if case.follow_ups else _("尚无"),
        "closure": (_("已结案") + " · " + i18n.fmt_date(closures[-1]["at"]))
        if case.status == "closed" and closures
        else _("未结案"),
    }
    return out


def section_context(case: Any, status: str, failed: str | None, today: date, now: datetime) -> dict[str, Any]:
    """What case.html needs: the open sections, the next step, the contents."""
    sections, label = _next(case, status)
    return {
        "briefs": briefs(case, today),
        "open_sections": open_sections(case, status, failed, today, now),
        "action_sections": action_sections(case, status, today),
        "next_step": (sections[0], label) if sections else None,
        "sections": SECTIONS,
    }
