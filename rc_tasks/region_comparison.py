"""Region comparison: which of two objects shown by their regions takes up more of the image.

Two regions in one question: with coordinates ("the object at [..] or the one at [..]?") or, with visual prompts,
with marks ("the one in region 1 or the one in region 2?", `rcforge.core.visual_prompts`). The answer is true by
construction: both objects have masks and one mask covers at least ``mask_ratio`` times the other's pixels, or,
where either has none, one box is at least ``box_ratio`` times the other's area (a box holds more background than
a mask, hence the larger margin). Pairs closer in size are not asked; crowd and ignored boxes never are, nor two
boxes that mostly overlap (IoU above ``max_iou``: the same thing annotated twice, on Visual Genome). Runs on every
source with object boxes (Visual Genome, Objects365, LVIS).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from rcforge.core.boxes import iou
from rcforge.core.config import number
from rcforge.rc_tasks import Mention, TaskInstance, register
from rcforge.rc_tasks.common import category


@dataclass(frozen=True)
class RegionComparisonConfig:
    """mask_ratio, box_ratio: how much larger the larger object must be (by mask pixels where both have a mask,
    else by box area). max_iou: two boxes overlapping more than this are not compared. tries: pairs drawn before
    the image is given up."""

    mask_ratio: float = number(1.5, 1)
    box_ratio: float = number(2.0, 1)
    max_iou: float = number(0.5, 0, 1)
    tries: int = number(20, 1)


def _size(obj: dict, by_mask: bool) -> float:
    if by_mask:
        return float(obj["area"])
    x1, y1, x2, y2 = obj["box"]
    return (x2 - x1) * (y2 - y1)


def _mention(obj: dict) -> Mention:
    return Mention(boxes=(tuple(obj["box"]),), ids=(f"object:{obj['id']}",), phrase=category(obj))


def sample(record: dict, rng: random.Random, cfg: RegionComparisonConfig) -> TaskInstance | None:
    """Two objects of clearly different sizes, in a random order; the answer names the larger."""
    objects = sorted((o for o in record["objects"] if not o["ignore"] and not o.get("iscrowd")), key=lambda o: o["id"])
    if len(objects) < 2:
        return None
    for _ in range(cfg.tries):
        first, second = rng.sample(objects, 2)
        if iou(first["box"], second["box"]) > cfg.max_iou:
            continue
        by_mask = bool(first.get("mask") and second.get("mask") and first.get("area") and second.get("area"))
        a, b = _size(first, by_mask), _size(second, by_mask)
        if min(a, b) <= 0 or max(a, b) / min(a, b) < (cfg.mask_ratio if by_mask else cfg.box_ratio):
            continue
        larger = first if a > b else second
        return TaskInstance(
            task="region_comparison", variant="larger",
            question={"first": _mention(first), "second": _mention(second)},
            answer={"which": "first" if larger is first else "second", "name": category(larger),
                    "first_name": category(first), "second_name": category(second)},
            provenance=[f"object:{first['id']}", f"object:{second['id']}", f"size_by:{'mask' if by_mask else 'box'}"])
    return None


ANSWER_VARS = {"which", "name", "first_name", "second_name"}
SPEC = register("region_comparison", RegionComparisonConfig, sample=sample, sample_needs=("object_categories",),
                variables={"larger": ({"first", "second"}, ANSWER_VARS),
                           "larger_marked": ({"first", "second"}, ANSWER_VARS)})
