"""Visual grounding (``grounding``: expression -> box) and grounded captioning (``grounded_caption``: box ->
expression).

Expressions come from Visual Genome region descriptions (sampled per image), RefCOCO / RefCOCO+ / RefCOCOg refs
(one instance per ref, one of its sentences drawn) and kept bootstrap pairs (`rcforge.bootstrap.pairs` adds them
to the records' refs with split "bootstrap" when the recipe's ``render.bootstrap_pairs`` names them; their
provenance is ``pair:<object id>``).
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass
from typing import Callable, Iterator

from rcforge.core.config import number
from rcforge.rc_tasks import Mention, TaskInstance, hard_negatives, negatives, register

#: the split of the refs that kept bootstrap pairs become (rcforge.bootstrap.pairs.SPLIT)
BOOTSTRAP_SPLIT = "bootstrap"


@dataclass(frozen=True)
class GroundingConfig:
    """min_phrase_words: region phrases shorter than this are not used. negative_rate (grounding only): the chance
    of a negative question ("where is the zebra?" -> there is none) where the record proves a category absent; for
    enumerated refs, the chance per ref of one more, negative, question. hard_negative_rate (grounding only): the
    chance that the drawn expression (for enumerated refs, each ref's) is also asked with one word changed so that
    nothing fits it, where the labels prove that (`rcforge.rc_tasks.hard_negatives`); the attempts that cannot be
    proven are counted as filtered, with their reasons."""

    min_phrase_words: int = number(1, 0)
    negative_rate: float = number(0.0, 0, 1)
    hard_negative_rate: float = number(0.0, 0, 1)


def _hard(record: dict, expression: str, rng: random.Random, key=None, object_id=None) -> TaskInstance | str:
    """The hard negative of ``expression``, or why none is written."""
    changed = hard_negatives.change(record, expression, rng, object_id)
    if isinstance(changed, str):
        return changed
    return TaskInstance("grounding", hard_negatives.VARIANT, question={"expression": changed.expression},
                        answer={"expression": changed.expression}, provenance=[changed.proof], key=key,
                        negative_basis=changed.basis)


def _hard_for_ref(record: dict, rng_for, cfg: GroundingConfig, key: str, text: str, mention: Mention):
    """With ``hard_negative_rate``, one ref's hard negative or why none is written; None when not tried. Its own
    rng: the ref's positive question is the same whatever the rate."""
    if cfg.hard_negative_rate <= 0 or not hard_negatives.possible(record["source"]):
        return None
    rng = rng_for(f"{key}/hard")
    if rng.random() >= cfg.hard_negative_rate:
        return None
    object_id = int(mention.ids[0].removeprefix("object:"))
    return _hard(record, text, rng, key=f"hard:{key}", object_id=object_id)


def _pairs_from_regions(record: dict, rng: random.Random, cfg) -> tuple[str, Mention, list[str]] | None:
    regions = [r for r in record["regions"] if len(r["phrase"].split()) >= cfg.min_phrase_words]
    if not regions:
        return None
    region = rng.choice(regions)
    mention = Mention(boxes=(tuple(region["box"]),), ids=(f"region:{region['id']}",), phrase=region["phrase"])
    return region["phrase"], mention, []


def _ref_pairs(record: dict, rng_for: Callable[[str], random.Random]):
    objects = {o["id"]: o for o in record["objects"]}
    for ref in record["refs"]:
        obj = objects.get(ref["object_id"])
        if obj is None or not ref["sentences"]:
            continue
        bootstrapped = ref["split"] == BOOTSTRAP_SPLIT
        key = f"pair:{ref['object_id']}" if bootstrapped else f"ref:{ref['ref_id']}"
        sentence = rng_for(key).choice(ref["sentences"])
        mention = Mention(boxes=(tuple(obj["box"]),), ids=(f"object:{obj['id']}",), phrase=sentence["text"])
        yield key, sentence["text"], mention, [
            key, f"{'sample' if bootstrapped else 'sentence'}:{sentence['sent_id']}"]


def _instance(task: str, expression: str, mention: Mention, provenance: list[str], key=None) -> TaskInstance:
    if task == "grounding":
        return TaskInstance(task, "expression", question={"expression": expression}, answer={"box": mention},
                            provenance=provenance, key=key)
    return TaskInstance(task, "box", question={"box": mention}, answer={"expression": expression},
                        provenance=provenance, key=key)


def _sampler(task):
    def sample(record: dict, rng: random.Random, cfg: GroundingConfig) -> TaskInstance | None:
        negative = negatives.draw(record, rng, cfg.negative_rate) if task == "grounding" else None
        if negative is not None:
            return negatives.instance(task, *negative)
        pair = _pairs_from_regions(record, rng, cfg)
        if pair is None:
            return None
        if task == "grounding" and cfg.hard_negative_rate > 0 and hard_negatives.possible(record["source"]) \
                and rng.random() < cfg.hard_negative_rate:
            hard = _hard(record, pair[0], rng)
            if not isinstance(hard, str):
                return hard
            return dataclasses.replace(_instance(task, *pair), declined=(hard,))
        return _instance(task, *pair)
    sample.__doc__ = f"{task} from a region description of the image"
    return sample


def _enumerator(task):
    def enumerate_refs(record: dict, rng_for, cfg: GroundingConfig) -> Iterator[TaskInstance]:
        refs = 0
        for key, text, mention, provenance in _ref_pairs(record, rng_for):
            refs += 1
            instance = _instance(task, text, mention, provenance, key=key)
            hard = _hard_for_ref(record, rng_for, cfg, key, text, mention) if task == "grounding" else None
            if isinstance(hard, str):
                instance = dataclasses.replace(instance, declined=(hard,))
            yield instance
            if isinstance(hard, TaskInstance):
                yield hard
        if task == "grounding" and cfg.negative_rate > 0:
            rng = rng_for("absent")
            for k in range(refs):
                negative = negatives.draw(record, rng, cfg.negative_rate)
                if negative is not None:
                    yield negatives.instance(task, *negative, key=f"absent:{k}")
    enumerate_refs.__doc__ = f"{task}, one instance per referring expression"
    return enumerate_refs


GROUNDING = register("grounding", GroundingConfig, sample=_sampler("grounding"), sample_needs=("regions",),
                     enumerate=_enumerator("grounding"), enumerate_needs=("refs",),
                     variables={"expression": ({"expression"}, {"box"}), negatives.VARIANT: ({"name"}, {"name"}),
                                hard_negatives.VARIANT: ({"expression"}, {"expression"})},
                     kind="refer")
GROUNDED_CAPTION = register("grounded_caption", GroundingConfig, sample=_sampler("grounded_caption"),
                            sample_needs=("regions",), enumerate=_enumerator("grounded_caption"),
                            enumerate_needs=("refs",), variables={"box": ({"box"}, {"expression"}),
                                                                   "box_marked": ({"box"}, {"expression"})},
                            kind="identify")
