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
from rcforge.readers import ReadContext, register
from rcforge.readers.visual_genome_batch import (
    _entry_image_id,
    _first,
    _image_path,
    _norm,
    _opt_int,
)

from rcforge import fsio
from rcforge.boxes import check_size, xywh_to_xyxy
from rcforge.config import path_field
from rcforge.errors import BadRecord
from rcforge.ledger import (
    ErrorRow,
    ImageBuilder,
    ImageResult,
    image_record,
    rejected_image,
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
    attributes: str | None = "attributes.json"
    #: "columnar" checks whole batches of images at once (visual_genome_batch); "processes" does so with each
    #: file parsed in its own process; "auto" uses processes for inputs over 32 MB on a multi-core machine;
    #: "per_image" is the reference path, which a keyed join falls back to when the files disagree on order
    mode: Literal["auto", "processes", "columnar", "per_image"] = "auto"






def _get(d: dict, *names, field: str):
    for n in names:
        if n in d and d[n] is not None:
            return d[n]
    raise BadRecord("missing_field", f"missing field {field!r}", field=field)


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
        for image_id, body in self._db.execute("SELECT image_id, body FROM e ORDER BY seq"):
            if image_id not in known_ids:
                yield orjson.loads(body)






def _items(entry: dict | None, key: str) -> list:
    if entry is None:
        return []
    value = entry.get(key)
    return value if isinstance(value, list) else []


@register(SOURCE, VisualGenomeConfig)
def read(config: VisualGenomeConfig, ctx: ReadContext) -> Iterator[ImageResult]:
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
    secondaries = {kind: _Secondary(path, kind, ctx.work_dir, keyed=skip > 0) for kind, path in files.items()}
    list_key = {"object": "objects", "relation": "relationships", "region": "regions", "attribute": "attributes"}

    seen: set[str] = {str(i) for i in emitted}
    for index, meta in enumerate(fsio.iter_json(image_data_path, "item", what="Visual Genome image_data file")):
        if index < skip:
            continue  # already read by the columnar path
        image_id = _entry_image_id(meta) if isinstance(meta, dict) else None
        entries = {kind: sec.take(image_id) for kind, sec in secondaries.items()}
        record_desc = f"image_data[{index}] (image_id={image_id})"
        key = f"{KEY_PREFIX}/{image_id}"
        counts = Counter({k: len(_items(entries.get(k), list_key[k])) for k in ("object", "relation", "region")})
        if image_id is None or isinstance(image_id, bool) or not isinstance(image_id, int):
            yield rejected_image(SOURCE, key, image_data_path, record_desc,
                                 BadRecord("missing_field", "image entry has no integer image_id", field="image_id"),
                                 items_read=counts)
            continue
        if str(image_id) in seen:
            yield rejected_image(SOURCE, key, image_data_path, record_desc,
                                 BadRecord("duplicate_image_id", f"image_id {image_id} appears twice",
                                           field="image_id"), items_read=counts)
            continue
        seen.add(str(image_id))
        try:
            width, height = check_size(meta.get("width"), meta.get("height"))
        except BadRecord as err:
            yield rejected_image(SOURCE, key, image_data_path, record_desc, err, items_read=counts)
            continue
        yield _build(config, files, image_data_path, key, image_id, meta, width, height, entries)

    known = seen
    for kind, sec in secondaries.items():
        if kind == "attribute":
            continue
        for entry in sec.leftovers(known):
            orphan_id = _entry_image_id(entry)
            n = len(_items(entry, list_key[kind]))
            result = ImageResult(source=SOURCE, key=f"{KEY_PREFIX}/{orphan_id}", record=None, orphan=True)
            result.items_read[kind] += n
            result.items_rejected[kind] += n
            result.errors.append(ErrorRow(
                source=SOURCE, key=f"{KEY_PREFIX}/{orphan_id}", file=sec.path, record=f"image_id={orphan_id}",
                field="image_id", stage="join", kind=kind, reason="unknown_image",
                message=f"{n} {kind}(s) for image {orphan_id}, which image_data.json does not list"))
            yield result


def _build(config, files, image_data_path, key, image_id, meta, width, height, entries) -> ImageResult:
    b = ImageBuilder(SOURCE, key, files["object"], width, height)

    attributes: dict = {}
    for att in _items(entries.get("attribute"), "attributes"):
        oid = _first(att, "object_id", "id")
        values = att.get("attributes") or []
        if oid is not None and values:
            attributes[oid] = list(dict.fromkeys(_norm(v) for v in values if str(v).strip()))

    objects = []
    object_ids: set = set()
    rejected_objects: set = set()
    for i, obj in enumerate(_items(entries.get("object"), "objects")):
        b.read("object")
        oid = _first(obj, "object_id", "id") if isinstance(obj, dict) else None
        desc = f"image_id={image_id} object_id={oid}" if oid is not None else f"image_id={image_id} objects[{i}]"
        try:
            if not isinstance(obj, dict):
                raise BadRecord("malformed_record", "object entry is not a mapping")
            if oid is None or isinstance(oid, bool) or not isinstance(oid, int):
                raise BadRecord("missing_field", "object has no integer object_id", field="object_id")
            if oid in object_ids:
                raise BadRecord("duplicate_object_id", f"object_id {oid} appears twice in the image",
                                field="object_id")
            names = obj.get("names")
            if names is None:
                names = [obj["name"]] if obj.get("name") is not None else []
            names = [_norm(n) for n in names if str(n).strip()]
            if not names:
                raise BadRecord("missing_field", "object has no name", field="names")
            xyxy = xywh_to_xyxy(_get(obj, "x", field="x"), _get(obj, "y", field="y"),
                                _get(obj, "w", field="w"), _get(obj, "h", field="h"), field="xywh")
        except BadRecord as err:
            b.reject("object", err, desc, file=files["object"])
            if isinstance(oid, int):
                rejected_objects.add(oid)
            continue
        box = b.box("object", xyxy, desc, file=files["object"], field="xywh")
        if box is None:
            rejected_objects.add(oid)
            continue
        object_ids.add(oid)
        objects.append({
            "id": oid, "names": names, "category_id": None, "box": box, "ignore": False,
            "attributes": attributes.get(oid, []),
            "synsets": [str(s) for s in (obj.get("synsets") or [])],
        })

    relations = []
    for rel in _items(entries.get("relation"), "relationships"):
        b.read("relation")
        rid = _first(rel, "relationship_id", "id") if isinstance(rel, dict) else None
        desc = f"image_id={image_id} relationship_id={rid}"
        try:
            if not isinstance(rel, dict):
                raise BadRecord("malformed_record", "relationship entry is not a mapping")
            if rid is None or not isinstance(rid, int):
                raise BadRecord("missing_field", "relationship has no integer relationship_id",
                                field="relationship_id")
            predicate = _norm(rel.get("predicate") or "")
            if not predicate:
                raise BadRecord("relation_missing_predicate", "relationship has an empty predicate",
                                field="predicate")
            ends = []
            for end in ("subject", "object"):
                ref = rel.get(end)
                if not isinstance(ref, dict):
                    raise BadRecord("missing_field", f"relationship has no {end}", field=end)
                eid = _first(ref, "object_id", "id")
                if eid in rejected_objects:
                    raise BadRecord("relation_object_rejected",
                                    f"{end} object {eid} was rejected", field=f"{end}.object_id")
                if eid not in object_ids:
                    raise BadRecord("relation_unknown_object",
                                    f"{end} object {eid} is not among the image's objects", field=f"{end}.object_id")
                ends.append(eid)
        except BadRecord as err:
            b.reject("relation", err, desc, file=files["relation"])
            continue
        relations.append({"id": rid, "subject_id": ends[0], "predicate": predicate, "object_id": ends[1]})

    regions = []
    for reg in _items(entries.get("region"), "regions"):
        b.read("region")
        rid = _first(reg, "region_id", "id") if isinstance(reg, dict) else None
        desc = f"image_id={image_id} region_id={rid}"
        try:
            if not isinstance(reg, dict):
                raise BadRecord("malformed_record", "region entry is not a mapping")
            if rid is None or not isinstance(rid, int):
                raise BadRecord("missing_field", "region has no integer region_id", field="region_id")
            phrase = " ".join(str(reg.get("phrase") or "").split())
            if not phrase:
                raise BadRecord("region_missing_phrase", "region has an empty phrase", field="phrase")
            xyxy = xywh_to_xyxy(_get(reg, "x", field="x"), _get(reg, "y", field="y"),
                                _get(reg, "width", "w", field="width"), _get(reg, "height", "h", field="height"),
                                field="xywh")
        except BadRecord as err:
            b.reject("region", err, desc, file=files["region"])
            continue
        box = b.box("region", xyxy, desc, file=files["region"], field="xywh")
        if box is None:
            continue
        regions.append({"id": rid, "phrase": phrase, "box": box})

    coco_id = _opt_int(meta.get("coco_id"))
    record = image_record(key, SOURCE, image_id, _image_path(meta, image_id, config.image_layout), width, height,
                          coco_id=coco_id, vg_id=image_id, flickr_id=_opt_int(meta.get("flickr_id")),
                          objects=objects, relations=relations, regions=regions)
    return b.finish(record, coco_id=coco_id)
