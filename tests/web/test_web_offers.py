"""Pages offer only what the reader may use: every link a page shows leads somewhere the
reader is let in, and every form a page shows is one the gate lets the reader send.

Each role walks the demo as a person would: from the start page, along the menu and the
links of each page (one page per kind of address), and every form met on the way is sent
as it stands (required fields filled in with something plausible). A link answered with
403, or a form whose POST is answered with 403 (the gate refused the person), fails the
test with the page it was found on. Forms really are sent, so the walk runs on a demo of
its own (a real SQLite file), never the shared one other tests read.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from web_support import Browser

import web.routes
from anxin.crypto import MasterKey
from anxin.demo import load_demo
from anxin.service import Anxin
from anxin.storage import StoreConfig
from web.app import create_app

ROLES = ["teacher1", "counselor1", "safety1", "principal1", "supervisor1", "admin"]
# Never followed or sent: leaving the session, switching language, static files, the API.
SKIP = re.compile(r"^/(logout|lang/|static/|api/|docs|openapi|health)")
ID = re.compile(r"/([0-9a-f]{8}(-?[0-9a-f]{4}){3}-?[0-9a-f]{12}|[0-9a-f]{16,64}|\d+)(?=/|$)")


@dataclass
class Form:
    action: str
    fields: list[tuple[str, str]] = field(default_factory=list)
    required: dict[str, str] = field(default_factory=dict)  # name -> input type
    files: list[str] = field(default_factory=list)  # file inputs: sent with a small CSV


class Page(HTMLParser):
    """The links and the POST forms of a page, with each field's value as shown."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.forms: list[Form] = []
        self._form: Form | None = None
        self._select: tuple[str, list[tuple[str, bool]]] | None = None
        self._textarea: str | None = None
        self._text = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "a" and a.get("href", "").startswith("/"):
            self.links.append(a["href"])
        elif tag == "form" and a.get("method", "get").lower() == "post":
            self._form = Form(a.get("action", ""))
        elif self._form is None:
            return
        elif tag == "input" and a.get("name"):
            kind = a.get("type", "text")
            if kind in ("checkbox", "radio"):
                if "checked" in a:
                    self._form.fields.append((a["name"], a.get("value", "on")))
                elif "required" in a or kind == "radio":
                    self._form.required.setdefault(a["name"], f"{kind}:{a.get('value', 'on')}")
            elif kind == "file":
                self._form.files.append(a["name"])
            else:
                self._form.fields.append((a["name"], a.get("value", "")))
                if "required" in a and not a.get("value"):
                    self._form.required[a["name"]] = kind
        elif tag == "select" and a.get("name"):
            self._select = (a["name"], [])
        elif tag == "option" and self._select is not None:
            self._select[1].append((a.get("value", ""), "selected" in a))
        elif tag == "textarea" and a.get("name"):
            self._textarea, self._text = a["name"], ""
            if "required" in a:
                self._form.required[a["name"]] = "textarea"

    def handle_data(self, data: str) -> None:
        if self._textarea is not None:
            self._text += data

    def handle_endtag(self, tag: str) -> None:
        if self._form is None:
            return
        if tag == "select" and self._select is not None:
            name, options = self._select
            chosen = [v for v, sel in options if sel] or [v for v, _ in options if v] or [""]
            self._form.fields.append((name, chosen[0]))
            self._select = None
        elif tag == "textarea" and self._textarea is not None:
            self._form.fields.append((self._textarea, self._text))
            if self._text.strip():
                self._form.required.pop(self._textarea, None)
            self._textarea = None
        elif tag == "form":
            self.forms.append(self._form)
            self._form = None


def _filled(form: Form) -> dict[str, Any]:
    """The form as a person would send it: what it shows, and something in every required
    field (a radio or required checkbox: its first choice)."""
    data: dict[str, Any] = {}
    for name, value in form.fields:
        if name in data:
            data[name] = [*data[name], value] if isinstance(data[name], list) else [data[name], value]
        else:
            data[name] = value
    now = datetime.now()
    for name, kind in form.required.items():
        if data.get(name) not in (None, ""):
            continue
        if kind.startswith(("radio:", "checkbox:")):
            data[name] = kind.split(":", 1)[1]
        elif kind == "datetime-local":
            data[name] = now.strftime("%Y-%m-%dT%H:%M")
        elif kind == "date":
            data[name] = now.date().isoformat()
        elif kind == "number":
            data[name] = "1"
        else:
            data[name] = "巡查中发现的情况，已当面核实"
    return data


def pattern(path: str) -> str:
    return ID.sub("/{id}", path.split("?")[0].split("#")[0])


@pytest.fixture(scope="module")
def own_site() -> Iterator[Any]:
    with tempfile.TemporaryDirectory() as tmp:
        app = Anxin(StoreConfig(url=None, data_dir=Path(tmp)), [MasterKey.generate()])
        load_demo(app, students_per_school=200)
        web = create_app(app, background_seconds=None)
        try:
            yield web
        finally:
            app.close()


def _browser(web: Any, username: str) -> Browser:
    client = TestClient(web, base_url="http://testserver")
    return Browser(client, None).login(username)


def typed_addresses() -> list[str]:
    """Every page address without a record in it (GET): what a person may type or bookmark,
    whether or not their menu offers it."""
    routes = [
        r
        for info in pkgutil.iter_modules(web.routes.__path__)
        for r in getattr(importlib.import_module(f"web.routes.{info.name}"), "router", None).routes
        if info.name != "api"
    ]
    return sorted(
        r.path
        for r in routes
        if "GET" in getattr(r, "methods", ()) and "{" not in r.path and not SKIP.match(r.path)
        if r.path not in ("/login", "/setup", "/favicon.ico")
    )


def walk(b: Browser, typed: list[str], limit: int = 90) -> tuple[list[str], list[str], int, int]:
    """Walk from the start page and every typed address, then along the links; (links
    answered 403, forms answered 403, pages, forms). A typed address may be refused (it was
    not offered), but what its page shows is checked all the same."""
    refused_links: list[str] = []
    refused_forms: list[str] = []
    status: dict[str, int] = {}  # each kind of address visited: its answer
    sent: set[str] = set()
    queue: list[tuple[str, str]] = [("/", "(start)")] + [(p, "(typed)") for p in typed]
    pages = 0
    while queue and pages < limit:
        path, found_on = queue.pop(0)
        key = pattern(path)
        if SKIP.match(path):
            continue
        if key in status:  # visited: a link to it is refused if the address was
            if status[key] == 403 and found_on != "(typed)":
                refused_links.append(f"{path} (link on {found_on})")
            continue
        r = b.get(path.split("#")[0])
        status[key] = r.status_code
        pages += 1
        if r.status_code == 403 and found_on != "(typed)":
            refused_links.append(f"{path} (link on {found_on})")
        if r.status_code not in (200, 403) or "text/html" not in r.headers.get("content-type", ""):
            continue
        page = Page()
        page.feed(r.text)
        for form in page.forms:
            action = form.action or path
            form_key = pattern(action)
            if SKIP.match(action) or form_key in sent:
                continue
            sent.add(form_key)
            files = {name: ("upload.csv", "学号,姓名\r\n".encode()) for name in form.files} or None
            answer = b.post(action, _filled(form), files=files)
            if answer.status_code == 403:
                refused_forms.append(f"POST {action} (form on {path})")
        queue += [(href, path) for href in page.links]
    return refused_links, refused_forms, pages, len(sent)


@pytest.mark.parametrize("username", ROLES)
def test_pages_offer_no_link_or_form_the_reader_would_be_refused(own_site: Any, username: str) -> None:
    links, forms, pages, sent = walk(_browser(own_site, username), typed_addresses())
    assert pages >= 3 and sent >= 1, (pages, sent)  # the walk did go somewhere
    assert not links, f"{username} is shown links answered 403: {links}"
    assert not forms, f"{username} is shown forms the gate refuses: {forms}"
