"""Dataset readers, one module per source, registered by name.

A reader knows its files' formats and nothing else. It is a generator ``read(config, ctx)`` that yields
`rcforge.core.ledgerkeeper.ReadBatch` units, the one shape of the reader seam: a table of image records (the schema
`rcforge.schemas.IMAGE_RECORD`, boxes already in the canonical pixel xyxy form) with its accounting. A per-record
reader describes each image with an `rcforge.core.ledger.ImageBuilder` and gathers the results
(`rcforge.core.ledgerkeeper.gather`); Visual Genome's joiner builds its tables directly. Its config is a frozen
dataclass built from the recipe's ``sources.<name>`` mapping.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

from rcforge.core.registry import Registry

#: What a source's records can hold, by name. A reader declares the kinds it provides and a task the kinds it
#: needs; the renderer offers a task every record whose source provides all it needs, so a new source is one
#: reader module and a new task one task module.
ANNOTATIONS = {
    "object_categories": "every object of the image annotated with its category (complete per category, except "
                         "objects flagged ignore, whose category is never counted)",
    "relations": "subject-predicate-object relations between objects",
    "regions": "region descriptions: a phrase and its box",
    "attributes": "object attributes (colour, material, state)",
    "refs": "referring expressions: sentences for one object (bootstrap pairs join these)",
    "captions": "captions whose phrases are linked to boxes",
    "vqa": "visual questions with answers (VQAv2)",
    "pointqa": "questions about a pointed-at object or a box (PointQA)",
}
#: the ingest ledger's item kind of each annotation kind a task enumerates (one dialogue per item)
LEDGER_ITEMS = {"refs": "ref", "captions": "caption", "vqa": "qa", "pointqa": "qa"}


@dataclass(frozen=True)
class ReaderSpec:
    name: str
    config_class: type
    read: Callable[..., Iterator]
    doc: str
    #: the `ANNOTATIONS` its records hold
    provides: tuple[str, ...] = ()
    #: how completely its object labels cover their categories (`LABELS`)
    labels: str = "partial"


#: every module of this package is imported on first use (so that `import rcforge.readers` stays cheap); a reader
#: module registers itself with `register`
REGISTRY: Registry[ReaderSpec] = Registry("source", package=__name__)


#: How completely a source's object labels cover their categories, which decides whether a count is proven:
LABELS = {
    # every instance of a labelled category in an image has a box (LVIS flags its not-exhaustive categories'
    # boxes ``ignore``, so they are never counted)
    "exhaustive": "every instance of a labelled category is boxed",
    # the dataset says so, but it is not verified (Objects365); counting may trust it (``trust_claimed``)
    "claimed": "claimed exhaustive by the dataset, unverified",
    # free-text labels of what annotators chose to mark (Visual Genome): a count is a lower bound
    "partial": "annotators labelled some instances; counts are lower bounds",
}


def register(name: str, config_class: type, *, provides: tuple[str, ...], labels: str = "partial"):
    """Decorator: register ``read(config, ctx)`` under ``name``, with the `ANNOTATIONS` its records provide and
    how complete its labels are (`LABELS`); a duplicate name or an unknown kind is an error."""
    unknown = set(provides) - set(ANNOTATIONS)
    if unknown:
        raise ValueError(f"reader {name!r}: unknown annotation kinds {sorted(unknown)}; known: {sorted(ANNOTATIONS)}")
    if labels not in LABELS:
        raise ValueError(f"reader {name!r}: labels must be one of {sorted(LABELS)}")

    def wrap(fn):
        REGISTRY.add(name, ReaderSpec(name, config_class, fn, (fn.__module__ and (fn.__doc__ or "")).strip(),
                                      tuple(provides), labels))
        return fn

    return wrap


def get(name: str) -> ReaderSpec:
    return REGISTRY.get(name)


def names() -> list[str]:
    return REGISTRY.names()


@dataclass
class ReadContext:
    """What a reader may use besides its config: a private scratch folder for spills."""

    work_dir: str
    source: str
