"""Every answer carries the security headers: a page, and the framework's 404 and 405,
and a 500 from an exception no route expected (its handler sits in Starlette's outermost
middleware, so the headers must be added outside it)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from anxin.service import Anxin
from web.app import CSP, create_app

SECURITY_HEADERS = {
    "content-security-policy": CSP,
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}


@pytest.fixture
def web(app: Anxin) -> Iterator[tuple[FastAPI, TestClient]]:
    api = create_app(app, background_seconds=None)
    # (the server logs an unexpected error after answering it: the client must not raise it here)
    with TestClient(api, base_url="http://testserver", raise_server_exceptions=False) as client:
        yield api, client


def headers_missing(response: object) -> dict[str, str | None]:
    got = response.headers  # type: ignore[attr-defined]
    return {k: got.get(k) for k, v in SECURITY_HEADERS.items() if got.get(k) != v}


@pytest.mark.parametrize("path", ["/boom", "/api/v1/boom"])
def test_an_unexpected_error_answers_500_with_the_security_headers_and_no_traceback(
    web: tuple[FastAPI, TestClient], path: str
) -> None:
    # given a route that fails with an error nothing handles
    api, client = web

    def boom() -> None:
        raise RuntimeError("secret detail from deep inside")

    api.add_api_route(path, boom)

    # when it is asked for
    r = client.get(path)

    # then the answer is a 500 with every security header, and neither the error nor a traceback
    assert r.status_code == 500
    assert headers_missing(r) == {}
    assert "Traceback" not in r.text and "secret detail" not in r.text and "RuntimeError" not in r.text


def test_the_frameworks_404_and_405_carry_the_security_headers(web: tuple[FastAPI, TestClient]) -> None:
    _, client = web
    for method, path, status in [
        ("GET", "/no-such-page", 404),
        ("GET", "/api/v1/no-such-thing", 404),
        ("DELETE", "/login", 405),
    ]:
        r = client.request(method, path)
        assert r.status_code == status, (method, path)
        assert headers_missing(r) == {}, (method, path)
