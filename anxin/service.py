"""Anxin assembled: the core (anxin.core, with the commands of each area) and the views
(projections) kept up to date with it; and how to open it from a data directory or the
environment."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path
from typing import Any

from anxin.core import Core
from anxin.crypto import MasterKey, MasterKeyFile, MasterKeyMissing, parse_keys
from anxin.storage import StoreConfig, config_from_env, opening
from domain.policy import Policy


class Anxin(Core):
    """The whole application: the core (one event store, one gate, the commands by area:
    `app.cases.report_bullying(...)`, `app.pairings.record_check_in(...)`, ...; `app.accounts`)
    and the views (`app.views`), kept up to date with it (read your writes: a command
    returns once every view has it)."""

    def __init__(self, config: StoreConfig, *args: Any, **kwargs: Any) -> None:
        from projections import all_views
        from projections.base import Runner

        # The views' tables too, and their refold after a change of shape: one process at
        # a time (a second worker then finds them made and caught up).
        with opening(config):
            super().__init__(config, *args, **kwargs)
            self.views = Runner(self, all_views(self))
            self.views.catch_up()

    def after_save(self, written: Sequence[tuple[int, Any]]) -> None:
        self.views.catch_up(fresh=written)

    @contextmanager
    def decisions_together(self) -> Iterator[None]:
        """Core's, and the views' head asked once for the block's reads."""
        with super().decisions_together(), self.views.reads_together():
            yield

    def after_shred(self, stream_id: str) -> None:
        self.views.erase(stream_id)

    def open_deadlines(self, today: date, kinds: Sequence[str], soon_days: int) -> list[dict[str, Any]]:
        from projections.work_queue import deadlines

        return deadlines(self, today, kinds, soon_days)

    def overdue_items(self, today: date) -> list[dict[str, Any]]:
        from projections.work_queue import overdue_items

        return overdue_items(self, today)

    def analyze(self, changed: int | None = None) -> bool:
        ran = super().analyze(changed)
        if ran:
            self.views.analyze()
        return ran

    def close(self) -> None:
        self.views.engine.dispose()
        super().close()


def master_key_file(config: StoreConfig) -> MasterKeyFile:
    path = os.environ.get("ANXIN_MASTER_KEY_FILE")
    return MasterKeyFile(Path(path) if path else config.data_dir / "master.key")


def load_master_keys(config: StoreConfig) -> list[MasterKey]:
    inline = os.environ.get("ANXIN_MASTER_KEY")
    if inline:  # one key, or a ring: several separated by commas
        return parse_keys(inline.replace(",", "\n"), "ANXIN_MASTER_KEY")
    return master_key_file(config).load_all()


def load_policy(config: StoreConfig) -> Policy:
    path = os.environ.get("ANXIN_POLICY_FILE")
    candidate = Path(path) if path else config.data_dir / "policy.toml"
    if candidate.exists():
        return Policy.from_toml(candidate.read_text(encoding="utf-8"))
    if path:
        raise FileNotFoundError(f"找不到策略文件：{candidate}")
    return Policy()


def open_app(
    config: StoreConfig | None = None,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    clock: Callable[[], datetime] | None = None,
    policy: Policy | None = None,
) -> Anxin:
    config = config or config_from_env(data_dir)
    return Anxin(
        config,
        load_master_keys(config),
        policy or load_policy(config),
        clock,
        key_source=lambda: load_master_keys(config),
    )


__all__ = ["Anxin", "open_app", "MasterKeyMissing", "master_key_file"]
