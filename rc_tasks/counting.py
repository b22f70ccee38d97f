"""Object counting: how many objects share the category of a given object (by box) or a given name, or lie in an area.

Counts are over near-duplicate-merged boxes (see `rc_tasks.common`); categories with crowd/ignored boxes are
never asked. The default sampler flattens the answer distribution: it draws a count value uniformly among the
counts present in the image, then a category with that count. ``sampler: frequency`` draws a category in
proportion to its count instead (as drawing a random object would). Runs on Visual Genome, Objects365 and LVIS.

A count is only as true as the labels: each turn records whether its count is proven (``count_proven``), which
holds when the source boxes every instance of a labelled category (`rcforge.readers.LABELS`: LVIS; Objects365
only with ``trust_claimed``, its exhaustiveness being claimed, not verified). Visual Genome's labels are what
annotators chose to mark, so its counts are lower bounds ("how many tree trunks? 1" on an image with four):
``proven_only`` restricts counting to proven counts. Names of stuff, not things ("sky", "water"), are never
counted (`rcforge.render.english.countable`).
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass
from typing import Literal

from rcforge import readers
from rcforge.core.config import number
from rcforge.rc_tasks import Mention, TaskInstance, negatives, register
from rcforge.rc_tasks.common import all_boxes, merged
from rcforge.render import english


@dataclass(frozen=True)
class CountingConfig:
    """by: "box" (the category of a shown object), "name", and/or "region" (the objects of a category inside a
    shown area: one box around some of them, drawn so that every object of that category lies wholly inside it
    or wholly outside; at most ``max_region`` of the image), drawn uniformly.
    sampler: "uniform_count" or "frequency". merge_iou: near-duplicate threshold. max_count: larger counts are
    not asked (annotations of big crowds are rarely complete).
    """

    by: tuple[Literal["box", "name", "region"], ...] = ("box", "name")
    sampler: Literal["uniform_count", "frequency"] = "uniform_count"
    merge_iou: float = number(0.7, 0, 1, low_open=True)
    max_count: int = number(20, 1)
    #: ask only counts proven by exhaustive labels (no counting on Visual Genome, nor Objects365 unless trusted)
    proven_only: bool = False
    #: count the labels a dataset claims exhaustive without verification (Objects365) as proof
    trust_claimed: bool = False
    #: the chance of a negative question ("how many zebras?" -> 0) where the record proves a category absent
    negative_rate: float = number(0.0, 0, 1)
    #: by "region": the largest share of the image the area may cover
    max_region: float = number(0.6, 0, 1, low_open=True)


def proven(source: str, cfg: CountingConfig) -> bool:
    """Whether counts over ``source``'s labels are proven (see the module docstring)."""
    labels = readers.get(source).labels
    return labels == "exhaustive" or (labels == "claimed" and cfg.trust_claimed)


def categories(record: dict, cfg) -> dict[str, list]:
    groups, _, ignored = merged(record, cfg.merge_iou)
    by_name = defaultdict(list)
    for g in groups:
        if g.name not in ignored and english.countable(g.name):
            by_name[g.name].append(g)
    return {n: gs for n, gs in by_name.items() if len(gs) <= cfg.max_count}


def sample(record: dict, rng: random.Random, cfg: CountingConfig) -> TaskInstance | None:
    """How many objects of one category (or, with ``negative_rate``, of a category proven absent: 0)."""
    negative = negatives.draw(record, rng, cfg.negative_rate)
    if negative is not None:
        return negatives.instance("counting", *negative, answer={"count": 0}, count_proven=True)
    is_proven = proven(record["source"], cfg)
    if cfg.proven_only and not is_proven:
        return None
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
    question, count = {"name": name}, len(groups)
    if how == "box":
        question["object"] = rng.choice(groups).mention()
    elif how == "region":
        found = region(groups, record["width"], record["height"], rng, cfg.max_region)
        if found is None:
            return None
        question["region"], inside = found
        count = len(inside)
        groups = inside
    return TaskInstance(task="counting", variant=f"by_{how}", question=question,
                        answer={"count": count, "name": name},
                        provenance=list(all_boxes(groups).ids), count_proven=is_proven,
                        complete_basis=negatives.complete_basis(record["source"]))


#: tries at an area around some objects of one category that cuts none of the others
REGION_TRIES = 8


def region(groups: list, width: int, height: int, rng: random.Random, max_share: float):
    """(a mention of an area, the groups wholly inside it) or None: the box around a random subset of the
    category's groups, grown by a margin, kept when no group of the category is cut by its edge (each lies wholly
    inside or wholly outside) and it covers at most ``max_share`` of the image."""
    for _ in range(REGION_TRIES):
        chosen = rng.sample(groups, rng.randint(1, len(groups)))
        x1, y1 = min(g.box[0] for g in chosen), min(g.box[1] for g in chosen)
        x2, y2 = max(g.box[2] for g in chosen), max(g.box[3] for g in chosen)
        pad = 0.02 * min(width, height)
        box = (max(0.0, x1 - pad), max(0.0, y1 - pad), min(float(width), x2 + pad), min(float(height), y2 + pad))
        if (box[2] - box[0]) * (box[3] - box[1]) > max_share * width * height:
            continue
        inside = [g for g in groups if _within(g.box, box)]
        if all(g in inside or _apart(g.box, box) for g in groups):
            ident = "area:" + ",".join(f"{v:.0f}" for v in box)
            return Mention(boxes=(box,), ids=(ident,), phrase=None), inside
    return None


def _within(inner, outer) -> bool:
    return outer[0] <= inner[0] and outer[1] <= inner[1] and inner[2] <= outer[2] and inner[3] <= outer[3]


def _apart(a, b) -> bool:
    return a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1]


SPEC = register("counting", CountingConfig, sample=sample, sample_needs=("object_categories",),
                variables={"by_box": ({"object", "name"}, {"count", "name"}),
                           "by_name": ({"name"}, {"count", "name"}),
                           "by_box_marked": ({"object", "name"}, {"count", "name"}),
                           "by_region": ({"region", "name"}, {"count", "name"}),
                           "by_region_marked": ({"region", "name"}, {"count", "name"}),
                           negatives.VARIANT: ({"name"}, {"count", "name"})},
                optional={"by_region": lambda cfg: "region" in cfg.by})
