"""Coordinate formats: each family's known strings (from its own writers), phrase tying, and the property that
every printed box parses back to within the format's tolerance of the true normalized value."""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rcforge import rc_tasks
from rcforge.core.errors import RecipeError
from rcforge.render import coordinates


def test_pink_known_values():
    f = coordinates.get("pink")
    assert f.box((200, 200, 400, 500), 900, 600) == "[0.222,0.333,0.444,0.833]"
    assert f.point_text((450, 150), 900, 600) == "[0.500,0.250]"
    # several boxes for one mention: ascending area; pink never prints the phrase
    assert f.boxes_text([(0, 0, 900, 600), (90, 120, 270, 240)], 900, 600, "cats") == \
        "[0.100,0.200,0.300,0.400] [0.000,0.000,1.000,1.000]"


def test_shikra_pads_to_a_square():
    f = coordinates.get("shikra")
    # 800x600: side 800, the short side (height) is offset by (800 - 600) // 2 = 100
    assert f.box((0, 0, 800, 600), 800, 600) == "[0.000,0.125,1.000,0.875]"
    assert f.boxes_text([(0, 0, 400, 300), (400, 300, 800, 600)], 800, 600) == \
        "[0.000,0.125,0.500,0.500;0.500,0.500,1.000,0.875]"


def test_qwen_families():
    # Qwen-VL: [0, 1000) integers, 1.0 written 999; <ref> ties the phrase; "qwen" is its alias
    assert coordinates.get("qwen") is coordinates.get("qwen_vl")
    qwen = coordinates.get("qwen_vl")
    assert qwen.box((0, 0, 450, 600), 900, 600) == "<box>(0,0),(500,999)</box>"
    assert qwen.boxes_text([(0, 0, 450, 600), (90, 60, 180, 120)], 900, 600, "dogs") == \
        "<ref>dogs</ref><box>(0,0),(500,999)</box><box>(100,100),(200,200)</box>"
    # Qwen2-VL: Qwen's converter writes 0..1000, the edge 1000
    assert coordinates.get("qwen2_vl").boxes_text([(0, 0, 450, 600)], 900, 600, "a dog") == \
        "<|object_ref_start|>a dog<|object_ref_end|><|box_start|>(0,0),(500,1000)<|box_end|>"
    # Qwen3-VL: relative 0..1000 JSON; Qwen2.5-VL: pixels of the smart-resized image (900x600 -> 896x588)
    assert coordinates.smart_resize(600, 900) == (588, 896)
    assert coordinates.get("qwen3_vl").box((0, 0, 450, 600), 900, 600) == '{"bbox_2d": [0, 0, 500, 1000]}'
    q25 = coordinates.get("qwen2_5_vl")
    assert q25.box((0, 0, 450, 600), 900, 600) == '{"bbox_2d": [0, 0, 448, 587]}'  # the edge is H' - 1
    answer = q25.json_answer([("cat", [(0, 0, 450, 600), (450, 0, 900, 300)])], 900, 600)
    assert answer.startswith("```json\n") and answer.endswith("\n```")
    assert json.loads(answer[len("```json\n"):-len("\n```")]) == [
        {"bbox_2d": [0, 0, 448, 587], "label": "cat"}, {"bbox_2d": [448, 0, 895, 294], "label": "cat"}]
    # the example: 333x500 resized to 336x504
    assert q25.box((0, 359.127, 333, 500), 333, 500) == '{"bbox_2d": [0, 362, 335, 503]}'
    # a trainer's own frame (render.frame): LLaMA-Factory-like 768x768 limit
    small = coordinates.get("qwen2_5_vl", {"max_pixels": 768 * 768})
    assert small.scale(1920, 1080) == (1008, 560) and small.params["max_pixels"] == 768 * 768


@pytest.mark.parametrize("size", [(1, 1), (10, 5000), (28, 28), (4000, 3000), (100000, 90000), (640, 480)])
def test_smart_resize_meets_qwen_conditions(size):
    h, w = size
    rh, rw = coordinates.smart_resize(h, w)
    assert rh % 28 == 0 and rw % 28 == 0
    assert rh * rw <= coordinates.MAX_PIXELS
    if h * w >= coordinates.MIN_PIXELS and max(h, w) / min(h, w) < 50:
        assert rh * rw >= coordinates.MIN_PIXELS


def test_internvl_florence2_kosmos2_and_minigpt():
    assert coordinates.get("internvl").boxes_text([(90, 60, 450, 600), (0, 0, 9, 6)], 900, 600, "cups") == \
        "<ref>cups</ref><box>[[100, 100, 500, 1000], [0, 0, 10, 10]]</box>"
    # Florence-2: floor to 1000 bins, 999 at most; the phrase directly before its locations
    assert coordinates.get("florence2").boxes_text([(0, 0, 450, 600)], 900, 600, "a cat") == \
        "a cat<loc_0><loc_0><loc_500><loc_999>"
    kosmos = coordinates.get("kosmos2")
    assert kosmos.boxes_text([(0, 0, 900, 600), (0, 0, 450, 300)], 900, 600, "two cats") == (
        "<phrase>two cats</phrase><object><patch_index_0000><patch_index_1023></delimiter_of_multi_objects/>"
        "<patch_index_0000><patch_index_0495></object>")
    # MiniGPT-v2 truncates with int() (its writers do): 0.599 * 100 -> 59, not 60
    minigpt = coordinates.get("minigpt_v2")
    assert minigpt.box((90, 60, 450, 600), 900, 600) == "{<10><10><50><100>}"
    assert minigpt.box((0, 0, 539.1, 600), 900, 600) == "{<0><0><59><100>}"
    assert minigpt.boxes_text([(90, 60, 450, 600), (0, 0, 90, 60)], 900, 600, "dogs") == \
        "<p>dogs</p> {<10><10><50><100>}<delim>{<0><0><10><10>}"
    kinds = {name: rc_tasks.get(name).kind
             for name in ("grounding", "grounded_caption", "detection", "vqa", "counting")}
    assert [minigpt.task_id(kinds[t]) for t in ("grounding", "grounded_caption", "detection", "vqa", "counting")] == \
        ["[refer]", "[identify]", "[detection]", "[vqa]", "[vqa]"]  # a question with no kind of its own: [vqa]
    assert "refer" in minigpt.untied_kinds  # its refer answers (the grounding task's kind) are the bare box


def test_unknown_format_names_the_choices():
    with pytest.raises(RecipeError,
                       match="registered: ferret, florence2, groma, internvl, kosmos2, minigpt_v2, nextchat, pink"):
        coordinates.get("llava")


@pytest.mark.parametrize("name", sorted(coordinates.FORMATTERS))
def test_every_format_records_its_parameters(name):
    params = coordinates.get(name).params
    assert json.loads(json.dumps(params)) == params and "frame" in params and "rounding" in params


sizes = st.integers(min_value=1, max_value=4000)


@st.composite
def box_and_size(draw):
    w, h = draw(sizes), draw(sizes)
    # readers keep only boxes of positive width and height (rcforge.core.boxes)
    x1 = draw(st.floats(0, w, allow_nan=False, exclude_max=True))
    x2 = draw(st.floats(x1, w, allow_nan=False, exclude_min=True))
    y1 = draw(st.floats(0, h, allow_nan=False, exclude_max=True))
    y2 = draw(st.floats(y1, h, allow_nan=False, exclude_min=True))
    return (x1, y1, x2, y2), w, h


#: the formats that print numbers (the placeholder formats' are in a side table: tests/test_placeholder_formats.py)
PRINTING = sorted(n for n, f in coordinates.FORMATTERS.items() if not f.placeholders)


@pytest.mark.parametrize("name", PRINTING)
@settings(max_examples=100, deadline=None)
@given(data=box_and_size(), phrase=st.sampled_from([None, "a red car", 'the "big" one']))
def test_printed_boxes_parse_back_within_the_formats_tolerance(name, data, phrase):
    box, w, h = data
    f = coordinates.get(name)
    (parsed,) = f.parse(f.boxes_text([box], w, h, phrase), w, h)
    truth = f.normalize(box, w, h)
    for printed, true in zip(parsed, truth):
        assert abs(printed - true) <= f.tolerance(w, h)
        assert 0.0 <= printed <= 1.0
    # no format is coarser than Kosmos-2's grid, but Qwen2.5-VL's one resized pixel on a frame 28 pixels a side
    assert f.tolerance(w, h) <= (1 / 28 if name == "qwen2_5_vl" else 1 / 32) + 1e-9


@pytest.mark.parametrize("name", PRINTING)
@settings(max_examples=50, deadline=None)
@given(data=box_and_size())
def test_points_parse_back_and_are_not_read_as_boxes(name, data):
    (x, y, _, _), w, h = data
    f = coordinates.get(name)
    text = f.point_text((x, y), w, h) + " and " + f.box((0, 0, w, h), w, h)
    assert len(f.parse(text, w, h)) == 1  # the box only
    (parsed,) = f.parse_points(text, w, h)  # the point only
    for printed, true in zip(parsed, f.normalize_point((x, y), w, h)):
        assert abs(printed - true) <= f.tolerance(w, h)


def test_the_readme_table_shows_what_each_format_prints():
    """README's family table: the example of every format is what the format writes for box (0, 0, 450, 600) of a
    900x600 image named "the cat" (in a grounding answer)."""
    from conftest import REPO

    rows = {}
    for line in (REPO / "README.md").read_text().splitlines():
        cells = [c.strip() for c in line.replace("\\|", "\x00").split("|")]
        if len(cells) > 4 and cells[2].startswith("`") and not cells[2].startswith("`coordinates`"):
            rows[cells[2].split("`")[1]] = cells[3].replace("\x00", "|")
    assert set(rows) == set(coordinates.FORMATTERS)
    for name, example in rows.items():
        f = coordinates.get(name)
        phrase = "the cat" if f.ties and "refer" not in f.untied_kinds else None
        printed = f.boxes_text([(0, 0, 450, 600)], 900, 600, phrase)
        assert printed in example, (name, printed, example)


def test_formats_key_on_task_kinds_never_on_task_names():
    """A format's task identifiers and answer forms name task kinds (`rc_tasks.KINDS`), which tasks declare: a new
    task of a known kind gets its family's conventions without an edit to rcforge/render/coordinates.py."""
    for name, fmt in coordinates.FORMATTERS.items():
        keys = set(fmt.task_ids) | set(fmt.json_kinds) | set(fmt.untied_kinds)
        assert keys <= set(rc_tasks.KINDS), (name, keys - set(rc_tasks.KINDS))
    assert {rc_tasks.get(n).kind for n in rc_tasks.names()} - {None} <= set(rc_tasks.KINDS)
