"""Visual Genome reader: the real v1.2 excerpt (images 1-3), the v1.0 schema, lockstep fallback, bad records."""

import json

import pytest
from vg_oracle import ingest_oracle

from rcforge.core.errors import InputError

from conftest import SAMPLE, ingest_one, read_errors, read_records, write_json

VG = SAMPLE / "visual_genome"


def _vg_copy(tmp_path, **overrides):
    root = tmp_path / "vg"
    root.mkdir()
    for name in ("image_data", "objects", "relationships", "region_descriptions", "attributes"):
        data = overrides.get(name, json.loads((VG / f"{name}.json").read_text()))
        if data is not None:
            write_json(root / f"{name}.json", data)
    return root


def test_real_excerpt_counts_boxes_and_relations(tmp_path):
    entry, out = ingest_one(tmp_path, "visual_genome", {"root": str(VG), "images": str(VG / "images")})
    records = {r["key"]: r for r in read_records(out, "visual_genome")}
    objects = json.loads((VG / "objects.json").read_text())
    rels = json.loads((VG / "relationships.json").read_text())
    regions = json.loads((VG / "region_descriptions.json").read_text())
    assert sorted(records) == ["vg/1", "vg/2", "vg/3"]
    for obj_entry, rel_entry, reg_entry in zip(objects, rels, regions):
        rec = records[f"vg/{obj_entry['image_id']}"]
        # every object id appears once in the record (VG lists each object once per image)
        assert len(rec["objects"]) == len({o["object_id"] for o in obj_entry["objects"]})
        assert len(rec["relations"]) == len(rel_entry["relationships"])
        assert len(rec["regions"]) == len(reg_entry["regions"])
    clock = next(o for o in records["vg/1"]["objects"] if o["id"] == 1058498)
    assert clock["box"] == [421.0, 91.0, 500.0, 430.0]  # x=421 y=91 w=79 h=339
    assert clock["names"] == ["clock"] and clock["attributes"] == ["green", "tall"]
    first = records["vg/1"]["relations"][0]
    assert first == {"id": 15927, "subject_id": 5045, "predicate": "on", "object_id": 5046}  # raw "ON"
    assert records["vg/1"]["image"] == "VG_100K_2/1.jpg"  # layout from the url
    assert records["vg/1"]["width"] == 800 and records["vg/1"]["height"] == 600
    assert entry["ledger"]["balanced"]


def test_v1_0_schema_is_read(tmp_path):
    root = tmp_path / "vg10"
    write_json(root / "image_data.json", [{"id": 7, "width": 100, "height": 80, "url": "x/VG_100K/7.jpg",
                                          "coco_id": 12, "flickr_id": None}])
    write_json(root / "objects.json", [{"id": 7, "objects": [
        {"id": 1, "name": "Dog", "x": 1, "y": 2, "w": 10, "h": 10},
        {"id": 2, "name": "frisbee", "x": 30, "y": 2, "w": 5, "h": 5}]}])
    write_json(root / "relationships.json", [{"id": 7, "relationships": [
        {"id": 9, "predicate": "Catches ", "subject": {"id": 1, "name": "dog", "x": 1, "y": 2, "w": 10, "h": 10},
         "object": {"id": 2, "name": "frisbee", "x": 30, "y": 2, "w": 5, "h": 5}}]}])
    write_json(root / "region_descriptions.json", [{"id": 7, "regions": [
        {"id": 4, "image": 7, "phrase": "a dog  catching", "x": 0, "y": 0, "width": 50, "height": 40}]}])
    entry, out = ingest_one(tmp_path, "visual_genome", {"root": str(root), "images": str(root)})
    (rec,) = read_records(out, "visual_genome")
    assert [o["names"] for o in rec["objects"]] == [["dog"], ["frisbee"]]
    assert rec["relations"] == [{"id": 9, "subject_id": 1, "predicate": "catches", "object_id": 2}]
    assert rec["regions"][0]["phrase"] == "a dog catching"
    assert rec["coco_id"] == 12


def test_files_out_of_order_fall_back_to_a_keyed_join(tmp_path):
    objects = json.loads((VG / "objects.json").read_text())
    regions = json.loads((VG / "region_descriptions.json").read_text())
    (tmp_path / "a").mkdir()
    _, aligned_out = ingest_one(tmp_path / "a", "visual_genome", {"root": str(VG), "images": str(VG)})
    root = _vg_copy(tmp_path, objects=list(reversed(objects)), region_descriptions=regions[:2])
    entry, out = ingest_one(tmp_path, "visual_genome", {"root": str(root), "images": str(root)})
    aligned = {r["key"]: r for r in read_records(aligned_out, "visual_genome")}
    shuffled = {r["key"]: r for r in read_records(out, "visual_genome")}
    assert set(aligned) == set(shuffled)
    for key in aligned:
        assert aligned[key]["objects"] == shuffled[key]["objects"]
        assert aligned[key]["relations"] == shuffled[key]["relations"]
    assert shuffled["vg/3"]["regions"] == []  # the region file lacks image 3
    assert entry["ledger"]["balanced"]


@pytest.mark.parametrize("mode", ["columnar", "per_image"])
def test_a_rejected_images_entries_are_counted_once_when_the_join_is_keyed(tmp_path, mode):
    """Files out of order (a keyed join) and an image rejected at its check: that image's objects are rejected with
    it (image_rejected) and never again as orphans (unknown_image); every object of the file is read once."""
    image_data = json.loads((VG / "image_data.json").read_text())
    objects = json.loads((VG / "objects.json").read_text())
    image_data[1]["width"] = None
    objects[0], objects[2] = objects[2], objects[0]
    root = _vg_copy(tmp_path, image_data=image_data, objects=objects)
    entry, out = ingest_one(tmp_path, "visual_genome", {"root": str(root), "images": str(root), "mode": mode},
                            max_bad_fraction=1.0)
    tally = entry["ledger"]["annotations"]["object"]
    assert tally["read"] == sum(len(e["objects"]) for e in objects), tally
    assert tally["rejected"] == {"image_rejected": len(objects[1]["objects"])}, tally
    assert not [e for e in read_errors(out, "visual_genome") if e["reason"] == "unknown_image"]


@pytest.mark.parametrize("mode", ["columnar", "per_image"])
@pytest.mark.parametrize("order", ["lockstep", "keyed"])
def test_every_entry_is_read_once_whatever_the_join(tmp_path, mode, order):
    """image_data.json lists image 1 twice and objects.json holds two entries for it, plus a third entry for image 2
    that no listing takes: the duplicate image takes the second entry (rejected with it), the spare entry is
    rejected as a duplicate entry, and every object of the file is read exactly once, in lockstep as when keyed."""
    image_data = json.loads((VG / "image_data.json").read_text())
    objects = json.loads((VG / "objects.json").read_text())
    image_data.append(dict(image_data[0]))
    objects.append(dict(objects[0], objects=objects[0]["objects"][:5]))
    objects.append(dict(objects[1], objects=objects[1]["objects"][:3]))
    rels, regions, attributes = ([e for e in json.loads((VG / f"{name}.json").read_text())] + [{"image_id": 1}]
                                 for name in ("relationships", "region_descriptions", "attributes"))
    if order == "keyed":
        objects[1], objects[2] = objects[2], objects[1]
    root = _vg_copy(tmp_path, image_data=image_data, objects=objects, relationships=rels,
                    region_descriptions=regions, attributes=attributes)
    entry, out = ingest_one(tmp_path, "visual_genome", {"root": str(root), "images": str(root), "mode": mode},
                            max_bad_fraction=1.0)
    tally = entry["ledger"]["annotations"]["object"]
    assert tally["read"] == sum(len(e["objects"]) for e in objects), tally
    assert tally["rejected"] == {"image_rejected": 5, "duplicate_image_entry": 3}, tally
    spare = [e for e in read_errors(out, "visual_genome") if e["reason"] == "duplicate_image_entry"]
    assert [(e["key"], e["kind"], e["message"][:12]) for e in spare] == [("vg/2", "object", "3 object(s) ")], spare


def test_bad_records_go_to_errors_with_reasons_and_balance(tmp_path):
    image_data = json.loads((VG / "image_data.json").read_text())
    objects = json.loads((VG / "objects.json").read_text())
    rels = json.loads((VG / "relationships.json").read_text())
    objs1 = objects[0]["objects"]
    objs1[0]["w"] = 0                     # zero area
    objs1[1]["x"] = 5000                  # outside the 800x600 image
    objs1[2]["h"] = -3                    # negative size
    objs1[3]["x"] = 790                   # sticks out: clipped, repaired
    del objs1[4]["y"]                     # missing field
    rels[0]["relationships"][1]["subject"]["object_id"] = 424242  # unknown object
    image_data.append(dict(image_data[0]))                         # duplicate image id
    objects.append(objects[0])
    rels.append(rels[0])
    regions = json.loads((VG / "region_descriptions.json").read_text())
    regions.append(regions[0])
    root = _vg_copy(tmp_path, image_data=image_data, objects=objects, relationships=rels,
                    region_descriptions=regions, attributes=None)
    entry, out = ingest_one(tmp_path, "visual_genome", {"root": str(root), "images": str(root)},
                            max_bad_fraction=1.0)
    errors = read_errors(out, "visual_genome")
    reasons = {(e["kind"], e["reason"]) for e in errors}
    assert {("object", "box_zero_area"), ("object", "box_outside_image"), ("object", "box_negative_size"),
            ("object", "missing_field"), ("image", "duplicate_image_id")} <= reasons
    led = entry["ledger"]
    # the relationship's subject 424242 is not in objects.json: its own copy is adopted as an object
    assert led["annotations"]["object"]["adopted"] == 1
    assert led["balanced"]
    assert led["images"]["rejected"] == {"duplicate_image_id": 1}
    assert led["images"]["repaired"] == 1  # image 1 lost objects and had one clipped
    assert led["annotations"]["object"]["repairs"] == {"box_clipped": 1}
    zero = next(e for e in errors if e["reason"] == "box_zero_area")
    assert zero["file"].endswith("objects.json") and "image_id=1" in zero["record"] and zero["field"]
    rec1 = next(r for r in read_records(out, "visual_genome") if r["key"] == "vg/1")
    clipped = next(o for o in rec1["objects"] if o["id"] == objs1[3]["object_id"])
    assert clipped["box"][2] == 800.0
    adopted = next(o for o in rec1["objects"] if o["id"] == 424242)
    subject = rels[0]["relationships"][1]["subject"]
    assert adopted["box"] == [subject["x"], subject["y"], subject["x"] + subject["w"], subject["y"] + subject["h"]]



def test_truncated_file_names_file_and_offset(tmp_path):
    root = _vg_copy(tmp_path)
    text = (root / "objects.json").read_text()
    (root / "objects.json").write_text(text[: len(text) // 2])
    with pytest.raises(InputError) as err:
        ingest_one(tmp_path, "visual_genome", {"root": str(root), "images": str(root)})
    assert "objects.json" in str(err.value) and "near byte" in str(err.value)


def test_on_bad_records_error_stops_at_the_first_and_names_it(tmp_path):
    from rcforge.core.errors import TooManyBadRecords

    objects = json.loads((VG / "objects.json").read_text())
    objects[1]["objects"][0]["w"] = 0
    root = _vg_copy(tmp_path, objects=objects)
    with pytest.raises(TooManyBadRecords) as err:
        ingest_one(tmp_path, "visual_genome", {"root": str(root), "images": str(root)}, on_bad_records="error")
    assert "objects.json" in str(err.value) and "image_id=2" in str(err.value) and "box_zero_area" in str(err.value)


def test_threshold_fails_a_source_with_too_many_bad_records(tmp_path):
    from rcforge.core.errors import TooManyBadRecords

    objects = json.loads((VG / "objects.json").read_text())
    for o in objects[0]["objects"]:
        o["w"] = 0
    root = _vg_copy(tmp_path, objects=objects)
    with pytest.raises(TooManyBadRecords, match="max_bad_fraction"):
        ingest_one(tmp_path, "visual_genome", {"root": str(root), "images": str(root)}, max_bad_fraction=0.01)


def _bad_fixture(tmp_path):
    image_data = json.loads((VG / "image_data.json").read_text())
    objects = json.loads((VG / "objects.json").read_text())
    rels = json.loads((VG / "relationships.json").read_text())
    regions = json.loads((VG / "region_descriptions.json").read_text())
    o1, o2 = objects[0]["objects"], objects[1]["objects"]
    o1[0]["w"] = 0
    o1[1]["x"] = 5000
    o1[2]["h"] = -3
    o1[3]["x"] = 790
    del o1[4]["y"]
    o1[5]["names"] = ["  "]
    o1[6]["x"] = "left"
    o2.append(dict(o2[0]))                           # a duplicate object id after a kept one
    o2.append(dict(o2[1], w=0))
    o2.append(dict(o2[1]))                           # a repeated id whose first copy was kept
    rels[0]["relationships"][1]["subject"]["object_id"] = 424242
    rels[0]["relationships"][2]["predicate"] = "  "
    rels[1]["relationships"][0]["object"] = None
    regions[0]["regions"][0]["phrase"] = ""
    # text that looks like the boundary between two top-level entries, and a nested object that starts with the
    # entries' first key: the byte-level splitter must not be fooled (it falls back to ijson)
    regions[1]["regions"][0]["phrase"] = 'sign reads }, {"regions": [  and  Café  '
    o2[2] = {"image_id": 2, **o2[2]}
    regions[0]["regions"][1]["width"] = 0
    regions[0]["regions"][2]["x"] = -10
    image_data[2]["width"] = None
    attributes = _bad_attributes(o1)
    image_data.append(dict(image_data[0]))
    objects.append(objects[0])
    rels.append(rels[0])
    regions.append(regions[0])
    attributes.append(attributes[0])
    return _vg_copy(tmp_path, image_data=image_data, objects=objects, relationships=rels,
                    region_descriptions=regions, attributes=attributes)


def _bad_attributes(o1):
    """The sample's attributes.json with one entry of each kind of problem in image 1 (``o1``: its objects)."""
    attributes = json.loads((VG / "attributes.json").read_text())
    a1 = attributes[0]["attributes"]
    a1[0]["attributes"] = ["red"]                     # object 0 has w=0: its object was rejected
    a1[7]["attributes"] = 7                           # wrong type
    a1[8] = "oops"                                    # not a mapping
    a1[9]["attributes"] = ["bl\u0000ue"]              # a control character
    a1[10].pop("object_id", None)                     # no object id
    a1.append({"object_id": 424243, "attributes": ["shiny"]})   # no such object in the image
    a1[11]["attributes"] = ["pale"]
    a1.append(dict(a1[11], attributes=["Dark ", "dark"]))       # a second entry for one object: the later wins
    a1[12]["attributes"] = []                         # nothing to attach
    assert o1[0]["w"] == 0
    return attributes


def _outcome(entry, out):
    errors = sorted((e["kind"], e["reason"], e["record"], e["field"], e["key"], e["file"], e["message"])
                    for e in read_errors(out, "visual_genome"))
    return read_records(out, "visual_genome"), errors, entry["ledger"]


@pytest.mark.parametrize("fixture", ["sample", "bad", "v1_0"])
def test_every_producer_gives_the_oracles_records_errors_and_ledger(tmp_path, fixture):
    """The rule engine fed by either producer (columnar in-process, parser processes, the entry producer) against
    the per-image oracle (tests/vg_oracle.py): the same records, error rows and ledger."""
    root = {"sample": lambda: VG, "bad": lambda: _bad_fixture(tmp_path),
            "v1_0": lambda: _v1_0_copy(tmp_path)}[fixture]()
    (tmp_path / "oracle").mkdir()
    expected = _outcome(*ingest_oracle(tmp_path / "oracle", {"root": str(root), "images": str(root)},
                                       max_bad_fraction=1.0))
    for mode in ("per_image", "columnar", "processes"):
        (tmp_path / mode).mkdir()
        entry, out = ingest_one(tmp_path / mode, "visual_genome",
                                {"root": str(root), "images": str(root), "mode": mode}, max_bad_fraction=1.0)
        assert _outcome(entry, out) == expected, mode
    if fixture == "v1_0":
        assert expected[2]["annotations"]["object"]["adopted"] > 0
    if fixture == "bad":
        reasons = {r for _, r, *_ in expected[1]}
        assert {"duplicate_object_id", "wrong_type", "relation_missing_predicate", "region_missing_phrase",
                "duplicate_image_id", "missing_field"} <= reasons
        attribute = expected[2]["annotations"]["attribute"]
        assert attribute["balanced"] and attribute["written"] > 0, attribute
        assert {"attribute_object_rejected", "wrong_type", "malformed_record", "bad_text", "missing_field",
                "attribute_unknown_object", "duplicate_object_id"} <= set(attribute["rejected"]), attribute
        assert attribute["filtered"]["no_attributes"] > 0
        assert attribute["rejected"]["image_rejected"] > 0  # the entries of image 3, whose width is null
        errors = {r: e for e in read_errors(out, "visual_genome") if e["kind"] == "attribute"
                  for r in [e["reason"]]}
        assert errors["attribute_unknown_object"]["record"] == "image_id=1 object_id=424243"
        assert errors["attribute_unknown_object"]["file"].endswith("attributes.json")
        records = {r["key"]: r for r in expected[0]}
        later = {o["id"]: o["attributes"] for o in records["vg/1"]["objects"]}
        assert later[o1_id(root, 11)] == ["dark"]


def _v1_0_copy(tmp_path):
    """The sample as Visual Genome 1.0 shapes it: ``id`` for every id, one ``name``, and most relationship
    endpoints missing from objects.json (so their own copies are adopted). Beside plain adoptions: an endpoint
    adopted by two relations, a copy whose box is unusable (the relation is rejected), a copy sticking out of the
    image (adopted, clipped), a subject adopted by a relation that its object then rejects, and attributes of an
    adopted object."""
    data = {name: json.loads((VG / f"{name}.json").read_text())
            for name in ("image_data", "objects", "relationships", "region_descriptions", "attributes")}
    for meta in data["image_data"]:
        meta["id"] = meta.pop("image_id")
    ends = {(e["image_id"], r[end]["object_id"]) for e in data["relationships"] for r in e["relationships"]
            for end in ("subject", "object")}
    for entry in data["objects"]:
        image_id = entry["image_id"]
        # objects.json keeps only the objects no relationship names, and one that one does (entry 0's first)
        entry["objects"] = [o for k, o in enumerate(entry["objects"])
                            if (image_id, o["object_id"]) not in ends or k == 0]
    for name in ("objects", "relationships", "region_descriptions", "attributes"):
        for entry in data[name]:
            entry["id"] = entry.pop("image_id", entry.get("id"))
    rels = data["relationships"][0]["relationships"]
    rels[1]["subject"] = dict(rels[0]["subject"])                        # adopted by relations 0 and 1
    rels[2]["subject"] = dict(rels[2]["subject"], w=0)                   # an unusable copy
    rels[3]["object"] = dict(rels[3]["object"], x=750, w=400)           # sticks out of the 800-wide image
    rels[4]["object"] = dict(rels[4]["object"], object_id=data["objects"][0]["objects"][1]["object_id"])
    data["objects"][0]["objects"][1]["w"] = 0                            # ... which objects.json rejects
    data["attributes"][0]["attributes"].append({"object_id": rels[0]["subject"]["object_id"],
                                                "attributes": ["Striped "]})
    for entry in data["relationships"]:
        for r in entry["relationships"]:
            r["id"] = r.pop("relationship_id")
            for end in ("subject", "object"):
                ref = r[end] = dict(r[end])
                ref["id"] = ref.pop("object_id")
                ref["name"] = ref.pop("names", [ref.get("name")])[0] if "names" in ref else ref["name"]
    for entry in data["objects"]:
        for o in entry["objects"]:
            o["id"] = o.pop("object_id")
            o["name"] = o.pop("names")[0]
    return _vg_copy(tmp_path, **data)


def o1_id(root, k):
    return json.loads((root / "objects.json").read_text())[0]["objects"][k]["object_id"]


@pytest.mark.parametrize("kind, name", [("object", "objects"), ("relation", "relationships"),
                                        ("region", "region_descriptions"), ("attribute", "attributes")])
def test_fast_and_careful_extraction_lanes_agree(tmp_path, kind, name):
    from rcforge.readers.visual_genome_batch import _FAST, _careful

    root = _bad_fixture(tmp_path)
    entries = json.loads((root / f"{name}.json").read_text())
    if kind == "object":
        for entry in (entries[0], entries[-1]):  # the fixture's "left" would send the batch to the careful lane
            entry["objects"][6]["x"] = 12
        entries[0]["objects"][7]["names"] = ["Tall\tTree ", "", "tall tree"]
        entries[0]["objects"][8]["h"] = None
    if kind == "relation":
        entries[0]["relationships"][3]["predicate"] = "  Sitting\n ON "
    if kind == "attribute":  # the fixture's wrong types and control character would send it to the careful lane
        for entry in (entries[0], entries[-1]):
            entry["attributes"][7]["attributes"] = ["Tall\tTree ", "", "tall tree"]
            entry["attributes"][8] = {"object_id": 77, "attributes": ["blue"]}
            entry["attributes"][9]["attributes"] = ["blue"]
    assert _FAST[kind](entries).to_pylist() == _careful(kind, entries).to_pylist()


def test_mismatch_after_some_batches_continues_per_image_without_loss(tmp_path, monkeypatch):
    from rcforge.readers import visual_genome_batch

    monkeypatch.setattr(visual_genome_batch, "BATCH", 1)  # image 1 goes through the columnar path
    objects = json.loads((VG / "objects.json").read_text())
    objects[1], objects[2] = objects[2], objects[1]  # images 2 and 3 out of order
    root = _vg_copy(tmp_path, objects=objects)
    (tmp_path / "ref").mkdir()
    _, ref_out = ingest_oracle(tmp_path / "ref", {"root": str(VG), "images": str(VG)})
    entry, out = ingest_one(tmp_path, "visual_genome", {"root": str(root), "images": str(root), "mode": "columnar"})
    assert read_records(out, "visual_genome") == read_records(ref_out, "visual_genome")
    assert entry["ledger"]["balanced"] and entry["ledger"]["images"]["read"] == 3


def test_a_misspelled_attributes_file_is_an_error_not_silence(tmp_path, capsys):
    """attributes.json is optional when the recipe names none; a file the recipe names must be there."""
    import shutil

    from rcforge import cli

    root = tmp_path / "vg"
    shutil.copytree(SAMPLE / "visual_genome", root)
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"sources:\n  visual_genome: {{root: {root}, images: {root}/images, image_layout: flat, "
                      f"verify_images: 'off', attributes: atributes.json}}\n")
    code = cli.main(["ingest", str(recipe), "--out", str(tmp_path / "out"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 1 and "attributes file" in err and "atributes.json does not exist" in err, err
    (root / "attributes.json").unlink()  # the default name, absent: VG without attributes, no error
    recipe.write_text(recipe.read_text().replace(", attributes: atributes.json", ""))
    assert cli.main(["ingest", str(recipe), "--out", str(tmp_path / "out2"), "--no-progress"]) == 0
