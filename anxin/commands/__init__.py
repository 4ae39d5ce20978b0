"""The application's commands and reads, one class per area, each given the core
(anxin.core.Core, which composes them): `cases` (bullying cases; reads in case_reads),
`support` (support files), `screenings` (screening records, the CSV import: screening_csv,
coverage), `pairings`, `roster` (schools, staff, students), `escalation` (a check-in's
concern to a file or a case), `crisis` (the crisis pathway: signals and the checklist),
`erasure`, `agencies` (the district's registry of agencies a referral goes to), `committee` (a school's
bullying governance body). What they share: `base`."""

from __future__ import annotations

from anxin.commands.agencies import AgencyCommands
from anxin.commands.base import Commands
from anxin.commands.cases import CaseCommands
from anxin.commands.committee import CommitteeCommands
from anxin.commands.crisis import CrisisCommands
from anxin.commands.erasure import ErasureCommands
from anxin.commands.escalation import EscalationCommands
from anxin.commands.pairings import PairingCommands
from anxin.commands.roster import RosterCommands
from anxin.commands.screenings import ScreeningCommands
from anxin.commands.support import SupportCommands

# The commands by area: each the attribute of the core that holds it (`app.pairings`).
COMMAND_AREAS: dict[str, type[Commands]] = {
    "roster": RosterCommands,
    "pairings": PairingCommands,
    "cases": CaseCommands,
    "support": SupportCommands,
    "screenings": ScreeningCommands,
    "escalations": EscalationCommands,
    "crisis": CrisisCommands,
    "erasure": ErasureCommands,
    "agencies": AgencyCommands,
    "committee": CommitteeCommands,
}

__all__ = [
    "AgencyCommands",
    "COMMAND_AREAS",
    "Commands",
    "CaseCommands",
    "CommitteeCommands",
    "CrisisCommands",
    "ErasureCommands",
    "EscalationCommands",
    "PairingCommands",
    "RosterCommands",
    "ScreeningCommands",
    "SupportCommands",
]
