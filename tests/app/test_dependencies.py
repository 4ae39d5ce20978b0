"""Dependencies point one way: web → application (anxin) → domain, and the application
→ projections → domain. Read from the code itself (every import, including those inside
functions and under TYPE_CHECKING), so a cycle cannot come back unnoticed."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
STDLIB = set(sys.stdlib_module_names)


def imports_of(package: str, root: Path = ROOT) -> dict[str, set[str]]:
    """Every top-level module name each file of the package imports, by file."""
    found: dict[str, set[str]] = {}
    for path in sorted((root / package).rglob("*.py")):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
        found[str(path.relative_to(root))] = names
    return found


def offending(package: str, forbidden: set[str]) -> dict[str, set[str]]:
    return {f: names & forbidden for f, names in imports_of(package).items() if names & forbidden}


def test_the_read_side_imports_neither_the_application_nor_the_web() -> None:
    assert offending("projections", {"anxin", "web"}) == {}


def test_the_application_never_imports_the_web() -> None:
    assert offending("anxin", {"web"}) == {}


def test_the_domain_imports_only_the_standard_library_and_eventsourcing() -> None:
    allowed = STDLIB | {"domain", "eventsourcing", "__future__"}
    extra = {f: names - allowed for f, names in imports_of("domain").items() if names - allowed}
    assert extra == {}


def test_the_check_sees_imports_inside_functions_and_type_checking_blocks(tmp_path: Path) -> None:
    # given a module that hides its imports where the cycle used to hide
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "m.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from anxin.core import Core\n"
        "def f():\n    import web.app\n    from . import sibling\n"
    )
    # then both are seen, and a relative import is not taken for a package
    assert imports_of("pkg", tmp_path) == {"pkg/m.py": {"typing", "anxin", "web"}}
