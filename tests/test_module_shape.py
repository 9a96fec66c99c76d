"""The shape of the code that keeps it readable: no module over 800 lines, and no import inside a
function in the apps (an import hidden there dodges a cycle that `make lint`'s contracts would
otherwise name), except an optional dependency that says so in a comment on its line."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.processes import ROOT

# Not audit: `audit.record` and its sign-in signals load the audit models late because Django's
# app loading imports `audit` before any model may be (audit/__init__.py, audit/apps.py).
APPS = ("accounts", "fleet", "preflight", "rollout", "health", "config")
MAX_LINES = 800
OPTIONAL = "optional dependency"  # what the comment on an allowed late import says


def project_modules() -> list[Path]:
    skipped = {".venv", "var", "node_modules", ".git"}
    return sorted(
        path
        for path in ROOT.rglob("*.py")
        if not skipped & set(path.relative_to(ROOT).parts) and "migrations" not in path.parts
    )


def late_imports(path: Path) -> list[str]:
    """`file:line` of every import inside a function or class body of `path` that does not say
    it is an optional dependency."""
    text = path.read_text()
    lines = text.splitlines()
    found = []
    for node in ast.walk(ast.parse(text)):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            continue
        for inner in ast.walk(node):
            if not isinstance(inner, ast.Import | ast.ImportFrom):
                continue
            said = " ".join(lines[max(inner.lineno - 4, 0) : inner.lineno])  # and 3 lines above
            if OPTIONAL not in said:
                found.append(f"{path.relative_to(ROOT)}:{inner.lineno}")
    return sorted(set(found))


def test_no_module_is_over_800_lines():
    long = {
        str(path.relative_to(ROOT)): n
        for path in project_modules()
        if (n := len(path.read_text().splitlines())) > MAX_LINES
    }

    assert long == {}


def test_no_app_imports_inside_a_function():
    found = [
        place
        for app in APPS
        for path in sorted((ROOT / app).rglob("*.py"))
        if "migrations" not in path.parts
        for place in late_imports(path)
    ]

    assert found == []


def test_the_check_finds_an_import_inside_a_function(tmp_path, monkeypatch):
    module = tmp_path / "sample.py"
    module.write_text(
        "import os\n\n\ndef f():\n    import json\n    return json\n\n\n"
        "def g():\n    import yaml  # optional dependency: only for YAML fleets\n"
    )
    monkeypatch.setattr("tests.test_module_shape.ROOT", tmp_path)

    assert late_imports(module) == ["sample.py:5"]
