"""A plain append (a check-in, a note, a session: a command sent without
`expected_version`) that loses a version race to another writer is run again on the
stream's fresh state, rather than refused with a conflict the person did not cause.

`Core.commit` raises `_RaceLost` instead of `Conflict` when the command runs inside
`retried_on_race` and may run again; `retry_plain_appends` wraps every public command of
a class of `anxin.commands` that takes `expected_version`.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from anxin.gate import DecisionsDropped
from domain.common import Conflict

# Inside a command that `retried_on_race` runs: whether a lost version race may be retried.
race_retry: contextvars.ContextVar[_RaceRetry | None] = contextvars.ContextVar("anxin_race_retry", default=None)


class _RaceLost(Conflict, DecisionsDropped):
    """A plain append lost a version race to another writer and is about to be run again
    on the stream's fresh state (only ever raised inside `retried_on_race`)."""


@dataclass
class _RaceRetry:
    again: bool  # another attempt follows if this one loses a race
    saved: bool = False  # this attempt committed a save: running it again would repeat that


# Each lost race means another writer's save went in, so the stream moves on; with many
# writers at once a writer may still lose several times running (six writers: about one
# command in six loses ten in a row without backoff), hence a generous bound and a
# growing, jittered wait.
RACE_ATTEMPTS = 20


def retried_on_race(fn: Callable[..., Any]) -> Callable[..., Any]:
    """A command that takes `expected_version`. Called without one (a plain append: a
    check-in, a note, a session), it is run again on the stream's fresh state when another
    writer saved the same stream between its load and its save, up to RACE_ATTEMPTS times,
    rather than refused with a conflict the person did not cause. With `expected_version`,
    the person edited what a page showed them: a race is a real conflict, refused at once.
    Each attempt's gate decisions are recorded with its save, or on their own if it fails;
    those of an attempt that lost a race are dropped with it (the next attempt decides
    again), so the trail holds one decision per saved command. Applied to every public
    command of `anxin.commands` that has `expected_version` (see `retry_plain_appends`);
    nested commands leave it to the outermost. `self`: a command object, given the core."""
    index = list(inspect.signature(fn).parameters).index("expected_version") - 1  # after self

    @functools.wraps(fn)
    def run(self: Any, *args: Any, **kwargs: Any) -> Any:
        if race_retry.get() is not None:  # inside another command: that one retries
            return fn(self, *args, **kwargs)
        expected = kwargs.get("expected_version", args[index] if len(args) > index else None)
        attempts = 1 if expected is not None else RACE_ATTEMPTS
        for attempt in range(attempts):
            token = race_retry.set(_RaceRetry(again=attempt < attempts - 1))
            try:
                with self.core.gate.deferred_decisions(own=True):
                    return fn(self, *args, **kwargs)
            except _RaceLost:
                # Someone else's save won: wait a moment (jittered, so racers spread out).
                time.sleep(random.uniform(0, min(0.2, 0.002 * 2**attempt)))
            finally:
                race_retry.reset(token)
        raise AssertionError("unreachable: the last attempt raises Conflict, never _RaceLost")

    run.retried_on_race = True  # type: ignore[attr-defined]
    return run


def decided_with_its_save(fn: Callable[..., Any]) -> Callable[..., Any]:
    """A public command or read without `expected_version`: the gate's decisions it makes
    are collected and written with its save, in the transaction of its events (or, if it
    saves nothing: a read, a refusal, a failure, on their own as it returns or raises,
    before its caller sees anything). Inside an enclosing block of decisions (a page's
    `decisions_together`, an outer command) they join that block instead."""

    @functools.wraps(fn)
    def run(self: Any, *args: Any, **kwargs: Any) -> Any:
        with self.core.gate.deferred_decisions(own=False):
            return fn(self, *args, **kwargs)

    run.decided_with_its_save = True  # type: ignore[attr-defined]
    return run


def retry_plain_appends(cls: type) -> None:
    """Wrap each public method of a class of commands: one that takes `expected_version` in
    `retried_on_race`, any other in `decided_with_its_save`; either way its gate decisions go
    in with its save."""
    for name, fn in list(vars(cls).items()):
        if name.startswith("_") or not inspect.isfunction(fn):
            continue
        if getattr(fn, "retried_on_race", False) or getattr(fn, "decided_with_its_save", False):
            continue
        if "expected_version" in inspect.signature(fn).parameters:
            setattr(cls, name, retried_on_race(fn))
        else:
            setattr(cls, name, decided_with_its_save(fn))
