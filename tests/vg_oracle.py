"""The test oracle for Visual Genome: the per-image reader that the rule engine (`rcforge.readers.visual_genome_join`)
replaced, kept here for the differential tests. It reads one image at a time with plain Python rules, one
`ImageBuilder` per image, independently of the joiner's columnar code: the tests run both on the same inputs and
compare records, errors and ledgers (`ingest_oracle`).

It shares with the engine only the input contract (`visual_genome_contract`), the image check, the extraction of
one attributes entry and the keyed lookup (`_Secondary`), which decide what an entry says, not what becomes of it.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from typing import Iterator

from rcforge import readers
from rcforge.core import fsio
from rcforge.core.boxes import canonical_box, xywh_to_xyxy
from rcforge.core.errors import BadRecord
from rcforge.core.ledger import ImageBuilder, ImageResult, image_record, rejected_image
from rcforge.core.ledgerkeeper import gather
from rcforge.readers import visual_genome_contract as contract
from rcforge.readers.visual_genome import _Secondary, input_files, leftover_error
from rcforge.readers.visual_genome_batch import _extract_attribute, endpoint_problem, entry_image_id, items_of
from rcforge.readers.visual_genome_join import (
    ATTRIBUTE_MESSAGES,
    KEY_PREFIX,
    SOURCE,
    check_image,
    image_path,
)


def read(config, ctx) -> Iterator:
    """The oracle as a reader: `ReadBatch`es of its per-image results."""
    files, image_data_path = input_files(config)
    return gather(SOURCE, _per_image(config, ctx, files, image_data_path))


def ingest_oracle(tmp_path, options: dict, **recipe_top):
    """`conftest.ingest_one` for Visual Genome with the oracle as its reader."""
    from conftest import ingest_one

    get = readers.get
    oracle = dataclasses.replace(get(SOURCE), read=read)
    readers.get = lambda name: oracle if name == SOURCE else get(name)
    try:
        return ingest_one(tmp_path, SOURCE, options, **recipe_top)
    finally:
        readers.get = get


def _per_image(config, ctx, files, image_data_path) -> Iterator[ImageResult]:
    """Every image, joined to its entries (lockstep, keyed once a file disagrees), one `ImageResult` each."""
    secondaries = {kind: _Secondary(path, kind, ctx.work_dir) for kind, path in files.items()}
    list_key = {"object": "objects", "relation": "relationships", "region": "regions", "attribute": "attributes"}

    seen: set = set()
    listed: set = set()  # every image id image_data.json lists: an entry of a rejected image is no orphan
    for index, meta in enumerate(fsio.iter_json(image_data_path, "item", what="Visual Genome image_data file")):
        image_id = entry_image_id(meta)
        listed.add(image_id)
        entries = {kind: sec.take(image_id) for kind, sec in secondaries.items()}
        record_desc = f"image_data[{index}] (image_id={image_id})"
        key = f"{KEY_PREFIX}/{image_id}"
        counts = Counter({k: len(items_of(entries.get(k), list_key[k])) for k in files})
        try:
            image = check_image(meta, seen)
        except BadRecord as err:
            yield rejected_image(SOURCE, key, image_data_path, record_desc, err, items_read=counts)
            continue
        image_id = image["image_id"]
        seen.add(image_id)
        yield _build(config, files, image_data_path, key, image_id, image, image["width"], image["height"],
                     entries)

    for kind, sec in secondaries.items():
        for entry, is_listed in sec.leftovers(listed):
            error = leftover_error(kind, sec.path, entry, is_listed)
            result = ImageResult(source=SOURCE, key=error.key, record=None, orphan=True)
            result.items_read[kind] += error.items
            result.items_rejected[kind] += error.items
            result.errors.append(error)
            yield result


def _build(config, files, image_data_path, key, image_id, meta, width, height, entries) -> ImageResult:
    b = ImageBuilder(SOURCE, key, files["object"], width, height)

    att = {"id": [], "attributes": []}
    att_problems = [_extract_attribute(entry, att) for entry in items_of(entries.get("attribute"), "attributes")]
    b.read("attribute", len(att_problems))
    # an object's values: its last entry that has some (the rule of `attribute_outcomes`)
    attributes = {oid: values for oid, values, problem in zip(att["id"], att["attributes"], att_problems)
                  if problem is None and values}

    objects: list[dict] = []
    object_ids: set = set()
    rejected_objects: set = set()
    for obj in items_of(entries.get("object"), "objects"):
        b.read("object")
        oid = None
        try:
            if not isinstance(obj, dict):
                raise BadRecord("malformed_record", "object entry is not a mapping")
            oid = contract.OBJECT.value(obj, "object_id")
            if oid in object_ids:
                raise BadRecord("duplicate_object_id", f"object_id {oid} appears twice in the image",
                                field="object_id")
            names = contract.object_names(obj)
            synsets = list(contract.OBJECT.value(obj, "synsets"))
            xyxy = xywh_to_xyxy(*contract.object_xywh(obj), field="xywh")
        except BadRecord as err:
            b.reject("object", err, f"image_id={image_id} object_id={oid}", file=files["object"])
            if oid is not None:
                rejected_objects.add(oid)
            continue
        box = b.box("object", xyxy, f"image_id={image_id} object_id={oid}", file=files["object"], field="xywh")
        if box is None:
            rejected_objects.add(oid)
            continue
        object_ids.add(oid)
        objects.append({"id": oid, "names": names, "category_id": None, "box": box, "ignore": False,
                        "attributes": attributes.get(oid, []), "synsets": synsets})

    relations = []
    for rel in items_of(entries.get("relation"), "relationships"):
        b.read("relation")
        rid = None
        try:
            if not isinstance(rel, dict):
                raise BadRecord("malformed_record", "relationship entry is not a mapping")
            rid = contract.RELATION.value(rel, "relationship_id")
            predicate = contract.RELATION.value(rel, "predicate")
            ends = [_endpoint(rel, end, b, image_id, files, attributes, objects, object_ids, rejected_objects)
                    for end in ("subject", "object")]
        except BadRecord as err:
            b.reject("relation", err, f"image_id={image_id} relationship_id={rid}", file=files["relation"])
            continue
        relations.append({"id": rid, "subject_id": ends[0], "predicate": predicate, "object_id": ends[1]})

    regions = []
    for reg in items_of(entries.get("region"), "regions"):
        b.read("region")
        rid = None
        try:
            if not isinstance(reg, dict):
                raise BadRecord("malformed_record", "region entry is not a mapping")
            rid = contract.REGION.value(reg, "region_id")
            phrase = contract.REGION.value(reg, "phrase")
            xyxy = xywh_to_xyxy(*contract.region_xywh(reg), field="xywh")
        except BadRecord as err:
            b.reject("region", err, f"image_id={image_id} region_id={rid}", file=files["region"])
            continue
        box = b.box("region", xyxy, f"image_id={image_id} region_id={rid}", file=files["region"], field="xywh")
        if box is None:
            continue
        regions.append({"id": rid, "phrase": phrase, "box": box})

    _account_attributes(b, att, att_problems, objects, rejected_objects, image_id, files.get("attribute"))
    coco_id = meta["coco_id"]
    record = image_record(key, SOURCE, image_id, image_path(meta, image_id, config.image_layout), width, height,
                          coco_id=coco_id, vg_id=image_id, flickr_id=meta["flickr_id"],
                          objects=objects, relations=relations, regions=regions)
    return b.finish(record)


def _account_attributes(b, att, problems, objects, rejected_objects, image_id, file) -> None:
    """Every attributes entry of the image filtered or rejected by `attribute_outcomes` (the rest are written:
    attached to an object of the record, adopted endpoints included)."""
    n = len(problems)
    outcomes = attribute_outcomes([0] * n, att["id"], att["attributes"], problems,
                                  {(0, o["id"]) for o in objects}, {(0, oid) for oid in rejected_objects})
    for oid, outcome in zip(att["id"], outcomes):
        if outcome is None:
            continue
        verdict, reason, fld, message = outcome
        if verdict == "filtered":
            b.filter("attribute", reason)
        else:
            b.reject("attribute", BadRecord(reason, message, field=fld), f"image_id={image_id} object_id={oid}",
                     file=file)


def _endpoint(rel, end, b, image_id, files, attributes, objects, object_ids, rejected_objects) -> int:
    """The object id a relationship endpoint refers to; an endpoint that objects.json lacks is adopted.

    Visual Genome 1.0 lists most relationship endpoints only inside the relationship (106 of the 156
    relationships of its first five images), each with its own name and box. Such an endpoint becomes an object of
    the image, keyed by its object id (an entry of objects.json with that id always wins), counted as an object
    read from the relationships file and as ``adopted`` in the ledger. An endpoint whose own copy breaks the
    contract rejects the relationship (reason ``relation_endpoint_invalid``).
    """
    eid, problem = endpoint_problem(rel, end)
    if problem:
        raise BadRecord(problem[0], problem[2], field=problem[1])
    if eid in rejected_objects:
        raise BadRecord("relation_object_rejected", f"{end} object {eid} was rejected", field=f"{end}.object_id")
    if eid in object_ids:
        return eid
    ref = rel[end]
    try:
        names = contract.object_names(ref)
        synsets = list(contract.OBJECT.value(ref, "synsets"))
        xyxy = xywh_to_xyxy(*contract.object_xywh(ref), field="xywh")
        box, repair = canonical_box(xyxy, b.width, b.height, field="xywh")
    except BadRecord as err:
        raise BadRecord("relation_endpoint_invalid", f"{end} object {eid} is not in objects.json and its own copy "
                        f"cannot be adopted: {err.message}", field=f"{end}.{err.field}") from None
    b.read("object")
    b.adopted("object")
    if repair:
        b.repaired("object", repair)
    object_ids.add(eid)
    objects.append({"id": eid, "names": names, "category_id": None, "box": box, "ignore": False,
                    "attributes": attributes.get(eid, []), "synsets": synsets})
    return eid


def attribute_outcomes(img: list, ids: list, values: list, problems: list, kept: set, rejected: set) -> list:
    """What becomes of each attributes.json entry (the one rule both lanes apply): None when its values are
    attached to a kept object, else ``(verdict, reason, field, message)`` with verdict "filtered" or "rejected".

    In order: an entry that breaks the contract is rejected with the contract's reason; one with no values is
    filtered (``no_attributes``: the file lists every object, most with none); of several entries for one object
    the last wins, as VG's own loaders read it, and the earlier ones are duplicates; the values of an object that
    was rejected, or that objects.json does not hold for the image, are rejected with that reason. ``kept`` and
    ``rejected`` hold (image index, object id) pairs; ``img`` gives each entry's image index.
    """
    last = {(k, oid): r for r, (k, oid, vals, prob) in enumerate(zip(img, ids, values, problems))
            if prob is None and vals}
    out: list = []
    for r, (k, oid, vals, prob) in enumerate(zip(img, ids, values, problems)):
        if prob is not None:
            out.append(("rejected", *prob))
        elif not vals:
            out.append(("filtered", "no_attributes", None, None))
        elif (k, oid) in kept and last[(k, oid)] == r:
            out.append(None)
        else:
            reason = ("duplicate_object_id" if last[(k, oid)] != r else
                      "attribute_object_rejected" if (k, oid) in rejected else "attribute_unknown_object")
            out.append(("rejected", reason, "object_id", ATTRIBUTE_MESSAGES[reason].format(oid=oid)))
    return out
