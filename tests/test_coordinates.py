"""Coordinate formats: known strings, and the property that every printed box parses back to within half a unit
of its last digit of the true normalized value."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rcforge import coordinates
from rcforge.errors import RecipeError


def test_pink_known_values():
    f = coordinates.get("pink")
    assert f.box((200, 200, 400, 500), 900, 600) == "[0.222,0.333,0.444,0.833]"
    assert f.point_text((450, 150), 900, 600) == "[0.500,0.250]"
    # several boxes for one mention: ascending area
    assert f.boxes_text([(0, 0, 900, 600), (90, 120, 270, 240)], 900, 600) == \
        "[0.100,0.200,0.300,0.400] [0.000,0.000,1.000,1.000]"


def test_shikra_pads_to_a_square():
    f = coordinates.get("shikra")
    # 800x600: side 800, the short side (height) is offset by (800 - 600) // 2 = 100
    assert f.box((0, 0, 800, 600), 800, 600) == "[0.000,0.125,1.000,0.875]"
    assert f.boxes_text([(0, 0, 400, 300), (400, 300, 800, 600)], 800, 600) == \
        "[0.000,0.125,0.500,0.500;0.500,0.500,1.000,0.875]"


def test_qwen_and_minigpt():
    assert coordinates.get("qwen").box((0, 0, 450, 600), 900, 600) == "<box>(0,0),(500,999)</box>"
    assert coordinates.get("minigpt_v2").box((90, 60, 450, 600), 900, 600) == "{<10><10><50><100>}"


def test_unknown_format_names_the_choices():
    with pytest.raises(RecipeError, match="registered: minigpt_v2, pink, qwen, shikra"):
        coordinates.get("llava")


sizes = st.integers(min_value=1, max_value=4000)


@st.composite
def box_and_size(draw):
    w, h = draw(sizes), draw(sizes)
    x1 = draw(st.floats(0, w, allow_nan=False))
    x2 = draw(st.floats(x1, w, allow_nan=False))
    y1 = draw(st.floats(0, h, allow_nan=False))
    y2 = draw(st.floats(y1, h, allow_nan=False))
    return (x1, y1, x2, y2), w, h


@pytest.mark.parametrize("name", sorted(coordinates.FORMATTERS))
@settings(max_examples=300, deadline=None)
@given(data=box_and_size())
def test_printed_boxes_parse_back_within_half_a_unit(name, data):
    box, w, h = data
    f = coordinates.get(name)
    (parsed,) = f.parse_boxes(f.box(box, w, h))
    truth = f.normalize(box, w, h)
    for printed, true in zip(parsed, truth):
        top_edge = name == "qwen" and true >= 0.9995  # [0, 1000): 1.0 is written 999
        assert abs(printed - true) <= f.unit / 2 + 1e-9 or top_edge
        assert 0.0 <= printed <= 1.0
