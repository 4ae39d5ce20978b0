"""Verifying the audit trail: every entry's hash and link, every event recorded once and
unchanged, every checkpoint's signature; a long trail in two halves at once."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from uuid import UUID

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

if TYPE_CHECKING:
    from anxin.core import Core
from anxin.audit.chain import AuditKeyMissing, genesis_hash, settle, store_id
from anxin.audit.checkpoints import (
    Checkpoint,
    _raw_public,
    key_id,
    load_public_key,
    public_key_path,
)
from anxin.audit.reading import _Events, _raw_rows, _trail_batches


# -- verification ------------------------------------------------------------------------
@dataclass(frozen=True)
class Problem:
    """The first place where history was changed. `seq` is the trail position."""

    seq: int
    reason: str
    message: str
    notification_id: int | None = None
    stream_id: str | None = None
    version: int | None = None


@dataclass
class VerifyReport:
    entries: int = 0
    events: int = 0
    checkpoints: int = 0
    head_seq: int = 0
    head_hash: str = ""
    checkpoint_file: Checkpoint | None = None
    problem: Problem | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.problem is None

    def summary(self) -> str:
        if self.problem is None:
            lines = [
                f"审计记录完整（intact）：{self.entries} 条记录，{self.events} 个事件，"
                f"{self.checkpoints} 个已签名检查点；链头 seq {self.head_seq} {self.head_hash}"
            ]
            if self.checkpoint_file is not None:
                lines.append(f"检查点文件吻合：seq {self.checkpoint_file.seq}（{self.checkpoint_file.at}）")
            return "\n".join(lines)
        p = self.problem
        where = f"第 {p.seq} 条（seq {p.seq}）"
        extra = []
        if p.notification_id is not None:
            extra.append(f"事件位置 {p.notification_id}")
        if p.stream_id is not None:
            extra.append(f"记录 {p.stream_id} 第 {p.version} 版")
        tail = f"（{'，'.join(extra)}）" if extra else ""
        return f"审计记录被改动（tampered）：{where}{tail}：{p.message} [{p.reason}]"


class _Found(Exception):
    def __init__(self, problem: Problem) -> None:
        self.problem = problem


def _event_of(subject: str, detail: str) -> tuple[str | None, int | None]:
    try:
        return UUID(subject).hex, int(detail.rsplit("#", 1)[1])
    except (ValueError, IndexError):
        return None, None


def _unrecorded(seq: int, ev: tuple[int, str, int, str]) -> _Found:
    return _Found(
        Problem(
            seq,
            "event_unrecorded",
            "事件库中有一个没有审计记录的事件：事件被插入",
            notification_id=ev[0],
            stream_id=str(UUID(ev[1])),
            version=ev[2],
        )
    )


def _check_event(
    events: _Events, ev_row: tuple[Any, ...] | None, seq: int, subject: str, detail: str, payload: str
) -> None:
    """An event entry whose payload hash differs from the next stored event's: say why."""
    ev = events.described(ev_row) if ev_row is not None else None
    hexid, version = _event_of(subject, detail)
    where: dict[str, Any] = {"stream_id": subject, "version": version}
    altered = "事件的存储内容（密文）与审计记录不符：事件被改动"
    if hexid is None or version is None:
        raise _Found(Problem(seq, "entry_altered", "事件记录的对象或版本无法识别", **where))
    if ev is not None and (ev[1], ev[2]) == (hexid, version):
        raise _Found(Problem(seq, "event_altered", altered, notification_id=ev[0], **where))
    own = events.find(hexid, version)
    if own is None:
        raise _Found(Problem(seq, "event_missing", "审计记录所载的事件已不在事件库中：事件被删除", **where))
    if ev is not None and own[0] > ev[0]:
        raise _unrecorded(seq, ev)
    if own[3] != payload:
        raise _Found(Problem(seq, "event_altered", altered, notification_id=own[0], **where))
    raise _Found(Problem(seq, "event_moved", "事件在事件库中的顺序与审计记录不符", notification_id=own[0], **where))


def verify(
    app: Core,
    checkpoint: Checkpoint | str | os.PathLike[str] | None = None,
    *,
    public_key: Ed25519PublicKey | None = None,
    batch: int = 20000,
    parallel_from: int | None = None,
) -> VerifyReport:
    """Re-read every trail entry and every stored event (raw bytes, nothing decrypted),
    recompute the chain, match events and their entries one to one, check every stored
    checkpoint's signature and, if given, a checkpoint file kept outside the system.
    Stops at the first position where history was changed."""
    started = time.perf_counter()
    # Entries recorded but not yet chained (PostgreSQL, seconds old at most) are chained
    # first, so they are verified with the rest.
    settle(app)
    report = VerifyReport()
    if checkpoint is not None and not isinstance(checkpoint, Checkpoint):
        checkpoint = Checkpoint.load(checkpoint)
    report.checkpoint_file = checkpoint
    pub = public_key or load_public_key(app.config)
    # The pass makes millions of short-lived rows and strings and no cycles: pause the
    # cyclic collector, which would otherwise walk the whole heap again and again.
    from projections.base import no_gc_pauses

    with no_gc_pauses():
        # A long trail in two halves at once, the second in a process of its own; anything
        # that way not shown intact is verified again in one pass, which says where and why.
        if not _verify_in_halves(
            app, report, checkpoint, pub, batch, PARALLEL_FROM if parallel_from is None else parallel_from
        ):
            try:
                _Verifier(app, report, checkpoint, pub, batch).run()
            except _Found as f:
                report.problem = f.problem
    report.seconds = time.perf_counter() - started
    return report


# From how many entries a second process verifies half the trail (its start, about half a
# second on the reference machine, is then well paid for).
PARALLEL_FROM = 200_000


def _verify_in_halves(
    app: Core, report: VerifyReport, cp: Checkpoint | None, pub: Ed25519PublicKey | None, batch: int, parallel_from: int
) -> bool:
    """Entries 1..mid here, and mid+1.. (with the events from the one the first event entry
    after mid names) in a second process, at once; the halves joined where they meet: the
    first half ends at entry mid, with the hash the second half's first entry names as its
    prev_hash, and has taken every event before the second half's first. True when the
    whole trail is so shown intact (the report filled in); False when it was not tried, or
    anything failed (the caller then verifies in one pass)."""
    db = app.db
    head = _raw_rows(db, db.q("SELECT max(seq) FROM {t}anxin_audit"), ())[0][0]
    if not head or head < max(parallel_from, 2):
        return False
    mid = int(head) // 2
    first_event = _raw_rows(
        db,
        db.q("SELECT subject, detail FROM {t}anxin_audit WHERE seq > ? AND kind = 'event' ORDER BY seq LIMIT 1"),
        (mid,),
    )
    meets = _raw_rows(db, db.q("SELECT prev_hash FROM {t}anxin_audit WHERE seq = ?"), (mid + 1,))
    if not first_event or not meets:
        return False
    hexid, version = _event_of(*first_event[0])
    found = _Events(db, 1).find(hexid, version) if hexid is not None and version is not None else None
    if found is None:
        return False
    split, prev_mid = int(found[0]), str(meets[0][0])
    cfg = app.config
    job = {
        "url": cfg.url,
        "data_dir": str(cfg.data_dir),
        "schema": cfg.schema,
        "checkpoint": cp.to_json() if cp is not None else None,
        "public_key": _raw_public(pub).hex() if pub is not None else None,
        "batch": batch,
        "first_seq": mid + 1,
        "prev": prev_mid,
        "events_after": split - 1,
    }
    # A plain interpreter running this module's entry (not multiprocessing's spawn, which
    # would import the caller's main script again); the job through its stdin; its answer,
    # one JSON line, through its stdout. It gets no key: verification decrypts nothing.
    child = subprocess.Popen(
        [sys.executable, "-c", "from anxin.audit.verification import _second_half; _second_half()"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        cwd=Path(__file__).resolve().parent.parent.parent,
    )
    try:
        assert child.stdin is not None and child.stdout is not None
        child.stdin.write(json.dumps(job).encode())
        child.stdin.close()
        first = VerifyReport()
        try:
            _Verifier(app, first, cp, pub, batch, last_seq=mid, events_before=split).run()
        except _Found:
            return False
        if first.entries != mid or first.head_hash != prev_mid:
            return False
        try:
            answer = json.loads(child.stdout.read() or b"{}")
        except ValueError:
            return False
        if answer.get("ok") is not True or child.wait() != 0:
            return False
        report.entries = report.head_seq = int(answer["entries"])
        report.events = first.events + int(answer["events"])
        report.checkpoints = first.checkpoints + int(answer["checkpoints"])
        report.head_hash = str(answer["head_hash"])
        return True
    finally:
        if child.poll() is None:
            child.kill()
        child.wait()
        if child.stdout is not None:
            child.stdout.close()


def _second_half() -> None:
    """The second process of `_verify_in_halves`: the job from stdin (the trail from
    first_seq, whose prev_hash is `prev`, with the events after events_after, to the end);
    one JSON line to stdout: {"ok": true, counts…}, or {"ok": false} at a problem or an error
    (which the one-pass verification, run then, will meet and say)."""
    from anxin.core import Core
    from anxin.storage import StoreConfig
    from projections.base import no_gc_pauses

    answer: dict[str, Any] = {"ok": False}
    try:
        job = json.loads(sys.stdin.buffer.read())
        config = StoreConfig(url=job["url"], data_dir=Path(job["data_dir"]), schema=job["schema"])
        app = Core(config, [])  # no key: nothing is decrypted here
        try:
            cp = Checkpoint.from_json(job["checkpoint"]) if job["checkpoint"] else None
            pub = Ed25519PublicKey.from_public_bytes(bytes.fromhex(job["public_key"])) if job["public_key"] else None
            report = VerifyReport()
            with no_gc_pauses():
                _Verifier(
                    app,
                    report,
                    cp,
                    pub,
                    int(job["batch"]),
                    first_seq=int(job["first_seq"]),
                    prev=job["prev"],
                    events_after=int(job["events_after"]),
                ).run()
            answer = {
                "ok": True,
                "entries": report.entries,
                "events": report.events,
                "checkpoints": report.checkpoints,
                "head_hash": report.head_hash,
            }
        finally:
            app.close()
    except Exception:  # a problem (_Found) or an error: the one pass that follows says which
        answer = {"ok": False}
    sys.stdout.write(json.dumps(answer) + "\n")
    sys.stdout.flush()


class _Verifier:
    """One pass over the trail, in seq order, matching each event entry with the next
    stored event; stops at the first problem. (Plain loop: measured faster here than
    checking whole batches at once.)"""

    def __init__(
        self,
        app: Core,
        report: VerifyReport,
        cp: Checkpoint | None,
        pub: Ed25519PublicKey | None,
        batch: int,
        *,
        first_seq: int = 1,
        prev: str | None = None,
        last_seq: int | None = None,
        events_after: int = 0,
        events_before: int | None = None,
    ) -> None:
        """The whole trail; or a part of it: entries first_seq.. (the first naming `prev` as
        its prev_hash) up to last_seq, with the events between events_after and events_before."""
        self.app, self.db, self.report, self.cp, self.pub, self.batch = app, app.db, report, cp, pub, batch
        self.store = store_id(self.db)
        self.kid = key_id(pub) if pub is not None else None
        self.first_seq, self.start_prev, self.last_seq = first_seq, prev, last_seq
        self.events = _Events(self.db, batch, events_after, events_before)

    def run(self) -> None:
        cp, pub = self.cp, self.pub
        if cp is not None:
            if cp.store != self.store:
                raise _Found(Problem(cp.seq, "checkpoint_foreign", "检查点文件属于另一个数据存储"))
            if pub is None:
                raise AuditKeyMissing(where=str(public_key_path(self.app.config)))
            if cp.key_id != self.kid or not cp.signature_valid(pub):
                raise _Found(Problem(cp.seq, "checkpoint_forged", "检查点文件的签名无效（不是本系统的签名密钥所签）"))
        prev = genesis_hash(self.store) if self.start_prev is None else self.start_prev
        expected = self.first_seq
        batches = _trail_batches(self.db, expected - 1, self.batch, self.last_seq)
        while True:
            prev, expected = self._walk(batches, prev, expected)
            # Events after the last entry: perhaps written since the trail was read (each
            # commits with its entry, so read the trail once more before calling it unrecorded).
            ev = self.events.peek()
            if ev is None:
                break
            batches = _trail_batches(self.db, expected - 1, self.batch, self.last_seq)
            first = next(batches, None)
            if first is None:
                raise _unrecorded(expected, self.events.described(ev))
            batches = _chain([first], batches)
        if cp is not None and self.last_seq is None and cp.seq >= expected:
            raise _Found(
                Problem(
                    expected,
                    "truncated",
                    f"审计记录在第 {expected - 1} 条结束，但检查点文件签过第 {cp.seq} 条：末尾的记录被删除",
                )
            )
        self.report.entries = self.report.head_seq = expected - 1
        self.report.events = self.events.count
        self.report.head_hash = prev

    def _walk(self, batches: Iterator[list[tuple[Any, ...]]], prev: str, expected: int) -> tuple[str, int]:
        sha = hashlib.sha256
        cp_seq = self.cp.seq if self.cp is not None else -1
        events = self.events
        got: list[str] = []
        ev_rows: Sequence[tuple[Any, ...]] = []
        i = n = 0  # the next of the n taken events' hashes
        for rows in batches:
            for seq, at, kind, actor_id, subject, detail, payload, sealed, prev_hash, h in rows:
                if seq != expected or prev_hash != prev:
                    if seq != expected:
                        raise _Found(
                            Problem(
                                expected,
                                "entry_missing",
                                (
                                    f"第 {expected} 至 {seq - 1} 条审计记录不见了：记录被删除"
                                    if seq > expected + 1
                                    else f"第 {expected} 条审计记录不见了：记录被删除"
                                ),
                            )
                        )
                    raise _Found(Problem(seq, "entry_moved", "这条记录不接在上一条之后：记录被删除、插入或调换了位置"))
                if (
                    sha(
                        f"{prev}\x1f{seq}\x1f{at}\x1f{kind}\x1f{actor_id}\x1f{subject}\x1f{detail}\x1f{payload}".encode()
                    ).hexdigest()
                    != h
                ):
                    raise _Found(Problem(seq, "entry_altered", "这条记录的内容与其哈希不符：记录被改动"))
                if kind == "event":
                    if i == n:
                        got, ev_rows = events.take()
                        i, n = 0, len(got)
                    if i == n or got[i] != payload:
                        _check_event(events, ev_rows[i] if i < len(ev_rows) else None, seq, subject, detail, payload)
                    i += 1
                else:
                    if sealed is not None or payload:
                        if sealed is None or sha(sealed).hexdigest() != payload:
                            raise _Found(
                                Problem(seq, "sealed_altered", "这条记录的加密理由与其哈希不符：理由被改动或删除")
                            )
                    if kind == "checkpoint":
                        _check_stored_checkpoint(
                            seq, at, subject, detail, prev, self.store, self.pub, self.kid, self.app
                        )
                        self.report.checkpoints += 1
                if seq == cp_seq and h != self.cp.entry_hash:  # type: ignore[union-attr]
                    raise _Found(Problem(seq, "checkpoint_mismatch", "与检查点文件所签的链头不符：此前的历史被改写"))
                prev = h
                expected += 1
        events.give_back(len(got) - i)
        return prev, expected


def _chain(
    first: list[list[tuple[Any, ...]]], rest: Iterator[list[tuple[Any, ...]]]
) -> Iterator[list[tuple[Any, ...]]]:
    yield from first
    yield from rest


def _check_stored_checkpoint(
    seq: int,
    at: str,
    subject: str,
    detail: str,
    prev: str,
    store: str,
    pub: Ed25519PublicKey | None,
    kid: str | None,
    app: Core,
) -> None:
    try:
        d = json.loads(detail)
        signed = Checkpoint(store, int(d["seq"]), str(d["entry_hash"]), at, subject, "", str(d["signature"]))
    except (ValueError, KeyError, TypeError) as e:
        raise _Found(Problem(seq, "checkpoint_invalid", "检查点记录无法读取")) from e
    if signed.seq != seq - 1 or signed.entry_hash != prev:
        raise _Found(Problem(seq, "checkpoint_mismatch", "此检查点所签的链头与现有记录不符：此前的历史被改写"))
    if pub is None:
        raise AuditKeyMissing(where=str(public_key_path(app.config)))
    if subject != kid or not signed.signature_valid(pub):
        raise _Found(Problem(seq, "checkpoint_invalid", "检查点的签名无效"))
