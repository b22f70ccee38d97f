"""Generated bad inputs over every source and the recipe: each case runs the real `rcforge ingest` command.

Record-level cases put one wrong-typed or out-of-range value into one field of one record. The command must exit
0 without a traceback, reject that record (an error row naming the file and the field), keep the ledger
balanced, and write every other image record exactly as the clean input does.

File-level cases break a whole file (wrong top-level shape, a missing key, truncated JSON or gzip, bytes that are
not UTF-8, nesting past the limit). The command must exit 1 with one line naming the file, and no traceback.

Recipe cases give a recipe value of the wrong type; the command must exit 1 naming the key, before reading data.
"""

from __future__ import annotations

import copy
import gzip
import json
import pickle
import shutil
from pathlib import Path

import pytest
import yaml

from rcforge import cli

from conftest import SAMPLE, read_errors, read_records

BIG = 2**63

# -- the clean inputs: the bundled sample, with a second image where the sample has one ----------------------------


def _vg(root: Path) -> dict:
    shutil.copytree(SAMPLE / "visual_genome", root, ignore=shutil.ignore_patterns("images"))
    return {"visual_genome": {"root": str(root), "images": str(root), "image_layout": "flat"}}


def _o365(root: Path) -> dict:
    data = json.loads((SAMPLE / "objects365" / "objv2_train_reassembled_from_quotes.json").read_text())
    image = copy.deepcopy(data["images"][0])
    image["id"] += 1
    image["file_name"] = "objects365_v2_second.jpg"
    data["images"].append(image)
    for ann in list(data["annotations"]):
        twin = dict(ann, id=ann["id"] + 10_000, image_id=image["id"])
        data["annotations"].append(twin)
    root.mkdir(parents=True)
    (root / "o365.json").write_text(json.dumps(data))
    return {"objects365": {"annotations": str(root / "o365.json"), "images": str(root)}}


def _vqa(root: Path) -> dict:
    questions = json.loads((SAMPLE / "vqav2" / "questions.json").read_text())
    annotations = json.loads((SAMPLE / "vqav2" / "annotations.json").read_text())
    first = questions["questions"][0]
    extra_q = dict(first, image_id=first["image_id"] + 1, question_id=first["question_id"] + 100_000_000)
    questions["questions"].append(extra_q)
    extra_a = dict(annotations["annotations"][0], question_id=extra_q["question_id"])
    annotations["annotations"].append(extra_a)
    root.mkdir(parents=True)
    (root / "questions.json").write_text(json.dumps(questions))
    (root / "annotations.json").write_text(json.dumps(annotations))
    ids = dict.fromkeys(q["image_id"] for q in questions["questions"])
    images = [{"id": i, "width": 640, "height": 480} for i in ids]
    (root / "image_info.json").write_text(json.dumps({"images": images}))
    return {"vqav2": {"questions": str(root / "questions.json"), "annotations": str(root / "annotations.json"),
                      "image_info": str(root / "image_info.json"), "images": str(root)}}


def _pointqa(root: Path) -> dict:
    local = json.loads((SAMPLE / "pointqa" / "localqa_dataset.json").read_text())
    look = json.loads((SAMPLE / "pointqa" / "looktwiceqa_dataset.json").read_text())
    local["2"] = copy.deepcopy(local["1"])
    root.mkdir(parents=True)
    (root / "local.json").write_text(json.dumps(local))
    (root / "looktwice.json").write_text(json.dumps(look))
    shutil.copy(SAMPLE / "visual_genome" / "image_data.json", root / "image_data.json")
    return {"pointqa": {"local": str(root / "local.json"), "looktwice": str(root / "looktwice.json"),
                        "image_data": str(root / "image_data.json"), "images": str(root), "image_layout": "flat"}}


def _flickr(root: Path) -> dict:
    """The sample image, and a second image (its copy under another id) so that there is a record to keep."""
    sample = SAMPLE / "flickr30k_entities"
    shutil.copytree(sample, root, ignore=shutil.ignore_patterns("images"))
    for folder, ext in (("Annotations", "xml"), ("Sentences", "txt")):
        shutil.copy(root / folder / f"4945942737.{ext}", root / folder / f"4945942738.{ext}")
    (root / "train.txt").write_text("4945942737\n4945942738\n")
    return {"flickr30k_entities": {"root": str(root), "split": "train", "images": str(root)}}


def _refcoco(root: Path) -> dict:
    """The sample refs (one train ref, one val ref) and a second train image with its own ref."""
    sample = SAMPLE / "refcoco" / "refcoco"
    (root / "refcoco").mkdir(parents=True)
    refs = pickle.loads((sample / "refs(unc).p").read_bytes())
    instances = json.loads((sample / "instances.json").read_text())
    image = dict(instances["images"][0], id=581858, file_name="COCO_train2014_000000581858.jpg")
    instances["images"].append(image)
    instances["annotations"].append(dict(instances["annotations"][0], id=1719400, image_id=581858))
    refs.append(dict(copy.deepcopy(refs[0]), ref_id=5, ann_id=1719400, image_id=581858, sent_ids=[50],
                     sentences=[{"tokens": ["a", "lady"], "raw": "a lady", "sent_id": 50, "sent": "a lady"}]))
    (root / "refcoco" / "refs(unc).p").write_bytes(pickle.dumps(refs, protocol=2))
    (root / "refcoco" / "instances.json").write_text(json.dumps(instances))
    return {"refcoco": {"root": str(root), "dataset": "refcoco", "split_by": "unc", "splits": ["train"],
                        "images": str(root)}}


SOURCES = {"visual_genome": _vg, "objects365": _o365, "vqav2": _vqa, "pointqa": _pointqa,
           "flickr30k_entities": _flickr, "refcoco": _refcoco}

# -- record-level cases: (source, file, path to the value, bad value) ----------------------------------------------

BAD_ID = ["7", 1.5, True, [1], {"a": 1}, -1, BIG]
BAD_TEXT = [7, ["a"], {"a": 1}, True]
BAD_TEXT_LIST = ["sneakers", [1], {"a": 1}, 7]
BAD_NUMBER = ["12", True, [1], {"x": 1}]
BAD_SIZE = ["800", 0, -5, 1.5, True, BIG]

# (source, file, path, field named in the error, bad values)
FIELDS = [
    ("visual_genome", "objects.json", (0, "objects", 0, "object_id"), "object_id", BAD_ID),
    ("visual_genome", "objects.json", (0, "objects", 0, "names"), "names", BAD_TEXT_LIST),
    ("visual_genome", "objects.json", (0, "objects", 0, "x"), "x", BAD_NUMBER),
    ("visual_genome", "objects.json", (0, "objects", 0, "h"), "h", BAD_NUMBER),
    ("visual_genome", "objects.json", (0, "objects", 0, "synsets"), "synsets", BAD_TEXT_LIST),
    ("visual_genome", "relationships.json", (0, "relationships", 0, "predicate"), "predicate", BAD_TEXT),
    ("visual_genome", "relationships.json", (0, "relationships", 0, "relationship_id"), "relationship_id", BAD_ID),
    ("visual_genome", "relationships.json", (0, "relationships", 0, "subject", "object_id"), "subject.object_id",
     BAD_ID),
    ("visual_genome", "region_descriptions.json", (0, "regions", 0, "phrase"), "phrase", BAD_TEXT),
    ("visual_genome", "region_descriptions.json", (0, "regions", 0, "width"), "width", BAD_NUMBER),
    ("visual_genome", "image_data.json", (0, "width"), "width", BAD_SIZE),
    ("visual_genome", "image_data.json", (0, "coco_id"), "coco_id", BAD_ID),
    ("objects365", "o365.json", ("annotations", 0, "bbox"), "bbox", ["1,2,3,4", [1, 2, 3], [1, "2", 3, 4],
                                                                      {"x": 1}, 7]),
    ("objects365", "o365.json", ("annotations", 0, "id"), "id", BAD_ID),
    ("objects365", "o365.json", ("annotations", 0, "category_id"), "category_id", BAD_ID),
    ("objects365", "o365.json", ("annotations", 0, "iscrowd"), "iscrowd", ["yes", 2, [1], {"a": 1}]),
    ("objects365", "o365.json", ("images", 0, "width"), "width", BAD_SIZE),
    ("objects365", "o365.json", ("images", 0, "file_name"), "file_name", BAD_TEXT),
    ("objects365", "o365.json", ("images", 0, "id"), "id", BAD_ID),
    ("vqav2", "questions.json", ("questions", 0, "question"), "question", BAD_TEXT),
    ("vqav2", "questions.json", ("questions", 0, "image_id"), "image_id", BAD_ID),
    ("vqav2", "questions.json", ("questions", 0, "question_id"), "question_id", BAD_ID),
    ("vqav2", "annotations.json", ("annotations", 0, "multiple_choice_answer"), "multiple_choice_answer",
     [{"a": 1}, ["x"]]),
    ("vqav2", "annotations.json", ("annotations", 0, "answers"), "answers", ["yes", {"a": 1}, 7]),
    ("vqav2", "image_info.json", ("images", 0, "width"), "width", BAD_SIZE),
    ("pointqa", "local.json", ("1", 0, "question"), "question", BAD_TEXT),
    ("pointqa", "local.json", ("1", 0, "points", 0, "x"), "point", BAD_NUMBER),
    ("pointqa", "local.json", ("1", 0, "all_objs", 0, "w"), "all_objs", BAD_NUMBER),
    ("pointqa", "local.json", ("1", 0, "points", 0, "ans"), "ans", [{"a": 1}, ["x"]]),
    ("pointqa", "looktwice.json", ("1", 0, "bbox", "x"), "bbox", BAD_NUMBER),
    ("refcoco", "refcoco/refs(unc).p", (0, "ann_id"), "ann_id", BAD_ID),
    ("refcoco", "refcoco/refs(unc).p", (0, "sentences", 0, "sent"), "sent", BAD_TEXT),
    ("refcoco", "refcoco/refs(unc).p", (0, "sentences"), "sentences", ["a lady", {"a": 1}, 7]),
    ("refcoco", "refcoco/refs(unc).p", (0, "ref_id"), "ref_id", BAD_ID),
    ("refcoco", "refcoco/instances.json", ("annotations", 0, "bbox"), "bbox", ["1,2,3,4", [1, 2, 3], {"x": 1}]),
    ("refcoco", "refcoco/instances.json", ("images", 0, "width"), "width", BAD_SIZE),
    ("flickr30k_entities", "Annotations/4945942737.xml", ("object", 0, "bndbox", "xmin"), "xmin",
     ["abc", "1e400", "", "12.5.3"]),
    ("flickr30k_entities", "Annotations/4945942737.xml", ("object", 0, "bndbox", "xmin"), "bndbox", ["99999"]),
    ("flickr30k_entities", "Annotations/4945942737.xml", ("size", "width"), "width", ["abc", "0", "-5", ""]),
    ("flickr30k_entities", "Annotations/4945942737.xml", ("object", 0, "name"), "name", ["", "abc"]),
]

#: the image whose record the mutated value belongs to: it may change (lose an item); no other record may
OWNER = {"visual_genome": "vg/1", "objects365": "objects365/420917", "vqav2": "vqav2/458752", "pointqa": "pointqa/1",
         "flickr30k_entities": "flickr30k/4945942737", "refcoco": "refcoco/refcoco/581857"}

RECORD_CASES = [pytest.param(src, file, path, field, value,
                             id=f"{src}-{file}-{'.'.join(map(str, path))}-{value!r}"[:90],
                             marks=() if k == 0 else pytest.mark.slow)  # the inner loop runs one value a field
                for src, file, path, field, values in FIELDS for k, value in enumerate(values)]


def _set_in_file(target: Path, path: tuple, value) -> None:
    """Put ``value`` at ``path`` in a JSON, pickle or XML file (XML: element names and indices, text values)."""
    if target.suffix == ".xml":
        import xml.etree.ElementTree as ET

        tree = ET.parse(target)
        node = tree.getroot()
        for step, following in zip(path, path[1:] + (None,)):
            if isinstance(step, int):
                continue
            index = following if isinstance(following, int) else 0
            node = node.findall(step)[index]
        node.text = str(value)
        tree.write(target)
        return
    if target.suffix == ".p":
        data = pickle.loads(target.read_bytes())
        _set(data, path, value)
        target.write_bytes(pickle.dumps(data, protocol=2))
        return
    data = json.loads(target.read_text())
    _set(data, path, value)
    target.write_text(json.dumps(data))


def _set(data, path, value):
    for step in path[:-1]:
        data = data[step]
    data[path[-1]] = value


def _run(tmp_path: Path, sources: dict, capsys, **top) -> tuple[int, str, Path]:
    out = tmp_path / "out"
    recipe = tmp_path / "recipe.yaml"
    # the generated sources have no image files (tests/test_images.py fuzzes those); paths are still confined
    recipe.write_text(yaml.safe_dump({"sources": sources, "max_bad_fraction": 1.0, "verify_images": "off", **top}))
    code = cli.main(["ingest", str(recipe), "--out", str(out), "--no-progress"])
    captured = capsys.readouterr()
    return code, captured.out + captured.err, out


def _records(out: Path, source: str) -> dict:
    return {row["key"]: row for row in read_records(out, source)}


_clean_cache: dict = {}


def _clean(tmp_path_factory, source: str, capsys) -> dict:
    if source not in _clean_cache:
        tmp = tmp_path_factory.mktemp(f"clean-{source}")
        code, text, out = _run(tmp, SOURCES[source](tmp / "data"), capsys)
        assert code == 0, text
        _clean_cache[source] = _records(out, source)
        assert len(_clean_cache[source]) >= 2
    return _clean_cache[source]


@pytest.mark.parametrize("source, file, path, field, value", RECORD_CASES)
def test_a_bad_value_rejects_its_record_and_nothing_else(tmp_path, tmp_path_factory, capsys, source, file, path,
                                                         field, value):
    clean = _clean(tmp_path_factory, source, capsys)
    sources = SOURCES[source](tmp_path / "data")
    _set_in_file(tmp_path / "data" / file, path, value)
    code, text, out = _run(tmp_path, sources, capsys)
    assert "Traceback" not in text
    assert code == 0, text
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["sources"][source]["ledger"]["balanced"]
    errors = read_errors(out, source)
    named = [e for e in errors if e["file"].endswith(file) and field.split(".")[-1] in e["field"]]
    assert named, f"no error row names {file} and {field}: {errors}"
    assert all(e["record"] and e["reason"] for e in named)
    records = _records(out, source)
    touched = {e["key"] for e in errors} | {OWNER[source]}
    for key, row in clean.items():
        if key not in touched:
            assert records.get(key) == row, f"{key} changed"
    # the bad value never reaches a record
    for row in records.values():
        assert repr(value) not in json.dumps(row, default=str) or isinstance(value, (int, float))


# -- file-level cases ---------------------------------------------------------------------------------------------


def _wrong_top(data):
    return {"entries": data} if isinstance(data, list) else list(data.values())


def _deep(_):
    return json.loads("[" * 70 + "]" * 70)


FILE_CASES = [
    ("visual_genome", "image_data.json", "json", _wrong_top, "an array"),
    ("visual_genome", "objects.json", "json", _wrong_top, "an array"),
    ("visual_genome", "relationships.json", "json", _wrong_top, "an array"),
    ("visual_genome", "region_descriptions.json", "json", _wrong_top, "an array"),
    ("visual_genome", "objects.json", "json", _deep, "nested deeper"),
    ("visual_genome", "image_data.json", "truncate", None, "image_data.json"),
    ("objects365", "o365.json", "json", lambda d: {**d, "images": {"0": d["images"][0]}}, "images"),
    ("objects365", "o365.json", "json", lambda d: {k: v for k, v in d.items() if k != "annotations"}, "annotations"),
    ("objects365", "o365.json", "json", lambda d: {**d, "categories": "all"}, "categories"),
    ("objects365", "o365.json", "json", lambda d: d["images"], "object"),
    ("objects365", "o365.json", "json", _deep, "nested deeper"),
    ("objects365", "o365.json", "truncate", None, "o365.json"),
    ("objects365", "o365.json", "empty", None, "o365.json"),
    ("vqav2", "questions.json", "json", lambda d: d["questions"], "questions"),
    ("vqav2", "questions.json", "json", lambda d: {**d, "questions": {"a": 1}}, "questions"),
    ("vqav2", "annotations.json", "json", lambda d: {**d, "annotations": "none"}, "annotations"),
    ("vqav2", "annotations.json", "truncate", None, "annotations.json"),
    ("pointqa", "local.json", "json", lambda d: list(d.values()), "object"),
    ("pointqa", "looktwice.json", "json", lambda d: 7, "object"),
    ("pointqa", "local.json", "deep", None, "nested deeper"),
    ("pointqa", "image_data.json", "json", _wrong_top, "array"),
]


def _mutate_file(path: Path, how: str, fn) -> None:
    raw = path.read_bytes()
    if how == "json":
        path.write_text(json.dumps(fn(json.loads(raw))))
    elif how == "truncate":
        path.write_bytes(raw[: len(raw) // 2])
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "latin1":
        text = raw.decode()
        cut = text.index('"', len(text) // 2) + 1
        path.write_bytes(text[:cut].encode() + "caf\xe9".encode("latin-1") + text[cut:].encode())
    elif how == "deep":
        path.write_text('{"1": ' + "[" * 200 + "]" * 200 + "}")


@pytest.mark.parametrize("source, file, how, fn, says", [pytest.param(*c, id=f"{c[0]}-{c[1]}-{c[2]}-{i}")
                                                         for i, c in enumerate(FILE_CASES)])
def test_a_broken_file_is_one_clear_error_naming_it(tmp_path, capsys, source, file, how, fn, says):
    sources = SOURCES[source](tmp_path / "data")
    _mutate_file(tmp_path / "data" / file, how, fn)
    code, text, _ = _run(tmp_path, sources, capsys)
    assert "Traceback" not in text
    assert code == 1, text
    assert file in text and says in text, text


@pytest.mark.parametrize("source, file", [("visual_genome", "objects.json"), ("vqav2", "questions.json"),
                                          ("objects365", "o365.json"), ("pointqa", "local.json")])
def test_bytes_that_are_not_utf8_never_end_in_a_traceback(tmp_path, capsys, source, file):
    """Latin-1 text inside a string: the record is rejected or its file named; never a traceback, never a
    ledger that does not balance."""
    sources = SOURCES[source](tmp_path / "data")
    _mutate_file(tmp_path / "data" / file, "latin1", None)
    code, text, out = _run(tmp_path, sources, capsys)
    assert "Traceback" not in text
    if code == 0:
        assert json.loads((out / "manifest.json").read_text())["sources"][source]["ledger"]["balanced"]
    else:
        assert code == 1 and file in text, text


def test_a_truncated_gzip_is_one_clear_error(tmp_path, capsys):
    sources = _vg(tmp_path / "data")
    raw = gzip.compress((tmp_path / "data" / "objects.json").read_bytes())
    (tmp_path / "data" / "objects.json").unlink()
    (tmp_path / "data" / "objects.json.gz").write_bytes(raw[: len(raw) // 2])
    sources["visual_genome"]["objects"] = "objects.json.gz"
    code, text, _ = _run(tmp_path, sources, capsys)
    assert "Traceback" not in text and code == 1 and "objects.json.gz" in text, text


# -- the recipe ---------------------------------------------------------------------------------------------------

RECIPE_CASES = [
    ({"render": {"source_weights": [1, 2]}}, "render.source_weights"),
    ({"render": {"source_weights": {"visual_genom": 1}}}, "visual_genom"),
    ({"render": {"tasks": {"counting": 3}}}, "render.tasks.counting"),
    ({"render": {"tasks": ["counting"]}}, "render.tasks"),
    ({"render": {"per_image": "6"}}, "render.per_image"),
    ({"render": {"coordinates": 7}}, "render.coordinates"),
    ({"render": {"templates": 7}}, "render.templates"),
    ({"seed": 2**64}, "seed"),
    ({"seed": -1}, "seed"),
    ({"seed": "0"}, "seed"),
    ({"max_bad_fraction": "0.1"}, "max_bad_fraction"),
    ({"on_bad_records": "ignore"}, "on_bad_records"),
    ({"rows_per_part": 0}, "rows_per_part"),
    ({"exclude": []}, "exclude"),
    ({"exclude": {"coco_ids": 7}}, "exclude.coco_ids"),
    ({"render": {"bootstrap_pairs": 7}}, "render.bootstrap_pairs"),
    ({"bootstrap": {"lambda": "high"}}, "bootstrap"),
]


@pytest.mark.parametrize("top, key", [pytest.param(*c, id=c[1] + f"-{i}") for i, c in enumerate(RECIPE_CASES)])
def test_a_recipe_value_of_the_wrong_type_names_its_key(tmp_path, capsys, top, key):
    sources = _vg(tmp_path / "data")
    out = tmp_path / "out"
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump({"sources": sources, **top}))
    code = cli.main(["build", str(recipe), "--out", str(out), "--no-progress"])
    text = "".join(capsys.readouterr())
    assert "Traceback" not in text
    assert code == 1 and key in text, text
    assert not (out / "images").exists()  # found before anything was read or written


@pytest.mark.parametrize("content, says", [
    ("[true, 458752.9]", "exclude.coco_ids"),
    ('{"ids": [1]}', "exclude.coco_ids"),
    ("[1, \"x\"]", "exclude.coco_ids"),
    ("[" * 100 + "]" * 100, "nested deeper"),
])
def test_a_bad_coco_ids_file_is_an_error_naming_it(tmp_path, capsys, content, says):
    sources = _vg(tmp_path / "data")
    (tmp_path / "ids.json").write_text(content)
    code, text, _ = _run(tmp_path, sources, capsys, exclude={"coco_ids": str(tmp_path / "ids.json")})
    assert "Traceback" not in text and code == 1 and "ids.json" in text and says in text, text


@pytest.mark.parametrize("file_name", ["/etc/passwd", "../../secret.jpg", "a/../../b.jpg", "", "s3://bucket/x.jpg"])
def test_an_image_path_outside_the_root_rejects_its_image(tmp_path, tmp_path_factory, capsys, file_name):
    clean = _clean(tmp_path_factory, "objects365", capsys)
    sources = _o365(tmp_path / "data")
    data = json.loads((tmp_path / "data" / "o365.json").read_text())
    data["images"][0]["file_name"] = file_name
    (tmp_path / "data" / "o365.json").write_text(json.dumps(data))
    code, text, out = _run(tmp_path, sources, capsys)
    assert code == 0 and "Traceback" not in text, text
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["sources"]["objects365"]["ledger"]["balanced"]
    records = _records(out, "objects365")
    assert OWNER["objects365"] not in records
    assert all(records[k] == clean[k] for k in clean if k != OWNER["objects365"])
    (error,) = [e for e in read_errors(out, "objects365") if e["kind"] == "image"]
    if file_name:
        assert error["field"] == "image" and error["reason"] == "image_path_outside_root"
        assert error["record"] == OWNER["objects365"] and file_name[:40] in error["message"]
    else:  # the contract rejects an empty file name as it reads it
        assert error["field"] == "file_name"
