"""No internal code on any page (issue 18): every page of the demo district, as every role
would reach it, in Chinese and in English, shows words, never a stored code
("结果 upheld", "报告渠道 parent", a status, a severity, an event's class name, a role id).

How: one demo store of its own (the shared one is left alone: the supervisor's break-glass
reads here would put entries in other tests' review queues), rendered through the real
FastAPI application with Starlette's TestClient (no browser: fast). For each role the test
starts from every GET page without a path parameter and follows the links each page shows
(a record's number, a student's name, a notice), so it reaches what that person can reach,
records of every kind and state included; a page that asks a supervisor for a reason first
is given one (a few records per kind). Each page's visible text (text nodes outside
<script>/<style>, option labels included; attributes and hidden inputs are not text) is
searched for every code the domain defines (its vocabularies, states, roles, actions, event
class names, stream kinds), collected from the domain modules so a new vocabulary is
covered without editing this test.

In English, text the system wrote (labels, headings, table headers, alert reasons,
instrument names...) must be English too: every visible text node is searched for Chinese
characters once what people typed or named is taken out (the demo's students, staff,
schools, classes and grades, agencies, and the sentences the demo types as a person would:
the Chinese string literals of anxin/demo.py). What is left Chinese is system-written text
left untranslated.
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
import re
import tempfile
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from enum import Enum
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient
from web_support import Browser

import web.routes
from anxin.crypto import MasterKey
from anxin.demo import load_demo
from anxin.service import Anxin
from anxin.storage import StoreConfig
from web.app import create_app
from web.security import LANG_COOKIE

ROOT = Path(__file__).resolve().parents[2]
ROLES = ["teacher1", "counselor1", "safety1", "principal1", "supervisor1", "admin"]
CRAWLED = [*ROLES, "principal2"]  # and the other school's principal: its records too
LANGS = ["zh", "en"]
CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")

# Pages that are not pages a person reads as prose: the API reference (it documents the
# codes, for programmers), files to download, redirects and the signed-out flows.
NOT_PAGES = re.compile(r"^/(api/|docs|openapi\.json|healthz|readyz|lang/|logout|login|setup/)|\.(csv|xlsx|json|pdf)$")
BREAK_GLASS_PER_KIND = 3  # a supervisor states a reason for this many records of each kind
PER_PATTERN = 400  # at most this many pages of one route pattern per person and language


# -- the codes -------------------------------------------------------------------------------------
VOCABULARY_MODULES = [
    "domain.common",
    "domain.access",
    "domain.bullying.vocabulary",
    "domain.support.vocabulary",
    "domain.pairing",
    "domain.screening",
    "domain.notices",
    "domain.committee",
    "domain.roster",
    "domain.policy",
    "projections.timeline_labels",
]
CODE = re.compile(r"^[a-z][a-z0-9]*(?:[_.][a-z0-9]+)*$")
CAMEL = re.compile(r"^[A-Z][a-z0-9]+(?:[A-Z][a-z0-9]+)+$")
# Words that are codes somewhere but also what an English page must say in words
# ("Other", "Phone"): found in English only when a whole text is the bare lower-case code.
TOO_SHORT = 3


def _strings(value: Any, depth: int = 0) -> Iterator[str]:
    if depth > 3:
        return
    if isinstance(value, Enum):
        yield str(value.value)
    elif isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _strings(k, depth + 1)
            if isinstance(v, dict | tuple | list | frozenset | set):
                yield from _strings(v, depth + 1)
    elif isinstance(value, tuple | list | frozenset | set):
        for v in value:
            yield from _strings(v, depth + 1)


def domain_codes() -> set[str]:
    """Every code the domain defines: the keys of its vocabularies (and nested ones), its
    tuples of states, its enums, the actions of the permission table, event class names."""
    codes: set[str] = set()
    for name in VOCABULARY_MODULES:
        module = importlib.import_module(name)
        for attr, value in vars(module).items():
            if attr.startswith("_") or isinstance(value, type) and not issubclass(value, Enum):
                continue
            if isinstance(value, type):  # an Enum
                codes |= {str(m.value) for m in value}  # type: ignore[var-annotated]
                continue
            if isinstance(value, str) and not attr.isupper():
                continue
            codes |= {s for s in _strings(value) if CODE.match(s) and len(s) >= TOO_SHORT}
    topics = (ROOT / "tests" / "event_topics.txt").read_text(encoding="utf-8").splitlines()
    for topic in topics:
        if topic and not topic.startswith("#"):
            codes |= {part for part in re.split(r"[:.]", topic) if CAMEL.match(part)}
    return codes


CODES = domain_codes()
COMPOUND = {c for c in CODES if "_" in c or "." in c or CAMEL.match(c)}
WORDS = CODES - COMPOUND
TOKEN = re.compile(r"[A-Za-z][A-Za-z0-9_.]*[A-Za-z0-9]|[A-Za-z]")


def codes_in(text: str, lang: str) -> list[str]:
    """The codes a visible text shows: a compound code (with _ or ., or a class name)
    anywhere; a one-word code as a word of a Chinese page, or as the whole of a text in
    English (where "other" or "phone" inside a sentence is English, not a code)."""
    found = []
    tokens = TOKEN.findall(text)
    for token in tokens:
        if token in COMPOUND or token.rstrip(".") in COMPOUND:
            found.append(token)
        elif lang == "zh" and token in WORDS:
            found.append(token)
    if lang == "en" and text.strip(" \t\n:：,，;；()（）·") in WORDS:
        found.append(text.strip())
    return found


# -- the page's visible text ------------------------------------------------------------------------
class _Text(HTMLParser):
    """Visible text nodes (with the tag they are in), and the page's links."""

    # <code>: a file's required header line, to be typed exactly (the screening CSV's).
    SKIP = {"script", "style", "template", "code"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.skipping = 0
        self.texts: list[tuple[str, str]] = []
        self.links: list[str] = []
        self.forms: list[tuple[str, set[str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag in self.SKIP:
            self.skipping += 1
        if tag == "a" and a.get("href"):
            self.links.append(str(a["href"]))
        if tag == "form":
            self.forms.append((str(a.get("action") or ""), set()))
        if tag in ("input", "textarea") and self.forms and a.get("name"):
            self.forms[-1][1].add(str(a["name"]))
        if tag not in ("br", "img", "input", "meta", "link", "hr", "col", "source", "wbr"):
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SKIP and self.skipping:
            self.skipping -= 1
        if tag in self.stack:
            while self.stack and self.stack.pop() != tag:
                pass

    def handle_data(self, data: str) -> None:
        if self.skipping or not data.strip():
            return
        self.texts.append((self.stack[-1] if self.stack else "", data.strip()))


def parse(html: str) -> _Text:
    p = _Text()
    p.feed(html)
    p.close()
    return p


# -- the demo and the crawl -------------------------------------------------------------------------
def _route_patterns() -> list[re.Pattern[str]]:
    out = []
    for info in pkgutil.iter_modules(web.routes.__path__):
        router = getattr(importlib.import_module(f"web.routes.{info.name}"), "router", None)
        for route in getattr(router, "routes", []):
            if "GET" in getattr(route, "methods", set()) and not NOT_PAGES.search(route.path):
                out.append(re.compile("^" + re.sub(r"\\\{[a-z_0-9]+\\\}", "[^/]+", re.escape(route.path)) + "$"))
    return out


def _start_pages() -> list[str]:
    paths = []
    for info in pkgutil.iter_modules(web.routes.__path__):
        router = getattr(importlib.import_module(f"web.routes.{info.name}"), "router", None)
        for route in getattr(router, "routes", []):
            if "GET" in getattr(route, "methods", set()) and "{" not in route.path and not NOT_PAGES.search(route.path):
                paths.append(route.path)
    return sorted(set(paths))


PATTERNS = _route_patterns()


def _pattern_of(path: str) -> str | None:
    for p in PATTERNS:
        if p.match(path):
            return p.pattern
    return None


@dataclass
class Page:
    who: str
    lang: str
    path: str
    texts: list[tuple[str, str]]


@dataclass
class Crawl:
    pages: list[Page] = field(default_factory=list)
    data: set[str] = field(default_factory=set)  # what people typed or named (allowed Chinese)


def _demo_typed_text() -> set[str]:
    """The Chinese string literals of anxin/demo.py: what the demo types as a person would
    (narratives, notes, reasons) and the names it gives (schools, grades, agencies)."""
    tree = ast.parse((ROOT / "anxin" / "demo.py").read_text(encoding="utf-8"))
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and CJK.search(node.value):
            out |= {part for part in re.split(r"\{[^}]*\}", node.value) if CJK.search(part)}
    return out


def data_strings(app: Anxin) -> list[str]:
    """What people typed or named, which an English page shows as it was written: the
    demo's typed sentences, and the names in the store (students, staff, schools, the
    district, classes and grades). Longest first, to be taken out of a text before it is
    searched for Chinese."""
    out = set(_demo_typed_text()) | {"简体中文", BREAK_GLASS_REASON}  # the switch names Chinese in Chinese
    for _sid, name, district in app.schools():
        out |= {name, district}
    for (stream_id,) in app.db.fetch("SELECT stream_id FROM {t}anxin_directory WHERE kind = 'staff'"):
        out.add(app.roster.staff_name(stream_id))
    for who in ("principal1", "principal2"):
        actor = app.gate.actor(app.accounts.account(who)[0])
        for s in app.roster.list_students(actor, actor.school_id):
            out |= {s.name or "", s.class_name or ""}
            profile = app.roster.student_profile(s.id)  # guardians' names, as the roster gave them
            out |= {str(g.get("name") or "") for g in (profile.guardians if profile else [])}
            grade = re.match(r"^(.+?年级)", s.class_name or "")
            if grade:
                out.add(grade.group(1))
    # A vocabulary word the demo also uses (a file's category 自伤风险) is the system's
    # word, with its translation: it is not data.
    from web import i18n

    out -= set(i18n.catalogue("en"))
    out.add("简体中文")  # the language switch names Chinese in Chinese
    return sorted((s for s in out if s and CJK.search(s)), key=len, reverse=True)


# A statute cited by its own name stays Chinese in English (《未成年人保护法》, 教督〔2017〕10号).
CITATION = re.compile(r"《[^》]*》|[\u4e00-\u9fff]{1,6}〔\d{4}〕\d+号")
BREAK_GLASS_REASON = "核查家长投诉的处理经过（页面检查）"  # typed by this test's supervisor


def chinese_left(text: str, data: list[str]) -> str | None:
    """The Chinese of an English page's text once data is taken out, if any."""
    if not CJK.search(text):
        return None
    text = CITATION.sub(" ", text)
    for d in data:
        if d in text:
            text = text.replace(d, " ")
            if not CJK.search(text):
                return None
    return text if CJK.search(text) else None


def seeds(app: Anxin, school_no: int | None, limit: int | None = None) -> list[str]:
    """Every record of a school (or, with no school, of the district), as the pages a
    person reaches from a number or a name: cases, files and their crisis pages, pairings,
    and every student some record is about (their timelines hold every entry's details).
    Read from the directory (ids and kinds only)."""
    schools = sorted(sid for sid, _name, _district in app.schools())
    rows = app.db.fetch(
        "SELECT d.stream_id, d.kind, d.school_id, l.student_id FROM {t}anxin_directory d "
        "LEFT JOIN {t}anxin_links l ON l.stream_id = d.stream_id"
    )
    by_kind: dict[str, list[str]] = {}
    prefix = {"case": "/cases/", "file": "/support/", "pairing": "/pairings/"}
    for stream_id, kind, school_id, student_id in sorted(rows, key=lambda r: (str(r[0]), str(r[3]))):
        if school_no is not None and school_id != schools[school_no]:
            continue
        if kind in prefix:
            by_kind.setdefault(kind, []).append(prefix[kind] + stream_id)
            if kind == "file":
                by_kind.setdefault("crisis", []).append("/crisis/" + stream_id)
            if student_id:
                by_kind.setdefault("student", []).append("/students/" + student_id)
    out: list[str] = []
    for paths in by_kind.values():
        unique = list(dict.fromkeys(paths))
        out += unique[:limit] if limit else unique
    return out


def crawl(app: Anxin, web_app: Any, who: str, lang: str, extra: list[str]) -> list[Page]:
    client = TestClient(web_app, base_url="http://testserver")
    client.__enter__()
    try:
        b = Browser(client, None).login(who)
        client.cookies.set(LANG_COOKIE, lang)
        seen: set[str] = set()
        per_pattern: dict[str, int] = {}
        glass: dict[str, int] = {}
        queue = deque([*_start_pages(), *extra])
        pages: list[Page] = []
        while queue:
            path = queue.popleft()
            if path in seen:
                continue
            seen.add(path)
            pattern = _pattern_of(path)
            if pattern is None:
                continue
            per_pattern[pattern] = per_pattern.get(pattern, 0) + 1
            if per_pattern[pattern] > PER_PATTERN:
                continue
            r = client.get(path, follow_redirects=False)
            if r.status_code in (301, 302, 303, 307):
                continue
            if "text/html" not in r.headers.get("content-type", ""):
                continue
            page = parse(r.text)
            if any("break_glass_reason" in names for _action, names in page.forms):
                kind = path.split("/")[1]
                glass[kind] = glass.get(kind, 0) + 1
                pages.append(Page(who, lang, path + " (reason form)", page.texts))
                if glass[kind] > BREAK_GLASS_PER_KIND:
                    continue
                action = next(a for a, names in page.forms if "break_glass_reason" in names)
                r = b.post(action, {"break_glass_reason": BREAK_GLASS_REASON})
                if r.status_code != 200:
                    continue
                page = parse(r.text)
            pages.append(Page(who, lang, path, page.texts))
            for href in page.links:
                parts = urlsplit(href)
                if parts.netloc and parts.netloc != "testserver":
                    continue
                target = parts.path
                if target and target.startswith("/") and target not in seen and not NOT_PAGES.search(target):
                    queue.append(target + (f"?{parts.query}" if parts.query and "class=" in parts.query else ""))
        return pages
    finally:
        client.__exit__(None, None, None)


@pytest.fixture(scope="module")
def demo() -> Iterator[tuple[Anxin, Any]]:
    with tempfile.TemporaryDirectory() as tmp:
        app = Anxin(StoreConfig(url=None, data_dir=Path(tmp)), [MasterKey.generate()])
        try:
            load_demo(app, students_per_school=200)
            yield app, create_app(app, background_seconds=None)
        finally:
            app.close()


@pytest.fixture(scope="module")
def crawled(demo: tuple[Anxin, Any]) -> dict[tuple[str, str], list[Page]]:
    app, web_app = demo
    schools = sorted(sid for sid, _name, _district in app.schools())
    first = schools.index(app.gate.actor(app.accounts.account("principal1")[0]).school_id)
    extra = {
        "principal1": seeds(app, first),
        "principal2": seeds(app, 1 - first),
        "supervisor1": seeds(app, None, limit=BREAK_GLASS_PER_KIND),
    }
    return {(who, lang): crawl(app, web_app, who, lang, extra.get(who, [])) for who in CRAWLED for lang in LANGS}


@pytest.fixture(scope="module")
def data(demo: tuple[Anxin, Any]) -> list[str]:
    return data_strings(demo[0])


def _report(found: Iterable[tuple[str, str, str, str]]) -> str:
    lines = sorted(set(found))
    return "\n".join(f"{who} [{lang}] {path}: {what}" for who, lang, path, what in lines[:80]) + (
        f"\n… and {len(lines) - 80} more" if len(lines) > 80 else ""
    )


# -- the tests --------------------------------------------------------------------------------------
def test_the_codes_are_collected_from_the_domain() -> None:
    """The scan knows the codes of the issue's examples, and event class names."""
    assert {"upheld", "parent", "minor", "serious", "suspected_offence", "investigating"} <= CODES
    assert {"class_teacher", "case.read", "AppealReviewed", "CrisisOpened"} <= CODES
    assert codes_in("结果 upheld", "zh") == ["upheld"]
    assert codes_in("报告渠道 parent", "zh") == ["parent"]
    assert codes_in("严重程度「」无效，应为：minor、serious、suspected_offence", "zh") == [
        "minor",
        "serious",
        "suspected_offence",
    ]
    assert codes_in("upheld", "en") == ["upheld"]
    assert codes_in("Upheld", "en") == []
    assert codes_in("The parent was told by phone", "en") == []


def test_every_role_reaches_its_pages(crawled: dict[tuple[str, str], list[Page]]) -> None:
    """The crawl is not vacuous: each person sees their records' pages."""

    def paths(who: str) -> set[str]:
        return {p.path for p in crawled[(who, "zh")]}

    assert sum(1 for p in paths("principal1") if p.startswith("/cases/")) >= 10
    assert sum(1 for p in paths("principal1") if p.startswith("/support/")) >= 10
    assert any(p.startswith("/students/") for p in paths("principal1"))
    assert any(p.startswith("/pairings/") for p in paths("teacher1"))
    assert any(p.startswith("/cases/") and "reason" not in p for p in paths("supervisor1"))
    assert any(p.startswith("/admin/accounts/") for p in paths("admin"))
    assert any(p.startswith("/cases/") for p in paths("principal2"))
    for who in CRAWLED:
        assert {p.path for p in crawled[(who, "en")]} == paths(who), who


@pytest.mark.parametrize("lang", LANGS)
def test_no_page_shows_an_internal_code(crawled: dict[tuple[str, str], list[Page]], lang: str) -> None:
    found = [
        (page.who, lang, page.path, f"{code!r} in {text[:90]!r}")
        for (who, lg), pages in crawled.items()
        if lg == lang
        for page in pages
        for _tag, text in page.texts
        for code in codes_in(text, lang)
    ]
    assert not found, "internal codes shown as text:\n" + _report(found)


def test_english_pages_show_no_system_written_chinese(
    crawled: dict[tuple[str, str], list[Page]], data: list[str]
) -> None:
    """In English, what the system wrote is English: labels, headings, options, alert
    reasons, instrument names and bands. Chinese is left only where people wrote it."""
    found = [
        (page.who, "en", page.path, f"{left.strip()[:60]!r} in <{tag}> {text[:90]!r}")
        for (who, lang), pages in crawled.items()
        if lang == "en"
        for page in pages
        for tag, text in page.texts
        if tag != "textarea"  # a form's value, kept as typed (like an input's)
        and (left := chinese_left(text, data))
    ]
    assert not found, "Chinese the system wrote, on English pages:\n" + _report(found)


def test_the_english_check_can_fail(data: list[str]) -> None:
    assert chinese_left("Screening alert: PHQ-9 depression screening, 轻度", data) is not None
    assert chinese_left("Under 《未成年人学校保护规定》 art. 20", data) is None
    student = next(d for d in data if d.endswith("班"))
    assert chinese_left(f"Class {student}", data) is None


def test_a_refused_choice_names_the_choices_in_words() -> None:
    """ "严重程度「」无效，应为：minor、serious…" named the codes; the choices are named as
    the form shows them, in Chinese and (through the catalogue) in English."""
    from domain.bullying.rules import check_choice
    from domain.bullying.vocabulary import NEW_SEVERITIES, SEVERITIES
    from domain.common import DomainError
    from domain.support.rules import check_level
    from web import i18n

    refusals = []
    for call in (
        lambda: check_choice("", {k: SEVERITIES[k] for k in NEW_SEVERITIES}, "严重程度"),
        lambda: check_level("urgent"),
    ):
        with pytest.raises(DomainError) as e:
            call()
        refusals.append(e.value)
    assert "一般欺凌（情节轻微）" in refusals[0].text and "重点关注" in refusals[1].text
    for error in refusals:
        assert codes_in(error.text, "zh") == [], error.text
        english = i18n.error_text(error, "en")
        assert not CJK.search(english.replace("「", "").replace("」", "")), english
