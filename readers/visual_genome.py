"""Visual Genome 1.0 to 1.4: image_data, objects, relationships, region descriptions (+ attributes).

The real files are JSON arrays of 0.4-0.8 GB with one entry per image, all in the same image order (Pink's
loader relies on that). We stream each file with ijson and advance them in lockstep, so memory holds one image.
At every step the image ids must agree; when a file disagrees (an image missing, another order) that file falls
back to a keyed join: it is streamed once into an on-disk SQLite index keyed by image id and looked up from
then on. Entries of a file whose image is not in image_data.json are reported as orphans.

Schema differences handled: v1.0 calls ids ``id`` and gives objects one ``name`` (relationship endpoints too);
v1.2+ use ``object_id`` / ``relationship_id`` and ``names``; region descriptions use ``region_id`` or ``id``;
predicates, names and attributes vary in case and spacing and are lower-cased with spaces collapsed.
Relationships reference objects by id and carry their own copy of each endpoint: we keep the reference and check
that it names an object of the image (else the relation is rejected, ``relation_unknown_object``).

By default the files are parsed in parallel and checked column-wise (`visual_genome_batch`, several times
faster); this module's per-image path is the reference for those rules and takes over, keyed, when the files
disagree on the image order.
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
from collections import Counter
from dataclasses import dataclass
from typing import Iterator, Literal

import orjson

from rcforge.core import fsio
from rcforge.core.boxes import canonical_box, xywh_to_xyxy
from rcforge.core.config import path_field
from rcforge.core.errors import BadRecord
from rcforge.core.ledger import (
    ErrorRow,
    ImageBuilder,
    ImageResult,
    image_record,
    rejected_image,
)
from rcforge.core.ledgerkeeper import ReadBatch, gather
from rcforge.readers import ReadContext, register
from rcforge.readers import visual_genome_contract as contract
from rcforge.readers.visual_genome_batch import (
    _entry_image_id,
    _extract_attribute,
    _image_path,
    attribute_outcomes,
    check_image,
    endpoint_problem,
    items_of,
)

SOURCE = "visual_genome"
KEY_PREFIX = "vg"
#: below this many bytes of input, starting parser processes costs more than it saves
PARALLEL_MIN_BYTES = 32 << 20


@dataclass(frozen=True)
class VisualGenomeConfig:
    """Visual Genome.

    root: folder with image_data.json, objects.json, relationships.json, region_descriptions.json and, when
      present, attributes.json (any of them may be .json.gz or named explicitly below).
    images: the image root; image paths are written relative to it.
    image_layout: "url" keeps the official sub-folder from the image url (``VG_100K_2/1.jpg``); "flat" expects
      every image directly in ``images`` (``1.jpg``).
    """

    root: str = path_field()
    images: str = path_field(must_exist=False)
    image_layout: Literal["url", "flat"] = "url"
    image_data: str = "image_data.json"
    objects: str = "objects.json"
    relationships: str = "relationships.json"
    region_descriptions: str = "region_descriptions.json"
    attributes: str | None = "attributes.json"  # DEFAULT_ATTRIBUTES: optional (VG without it has no attributes)
    #: "columnar" checks whole batches of images at once (visual_genome_batch); "processes" does so with each
    #: file parsed in its own process; "auto" uses processes for inputs over 32 MB on a multi-core machine;
    #: "per_image" is the reference path, which a keyed join falls back to when the files disagree on order
    mode: Literal["auto", "processes", "columnar", "per_image"] = "auto"






class _Secondary:
    """One per-image file joined to image_data: lockstep while ids agree, keyed (SQLite) once they do not."""

    def __init__(self, path: str, kind: str, work_dir: str, keyed: bool = False):
        self.path, self.kind, self.work_dir = path, kind, work_dir
        self._iter = fsio.iter_json(path, "item", what=f"Visual Genome {kind} file")
        self._db: sqlite3.Connection | None = None
        self.keyed = False
        if keyed:
            self._switch_to_keyed()

    def take(self, image_id) -> dict | None:
        """The entry for ``image_id``, or None when the file has none."""
        if not self.keyed:
            entry = next(self._iter, None)
            if entry is not None and _entry_image_id(entry) == image_id:
                return entry
            self._switch_to_keyed()
        return self._lookup(image_id)

    def _switch_to_keyed(self) -> None:
        self.keyed = True
        self._iter = iter(())
        fd, db_path = tempfile.mkstemp(prefix=f"vg-{self.kind}-", suffix=".sqlite", dir=self.work_dir)
        os.close(fd)
        db = sqlite3.connect(db_path)
        db.execute("CREATE TABLE e (seq INTEGER PRIMARY KEY, image_id TEXT, body BLOB)")
        batch = []
        for entry in fsio.iter_json(self.path, "item", what=f"Visual Genome {self.kind} file"):
            batch.append((str(_entry_image_id(entry)), orjson.dumps(entry)))
            if len(batch) >= 5000:
                db.executemany("INSERT INTO e (image_id, body) VALUES (?, ?)", batch)
                batch.clear()
        db.executemany("INSERT INTO e (image_id, body) VALUES (?, ?)", batch)
        db.execute("CREATE INDEX e_image ON e (image_id)")
        db.commit()
        self._db = db

    def _lookup(self, image_id) -> dict | None:
        row = self._db.execute("SELECT body FROM e WHERE image_id = ? ORDER BY seq LIMIT 1",
                               (str(image_id),)).fetchone()
        return orjson.loads(row[0]) if row else None

    def leftovers(self, known_ids: set) -> Iterator[dict]:
        """Entries whose image id is not in image_data.json (after the primary file is exhausted)."""
        if not self.keyed:
            for entry in self._iter:
                yield entry
            return
        known = {str(i) for i in known_ids}
        for image_id, body in self._db.execute("SELECT image_id, body FROM e ORDER BY seq"):
            if image_id not in known:
                yield orjson.loads(body)






def _items(entry: dict | None, key: str) -> list:
    return items_of(entry, key)


#: the attributes file looked for when the recipe names none; its absence is no error
DEFAULT_ATTRIBUTES = "attributes.json"


@register(SOURCE, VisualGenomeConfig, provides=("object_categories", "relations", "regions", "attributes", "refs"))
def read(config: VisualGenomeConfig, ctx: ReadContext) -> Iterator[ReadBatch]:
    """Visual Genome (objects, relationships, regions, attributes), joined per image in O(one image) memory."""
    root = config.root
    files = {
        "object": fsio.require(fsio.join(root, config.objects), "sources.visual_genome objects file"),
        "relation": fsio.require(fsio.join(root, config.relationships), "sources.visual_genome relationships file"),
        "region": fsio.require(fsio.join(root, config.region_descriptions),
                               "sources.visual_genome region descriptions file"),
    }
    image_data_path = fsio.require(fsio.join(root, config.image_data), "sources.visual_genome image_data file")
    if config.attributes:
        attr_path = fsio.join(root, config.attributes)
        if fsio.exists(attr_path):
            files["attribute"] = attr_path
        elif config.attributes != DEFAULT_ATTRIBUTES:  # named in the recipe: a misspelling must not pass silently
            fsio.require(attr_path, "sources.visual_genome attributes file")
    emitted: set = set()
    skip = 0
    if config.mode != "per_image":
        from rcforge.readers import visual_genome_batch as batch

        # parser processes open the files themselves: not for memory:// (it lives in this process only)
        in_process_only = str(root).startswith("memory://")
        parallel = not in_process_only and (config.mode == "processes" or (
            config.mode == "auto" and (os.cpu_count() or 1) > 1
            and sum(fsio.size(p) for p in files.values()) > PARALLEL_MIN_BYTES))
        try:
            for result in batch.read_batches(files, image_data_path, config.image_layout, emitted,
                                             parallel=parallel):
                skip += result.ledger.images.read
                yield result
            return
        except batch.Mismatch:
            pass  # the files disagree on the image order: go on per image with a keyed join
    yield from gather(SOURCE, _per_image(config, ctx, files, image_data_path, emitted, skip))


def _per_image(config, ctx, files, image_data_path, emitted, skip) -> Iterator[ImageResult]:
    """The per-image lane: images from ``skip`` on, each joined to its entries by a keyed lookup when the files'
    image order disagrees (or every image, under ``mode: per_image``)."""
    secondaries = {kind: _Secondary(path, kind, ctx.work_dir, keyed=skip > 0) for kind, path in files.items()}
    list_key = {"object": "objects", "relation": "relationships", "region": "regions", "attribute": "attributes"}

    seen: set = set(emitted)
    for index, meta in enumerate(fsio.iter_json(image_data_path, "item", what="Visual Genome image_data file")):
        if index < skip:
            continue  # already read by the columnar path
        image_id = _entry_image_id(meta)
        entries = {kind: sec.take(image_id) for kind, sec in secondaries.items()}
        record_desc = f"image_data[{index}] (image_id={image_id})"
        key = f"{KEY_PREFIX}/{image_id}"
        counts = Counter({k: len(_items(entries.get(k), list_key[k])) for k in files})
        try:
            image = check_image(meta, seen)
        except BadRecord as err:
            yield rejected_image(SOURCE, key, image_data_path, record_desc, err, items_read=counts)
            continue
        image_id = image["image_id"]
        seen.add(image_id)
        yield _build(config, files, image_data_path, key, image_id, image, image["width"], image["height"],
                     entries)

    known = seen
    for kind, sec in secondaries.items():
        for entry in sec.leftovers(known):
            orphan_id = _entry_image_id(entry)
            n = len(_items(entry, list_key[kind]))
            result = ImageResult(source=SOURCE, key=f"{KEY_PREFIX}/{orphan_id}", record=None, orphan=True)
            result.items_read[kind] += n
            result.items_rejected[kind] += n
            result.errors.append(ErrorRow(
                source=SOURCE, key=f"{KEY_PREFIX}/{orphan_id}", file=sec.path, record=f"image_id={orphan_id}",
                field="image_id", stage="join", kind=kind, reason="unknown_image",
                message=f"{n} {kind}(s) for image {orphan_id}, which image_data.json does not list", items=n))
            yield result


def _build(config, files, image_data_path, key, image_id, meta, width, height, entries) -> ImageResult:
    b = ImageBuilder(SOURCE, key, files["object"], width, height)

    att = {"id": [], "attributes": []}
    att_problems = [_extract_attribute(entry, att) for entry in _items(entries.get("attribute"), "attributes")]
    b.read("attribute", len(att_problems))
    # an object's values: its last entry that has some (the rule of `attribute_outcomes`)
    attributes = {oid: values for oid, values, problem in zip(att["id"], att["attributes"], att_problems)
                  if problem is None and values}

    objects: list[dict] = []
    object_ids: set = set()
    rejected_objects: set = set()
    for obj in _items(entries.get("object"), "objects"):
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
    for rel in _items(entries.get("relation"), "relationships"):
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
    for reg in _items(entries.get("region"), "regions"):
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
    record = image_record(key, SOURCE, image_id, _image_path(meta, image_id, config.image_layout), width, height,
                          coco_id=coco_id, vg_id=image_id, flickr_id=meta["flickr_id"],
                          objects=objects, relations=relations, regions=regions)
    return b.finish(record, coco_id=coco_id)


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
