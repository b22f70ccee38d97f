"""The COCO annotation format's contract (Objects365, RefCOCO's instances.json, VQAv2's image_info), declared once.

A COCO file is a JSON object with arrays under ``images``, ``annotations`` and ``categories``. Each entry's fields
are checked here on every path that reads one (Objects365 in memory and streamed, RefCOCO's instances): a value of
the wrong type or out of range rejects that entry with the field named, and is never coerced (a category whose
name is a number is rejected, not printed as that number).
"""

from __future__ import annotations

from rcforge.core.contract import F, FileShape, Flag, Int, ItemContract, Num, Text
from rcforge.core.errors import BadRecord

FILE = FileShape("object", arrays=("images", "annotations", "categories"))

IMAGE = ItemContract("image", (
    F("id", Int()),
    F("file_name", Text(nonempty=True)),
    F("width", Int(lo=1, hi=1_000_000)),
    F("height", Int(lo=1, hi=1_000_000)),
))

#: the image table of a file read only for sizes (VQAv2's image_info)
IMAGE_SIZE = ItemContract("image", (
    F("id", Int()),
    F("width", Int(lo=1, hi=1_000_000)),
    F("height", Int(lo=1, hi=1_000_000)),
))

ANNOTATION = ItemContract("annotation", (
    F("id", Int()),
    F("image_id", Int()),
    F("category_id", Int()),
    F("iscrowd", Flag(), required=False, default=False),
))

CATEGORY = ItemContract("category", (
    F("id", Int()),
    F("name", Text(nonempty=True)),
))


def bbox(ann: dict) -> tuple[float, float, float, float]:
    """An annotation's ``bbox``: a list of four finite numbers ``[x, y, w, h]``."""
    value = ann.get("bbox")
    if value is None:
        raise BadRecord("missing_field", "annotation has no 'bbox'", field="bbox")
    if not isinstance(value, list) or len(value) != 4:
        raise BadRecord("wrong_type", f"bbox is {value!r:.60}, expected a list of four numbers [x, y, w, h]",
                        field="bbox")
    return tuple(Num().check(v, "bbox") for v in value)


def annotation(ann) -> dict:
    """An annotation entry through the contract, with its ``bbox``; `BadRecord` at the first problem."""
    out = ANNOTATION.parse(ann)
    out["bbox"] = bbox(ann)
    return out


def categories(entries, file: str) -> tuple[dict[int, str], dict[int, str]]:
    """(usable categories id -> name, broken categories id -> why): an annotation of a broken category is rejected
    with that reason rather than printed with a garbage name."""
    good, bad = {}, {}
    for i, cat in enumerate(entries):
        try:
            parsed = CATEGORY.parse(cat)
        except BadRecord as err:
            cid = cat.get("id") if isinstance(cat, dict) else None
            if isinstance(cid, int) and not isinstance(cid, bool):
                bad[cid] = f"categories[{i}] (id={cid}): {err.message}"
            continue
        good[parsed["id"]] = parsed["name"]
    return good, bad
