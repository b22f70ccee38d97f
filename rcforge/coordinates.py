"""Coordinate formats: how a pixel box or point of an image record is written as text.

One formatter per model family, registered by name and chosen per recipe (``coordinates: pink``). Tasks never
format coordinates: they hand pixel boxes to the renderer, which calls the recipe's formatter. So a new task never
touches this module, and a new format never touches a task.

- ``pink`` (default; Pink, Shikra's notation on the original image): ``[x1/W,y1/H,x2/W,y2/H]`` with 3 decimals
  (Python's float formatting), clamped to [0, 1]; several boxes for one mention as separate brackets in
  ascending area, ``[0.100,0.200,0.300,0.400] [0.500,0.600,0.700,0.800]``; a point ``[0.500,0.250]``.
- ``shikra``: the image padded to a square (offset ``(max - min) // 2`` on the short side), coordinates divided by
  the square's side, clamped, 3 decimals; several boxes as ``[a;b]`` (each box's 4 numbers comma-separated).
- ``qwen``: ``<box>(x1,y1),(x2,y2)</box>`` as integers on [0, 1000).
- ``minigpt_v2``: ``{<x1><y1><x2><y2>}`` as integers 0-100.

Every formatter can parse its own output back (`parse_boxes`), which the property tests use: every printed value
is within half a unit of its last digit of the true value.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Sequence

from rcforge.registry import Registry

Box = Sequence[float]


def _clamp(v: float, lo: float = 0.0, hi: float = 1.0) -> float:
    return lo if v < lo else hi if v > hi else v


def _area(box: Box) -> float:
    return (box[2] - box[0]) * (box[3] - box[1])


@dataclass(frozen=True)
class Formatter:
    name: str
    #: pixel box -> normalized floats on [0, 1] in this format's frame (for the records' ``boxes`` field)
    normalize: Callable[[Box, int, int], tuple[float, float, float, float]]
    #: several boxes of one mention -> text
    boxes_text: Callable[[list[Box], int, int], str]
    point_text: Callable[[Sequence[float], int, int], str]
    #: text -> every box it holds, as the numbers printed (for tests and answer checking)
    parse_boxes: Callable[[str], list[tuple[float, ...]]]
    #: the size of one unit of the printed numbers, in the normalized frame
    unit: float
    #: pixel point -> normalized (x, y) in this format's frame
    normalize_point: Callable[[Sequence[float], int, int], tuple[float, float]] = None  # type: ignore[assignment]
    #: several boxes of one mention are printed smallest first
    sort_by_area: bool = False

    def box(self, box: Box, width: int, height: int) -> str:
        return self.boxes_text([box], width, height)

    def ordered(self, boxes: list[Box]) -> list[Box]:
        """The boxes of one mention in the order this format prints them."""
        return sorted(boxes, key=_area) if self.sort_by_area else list(boxes)


# -- pink ---------------------------------------------------------------------------------------------------------
def _pink_norm(box: Box, w: int, h: int):
    return (_clamp(box[0] / w), _clamp(box[1] / h), _clamp(box[2] / w), _clamp(box[3] / h))


def _three(values) -> str:
    return "[" + ",".join(f"{v:.3f}" for v in values) + "]"


def _pink_boxes(boxes: list[Box], w: int, h: int) -> str:
    return " ".join(_three(_pink_norm(b, w, h)) for b in sorted(boxes, key=_area))


def _pink_point(p, w, h) -> str:
    return _three((_clamp(p[0] / w), _clamp(p[1] / h)))


_BRACKET = re.compile(r"\[([^\[\]]*)\]")


def _parse_brackets(text: str) -> list[tuple[float, ...]]:
    out = []
    for group in _BRACKET.findall(text):
        for part in group.split(";"):
            nums = [float(x) for x in part.split(",") if x.strip()]
            if len(nums) == 4:
                out.append(tuple(nums))
    return out


# -- shikra -------------------------------------------------------------------------------------------------------
def square_frame(w: int, h: int):
    side = max(w, h)
    off = (side - min(w, h)) // 2
    return (off, 0, side) if w < h else (0, off, side)


def _shikra_norm(box: Box, w: int, h: int):
    ox, oy, side = square_frame(w, h)
    return (_clamp((box[0] + ox) / side), _clamp((box[1] + oy) / side), _clamp((box[2] + ox) / side),
            _clamp((box[3] + oy) / side))


def _shikra_boxes(boxes: list[Box], w: int, h: int) -> str:
    parts = [",".join(f"{v:.3f}" for v in _shikra_norm(b, w, h)) for b in boxes]
    return "[" + ";".join(parts) + "]"


def _shikra_point(p, w, h) -> str:
    ox, oy, side = square_frame(w, h)
    return _three((_clamp((p[0] + ox) / side), _clamp((p[1] + oy) / side)))


# -- qwen ---------------------------------------------------------------------------------------------------------
def _thousand(v: float) -> int:
    """Nearest integer on [0, 1000): 1.0 (the right or bottom edge) is written 999."""
    return min(999, max(0, round(v * 1000)))


def _qwen_boxes(boxes: list[Box], w: int, h: int) -> str:
    out = []
    for b in boxes:
        x1, y1, x2, y2 = _pink_norm(b, w, h)
        out.append(f"<box>({_thousand(x1)},{_thousand(y1)}),({_thousand(x2)},{_thousand(y2)})</box>")
    return "".join(out)


def _qwen_point(p, w, h) -> str:
    return f"({_thousand(_clamp(p[0] / w))},{_thousand(_clamp(p[1] / h))})"


_QWEN = re.compile(r"<box>\((\d+),(\d+)\),\((\d+),(\d+)\)</box>")


def _qwen_parse(text: str):
    return [tuple(float(v) / 1000 for v in m) for m in _QWEN.findall(text)]


# -- minigpt-v2 -----------------------------------------------------------------------------------------------------
def _hundred(v: float) -> int:
    return min(100, max(0, round(v * 100)))


def _minigpt_boxes(boxes: list[Box], w: int, h: int) -> str:
    out = []
    for b in boxes:
        x1, y1, x2, y2 = _pink_norm(b, w, h)
        out.append("{" + "".join(f"<{_hundred(v)}>" for v in (x1, y1, x2, y2)) + "}")
    return "".join(out)


def _minigpt_point(p, w, h) -> str:
    return "{" + f"<{_hundred(_clamp(p[0] / w))}><{_hundred(_clamp(p[1] / h))}>" + "}"


_MINIGPT = re.compile(r"\{<(\d+)><(\d+)><(\d+)><(\d+)>\}")


def _minigpt_parse(text: str):
    return [tuple(float(v) / 100 for v in m) for m in _MINIGPT.findall(text)]


def _plain_point(p, w, h):
    return (_clamp(p[0] / w), _clamp(p[1] / h))


def _shikra_point_norm(p, w, h):
    ox, oy, side = square_frame(w, h)
    return (_clamp((p[0] + ox) / side), _clamp((p[1] + oy) / side))


REGISTRY: Registry[Formatter] = Registry("coordinate format")
for _formatter in (
    Formatter("pink", _pink_norm, _pink_boxes, _pink_point, _parse_brackets, 0.001, _plain_point, True),
    Formatter("shikra", _shikra_norm, _shikra_boxes, _shikra_point, _parse_brackets, 0.001, _shikra_point_norm),
    Formatter("qwen", _pink_norm, _qwen_boxes, _qwen_point, _qwen_parse, 0.001, _plain_point),
    Formatter("minigpt_v2", _pink_norm, _minigpt_boxes, _minigpt_point, _minigpt_parse, 0.01, _plain_point),
):
    REGISTRY.add(_formatter.name, _formatter)
#: every format by name (the registry's entries)
FORMATTERS: dict[str, Formatter] = dict(REGISTRY.items())


def get(name: str) -> Formatter:
    return REGISTRY.get(name)
