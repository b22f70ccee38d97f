"""Kosmos-2 prompts and reply parsers against the processor's own conversions, on strings in the form the model
emits (no model needed)."""

import random

import pytest

from rcforge.bootstrap import kosmos2

# the family's own code: transformers' processor module imports torch and the image processors (~5 s), so these
# run with the other family-code tests (test_native_formats.py) in the full suite, not in the inner loop
pytestmark = pytest.mark.slow
processing = None


@pytest.fixture(autouse=True, scope="module")
def _processing():
    global processing
    processing = pytest.importorskip("transformers.models.kosmos2.processing_kosmos2")


def test_patch_indices_match_the_processor():
    rng = random.Random(0)
    for _ in range(300):
        w, h = rng.randint(32, 2000), rng.randint(32, 2000)
        x1, x2 = sorted(rng.uniform(0, w) for _ in range(2))
        y1, y2 = sorted(rng.uniform(0, h) for _ in range(2))
        if x2 - x1 < 1 or y2 - y1 < 1:
            continue
        ours = kosmos2.patch_indices((x1, y1, x2, y2), w, h)
        assert ours == processing.coordinate_to_patch_index((x1 / w, y1 / h, x2 / w, y2 / h), 32)
        assert kosmos2.patch_box(*ours) == processing.patch_index_to_coordinate(*ours, 32)


def test_grounding_reply_parses_like_the_processor():
    raw = "<grounding><phrase> a red car</phrase><object><patch_index_0044><patch_index_0863></object> is parked"
    (_, _, boxes), = processing.clean_text_and_extract_entities_with_bboxes(raw)[1]
    ours = kosmos2.parse_grounding(raw, 640, 480)
    x1, y1, x2, y2 = boxes[0]
    assert ours == pytest.approx([x1 * 640, y1 * 480, x2 * 640, y2 * 480])
    assert kosmos2.parse_grounding("<grounding><phrase> a red car</phrase> is parked", 640, 480) is None


def test_prompts_and_description():
    prompt = kosmos2.describe_prompt((100, 50, 300, 400), 640, 480)
    ul, lr = processing.coordinate_to_patch_index((100 / 640, 50 / 480, 300 / 640, 400 / 480), 32)
    assert prompt == f"<grounding><phrase> It</phrase><object><patch_index_{ul:04d}><patch_index_{lr:04d}></object> is"
    reply = prompt + " a red car parked by the road. It has"
    assert kosmos2.parse_description(reply) == "a red car parked by the road"
    assert kosmos2.parse_description(prompt) is None
    assert kosmos2.ground_prompt("a red car") == "<grounding><phrase> a red car</phrase>"
