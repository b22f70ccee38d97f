"""`rcforge build` end to end on the bundled sample: every task, golden dialogues, determinism across runners,
export to LLaVA JSON / JSONL, and loading the shards with pyarrow and Hugging Face datasets."""

import json
import re

import pyarrow.parquet as pq
import pytest

from rcforge.cli.main import main

from conftest import SAMPLE_RECIPE, copy_of

TASKS = sorted(["attribute", "coarse_spatial", "counting", "detection", "flickr_grounded_caption",
                "grounded_caption", "grounding", "pointqa", "referring_segmentation", "region_comparison", "relation",
                "vqa"])


@pytest.fixture
def built(sample_build):
    return sample_build  # shared by the session: tests that change OUT work on a copy


def _rows(out):
    rows = []
    for part in sorted((out / "dialogues").glob("part-*.parquet")):
        rows.extend(pq.read_table(part).to_pylist())
    return rows


def test_sample_build_renders_every_task(built):
    from rcforge import rc_tasks

    manifest = json.loads((built / "manifest.json").read_text())
    assert sorted(manifest["build"]["by_task"]) == TASKS == sorted(rc_tasks.names())  # README: "every task"
    rows = _rows(built)
    assert len(rows) == manifest["build"]["dialogues"] > 0
    assert len({r["id"] for r in rows}) == len(rows)
    assert set(manifest["build"]["templates"]["sha256"]) >= {f"{t}.yaml" for t in TASKS}
    for r in rows:
        assert r["conversations"][0]["from"] == "human" and r["conversations"][0]["value"].startswith("<image>\n")
        for turn in r["turns"]:  # the sample's counts are proven on LVIS only (VG's labels are partial, Objects365's
            # claimed and untrusted); other tasks say nothing
            assert turn["count_proven"] is ((r["source"] == "lvis") if turn["task"] == "counting" else None)
        assert all(0.0 <= v <= 1.0 for box in r["boxes"] for v in box)


def test_golden_dialogues(built):
    from golden.regenerate import GOLDEN, dumps

    rows = sorted(({k: r[k] for k in ("id", "template_id", "conversations", "boxes")} for r in _rows(built)),
                  key=lambda r: r["id"])
    assert dumps(rows) == GOLDEN.read_text(), "run: python tests/golden/regenerate.py, and review the diff"


def test_second_build_reuses_the_ingest(built, tmp_path):
    built = copy_of(built, tmp_path)
    manifest = json.loads((built / "manifest.json").read_text())
    assert main(["build", str(SAMPLE_RECIPE), "--out", str(built), "--no-progress"]) == 0
    again = json.loads((built / "manifest.json").read_text())
    assert again["build"]["reused_ingest"] and again["build"]["dialogues"] == manifest["build"]["dialogues"]


@pytest.mark.slow
def test_same_shards_on_two_workers(built, tmp_path):
    other = tmp_path / "two"
    assert main(["build", str(SAMPLE_RECIPE), "--out", str(other), "--no-progress", "--workers", "2"]) == 0
    names = sorted(p.name for p in (built / "dialogues").glob("*.parquet"))
    assert names == sorted(p.name for p in (other / "dialogues").glob("*.parquet"))
    for name in names:
        assert pq.read_table(built / "dialogues" / name).equals(pq.read_table(other / "dialogues" / name))


@pytest.mark.parametrize("suffix", [".json", ".jsonl"])
def test_export_llava(built, tmp_path, suffix):
    file = tmp_path / f"llava{suffix}"
    assert main(["export", "llava", str(built), str(file), "--relative"]) == 0
    text = file.read_text()
    items = json.loads(text) if suffix == ".json" else [json.loads(line) for line in text.splitlines()]
    rows = {r["id"]: r for r in _rows(built)}
    assert len(items) == len(rows)
    for item in items:
        row = rows[item["id"]]
        assert item["conversations"] == row["conversations"]
        assert item["image"] == f"{row['source']}/{row['image']}"


def test_shards_load_with_hugging_face_datasets(built):
    import datasets
    files = sorted(str(p) for p in (built / "dialogues").glob("part-*.parquet"))
    ds = datasets.load_dataset("parquet", data_files=files, split="train")
    assert ds.num_rows == len(_rows(built))
    assert ds[0]["conversations"][0]["from"] == "human"


def test_multi_turn_shikra_and_balanced_shards(tmp_path):
    import yaml

    recipe = yaml.safe_load(SAMPLE_RECIPE.read_text())
    for src in recipe["sources"].values():
        for k, v in list(src.items()):
            if isinstance(v, str) and v.startswith(".."):
                src[k] = str((SAMPLE_RECIPE.parent / v).resolve())
    recipe["exclude"]["refcoco"]["root"] = str((SAMPLE_RECIPE.parent / "../sample_data/refcoco").resolve())
    recipe["render"].update({"coordinates": "shikra", "turns_per_dialogue": 3, "rows_per_shard": 8})
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(recipe))
    out = tmp_path / "out"
    assert main(["build", str(path), "--out", str(out), "--no-progress"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    shards = manifest["build"]["shards"]
    assert len(shards) > 3 and all(s.endswith(f"-of-{len(shards):05d}.parquet") for s in shards)
    sizes = [pq.read_metadata(out / "dialogues" / s).num_rows for s in shards]
    assert sum(sizes) == manifest["build"]["dialogues"]
    rows = _rows(out)
    sampled = [r for r in rows if r["source"] == "visual_genome"]
    assert sampled and all(len(r["conversations"]) == 2 * len(r["turns"]) for r in rows)
    assert max(len(r["turns"]) for r in sampled) == 3
    assert all(r["coordinates"] == "shikra" for r in rows)
    # only the first human turn carries the image token
    for r in rows:
        humans = [t["value"] for t in r["conversations"] if t["from"] == "human"]
        assert humans[0].startswith("<image>\n") and not any("<image>" in h for h in humans[1:])


def test_render_failures_go_to_errors_and_are_counted(tmp_path, monkeypatch):
    from rcforge.core.errors import TooManyBadRecords
    from rcforge.render.renderer import Renderer

    real = Renderer.dialogues

    def flaky(self, record):
        if record["key"] == "vg/2":
            raise ValueError("boom on vg/2")
        return real(self, record)

    monkeypatch.setattr(Renderer, "dialogues", flaky)
    out = tmp_path / "out"
    with pytest.raises(TooManyBadRecords, match="1 of 9 image records failed.*last-failed-run/errors/render"):
        main_raising(["build", str(SAMPLE_RECIPE), "--out", str(out), "--no-progress"])
    # the failed build switched nothing: OUT has no output yet, and the failure is kept for the user
    assert not (out / "manifest.json").exists() and not (out / "dialogues").exists()
    failed = out / "last-failed-run"
    manifest = json.loads((failed / "manifest.json").read_text())
    led = manifest["build"]["ledger"]
    assert led["render_errors"] == 1 and led["images"] == 9 and led["balanced"]
    (error,) = pq.read_table(next((failed / "errors" / "render").glob("*.parquet"))).to_pylist()
    assert error["key"] == "vg/2" and error["reason"] == "ValueError" and "boom" in error["message"]
    assert "TooManyBadRecords" in json.loads((failed / "failure.json").read_text())["error"]


def main_raising(argv):
    """The build command without the CLI's error printing, so the test sees the exception."""
    import argparse

    from rcforge.pipelines import build as build_cmd
    from rcforge.pipelines import flags

    parser = argparse.ArgumentParser()
    flags.build(parser)
    args, rest = parser.parse_known_args(argv[1:])
    return build_cmd.main(args, rest)


def test_tasks_command_and_template_override(tmp_path, capsys):
    import shutil

    from rcforge.render.templating import default_root

    assert main(["tasks"]) == 0
    listed = capsys.readouterr().out
    assert all(f"{t}:" in listed for t in TASKS) and "frequent_keep" in listed
    # a user's own template set: the bundled one with one paraphrase changed
    mine = tmp_path / "mine"
    shutil.copytree(default_root(), mine, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    (mine / "vqa.yaml").write_text(
        "variants:\n  answer:\n    question_vars: [question]\n    answer_vars: [answer]\n"
        "    questions:\n      mine: 'MINE {{ question }}'\n    answers:\n      a: '{{ answer }}'\n")
    out = tmp_path / "out"
    assert main(["build", str(SAMPLE_RECIPE), "--out", str(out), "--no-progress", "--templates", str(mine),
                 "--coordinates", "qwen"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["build"]["coordinates"] == "qwen_vl"  # the alias is recorded by the format's own name
    assert manifest["build"]["coordinate_params"]["bins"] == 1000
    assert manifest["build"]["templates"]["root"] == str(mine)
    rows = _rows(out)
    vqa = [r for r in rows if r["task"] == "vqa"]
    assert len(vqa) == 3 and all(r["template_id"] == "vqa.answer.mine+a" for r in vqa)
    assert all(r["conversations"][0]["value"].startswith("<image>\nMINE ") for r in vqa)
    assert any("<box>(" in r["conversations"][1]["value"] for r in rows if r["task"] == "grounding")


def test_the_full_recipe_of_docs_scale_loads(tmp_path):
    """recipes/full.yaml (docs/SCALE.md runs it) is a valid recipe: every key known, every value in range; its
    data paths are laid out here as empty files and folders, since only a real download fills them."""
    import shutil

    import yaml

    from rcforge.recipe.tree import load_recipe

    repo = SAMPLE_RECIPE.parents[1]
    (tmp_path / "recipes").mkdir()
    shutil.copy(repo / "recipes" / "full.yaml", tmp_path / "recipes" / "full.yaml")
    raw = yaml.safe_load((repo / "recipes" / "full.yaml").read_text())
    paths = [v for section in (raw["sources"], raw["exclude"]) for options in section.values()
             for v in options.values() if isinstance(v, str) and v.startswith("../data/")]
    for value in paths:
        target = tmp_path / "recipes" / value
        if target.suffix in (".json", ".p"):
            target.parent.mkdir(parents=True, exist_ok=True)
            target.touch()
        else:
            target.mkdir(parents=True, exist_ok=True)
    (tmp_path / "data" / "flickr30k_entities" / "train.txt").touch()
    recipe = load_recipe(str(tmp_path / "recipes" / "full.yaml"))
    assert set(recipe.sources) == {"visual_genome", "objects365", "flickr30k_entities", "refcoco", "vqav2", "pointqa"}
    assert sorted(recipe.render.tasks) == TASKS
    assert recipe.bootstrap.model == "microsoft/Florence-2-large"  # a hub id, not a folder beside the recipe
    assert "recipes/full.yaml" in (repo / "docs" / "SCALE.md").read_text()


def test_the_sample_recipe_names_every_coordinate_format():
    """A newcomer reads the formats off the sample recipe: its coordinates line names every registered one."""
    from rcforge.render import coordinates

    from conftest import SAMPLE_RECIPE

    text = SAMPLE_RECIPE.read_text()
    comment = text[text.index("coordinates:"):text.index("per_image:")]
    assert all(re.search(rf"\b{name}\b", comment) for name in coordinates.FORMATTERS), comment


def test_the_shard_estimate_is_an_upper_end_that_follows_the_tasks(built, tmp_path):
    """The number of shards is chosen from an estimate: it is at least the dialogues written, on the sample and
    with visual prompts' twins, and an enumerating task left out of the recipe is left out of it."""
    import dataclasses

    from rcforge.core.manifest import Manifest
    from rcforge.core.visual_prompts import VisualPromptSettings
    from rcforge.pipelines.build import estimate_dialogues
    from rcforge.recipe.tree import load_recipe

    manifest = Manifest.load(str(built), "test")
    recipe = load_recipe(str(SAMPLE_RECIPE))
    written = json.loads((built / "manifest.json").read_text())["build"]["dialogues"]
    estimate = estimate_dialogues(manifest, recipe)
    assert written <= estimate <= 3 * written
    twins = dataclasses.replace(recipe, render=dataclasses.replace(
        recipe.render, visual_prompts=VisualPromptSettings(rate=1.0, both=True)))
    assert 2 * estimate - 1 <= estimate_dialogues(manifest, twins) <= 2 * estimate + 1
    refs = sum(e.ledger["annotations"].get("ref", {}).get("written", 0) for e in manifest.sources.values())
    tasks = {k: v for k, v in recipe.render.tasks.items() if k != "grounding"}
    fewer = dataclasses.replace(recipe, render=dataclasses.replace(recipe.render, tasks=tasks))
    assert estimate_dialogues(manifest, fewer) == estimate - refs
