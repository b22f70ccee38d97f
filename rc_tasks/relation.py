"""Visual relation reasoning (Visual Genome relationships).

Variants:
- ``predicate``: given a subject box and an object box, name the predicate between them.
- ``objects_boxes`` / ``objects_names`` / ``objects_pairs``: given a subject box and a predicate, find every
  object in that relation to the subject, answered as boxes, as names, or as name + box pairs. The answer holds
  every relationship of the image with that subject and predicate (its completeness is what the tests check).

Very frequent predicates (on, has, wearing, of, in) dominate VG; a relation with one of them is kept with
probability ``frequent_keep`` (0.2), as Pink does, and another is drawn otherwise.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Literal

from rcforge.core.config import number
from rcforge.rc_tasks import Mention, TaskInstance, register
from rcforge.rc_tasks.common import Group, category, items

FREQUENT = ("on", "has", "wearing", "of", "in")
ANSWER_FORMS = ("boxes", "names", "pairs")


@dataclass(frozen=True)
class RelationConfig:
    """variants: which of "predicate" and "objects" to draw from (uniformly).
    answer_forms: for "objects": "boxes", "names", "pairs" (drawn uniformly).
    frequent_predicates / frequent_keep: down-sampling of very frequent predicates.
    max_tries: draws before giving up on an image.
    """

    variants: tuple[Literal["predicate", "objects"], ...] = ("predicate", "objects")
    answer_forms: tuple[Literal["boxes", "names", "pairs"], ...] = ANSWER_FORMS
    frequent_predicates: tuple[str, ...] = FREQUENT
    frequent_keep: float = number(0.2, 0, 1)
    max_tries: int = number(8, 1)

    def __post_init__(self):
        if not self.variants or not self.answer_forms:
            raise ValueError("variants and answer_forms must not be empty")


def _mention(obj: dict) -> Mention:
    return Mention(boxes=(tuple(obj["box"]),), ids=(f"object:{obj['id']}",), phrase=category(obj))


def _draw(relations: list[dict], rng: random.Random, cfg: RelationConfig) -> dict | None:
    for _ in range(cfg.max_tries):
        rel = rng.choice(relations)
        if rel["predicate"] not in cfg.frequent_predicates or rng.random() < cfg.frequent_keep:
            return rel
    return None


def sample(record: dict, rng: random.Random, cfg: RelationConfig) -> TaskInstance | None:
    """A relation question about one subject of the image."""
    relations = record["relations"]
    if not relations:
        return None
    objects = {o["id"]: o for o in record["objects"]}
    rel = _draw(relations, rng, cfg)
    if rel is None:
        return None
    subject, obj = objects[rel["subject_id"]], objects[rel["object_id"]]
    variant = rng.choice(cfg.variants)
    if variant == "predicate":
        return TaskInstance(
            task="relation", variant="predicate",
            question={"subject": _mention(subject), "object": _mention(obj), "subject_name": category(subject),
                      "object_name": category(obj)},
            answer={"predicate": rel["predicate"], "subject_name": category(subject), "object_name": category(obj)},
            provenance=[f"relation:{rel['id']}"])
    form = rng.choice(cfg.answer_forms)
    same = [r for r in relations if r["subject_id"] == rel["subject_id"] and r["predicate"] == rel["predicate"]]
    targets = {r["object_id"]: objects[r["object_id"]] for r in same}
    groups = [Group(category(o), tuple(o["box"]), [o["id"]]) for o in targets.values()]
    return TaskInstance(
        task="relation", variant=f"objects_{form}",
        question={"subject": _mention(subject), "subject_name": category(subject), "predicate": rel["predicate"]},
        answer={"objects": items(groups), "count": len(groups), "predicate": rel["predicate"],
                "subject_name": category(subject)},
        provenance=[f"relation:{r['id']}" for r in same])


_ITEMS = {"objects", "count", "predicate", "subject_name"}
SPEC = register(
    "relation", RelationConfig, sample=sample, sample_needs=("relations",),
    variables={
        "predicate": ({"subject", "object", "subject_name", "object_name"},
                      {"predicate", "subject_name", "object_name"}),
        "predicate_marked": ({"subject", "object", "subject_name", "object_name"},
                             {"predicate", "subject_name", "object_name"}),
        **{f"objects_{f}": ({"subject", "subject_name", "predicate"}, _ITEMS) for f in ANSWER_FORMS},
    })
