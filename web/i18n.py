"""Languages: Simplified Chinese is the source language of every label and message;
English comes from a gettext catalogue (web/locale/en/LC_MESSAGES/messages.po), read
with Babel at start-up, so there is no compile step.

Templates and routes call `_("中文")` (or `_("…{n}…", n=3)`). Domain errors carry a
Chinese message built from a template; `error_text` translates the template and the
values it was filled with, so an English reader sees English.
"""

from __future__ import annotations

import re
from contextvars import ContextVar
from datetime import date, datetime
from functools import cache, lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from babel import Locale
from babel.dates import format_date, format_datetime
from babel.messages.pofile import read_po

from domain.common import DomainError

LANGUAGES = {"zh": "简体中文", "en": "English"}
DEFAULT = "zh"
LOCALE_DIR = Path(__file__).parent / "locale"
_school_tz = [ZoneInfo("Asia/Shanghai")]  # the policy's timezone, set by create_app


def set_school_timezone(name: str) -> None:
    """The schools' wall clock (the policy's `timezone`): times are shown, and dates and
    times typed into forms are read, in it."""
    _school_tz[0] = ZoneInfo(name)


def school_tz() -> ZoneInfo:
    return _school_tz[0]


_BABEL_LOCALE = {"zh": "zh_Hans_CN", "en": "en"}


@cache
def _locale(lang: str) -> Locale:
    """Babel's Locale for a language, parsed once (not per date formatted)."""
    return Locale.parse(_BABEL_LOCALE[lang])


@lru_cache(maxsize=4096)
def _date_text(value: date, lang: str) -> str:
    return format_date(value, format="long" if lang == "zh" else "medium", locale=_locale(lang))


current: ContextVar[str] = ContextVar("anxin_lang", default=DEFAULT)


@cache
def catalogue(lang: str) -> dict[str, str]:
    """Every `*.po` file of the language's LC_MESSAGES folder, merged (one per area)."""
    found: dict[str, str] = {}
    if lang == DEFAULT:
        return found
    for path in sorted((LOCALE_DIR / lang / "LC_MESSAGES").glob("*.po")):
        with path.open("rb") as f:
            cat = read_po(f, locale=lang)
        found.update(
            {
                m.id: m.string
                for m in cat
                if m.id and m.string and not m.fuzzy and isinstance(m.id, str) and isinstance(m.string, str)
            }
        )
    return found


def gettext(message: str, lang: str | None = None, **values: Any) -> str:
    lang = lang or current.get()
    text = catalogue(lang).get(message, message) if lang != DEFAULT else message
    if values:
        try:
            return text.format(**{k: translate_value(v, lang) for k, v in values.items()})
        except (KeyError, IndexError, ValueError):
            return text
    return text


_ = gettext


def translate_value(value: Any, lang: str) -> Any:
    """A value put into a message: translated when it is itself a known label."""
    if isinstance(value, str) and lang != DEFAULT:
        return lookup(value, lang) or value
    return value


def error_text(error: DomainError, lang: str | None = None) -> str:
    """A domain error for a person, in their language. The domain builds its messages
    from Chinese templates (some with values filled in); the catalogue holds those
    templates, so a message is matched against them and its values carried over."""
    lang = lang or current.get()
    if lang == DEFAULT:
        return error.text
    return lookup(error.text, lang) or error.text


_FIELD = re.compile(r"\{(\w+)\}")


@cache
def _patterns(lang: str) -> list[tuple[re.Pattern[str], str]]:
    found = []
    for msgid, msgstr in catalogue(lang).items():
        if not _FIELD.search(msgid):
            continue
        parts, seen, pos = [], set(), 0
        for m in _FIELD.finditer(msgid):
            parts.append(re.escape(msgid[pos : m.start()]))
            name = m.group(1)
            parts.append(f"(?P={name})" if name in seen else f"(?P<{name}>.*?)")  # a value may be empty
            seen.add(name)
            pos = m.end()
        parts.append(re.escape(msgid[pos:]))
        literal = len(_FIELD.sub("", msgid))
        found.append((literal, re.compile("^" + "".join(parts) + "$", re.S), msgstr))
    found.sort(key=lambda x: -x[0])  # the most specific template first
    return [(rx, msgstr) for _, rx, msgstr in found]


def lookup(text: str, lang: str, depth: int = 0) -> str | None:
    """The translation of a message, also when it was built from a template with values
    (the values translated too where they are themselves messages)."""
    cat = catalogue(lang)
    if text in cat:
        return cat[text]
    if depth > 3 or not text:
        return None
    for rx, msgstr in _patterns(lang):
        m = rx.match(text)
        if m:
            values = {k: lookup(v, lang, depth + 1) or _listed(v, lang, depth) or v for k, v in m.groupdict().items()}
            try:
                return msgstr.format(**values)
            except (KeyError, IndexError, ValueError):
                return msgstr
    return None


_SEGMENT = re.compile(r"(；|\n)")
_CJK = re.compile(r"[\u3400-\u9fff]")


def system_text(text: Any, lang: str | None = None) -> Any:
    """Text the system wrote into a record in Chinese (a screening alert's reason, an
    instrument's name, an automatic risk change's reason), in the reader's language at
    display time: the stored text is matched against the catalogue's templates, as a whole
    or segment by segment (a reason is several sentences joined by "；"). History is not
    rewritten; text that matches no template (what a person typed) is shown as it is."""
    lang = lang or current.get()
    if lang == DEFAULT or not isinstance(text, str) or not text:
        return text
    whole = lookup(text, lang)
    parts = _SEGMENT.split(text)
    if len(parts) == 1:
        return text if whole is None else whole
    out: list[str] = []
    i = 0
    while i < len(parts):
        part = parts[i]
        if part in ("；", "\n") and i + 1 < len(parts):
            joined = part + parts[i + 1]
            done = lookup(joined, lang)
            if done is not None:
                out.append(done)
                i += 2
                continue
            out.append("; " if part == "；" else part)
        elif part:
            out.append(lookup(part, lang) or part)
        i += 1
    pieces = "".join(out)
    if whole is None:
        return pieces if _CJK.findall(pieces) != _CJK.findall(text) else text  # nothing known: as typed
    # A template may swallow the following sentences into its last value: the reading with
    # less Chinese left is the one translated further.
    return whole if len(_CJK.findall(whole)) <= len(_CJK.findall(pieces)) else pieces


def _listed(value: str, lang: str, depth: int) -> str | None:
    """A list of labels put into a message ("一般欺凌、严重欺凌"), each translated, when
    every one is known."""
    if "、" not in value:
        return None
    items = [lookup(item, lang, depth + 1) for item in value.split("、")]
    return ", ".join(items) if all(items) else None  # type: ignore[arg-type]


def local(value: datetime) -> datetime:
    return value.astimezone(_school_tz[0]) if value.tzinfo else value


def fmt_date(value: date | datetime | None, lang: str | None = None) -> str:
    """A date as a reader expects it: 2026年11月25日 / Nov 25, 2026."""
    if value is None:
        return "—"
    lang = lang or current.get()
    if isinstance(value, datetime):
        value = local(value).date()
    return _date_text(value, lang)


def fmt_datetime(value: datetime | None, lang: str | None = None) -> str:
    if value is None:
        return "—"
    lang = lang or current.get()
    value = local(value)
    if lang == "zh":
        return f"{_date_text(value.date(), 'zh')} {value:%H:%M}"
    return format_datetime(value, format="medium", locale=_locale("en"))
