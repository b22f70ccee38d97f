"""Round trips through each family's own reading of its format: build the sample in every format (per_image 20,
three turns a dialogue, so every box-printing task appears), parse every printed box the way the family does, and
compare with the ``boxes`` column within the format's quantization.

The parsers follow each family's code: Florence-2 and Kosmos-2 through transformers' own post-processing
(`Florence2PostProcessor`, `clean_text_and_extract_entities_with_bboxes`); Qwen2.5-VL / Qwen3-VL by stripping the
```json fence and loading the list, as QwenLM/Qwen3-VL evaluation/ODinW-13/run_odinw.py:217-240 does; InternVL with
its demo's ``<box>[[..]]</box>`` reading (streamlit_demo/app.py:195-211); Qwen-VL, Qwen2-VL and MiniGPT-v2 with the
box patterns their tokenizers / demo_v2.py read.
"""

from __future__ import annotations

import ast
import dataclasses
import json
import re
import types

import pyarrow.parquet as pq
import pytest

from rcforge.inspect.validate import validate
from rcforge.recipe.tree import load_recipe
from rcforge.render import coordinates

from conftest import SAMPLE_RECIPE, copy_of

pytestmark = pytest.mark.slow

BOX_TASKS = {"grounding", "detection", "relation", "coarse_spatial", "counting", "grounded_caption",
             "flickr_grounded_caption", "pointqa", "attribute", "referring_segmentation", "region_comparison"}
#: the formats that print numbers (the placeholder formats are read by their families' loaders in
#: tests/test_placeholder_formats.py)
PRINTING = sorted(n for n, f in coordinates.FORMATTERS.items() if not f.placeholders)


def _florence2(text: str, w: int, h: int) -> list:
    from transformers.models.florence2.processing_florence2 import Florence2PostProcessor

    post = Florence2PostProcessor(config={}, tokenizer=types.SimpleNamespace(all_special_tokens=[]))
    found = post.parse_description_with_bboxes_from_text_and_spans(text, (w, h), allow_empty_phrase=True)
    return [(b[0] / w, b[1] / h, b[2] / w, b[3] / h) for b in (i["bbox"] for i in found)]


def _kosmos2(text: str, w: int, h: int) -> list:
    from transformers.models.kosmos2.processing_kosmos2 import clean_text_and_extract_entities_with_bboxes

    _, entities = clean_text_and_extract_entities_with_bboxes(text)
    return [box for _, _, boxes in entities for box in boxes]


def _qwen_json(scale):
    def parse(text: str, w: int, h: int) -> list:
        sx, sy = scale(w, h)
        found = []
        for block in re.findall(r"```json\n(.*?)\n```", text, re.S):  # an answer: the fenced list
            found += [o["bbox_2d"] for o in json.loads(block) if "bbox_2d" in o]
        rest = re.sub(r"```json\n.*?\n```", "", text, flags=re.S)
        decoder, at = json.JSONDecoder(), 0
        while True:  # boxes inside other text: JSON objects or lists of them, read as JSON (a label may hold braces)
            starts = [i for i in (rest.find("{", at), rest.find("[{", at)) if i >= 0]
            if not starts:
                break
            start = min(starts)
            try:
                value, end = decoder.raw_decode(rest, start)
            except ValueError:  # braces in prose that are no JSON: not a box
                at = start + 1
                continue
            items = value if isinstance(value, list) else [value]
            found += [o["bbox_2d"] for o in items if isinstance(o, dict) and "bbox_2d" in o]
            at = end
        return [(x1 / sx, y1 / sy, x2 / sx, y2 / sy) for x1, y1, x2, y2 in found]
    return parse


def _internvl(text: str, w: int, h: int) -> list:
    return [tuple(v / 1000 for v in box) for group in re.findall(r"<box>\s*(\[\[.*?\]\])\s*</box>", text)
            for box in ast.literal_eval(group)]


def _grid(pattern: str, bins: int):
    def parse(text: str, w: int, h: int) -> list:
        return [tuple(int(v) / bins for v in m) for m in re.findall(pattern, text)]
    return parse


def _brackets(text: str, w: int, h: int) -> list:
    return [tuple(float(v) for v in part.split(",")) for group in re.findall(r"\[([\d.,;]+)\]", text)
            for part in group.split(";") if part.count(",") == 3]


def _resized(w: int, h: int) -> tuple[int, int]:
    rh, rw = coordinates.smart_resize(h, w)
    return rw, rh


FAMILY_PARSERS = {
    "pink": (_brackets, 0.0),
    "shikra": (_brackets, 0.0),
    "qwen_vl": (_grid(r"<box>\((\d+),(\d+)\),\((\d+),(\d+)\)</box>", 1000), 0.0),
    "qwen2_vl": (_grid(r"<\|box_start\|>\((\d+),(\d+)\),\((\d+),(\d+)\)<\|box_end\|>", 1000), 0.0),
    "qwen2_5_vl": (_qwen_json(_resized), 0.0),
    "qwen3_vl": (_qwen_json(lambda w, h: (1000, 1000)), 0.0),
    "internvl": (_internvl, 0.0),
    "florence2": (_florence2, 1.0),  # the post-processor returns whole pixels: one more pixel of slack
    "kosmos2": (_kosmos2, 0.0),
    "minigpt_v2": (_grid(r"\{<(\d+)><(\d+)><(\d+)><(\d+)>\}", 100), 0.0),
}


def test_every_format_has_a_family_parser():
    assert set(FAMILY_PARSERS) == set(PRINTING)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("fmt", PRINTING)
def test_family_parsers_read_back_the_boxes_column(sample_build, tmp_path, fmt, seed):
    from rcforge.pipelines.build import build

    out = copy_of(sample_build, tmp_path)
    recipe = load_recipe(str(SAMPLE_RECIPE))
    recipe = dataclasses.replace(recipe, seed=seed, render=dataclasses.replace(
        recipe.render, per_image=20, turns_per_dialogue=3, coordinates=fmt))
    manifest = build(recipe, str(out), progress=False)
    assert manifest.build.coordinates == fmt and manifest.build.coordinate_params
    parse, pixels = FAMILY_PARSERS[fmt]
    formatter = coordinates.get(fmt)
    tasks_with_boxes: set[str] = set()
    for shard in sorted((out / "dialogues").glob("part-*.parquet")):
        for row in pq.read_table(shard).to_pylist():
            w, h = row["width"], row["height"]
            printed = [b for turn in row["conversations"] for b in parse(turn["value"], w, h)]
            assert len(printed) == len(row["boxes"]), (row["id"], row["conversations"])
            slack = formatter.tolerance(w, h) + pixels / min(w, h)
            for p, b in zip(printed, row["boxes"]):
                assert all(abs(x - y) <= slack for x, y in zip(p, b)), (row["id"], p, b)
            # points: only Qwen2.5-VL / Qwen3-VL have their own ({"point_2d": ...}); the others' are rcforge's
            points = [p for turn in row["conversations"] for p in formatter.parse_points(turn["value"], w, h)]
            assert len(points) == len(row["points"]), (row["id"], row["conversations"])
            for p, q in zip(points, row["points"]):
                assert all(abs(x - y) <= formatter.tolerance(w, h) for x, y in zip(p, q)), (row["id"], p, q)
            if row["boxes"] or row["points"]:
                tasks_with_boxes.update(t["task"] for t in row["turns"])
    assert tasks_with_boxes == BOX_TASKS & set(recipe.render.tasks)  # every task of the sample that prints boxes
    assert validate(str(out)) == []
