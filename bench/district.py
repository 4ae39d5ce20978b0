"""`make bench`, district part (`python -m bench.district`, run by bench.core after its
own table): the read side at district scale.

Generates a district (by default 50 schools, 100,000 students, about 1,000,000
events) straight from the domain aggregates and the application's own commands,
saved in batches, then measures: the rebuild rate of every view (decryption
included), the `audit verify` rate, and p50/p95 of each view query. On SQLite, and
on PostgreSQL beside it when available (a fresh schema, dropped after).

ANXIN_BENCH_SCALE (a float; 1.0 = the full district; e.g. 0.05 for a quick run)
scales schools, students and events together. The default is DEFAULT_SCALE (0.5):
the full district does not fit the ~20-minute budget with PostgreSQL beside SQLite.
ANXIN_BENCH_DISTRICT_STORES=sqlite (or postgres) runs one store only. Prints a table and writes
bench-results/district.json.
"""

from __future__ import annotations

import json
import os
import random
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

from anxin.demo import CHECK_IN_NOTES, FILE_PLANS, DemoSchool, bullying_cases
from bench.common import Clock, audit, decrypting_read, open_store, percentile, pg_url
from domain.common import Actor, DomainError, Role
from domain.pairing import Pairing
from domain.roster import Student

# The full district (scale 1.0) takes about half an hour with PostgreSQL beside SQLite
# on the 2-core reference machine, almost all of it the PostgreSQL view rebuild, so the
# default is the largest scale that keeps `make bench` under ~20 minutes.
DEFAULT_SCALE = 0.5
SCALE = float(os.environ.get("ANXIN_BENCH_SCALE", str(DEFAULT_SCALE)))
# Which stores to run ("sqlite", "postgres"; default: SQLite, and PostgreSQL when it answers).
STORES = [k for k in os.environ.get("ANXIN_BENCH_DISTRICT_STORES", "").split(",") if k]
FULL_SCHOOLS = 50
FULL_STUDENTS = 100_000
PER_CLASS = 40
PAIRED_SHARE = 0.4  # of students paired with their class teacher
CHECK_INS = 19  # per pairing over the term (with enrolment, screening: ~1M events at full scale)
BATCH = 2000  # aggregates per save
QUERY_CALLS = 50
GRADES = ["七年级", "八年级", "九年级"]
ADMIN = Actor("bench-admin", frozenset({Role.ADMINISTRATOR}))
START = datetime(2026, 3, 1, 8, 0).astimezone()

TARGETS = {"rebuild_events_per_s": 50_000, "verify_entries_per_s": 200_000, "query_p95_ms": 50}


def _batched(items: list[Any], n: int) -> Any:
    for i in range(0, len(items), n):
        yield items[i : i + n]


def generate(
    app: Any, clock: Clock, scale: float, log: Callable[[str], None]
) -> tuple[list[DemoSchool], Actor, dict[str, Any]]:
    """Build the district. Views are not kept up to date while it is written (they are
    rebuilt afterwards, which is what is measured)."""
    rng = random.Random(2026)
    n_schools = max(1, round(FULL_SCHOOLS * scale))
    per_school = max(PER_CLASS * 3, round(FULL_STUDENTS * scale / n_schools))
    clock.now = START
    app.after_save = lambda written: None  # no view catch-up during generation
    counts = {
        "schools": n_schools,
        "students": 0,
        "pairings": 0,
        "check_ins": 0,
        "screenings": 0,
        "cases": 0,
        "files": 0,
    }
    schools: list[DemoSchool] = []
    try:
        supervisor = app.gate.actor(
            app.roster.add_staff(
                ADMIN, username="bench-supervisor", name="督导", school_id=None, roles=["supervisor"], district="安心区"
            )
        )
        for s in range(n_schools):
            sid = app.roster.add_school(ADMIN, f"安心区第{s + 1}中学", "安心区")
            n_classes = max(3, -(-per_school // PER_CLASS))
            classes = [f"{GRADES[c % 3]}{c // 3 + 1}班" for c in range(n_classes)]
            ds = DemoSchool(sid, f"安心区第{s + 1}中学", classes)

            def staff(username: str, roles: list[str], classes_: list[str] | None = None, sid: str = sid) -> Actor:
                return app.gate.actor(
                    app.roster.add_staff(
                        ADMIN, username=username, name=f"教工{username}", school_id=sid, roles=roles, classes=classes_
                    )
                )

            ds.principal = staff(f"p{s}", ["principal"])
            ds.safety = staff(f"sl{s}", ["safety_lead"])
            ds.counselors = [staff(f"c{s}-{k}", ["counselor"]) for k in range(2)]
            for c, cls in enumerate(classes):
                ds.teachers[cls] = staff(f"t{s}-{c}", ["class_teacher"], [cls])
            # Enrolment: aggregates built directly, saved in batches.
            students: list[Student] = []
            numbers: list[str] = []
            for i in range(per_school):
                cls = classes[i % n_classes]
                no = f"26{s:03d}{i:05d}"
                students.append(
                    Student.enrol(
                        id=app.roster.student_id_for(sid, no),
                        school_id=sid,
                        student_no=no,
                        name=f"学生{s}-{i}",
                        gender="男" if i % 2 else "女",
                        birth_date=date(2013 - GRADES.index(cls[:3]), 1 + i % 12, 1 + i % 28),
                        grade=cls[:3],
                        class_name=cls,
                        guardians=[{"name": f"家长{s}-{i}", "phone": "13800000000"}],
                        tags=[],
                        actor=ADMIN.staff_id,
                        at=clock.now,
                    )
                )
                numbers.append(no)
                ds.students.setdefault(cls, []).append(str(students[-1].id))
            for chunk in _batched(students, BATCH):
                app.save_many(chunk)
            counts["students"] += len(students)
            # Pairings with a term of check-ins, built on the aggregate.
            pairings: list[Pairing] = []
            for cls in classes:
                teacher = ds.teachers[cls]
                pupils = ds.students[cls]
                for student_id in pupils[: round(len(pupils) * PAIRED_SHARE)]:
                    p = Pairing.pair(
                        id=uuid4(),
                        school_id=sid,
                        staff_id=teacher.staff_id,
                        student_id=student_id,
                        cadence_days=app.policy.check_in_cadence_days,
                        actor=teacher.staff_id,
                        at=START,
                    )
                    n_ci = CHECK_INS if rng.random() < 0.8 else rng.randint(CHECK_INS // 2, CHECK_INS)
                    for k in range(n_ci):
                        held = START + timedelta(days=9 * (k + 1) + rng.randint(0, 2))
                        concern = rng.random() < 0.02
                        p.record_check_in(
                            check_in_id=uuid4().hex,
                            held_on=held.date(),
                            notes={d: rng.choice(v) for d, v in CHECK_IN_NOTES.items()},
                            concern=concern,
                            concern_note="近期常独自一人" if concern else "",
                            actor=teacher.staff_id,
                            at=held,
                        )
                        counts["check_ins"] += 1
                    pairings.append(p)
                    if len(pairings) >= BATCH:
                        app.save_many(pairings)
                        counts["pairings"] += len(pairings)
                        pairings = []
            if pairings:
                app.save_many(pairings)
                counts["pairings"] += len(pairings)
            end = START + timedelta(days=9 * (CHECK_INS + 1) + 5)
            # This year's screening of every student, through the import command.
            clock.now = end - timedelta(days=10)
            lines = ["student_no,instrument,date," + ",".join(f"item{i}" for i in range(1, 10))]
            for i, no in enumerate(numbers):
                items = [rng.choice([0, 0, 0, 1, 1, 2]) for _ in range(9)]
                if i % 40 == 0:
                    items = [rng.choice([2, 3]) for _ in range(8)] + [0]
                else:
                    items[8] = 0
                lines.append(f"{no},PHQ-9,{clock.now.date().isoformat()}," + ",".join(map(str, items)))
            app.screenings.import_screenings(ds.counselors[0], sid, "\n".join(lines) + "\n")
            counts["screenings"] += len(numbers)
            # Bullying cases in every state, and support files, through the commands.
            clock.now = end
            counts["cases"] += bullying_cases(app, rng, ds, clock, end)["欺凌案件"]
            counts["files"] += _files(app, rng, ds, clock, end)
            clock.now = end
            schools.append(ds)
            log(f"  school {s + 1}/{n_schools}: {app.recorder.max_notification_id():,} events")
    finally:
        del app.after_save
    app.analyze()  # after a bulk load, as its loader would (PostgreSQL's statistics)
    counts["events"] = app.recorder.max_notification_id() or 0
    return schools, supervisor, counts


def _files(app: Any, rng: random.Random, ds: DemoSchool, clock: Clock, end: datetime) -> int:
    made = 0
    pupils = [sid for cls in ds.classes for sid in ds.students[cls][30:32]]
    for n, (category, level, reason) in enumerate(FILE_PLANS * 2):
        counselor = ds.counselors[n % len(ds.counselors)]
        clock.now = end - timedelta(days=70 - n * 5)
        try:
            fid = app.support.open_support_file(
                counselor, pupils[n], category=category, risk_level=level, reason=reason
            )
        except DomainError:
            continue
        made += 1
        app.support.draw_up_plan(
            counselor, fid, goals=["情绪稳定"], measures=[{"text": "每两周一次个体辅导", "by": "心理老师"}]
        )
        clock.now += timedelta(days=3)
        app.support.record_session(counselor, fid, held_on=clock.now.date(), summary="建立关系，了解近期困扰")
        if n % 4 == 0:
            clock.now += timedelta(days=20)
            app.support.record_review(
                counselor, fid, reviewed_on=clock.now.date(), notes="情绪明显好转", outcome="continue"
            )
    return made


_READ_FILES = """import sys
for name in sys.argv[1:]:
    with open(name, "rb", buffering=0) as f:
        while f.read(8 << 20):
            pass
"""


def warm_cache(app: Any) -> float:
    """Read the store once, untimed, so that what is measured next runs on pages in the OS
    page cache, as on a server that has been running a while. (On the reference machine a
    freshly written district is not in that cache: its first reads came from the disk at
    ~150 MB/s, and made the first query of each school and the rebuild and verify figures
    mostly a measure of the disk.) SQLite: the database file and its WAL, end to end, read
    by a child process: a file descriptor of the database opened and closed in this process
    would drop every POSIX lock SQLite holds on it here, and the next process to close its
    last connection (the verification's second half) would then take itself for the last
    one and delete the WAL and shared memory still in use here (seen: SQLITE_IOERR_SHORT_READ
    at the next connection opened). PostgreSQL: every table of the store's schema, scanned
    once."""
    t0 = time.perf_counter()
    path = app.db.sqlite_path()
    if path is not None:
        names = [name for name in (path, path + "-wal") if os.path.exists(name)]
        subprocess.run([sys.executable, "-c", _READ_FILES, *names], check=True)
    else:
        tables = [
            r[0]
            for r in app.db.fetch(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = ?",
                (app.config.schema or "public",),
            )
        ]
        for t in tables:
            app.db.fetch("SELECT count(*) FROM {t}" + t)
    return time.perf_counter() - t0


def _sample(fn: Callable[[int], Any], calls: int = QUERY_CALLS) -> tuple[float, float]:
    fn(0)  # warm
    lat = []
    for i in range(calls):
        t0 = time.perf_counter()
        fn(i)
        lat.append((time.perf_counter() - t0) * 1000)
    return percentile(lat, 50), percentile(lat, 95)


def measure(app: Any, schools: list[DemoSchool], supervisor: Actor, log: Callable[[str], None]) -> dict[str, Any]:
    from projections.case_board import case_board
    from projections.pairing_board import pairing_board
    from projections.report import forget_cached_counts, periodic_report
    from projections.support_register import register
    from projections.timeline import timeline
    from projections.work_queue import work_queue

    out: dict[str, Any] = {}
    secs = warm_cache(app)
    out["warm_cache_seconds"] = secs
    log(f"  store read once into the OS page cache in {secs:.1f} s; rebuilding every view …")
    app.keystore.forget_all()  # cold keys: decryption included
    t0 = time.perf_counter()
    n = app.views.rebuild()
    secs = time.perf_counter() - t0
    out["rebuild_events"] = n
    out["rebuild_seconds"] = secs
    out["rebuild_events_per_s"] = n / secs
    log(f"  rebuilt {n:,} events in {secs:.1f} s; verifying the audit trail …")
    report = audit.verify(app)
    out["verify_ok"] = report.ok
    out["verify_entries"] = report.entries
    out["verify_events"] = report.events
    out["verify_seconds"] = report.seconds
    out["verify_entries_per_s"] = report.entries / report.seconds if report.seconds else 0.0
    if not report.ok:
        log("  audit verify: " + report.summary())

    rng = random.Random(7)
    teachers = [t for ds in schools for t in ds.teachers.values()]
    paired = [(ds, sid) for ds in schools for cls in ds.classes for sid in ds.students[cls][:3]]
    principals = [ds.principal for ds, _ in paired if ds.principal is not None]
    heads = [ds.principal for ds in schools if ds.principal is not None]
    assert len(principals) == len(paired) and len(heads) == len(schools)
    today = app.now().date()
    d_from, d_to = today - timedelta(days=200), today

    def random_timeline() -> Any:
        k = rng.randrange(len(paired))
        return timeline(app, principals[k], paired[k][1])

    def report_afresh(actor: Actor) -> Any:
        forget_cached_counts(app)
        return periodic_report(app, actor, date_from=d_from, date_to=d_to)

    queries: dict[str, Callable[[int], Any]] = {
        "work_queue (class teacher)": lambda i: work_queue(app, teachers[rng.randrange(len(teachers))]),
        "work_queue (counselor)": lambda i: work_queue(app, schools[i % len(schools)].counselors[0]),
        "pairing_board (teacher)": lambda i: pairing_board(app, teachers[rng.randrange(len(teachers))]),
        "pairing_board (school)": lambda i: pairing_board(
            app, heads[i % len(schools)], school_id=schools[i % len(schools)].id
        ),
        "support_register (school)": lambda i: register(
            app, schools[i % len(schools)].counselors[0], schools[i % len(schools)].id
        ),
        "case_board (school)": lambda i: case_board(app, heads[i % len(schools)], schools[i % len(schools)].id),
        "timeline (student)": lambda i: random_timeline(),
        # The report keeps its counts per view position, but in a live district the
        # position moves with every check-in: nearly every report is a miss. A miss: the
        # cache dropped before each call (`forget_cached_counts`, so every call counts
        # afresh); a hit: the same report again, the view unchanged.
        "periodic_report (school, miss: cache dropped)": lambda i: report_afresh(heads[i % len(schools)]),
        "periodic_report (school, hit: same report)": lambda i: periodic_report(
            app, heads[0], date_from=d_from, date_to=d_to
        ),
        "periodic_report (district, miss: cache dropped)": lambda i: report_afresh(supervisor),
        "periodic_report (district, hit: same report)": lambda i: periodic_report(
            app, supervisor, date_from=d_from, date_to=d_to
        ),
    }
    out["queries"] = {}
    for name, fn in queries.items():
        calls = 20 if "district" in name else QUERY_CALLS
        p50, p95 = _sample(fn, calls)
        out["queries"][name] = {"p50_ms": p50, "p95_ms": p95, "calls": calls}
        log(f"  {name}: p50 {p50:.1f} ms, p95 {p95:.1f} ms")
    out.update(ceilings(app, out["rebuild_events"], log))
    return out


def ceilings(app: Any, events: int, log: Callable[[str], None]) -> dict[str, Any]:
    """What bounds the rebuild, each part measured alone: the decrypting read of the whole
    log (keys cold), and (SQLite) SQLite's own work to write the rows the rebuild made:
    every view table's rows, read out before the clock starts, inserted into the same
    empty table (its indexes included) in a database of their own, a transaction per
    table, in the order the store holds them. A rebuild does both and folds every event
    besides, so it cannot beat the two one after the other."""
    from projections.base import metadata

    out: dict[str, Any] = {}
    n, secs = decrypting_read(app)
    out["decrypt_log_events_per_s"] = n / secs
    log(f"  decrypting read of the log alone: {out['decrypt_log_events_per_s']:,.0f} events/s")
    path = app.db.sqlite_path()
    if path is None:
        return out
    names = [t.name for t in metadata.sorted_tables]
    src = sqlite3.connect(path, timeout=30)  # only read from
    with tempfile.TemporaryDirectory() as d:
        dst = sqlite3.connect(Path(d) / "rows.db", isolation_level=None)
        dst.execute("PRAGMA journal_mode=WAL")
        secs = 0.0
        rows_written = 0
        try:
            for name in names:
                for (ddl,) in src.execute(
                    "SELECT sql FROM sqlite_master WHERE tbl_name = ? AND sql IS NOT NULL ORDER BY type DESC", (name,)
                ).fetchall():
                    dst.execute(ddl)
                rows = src.execute(f'SELECT * FROM "{name}"').fetchall()
                if not rows:
                    continue
                t0 = time.perf_counter()
                dst.execute("BEGIN")
                dst.executemany(f'INSERT INTO "{name}" VALUES ({",".join("?" * len(rows[0]))})', rows)
                dst.execute("COMMIT")
                secs += time.perf_counter() - t0
                rows_written += len(rows)
        finally:
            dst.close()
            src.close()
    out["view_rows"] = rows_written
    out["view_rows_sqlite_ceiling_events_per_s"] = events / secs
    out["rebuild_ceiling_events_per_s"] = 1 / (1 / out["decrypt_log_events_per_s"] + secs / events)
    log(
        f"  SQLite alone writing the views' {rows_written:,} rows: {secs:.1f} s "
        f"({out['view_rows_sqlite_ceiling_events_per_s']:,.0f} events/s)"
    )
    return out


def bench_store(kind: str, scale: float) -> dict[str, Any]:
    def log(msg: str) -> None:
        print(f"[{kind}] {msg}", file=sys.stderr, flush=True)

    clock = Clock()
    with tempfile.TemporaryDirectory() as d:
        app, close = open_store(kind, Path(d), clock)
        try:
            log(f"generating the district at scale {scale} …")
            t0 = time.perf_counter()
            schools, supervisor, counts = generate(app, clock, scale, log)
            gen = time.perf_counter() - t0
            log(f"generated {counts['events']:,} events in {gen:.0f} s")
            out: dict[str, Any] = {
                "district": counts,
                "generation_seconds": gen,
                "generation_events_per_s": counts["events"] / gen,
            }
            out.update(measure(app, schools, supervisor, log))
        finally:
            close()
    return out


def main() -> int:
    scale = SCALE
    kinds = STORES or ["sqlite"] + (["postgres"] if pg_url() else [])
    if scale == DEFAULT_SCALE and "ANXIN_BENCH_SCALE" not in os.environ:
        print(
            f"district bench at the default scale {DEFAULT_SCALE} (the full district, ANXIN_BENCH_SCALE=1, "
            "takes ~30 min with PostgreSQL on 2 cores)",
            file=sys.stderr,
        )
    results: dict[str, Any] = {"scale": scale, "targets": TARGETS, "stores": {}}
    for kind in kinds:
        results["stores"][kind] = bench_store(kind, scale)
    print_table(results, kinds)
    out = Path("bench-results")
    out.mkdir(exist_ok=True)
    (out / "district.json").write_text(json.dumps(results, indent=2, ensure_ascii=False))
    print(f"written {out / 'district.json'}")
    return 0


def print_table(results: dict[str, Any], kinds: list[str]) -> None:
    st = results["stores"]
    first = st[kinds[0]]["district"]
    note = "" if results["scale"] >= 1 else f" (default {DEFAULT_SCALE}; full district = ANXIN_BENCH_SCALE=1)"
    print(
        f"\nDistrict scale {results['scale']}{note}: {first['schools']} schools, {first['students']:,} students, "
        f"{first['events']:,} events ({first['pairings']:,} pairings, {first['check_ins']:,} check-ins, "
        f"{first['screenings']:,} screenings, {first['cases']} cases, {first['files']} files)"
    )
    w = 60
    print(f"| {'measure':<{w}} | " + " | ".join(f"{k:>12}" for k in kinds) + f" | {'target':>14} |")
    print("|" + "-" * (w + 2) + "|" + "|".join("-" * 14 for _ in kinds) + "|" + "-" * 16 + "|")

    def row(label: str, values: list[str], target: str = "") -> None:
        print(f"| {label:<{w}} | " + " | ".join(f"{v:>12}" for v in values) + f" | {target:>14} |")

    row("events", [f"{st[k]['district']['events']:,}" for k in kinds])
    row("generation (s)", [f"{st[k]['generation_seconds']:,.0f}" for k in kinds])
    row(
        "store read once into the page cache, untimed below (s)",
        [f"{st[k].get('warm_cache_seconds', 0):,.1f}" for k in kinds],
    )
    row("rebuild all views (events/s)", [f"{st[k]['rebuild_events_per_s']:,.0f}" for k in kinds], "≥ 50,000")
    row(
        "  ceiling: decrypting read of the whole log alone (events/s)",
        [f"{st[k]['decrypt_log_events_per_s']:,.0f}" for k in kinds],
    )
    row(
        "  ceiling: SQLite alone writing the views' rows (events/s)",
        [f"{st[k]['view_rows_sqlite_ceiling_events_per_s']:,.0f}" if "view_rows" in st[k] else "n/a" for k in kinds],
    )
    row(
        "  ceiling: the two above, one after the other (events/s)",
        [f"{st[k]['rebuild_ceiling_events_per_s']:,.0f}" if "view_rows" in st[k] else "n/a" for k in kinds],
    )
    row("audit verify (entries/s)", [f"{st[k]['verify_entries_per_s']:,.0f}" for k in kinds], "≥ 200,000")
    row(
        "audit verify entries (intact?)",
        [f"{st[k]['verify_entries']:,}{'' if st[k]['verify_ok'] else ' !'}" for k in kinds],
    )
    for q in st[kinds[0]]["queries"]:
        for p in ("p50", "p95"):
            row(f"{q} {p} (ms)", [f"{st[k]['queries'][q][p + '_ms']:.1f}" for k in kinds], "< 50" if p == "p95" else "")


if __name__ == "__main__":
    sys.exit(main())
