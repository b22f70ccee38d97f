"""Helpers shared by the tasks: categories, near-duplicate merging, answer items.

Visual Genome annotates the same thing several times (two "man" boxes around one man). Counting, detection and
spatial answers must be true, so those tasks first merge boxes of the same category whose IoU reaches a
threshold (``merge_iou``): each group keeps the box of its lowest object id and every id of the group in its
provenance. An object's category is its first name (VG objects may list several; Objects365 and COCO objects
have one, their category name). Objects flagged ``ignore`` (crowd boxes) are left out, and a category with an
ignored box is never counted or detected, since its true count is unknown.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from rcforge.core.boxes import iou
from rcforge.rc_tasks import Mention


@dataclass
class Group:
    name: str
    box: tuple[float, float, float, float]
    ids: list[int]

    def mention(self) -> Mention:
        return Mention(boxes=(tuple(self.box),), ids=tuple(f"object:{i}" for i in self.ids), phrase=self.name)

    @property
    def centre(self) -> tuple[float, float]:
        return ((self.box[0] + self.box[2]) / 2, (self.box[1] + self.box[3]) / 2)


def category(obj: dict) -> str:
    return obj["names"][0]


_memo = threading.local()


def merged(record: dict, threshold: float) -> tuple[list[Group], int, set[str]]:
    """`merge_near_duplicates` of a record's objects, computed once per record and threshold.

    Several dialogues of one image ask counting, detection and spatial questions over the same groups; the
    result is kept for the renderer's later draws on the same record (a one-record memo per thread, keyed by the
    record's identity: nothing is added to the record). Callers must not change the groups.
    """
    if getattr(_memo, "record", None) is not record:
        _memo.record, _memo.groups = record, {}
    memo = _memo.groups
    if threshold not in memo:
        memo[threshold] = merge_near_duplicates(record["objects"], threshold)
    return memo[threshold]


def merge_near_duplicates(objects: list[dict], threshold: float) -> tuple[list[Group], int, set[str]]:
    """Groups of same-category objects whose IoU with the group's first box is >= ``threshold``.

    Returns (groups in object-id order, the number of boxes merged away, categories that have ignored boxes).
    """
    ignored = {category(o) for o in objects if o["ignore"]}
    groups: list[Group] = []
    by_name: dict[str, list[Group]] = {}
    merged = 0
    for obj in sorted((o for o in objects if not o["ignore"]), key=lambda o: o["id"]):
        name = category(obj)
        box = tuple(obj["box"])
        for group in by_name.get(name, []):
            if iou(group.box, box) >= threshold:
                group.ids.append(obj["id"])
                merged += 1
                break
        else:
            group = Group(name, box, [obj["id"]])
            groups.append(group)
            by_name.setdefault(name, []).append(group)
    return groups, merged, ignored


def items(groups: list[Group]) -> list[dict]:
    """Answer items, left to right then top to bottom: {"name", "box"} for the templates."""
    ordered = sorted(groups, key=lambda g: (g.box[0], g.box[1], g.box[2], g.box[3]))
    return [{"name": g.name, "box": g.mention()} for g in ordered]


def all_boxes(groups: list[Group], phrase: str | None = None) -> Mention:
    """One mention of every group's box (detection's answer), named ``phrase``."""
    return Mention(boxes=tuple(tuple(g.box) for g in groups), phrase=phrase,
                   ids=tuple(f"object:{i}" for g in groups for i in g.ids))
