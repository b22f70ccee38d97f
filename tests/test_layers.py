"""The layers import one way: a module never imports (at the top or inside a function) from a layer above its own.

    1 foundations   errors, contract, boxes, fsio, ledger, writer, generations, images, config, registry, progress,
                    schemas
    2 domain        readers, rc_tasks, coordinates, templating, render
    3 bootstrap     bootstrap/
    4 the recipe    recipe, exclusion (the typed tree every stage takes its slice of)
    5 pipelines     pipelines/, summary (what a pipeline prints when it ends)
    6 inspection    stats, report, preview, validate, export, tasks_cmd, sources_cmd
    7 the command   cli

ARCHITECTURE.md draws the same picture; this test keeps it true.
"""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import REPO

PACKAGES = {"rcforge": "rcforge", "readers": "rcforge.readers", "schemas": "rcforge.schemas",
            "pipelines": "rcforge.pipelines", "rc_tasks": "rcforge.rc_tasks", "bootstrap": "rcforge.bootstrap"}
NAMED = {"rcforge.coordinates": 2, "rcforge.templating": 2, "rcforge.render": 2, "rcforge.recipe": 4,
         "rcforge.exclusion": 4, "rcforge.summary": 5, "rcforge.stats": 6, "rcforge.report": 6, "rcforge.preview": 6,
         "rcforge.validate": 6, "rcforge.export": 6, "rcforge.tasks_cmd": 6, "rcforge.sources_cmd": 6,
         "rcforge.cli": 7}
PREFIXES = (("rcforge.readers", 2), ("rcforge.rc_tasks", 2), ("rcforge.bootstrap", 3), ("rcforge.pipelines", 5))


def layer(module: str) -> int:
    if module in NAMED:
        return NAMED[module]
    for prefix, n in PREFIXES:
        if module == prefix or module.startswith(prefix + "."):
            return n
    return 1


def _modules() -> dict[str, Path]:
    found = {}
    for folder, package in PACKAGES.items():
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


def test_the_layer_map_knows_every_module():
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
    for folder in ("rcforge", "readers", "rc_tasks", "bootstrap", "pipelines"):
        for path in sorted((REPO / folder).glob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    length = node.end_lineno - node.lineno + 1
                    if length > 80:
                        long.append(f"{path.relative_to(REPO)}:{node.lineno} {node.name} ({length} lines)")
    assert not long, long
