"""RC tasks: pure functions of (image record, seeded rng, config) -> task instances.

One module per task, registered by name with its frozen dataclass config. A task never formats coordinates and
never renders text: it picks annotations and returns a `TaskInstance` whose variables hold plain values and
`Mention`s (pixel boxes or points with the annotation ids behind them). The renderer formats mentions with the
recipe's coordinate format and fills the task's Jinja templates.

A task either samples from an image (``sample``: called ``per_image`` times with fresh rngs, may return None
when the image has nothing for it) or, for sources whose annotations are themselves samples (RefCOCO refs,
VQAv2 questions, Flickr30K captions, PointQA items), enumerates them (``enumerate``: one instance per
annotation).
"""

from __future__ import annotations

import importlib
import random
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

from rcforge.core.registry import Registry


@dataclass(frozen=True)
class Mention:
    """Boxes (pixel xyxy) or points (pixel xy) shown together in the text, and the annotation ids behind them.

    ``phrase`` names what the boxes show (a category, an expression, a caption's phrase). Formats that tie a
    phrase to its boxes (Qwen's ``<ref>``, MiniGPT-v2's ``<p>``, Kosmos-2's ``<phrase>``, the JSON ``label``) print
    it with the boxes of an answer; the others leave naming to the template's text."""

    boxes: tuple[tuple[float, float, float, float], ...] = ()
    points: tuple[tuple[float, float], ...] = ()
    ids: tuple[str, ...] = ()
    phrase: str | None = None
    #: the mask of each box (`rcforge.schemas.MASK`, None for a box without one), parallel to ``boxes``; the
    #: dialogue's ``masks`` column carries them in print order
    masks: tuple[dict | None, ...] = ()


@dataclass
class TaskInstance:
    task: str
    variant: str
    question: dict[str, Any]
    answer: dict[str, Any]
    #: annotation ids behind the instance that are not in a mention (a region id, a qa id, ...)
    provenance: list[str] = field(default_factory=list)
    #: a stable per-annotation id part for enumerated instances ("ref/123")
    key: str | None = None
    #: a counting instance: whether its count is proven by exhaustive labels (the turn's ``count_proven``)
    count_proven: bool | None = None
    #: a negative instance (`rcforge.rc_tasks.negatives`): the proof that its category is absent
    negative_basis: str | None = None
    #: a detection or counting answer that lists every instance: the proof that it is complete
    #: (`rcforge.rc_tasks.negatives.complete_basis`), None where the labels are partial
    complete_basis: str | None = None
    #: hard negatives tried beside this instance and not written, each by its reason
    #: (`rcforge.rc_tasks.hard_negatives.REASONS`): the build ledger counts them
    declined: tuple[str, ...] = ()


@dataclass(frozen=True)
class TaskSpec:
    name: str
    config_class: type
    #: (variant -> (question variables, answer variables)) the task provides to its templates
    variables: dict[str, tuple[set, set]]
    #: ``sample(record, rng, config) -> TaskInstance | None`` for the records that hold ``sample_needs``
    sample: Callable[[dict, random.Random, Any], TaskInstance | None] | None
    sample_needs: tuple[str, ...]
    #: ``enumerate(record, rng_for, config) -> Iterator[TaskInstance]`` (one per annotation) for the records that
    #: hold ``enumerate_needs``; ``rng_for(instance key)`` gives the instance's own seeded rng
    enumerate: Callable[[dict, Callable[[str], random.Random], Any], Iterator[TaskInstance]] | None
    enumerate_needs: tuple[str, ...]
    doc: str
    #: what the task is in the terms model families use (`KINDS`), which a coordinate format keys its task
    #: identifiers and answer forms on; None: a question about the image with no family convention
    kind: str | None = None
    #: variants whose templates are needed only under some configs (variant -> config -> needed); the others are
    #: always needed. A marked variant (visual prompts) is never required: the renderer uses it where it exists
    optional: dict[str, Callable[[Any], bool]] = field(default_factory=dict)

    def needs(self, variant: str, config) -> bool:
        """Whether templates for ``variant`` are needed under ``config``."""
        if variant.endswith("_marked"):
            return False
        return self.optional.get(variant, lambda config: True)(config)

    def samples(self, provided) -> bool:
        """Whether `sample` runs on records that provide the annotation kinds ``provided``."""
        return self.sample is not None and set(self.sample_needs) <= set(provided)

    def enumerates(self, provided) -> bool:
        """Whether `enumerate` runs on records that provide the annotation kinds ``provided``."""
        return self.enumerate is not None and set(self.enumerate_needs) <= set(provided)


#: every module of this package is imported on first use; a task module registers itself with `register`
REGISTRY: Registry[TaskSpec] = Registry("task", package=__name__)


#: task kinds a coordinate format may have a convention for: "refer" (expression -> box), "identify" (box ->
#: expression), "detect" (name -> every box), "ground_caption" (a caption with its phrases grounded), "vqa",
#: "segment" (expression -> mask)
KINDS = ("refer", "identify", "detect", "ground_caption", "vqa", "segment")


def register(name: str, config_class: type, *, variables: dict[str, tuple[set, set]], sample=None,
             sample_needs: Sequence[str] = (), enumerate=None, enumerate_needs: Sequence[str] = (),
             kind: str | None = None, optional: dict[str, Callable[[Any], bool]] | None = None) -> TaskSpec:
    """Register a task under ``name`` with the annotation kinds (`rcforge.readers.ANNOTATIONS`) its sampler and
    enumerator need and its `KINDS` kind; a duplicate name is an error."""
    if kind is not None and kind not in KINDS:
        raise ValueError(f"task {name!r}: kind {kind!r} is not one of {', '.join(KINDS)}")
    if sample is None and enumerate is None:
        raise ValueError(f"task {name!r}: give sample and/or enumerate")
    if (sample is not None and not sample_needs) or (enumerate is not None and not enumerate_needs):
        raise ValueError(f"task {name!r}: say which annotations it needs")
    module_doc = (importlib.import_module(config_class.__module__).__doc__ or "").strip()
    return REGISTRY.add(name, TaskSpec(name, config_class, variables, sample, tuple(sample_needs), enumerate,
                                       tuple(enumerate_needs), module_doc.splitlines()[0] if module_doc else "",
                                       kind, dict(optional or {})))


def get(name: str) -> TaskSpec:
    return REGISTRY.get(name)


def names() -> list[str]:
    return REGISTRY.names()
