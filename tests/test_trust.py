"""What a user trusts: validate passes on every clean build and fails on tampered ones; a changed input is
re-ingested; errors survive a threshold stop; an unbalanced ledger fails the command."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rcforge import cli
from rcforge.inspect.validate import validate
from rcforge.recipe.tree import load_recipe
from rcforge.render import coordinates

from conftest import SAMPLE_RECIPE, copy_of

pytestmark = pytest.mark.slow


@pytest.fixture
def built(sample_build) -> Path:
    return sample_build


def _copy(built: Path, tmp_path: Path) -> Path:
    return copy_of(built, tmp_path)


@settings(max_examples=6, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**63 - 1), per_image=st.sampled_from([1, 7, 40, 60]),
       turns=st.integers(1, 3), fmt=st.sampled_from(sorted(coordinates.FORMATTERS)))
def test_every_clean_build_validates(built, tmp_path_factory, seed, per_image, turns, fmt):
    """Over seeds, per_image up to 60, multi-turn dialogues and every coordinate format: the boxes column holds
    exactly the boxes the text prints, in print order, and every ledger balances."""
    from rcforge.pipelines.build import build

    out = _copy(built, tmp_path_factory.mktemp("prop"))
    recipe = load_recipe(str(SAMPLE_RECIPE))
    recipe = dataclasses.replace(recipe, seed=seed, render=dataclasses.replace(
        recipe.render, per_image=per_image, turns_per_dialogue=turns, coordinates=fmt))
    manifest = build(recipe, str(out), progress=False)
    assert manifest.build.reused_ingest
    assert validate(str(out)) == []


def test_names_only_answers_add_no_boxes(built, tmp_path):
    """coarse_spatial and relation in their names forms print no box for the answer objects."""
    out = built
    for shard in sorted((out / "dialogues").glob("part-*.parquet")):
        for row in pq.read_table(shard).to_pylist():
            fmt = coordinates.FORMATTERS[row["coordinates"]]
            printed = [b for t in row["conversations"] for b in fmt.parse(t["value"], row["width"], row["height"])]
            assert len(printed) == len(row["boxes"]), row["id"]


def _tamper_manifest(out: Path, edit) -> None:
    manifest = json.loads((out / "manifest.json").read_text())
    edit(manifest)
    (out / "manifest.json").write_text(json.dumps(manifest))


def _first_shard(out: Path) -> Path:
    return next(p for p in sorted((out / "dialogues").glob("part-*.parquet")) if pq.read_table(p).num_rows)


def _duplicate_rows(out: Path) -> None:
    shard = _first_shard(out)
    table = pq.read_table(shard)
    pq.write_table(pa.concat_tables([table, table.slice(0, 1)]), shard)


def _truncate(out: Path) -> None:
    shard = _first_shard(out)
    data = shard.read_bytes()
    shard.write_bytes(data[: len(data) // 2])


def _box_outside(out: Path) -> None:
    part = next((out / "images" / "visual_genome").glob("part-*.parquet"))
    rows = pq.read_table(part).to_pylist()
    rows[0]["objects"][0]["box"] = [0.0, 0.0, rows[0]["width"] + 50.0, 10.0]
    pq.write_table(pa.Table.from_pylist(rows, schema=pq.read_schema(part)), part)


TAMPERING = {
    "ledger flag kept, counts changed": (lambda out: _tamper_manifest(
        out, lambda m: m["sources"]["visual_genome"]["ledger"]["annotations"]["object"].update(written=1)),
        "does not balance"),
    "dialogue count changed": (lambda out: _tamper_manifest(
        out, lambda m: m["build"]["ledger"].update(dialogues=m["build"]["ledger"]["dialogues"] + 1)),
        "does not balance"),
    "duplicated rows": (_duplicate_rows, "appears twice"),
    "missing shard": (lambda out: _first_shard(out).unlink(), "differ from the manifest"),
    "truncated shard": (_truncate, "unreadable"),
    "missing part": (lambda out: next((out / "images" / "vqav2").glob("part-*.parquet")).unlink(), "missing"),
    "box outside its image": (_box_outside, "outside their image"),
}


@pytest.mark.parametrize("case", sorted(TAMPERING))
def test_validate_finds_tampering(built, tmp_path, capsys, case):
    out = _copy(built, tmp_path)
    tamper, says = TAMPERING[case]
    tamper(out)
    try:
        code = cli.main(["validate", str(out)])
    except SystemExit as exit_:
        code = exit_.code
    text = "".join(capsys.readouterr())
    assert "Traceback" not in text
    assert code == 1 and says in text, text


def _with_own_images(built, tmp_path, source: str):
    """(a copy of the build, a copy of ``source``'s image folder that its manifest now points at, the manifest),
    so a test can damage the images without touching the sample's."""
    out = _copy(built, tmp_path)
    manifest = json.loads((out / "manifest.json").read_text())
    images = tmp_path / f"{source}_images"
    shutil.copytree(manifest["sources"][source]["image_root"], images)
    manifest["sources"][source]["image_root"] = str(images)
    (out / "manifest.json").write_text(json.dumps(manifest))
    return out, images, manifest


def test_validate_images_checks_the_files(built, tmp_path, capsys):
    from rcforge.inspect.validate import validate

    out, images, _ = _with_own_images(built, tmp_path, "vqav2")
    assert not [p for p in validate(str(out), images=True) if "vqav2" in p]
    for f in images.iterdir():
        f.unlink()
    assert any("image file" in p for p in validate(str(out), images=True) if "vqav2" in p)


def test_a_changed_input_is_reingested(tmp_path, capsys):
    sample = Path(SAMPLE_RECIPE).parent.parent / "sample_data"
    data = tmp_path / "data"
    shutil.copytree(sample / "vqav2", data)
    recipe = tmp_path / "r.yaml"
    recipe.write_text(json.dumps({"max_bad_fraction": 1.0, "sources": {"vqav2": {
        "questions": str(data / "questions.json"), "annotations": str(data / "annotations.json"),
        "images": str(data / "images")}}}))
    out = tmp_path / "out"
    assert cli.main(["build", str(recipe), "--out", str(out), "--no-progress"]) == 0
    assert cli.main(["build", str(recipe), "--out", str(out), "--no-progress"]) == 0
    assert json.loads((out / "manifest.json").read_text())["build"]["reused_ingest"]
    questions = json.loads((data / "questions.json").read_text())
    questions["questions"] = questions["questions"][:1]
    (data / "questions.json").write_text(json.dumps(questions))
    capsys.readouterr()
    assert cli.main(["build", str(recipe), "--out", str(out), "--no-progress"]) == 0
    text = "".join(capsys.readouterr())
    assert "inputs changed: re-ingesting" in text
    manifest = json.loads((out / "manifest.json").read_text())
    assert not manifest["build"]["reused_ingest"]
    assert manifest["sources"]["vqav2"]["ledger"]["annotations"]["qa"]["written"] == 1


def test_errors_are_written_when_the_threshold_stops_a_source(tmp_path, capsys):
    sample = Path(SAMPLE_RECIPE).parent.parent / "sample_data"
    root = tmp_path / "vg"
    shutil.copytree(sample / "visual_genome", root, ignore=shutil.ignore_patterns("images"))
    objects = json.loads((root / "objects.json").read_text())
    for o in objects[0]["objects"]:
        o["w"] = 0
    (root / "objects.json").write_text(json.dumps(objects))
    recipe = tmp_path / "r.yaml"
    recipe.write_text(json.dumps({"max_bad_fraction": 0.01, "sources": {"visual_genome": {
        "root": str(root), "images": str(root)}}}))
    out = tmp_path / "out"
    code = cli.main(["ingest", str(recipe), "--out", str(out), "--no-progress"])
    text = "".join(capsys.readouterr())
    assert code == 1 and "max_bad_fraction" in text and "Traceback" not in text
    where = out / "last-failed-run" / "errors" / "visual_genome"
    assert f"see the errors output under {where}/" in text
    errors = [r for p in where.glob("part-*.parquet") for r in pq.read_table(p).to_pylist()]
    assert sum(e["reason"] == "box_zero_area" for e in errors) == len(objects[0]["objects"])


def test_an_unbalanced_ledger_fails_the_command(tmp_path, capsys, monkeypatch):
    from rcforge.core.ledger import Tally

    monkeypatch.setattr(Tally, "balanced", lambda self: False)
    sample = Path(SAMPLE_RECIPE).parent.parent / "sample_data"
    recipe = tmp_path / "r.yaml"
    recipe.write_text(json.dumps({"sources": {"vqav2": {
        "questions": str(sample / "vqav2" / "questions.json"),
        "annotations": str(sample / "vqav2" / "annotations.json"), "images": str(sample / "vqav2" / "images")}}}))
    code = cli.main(["ingest", str(recipe), "--out", str(tmp_path / "out"), "--no-progress"])
    text = "".join(capsys.readouterr())
    assert code == 1 and "does not balance" in text


def test_validate_images_summarizes_by_reason(built, tmp_path):
    from rcforge.inspect.validate import validate

    out, images, manifest = _with_own_images(built, tmp_path, "visual_genome")
    files = sorted(images.iterdir())
    files[0].write_bytes(b"not a jpeg")
    for f in files[1:]:
        f.unlink()
    lines = [p for p in validate(str(out), images=True) if p.startswith("visual_genome:")]
    records = manifest["sources"]["visual_genome"]["records"]
    assert len(lines) == 2, lines  # one line per reason, however many files
    assert lines[0].startswith(f"visual_genome: {records - 1:,} of {records:,} image files image_missing")
    assert lines[1].startswith(f"visual_genome: 1 of {records:,} image files image_unreadable")
