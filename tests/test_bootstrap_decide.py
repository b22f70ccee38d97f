"""The self-consistency decision and refilter, on candidates with known IoUs (no model needed)."""

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from rcforge import schemas
from rcforge.bootstrap.decide import decide, survival
from rcforge.cli.main import main


def candidates(rows):
    base = {"source": "objects365", "image": "x.jpg", "width": 100, "height": 100, "category": "cup",
            "box": [10.0, 10.0, 50.0, 50.0], "sample": 0, "description": "a cup",
            "predicted_box": [10.0, 10.0, 50.0, 50.0],
            "other_iou": 0.0, "format_error": False, "error_stage": None, "raw_describe": "", "raw_ground": "",
            "backend": "fake", "model_id": "fake", "model_revision": None, "describe_template": "d",
            "ground_template": "g", "seed": 0}
    return pa.Table.from_pylist([{**base, **r} for r in rows], schema=schemas.CANDIDATE)


def test_iou_at_lambda_is_kept_and_the_original_box_is_stored():
    table = candidates([
        {"key": "o/1", "object_id": 1, "iou": 0.5, "predicted_box": [12.0, 12.0, 60.0, 60.0]},
        {"key": "o/1", "object_id": 2, "iou": 0.4999},
    ])
    (pair,) = decide(table, 0.5).to_pylist()
    assert pair["object_id"] == 1 and pair["box"] == [10.0, 10.0, 50.0, 50.0] and pair["lambda"] == 0.5


def test_uniqueness_format_errors_and_best_of_n():
    table = candidates([
        {"key": "o/1", "object_id": 1, "iou": 0.9, "other_iou": 0.8, "description": "a cup"},   # ambiguous
        {"key": "o/1", "object_id": 2, "iou": 0.0, "format_error": True, "predicted_box": None,
         "error_stage": "ground", "description": "the mug"},
        {"key": "o/2", "object_id": 3, "iou": 0.6, "sample": 0, "description": "left cup"},
        {"key": "o/2", "object_id": 3, "iou": 0.8, "sample": 1, "description": "the red cup on the left"},
    ])
    pairs = decide(table, 0.5).to_pylist()
    assert [(p["object_id"], p["description"]) for p in pairs] == [(3, "the red cup on the left")]
    without = decide(table, 0.5, uniqueness=False).to_pylist()
    assert [p["object_id"] for p in without] == [1, 3]
    # object 1 is ambiguous until lambda passes its other IoU (0.8); object 3's best IoU is 0.8
    assert [s["pairs"] for s in survival(table, [0.0, 0.7, 0.85, 1.0])] == [1, 1, 1, 0]


def test_refilter_equals_a_fresh_decision_at_other_lambdas(tmp_path):
    rng = np.random.default_rng(0)
    n = 5000
    rows = [{"key": f"o/{i // 10}", "object_id": i // 2, "sample": i % 2, "iou": float(rng.random()),
             "other_iou": float(rng.random() * 0.6), "format_error": bool(rng.random() < 0.05)} for i in range(n)]
    folder = tmp_path / "out" / "bootstrap" / "candidates"
    folder.mkdir(parents=True)
    table = candidates(rows)
    # objects never straddle shards
    pq.write_table(table.slice(0, 2500), folder / "part-00000.parquet")
    pq.write_table(table.slice(2500), folder / "part-00001.parquet")
    for lam in (0.3, 0.5, 0.7):
        target = tmp_path / f"lam{lam}"
        assert main(["refilter", str(tmp_path / "out"), "--lambda", str(lam), "--out", str(target)]) == 0
        got = pa.concat_tables([pq.read_table(p) for p in sorted((target / "bootstrap" / "pairs").glob("*.parquet"))])
        order = [("key", "ascending"), ("object_id", "ascending")]
        assert got.sort_by(order).equals(decide(table, lam).sort_by(order))
        summary = json.loads((target / "bootstrap" / "refilter.json").read_text())
        assert summary["pairs"] == got.num_rows and summary["candidates"] == n


def test_lambda_out_of_range():
    with pytest.raises(ValueError):
        decide(candidates([{"key": "o/1", "object_id": 1, "iou": 0.5}]), 1.5)


def test_stats_of_bootstrap_output_match_the_decision(tmp_path):
    rng = np.random.default_rng(1)
    rows = [{"key": f"o/{i // 6}", "object_id": i // 2, "sample": i % 2, "iou": float(rng.random()),
             "other_iou": float(rng.random() * 0.6) if i % 3 else 0.0, "format_error": bool(rng.random() < 0.1),
             "description": "a cup " * (1 + i % 4)} for i in range(3000)]
    for i, r in enumerate(rows):  # a failure is on the image (it did not read) or a reply that did not parse
        r["error_stage"] = ("image" if i % 2 else "ground") if r["format_error"] else None
    table = candidates(rows)
    folder = tmp_path / "out" / "bootstrap" / "candidates"
    folder.mkdir(parents=True)
    pq.write_table(table, folder / "part-00000.parquet")
    file = tmp_path / "stats.json"
    assert main(["stats", str(tmp_path / "out"), "--json", str(file)]) == 0
    boot = json.loads(file.read_text())["bootstrap"]
    assert boot["candidates"] == 3000 and boot["objects"] == 1500
    assert boot["format_error_rate"] == pytest.approx(
        sum(r["format_error"] and r["error_stage"] != "image" for r in rows) / 3000)
    assert boot["unreadable_image_rate"] == pytest.approx(sum(r["error_stage"] == "image" for r in rows) / 3000)
    assert boot["survival_curve"] == [{"lambda": s["lambda"], "pairs": s["pairs"]} for s in survival(table)]
    assert sum(b["n"] for b in boot["iou_histogram"]) == sum(not r["format_error"] for r in rows)
    words = {w["words"]: w["n"] for w in boot["description_words"] if w["n"]}
    assert words == {2: 750, 4: 750, 6: 750, 8: 750}
    assert [w["words"] for w in boot["description_words"]] == list(range(1, 21))  # empty bins kept
    assert [b["iou_from"] for b in boot["iou_histogram"]] == [i / 10 for i in range(10)]


def test_preview_and_validate_on_bootstrap_output(tmp_path):
    """Candidates on the sample's VG images (the ingest gives the image roots), refiltered, then inspected."""
    from conftest import SAMPLE_RECIPE

    out = tmp_path / "out"
    assert main(["ingest", str(SAMPLE_RECIPE), "--out", str(out), "--no-progress"]) == 0
    rows = [{"key": "vg/1", "source": "visual_genome", "image": "1.jpg", "width": 800, "height": 600,
             "object_id": 1058498, "category": "clock", "box": [421.0, 91.0, 500.0, 430.0],
             "description": "the tall green clock", "predicted_box": [425.0, 95.0, 498.0, 420.0], "iou": 0.88},
            {"key": "vg/1", "source": "visual_genome", "image": "1.jpg", "width": 800, "height": 600,
             "object_id": 5046, "category": "street", "box": [77.0, 328.0, 791.0, 590.0],
             "description": None, "predicted_box": None, "iou": 0.0, "format_error": True, "error_stage": "ground"}]
    folder = out / "bootstrap" / "candidates"
    folder.mkdir(parents=True)
    pq.write_table(candidates(rows), folder / "part-00000.parquet")
    assert main(["refilter", str(out), "--lambda", "0.5"]) == 0
    assert main(["validate", str(out)]) == 0
    html_file = tmp_path / "boot.html"
    assert main(["preview", str(out), "--html", str(html_file)]) == 0
    page = html_file.read_text()
    assert page.count('class="card"') == 2 and page.count("data:image/jpeg;base64,") == 2
    assert "the tall green clock" in page and "format error (ground)" in page
    # a pair that breaks its lambda is reported
    pairs = next((out / "bootstrap" / "pairs").glob("*.parquet"))
    table = pq.read_table(pairs)
    table = table.set_column(table.schema.get_field_index("iou"), "iou", pa.array([0.1]))
    pq.write_table(table.cast(schemas.PAIR), pairs)
    from rcforge.inspect.validate import validate

    assert any("IoU below its lambda" in p for p in validate(str(out)))


@pytest.mark.parametrize("damage", ["null iou", "null format_error", "truncated"])
def test_refilter_names_a_damaged_candidate_shard(damage, tmp_path, capsys):
    folder = tmp_path / "out" / "bootstrap" / "candidates"
    folder.mkdir(parents=True)
    rows = candidates([{"key": "o/1", "object_id": 1, "iou": 0.5}, {"key": "o/2", "object_id": 2, "iou": 0.7}])
    rows = rows.to_pylist()
    shard = folder / "part-000-00000.parquet"
    if damage.startswith("null"):
        rows[1][damage.split()[1]] = None
        loose = pa.schema([f.with_nullable(True) for f in schemas.CANDIDATE], metadata=schemas.CANDIDATE.metadata)
        pq.write_table(pa.Table.from_pylist(rows, schema=loose), shard)
    else:
        pq.write_table(pa.Table.from_pylist(rows, schema=schemas.CANDIDATE), shard)
        shard.write_bytes(shard.read_bytes()[:200])
    assert main(["refilter", str(tmp_path / "out"), "--lambda", "0.5"]) == 1
    err = capsys.readouterr().err
    assert shard.name in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert not (tmp_path / "out" / "bootstrap" / "pairs" / shard.name).exists()
