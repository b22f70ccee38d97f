"""The three bootstrap backends (Florence-2, Kosmos-2, chat) with tiny random models built from configs (no
download), through their real handlers and the real bootstrap pipeline on the sample's Visual Genome images."""

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from rcforge.bootstrap.tiny import tiny_florence2, tiny_kosmos2, tiny_llava

from conftest import SAMPLE, SAMPLE_RECIPE

pytestmark = pytest.mark.slow  # real models / a real browser: CI runs them, the inner loop does not

torch = None


@pytest.fixture(autouse=True, scope="module")
def _bootstrap_extra():
    """torch and transformers (the bootstrap extra, ~3 s to import), when a test here runs, not when the inner loop
    collects this module only to leave it out."""
    global torch
    torch = pytest.importorskip("torch")
    pytest.importorskip("transformers")


def test_florence2_handlers_run_the_pipeline_end_to_end(tmp_path):
    from rcforge.bootstrap.florence2_handlers import Florence2
    from rcforge.bootstrap.handlers import Decoding, stage_handlers
    from rcforge.bootstrap.options import BootstrapOptions
    from rcforge.cli.main import main
    from rcforge.pipelines.bootstrap import BootstrapSettings, run_bootstrap

    out = tmp_path / "out"
    assert main(["ingest", str(SAMPLE_RECIPE), "--out", str(out), "--no-progress"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    roots = {name: entry["image_root"] for name, entry in manifest["sources"].items()}
    model_dir = str(tiny_florence2(tmp_path / "tiny-florence2"))
    describe, ground = stage_handlers(Florence2, model_dir, image_roots=roots,
                                      decoding=Decoding(max_new_tokens=6, min_new_tokens=6, batch_size=4))
    # VG images 1 and 2 are bundled; up to 15 annotations per image is Pink's rule, so allow VG's density here
    # image 3 has no bundled JPEG: the run is limited to images 1 and 2
    settings = BootstrapSettings(BootstrapOptions(sources=("visual_genome",), max_annotations=100, min_area=20000),
                                 chunks=2, only_keys=frozenset({"vg/1", "vg/2"}))
    vg1 = [o for o in json.loads((SAMPLE_RECIPE.parent / "../sample_data/visual_genome/objects.json").read_text())
           if o["image_id"] in (1, 2)]
    expected = sum(1 for e in vg1 for o in e["objects"] if o["w"] * o["h"] >= 20000)
    summary = run_bootstrap(str(out), describe, ground, settings)
    cands = pa.concat_tables([pq.read_table(p) for p in (out / "bootstrap" / "candidates").glob("*.parquet")])
    assert cands.num_rows == expected == summary["candidates"] > 0
    rows = cands.to_pylist()
    assert all(r["backend"] == "florence2" and r["model_id"] == model_dir for r in rows)
    assert all(r["raw_describe"].startswith("</s>") for r in rows)  # what the real model decoded
    # a random model's replies rarely parse: each is a counted format error, never a crash
    assert summary["format_errors"] == sum(r["format_error"] and r["error_stage"] != "image" for r in rows)
    assert summary["unreadable_images"] == sum(r["error_stage"] == "image" for r in rows)


def test_kosmos2_handlers_run_the_pipeline_end_to_end(tmp_path):
    from rcforge.bootstrap.handlers import Decoding, stage_handlers
    from rcforge.bootstrap.kosmos2_handlers import Kosmos2
    from rcforge.bootstrap.options import BootstrapOptions
    from rcforge.cli.main import main
    from rcforge.pipelines.bootstrap import BootstrapSettings, run_bootstrap

    out = tmp_path / "out"
    assert main(["ingest", str(SAMPLE_RECIPE), "--out", str(out), "--no-progress"]) == 0
    roots = {n: e["image_root"] for n, e in json.loads((out / "manifest.json").read_text())["sources"].items()}
    model_dir = str(tiny_kosmos2(tmp_path / "tiny-kosmos2"))
    decoding = Decoding(max_new_tokens=6, min_new_tokens=6, batch_size=4)
    settings = BootstrapSettings(BootstrapOptions(sources=("visual_genome",), max_annotations=100, min_area=40000),
                                 chunks=2, only_keys=frozenset({"vg/1"}))
    summary = run_bootstrap(str(out), *stage_handlers(Kosmos2, model_dir, image_roots=roots, decoding=decoding),
                            settings)
    rows = pa.concat_tables([pq.read_table(p)
                             for p in (out / "bootstrap" / "candidates").glob("*.parquet")]).to_pylist()
    assert rows and summary["candidates"] == len(rows)
    assert all(r["backend"] == "kosmos2" and r["raw_describe"].startswith("<grounding><phrase> It</phrase>")
               for r in rows)
    assert summary["format_errors"] == sum(r["format_error"] and r["error_stage"] != "image" for r in rows)
    assert summary["unreadable_images"] == sum(r["error_stage"] == "image" for r in rows)


def test_bootstrap_command_with_a_tiny_florence2(tmp_path, capsys):
    from rcforge.cli.main import main

    model_dir = str(tiny_florence2(tmp_path / "tiny"))
    out = tmp_path / "out"
    assert main(["bootstrap", str(SAMPLE_RECIPE), "--out", str(out), "--model", model_dir, "--backend", "florence2",
                 "--sources", "visual_genome", "--max-annotations", "100", "--min-area", "40000",
                 "--max-new-tokens", "4", "--lambda", "0.5"]) == 0
    captured = capsys.readouterr()
    printed = json.loads(captured.out)
    stages = printed["stage_seconds"]
    assert set(stages) == {"ingest", "describe_and_ground", "refilter"} and stages["ingest"] > 0
    assert printed["seconds"] >= stages["ingest"] + stages["describe_and_ground"]
    line = [x for x in captured.err.splitlines() if x.startswith("[bootstrap]")]
    assert len(line) == 1 and "described" in line[0] and "boxes selected" in line[0], captured.err
    summary = json.loads((out / "bootstrap" / "refilter.json").read_text())
    rows = pa.concat_tables([pq.read_table(p)
                             for p in (out / "bootstrap" / "candidates").glob("*.parquet")]).to_pylist()
    assert summary["candidates"] == len(rows) > 0
    # VG image 3 has no bundled JPEG: its boxes are candidates with error_stage "image", not a crash
    missing = [r for r in rows if r["key"] == "vg/3"]
    assert missing and all(r["error_stage"] == "image" and r["format_error"] for r in missing)
    assert printed["unreadable_images"] == len(missing)  # counted by their real stage, not as format errors
    assert printed["format_errors"] == sum(r["format_error"] for r in rows) - len(missing)
    assert main(["stats", str(out)]) == 0 and main(["validate", str(out)]) == 0


def _requests_on_two_images(root):
    """Five boxes on two images (three and two), and one on an image that does not exist."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for name in ("a.jpg", "b.jpg"):
        Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(root / name)
    boxes = {"a.jpg": [[0, 0, 30, 20], [10, 5, 60, 40], [32, 24, 64, 48]], "b.jpg": [[5, 5, 50, 30], [0, 20, 40, 48]],
             "missing.jpg": [[0, 0, 10, 10]]}
    return [{"key": f"t/{name}", "source": "t", "image": name, "width": 64, "height": 48, "object_id": i,
             "category": "thing", "box": box, "sample": 0, "others": [], "description": "a red car"}
            for name in ("b.jpg", "a.jpg", "missing.jpg") for i, box in enumerate(boxes[name])]


def _preprocessed(handler, requests) -> list:
    """The handler's own preprocess step over the requests, as RunInference runs it: the missing image raises
    (RunInference's dead-letter output takes that request); the others become (request, image) pairs."""
    from rcforge.core.errors import InputError

    (load,) = handler.get_preprocess_fns()
    pairs = []
    for request in requests:
        if request["image"] == "missing.jpg":
            with pytest.raises(InputError, match="missing.jpg"):
                load(request)
            continue
        pairs.append(load(request))
    assert pairs[0][1] is load(requests[0])[1]  # one decoded image for the boxes of one image
    return pairs


@pytest.mark.parametrize("backend", ["florence2", "kosmos2"])
@pytest.mark.parametrize("stage", ["describe", "ground"])
def test_each_image_is_encoded_once_and_replies_match_the_processor_path(tmp_path, backend, stage):
    """The handlers run the vision tower once per distinct image; their replies equal the plain path's
    (processor on every prompt's image, then generate from pixels) token for token."""
    from PIL import Image

    from rcforge.bootstrap.florence2_handlers import Florence2, text_inputs
    from rcforge.bootstrap.handlers import Decoding, StageHandler
    from rcforge.bootstrap.kosmos2_handlers import Kosmos2

    build, adapter = (tiny_florence2, Florence2) if backend == "florence2" else (tiny_kosmos2, Kosmos2)
    model_dir = str(build(tmp_path / "model"))
    handler = StageHandler(adapter(stage), model_dir, image_roots={"t": str(tmp_path)},
                           decoding=Decoding(max_new_tokens=5, min_new_tokens=5))
    loaded = handler.load_model()
    requests = _requests_on_two_images(tmp_path)

    calls = []
    vision = loaded.model.get_image_features
    loaded.model.get_image_features = lambda **kw: calls.append(kw["pixel_values"].shape[0]) or vision(**kw)
    results = handler.run_inference(_preprocessed(handler, requests), loaded)
    loaded.model.get_image_features = vision
    assert calls == [2]  # one vision pass over the two readable images, not one per box

    by_box = {(r.example["image"], r.example["object_id"]): r.inference for r in results}
    assert len(by_box) == len(requests) - 1 and ("missing.jpg", 0) not in by_box
    readable = sorted((r for r in requests if r["image"] != "missing.jpg"), key=lambda r: r["image"])
    images = [Image.open(tmp_path / r["image"]).convert("RGB") for r in readable]
    prompts = [handler.adapter.prompt(r) for r in readable]
    plain = loaded.processor(text=prompts, images=images, return_tensors="pt", padding=True)
    assert torch.equal(text_inputs(loaded, prompts)["input_ids"], plain["input_ids"])
    with torch.inference_mode():
        out = loaded.model.generate(**plain, max_new_tokens=5, min_new_tokens=5, do_sample=False, num_beams=1)
    if backend == "kosmos2":
        out = out[:, plain["input_ids"].shape[1]:]
    expected = loaded.processor.batch_decode(out, skip_special_tokens=False)
    if backend == "kosmos2":
        expected = [p + e for p, e in zip(prompts, expected)]
    assert [by_box[r["image"], r["object_id"]] for r in readable] == expected


def test_chat_replies_equal_the_processors_chat_path(tmp_path):
    """The chat handlers send each box's chat through the processor's own chat template and decode the new tokens;
    a batch mixing two images and a missing one gives what a hand-written loop over the same chats gives."""
    from PIL import Image

    from rcforge.bootstrap import chat
    from rcforge.bootstrap.chat_handlers import Chat
    from rcforge.bootstrap.handlers import Decoding, StageHandler

    model_dir = str(tiny_llava(tmp_path / "llava"))
    prompts = chat.load_prompts("llava")
    for stage in ("describe", "ground"):
        handler = StageHandler(Chat(stage, prompts), model_dir, image_roots={"t": str(tmp_path)},
                               decoding=Decoding(max_new_tokens=4, min_new_tokens=4))
        loaded = handler.load_model()
        requests = _requests_on_two_images(tmp_path)
        results = {(r.example["image"], r.example["object_id"]): r
                   for r in handler.run_inference(_preprocessed(handler, requests), loaded)}
        assert ("missing.jpg", 0) not in results
        for r in requests:
            if r["image"] == "missing.jpg":
                continue
            text = handler.adapter.prompt({**r, "frame": [r["width"], r["height"]]})
            assert (stage == "describe") == ("[0." in text) and (stage == "ground") == ("a red car" in text)
            chat_text = loaded.processor.apply_chat_template(chat.messages(prompts, text), add_generation_prompt=True,
                                                             tokenize=False)
            inputs = loaded.processor(text=[chat_text], images=[Image.open(tmp_path / r["image"]).convert("RGB")],
                                      return_tensors="pt")
            with torch.inference_mode():
                out = loaded.model.generate(**inputs, max_new_tokens=4, min_new_tokens=4, do_sample=False)
            expected = loaded.processor.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
            assert results[r["image"], r["object_id"]].inference == expected
            assert results[r["image"], r["object_id"]].example["frame"] == [64, 48]


def test_bootstrap_with_the_chat_backend_from_the_recipes_bootstrap_section(tmp_path, capsys):
    """`rcforge bootstrap RECIPE --out OUT` with no flags: model, backend, prompts and selection come from the
    recipe; a flag overrides one key."""
    import yaml

    from rcforge.cli.main import main

    model_dir = str(tiny_llava(tmp_path / "llava"))
    vg = SAMPLE / "visual_genome"
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump({
        "sources": {"visual_genome": {"root": str(vg), "images": str(vg / "images"), "image_layout": "flat",
                                      "verify_images": "off"}},  # image 3's file is not bundled
        "bootstrap": {"model": model_dir, "backend": "chat", "chat_prompts": "llava", "sources": ["visual_genome"],
                      "max_annotations": 100, "min_area": 40000, "max_new_tokens": 4, "lambda": 0.3,
                      "batch_size": 4}}))
    out = tmp_path / "out"
    assert main(["bootstrap", str(recipe), "--out", str(out)]) == 0
    rows = pa.concat_tables([pq.read_table(p)
                             for p in (out / "bootstrap" / "candidates").glob("*.parquet")]).to_pylist()
    objects = json.loads((vg / "objects.json").read_text())
    expected = sum(1 for e in objects for o in e["objects"] if o["w"] * o["h"] >= 40000)
    assert len(rows) == expected > 0
    assert {r["backend"] for r in rows} == {"chat"} and {r["model_id"] for r in rows} == {model_dir}
    assert {r["describe_template"].split("#")[0] for r in rows} == {"llava.describe"}
    assert {r["ground_template"].split("#")[0] for r in rows} == {"llava.ground"}
    readable = [r for r in rows if r["error_stage"] != "image"]
    assert readable and all(r["raw_describe"] is not None for r in readable)
    summary = json.loads((out / "bootstrap" / "refilter.json").read_text())
    assert summary["lambda"] == 0.3 and summary["candidates"] == len(rows)
    assert summary["format_errors"] == sum(r["format_error"] and r["error_stage"] != "image" for r in rows)
    assert summary["unreadable_images"] == sum(r["error_stage"] == "image" for r in rows)

    # a flag wins over the recipe's key; the rerun skips every image already done
    capsys.readouterr()
    assert main(["bootstrap", str(recipe), "--out", str(out), "--lambda", "0.7"]) == 0
    printed = capsys.readouterr().out
    summary = json.loads(printed[printed.index("{"):])
    assert summary["lambda"] == 0.7 and summary["skipped_images_already_done"] == len({r["key"] for r in rows})


@pytest.mark.parametrize("section, message", [
    ({"backend": "gpt"}, "bootstrap.backend"),
    ({"lambda": 1.5}, r"bootstrap.lambda: expected a number within \[0, 1\], got 1.5"),
    ({"lam": 0.5}, r"bootstrap: unknown key 'lam'; allowed keys: .*, lambda, "),  # the field's one name
    ({"batch_size": 0}, "bootstrap.batch_size: expected an integer >= 1, got 0"),
    ({"temperature": 0}, "bootstrap.temperature: expected a number > 0, got 0"),
    ({"backend": "chat", "chat_prompts": "nope.yaml"}, "neither a bundled set"),
    ({"samples": "two"}, "bootstrap.samples: expected an integer"),
])
def test_bad_bootstrap_sections_name_the_key(tmp_path, section, message):
    from rcforge.core.errors import RecipeError
    from rcforge.recipe.tree import recipe_from_mapping

    vg = SAMPLE / "visual_genome"
    with pytest.raises(RecipeError, match=message):
        recipe_from_mapping({"sources": {"visual_genome": {"root": str(vg), "images": str(vg / "images")}},
                             "bootstrap": section},
                            base_dir=str(tmp_path))


def test_extra_samples_are_drawn_under_their_own_seed_whatever_the_batch(tmp_path):
    """With several descriptions per box, sample 0 is the greedy one and samples 1.. are sampled under a seed
    of (run seed, image, object, sample): the same replies in any batch and order; a new run seed, new ones."""
    from rcforge.bootstrap.florence2_handlers import Florence2
    from rcforge.bootstrap.handlers import Decoding, StageHandler

    handler = StageHandler(Florence2("describe"), str(tiny_florence2(tmp_path / "model")),
                           image_roots={"t": str(tmp_path)}, decoding=Decoding(max_new_tokens=6, min_new_tokens=6))
    loaded = handler.load_model()
    base = [r for r in _requests_on_two_images(tmp_path) if r["image"] != "missing.jpg"]
    requests = [{**r, "sample": s, "seed": 7} for r in base[:2] for s in range(3)] + [{**r, "seed": 7}
                                                                                     for r in base[2:]]

    (load,) = handler.get_preprocess_fns()

    def replies(batches):
        return {(r.example["image"], r.example["object_id"], r.example["sample"]): r.inference
                for b in batches for r in handler.run_inference([load(r) for r in b], loaded)}

    together = replies([requests])
    assert together == replies([requests[::-1]]) == replies([requests[i:i + 2] for i in range(0, len(requests), 2)])
    greedy = replies([[{**r, "sample": 0} for r in base[:2]]])
    assert all(together[box] == raw for box, raw in greedy.items()) and len(greedy) == 2
    first = base[0]["image"], base[0]["object_id"]
    assert len({together[(*first, s)] for s in range(3)}) == 3  # three different descriptions of one box
    reseeded = replies([[{**r, "seed": 8} for r in requests]])
    assert reseeded[(*first, 1)] != together[(*first, 1)] and reseeded[(*first, 0)] == together[(*first, 0)]


def test_a_model_shared_across_processes_gives_the_same_candidates(tmp_path):
    """share_model_across_processes (the default on a GPU): Beam keeps one model for all worker processes and the
    handlers call into it through a proxy; the candidates equal those of a model per process."""
    from rcforge.bootstrap.chat_handlers import Chat
    from rcforge.bootstrap.handlers import Decoding, stage_handlers
    from rcforge.bootstrap.options import BootstrapOptions
    from rcforge.cli.main import main
    from rcforge.pipelines.bootstrap import BootstrapSettings, run_bootstrap

    model_dir = str(tiny_llava(tmp_path / "llava"))
    tables = []
    for shared in (False, True):
        out = tmp_path / f"out-{shared}"
        assert main(["ingest", str(SAMPLE_RECIPE), "--out", str(out), "--no-progress"]) == 0
        roots = {n: e["image_root"] for n, e in json.loads((out / "manifest.json").read_text())["sources"].items()}
        decoding = Decoding(max_new_tokens=4, min_new_tokens=4, batch_size=3)
        settings = BootstrapSettings(BootstrapOptions(sources=("visual_genome",), max_annotations=100,
                                                      min_area=30000, samples=2),
                                     chunks=2, only_keys=frozenset({"vg/1", "vg/2"}))
        describe, ground = stage_handlers(lambda stage: Chat(stage, "llava"), model_dir, image_roots=roots,
                                          decoding=decoding, share_model_across_processes=shared)
        run_bootstrap(str(out), describe, ground, settings)
        table = pa.concat_tables([pq.read_table(p) for p in (out / "bootstrap" / "candidates").glob("*.parquet")])
        tables.append(table.sort_by([("key", "ascending"), ("object_id", "ascending"), ("sample", "ascending")]))
    assert tables[0].num_rows > 0 and tables[0].equals(tables[1])
    rows = tables[0].to_pylist()
    by_box = {}
    for r in rows:
        by_box.setdefault((r["key"], r["object_id"]), []).append(r["raw_describe"])
    assert all(len(v) == 2 for v in by_box.values())
    assert any(a != b for a, b in by_box.values())  # the second description of a box is sampled, not a copy


def test_an_adapter_that_cannot_reach_a_shared_model_is_named_at_once():
    """With a model shared across processes (the default on a GPU), each batch sends the adapter to the model's
    process; a class defined inside a function does not pickle and would fail every batch into the dead letters
    (the GPU bench once did). The handler refuses it when it is made, naming the class and the way out."""
    from rcforge.bootstrap.florence2_handlers import Florence2
    from rcforge.bootstrap.handlers import StageHandler
    from rcforge.core.errors import RecipeError

    class Local(Florence2):
        pass

    with pytest.raises(RecipeError, match="Local adapter cannot be sent.*top level of a module"):
        StageHandler(Local("describe"), "m", image_roots={}, share_model_across_processes=True)
    StageHandler(Local("describe"), "m", image_roots={}, share_model_across_processes=False)  # in process: fine
    StageHandler(Florence2("describe"), "m", image_roots={}, share_model_across_processes=True)
