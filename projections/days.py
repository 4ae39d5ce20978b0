"""Days as the views store them: proleptic ordinals (`date.toordinal()`), so day
arithmetic (a due date plus a cadence) is plain integer arithmetic on SQLite and
PostgreSQL alike; and the day a query is asked for."""

from __future__ import annotations

from datetime import date, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from projections.source import Source


def ordinal(value: date | datetime) -> int:
    """The day of a date, or of a time (its date)."""
    return (value.date() if isinstance(value, datetime) else value).toordinal()


def ordinal_or_none(value: date | None) -> int | None:
    return value.toordinal() if value is not None else None


def from_ordinal(day: int | None) -> date | None:
    return date.fromordinal(day) if day is not None else None


def today_of(app: Source, today: date | None) -> date:
    """The day a query is asked for: `today` if given, else the application's today."""
    return today if today is not None else app.now().date()
