"""Visual Genome's contract: the shape of its files and the fields read from each entry, declared once.

Every path that reads VG (the per-image reference path, the columnar careful lane, the keyed fallback) parses
items with these `ItemContract`s; the columnar fast lane reads the same fields with Arrow against types derived
from the same declarations (an entry whose types do not fit goes to the careful lane) and applies the same
integer ranges (`ID_RANGE`). Field spellings cover every release: v1.0 (``id``, one ``name``) to v1.4
(``object_id``, ``names``).
"""

from __future__ import annotations

from rcforge.core.contract import F, FileShape, Int, ItemContract, Mapping_, Num, Text, TextList
from rcforge.core.errors import BadRecord

FILES = {
    "image_data": FileShape("array", doc="one entry per image: image_id (or id), width, height, url, coco_id"),
    "objects": FileShape("array", doc="one entry per image: image_id, objects"),
    "relationships": FileShape("array", doc="one entry per image: image_id, relationships"),
    "region_descriptions": FileShape("array", doc="one entry per image: id (or image_id), regions"),
    "attributes": FileShape("array", doc="one entry per image: image_id, attributes"),
}

#: ids of images, objects, relationships and regions
ID = Int()
ID_RANGE = (ID.lo, ID.hi)

IMAGE = ItemContract("image entry", (
    F(("image_id", "id"), ID),
    F("width", Int(lo=1, hi=1_000_000)),
    F("height", Int(lo=1, hi=1_000_000)),
    F("coco_id", ID, required=False),
    F("flickr_id", ID, required=False),
    F("url", Text(), required=False, default=""),
))

_XYWH = (F("x", Num()), F("y", Num()), F("w", Num()), F("h", Num()))

OBJECT = ItemContract("object", (
    F(("object_id", "id"), ID),
    F("names", TextList(lower=True), required=False),
    F("name", Text(lower=True), required=False),
    F("synsets", TextList(raw=True), required=False, default=()),
    *_XYWH,
))

REGION = ItemContract("region", (
    F(("region_id", "id"), ID),
    F("phrase", Text(nonempty=True, empty_reason="region_missing_phrase")),
    F("x", Num()), F("y", Num()), F(("width", "w"), Num()), F(("height", "h"), Num()),
))

RELATION = ItemContract("relationship", (
    F(("relationship_id", "id"), ID),
    F("predicate", Text(nonempty=True, lower=True, empty_reason="relation_missing_predicate")),
    F("subject", Mapping_()),
    F("object", Mapping_()),
))

#: a relationship's endpoint: the reference (its object id) and, for adoption, its own copy of the object
ENDPOINT = ItemContract("endpoint", (F(("object_id", "id"), ID),))

ATTRIBUTE = ItemContract("attribute", (
    F(("object_id", "id"), ID),
    F("attributes", TextList(lower=True, dedupe=True), required=False, default=()),
))


def object_names(obj: dict) -> list[str]:
    """An object's names: ``names`` (v1.2+) or its single ``name`` (v1.0); `BadRecord` when it has none."""
    names = OBJECT.value(obj, "names")
    if names is None:
        name = OBJECT.value(obj, "name") if obj.get("name") is not None else None
        names = [name] if name else []
    if not names:
        raise BadRecord("missing_field", "object has no name", field="names")
    return names


def object_xywh(obj: dict) -> tuple[float, float, float, float]:
    return tuple(OBJECT.value(obj, n) for n in "xywh")


def region_xywh(reg: dict) -> tuple[float, float, float, float]:
    return tuple(REGION.value(reg, n) for n in ("x", "y", "width", "height"))
