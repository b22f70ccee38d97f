"""Florence-2 prompts and reply parsers against the processor's own post-processor, on strings in the form the
model emits (no model needed)."""

import random
from types import SimpleNamespace

import pytest

from rcforge.bootstrap import florence2

# the family's own code: transformers' processor module imports torch and the image processors (~5 s), so these
# run with the other family-code tests (test_native_formats.py) in the full suite, not in the inner loop
pytestmark = pytest.mark.slow
processing = torch = None


@pytest.fixture(scope="module")
def post():
    global processing, torch
    torch = pytest.importorskip("torch")  # the processor's quantizer works on tensors (bootstrap extra)
    processing = pytest.importorskip("transformers.models.florence2.processing_florence2")
    tokenizer = SimpleNamespace(all_special_tokens=["<s>", "</s>", "<pad>", "<unk>"])
    return processing.Florence2PostProcessor({"phrase_grounding": {"banned_grounding_tokens": []},
                                              "pure_text": {}}, tokenizer)


def test_quantization_matches_the_processor(post):
    rng = random.Random(0)
    for _ in range(200):
        w, h = rng.randint(50, 4000), rng.randint(50, 4000)
        box = sorted([rng.uniform(0, w), rng.uniform(0, w)]) + sorted([rng.uniform(0, h), rng.uniform(0, h)])
        box = [box[0], box[2], box[1], box[3]]
        theirs = post.quantize(torch.tensor([box]), size=(w, h)).tolist()[0]
        prompt = florence2.describe_prompt(box, w, h)
        assert prompt == florence2.DESCRIBE_TASK + "".join(f"<loc_{b}>" for b in theirs)


def test_grounding_reply_parses_like_the_processor(post):
    raw = "</s><s>a red car<loc_100><loc_200><loc_500><loc_600><loc_10><loc_20><loc_50><loc_60></s>"
    ours = florence2.parse_grounding(raw, 800, 600)
    theirs = post(text=raw, image_size=(800, 600), parse_tasks=["phrase_grounding"])["phrase_grounding"]
    first = theirs[0]["bbox"][0]  # the processor floors to whole pixels
    assert all(abs(a - b) < 1 for a, b in zip(ours, first))
    assert ours == [80.4, 120.3, 400.4, 360.3]


@pytest.mark.parametrize("raw", ["</s><s>nothing here</s>", "<s>car<loc_1><loc_2></s>", "<loc_9><loc_9><loc_5><loc_5>"])
def test_replies_without_a_usable_box_are_format_errors(raw, post):
    assert florence2.parse_grounding(raw, 800, 600) is None


def test_description_reply(post):
    raw = "</s><s>a man in a grey jacket</s><pad><pad>"
    assert florence2.parse_description(raw) == "a man in a grey jacket"
    pure = post(text="</s><s>a man in a grey jacket</s>", image_size=(800, 600), parse_tasks=["pure_text"])
    assert florence2.parse_description(pure["pure_text"]) == "a man in a grey jacket"
    assert florence2.parse_description("</s><s></s>") is None
    assert florence2.ground_prompt("a man") == "<CAPTION_TO_PHRASE_GROUNDING>a man"
