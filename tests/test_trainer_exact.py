"""Qwen2-VL and Qwen2.5-VL boxes, byte for byte as Qwen's own converter writes them.

The family code below is copied from QwenLM/Qwen3-VL at 9658872, qwen-vl-finetune/tools/process_bbox.ipynb ("Convert
to Qwen2-VL training format", cell 3; "Convert to Qwen2.5-VL training format", cell 5), unchanged but for layout.
Property tests run it and rcforge's formats over pixel boxes on images from 64x64 to 4000x3000, and over the frame
settings trainers use; a build-level test reads every box printed in a sample build back against it.
"""

from __future__ import annotations

import json
import math
import os
import re

import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rcforge import rc_tasks
from rcforge.render import coordinates


# -- copied: QwenLM/Qwen3-VL@9658872 qwen-vl-finetune/tools/process_bbox.ipynb ---------------------------------------
def convert_to_qwen2vl_format(bbox, h, w):
    x1, y1, x2, y2 = bbox
    x1_new = round(x1 / w * 1000)
    y1_new = round(y1 / h * 1000)
    x2_new = round(x2 / w * 1000)
    y2_new = round(y2 / h * 1000)

    x1_new = max(0, min(x1_new, 1000))
    y1_new = max(0, min(y1_new, 1000))
    x2_new = max(0, min(x2_new, 1000))
    y2_new = max(0, min(y2_new, 1000))

    return [x1_new, y1_new, x2_new, y2_new]


def smart_resize(height: int, width: int, factor: int = 28, min_pixels: int = 56 * 56,
                 max_pixels: int = 14 * 14 * 4 * 1280):
    if height < factor or width < factor:
        raise ValueError(f"height:{height} or width:{width} must be larger than factor:{factor}")
    elif max(height, width) / min(height, width) > 200:
        raise ValueError(
            f"absolute aspect ratio must be smaller than 200, got {max(height, width) / min(height, width)}"
        )
    h_bar = round(height / factor) * factor
    w_bar = round(width / factor) * factor
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = math.floor(height / beta / factor) * factor
        w_bar = math.floor(width / beta / factor) * factor
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


def convert_to_qwen25vl_format(bbox, orig_height, orig_width, factor=28, min_pixels=56 * 56,
                               max_pixels=14 * 14 * 4 * 1280):
    new_height, new_width = smart_resize(orig_height, orig_width, factor, min_pixels, max_pixels)
    scale_w = new_width / orig_width
    scale_h = new_height / orig_height

    x1, y1, x2, y2 = bbox
    x1_new = round(x1 * scale_w)
    y1_new = round(y1 * scale_h)
    x2_new = round(x2 * scale_w)
    y2_new = round(y2 * scale_h)

    x1_new = max(0, min(x1_new, new_width - 1))
    y1_new = max(0, min(y1_new, new_height - 1))
    x2_new = max(0, min(x2_new, new_width - 1))
    y2_new = max(0, min(y2_new, new_height - 1))

    return [x1_new, y1_new, x2_new, y2_new]
# -- end of the copied code -------------------------------------------------------------------------------------


@st.composite
def image_and_box(draw):
    """An image from 64x64 to 4000x3000 and a pixel box inside it (whole or fractional pixels, edges included)."""
    w = draw(st.integers(64, 4000))
    h = draw(st.integers(64, 3000))
    xs = sorted(draw(st.lists(st.one_of(st.integers(0, w), st.floats(0, w)), min_size=2, max_size=2)))
    ys = sorted(draw(st.lists(st.one_of(st.integers(0, h), st.floats(0, h)), min_size=2, max_size=2)))
    if xs[0] == xs[1] or ys[0] == ys[1]:
        xs, ys = [0, w], [0, h]
    return (xs[0], ys[0], xs[1], ys[1]), w, h


#: trainers' frames: the processor's default, Qwen's converter default (1280 tokens), the fine-tune README's
#: (576 tokens, 16 at least), and a LLaMA-Factory-like 768x768 limit
FRAMES = [{}, {"max_pixels": 14 * 14 * 4 * 1280}, {"max_pixels": 576 * 28 * 28, "min_pixels": 16 * 28 * 28},
          {"max_pixels": 768 * 768}]


def _numbers(text: str) -> list[int]:
    return [int(v) for v in re.findall(r"-?\d+", text)]


@settings(max_examples=300, deadline=None)
@given(data=image_and_box())
def test_qwen2_vl_writes_what_qwens_converter_writes(data):
    box, w, h = data
    text = coordinates.get("qwen2_vl").box(box, w, h)
    assert _numbers(text.replace("<|box_start|>", "").replace("<|box_end|>", "")) == \
        convert_to_qwen2vl_format(box, h, w), (box, w, h, text)


@pytest.mark.parametrize("frame", FRAMES, ids=["processor", "converter", "finetune-readme", "768x768"])
@settings(max_examples=150, deadline=None)
@given(data=image_and_box())
def test_qwen2_5_vl_writes_what_qwens_converter_writes_in_the_trainers_frame(frame, data):
    box, w, h = data
    full = {"factor": 28, "min_pixels": 56 * 56, "max_pixels": coordinates.MAX_PIXELS, **frame}
    fmt = coordinates.get("qwen2_5_vl", frame)
    assert json.loads(fmt.box(box, w, h))["bbox_2d"] == convert_to_qwen25vl_format(box, h, w, **full), (box, w, h)
    rh, rw = smart_resize(h, w, **full)
    assert fmt.scale(w, h) == (rw, rh)  # the frame the trainer's processor gives the image


def test_a_recipe_sets_the_frame_and_the_manifest_records_it(tmp_path):
    """render.frame reaches the renderer and the manifest; a format without a frame refuses the key."""
    from rcforge.core.errors import RecipeError
    from rcforge.recipe.tree import render_from_mapping

    render = render_from_mapping({"coordinates": "qwen2_5_vl", "frame": {"max_pixels": 589824}}, None)
    assert render.frame == {"max_pixels": 589824}
    assert coordinates.get(render.coordinates, render.frame).params["max_pixels"] == 589824
    for bad, says in [({"coordinates": "pink", "frame": {"max_pixels": 10}}, "no frame settings"),
                      ({"coordinates": "qwen2_5_vl", "frame": {"max_pixel": 10}}, "unknown key 'max_pixel'"),
                      ({"coordinates": "qwen2_5_vl", "frame": {"max_pixels": -1}}, "render.frame.max_pixels"),
                      ({"coordinates": "qwen2_5_vl", "frame": {"min_pixels": 10**6, "max_pixels": 10}},
                       "more than max_pixels")]:
        with pytest.raises(RecipeError, match=says):
            render_from_mapping(bad, None)


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["qwen2_vl", "qwen2_5_vl"])
def test_every_box_of_a_build_is_what_qwens_converter_writes(sample_build_in, fmt):
    """The sample built in the format: each printed box equals the converter's output for the record's pixel box
    (recovered from the boxes column), or differs by one where the converter's input is a rounding tie."""
    out = sample_build_in(fmt)
    checked = 0
    for shard in sorted((out / "dialogues").glob("part-*.parquet")):
        for row in pq.read_table(shard).to_pylist():
            w, h = row["width"], row["height"]
            formatter = coordinates.get(fmt)
            assert row["frame"] == (list(formatter.scale(w, h)) if fmt == "qwen2_5_vl" else None), row["frame"]
            printed = []
            for turn in row["conversations"]:
                if fmt == "qwen2_vl":
                    printed += [[int(v) for v in m] for m in re.findall(
                        r"<\|box_start\|>\((\d+),(\d+)\),\((\d+),(\d+)\)<\|box_end\|>", turn["value"])]
                else:
                    printed += [[int(v) for v in m] for m in re.findall(
                        r'"bbox_2d": \[(\d+), (\d+), (\d+), (\d+)\]', turn["value"])]
            assert len(printed) == len(row["boxes"]), row["id"]
            for got, norm in zip(printed, row["boxes"]):
                pixels = [norm[0] * w, norm[1] * h, norm[2] * w, norm[3] * h]
                want = convert_to_qwen2vl_format(pixels, h, w) if fmt == "qwen2_vl" else \
                    convert_to_qwen25vl_format(pixels, h, w, max_pixels=coordinates.MAX_PIXELS)
                for g, e, p, side, new in zip(got, want, pixels, (w, h, w, h), _sides(formatter, w, h)):
                    exact = p / side * 1000 if fmt == "qwen2_vl" else p * new / side
                    assert g == e or (abs(g - e) == 1 and abs(exact % 1 - 0.5) < 1e-6), (row["id"], got, want)
                checked += 1
    assert checked >= 30  # every box the sample prints (45 in the default build)


def _sides(formatter, w: int, h: int) -> tuple[int, int, int, int]:
    sx, sy = formatter.scale(w, h) if hasattr(formatter, "scale") else (1000, 1000)
    return sx, sy, sx, sy


@pytest.mark.slow
def test_florence2_answers_are_its_grammar_as_its_post_processor_reads_them(sample_build, tmp_path):
    """Every Florence-2 answer that holds boxes is ``phrase<loc..>`` runs and nothing else: transformers'
    Florence2PostProcessor gives back each phrase whole (no prose taken for a phrase) with its boxes, and a
    question of a task Florence-2 has starts with its task token."""
    import dataclasses
    import types

    from transformers.models.florence2.processing_florence2 import Florence2PostProcessor

    from rcforge.pipelines.build import build
    from rcforge.recipe.tree import load_recipe

    from conftest import SAMPLE_RECIPE, copy_of

    out = copy_of(sample_build, tmp_path)
    recipe = load_recipe(str(SAMPLE_RECIPE))
    recipe = dataclasses.replace(recipe, render=dataclasses.replace(recipe.render, per_image=20, turns_per_dialogue=3,
                                                                    coordinates="florence2"))
    build(recipe, str(out), progress=False)
    post = Florence2PostProcessor(config={}, tokenizer=types.SimpleNamespace(all_special_tokens=[]))
    fmt = coordinates.get("florence2")
    answers = tokens = 0
    for shard in sorted((out / "dialogues").glob("part-*.parquet")):
        for row in pq.read_table(shard).to_pylist():
            turns, w, h = row["conversations"], row["width"], row["height"]
            for k, (question, answer) in enumerate(zip(turns[::2], turns[1::2])):
                kind = rc_tasks.get(row["turns"][k]["task"]).kind
                if fmt.task_id(kind):
                    assert question["value"].removeprefix("<image>\n").startswith(fmt.task_id(kind))
                    tokens += 1
                if "<loc_" not in answer["value"] or not fmt.parse(answer["value"], w, h):
                    continue
                found = post.parse_description_with_bboxes_from_text_and_spans(answer["value"], (w, h))
                phrases = {item["cat_name"].strip() for item in found}  # one instance a box
                segments = {t.strip() for t in re.split(r"(?:<loc_\d+>)+", answer["value"]) if t.strip()}
                assert phrases == segments and len(found) == len(fmt.parse(answer["value"], w, h)), \
                    (answer["value"], found)
                assert not any(p.lower().startswith(("it is", "there are", "the answer")) for p in phrases), answer
                assert re.fullmatch(r"(?:[^<]*(?:<loc_\d+>){4})+", answer["value"]), answer["value"]
                answers += 1
    assert answers > 50 and tokens > 5, (answers, tokens)


# -- copied: hiyouga/LLaMA-Factory@ff6d4d1 src/llamafactory/data/mm_plugin.py -----------------------------------------
# BasePlugin._preprocess_image (:218-235) and Qwen2VLPlugin._preprocess_image (:2261-2275), as one function over an
# image object; the Qwen2-VL image processor then applies smart_resize with its own limits (3136, 12845056).
def llamafactory_preprocess_image(image, image_max_pixels: int, image_min_pixels: int, **kwargs):
    if (image.width * image.height) > image_max_pixels:
        resize_factor = math.sqrt(image_max_pixels / (image.width * image.height))
        width, height = int(image.width * resize_factor), int(image.height * resize_factor)
        image = image.resize((width, height))

    if (image.width * image.height) < image_min_pixels:
        resize_factor = math.sqrt(image_min_pixels / (image.width * image.height))
        width, height = int(image.width * resize_factor), int(image.height * resize_factor)
        image = image.resize((width, height))

    if image.mode != "RGB":
        image = image.convert("RGB")

    if min(image.width, image.height) < 28:
        width, height = max(image.width, 28), max(image.height, 28)
        image = image.resize((width, height))

    if image.width / image.height > 200:
        width, height = image.height * 180, image.height
        image = image.resize((width, height))

    if image.height / image.width > 200:
        width, height = image.width, image.width * 180
        image = image.resize((width, height))

    return image
# -- end of the copied code -------------------------------------------------------------------------------------


class _Size:
    """An image as far as the preprocessing looks at it (its size and mode), without its pixels."""

    mode = "RGB"

    def __init__(self, width: int, height: int):
        self.width, self.height = width, height

    def resize(self, size):
        return _Size(*size)


@pytest.mark.parametrize("image_max_pixels", [768 * 768, 512 * 512, 1024 * 1024])
@settings(max_examples=150, deadline=None)
@given(w=st.integers(64, 4000), h=st.integers(64, 3000))
def test_the_llamafactory_frame_is_its_preprocessing_then_the_processors_resize(image_max_pixels, w, h):
    image = llamafactory_preprocess_image(_Size(w, h), image_max_pixels, 32 * 32)
    rh, rw = smart_resize(image.height, image.width, 28, 56 * 56, 16384 * 28 * 28)
    fmt = coordinates.get("qwen2_5_vl", {"image_max_pixels": image_max_pixels, "image_min_pixels": 32 * 32})
    assert fmt.scale(w, h) == (rw, rh)


def test_the_issues_example_frame():
    """A 1920x1080 image: 1036x588 in LLaMA-Factory (default image_max_pixels), 1932x1092 without it."""
    lf = coordinates.get("qwen2_5_vl", {"image_max_pixels": 768 * 768, "image_min_pixels": 32 * 32})
    assert lf.scale(1920, 1080) == (1036, 588)
    assert coordinates.get("qwen2_5_vl").scale(1920, 1080) == (1932, 1092)


@pytest.mark.slow
def test_an_export_in_another_frame_is_refused_and_the_build_for_it_exports(sample_build, tmp_path, capsys):
    """LLaMA-Factory told image_max_pixels 200000 sees the sample's 800x600 images smaller than a build for the
    processor's defaults printed them: refused, naming the render.frame to build with; a build with it exports,
    writes the settings to give LLaMA-Factory beside the file, and every box equals Qwen's converter in the frame
    LLaMA-Factory gives that image."""
    import dataclasses
    import shutil

    from rcforge import cli
    from rcforge.pipelines.build import build
    from rcforge.recipe.tree import load_recipe

    from conftest import SAMPLE_RECIPE

    out = tmp_path / "out"
    shutil.copytree(sample_build, out)
    recipe = load_recipe(str(SAMPLE_RECIPE))
    default = dataclasses.replace(recipe, render=dataclasses.replace(recipe.render, coordinates="qwen2_5_vl"))
    build(default, str(out), progress=False)
    target = tmp_path / "lf" / "data.json"
    target.parent.mkdir()
    flags = ["--image-max-pixels", "200000"]
    assert cli.main(["export", "sharegpt", str(out), str(target), *flags]) == 1
    err = capsys.readouterr().err
    assert "render.frame: {image_max_pixels: 200000, image_min_pixels: 1024}" in err and "800x600" in err, err
    assert not target.exists()

    framed = dataclasses.replace(default, render=dataclasses.replace(
        default.render, frame={"image_max_pixels": 200000, "image_min_pixels": 1024}))
    build(framed, str(out), progress=False)
    assert cli.main(["export", "sharegpt", str(out), str(target), *flags]) == 0
    notes = (target.parent / "data.training.txt").read_text()
    assert "image_max_pixels: 200000" in notes and "image_min_pixels: 1024" in notes
    items = json.loads(target.read_text())
    checked = 0
    from PIL import Image

    for item in items:
        if not os.path.exists(item["images"][0]):  # the sample bundles the images of four sources
            continue
        with Image.open(item["images"][0]) as img:
            w, h = img.size
        image = llamafactory_preprocess_image(_Size(w, h), 200000, 1024)
        rh, rw = smart_resize(image.height, image.width, 28, 56 * 56, 16384 * 28 * 28)
        for message in item["messages"]:
            for box in re.findall(r'"bbox_2d": \[(\d+), (\d+), (\d+), (\d+)\]', message["content"]):
                x1, y1, x2, y2 = map(int, box)
                assert x2 <= rw - 1 and y2 <= rh - 1 and x1 < x2 and y1 < y2, (item, rw, rh)
                checked += 1
    assert checked > 5


def test_validate_checks_the_frame_column(sample_build_in, tmp_path):
    """Each qwen2_5_vl row records the processed size its pixels refer to; a frame that is not the build's is
    reported (and a relative format's row has none)."""
    import pyarrow as pa

    from rcforge import schemas
    from rcforge.inspect.validate import validate

    from conftest import copy_of

    out = copy_of(sample_build_in("qwen2_5_vl"), tmp_path)
    shard = sorted((out / "dialogues").glob("part-*.parquet"))[0]
    rows = pq.read_table(shard).to_pylist()
    assert all(r["frame"] == list(coordinates.get("qwen2_5_vl").scale(r["width"], r["height"])) for r in rows)
    rows[0]["frame"] = [28, 28]
    pq.write_table(pa.Table.from_pylist(rows, schema=schemas.DIALOGUE), shard)
    problems = validate(str(out))
    assert any("frame [28, 28]" in p for p in problems), problems


@pytest.mark.parametrize("fmt", ["qwen2_5_vl", "shikra"])
def test_preview_frame_draws_the_image_as_the_model_sees_it(sample_build_in, tmp_path, fmt):
    """preview --frame: a Qwen2.5-VL image resized to its row's frame, a Shikra image padded to its square."""
    import base64
    import io

    from PIL import Image

    from rcforge import cli

    out = sample_build_in(fmt)
    page = tmp_path / "p.html"
    assert cli.main(["preview", str(out), "--html", str(page), "--n", "40", "--frame"]) == 0
    rows = {r["id"]: r for shard in sorted((out / "dialogues").glob("part-*.parquet"))
            for r in pq.read_table(shard).to_pylist()}
    cards = re.findall(r'data-id="([^"]+)">.*?<img src="data:image/jpeg;base64,([^"]+)"', page.read_text(), re.S)
    assert cards
    for card_id, data in cards:
        row = rows[card_id]
        size = Image.open(io.BytesIO(base64.b64decode(data))).size
        want = row["frame"] if fmt == "qwen2_5_vl" else [max(row["width"], row["height"])] * 2
        assert abs(size[0] / size[1] - want[0] / want[1]) < 0.02, (card_id, size, want)


# -- copied: hiyouga/LLaMA-Factory@ff6d4d1 src/llamafactory/data/converter.py SharegptDatasetConverter.__call__
# (:147-181, the role alignment; system and ranking branches left out: rcforge writes neither) and
# mm_plugin.py BasePlugin._validate_messages (:196-206, images only) ---------------------------------------------------
def sharegpt_align(example, dataset_attr):
    tag_mapping = {dataset_attr["user_tag"]: "user", dataset_attr["assistant_tag"]: "assistant"}
    odd_tags = (dataset_attr["user_tag"],)
    even_tags = (dataset_attr["assistant_tag"],)
    accept_tags = (odd_tags, even_tags)
    messages = example[dataset_attr["messages"]]
    aligned_messages = []
    broken_data = False
    for turn_idx, message in enumerate(messages):
        if message[dataset_attr["role_tag"]] not in accept_tags[turn_idx % 2]:
            broken_data = True
            break
        aligned_messages.append({"role": tag_mapping[message[dataset_attr["role_tag"]]],
                                 "content": message[dataset_attr["content_tag"]]})
    if len(aligned_messages) % 2 != 0:
        broken_data = True
    return None if broken_data else aligned_messages


def validate_messages(messages, images):
    num_image_tokens = 0
    for message in messages:
        num_image_tokens += message["content"].count("<image>")
    if len(images) != num_image_tokens:
        raise ValueError(f"The number of images does not match the number of <image> tokens in {messages}.")
# -- end of the copied code -------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["qwen2_vl", "qwen2_5_vl", "qwen3_vl"])
def test_a_sharegpt_export_loads_through_llamafactorys_converter(sample_build_in, tmp_path, fmt):
    """Every item of a sharegpt export, read as its dataset_info entry tells LLaMA-Factory to read it, aligns
    (no item skipped as abnormal) and has one image for its one <image> placeholder."""
    from rcforge import cli

    target = tmp_path / "data.json"
    assert cli.main(["export", "sharegpt", str(sample_build_in(fmt)), str(target)]) == 0
    entry = json.loads((tmp_path / "dataset_info.json").read_text())["data"]
    attr = {"messages": entry["columns"]["messages"], **entry["tags"]}
    items = json.loads(target.read_text())
    assert items
    for item in items:
        aligned = sharegpt_align(item, attr)
        assert aligned is not None, item
        validate_messages(aligned, item[entry["columns"]["images"]])


# -- copied: haotian-liu/LLaVA@c121f04 llava/train/train.py: preprocess_multimodal (:316-321, the image token moved to
# the front; the mm_use_im_start_end and mmtag branches left out) and preprocess_v1's role check (:420-433) -----------
def llava_sources(sources):
    DEFAULT_IMAGE_TOKEN = "<image>"
    for source in sources:
        for sentence in source:
            if DEFAULT_IMAGE_TOKEN in sentence['value']:
                sentence['value'] = sentence['value'].replace(DEFAULT_IMAGE_TOKEN, '').strip()
                sentence['value'] = DEFAULT_IMAGE_TOKEN + '\n' + sentence['value']
                sentence['value'] = sentence['value'].strip()
    roles = {"human": "USER", "gpt": "ASSISTANT"}
    conv_roles = ("USER", "ASSISTANT")
    prompts = []
    for i, source in enumerate(sources):
        if roles[source[0]["from"]] != conv_roles[0]:
            source = source[1:]
        messages = []
        for j, sentence in enumerate(source):
            role = roles[sentence["from"]]
            assert role == conv_roles[j % 2], f"{i}"
            messages.append((role, sentence["value"]))
        prompts.append(messages)
    return prompts


# -- copied: OpenGVLab/InternVL@2410d1d internvl_chat/internvl/train/internvl_chat_finetune.py multi_modal_get_item
# (:424-426: the first turn gets the image placeholder if it has none) ------------------------------------------------
def internvl_first_turn(data_item):
    if '<image>' not in data_item['conversations'][0]['value']:
        data_item['conversations'][0]['value'] = '<image>\n' + data_item['conversations'][0]['value']
    return data_item


# -- copied: QwenLM/Qwen-VL@aa00ed0 finetune.py preprocess (:130, 141-143, 150-151: the roles) ------------------------
def qwen_vl_roles(source):
    roles = {"user": "<|im_start|>user", "assistant": "<|im_start|>assistant"}
    if roles[source[0]["from"]] != roles["user"]:
        source = source[1:]
    return [roles[sentence["from"]] for sentence in source]
# -- end of the copied code -------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind, fmt", [("llava", "pink"), ("llava", "shikra"), ("llava", "minigpt_v2"),
                                       ("internvl", "internvl"), ("qwen_vl", "qwen_vl")])
def test_an_export_loads_through_its_trainers_own_dataset_code(sample_build_in, tmp_path, kind, fmt):
    """Each README pairing, read by its trainer's dataset code: every item keeps every turn in the trainer's role
    order, and its one image placeholder stands where the trainer puts the image."""
    from rcforge import cli

    target = tmp_path / ("data.jsonl" if kind == "internvl" else "data.json")
    assert cli.main(["export", kind, str(sample_build_in(fmt)), str(target)]) == 0
    text = target.read_text()
    items = [json.loads(line) for line in text.splitlines()] if kind == "internvl" else json.loads(text)
    assert items
    for item in items:
        if kind == "llava":
            (prompt,) = llava_sources([item["conversations"]])
            assert len(prompt) == len(item["conversations"]) and prompt[0][0] == "USER"
            assert sum(value.count("<image>") for _, value in prompt) == 1 and prompt[0][1].startswith("<image>\n")
            assert os.path.isabs(item["image"])
        elif kind == "internvl":
            before = item["conversations"][0]["value"]
            assert internvl_first_turn(item)["conversations"][0]["value"] == before  # the placeholder is there
            assert sum(t["value"].count("<image>") for t in item["conversations"]) == 1
        else:
            roles = qwen_vl_roles(item["conversations"])
            assert len(roles) == len(item["conversations"])
            assert roles == ["<|im_start|>user", "<|im_start|>assistant"] * (len(roles) // 2)
            images = re.findall(r"<img>(.*?)</img>", " ".join(t["value"] for t in item["conversations"]))
            assert len(images) == 1 and item["conversations"][0]["value"].startswith("Picture 1: <img>")


# -- copied: modelscope/ms-swift@3602360 swift/dataset/preprocessor/core.py RowPreprocessor._check_messages (:68-84)
# and _cast_mm_data (:87-99, images only) -----------------------------------------------------------------------------
def swift_check_messages(row):
    if 'messages' not in row:
        return
    messages = row['messages']
    assert len(messages) > 0, f'messages: {messages}'
    for message in messages:
        keys = set(message.keys()) - {'role', 'content', 'loss', 'loss_scale'}
        for key in keys:
            message.pop(key)
    for message in messages:
        role, content = message['role'], message['content']
        assert role in {'system', 'user', 'tool_call', 'tool_response', 'tool', 'assistant'}, f'message: {message}'
        assert content is not None, f'message: {message}'


def swift_cast_mm_data(row):
    for key in ['images', 'rejected_images']:
        images = row.get(key, None)
        if images is None:
            continue
        if isinstance(images, str) or (isinstance(images, list) and images and isinstance(images[0], str)):
            if isinstance(images, str):
                images = [images]
            for i, image in enumerate(images):
                images[i] = {'bytes': None, 'path': image}
            row[key] = images
        elif isinstance(images, dict):
            row[key] = [images]
# -- end of the copied code -------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["qwen2_vl", "qwen2_5_vl", "qwen3_vl"])
def test_a_swift_export_passes_ms_swifts_row_checks(sample_build_in, tmp_path, fmt):
    """ms-swift's own row checks over every item: its roles, content present, one image path for its one <image>
    tag, turns alternating user/assistant from the user."""
    from rcforge import cli

    target = tmp_path / "data.jsonl"
    assert cli.main(["export", "swift", str(sample_build_in(fmt)), str(target)]) == 0
    for line in target.read_text().splitlines():
        row = json.loads(line)
        swift_check_messages(row)
        swift_cast_mm_data(row)
        assert [m["role"] for m in row["messages"]] == ["user", "assistant"] * (len(row["messages"]) // 2)
        assert len(row["images"]) == 1 and os.path.isabs(row["images"][0]["path"])
        assert sum(m["content"].count("<image>") for m in row["messages"]) == 1
