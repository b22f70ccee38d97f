"""The scripts no test runs (benchmarks, generators, the golden regenerator) import what exists: each ``from rcforge...
import name`` of theirs resolves. A module that moves must take its scripts along (they once kept a stale path).
Imports in an ``except ImportError`` handler are fallbacks for older versions (bench/compare_ingest.py) and are
left out."""

import ast
import importlib

import pytest

from conftest import REPO

SCRIPTS = sorted([*REPO.glob("bench/*.py"), *REPO.glob("sample_data/*.py"), *REPO.glob("scripts/*.py"),
                  REPO / "tests" / "golden" / "regenerate.py"])


def _imports(tree: ast.AST):
    fallbacks = {id(n) for handler in ast.walk(tree) if isinstance(handler, ast.ExceptHandler)
                 for n in ast.walk(handler)}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("rcforge") \
                and id(node) not in fallbacks:
            yield node


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: str(p.relative_to(REPO)))
def test_a_scripts_rcforge_imports_resolve(script):
    missing = []
    for node in _imports(ast.parse(script.read_text())):
        module = importlib.import_module(node.module)
        for alias in node.names:
            if not hasattr(module, alias.name):
                try:
                    importlib.import_module(f"{node.module}.{alias.name}")
                except ModuleNotFoundError:
                    missing.append(f"line {node.lineno}: from {node.module} import {alias.name}")
    assert not missing, missing


def test_the_check_sees_the_scripts():
    assert len(SCRIPTS) >= 10 and any(p.name == "bench_ingest.py" for p in SCRIPTS)
