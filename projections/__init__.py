"""Read models (views) of the event streams.

Each public module holds one view's queries, the ones people work from, every one
through the application's gate, and `views(app)`; its `View` subclass (its tables and its
fold) is beside it, in `<module>_view` (`case_board` keeps both, `report` is a package).
`projections.base` gathers the parts every view shares (the runner, write-behind, the
`Source` protocol)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from projections.base import Source, View


def all_views(app: Source) -> list[View]:
    """Every view, in the order they are kept up to date."""
    from projections import (
        case_board,
        pairing_board,
        report,
        support_register,
        timeline,
        work_queue,
    )

    views: list[View] = []
    for module in (work_queue, pairing_board, support_register, case_board, timeline, report):
        views.extend(module.views(app))
    return views
