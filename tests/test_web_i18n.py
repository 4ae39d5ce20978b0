"""Every label the pages and routes show has its English translation."""

from __future__ import annotations

import re
from pathlib import Path

from web import i18n

ROOT = Path(__file__).resolve().parent.parent / "web"
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


def test_there_are_labels_to_translate() -> None:
    assert len(msgids()) > 20


def test_every_label_has_an_english_translation() -> None:
    english = i18n.catalogue("en")
    missing = {text: where for text, where in msgids().items() if text not in english}
    assert not missing, "no English for:\n" + "\n".join(f"  {w}: {t}" for t, w in sorted(missing.items(), key=lambda x: x[1]))


def test_translations_keep_their_placeholders() -> None:
    field = re.compile(r"\{(\w+)\}")
    bad = {k: v for k, v in i18n.catalogue("en").items() if set(field.findall(k)) != set(field.findall(v))}
    assert not bad, bad


if __name__ == "__main__":  # prints the missing entries as .po stubs: python tests/test_web_i18n.py [PATH_PREFIX]
    import sys

    prefix = sys.argv[1] if len(sys.argv) > 1 else ""
    english = i18n.catalogue("en")
    for text, where in msgids().items():
        if text not in english and where.startswith(prefix):
            quoted = text.replace('"', '\\"')
            print(f'#: {where}\nmsgid "{quoted}"\nmsgstr ""\n')
