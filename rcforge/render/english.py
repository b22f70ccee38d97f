"""English word forms for questions built from category names: "how many plugs", not "how many plug".

Category names come from fixed vocabularies (COCO, Objects365, LVIS) and from Visual Genome's free text, mostly
short noun phrases. `plural` covers them with the regular rules and a table of the irregular nouns those
vocabularies hold. (``inflect`` does this generally, but importing it takes 2 s, which every worker process that
renders would pay.)
"""

from __future__ import annotations

import functools
import re

#: irregular plurals of nouns that appear in detection and scene-graph vocabularies
IRREGULAR = {"person": "people", "man": "men", "woman": "women", "child": "children", "mouse": "mice",
             "foot": "feet", "tooth": "teeth", "goose": "geese", "ox": "oxen", "louse": "lice",
             "cactus": "cacti", "fungus": "fungi", "octopus": "octopuses", "bus": "buses", "die": "dice",
             "knife": "knives", "leaf": "leaves", "shelf": "shelves", "wolf": "wolves", "loaf": "loaves",
             "half": "halves", "life": "lives", "wife": "wives", "calf": "calves", "scarf": "scarves",
             "thief": "thieves", "hoof": "hooves", "tomato": "tomatoes", "potato": "potatoes", "hero": "heroes",
             "mango": "mangoes", "volcano": "volcanoes", "echo": "echoes", "torpedo": "torpedoes",
             "domino": "dominoes", "mosquito": "mosquitoes", "index": "indices", "matrix": "matrices",
             "criterion": "criteria", "phenomenon": "phenomena", "antenna": "antennas", "lens": "lenses",
             "gas": "gases", "iris": "irises", "canvas": "canvases", "walrus": "walruses", "bonus": "bonuses",
             "campus": "campuses", "virus": "viruses", "apparatus": "apparatuses", "chassis": "chassis",
             "dress": "dresses", "glass": "glasses", "grass": "grasses", "cross": "crosses"}
#: the same in the singular and the plural, or only ever plural
UNCHANGED = {"sheep", "deer", "fish", "moose", "bison", "salmon", "trout", "shrimp", "squid", "aircraft",
             "spacecraft", "series", "species", "cattle", "people", "police", "glasses", "jeans", "pants",
             "shorts", "trousers", "scissors", "tongs", "pliers", "binoculars", "goggles", "headphones",
             "earphones", "sunglasses", "eyeglasses", "tweezers", "pajamas", "clothes", "news", "chopsticks",
             "skis", "stairs", "steps", "gloves", "shoes", "boots", "sneakers", "slippers", "socks", "sandals",
             "earrings", "bleachers", "dishes", "vegetables", "utensils", "supplies", "leaves", "men", "women",
             "children", "feet", "teeth", "mice", "geese"}
_VOWELS = set("aeiou")


def _word(word: str) -> str:
    lower = word.lower()
    if lower in UNCHANGED:
        return word
    if lower in IRREGULAR:
        plural = IRREGULAR[lower]
        return plural.capitalize() if word[:1].isupper() else plural
    if lower.endswith(("ss", "us", "is", "x", "z", "ch", "sh")):
        return word + "es"
    if lower.endswith("s"):  # a name ending in a plain s is already plural ("clouds", "skis")
        return word
    if lower.endswith("y") and len(lower) > 1 and lower[-2] not in _VOWELS:
        return word[:-1] + "ies"
    return word + "s"


@functools.lru_cache(maxsize=65536)
def plural(name: str) -> str:
    """The plural of a category name: the head noun of a phrase changes ("traffic light" -> "traffic lights",
    "pair of skis" -> "pairs of skis"), a name already plural stays ("glasses", "clouds")."""
    name = " ".join(str(name).split())
    if not name:
        return name
    of = re.search(r"\s(of|with|for|on|in)\s", name)
    if of:  # the head noun comes before the preposition
        return plural(name[:of.start()]) + name[of.start():]
    head, _, last = name.rpartition(" ")
    return (head + " " if head else "") + _word(last)


#: mass nouns of scene-graph vocabularies: stuff, not things, so "how many" has no answer ("how many skies")
UNCOUNTABLE = {"sky", "water", "grass", "snow", "sand", "ground", "dirt", "mud", "hair", "fur", "floor", "ceiling",
               "field", "fog", "smoke", "steam", "air", "ocean", "sea", "pavement", "asphalt", "concrete", "gravel",
               "foliage", "vegetation", "greenery", "grassland", "background", "daylight", "sunlight", "shade",
               "rice", "milk", "coffee", "juice", "sauce", "soup", "cheese", "meat", "ice", "rust", "paint",
               "wood", "metal", "plastic", "clothing", "furniture", "luggage", "traffic", "scenery",
               "weather", "lighting", "writing", "text", "graffiti", "moss", "wallpaper"}


def countable(name: str) -> bool:
    """False for a name whose head noun is a mass noun (`UNCOUNTABLE`: "sky", "green grass"); counting
    never asks about them."""
    words = " ".join(str(name).lower().split())
    of = re.search(r"\s(of|with|for|on|in)\s", words)
    head = (words[:of.start()] if of else words).rpartition(" ")[2]
    return bool(head) and head not in UNCOUNTABLE
