"""The report's queries: `periodic_report` passes the gate (STATS_READ), catches the view
up and sums the view's counts for a period, in one statement, cached while the view's
rows cannot have changed.

"Overdue" is computed at query time, as of the period end (or today, if the period has
not ended yet): from due dates, and for pairings from their overdue runs (which answer
for every day at once, so no day is stored as "overdue" more than another). Shredding a
stream removes what the report counted of it (its events can no longer be read, so a
rebuild could not count it either): reports count what is still on record."""

from __future__ import annotations

import time
from collections import Counter
from contextlib import nullcontext
from datetime import date
from typing import Any

from sqlalchemy import (
    Connection,
    Integer,
    String,
    Table,
    and_,
    case,
    func,
    literal,
    or_,
    select,
    text,
    union_all,
)

from domain import access
from domain.access import Resource
from domain.common import Actor, InvalidInput, NotFound
from projections.base import tracking
from projections.report.model import Report, SchoolReport, instrument_key, metrics_for
from projections.report.tables import (
    VIEW_NAME,
    case_spans,
    cases,
    check_in_days,
    dues,
    fact_counts,
    file_span_counts,
    overdue_counts,
    pairing_span_counts,
    screened_days,
    screening_days,
    until,
)


def periodic_report(
    app: Any,
    actor: Actor,
    *,
    date_from: date,
    date_to: date,
    school_id: str | None = None,
    today: date | None = None,
) -> Report:
    """The periodic report (定期报送) for [date_from, date_to], both days included.

    With `school_id`: that school (its principal, or a supervisor of its district).
    Without: the actor's own school if they belong to one, else (a supervisor) every
    school of their district, with the district total. Decided by the gate (STATS_READ);
    the decision and the trail's `report` entry are recorded together (one transaction)."""
    together = getattr(app, "decisions_together", None)
    with together() if together is not None else nullcontext():
        return _periodic_report(app, actor, date_from, date_to, school_id, today)


def _periodic_report(
    app: Any, actor: Actor, date_from: date, date_to: date, school_id: str | None, today: date | None
) -> Report:
    if school_id is None and actor.school_id is not None:
        school_id = actor.school_id
    if school_id is not None:
        decision_resource = app.resource("school", None, school_id)
    else:
        decision_resource = Resource(kind="district", district=actor.district)
    app.authorize(actor, access.STATS_READ, decision_resource)
    if not isinstance(date_from, date) or not isinstance(date_to, date) or date_from > date_to:
        raise InvalidInput(reason="报告期的起始日期不能晚于截止日期")
    district = decision_resource.district
    known = {sid: (name, d) for sid, name, d in app.schools()}
    if school_id is not None:
        if school_id not in known:
            raise NotFound()
        chosen = [(school_id, known[school_id][0])]
    else:
        chosen = sorted(((sid, name) for sid, (name, d) in known.items() if d == district), key=lambda s: s[1])
    if hasattr(app, "record_security_event"):
        app.record_security_event(
            "report",
            actor.staff_id,
            school_id or f"district:{district}",
            {"from": date_from.isoformat(), "to": date_to.isoformat(), "schools": len(chosen)},
        )
    app.views.catch_up()
    today = today or app.now().date()
    as_of = min(date_to, today)
    ids = [sid for sid, _ in chosen]
    instruments = list(getattr(app, "instruments", {}) or {})
    with app.views.engine.connect() as conn:
        counts, seen_instruments = _cached_count(
            app, conn, ids, date_from.toordinal(), date_to.toordinal(), as_of.toordinal()
        )
    for inst in sorted(seen_instruments):
        if inst not in instruments:
            instruments.append(inst)
    metrics = metrics_for(instruments)
    metric_ids = [m.id for m in metrics]
    rows = [
        SchoolReport(sid, name, dict(zip(metric_ids, map(counts[sid].__getitem__, metric_ids), strict=True)))
        for sid, name in chosen
    ]
    summed: Counter[str] = Counter()
    for sid in ids:
        summed.update(counts[sid])
    total = SchoolReport(
        "",
        "全区合计" if school_id is None else "合计",
        dict(zip(metric_ids, map(summed.__getitem__, metric_ids), strict=True)),
    )
    return Report(
        date_from=date_from,
        date_to=date_to,
        as_of=as_of,
        generated_at=app.now(),
        scope="school" if school_id is not None else "district",
        district=district,
        metrics=metrics,
        schools=rows,
        total=total,
    )


_STATE = select(
    select(tracking.c.position).where(tracking.c.view == VIEW_NAME).scalar_subquery(),
    select(func.count()).select_from(text("anxin_keys")).where(text("wrapped IS NULL")).scalar_subquery(),
)
_CACHE_SIZE = 32
_SHRED_SETTLE_SECONDS = 1.0


def _cached_count(
    app: Any, conn: Connection, ids: list[str], start: int, end: int, as_of: int
) -> tuple[dict[str, Counter[str]], set[str]]:
    """`_count`, kept per application for as long as the view's rows cannot have changed.

    The counts are a function of the arguments and of the view's rows, which change only
    when the view moves on (its position) or a stream is shredded (its rows are deleted,
    and its key nulled: the number of shredded keys only grows). Both are read before
    the counts, so an entry is never older than its key; another process's writes move
    the same position and key, so they are seen at once. Counts only (no personal data).

    The settle: a shred nulls the key first and deletes the view's rows just after, in
    another transaction (perhaps in another process). Counts read in between still hold
    the rows, under the new number of shredded keys; kept, they would be served until the
    view moves on. So when the number is seen to change, nothing is kept for
    `_SHRED_SETTLE_SECONDS`. When the cache starts, the shreds it sees were not seen
    happening, and the last of them may be in that window too (a process started during
    another's shred): it settles as well, unless it sees none at all. With no key
    shredded, no shred can be half done (the key is nulled first), so the counts are kept
    at once; a shred that starts after that changes the number, and the next call sees it."""
    if not hasattr(app, "db"):
        return _count(conn, ids, start, end, as_of)
    # The view's position and the number of shredded keys, in one round trip (the keys
    # live in the same database as the views, on PostgreSQL in the same schema).
    row = conn.execute(_STATE).first()
    pos, shredded = (row[0], row[1] or 0) if row else (None, 0)
    now = time.monotonic()
    state = app.__dict__.get("_report_counts")
    if state is None:
        # Nothing shredded yet: nothing can be half shredded, keep at once (see above).
        since = float("-inf") if shredded == 0 else now
        state = app.__dict__.setdefault("_report_counts", {"shredded": shredded, "since": since, "cache": {}})
    if state["shredded"] != shredded:
        # A stream was shredded since: its key is nulled first, its view rows deleted just
        # after. Counts read meanwhile could still hold those rows, so none is kept a while.
        state.update(shredded=shredded, since=now, cache={})
    cache = state["cache"]
    key = (tuple(ids), start, end, as_of, pos)
    found = cache.get(key)
    if found is None:
        found = _count(conn, ids, start, end, as_of)
        if now - state["since"] >= _SHRED_SETTLE_SECONDS:
            if len(cache) >= _CACHE_SIZE:
                cache.pop(next(iter(cache)))
            cache[key] = found
    counts, instruments = found
    # Callers get their own copies (a Counter per school), never the cached ones.
    return {sid: Counter(c) for sid, c in counts.items()}, set(instruments)


def forget_cached_counts(app: Any) -> None:
    """Forget the counts kept for this application: the next report counts anew (a miss)."""
    app.__dict__.pop("_report_counts", None)


def _active_at(table: Table, day: int) -> Any:
    """from_day <= day < to_day (NULL: still current), as the span indexes read it."""
    return and_(until(table) > day, table.c.from_day <= day)


def _part(tag: str, table: Table, ids: list[str], codes: tuple[Any, ...], counts: tuple[Any, ...], *where: Any) -> Any:
    """One part of `_count_statement`: up to three `counts` per school and `codes` (up to
    two), over the rows of the schools `ids` that meet `where`. Every part has the same
    columns: (part, school, two codes, three counts)."""
    a, b = (*codes, None, None)[:2]
    n1, n2, n3 = (*counts, None, None, None)[:3]
    return (
        select(
            literal(tag, String).label("part"),
            table.c.school_id.label("school"),
            (a if a is not None else literal("", String)).label("a"),
            (b if b is not None else literal("", String)).label("b"),
            (n1 if n1 is not None else literal(0, Integer)).label("n1"),
            (n2 if n2 is not None else literal(0, Integer)).label("n2"),
            (n3 if n3 is not None else literal(0, Integer)).label("n3"),
        )
        .where(table.c.school_id.in_(ids), *where)
        .group_by(table.c.school_id, *codes)
    )


def _count_statement(ids: list[str], start: int, end: int, as_of: int) -> Any:
    """Every count of the report in one statement (one round trip): the parts, each a
    grouped count or sum over an index or a small aggregate table, UNION ALL."""
    # Dated facts in the period.
    fc = fact_counts
    facts = _part("fact", fc, ids, (fc.c.kind, fc.c.detail), (func.sum(fc.c.n),), fc.c.day.between(start, end))
    # Cases reported in the period, by their forms.
    reported = _part("cases", cases, ids, (cases.c.forms,), (func.count(),), cases.c.reported_day.between(start, end))
    # Cases at period end: status, and what was overdue that day.
    s = case_spans
    cases_end = _part(
        "case_end",
        s,
        ids,
        (s.c.status,),
        (
            func.count(),
            func.sum(case((and_(s.c.investigation_due.is_not(None), s.c.investigation_due < as_of), 1), else_=0)),
            func.sum(case((and_(s.c.follow_up_due.is_not(None), s.c.follow_up_due < as_of), 1), else_=0)),
        ),
        _active_at(s, as_of),
    )
    # Support files open at period end, by risk level, and reviews overdue that day.
    f = file_span_counts
    files_end = _part(
        "file_end",
        f,
        ids,
        (f.c.risk_level,),
        (func.sum(f.c.n), func.sum(case((and_(f.c.review_due > 0, f.c.review_due < as_of), f.c.n), else_=0))),
        f.c.status == "open",
        f.c.from_day <= as_of,
        f.c.to_day > as_of,
    )
    # Screenings done in the period, by instrument (summed per day).
    sd = screening_days
    screened = _part(
        "screenings",
        sd,
        ids,
        (sd.c.instrument,),
        (func.sum(sd.c.n), func.sum(sd.c.flagged), func.sum(sd.c.crisis)),
        sd.c.day.between(start, end),
    )
    parts = [facts, reported, cases_end, files_end, screened]
    # Students screened in the period: each one's first day in it (see `screened_days`).
    sf = screened_days
    parts.append(
        _part("screened", sf, ids, (), (func.sum(sf.c.n),), sf.c.day.between(start, end), sf.c.prev_day < start)
    )
    # Check-ins held in the period (summed per day).
    cd = check_in_days
    parts.append(_part("check_ins", cd, ids, (), (func.sum(cd.c.n),), cd.c.day.between(start, end)))
    # Check-ins due in the period (up to today, if it has not ended): for each span of
    # a pairing's cadence, the days it overlaps the period divided by the cadence,
    # rounded down; spans alike counted together.
    p = pairing_span_counts
    due_end = min(end, as_of)
    if due_end >= start:
        span_end = case((p.c.to_day < due_end + 1, p.c.to_day), else_=due_end + 1)
        span_start = case((p.c.from_day > start, p.c.from_day), else_=start)
        parts.append(
            _part(
                "due",
                p,
                ids,
                (),
                (func.sum(p.c.n * ((span_end - span_start) // p.c.cadence)),),
                p.c.from_day <= due_end,
                p.c.to_day > start,
                p.c.to_day > p.c.from_day,
            )
        )
    # Pairings active at period end.
    parts.append(_part("active", p, ids, (), (func.sum(p.c.n),), p.c.from_day <= as_of, p.c.to_day > as_of))
    # Pairings overdue at period end (see `overdue_runs`).
    od = overdue_counts
    parts.append(_part("overdue", od, ids, (), (func.sum(od.c.n),), od.c.from_day <= as_of, od.c.to_day > as_of))
    # What cases owe at period end (reports to the authorities, county reviews): pending, overdue.
    du = dues
    parts.append(
        _part(
            "dues",
            du,
            ids,
            (du.c.kind,),
            (func.count(), func.sum(case((du.c.due_day < as_of, 1), else_=0))),
            du.c.from_day <= as_of,
            or_(du.c.done_day.is_(None), du.c.done_day > as_of),
        )
    )
    return union_all(*parts)


# Facts counted in all and by their detail (the result, the risk level).
_FACT_BY_DETAIL = {"case.determined": "determinations", "file.opened": "files_opened", "file.closed": "files_closed"}
_FACT_NAMES = {
    "case.mandatory_report": "mandatory_reports",
    "case.appeal_lodged": "appeals_lodged",
    "case.closed": "cases_closed",
    "case.reopened": "cases_reopened",
    "file.reopened": "files_reopened",
    "file.risk_raised": "files_risk_raised",
    "file.risk_lowered": "files_risk_lowered",
    "file.reviewed": "file_reviews",
    "file.crisis": "crisis_interventions",
    "case.review_applied": "county_reviews_applied",
}
# Remedies counted in all and by their detail (the authority, the kind, the outcome).
_FACT_BY_DETAIL_REMEDIES = {
    "case.authority_report": "authority_reports",
    "case.disposition": "dispositions",
    "case.review_decided": "county_reviews_decided",
}
_PER_SCHOOL = {
    "screened": "students_screened",
    "check_ins": "check_ins_done",
    "due": "check_ins_due",
    "active": "pairings_active_end",
    "overdue": "check_ins_overdue_end",
}


def _count(
    conn: Connection, ids: list[str], start: int, end: int, as_of: int
) -> tuple[dict[str, Counter[str]], set[str]]:
    out: dict[str, Counter[str]] = {sid: Counter() for sid in ids}
    instruments: set[str] = set()
    if not ids:
        return out, instruments
    for part, school, a, b, n1, n2, n3 in conn.execute(_count_statement(ids, start, end, as_of)):
        c = out[school]
        n1, n2, n3 = int(n1 or 0), int(n2 or 0), int(n3 or 0)
        if part == "fact":
            if a in _FACT_BY_DETAIL:
                name = _FACT_BY_DETAIL[a]
                c[name] += n1
                c[f"{name}_{b}"] += n1
            elif a in _FACT_NAMES:
                c[_FACT_NAMES[a]] += n1
            elif a in _FACT_BY_DETAIL_REMEDIES:
                name = _FACT_BY_DETAIL_REMEDIES[a]
                c[name] += n1
                c[f"{name}_{b}"] += n1
        elif part == "cases":  # a case may take several forms
            c["cases_reported"] += n1
            for form in a.split(","):
                if form:
                    c[f"cases_form_{form}"] += n1
        elif part == "case_end":
            c[f"cases_end_{a}"] += n1
            if a != "closed":
                c["cases_open_end"] += n1
            c["investigations_overdue_end"] += n2
            c["follow_ups_overdue_end"] += n3
        elif part == "file_end":
            c["files_open_end"] += n1
            c[f"files_end_{a}"] += n1
            c["reviews_overdue_end"] += n2
        elif part == "screenings":
            key = instrument_key(a)
            instruments.add(a)
            c["screenings"] += n1
            c[f"screenings_{key}"] += n1
            c["screenings_flagged"] += n2
            c[f"screenings_flagged_{key}"] += n2
            c["screenings_crisis"] += n3
        elif part == "dues":  # a = authority_report | county_review
            c[f"{a}s_pending_end"] += n1
            c[f"{a}s_overdue_end"] += n2
        else:
            c[_PER_SCHOOL[part]] += n1
    for c in out.values():
        c["overdue_end"] = (
            c["investigations_overdue_end"]
            + c["follow_ups_overdue_end"]
            + c["reviews_overdue_end"]
            + c["check_ins_overdue_end"]
            + c["authority_reports_overdue_end"]
            + c["county_reviews_overdue_end"]
        )
    return out, instruments
