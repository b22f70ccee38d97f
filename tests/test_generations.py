"""Output generations: a failed, killed or half-published run never leaves OUT broken.

What a user checks after a run that did not finish: the previous output is whole (its manifest, every part it
lists, and `rcforge validate`), the next run goes through, and no manifest ever lists a missing part.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import fsspec.implementations.local as local_fs
import pytest

from rcforge import cli
from rcforge.core import generations
from rcforge.inspect.validate import validate

from conftest import SAMPLE_RECIPE, copy_of

pytestmark = pytest.mark.slow


def _snapshot(out: Path) -> dict[str, str]:
    """Every file of OUT's live generation (not staging, not a failed run's leftovers, not the writer lock, which
    names whoever writes) -> its content hash."""
    skip = (generations.STAGING, generations.FAILED, generations.LOCK)
    return {str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(out.rglob("*")) if p.is_file() and p.relative_to(out).parts[0] not in skip}


def _without_timings(manifest: dict) -> dict:
    manifest = json.loads(json.dumps(manifest))
    manifest.pop("seconds", None)
    for entry in manifest.get("sources", {}).values():
        entry.pop("seconds", None)
    manifest.get("build", {}).pop("seconds", None)
    return manifest


def _listed_parts_exist(out: Path) -> bool:
    manifest_path = out / "manifest.json"
    if not manifest_path.exists():
        return True
    manifest = json.loads(manifest_path.read_text())
    listed = [p for e in manifest.get("sources", {}).values() for p in e["parts"] + e["error_parts"]]
    listed += [f"dialogues/{s}" for s in manifest.get("build", {}).get("shards", [])]
    return all((out / p).exists() for p in listed)


@pytest.fixture
def built(sample_build) -> Path:
    return sample_build


def _copy(built: Path, tmp_path: Path) -> Path:
    return copy_of(built, tmp_path)


def test_a_build_writes_generation_one_and_leaves_no_staging(built):
    manifest = json.loads((built / "manifest.json").read_text())
    assert manifest["generation"] == 1
    assert not (built / generations.STAGING).exists() and not (built / generations.FAILED).exists()
    assert validate(str(built)) == []


def test_a_failed_fresh_build_leaves_the_previous_generation_whole(built, tmp_path, monkeypatch, capsys):
    from rcforge.render.renderer import Renderer

    out = _copy(built, tmp_path)
    before = _snapshot(out)

    def broken(self, record):
        raise RuntimeError("renderer broke")

    monkeypatch.setattr(Renderer, "dialogues", broken)
    code = cli.main(["build", str(SAMPLE_RECIPE), "--out", str(out), "--no-progress", "--fresh-ingest"])
    err = capsys.readouterr().err
    assert code == 1 and "previous output is left as it was" in err and "Traceback" not in err
    assert _snapshot(out) == before
    assert validate(str(out)) == []
    assert not (out / generations.STAGING).exists()
    failure = json.loads((out / generations.FAILED / "failure.json").read_text())
    assert failure["command"] == "build" and failure["generation"] == 2 and "TooManyBadRecords" in failure["error"]
    assert list((out / generations.FAILED / "errors" / "render").glob("*.parquet"))
    assert cli.main(["validate", str(out)]) == 0
    assert "last-failed-run" in capsys.readouterr().err
    # the next build, with the renderer mended, reuses the previous ingest and writes generation 2
    monkeypatch.undo()
    assert cli.main(["build", str(SAMPLE_RECIPE), "--out", str(out), "--no-progress"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["generation"] == 2 and manifest["build"]["reused_ingest"]
    assert {k: v for k, v in _snapshot(out).items() if k.startswith("dialogues/")} == \
        {k: v for k, v in before.items() if k.startswith("dialogues/")}


KILL_DURING_RENDER = """
import os, signal, sys
from rcforge import cli
from rcforge.render.renderer import Renderer

def killed(self, record):
    os.kill(os.getpid(), signal.SIGKILL)

Renderer.dialogues = killed
sys.exit(cli.main(sys.argv[1:]))
"""


def test_kill_9_during_a_fresh_build_leaves_the_previous_generation_whole(built, tmp_path):
    out = _copy(built, tmp_path)
    before = _snapshot(out)
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    run = subprocess.run([sys.executable, "-c", KILL_DURING_RENDER, "build", str(SAMPLE_RECIPE), "--out", str(out),
                          "--no-progress", "--fresh-ingest"], env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == -9
    # killed after its ingest was staged: that staging is all it left
    staged = list((out / generations.STAGING).iterdir())
    assert len(staged) == 1 and list((staged[0] / "images").rglob("part-*.parquet"))
    assert _snapshot(out) == before and _listed_parts_exist(out)
    assert validate(str(out)) == []  # a reader does not touch a staging folder that may be a running writer's
    assert (out / generations.STAGING).exists()
    assert any("running or was killed" in note for note in generations.leftovers(str(out)))
    # the next writer removes the killed run's staging and goes through
    assert cli.main(["build", str(SAMPLE_RECIPE), "--out", str(out), "--no-progress", "--fresh-ingest"]) == 0
    assert not (out / generations.STAGING).exists()
    after = _snapshot(out)
    assert {k: v for k, v in after.items() if k != "manifest.json"} == \
        {k: v for k, v in before.items() if k != "manifest.json"}
    assert json.loads((out / "manifest.json").read_text())["generation"] == 2


class Killed(BaseException):
    """Stands for the process dying between two file operations."""


def _count_file_ops(monkeypatch, kill_at: int | None) -> list[str]:
    """Count the local filesystem's mv and rm calls; with ``kill_at``, die at that call."""
    calls: list[str] = []
    for name in ("mv", "rm"):
        real = getattr(local_fs.LocalFileSystem, name)

        def wrapper(self, *args, _real=real, _name=name, **kwargs):
            calls.append(f"{_name} {args[0]}")
            if kill_at is not None and len(calls) == kill_at:
                raise Killed(calls[-1])
            return _real(self, *args, **kwargs)

        monkeypatch.setattr(local_fs.LocalFileSystem, name, wrapper)
    return calls


def test_a_kill_at_any_step_of_a_publish_is_finished_by_the_next_writer(built, tmp_path, monkeypatch):
    """Kill the commit of a fresh build (ingest + build, 4 sources dropped to make the plan remove files too) at
    each of its file operations in turn: at every point the manifest lists only files that exist, and the next
    writer into OUT ends with the same output as an uninterrupted run."""
    from rcforge.pipelines import build as build_module
    from rcforge.recipe.tree import load_recipe

    full = load_recipe(str(SAMPLE_RECIPE))
    smaller = dataclasses.replace(full, sources={k: v for k, v in full.sources.items()
                                                 if k in ("visual_genome", "refcoco")})
    reference = _copy(built, tmp_path / "reference")
    build_module.build(smaller, str(reference), progress=False, reuse_ingest=False)
    expected = {k: v for k, v in _snapshot(reference).items() if k != "manifest.json"}
    expected_manifest = _without_timings(json.loads((reference / "manifest.json").read_text()))

    real_commit = generations.Generation.commit
    ops_in_commit: list[int] = []

    def measuring_commit(self, manifest, replaces):
        calls = _count_file_ops(monkeypatch, None)
        real_commit(self, manifest, replaces)
        ops_in_commit.append(len(calls))

    trial = _copy(built, tmp_path / "measure")
    monkeypatch.setattr(generations.Generation, "commit", measuring_commit)
    build_module.build(smaller, str(trial), progress=False, reuse_ingest=False)
    monkeypatch.undo()
    (total,) = ops_in_commit
    assert total > 10

    for kill_at in range(1, total + 1):
        out = _copy(built, tmp_path / f"kill{kill_at}")

        def killing_commit(self, manifest, replaces, _k=kill_at):
            _count_file_ops(monkeypatch, _k)
            real_commit(self, manifest, replaces)

        monkeypatch.setattr(generations.Generation, "commit", killing_commit)
        with pytest.raises(Killed):
            build_module.build(smaller, str(out), progress=False, reuse_ingest=False)
        monkeypatch.undo()
        assert _listed_parts_exist(out), kill_at
        generations.settle(str(out))  # the next writer finishes what was committed (readers never publish)
        manifest = generations.load_manifest(str(out), "test")
        if "sources" in manifest and set(manifest["sources"]) == {"visual_genome", "refcoco"}:
            assert {k: v for k, v in _snapshot(out).items() if k != "manifest.json"} == expected, kill_at
            assert _without_timings(manifest) == expected_manifest, kill_at
            assert validate(str(out)) == []
        else:  # killed before the commit point: the previous generation, whole
            assert manifest["generation"] == 1 and validate(str(out)) == [], kill_at
        assert not (out / generations.STAGING).exists() or not any(
            (d / generations.PLAN).exists() for d in (out / generations.STAGING).iterdir())
