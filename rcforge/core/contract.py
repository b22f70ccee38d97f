"""Source contracts: the declared shape of every input file and the type and range of every field read from it.

Each reader declares, next to its code, what it expects of its files: the top-level shape (`FileShape`: an
array, or an object holding arrays under named keys) and, per kind of record, the fields it reads
(`ItemContract`: a name, its alternative spellings, a type with its range, required or optional). The reader
calls the contract on every path that reads the file (Visual Genome's per-image path, its columnar lanes and its
keyed fallback all call the same `ItemContract`), so a rule is written once.

What the contract promises:
- A file of the wrong shape is a file-level `InputError` naming the file and the expected shape (raised by
  `rcforge.core.fsio.iter_json`, which checks the shape whenever a stream yields nothing).
- A field of the wrong type or out of range raises `BadRecord` with the field's name and a reason
  (``wrong_type``, ``out_of_range``, ``missing_field``): the reader rejects that record or item. Values are never
  coerced: ``"names": "sneakers"`` is a wrong type, not eight one-letter names; a category name that is a number
  is a wrong type, not the text of that number; ``true`` is not the integer 1.
- Integers are ids or counts: in [0, 2**63) unless the field says otherwise, so every id fits Arrow's int64.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Mapping

from rcforge.core.errors import BadRecord

INT64_MAX = 2**63 - 1
#: the longest text accepted in one field (a region phrase, a question, a name); longer is out of range
MAX_TEXT = 10_000


def _type_name(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, Mapping):
        return "a mapping"
    return type(value).__name__


def wrong_type(field_name: str, expected: str, value) -> BadRecord:
    shown = repr(value)
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    return BadRecord("wrong_type", f"{field_name} is {_type_name(value)} ({shown}), expected {expected}",
                     field=field_name)


class Spec:
    """A field's type and range; `check` returns the value (never converted in meaning) or raises `BadRecord`."""

    expected = "a value"

    def check(self, value, name: str):
        raise NotImplementedError


@dataclass(frozen=True)
class Int(Spec):
    """An integer in [lo, hi]; a float with an integral value (``5.0``, as some writers print ids) is accepted,
    booleans and strings are not."""

    lo: int = 0
    hi: int = INT64_MAX

    @property
    def expected(self) -> str:
        return "an integer"

    def check(self, value, name: str) -> int:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise wrong_type(name, self.expected, value)
        if isinstance(value, float):
            if not math.isfinite(value) or value != int(value):
                raise wrong_type(name, self.expected, value)
            value = int(value)
        if not self.lo <= value <= self.hi:
            raise BadRecord("out_of_range", f"{name} is {value}, outside [{self.lo}, {self.hi}]", field=name)
        return value


@dataclass(frozen=True)
class Num(Spec):
    """A finite number (int or float, never a boolean or a string)."""

    lo: float = -math.inf
    hi: float = math.inf

    @property
    def expected(self) -> str:
        return "a number"

    def check(self, value, name: str) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise wrong_type(name, self.expected, value)
        try:
            number = float(value)
        except OverflowError:
            raise BadRecord("out_of_range", f"{name} is too large for a float", field=name) from None
        if not math.isfinite(number):
            raise BadRecord("box_not_finite", f"{name} is {value!r}", field=name)
        if not self.lo <= number <= self.hi:
            raise BadRecord("out_of_range", f"{name} is {number:g}, outside [{self.lo:g}, {self.hi:g}]", field=name)
        return number


@dataclass(frozen=True)
class Text(Spec):
    """A string; whitespace is collapsed (and lower-cased with ``lower``); ``nonempty`` rejects blank text."""

    nonempty: bool = False
    lower: bool = False
    max_len: int = MAX_TEXT
    empty_reason: str = "missing_field"

    expected = "a string"

    def check(self, value, name: str) -> str:
        if not isinstance(value, str):
            raise wrong_type(name, self.expected, value)
        if len(value) > self.max_len:
            raise too_long(name, len(value), self.max_len)
        check_chars(value, name)
        text = " ".join(value.split())
        if self.lower:
            text = text.lower()
        if self.nonempty and not text:
            raise BadRecord(self.empty_reason, f"{name} is empty", field=name)
        return text


#: control characters a text must not hold (tab, newline and carriage return are whitespace, collapsed)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def check_chars(value: str, name: str) -> None:
    """A `BadRecord` for text that would break the text pipeline downstream: a lone surrogate (from a pickle or
    a JSON escape: not valid Unicode, it cannot be written as UTF-8) or a control character (a NUL byte ends a C
    string; an image path holding one cannot be opened)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as err:
        code = ord(value[err.start])
        if 0xDC80 <= code <= 0xDCFF:  # a byte of the file that is not UTF-8, kept by surrogateescape
            raise BadRecord("bad_text", f"{name} holds the byte 0x{code - 0xDC00:02X} at {err.start}, which is not "
                                        f"UTF-8 text", field=name) from None
        raise BadRecord("bad_text", f"{name} holds a lone surrogate U+{code:04X} at {err.start} "
                                    f"(not valid Unicode)", field=name) from None
    control = _CONTROL.search(value)
    if control:
        raise BadRecord("bad_text", f"{name} holds the control character U+{ord(control.group()):04X} at "
                                    f"{control.start()}", field=name)


def too_long(name: str, length: int, limit: int) -> BadRecord:
    return BadRecord("out_of_range", f"{name} has {length} characters, more than {limit}", field=name)


@dataclass(frozen=True)
class TextList(Spec):
    """A list of strings; blank entries are dropped, repeats too with ``dedupe``; ``nonempty`` needs one left."""

    nonempty: bool = False
    lower: bool = False
    dedupe: bool = False
    max_items: int = 10_000
    raw: bool = False  # keep each string as it is (synsets): only the types are checked

    expected = "a list of strings"

    def check(self, value, name: str) -> list[str]:
        if not isinstance(value, list):
            raise wrong_type(name, self.expected, value)
        if len(value) > self.max_items:
            raise BadRecord("out_of_range", f"{name} has {len(value)} entries, more than {self.max_items}",
                            field=name)
        out = []
        for i, v in enumerate(value):
            if not isinstance(v, str):
                raise wrong_type(f"{name}[{i}]", "a string", v)
            if len(v) > MAX_TEXT:
                raise too_long(f"{name}[{i}]", len(v), MAX_TEXT)
            check_chars(v, f"{name}[{i}]")
            if self.raw:
                out.append(v)
                continue
            text = " ".join(v.split())
            if self.lower:
                text = text.lower()
            if text:
                out.append(text)
        if self.dedupe:
            out = list(dict.fromkeys(out))
        if self.nonempty and not out:
            raise BadRecord("missing_field", f"{name} has no non-empty entry", field=name)
        return out


@dataclass(frozen=True)
class Flag(Spec):
    """A 0/1 flag (COCO's ``iscrowd``): a boolean or the integers 0 and 1."""

    expected = "0, 1, true or false"

    def check(self, value, name: str) -> bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        raise wrong_type(name, self.expected, value)


@dataclass(frozen=True)
class Scalar(Spec):
    """An answer-like value: a string, or a number printed as text; a mapping or list is a wrong type."""

    expected = "a string or a number"

    def check(self, value, name: str) -> str:
        if isinstance(value, str):
            return Text().check(value, name)
        if isinstance(value, bool):
            return "yes" if value else "no"
        if isinstance(value, int) or (isinstance(value, float) and math.isfinite(value)):
            return str(value)
        raise wrong_type(name, self.expected, value)


@dataclass(frozen=True)
class Mapping_(Spec):
    expected = "a mapping"

    def check(self, value, name: str) -> dict:
        if not isinstance(value, Mapping):
            raise wrong_type(name, self.expected, value)
        return value


@dataclass(frozen=True)
class Field:
    """One field of a record: ``names`` are its spellings in the order they are tried (a null counts as absent)."""

    names: tuple[str, ...]
    spec: Spec
    required: bool = True
    default: Any = None

    @property
    def name(self) -> str:
        return self.names[0]


def F(names: str | tuple[str, ...], spec: Spec, *, required: bool = True, default=None) -> Field:
    return Field((names,) if isinstance(names, str) else tuple(names), spec, required, default)


@dataclass(frozen=True)
class ItemContract:
    """The fields of one kind of record (a VG object, a COCO annotation, a VQAv2 question...).

    `parse` checks an entry and returns ``{field name: checked value}`` (the first spelling is the key), raising
    `BadRecord` at the first field that breaks the contract, in declaration order. ``what`` names the record in
    messages ("object", "annotation").
    """

    what: str
    fields: tuple[Field, ...]
    by_name: dict = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        object.__setattr__(self, "by_name", {f.name: f for f in self.fields})

    def parse(self, entry, *, only: tuple[str, ...] | None = None) -> dict:
        if not isinstance(entry, Mapping):
            raise BadRecord("malformed_record", f"{self.what} entry is {_type_name(entry)}, expected a mapping")
        out = {}
        for f in self.fields:
            if only is not None and f.name not in only:
                continue
            out[f.name] = self.value(entry, f)
        return out

    def value(self, entry: Mapping, f: Field | str):
        f = self.by_name[f] if isinstance(f, str) else f
        raw = None
        for n in f.names:
            raw = entry.get(n)
            if raw is not None:
                break
        if raw is None:
            if f.required:
                raise missing(self.what, f.name)
            return f.default
        return f.spec.check(raw, f.name)


def missing(what: str, name: str) -> BadRecord:
    return BadRecord("missing_field", f"{what} has no {name!r}", field=name)


@dataclass(frozen=True)
class FileShape:
    """A file's top-level shape: ``array`` (a JSON array of entries), ``object`` (a mapping of entries, as PointQA
    keys entries by image id), or ``object`` with ``arrays``: keys whose values must be arrays (COCO's
    ``images``, ``annotations``, ``categories``)."""

    top: str  # "array" | "object"
    arrays: tuple[str, ...] = ()
    doc: str = ""

    def describe(self) -> str:
        if self.top == "array":
            return "a JSON array"
        if self.arrays:
            return "a JSON object with " + ", ".join(f"'{k}' (an array)" for k in self.arrays)
        return "a JSON object"
