"""The chat backend's prompt sets and reply parsers (pure functions), on replies in the forms real chat models
emit: LLaVA-1.5's bracketed unit box, Qwen2-VL's (x1,y1),(x2,y2) on 0..1000 once its box tokens are skipped, and
Qwen2.5-VL's JSON ``bbox_2d`` in pixels of the resized image."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rcforge.bootstrap import chat
from rcforge.core.errors import RecipeError


def request(box, width=640, height=480, **extra):
    return {"box": box, "width": width, "height": height, "category": "car", **extra}


def test_bundled_sets_load_with_distinct_content_hashed_ids():
    sets = {name: chat.load_prompts(name) for name in chat.bundled()}
    assert set(sets) == {"pink", "llava", "qwen2-vl", "qwen2.5-vl"}
    ids = [p.describe_id for p in sets.values()] + [p.ground_id for p in sets.values()]
    assert len(set(ids)) == len(ids)
    assert sets["llava"].describe_id.startswith("llava.describe#")


def test_describe_prompts_write_the_box_in_each_sets_scale():
    box = [64, 48, 320, 240]  # on a 640x480 image
    pink = chat.describe_prompt(chat.load_prompts("pink"), request(box), (640, 480))
    assert "[0.100,0.100,0.500,0.500]" in pink
    # LLaVA-1.5 pads the image to a centred 640x640 square: y moves down by 80 px
    llava = chat.describe_prompt(chat.load_prompts("llava"), request(box), (640, 480))
    assert llava == "Please provide a short description for this region: [0.10, 0.20, 0.50, 0.50]"
    qwen2 = chat.describe_prompt(chat.load_prompts("qwen2-vl"), request(box), (640, 480))
    assert "<|box_start|>(100,100),(500,500)<|box_end|>" in qwen2
    # Qwen2.5-VL: pixels of the resized image (here 644x476)
    qwen25 = chat.describe_prompt(chat.load_prompts("qwen2.5-vl"), request(box), (644, 476))
    assert '{"bbox_2d": [64, 48, 322, 238]}' in qwen25


@pytest.mark.parametrize("name, reply, expected", [
    ("llava", "[0.23, 0.45, 0.67, 0.85]", [0.23 * 640, 0.45 * 640 - 80, 0.67 * 640, 0.85 * 640 - 80]),
    ("pink", "The car is at [0.100,0.200,0.300,0.400].", [64, 96, 192, 192]),
    ("qwen2-vl", "the red car(100,200),(300,400)", [64, 96, 192, 192]),
    ("qwen2.5-vl", '```json\n[\n\t{"bbox_2d": [161, 119, 322, 238], "label": "the red car"}\n]\n```',
     [160, 120, 320, 240]),
])
def test_ground_replies_parse_to_image_pixels(name, reply, expected):
    frame = (644, 476) if name == "qwen2.5-vl" else (640, 480)
    box = chat.parse_box(chat.load_prompts(name), reply, 640, 480, frame)
    assert box == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("reply", ["I cannot find it.", "", "[0.5, 0.5, 0.5, 0.9]", "[0.1, 0.2, 0.3]",
                                   "[0.9, 0.1, 0.2, 0.5]", "[1.2, 1.3, 1.5, 1.9]"])
def test_replies_without_a_usable_box_are_format_errors(reply):
    assert chat.parse_box(chat.load_prompts("pink"), reply, 640, 480, (640, 480)) is None


def test_a_box_partly_outside_is_clipped_to_the_image():
    assert chat.parse_box(chat.load_prompts("pink"), "[0.5, 0.5, 1.2, 1.1]", 640, 480, (640, 480)) == \
        [320, 240, 640, 480]


@pytest.mark.parametrize("reply, expected", [
    ('"A man in a grey jacket."\n', "A man in a grey jacket"),
    ("\n\n  the clock on the pole  \nIt is white.", "the clock on the pole"),
    ("", None), ('""', None),
])
def test_descriptions_are_the_first_line_without_quotes(reply, expected):
    assert chat.parse_description(chat.load_prompts("pink"), reply) == expected


def test_a_description_pattern_picks_its_group():
    prompts = chat.prompts_from_mapping("x", {"describe": "{{ box }}", "ground": "{{ description }}",
                                              "description_pattern": r"Expression:\s*(.+)"}, "test")
    assert chat.parse_description(prompts, "Sure! Expression: the tall lamp") == "the tall lamp"


@given(st.sampled_from(["pink", "llava", "qwen2-vl", "qwen2.5-vl"]),
       st.integers(1, 2000), st.integers(1, 2000), st.data())
def test_a_prompted_box_reads_back_within_one_printed_unit(name, width, height, data):
    """What a describe prompt writes, a ground reply in the same notation reads back to the same pixels (within
    one unit of the printed scale), for every image shape."""
    prompts = chat.load_prompts(name)
    x1 = data.draw(st.floats(0, width - 1)); x2 = data.draw(st.floats(x1 + 1, width))  # noqa: E702
    y1 = data.draw(st.floats(0, height - 1)); y2 = data.draw(st.floats(y1 + 1, height))  # noqa: E702
    frame = (max(28, width // 2 * 2), max(28, height // 2 * 2))
    text = chat.describe_prompt(prompts, request([x1, y1, x2, y2], width, height), frame)
    found = chat.parse_box(prompts, text.replace("<|box_start|>", "").replace("<|box_end|>", ""), width, height,
                           frame)
    unit = {"pink": 0.001 * max(width, height), "llava": 0.01 * max(width, height), "qwen2-vl": max(width, height)
            / 1000, "qwen2.5-vl": max(width / frame[0], height / frame[1])}[name]
    if found is None:  # the box collapsed at the printed precision: only for boxes under one unit
        assert min(x2 - x1, y2 - y1) <= 2 * unit
        return
    assert found == pytest.approx([x1, y1, x2, y2], abs=unit)


@pytest.mark.slow  # the family's own code: transformers' image processor (a ~4 s import of torch and transformers)
def test_the_resized_frame_is_the_processors_own():
    """Qwen2.5-VL answers in pixels of the image as its processor resized it; the frame must be that size."""
    transformers = pytest.importorskip("transformers")
    import numpy as np
    from PIL import Image

    processor = transformers.Qwen2VLImageProcessor(min_pixels=56 * 56, max_pixels=28 * 28 * 64, patch_size=14,
                                                   merge_size=2, temporal_patch_size=2)
    for width, height in [(640, 480), (333, 999), (50, 60)]:
        image = Image.fromarray(np.zeros((height, width, 3), dtype=np.uint8))
        grid = processor(images=[image], return_tensors="pt")["image_grid_thw"][0].tolist()
        assert chat.resized_frame(processor, width, height) == (grid[2] * 14, grid[1] * 14)


@pytest.mark.parametrize("mapping, message", [
    ({"describe": "{{ box }} {{ colour }}", "ground": "{{ description }}"}, "unknown variable(s) colour"),
    ({"describe": "Describe this.", "ground": "{{ description }}"}, "must show the box"),
    ({"describe": "{{ box }}", "ground": "Find it."}, "must use description"),
    ({"describe": "{{ box }}", "ground": "{{ description }}", "box_pattern": r"(\d+)"}, "needs 4 group(s)"),
    ({"describe": "{{ box }}", "ground": "{{ description }}", "box_pattern": "(["}, "not a valid regular"),
    ({"describe": "{{ box }}", "ground": "{{ description }}", "box_scale": "percent"}, "box_scale"),
    ({"describe": "{{ box }}", "ground": "{{ description }}", "colour": 1}, "unknown key 'colour'"),
    ({"describe": "{{ box ", "ground": "{{ description }}"}, "x.describe"),
    ({"describe": "{{ box }}", "ground": "{{ description }}", "box_decimals": "two"}, "box_decimals"),
])
def test_bad_prompt_sets_are_refused_at_load(mapping, message):
    with pytest.raises(RecipeError, match=message.replace("(", r"\(").replace(")", r"\)")):
        chat.prompts_from_mapping("x", mapping, "x")


def test_a_prompt_set_file(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("box_scale: bins1000\ndescribe: 'What is at {{ box }}?'\nground: 'Box of {{ description }}'\n")
    prompts = chat.load_prompts(str(path))
    assert prompts.describe_id.startswith("mine.describe#")
    assert chat.describe_prompt(prompts, request([0, 0, 320, 240]), (640, 480)) == "What is at [0,0,500,500]?"
    with pytest.raises(RecipeError, match="neither a bundled set"):
        chat.load_prompts(str(tmp_path / "absent.yaml"))
