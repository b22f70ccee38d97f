"""LVIS v1 (one reader module, its contract, a recipe key): federated labels respected, RefCOCO evaluation images
excluded through their COCO ids, both reading paths equal, bad values rejected with their field."""

from __future__ import annotations

import json
import random

import pytest
import yaml

from rcforge import cli
from rcforge.inspect.validate import validate
from rcforge.rc_tasks import coarse_spatial, counting, detection

from conftest import SAMPLE, ingest_one, read_errors, read_records, write_json

# 98304 is the RefCOCO val image of the bundled sample refs: an evaluation image
IMAGES = [
    {"id": 391895, "width": 640, "height": 360, "coco_url": "http://images.cocodataset.org/train2017/000000391895.jpg",
     "not_exhaustive_category_ids": [3], "neg_category_ids": [4]},
    {"id": 522418, "width": 640, "height": 480, "coco_url": "http://images.cocodataset.org/val2017/000000522418.jpg",
     "not_exhaustive_category_ids": [], "neg_category_ids": []},
    {"id": 98304, "width": 640, "height": 480, "coco_url": "http://images.cocodataset.org/train2017/000000098304.jpg",
     "not_exhaustive_category_ids": [], "neg_category_ids": []},
]
CATEGORIES = [{"id": 1, "name": "aerosol_can", "synonyms": ["aerosol_can", "spray_can"], "frequency": "c"},
              {"id": 2, "name": "bow_(weapon)", "synonyms": ["bow_(weapon)"], "frequency": "r"},
              {"id": 3, "name": "person", "synonyms": ["person"], "frequency": "f"},
              {"id": 4, "name": "zebra", "synonyms": ["zebra"], "frequency": "f"}]


def _annotations():
    boxes = [(391895, 1, [10, 10, 50, 40]), (391895, 1, [100, 10, 50, 40]), (391895, 2, [300, 100, 60, 60]),
             (391895, 3, [400, 50, 80, 200]), (391895, 3, [500, 50, 80, 200]),
             (522418, 2, [20, 20, 100, 100]), (522418, 3, [200, 200, 50, 120]), (98304, 3, [5, 5, 50, 50])]
    # LVIS annotations come before images in the file, and carry no iscrowd
    # each mask a diamond inscribed in its box (LVIS gives polygons)
    return [{"id": i + 1, "image_id": img, "category_id": cat, "bbox": [x, y, w, h], "area": w * h / 2,
             "segmentation": [[x + w / 2, y, x + w, y + h / 2, x + w / 2, y + h, x, y + h / 2]]}
            for i, (img, cat, (x, y, w, h)) in enumerate(boxes)]


def _file(tmp_path, **changes):
    data = {"info": {}, "annotations": _annotations(), "images": json.loads(json.dumps(IMAGES)), "licenses": [],
            "categories": CATEGORIES}
    data.update(changes)
    return write_json(tmp_path / "lvis_v1_val.json", data)


def _options(path, mode="memory"):
    return {"annotations": str(path), "images": str(path.parent), "mode": mode, "partitions": 3}


def test_records_federated_labels_and_both_paths(tmp_path):
    path = _file(tmp_path)
    results = {}
    for mode in ("memory", "stream"):
        (tmp_path / mode).mkdir()
        entry, out = ingest_one(tmp_path / mode, "lvis", _options(path, mode))
        results[mode] = ({r["key"]: r for r in read_records(out, "lvis")}, entry["ledger"])
    assert results["memory"] == results["stream"]
    records, ledger = results["memory"]
    assert ledger["balanced"] and ledger["annotations"]["object"]["read"] == 8
    first = records["lvis/391895"]
    assert first["image"] == "train2017/000000391895.jpg" and first["coco_id"] == 391895
    assert records["lvis/522418"]["image"] == "val2017/000000522418.jpg"
    names = {o["names"][0]: o for o in first["objects"]}
    assert set(names) == {"aerosol can", "bow (weapon)", "person"}
    # person is not exhaustively annotated on 391895: its boxes are kept, flagged ignore
    assert [o["ignore"] for o in first["objects"] if o["names"][0] == "person"] == [True, True]
    assert not any(o["ignore"] for o in first["objects"] if o["names"][0] != "person")
    assert not any(o["ignore"] for o in records["lvis/522418"]["objects"])


def test_counting_and_detection_never_ask_about_a_not_exhaustive_category(tmp_path):
    entry, out = ingest_one(tmp_path, "lvis", _options(_file(tmp_path)))
    record = next(r for r in read_records(out, "lvis") if r["key"] == "lvis/391895")
    asked = set()
    for seed in range(300):
        for task in (counting, detection):
            inst = task.sample(record, random.Random(seed), task.SPEC.config_class())
            asked.add(inst.question["name"])
        inst = coarse_spatial.sample(record, random.Random(seed), coarse_spatial.SPEC.config_class())
        if inst is not None:
            assert "person" not in json.dumps(inst.question, default=str) + json.dumps(inst.answer, default=str)
    assert asked == {"aerosol can", "bow (weapon)"}


@pytest.mark.slow
def test_refcoco_evaluation_images_are_excluded_and_a_build_validates(tmp_path):
    path = _file(tmp_path)
    recipe = tmp_path / "recipe.yaml"
    refcoco = SAMPLE / "refcoco"
    recipe.write_text(yaml.safe_dump({
        "verify_images": "off",
        "sources": {"lvis": {"annotations": str(path), "images": str(tmp_path)}},
        "exclude": {"refcoco": {"root": str(refcoco), "dataset": "refcoco", "split_by": "unc",
                                "splits": ["val", "testA", "testB"]}},
        "render": {"per_image": 10, "tasks": {"counting": {}, "detection": {}, "coarse_spatial": {}}}}))
    out = tmp_path / "out"
    assert cli.main(["build", str(recipe), "--out", str(out), "--no-progress"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    ledger = manifest["sources"]["lvis"]["ledger"]
    assert ledger["images"]["excluded"] == {"evaluation_image": 1} and ledger["balanced"]
    assert {r["key"] for r in read_records(out, "lvis")} == {"lvis/391895", "lvis/522418"}
    assert manifest["build"]["dialogues"] > 0 and validate(str(out)) == []


@pytest.mark.parametrize("where, value, field", [
    (("images", 0, "not_exhaustive_category_ids"), "all", "not_exhaustive_category_ids"),
    (("images", 0, "not_exhaustive_category_ids"), [1.5], "not_exhaustive_category_ids"),
    (("images", 0, "coco_url"), 7, "coco_url"),
    (("images", 0, "coco_url"), "nowhere", "coco_url"),
    (("annotations", 0, "bbox"), [1, 2, 3], "bbox"),
    (("categories", 0, "name"), 5, "category_id"),
])
def test_a_bad_value_rejects_its_record_with_the_field(tmp_path, where, value, field):
    data = {"annotations": _annotations(), "images": json.loads(json.dumps(IMAGES)), "categories": CATEGORIES}
    data = json.loads(json.dumps(data))
    node = data
    for step in where[:-1]:
        node = node[step]
    node[where[-1]] = value
    path = write_json(tmp_path / "lvis.json", data)
    entry, out = ingest_one(tmp_path, "lvis", _options(path), max_bad_fraction=1.0)
    assert entry["ledger"]["balanced"]
    errors = read_errors(out, "lvis")
    assert errors and any(field in e["field"] for e in errors), errors
    kept = {r["key"] for r in read_records(out, "lvis")}
    assert "lvis/522418" in kept  # the other images are untouched
