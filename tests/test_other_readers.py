"""Flickr30K Entities, RefCOCO, VQAv2 and PointQA readers on the bundled excerpts and on fixtures in their real
formats."""

import json
import pickle
import shutil
from pathlib import Path

import pytest

from rcforge.core.errors import InputError
from rcforge.readers.flickr30k_entities import parse_sentence
from rcforge.readers.refcoco import load_refs, safe_loads

from conftest import SAMPLE, ingest_one, read_errors, read_records, write_json


# -- Flickr30K Entities -------------------------------------------------------------------------------------------
def test_sentence_markup_gives_clean_text_and_spans():
    text, phrases = parse_sentence("[/EN#18/people A child] in [/EN#19/clothing/other a pink dress] .")
    assert text == "A child in a pink dress."  # Flickr30K's tokenized punctuation as prose
    assert [(p["entity_id"], p["types"], text[p["start"]:p["end"]]) for p in phrases] == [
        ("18", ["people"], "A child"), ("19", ["clothing", "other"], "a pink dress")]


@pytest.mark.parametrize("line, text", [
    ("[/EN#1/people The man] 's hat , seen from [/EN#2/other behind] .", "The man's hat, seen from behind."),
    ("[/EN#1/people A dog] is n't ( [/EN#2/other really] ) wet !", "A dog isn't (really) wet!"),
    ("Two [/EN#1/people men 's] shirts ; [/EN#2/clothing red] : ok ?", "Two men's shirts; red: ok?"),
])
def test_detokenized_spans_still_point_at_their_phrases(line, text):
    got, phrases = parse_sentence(line)
    assert got == text
    assert all(got[p["start"]:p["end"]] == p["text"] for p in phrases)


def test_flickr_sample_links_phrases_to_boxes(tmp_path):
    root = SAMPLE / "flickr30k_entities"
    entry, out = ingest_one(tmp_path, "flickr30k_entities", {"root": str(root), "images": str(root / "images")})
    (rec,) = read_records(out, "flickr30k_entities")
    assert (rec["width"], rec["height"]) == (333, 500) and len(rec["captions"]) == 5
    girl = rec["captions"][0]["phrases"][0]
    assert girl["text"] == "A girl" and girl["object_ids"] == [0]
    assert rec["objects"][0]["box"] == [111.0, 140.0, 227.0, 392.0]  # xmin 112 (1-based) -> edge 111
    water = next(p for p in rec["captions"][0]["phrases"] if p["entity_id"] == "221798")
    assert water["scene"] and water["no_box"] and water["object_ids"] == []
    for cap in rec["captions"]:
        for p in cap["phrases"]:
            assert cap["text"][p["start"]:p["end"]] == p["text"]
    assert entry["ledger"]["balanced"]


def test_flickr_bad_xml_rejects_the_image(tmp_path):
    root = tmp_path / "f30k"
    shutil.copytree(SAMPLE / "flickr30k_entities", root)
    (root / "Sentences" / "42.txt").write_text("[/EN#1/people A man] runs .\n")
    (root / "Annotations" / "42.xml").write_text("<annotation><size><width>10</width>")
    (root / "train.txt").write_text("4945942737\n42\n")
    entry, out = ingest_one(tmp_path, "flickr30k_entities", {"root": str(root), "images": str(root)},
                            max_bad_fraction=1.0)
    (err,) = read_errors(out, "flickr30k_entities")
    assert err["reason"] == "bad_xml" and err["file"].endswith("42.xml") and err["key"] == "flickr30k/42"
    assert entry["ledger"]["images"]["rejected"] == {"bad_xml": 1} and entry["ledger"]["balanced"]


# -- RefCOCO --------------------------------------------------------------------------------------------------------
class _Evil:
    def __reduce__(self):
        import os
        return (os.system, ("echo pwned",))


def test_restricted_unpickler_refuses_code_and_reads_plain_data():
    with pytest.raises(InputError, match="refusing"):
        safe_loads(pickle.dumps([{"a": _Evil()}], protocol=2))
    refs = load_refs(str(SAMPLE / "refcoco" / "refcoco" / "refs(unc).p"))
    assert refs[0]["ref_id"] == 0 and refs[0]["sentences"][0]["sent"] == "the lady with the blue shirt"


def test_refcoco_sample_joins_refs_to_instances(tmp_path):
    root = SAMPLE / "refcoco"
    entry, out = ingest_one(tmp_path, "refcoco", {"root": str(root), "images": str(root)})
    (rec,) = read_records(out, "refcoco")
    assert rec["key"] == "refcoco/refcoco/581857" and rec["coco_id"] == 581857
    (ref,) = rec["refs"]
    assert ref["object_id"] == 1719310 and ref["split"] == "train" and len(ref["sentences"]) == 3
    target = next(o for o in rec["objects"] if o["id"] == 1719310)
    assert target["box"] == pytest.approx([103.9, 150.2, 241.9, 374.2])
    led = entry["ledger"]
    assert led["balanced"] and led["annotations"]["ref"]["filtered"] == {"not_in_splits": 1}


# -- VQAv2 ----------------------------------------------------------------------------------------------------------
def test_vqav2_excerpt_has_ten_answers_and_image_size_from_header(tmp_path):
    root = SAMPLE / "vqav2"
    entry, out = ingest_one(tmp_path, "vqav2", {"questions": str(root / "questions.json"),
                                                "annotations": str(root / "annotations.json"),
                                                "images": str(root / "images")})
    (rec,) = read_records(out, "vqav2")
    assert rec["image"] == "COCO_train2014_000000458752.jpg" and (rec["width"], rec["height"]) == (640, 480)
    assert len(rec["qas"]) == 3 and all(len(q["answers"]) == 10 for q in rec["qas"])
    assert rec["qas"][0]["answer"] == "net"  # most common when multiple_choice_answer is absent
    assert entry["ledger"]["balanced"]


def test_vqav2_missing_image_and_unknown_question_are_counted(tmp_path):
    questions = {"data_subtype": "train2014", "questions": [
        {"image_id": 5, "question": "What?", "question_id": 5000},
        {"image_id": 6, "question": "Who?", "question_id": 6000}]}
    annotations = {"annotations": [
        {"question_id": 5000, "multiple_choice_answer": "yes", "answers": [{"answer": "yes"}],
         "question_type": "is", "answer_type": "yes/no", "image_id": 5},
        {"question_id": 9999, "answers": []}]}
    info = {"images": [{"id": 5, "width": 64, "height": 48}]}
    q = write_json(tmp_path / "q.json", questions)
    a = write_json(tmp_path / "a.json", annotations)
    i = write_json(tmp_path / "info.json", info)
    entry, out = ingest_one(tmp_path, "vqav2", {"questions": str(q), "annotations": str(a), "images": str(tmp_path),
                                                "image_info": str(i)}, max_bad_fraction=1.0)
    (rec,) = read_records(out, "vqav2")
    assert rec["qas"][0]["answer"] == "yes" and rec["qas"][0]["answer_type"] == "yes/no"
    reasons = sorted(e["reason"] for e in read_errors(out, "vqav2"))
    assert reasons == ["no_annotation", "unknown_question"]
    assert entry["ledger"]["balanced"]


# -- PointQA --------------------------------------------------------------------------------------------------------
def test_pointqa_sample(tmp_path):
    root = SAMPLE / "pointqa"
    entry, out = ingest_one(tmp_path, "pointqa", {
        "local": str(root / "localqa_dataset.json"), "looktwice": str(root / "looktwiceqa_dataset.json"),
        "image_data": str(SAMPLE / "visual_genome" / "image_data.json"), "images": str(tmp_path)})
    (rec,) = read_records(out, "pointqa")
    local = json.loads((root / "localqa_dataset.json").read_text())["1"]
    n_local = sum(len(e["points"]) for e in local)
    kinds = [q["kind"] for q in rec["qas"]]
    assert kinds.count("localqa") == n_local and kinds.count("looktwiceqa") == 2
    first = rec["qas"][0]
    obj = local[0]["all_objs"][0]
    assert first["point"] == [local[0]["points"][0]["x"], local[0]["points"][0]["y"]]
    assert first["box"] == [obj["x"], obj["y"], obj["x"] + obj["w"], obj["y"] + obj["h"]]
    assert entry["ledger"]["balanced"]


def test_pointqa_point_outside_image_is_rejected(tmp_path):
    data = {"1": [{"img_question": "How many cars are there?", "pt_question": "How many of these are there?",
                   "ans": "2", "qtype": "howmany", "point": {"x": 5000, "y": 3, "ans": "2"},
                   "bbox": {"x": 1, "y": 1, "w": 5, "h": 5, "object_id": 3}}]}
    path = write_json(tmp_path / "lt.json", data)
    entry, out = ingest_one(tmp_path, "pointqa", {"looktwice": str(path), "images": str(tmp_path),
                                                  "image_data": str(SAMPLE / "visual_genome" / "image_data.json")},
                            max_bad_fraction=1.0)
    (err,) = read_errors(out, "pointqa")
    assert err["reason"] == "point_outside_image" and err["field"] == "point"
    assert entry["ledger"]["balanced"]


def test_flickr_shared_boxes_and_several_boxes_per_entity(tmp_path):
    """The real (elided) annotation of image 1000092795: chain 1 has two boxes, one shared with chain 6."""
    data = Path(__file__).parent / "data" / "flickr30k_entities"
    root = tmp_path / "f30k"
    (root / "Sentences").mkdir(parents=True)
    (root / "Annotations").mkdir()
    shutil.copy(data / "1000092795.txt", root / "Sentences" / "1000092795.txt")
    shutil.copy(data / "1000092795.xml", root / "Annotations" / "1000092795.xml")
    (root / "train.txt").write_text("1000092795\n")
    entry, out = ingest_one(tmp_path, "flickr30k_entities", {"root": str(root), "images": str(root)})
    (rec,) = read_records(out, "flickr30k_entities")
    boxes = {o["id"]: o["box"] for o in rec["objects"]}
    first = rec["captions"][0]["phrases"][0]  # [/EN#1/people Two young guys]
    assert first["text"] == "Two young guys" and len(first["object_ids"]) == 2
    assert [boxes[i] for i in first["object_ids"]] == [[158.0, 124.0, 219.0, 335.0], [196.0, 109.0, 261.0, 373.0]]
    man = rec["captions"][3]["phrases"][0]  # [/EN#6/people A man] shares the second box
    assert man["object_ids"] == [first["object_ids"][1]]
    time_phrase = rec["captions"][4]["phrases"][1]  # [/EN#10/other time]: <nobndbox>1</nobndbox>
    assert time_phrase["no_box"] and not time_phrase["scene"]
    assert entry["ledger"]["balanced"]


def test_refcoco_annotations_of_an_unknown_image_are_counted_and_rejected(tmp_path):
    root = tmp_path / "refcoco"
    shutil.copytree(SAMPLE / "refcoco", root)
    instances = root / "refcoco" / "instances.json"
    data = json.loads(instances.read_text())
    stray = dict(data["annotations"][0], id=424242, image_id=999999)
    data["annotations"].append(stray)
    instances.write_text(json.dumps(data))
    entry, out = ingest_one(tmp_path, "refcoco", {"root": str(root), "images": str(root / "images")},
                            max_bad_fraction=1.0)  # the sample has a handful of records: one is past 5 %
    objects = entry["ledger"]["annotations"]["object"]
    assert objects["read"] == len(data["annotations"]) and objects["rejected"].get("unknown_image") == 1
    errors = [e for e in read_errors(out, "refcoco") if e["reason"] == "unknown_image" and e["kind"] == "object"]
    assert len(errors) == 1 and "999999" in errors[0]["message"]
