"""Boxes and points: checked and put into the one canonical form, once, by the readers.

Canonical box: pixel coordinates ``(x1, y1, x2, y2)`` on the original image with
``0 <= x1 < x2 <= width`` and ``0 <= y1 < y2 <= height``, as floats. Formatting to text (normalized, Shikra
padding, Qwen integers, ...) happens at rendering and never re-derives a box from the source files.

Conventions converted here:
- COCO / Objects365 / Visual Genome ``[x, y, w, h]`` (continuous pixel edges): ``(x, y, x + w, y + h)``.
- Flickr30K Entities (PASCAL VOC style, 1-based inclusive pixel indices): ``(xmin - 1, ymin - 1, xmax, ymax)``,
  i.e. the pixel edges of the 0-based pixels ``xmin - 1 .. xmax - 1``.

A box that sticks out of the image is clipped and reported as repaired; a box that is not finite, has zero or
negative size, lies wholly outside the image, or has zero area once clipped is rejected with a reason.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from rcforge.core.errors import BadRecord

Box = tuple[float, float, float, float]

REPAIR_CLIPPED = "box_clipped"


def _number(value, field: str) -> float:
    if isinstance(value, bool) or value is None:
        raise BadRecord("box_missing_value", f"{field} is {value!r}", field=field)
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise BadRecord("box_not_a_number", f"{field} is {value!r}, not a number", field=field) from None
    if not math.isfinite(number):
        raise BadRecord("box_not_finite", f"{field} is {value!r}", field=field)
    return number


def xywh_to_xyxy(x, y, w, h, field: str = "bbox") -> Box:
    """``[x, y, w, h]`` (COCO, Visual Genome) to ``(x1, y1, x2, y2)``; values are checked to be finite numbers."""
    x, y = _number(x, f"{field}.x"), _number(y, f"{field}.y")
    w, h = _number(w, f"{field}.w"), _number(h, f"{field}.h")
    return (x, y, x + w, y + h)


def voc_to_xyxy(xmin, ymin, xmax, ymax, field: str = "bndbox") -> Box:
    """1-based inclusive pixel indices (PASCAL VOC, Flickr30K Entities) to continuous 0-based edges."""
    return (
        _number(xmin, f"{field}.xmin") - 1.0,
        _number(ymin, f"{field}.ymin") - 1.0,
        _number(xmax, f"{field}.xmax"),
        _number(ymax, f"{field}.ymax"),
    )


def canonical_box(box: Sequence[float], width: int, height: int, field: str = "box") -> tuple[Box, str | None]:
    """Check a pixel xyxy box against the image and clip it.

    Returns ``(box, repair)`` where ``repair`` is ``None`` or ``"box_clipped"``; raises `BadRecord` with a
    reason for a box that cannot be used (`box_message` words it). `check_boxes` is the same rule over arrays
    (a property test holds the two to one another); this scalar form exists because a per-record reader checks one
    box at a time, where NumPy's per-call cost would dominate.
    """
    x1, y1, x2, y2 = (float(v) for v in box)
    reason = None
    if not all(math.isfinite(v) for v in (x1, y1, x2, y2)):
        reason = "box_not_finite"
    elif x2 < x1 or y2 < y1:
        reason = "box_negative_size"
    elif x2 == x1 or y2 == y1:
        reason = "box_zero_area"
    elif x2 <= 0 or y2 <= 0 or x1 >= width or y1 >= height:
        reason = "box_outside_image"
    if reason:
        raise BadRecord(reason, box_message(reason, box, width, height, field), field=field)
    clipped = (max(0.0, x1), max(0.0, y1), min(float(width), x2), min(float(height), y2))
    return clipped, (REPAIR_CLIPPED if clipped != (x1, y1, x2, y2) else None)


def check_boxes(x1: np.ndarray, y1: np.ndarray, x2: np.ndarray, y2: np.ndarray, width: np.ndarray,
                height: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`canonical_box` over arrays of pixel xyxy boxes, each with its image's size (the columnar Visual Genome
    lane): (the reason per box, "" when usable; the clipped boxes, shape (n, 4); whether each was clipped)."""
    reason = np.full(len(x1), "", dtype=object)
    finite = np.isfinite(x1) & np.isfinite(y1) & np.isfinite(x2) & np.isfinite(y2)
    neg = finite & ((x2 < x1) | (y2 < y1))
    zero = finite & ~neg & ((x2 == x1) | (y2 == y1))
    outside = finite & ~neg & ~zero & ((x2 <= 0) | (y2 <= 0) | (x1 >= width) | (y1 >= height))
    reason[~finite] = "box_not_finite"
    reason[neg] = "box_negative_size"
    reason[zero] = "box_zero_area"
    reason[outside] = "box_outside_image"
    cx1, cy1 = np.maximum(x1, 0.0), np.maximum(y1, 0.0)
    cx2, cy2 = np.minimum(x2, width), np.minimum(y2, height)
    clipped = (cx1 != x1) | (cy1 != y1) | (cx2 != x2) | (cy2 != y2)
    return reason, np.stack([cx1, cy1, cx2, cy2], axis=1), clipped


def box_message(reason: str, box: Sequence[float], width, height, field: str = "box") -> str:
    """The message of a box rejected for ``reason`` (by `canonical_box` or `check_boxes`): the one wording."""
    if reason == "box_not_finite":
        return f"{field} {list(box)} has a non-finite coordinate"
    return {"box_negative_size": f"{field} {_fmt(box)} has negative width or height",
            "box_zero_area": f"{field} {_fmt(box)} has zero width or height",
            "box_outside_image": f"{field} {_fmt(box)} lies outside the {int(width)}x{int(height)} image"}[reason]


def check_point(x, y, width: int, height: int, field: str = "point") -> tuple[float, float]:
    """A pixel point inside the image (edges included)."""
    px, py = _number(x, f"{field}.x"), _number(y, f"{field}.y")
    if not (0 <= px <= width and 0 <= py <= height):
        raise BadRecord("point_outside_image", f"{field} ({px}, {py}) lies outside the {width}x{height} image",
                        field=field)
    return (px, py)


def check_size(width, height, field_prefix: str = "") -> tuple[int, int]:
    """Image width and height: positive integers (floats with an integral value are accepted)."""
    out = []
    for name, value in (("width", width), ("height", height)):
        field = f"{field_prefix}{name}"
        if value is None or isinstance(value, bool):
            raise BadRecord("image_size_missing", f"{field} is missing", field=field)
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise BadRecord("image_size_invalid", f"{field} is {value!r}", field=field) from None
        if not math.isfinite(number) or number <= 0 or number != int(number):
            raise BadRecord("image_size_invalid", f"{field} is {value!r}", field=field)
        out.append(int(number))
    return out[0], out[1]


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two xyxy boxes (0.0 when either has no area)."""
    ix = min(a[2], b[2]) - max(a[0], b[0])
    iy = min(a[3], b[3]) - max(a[1], b[1])
    if ix <= 0 or iy <= 0:
        return 0.0
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _fmt(box: Sequence[float]) -> str:
    return "[" + ", ".join(f"{float(v):g}" for v in box) + "]"
