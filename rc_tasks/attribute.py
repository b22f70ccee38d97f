"""Attributes: what colour or material an object is (by box), and which objects are <attribute> <name> (boxes).

From Visual Genome's attributes (each object's ``attributes``, lower-cased by the reader). Two variants:

- ``describe``: "What colour or material is [box]?", answered with the object's colour and material attributes
  (a fixed vocabulary, `COLOURS` and `MATERIALS`: "parked" or "tall" are not an answer to that question). Only
  objects with at least one such attribute are asked about.
- ``find``: "Which objects are <attribute> <name>?", answered with the boxes of every object of that name that
  has the attribute, over near-duplicate-merged boxes (see `rc_tasks.common`): a group answers when any of its
  boxes carries the attribute. Names with crowd/ignored boxes are never asked.

Annotations are incomplete (an unlisted attribute is not an absent one), so ``find`` only asks about a name when
at most ``max_answers`` groups answer; the answers are exactly what the annotation says.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Literal

from rcforge.core.config import number
from rcforge.rc_tasks import Mention, TaskInstance, register
from rcforge.rc_tasks.common import all_boxes, category, merged

COLOURS = frozenset((
    "beige", "black", "blond", "blonde", "blue", "brown", "cream", "dark blue", "dark brown", "dark green", "gold",
    "golden", "gray", "green", "grey", "khaki", "light blue", "light brown", "maroon", "navy", "orange", "pink",
    "purple", "red", "silver", "tan", "teal", "turquoise", "white", "yellow"))
MATERIALS = frozenset("""brick bricks ceramic concrete cotton denim fabric glass granite leather marble metal
metallic paper plastic porcelain rubber steel stone wicker wood wooden wool woolen""".split())


@dataclass(frozen=True)
class AttributeConfig:
    """variants: which of "describe" and "find" to draw (uniformly). merge_iou: near-duplicate threshold for
    "find". max_answers: "find" asks about a name only when at most this many of its objects answer."""

    variants: tuple[Literal["describe", "find"], ...] = ("describe", "find")
    merge_iou: float = number(0.7, 0, 1, low_open=True)
    max_answers: int = number(10, 1)


def colour_or_material(attributes) -> list[str]:
    """The colour and material attributes among ``attributes``, in order, without repeats."""
    return list(dict.fromkeys(a for a in attributes if a in COLOURS or a in MATERIALS))


def describe(record: dict, rng: random.Random, cfg: AttributeConfig) -> TaskInstance | None:
    candidates = [o for o in sorted(record["objects"], key=lambda o: o["id"])
                  if not o["ignore"] and colour_or_material(o["attributes"])]
    if not candidates:
        return None
    obj = rng.choice(candidates)
    mention = Mention(boxes=(tuple(obj["box"]),), ids=(f"object:{obj['id']}",), phrase=category(obj))
    return TaskInstance(task="attribute", variant="describe", question={"object": mention, "name": category(obj)},
                        answer={"attributes": colour_or_material(obj["attributes"]), "name": category(obj)})


def answers(record: dict, cfg: AttributeConfig) -> dict[tuple[str, str], list]:
    """(attribute, name) -> the merged groups of that name whose boxes carry the attribute."""
    groups, _, ignored = merged(record, cfg.merge_iou)
    attributes = {o["id"]: o["attributes"] for o in record["objects"]}
    found: dict[tuple[str, str], list] = {}
    for group in groups:
        if group.name in ignored:
            continue
        for attribute in dict.fromkeys(a for i in group.ids for a in attributes.get(i, ())):
            found.setdefault((attribute, group.name), []).append(group)
    return {k: v for k, v in found.items() if len(v) <= cfg.max_answers}


def find(record: dict, rng: random.Random, cfg: AttributeConfig) -> TaskInstance | None:
    found = answers(record, cfg)
    if not found:
        return None
    attribute, name = rng.choice(sorted(found))
    groups = found[(attribute, name)]
    return TaskInstance(task="attribute", variant="find", question={"attribute": attribute, "name": name},
                        answer={"boxes": all_boxes(groups, f"{attribute} {name}"), "count": len(groups), "name": name,
                                                           "attribute": attribute})


def sample(record: dict, rng: random.Random, cfg: AttributeConfig) -> TaskInstance | None:
    """One of the configured variants, drawn uniformly; the other when the image has nothing for it."""
    first = rng.choice(cfg.variants)
    order = [first] + [v for v in cfg.variants if v != first]
    for variant in order:
        inst = (describe if variant == "describe" else find)(record, rng, cfg)
        if inst is not None:
            return inst
    return None


SPEC = register("attribute", AttributeConfig, sample=sample, sample_needs=("attributes",),
                variables={"describe": ({"object", "name"}, {"attributes", "name"}),
                           "describe_marked": ({"object", "name"}, {"attributes", "name"}),
                           "find": ({"attribute", "name"}, {"boxes", "count", "name", "attribute"})})
