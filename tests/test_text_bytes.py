"""Bytes that would break the text pipeline (a NUL, a lone surrogate, invalid UTF-8) reject their record with a
reason, per record, on every reader path; the source and the build go on."""

from __future__ import annotations

import json
import shutil

import pyarrow.parquet as pq
import pytest

from rcforge import cli

from conftest import SAMPLE, SAMPLE_RECIPE


def _copy(tmp_path):
    """The sample, with a recipe that keeps going past bad records (the sample's sources are a few records
    each, so one bad record is past any fraction)."""
    shutil.copytree(SAMPLE, tmp_path / "sample_data")
    (tmp_path / "recipes").mkdir()
    text = SAMPLE_RECIPE.read_text().replace("max_bad_fraction: 0.05", "max_bad_fraction: 1.0")
    (tmp_path / "recipes" / "sample.yaml").write_text(text)
    return tmp_path / "recipes" / "sample.yaml"


def _errors(out):
    folder = out / "errors"
    return pq.read_table(folder).to_pylist() if folder.exists() else []


@pytest.mark.parametrize("bad", ["\\u0000", "\\ud800", "\\u0007"])
def test_a_question_with_bad_characters_rejects_its_record_only(bad, tmp_path):
    recipe = _copy(tmp_path)
    questions = tmp_path / "sample_data" / "vqav2" / "questions.json"
    raw = questions.read_text()
    data = json.loads(raw)
    first = data["questions"][0]["question"]
    raw = raw.replace(json.dumps(first)[1:-1], json.dumps(first)[1:-1] + bad, 1)
    questions.write_text(raw)
    out = tmp_path / "out"
    assert cli.main(["build", str(recipe), "--out", str(out), "--no-progress"]) == 0
    errors = [e for e in _errors(out) if e["source"] == "vqav2"]
    if bad == "\\ud800":  # the JSON parser itself replaces a lone surrogate escape: nothing bad gets through
        texts = [t["value"] for p in (out / "dialogues").glob("*.parquet") for r in pq.read_table(p).to_pylist()
                 for t in r["conversations"]]
        assert all(t.encode("utf-8") for t in texts)
    else:
        assert errors and errors[0]["reason"] == "bad_text", errors
    assert cli.main(["validate", str(out)]) == 0


def test_a_lone_surrogate_from_a_pickle_rejects_its_ref(tmp_path):
    """RefCOCO's refs are a pickle: a str with a lone surrogate arrives as it is, and the text contract rejects
    that sentence's ref, not the source."""
    import pickle

    recipe = _copy(tmp_path)
    refs_path = tmp_path / "sample_data" / "refcoco" / "refcoco" / "refs(unc).p"
    refs = pickle.loads(refs_path.read_bytes())
    refs[0]["sentences"][0]["sent"] = "the man \ud800 on the left"
    refs[0]["sentences"][0]["raw"] = "the man \ud800 on the left"
    refs_path.write_bytes(pickle.dumps(refs, protocol=2))
    out = tmp_path / "out"
    assert cli.main(["build", str(recipe), "--out", str(out), "--no-progress"]) == 0
    errors = [e for e in _errors(out) if e["source"] == "refcoco"]
    assert any(e["reason"] == "bad_text" and "surrogate" in e["message"] for e in errors), errors
    assert cli.main(["validate", str(out)]) == 0


def test_an_image_path_with_a_nul_rejects_its_image(tmp_path):
    recipe = _copy(tmp_path)
    annotations = tmp_path / "sample_data" / "vqav2" / "annotations.json"
    questions = tmp_path / "sample_data" / "vqav2" / "questions.json"
    # VQAv2 makes the image path from the image id; a NUL reaches a path through Objects365's file_name
    o365 = tmp_path / "sample_data" / "objects365" / "objv2_train_reassembled_from_quotes.json"
    data = json.loads(o365.read_text())
    data["images"][0]["file_name"] = "images/v2/patch0/objects365_v2_00420917\u0000.jpg"
    o365.write_text(json.dumps(data))
    assert annotations.exists() and questions.exists()
    out = tmp_path / "out"
    assert cli.main(["build", str(recipe), "--out", str(out), "--no-progress"]) == 0
    errors = [e for e in _errors(out) if e["source"] == "objects365"]
    assert errors and ("control character" in errors[0]["message"] or errors[0]["reason"] == "bad_text"), errors
    assert cli.main(["validate", str(out)]) == 0


@pytest.mark.parametrize("mode", ["columnar", "processes", "per_image"])
@pytest.mark.parametrize("file, anchor", [("objects.json", b'"names": ["'),
                                          ("region_descriptions.json", b'"phrase": "'),
                                          ("relationships.json", b'"predicate": "'),
                                          ("attributes.json", b'"attributes": ["')])
def test_bytes_that_are_not_utf8_in_visual_genome_reject_their_record_only(tmp_path, mode, file, anchor):
    """Arrow's JSON reader does not check UTF-8: the columnar lane checks each batch, and the record holding the
    byte is rejected with the byte named; every other record is read as from the clean file."""
    from conftest import ingest_one, read_errors, read_records

    root = tmp_path / "vg"
    shutil.copytree(SAMPLE / "visual_genome", root, ignore=shutil.ignore_patterns("images"))
    options = {"root": str(root), "images": str(root), "image_layout": "flat", "mode": mode}
    (tmp_path / "clean").mkdir()
    clean_entry, clean_out = ingest_one(tmp_path / "clean", "visual_genome", options, max_bad_fraction=1.0)
    raw = (root / file).read_bytes()
    at = raw.index(anchor, len(raw) // 2) + len(anchor)  # a record of a later image, not the first
    (root / file).write_bytes(raw[:at] + b"\xff\xc3" + raw[at:])
    (tmp_path / "bad").mkdir()
    entry, out = ingest_one(tmp_path / "bad", "visual_genome", options, max_bad_fraction=1.0)
    errors = read_errors(out, "visual_genome")
    bad = [e for e in errors if e["reason"] == "bad_text"]
    assert len(bad) == 1 and "0xFF" in bad[0]["message"] and "not UTF-8" in bad[0]["message"], errors
    assert bad[0]["file"].endswith(file)
    assert entry["ledger"]["balanced"]
    assert entry["ledger"]["images"]["read"] == clean_entry["ledger"]["images"]["read"]
    clean = {r["key"]: r for r in read_records(clean_out, "visual_genome")}
    got = {r["key"]: r for r in read_records(out, "visual_genome")}
    assert set(got) == set(clean)
    assert sum(got[k] == clean[k] for k in clean) >= len(clean) - 1  # only the image holding the byte differs


@pytest.mark.parametrize("policy", ["skip", "error"])
def test_a_byte_that_is_not_utf8_quoted_in_an_error_is_written_escaped(tmp_path, capsys, policy):
    """Text quoted from the input into an error row or message (a wrong-typed value holding a byte that is not UTF-8)
    is written with the byte escaped: the errors output and the terminal can hold it."""
    from conftest import read_errors

    root = tmp_path / "vqa"
    root.mkdir()
    questions = json.loads((SAMPLE / "vqav2" / "questions.json").read_text())
    first = questions["questions"][0]["question"]
    questions["questions"][0]["question"] = ["BAD" + first]  # a wrong type, quoted in the message
    raw = json.dumps(questions).encode().replace(b'"BAD', b'"\xff', 1)
    (root / "questions.json").write_bytes(raw)
    shutil.copy(SAMPLE / "vqav2" / "annotations.json", root / "annotations.json")
    recipe = tmp_path / "r.yaml"
    recipe.write_text(json.dumps({"on_bad_records": policy, "max_bad_fraction": 1.0, "verify_images": "off",
                                  "sources": {"vqav2": {"questions": str(root / "questions.json"),
                                                        "annotations": str(root / "annotations.json"),
                                                        "images": str(SAMPLE / "vqav2" / "images")}}}))
    code = cli.main(["ingest", str(recipe), "--out", str(tmp_path / "out"), "--no-progress"])
    text = capsys.readouterr()
    assert "Traceback" not in text.err
    if policy == "skip":
        assert code == 0
        errors = read_errors(tmp_path / "out", "vqav2")
        assert any("\\udcff" in e["message"] for e in errors), errors
    else:
        assert code == 1 and "questions.json" in text.err and "\\udcff" in text.err, text.err
