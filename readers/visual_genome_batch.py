"""Visual Genome's columnar producer: per-file parallel parsing into Arrow columns.

Parsing dominates ingest. Each VG file is parsed by its own process (or in this one, for small inputs), which turns
every batch of ``BATCH`` images into Arrow columns: ids, normalized strings, raw coordinates, and the problems
that need Python to spot (a missing field, a value that is not a number). `read_batches` checks that the files
agree on the image ids of each batch and hands it to the joiner (`visual_genome_join.join`), which owns every
rule. When the files disagree on the image order, or a batch needs a relationship endpoint adopted (which needs
the raw items this producer does not carry), it raises `Switch` and the reader (`visual_genome`) continues with
its entry producer from that batch on.

`extract` (a batch of raw entries to the same columns) serves both producers: the entry producer calls it on the
entries it read with ijson.
"""

from __future__ import annotations

import struct
import subprocess
import sys
from typing import Iterator

import numpy as np
import pyarrow as pa

from rcforge.core import fsio
from rcforge.core.contract import MAX_TEXT, missing
from rcforge.core.errors import BadRecord, InputError
from rcforge.core.ledgerkeeper import ReadBatch
from rcforge.readers import visual_genome_contract as contract
from rcforge.readers.visual_genome_join import Switch, join

BATCH = 500
SOURCE = "visual_genome"
KEY_PREFIX = "vg"

LIST_KEY = {"object": "objects", "relation": "relationships", "region": "regions", "attribute": "attributes"}


def entry_image_id(entry):
    """``image_id``, else (VG 1.0) ``id``: as `extract_table` coalesces them."""
    if not isinstance(entry, dict):
        return None
    return entry["image_id"] if entry.get("image_id") is not None else entry.get("id")


def extract(kind: str, entries: list) -> pa.RecordBatch:
    """Columns of one batch of entries of one file; ``img`` indexes the entry within the batch.

    The fast lane gathers raw values in tight loops and checks and normalizes them column-wise; a batch holding
    anything unusual (a value of an unexpected type, non-ASCII text) goes through the careful per-item lane.
    Both give the same columns.
    """
    try:
        batch = _FAST[kind](entries)
    except _Unusual:
        batch = _careful(kind, entries)
    return _with_ids(batch, [entry_image_id(e) for e in entries])


class NotAList:
    """Stands for an entry's item list that is not a list (``"objects": "abc"``): one malformed item, rejected
    and counted, never read as no items."""

    def __init__(self, value):
        self.value = value


def items_of(entry, key: str) -> list:
    """The items of one per-image entry under ``key``; a value that is not a list is one malformed item."""
    if not isinstance(entry, dict):
        return []
    value = entry.get(key)
    if value is None:
        return []
    return value if isinstance(value, list) else [NotAList(value)]


def _with_ids(batch: pa.RecordBatch, image_ids: list) -> pa.RecordBatch:
    return batch.replace_schema_metadata({b"image_ids": repr(image_ids).encode(), b"n": str(len(image_ids)).encode()})


def extract_table(kind: str, table: pa.Table) -> pa.RecordBatch:
    """`extract` for entries already read by Arrow's JSON reader (one row per entry)."""
    image_ids = _pc().coalesce(table.column("image_id"), table.column("id")).to_pylist()
    try:
        batch = _FROM_TABLE[kind](table)
    except _Unusual:
        batch = _careful(kind, table.to_pylist())
    return _with_ids(batch, image_ids)


def _careful(kind: str, entries: list) -> pa.RecordBatch:
    cols: dict[str, list] = {"img": [], "id": [], "p_reason": [], "p_field": [], "p_msg": []}
    if kind in ("object", "region"):
        cols.update({"x": [], "y": [], "w": [], "h": []})
    if kind == "object":
        cols.update({"names": [], "synsets": []})
    elif kind == "region":
        cols["phrase"] = []
    elif kind == "relation":
        cols.update({"predicate": [], "subject_id": [], "object_id": [], "subject_problem": [],
                     "object_problem": []})
    elif kind == "attribute":
        cols["attributes"] = []
    key = LIST_KEY[kind]
    for k, entry in enumerate(entries):
        for item in items_of(entry, key):
            cols["img"].append(k)
            problem = None
            problem = _EXTRACT[kind](item, cols)
            cols["p_reason"].append(problem[0] if problem else None)
            cols["p_field"].append(problem[1] if problem else None)
            cols["p_msg"].append(problem[2] if problem else None)
    types = {"img": pa.int32(), "id": pa.int64(), "x": pa.float64(), "y": pa.float64(), "w": pa.float64(),
             "h": pa.float64(), "names": pa.list_(pa.string()), "synsets": pa.list_(pa.string()),
             "attributes": pa.list_(pa.string()), "subject_id": pa.int64(), "object_id": pa.int64()}
    arrays = {name: pa.array(values, type=types.get(name, pa.string())) for name, values in cols.items()}
    return pa.RecordBatch.from_pydict(arrays)


# -- the fast lane -------------------------------------------------------------------------------------------------
# Each parsed entry is re-serialized with orjson (C, several times faster than parsing) and the batch is read back
# by Arrow's C++ JSON reader against an explicit schema; the columns are then checked and normalized with Arrow
# compute and NumPy. A value of an unexpected type makes Arrow's reader fail, and the batch takes the careful lane.
class _Unusual(Exception):
    """The batch holds a value the fast lane does not handle; use the careful lane."""


#: the characters Python's str.split() splits on (str.isspace), as an RE2 class
_SPACES = (r"[\t\n\x{0b}\f\r\x{1c}-\x{1f} \x{85}\x{a0}\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}"
           r"\x{202f}\x{205f}\x{3000}]+")

_XYWH = [("x", pa.float64()), ("y", pa.float64()), ("w", pa.float64()), ("h", pa.float64())]
_ID = [("object_id", pa.int64()), ("id", pa.int64())]
_TOP = [("image_id", pa.int64()), ("id", pa.int64())]
_ENTRY_SCHEMAS = {
    "object": pa.schema(_TOP + [("objects", pa.list_(pa.struct(
        _ID + [("names", pa.list_(pa.string())), ("name", pa.string()), ("synsets", pa.list_(pa.string()))]
        + _XYWH)))]),
    "region": pa.schema(_TOP + [("regions", pa.list_(pa.struct(
        [("region_id", pa.int64()), ("id", pa.int64()), ("phrase", pa.string()), ("width", pa.float64()),
         ("height", pa.float64())] + _XYWH)))]),
    "relation": pa.schema(_TOP + [("relationships", pa.list_(pa.struct(
        [("relationship_id", pa.int64()), ("id", pa.int64()), ("predicate", pa.string()),
         ("subject", pa.struct(_ID)), ("object", pa.struct(_ID))])))]),
    "attribute": pa.schema(_TOP + [("attributes", pa.list_(pa.struct(_ID + [("attributes", pa.list_(pa.string()))])))]),
}


def _pc():
    import pyarrow.compute as pc

    return pc


def _table_of(kind: str, entries: list) -> pa.Table:
    """Entries re-serialized with orjson and read back by Arrow's JSON reader against the file's schema."""
    import orjson

    if not all(type(e) is dict for e in entries):
        raise _Unusual()
    try:
        data = b"\n".join(map(orjson.dumps, entries))
    except (orjson.JSONEncodeError, OverflowError):
        raise _Unusual() from None
    try:
        return _read_lines(kind, data)
    except pa.ArrowException:
        raise _Unusual() from None


def _read_lines(kind: str, data: bytes) -> pa.Table:
    import pyarrow.json as pajson

    return pajson.read_json(
        pa.BufferReader(data),
        read_options=pajson.ReadOptions(use_threads=False, block_size=max(1 << 20, len(data) + 1)),
        parse_options=pajson.ParseOptions(explicit_schema=_ENTRY_SCHEMAS[kind], unexpected_field_behavior="ignore"))


def _items_of(kind: str, table: pa.Table) -> tuple[np.ndarray, pa.StructArray]:
    """(entry index of each item, the items as one struct array)."""
    lists = table.column(LIST_KEY[kind]).combine_chunks()
    pc = _pc()
    img = pc.list_parent_indices(lists).to_numpy(zero_copy_only=False).astype(np.int32)
    return img, pc.list_flatten(lists)


def _normalize(arr: pa.Array, lower: bool) -> pa.Array:
    """``" ".join(v.split())`` (and ``.lower()``) column-wise; nulls become "".

    ASCII values are done with Arrow compute; the few non-ASCII ones in Python, whose lower() and split() differ
    from Arrow's on some letters and spaces.
    """
    pc = _pc()
    arr = pc.fill_null(arr, "")
    if not len(arr):
        return arr
    out = pc.utf8_trim(pc.replace_substring_regex(arr, _SPACES, " "), " ")
    if lower:
        out = pc.ascii_lower(out)
    ascii_ = pc.string_is_ascii(arr)
    if not pc.all(ascii_).as_py():
        mask = pc.invert(ascii_)
        values = arr.filter(mask).to_pylist()
        fixed = [" ".join(v.split()).lower() if lower else " ".join(v.split()) for v in values]
        out = pc.replace_with_mask(out, mask, pa.array(fixed, pa.string()))
    return out


def _strings_or_empty(lists: pa.Array, *, normalize: bool = False, drop_empty: bool = False,
                      dedupe: bool = False) -> pa.Array:
    """list<string> with null lists as [] (and optionally values normalized, "" dropped, repeats dropped)."""
    pc = _pc()
    lengths = pc.fill_null(pc.list_value_length(lists), 0).to_numpy(zero_copy_only=False).astype(np.int64)
    flat = pc.list_flatten(lists)
    if flat.null_count:
        raise _Unusual()
    if normalize:
        flat = _normalize(flat, lower=True)
    parents = np.repeat(np.arange(len(lengths)), lengths)
    keep = np.ones(len(flat), dtype=bool)
    if drop_empty and len(flat):
        keep &= pc.not_equal(flat, "").to_numpy(zero_copy_only=False)
    if dedupe and len(flat):
        codes = pc.dictionary_encode(flat).indices.to_numpy(zero_copy_only=False).astype(np.int64)
        key = parents * (int(codes.max()) + 1) + codes
        cand = np.flatnonzero(keep)
        _, first = np.unique(key[cand], return_index=True)
        dedup = np.zeros(len(flat), dtype=bool)
        dedup[cand[first]] = True
        keep &= dedup
    counts = np.bincount(parents[keep], minlength=len(lengths))
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets), flat.filter(pa.array(keep)), type=pa.list_(pa.string()))


def _problem_columns(m: int, checks: list) -> tuple[pa.Array, pa.Array, pa.Array]:
    """First failing check per row: checks are (mask, reason, field, message) in precedence order."""
    reason = np.full(m, None, dtype=object)
    field = np.full(m, None, dtype=object)
    message = np.full(m, None, dtype=object)
    open_ = np.ones(m, dtype=bool)
    for mask, r, f, msg in checks:
        hit = open_ & mask
        if hit.any():
            reason[hit], field[hit], message[hit] = r, f, msg
            open_ &= ~hit
    return (pa.array(reason, pa.string()), pa.array(field, pa.string()), pa.array(message, pa.string()))


def _coord_checks(arrays: list[pa.Array], names: list[str], what: str) -> tuple[list, list[pa.Array]]:
    """Missing coordinates as checks (the contract's message), the arrays with those rows' boxes nulled.

    JSON has no infinities and the fast lane reads JSON, so every present value is finite; anything else would
    have failed Arrow's typed read and taken the careful lane.
    """
    checks = []
    valid = [a.is_valid().to_numpy(zero_copy_only=False) for a in arrays]
    bad = np.zeros(len(valid[0]), dtype=bool)
    for v, name in zip(valid, names):
        checks.append((~v, "missing_field", name, missing(what, name).message))
        bad |= ~v
    if bad.any():  # as in the careful lane: a box with a bad coordinate keeps none of them
        mask = pa.array(bad)
        arrays = [_pc().if_else(mask, pa.scalar(None, pa.float64()), a) for a in arrays]
    return checks, arrays


def _usual_ids(*arrays: pa.Array) -> None:
    """The fast lane handles ids in the contract's range only; a negative id goes to the careful lane."""
    for arr in arrays:
        if len(arr) and arr.null_count < len(arr) and _pc().min(arr).as_py() < contract.ID_RANGE[0]:
            raise _Unusual()


#: the characters `contract.check_chars` rejects, as an RE2 class
_CONTROL = r"[\x{00}-\x{08}\x{0b}\x{0c}\x{0e}-\x{1f}\x{7f}]"


def _usual_text(arr: pa.Array) -> None:
    """Text past the contract's length limit, or holding a control character, goes to the careful lane, which
    rejects it with the contract's message."""
    if not len(arr) or arr.null_count == len(arr):
        return
    pc = _pc()
    if pc.max(pc.utf8_length(arr)).as_py() > MAX_TEXT or pc.any(pc.match_substring_regex(arr, _CONTROL)).as_py():
        raise _Unusual()


def _coalesce(items: pa.StructArray, *names: str) -> pa.Array:
    return _pc().coalesce(*[items.field(n) for n in names])


def _valid(arr: pa.Array) -> np.ndarray:
    return arr.is_valid().to_numpy(zero_copy_only=False)


def _item_ids(kind: str, table: pa.Table, *id_names: str):
    """The start of every fast lane: the items of a batch's entries, each item's entry index, their count, and
    their ids (the first of ``id_names`` present), checked to be usual."""
    img, items = _items_of(kind, table)
    ids = _coalesce(items, *id_names)
    _usual_ids(ids)
    return img, items, len(img), ids


def _fast_objects(table: pa.Table) -> pa.RecordBatch:
    pc = _pc()
    img, items, m, ids = _item_ids("object", table, "object_id", "id")
    names, name = items.field("names"), items.field("name")
    _usual_text(name)
    _usual_text(pc.list_flatten(names))
    _usual_text(pc.list_flatten(items.field("synsets")))
    one = pa.ListArray.from_arrays(
        pa.array(np.concatenate([[0], np.cumsum(_valid(name))]).astype(np.int32)), name.drop_null())
    names = _strings_or_empty(pc.if_else(names.is_valid(), names, one), normalize=True, drop_empty=True)
    coords, = [[items.field(c) for c in "xywh"]]
    coord_checks, coords = _coord_checks(coords, ["x", "y", "w", "h"], contract.OBJECT.what)
    no_name = pc.list_value_length(names).to_numpy(zero_copy_only=False) == 0
    reason, field, message = _problem_columns(m, [
        (~_valid(ids), "missing_field", "object_id", missing(contract.OBJECT.what, "object_id").message),
        (no_name, "missing_field", "names", "object has no name"), *coord_checks])
    return pa.RecordBatch.from_pydict({
        "img": pa.array(img, pa.int32()), "id": ids, "p_reason": reason, "p_field": field, "p_msg": message,
        "x": coords[0], "y": coords[1], "w": coords[2], "h": coords[3], "names": names,
        "synsets": _strings_or_empty(items.field("synsets"))})


def _fast_regions(table: pa.Table) -> pa.RecordBatch:
    pc = _pc()
    img, items, m, ids = _item_ids("region", table, "region_id", "id")
    _usual_text(items.field("phrase"))
    phrase_raw = items.field("phrase")
    phrase = _normalize(phrase_raw, lower=False)
    coords = [items.field("x"), items.field("y"), _coalesce(items, "width", "w"), _coalesce(items, "height", "h")]
    coord_checks, coords = _coord_checks(coords, ["x", "y", "width", "height"], contract.REGION.what)
    empty = pc.equal(phrase, "").to_numpy(zero_copy_only=False) if m else np.zeros(0, bool)
    no_phrase = ~_valid(phrase_raw) if m else np.zeros(0, bool)
    reason, field, message = _problem_columns(m, [
        (~_valid(ids), "missing_field", "region_id", missing(contract.REGION.what, "region_id").message),
        (no_phrase, "missing_field", "phrase", missing(contract.REGION.what, "phrase").message),
        (empty, "region_missing_phrase", "phrase", "phrase is empty"), *coord_checks])
    return pa.RecordBatch.from_pydict({
        "img": pa.array(img, pa.int32()), "id": ids, "p_reason": reason, "p_field": field, "p_msg": message,
        "x": coords[0], "y": coords[1], "w": coords[2], "h": coords[3], "phrase": phrase})


def _fast_relations(table: pa.Table) -> pa.RecordBatch:
    pc = _pc()
    img, items, m, ids = _item_ids("relation", table, "relationship_id", "id")
    predicate_raw = items.field("predicate")
    _usual_text(predicate_raw)
    predicate = _normalize(predicate_raw, lower=True)
    empty = pc.equal(predicate, "").to_numpy(zero_copy_only=False) if m else np.zeros(0, bool)
    no_predicate = ~_valid(predicate_raw) if m else np.zeros(0, bool)
    reason, field, message = _problem_columns(m, [
        (~_valid(ids), "missing_field", "relationship_id",
         missing(contract.RELATION.what, "relationship_id").message),
        (no_predicate, "missing_field", "predicate", missing(contract.RELATION.what, "predicate").message),
        (empty, "relation_missing_predicate", "predicate", "predicate is empty")])
    ends = {}
    for end in ("subject", "object"):
        ref = items.field(end)
        eid = _coalesce(ref, "object_id", "id")
        _usual_ids(eid)
        no_ref = ref.is_null().to_numpy(zero_copy_only=False)
        no_id = ~no_ref & ~_valid(eid)
        problem = np.full(m, None, dtype=object)
        problem[no_ref] = "\x1f".join(("missing_field", end, f"relationship has no {end}"))
        problem[no_id] = "\x1f".join(("missing_field", f"{end}.object_id",
                                       f"{end}: {missing(contract.ENDPOINT.what, 'object_id').message}"))
        ends[f"{end}_id"] = eid
        ends[f"{end}_problem"] = pa.array(problem, pa.string())
    return pa.RecordBatch.from_pydict({
        "img": pa.array(img, pa.int32()), "id": ids, "p_reason": reason, "p_field": field, "p_msg": message,
        "predicate": predicate, "subject_id": ends["subject_id"], "object_id": ends["object_id"],
        "subject_problem": ends["subject_problem"], "object_problem": ends["object_problem"]})


def _fast_attributes(table: pa.Table) -> pa.RecordBatch:
    img, items, m, ids = _item_ids("attribute", table, "object_id", "id")
    _usual_text(_pc().list_flatten(items.field("attributes")))
    reason, field, message = _problem_columns(m, [
        (~_valid(ids), "missing_field", "object_id", missing(contract.ATTRIBUTE.what, "object_id").message)])
    return pa.RecordBatch.from_pydict({
        "img": pa.array(img, pa.int32()), "id": ids, "p_reason": reason, "p_field": field, "p_msg": message,
        "attributes": _strings_or_empty(items.field("attributes"), normalize=True, drop_empty=True, dedupe=True)})
_FROM_TABLE = {"object": _fast_objects, "region": _fast_regions, "relation": _fast_relations,
               "attribute": _fast_attributes}
_FAST = {kind: (lambda entries, kind=kind: _FROM_TABLE[kind](_table_of(kind, entries))) for kind in _FROM_TABLE}


class _Problems:
    """The first contract problem of an item, in the order its fields are read; each field is still read (with
    None for one that fails), so the careful lane's columns equal the fast lane's whatever the problem."""

    def __init__(self):
        self.first: tuple[str, str, str] | None = None

    def take(self, read, default=None):
        try:
            return read()
        except BadRecord as err:
            if self.first is None:
                self.first = (err.reason, err.field, err.message)
            return default


def _mappings_only(what: str, columns: tuple):
    """An extractor of one item that is called only on mappings: any other item fills ``columns`` with nulls and
    is malformed."""
    def wrap(extract):
        def checked(item, cols):
            if not isinstance(item, dict):
                _pad(cols, columns)
                return ("malformed_record", "", f"{what} entry is not a mapping")
            return extract(item, cols)
        return checked
    return wrap


@_mappings_only("object", ("id", "names", "synsets", "x", "y", "w", "h"))
def _extract_object(obj, cols):
    """One object through the contract (`visual_genome_contract.OBJECT`), in the reference path's order: id,
    (duplicate id: the joiner), names, coordinates."""
    p = _Problems()
    cols["id"].append(p.take(lambda: contract.OBJECT.value(obj, "object_id")))
    cols["names"].append(p.take(lambda: contract.object_names(obj), []))
    cols["synsets"].append(p.take(lambda: list(contract.OBJECT.value(obj, "synsets")), []))
    _take_xywh(p, contract.OBJECT, obj, "xywh", cols)
    return p.first


@_mappings_only("region", ("id", "phrase", "x", "y", "w", "h"))
def _extract_region(reg, cols):
    p = _Problems()
    cols["id"].append(p.take(lambda: contract.REGION.value(reg, "region_id")))
    cols["phrase"].append(p.take(lambda: contract.REGION.value(reg, "phrase"), _plain(reg.get("phrase"))))
    _take_xywh(p, contract.REGION, reg, ("x", "y", "width", "height"), cols)
    return p.first


def _take_xywh(p: _Problems, item_contract, item: dict, names, cols) -> None:
    """An item's four coordinates through its contract into the x, y, w, h columns; a box with a bad coordinate
    keeps none of them."""
    xywh = [p.take(lambda n=n: item_contract.value(item, n)) for n in names]
    if any(v is None for v in xywh):
        xywh = [None] * 4
    for part, v in zip("xywh", xywh):
        cols[part].append(v)


def _plain(value) -> str:
    """A rejected text's column value, as the fast lane normalizes it; "" for text Arrow cannot hold."""
    if not isinstance(value, str):
        return ""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return ""
    return " ".join(value.split())


def endpoint_problem(rel: dict, end: str) -> tuple[int | None, tuple | None]:
    """A relationship endpoint's object id, or the problem with it (no mapping, no integer id)."""
    ref = rel.get(end)
    if not isinstance(ref, dict):
        return None, ("missing_field", end, f"relationship has no {end}")
    try:
        return contract.ENDPOINT.value(ref, "object_id"), None
    except BadRecord as err:
        return None, (err.reason, f"{end}.{err.field}", f"{end}: {err.message}")


@_mappings_only("relationship", ("id", "predicate", "subject_id", "object_id", "subject_problem", "object_problem"))
def _extract_relation(rel, cols):
    p = _Problems()
    cols["id"].append(p.take(lambda: contract.RELATION.value(rel, "relationship_id")))
    cols["predicate"].append(p.take(lambda: contract.RELATION.value(rel, "predicate"), ""))
    for end in ("subject", "object"):
        eid, end_problem = endpoint_problem(rel, end)
        cols[f"{end}_id"].append(eid)
        cols[f"{end}_problem"].append("\x1f".join(end_problem) if end_problem else None)
    return p.first


def _extract_attribute(att, cols):
    """One attributes.json entry through the contract (`visual_genome_contract.ATTRIBUTE`): object id, values."""
    if not isinstance(att, dict):
        _pad(cols, ("id",))
        cols["attributes"].append([])
        return ("malformed_record", "", "attribute entry is not a mapping")
    p = _Problems()
    cols["id"].append(p.take(lambda: contract.ATTRIBUTE.value(att, "object_id")))
    cols["attributes"].append(p.take(lambda: list(contract.ATTRIBUTE.value(att, "attributes")), []))
    return p.first


def _pad(cols, names):
    for n in names:
        cols[n].append(None)


_EXTRACT = {"object": _extract_object, "region": _extract_region, "relation": _extract_relation,
            "attribute": _extract_attribute}


class _NotSplittable(Exception):
    """The byte-level split does not apply to this file; parse it with ijson instead."""


#: bytes read at a time by the splitter
SPLIT_BLOCK = 1 << 20


def _batches(kind: str, path: str, batch: int) -> Iterator[pa.RecordBatch]:
    """Batches of ``batch`` entries of one file: split at the byte level when possible, else streamed by ijson."""
    sent = 0
    try:
        for b in _split_batches(kind, path, batch):
            sent += int(b.schema.metadata[b"n"])
            yield b
        return
    except _NotSplittable:
        pass
    entries = []
    for index, entry in enumerate(fsio.iter_json(path, "item", what=f"Visual Genome {kind} file")):
        if index < sent:
            continue  # already sent by the splitter
        entries.append(entry)
        if len(entries) >= batch:
            yield extract(kind, entries)
            entries = []
    if entries:
        yield extract(kind, entries)


def _split_batches(kind: str, path: str, batch: int) -> Iterator[pa.RecordBatch]:
    """The top-level array split into one line per entry without parsing it in Python, read by Arrow.

    Every entry of a VG file starts with the same key (``{"image_id"``, ``{"regions"``, ...), read from the first
    one; the separators before that key become newlines, and Arrow's JSON reader parses the lines. A separator
    matched anywhere but between top-level entries (inside a string, or a nested object starting with the same
    key) leaves lines that are not complete JSON values: Arrow refuses them, and the file falls back to ijson
    from the first entry not yet sent. So either every line is one whole entry, or nothing wrong is used.
    """
    import re

    with fsio.open_binary(path, f"Visual Genome {kind} file") as handle:
        buf = handle.read(SPLIT_BLOCK)
        start = re.match(rb'\s*\[\s*(\{\s*"(?:[^"\\]|\\.)*")', buf)
        if start is None:
            if re.fullmatch(rb"\s*\[\s*\]\s*", buf):
                return
            raise _NotSplittable()
        key = start.group(1)[1:].lstrip()
        boundary = re.compile(rb"\}\s*,\s*\{\s*" + re.escape(key))
        joined = b"}\n{" + key
        buf = buf[start.start(1):]
        pending: list[pa.Table] = []
        rows = 0
        eof = False
        while not eof:
            data = handle.read(SPLIT_BLOCK)
            eof = not data
            text = boundary.sub(joined, buf + data)
            if eof:
                text = text.rstrip()
                if not text.endswith(b"]"):
                    raise _NotSplittable()
                complete, buf = text[:-1], b""
            else:
                cut = text.rfind(b"\n")
                if cut < 0:
                    buf = text
                    continue
                complete, buf = text[:cut], text[cut + 1:]
            if not complete.strip():
                continue
            try:
                table = _read_lines(kind, complete)
            except pa.ArrowException:
                raise _NotSplittable() from None
            pending.append(_utf8_or_entries(table, complete))
            rows += len(pending[-1])
            while rows >= batch or (eof and rows):
                take = min(batch, rows)
                head, pending = _first_rows(pending, take)
                rows -= take
                yield extract_table(kind, head) if isinstance(head, pa.Table) else extract(kind, head)


def _utf8_or_entries(table: pa.Table, lines: bytes) -> pa.Table | list:
    """The table, or, when its strings hold bytes that are not UTF-8 (Arrow's reader does not check), the lines
    as Python entries with each such byte kept as a lone surrogate (``surrogateescape``): the contract then
    rejects the one value that holds it, and only its record, instead of the whole file."""
    try:
        table.validate(full=True)
        return table
    except pa.ArrowInvalid:
        pass
    import json

    try:
        entries = [json.loads(line.decode("utf-8", "surrogateescape")) for line in lines.split(b"\n") if line.strip()]
    except ValueError:
        raise _NotSplittable() from None
    if len(entries) != table.num_rows:
        raise _NotSplittable()
    return entries


def _first_rows(pending: list, take: int) -> tuple[pa.Table | list, list]:
    """The first ``take`` rows of the pending segments (tables, or lists of entries) and the segments left: one
    table when every part is a table, else entries (a table's rows as `extract_table`'s careful lane reads them)."""
    parts, rest, need = [], [], take
    for seg in pending:
        n = len(seg)
        if need >= n:
            parts.append(seg)
        elif need:
            parts.append(seg[:need] if isinstance(seg, list) else seg.slice(0, need))
            rest.append(seg[need:] if isinstance(seg, list) else seg.slice(need))
        else:
            rest.append(seg)
        need = max(0, need - n)
    if all(isinstance(p, pa.Table) for p in parts):
        return (pa.concat_tables(parts) if len(parts) > 1 else parts[0]), rest
    return [e for p in parts for e in (p if isinstance(p, list) else p.to_pylist())], rest


def worker_main(kind: str, path: str, batch: int) -> None:
    """A parser process (``python -m rcforge.readers.visual_genome_batch KIND PATH BATCH``): writes frames to
    stdout, each a type byte and a length: b"B" an Arrow IPC batch, b"E" an error message, b"Z" the end.

    A plain subprocess rather than multiprocessing: spawning through multiprocessing re-imports the caller's
    main module, which breaks scripts without a ``__main__`` guard, and forking a process with threads is unsafe.
    """
    import gc

    gc.disable()  # a parser process holds no cycles; the collector's scans of its batches cost more than parsing
    out = sys.stdout.buffer
    try:
        for b in _batches(kind, path, batch):
            sink = pa.BufferOutputStream()
            with pa.ipc.new_stream(sink, b.schema) as writer:
                writer.write_batch(b)
            _frame(out, b"B", sink.getvalue().to_pybytes())
    except InputError as err:
        _frame(out, b"E", str(err).encode())
    except Exception as err:  # reported by the parent, which raises it as an InputError
        _frame(out, b"E", f"{type(err).__name__}: {err}".encode())
    else:
        _frame(out, b"Z", b"")
    out.flush()


def _frame(out, kind: bytes, payload: bytes) -> None:
    out.write(kind + struct.pack("<Q", len(payload)))
    out.write(payload)


class _Stream:
    """Batches of one file, from a parser process or parsed inline."""

    def __init__(self, kind: str, path: str, batch: int, parallel: bool):
        self.kind, self.path = kind, path
        self._proc = None
        if parallel:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "rcforge.readers.visual_genome_batch", kind, path, str(batch)],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=1 << 20)
        else:
            self._iter = _batches(kind, path, batch)

    def next(self) -> pa.RecordBatch | None:
        if self._proc is None:
            return next(self._iter, None)
        head = self._proc.stdout.read(9)
        if len(head) < 9:
            err = self._proc.stderr.read().decode(errors="replace").strip().splitlines()
            raise InputError(f"Visual Genome {self.kind} file {self.path}: the parser process ended early"
                             + (f" ({err[-1]})" if err else ""))
        kind, size = head[:1], struct.unpack("<Q", head[1:])[0]
        payload = self._proc.stdout.read(size)
        if kind == b"Z":
            return None
        if kind == b"E":
            raise InputError(payload.decode())
        return pa.ipc.open_stream(payload).read_next_batch()

    def close(self) -> None:
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait()
            self._proc.stdout.close()
            self._proc.stderr.close()


# -- the columnar producer ----------------------------------------------------------------------------------------
def read_batches(files: dict[str, str], image_data_path: str, layout: str, emitted: set,
                 parallel: bool, batch: int | None = None) -> Iterator[ReadBatch]:
    """The columnar producer: the joined `ReadBatch` of each batch of images while every file agrees with
    image_data.json and no relationship needs an endpoint adopted (the joiner raises `Switch` then: this producer
    does not carry the raw items adoption reads); `Switch` at the first batch where that fails, nothing of that
    batch yielded (``emitted`` holds the image ids yielded)."""
    batch = batch or BATCH
    image_batches = _image_batches(image_data_path, batch)
    streams = {kind: _Stream(kind, path, batch, parallel) for kind, path in files.items()}
    try:
        while True:
            images = next(image_batches, None)
            secondary = {kind: s.next() for kind, s in streams.items()}
            if images is None:
                if any(b is not None for b in secondary.values()):
                    raise Switch("a file has more entries than image_data.json")
                return
            ids = images["image_ids"]
            for kind, b in secondary.items():
                if b is None or _ids(b) != ids:
                    raise Switch(f"{kind} file disagrees with image_data.json")
            before = set(emitted)
            try:
                result = join(images, secondary, files, image_data_path, layout, emitted)
            except Switch:
                emitted.intersection_update(before)
                raise
            yield result
    finally:
        for s in streams.values():
            s.close()


def _ids(batch: pa.RecordBatch) -> list:
    import ast

    return ast.literal_eval(batch.schema.metadata[b"image_ids"].decode())


def _image_batches(path: str, batch: int):
    entries, offset = [], 0
    for entry in fsio.iter_json(path, "item", what="Visual Genome image_data file"):
        entries.append(entry)
        if len(entries) >= batch:
            yield {"image_ids": [entry_image_id(e) for e in entries], "meta": entries, "offset": offset}
            offset += len(entries)
            entries = []
    if entries:
        yield {"image_ids": [entry_image_id(e) for e in entries], "meta": entries, "offset": offset}


if __name__ == "__main__":
    worker_main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
