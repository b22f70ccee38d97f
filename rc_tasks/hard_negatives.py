"""Hard negatives: a referring expression with one word changed so that nothing in the image fits it.

"The red car" becomes "the blue car", "the second man from left" becomes "the fifth man from left". Such an
expression is a negative only if no box of the image fits it, and that is written only where the image's labels
prove it; otherwise the attempt is filtered, with its reason, and counted (the build ledger's ``hard_negatives``).
What can be proven differs by source:

- Visual Genome (basis ``vg_attributes``): a colour word of a region description is changed to a colour that
  no object of the named kind has. Proven against VG's annotations: every object carrying the phrase's noun as a
  name has at least one colour annotated, and none has the new one (an object with no colour annotated could be
  any colour, so the attempt is filtered). VG marks only the objects its annotators chose, so the proof is
  relative to the annotated objects, as every VG fact in rcforge is.
- RefCOCO (basis ``exhaustive_count``; no attributes are annotated): an ordinal position ("second from left")
  is changed to one beyond the number of objects of the referred category. COCO boxes every instance of its
  classes, so the count is proven where the reader vouched for the image's labels (its record lists the classes
  proven absent) and no crowd region of the category could hide more instances.

Every changed expression carries its proof in the provenance (``hard_negative:color:<colour>:<noun>`` or
``hard_negative:ordinal:<k>:<category>``), which `holds` checks again against the image record: the rule that
writes a hard negative is the rule that ``rcforge validate`` applies.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

#: the template variant of a hard negative ("Where is the blue car?" -> nothing fits)
VARIANT = "absent_expression"
#: each basis, and the sources whose labels give it
BASES = {"vg_attributes": ("visual_genome",), "exhaustive_count": ("refcoco",)}
#: why an attempt was not written (the build ledger counts each)
REASONS = {
    "no_changeable_word": "the expression holds no colour word (Visual Genome) or ordinal position (RefCOCO)",
    "object_not_found": "no object of the image carries the noun the colour describes",
    "color_not_annotated": "an object of that kind has no colour annotated: it could be any colour",
    "no_color_left": "every colour is annotated on some object of that kind",
    "labels_not_whole": "the image's labels are not vouched whole (an annotation did not read)",
    "crowd_region": "a crowd region of the category could hide more instances",
    "no_ordinal_left": "the category has as many instances as there are ordinals",
}

#: colour words, each with the colour it names (grey and gray are one)
COLORS = {"red": "red", "blue": "blue", "green": "green", "yellow": "yellow", "orange": "orange",
          "purple": "purple", "pink": "pink", "brown": "brown", "black": "black", "white": "white",
          "gray": "gray", "grey": "gray"}
_PRINTED_COLORS = sorted(set(COLORS.values()))
ORDINALS = ("first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "tenth")
_NUMERIC_ORDINALS = {"1st": 1, "2nd": 2, "3rd": 3, "4th": 4, "5th": 5, "6th": 6, "7th": 7, "8th": 8, "9th": 9,
                     "10th": 10}
_SIDES = {"left", "right", "top", "bottom"}
_WORD = re.compile(r"[A-Za-z0-9]+")
#: words that may stand between a colour word and its noun ("red and white car", "dark blue shirt"); any other
#: word ends the search, so "an orange on the table" never reads as a coloured table
_BETWEEN = {"and", "dark", "light", "bright", "pale"}


@dataclass(frozen=True)
class Changed:
    """A proven hard negative: the changed expression, its basis, and its proof (a provenance item)."""

    expression: str
    basis: str
    proof: str


def possible(source: str) -> bool:
    """Whether any basis proves hard negatives in ``source``'s records (elsewhere none is tried or counted)."""
    return any(source in sources for sources in BASES.values())


def legal(source: str, basis: str) -> bool:
    """Whether ``basis`` proves a hard negative in ``source``'s records."""
    return source in BASES.get(basis, ())


def change(record: dict, expression: str, rng: random.Random, object_id: int | None = None) -> Changed | str:
    """The proven hard negative of ``expression`` (a region phrase, or a sentence of the ref to ``object_id``) in
    ``record``, or the reason (a key of `REASONS`) none can be written."""
    if record["source"] == "refcoco" and object_id is not None:
        return _ordinal(record, expression, rng, object_id)
    if record["source"] == "visual_genome":
        return _color(record, expression, rng)
    return "no_changeable_word"


def holds(record: dict, proof: str) -> str | None:
    """None when ``proof`` (a `Changed.proof`) holds on the image record, else what contradicts it."""
    _, kind, value, name = (proof.split(":", 3) + ["", "", ""])[:4]
    if kind == "color" and value in _PRINTED_COLORS:
        named = _named(record, name)
        if not named:
            return f"no object of the image is named {name!r}"
        for obj in named:
            colors = _colors(obj)
            if not colors:
                return f"object {obj['id']} ({name}) has no colour annotated"
            if value in colors:
                return f"object {obj['id']} ({name}) is {value}"
        return None
    if kind == "ordinal" and value.isdigit():
        return _count_contradiction(record, name, int(value))
    return f"{proof!r} is no proof rcforge writes"


def _color(record: dict, phrase: str, rng: random.Random) -> Changed | str:
    words = list(_WORD.finditer(phrase))
    lowered = [w.group().lower() for w in words]
    for i, word in enumerate(lowered):
        if word not in COLORS:
            continue
        noun = _noun(record, lowered[i + 1:])
        if noun is None:
            return "object_not_found"
        named = _named(record, noun)
        if any(not _colors(obj) for obj in named):
            return "color_not_annotated"
        taken = {COLORS[word]}.union(*(_colors(obj) for obj in named))
        left = [c for c in _PRINTED_COLORS if c not in taken]
        if not left:
            return "no_color_left"
        new = rng.choice(left)
        span = words[i].span()
        return Changed(phrase[:span[0]] + _cased(new, words[i].group()) + phrase[span[1]:], "vg_attributes",
                       f"hard_negative:color:{new}:{noun}")
    return "no_changeable_word"


def _ordinal(record: dict, sentence: str, rng: random.Random, object_id: int) -> Changed | str:
    words = list(_WORD.finditer(sentence))
    lowered = [w.group().lower() for w in words]
    for i, word in enumerate(lowered):
        if word not in ORDINALS and word not in _NUMERIC_ORDINALS:
            continue
        if not _SIDES.intersection(lowered[i + 1:i + 5]):  # a position ("second from left"), not "first base"
            continue
        category = next((o["names"][0] for o in record["objects"] if o["id"] == object_id), None)
        if category is None:
            return "object_not_found"
        if not _labels_whole(record):
            return "labels_not_whole"
        if any(o["ignore"] for o in _named(record, category)):
            return "crowd_region"
        said = ORDINALS.index(word) + 1 if word in ORDINALS else _NUMERIC_ORDINALS[word]
        beyond = [k for k in range(len(_named(record, category)) + 1, len(ORDINALS) + 1) if k != said]
        if not beyond:
            return "no_ordinal_left"
        k = rng.choice(beyond)
        printed = ORDINALS[k - 1] if word in ORDINALS else next(n for n, v in _NUMERIC_ORDINALS.items() if v == k)
        span = words[i].span()
        return Changed(sentence[:span[0]] + _cased(printed, words[i].group()) + sentence[span[1]:],
                       "exhaustive_count", f"hard_negative:ordinal:{k}:{category}")
    return "no_changeable_word"


def _count_contradiction(record: dict, category: str, k: int) -> str | None:
    if not _labels_whole(record):
        return f"image record {record['key']} does not vouch its labels whole, so no count is proven"
    named = _named(record, category)
    if any(o["ignore"] for o in named):
        return f"a crowd region of {category!r} could hide more instances"
    if len(named) >= k:
        return f"the image has {len(named)} {category!r}, so a {ORDINALS[k - 1] if k <= 10 else k} one exists"
    return None


def _labels_whole(record: dict) -> bool:
    """The reader lists COCO's classes proven absent only for an image whose every annotation read
    (`rcforge.readers.refcoco`): that list is its word that the labels are whole."""
    return any(a["basis"] == "exhaustive_vocab" for a in record.get("absent") or ())


def _noun(record: dict, following: list[str]) -> str | None:
    """The object name a colour word describes: the name (two words first: "parking meter") that follows it,
    past other colour words and `_BETWEEN`; None when another word comes first."""
    names = {n.lower() for obj in record["objects"] for n in obj["names"]}
    for j, word in enumerate(following):
        for width in (2, 1):
            if j + width <= len(following):
                candidate = " ".join(following[j:j + width])
                for form in (candidate, _singular(candidate)):
                    if form in names:
                        return form
        if word not in COLORS and word not in _BETWEEN:
            return None
    return None


def _singular(word: str) -> str:
    return word[:-1] if word.endswith("s") and not word.endswith("ss") else word


def _named(record: dict, name: str) -> list[dict]:
    return [obj for obj in record["objects"] if name in (n.lower() for n in obj["names"])]


def _colors(obj: dict) -> set[str]:
    """The colours annotated on an object ("dark blue" names blue)."""
    return {COLORS[w] for attribute in obj["attributes"] for w in _WORD.findall(attribute.lower()) if w in COLORS}


def _cased(word: str, like: str) -> str:
    if like.isupper() and len(like) > 1:
        return word.upper()
    return word.capitalize() if like[:1].isupper() else word
