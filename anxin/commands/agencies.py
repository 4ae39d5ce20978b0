"""The district's registry of agencies a referral (转介) goes to: 精神卫生中心, 医院, 公安,
民政/社工, 检察院; kind and name of each institution (institutions are not personal data: the
side table `anxin_agencies` holds ids, codes and their names in clear). Maintained by the
district's administrator or a supervisor (AGENCY_ADMIN: each change is a decision of the gate,
recorded with the agency's id); an agency no longer used is retired, never deleted, so every
referral that named it still reads. A referral on a file (and a crisis's referral step) picks
an active agency of the school's district (`for_school`, not decided by the gate, like the
staff pick lists: names of institutions, nothing about a student)."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import uuid4

from anxin.commands.base import Commands
from domain import access
from domain.access import Resource
from domain.common import Actor, DomainError, require, require_text
from domain.support import AGENCY_KINDS


class AgencyUnknown(DomainError):
    code = "agency_unknown"
    message = "请从本区的转介机构名录中选择机构"


class AgencyExists(DomainError):
    code = "agency_exists"
    message = "名录中已有同名机构「{name}」"


@dataclass(frozen=True)
class Agency:
    id: str
    district: str
    kind: str
    name: str
    active: bool

    @property
    def kind_label(self) -> str:
        return AGENCY_KINDS.get(self.kind, self.kind)


class AgencyCommands(Commands):
    """The registry: list, add, retire; and an agency looked up for a referral."""

    COLUMNS = "agency_id, district, kind, name, active"

    def _resource(self, actor: Actor, agency_id: str | None = None) -> Resource:
        return Resource(kind="agency", id=agency_id, district=actor.district)

    def registry(self, actor: Actor) -> list[Agency]:
        """The district's registry with retired agencies, for the page that maintains it."""
        self.core.authorize(actor, access.AGENCY_ADMIN, self._resource(actor))
        return self._list(actor.district, active_only=False)

    def for_school(self, school_id: str | None) -> list[Agency]:
        """The active agencies a referral from this school may pick (its district's)."""
        if not school_id:
            return []
        return self._list(self.core.gate.district_of(school_id), active_only=True)

    def _list(self, district: str, *, active_only: bool) -> list[Agency]:
        sql = f"SELECT {self.COLUMNS} FROM {{t}}anxin_agencies WHERE district = ?"
        if active_only:
            sql += " AND active = 1"
        rows = self.db.fetch(sql, (district,))
        kinds = list(AGENCY_KINDS)
        return sorted(
            (Agency(r[0], r[1], r[2], r[3], bool(r[4])) for r in rows),
            key=lambda a: (not a.active, kinds.index(a.kind) if a.kind in kinds else 99, a.name),
        )

    def add_agency(self, actor: Actor, *, kind: str, name: str) -> str:
        """Add an agency to the district's registry: its kind and its name."""
        agency_id = uuid4().hex
        self.core.authorize(actor, access.AGENCY_ADMIN, self._resource(actor, agency_id))
        require(kind in AGENCY_KINDS, f"机构类别「{kind}」无效")
        name = require_text(name, "机构名称")
        require(len(name) <= 60, "机构名称过长（不超过60字）")
        if self.db.fetchone("SELECT 1 FROM {t}anxin_agencies WHERE district = ? AND name = ?", (actor.district, name)):
            raise AgencyExists(name=name)
        self.db.execute(
            "INSERT INTO {t}anxin_agencies (agency_id, district, kind, name, active, changed_at) "
            "VALUES (?, ?, ?, ?, 1, ?)",
            (agency_id, actor.district, kind, name, self.now().isoformat()),
        )
        return agency_id

    def retire_agency(self, actor: Actor, agency_id: str) -> None:
        """An agency no longer referred to: it leaves the pick lists; past referrals keep it."""
        self.core.authorize(actor, access.AGENCY_ADMIN, self._resource(actor, agency_id))
        found = self.agency(agency_id)
        if found is None or found.district != actor.district:
            raise AgencyUnknown()
        self.db.execute(
            "UPDATE {t}anxin_agencies SET active = 0, changed_at = ? WHERE agency_id = ?",
            (self.now().isoformat(), agency_id),
        )

    def agency(self, agency_id: str) -> Agency | None:
        r = self.db.fetchone(f"SELECT {self.COLUMNS} FROM {{t}}anxin_agencies WHERE agency_id = ?", (agency_id,))
        return Agency(r[0], r[1], r[2], r[3], bool(r[4])) if r else None

    def pick(self, school_id: str, agency_id: str) -> Agency:
        """The active agency of the school's district a referral names (AgencyUnknown otherwise)."""
        found = self.agency(str(agency_id or ""))
        if found is None or not found.active or found.district != self.core.gate.district_of(school_id):
            raise AgencyUnknown()
        return found


__all__ = ["Agency", "AgencyCommands", "AgencyExists", "AgencyUnknown"]
