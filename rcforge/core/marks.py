"""Visual prompts: marks drawn on a copy of an image, so that a question can name a region without coordinates
("what is in the red ellipse?", "region 2"), deterministic to the pixel (groundwork of issue 21: the drawing, its
legibility rules and its encoding; the render option, the tasks' variants and the exports build on it).

A mark is data (`Mark`: its id, shape, colour and the object it marks, with that object's box and mask); what it
paints is one function of the mark and the image size (`footprint`), used three ways: to draw it (the colour
pasted through the footprint), to judge it (`legibility`) and, in the tests, to check a drawn image against the
marks table. Shapes (`SHAPES`):

- ``number`` / ``letter``: a Set-of-Mark label, the text on a filled tag at the object's top-left corner;
- ``box``, ``ellipse``: the outline of the object's box, or the ellipse inscribed in it;
- ``arrow``: from outside the box towards its centre, ending at its edge;
- ``contour``: the outline of the object's mask (only for an object with one).

A mark that cannot be read is not drawn; `legibility` gives the reason: outside the image, covering more than
``max_cover`` of its own object, too little contrast with the pixels under it (the WCAG contrast ratio of the
mark's colour and their mean colour), or overlapping another mark. The image is encoded as PNG with fixed
settings (`encode`) and named by its content's hash, so the same recipe writes byte-identical files.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass

import numpy as np

#: the named colours marks are drawn in (a question names them: "the red box")
PALETTE = {"red": (230, 25, 75), "green": (60, 180, 75), "blue": (0, 130, 200), "yellow": (255, 225, 25),
           "orange": (245, 130, 48), "purple": (145, 30, 180), "cyan": (70, 240, 240), "magenta": (240, 50, 230),
           "white": (255, 255, 255), "black": (0, 0, 0)}
SHAPES = ("number", "letter", "box", "ellipse", "arrow", "contour")


@dataclass(frozen=True)
class Mark:
    """One mark: ``mark_id`` is what a question calls it ("2", "B", or its colour and shape), ``box`` the marked
    object's pixel box, ``mask`` its RLE (a contour needs one)."""

    mark_id: str
    shape: str
    colour: str
    object_id: int
    box: tuple[float, float, float, float]
    mask: dict | None = None

    def row(self) -> dict:
        """The mark as a row of a dialogue's ``marks`` table."""
        return {"mark_id": self.mark_id, "shape": self.shape, "colour": self.colour, "object_id": self.object_id}


@dataclass(frozen=True)
class Legibility:
    """max_cover: the largest share of its own object's box a mark may cover. min_contrast: the least WCAG
    contrast ratio between a mark's colour and the mean colour under it. width: a line's width in pixels, as a
    share of the image's shorter side (at least 2 pixels)."""

    max_cover: float = 0.5
    min_contrast: float = 2.0
    width: float = 0.006


def line_width(size: tuple[int, int], rules: Legibility = Legibility()) -> int:
    return max(2, round(min(size) * rules.width))


def footprint(mark: Mark, size: tuple[int, int], rules: Legibility = Legibility()) -> np.ndarray:
    """The pixels the mark paints on an image of ``size`` (width, height), as a boolean array (height, width)."""
    from PIL import Image, ImageDraw

    layer = Image.new("L", size, 0)
    pen = ImageDraw.Draw(layer)
    width = line_width(size, rules)
    x1, y1, x2, y2 = mark.box
    if mark.shape == "box":
        pen.rectangle([x1, y1, x2, y2], outline=255, width=width)
    elif mark.shape == "ellipse":
        pen.ellipse([x1, y1, x2, y2], outline=255, width=width)
    elif mark.shape == "arrow":
        _arrow(pen, mark.box, size, width)
    elif mark.shape == "contour":
        _contour(layer, mark, width)
    elif mark.shape in ("number", "letter"):
        left, top, right, bottom = _tag(mark, size)
        pen.rectangle([left, top, right, bottom], fill=255)
    else:
        raise ValueError(f"mark shape {mark.shape!r} is not one of {', '.join(SHAPES)}")
    return np.asarray(layer) > 0


def legibility(mark: Mark, size: tuple[int, int], pixels: np.ndarray, others: list[np.ndarray],
               rules: Legibility = Legibility()) -> tuple[str | None, np.ndarray]:
    """(why the mark cannot be read, or None; its footprint) on an image of ``size`` whose RGB ``pixels`` are
    given, beside the footprints of the marks already placed (``others``)."""
    painted = footprint(mark, size, rules)
    if not painted.any() or _leaves_image(mark, size):
        return "mark_outside_image", painted
    x1, y1, x2, y2 = (int(round(v)) for v in mark.box)
    area = max(1, (x2 - x1) * (y2 - y1))
    if mark.shape in ("number", "letter") and painted[y1:y2, x1:x2].sum() > rules.max_cover * area:
        return "mark_covers_its_object", painted
    under = pixels[painted].mean(axis=0)
    if contrast(PALETTE[mark.colour], under) < rules.min_contrast:
        return "mark_low_contrast", painted
    if any((painted & other).any() for other in others):
        return "marks_overlap", painted
    return None, painted


def draw(image, marks: list[Mark], rules: Legibility = Legibility()):
    """A copy of ``image`` (PIL, RGB) with each mark painted in its colour (labels carry their text)."""
    from PIL import Image, ImageDraw

    out = image.convert("RGB").copy()
    for mark in marks:
        layer = Image.fromarray((footprint(mark, out.size, rules) * 255).astype(np.uint8))
        out.paste(PALETTE[mark.colour], mask=layer)
        if mark.shape in ("number", "letter"):
            left, top, right, bottom = _tag(mark, out.size)
            ink = (0, 0, 0) if _luminance(PALETTE[mark.colour]) > 0.4 else (255, 255, 255)
            ImageDraw.Draw(out).text(((left + right) / 2, (top + bottom) / 2), mark.mark_id, fill=ink,
                                     font=_font(bottom - top), anchor="mm")
    return out


def encode(image) -> tuple[bytes, str]:
    """(PNG bytes, their sha256): fixed settings, no metadata, so the same pixels give the same file."""
    buf = io.BytesIO()
    image.save(buf, format="PNG", optimize=False, compress_level=6)
    data = buf.getvalue()
    return data, hashlib.sha256(data).hexdigest()


def contrast(a, b) -> float:
    """The WCAG contrast ratio of two RGB colours (1 to 21)."""
    la, lb = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def _luminance(rgb) -> float:
    def channel(c: float) -> float:
        c = c / 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(float(c)) for c in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def _tag(mark: Mark, size: tuple[int, int]) -> tuple[int, int, int, int]:
    """The label's rectangle: at the box's top-left corner, its height a 24th of the image's shorter side (at least
    12 pixels), wide enough for its text."""
    height = max(12, round(min(size) / 24))
    width = round(height * (0.7 * len(mark.mark_id) + 0.4))
    left, top = int(mark.box[0]), int(mark.box[1])
    return left, top, left + width, top + height


def _leaves_image(mark: Mark, size: tuple[int, int]) -> bool:
    w, h = size
    if mark.shape in ("number", "letter"):
        left, top, right, bottom = _tag(mark, size)
        return left < 0 or top < 0 or right > w or bottom > h
    if mark.shape == "arrow":
        (sx, sy), _ = _arrow_ends(mark.box, size)
        return not (0 <= sx <= w and 0 <= sy <= h)
    x1, y1, x2, y2 = mark.box
    return x1 < 0 or y1 < 0 or x2 > w or y2 > h


def _arrow_ends(box, size) -> tuple[tuple[float, float], tuple[float, float]]:
    """From a point outside the box, up and to the left of it (or below and to the right when there is no room),
    to the middle of the box's nearer corner region."""
    x1, y1, x2, y2 = box
    length = min(size) / 8
    if x1 - length >= 0 and y1 - length >= 0:
        return (x1 - length, y1 - length), (x1 + (x2 - x1) * 0.15, y1 + (y2 - y1) * 0.15)
    return (x2 + length, y2 + length), (x2 - (x2 - x1) * 0.15, y2 - (y2 - y1) * 0.15)


def _arrow(pen, box, size, width) -> None:
    (sx, sy), (ex, ey) = _arrow_ends(box, size)
    pen.line([(sx, sy), (ex, ey)], fill=255, width=width)
    dx, dy = ex - sx, ey - sy
    norm = max(1e-9, (dx * dx + dy * dy) ** 0.5)
    ux, uy = dx / norm, dy / norm
    head = width * 4
    left = (ex - ux * head - uy * head / 2, ey - uy * head + ux * head / 2)
    right = (ex - ux * head + uy * head / 2, ey - uy * head - ux * head / 2)
    pen.polygon([(ex, ey), left, right], fill=255)


def _contour(layer, mark: Mark, width: int) -> None:
    """The mask's outline: the mask minus its erosion by ``width`` pixels."""
    from PIL import Image, ImageFilter
    from pycocotools import mask as mask_utils

    if not mark.mask:
        return
    decoded = mask_utils.decode({"size": mark.mask["size"], "counts": mark.mask["counts"].encode()})
    shape = Image.fromarray(decoded * 255).resize(layer.size, Image.NEAREST)
    inner = shape.filter(ImageFilter.MinFilter(2 * width + 1))
    edge = np.asarray(shape).astype(bool) & ~np.asarray(inner).astype(bool)
    layer.paste(Image.fromarray((edge * 255).astype(np.uint8)))


def _font(height: int):
    from PIL import ImageFont

    return ImageFont.load_default(size=max(8, int(height * 0.8)))
