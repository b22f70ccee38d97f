"""The ingest command end to end: the bundled sample (the README's main job), exclusion, recipe errors."""

import json
import subprocess
import sys

import pytest
import yaml

from rcforge.cli.main import main
from rcforge.core.errors import RecipeError
from rcforge.recipe.tree import load_recipe

from conftest import SAMPLE, SAMPLE_RECIPE, read_records

SOURCES = ["flickr30k_entities", "lvis", "objects365", "pointqa", "refcoco", "visual_genome", "vqav2"]


def test_sample_recipe_ingests_all_seven_sources(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["ingest", str(SAMPLE_RECIPE), "--out", str(out), "--no-progress"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert sorted(manifest["sources"]) == SOURCES
    assert manifest["totals"]["balanced"]
    for name in SOURCES:
        entry = manifest["sources"][name]
        assert entry["records"] == len(read_records(out, name)) > 0
        assert all((out / p).exists() for p in entry["parts"])
    assert manifest["sources"]["visual_genome"]["ledger"]["annotations"]["object"]["read"] == 119
    printed = capsys.readouterr().out
    assert "ledger balanced" in printed and "visual_genome" in printed


def test_rerun_rewrites_the_same_records(tmp_path):
    out = tmp_path / "out"
    for _ in range(2):
        assert main(["ingest", str(SAMPLE_RECIPE), "--out", str(out), "--no-progress"]) == 0
    first = read_records(out, "visual_genome")
    assert len(first) == 3 and len(list((out / "images" / "visual_genome").glob("*.parquet"))) == 1


def test_exclusion_removes_evaluation_images_from_every_source(tmp_path):
    # a COCO-id list naming the VQAv2 image and the RefCOCO image
    ids = tmp_path / "eval_ids.json"
    ids.write_text("[458752, 581857]")
    recipe = yaml.safe_load(SAMPLE_RECIPE.read_text())
    for src in recipe["sources"].values():
        for k, v in list(src.items()):
            if isinstance(v, str) and v.startswith(".."):
                src[k] = str((SAMPLE_RECIPE.parent / v).resolve())
    recipe["exclude"]["refcoco"]["root"] = str(SAMPLE / "refcoco")
    recipe["exclude"]["coco_ids"] = str(ids)
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    out = tmp_path / "out"
    assert main(["ingest", str(path), "--out", str(out), "--no-progress"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["exclusion"]["excluded_images"]["vqav2"] == 1
    assert manifest["exclusion"]["excluded_images"]["refcoco"] == 1
    assert read_records(out, "vqav2") == [] and manifest["totals"]["balanced"]


def _recipe(tmp_path, text):
    path = tmp_path / "r.yaml"
    path.write_text(text)
    return path


def test_recipe_errors_name_the_key_and_path(tmp_path):
    with pytest.raises(RecipeError, match="unknown key 'sourcez'"):
        load_recipe(_recipe(tmp_path, "sourcez: {}\n"))
    with pytest.raises(RecipeError, match=r"Unknown source 'vg'; registered: flickr30k_entities, lvis, objects365"):
        load_recipe(_recipe(tmp_path, "sources: {vg: {root: x}}\n"))
    with pytest.raises(RecipeError, match=r"sources.visual_genome.root: .*nowhere does not exist"):
        load_recipe(_recipe(tmp_path, "sources: {visual_genome: {root: nowhere, images: x}}\n"))
    with pytest.raises(RecipeError, match=r"sources.visual_genome: unknown key 'imgs'"):
        load_recipe(_recipe(tmp_path, f"sources: {{visual_genome: {{root: {SAMPLE}, imgs: x}}}}\n"))
    with pytest.raises(RecipeError, match=r"on_bad_records: 'ignore' is not allowed; choose one of: error, skip"):
        load_recipe(_recipe(tmp_path, f"on_bad_records: ignore\nsources: {{visual_genome: {{root: {SAMPLE}, "
                                      "images: x}}\n"))


def test_cli_reports_errors_in_one_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "rcforge.cli", "ingest", str(_recipe(tmp_path, "seed: x\n")),
                           "--out", str(tmp_path / "o")], capture_output=True, text=True)
    assert proc.returncode == 1
    assert proc.stderr.strip().startswith("rcforge ingest: error:") and "Traceback" not in proc.stderr


@pytest.mark.slow  # a fresh interpreter imports Beam: about 3 s
def test_help_lists_the_commands():
    proc = subprocess.run([sys.executable, "-m", "rcforge.cli", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and "ingest" in proc.stdout


def test_beam_pipeline_under_test_pipeline(tmp_path):
    from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline

    from rcforge.pipelines.ingest import ingest

    recipe = load_recipe(SAMPLE_RECIPE)
    pipeline = BeamTestPipeline(argv=["--runner=FnApiRunner"])
    manifest = ingest(recipe, str(tmp_path / "out"), progress=False, test_pipeline=pipeline)
    assert sorted(manifest.sources) == SOURCES and manifest.totals["balanced"] and manifest.generation == 1


def test_fsspec_urls_for_inputs_and_output(tmp_path):
    """memory:// stands in for gs:// and s3://: inputs are read and parts written through fsspec."""
    import fsspec

    from rcforge.pipelines.ingest import ingest
    from rcforge.recipe.tree import recipe_from_mapping

    fs = fsspec.filesystem("memory")
    vg = SAMPLE / "visual_genome"
    for name in ("image_data", "objects", "relationships", "region_descriptions", "attributes"):
        fs.pipe(f"/vgtest/{name}.json", (vg / f"{name}.json").read_bytes())
    recipe = recipe_from_mapping({"sources": {"visual_genome": {"root": "memory://vgtest", "images": "memory://i"}},
                                  "verify_images": "off"})
    manifest = ingest(recipe, "memory://outtest", progress=False)
    assert manifest.sources["visual_genome"].records == 3
    parts = fs.glob("/outtest/images/visual_genome/part-*.parquet")
    assert len(parts) == 1 and fs.exists("/outtest/manifest.json")


@pytest.mark.slow
def test_same_records_on_one_and_two_workers(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    assert main(["ingest", str(SAMPLE_RECIPE), "--out", str(one), "--no-progress"]) == 0
    assert main(["ingest", str(SAMPLE_RECIPE), "--out", str(two), "--no-progress",
                 "--direct_running_mode=multi_processing", "--direct_num_workers=2"]) == 0
    for name in SOURCES:
        assert read_records(one, name) == read_records(two, name)
    ledgers = [json.loads((d / "manifest.json").read_text())["sources"] for d in (one, two)]
    assert {n: s["ledger"] for n, s in ledgers[0].items()} == {n: s["ledger"] for n, s in ledgers[1].items()}
