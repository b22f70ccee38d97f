"""Visual prompts (render.visual_prompts): questions that name regions by marks drawn on the image. The sample builds
with them and validates; every mark is where its table row says, to the pixel; the same recipe gives the same
bytes on one and two workers; a mark that cannot be read sends its dialogue back to coordinates, with the reason
counted; the exports point at the marked image."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from rcforge import cli
from rcforge.core import marks, visual_prompts
from rcforge.core.errors import RecipeError
from rcforge.core.manifest import Manifest
from rcforge.core.visual_prompts import VisualPromptSettings
from rcforge.recipe.tree import load_recipe
from rcforge.render.renderer import Renderer

from conftest import SAMPLE_RECIPE, copy_of


def _recipe(seed: int = 0, **vp):
    from rcforge.rc_tasks.counting import CountingConfig

    recipe = load_recipe(str(SAMPLE_RECIPE))
    settings = VisualPromptSettings(**{"rate": 1.0, "both": True, **vp})
    tasks = dict(recipe.render.tasks)  # counting also within an area, which a box shows
    tasks["counting"] = dataclasses.replace(tasks["counting"], config=CountingConfig(by=("box", "name", "region")))
    return dataclasses.replace(recipe, seed=seed, render=dataclasses.replace(
        recipe.render, per_image=12, visual_prompts=settings, tasks=tasks))


def _build(sample_build, tmp_path, name="out", beam_args=None, **vp):
    from rcforge.pipelines.build import build

    out = copy_of(sample_build, tmp_path / name)
    build(_recipe(**vp), str(out), progress=False, beam_args=beam_args)
    return out


def _dialogues(out) -> list[dict]:
    return [r for p in sorted((out / "dialogues").glob("part-*.parquet")) for r in pq.read_table(p).to_pylist()]


@pytest.fixture(scope="module")
def vp_build(sample_build, tmp_path_factory):
    return _build(sample_build, tmp_path_factory.mktemp("vp"))


def test_the_sample_builds_with_marks_validates_and_counts_them(vp_build, capsys):
    rows = _dialogues(vp_build)
    marked = [r for r in rows if r["image_vp"]]
    ledger = json.loads((vp_build / "manifest.json").read_text())["build"]["ledger"]["visual_prompts"]
    assert ledger["written"] == len(marked) >= 5
    assert {r["task"] for r in marked} >= {"grounded_caption", "relation"}
    # both: every marked dialogue has its coordinate twin
    ids = {r["id"] for r in rows}
    assert all(r["id"].endswith("/vp") and r["id"][:-3] in ids for r in marked)
    for r in marked:
        path = vp_build / r["image_vp"]
        assert path.name == f"{r['image_vp_sha256']}.png"
        assert hashlib.sha256(path.read_bytes()).hexdigest() == r["image_vp_sha256"]
        question = r["conversations"][0]["value"]
        assert r["boxes"] == [] or "[" not in question  # the question names its regions by their marks
        assert all(visual_prompts.name(_mark(m, None)) in question for m in r["marks"])
    assert not any(r["marks"] or r["image_vp_sha256"] for r in rows if not r["image_vp"])
    assert cli.main(["validate", str(vp_build)]) == 0


def _mark(row: dict, obj: dict | None) -> marks.Mark:
    return marks.Mark(row["mark_id"], row["shape"], row["colour"], row["object_id"],
                      tuple(obj["box"]) if obj else (0, 0, 1, 1), (obj or {}).get("mask"))


def _records(out) -> dict:
    return {r["key"]: r for p in sorted((out / "images").rglob("part-*.parquet")) for r in pq.read_table(p).to_pylist()}


def test_each_mark_is_drawn_where_its_table_row_says(vp_build):
    """Recomputed from the marks table and the image record alone: inside each mark's own shape the marked image
    holds the mark's colour (a label's text aside); everywhere else it is the original image, pixel for pixel."""
    records, roots = _records(vp_build), Manifest.load(str(vp_build), "test").image_roots()
    checked = 0
    for row in (r for r in _dialogues(vp_build) if r["image_vp"]):
        record = records[row["key"]]
        original = np.asarray(Image.open(f"{roots[row['source']]}/{row['image']}").convert("RGB"))
        drawn = np.asarray(Image.open(vp_build / row["image_vp"]).convert("RGB"))
        assert drawn.shape == original.shape
        union = np.zeros(drawn.shape[:2], dtype=bool)
        for m in row["marks"]:
            kind, number = m["annotation"].split(":")
            if kind == "area":  # counting's area: its box is in its name
                obj = {"box": tuple(float(v) for v in number.split(","))}
            else:
                pool = record["objects"] if kind == "object" else record["regions"]
                obj = next(o for o in pool if o["id"] == int(number))
            painted = marks.footprint(_mark(m, obj), (record["width"], record["height"]))
            assert painted.any()
            colour = np.array(marks.PALETTE[m["colour"]])
            same = (drawn[painted] == colour).all(axis=1).mean()
            assert same >= (0.5 if m["shape"] in ("number", "letter") else 1.0), (row["id"], m, same)
            union |= painted
            checked += 1
        assert (drawn[~union] == original[~union]).all(), row["id"]
    assert checked >= 5


@pytest.mark.parametrize("kind, fmt", [("llava", "pink"), ("sharegpt", "qwen2_vl")])
def test_exports_point_at_the_marked_image(sample_build, vp_build, tmp_path, kind, fmt):
    from rcforge.pipelines.build import build

    out = vp_build
    if fmt != "pink":
        out = copy_of(sample_build, tmp_path / fmt)
        recipe = _recipe()
        build(dataclasses.replace(recipe, render=dataclasses.replace(recipe.render, coordinates=fmt)), str(out),
              progress=False)
    rows = _dialogues(out)
    target = tmp_path / f"{kind}.json"
    assert cli.main(["export", kind, str(out), str(target), "--relative"]) == 0
    items = json.loads(target.read_text())
    assert len(items) == len(rows)
    for item, row in zip(items, sorted(rows, key=lambda r: r["id"])):
        shown = json.dumps(item)
        expected = row["image_vp"] or f"{row['source']}/{row['image']}"
        assert f'"{expected}"' in shown, (row["id"], shown[:300])
    assert sum("images_vp/" in json.dumps(item) for item in items) == sum(1 for r in rows if r["image_vp"]) >= 5


def test_validate_finds_a_missing_or_altered_marked_image(vp_build, tmp_path):
    out = copy_of(vp_build, tmp_path)
    images = sorted((out / "images_vp").iterdir())
    images[0].write_bytes(images[0].read_bytes() + b"x")
    images[1].unlink()
    from rcforge.inspect.validate import validate

    problems = "\n".join(validate(str(out)))
    assert f"{images[0].name[:-4]})" not in problems and "does not hash to its name" in problems
    assert "is missing" in problems


def test_one_and_two_workers_draw_the_same_bytes(sample_build, vp_build, tmp_path):
    out = _build(sample_build, tmp_path, beam_args=["--direct_running_mode=multi_processing",
                                                    "--direct_num_workers=2"])
    files = {p.name: p.read_bytes() for p in (out / "images_vp").iterdir()}
    assert files == {p.name: p.read_bytes() for p in (vp_build / "images_vp").iterdir()}
    compared = ("id", "conversations", "image_vp", "image_vp_sha256", "marks")
    assert [{k: r[k] for k in compared} for r in _dialogues(out)] == \
        [{k: r[k] for k in compared} for r in _dialogues(vp_build)]


test_one_and_two_workers_draw_the_same_bytes = pytest.mark.slow(test_one_and_two_workers_draw_the_same_bytes)


# -- legibility: constructed failures ---------------------------------------------------------------------------
def _plain(colour, size=(200, 150)):
    return Image.new("RGB", size, marks.PALETTE[colour])


@pytest.mark.parametrize("image, objects, settings, reason", [
    # the only colour allowed is the image's own: nothing under the mark stands out
    (_plain("red"), [{"id": 1, "ref": "object:1", "box": (50, 40, 150, 110)}],
     VisualPromptSettings(shapes=("box",), colours=("red",)), "mark_low_contrast"),
    # two objects with one box: the second box outline lies on the first
    (_plain("black"), [{"id": 1, "ref": "object:1", "box": (50, 40, 150, 110)},
                       {"id": 2, "ref": "object:2", "box": (50, 40, 150, 110)}],
     VisualPromptSettings(shapes=("box",), colours=("red", "green")), "marks_overlap"),
    # a number tag bigger than half of its tiny object
    (_plain("black"), [{"id": 1, "ref": "object:1", "box": (50, 40, 58, 46)}],
     VisualPromptSettings(shapes=("number",)), "mark_covers_its_object"),
    # a tag at the image's bottom-right corner runs off the image
    (_plain("black"), [{"id": 1, "ref": "object:1", "box": (195, 145, 200, 150)}],
     VisualPromptSettings(shapes=("letter",), max_cover=1.0), "mark_outside_image"),
    # an outline needs a mask, and the object has none
    (_plain("black"), [{"id": 1, "ref": "object:1", "box": (50, 40, 150, 110)}],
     VisualPromptSettings(shapes=("contour",)), "mark_no_mask"),
])
def test_a_mark_that_cannot_be_read_is_refused_with_its_reason(image, objects, settings, reason):
    assert visual_prompts.place(image, objects, settings, random.Random(0)) == reason


def test_an_unreadable_mark_sends_its_dialogue_back_to_coordinates(sample_build):
    """A renderer whose only mark colour is invisible on a white image: every dialogue stays with coordinates, and
    the reason is counted."""
    recipe = _recipe(colours=("white",), shapes=("box",), both=False)
    records = _records(sample_build)
    renderer = Renderer(recipe.render, recipe.seed, Manifest.load(str(sample_build), "test").image_roots())
    white = Image.new("RGB", (800, 600), (255, 255, 255))
    renderer._image = lambda record: white.resize((record["width"], record["height"]))
    rows = [d for key in ("vg/1", "vg/2") for d in renderer.dialogues(records[key])]
    assert rows and not any(d["image_vp"] for d in rows)
    assert renderer.visual_prompts.get("mark_low_contrast", 0) >= 3 and "written" not in renderer.visual_prompts


def test_the_recipe_names_shapes_and_colours_it_knows():
    from rcforge.recipe.tree import render_from_mapping

    tasks = {"tasks": {"grounded_caption": {}}}
    with pytest.raises(RecipeError, match="render.visual_prompts.*'hexagon' is not a mark shape"):
        render_from_mapping({**tasks, "visual_prompts": {"shapes": ["hexagon"]}}, None)
    with pytest.raises(RecipeError, match="render.visual_prompts.rate"):
        render_from_mapping({**tasks, "visual_prompts": {"rate": 2}}, None)
    assert render_from_mapping({**tasks, "visual_prompts": True}, None).visual_prompts == VisualPromptSettings()
    assert render_from_mapping(tasks, None).visual_prompts is None


def test_region_comparison_names_the_larger_object_by_a_clear_margin(sample_build):
    """Over many draws on the sample's records: the two objects differ in size by the configured margin (mask
    pixels where both have a mask, else box area), and the answer names the larger."""
    from rcforge.rc_tasks import region_comparison as rc

    cfg = rc.RegionComparisonConfig()
    records = list(_records(sample_build).values())
    asked = 0
    for seed in range(200):
        record = records[seed % len(records)]
        inst = rc.sample(record, random.Random(seed), cfg)
        if inst is None:
            continue
        asked += 1
        objects = {f"object:{o['id']}": o for o in record["objects"]}
        first, second = (objects[inst.question[k].ids[0]] for k in ("first", "second"))
        by_mask = "size_by:mask" in inst.provenance
        size = (lambda o: o["area"]) if by_mask else \
            (lambda o: (o["box"][2] - o["box"][0]) * (o["box"][3] - o["box"][1]))
        larger, smaller = sorted((first, second), key=size, reverse=True)
        assert size(larger) >= (cfg.mask_ratio if by_mask else cfg.box_ratio) * size(smaller)
        assert inst.answer["which"] == ("first" if larger is first else "second")
        assert inst.answer["name"] == larger["names"][0] and not larger["ignore"] and not smaller["ignore"]
    assert asked >= 50


def test_an_area_to_count_in_holds_its_objects_whole(sample_build):
    """Counting within an area: every object of the category lies wholly inside the area or wholly outside it,
    the answer counts those inside, and the area is at most max_region of the image."""
    from rcforge.rc_tasks import counting
    from rcforge.rc_tasks.common import merged

    cfg = counting.CountingConfig(by=("region",))
    asked = 0
    for seed in range(60):
        for record in _records(sample_build).values():
            inst = counting.sample(record, random.Random(seed), cfg)
            if inst is None or inst.variant != "by_region":
                continue
            asked += 1
            x1, y1, x2, y2 = inst.question["region"].boxes[0]
            assert (x2 - x1) * (y2 - y1) <= cfg.max_region * record["width"] * record["height"] + 1e-6
            groups = [g for g in merged(record, cfg.merge_iou)[0] if g.name == inst.question["name"]]
            inside = [g for g in groups if x1 <= g.box[0] and y1 <= g.box[1] and g.box[2] <= x2 and g.box[3] <= y2]
            apart = [g for g in groups if g.box[2] <= x1 or x2 <= g.box[0] or g.box[3] <= y1 or y2 <= g.box[1]]
            assert len(inside) + len(apart) == len(groups) and inst.answer["count"] == len(inside) >= 1
    assert asked >= 50


def test_counting_within_a_marked_area(vp_build):
    rows = [r for r in _dialogues(vp_build) if r["variant"] == "by_region" and r["image_vp"]]
    assert rows and all(m["shape"] == "box" and m["annotation"].startswith("area:")
                        for r in rows for m in r["marks"])


def test_region_comparison_is_asked_with_two_marks(vp_build):
    rows = [r for r in _dialogues(vp_build) if r["task"] == "region_comparison" and r["image_vp"]]
    assert rows and all(len(r["marks"]) == 2 for r in rows)


def test_stats_count_the_marked_dialogues_and_their_marks(vp_build, tmp_path, capsys):
    target = tmp_path / "stats.json"
    assert cli.main(["stats", str(vp_build), "--json", str(target)]) == 0
    figures = json.loads(target.read_text())["visual_prompts"]
    rows = [r for r in _dialogues(vp_build) if r["image_vp"]]
    assert sum(r["dialogues"] for r in figures["dialogues"]) == len(rows)
    assert sum(r["n"] for r in figures["marks"]) == sum(len(r["marks"]) for r in rows)
    assert {(r["shape"], r["colour"]) for r in figures["marks"]} == {(m["shape"], m["colour"]) for r in rows
                                                                    for m in r["marks"]}
    assert "Visual prompts: " in capsys.readouterr().out
