"""Visual prompts: a question names a region by a mark drawn on a copy of the image ("region 2", "the red ellipse")
instead of by its coordinates (render option ``visual_prompts``).

For a dialogue asked with marks, every object the questions mention by one box gets a `rcforge.core.marks.Mark`: a shape
and a colour drawn from the recipe's lists by the dialogue's own rng (one shape per image, a different colour per
mark; numbers and letters count up), tried until it is legible (`rcforge.core.marks.legibility`: inside the image, not
covering its object, in contrast with what lies under it, apart from the other marks). The marked image is drawn,
encoded as PNG with fixed settings and named by its sha256 (``OUT/images_vp/<sha256>.png``): the same recipe gives
the same bytes on any runner and any number of workers. A dialogue whose marks cannot all be made legible (or whose
image cannot be read) is asked with coordinates instead, and the reason is counted (build ledger
``visual_prompts``).

Pure functions of (settings, image, marked objects, rng); the renderer decides which dialogues are marked, the
build writes the files.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np

from rcforge.core import marks
from rcforge.core.config import number

#: the folder of OUT that holds the marked images, and the prefix of a dialogue's ``image_vp`` path
FOLDER = "images_vp"
#: the key of a rendered dialogue that carries its marked image's bytes to the build, which writes the file
PNG_KEY = "_image_vp_png"
#: tries of a shape and colour for one mark before the dialogue is asked with coordinates instead
TRIES = 4
#: the shape that shows an area rather than an object: its box, exactly (an ellipse inscribed in it would leave
#: out the corners, where objects the count includes may lie)
AREA_SHAPES = ("box",)
#: what a question calls a mark of each shape ({c}: its colour, {i}: its id)
NAMES = {"number": "region {i}", "letter": "region {i}", "box": "the {c} box", "ellipse": "the {c} ellipse",
         "contour": "the {c} outline", "arrow": "the region the {c} arrow points at"}


@dataclass(frozen=True)
class VisualPromptSettings:
    """``render.visual_prompts``.

    rate: the share of the dialogues that can be asked with marks (a task variant with a ``_marked`` template)
      that are.
    both: also write each such dialogue with coordinates (id without ``/vp``), so a corpus trains both modes.
    shapes, colours: what marks are drawn with (`rcforge.core.marks.SHAPES`, `rcforge.core.marks.PALETTE`); a contour
      only for an object with a mask.
    max_cover, min_contrast: the legibility rules (`rcforge.core.marks.Legibility`).
    """

    rate: float = number(1.0, 0, 1)
    both: bool = False
    shapes: tuple[str, ...] = ("number", "box", "ellipse", "contour", "arrow")
    colours: tuple[str, ...] = ("red", "green", "blue", "yellow", "orange", "purple", "cyan", "magenta")
    max_cover: float = number(0.5, 0, 1)
    min_contrast: float = number(2.0, 1, 21)

    def __post_init__(self):
        bad = [s for s in self.shapes if s not in marks.SHAPES] + [c for c in self.colours if c not in marks.PALETTE]
        if bad or not self.shapes or not self.colours:
            raise ValueError(f"{bad[0]!r} is not a mark shape or colour (shapes: {', '.join(marks.SHAPES)}; colours: "
                             f"{', '.join(marks.PALETTE)})" if bad else "shapes and colours must not be empty")

    @property
    def rules(self) -> marks.Legibility:
        return marks.Legibility(max_cover=self.max_cover, min_contrast=self.min_contrast)


@dataclass(frozen=True)
class Marked:
    """A dialogue's marks, the annotation each marks (``refs``: "object:12", "region:5"), what the questions call
    each (by annotation), and the marked image (PNG bytes, their sha256)."""

    marks: tuple[marks.Mark, ...]
    refs: tuple[str, ...]
    png: bytes
    sha256: str

    @property
    def names(self) -> dict[str, str]:
        return {ref: name(m) for ref, m in zip(self.refs, self.marks)}

    @property
    def path(self) -> str:
        """The image's path relative to OUT."""
        return f"{FOLDER}/{self.sha256}.png"

    def rows(self) -> list[dict]:
        """The dialogue's ``marks`` column (`rcforge.schemas.MARK`)."""
        return [{**m.row(), "annotation": ref} for ref, m in zip(self.refs, self.marks)]


def name(mark: marks.Mark) -> str:
    return NAMES[mark.shape].format(c=mark.colour, i=mark.mark_id)


def place(image, objects: list[dict], settings: VisualPromptSettings, rng: random.Random) -> Marked | str:
    """The marks of ``objects`` (each ``{"id", "ref", "box", "mask"}``, pixel xyxy, in question order) on
    ``image`` (PIL, RGB), or the reason they cannot all be made legible (the last one tried)."""
    size = image.size
    pixels = np.asarray(image.convert("RGB"))
    rules = settings.rules
    # an area (no object: counting's "area:...") is shown by its box; a tag or an arrow would point at a thing
    shapes = [s for s in settings.shapes if s in AREA_SHAPES or not any(o["ref"].startswith("area:")
                                                                        for o in objects)]
    rng.shuffle(shapes)
    reason = "mark_no_shape"
    for shape in shapes:  # one shape for the whole image; the next when a mark of this one cannot be read
        placed, footprints, colours = [], [], list(settings.colours)
        rng.shuffle(colours)
        for k, obj in enumerate(objects):
            mark = _legible(shape, k, obj, size, pixels, footprints, colours, rules)
            if isinstance(mark, str):
                reason = mark
                break
            placed.append(mark)
        else:
            drawn = marks.draw(image, placed, rules)
            png, sha = marks.encode(drawn)
            return Marked(tuple(placed), tuple(o["ref"] for o in objects), png, sha)
    return reason


def _legible(shape, k, obj, size, pixels, footprints, colours, rules) -> marks.Mark | str:
    """A legible mark of ``shape`` for the k-th object in one of the colours left (taken from ``colours``), its
    footprint added to ``footprints``; else the reason the last try failed."""
    if shape == "contour" and not obj.get("mask"):
        return "mark_no_mask"
    mark_id = chr(ord("A") + k % 26) if shape == "letter" else str(k + 1)
    reason = "mark_no_colour"
    for colour in list(colours)[:TRIES]:
        mark = marks.Mark(mark_id, shape, colour, int(obj["id"]), tuple(obj["box"]), obj.get("mask"))
        reason, painted = marks.legibility(mark, size, pixels, footprints, rules)
        if reason is None:
            colours.remove(colour)
            footprints.append(painted)
            return mark
    return reason
