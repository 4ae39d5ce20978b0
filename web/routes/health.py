"""Probes for a load balancer or an orchestrator, without an account: `/healthz` (the
process answers) and `/readyz` (the store answers, this process's master key opens it,
the views are caught up within ANXIN_READY_MAX_LAG events; else 503). Codes and counts
only: no names, no ids, no session, nothing written."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from anxin.health import readiness
from web.deps import App

router = APIRouter(include_in_schema=False)


@router.get("/healthz")
def healthz() -> JSONResponse:
    return JSONResponse({"status": "ok"})


@router.get("/readyz")
def readyz(app: App) -> JSONResponse:
    ready, checks = readiness(app)
    return JSONResponse(
        {"status": "ready" if ready else "unready", "checks": checks}, status_code=200 if ready else 503
    )
