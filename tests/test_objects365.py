"""Objects365 (COCO format): the real assembled record, both reading paths, and every bad-box case."""

import json

from conftest import SAMPLE, ingest_one, read_errors, read_records, write_json

O365 = SAMPLE / "objects365" / "objv2_train_reassembled_from_quotes.json"


def _fixture():
    cats = [{"id": 1, "name": "Person"}, {"id": 84, "name": "Air Conditioner"}]
    images = [{"id": 3, "file_name": "images/v2/patch0/objects365_v2_00000003.jpg", "width": 100, "height": 50},
              {"id": 1, "file_name": "images/v1/patch0/objects365_v1_00000001.jpg", "width": 200, "height": 100},
              {"id": 2, "file_name": "images/v1/patch0/objects365_v1_00000002.jpg", "width": 10, "height": 10},
              {"id": 2, "file_name": "dup.jpg", "width": 10, "height": 10}]
    anns = [  # not grouped by image, as in the real file
        {"id": 10, "image_id": 1, "category_id": 1, "bbox": [10.5, 20.25, 30.0, 40.0], "iscrowd": 0},
        {"id": 11, "image_id": 3, "category_id": 84, "bbox": [90.0, 10.0, 20.0, 10.0], "iscrowd": 1},  # clipped
        {"id": 12, "image_id": 1, "category_id": 1, "bbox": [5.0, 5.0, 0.0, 4.0], "iscrowd": 0},     # zero area
        {"id": 13, "image_id": 1, "category_id": 999, "bbox": [5.0, 5.0, 3.0, 4.0], "iscrowd": 0},   # unknown cat
        {"id": 14, "image_id": 77, "category_id": 1, "bbox": [5.0, 5.0, 3.0, 4.0], "iscrowd": 0},    # unknown img
        {"id": 15, "image_id": 2, "category_id": 1, "bbox": [1.0, 1.0, 3.0, 4.0], "iscrowd": 0},
        {"id": 16, "image_id": 3, "category_id": 1, "bbox": [1.0, 1.0], "iscrowd": 0},               # bad bbox
    ]
    return {"images": images, "annotations": anns, "categories": cats, "licenses": []}


def test_real_record(tmp_path):
    entry, out = ingest_one(tmp_path, "objects365", {"annotations": str(O365), "images": str(tmp_path)})
    (rec,) = read_records(out, "objects365")
    assert rec["key"] == "objects365/420917" and (rec["width"], rec["height"]) == (769, 512)
    (obj,) = rec["objects"]
    assert obj["names"] == ["Air Conditioner"] and obj["category_id"] == 84 and obj["ignore"] is False
    x, y, w, h = 491.3955078011, 88.1856689664, 35.65588379410002, 44.442382796800004
    assert obj["box"] == [x, y, x + w, y + h]


def test_memory_and_streaming_paths_agree_and_account_for_everything(tmp_path):
    path = write_json(tmp_path / "o365.json", _fixture())
    results = {}
    for mode in ("memory", "stream"):
        (tmp_path / mode).mkdir()
        entry, out = ingest_one(tmp_path / mode, "objects365",
                                {"annotations": str(path), "images": str(tmp_path), "mode": mode, "partitions": 3},
                                max_bad_fraction=1.0)
        records = {r["key"]: r for r in read_records(out, "objects365")}
        errors = sorted((e["kind"], e["reason"], e["record"]) for e in read_errors(out, "objects365"))
        results[mode] = (records, errors, entry["ledger"])
    assert results["memory"] == results["stream"]
    records, errors, ledger = results["stream"]
    assert sorted(records) == ["objects365/1", "objects365/2", "objects365/3"]
    assert [o["id"] for o in records["objects365/1"]["objects"]] == [10]
    assert records["objects365/1"]["objects"][0]["box"] == [10.5, 20.25, 40.5, 60.25]
    crowd = records["objects365/3"]["objects"][0]
    assert crowd["ignore"] is True and crowd["box"] == [90.0, 10.0, 100.0, 20.0]
    reasons = {(k, r) for k, r, _ in errors}
    assert reasons == {("object", "box_zero_area"), ("object", "unknown_category_id"), ("object", "unknown_image"),
                       ("object", "wrong_type"), ("image", "duplicate_image_id")}
    assert ledger["balanced"]
    assert ledger["annotations"]["object"]["read"] == 7
    assert ledger["annotations"]["object"]["repaired"] == 1
    assert ledger["images"]["read"] == 4


def test_truncated_file_is_an_input_error(tmp_path):
    import pytest

    from rcforge.core.errors import InputError

    path = tmp_path / "o365.json"
    path.write_text(json.dumps(_fixture())[:-40])
    for mode in ("memory", "stream"):
        with pytest.raises(InputError, match="o365.json"):
            ingest_one(tmp_path, "objects365", {"annotations": str(path), "images": str(tmp_path), "mode": mode})
