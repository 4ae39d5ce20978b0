"""Helpers for the quarantine and health tests: damage one stored record under the
application's feet (reusing test_audit's `Raw`), and run `anxin` as a real process
against a `store` fixture's database."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from uuid import UUID

from conftest import PG_URL, Store
from store_support import Raw

from anxin.service import Anxin

ROOT = Path(__file__).resolve().parent.parent


def flip_key_byte(raw: Raw, stream_id: str) -> bytes:
    """Flip one byte of a stream's wrapped data key; the bytes it had."""
    sid = UUID(stream_id).hex
    [(wrapped,)] = raw("SELECT wrapped FROM {t}anxin_keys WHERE stream_id = ?", (sid,))
    wrapped = bytes(wrapped)
    raw("UPDATE {t}anxin_keys SET wrapped = ? WHERE stream_id = ?", (wrapped[:-1] + bytes([wrapped[-1] ^ 1]), sid))
    return wrapped


def damage(store: Store, app: Anxin, stream_id: str, what: str) -> None:
    """`what` "event": the last byte of the stream's first stored event flipped;
    "key": one byte of its wrapped data key flipped."""
    raw = Raw(store, app)
    if what == "event":
        raw.flip_last_byte(stream_id, 1)
    else:
        flip_key_byte(raw, stream_id)


def repair(store: Store, app: Anxin, stream_id: str, what: str) -> None:
    """Undo `damage` (as restoring the row from a backup would): flipping again."""
    damage(store, app, stream_id, what)


def cli(store: Store, *args: str) -> subprocess.CompletedProcess[str]:
    """`anxin ARGS` as its own process on this store (the master key inline)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANXIN_")}
    env |= {"ANXIN_MASTER_KEY": store.master_key.encode(), "ANXIN_DATA_DIR": str(store.data_dir)}
    argv = list(args)
    if store.kind == "postgres":
        assert PG_URL and store.schema
        env |= {"ANXIN_DATABASE_URL": PG_URL, "ANXIN_DATABASE_SCHEMA": store.schema}
    else:
        argv += ["--data-dir", str(store.data_dir)]
    r = subprocess.run(
        [sys.executable, "-m", "anxin.cli", *argv],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert "Traceback" not in r.stderr, r.stderr  # a message, never a crash
    return r
