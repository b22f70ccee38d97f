"""Visual Genome's rule engine: one joiner that owns every rule, fed batches of images by either producer.

A producer hands `join` one batch of image_data.json entries with, for each other file, the columns of those
images' entries (`visual_genome_batch.extract`): the columnar producer from its parser processes while the files
agree on the image order, the entry producer (``visual_genome._entry_batches``) from ijson, lockstep or through a
keyed lookup. The joiner applies every rule over the whole batch, with NumPy: image checks, box checks and clipping
(`rcforge.core.boxes.check_boxes`), duplicate object ids, relation endpoints and the adoption of those that
objects.json lacks, attribute joins, and the accounting of every item; then it assembles the image records column
by column, with no Python dict per object.

Adoption is the one rule that needs an item's raw text: Visual Genome 1.0 lists most relationship endpoints only
inside the relationship, each with its own name and box. The entry producer passes its raw relationship items and
the joiner adopts such endpoints; the columnar producer does not carry them, so a batch that needs adoption raises
`Switch` and the reader switches producer from that batch on.

The per-image reference this engine replaced lives on as the test oracle (``tests/vg_oracle.py``); the
differential tests hold the two to the same records, errors and ledgers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from rcforge import schemas
from rcforge.core.boxes import box_message, canonical_box, check_boxes, xywh_to_xyxy
from rcforge.core.errors import BadRecord
from rcforge.core.ledger import ErrorRow, SourceLedger
from rcforge.core.ledgerkeeper import ReadBatch
from rcforge.readers import visual_genome_contract as contract

SOURCE = "visual_genome"
KEY_PREFIX = "vg"

#: how an error row names an item of each kind
_ID_LABEL = {"object": "object_id", "attribute": "object_id", "relation": "relationship_id", "region": "region_id"}

ATTRIBUTE_MESSAGES = {
    "duplicate_object_id": "attributes of object_id {oid} are given again later in the image (the later entry is used)",
    "attribute_object_rejected": "object {oid} was rejected",
    "attribute_unknown_object": "object_id {oid} is not an object of this image in the objects file",
}


class Switch(Exception):
    """The producer stops at this batch: its files disagree on the image ids, or a relationship names an object
    that objects.json lacks and the producer carries no raw relationship items to adopt it from. The reader
    continues with the entry producer from the first image not yet yielded."""


def check_image(meta, seen) -> dict:
    """An image_data entry through the contract (`visual_genome_contract.IMAGE`): image id first, then whether it
    was seen before, then the rest; `BadRecord` at the first problem."""
    if not isinstance(meta, dict):
        raise BadRecord("malformed_record", "image entry is not a mapping")
    image_id = contract.IMAGE.value(meta, "image_id")
    if image_id in seen:
        raise BadRecord("duplicate_image_id", f"image_id {image_id} appears twice", field="image_id")
    return contract.IMAGE.parse(meta)


def image_path(meta: dict, image_id, layout: str) -> str:
    if layout == "url":
        url = (meta.get("url") if isinstance(meta, dict) else "") or ""
        parts = [p for p in url.split("/") if p]
        if len(parts) >= 2:
            return f"{parts[-2]}/{parts[-1]}"
    return f"{image_id}.jpg"


def adopt_endpoint(ref: dict, end: str, eid: int, width: int, height: int):
    """An endpoint's own copy as an object: (names, synsets, box, repair); `BadRecord` with reason
    ``relation_endpoint_invalid`` when that copy breaks the contract or its box cannot be used."""
    try:
        names = contract.object_names(ref)
        synsets = list(contract.OBJECT.value(ref, "synsets"))
        xyxy = xywh_to_xyxy(*contract.object_xywh(ref), field="xywh")
        box, repair = canonical_box(xyxy, width, height, field="xywh")
    except BadRecord as err:
        raise BadRecord("relation_endpoint_invalid", f"{end} object {eid} is not in objects.json and its own copy "
                        f"cannot be adopted: {err.message}", field=f"{end}.{err.field}") from None
    return names, synsets, box, repair


@dataclass
class _Join:
    """One batch's state: its images, what is known of them, and the accounting so far."""

    images: dict
    files: dict
    ok: np.ndarray
    width: np.ndarray
    height: np.ndarray
    ledger: SourceLedger
    errors: list[ErrorRow] = field(default_factory=list)
    kept: dict = field(default_factory=dict)
    repaired: dict = field(default_factory=dict)
    rejected_per_image: np.ndarray | None = None

    @property
    def n(self) -> int:
        return len(self.images["image_ids"])


@dataclass
class _Adopted:
    """Endpoints adopted as objects, in the order the relationships adopted them."""

    img: list = field(default_factory=list)
    oid: list = field(default_factory=list)
    names: list = field(default_factory=list)
    synsets: list = field(default_factory=list)
    boxes: list = field(default_factory=list)
    clipped: list = field(default_factory=list)


@dataclass
class _Objects:
    """The objects batch's rows as checked: each row's image and id, which rows were kept (``good``) or rejected
    with an id (``rejected``), and the kept rows' clipped boxes."""

    batch: pa.RecordBatch
    img: np.ndarray
    oid: np.ndarray
    good: np.ndarray
    rejected: np.ndarray
    xyxy: np.ndarray


def join(images: dict, sec: dict[str, pa.RecordBatch], files: dict, image_data_path: str, layout: str,
         emitted: set, raw_relations: list | None = None) -> ReadBatch:
    """One batch of images with their entries in every file, as image records with their accounting.

    ``images``: ``image_ids``, ``meta`` (the image_data entries) and ``offset`` (of the first in the file);
    ``sec``: the columns of each file's entries for these images; ``raw_relations``: the relationship items in
    the rows' order, which adoption reads (None: `Switch` when a batch needs it)."""
    j = _check_images(images, files, image_data_path, emitted)
    objects = _objects(sec["object"], j)
    regions_col = _regions(sec["region"], j)
    adopted = _Adopted()
    relations_col = _relations(sec["relation"], j, objects, raw_relations, adopted)
    _count_adopted(adopted, j)
    objects_col = _object_column(objects, adopted, sec.get("attribute"), j)
    idx = np.flatnonzero(j.ok)
    metas = [images["meta"][k] for k in idx]
    ids = [images["image_ids"][k] for k in idx]
    table = pa.Table.from_arrays([
        pa.array([f"{KEY_PREFIX}/{i}" for i in ids], pa.string()),
        pa.array([SOURCE] * len(ids), pa.string()),
        pa.array([str(i) for i in ids], pa.string()),
        pa.array([image_path(m, i, layout) for m, i in zip(metas, ids)], pa.string()),
        pa.array(j.width[idx].astype(np.int32)), pa.array(j.height[idx].astype(np.int32)),
        pa.nulls(len(ids), pa.string()),
        pa.array([m["coco_id"] for m in metas], pa.int64()), pa.array(ids, pa.int64()),
        pa.array([m["flickr_id"] for m in metas], pa.int64()),
        objects_col.take(pa.array(idx)), relations_col.take(pa.array(idx)), regions_col.take(pa.array(idx)),
        _empty_lists(schemas.CAPTION, len(ids)), _empty_lists(schemas.REFERRING, len(ids)),
        _empty_lists(schemas.QA, len(ids)), _empty_lists(schemas.ABSENT, len(ids)),
    ], schema=schemas.IMAGE_RECORD)
    rep = {k: v[idx] for k, v in j.repaired.items()}
    image_repaired = (j.rejected_per_image[idx] > 0) | np.any([v > 0 for v in rep.values()], axis=0)
    return ReadBatch(table=table, items_kept={k: v[idx] for k, v in j.kept.items()}, items_repaired=rep,
                     image_repaired=image_repaired, ledger=j.ledger, errors=j.errors)


def _check_images(images: dict, files: dict, image_data_path: str, emitted: set) -> _Join:
    n = len(images["image_ids"])
    j = _Join(images, files, np.zeros(n, dtype=bool), np.zeros(n), np.zeros(n), SourceLedger(SOURCE),
              rejected_per_image=np.zeros(n, dtype=np.int64))
    for k, (image_id, meta) in enumerate(zip(images["image_ids"], images["meta"])):
        try:
            image = check_image(meta, emitted)
        except BadRecord as err:
            j.ledger.images.rejected[err.reason] += 1
            j.errors.append(ErrorRow(SOURCE, f"{KEY_PREFIX}/{image_id}", image_data_path,
                                     f"image_data[{images['offset'] + k}] (image_id={image_id})", err.field, "read",
                                     "image", err.reason, err.message))
            continue
        emitted.add(image["image_id"])
        j.width[k], j.height[k], j.ok[k] = image["width"], image["height"], True
        images["meta"][k] = image
    j.ledger.images.read += n
    return j


def _empty_lists(struct, n):
    return pa.ListArray.from_arrays(pa.array(np.zeros(n + 1, dtype=np.int32)), pa.array([], struct))


def _np(col, dtype=np.float64, fill=np.nan):
    return col.to_numpy(zero_copy_only=False) if col.null_count == 0 else \
        col.fill_null(fill).to_numpy(zero_copy_only=False).astype(dtype)


def _contract_problems(b: pa.RecordBatch) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(reason, field, message) per row, "" where the extraction found no contract problem."""
    m = b.num_rows
    reasons, fields, messages = (np.full(m, "", dtype=object) for _ in range(3))
    if b.column("p_reason").null_count < m:
        pr, pf, pm = (b.column(c).to_pylist() for c in ("p_reason", "p_field", "p_msg"))
        for r, p in enumerate(pr):
            if p:
                reasons[r], fields[r], messages[r] = p, pf[r], pm[r]
    return reasons, fields, messages


def _reject_rows(kind, rows, reasons, fields, messages, b, j: _Join, file):
    img = b.column("img").to_numpy()
    ids = b.column("id").to_pylist()
    for r in rows:
        k = int(img[r])
        image_id = j.images["image_ids"][k]
        j.ledger.items[kind].rejected[reasons[r]] += 1
        j.rejected_per_image[k] += 1
        record = f"image_id={image_id} {_ID_LABEL[kind]}={ids[r]}"
        j.errors.append(ErrorRow(SOURCE, f"{KEY_PREFIX}/{image_id}", file, record, fields[r], "validate", kind,
                                 reasons[r], messages[r]))


def _count_read(kind, b, j: _Join):
    img = b.column("img").to_numpy()
    j.ledger.items[kind].read += len(img)
    in_bad = int(np.count_nonzero(~j.ok[img])) if len(img) else 0
    if in_bad:
        j.ledger.items[kind].rejected["image_rejected"] += in_bad
    return img


def _boxed_rows(kind: str, b, j: _Join, reasons, fields, messages):
    """The box rule over a batch of objects or regions: rows already without a problem whose box is rejected get
    its reason; returns (live rows, clipped xyxy, clipped mask)."""
    img = b.column("img").to_numpy()
    live = j.ok[img] if len(img) else np.zeros(0, dtype=bool)
    x, y, w, h = (_np(b.column(c)) for c in "xywh")
    W, H = j.width[img], j.height[img]
    x2, y2 = x + w, y + h
    box_reason, xyxy, clipped = check_boxes(x, y, x2, y2, W, H)
    for r in np.flatnonzero(live & (reasons == "") & (box_reason != "")):
        reasons[r], fields[r] = box_reason[r], "xywh"
        messages[r] = box_message(box_reason[r], (x[r], y[r], x2[r], y2[r]), W[r], H[r], "xywh")
    return live, xyxy, clipped


def _keep(kind: str, b, j: _Join, live, reasons, fields, messages, clipped):
    """Reject the live rows with a reason, count the kept and repaired ones per image; returns the kept mask."""
    img = b.column("img").to_numpy()
    _reject_rows(kind, np.flatnonzero(live & (reasons != "")), reasons, fields, messages, b, j, j.files[kind])
    good = live & (reasons == "")
    rep = good & clipped
    if rep.any():
        j.ledger.items[kind].repairs["box_clipped"] += int(rep.sum())
    j.kept[kind] = np.bincount(img[good], minlength=j.n)
    j.repaired[kind] = np.bincount(img[rep], minlength=j.n)
    return good


def _objects(b, j: _Join) -> _Objects:
    img = _count_read("object", b, j)
    reasons, fields, messages = _contract_problems(b)
    oid = _np(b.column("id"), np.int64, -1).astype(np.int64) if len(img) else np.zeros(0, np.int64)
    live, xyxy, clipped = _boxed_rows("object", b, j, reasons, fields, messages)
    # A repeated object id is a duplicate once an earlier object with that id was kept (reference order).
    has_id = live & (oid >= 0) & b.column("id").is_valid().to_numpy(zero_copy_only=False) if len(img) else live
    cand = np.flatnonzero(has_id)
    if len(cand):
        order = cand[np.lexsort((cand, oid[cand], img[cand]))]
        same = (img[order][1:] == img[order][:-1]) & (oid[order][1:] == oid[order][:-1])
        if same.any():
            group_start = np.concatenate([[True], ~same])
            kept_seen = False
            for pos, r in enumerate(order.tolist()):
                if group_start[pos]:
                    kept_seen = False
                if kept_seen:
                    reasons[r], fields[r] = "duplicate_object_id", "object_id"
                    messages[r] = f"object_id {oid[r]} appears twice in the image"
                elif reasons[r] == "":
                    kept_seen = True
    good = _keep("object", b, j, live, reasons, fields, messages, clipped)
    return _Objects(b, img, oid, good, live & ~good & (oid >= 0), xyxy)


def _regions(b, j: _Join):
    _count_read("region", b, j)
    reasons, fields, messages = _contract_problems(b)
    live, xyxy, clipped = _boxed_rows("region", b, j, reasons, fields, messages)
    good = _keep("region", b, j, live, reasons, fields, messages, clipped)
    gi = np.flatnonzero(good)
    struct = pa.StructArray.from_arrays([
        b.column("id").take(pa.array(gi)), b.column("phrase").take(pa.array(gi)),
        pa.FixedSizeListArray.from_arrays(pa.array(xyxy[gi].reshape(-1)), 4),
    ], fields=list(schemas.REGION))
    offsets = np.concatenate([[0], np.cumsum(j.kept["region"])]).astype(np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets), struct, type=pa.list_(schemas.REGION))


def _pair_keys(*pairs: tuple[np.ndarray, np.ndarray]) -> list[np.ndarray]:
    """(image, object id) pairs as int64 keys without overflow: ids are coded densely first."""
    ids = np.concatenate([p[1] for p in pairs]) if pairs else np.zeros(0, np.int64)
    _, codes = np.unique(ids, return_inverse=True)
    width = int(codes.max()) + 1 if len(codes) else 1
    out, offset = [], 0
    for img, oid in pairs:
        out.append(img.astype(np.int64) * width + codes[offset:offset + len(oid)])
        offset += len(oid)
    return out


def _relations(b, j: _Join, objects: _Objects, raw: list | None, adopted: _Adopted):
    """Relations whose endpoints are kept objects; the rest rejected with the first problem, subject first. A
    relation that reaches an endpoint objects.json lacks is decided row by row, in order, by `_adopt_rows`."""
    img = _count_read("relation", b, j)
    m = len(img)
    reasons, fields, messages = _contract_problems(b)
    live = j.ok[img] if m else np.zeros(0, dtype=bool)
    ends = {end: _np(b.column(f"{end}_id"), np.int64, -1).astype(np.int64) for end in ("subject", "object")}
    kept_keys, rej_keys, subject_keys, object_keys = _pair_keys(
        (objects.img[objects.good], objects.oid[objects.good]),
        (objects.img[objects.rejected], objects.oid[objects.rejected]), (img, ends["subject"]), (img, ends["object"]))
    status, pending = {}, np.zeros(m, dtype=bool)
    for end, key in (("subject", subject_keys), ("object", object_keys)):
        problem_col = b.column(f"{end}_problem")
        is_kept, is_rej = np.isin(key, kept_keys), np.isin(key, rej_keys)
        status[end] = (problem_col, is_kept, is_rej)
        if problem_col.null_count < m:
            has_problem = problem_col.is_valid().to_numpy(zero_copy_only=False)
            for r in np.flatnonzero(has_problem & live & (reasons == "") & ~pending):
                reasons[r], fields[r], messages[r] = problem_col[int(r)].as_py().split("\x1f")
        open_ = live & (reasons == "") & ~pending
        for r in np.flatnonzero(open_ & is_rej):
            reasons[r], fields[r] = "relation_object_rejected", f"{end}.object_id"
            messages[r] = f"{end} object {ends[end][r]} was rejected"
        pending |= open_ & ~is_rej & ~is_kept
    if pending.any():
        if raw is None:
            raise Switch("relationships name objects that objects.json lacks")
        _adopt_rows(np.flatnonzero(pending), img, ends, status, raw, j, reasons, fields, messages, adopted)
    good = _keep("relation", b, j, live, reasons, fields, messages, np.zeros(m, dtype=bool))
    gi = pa.array(np.flatnonzero(good))
    struct = pa.StructArray.from_arrays([
        b.column("id").take(gi), b.column("subject_id").take(gi), b.column("predicate").take(gi),
        b.column("object_id").take(gi)], fields=list(schemas.RELATION))
    offsets = np.concatenate([[0], np.cumsum(j.kept["relation"])]).astype(np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets), struct, type=pa.list_(schemas.RELATION))


def _adopt_rows(rows, img, ends, status, raw, j: _Join, reasons, fields, messages, adopted: _Adopted) -> None:
    """The relations that reach an endpoint objects.json lacks, in order: each endpoint (subject, then object) is
    checked, found among the kept or already adopted objects of its image, or adopted from its own copy (an entry
    of objects.json with that id always wins); the first problem rejects the relation, though an endpoint adopted
    before it stays adopted."""
    taken: set = set()
    for r in rows.tolist():
        k = int(img[r])
        for end in ("subject", "object"):
            problem_col, is_kept, is_rej = status[end]
            problem = problem_col[r].as_py()
            eid = int(ends[end][r])
            if problem:
                reasons[r], fields[r], messages[r] = problem.split("\x1f")
            elif is_rej[r]:
                reasons[r], fields[r] = "relation_object_rejected", f"{end}.object_id"
                messages[r] = f"{end} object {eid} was rejected"
            elif not (is_kept[r] or (k, eid) in taken):
                try:
                    names, synsets, box, repair = adopt_endpoint(raw[r][end], end, eid, int(j.width[k]),
                                                                 int(j.height[k]))
                except BadRecord as err:
                    reasons[r], fields[r], messages[r] = err.reason, err.field, err.message
                else:
                    taken.add((k, eid))
                    for column, value in ((adopted.img, k), (adopted.oid, eid), (adopted.names, names),
                                          (adopted.synsets, synsets), (adopted.boxes, box),
                                          (adopted.clipped, repair is not None)):
                        column.append(value)
            if reasons[r]:
                break


def _count_adopted(adopted: _Adopted, j: _Join) -> None:
    """Adopted endpoints are objects read from the relationships file, kept (repaired when clipped)."""
    if not adopted.img:
        return
    img, clipped = np.array(adopted.img, dtype=np.int64), np.array(adopted.clipped, dtype=bool)
    tally = j.ledger.items["object"]
    tally.read += len(img)
    tally.adopted += len(img)
    if clipped.any():
        tally.repairs["box_clipped"] += int(clipped.sum())
    j.kept["object"] = j.kept["object"] + np.bincount(img, minlength=j.n)
    j.repaired["object"] = j.repaired["object"] + np.bincount(img[clipped], minlength=j.n)


def _object_column(objects: _Objects, adopted: _Adopted, attributes, j: _Join) -> pa.Array:
    """Each image's objects: its kept objects.json objects in order, then the endpoints its relations adopted,
    each with the values of its attributes entry."""
    b, gi = objects.batch, np.flatnonzero(objects.good)
    n_adopted = len(adopted.img)
    img = np.concatenate([objects.img[gi].astype(np.int64), np.array(adopted.img, dtype=np.int64)])
    oid = np.concatenate([objects.oid[gi], np.array(adopted.oid, dtype=np.int64)])
    order = pa.array(np.lexsort((np.arange(len(img)), np.arange(len(img)) >= len(gi), img)))
    img, oid = img[order.to_numpy()], oid[order.to_numpy()]
    names, synsets = ([b.column(c).take(pa.array(gi)), pa.array(values, b.column(c).type)]
                      for c, values in (("names", adopted.names), ("synsets", adopted.synsets)))
    boxes = np.concatenate([objects.xyxy[gi], np.array(adopted.boxes, dtype=np.float64).reshape(n_adopted, 4)])
    values = _attributes(attributes, img, oid, objects, j)
    struct = pa.StructArray.from_arrays([
        pa.array(oid, pa.int64()),
        pa.concat_arrays(names).take(order),
        pa.nulls(len(oid), pa.int64()),
        pa.FixedSizeListArray.from_arrays(pa.array(boxes[order.to_numpy()].reshape(-1)), 4),
        pa.array(np.zeros(len(oid), dtype=bool)),
        values,
        pa.concat_arrays(synsets).take(order),
        *(pa.nulls(len(oid), f.type) for f in list(schemas.OBJECT)[7:]),  # no masks, areas or crowds in VG
    ], fields=list(schemas.OBJECT))
    offsets = np.concatenate([[0], np.cumsum(j.kept["object"])]).astype(np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets), struct, type=pa.list_(schemas.OBJECT))


def _attributes(a, obj_img, oid, objects: _Objects, j: _Join) -> pa.Array:
    """The attribute values of each object (``obj_img``/``oid``: the image's kept and adopted objects), every
    entry of the attributes batch ``a`` accounted for: an entry that breaks the contract is rejected with the
    contract's reason; one with no values is filtered (``no_attributes``); of several entries for one object the
    last wins, as VG's own loaders read it, and the earlier ones are duplicates; the values of an object that was
    rejected, or that is not an object of the image, are rejected with that reason."""
    if a is None or not a.num_rows:
        if a is not None:
            j.kept["attribute"] = np.zeros(j.n, dtype=np.int64)
        return _empty_lists(pa.string(), len(oid))
    a_img = _count_read("attribute", a, j)
    problem = a.column("p_reason").is_valid().to_numpy(zero_copy_only=False)
    lengths = pc.fill_null(pc.list_value_length(a.column("attributes")), 0) \
        .to_numpy(zero_copy_only=False)
    live = j.ok[a_img] & ~problem
    a_key, o_key, rej_key = _pair_keys((a_img, _np(a.column("id"), np.int64, -1).astype(np.int64)), (obj_img, oid),
                                       (objects.img[objects.rejected], objects.oid[objects.rejected]))
    rows = np.flatnonzero(live & (lengths > 0))[::-1]
    winners = rows[np.unique(a_key[rows], return_index=True)[1]]  # the last entry of each key, sorted by key
    win_kept = np.isin(a_key[winners], o_key)
    losers = winners[~win_kept]
    outcome = np.full(len(a_img), "", dtype=object)
    outcome[rows] = "duplicate_object_id"
    outcome[winners] = ""
    outcome[losers] = "attribute_unknown_object"
    outcome[losers[np.isin(a_key[losers], rej_key)]] = "attribute_object_rejected"
    nothing = int(np.count_nonzero(live & (lengths == 0)))
    if nothing:
        j.ledger.items["attribute"].filtered["no_attributes"] += nothing
    j.kept["attribute"] = np.bincount(a_img[winners[win_kept]], minlength=j.n)
    _reject_attributes(a, np.flatnonzero(j.ok[a_img] & (problem | (outcome != ""))), outcome, j)
    # each object's values: those of its winning entry, or none
    keys = a_key[winners]
    pos = np.minimum(np.searchsorted(keys, o_key), max(len(keys) - 1, 0))
    hit = (keys[pos] == o_key) if len(keys) else np.zeros(len(o_key), dtype=bool)
    src = np.where(hit, winners[pos] if len(keys) else 0, 0)
    taken = a.column("attributes").take(pa.array(src, mask=~hit))
    offsets = np.concatenate([[0], np.cumsum(np.where(hit, lengths[src], 0))]).astype(np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets), pc.list_flatten(taken), type=pa.list_(pa.string()))


def _reject_attributes(a, rows, outcome, j: _Join) -> None:
    """`_reject_rows` for the rejected attribute entries ``rows``: the contract's problem, else ``outcome``'s."""
    if not len(rows):
        return
    ids = a.column("id").to_pylist()
    reasons, fields, messages = (a.column(c).to_pylist() for c in ("p_reason", "p_field", "p_msg"))
    for r in rows.tolist():
        if reasons[r] is None:
            reasons[r], fields[r] = outcome[r], "object_id"
            messages[r] = ATTRIBUTE_MESSAGES[outcome[r]].format(oid=ids[r])
    _reject_rows("attribute", rows, reasons, fields, messages, a, j, j.files.get("attribute"))
