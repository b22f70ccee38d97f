"""Visual-prompt marks (groundwork of issue 21): drawn deterministically, checked against the marks table, and
refused with a reason where they could not be read."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from rcforge.core import marks, masks
from rcforge.core.marks import Legibility, Mark

from conftest import SAMPLE

PHOTO = SAMPLE / "visual_genome" / "images" / "1.jpg"  # a real VG photo, 800x600


def _photo():
    return Image.open(PHOTO).convert("RGB")


def _octagon_mask(box, size):
    x1, y1, x2, y2 = box
    w, h = x2 - x1, y2 - y1
    poly = [[x1 + w * 0.3, y1, x1 + w * 0.7, y1, x2, y1 + h * 0.3, x2, y1 + h * 0.7, x1 + w * 0.7, y2,
             x1 + w * 0.3, y2, x1, y1 + h * 0.7, x1, y1 + h * 0.3]]
    return masks.from_segmentation(poly, *size, box).rle


def _marks(size):
    boxes = [(60, 80, 260, 400), (420, 150, 560, 330), (600, 300, 760, 560), (300, 420, 420, 560)]
    shapes = ["number", "box", "ellipse", "contour"]
    colours = ["red", "yellow", "cyan", "magenta"]
    return [Mark(str(i + 1), shape, colour, i, box, _octagon_mask(box, size) if shape == "contour" else None)
            for i, (shape, colour, box) in enumerate(zip(shapes, colours, boxes))]


def test_the_same_marks_give_the_same_bytes():
    image = _photo()
    first = marks.encode(marks.draw(image, _marks(image.size)))
    second = marks.encode(marks.draw(_photo(), _marks(image.size)))
    assert first == second and len(first[1]) == 64
    other = marks.encode(marks.draw(image, _marks(image.size)[:2]))
    assert other[1] != first[1]


@pytest.mark.parametrize("shape", ["number", "letter", "box", "ellipse", "arrow", "contour"])
def test_each_mark_is_where_its_table_row_says(shape):
    """Recomputed from the marks table (shape, colour, object) and the object's box and mask, the mark's pixels in
    the drawn image are its colour (a label's text aside), and nothing is drawn outside marks."""
    image = _photo()
    box = (300, 200, 500, 420)
    mark = Mark("B" if shape == "letter" else "3", shape, "red", 7, box,
                _octagon_mask(box, image.size) if shape == "contour" else None)
    drawn = np.asarray(marks.draw(image, [mark])).astype(int)
    painted = marks.footprint(mark, image.size)
    assert painted.sum() > 50
    colour = np.array(marks.PALETTE["red"])
    hits = (np.abs(drawn[painted] - colour).sum(axis=1) == 0).mean()
    assert hits > (0.5 if shape in ("number", "letter") else 0.99)  # a label's text is drawn over its tag
    untouched = np.asarray(image).astype(int)[~painted]
    assert (drawn[~painted] == untouched).all()
    if shape == "contour":  # the outline follows the mask, inside the box
        ys, xs = np.nonzero(painted)
        assert xs.min() >= box[0] - 1 and xs.max() <= box[2] + 1 and ys.min() >= box[1] - 1


def test_a_mark_that_cannot_be_read_is_refused_with_its_reason():
    size = (200, 100)
    plain = np.full((100, 200, 3), 255, dtype=np.uint8)  # a white image
    rules = Legibility()
    cases = [
        (Mark("1", "number", "red", 1, (195.0, 95.0, 199.0, 99.0)), [], "mark_outside_image"),
        (Mark("12", "number", "red", 1, (10.0, 10.0, 22.0, 20.0)), [], "mark_covers_its_object"),
        (Mark("1", "box", "white", 1, (10.0, 10.0, 80.0, 60.0)), [], "mark_low_contrast"),
        (Mark("1", "box", "yellow", 1, (10.0, 10.0, 80.0, 60.0)), [], "mark_low_contrast"),  # yellow on white
        (Mark("2", "ellipse", "blue", 2, (10.0, 10.0, 80.0, 60.0)),
         [marks.footprint(Mark("1", "box", "red", 1, (10.0, 10.0, 80.0, 60.0)), size)], "marks_overlap"),
        (Mark("1", "arrow", "red", 1, (0.0, 0.0, 199.0, 99.0)), [], "mark_outside_image"),
    ]
    for mark, others, reason in cases:
        assert marks.legibility(mark, size, plain, others, rules)[0] == reason, mark
    readable = Mark("1", "box", "blue", 1, (10.0, 10.0, 80.0, 60.0))
    assert marks.legibility(readable, size, plain, [], rules)[0] is None


def test_contrast_is_the_wcag_ratio():
    assert marks.contrast((0, 0, 0), (255, 255, 255)) == pytest.approx(21.0)
    assert marks.contrast((255, 0, 0), (255, 0, 0)) == pytest.approx(1.0)
