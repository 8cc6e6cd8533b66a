"""The import direction is part of the design: arrows point downwards only (README, "How the pieces fit").

core <- marketdata <- trading <- portfolio, and marketdata <- sentiment; devtools and config sit on top.
A lower package never imports a higher one (not even inside a function) and nothing reaches a higher
layer by a task name; a lower layer that must notify a higher one offers a hook (trading/hooks.py).
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# What each package may import from the project (besides itself).
ALLOWED = {
    "core": set(),
    "marketdata": {"core"},
    "trading": {"core", "marketdata"},
    "sentiment": {"core", "marketdata"},
    "portfolio": {"core", "marketdata", "trading", "sentiment"},
    "devtools": {"core", "marketdata", "trading", "sentiment", "portfolio"},
    "config": {"core", "marketdata", "trading", "sentiment", "portfolio", "devtools"},
}
PROJECT = set(ALLOWED)


def _modules(package: str):
    for path in sorted((ROOT / package).rglob("*.py")):
        yield path, ast.parse(path.read_text(), filename=str(path))


def _imported(tree: ast.AST):
    """(line, top-level package) of every import, including ``importlib.import_module("x.y")``."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module.split(".")[0]
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", getattr(node.func, "id", None)) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            yield node.lineno, node.args[0].value.split(".")[0]


def _upward(package: str) -> list[str]:
    found = []
    for path, tree in _modules(package):
        for line, target in _imported(tree):
            if target in PROJECT and target != package and target not in ALLOWED[package]:
                found.append(f"{path.relative_to(ROOT)}:{line} imports {target}")
    return found


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_no_package_imports_a_layer_above_it(package):
    if not (ROOT / package).is_dir():
        pytest.skip(f"{package}/ does not exist")
    assert _upward(package) == []


def test_no_task_is_sent_by_name():
    """``send_task("app.task")`` hides a dependency from the import graph; call the task or a hook."""
    found = []
    for package in sorted(ALLOWED):
        if not (ROOT / package).is_dir():
            continue
        for path, tree in _modules(package):
            for node in ast.walk(tree):
                if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "send_task":
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert found == []


def test_the_checker_sees_an_upward_import(tmp_path, monkeypatch):
    """The test above can fail: a planted upward import (also one inside a function) is reported."""
    fake_root = tmp_path
    (fake_root / "core").mkdir()
    (fake_root / "core" / "bad.py").write_text(
        "import os\n\ndef f():\n    from portfolio.models import Position\n    return Position\n"
    )
    (fake_root / "marketdata").mkdir()
    (fake_root / "marketdata" / "ok.py").write_text("from core.fields import PriceField\n")
    monkeypatch.setattr(__import__(__name__, fromlist=["ROOT"]), "ROOT", fake_root)
    assert _upward("core") == ["core/bad.py:4 imports portfolio"]
    assert _upward("marketdata") == []
