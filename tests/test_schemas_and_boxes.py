import json
import math

import pytest

from rcforge import schemas
from rcforge.core.boxes import canonical_box, check_point, iou, voc_to_xyxy, xywh_to_xyxy
from rcforge.core.errors import BadRecord


@pytest.mark.parametrize("name", sorted(schemas.SCHEMAS))
def test_committed_schema_matches_declared(name):
    committed = json.loads(schemas.committed_path(name).read_text())
    assert committed == schemas.schema_to_jsonable(schemas.SCHEMAS[name]), (
        "schema changed: run `python -m rcforge.schemas` and commit the JSON")


def test_xywh_and_voc_conventions():
    assert xywh_to_xyxy(10, 20, 30, 40) == (10.0, 20.0, 40.0, 60.0)
    # Flickr30K / VOC: 1-based inclusive pixels 1..10 are the 0-based edges 0..10
    assert voc_to_xyxy(1, 1, 10, 20) == (0.0, 0.0, 10.0, 20.0)


def test_box_inside_is_kept_unchanged():
    assert canonical_box((1, 2, 3, 4), 10, 10) == ((1.0, 2.0, 3.0, 4.0), None)


def test_box_sticking_out_is_clipped_and_reported():
    box, repair = canonical_box((-5, 2, 12, 4), 10, 10)
    assert box == (0.0, 2.0, 10.0, 4.0)
    assert repair == "box_clipped"


@pytest.mark.parametrize("box, reason", [
    ((5, 5, 5, 9), "box_zero_area"),
    ((5, 5, 4, 9), "box_negative_size"),
    ((5, math.nan, 6, 9), "box_not_finite"),
    ((20, 20, 30, 30), "box_outside_image"),
    ((-9, 0, 0, 5), "box_outside_image"),
])
def test_bad_boxes_are_rejected_with_a_reason(box, reason):
    with pytest.raises(BadRecord) as err:
        canonical_box(box, 10, 10)
    assert err.value.reason == reason


def test_non_numeric_coordinate_names_the_field():
    with pytest.raises(BadRecord) as err:
        xywh_to_xyxy(1, "a", 3, 4, field="bbox")
    assert err.value.field == "bbox.y"


def test_point_outside_image_is_rejected():
    assert check_point(5, 5, 10, 10) == (5.0, 5.0)
    with pytest.raises(BadRecord):
        check_point(11, 5, 10, 10)


def test_iou():
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(50 / 150)
    assert iou((0, 0, 1, 1), (2, 2, 3, 3)) == 0.0
