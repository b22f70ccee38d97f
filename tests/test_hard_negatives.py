"""Hard negatives: a referring expression with one word changed so that nothing in the image fits it, written only
where the labels prove it (Visual Genome: colours against every same-name object's annotated colours; RefCOCO: an
ordinal position beyond the category's proven count), every other attempt counted as filtered with its reason.

The independent checks here read the records and the changed text themselves; they do not call
`hard_negatives.holds`, which is what rcforge's own validate applies.
"""

from __future__ import annotations

import json
import random
import re
import shutil

import pyarrow.parquet as pq
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from rcforge import cli
from rcforge.rc_tasks import grounding, hard_negatives
from rcforge.rc_tasks.hard_negatives import Changed

from conftest import SAMPLE, SAMPLE_RECIPE

COLOR_WORDS = ["red", "blue", "green", "white", "black", "gray", "grey", "brown"]  # drawn in generated records
#: every colour word, written out here rather than read from rcforge
ALL_COLORS = {"red", "blue", "green", "yellow", "orange", "purple", "pink", "brown", "black", "white", "gray", "grey"}
NOUNS = ["car", "shirt", "parking meter", "dog"]


def _obj(i: int, name: str, attributes=(), ignore=False) -> dict:
    return {"id": i, "names": [name], "category_id": None, "box": [0.0, 0.0, 10.0, 10.0], "ignore": ignore,
            "attributes": list(attributes), "synsets": []}


def _vg(objects: list[dict], phrases=()) -> dict:
    return {"key": "vg/1", "source": "visual_genome", "width": 100, "height": 100, "objects": objects,
            "absent": [], "regions": [{"id": 10 + i, "phrase": p, "box": [0.0, 0.0, 50.0, 50.0]}
                                      for i, p in enumerate(phrases)], "refs": []}


def _refcoco(objects: list[dict], sentences: list[str], whole=True) -> dict:
    return {"key": "refcoco/1", "source": "refcoco", "width": 100, "height": 100, "objects": objects,
            "absent": [{"name": "zebra", "basis": "exhaustive_vocab"}] if whole else [], "regions": [],
            "refs": [{"ref_id": 7, "object_id": objects[0]["id"], "category_id": 1, "split": "train",
                      "sentences": [{"sent_id": i, "text": t} for i, t in enumerate(sentences)]}]}


def _one_word_changed(before: str, after: str) -> tuple[str, str]:
    a, b = before.split(), after.split()
    assert len(a) == len(b)
    diff = [(x, y) for x, y in zip(a, b) if x != y]
    assert len(diff) == 1, (before, after)
    return diff[0]


def test_a_colour_is_changed_to_one_no_object_of_that_kind_has():
    record = _vg([_obj(1, "car", ["red"]), _obj(2, "car", ["white", "shiny"]), _obj(3, "tree", ["green"])])
    for seed in range(30):
        changed = hard_negatives.change(record, "red car parked on the street", random.Random(seed))
        assert isinstance(changed, Changed) and changed.basis == "vg_attributes"
        old, new = _one_word_changed("red car parked on the street", changed.expression)
        assert old == "red" and new in hard_negatives.COLORS and new not in {"red", "white"}
        assert changed.proof == f"hard_negative:color:{new}:car"
        assert hard_negatives.holds(record, changed.proof) is None


@pytest.mark.parametrize("objects, phrase, reason", [
    ([_obj(1, "car", ["red"]), _obj(2, "car", [])], "a red car", "color_not_annotated"),  # car 2 could be blue
    ([_obj(1, "car", ["red"])], "a red bus", "object_not_found"),
    ([_obj(1, "table", ["brown"])], "an orange on the table", "object_not_found"),  # a fruit, not a colour
    ([_obj(1, "car", ["red"])], "a parked car", "no_changeable_word"),
    ([_obj(i, "car", [c]) for i, c in enumerate(["red", "blue", "green", "yellow", "orange", "purple", "pink",
                                                  "brown", "black", "white", "gray"])], "a red car", "no_color_left"),
])
def test_a_colour_change_that_cannot_be_proven_is_filtered_with_its_reason(objects, phrase, reason):
    assert hard_negatives.change(_vg(objects), phrase, random.Random(0)) == reason


def test_colour_words_find_their_noun_past_other_colours_and_in_two_word_names():
    record = _vg([_obj(1, "parking meter", ["gray"]), _obj(2, "shirt", ["red", "white"])])
    changed = hard_negatives.change(record, "the Grey parking meter", random.Random(1))
    assert changed.proof.endswith(":parking meter") and changed.expression.split()[1][0].isupper()
    changed = hard_negatives.change(record, "red and white shirts", random.Random(1))
    assert changed.proof.endswith(":shirt") and changed.proof.split(":")[2] not in {"red", "white"}


def test_an_ordinal_position_is_moved_beyond_the_proven_count():
    people = [_obj(1, "person"), _obj(2, "person"), _obj(3, "person"), _obj(4, "dog")]
    record = _refcoco(people, ["second man from left"])
    seen = set()
    for seed in range(40):
        changed = hard_negatives.change(record, "second man from left", random.Random(seed), object_id=1)
        assert changed.basis == "exhaustive_count"
        old, new = _one_word_changed("second man from left", changed.expression)
        k = hard_negatives.ORDINALS.index(new) + 1
        assert old == "second" and k > 3 and changed.proof == f"hard_negative:ordinal:{k}:person"
        assert hard_negatives.holds(record, changed.proof) is None
        seen.add(k)
    assert len(seen) > 3  # drawn among 4th..10th, not always the same
    numeric = hard_negatives.change(record, "2nd guy from the right", random.Random(0), object_id=1)
    assert re.fullmatch(r"([4-9]|10)th guy from the right", numeric.expression)


@pytest.mark.parametrize("objects, sentence, whole, reason", [
    ([_obj(1, "person"), _obj(2, "person", ignore=True)], "second man from left", True, "crowd_region"),
    ([_obj(1, "person")], "second man from left", False, "labels_not_whole"),
    ([_obj(1, "person")], "guy on first base", True, "no_changeable_word"),  # not a position among boxes
    ([_obj(1, "person")], "man in red", True, "no_changeable_word"),  # RefCOCO has no attributes to check
    ([_obj(i, "person") for i in range(10)], "third person from left", True, "no_ordinal_left"),
])
def test_an_ordinal_change_that_cannot_be_proven_is_filtered(objects, sentence, whole, reason):
    assert hard_negatives.change(_refcoco(objects, [sentence], whole), sentence, random.Random(0),
                                 object_id=objects[0]["id"]) == reason


@pytest.mark.parametrize("proof, record, problem", [
    ("hard_negative:color:red:car", _vg([_obj(1, "car", ["red"])]), "is red"),
    ("hard_negative:color:blue:car", _vg([_obj(1, "car", [])]), "no colour annotated"),
    ("hard_negative:color:blue:bus", _vg([_obj(1, "car", ["red"])]), "no object"),
    ("hard_negative:ordinal:2:person", _refcoco([_obj(1, "person"), _obj(2, "person")], ["x"]), "has 2"),
    ("hard_negative:ordinal:5:person", _refcoco([_obj(1, "person")], ["x"], whole=False), "labels whole"),
    ("hard_negative:size:5:person", _refcoco([_obj(1, "person")], ["x"]), "no proof"),
])
def test_holds_names_what_contradicts_a_proof(proof, record, problem):
    assert problem in hard_negatives.holds(record, proof)


@st.composite
def vg_cases(draw):
    objects = [_obj(i, draw(st.sampled_from(NOUNS)),
                    draw(st.lists(st.sampled_from(COLOR_WORDS + ["dark", "shiny", "blue striped"]), max_size=3)))
               for i in range(draw(st.integers(1, 6)))]
    words = draw(st.lists(st.sampled_from(COLOR_WORDS + NOUNS + ["the", "and", "on", "a", "orange", "dark"]),
                          min_size=1, max_size=7))
    return _vg(objects), " ".join(words)


def _colours_of(obj) -> set[str]:
    """Independently of rcforge: the colour words in an object's attributes, grey read as gray."""
    return {"gray" if w == "grey" else w for a in obj["attributes"] for w in a.split() if w in ALL_COLORS}


@settings(max_examples=300, deadline=None)
@given(case=vg_cases(), seed=st.integers(0, 2**32))
def test_no_written_colour_negative_fits_an_object_of_its_kind(case, seed):
    record, phrase = case
    changed = hard_negatives.change(record, phrase, random.Random(seed))
    if isinstance(changed, str):
        assert changed in hard_negatives.REASONS
        return
    old, new = _one_word_changed(phrase, changed.expression)
    assert old in ALL_COLORS and new in ALL_COLORS and new.replace("grey", "gray") != old.replace("grey", "gray")
    noun = changed.proof.split(":", 3)[3]
    named = [o for o in record["objects"] if noun in o["names"]]
    assert named and all(_colours_of(o) and new not in _colours_of(o) for o in named)


@settings(max_examples=200, deadline=None)
@given(counts=st.integers(1, 11), crowd=st.booleans(), whole=st.booleans(), seed=st.integers(0, 2**32),
       ordinal=st.sampled_from(["first", "second", "third", "3rd", "5th"]),
       side=st.sampled_from(["from left", "from the right", "on top", "near"]))
def test_no_written_ordinal_negative_has_that_many_instances(counts, crowd, whole, seed, ordinal, side):
    objects = [_obj(i, "person", ignore=crowd and i == counts - 1) for i in range(counts)] + [_obj(99, "dog")]
    sentence = f"{ordinal} person {side}"
    changed = hard_negatives.change(_refcoco(objects, [sentence], whole), sentence, random.Random(seed),
                                    object_id=0)
    if isinstance(changed, str):
        assert changed in hard_negatives.REASONS
        return
    assert whole and not crowd and side != "near"
    k = int(changed.proof.rsplit(":", 2)[1])
    assert k > counts
    _, new = _one_word_changed(sentence, changed.expression)
    assert new in (hard_negatives.ORDINALS[k - 1], f"{k}th", {1: "1st", 2: "2nd", 3: "3rd"}.get(k))


def test_every_try_is_written_or_filtered_and_the_positive_questions_are_unchanged():
    """For enumerated refs at rate 1: each ref gets its positive question, as without hard negatives, and either
    a hard negative or a filtered reason."""
    objects = [_obj(1, "person"), _obj(2, "person"), _obj(3, "dog")]
    record = _refcoco(objects, ["second man from left", "man in red"])
    record["refs"] += [{"ref_id": 8, "object_id": 3, "category_id": 18, "split": "train",
                        "sentences": [{"sent_id": 5, "text": "the dog"}]}]

    def rng_for(k):
        return random.Random(f"9/{k}")

    enumerate_refs = grounding.GROUNDING.enumerate
    plain = list(enumerate_refs(record, rng_for, grounding.GroundingConfig()))
    hard = list(enumerate_refs(record, rng_for, grounding.GroundingConfig(hard_negative_rate=1.0)))
    positives = [i for i in hard if i.variant == "expression"]
    assert [(i.question, i.answer, i.key) for i in positives] == [(i.question, i.answer, i.key) for i in plain]
    written = [i for i in hard if i.variant == hard_negatives.VARIANT]
    declined = [r for i in positives for r in i.declined]
    assert len(written) + len(declined) == len(record["refs"])
    assert all(i.key.startswith("hard:ref:") and i.negative_basis == "exhaustive_count" for i in written)


def _sample_recipe(tmp_path, rate: float):
    shutil.copytree(SAMPLE, tmp_path / "sample_data")
    (tmp_path / "recipes").mkdir()
    raw = yaml.safe_load(SAMPLE_RECIPE.read_text())
    raw["render"]["tasks"]["grounding"] = {"weight": 6, "hard_negative_rate": rate}
    raw["render"]["tasks"].pop("region_comparison", None)  # it asks no negatives: its draws would go to waste
    raw["render"]["per_image"] = 12
    recipe = tmp_path / "recipes" / "hard.yaml"
    recipe.write_text(yaml.safe_dump(raw))
    return recipe


@pytest.mark.slow
def test_a_sample_build_with_hard_negatives_is_valid_accounted_and_uncontradicted(tmp_path):
    recipe = _sample_recipe(tmp_path, 0.5)
    out = tmp_path / "out"
    assert cli.main(["build", str(recipe), "--out", str(out), "--no-progress"]) == 0
    assert cli.main(["validate", str(out)]) == 0
    records = {r["key"]: r for part in out.glob("images/*/part-*.parquet")
               for r in pq.read_table(part, columns=["key", "objects"]).to_pylist()}
    written = 0
    for shard in out.glob("dialogues/part-*.parquet"):
        for row in pq.read_table(shard).to_pylist():
            if row["variant"] != hard_negatives.VARIANT:
                continue
            written += 1
            (proof,) = [p for p in row["provenance"] if p.startswith("hard_negative:")]
            _, kind, colour, noun = proof.split(":", 3)
            assert kind == "color" and row["source"] == "visual_genome"
            named = [o for o in records[row["key"]]["objects"] if noun in o["names"]]
            assert named and all(_colours_of(o) and colour not in _colours_of(o) for o in named), row["id"]
            assert f'"{colour}' in row["conversations"][1]["value"].lower() or colour in row["conversations"][1][
                "value"].lower()
    ledger = json.loads((out / "manifest.json").read_text())["build"]["ledger"]["hard_negatives"]
    assert ledger["written"] == written > 0
    assert set(ledger["filtered"]) <= set(hard_negatives.REASONS) and sum(ledger["filtered"].values()) > 0


def test_validate_reports_a_hard_negative_its_record_contradicts(tmp_path):
    from rcforge.inspect.validate import validate

    from conftest import records_by_key, tamper_dialogue

    recipe = _sample_recipe(tmp_path, 1.0)
    out = tmp_path / "out"
    assert cli.main(["build", str(recipe), "--out", str(out), "--no-progress"]) == 0
    assert validate(str(out)) == []
    records = records_by_key(out)

    def name_a_present_colour(row):
        proof = next(p for p in row["provenance"] if p.startswith("hard_negative:"))
        noun = proof.split(":", 3)[3]
        colour = sorted(next(_colours_of(o) for o in records[row["key"]]["objects"] if noun in o["names"]))[0]
        row["provenance"] = [f"hard_negative:color:{colour}:{noun}" if p == proof else p for p in row["provenance"]]

    target = tamper_dialogue(out, lambda r: r["variant"] == hard_negatives.VARIANT, name_a_present_colour)
    colour = next(p for p in target["provenance"] if p.startswith("hard_negative:")).split(":")[2]
    problems = validate(str(out))
    assert any("does not hold" in p and f"is {colour}" in p for p in problems), problems
