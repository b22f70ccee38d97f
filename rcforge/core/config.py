"""Building frozen dataclass configs from recipe mappings, with errors that name the key.

A config field whose metadata has ``path=True`` is a file or folder: a relative path is resolved against the
recipe's folder and, with ``must_exist`` (the default for paths), checked to exist. ``choices`` in the metadata
(or a ``Literal`` annotation) lists the allowed values. A numeric field declares its allowed values once, with
`number` (a `Range`); the recipe (`build_config`, `check_field`) and the command line (`flag_type`) both check
against that one declaration, and a number is always finite (no ``nan``, no ``inf``).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import posixpath
import typing
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from rcforge.core import fsio
from rcforge.core.errors import RecipeError


def path_field(*, default: Any = dataclasses.MISSING, must_exist: bool = True, doc: str = ""):
    kwargs = {} if default is dataclasses.MISSING else {"default": default}
    return dataclasses.field(metadata={"path": True, "must_exist": must_exist, "doc": doc}, **kwargs)


@dataclass(frozen=True)
class Range:
    """The allowed values of a numeric option: ``low`` and ``high`` are inclusive unless ``low_open`` /
    ``high_open``; None is unbounded. Every value is also finite."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def __contains__(self, value) -> bool:
        if isinstance(value, float) and not math.isfinite(value):
            return False
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return self.high is None or (value < self.high if self.high_open else value <= self.high)

    def describe(self, kind: type) -> str:
        """``an integer >= 1``, ``a number within (0, 1]``, ..."""
        noun = "an integer" if kind is int else "a number"
        low, high = _shown(self.low), _shown(self.high)
        if self.low is not None and self.high is not None:
            return f"{noun} within {'(' if self.low_open else '['}{low}, {high}{')' if self.high_open else ']'}"
        if self.low is not None:
            return f"{noun} {'>' if self.low_open else '>='} {low}"
        if self.high is not None:
            return f"{noun} {'<' if self.high_open else '<='} {high}"
        return "an integer" if kind is int else "a finite number"


def _shown(bound) -> str:
    if bound is None:
        return ""
    if bound == 2**63 - 1:
        return "2**63 - 1"
    return str(int(bound)) if float(bound).is_integer() else str(bound)


#: the values of a number option that declares no range of its own
ANY_NUMBER = Range()


def number(default, low=None, high=None, *, low_open: bool = False, high_open: bool = False, key: str | None = None):
    """A numeric config field with its allowed values (checked by `build_config` and by `flag_type`). ``key``: the
    option's recipe key, where it differs from the field's name (``lambda`` for ``lam``)."""
    metadata = {"range": Range(low, high, low_open, high_open)}
    if key:
        metadata["key"] = key
    return dataclasses.field(default=default, metadata=metadata)


def field_range(cls, name: str) -> Range:
    """The declared `Range` of ``cls``'s field ``name`` (`ANY_NUMBER` when it declares none)."""
    for f in dataclasses.fields(cls):
        if f.name == name:
            return f.metadata.get("range", ANY_NUMBER)
    raise KeyError(name)


def check_number(value, kind: type, allowed: Range, key: str):
    """``value`` as a ``kind`` (int or float) within ``allowed``; a `RecipeError` naming ``key`` and the allowed
    values otherwise. Booleans are not numbers; floats must be finite; an int option takes no float."""
    ok_type = not isinstance(value, bool) and isinstance(value, (int,) if kind is int else (int, float))
    if not ok_type or value not in allowed:
        raise RecipeError(f"{key}: expected {allowed.describe(kind)}, got {value!r:.60}")
    return float(value) if kind is float else value


def check_ranges(config) -> None:
    """Every numeric field of the dataclass instance ``config`` within its declared `Range` (for a config built in
    code, not from a recipe: `build_config` has checked those); a `RecipeError` naming the first that is not."""
    hints = typing.get_type_hints(type(config))
    for f in dataclasses.fields(config):
        if "range" in f.metadata:
            check_number(getattr(config, f.name), hints[f.name], f.metadata["range"], recipe_key(f))


def check_field(cls, name: str, value, key: str):
    """``value`` checked as the recipe value of ``cls``'s field ``name``: its type, and its `Range` if a number."""
    hint = typing.get_type_hints(cls).get(name)
    if hint in (int, float):
        return check_number(value, hint, field_range(cls, name), key)
    return check_type(value, hint, key)


def flag_type(cls, name: str):
    """An argparse ``type`` for a command-line flag that sets ``cls``'s numeric field ``name``: the flag is parsed
    and checked against the field's one `Range` before the command touches anything. ``--lambda 1.5``,
    ``nan``, ``-1`` or ``x`` end with argparse's one-line error naming the flag and the allowed values."""
    return number_flag(typing.get_type_hints(cls)[name], field_range(cls, name))


def number_flag(kind: type, allowed: Range):
    """An argparse ``type`` for a numeric flag of its own (not a config field): a ``kind`` within ``allowed``."""

    def parse(text: str):
        try:
            value = int(text) if kind is int else float(text)
        except ValueError:
            value = None
        if value is None or value not in allowed:
            raise argparse.ArgumentTypeError(f"expected {allowed.describe(kind)}, got {text!r}")
        return value

    parse.__name__ = allowed.describe(kind)  # what argparse shows if it names the type
    return parse


def resolve_path(value: str, base_dir: str | None) -> str:
    value = str(value)
    if "://" in value or os.path.isabs(value) or base_dir is None:
        return os.path.expanduser(value)
    if "://" in base_dir:  # a recipe in an object store: "../data" is resolved within the URL's path
        protocol, path = base_dir.split("://", 1)
        return f"{protocol}://{posixpath.normpath(posixpath.join(path, value))}"
    return os.path.normpath(os.path.join(base_dir, os.path.expanduser(value)))


def recipe_key(f: dataclasses.Field) -> str:
    """The recipe key of a config field: its name, or the ``key`` it declares (``lambda`` for the field ``lam``,
    a Python keyword); the same key names its command-line flag, where it has one."""
    return f.metadata.get("key", f.name)


def build_config(cls, mapping: Mapping[str, Any] | None, where: str, base_dir: str | None = None,
                 parse: Mapping[str, Callable[[Any, str, str | None], Any]] | None = None):
    """Instantiate the dataclass ``cls`` from a recipe mapping found at ``where`` (e.g. "sources.vqav2"): the one
    validator of every recipe section. Each key is checked once, by its field's declaration: its type, its
    `Range` (`number`), whether a path exists (`path_field`); ``parse`` maps the fields whose values need more
    (a registry name, a nested section) to ``parse(value, key, base_dir)``, which returns the checked value."""
    if mapping is None:
        mapping = {}
    if not isinstance(mapping, Mapping):
        raise RecipeError(f"{where}: expected a mapping of options, got {type(mapping).__name__}")
    fields = {recipe_key(f): f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(mapping) - set(fields))
    if unknown:
        raise RecipeError(f"{where}: unknown key {unknown[0]!r}; allowed keys: {', '.join(sorted(fields))}")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for option, f in fields.items():
        name, key = f.name, f"{where}.{option}"
        if option not in mapping:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise RecipeError(f"{key} is required")
            continue
        value = mapping[option]
        if parse and name in parse:
            kwargs[name] = parse[name](value, key, base_dir)
            continue
        if f.metadata.get("path") and value is not None:
            if not isinstance(value, str):
                raise RecipeError(f"{key}: expected a path, got {value!r}")
            value = resolve_path(value, base_dir)
            if f.metadata.get("must_exist", True) and not fsio.exists(value):
                raise RecipeError(f"{key}: {value} does not exist")
        if hints.get(name) in (int, float):
            kwargs[name] = check_number(value, hints[name], f.metadata.get("range", ANY_NUMBER), key)
        else:
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
    if hint in (int, float):
        return check_number(value, hint, ANY_NUMBER, key)
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
