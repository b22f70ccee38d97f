"""Dataset readers, one module per source, registered by name.

A reader knows its files' formats and nothing else. It is a generator ``read(config, ctx)`` that yields one
`rcforge.ledger.ImageResult` per image (the image record in the schema `rcforge.schemas.IMAGE_RECORD`, or the
reason it could not be made), boxes already in the canonical pixel xyxy form. Its config is a frozen dataclass
built from the recipe's ``sources.<name>`` mapping.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable, Iterator

from rcforge.errors import RecipeError

#: reader modules, imported on first use so that `import rcforge.readers` stays cheap
_MODULES = ("visual_genome", "objects365", "flickr30k_entities", "refcoco", "vqav2", "pointqa")


@dataclass(frozen=True)
class ReaderSpec:
    name: str
    config_class: type
    read: Callable[..., Iterator]
    doc: str


_REGISTRY: dict[str, ReaderSpec] = {}


def register(name: str, config_class: type):
    """Decorator: register ``read(config, ctx)`` under ``name``; a duplicate name is an error."""

    def wrap(fn):
        if name in _REGISTRY:
            raise ValueError(f"reader {name!r} is registered twice")
        _REGISTRY[name] = ReaderSpec(name, config_class, fn, (fn.__module__ and (fn.__doc__ or "")).strip())
        return fn

    return wrap


def _load_all() -> None:
    for module in _MODULES:
        importlib.import_module(f"rcforge.readers.{module}")


def get(name: str) -> ReaderSpec:
    _load_all()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise RecipeError(f"Unknown source {name!r}; registered: {', '.join(sorted(_REGISTRY))}") from None


def names() -> list[str]:
    _load_all()
    return sorted(_REGISTRY)


@dataclass
class ReadContext:
    """What a reader may use besides its config: a private scratch folder for spills."""

    work_dir: str
    source: str
