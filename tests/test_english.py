"""Plural category names in questions ("how many plugs"), and the templates that ask with them."""

import pytest

from rcforge import templating
from rcforge.english import plural


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
    templates = templating.load(None)
    variant = templates.variant("counting", "by_name")
    plural_questions = [q for q in variant.questions.values() if "how many" in templating.render(q, {"name": "plug"})
                        .lower() and "instances" not in templating.render(q, {"name": "plug"})]
    assert plural_questions
    for q in plural_questions:
        text = templating.render(q, {"name": "plug"})
        assert "plugs" in text and "plug " not in text.replace("plugs", ""), text
