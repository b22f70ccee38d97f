"""Florence-2's region formats: prompts for describing a box and grounding a phrase, and parsers of its replies.

Pure functions, no model: the handlers (next) call them. Florence-2 writes coordinates as ``<loc_N>`` tokens,
N in 0..999 on each axis (the image quantized to 1000 bins):
- describe: ``<REGION_TO_DESCRIPTION><loc_x1><loc_y1><loc_x2><loc_y2>`` -> a phrase;
- ground: ``<CAPTION_TO_PHRASE_GROUNDING>`` + the phrase -> ``phrase<loc_..>x4`` (one or more boxes).
Quantization and dequantization follow the processor's own (tests compare with its post-processor on strings in
the form the model emits): bin = floor(x / W * 1000) clamped to 999; a bin's pixel value is (bin + 0.5) * W / 1000.
"""

from __future__ import annotations

import re

from rcforge.render import coordinates

DESCRIBE_TASK = "<REGION_TO_DESCRIPTION>"
GROUND_TASK = "<CAPTION_TO_PHRASE_GROUNDING>"
BINS = 1000

_LOC = re.compile(r"<loc_(\d+)>")
_SPECIAL = re.compile(r"</?s>|<pad>|<unk>")


def dequantize(bin_: int, size: int) -> float:
    return (bin_ + 0.5) * size / BINS


def describe_prompt(box, width: int, height: int) -> str:
    """The box's ``<loc_N>`` tokens are the ``florence2`` coordinate format's (the same quantization)."""
    return DESCRIBE_TASK + coordinates.get("florence2").box(box, width, height)


def ground_prompt(description: str) -> str:
    return GROUND_TASK + description


def parse_description(raw: str) -> str | None:
    """The phrase of a describe reply; None when nothing is left once special and location tokens are gone."""
    text = " ".join(_LOC.sub(" ", _SPECIAL.sub(" ", raw)).split())
    return text or None


def parse_grounding(raw: str, width: int, height: int) -> list[float] | None:
    """The first box (pixel xyxy) of a grounding reply; None when it holds no complete box."""
    bins = [int(b) for b in _LOC.findall(raw)]
    if len(bins) < 4 or any(b >= BINS for b in bins[:4]):
        return None
    x1, y1, x2, y2 = bins[:4]
    box = [dequantize(x1, width), dequantize(y1, height), dequantize(x2, width), dequantize(y2, height)]
    if box[2] <= box[0] or box[3] <= box[1]:
        return None
    return box
