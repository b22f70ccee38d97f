"""Object counting: how many objects share the category of a given object (by box) or a given name.

Counts are over near-duplicate-merged boxes (see `rc_tasks.common`); categories with crowd/ignored boxes are
never asked. The default sampler flattens the answer distribution: it draws a count value uniformly among the
counts present in the image, then a category with that count. ``sampler: frequency`` draws a category in
proportion to its count instead (as drawing a random object would). Runs on Visual Genome and Objects365.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass
from typing import Literal

from rcforge.rc_tasks import TaskInstance, register
from rcforge.rc_tasks.common import all_boxes, merged

from rcforge.config import number


@dataclass(frozen=True)
class CountingConfig:
    """by: "box" (the category of a shown object) and/or "name", drawn uniformly.
    sampler: "uniform_count" or "frequency". merge_iou: near-duplicate threshold. max_count: larger counts are
    not asked (annotations of big crowds are rarely complete).
    """

    by: tuple[Literal["box", "name"], ...] = ("box", "name")
    sampler: Literal["uniform_count", "frequency"] = "uniform_count"
    merge_iou: float = number(0.7, 0, 1, low_open=True)
    max_count: int = number(20, 1)


def categories(record: dict, cfg) -> dict[str, list]:
    groups, _, ignored = merged(record, cfg.merge_iou)
    by_name = defaultdict(list)
    for g in groups:
        if g.name not in ignored:
            by_name[g.name].append(g)
    return {n: gs for n, gs in by_name.items() if len(gs) <= cfg.max_count}


def sample(record: dict, rng: random.Random, cfg: CountingConfig) -> TaskInstance | None:
    """How many objects of one category."""
    by_name = categories(record, cfg)
    if not by_name:
        return None
    names = sorted(by_name)
    if cfg.sampler == "uniform_count":
        counts = sorted({len(by_name[n]) for n in names})
        count = rng.choice(counts)
        name = rng.choice([n for n in names if len(by_name[n]) == count])
    else:
        name = rng.choices(names, weights=[len(by_name[n]) for n in names])[0]
    groups = by_name[name]
    how = rng.choice(cfg.by)
    question = {"name": name}
    if how == "box":
        question["object"] = rng.choice(groups).mention()
    return TaskInstance(task="counting", variant=f"by_{how}", question=question,
                        answer={"count": len(groups), "name": name},
                        provenance=list(all_boxes(groups).ids))


SPEC = register("counting", CountingConfig, sample=sample, sample_needs=("object_categories",),
                variables={"by_box": ({"object", "name"}, {"count", "name"}),
                           "by_name": ({"name"}, {"count", "name"})})
