"""rcforge validate: a clean build of the sample is valid in every coordinate format; broken shards are not."""

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import SAMPLE_RECIPE, copy_of

from rcforge.cli import main
from rcforge.validate import validate


@pytest.mark.parametrize("fmt", ["pink", *(pytest.param(f, marks=pytest.mark.slow) for f in ("shikra", "qwen", "minigpt_v2"))])
def test_sample_build_is_valid_in_every_format(tmp_path, fmt, capsys, sample_build):
    if fmt == "pink":  # the sample recipe's own format: the session's build
        out = copy_of(sample_build, tmp_path)
    else:
        out = tmp_path / "out"
        assert main(["build", str(SAMPLE_RECIPE), "--out", str(out), "--no-progress", "--coordinates", fmt]) == 0
    assert validate(str(out)) == []
    with pytest.raises(SystemExit) as stop:
        from rcforge.validate import main as validate_main

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
