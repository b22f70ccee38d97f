"""Masks as data: a COCO segmentation checked once, in the reader (`rcforge.core.masks`), kept compressed to the shard;
a bad one rejected with its reason (ledger kind ``mask``) while its object stays, on both COCO-format paths.

The real polygon is COCO train2014 annotation 3007 (image 98304, a dog), quoted verbatim in public READMEs of the
`refer` toolkit and Shikra-derived loaders: tests/data/coco/annotation_3007.json (see its SOURCE.md).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pycocotools import mask as mask_utils
from test_lvis import _file, _options

from rcforge.core import masks
from rcforge.core.errors import BadRecord

from conftest import ingest_one, read_errors, read_records

_REAL = json.loads((Path(__file__).parent / "data" / "coco" / "annotation_3007.json").read_text())
REAL_POLYGON = _REAL["annotations"][0]["segmentation"]
REAL_AREA, REAL_BBOX = _REAL["annotations"][0]["area"], _REAL["annotations"][0]["bbox"]
REAL_SIZE = (_REAL["images"][0]["width"], _REAL["images"][0]["height"])


def _decoded(rle: dict) -> np.ndarray:
    return mask_utils.decode({"size": rle["size"], "counts": rle["counts"].encode()})


def test_a_real_coco_polygon_becomes_the_rle_pycocotools_makes_of_it():
    x, y, w, h = REAL_BBOX
    mask = masks.from_segmentation(REAL_POLYGON, *REAL_SIZE, (x, y, x + w, y + h))
    theirs = mask_utils.merge(mask_utils.frPyObjects(REAL_POLYGON, REAL_SIZE[1], REAL_SIZE[0]))
    assert mask.rle == {"size": [424, 640], "counts": theirs["counts"].decode()}
    assert mask.polygons == REAL_POLYGON
    assert abs(mask.area - REAL_AREA) / REAL_AREA < 0.01  # COCO's area is the polygon's; ours the raster's
    assert (_decoded(mask.rle) > 0).sum() == mask.area


@settings(max_examples=200, deadline=None)
@given(h=st.integers(1, 40), w=st.integers(1, 40), density=st.floats(0, 1), seed=st.integers(0, 2**32 - 1))
def test_compressed_counts_decode_to_the_runs_pycocotools_encoded(h, w, density, seed):
    pixels = (np.random.default_rng(seed).random((h, w)) < density).astype(np.uint8)
    rle = mask_utils.encode(np.asfortranarray(pixels))
    runs = masks.counts_of(rle["counts"].decode())
    assert sum(runs) == h * w and all(r >= 0 for r in runs)
    assert mask_utils.frPyObjects({"size": [h, w], "counts": runs}, h, w)["counts"] == rle["counts"]


def test_an_uncompressed_rle_crowd_region_is_compressed():
    pixels = np.zeros((20, 30), dtype=np.uint8)
    pixels[5:15, 10:25] = 1
    runs = masks.counts_of(mask_utils.encode(np.asfortranarray(pixels))["counts"].decode())
    mask = masks.from_segmentation({"size": [20, 30], "counts": runs}, 30, 20, (10, 5, 25, 15))
    assert mask.polygons is None and mask.area == 150 and (_decoded(mask.rle) == pixels).all()


def _square_rle(size=(20, 30)) -> dict:
    pixels = np.zeros(size, dtype=np.uint8)
    pixels[5:15, 10:25] = 1
    return {"size": list(size), "counts": mask_utils.encode(np.asfortranarray(pixels))["counts"].decode()}


#: (name, segmentation on a 30x20 image with box (10, 5, 25, 15), the reason it is rejected): the hostile masks
HOSTILE = [
    ("not a list or mapping", "polygon", "mask_wrong_type"),
    ("a number", 7, "mask_wrong_type"),
    ("no polygon", [[]], "mask_short_polygon"),
    ("a polygon that is a number", [5], "mask_wrong_type"),
    ("two points", [[10, 5, 25, 15]], "mask_short_polygon"),
    ("an odd count", [[10, 5, 25, 5, 25, 15, 10]], "mask_odd_polygon"),
    ("a string in a polygon", [[10, 5, 25, 5, "25", 15]], "mask_bad_number"),
    ("NaN", [[10, 5, 25, 5, float("nan"), 15]], "mask_bad_number"),
    ("infinity", [[10, 5, 25, 5, float("inf"), 15]], "mask_bad_number"),
    ("a boolean", [[10, 5, 25, 5, True, 15]], "mask_bad_number"),
    ("null in a polygon", [[10, 5, 25, 5, None, 15]], "mask_bad_number"),
    ("a degenerate polygon (a line)", [[10, 5, 15, 10, 20, 15]], "mask_empty"),
    ("a polygon outside the image", [[100, 100, 120, 100, 120, 120]], "mask_empty"),
    ("a polygon outside its box", [[0, 0, 9, 0, 9, 4, 0, 4]], "mask_outside_box"),
    ("RLE of another size", {**_square_rle((20, 31)), "size": [20, 31]}, "mask_wrong_size"),
    ("RLE with width and height swapped", {**_square_rle(), "size": [30, 20]}, "mask_wrong_size"),
    ("RLE without size", {"counts": _square_rle()["counts"]}, "mask_wrong_size"),
    ("RLE without counts", {"size": [20, 30]}, "mask_wrong_type"),
    ("counts that are a number", {"size": [20, 30], "counts": 600}, "mask_wrong_type"),
    ("counts outside the code", {"size": [20, 30], "counts": "\x00\x01!"}, "mask_undecodable"),
    ("counts cut in the middle of a number", {"size": [20, 30], "counts": "o"}, "mask_undecodable"),
    ("counts covering too few pixels", {"size": [20, 30], "counts": _square_rle()["counts"][:-2]},
     "mask_undecodable"),
    ("runs covering too many pixels", {"size": [20, 30], "counts": [300, 400]}, "mask_undecodable"),
    ("a negative run", {"size": [20, 30], "counts": [700, -100]}, "mask_undecodable"),
    ("an all-empty RLE", {"size": [20, 30], "counts": [600]}, "mask_empty"),
    ("runs that are floats", {"size": [20, 30], "counts": [300.0, 300.0]}, "mask_wrong_type"),
    ("a lone surrogate in counts", {"size": [20, 30], "counts": "\udcff"}, "mask_undecodable"),
]


@pytest.mark.parametrize("name, segmentation, reason", HOSTILE, ids=[c[0] for c in HOSTILE])
def test_a_hostile_mask_is_a_bad_record_with_its_reason(name, segmentation, reason):
    with pytest.raises(BadRecord) as caught:
        masks.from_segmentation(segmentation, 30, 20, (10, 5, 25, 15))
    assert caught.value.reason == reason and caught.value.field.startswith("segmentation")


#: the hostile cases a JSON file can hold (NaN and infinity are not JSON: such a file is malformed as a whole)
IN_FILES = [c for c in HOSTILE if c[0] not in ("NaN", "infinity")]


@pytest.mark.parametrize("mode", ["memory", "stream"])
@pytest.mark.parametrize("name, segmentation, reason", IN_FILES, ids=[c[0] for c in IN_FILES])
def test_a_hostile_mask_in_a_file_rejects_the_mask_only(tmp_path, mode, name, segmentation, reason):
    """Through the LVIS reader, on both paths: the object is kept without its mask, the mask is counted
    rejected with its reason and an error row naming the annotation; every other mask is as before."""
    (tmp_path / "clean").mkdir()
    clean = _file(tmp_path / "clean")
    data = json.loads(clean.read_text())
    before = {r["key"]: r for r in read_records(ingest_one(tmp_path / "clean", "lvis", _options(clean, mode))[1],
                                                "lvis")}
    hostile = copy.deepcopy(data)
    ann = hostile["annotations"][5]  # on image 522418 (640x480): the case's box, scaled
    sx, sy = 640 / 30, 480 / 20
    ann["bbox"] = [10 * sx, 5 * sy, 15 * sx, 10 * sy]
    ann["segmentation"] = _scaled(segmentation, sx, sy, (480, 640))
    (tmp_path / "bad").mkdir()
    path = tmp_path / "bad" / "lvis_v1_val.json"
    path.write_text(json.dumps(hostile, allow_nan=False))
    entry, out = ingest_one(tmp_path / "bad", "lvis", _options(path, mode), max_bad_fraction=1.0)
    ledger = entry["ledger"]
    assert ledger["balanced"] and ledger["annotations"]["mask"]["rejected"] == {reason: 1}
    assert ledger["annotations"]["object"]["rejected"] == {}
    (error,) = [e for e in read_errors(out, "lvis") if e["kind"] == "mask"]
    assert error["reason"] == reason and f"id={ann['id']}" in error["record"] and error["field"].startswith(
        "segmentation")
    after = {r["key"]: r for r in read_records(out, "lvis")}
    target = next(o for o in after["lvis/522418"]["objects"] if o["id"] == ann["id"])
    assert target["mask"] is None and target["polygons"] is None and target["area"] is None
    assert target["box"] == pytest.approx([10 * sx, 5 * sy, 25 * sx, 15 * sy])
    for key, record in before.items():
        for old, new in zip(record["objects"], after[key]["objects"]):
            if new["id"] != ann["id"]:
                assert old == new


def _scaled(segmentation, sx, sy, size):
    """A 30x20 hostile case on the 640x480 test image: polygons and RLE sizes scaled, the rest as it is."""
    if isinstance(segmentation, list) and all(isinstance(p, list) for p in segmentation):
        return [[v * (sx if i % 2 == 0 else sy) if isinstance(v, (int, float)) and not isinstance(v, bool) else v
                 for i, v in enumerate(p)] for p in segmentation]
    if isinstance(segmentation, dict) and segmentation.get("size") == [20, 30]:
        counts = segmentation.get("counts")
        if isinstance(counts, list) and counts and all(isinstance(c, int) and c >= 0 for c in counts) \
                and len(counts) == 1:
            return {"size": list(size), "counts": [size[0] * size[1]]}  # the empty mask, at the image's size
        return {**segmentation, "size": list(size)}  # now counts no longer cover it: still undecodable
    return segmentation


def test_masks_read_on_both_paths_and_rescale_with_their_image(tmp_path):
    from rcforge.core.images import rescale_record

    path = _file(tmp_path)
    records = {}
    for mode in ("memory", "stream"):
        (tmp_path / mode).mkdir()
        entry, out = ingest_one(tmp_path / mode, "lvis", _options(path, mode))
        assert entry["ledger"]["annotations"]["mask"]["written"] == 8
        records[mode] = {r["key"]: r for r in read_records(out, "lvis")}
    assert records["memory"] == records["stream"]
    record = records["memory"]["lvis/522418"]
    obj = record["objects"][0]
    assert obj["iscrowd"] is False and obj["mask"]["size"] == [480, 640]
    assert abs(obj["area"] - 100 * 100 / 2) / 5000 < 0.03  # the diamond inscribed in its 100x100 box
    double = rescale_record(record, (1280, 960))["objects"][0]
    assert double["mask"]["size"] == [960, 1280] and abs(double["area"] - 4 * obj["area"]) / (4 * obj["area"]) < 0.02
    assert double["polygons"][0] == [2 * v for v in obj["polygons"][0]]


def _dialogues(out) -> list[dict]:
    import pyarrow.parquet as pq

    return [r for p in sorted(out.glob("dialogues/part-*.parquet")) for r in pq.read_table(p).to_pylist()]


def _records_by_key(out) -> dict:
    import pyarrow.parquet as pq

    return {r["key"]: r for p in out.glob("images/*/part-*.parquet")
            for r in pq.read_table(p, columns=["key", "objects", "width", "height"]).to_pylist()}


@pytest.mark.parametrize("fmt", ["pink", "qwen2_vl", "kosmos2"])
def test_referring_segmentation_shows_the_objects_mask_at_its_boxs_place(sample_build_in, fmt):
    """Every RES dialogue of the sample: one mask per box, in order; each mask the referred object's own, printed
    where its box is; every other dialogue shows no mask."""
    out = sample_build_in(fmt)
    records = _records_by_key(out)
    res = [r for r in _dialogues(out) if r["task"] == "referring_segmentation"]
    assert res
    for row in _dialogues(out):
        if row["task"] != "referring_segmentation":
            assert row["masks"] == []
            continue
        assert len(row["masks"]) == len(row["boxes"]) == 1
        (oid,) = [int(p.split(":")[1]) for p in row["provenance"] if p.startswith("object:")]
        obj = next(o for o in records[row["key"]]["objects"] if o["id"] == oid)
        assert row["masks"][0] == {**obj["mask"], "polygons": obj["polygons"]}
        assert obj["mask"]["size"] == [row["height"], row["width"]]
        x1, y1, x2, y2 = obj["box"]
        w, h = row["width"], row["height"]
        if fmt == "pink":
            assert row["boxes"][0] == pytest.approx([x1 / w, y1 / h, x2 / w, y2 / h])
        pixels = _decoded(row["masks"][0])
        ys, xs = np.nonzero(pixels)
        assert x1 - 1 <= xs.min() and xs.max() <= x2 + 1 and y1 - 1 <= ys.min() and ys.max() <= y2 + 1


def test_validate_checks_every_mask(sample_build, tmp_path):
    from rcforge.inspect.validate import validate

    from conftest import copy_of, tamper_dialogue

    cases = {
        "another object's mask": lambda m: {**m, "counts": _square_rle((m["size"][0], m["size"][1]))["counts"]},
        "the wrong size": lambda m: {**m, "size": [m["size"][1], m["size"][0]]},
        "runs that do not cover the image": lambda m: {
            **m, "counts": _square_rle((m["size"][0], m["size"][1] - 1))["counts"]},
        "counts outside the code": lambda m: {**m, "counts": "\x01" + m["counts"]},
    }
    expected = {"another object's mask": "no object of image record", "the wrong size": "not the image's",
                "runs that do not cover the image": "covers", "counts outside the code": "does not decode"}
    for name, change in cases.items():
        out = copy_of(sample_build, tmp_path / name.replace(" ", "_").replace("'", ""))
        target = tamper_dialogue(out, lambda r: r["masks"], lambda r, c=change: r.update(masks=[c(r["masks"][0])]))
        problems = validate(str(out))
        assert any(target["id"] in p and expected[name] in p for p in problems), (name, problems)
    out = copy_of(sample_build, tmp_path / "count")
    tamper_dialogue(out, lambda r: r["masks"], lambda r: r.update(masks=r["masks"] * 2))
    assert any("2 masks for 1 boxes" in p for p in validate(str(out)))


def test_unique_categories_of_an_lvis_image_are_segmented(tmp_path):
    from rcforge.rc_tasks import referring_segmentation as res

    path = _file(tmp_path)
    _, out = ingest_one(tmp_path, "lvis", _options(path))
    record = next(r for r in read_records(out, "lvis") if r["key"] == "lvis/522418")
    cfg = res.ReferringSegmentationConfig()
    asked = {}
    for seed in range(50):
        inst = res.sample(record, __import__("random").Random(seed), cfg)
        mention = inst.answer["mask"]
        asked[inst.question["name"]] = mention
        obj = next(o for o in record["objects"] if f"object:{o['id']}" in mention.ids)
        assert mention.masks == ({**obj["mask"], "polygons": obj["polygons"]},)
        assert mention.boxes == (tuple(obj["box"]),)
    # 522418 has one bow and one person: both unique; 391895's persons are not exhaustive there: never asked
    assert set(asked) == {"bow (weapon)", "person"}
    other = next(r for r in read_records(out, "lvis") if r["key"] == "lvis/391895")
    for seed in range(50):
        inst = res.sample(other, __import__("random").Random(seed), cfg)
        assert inst is None or inst.question["name"] not in ("person", "aerosol can")


def test_preview_fills_each_mask_in_its_boxs_colour():
    """A shown mask is drawn filled and translucent in its box's colour: inside the mask the canvas takes that
    colour, inside the box but outside the mask it does not."""
    import base64
    import io

    from PIL import Image

    from rcforge.inspect.preview import COLOURS, draw

    rle = _square_rle((20, 30))  # pixels x 10..24, y 5..14
    row = {"coordinates": "pink", "width": 30, "height": 20, "boxes": [[0.0, 0.0, 1.0, 1.0]], "points": [],
           "masks": [{**rle, "polygons": None}]}
    url, _ = draw(None, row)
    img = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("RGB")
    k = img.width / 30
    inside, outside = img.getpixel((int(17 * k), int(10 * k))), img.getpixel((int(4 * k), int(17 * k)))
    red = tuple(int(COLOURS[0][i:i + 2], 16) for i in (1, 3, 5))
    assert abs(inside[0] - red[0]) < abs(outside[0] - red[0]) and inside != outside
    assert sum(abs(a - b) for a, b in zip(outside, (0xd9, 0xd9, 0xd9))) < 30  # the blank canvas, untouched


def test_stats_and_report_show_mask_coverage(sample_build, tmp_path):
    """Per source, the share of image-record objects with a mask; per source and task, the dialogues and masks
    shown: what the sample holds (its RefCOCO and LVIS objects have masks, nothing else does)."""
    from rcforge import cli

    target = tmp_path / "stats.json"
    assert cli.main(["stats", str(sample_build), "--json", str(target)]) == 0
    masks = json.loads(target.read_text())["masks"]
    shares = {r["source"]: r["share"] for r in masks["objects"]}
    assert shares["refcoco"] == 1.0 and shares["lvis"] == 1.0 and shares["visual_genome"] == 0.0
    shown = {(r["source"], r["task"]): r for r in masks["dialogues"]}
    assert set(shown) == {("refcoco", "referring_segmentation"), ("lvis", "referring_segmentation")}
    for source in ("refcoco", "lvis"):
        assert shown[(source, "referring_segmentation")]["masks"] == len(
            [r for r in _dialogues(sample_build) if r["masks"] and r["source"] == source])
    page = tmp_path / "report.html"
    assert cli.main(["report", str(sample_build), "--html", str(page)]) == 0
    html = page.read_text()
    assert "Masks shown, per source and task" in html and "refcoco / referring_segmentation" in html


def test_an_rle_only_mask_rescales_with_its_image():
    """A crowd region's RLE (no polygons) on an image whose real size is twice the annotated one: decoded, resized
    and encoded again, the same shape at the new size."""
    mask = masks.from_segmentation({"size": [20, 30], "counts": masks.counts_of(_square_rle()["counts"])}, 30, 20,
                                   (10, 5, 25, 15))
    obj = {"box": [10.0, 5.0, 25.0, 15.0], **mask.fields()}
    big = masks.rescaled(obj, 60, 40)
    assert big["polygons"] is None and big["mask"]["size"] == [40, 60] and big["area"] == 4 * mask.area
    pixels = _decoded(big["mask"])
    assert pixels[10:30, 20:50].all() and pixels.sum() == 600


def _many_masks_file(tmp_path: Path) -> Path:
    """An LVIS file whose 522418 holds, besides its clean masks, every hostile case a file can hold (one annotation
    each), and whose annotations include one with a mask on an image the file does not hold."""
    data = json.loads(_file(tmp_path).read_text())
    sx, sy = 640 / 30, 480 / 20
    next_id = 100
    for _, segmentation, _ in IN_FILES:
        data["annotations"].append({"id": next_id, "image_id": 522418, "category_id": 1, "area": 1.0,
                                    "bbox": [10 * sx, 5 * sy, 15 * sx, 10 * sy],
                                    "segmentation": _scaled(segmentation, sx, sy, (480, 640))})
        next_id += 1
    data["annotations"].append({"id": next_id, "image_id": 5, "category_id": 1, "bbox": [1, 1, 9, 9], "area": 1.0,
                                "segmentation": [[1, 1, 9, 1, 9, 9]]})
    path = tmp_path / "lvis_v1_val.json"
    path.write_text(json.dumps(data, allow_nan=False))
    return path


@pytest.mark.parametrize("mode", ["memory", "stream"])
def test_masks_checked_in_worker_processes_are_the_ones_checked_in_the_reader(tmp_path, monkeypatch, mode):
    """`rcforge.readers.mask_pool`: two worker processes, in chunks small enough that several are in flight, give
    the records, ledger and error rows of the reader checking every mask itself, hostile masks included."""
    from rcforge.readers import mask_pool

    monkeypatch.setattr(mask_pool, "FIRST_CHUNK", 2)
    monkeypatch.setattr(mask_pool, "MAX_CHUNK", 5)
    started = []
    real_pool = mask_pool._Pool
    monkeypatch.setattr(mask_pool, "_Pool", lambda n, d: started.append(n) or real_pool(n, d))
    path = _many_masks_file(tmp_path)
    seen = {}
    for processes in (0, 2):
        (tmp_path / f"p{processes}").mkdir()
        entry, out = ingest_one(tmp_path / f"p{processes}", "lvis",
                                {**_options(path, mode), "mask_processes": processes}, max_bad_fraction=1.0)
        errors = sorted((e["record"], e["kind"], e["reason"], e["message"]) for e in read_errors(out, "lvis"))
        seen[processes] = ({r["key"]: r for r in read_records(out, "lvis")}, entry["ledger"], errors)
    assert started == [2]  # the pool ran once: for the run that asked for it
    assert seen[0] == seen[2]
    records, ledger, errors = seen[2]
    rejected = ledger["annotations"]["mask"]["rejected"]
    assert sum(rejected.values()) == len(IN_FILES) and ledger["balanced"]
    assert sum(1 for e in errors if e[1] == "mask") == len(IN_FILES)
    assert sum(o["mask"] is not None for r in records.values() for o in r["objects"]) == 8


def test_a_mask_worker_that_fails_is_an_error_naming_it(tmp_path):
    from rcforge.readers import mask_pool

    units = [("image", [mask_pool.Job("{not json", 30, 20, (10, 5, 25, 15))])]
    with pytest.raises(RuntimeError, match="mask worker process failed.*JSONDecodeError"):
        list(mask_pool.checked(units, lambda unit: unit[1], 1, str(tmp_path), decode=json.loads))
    assert list(tmp_path.iterdir()) == []  # its scratch folder is gone


def test_mask_workers_start_only_for_many_masks(monkeypatch):
    from rcforge.readers import mask_pool

    monkeypatch.setattr(mask_pool.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    assert mask_pool.processes(-1, mask_pool.MIN_MASKS - 1) == 0
    assert mask_pool.processes(-1, mask_pool.MIN_MASKS) == 4
    assert mask_pool.processes(0, 10**7) == 0 and mask_pool.processes(3, 1) == 3
    monkeypatch.setattr(mask_pool.os, "sched_getaffinity", lambda pid: {0}, raising=False)
    assert mask_pool.processes(-1, 10**7) == 0  # one CPU: a worker would only take turns with the reader



def test_refcoco_masks_checked_in_worker_processes_are_the_ones_checked_in_the_reader(tmp_path, monkeypatch):
    """The RefCOCO reader through `mask_pool` (one mask per chunk, two workers) against checking in the reader:
    the bundled sample's instances with every hostile case a file can hold added on its image."""
    import pickle
    import shutil

    from rcforge.readers import mask_pool

    from conftest import SAMPLE

    monkeypatch.setattr(mask_pool, "FIRST_CHUNK", 1)
    monkeypatch.setattr(mask_pool, "MAX_CHUNK", 3)
    started = []
    real_pool = mask_pool._Pool
    monkeypatch.setattr(mask_pool, "_Pool", lambda n, d: started.append(n) or real_pool(n, d))
    root = tmp_path / "refcoco"
    shutil.copytree(SAMPLE / "refcoco", root)
    instances = root / "refcoco" / "instances.json"
    data = json.loads(instances.read_text())
    sx, sy = 640 / 30, 480 / 20
    for k, (_, segmentation, _) in enumerate(IN_FILES):
        data["annotations"].append({"id": 5000 + k, "image_id": 581857, "category_id": 1, "iscrowd": 0, "area": 1.0,
                                    "bbox": [10 * sx, 5 * sy, 15 * sx, 10 * sy],
                                    "segmentation": _scaled(segmentation, sx, sy, (480, 640))})
    instances.write_text(json.dumps(data, allow_nan=False))
    refs = pickle.loads((root / "refcoco" / "refs(unc).p").read_bytes())
    seen = {}
    for processes in (0, 2):
        (tmp_path / f"p{processes}").mkdir()
        entry, out = ingest_one(tmp_path / f"p{processes}", "refcoco", {
            "root": str(root), "images": str(root), "mask_processes": processes,
            "splits": sorted({r["split"] for r in refs})}, max_bad_fraction=1.0)
        errors = sorted((e["record"], e["kind"], e["reason"], e["message"]) for e in read_errors(out, "refcoco"))
        seen[processes] = (read_records(out, "refcoco"), entry["ledger"], errors)
    assert started == [2] and seen[0] == seen[2]
    records, ledger, errors = seen[2]
    assert sum(ledger["annotations"]["mask"]["rejected"].values()) == len(IN_FILES)
    assert ledger["annotations"]["mask"]["written"] == 2 and ledger["balanced"]
