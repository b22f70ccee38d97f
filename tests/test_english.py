"""Plural category names in questions ("how many plugs"), and the templates that ask with them."""

import pytest

from rcforge.render import templating
from rcforge.render.english import plural


@pytest.mark.parametrize("name, expected", [
    ("plug", "plugs"), ("tree trunk", "tree trunks"), ("person", "people"), ("Person", "People"),
    ("bus", "buses"), ("glass", "glasses"), ("box", "boxes"), ("bench", "benches"), ("baby", "babies"),
    ("toy", "toys"), ("knife", "knives"), ("shelf", "shelves"), ("tomato", "tomatoes"), ("photo", "photos"),
    ("mouse", "mice"), ("sheep", "sheep"), ("pair of skis", "pairs of skis"), ("traffic light", "traffic lights"),
    # already plural: unchanged
    ("glasses", "glasses"), ("jeans", "jeans"), ("clouds", "clouds"), ("people", "people"), ("Sneakers", "Sneakers"),
])
def test_plural(name, expected):
    assert plural(name) == expected


def test_counting_by_name_asks_in_the_plural():
    variant = templating.load(None).variant("counting", "by_name")
    text = {qid: templating.render(q, {"name": "plug"}) for qid, q in variant.questions.items()}
    for qid in ("q01", "q02", "q03", "q05", "q07", "q10"):  # "how many plug ..." was the bug
        assert "plugs" in text[qid], text[qid]
    assert not any("many plug " in t for t in text.values())
