"""Negative questions: a category the image's record proves absent, asked about and answered "none".

A negative is written only where a label set proves the absence: the record's ``absent`` categories, which the
readers fill (`rcforge.schemas.ABSENT`) from LVIS's ``neg_category_ids`` ("lvis_neg"), from a class of an
exhaustively labelled vocabulary with no box in the image ("exhaustive_vocab": COCO's classes in RefCOCO's
instances) or, when the recipe says so, of a vocabulary only claimed exhaustive ("claimed_vocab": Objects365's
``claimed_negatives``). Visual Genome's free-text names prove no absence, so its records list none and it never
yields negatives. Each negative turn records its proof (the turn's ``negative_basis``) and the category (the
dialogue's provenance ``absent:<name>``), which ``rcforge validate`` checks against the image record.

Tasks with a ``negative_rate`` (grounding, detection, counting) ask a negative question with that chance where
the record has a proven-absent category; at 0, the default, the rng is not touched, so builds are unchanged.
"""

from __future__ import annotations

import random

from rcforge.rc_tasks import TaskInstance, hard_negatives

#: the template variant of a negative question (a task's templates need it only when its negative_rate > 0)
VARIANT = "absent"
#: each basis, and the sources whose labels give it
BASES = {"lvis_neg": ("lvis",), "exhaustive_vocab": ("refcoco",), "claimed_vocab": ("objects365",)}
#: template variants a task needs only when the recipe asks for them: variant -> the config field that asks
OPTIONAL_VARIANTS = {VARIANT: "negative_rate", hard_negatives.VARIANT: "hard_negative_rate"}


def needed(variant: str, config) -> bool:
    """Whether a task under ``config`` needs templates for ``variant`` (a negative variant only when asked for)."""
    field = OPTIONAL_VARIANTS.get(variant)
    return field is None or getattr(config, field, 0) > 0


#: the proof that a detection or counting answer lists every instance, by the source's labels (`rcforge.readers.LABELS`)
COMPLETE_BASES = {"exhaustive": "exhaustive_labels", "claimed": "claimed_labels"}


def complete_basis(source: str) -> str | None:
    """The proof that an answer listing every box of a category in ``source`` is complete: its labels box every
    instance of a labelled category (LVIS: "exhaustive_labels"), or the dataset claims so ("claimed_labels":
    Objects365); None for partial labels (Visual Genome), whose answers are what annotators marked."""
    from rcforge import readers
    from rcforge.core.errors import RcforgeError

    try:
        return COMPLETE_BASES.get(readers.get(source).labels)
    except RcforgeError:  # a source no reader registers (a damaged shard): nothing proves its answers complete
        return None


def legal(source: str, basis: str) -> bool:
    """Whether ``basis`` proves an absence in ``source``'s records."""
    return source in BASES.get(basis, ())


def draw(record: dict, rng: random.Random, rate: float) -> tuple[str, str] | None:
    """(name, basis) of a proven-absent category, with probability ``rate`` when the record has one; else None.
    A name that an object of the record carries is never drawn, whatever the reader said."""
    if rate <= 0 or not record.get("absent"):
        return None
    if rng.random() >= rate:
        return None
    present = {name for obj in record["objects"] for name in obj["names"]}
    choices = [a for a in record["absent"] if a["name"] not in present and legal(record["source"], a["basis"])]
    if not choices:
        return None
    chosen = rng.choice(choices)
    return chosen["name"], chosen["basis"]


def instance(task: str, name: str, basis: str, answer: dict | None = None, key: str | None = None,
             **fields) -> TaskInstance:
    """The negative instance of ``task`` about ``name``: question variables ``name``, answer ``name`` (and
    ``answer``'s), provenance ``absent:<name>``."""
    return TaskInstance(task, VARIANT, question={"name": name}, answer={"name": name, **(answer or {})},
                        provenance=[f"absent:{name}"], key=key, negative_basis=basis, **fields)
