"""Erasure: a stream's key destroyed (crypto-shredding), and with a student's, the keys of
every stream about them alone; what an erasure destroys and what it leaves. After the
gate's SHRED for the stream's school; all or nothing, with one `shred` entry of the audit
trail per stream."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING
from uuid import UUID

from anxin import audit
from anxin.commands.base import Commands
from domain import access
from domain.common import Actor, Erased, NotFound, require_text

if TYPE_CHECKING:
    from anxin.core import Core

KIND_LABELS = {
    "student": "学生",
    "case": "欺凌案件",
    "file": "心理档案",
    "pairing": "一岗双带结对",
    "staff": "教职工账号",
    "screening": "心理筛查记录",
}
# A student's own streams: about them alone, so erased with them. A bullying case is the
# school's record of an incident among several people: it stays (see Erasure.kept).
OWN_KINDS = ("pairing", "file", "screening")
SHARED_REMAINS = (
    "案件中该生的当事人身份（如被欺凌学生）和学生编号仍在；其陈述、针对其的干预和家长通知，"
    "以及案件文字中写到的姓名，仍可由有权查看该案件的人读到；显示其姓名之处改为“已删除”"
)


@dataclass(frozen=True)
class ErasureItem:
    """One stream in an erasure: its id, kind and status (from the directory), and for a
    stream shared with other students, the erased student's part(s) in it."""

    stream_id: str
    kind: str
    status: str | None = None
    parts: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return KIND_LABELS.get(self.kind, self.kind)


@dataclass(frozen=True)
class Erasure:
    """What shredding a stream destroys and what it leaves: for a student, their own
    stream and every stream about them alone (`destroyed`, the student first), and the
    streams shared with other students that stay readable (`kept`: bullying cases)."""

    stream_id: str
    kind: str
    school_id: str | None
    class_name: str | None
    erased: bool  # the stream itself was erased before
    destroyed: tuple[ErasureItem, ...]
    kept: tuple[ErasureItem, ...] = ()

    @property
    def label(self) -> str:
        return KIND_LABELS.get(self.kind, self.kind)


class ErasureCommands(Commands):
    """Plan an erasure, erase, shred; whether a stream is erased, whether any was lately."""

    def __init__(self, core: Core) -> None:
        super().__init__(core)
        self._shreds_seen: int | None = None  # (notice_shreds)

    def shred(self, actor: Actor, stream_id: str, reason: str) -> str:
        """Destroy a stream's key (a student's: with every stream about them alone, see
        `erase`): its content is erased everywhere, for good. The stream's kind."""
        return self.erase(actor, stream_id, reason).kind

    def plan(self, actor: Actor, stream_id: str) -> Erasure:
        """What `erase` would destroy and leave (ids, kinds, statuses: no content), after
        the gate (SHRED) for the stream's school."""
        try:
            UUID(str(stream_id))
        except ValueError:
            raise NotFound() from None
        row = self.db.fetchone(
            "SELECT kind, school_id, class_name, erased FROM {t}anxin_directory WHERE stream_id = ?", (stream_id,)
        )
        if row is None:
            raise NotFound()
        self.core.check(actor, access.SHRED, "keys", school_id=row[1])
        kind, erased = row[0], bool(row[3])
        own: list[ErasureItem] = [] if erased else [ErasureItem(stream_id, kind)]
        kept: list[ErasureItem] = []
        if kind == "student":
            # Every stream linked to the student, with its part(s) and how many students it has.
            found: dict[str, tuple[str, str | None, bool, list[str], int]] = {}
            for sid, k, status, gone, part, students in self.db.fetch(
                "SELECT d.stream_id, d.kind, d.status, d.erased, l.part, (SELECT COUNT(DISTINCT l2.student_id) "
                "FROM {t}anxin_links l2 WHERE l2.stream_id = d.stream_id) FROM {t}anxin_links l "
                "JOIN {t}anxin_directory d ON d.stream_id = l.stream_id WHERE l.student_id = ? "
                "ORDER BY d.kind, d.stream_id, l.part",
                (stream_id,),
            ):
                found.setdefault(sid, (k, status, bool(gone), [], int(students)))[3].append(part)
            for sid, (k, status, gone, parts, students) in found.items():
                if k in OWN_KINDS and students == 1:
                    if not gone:
                        own.append(ErasureItem(sid, k, status))
                elif not gone:
                    kept.append(ErasureItem(sid, k, status, tuple(parts)))
        return Erasure(stream_id, kind, row[1], row[2], erased, tuple(own), tuple(kept))

    def erase(self, actor: Actor, stream_id: str, reason: str) -> Erasure:
        """Destroy the keys of a stream and, for a student, of every stream about them
        alone (their pairings, support files, screenings), in one transaction with the
        directory's flags and one `shred` entry of the audit trail per stream: all or
        nothing. Streams shared with other students (bullying cases) stay, and are named
        in the result (`kept`). A student erased before (by a version that erased only
        their own stream) has the rest erased now."""
        require_text(reason, "删除原因")
        plan = self.plan(actor, stream_id)
        if not plan.destroyed:
            raise Erased()
        now = self.now().isoformat()
        entries = [
            audit.security_row(
                self.core,
                "shred",
                actor.staff_id,
                e.stream_id,
                {"kind": e.kind} if e.stream_id == stream_id else {"kind": e.kind, "of": stream_id},
            )
            for e in plan.destroyed
        ]
        with self.db.transaction() as c:
            c.executemany(
                self.db.q("UPDATE {t}anxin_keys SET wrapped = NULL, shredded_at = ? WHERE stream_id = ?"),
                [(now, UUID(e.stream_id).hex) for e in plan.destroyed],
            )
            c.executemany(
                self.db.q("UPDATE {t}anxin_directory SET erased = 1 WHERE stream_id = ?"),
                [(e.stream_id,) for e in plan.destroyed],
            )
            audit.append(c, self.db, entries)
        for e in plan.destroyed:
            self.core.keystore.forget(UUID(e.stream_id).hex)
            self.core.after_shred(e.stream_id)
            if self.core.repository.cache is not None:
                self.core.repository.cache.put(UUID(e.stream_id), None)  # type: ignore[arg-type]
        return plan

    def notice_shreds(self) -> bool:
        """Whether any process has shredded a stream since this one last asked (one indexed
        count: a shredded key is never restored in a store, so the count only grows). If
        so, the keys of shredded streams cached here are dropped, and the caller drops what
        it derived from them (names it keeps). Cheap enough to ask once per page."""
        n = int(self.db.fetchone("SELECT COUNT(*) FROM {t}anxin_keys WHERE wrapped IS NULL")[0])
        if self._shreds_seen == n:
            return False
        for (sid,) in self.db.fetch("SELECT stream_id FROM {t}anxin_keys WHERE wrapped IS NULL"):
            self.core.keystore.forget(sid)
        self._shreds_seen = n
        return True

    def is_erased(self, stream_id: str) -> bool:
        return self.core.keystore.is_erased(UUID(stream_id).hex)
