"""The review of break-glass uses (紧急查阅复核): every time a supervisor reads a named
record with a stated reason, the school's principal(s) and the district's other
supervisors are told (the use waits in their queue and is counted on their start page),
and one of them marks it justified (合理) or not (不合理), with a comment.

The use itself is the trail's access entry (with its sealed reason); its review state is a
row of `anxin_break_glass_reviews` keyed by that entry's seq, written in the entry's own
transaction (anxin.audit.chain). A review passes the gate (AUDIT_REVIEW: never the person
who used it, never an administrator) and is itself an entry of the trail, kind
`break_glass_review`: subject the use's seq, detail the verdict, the comment sealed under
the key of the record the use opened (shredding the record erases it, as it erases the
reason). The entry and the state change are one transaction, and the change is a
compare-and-set on `state = 'pending'`: a use is reviewed once, and of two reviewers at
the same moment one is refused (AlreadyReviewed), never written over.

A reviewer reads the reason (they judge it), never the record: the queue shows who, when,
which kind of record of which school, and its number.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from anxin.audit.chain import Row, append, canonical_json, seal_reason, unseal_reason
from domain import access
from domain.access import Resource
from domain.break_glass import PENDING, REVIEW_STATES, VERDICTS, AlreadyReviewed, check_review
from domain.common import Actor, NotFound, Role

if TYPE_CHECKING:
    from anxin.core import Core

KIND = "break_glass_review"  # the review's own entry in the trail
_COLUMNS = (
    "r.access_seq, r.at, r.user_id, r.action, r.resource_kind, r.resource_id, r.school_id, r.district, "
    "r.state, r.reviewer_id, r.reviewed_at"
)
QUEUE_LIMIT = 500  # the oldest-first page of a reviewer's queue


@dataclass(frozen=True)
class BreakGlassUse:
    """One break-glass use as its reviewer sees it: who, when, which kind of record of
    which school (its id, for a link and its number), the stated reason; never the record."""

    seq: int
    at: datetime
    user_id: str
    user: str
    action: str
    resource_kind: str
    resource_id: str | None
    school_id: str | None
    school: str
    reason: str
    state: str

    @property
    def action_label(self) -> str:
        return access.ACTION_LABELS.get(self.action, self.action)

    @property
    def state_label(self) -> str:
        return REVIEW_STATES.get(self.state, self.state)


def _resource(row: tuple[Any, ...]) -> Resource:
    """A use as the gate sees it for its review: the record it opened, who used it."""
    _seq, _at, user_id, _action, kind, resource_id, school_id, district = row[:8]
    return Resource(kind=kind, id=resource_id, school_id=school_id, owner_id=user_id, district=district)


def _scope(app: Core, actor: Actor) -> tuple[Resource, str, tuple[Any, ...]]:
    """The uses this person reviews: a supervisor the district's, anyone else their
    school's (a principal; the gate refuses the rest); the resource and the filter."""
    if Role.SUPERVISOR in actor.roles:
        return Resource(kind="district", district=actor.district), "r.district = ?", (actor.district,)
    return app.resource("school", school_id=actor.school_id), "r.school_id = ?", (actor.school_id,)


def pending_review_count(app: Core, actor: Actor) -> int | None:
    """How many uses wait for this person's review (None: they review none). Asked of the
    rule, not recorded: a count, nothing of any record or reason (the start page shows it
    to those who review; the queue it leads to passes the gate)."""
    resource, where, params = _scope(app, actor)
    if not access.decide(actor, access.AUDIT_REVIEW, resource).allowed:
        return None
    row = app.db.fetchone(
        "SELECT COUNT(*) FROM {t}anxin_break_glass_reviews r WHERE r.state = 'pending' AND r.user_id <> ? AND " + where,
        (actor.staff_id, *params),
    )
    return int(row[0]) if row else 0


def review_queue(app: Core, actor: Actor) -> list[BreakGlassUse]:
    """The uses waiting for this person's review, oldest first, each with its reason in
    clear (the reviewer judges the reason). Through the gate (AUDIT_REVIEW, recorded):
    refused for anyone who reviews none."""
    resource, where, params = _scope(app, actor)
    app.authorize(actor, access.AUDIT_REVIEW, resource)
    rows = app.db.fetch(
        f"SELECT {_COLUMNS}, a.sealed FROM {{t}}anxin_break_glass_reviews r "
        "JOIN {t}anxin_audit a ON a.seq = r.access_seq "
        f"WHERE r.state = 'pending' AND r.user_id <> ? AND {where} ORDER BY r.access_seq LIMIT {QUEUE_LIMIT}",
        (actor.staff_id, *params),
    )
    schools = {sid: name for sid, name, _d in app.schools()}
    names: dict[str, str] = {}
    out = []
    for row in rows:
        if not access.decide(actor, access.AUDIT_REVIEW, _resource(row)).allowed:
            continue
        seq, at, user_id, action, kind, resource_id, school_id, _district, state, _by, _when, sealed = row
        if user_id not in names:
            names[user_id] = app.roster.staff_name(user_id)
        out.append(
            BreakGlassUse(
                seq=int(seq),
                at=datetime.fromisoformat(at),
                user_id=user_id,
                user=names[user_id],
                action=action,
                resource_kind=kind,
                resource_id=resource_id,
                school_id=school_id,
                school=schools.get(school_id or "", ""),
                reason=unseal_reason(app, sealed, at, user_id, action, resource_id) if sealed is not None else "",
                state=state,
            )
        )
    return out


def _use(app: Core, access_seq: int) -> tuple[Any, ...]:
    row = app.db.fetchone(
        f"SELECT {_COLUMNS} FROM {{t}}anxin_break_glass_reviews r WHERE r.access_seq = ?", (int(access_seq),)
    )
    if row is None:
        raise NotFound("找不到这次紧急查阅")
    return row


def _comment_label(access_seq: int) -> str:
    """What a review's sealed comment is bound to, besides its time, reviewer and record."""
    return f"{KIND}#{int(access_seq)}"


def review_break_glass(app: Core, actor: Actor, access_seq: int, verdict: str, comment: str = "") -> dict[str, Any]:
    """Mark one use justified or not, with a comment (sealed). The gate decides who may
    (AUDIT_REVIEW); a use already reviewed, or reviewed by someone else meanwhile, is
    refused (AlreadyReviewed) and nothing is written but the gate's decision. The review
    is an entry of the trail, written with the state change in one transaction."""
    from anxin.gate import deferred_access

    row = _use(app, access_seq)
    with app.gate.deferred_decisions(own=True):
        app.authorize(actor, access.AUDIT_REVIEW, _resource(row))
        if row[8] != PENDING:
            raise AlreadyReviewed()
        verdict, text = check_review(verdict, comment)
        seq, resource_id = int(row[0]), row[5]
        at = app.now().isoformat()
        sealed = seal_reason(app, text, at, actor.staff_id, _comment_label(seq), resource_id) if text else None
        entry: Row = (
            at,
            KIND,
            actor.staff_id,
            str(seq),
            canonical_json({"verdict": verdict}),
            hashlib.sha256(sealed).hexdigest() if sealed else "",
            sealed,
        )
        decisions = deferred_access.get()
        rows = list(decisions or ())
        with app.db.transaction() as c:
            # First the compare-and-set (it waits for a concurrent reviewer's row, then finds
            # it no longer pending), then the entries.
            c.execute(
                app.db.q(
                    "UPDATE {t}anxin_break_glass_reviews SET state = ?, reviewer_id = ?, reviewed_at = ? "
                    "WHERE access_seq = ? AND state = 'pending'"
                ),
                (verdict, actor.staff_id, at, seq),
            )
            if c.rowcount != 1:
                raise AlreadyReviewed()
            last = append(c, app.db, [*rows, entry])
            c.execute(
                app.db.q("UPDATE {t}anxin_break_glass_reviews SET review_seq = ? WHERE access_seq = ?"), (last, seq)
            )
        if decisions:
            del decisions[: len(rows)]  # recorded in this transaction
    return {"access_seq": seq, "state": verdict, "review_seq": last}


def review_states(app: Core, seqs: list[int]) -> dict[int, dict[str, Any]]:
    """The review state of each use (by its seq): 待复核, or the verdict, who gave it, when
    and the comment (in clear, 已删除 once the record is shredded). For the audit pages'
    break-glass list, which has passed the gate (AUDIT_READ)."""
    if not seqs:
        return {}
    rows = app.db.fetch_in(
        "SELECT r.access_seq, r.state, r.reviewer_id, r.reviewed_at, r.resource_id, a.at, a.sealed "
        "FROM {t}anxin_break_glass_reviews r LEFT JOIN {t}anxin_audit a ON a.seq = r.review_seq "
        "WHERE r.access_seq IN ({marks})",
        [int(s) for s in seqs],
    )
    names: dict[str, str] = {}
    out: dict[int, dict[str, Any]] = {}
    for seq, state, reviewer_id, reviewed_at, resource_id, at, sealed in rows:
        if reviewer_id and reviewer_id not in names:
            names[reviewer_id] = app.roster.staff_name(reviewer_id)
        comment = ""
        if sealed is not None:
            comment = unseal_reason(app, sealed, at, reviewer_id, _comment_label(seq), resource_id)
        out[int(seq)] = {
            "state": state,
            "state_label": REVIEW_STATES.get(state, state),
            "reviewer_id": reviewer_id,
            "reviewer": names.get(reviewer_id or "", ""),
            "reviewed_at": datetime.fromisoformat(reviewed_at) if reviewed_at else None,
            "comment": comment,
            "verdict": VERDICTS.get(state),
        }
    return out
