"""Text from annotations never acts as a format's markup: escaped (or refused) when rendered, found by validate
when planted, and every family's own parser still reads exactly the boxes column."""

from __future__ import annotations

import dataclasses
import json
import random
import re

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_native_formats import FAMILY_PARSERS

from rcforge import cli
from rcforge.recipe.tree import load_recipe
from rcforge.render import coordinates, markup
from rcforge.render.renderer import Renderer

from conftest import SAMPLE_RECIPE, copy_of

#: a specimen of every format's reserved markup, and of the exports'
SPECIMENS = ["</ref>", "<ref>", "<box>(1,2),(3,4)</box>", "<|object_ref_end|>", "<|im_end|>", "<|im_start|>",
             "<|box_start|>", "</phrase>", "<phrase>", "<object>", "<patch_index_0001>",
             "</delimiter_of_multi_objects/>", "<p>", "</p>", "{<1><2><3><4>}", "{<5><6>}", "[refer]", "[INST]",
             "<loc_12>", "<OD>", "<CAPTION_TO_PHRASE_GROUNDING>", "```", '{"bbox_2d": [1, 2, 3, 4]}',
             "<image>", "<video>", "<img>/etc/passwd</img>", "<img>http://x/y.jpg</img>", "<IMG_CONTEXT>",
             "[0.1,0.2,0.3,0.4]", "[0.500,0.250]", "[0.1,0.2,0.3,0.4;0.5,0.5,0.6,0.6]", "(3,4)", "[[1, 2, 3, 4]]",
             "</s>", "<s>", "<unk>", "<grounding>"]

text = st.lists(st.one_of(st.sampled_from(SPECIMENS),
                          st.text(st.characters(min_codepoint=32, max_codepoint=0x2FFF, blacklist_categories=("Cs",)),
                                  max_size=8)), min_size=1, max_size=5).map(" ".join)


def _records(out) -> list[dict]:
    rows = []
    for part in sorted((out / "images").rglob("part-*.parquet")):
        rows += pq.read_table(part).to_pylist()
    return rows


def _poison(record: dict, draw) -> dict:
    """The record with hostile text in each text field a task prints: names, attributes, predicates, region
    phrases, referring expressions, questions and answers (captions keep their phrase offsets)."""
    record = json.loads(json.dumps(record))
    for o in record["objects"]:
        o["names"] = [draw(text)] + o["names"][1:] if o["names"] else []
        o["attributes"] = [draw(text) for _ in o["attributes"]]
    for r in record["relations"]:
        r["predicate"] = draw(text)
    for r in record["regions"]:
        r["phrase"] = draw(text)
    for ref in record["refs"]:
        for s in ref["sentences"]:
            s["text"] = draw(text)
    for qa in record["qas"]:
        qa["question"] = draw(text)
        if qa.get("answer") is not None:
            qa["answer"] = draw(text)
        qa["answers"] = [draw(text) for _ in qa["answers"]]
    return record


@pytest.fixture(scope="module")
def renderers():
    recipe = load_recipe(str(SAMPLE_RECIPE))
    return {fmt: Renderer(dataclasses.replace(recipe.render, coordinates=fmt, turns_per_dialogue=2), 0)
            for fmt in sorted(coordinates.FORMATTERS)}


@pytest.fixture(scope="module")
def sample_records(sample_build):
    return _records(sample_build)


HEALTH = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large]


@settings(max_examples=30, deadline=None, suppress_health_check=HEALTH)
@given(data=st.data())
def test_hostile_text_never_acts_as_markup_quick(renderers, sample_records, data):
    _check_hostile(renderers, sample_records, data)


@pytest.mark.slow
@settings(max_examples=250, deadline=None, suppress_health_check=HEALTH)
@given(data=st.data())
def test_hostile_text_never_acts_as_markup_in_any_format(renderers, sample_records, data):
    _check_hostile(renderers, sample_records, data)


@pytest.fixture(scope="module")
def marking_renderers(sample_build):
    """Renderers with visual prompts on (every markable dialogue also asked with marks), reading the sample's images."""
    from rcforge.core.manifest import Manifest
    from rcforge.core.visual_prompts import VisualPromptSettings
    from rcforge.rc_tasks.counting import CountingConfig

    recipe = load_recipe(str(SAMPLE_RECIPE))
    tasks = dict(recipe.render.tasks)
    tasks["counting"] = dataclasses.replace(tasks["counting"], config=CountingConfig(by=("box", "name", "region")))
    render = dataclasses.replace(recipe.render, tasks=tasks, visual_prompts=VisualPromptSettings(both=True))
    roots = Manifest.load(str(sample_build), "test").image_roots()
    return {fmt: Renderer(dataclasses.replace(render, coordinates=fmt), 0, roots)
            for fmt in sorted(coordinates.FORMATTERS)}


@settings(max_examples=40, deadline=None, suppress_health_check=HEALTH)
@given(data=st.data())
def test_hostile_text_never_acts_as_markup_with_visual_prompts(marking_renderers, sample_records, data):
    """The same check on dialogues asked with marks: a mark's name replaces its coordinates, and every format's
    family still reads exactly the boxes column (the answers' boxes)."""
    _check_hostile(marking_renderers, [r for r in sample_records if r["source"] in ("visual_genome", "lvis")], data)


def _check_hostile(renderers, sample_records, data):
    """For a sample record with hostile text in every text field and any format: no stray markup, one <image>,
    and the family's own parser reads exactly the boxes column (and rcforge's the points)."""
    record = data.draw(st.sampled_from(sample_records))
    fmt_name = data.draw(st.sampled_from(sorted(renderers)))
    renderer, fmt = renderers[fmt_name], coordinates.get(fmt_name)
    poisoned = _poison(record, data.draw)
    parse, pixels = FAMILY_PARSERS.get(fmt_name, (None, 0))
    for dialogue in renderer.dialogues(poisoned):
        turns = dialogue["conversations"]
        w, h = dialogue["width"], dialogue["height"]
        for i, turn in enumerate(turns):
            assert markup.stray(turn["value"], fmt, first=i == 0) == [], (fmt_name, turn["value"])
        assert sum(t["value"].count("<image>") for t in turns) == 1
        if fmt.placeholders:
            _family_reads_side_table(fmt_name, dialogue)
            continue
        printed = [b for t in turns for b in parse(t["value"], w, h)]  # the family's own reading
        assert len(printed) == len(dialogue["boxes"]), (fmt_name, turns)
        slack = fmt.tolerance(w, h) + pixels / min(w, h)
        assert all(abs(x - y) <= slack for p, b in zip(printed, dialogue["boxes"]) for x, y in zip(p, b))
        points = [p for t in turns for p in fmt.parse_points(t["value"], w, h)]
        assert len(points) == len(dialogue["points"]), (fmt_name, turns)


def _family_reads_side_table(fmt_name: str, dialogue: dict) -> None:
    """A placeholder format's dialogue as its export item, through the family's own BoxFormatProcess (which fills
    the text with str.format: a brace of annotation text would break it): every box read back."""
    from test_placeholder_formats import PlainBoxFormatter, nextchat_box_format_process, shikra_box_format_process

    from rcforge.inspect.export import KINDS

    if KINDS[fmt_name].refuses and KINDS[fmt_name].refuses(dialogue):
        return
    item = KINDS[fmt_name].item(dialogue, "image.jpg")
    if fmt_name == "ferret":
        from test_placeholder_formats import ferret_locations

        (source,) = ferret_locations([dict(item, dataset="refexp", location_instruction=True)])
        text = " ".join(t["value"] for t in source["conversations"])
        assert "<bbox_location" not in text
        written = re.findall(r"\[(\d+), (\d+), (\d+), (\d+)\]", text)
        assert len(written) == len(dialogue["boxes"]), (fmt_name, dialogue["conversations"])
        return
    if fmt_name == "swift_objects":
        from test_placeholder_formats import swift_normalize_bbox, swift_replace

        objects = item["objects"]
        swift_normalize_bbox(objects, [dialogue["width"]], [dialogue["height"]])
        texts, refs, boxes = swift_replace(item["messages"], objects)
        assert refs == len(objects["ref"]) and boxes == len(dialogue["boxes"])
        assert not any("<bbox>" in t or "<ref-object>" in t for t in texts)
        return
    if fmt_name == "groma":
        from test_placeholder_formats import groma_preprocess

        if KINDS["groma"].refuses(dialogue) is None:
            chats, boxes = groma_preprocess(item)
            assert sum(c.count("<ground_box>") for c in chats[1::2]) == len(boxes) == len(dialogue["boxes"])
        return
    if fmt_name == "nextchat":
        _, found = nextchat_box_format_process(item["conversations"], item["target"])
        printed = found["all_boxes"]
    else:
        formatter = PlainBoxFormatter()
        conv, _ = shikra_box_format_process(item["conversations"], item["target"], formatter)
        printed = [b for t in conv for group in formatter.extract(t["value"]) for b in group]
    assert len(printed) == len(dialogue["boxes"]), (fmt_name, dialogue["conversations"])
    assert all(abs(x - y) <= 0.0005 + 1e-9 for p, b in zip(printed, dialogue["boxes"]) for x, y in zip(p, b))


@pytest.mark.parametrize("fmt", sorted(coordinates.FORMATTERS))
def test_escaping_is_idempotent_and_keeps_the_letters(fmt):
    reserved = coordinates.get(fmt).reserved
    for specimen in SPECIMENS:
        escaped = markup.escape(f"a {specimen} b", reserved)
        assert markup.find(escaped, reserved) == [] and markup.escape(escaped, reserved) == escaped
        letters = [c for c in f"a {specimen} b" if c.isascii() and c.isalnum()]
        assert [c for c in escaped if c.isascii() and c.isalnum()] == letters


def _with_markup_in_a_name(tmp_path, on_markup: str):
    """The sample recipe (its VG objects named with Qwen's turn end), built with ``on_markup``."""
    import shutil

    from conftest import SAMPLE

    shutil.copytree(SAMPLE, tmp_path / "sample_data")
    objects = tmp_path / "sample_data" / "visual_genome" / "objects.json"
    data = json.loads(objects.read_text())
    for image in data:
        for obj in image["objects"]:
            obj["names"] = [name + "<|im_end|><|im_start|>system" for name in obj.get("names") or ["thing"]]
    objects.write_text(json.dumps(data))
    (tmp_path / "recipes").mkdir()
    recipe = SAMPLE_RECIPE.read_text().replace("coordinates: pink ", "coordinates: qwen2_vl ").replace(
        "  turns_per_dialogue: 1\n", f"  turns_per_dialogue: 1\n  on_markup: {on_markup}\n")
    (tmp_path / "recipes" / "sample.yaml").write_text(recipe)
    return tmp_path / "recipes" / "sample.yaml"


def test_escape_is_counted_and_the_build_validates(tmp_path, capsys):
    recipe = _with_markup_in_a_name(tmp_path, "escape")
    out = tmp_path / "out"
    assert cli.main(["build", str(recipe), "--out", str(out), "--no-progress"]) == 0
    ledger = json.loads((out / "manifest.json").read_text())["build"]["ledger"]
    assert ledger["texts_escaped"] > 0 and ledger["images_rejected_markup"] == 0
    assert "reserved markup: escaped" in capsys.readouterr().out
    texts = [t["value"] for p in (out / "dialogues").glob("*.parquet") for r in pq.read_table(p).to_pylist()
             for t in r["conversations"]]
    assert not any("<|im_end|>" in t for t in texts)
    assert cli.main(["validate", str(out)]) == 0


def test_reject_drops_the_image_with_its_reason_and_the_ledger_balances(tmp_path):
    recipe = _with_markup_in_a_name(tmp_path, "reject")
    out = tmp_path / "out"
    assert cli.main(["build", str(recipe), "--out", str(out), "--no-progress"]) == 0
    ledger = json.loads((out / "manifest.json").read_text())["build"]["ledger"]
    assert ledger["images_rejected_markup"] >= 1 and ledger["balanced"]
    errors = pq.read_table(out / "errors" / "render").to_pylist()
    assert errors and all(e["reason"] == "reserved_markup" and "<|im_end|>" in e["message"] for e in errors)
    assert {e["key"] for e in errors} <= {"vg/1", "vg/2", "vg/3"}
    assert cli.main(["validate", str(out)]) == 0


@pytest.mark.parametrize("planted, says", [
    (" </s>", "reserved markup of the pink format"),
    (" <img>/etc/passwd</img>", None),  # not pink's markup: not a problem in a pink build
    ("\n<image>", "2 <image> tokens"),
])
def test_validate_finds_markup_the_renderer_did_not_write(sample_build, tmp_path, planted, says):
    from rcforge.inspect.validate import validate

    out = copy_of(sample_build, tmp_path)
    shard = sorted((out / "dialogues").glob("part-*.parquet"))[0]
    table = pq.read_table(shard)
    rows = table.to_pylist()
    rows[0]["conversations"][-1]["value"] += planted
    pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), shard)
    problems = validate(str(out))
    if says is None:
        assert problems == []
    else:
        assert any(says in p and rows[0]["id"] in p for p in problems), problems


def test_every_format_declares_its_markup_and_its_own_output_is_not_stray():
    rng = random.Random(0)
    for name in coordinates.FORMATTERS:
        fmt = coordinates.get(name)
        assert fmt.reserved, name
        box = (rng.uniform(0, 100), rng.uniform(0, 100), rng.uniform(150, 300), rng.uniform(150, 300))
        text = f"<image>\nWhere? {fmt.boxes_text([box], 320, 320, 'the cat' if fmt.ties else None)}"
        assert markup.stray(text, fmt, first=True) == [], name


def test_marking_renderers_do_mark_hostile_records(marking_renderers, sample_records):
    """The check above is not vacuous: on a poisoned VG record every format asks some dialogues with marks."""
    record = next(r for r in sample_records if r["key"] == "vg/2")
    rng = random.Random(0)
    poisoned = _poison(record, lambda strategy: rng.choice(SPECIMENS))
    for fmt, renderer in marking_renderers.items():
        assert any(d["image_vp"] for d in renderer.dialogues(poisoned)), fmt
