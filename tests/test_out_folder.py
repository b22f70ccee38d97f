"""An OUT folder holds the user's files too, and it is data, not instructions: rcforge removes only files a manifest
of its own lists, refuses a non-empty folder that is not its output, and carries out no plan that reaches outside
its own folders (`rcforge.core.generations`)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from rcforge import cli
from rcforge.core import generations

from conftest import SAMPLE_RECIPE

#: a file of the user's in every folder rcforge writes, and beside them
FOREIGN = ["my_notes.txt", "images/0001.jpg", "images/visual_genome/mine.jpg", "images/vqav2/keep.json",
           "errors/README.txt", "errors/render/todo.txt", "errors/visual_genome/mine.csv", "dialogues/draft.jsonl",
           "dialogues/sub/nested.txt", "bootstrap/own.txt", "last-failed-run/mine.txt"]


def _plant(out: Path) -> dict[str, bytes]:
    planted = {}
    for rel in FOREIGN:
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        planted[rel] = f"the user's {rel}".encode()
        path.write_bytes(planted[rel])
    return planted


def _survived(out: Path, planted: dict[str, bytes]) -> list[str]:
    return [rel for rel, data in planted.items() if not (out / rel).is_file() or (out / rel).read_bytes() != data]


def _recipe_without(tmp_path: Path, *dropped: str) -> Path:
    """The sample recipe without ``dropped`` sources, written elsewhere (its relative paths made absolute)."""
    def absolute(node):
        if isinstance(node, dict):
            return {k: absolute(v) for k, v in node.items()}
        if isinstance(node, list):
            return [absolute(v) for v in node]
        if isinstance(node, str) and (SAMPLE_RECIPE.parent / node).exists():
            return str((SAMPLE_RECIPE.parent / node).resolve())
        return node

    raw = absolute(yaml.safe_load(SAMPLE_RECIPE.read_text()))
    for name in dropped:
        raw["sources"].pop(name)
    path = tmp_path / f"without-{'-'.join(dropped)}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _listed(out: Path) -> set[str]:
    return set(json.loads((out / "manifest.json").read_text())["files"])


@pytest.mark.slow  # five builds and four readers
def test_the_users_files_in_out_survive_every_command(sample_build, tmp_path, capsys):
    out = tmp_path / "out"
    shutil.copytree(sample_build, out)
    planted = _plant(out)
    smaller = _recipe_without(tmp_path, "visual_genome", "vqav2")
    runs = [
        ["build", str(SAMPLE_RECIPE), "--out", str(out), "--no-progress"],                   # reuses the ingest
        ["build", str(SAMPLE_RECIPE), "--out", str(out), "--no-progress", "--fresh-ingest"],
        ["build", str(smaller), "--out", str(out), "--no-progress"],                         # drops two sources
        ["ingest", str(SAMPLE_RECIPE), "--out", str(out), "--no-progress"],
        ["build", str(SAMPLE_RECIPE), "--out", str(out), "--no-progress", "--coordinates", "qwen2_vl"],
        ["validate", str(out)],
        ["stats", str(out), "--json", str(tmp_path / "stats.json")],
        ["export", "sharegpt", str(out), str(tmp_path / "x.json")],
        ["preview", str(out), "--html", str(tmp_path / "p.html"), "--n", "3"],
    ]
    for argv in runs:
        assert cli.main(argv) == 0, argv
        assert not _survived(out, planted), (argv, _survived(out, planted))
        if argv[0] == "build" and argv[1] == str(smaller):
            # rcforge's own files of the dropped sources went: the test sees removals, not a no-op
            assert not list((out / "images" / "visual_genome").glob("part-*.parquet"))
            assert not any(f.startswith(("images/visual_genome/", "images/vqav2/")) for f in _listed(out))
    # what the manifest lists is exactly rcforge's files on disk
    on_disk = {str(p.relative_to(out)) for folder in generations.OWNED for p in (out / folder).rglob("*")
               if p.is_file()}
    assert _listed(out) == on_disk - set(FOREIGN)
    capsys.readouterr()


def test_a_folder_that_is_not_rcforge_output_is_refused_and_force_keeps_its_files(tmp_path, capsys):
    out = tmp_path / "dataset_root"
    planted = _plant(out)
    before = sorted(p for p in out.rglob("*"))
    assert cli.main(["build", str(SAMPLE_RECIPE), "--out", str(out), "--no-progress"]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "is not empty and holds no rcforge output" in err and "--force" in err
    assert sorted(p for p in out.rglob("*")) == before  # nothing written, nothing removed

    assert cli.main(["build", str(SAMPLE_RECIPE), "--out", str(out), "--no-progress", "--force"]) == 0
    assert not _survived(out, planted) and (out / "manifest.json").exists()
    # from now on OUT is rcforge's output: no --force needed, and the user's files still stay
    smaller = _recipe_without(tmp_path, "refcoco")
    assert cli.main(["build", str(smaller), "--out", str(out), "--no-progress", "--fresh-ingest"]) == 0
    assert not _survived(out, planted)
    assert not list((out / "images" / "refcoco").glob("part-*.parquet"))


def test_an_empty_or_new_folder_needs_no_force(tmp_path):
    (tmp_path / "empty").mkdir()
    for out in (tmp_path / "empty", tmp_path / "new" / "deeper"):
        assert cli.main(["ingest", str(SAMPLE_RECIPE), "--out", str(out), "--no-progress"]) == 0


HOSTILE = ["../victim.txt", "{victim}", "images/../../victim.txt", "images/./../../victim.txt", "file://{victim}",
           "images\\..\\..\\victim.txt", "", "images//x", "manifest.json", "bootstrap/x", "images", 5, None,
           {"a": 1}, "C:/victim.txt", "images/\0x"]


#: (plan key, hostile entry); a folder rcforge writes is what "replaces" lists, so "images" is hostile elsewhere only
PLANTED = [(key, entry) for key in ("remove", "move", "replaces") for entry in HOSTILE
           if not (key == "replaces" and entry == "images")]


@pytest.mark.parametrize("key, entry", [
    pytest.param(k, e, id=f"{k}-{e!r:.30}", marks=() if e in HOSTILE[:2] else pytest.mark.slow)  # inner loop: 2 a key
    for k, e in PLANTED])
def test_a_planted_publish_plan_is_never_carried_out(sample_build, tmp_path, capsys, key, entry):
    """A PUBLISH.json planted in OUT/.staging: commands that read OUT ignore it (they never publish), and a writer
    refuses it with an error naming it, before any of its steps. The file outside OUT and the output survive."""
    out = tmp_path / "out"
    shutil.copytree(sample_build, out)
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    if isinstance(entry, str):
        entry = entry.replace("{victim}", str(victim))
    staged = out / generations.STAGING / "g000099-planted"
    staged.mkdir(parents=True)
    own = sorted(_listed(out))
    plan = {"generation": 99, "replaces": ["images"], "move": [], "remove": [own[0]], key: [entry]}
    (staged / generations.PLAN).write_text(json.dumps(plan))
    snapshot = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}

    for argv in (["validate", str(out)], ["stats", str(out)], ["export", "llava", str(out), str(tmp_path / "x.json")],
                 ["preview", str(out), "--html", str(tmp_path / "p.html"), "--n", "2"]):
        cli.main(argv)
        assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == snapshot, argv  # read only
    assert cli.main(["build", str(SAMPLE_RECIPE), "--out", str(out), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "PUBLISH.json" in err and "refusing to carry out the plan" in err
    assert victim.read_text() == "keep me"
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == snapshot


def test_a_reader_names_a_pending_publish_instead_of_finishing_it(sample_build, tmp_path, capsys):
    out = tmp_path / "out"
    shutil.copytree(sample_build, out)
    staged = out / generations.STAGING / "g000002-killed"
    staged.mkdir(parents=True)
    (staged / generations.PLAN).write_text(json.dumps({"generation": 2, "replaces": [], "move": [], "remove": []}))
    (out / "manifest.json").unlink()  # a writer killed in the middle of its publish
    assert cli.main(["validate", str(out)]) == 1
    assert "half-done" in capsys.readouterr().err and (staged / generations.PLAN).exists()
    assert cli.main(["build", str(SAMPLE_RECIPE), "--out", str(out), "--no-progress"]) == 0  # a writer finishes it
    assert not (out / generations.STAGING).exists()
