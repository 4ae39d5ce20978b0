"""`anxin serve` and `anxin check`: running the web application, and the store's health."""

from __future__ import annotations

import argparse
import os
from typing import Any

from anxin.cli.common import CLIError, _config, _open


def cmd_check(args: argparse.Namespace) -> int:
    from anxin.health import check

    return check(_config(args), max_lag=args.max_lag)


# The server's log: the application's own lines (method, path, status; startup) at INFO,
# uvicorn's at WARNING. A dict, not basicConfig: uvicorn applies it in every worker process.
# One handler, for every logger: its formatter escapes the control characters of every line
# (a `%0a` in a path never starts a forged line; anxin/logsafe.py).
SERVE_LOG_CONFIG: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {
            "()": "anxin.logsafe.EscapingFormatter",
            "format": "%(asctime)s [%(process)d] %(name)s %(message)s",
        }
    },
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"level": "INFO", "handlers": ["stderr"]},
}


def cmd_serve(args: argparse.Namespace) -> int:
    """The web application, named to uvicorn by its import path: the application layer
    composes nothing of the web (dependencies point from web to the application)."""
    import uvicorn

    if args.workers < 1:
        raise CLIError("--workers 至少为 1")
    os.environ.setdefault("ANXIN_DATA_DIR", args.data_dir or "var")
    # Opened here first: a missing key or an unreachable database fails now with its message,
    # and the side tables (sessions, login failures) exist before several workers start.
    app = _open(args)
    app.accounts.prepare()
    app.close()
    print(f"安心 Anxin 网页服务：http://{args.host}:{args.port}/ （{args.workers} 个进程，Ctrl+C 停止）", flush=True)
    # uvicorn's access log would print query strings (a name searched for); the
    # application logs method, path and status itself. Each process (one, or several
    # workers) opens the application from the environment (ANXIN_DATA_DIR or
    # ANXIN_DATABASE_URL, as set above); sessions and the login throttle live in the
    # database, so any worker serves any request.
    uvicorn.run(
        "web.app:create_app",
        factory=True,
        workers=args.workers if args.workers > 1 else None,
        host=args.host,
        port=args.port,
        access_log=False,
        proxy_headers=False,  # X-Forwarded-For only from ANXIN_TRUSTED_PROXIES (web.security), never uvicorn's default
        log_level="warning",
        log_config=SERVE_LOG_CONFIG,
    )
    return 0
