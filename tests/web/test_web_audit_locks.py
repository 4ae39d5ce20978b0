"""Page views on PostgreSQL take no table-level lock: several people read pages at once
through the application while PostgreSQL's lock table is sampled; no sample finds a lock
stronger than the ordinary row-level ones on any of the store's tables, nor anyone waiting
for one, and every page view's decisions are in the trail. (PostgreSQL only: SQLite has a
single writer and no lock table to sample.)"""

from __future__ import annotations

import threading
from typing import Any

import pytest
from conftest import PG_SKIP_REASON, PG_URL
from web_support import DemoSite, _demo_store

from anxin import audit

pytestmark = pytest.mark.skipif(not PG_URL, reason=PG_SKIP_REASON)

# Table-level modes a plain read or insert never takes (LOCK TABLE … IN EXCLUSIVE MODE is
# `ExclusiveLock`): RowShare, RowExclusive and AccessShare are what every SELECT, INSERT and
# SELECT … FOR UPDATE takes, and they do not conflict with one another.
STRONG = ("ShareUpdateExclusiveLock", "ShareLock", "ShareRowExclusiveLock", "ExclusiveLock", "AccessExclusiveLock")
PAGES = {
    "teacher1": ["/", "/pairings", "/cases"],
    "counselor1": ["/", "/support", "/screenings"],
    "principal1": ["/", "/board", "/cases"],
    "safety1": ["/", "/cases", "/committee"],
}
ROUNDS = 12  # per reader and page


def test_page_views_take_no_table_level_lock_and_wait_for_none() -> None:
    import psycopg

    assert PG_URL
    app, web = _demo_store("postgres")
    site = DemoSite("postgres", app, web)
    schema = app.config.schema
    browsers = [site.browser(name) for name in PAGES for _ in range(2)]
    audit.settle(app)
    before = int(app.db.fetchone("SELECT COUNT(*) FROM {t}anxin_audit WHERE kind = 'access'")[0])
    done = threading.Event()
    statuses: list[int] = []
    errors: list[BaseException] = []

    def read(b: Any) -> None:
        try:
            for _ in range(ROUNDS):
                for path in PAGES[b.username]:
                    statuses.append(b.get(path).status_code)
        except BaseException as e:  # reported below
            errors.append(e)

    samples: list[list[tuple[Any, ...]]] = []
    strong: list[tuple[Any, ...]] = []
    waiting: list[tuple[Any, ...]] = []

    def sample() -> None:
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            while not done.is_set():
                rows = conn.execute(
                    "SELECT l.pid, l.locktype, l.mode, l.granted, c.relname FROM pg_locks l "
                    "LEFT JOIN pg_class c ON c.oid = l.relation "
                    "LEFT JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE l.pid <> pg_backend_pid() AND l.database = "
                    "(SELECT oid FROM pg_database WHERE datname = current_database()) "
                    "AND (n.nspname = %s OR l.relation IS NULL)",
                    (schema,),
                ).fetchall()
                samples.append(rows)
                strong.extend(r for r in rows if r[1] == "relation" and r[2] in STRONG)
                waiting.extend(r for r in rows if not r[3])

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        # when eight people read pages at once, many times over
        pool = [threading.Thread(target=read, args=(b,)) for b in browsers]
        for t in pool:
            t.start()
        for t in pool:
            t.join()
    finally:
        done.set()
        sampler.join()
        site.close()

    # then every page answered, and the lock table, sampled all along, showed the store's
    # tables locked only the ordinary way, and nobody waiting for anyone
    assert errors == [] and len(statuses) == len(browsers) * ROUNDS * 3 and set(statuses) == {200}
    busy = [s for s in samples if any(r[1] == "relation" for r in s)]
    assert len(busy) >= 10, f"only {len(busy)} samples caught a page at work"
    assert strong == [], strong[:5]
    assert waiting == [], waiting[:5]
    # and each page view's decisions are in the trail, which verifies
    report = audit.verify(app)
    assert report.ok, report.summary()
    after = int(app.db.fetchone("SELECT COUNT(*) FROM {t}anxin_audit WHERE kind = 'access'")[0])
    assert after - before >= len(statuses)
