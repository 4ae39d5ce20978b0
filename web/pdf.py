"""A printed page as a PDF (the case file, 案卷), made in memory by WeasyPrint and never
written to disk: no plaintext at rest, not even a temporary file (WeasyPrint spools only
the web fonts of @font-face rules, which these pages do not have; tests/web/test_web_dossier.py
watches the temporary directory while one is made). Chinese is set in the system's CJK font
(Debian's fonts-noto-cjk, "Noto Sans CJK SC", named first in app.css and print.css).

WeasyPrint needs Pango (Debian: libpango-1.0-0, libpangoft2-1.0-0, with fontconfig); where they
are missing `PdfUnavailable` says so in Chinese and the print page still works (.ci/pdf-deps
installs them)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from domain.common import DomainError

STATIC = Path(__file__).resolve().parent / "static"
BASE_URL = "https://anxin.invalid/"  # the page's own address for WeasyPrint; nothing is fetched from it
STYLESHEETS = {"/static/app.css", "/static/print.css"}


class PdfUnavailable(DomainError):
    code = "pdf_unavailable"
    message = "本机未安装生成 PDF 所需的组件（Pango 字体排版库），暂不能下载 PDF；请使用打印页面（浏览器“打印”可另存为 PDF），或请管理员安装后再试"


def _fetcher() -> Any:
    """Only the product's own stylesheets, read from the package: no other address (an
    image a person typed, a link) is ever fetched while a PDF is made."""
    from weasyprint.urls import URLFetcher, URLFetcherResponse

    class StaticOnly(URLFetcher):  # type: ignore[misc]
        def fetch(self, url: str, headers: Any = None) -> Any:
            path = url.removeprefix(BASE_URL.rstrip("/"))
            if path not in STYLESHEETS:
                raise ValueError("not fetched")
            body = (STATIC / path.removeprefix("/static/")).read_bytes()
            return URLFetcherResponse(url, body, {"Content-Type": "text/css; charset=utf-8"})

    return StaticOnly()


def html_to_pdf(html: str) -> bytes:
    """The page as PDF bytes (A4, print media), in memory."""
    try:
        from weasyprint import HTML
    except (ImportError, OSError) as e:  # the Python package, or Pango's shared libraries, missing
        raise PdfUnavailable() from e
    pdf: bytes = HTML(string=html, base_url=BASE_URL, url_fetcher=_fetcher(), media_type="print").write_pdf()
    return pdf
