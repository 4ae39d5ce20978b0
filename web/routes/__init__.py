"""One router per area of the product; `include_all` mounts every one that exists."""

from __future__ import annotations

import importlib
import pkgutil

from fastapi import FastAPI


def include_all(app: FastAPI) -> None:
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        router = getattr(module, "router", None)
        if router is not None:
            app.include_router(router)
