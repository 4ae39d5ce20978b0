"""Reading a submitted form, and running the one command it asks for.

Every page that changes something does it the same way: its fields are read with the
functions here (text, lists, dates, times, the page's version, an upload), one
application call runs under the writer lock (`run_form`), and a refusal the person can
act on re-renders their page with the message and what they typed: 409 when the page
was stale (someone changed the record since), 400 otherwise. The refusals that are not
about what was typed (deps.ERROR_PAGE: 403, 404, 410) go on to the error page.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, TypeVar

from fastapi import Request
from fastapi.responses import RedirectResponse, Response

from anxin.service import Anxin
from domain.common import Conflict, DomainError, InvalidInput, parse_day
from web import i18n
from web.deps import for_error_page, get_web, keep_refusal

T = TypeVar("T")
D = TypeVar("D", date, None)


# -- fields -------------------------------------------------------------------------------------
def text(form: dict[str, Any], key: str) -> str:
    """A text field, trimmed ("" when missing or an upload)."""
    value = form.get(key, "")
    return value.strip() if isinstance(value, str) else ""


def values(form: dict[str, Any], key: str) -> list[str]:
    """The non-empty values of a repeated field (checkboxes, a multiple select)."""
    value = form.get(key)
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str) and v]
    return [value] if isinstance(value, str) and value else []


def yes(form: dict[str, Any], key: str) -> bool:
    return text(form, key) in ("1", "yes", "on", "true")


def day_or(value: Any, default: D, what: str = "日期") -> date | D:
    """A date field (YYYY-MM-DD, or 2026/9/1 as spreadsheets write it; domain.common's one
    reading); left empty, `default`. A malformed one: InvalidInput naming `what`."""
    typed = str(value or "").strip()
    return parse_day(typed, what) if typed else default


def moment(value: str, what: str) -> datetime:
    """A datetime-local field, read as school time (the policy's timezone)."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(reason=i18n.gettext("{what}格式不正确", what=i18n.gettext(what))) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=i18n.school_tz())


def expected_version(form: dict[str, Any]) -> int | None:
    """The version of the record the page showed (a hidden field): a command given it is
    refused with a conflict if someone else changed the record since."""
    typed = str(form.get("expected_version", "")).strip()
    if not typed:
        return None
    try:
        return int(typed)
    except ValueError:
        raise InvalidInput(reason="页面版本无效，请刷新后重试") from None


def uploaded_text(form: dict[str, Any], key: str = "file") -> str:
    """An uploaded CSV file's text (UTF-8)."""
    upload = form.get(key)
    if upload is None or isinstance(upload, str):
        raise InvalidInput(reason="请选择要导入的 CSV 文件")
    try:
        return str(upload.file.read().decode("utf-8"))
    except UnicodeDecodeError:
        raise InvalidInput(reason="文件不是 UTF-8 编码") from None


def uploaded_file(form: dict[str, Any], key: str = "file") -> tuple[bytes, str]:
    """An uploaded file's bytes and name, as the form read them (in memory: deps.form_data)."""
    upload = form.get(key)
    if upload is None or isinstance(upload, str) or not getattr(upload, "filename", ""):
        raise InvalidInput(reason="请选择要导入的文件")
    return bytes(upload.file.read()), str(upload.filename or "")


# -- one command --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Refused:
    """A command refused for what was typed, or for a stale page: the status of the page
    that shows it again, and the error."""

    status: int
    error: DomainError

    @property
    def message(self) -> str:
        return i18n.error_text(self.error)


# Where a refused form goes, for a browser: the address of the page that shows it again
# (a fragment allowed: the form's own place), and what that page needs to show the refusal
# beside the right form (e.g. which step failed). JSON values only: they are kept in the
# session until the page is shown.
Again = Callable[[Refused], tuple[str, dict[str, Any]]]


def wants_page(request: Request) -> bool:
    """A browser sending a form (it asks for HTML): a refusal is answered with a redirect to
    the page (303), so a reload shows the page again and never sends the form twice. Other
    clients (scripts, the tests' HTTP client) get the page with its status at once."""
    return "text/html" in request.headers.get("accept", "")


def run_form(
    request: Request,
    command: Callable[[Anxin], T],
    done: Callable[[T], Response],
    refused: Callable[[Refused], Response],
    *,
    on_page: tuple[type[DomainError], ...] = (),
    again: Again | None = None,
) -> Response:
    """Run `command` (reading the form and calling the application) under the writer lock,
    then answer with `done(its result)`. A DomainError is the page again, `refused(...)`:
    409 for a Conflict, else 400; except those the error page answers (deps.ERROR_PAGE),
    which propagate, unless this form lists them in `on_page`.

    With `again`, a browser is sent (303) to the page `again` names, which shows the message
    beside the form with what was typed (kept sealed in the session, web.deps.keep_refusal,
    shown once by the next rendering of that page): reloading it sends nothing again."""
    try:
        with get_web(request).writing() as app:
            result = command(app)
    except DomainError as e:
        if for_error_page(e, on_page):
            raise
        refusal = Refused(409 if isinstance(e, Conflict) else 400, e)
        if again is not None and wants_page(request):
            target, context = again(refusal)
            if keep_refusal(request, target, refusal.status, refusal.message, context):
                return RedirectResponse(target, status_code=303)
        return refused(refusal)
    return done(result)
