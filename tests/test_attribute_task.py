"""The `attribute` task (one task module and one template file): its answers are what the annotations say."""

from __future__ import annotations

import json
import random

import pyarrow.parquet as pq
import pytest
import yaml

from rcforge import cli
from rcforge.inspect.validate import validate
from rcforge.rc_tasks import attribute
from rcforge.rc_tasks.attribute import COLOURS, MATERIALS, AttributeConfig

from conftest import SAMPLE, ingest_one, read_records


def _records(tmp_path) -> list[dict]:
    vg = SAMPLE / "visual_genome"
    _, out = ingest_one(tmp_path, "visual_genome", {"root": str(vg), "images": str(vg / "images"),
                                                    "image_layout": "flat"})
    return read_records(out, "visual_genome")


def test_answers_are_the_annotations(tmp_path):
    records = _records(tmp_path)
    cfg = AttributeConfig()
    seen = {"describe": 0, "find": 0}
    for record in records:
        objects = {o["id"]: o for o in record["objects"]}
        for seed in range(200):
            inst = attribute.sample(record, random.Random(seed), cfg)
            if inst is None:
                continue
            seen[inst.variant] += 1
            if inst.variant == "describe":
                (object_id,) = [int(i.split(":")[1]) for i in inst.question["object"].ids]
                obj = objects[object_id]
                assert inst.question["object"].boxes == (tuple(obj["box"]),)
                said = inst.answer["attributes"]
                assert said and all(a in COLOURS or a in MATERIALS for a in said)
                assert said == [a for a in dict.fromkeys(obj["attributes"]) if a in COLOURS or a in MATERIALS]
                assert inst.question["name"] == obj["names"][0]
            else:
                name, attr = inst.question["name"], inst.question["attribute"]
                having = {o["id"] for o in record["objects"]
                          if o["names"][0] == name and attr in o["attributes"] and not o["ignore"]}
                answered = [int(i.split(":")[1]) for i in inst.answer["boxes"].ids]
                assert having <= set(answered)  # every annotated object is in an answered group
                groups = attribute.answers(record, cfg)[(attr, name)]
                assert len(groups) == inst.answer["count"] == len(inst.answer["boxes"].boxes)
                assert all(set(g.ids) & having for g in groups)  # and every group holds one
                assert all(objects[i]["names"][0] == name for i in answered)
    assert seen["describe"] > 50 and seen["find"] > 50


@pytest.mark.slow
def test_a_build_with_the_attribute_task_validates(tmp_path):
    vg = SAMPLE / "visual_genome"
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump({
        "sources": {"visual_genome": {"root": str(vg), "images": str(vg / "images"), "image_layout": "flat",
                                      "verify_images": "off"}},
        "render": {"per_image": 20, "turns_per_dialogue": 2, "tasks": {"attribute": {}}}}))
    out = tmp_path / "out"
    assert cli.main(["build", str(recipe), "--out", str(out), "--no-progress"]) == 0
    assert validate(str(out)) == []
    rows = [r for p in sorted((out / "dialogues").glob("*.parquet")) for r in pq.read_table(p).to_pylist()]
    assert rows and {r["task"] for r in rows} == {"attribute"}
    variants = {t.split(".")[1] for r in rows for t in r["template_id"].split("|")}
    assert variants == {"describe", "find"}
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["build"]["by_task"] == {"attribute": len(rows)}
