"""The bootstrap pipeline with fake model handlers whose outputs are known: the filter is checked exactly
(IoU 0.5 kept, original box stored, uniqueness, format errors, refilter = fresh run, resume after a kill)."""

import json

import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.ml.inference.base import ModelHandler, PredictionResult

from rcforge.bootstrap.options import BootstrapOptions
from rcforge.pipelines.bootstrap import BootstrapSettings, run_bootstrap

from conftest import SAMPLE, ingest_one, write_json

# object id -> what the fake grounding model answers
GROUND = {
    1: [0.0, 0.0, 100.0, 50.0],      # IoU exactly 0.5 with [0, 0, 100, 100]: kept at lambda 0.5
    2: [200.0, 0.0, 300.0, 100.0],   # exact: IoU 1.0
    3: [230.0, 0.0, 330.0, 100.0],   # IoU 0.54 with its own box and 0.54 with object 2's (same category): ambiguous
    4: None,                         # the grounding reply does not parse
    6: [410.0, 10.0, 490.0, 90.0],   # IoU 0.64
}


class FakeModel:
    """load_model must return a weak-referenceable object (Beam shares it across threads)."""


class FakeStage(ModelHandler):
    """What the pipeline needs of a stage's handler (`rcforge.bootstrap.handlers.BootstrapStage`)."""

    backend, revision = "fake", None

    def __init__(self, model_id):
        super().__init__()
        self.model_id, self.template_id = model_id, f"fake.{self.stage}"


class FakeDescribe(FakeStage):
    stage = "describe"

    def load_model(self):
        return FakeModel()

    def run_inference(self, batch, model, inference_args=None):
        for request in batch:
            raw = "???" if request["object_id"] == 5 else \
                f"<desc>the {request['category']} number {request['object_id']}"
            yield PredictionResult(request, raw)

    def parse(self, raw, request):
        return raw[len("<desc>"):] if raw.startswith("<desc>") else None


class FakeGround(FakeStage):
    stage = "ground"

    def load_model(self):
        return FakeModel()

    def run_inference(self, batch, model, inference_args=None):
        for request in batch:
            box = GROUND.get(request["object_id"])
            yield PredictionResult(request, "garbage" if box is None else "<box>" + ",".join(map(str, box)))

    def parse(self, raw, request):
        if not raw.startswith("<box>"):
            return None
        return [float(v) for v in raw[len("<box>"):].split(",")]


def _ingested(tmp_path):
    images = [{"id": 1, "file_name": "a.jpg", "width": 640, "height": 480},
              {"id": 2, "file_name": "b.jpg", "width": 640, "height": 480}]
    boxes = {1: [0, 0, 100, 100], 2: [200, 0, 100, 100], 3: [260, 0, 100, 100], 4: [0, 200, 100, 100],
             5: [300, 300, 100, 100], 6: [400, 0, 100, 100], 7: [600, 400, 20, 20]}  # 7: under 2000 px^2
    anns = [{"id": i, "image_id": 1 if i <= 4 else 2, "category_id": 1 if i in (2, 3) else 2, "bbox": b,
             "iscrowd": 0} for i, b in boxes.items()]
    path = write_json(tmp_path / "o365.json", {"images": images, "annotations": anns,
                                               "categories": [{"id": 1, "name": "cup"}, {"id": 2, "name": "dog"}]})
    _, out = ingest_one(tmp_path, "objects365", {"annotations": str(path), "images": str(tmp_path)})
    return out


def _manifest(out, tmp_path):
    # ingest_one writes parts but no manifest: write the one rcforge ingest would
    parts = sorted(str(p.relative_to(out)) for p in (out / "images" / "objects365").glob("part-*.parquet"))
    (out / "manifest.json").write_text(json.dumps({"sources": {"objects365": {"parts": parts,
                                                                             "image_root": str(tmp_path)}}}))


def _run(out, lam=0.5):
    settings = BootstrapSettings(BootstrapOptions(min_area=2000, lam=lam), chunks=8)
    return run_bootstrap(str(out), FakeDescribe("fake/describe"), FakeGround("fake/ground"), settings)


def _table(out, what):
    return pa.concat_tables([pq.read_table(p) for p in sorted((out / "bootstrap" / what).glob("part-*.parquet"))])


def test_the_filter_with_known_outputs(tmp_path):
    out = _ingested(tmp_path)
    _manifest(out, tmp_path)
    summary = _run(out)
    cands = {r["object_id"]: r for r in _table(out, "candidates").to_pylist()}
    assert sorted(cands) == [1, 2, 3, 4, 5, 6]  # 7 is too small
    assert cands[1]["iou"] == 0.5 and cands[2]["other_iou"] == 0.25
    assert cands[3]["iou"] == cands[3]["other_iou"] == 7000 / 13000
    assert cands[4]["format_error"] and cands[4]["error_stage"] == "ground" and cands[4]["raw_ground"] == "garbage"
    assert cands[5]["format_error"] and cands[5]["error_stage"] == "describe" and cands[5]["description"] is None
    pairs = {r["object_id"]: r for r in _table(out, "pairs").to_pylist()}
    assert sorted(pairs) == [1, 2, 6]  # 3 ambiguous, 4 and 5 format errors
    assert pairs[1]["box"] == [0.0, 0.0, 100.0, 100.0] and pairs[1]["description"] == "the dog number 1"
    assert summary["format_errors"] == 2 and summary["pairs"] == 3


def test_refilter_equals_a_fresh_run_and_resume_after_a_kill(tmp_path):
    from rcforge.cli.main import main

    first = tmp_path / "first"
    first.mkdir()
    out = _ingested(first)
    _manifest(out, first)
    _run(out, lam=0.5)
    assert main(["refilter", str(out), "--lambda", "0.7", "--out", str(tmp_path / "refiltered")]) == 0
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    out2 = _ingested(fresh)
    _manifest(out2, fresh)
    _run(out2, lam=0.7)
    order = [("key", "ascending"), ("object_id", "ascending")]
    refiltered = pa.concat_tables([pq.read_table(p)
                                   for p in (tmp_path / "refiltered" / "bootstrap" / "pairs").glob("*")])
    assert refiltered.sort_by(order).equals(_table(out2, "pairs").sort_by(order))
    assert [r["object_id"] for r in refiltered.sort_by(order).to_pylist()] == [2]
    # a killed run: one chunk's shard never got written; the rerun redoes just those images
    before = _table(out, "candidates").sort_by(order)
    shards = sorted((out / "bootstrap" / "candidates").glob("part-*.parquet"))
    lost = pq.read_table(shards[0]).column("key").to_pylist()
    shards[0].unlink()
    summary = _run(out, lam=0.5)
    kept_keys = {k for k in before.column("key").to_pylist() if k not in lost}
    assert summary["skipped_images_already_done"] == len(kept_keys)
    assert summary["run"] == (1 if kept_keys else 0)
    after = _table(out, "candidates").sort_by(order)
    keys = ["key", "object_id", "sample", "iou", "description"]
    assert after.select(keys).equals(before.select(keys))  # nothing lost, nothing twice


def test_kept_pairs_render_as_grounding_and_grounded_caption(tmp_path):
    """A recipe's render.bootstrap_pairs makes each kept pair a referring expression of its ORIGINAL box; with
    only_paired_sources, an image without a pair is skipped and counted."""
    import yaml

    from rcforge.bootstrap.pairs import PairIndex, PairsSource
    from rcforge.cli.main import main

    out = _ingested(tmp_path)
    _manifest(out, tmp_path)
    _run(out)  # pairs: objects 1 and 2 on image 1, 6 on image 2
    pairs = {r["object_id"]: r for r in _table(out, "pairs").to_pylist()}
    source = json.loads((tmp_path / "o365.json").read_text())
    source["images"].append({"id": 3, "file_name": "c.jpg", "width": 640, "height": 480})
    source["annotations"].append({"id": 8, "image_id": 3, "category_id": 1, "bbox": [0, 0, 50, 50], "iscrowd": 0})
    annotations = write_json(tmp_path / "o365_with_3.json", source)
    recipe = tmp_path / "recipe.yaml"
    render = {"per_image": 1, "tasks": {"grounding": {}, "grounded_caption": {}, "counting": {}},
              "bootstrap_pairs": {"from": str(out)}}
    recipe.write_text(yaml.safe_dump({"sources": {"objects365": {"annotations": str(annotations),
                                                                 "images": str(tmp_path)}}, "render": render,
                                      "verify_images": "off"}))
    built = tmp_path / "built"
    assert main(["build", str(recipe), "--out", str(built), "--no-progress"]) == 0
    rows = pa.concat_tables([pq.read_table(p) for p in (built / "dialogues").glob("part-*.parquet")]).to_pylist()
    for task, asked, answered in (("grounding", 0, 1), ("grounded_caption", 1, 0)):  # conversation turn indices
        mine = {next(p for p in r["provenance"] if p.startswith("pair:")): r for r in rows if r["task"] == task}
        assert sorted(mine) == ["pair:1", "pair:2", "pair:6"]
        for oid, pair in pairs.items():
            dialogue = mine[f"pair:{oid}"]
            assert pair["description"] in dialogue["conversations"][asked]["value"]
            x1, y1, x2, y2 = pair["box"]  # the original box, printed in Pink's notation
            printed = f"[{x1 / 640:.3f},{y1 / 480:.3f},{x2 / 640:.3f},{y2 / 480:.3f}]"
            assert printed in dialogue["conversations"][answered]["value"]
            assert dialogue["key"] == pair["key"] and f"sample:{pair['sample']}" in dialogue["provenance"]
    manifest = json.loads((built / "manifest.json").read_text())
    assert manifest["build"]["bootstrap_pairs"]["pairs"] == 3
    assert manifest["build"]["bootstrap_pairs"]["refilter"]["lambda"] == 0.5
    assert {r["key"] for r in rows} >= {pairs[1]["key"], pairs[6]["key"]}
    unpaired = {r["key"] for r in rows} - {p["key"] for p in pairs.values()}
    assert unpaired  # image 3 still renders (counting) without only_paired_sources

    render["bootstrap_pairs"]["only_paired_sources"] = ["objects365"]
    recipe.write_text(yaml.safe_dump({"sources": {"objects365": {"annotations": str(annotations),
                                                                 "images": str(tmp_path)}}, "render": render,
                                      "verify_images": "off"}))
    assert main(["build", str(recipe), "--out", str(built), "--no-progress"]) == 0
    rows = pa.concat_tables([pq.read_table(p) for p in (built / "dialogues").glob("part-*.parquet")]).to_pylist()
    assert {r["key"] for r in rows} == {p["key"] for p in pairs.values()}
    ledger = json.loads((built / "manifest.json").read_text())["build"]["ledger"]
    assert ledger["images_skipped_unpaired"] == 1 and ledger["balanced"]
    assert main(["validate", str(built)]) == 0

    # the index pickles as its folder and loads again where it lands (Beam workers)
    import pickle

    index = pickle.loads(pickle.dumps(PairIndex(PairsSource(str(out)))))
    assert [r["object_id"] for r in index.refs(pairs[1]["key"])] == [1, 2] and index.refs("nope/0") == []


def test_bad_bootstrap_pairs_settings_are_named(tmp_path, capsys):
    import pytest

    from rcforge.cli.main import main
    from rcforge.core.errors import RecipeError
    from rcforge.recipe.tree import recipe_from_mapping

    out = _ingested(tmp_path)
    sources = {"objects365": {"annotations": str(tmp_path / "o365.json"), "images": str(tmp_path)}}
    with pytest.raises(RecipeError, match="unknown key 'lambda'"):
        recipe_from_mapping({"sources": sources, "render": {"bootstrap_pairs": {"from": "x", "lambda": 1}}})
    with pytest.raises(RecipeError, match="only_paired_sources: expected a list"):
        recipe_from_mapping({"sources": sources, "render": {"bootstrap_pairs": {"from": "x",
                                                                                "only_paired_sources": 3}}})
    import yaml

    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump({"sources": sources, "render": {"bootstrap_pairs": str(out)},
                                      "verify_images": "off"}))
    assert main(["build", str(recipe), "--out", str(tmp_path / "built"), "--no-progress"]) != 0
    assert f"no pairs under {out}/bootstrap/pairs" in capsys.readouterr().err


def test_backends_are_registered_by_name():
    import pytest

    from rcforge.bootstrap.options import backend, backend_names
    from rcforge.core.errors import RecipeError
    from rcforge.recipe.tree import recipe_from_mapping

    assert backend_names() == ["chat", "florence2", "kosmos2"]
    assert [backend(n).name for n in backend_names()] == backend_names()
    sources = {"objects365": {"annotations": str(SAMPLE / "objects365" / "objv2_train_reassembled_from_quotes.json"),
                              "images": str(SAMPLE)}}
    with pytest.raises(RecipeError,
                       match="bootstrap.backend: unknown bootstrap backend 'florence'; registered: chat, florence2"):
        recipe_from_mapping({"sources": sources, "bootstrap": {"backend": "florence"}})


def test_stale_bootstrap_state_is_refused_not_served(tmp_path, capsys):
    """Candidates remember what made them: a rerun with another model is refused (it would resume past the images
    done and mix two models' candidates), and a build refuses pairs decided before the candidates changed."""
    import dataclasses

    import pytest
    import yaml

    from rcforge.cli.main import main
    from rcforge.core.errors import InputError
    from rcforge.pipelines.bootstrap import BootstrapSettings, run_bootstrap
    from rcforge.pipelines.refilter import refilter

    out = _ingested(tmp_path)
    _manifest(out, tmp_path)
    settings = BootstrapSettings(BootstrapOptions(sources=("objects365",), lam=0.5))
    describe, ground = FakeDescribe("fake/model"), FakeGround("fake/model")
    run_bootstrap(str(out), describe, ground, settings)
    state = json.loads((out / "bootstrap" / "state.json").read_text())
    assert state["describe"]["model"] == "fake/model" and state["key"]
    run_bootstrap(str(out), describe, ground, settings)  # the same inputs resume
    with pytest.raises(InputError, match="were made with other describe"):
        run_bootstrap(str(out), FakeDescribe("another/model"), ground, settings)
    with pytest.raises(InputError, match="were made with other selection"):
        run_bootstrap(str(out), describe, ground, dataclasses.replace(
            settings, options=dataclasses.replace(settings.options, min_area=1.0)))
    # pairs decided at lambda 0.5 into another folder, then the candidates change (a shard is added)
    target = tmp_path / "pairs05"
    refilter(str(out), 0.5, target=str(target))
    shard = sorted((out / "bootstrap" / "candidates").glob("part-*.parquet"))[0]
    (shard.parent / ("part-999-" + shard.name.split("-", 2)[2])).write_bytes(shard.read_bytes())
    sources = {"objects365": {"annotations": str(tmp_path / "o365.json"), "images": str(tmp_path)}}
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump({"sources": sources, "render": {"bootstrap_pairs": str(target)},
                                      "verify_images": "off"}))
    assert main(["build", str(recipe), "--out", str(tmp_path / "built"), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "have changed since" in err and "rcforge refilter" in err
    refilter(str(out), 0.5, target=str(target))  # decided again: the build goes on
    assert main(["build", str(recipe), "--out", str(tmp_path / "built"), "--no-progress"]) == 0


class FlakyGround(FakeGround):
    """A grounding model whose batches raise while ``flag`` exists (a GPU out of memory, say)."""

    def __init__(self, model_id, flag):
        super().__init__(model_id)
        self.flag = str(flag)

    def run_inference(self, batch, model, inference_args=None):
        import os

        if os.path.exists(self.flag) and any(r["object_id"] == 6 for r in batch):
            raise RuntimeError("CUDA out of memory (simulated)")
        return super().run_inference(batch, model, inference_args)


def test_a_failed_batch_is_counted_apart_and_retried_by_the_next_run(tmp_path):
    """A model call that raises leaves its boxes as candidates with error stage "model", not format errors; the
    next run takes their images out of the shards and does them again, whole: the same candidates as a run that
    never failed, none twice."""
    from rcforge.bootstrap.decide import MODEL_FAILED

    flag = tmp_path / "oom"
    flag.write_text("")
    out = _ingested(tmp_path)
    _manifest(out, tmp_path)
    settings = BootstrapSettings(BootstrapOptions(min_area=2000, lam=0.5), chunks=8)
    first = run_bootstrap(str(out), FakeDescribe("fake/describe"), FlakyGround("fake/ground", flag), settings)
    rows = _table(out, "candidates").to_pylist()
    failed = [r for r in rows if r["error_stage"] == MODEL_FAILED]
    assert failed and all(r["format_error"] and "CUDA out of memory" in r["raw_ground"] for r in failed)
    assert all(r["description"] for r in failed)  # it failed after a description: kept for the record
    assert first["model_failures"] == len(failed) and first["format_errors"] == 2  # objects 4 and 5, as before
    assert 6 not in {r["object_id"] for r in _table(out, "pairs").to_pylist()}

    flag.unlink()
    second = run_bootstrap(str(out), FakeDescribe("fake/describe"), FlakyGround("fake/ground", flag), settings)
    assert second["model_failures"] == 0 and second["format_errors"] == 2 and second["pairs"] == 3
    retried = {r["key"] for r in failed}
    assert second["skipped_images_already_done"] == len({r["key"] for r in rows} - retried)
    after = _table(out, "candidates").to_pylist()
    assert sorted((r["key"], r["object_id"], r["sample"]) for r in after) == \
        sorted((r["key"], r["object_id"], r["sample"]) for r in rows)  # every box once
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    clean = _ingested(fresh)
    _manifest(clean, fresh)
    _run(clean)
    order = [("key", "ascending"), ("object_id", "ascending")]
    columns = ["key", "object_id", "description", "predicted_box", "iou", "error_stage"]
    assert _table(out, "candidates").sort_by(order).select(columns).equals(
        _table(clean, "candidates").sort_by(order).select(columns))
