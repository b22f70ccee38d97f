"""Object counting: how many objects share the category of a given object (by box) or a given name.

Counts are over near-duplicate-merged boxes (see `rc_tasks.common`); categories with crowd/ignored boxes are
never asked. The default sampler flattens the answer distribution: it draws a count value uniformly among the
counts present in the image, then a category with that count. ``sampler: frequency`` draws a category in
proportion to its count instead (as drawing a random object would). Runs on Visual Genome, Objects365 and LVIS.

A count is only as true as the labels: each turn records whether its count is proven (``count_proven``), which
holds when the source boxes every instance of a labelled category (`rcforge.readers.LABELS`: LVIS; Objects365
only with ``trust_claimed``, its exhaustiveness being claimed, not verified). Visual Genome's labels are what
annotators chose to mark, so its counts are lower bounds ("how many tree trunks? 1" on an image with four):
``proven_only`` restricts counting to proven counts. Names of stuff, not things ("sky", "water"), are never
counted (`rcforge.english.countable`).
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass
from typing import Literal

from rcforge.rc_tasks import TaskInstance, negatives, register
from rcforge.rc_tasks.common import all_boxes, merged

from rcforge import english, readers
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
    #: ask only counts proven by exhaustive labels (no counting on Visual Genome, nor Objects365 unless trusted)
    proven_only: bool = False
    #: count the labels a dataset claims exhaustive without verification (Objects365) as proof
    trust_claimed: bool = False
    #: the chance of a negative question ("how many zebras?" -> 0) where the record proves a category absent
    negative_rate: float = number(0.0, 0, 1)


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
    question = {"name": name}
    if how == "box":
        question["object"] = rng.choice(groups).mention()
    return TaskInstance(task="counting", variant=f"by_{how}", question=question,
                        answer={"count": len(groups), "name": name},
                        provenance=list(all_boxes(groups).ids), count_proven=is_proven,
                        complete_basis=negatives.complete_basis(record["source"]))


SPEC = register("counting", CountingConfig, sample=sample, sample_needs=("object_categories",),
                variables={"by_box": ({"object", "name"}, {"count", "name"}),
                           "by_name": ({"name"}, {"count", "name"}),
                           negatives.VARIANT: ({"name"}, {"count", "name"})})
