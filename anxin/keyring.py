"""Master-key rotation that is safe with any number of processes running and resumes
after a kill at any point.

The store records its master keys by id in `anxin_keyring` (see anxin.storage) and
every process wraps a new data key under the key the store names `current`, read in
the very transaction that stores it. A rotation is then five steps, each durable
before the next begins, and `rotate` run again picks up where a killed one stopped:

1. `prepared`: the new key is added to the key file (written, fsynced, renamed, folder
   fsynced) and so held by every process that reads the file; nothing uses it yet.
2. `switched`: one transaction makes it current and the old one `previous`. From here
   on every new data key, in any process, is wrapped by the new key (a process that
   does not hold it yet reads its key file again, or refuses the write by name).
3. `rewrapped`: the data keys still wrapped by a previous key are re-wrapped, a batch
   per transaction. Events are never rewritten.
4. `retired`: a previous key that wraps no data key any more is marked retired.
5. `pruned`: retired keys are removed from the key file (durably).

Until step 5 the file holds every key a data key may be wrapped by, so a kill at any
point leaves every record readable. On several hosts, `anxin keys add` (step 1), copy
the file to every host, then `anxin keys rotate` (steps 2-5), then copy it again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from anxin import audit
from anxin.crypto import KeyError_, MasterKey, MasterKeyFile

if TYPE_CHECKING:
    from anxin.core import Core
    from domain.common import Actor

BATCH = 500
STEPS = ("prepared", "switched", "rewrapped", "retired", "pruned")


class RotationRefused(KeyError_):
    pass


@dataclass
class RingStatus:
    """Where the store's master keys stand (ids and counts only)."""

    current: str
    keys: list[dict[str, Any]] = field(default_factory=list)  # id, state, data keys, in the key file
    prepared: list[str] = field(default_factory=list)  # in the key file, not yet in the ring
    file_ids: list[str] | None = None  # None: keys not from a file (ANXIN_MASTER_KEY)

    @property
    def in_progress(self) -> bool:
        """A rotation begun and not finished: a key prepared, a previous key still in the
        ring, or a retired key still in the key file."""
        stale_in_file = any(k["state"] == "retired" and k["in_file"] for k in self.keys)
        return bool(self.prepared) or any(k["state"] == "previous" for k in self.keys) or stale_in_file


@dataclass
class Rotation:
    new: str
    retired: list[str]
    rewrapped: int
    resumed: bool


def status(app: Core, key_file: MasterKeyFile | None) -> RingStatus:
    file_ids = [k.kek_id for k in key_file.load_all()] if key_file is not None else None
    counts = app.db.keys_per_kek()
    ring = app.db.keyring()
    known = {r[0] for r in ring}
    keys = [
        {
            "id": kid,
            "state": state,
            "data_keys": counts.get(kid, 0),
            "added_at": added,
            "changed_at": changed,
            "in_file": file_ids is None or kid in file_ids,
        }
        for kid, state, added, changed in ring
    ]
    prepared = [k for k in (file_ids or []) if k not in known]
    return RingStatus(app.db.current_kek_id(), keys, prepared, file_ids)


def prepare(key_file: MasterKeyFile) -> MasterKey:
    """Step 1 alone (for several hosts): a new key in the key file, not used yet."""
    key = MasterKey.generate()
    key_file.add(key)
    return key


def rotate(
    app: Core,
    actor: Actor,
    *,
    new_key: MasterKey | None = None,
    key_file: MasterKeyFile | None = None,
    on_step: Callable[[str], None] | None = None,
    batch: int = BATCH,
) -> Rotation:
    """Rotate to a new master key, or finish a rotation that was interrupted. With a key
    file, the new key is taken from it if one was prepared (`keys add`), else made and
    added to it; without one (tests, a key from the environment) `new_key` is used."""
    step = on_step or (lambda name: None)
    ks = app.keystore
    ring = {r[0]: r[1] for r in app.db.keyring()}
    previous = [k for k, state in ring.items() if state == "previous"]
    resumed = bool(previous)
    if not previous and key_file is not None and new_key is None:
        stale = [k.kek_id for k in _file_keys(key_file) if ring.get(k.kek_id) == "retired"]
        if stale:  # killed between steps 4 and 5: only the pruning is left
            key_file.keep_only([k for k, state in ring.items() if state != "retired"])
            step("pruned")
            return Rotation(app.db.current_kek_id(), stale, 0, True)
    if not previous:
        new = new_key
        if key_file is not None:
            prepared = [k for k in _file_keys(key_file) if k.kek_id not in ring]
            if new is None and prepared:
                new, resumed = prepared[-1], True  # a rotation killed after step 1, or `keys add`
            elif new is None:
                new = MasterKey.generate()
            key_file.add(new, held=ks.keks.values())
        if new is None:
            raise RotationRefused("没有新的主密钥：请用密钥文件（ANXIN_MASTER_KEY_FILE）轮换")
        if new.kek_id in ring:
            raise RotationRefused(f"主密钥 {new.kek_id} 已在本库使用过，不能再次作为新密钥")
        ks.keks[new.kek_id] = new
        step("prepared")
        old = _switch(app, actor, new)
        previous = [old]
        step("switched")
    else:
        new = ks.kek(app.db.current_kek_id())
    rewrapped = _rewrap(app, new, batch, step)
    step("rewrapped")
    retired = _retire(app, actor, new, rewrapped)
    step("retired")
    if key_file is not None:
        keep = [r[0] for r in app.db.keyring() if r[1] != "retired"]
        key_file.keep_only(keep)
        step("pruned")
    return Rotation(new.kek_id, retired, rewrapped, resumed)


def _file_keys(key_file: MasterKeyFile) -> list[MasterKey]:
    """The file's keys; none if there is no file yet (keys given another way)."""
    return key_file.load_all() if key_file.exists() or key_file.pending_path.exists() else []


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _switch(app: Core, actor: Actor, new: MasterKey) -> str:
    """Step 2: the new key current, the old previous, and the trail entry, in one transaction."""
    db = app.db
    with db.write_transaction() as c:
        row = c.execute(
            db.q(
                "SELECT kek_id FROM {t}anxin_keyring WHERE state = 'current'"
                + (" FOR UPDATE" if db.dialect == "postgres" else "")
            )
        ).fetchone()
        if row is None:
            raise RotationRefused("本库没有登记当前主密钥")
        old = str(row[0])
        now = _now()
        c.execute(db.q("UPDATE {t}anxin_keyring SET state = 'previous', changed_at = ? WHERE kek_id = ?"), (now, old))
        c.execute(
            db.q("INSERT INTO {t}anxin_keyring (kek_id, state, added_at, changed_at) VALUES (?, 'current', ?, ?)"),
            (new.kek_id, now, now),
        )
        entry = audit.security_row(app, "key_rotation", actor.staff_id, new.kek_id, {"from": old, "step": "switched"})
        audit.append(c, db, [entry])
    return old


def _rewrap(app: Core, new: MasterKey, batch: int, step: Callable[[str], None]) -> int:
    """Step 3: every live data key not wrapped by the new key, a batch per transaction.
    A key shredded meanwhile stays shredded (the update names the old wrapping)."""
    db, ks = app.db, app.keystore
    done = 0
    while True:
        rows = db.fetch(
            f"SELECT stream_id, wrapped, kek_id FROM {{t}}anxin_keys WHERE wrapped IS NOT NULL "
            f"AND kek_id <> ? ORDER BY stream_id LIMIT {int(batch)}",
            (new.kek_id,),
        )
        if not rows:
            return done
        updates = []
        for sid, wrapped, kek_id in rows:
            data_key = ks._unwrap(sid, wrapped, kek_id)
            updates.append((new.wrap(sid, data_key), new.kek_id, sid, kek_id))
        with db.write_transaction() as c:
            c.executemany(
                db.q(
                    "UPDATE {t}anxin_keys SET wrapped = ?, kek_id = ? WHERE stream_id = ? AND kek_id = ? "
                    "AND wrapped IS NOT NULL"
                ),
                updates,
            )
        done += len(updates)
        step("rewrapped-batch")


def _retire(app: Core, actor: Actor, new: MasterKey, rewrapped: int) -> list[str]:
    """Step 4: previous keys that wrap nothing any more are retired (with a trail entry)."""
    db = app.db
    retired = []
    with db.write_transaction() as c:
        for (kid,) in c.execute(
            db.q("SELECT kek_id FROM {t}anxin_keyring WHERE state = 'previous' ORDER BY kek_id")
        ).fetchall():
            still = c.execute(
                db.q("SELECT COUNT(*) FROM {t}anxin_keys WHERE kek_id = ? AND wrapped IS NOT NULL"), (kid,)
            ).fetchone()
            if still and still[0]:
                continue
            c.execute(
                db.q("UPDATE {t}anxin_keyring SET state = 'retired', changed_at = ? WHERE kek_id = ?"), (_now(), kid)
            )
            retired.append(kid)
        if retired:
            entry = audit.security_row(
                app,
                "key_rotation",
                actor.staff_id,
                new.kek_id,
                {"step": "retired", "retired": retired, "rewrapped": rewrapped},
            )
            audit.append(c, db, [entry])
    return retired
