"""Dataset readers, one module per source, registered by name.

A reader knows its files' formats and nothing else. It is a generator ``read(config, ctx)`` that yields one
`rcforge.ledger.ImageResult` per image (the image record in the schema `rcforge.schemas.IMAGE_RECORD`, or the
reason it could not be made), boxes already in the canonical pixel xyxy form. Its config is a frozen dataclass
built from the recipe's ``sources.<name>`` mapping.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

from rcforge.registry import Registry



@dataclass(frozen=True)
class ReaderSpec:
    name: str
    config_class: type
    read: Callable[..., Iterator]
    doc: str


#: every module of this package is imported on first use (so that `import rcforge.readers` stays cheap); a reader
#: module registers itself with `register`
REGISTRY: Registry[ReaderSpec] = Registry("source", package=__name__)


def register(name: str, config_class: type):
    """Decorator: register ``read(config, ctx)`` under ``name``; a duplicate name is an error."""

    def wrap(fn):
        REGISTRY.add(name, ReaderSpec(name, config_class, fn, (fn.__module__ and (fn.__doc__ or "")).strip()))
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
