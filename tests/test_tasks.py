"""Each task's answers checked against the annotations, through the real templates and coordinate format."""

import random

import pytest

from rcforge.rc_tasks import get as get_task
from rcforge.rc_tasks.coarse_spatial import in_quadrant
from rcforge.rc_tasks.common import merge_near_duplicates
from rcforge.recipe.tree import render_from_mapping
from rcforge.render import coordinates
from rcforge.render.renderer import Renderer

PINK = coordinates.get("pink")


def _obj(i, name, box, ignore=False):
    return {"id": i, "names": [name], "category_id": None, "box": list(map(float, box)), "ignore": ignore,
            "attributes": [], "synsets": []}


def _record(**parts):
    base = {"key": "vg/9", "source": "visual_genome", "image_id": "9", "image": "9.jpg", "width": 1000,
            "height": 800, "split": None, "coco_id": None, "vg_id": 9, "flickr_id": None, "objects": [],
            "relations": [], "regions": [], "captions": [], "refs": [], "qas": []}
    base.update(parts)
    return base


OBJECTS = [
    _obj(1, "man", (400, 300, 600, 700)),
    _obj(2, "man", (405, 305, 598, 702)),       # a near-duplicate of 1: merged
    _obj(3, "dog", (50, 50, 150, 150)),         # top-left of the man
    _obj(4, "dog", (800, 50, 900, 120)),        # top-right
    _obj(5, "dog", (820, 600, 900, 700)),       # bottom-right
    _obj(6, "frisbee", (700, 100, 760, 160)),   # top-right
    _obj(7, "hat", (450, 280, 550, 330)),
    _obj(8, "car", (0, 600, 300, 790), ignore=True),
]
RELATIONS = [
    {"id": 11, "subject_id": 1, "predicate": "holding", "object_id": 6},
    {"id": 12, "subject_id": 1, "predicate": "wearing", "object_id": 7},
    {"id": 13, "subject_id": 1, "predicate": "near", "object_id": 3},
    {"id": 14, "subject_id": 1, "predicate": "near", "object_id": 4},
    {"id": 15, "subject_id": 3, "predicate": "near", "object_id": 4},
]
RECORD = _record(objects=OBJECTS, relations=RELATIONS,
                 regions=[{"id": 21, "phrase": "a man throwing a frisbee", "box": [380.0, 90.0, 770.0, 710.0]}])


def _renderer(task, **options):
    settings = render_from_mapping({"tasks": {task: options}, "per_image": 40}, None)
    return Renderer(settings, seed=3)


def _instances(task, record=RECORD, n=60, **options):
    spec = get_task(task)
    cfg = _renderer(task, **options).settings.tasks[task].config
    out = []
    for k in range(n):
        inst = spec.sample(record, random.Random(k), cfg)
        if inst is not None:
            out.append(inst)
    return out


def _box_of(mention):
    (box,) = mention.boxes
    return box


def test_near_duplicates_are_merged_and_counted():
    groups, merged, ignored = merge_near_duplicates(OBJECTS, 0.7)
    assert merged == 1 and ignored == {"car"}
    man = next(g for g in groups if g.name == "man")
    assert man.ids == [1, 2] and man.box == (400.0, 300.0, 600.0, 700.0)


def test_counting_answers_are_true_and_skip_crowds():
    seen = set()
    for inst in _instances("counting"):
        name, count = inst.answer["name"], inst.answer["count"]
        truth = {"man": 1, "dog": 3, "frisbee": 1, "hat": 1}
        assert count == truth[name]  # never "car": it has an ignored (crowd) box
        seen.add((inst.variant, name))
    assert {v for v, _ in seen} == {"by_box", "by_name"}


@pytest.mark.parametrize("source, options, expected", [
    ("visual_genome", {}, False),                           # free-text labels: a count is a lower bound
    ("objects365", {}, False),                              # claimed exhaustive, unverified
    ("objects365", {"trust_claimed": True}, True),
    ("lvis", {}, True),                                     # exhaustive (non-exhaustive categories are ignored)
    ("visual_genome", {"proven_only": True}, None),         # no counting where no count is proven
    ("objects365", {"proven_only": True}, None),
    ("objects365", {"proven_only": True, "trust_claimed": True}, True),
])
def test_each_count_says_whether_it_is_proven(source, options, expected):
    record = dict(RECORD, source=source)
    instances = _instances("counting", record=record, n=20, **options)
    if expected is None:
        assert instances == []
    else:
        assert instances and all(inst.count_proven is expected for inst in instances)


def test_stuff_is_never_counted():
    from rcforge.render.english import countable

    assert not countable("sky") and not countable("green grass") and not countable("water")
    assert countable("tree trunk") and countable("glass") and countable("pair of skis")
    objects = [{**OBJECTS[0], "id": 90, "names": ["sky"], "box": [0.0, 0.0, 999.0, 200.0]}, *OBJECTS]
    assert all(inst.answer["name"] != "sky" for inst in _instances("counting", record=dict(RECORD, objects=objects)))


def test_uniform_count_sampler_flattens_the_answer_distribution():
    counts = [inst.answer["count"] for inst in _instances("counting", n=400, by=["name"])]
    # counts present: 1 (man, frisbee, hat) and 3 (dog): drawn about equally often, not 3:1
    assert 0.35 < counts.count(3) / len(counts) < 0.65


def test_coarse_spatial_answers_are_exactly_the_objects_in_the_quadrant():
    groups, _, _ = merge_near_duplicates(OBJECTS, 0.7)
    checked = 0
    for inst in _instances("coarse_spatial", references=["object"], n=120):
        ref = _box_of(inst.question["reference"])
        centre = ((ref[0] + ref[2]) / 2, (ref[1] + ref[3]) / 2)
        direction = inst.question["direction"]
        expected = {g.box for g in groups if g.box != ref and in_quadrant(direction, g.centre, centre)}
        answered = {_box_of(o["box"]) for o in inst.answer["objects"]}
        assert answered == expected
        assert (inst.variant == "empty") == (not expected)
        checked += 1
    assert checked > 50


def test_coarse_spatial_skip_never_asks_an_empty_question():
    assert all(i.variant != "empty" for i in _instances("coarse_spatial", empty="skip", n=100))


def test_relation_objects_answer_is_complete():
    for inst in _instances("relation", variants=["objects"], frequent_keep=1.0, n=80):
        subject = int(inst.question["subject"].ids[0].split(":")[1])
        predicate = inst.question["predicate"]
        expected = {r["object_id"] for r in RELATIONS if r["subject_id"] == subject and r["predicate"] == predicate}
        answered = {int(o["box"].ids[0].split(":")[1]) for o in inst.answer["objects"]}
        assert answered == expected


def test_frequent_predicates_are_down_sampled():
    preds = [i.answer["predicate"] for i in _instances("relation", variants=["predicate"], n=600,
                                                        frequent_keep=0.0)]
    assert preds and "wearing" not in preds


def test_detection_gives_every_box_of_the_category():
    for inst in _instances("detection"):
        name = inst.answer["name"]
        expected = {g.box for g in merge_near_duplicates(OBJECTS, 0.7)[0] if g.name == name}
        assert set(inst.answer["boxes"].boxes) == expected


def test_rendered_text_carries_the_true_boxes():
    renderer = _renderer("detection")
    for d in renderer.dialogues(RECORD):
        answer = d["conversations"][1]["value"]
        printed = PINK.parse(answer, RECORD["width"], RECORD["height"])
        assert len(printed) == len(d["boxes"]) - (1 if d["variant"] == "by_box" else 0)
        for p in printed:
            assert any(all(abs(a - b) <= 0.0005 + 1e-9 for a, b in zip(p, box)) for box in d["boxes"])
        assert d["conversations"][0]["value"].startswith("<image>\n")


def test_grounding_pairs_region_phrase_and_box():
    renderer = _renderer("grounding")
    (d, *_) = list(renderer.dialogues(RECORD))
    assert "a man throwing a frisbee" in d["conversations"][0]["value"]
    assert PINK.parse(d["conversations"][1]["value"], RECORD["width"], RECORD["height"]) == [(0.38, 0.113, 0.77, 0.887)]
    assert d["provenance"] == ["region:21"]


def test_same_seed_same_dialogues_other_seed_others():
    a = list(_renderer("relation").dialogues(RECORD))
    b = list(_renderer("relation").dialogues(RECORD))
    assert a == b
    settings = render_from_mapping({"tasks": {"relation": {}}, "per_image": 40}, None)
    c = list(Renderer(settings, seed=4).dialogues(RECORD))
    assert [d["conversations"] for d in c] != [d["conversations"] for d in a]


def test_template_using_an_unknown_variable_fails_at_load(tmp_path):
    from rcforge.core.errors import RecipeError

    (tmp_path / "vqa.yaml").write_text(
        "variants:\n  answer:\n    question_vars: [question]\n    answer_vars: [answer]\n"
        "    questions:\n      q01: '{{ question }} {{ secret }}'\n    answers:\n      a01: '{{ answer }}'\n")
    with pytest.raises(RecipeError, match=r"vqa.yaml.*q01: unknown variable\(s\) secret"):
        Renderer(render_from_mapping({"tasks": {"vqa": {}}, "templates": str(tmp_path)}, None), 0)


def test_annotation_text_is_data_not_template_code():
    record = _record(key="vqav2/1", source="vqav2", qas=[{
        "id": "1", "kind": "vqav2", "question": "{{ 7 * 7 }} {% for x in range(3) %}x{% endfor %}?",
        "point_question": None, "answer": "{{ config }}", "answers": [], "question_type": None,
        "answer_type": None, "point": None, "box": None, "object_ids": []}])
    settings = render_from_mapping({"tasks": {"vqa": {}}}, None)
    (d,) = list(Renderer(settings, 0).dialogues(record))
    assert "{{ 7 * 7 }}" in d["conversations"][0]["value"] and "49" not in d["conversations"][0]["value"]
    assert d["conversations"][1]["value"] == "{{ config }}"


@pytest.mark.parametrize("task", ["relation", "coarse_spatial", "counting", "detection", "grounding",
                                  "grounded_caption", "flickr_grounded_caption", "pointqa", "vqa"])
def test_every_variant_has_ten_question_paraphrases(task):
    renderer = _renderer(task)
    for (t, variant), v in renderer.templates.variants.items():
        if t == task:
            assert len(v.questions) >= 10, f"{task}.{variant}"
