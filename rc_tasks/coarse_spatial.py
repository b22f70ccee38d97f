"""Coarse spatial reasoning: which objects lie top-left / top-right / bottom-left / bottom-right of a reference.

The reference is an object box or, on Visual Genome, a region phrase with its box. An object is in the quadrant
when its box centre lies strictly on that side of the reference centre on both axes (top = smaller y). Boxes are
merged as near-duplicates first (see `rc_tasks.common`), and the reference's own group is never an answer. When
no object is in the quadrant, ``empty: answer`` asks the question anyway with a "none" answer (variant
``empty``), ``empty: skip`` draws another question. Runs on Visual Genome and Objects365 records.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Literal

from rcforge.core.config import number
from rcforge.rc_tasks import Mention, TaskInstance, register
from rcforge.rc_tasks.common import Group, items, merged

DIRECTIONS = ("top-left", "top-right", "bottom-left", "bottom-right")
ANSWER_FORMS = ("boxes", "names", "pairs")


@dataclass(frozen=True)
class CoarseSpatialConfig:
    """references: "object" and/or "region" (a region phrase; Visual Genome only), drawn uniformly.
    directions: the quadrants to ask about. empty: "answer" (say none) or "skip".
    answer_forms: "boxes", "names", "pairs". merge_iou: near-duplicate threshold. max_tries: draws per image.
    """

    references: tuple[Literal["object", "region"], ...] = ("object", "region")
    directions: tuple[Literal["top-left", "top-right", "bottom-left", "bottom-right"], ...] = DIRECTIONS
    empty: Literal["answer", "skip"] = "answer"
    answer_forms: tuple[Literal["boxes", "names", "pairs"], ...] = ANSWER_FORMS
    merge_iou: float = number(0.7, 0, 1, low_open=True)
    max_tries: int = number(8, 1)


def in_quadrant(direction: str, centre: tuple[float, float], ref: tuple[float, float]) -> bool:
    x, y = centre
    rx, ry = ref
    horizontal = x < rx if direction.endswith("left") else x > rx
    vertical = y < ry if direction.startswith("top") else y > ry
    return horizontal and vertical


def sample(record: dict, rng: random.Random, cfg: CoarseSpatialConfig) -> TaskInstance | None:
    """Objects in one quadrant around a reference object or region."""
    groups, _, _ = merged(record, cfg.merge_iou)
    if not groups:
        return None
    kinds = [k for k in cfg.references if k == "object" or record["regions"]]
    if not kinds:
        return None
    for _ in range(cfg.max_tries):
        kind = rng.choice(kinds)
        if kind == "object":
            ref_group = rng.choice(groups)
            reference, name, ref_box = ref_group.mention(), ref_group.name, ref_group.box
            others = [g for g in groups if g is not ref_group]
            provenance = []
        else:
            region = rng.choice(record["regions"])
            ref_box = tuple(region["box"])
            reference = Mention(boxes=(ref_box,), ids=(f"region:{region['id']}",), phrase=region["phrase"])
            name, others, provenance = region["phrase"], groups, [f"region:{region['id']}"]
        direction = rng.choice(cfg.directions)
        ref_centre = ((ref_box[0] + ref_box[2]) / 2, (ref_box[1] + ref_box[3]) / 2)
        targets: list[Group] = [g for g in others if in_quadrant(direction, g.centre, ref_centre)]
        if not targets and cfg.empty == "skip":
            continue
        form = rng.choice(cfg.answer_forms)
        question = {"reference": reference, "reference_name": name, "direction": direction}
        variant = f"{form}" if targets else "empty"
        return TaskInstance(task="coarse_spatial", variant=variant, question=question,
                            answer={"objects": items(targets), "count": len(targets), "direction": direction,
                                    "reference_name": name},
                            provenance=provenance)
    return None


_Q = {"reference", "reference_name", "direction"}
_A = {"objects", "count", "direction", "reference_name"}
SPEC = register("coarse_spatial", CoarseSpatialConfig, sample=sample,
                sample_needs=("object_categories",),
                variables={**{f: (_Q, _A) for f in ANSWER_FORMS}, "empty": (_Q, _A)})
