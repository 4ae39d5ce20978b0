"""(view module, being written)"""

from __future__ import annotations

from typing import Any


def views(app: Any) -> list[Any]:
    return []
