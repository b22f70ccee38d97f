import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rcforge import schemas
from rcforge.core.boxes import (
    box_message,
    canonical_box,
    check_boxes,
    check_point,
    iou,
    voc_to_xyxy,
    xywh_to_xyxy,
)
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


# edges on and around a 10x7 image, plus the values that break boxes: infinities, NaN, huge, negative zero
_EDGE = st.one_of(st.sampled_from([0.0, -0.0, 7.0, 10.0, -1e-9, 1e308, -1e308, math.inf, -math.inf, math.nan]),
                  st.floats(-20, 30, allow_nan=False), st.integers(-5, 15).map(float))


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(_EDGE, _EDGE, _EDGE, _EDGE), min_size=1, max_size=8))
def test_the_columnar_box_rule_is_canonical_box_over_arrays(boxes):
    """Visual Genome's columnar lane (`check_boxes`) and every other reader (`canonical_box`) keep, clip and
    reject the same boxes, with the same reason and the same message."""
    cols = [np.array(c, dtype=np.float64) for c in zip(*boxes)]
    n = len(boxes)
    reasons, clipped, was_clipped = check_boxes(*cols, np.full(n, 10.0), np.full(n, 7.0))
    for i, box in enumerate(boxes):
        try:
            expected, repair = canonical_box(box, 10, 7, field="xywh")
        except BadRecord as err:
            assert reasons[i] == err.reason, box
            assert box_message(reasons[i], box, 10.0, 7.0, "xywh") == err.message
            continue
        assert reasons[i] == "", box
        assert tuple(clipped[i]) == expected and bool(was_clipped[i]) == (repair == "box_clipped"), box


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
