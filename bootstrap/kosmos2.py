"""Kosmos-2's region formats: prompts for describing a box and grounding a phrase, and parsers of its replies.

Pure functions, no model. Kosmos-2 writes a box as two patch indices on a 32 x 32 grid over the image,
``<object><patch_index_UL><patch_index_LR></object>``, attached to a ``<phrase>``:
- describe (referring expression generation): ``<grounding><phrase> It</phrase><object>..</object> is`` and
  the model goes on with what the object is;
- ground: ``<grounding><phrase> the phrase</phrase>`` and the model goes on with ``<object>..</object>``.
The conversions follow the processor's own ``coordinate_to_patch_index`` and ``patch_index_to_coordinate``
(tests compare with them).
"""

from __future__ import annotations

import re

from rcforge.render.coordinates import PATCHES, patch_box, patch_indices

_OBJECT = re.compile(r"<object><patch_index_(\d{4})><patch_index_(\d{4})></object>")
_TAGS = re.compile(r"</?(?:grounding|phrase|object|s|pad|unk|image|delimiter_of_multi_objects/)>|<patch_index_\d{4}>")


def _object(ul: int, lr: int) -> str:
    return f"<object><patch_index_{ul:04d}><patch_index_{lr:04d}></object>"


def describe_prompt(box, width: int, height: int) -> str:
    return "<grounding><phrase> It</phrase>" + _object(*patch_indices(box, width, height)) + " is"


def ground_prompt(description: str) -> str:
    return f"<grounding><phrase> {description}</phrase>"


def parse_description(raw: str) -> str | None:
    """What the model says the object is: the text after the prompt's "It ... is", to the end of the sentence."""
    text = " ".join(_TAGS.sub(" ", raw).split())
    match = re.search(r"\bIt\s+is\b\s*(.*)", text)
    rest = match.group(1) if match else text
    rest = re.split(r"[.!?\n]", rest, maxsplit=1)[0].strip()
    return rest or None


def parse_grounding(raw: str, width: int, height: int) -> list[float] | None:
    """The first box of a grounding reply in pixels; None when it holds none."""
    match = _OBJECT.search(raw)
    if match is None:
        return None
    ul, lr = int(match.group(1)), int(match.group(2))
    if max(ul, lr) >= PATCHES * PATCHES:
        return None
    x1, y1, x2, y2 = patch_box(ul, lr)
    if x2 <= x1 or y2 <= y1:
        return None
    return [x1 * width, y1 * height, x2 * width, y2 * height]
