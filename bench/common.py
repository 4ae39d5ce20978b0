"""What the benches share: the fixed clock, the stores they open, timing helpers, and
the one import of the audit trail (so a move of it is one line to change here)."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from anxin import audit  # noqa: F401  (the benches reach the audit trail through this name)
from anxin.crypto import MasterKey
from anxin.demo import SimClock
from anxin.storage import StoreConfig


def pg_url() -> str | None:
    url = os.environ.get("ANXIN_BENCH_POSTGRES_URL") or os.environ.get("ANXIN_TEST_POSTGRES_URL")
    if url:
        return url
    try:
        import psycopg

        url = "postgresql://postgres@127.0.0.1:5432/test"
        psycopg.connect(url, connect_timeout=2).close()
        return url
    except Exception:
        return None


class Clock(SimClock):
    """The demo's settable clock, starting on the first school day of the benches."""

    def __init__(self) -> None:
        super().__init__(datetime(2026, 9, 1, 8, 0, tzinfo=UTC))


def percentile(values: list[float], p: float) -> float:
    values = sorted(values)
    k = max(0, min(len(values) - 1, round(p / 100 * (len(values) - 1))))
    return values[k]


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def open_store(kind: str, tmp: Path, clock: Clock) -> tuple[Any, Callable[[], None]]:
    from anxin.service import Anxin

    if kind == "postgres":
        import psycopg

        url = pg_url()
        assert url
        schema = "bench_" + uuid.uuid4().hex[:10]
        with psycopg.connect(url, autocommit=True) as c:
            c.execute(f"CREATE SCHEMA {schema}")
        app = Anxin(StoreConfig(url=url, data_dir=tmp, schema=schema), [MasterKey.generate()], clock=clock)

        def drop() -> None:
            app.close()
            with psycopg.connect(url, autocommit=True) as c:
                c.execute(f"DROP SCHEMA {schema} CASCADE")

        return app, drop
    app = Anxin(StoreConfig(url=None, data_dir=tmp), [MasterKey.generate()], clock=clock)
    return app, app.close


def decrypting_read(app: Any) -> tuple[int, float]:
    """The whole log read and decrypted, every stream's key cold: (events, seconds)."""
    app.keystore.forget_all()
    secs, n = timed(lambda: sum(1 for _ in app.decrypt_log(batch=5000)))
    return n, secs
