"""The layers import one way: a module never imports (at the top or inside a function) from a layer above its own.
Each layer is a folder, so the tree shows the map:

    1 foundations   rcforge/core/, schemas/
    2 domain        readers/, rc_tasks/, rcforge/render/
    3 bootstrap     bootstrap/
    4 the recipe    rcforge/recipe/ (the typed tree every stage takes its slice of)
    5 pipelines     pipelines/
    6 inspection    rcforge/inspect/
    7 the command   rcforge/cli/

ARCHITECTURE.md draws the same picture; this test keeps it true, and fails on a module outside every layer.
"""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import REPO

#: folder in the repository -> (its installed package, its layer)
FOLDERS = {"rcforge/core": ("rcforge.core", 1), "schemas": ("rcforge.schemas", 1),
           "readers": ("rcforge.readers", 2), "rc_tasks": ("rcforge.rc_tasks", 2),
           "rcforge/render": ("rcforge.render", 2), "bootstrap": ("rcforge.bootstrap", 3),
           "rcforge/recipe": ("rcforge.recipe", 4), "pipelines": ("rcforge.pipelines", 5),
           "rcforge/inspect": ("rcforge.inspect", 6), "rcforge/cli": ("rcforge.cli", 7)}
LAYER = {package: n for package, n in FOLDERS.values()}


def layer(module: str) -> int:
    package = module if module in LAYER else module.rsplit(".", 1)[0]
    return LAYER[package]


def _modules() -> dict[str, Path]:
    found = {}
    for folder, (package, _) in FOLDERS.items():
        for path in sorted((REPO / folder).glob("*.py")):
            found[package if path.stem == "__init__" else f"{package}.{path.stem}"] = path
    return found


def test_every_import_goes_down_or_sideways():
    modules = _modules()
    upward = []
    for module, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("rcforge"):
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            for target in targets:
                if target in modules and layer(target) > layer(module):
                    upward.append(f"{path.relative_to(REPO)}:{node.lineno} {module} (layer {layer(module)}) "
                                  f"imports {target} (layer {layer(target)})")
    assert not upward, "\n".join(upward)


def test_every_module_lives_in_a_layer_folder():
    """`rcforge/` itself holds only its package marker: a module dropped beside it would belong to no layer."""
    assert sorted(p.name for p in (REPO / "rcforge").glob("*.py")) == ["__init__.py"]
    folders = {p.parent.relative_to(REPO).as_posix() for p in (REPO / "rcforge").glob("*/*.py")}
    assert folders <= set(FOLDERS), folders - set(FOLDERS)
    modules = _modules()
    assert len(modules) > 60 and {layer(m) for m in modules} == set(range(1, 8))


def test_bootstrap_backends_are_flat_adapters_run_by_one_handler():
    """Beam's shape: one `ModelHandler` class (two methods plus Beam's hooks) for every stage of every backend,
    and one adapter class per backend, each directly on `Adapter`, with its ``BACKEND`` registration."""
    folder = REPO / "bootstrap"
    handlers = ast.parse((folder / "handlers.py").read_text())
    model_handlers = [c.name for c in ast.walk(handlers) if isinstance(c, ast.ClassDef)
                      and any(getattr(b, "id", None) == "ModelHandler" for b in c.bases)]
    assert model_handlers == ["StageHandler"]
    backends = sorted(folder.glob("*_handlers.py"))
    assert {p.stem for p in backends} >= {"florence2_handlers", "kosmos2_handlers", "chat_handlers"}
    for path in backends:
        tree = ast.parse(path.read_text())
        classes = [c for c in tree.body if isinstance(c, ast.ClassDef)]
        assert len(classes) == 1, f"{path.name}: one adapter class per backend"
        assert [ast.unparse(b) for b in classes[0].bases] == ["Adapter"], f"{path.name}: {classes[0].name}"
        assert any(isinstance(n, ast.Assign) and ast.unparse(n.targets[0]) == "BACKEND" for n in tree.body), path


def test_functions_are_at_most_80_lines():
    """The house rule: a function a newcomer can read on one screen."""
    long = []
    for folder in FOLDERS:
        for path in sorted((REPO / folder).glob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    length = node.end_lineno - node.lineno + 1
                    if length > 80:
                        long.append(f"{path.relative_to(REPO)}:{node.lineno} {node.name} ({length} lines)")
    assert not long, long


def test_every_layer_folder_is_a_package_the_wheel_ships():
    """A non-editable install ships only the packages pyproject.toml lists: a new layer folder must be listed."""
    import pytest

    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    assert {package for package, _ in FOLDERS.values()} <= listed, {p for p, _ in FOLDERS.values()} - listed
