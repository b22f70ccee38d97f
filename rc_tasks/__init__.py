"""RC tasks: pure functions of (image record, seeded rng, config) -> task instances.

Task modules arrive with the rendering stage; this package holds the registry they use, so that a task is
registered by an explicit name and a duplicate name fails at import.
"""

from __future__ import annotations

from typing import Callable

_TASKS: dict[str, tuple[type, Callable]] = {}


def register(name: str, config_class: type):
    def wrap(fn):
        if name in _TASKS:
            raise ValueError(f"task {name!r} is registered twice")
        _TASKS[name] = (config_class, fn)
        return fn

    return wrap


def names() -> list[str]:
    return sorted(_TASKS)
