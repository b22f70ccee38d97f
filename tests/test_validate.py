"""rcforge validate: a clean build of the sample is valid in every coordinate format; broken shards are not."""

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from rcforge.cli.main import main
from rcforge.inspect.validate import validate

from conftest import SAMPLE_RECIPE, copy_of


@pytest.mark.parametrize("fmt", ["pink", *(pytest.param(f, marks=pytest.mark.slow)
                                           for f in ("shikra", "qwen", "minigpt_v2"))])
def test_sample_build_is_valid_in_every_format(tmp_path, fmt, capsys, sample_build):
    if fmt == "pink":  # the sample recipe's own format: the session's build
        out = copy_of(sample_build, tmp_path)
    else:
        out = tmp_path / "out"
        assert main(["build", str(SAMPLE_RECIPE), "--out", str(out), "--no-progress", "--coordinates", fmt]) == 0
    assert validate(str(out)) == []
    with pytest.raises(SystemExit) as stop:
        from rcforge.inspect.validate import main as validate_main

        class Args:
            pass

        args = Args()
        args.out = str(out)
        shard = next((out / "dialogues").glob("part-*.parquet"))
        table = pq.read_table(shard)
        boxes = table.column("boxes").to_pylist()
        i = next(k for k, b in enumerate(boxes) if b)
        boxes[i][0] = [0.9, 0.1, 0.2, 0.3]  # x1 > x2, and no longer what the text prints
        table = table.set_column(table.schema.get_field_index("boxes"), "boxes",
                                 pa.array(boxes, table.schema.field("boxes").type))
        from rcforge import schemas

        pq.write_table(table.cast(schemas.DIALOGUE), shard)
        validate_main(args, [])
    assert stop.value.code == 1
    err = capsys.readouterr().err
    assert "is not inside [0, 1] with x1 < x2" in err and "does not match" in err


def test_schema_drift_is_reported(tmp_path, sample_build):
    out = copy_of(sample_build, tmp_path)
    shard = next((out / "dialogues").glob("part-*.parquet"))
    pq.write_table(pq.read_table(shard).drop_columns(["seed"]), shard)
    problems = validate(str(out))
    assert any("schema differs from the declared dialogue schema" in p for p in problems)


MANIFEST_CORRUPTIONS = {
    "a list": lambda m: [],
    "sources a list": lambda m: {**m, "sources": []},
    "sources null": lambda m: {**m, "sources": None},
    "no sources": lambda m: {k: v for k, v in m.items() if k != "sources"},
    "build a list": lambda m: {**m, "build": [1, 2]},
    "no shards": lambda m: {**m, "build": {k: v for k, v in m["build"].items() if k != "shards"}},
    "no build ledger": lambda m: {**m, "build": {k: v for k, v in m["build"].items() if k != "ledger"}},
    "a source without ledger": lambda m: {**m, "sources": {**m["sources"], "vqav2": {
        k: v for k, v in m["sources"]["vqav2"].items() if k != "ledger"}}},
    "parts not names": lambda m: {**m, "sources": {**m["sources"], "vqav2": {
        **m["sources"]["vqav2"], "parts": [1]}}},
    "records a string": lambda m: {**m, "sources": {**m["sources"], "vqav2": {
        **m["sources"]["vqav2"], "records": "1"}}},
    "a tally a string": lambda m: {**m, "sources": {**m["sources"], "vqav2": {
        **m["sources"]["vqav2"], "ledger": {**m["sources"]["vqav2"]["ledger"], "images": "x"}}}},
}


@pytest.mark.parametrize("corruption", sorted(MANIFEST_CORRUPTIONS))
def test_a_manifest_of_the_wrong_shape_is_named_never_a_crash(corruption, sample_build, tmp_path):
    from rcforge.inspect.validate import validate

    from conftest import copy_of

    out = copy_of(sample_build, tmp_path)
    manifest = json.loads((out / "manifest.json").read_text())
    (out / "manifest.json").write_text(json.dumps(MANIFEST_CORRUPTIONS[corruption](manifest)))
    problems = validate(str(out))
    assert problems and all(p.startswith("manifest.json: ") for p in problems), problems


def test_an_unreadable_failure_record_beside_a_valid_output_is_a_note(sample_build, tmp_path, capsys):
    from rcforge import cli

    from conftest import copy_of

    out = copy_of(sample_build, tmp_path)
    (out / "last-failed-run").mkdir()
    (out / "last-failed-run" / "failure.json").write_text("{not json")
    assert cli.main(["validate", str(out)]) == 0
    assert "failure.json does not read" in capsys.readouterr().err
