"""Audit appends per second on PostgreSQL with many clients at once: every page view
appends an `access` entry, so this is the ceiling of page views the trail allows.

    python -m bench.audit [--clients 32] [--processes 4] [--seconds 5]

Clients are threads spread over several processes (so the client's own Python is not the
limit), each recording the gate's decision on a read (`Gate.record_access`, one entry in
a transaction of its own) as fast as it can, on one fresh schema. Reported: appends/s,
the latency of one append (p50, p95), errors, then how long the trail took to be fully
chained and whether `audit verify` finds it intact with every append in it. PostgreSQL
from ANXIN_BENCH_POSTGRES_URL (else ANXIN_TEST_POSTGRES_URL, else the local `test`
database); nothing is measured without one."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from bench.common import audit, percentile, pg_url

ROOT = Path(__file__).resolve().parent.parent
SCHOOLS = 50  # the decisions are spread over a district's schools, as page views are


def _worker(url: str, schema: str, key: str, threads: int, seconds: float, n: int) -> dict[str, Any]:
    """One process's clients: `threads` threads appending for `seconds` from the moment the
    parent names (read from stdin once this process has said it is ready)."""
    from anxin.core import Core
    from anxin.crypto import MasterKey
    from anxin.storage import StoreConfig
    from domain.access import Decision, Resource
    from domain.common import Actor, Role

    core = Core(StoreConfig(url=url, data_dir=Path(tempfile.mkdtemp()), schema=schema), [MasterKey.decode(key)])
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    start_at = float(sys.stdin.readline())
    latencies: list[list[float]] = [[] for _ in range(threads)]
    errors: list[str] = []

    def client(i: int) -> None:
        actor = Actor(f"staff-{n}-{i}", frozenset({Role.CLASS_TEACHER}))
        mine = latencies[i]
        k = 0
        while time.time() < start_at:
            time.sleep(0.001)
        stop = start_at + seconds
        while True:
            t0 = time.perf_counter()
            if time.time() >= stop:
                return
            school = f"school-{(n * threads + i + k) % SCHOOLS}"
            resource = Resource("student", str(uuid.uuid4()), school, district="bench")
            try:
                core.gate.record_access(actor, "student.read", resource, Decision(True, "class_teacher"), None)
            except Exception as e:  # counted, and the first few shown
                errors.append(repr(e))
                continue
            mine.append(time.perf_counter() - t0)
            k += 1

    pool = [threading.Thread(target=client, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    core.close()
    return {"latencies": [x for part in latencies for x in part], "errors": errors}


def worker_main() -> None:
    job = json.loads(sys.stdin.readline())
    out = _worker(job["url"], job["schema"], job["key"], job["threads"], job["seconds"], job["n"])
    sys.stdout.write(json.dumps(out))


def bench_appends(url: str, clients: int, processes: int, seconds: float) -> dict[str, Any]:
    import psycopg

    from anxin.core import Core
    from anxin.crypto import MasterKey
    from anxin.storage import StoreConfig

    schema = "bench_audit_" + uuid.uuid4().hex[:8]
    with psycopg.connect(url, autocommit=True) as c:
        c.execute(f"CREATE SCHEMA {schema}")
    tmp = Path(tempfile.mkdtemp())
    try:
        config = StoreConfig(url=url, data_dir=tmp, schema=schema)
        key = MasterKey.generate()
        core = Core(config, [key])  # the tables made once, before the clients start
        audit.create_signing_key(config)
        before = core.db.fetch("SELECT COUNT(*) FROM {t}anxin_audit")[0][0]
        per = [clients // processes + (1 if i < clients % processes else 0) for i in range(processes)]
        procs = []
        for n, threads in enumerate(per):
            p = subprocess.Popen(
                [sys.executable, "-c", "from bench.audit import worker_main; worker_main()"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                cwd=ROOT,
                env={**os.environ, "PYTHONPATH": os.environ.get("PYTHONPATH", str(ROOT))},
            )
            assert p.stdin is not None
            job = {"url": url, "schema": schema, "key": key.encode(), "threads": threads, "seconds": seconds, "n": n}
            p.stdin.write(json.dumps(job).encode() + b"\n")
            p.stdin.flush()
            procs.append(p)
        for p in procs:  # every process has opened the store and is waiting
            assert p.stdout is not None and p.stdout.readline() == b"ready\n"
        start_at = f"{time.time() + 0.5}\n".encode()
        for p in procs:
            assert p.stdin is not None
            p.stdin.write(start_at)
            p.stdin.close()
        results = []
        for p in procs:
            assert p.stdout is not None
            results.append(json.loads(p.stdout.read()))
            p.wait()
        latencies = sorted(x for r in results for x in r["latencies"])
        errors = [e for r in results for e in r["errors"]]
        # Everything appended is in the chain once the trail is settled (anything recorded
        # but not yet chained is chained by verify first), and the chain verifies.
        t0 = time.perf_counter()
        report = audit.verify(core)
        verify_secs = time.perf_counter() - t0
        after = core.db.fetch("SELECT COUNT(*) FROM {t}anxin_audit")[0][0]
        chain_rate = _chain_rate(core) if core.db.dialect == "postgres" else None
        core.close()
        return {
            "clients": clients,
            "processes": processes,
            "seconds": seconds,
            "appends": len(latencies),
            "per_second": len(latencies) / seconds,
            "p50_ms": percentile(latencies, 50) * 1000 if latencies else 0.0,
            "p95_ms": percentile(latencies, 95) * 1000 if latencies else 0.0,
            "errors": len(errors),
            "first_errors": errors[:3],
            "in_trail": after - before,
            "verified": report.ok,
            "verify_summary": report.summary(),
            "verify_seconds": verify_secs,
            "chain_per_second": chain_rate,
        }
    finally:
        with psycopg.connect(url, autocommit=True) as c:
            c.execute(f"DROP SCHEMA {schema} CASCADE")


def _chain_rate(core: Any, n: int = 20_000) -> float | None:
    """How fast one holder of the chain's lock chains a backlog: `n` entries left pending
    (as if every page view had found the lock taken), then chained by `settle`; per second.
    None where nothing is ever pending (an older version)."""
    if not hasattr(audit, "settle"):
        return None
    detail = '{"action":"student.read","allowed":1,"break_glass":0,"district":"bench","kind":"student",'
    with core.db.transaction() as c:
        c.execute(
            core.db.q(
                "INSERT INTO {t}anxin_audit_pending (at, kind, actor_id, subject, detail, payload_hash) "
                "SELECT '2026-09-01T08:00:00+00:00', 'access', 'staff-' || g, md5(g::text), "
                '? || \'"rule":"class_teacher","school":"s"}\', \'\' FROM generate_series(1, ?) g'
            ),
            (detail, n),
        )
    t0 = time.perf_counter()
    chained = audit.settle(core)
    secs = time.perf_counter() - t0
    assert chained == n and audit.verify(core).ok
    return n / secs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    url = pg_url()
    if url is None:
        print("audit appends: no PostgreSQL (set ANXIN_BENCH_POSTGRES_URL); not measured")
        return 0
    r = bench_appends(url, args.clients, args.processes, args.seconds)
    print(f"audit appends on PostgreSQL, {r['clients']} clients in {r['processes']} processes, {r['seconds']:.0f} s:")
    print(
        f"  {r['per_second']:,.0f} appends/s  (p50 {r['p50_ms']:.2f} ms, p95 {r['p95_ms']:.2f} ms, "
        f"{r['errors']} errors{', e.g. ' + r['first_errors'][0] if r['errors'] else ''})"
    )
    print(f"  in the trail: {r['in_trail']:,} of {r['appends']:,}; verify {r['verify_seconds']:.1f} s: ")
    print(f"  {r['verify_summary']}")
    if r["chain_per_second"] is not None:
        print(f"  a backlog of 20,000 pending entries chained by one holder: {r['chain_per_second']:,.0f}/s")
    ok = r["verified"] and r["in_trail"] == r["appends"] and r["errors"] == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
