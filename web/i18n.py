"""Languages: Simplified Chinese is the source language of every label and message;
English comes from a gettext catalogue (web/locale/en/LC_MESSAGES/messages.po), read
with Babel at start-up, so there is no compile step.

Templates and routes call `_("中文")` (or `_("…{n}…", n=3)`). Domain errors carry a
Chinese message built from a template; `error_text` translates the template and the
values it was filled with, so an English reader sees English.
"""

from __future__ import annotations

from contextvars import ContextVar
from datetime import date, datetime
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from babel.dates import format_date, format_datetime
from babel.messages.pofile import read_po

from domain.common import DomainError

LANGUAGES = {"zh": "简体中文", "en": "English"}
DEFAULT = "zh"
LOCALE_DIR = Path(__file__).parent / "locale"
SCHOOL_TZ = ZoneInfo("Asia/Shanghai")
_BABEL_LOCALE = {"zh": "zh_Hans_CN", "en": "en"}

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
        found.update({m.id: m.string for m in cat if m.id and m.string and not m.fuzzy and isinstance(m.id, str)})
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
        return catalogue(lang).get(value, value)
    return value


def error_text(error: DomainError, lang: str | None = None) -> str:
    """A domain error for a person, in their language."""
    lang = lang or current.get()
    if lang == DEFAULT:
        return error.text
    cat = catalogue(lang)
    if error.text in cat:
        return cat[error.text]
    template = type(error).message
    for cls in type(error).__mro__:  # the template the message was built from
        if getattr(cls, "message", None) and error.text == _fill(cls.message, error.details):
            template = cls.message
            break
    details = {k: _detail(v, cat) for k, v in error.details.items()}
    return _fill(cat.get(template, template), details)


def _detail(value: Any, cat: dict[str, str]) -> Any:
    if isinstance(value, str):
        return cat.get(value, value)
    return value


def _fill(template: str, details: dict[str, Any]) -> str:
    try:
        return template.format(**details) if details else template
    except (KeyError, IndexError, ValueError):
        return template


def local(value: datetime) -> datetime:
    return value.astimezone(SCHOOL_TZ) if value.tzinfo else value


def fmt_date(value: date | datetime | None, lang: str | None = None) -> str:
    """A date as a reader expects it: 2026年11月25日 / Nov 25, 2026."""
    if value is None:
        return "—"
    lang = lang or current.get()
    if isinstance(value, datetime):
        value = local(value).date()
    return format_date(value, format="long" if lang == "zh" else "medium", locale=_BABEL_LOCALE[lang])


def fmt_datetime(value: datetime | None, lang: str | None = None) -> str:
    if value is None:
        return "—"
    lang = lang or current.get()
    value = local(value)
    if lang == "zh":
        return f"{format_date(value.date(), format='long', locale='zh_Hans_CN')} {value:%H:%M}"
    return format_datetime(value, format="medium", locale="en")
