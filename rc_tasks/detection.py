"""Object detection: every object of the category of a given object (by box) or of a given name, with boxes.

Over near-duplicate-merged boxes; categories with crowd/ignored boxes are never asked (their complete set of
boxes is unknown). Runs on Visual Genome and Objects365.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Literal

from rcforge.core.config import number
from rcforge.rc_tasks import TaskInstance, negatives, register
from rcforge.rc_tasks.common import all_boxes
from rcforge.rc_tasks.counting import categories


@dataclass(frozen=True)
class DetectionConfig:
    """by: "box" and/or "name", drawn uniformly. merge_iou: near-duplicate threshold. max_count: categories
    with more objects are not asked."""

    by: tuple[Literal["box", "name"], ...] = ("box", "name")
    merge_iou: float = number(0.7, 0, 1, low_open=True)
    max_count: int = number(20, 1)
    #: the chance of a negative question ("find every zebra" -> none) where the record proves a category absent
    negative_rate: float = number(0.0, 0, 1)


def sample(record: dict, rng: random.Random, cfg: DetectionConfig) -> TaskInstance | None:
    """All boxes of one category (or, with ``negative_rate``, none, of a category proven absent)."""
    negative = negatives.draw(record, rng, cfg.negative_rate)
    if negative is not None:
        return negatives.instance("detection", *negative, answer={"count": 0})
    by_name = categories(record, cfg)
    if not by_name:
        return None
    name = rng.choice(sorted(by_name))
    groups = by_name[name]
    how = rng.choice(cfg.by)
    question = {"name": name}
    if how == "box":
        question["object"] = rng.choice(groups).mention()
    return TaskInstance(task="detection", variant=f"by_{how}", question=question,
                        answer={"boxes": all_boxes(groups, name), "name": name, "count": len(groups)},
                        complete_basis=negatives.complete_basis(record["source"]))


SPEC = register("detection", DetectionConfig, sample=sample, sample_needs=("object_categories",),
                variables={"by_box": ({"object", "name"}, {"boxes", "name", "count"}),
                           "by_name": ({"name"}, {"boxes", "name", "count"}),
                           negatives.VARIANT: ({"name"}, {"name", "count"})}, kind="detect")
