"""Preview internals: boxes drawn where the text says, in the text's colours."""

import pytest

from rcforge.inspect.preview import COLOURS, colour_text, draw, point_colour
from rcforge.render import coordinates


@pytest.mark.parametrize("name", sorted(coordinates.FORMATTERS))
def test_normalized_boxes_map_back_to_pixels(name):
    fmt = coordinates.get(name)
    for w, h in ((800, 600), (333, 500)):
        box = (12.0, 30.0, 200.0, 310.0)
        assert fmt.to_pixels(fmt.normalize(box, w, h), w, h) == pytest.approx(box)


def test_each_printed_box_and_point_gets_the_colour_drawn_for_it():
    fmt = coordinates.get("pink")
    text, index, point = colour_text("Where is [0.1,0.2,0.3,0.4] next to [0.5,0.5,0.6,0.6] at [0.500,0.250]?", fmt,
                                     0, 800, 600, boxes=2)
    assert (index, point) == (2, 1)
    assert f'<b style="color:{COLOURS[0]}">[0.1,0.2,0.3,0.4]</b>' in text
    assert f'<b style="color:{COLOURS[1]}">[0.5,0.5,0.6,0.6]</b>' in text
    assert f'<b style="color:{point_colour(2, 0)}">[0.500,0.250]</b>' in text  # as draw() fills the point


@pytest.mark.parametrize("name", sorted(coordinates.FORMATTERS))
def test_every_formats_mentions_are_coloured_one_colour_per_box(name):
    """Each printed mention takes the colours of its boxes in order; a point takes none."""
    fmt = coordinates.get(name)
    boxes = [(0, 0, 100, 100), (200, 100, 400, 300)]
    phrase = "two cats" if fmt.ties else None
    answer = fmt.json_answer([(phrase, boxes)], 640, 480) if fmt.json_kinds else fmt.boxes_text(boxes, 640, 480, phrase)
    text = f"Find {fmt.box((10, 10, 50, 50), 640, 480)} near {fmt.point_text((5, 5), 640, 480)}. {answer}"
    html, index, point = colour_text(text, fmt, 0, 640, 480, boxes=3, groups=iter([1, 2]))  # placeholders: 1, 2
    assert (index, point) == (3, 1)
    assert f'color:{COLOURS[0]}' in html and f'color:{COLOURS[1]}' in html
    assert f'color:{point_colour(3, 0)}' in html


def test_a_missing_image_is_a_blank_canvas_of_its_aspect_with_the_boxes():
    import base64
    import io

    from PIL import Image

    row = {"coordinates": "pink", "width": 400, "height": 200, "boxes": [[0.0, 0.0, 0.5, 1.0]],
           "points": [[0.75, 0.5]]}
    for data in (None, b"not an image"):
        url, found = draw(data, row)
        assert not found
        img = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("RGB")
        assert img.width == 2 * img.height  # the record's aspect
        r, g, b = img.getpixel((1, img.height // 2))  # the box's left edge, in the first colour
        assert (r, g, b) != img.getpixel((img.width // 3, img.height // 2))


def test_a_sources_note_is_shown_on_its_cards(sample_build, tmp_path):
    """The sample's Flickr30K boxes are hand-placed: its recipe says so, and every Flickr30K card shows it."""
    import json
    import re

    from rcforge import cli

    page = tmp_path / "preview.html"
    assert cli.main(["preview", str(sample_build), "--html", str(page), "--n", "1000"]) == 0
    text = page.read_text()
    cards = re.findall(r'<div class="card" data-id="([^"]+)">(.*?)</div></div>', text)
    flickr = [body for key, body in cards if key.startswith("flickr30k/")]
    assert flickr and all("synthetic boxes" in body for body in flickr)
    lvis = [body for key, body in cards if key.startswith("lvis/")]
    assert lvis and all("synthetic masks" in body for body in lvis)
    assert not any('class="note"' in body for key, body in cards if not key.startswith(("flickr30k/", "lvis/")))
    notes = json.loads((sample_build / "manifest.json").read_text())["recipe"]["notes"]
    assert sorted(notes) == ["flickr30k_entities", "lvis"]


def test_the_trainer_view_of_a_placeholder_format_draws_its_side_table():
    """A placeholder format prints no numbers: --frame draws the boxes the side table gives the trainer."""
    from PIL import Image

    from rcforge.inspect.preview import trainer_view

    row = {"width": 200, "height": 100, "boxes": [[0.1, 0.2, 0.5, 0.8]], "points": [],
           "conversations": [{"from": "gpt", "value": "<p>a cat</p><roi><ground_box></roi>"}]}
    img, boxes, points = trainer_view(Image.new("RGB", (200, 100)), row, coordinates.get("groma"))
    assert boxes == [[20.0, 20.0, 100.0, 80.0]] and points == [] and img.size == (200, 100)
