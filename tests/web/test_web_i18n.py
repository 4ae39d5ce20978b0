"""Every label the pages and routes show has its English translation."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from web import i18n

ROOT = Path(__file__).resolve().parents[2] / "web"
# _("…") / _('…') in templates and Python, with or without values after the text.
CALL = re.compile(r"""\b(?:_|gettext)\(\s*(?:"((?:[^"\\]|\\.)*)"|'((?:[^'\\]|\\.)*)')""")
CJK = re.compile(r"[\u4e00-\u9fff]")


def msgids() -> dict[str, str]:
    found: dict[str, str] = {}
    for path in sorted([*ROOT.rglob("*.html"), *ROOT.rglob("*.py")]):
        if path.name == "i18n.py":
            continue
        for m in CALL.finditer(path.read_text(encoding="utf-8")):
            text = m.group(1) if m.group(1) is not None else m.group(2)
            if CJK.search(text):
                found.setdefault(text, str(path.relative_to(ROOT)))
    return found


# Messages and labels the domain, the application layer and the views put on pages: every
# Chinese string literal outside docstrings; an f-string becomes a template with {a}, {b}...
SOURCES = ["domain", "anxin", "anxin/audit", "anxin/commands", "projections", "projections/report", "web", "web/routes"]
NOT_SHOWN = {
    "cli.py",
    "health.py",
    "backup.py",
    "demo.py",
    "docs.py",
    "__main__.py",
    "grades.py",
}  # grades: numerals it reads


def _template(node: ast.AST) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        parts, i = [], 0
        for v in node.values:
            if isinstance(v, ast.Constant):
                parts.append(str(v.value).replace("{", "{{").replace("}", "}}"))
            else:
                parts.append("{" + "abcdefghijklmnop"[i] + "}")
                i += 1
        return "".join(parts)
    return None


def domain_messages() -> dict[str, str]:
    root = ROOT.parent
    found: dict[str, str] = {}
    for folder in SOURCES:
        for path in sorted((root / folder).glob("*.py")):
            if path.name in NOT_SHOWN:
                continue
            tree = ast.parse(path.read_text(encoding="utf-8"))
            docstrings = {
                id(n.body[0].value)
                for n in ast.walk(tree)
                if isinstance(n, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
                and n.body
                and isinstance(n.body[0], ast.Expr)
            }
            inner = {id(v) for n in ast.walk(tree) if isinstance(n, ast.JoinedStr) for v in n.values}
            for node in ast.walk(tree):
                if id(node) in docstrings or id(node) in inner:
                    continue
                text = _template(node)
                if text and CJK.search(text) and "\n" not in text and text.count(" ") < 10:
                    found.setdefault(text, f"{folder}/{path.name}")
    return found


def test_every_domain_message_has_an_english_translation() -> None:
    english = i18n.catalogue("en")
    missing = {t: w for t, w in domain_messages().items() if t not in english}
    assert not missing, f"{len(missing)} without English, e.g.:\n" + "\n".join(
        f"  {w}: {t}" for t, w in sorted(missing.items(), key=lambda x: x[1])[:40]
    )


def test_a_filled_in_domain_message_is_translated_with_its_values() -> None:
    from domain.common import InvalidInput, WrongState

    assert i18n.error_text(WrongState(state="已结束", action="记录谈心"), "en") == english_of(
        "当前状态为「{state}」，不能{action}"
    ).format(state=english_of("已结束"), action=english_of("记录谈心"))
    message = i18n.error_text(InvalidInput(reason="用户名「zhang3」已被使用"), "en")
    assert "zhang3" in message and not CJK.search(message)


def english_of(text: str) -> str:
    return i18n.catalogue("en")[text]


def test_there_are_labels_to_translate() -> None:
    assert len(msgids()) > 20


def test_every_label_has_an_english_translation() -> None:
    english = i18n.catalogue("en")
    missing = {text: where for text, where in msgids().items() if text not in english}
    assert not missing, "no English for:\n" + "\n".join(
        f"  {w}: {t}" for t, w in sorted(missing.items(), key=lambda x: x[1])
    )


def test_translations_keep_their_placeholders() -> None:
    field = re.compile(r"\{(\w+)\}")
    bad = {k: v for k, v in i18n.catalogue("en").items() if set(field.findall(k)) != set(field.findall(v))}
    assert not bad, bad


if __name__ == "__main__":  # prints the missing entries as .po stubs: python tests/web/test_web_i18n.py [PATH_PREFIX]
    import sys

    prefix = sys.argv[1] if len(sys.argv) > 1 else ""
    english = i18n.catalogue("en")
    every = (
        {**{t: "web/" + w for t, w in msgids().items()}, **domain_messages()}
        if prefix.startswith(tuple(SOURCES))
        else msgids()
    )
    for text, where in every.items():
        if text not in english and where.startswith(prefix):
            quoted = text.replace('"', '\\"')
            print(f'#: {where}\nmsgid "{quoted}"\nmsgstr ""\n')


def test_times_are_shown_and_read_on_the_policys_wall_clock(app) -> None:  # type: ignore[no-untyped-def]
    from dataclasses import replace
    from datetime import UTC, datetime

    from web.app import create_app
    from web.forms import moment

    at = datetime(2026, 11, 25, 1, 30, tzinfo=UTC)
    try:
        # given the default policy: Beijing time
        create_app(app)
        assert i18n.fmt_datetime(at, "zh") == "2026年11月25日 09:30"
        # when a district's policy says Ürümqi time
        app.policy = replace(app.policy, timezone="Asia/Urumqi")
        create_app(app)
        # then times are shown, and typed times read, on that clock
        assert i18n.fmt_datetime(at, "zh") == "2026年11月25日 07:30"
        assert moment("2026-11-25T07:30", "发生时间") == at
    finally:
        i18n.set_school_timezone("Asia/Shanghai")
