"""Building frozen dataclass configs from recipe mappings, with errors that name the key.

A config field whose metadata has ``path=True`` is a file or folder: a relative path is resolved against the
recipe's folder and, with ``must_exist`` (the default for paths), checked to exist. ``choices`` in the metadata
(or a ``Literal`` annotation) lists the allowed values.
"""

from __future__ import annotations

import dataclasses
import os
import posixpath
import typing
from typing import Any, Mapping

from rcforge import fsio
from rcforge.errors import RecipeError


def path_field(*, default: Any = dataclasses.MISSING, must_exist: bool = True, doc: str = ""):
    kwargs = {} if default is dataclasses.MISSING else {"default": default}
    return dataclasses.field(metadata={"path": True, "must_exist": must_exist, "doc": doc}, **kwargs)


def resolve_path(value: str, base_dir: str | None) -> str:
    value = str(value)
    if "://" in value or os.path.isabs(value) or base_dir is None:
        return os.path.expanduser(value)
    if "://" in base_dir:  # a recipe in an object store: "../data" is resolved within the URL's path
        protocol, path = base_dir.split("://", 1)
        return f"{protocol}://{posixpath.normpath(posixpath.join(path, value))}"
    return os.path.normpath(os.path.join(base_dir, os.path.expanduser(value)))


def build_config(cls, mapping: Mapping[str, Any] | None, where: str, base_dir: str | None = None):
    """Instantiate the dataclass ``cls`` from a recipe mapping found at ``where`` (e.g. "sources.vqav2")."""
    if mapping is None:
        mapping = {}
    if not isinstance(mapping, Mapping):
        raise RecipeError(f"{where}: expected a mapping of options, got {type(mapping).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(mapping) - set(fields))
    if unknown:
        raise RecipeError(f"{where}: unknown key {unknown[0]!r}; allowed keys: {', '.join(sorted(fields))}")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, f in fields.items():
        if name not in mapping:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise RecipeError(f"{where}.{name} is required")
            continue
        value = mapping[name]
        key = f"{where}.{name}"
        if f.metadata.get("path") and value is not None:
            if not isinstance(value, str):
                raise RecipeError(f"{key}: expected a path, got {value!r}")
            value = resolve_path(value, base_dir)
            if f.metadata.get("must_exist", True) and not fsio.exists(value):
                raise RecipeError(f"{key}: {value} does not exist")
        kwargs[name] = check_type(value, hints.get(name), key)
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as err:
        raise RecipeError(f"{where}: {err}") from None


def check_type(value, hint, key):
    """``value`` checked against the type ``hint``; a `RecipeError` naming ``key`` when it does not fit."""
    if hint is None:
        return value
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is typing.Literal:
        if value not in args:
            raise RecipeError(f"{key}: {value!r} is not allowed; choose one of: {', '.join(map(str, args))}")
        return value
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        if value is None and type(None) in args:
            return None
        non_none = [a for a in args if a is not type(None)]
        last = None
        for arg in non_none:
            try:
                return check_type(value, arg, key)
            except RecipeError as err:
                last = err
        raise last  # type: ignore[misc]
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise RecipeError(f"{key}: expected a list, got {value!r}")
        inner = args[0] if args else None
        return tuple(check_type(v, inner, key) for v in value)
    if hint is bool:
        if not isinstance(value, bool):
            raise RecipeError(f"{key}: expected true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise RecipeError(f"{key}: expected an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise RecipeError(f"{key}: expected a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise RecipeError(f"{key}: expected a string, got {value!r}")
        return value
    return value


def describe(cls) -> list[tuple[str, str, str]]:
    """(name, type, default) of each option of a config class, for `--help`-style listings."""
    hints = typing.get_type_hints(cls)
    rows = []
    for f in dataclasses.fields(cls):
        default = "required" if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING \
            else repr(f.default if f.default is not dataclasses.MISSING else f.default_factory())
        hint = hints.get(f.name, "")
        shown = hint.__name__ if isinstance(hint, type) else str(hint).replace("typing.", "")
        rows.append((f.name, shown, default))
    return rows
