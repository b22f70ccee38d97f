"""Referring segmentation (RES): an expression, and the mask of the object it refers to.

Where the source ships masks (RefCOCO's COCO instances, LVIS; `rcforge.core.masks`):
- ``expression``: one instance per RefCOCO ref whose object has a mask, one of its sentences drawn;
- ``name``: sampled from objects whose category has exactly one instance in the image, none of it a crowd or
  ignored region (so "the dog" refers to one object), and a mask.

The answer mentions the object with its box and its mask: a coordinate format prints the box where the template
puts ``{{ mask }}``, and the dialogue's ``masks`` column holds the mask at that box's place in ``boxes`` (LISA
and NExT-Chat style trainers read the mask from there; placeholder formats point to it).
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from typing import Iterator

from rcforge.rc_tasks import Mention, TaskInstance, register
from rcforge.rc_tasks.common import category


@dataclass(frozen=True)
class ReferringSegmentationConfig:
    """No options yet: every ref with a mask is asked, and one unique-category object per sampled dialogue."""


def _mention(obj: dict, phrase: str) -> Mention:
    mask = {**obj["mask"], "polygons": obj.get("polygons")}
    return Mention(boxes=(tuple(obj["box"]),), ids=(f"object:{obj['id']}",), phrase=phrase, masks=(mask,))


def enumerate_refs(record: dict, rng_for, cfg: ReferringSegmentationConfig) -> Iterator[TaskInstance]:
    """One instance per ref whose object has a mask."""
    objects = {o["id"]: o for o in record["objects"]}
    for ref in record["refs"]:
        obj = objects.get(ref["object_id"])
        if obj is None or not obj.get("mask") or not ref["sentences"]:
            continue
        key = f"ref:{ref['ref_id']}"
        sentence = rng_for(key).choice(ref["sentences"])
        yield TaskInstance("referring_segmentation", "expression", question={"expression": sentence["text"]},
                           answer={"mask": _mention(obj, sentence["text"])},
                           provenance=[key, f"sentence:{sentence['sent_id']}"], key=key)


def sample(record: dict, rng: random.Random, cfg: ReferringSegmentationConfig) -> TaskInstance | None:
    """The mask of an object whose category is unique in the image."""
    counts = Counter(category(o) for o in record["objects"])
    blocked = {category(o) for o in record["objects"] if o["ignore"] or o.get("iscrowd")}
    unique = [o for o in record["objects"]
              if counts[category(o)] == 1 and category(o) not in blocked and o.get("mask")]
    if not unique:
        return None
    obj = rng.choice(sorted(unique, key=lambda o: o["id"]))
    name = category(obj)
    return TaskInstance("referring_segmentation", "name", question={"name": name},
                        answer={"mask": _mention(obj, name), "name": name})


SPEC = register("referring_segmentation", ReferringSegmentationConfig, sample=sample,
                sample_needs=("object_categories",), enumerate=enumerate_refs, enumerate_needs=("refs",),
                variables={"expression": ({"expression"}, {"mask"}), "name": ({"name"}, {"mask", "name"})},
                kind="segment")
