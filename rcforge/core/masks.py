"""Masks: a COCO segmentation checked once, in the reader, and kept compressed from the reader to the shard.

An object's mask is COCO's compressed RLE (``{"size": [h, w], "counts": str}``), with the source's polygons when
it gave them, its area in pixels and whether it is a crowd region. Every form COCO files use is read with
pycocotools: polygons (``[[x1, y1, x2, y2, ...], ...]``), uncompressed RLE (``counts`` a list of run lengths,
COCO's crowd regions) and compressed RLE. Masks are never decoded whole to be stored: a record holds its RLE string.

The contract (`from_segmentation`), each breach a `BadRecord` naming field and reason; the reader then keeps the
object without its mask and counts the mask rejected (ledger kind ``mask``):
- a polygon needs at least 3 points (6 finite numbers, an even count);
- an RLE's ``size`` must be the image's ``[height, width]``; its run lengths must be whole numbers >= 0 that
  cover the image exactly (their sum is height x width), which also proves that a compressed ``counts`` string
  decodes;
- a mask must cover something, and at least half of it must lie inside the object's own box (a mask mostly
  outside its box belongs to another object, or its box is wrong).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from rcforge.core.boxes import canonical_box
from rcforge.core.errors import BadRecord

#: the least share of a mask's area that lies inside its object's box
MIN_INSIDE = 0.5


@dataclass(frozen=True)
class Mask:
    """A checked mask: compressed RLE, the polygons it came from (None for an RLE source), its area."""

    rle: dict
    polygons: list | None
    area: float

    def fields(self) -> dict:
        """The object fields of the image record (`rcforge.schemas.OBJECT`)."""
        return {"mask": self.rle, "polygons": self.polygons, "area": self.area}


def present(segmentation: Any) -> bool:
    """Whether an annotation gives a segmentation at all (Objects365's boxes have none; COCO's ``[]`` is none)."""
    return segmentation is not None and segmentation != [] and segmentation != {}


def from_segmentation(segmentation: Any, width: int, height: int, box) -> Mask:
    """The checked `Mask` of a COCO ``segmentation`` on a ``width`` x ``height`` image, for the object of pixel
    ``box`` (x1, y1, x2, y2); a `BadRecord` naming what breaks the contract."""
    if isinstance(segmentation, list):
        polygons = _polygons(segmentation)
        rle = _merged(polygons, width, height)
    elif isinstance(segmentation, dict):
        polygons = None
        rle = _rle(segmentation, width, height)
    else:
        raise BadRecord("mask_wrong_type", f"segmentation is {type(segmentation).__name__}, not polygons (a list) "
                        f"or RLE (an object with size and counts)", field="segmentation")
    return _checked(rle, polygons, width, height, box)


def outcome(segmentation: Any, width: int, height: int, xyxy) -> Mask | BadRecord | None:
    """`from_segmentation` for an object whose raw pixel box ``xyxy`` is not checked yet: its `Mask`, the
    `BadRecord` that rejects the mask, or None when the box itself is unusable (then no mask is asked for). A
    pure function of its arguments, so a mask checked in another process (`rcforge.readers.mask_pool`) is the
    one this process would have checked."""
    try:
        box, _ = canonical_box(xyxy, width, height)
    except (BadRecord, TypeError, ValueError):
        return None
    try:
        return from_segmentation(segmentation, width, height, box)
    except BadRecord as err:
        return err


def counts_of(counts: str) -> list[int]:
    """The run lengths of a compressed RLE string (COCO's `rleFrString`: 5 bits a character from 48, a
    continuation bit, the sign in the last character's top bit, each count from the third on a difference from
    the one two before). Raises ValueError on a character outside the code."""
    runs: list[int] = []
    i = 0
    while i < len(counts):
        value, shift, more = 0, 0, True
        while more:
            if i >= len(counts):
                raise ValueError("the string ends inside a number")
            c = ord(counts[i]) - 48
            if not 0 <= c < 64:
                raise ValueError(f"character {counts[i]!r} at {i} is not in the RLE code")
            value |= (c & 0x1F) << (5 * shift)
            more = bool(c & 0x20)
            i += 1
            shift += 1
            if not more and c & 0x10:
                value |= -1 << (5 * shift)
        if len(runs) > 2:
            value += runs[-2]
        runs.append(value)
    return runs


def rescaled(obj: dict, width: int, height: int) -> dict:
    """An object's mask fields for the image at its real size (`rcforge.core.images.rescale_record`): polygons are
    scaled and encoded again; an RLE without polygons is decoded, resized (nearest) and encoded again."""
    from pycocotools import mask as mask_utils

    mask = obj.get("mask")
    if not mask:
        return {}
    h, w = mask["size"]
    sx, sy = width / w, height / h
    if obj.get("polygons"):
        polygons = [[v * (sx if i % 2 == 0 else sy) for i, v in enumerate(p)] for p in obj["polygons"]]
        rle = _merged(polygons, width, height)
    else:
        import numpy as np
        from PIL import Image

        pixels = mask_utils.decode({"size": [h, w], "counts": mask["counts"].encode()})
        resized = np.asarray(Image.fromarray(pixels * 255).resize((width, height), Image.NEAREST)) > 127
        rle, polygons = _text(mask_utils.encode(np.asfortranarray(resized.astype(np.uint8)))), None
    area = float(mask_utils.area({"size": rle["size"], "counts": rle["counts"].encode()}))
    return {"mask": rle, "polygons": polygons, "area": area}


def _polygons(segmentation: list) -> list[list[float]]:
    if not segmentation:
        raise BadRecord("mask_empty", "segmentation holds no polygon", field="segmentation")
    polygons = []
    for k, polygon in enumerate(segmentation):
        where = f"segmentation[{k}]"
        if not isinstance(polygon, list):
            raise BadRecord("mask_wrong_type", f"{where} is {type(polygon).__name__}, not a list of numbers",
                            field=where)
        if not _finite_numbers(polygon):
            raise BadRecord("mask_bad_number", f"{where} holds a value that is not a finite number", field=where)
        if len(polygon) % 2:
            raise BadRecord("mask_odd_polygon", f"{where} has {len(polygon)} numbers: x, y pairs need an even "
                            f"count", field=where)
        if len(polygon) < 6:
            raise BadRecord("mask_short_polygon", f"{where} has {len(polygon) // 2} point(s): a polygon needs at "
                            f"least 3", field=where)
        polygons.append([float(v) for v in polygon])
    return polygons


def _finite_numbers(values: list) -> bool:
    """Whether every value is an int or float (not a bool, not a string) and finite. One pass over the types
    and one sum: a sum of finite numbers is finite unless it overflows, which only an absurd coordinate
    (beyond 1e300) can make it do, and then the polygon is rejected all the same."""
    if not {type(v) for v in values} <= _NUMBER_TYPES:
        return all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values)
    return math.isfinite(sum(values))


#: the value types a polygon holds in parsed JSON (subclasses go the slow, exact way)
_NUMBER_TYPES = frozenset((int, float))


def _rle(segmentation: dict, width: int, height: int) -> dict:
    size, counts = segmentation.get("size"), segmentation.get("counts")
    if size != [height, width]:
        raise BadRecord("mask_wrong_size", f"segmentation.size is {size!r}, not the image's [height, width] "
                        f"[{height}, {width}]", field="segmentation.size")
    if isinstance(counts, str):
        try:
            runs = counts_of(counts)
        except ValueError as err:
            raise BadRecord("mask_undecodable", f"segmentation.counts does not decode: {err}",
                            field="segmentation.counts") from None
        text = counts
    elif isinstance(counts, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in counts):
        runs, text = counts, None
    else:
        raise BadRecord("mask_wrong_type", "segmentation.counts is neither a compressed RLE string nor a list of "
                        "whole numbers", field="segmentation.counts")
    if any(v < 0 for v in runs) or sum(runs) != width * height:
        raise BadRecord("mask_undecodable", f"segmentation.counts covers {sum(runs)} pixels with "
                        f"{'a negative run' if any(v < 0 for v in runs) else 'its runs'}, not the image's "
                        f"{width * height}", field="segmentation.counts")
    if text is None:
        from pycocotools import mask as mask_utils

        return _text(mask_utils.frPyObjects({"size": size, "counts": runs}, height, width))
    return {"size": [height, width], "counts": text}


def _merged(polygons: list, width: int, height: int) -> dict:
    from pycocotools import mask as mask_utils

    rles = mask_utils.frPyObjects(polygons, height, width)
    return _text(rles[0] if len(rles) == 1 else mask_utils.merge(rles))


def _text(rle: dict) -> dict:
    counts = rle["counts"]
    return {"size": [int(v) for v in rle["size"]], "counts": counts.decode("ascii") if isinstance(counts, bytes)
            else counts}


def _ring_outside(box, extent) -> float:
    """At most how many of a mask's pixels can lie outside its box, from the mask's pixel extent alone: none
    when the extent is inside the box; the pixels of the box's boundary ring (the box grown to whole pixels,
    less the whole pixels inside it) when the extent is inside the grown box (a mask traced along its box's
    edges: its edge pixels are partly outside); the whole mask (``inf``) otherwise, which the exact
    intersection then decides."""
    x1, y1, x2, y2 = box
    mx1, my1, mx2, my2 = extent
    if x1 <= mx1 and y1 <= my1 and mx2 <= x2 and my2 <= y2:
        return 0.0
    ox1, oy1, ox2, oy2 = math.floor(x1), math.floor(y1), math.ceil(x2), math.ceil(y2)
    if not (ox1 <= mx1 and oy1 <= my1 and mx2 <= ox2 and my2 <= oy2):
        return math.inf
    inner = max(0, math.floor(x2) - math.ceil(x1)) * max(0, math.floor(y2) - math.ceil(y1))
    return float((ox2 - ox1) * (oy2 - oy1) - inner)


def _checked(rle: dict, polygons, width: int, height: int, box) -> Mask:
    from pycocotools import mask as mask_utils

    encoded = {"size": rle["size"], "counts": rle["counts"].encode("ascii")}
    area = float(mask_utils.area(encoded))
    if area <= 0:
        raise BadRecord("mask_empty", "the mask covers no pixel of the image", field="segmentation")
    x1, y1, x2, y2 = box
    mx, my, mw, mh = (float(v) for v in mask_utils.toBbox(encoded))
    if area - _ring_outside(box, (mx, my, mx + mw, my + mh)) >= MIN_INSIDE * area:
        return Mask(rle, polygons, area)  # mostly inside its box without raster work (the common case)
    frame = mask_utils.frPyObjects([[x1, y1, x2, y1, x2, y2, x1, y2]], height, width)
    inside = float(mask_utils.area(mask_utils.merge([encoded, *frame], intersect=True)))
    if inside < MIN_INSIDE * area:
        raise BadRecord("mask_outside_box", f"{inside / area:.0%} of the mask lies inside the object's box "
                        f"[{x1:g}, {y1:g}, {x2:g}, {y2:g}]", field="segmentation")
    return Mask(rle, polygons, area)
