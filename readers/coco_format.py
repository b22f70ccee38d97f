"""Reading a COCO-format detection file (``images``, ``annotations`` with ``[x, y, w, h]`` boxes, ``categories``),
shared by the sources in that format (Objects365, LVIS). Not a reader itself: a reader module builds a
`CocoReader` with its `CocoFlavour` (its source name, its image contract, how an image names its file and which
of its categories are not exhaustively annotated) and yields from `CocoReader.read`.

Two paths give the same records:
- in memory, for files up to the reader's ``in_memory_max_bytes``;
- streaming, for larger files (Objects365 v2 train is one JSON of several GB with ~1.7M images and ~25M boxes;
  LVIS puts ``annotations`` before ``images``): ijson passes (categories, images, annotations) spill rows into
  on-disk Arrow partitions keyed by ``image_id % partitions``; each partition is then grouped by image on its own.
  Memory holds one partition, never the whole file.

On both paths the images are built in order, and a file with many masks has them checked by worker processes
(`mask_pool`) a few chunks ahead of the image being built; the records are the same as with every mask checked
here.

Per box: ``iscrowd``, or a category the image lists as not exhaustively annotated, becomes the ``ignore`` flag
(such a category is never counted or detected); the box is clipped to the image (counted as repaired); a
zero-area box, an unknown category id or an annotation naming an unknown image is rejected with a reason.
"""

from __future__ import annotations

import json
import os
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Callable, Iterator, Literal

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.ipc as ipc

from rcforge.core import fsio, masks
from rcforge.core.config import number, path_field
from rcforge.core.contract import ItemContract
from rcforge.core.errors import BadRecord, InputError
from rcforge.core.ledger import ErrorRow, ImageBuilder, ImageResult, image_record, rejected_image
from rcforge.core.ledgerkeeper import ReadBatch, gather
from rcforge.readers import coco_contract, mask_pool


def _plain_image(parsed: dict) -> tuple[str, tuple[int, ...]]:
    return parsed["file_name"], ()



@dataclass(frozen=True)
class CocoFormatConfig:
    """The options every COCO-format source has (each source's config documents them)."""

    annotations: str = path_field()
    images: str = path_field(must_exist=False)
    mode: Literal["auto", "memory", "stream"] = "auto"
    in_memory_max_bytes: int = number(512 * 1024 * 1024, 0)
    partitions: int = number(0, 0, 1024)  # each is a file held open while streaming
    mask_processes: int = number(-1, -1, 256)


def read_source(flavour: "CocoFlavour", config: CocoFormatConfig, work_dir: str, **options) -> Iterator[ReadBatch]:
    """A COCO-format source's batches: the file parsed whole when small (or ``mode: memory``), else streamed
    through on-disk partitions. ``options``: the flavour's extra reader options (Objects365's claimed vocabulary)."""
    path = config.annotations
    stream = config.mode == "stream" or (config.mode == "auto" and fsio.size(path) > config.in_memory_max_bytes)
    reader = CocoReader(flavour, path, config.partitions, mask_processes=config.mask_processes, **options)
    yield from reader.read(stream, work_dir)

@dataclass(frozen=True)
class CocoFlavour:
    """What differs between COCO-format sources."""

    source: str
    #: how messages name the file ("Objects365 annotation file")
    what: str
    #: the contract of an ``images`` entry (it must give ``id``, ``width`` and ``height``)
    image: ItemContract = coco_contract.IMAGE
    #: a checked image entry -> (its file path under the images root, the category ids not to count or detect)
    image_fields: Callable[[dict], tuple[str, tuple[int, ...]]] = _plain_image
    #: a category's name as dialogues print it
    category_name: Callable[[str], str] = str
    #: whether image ids are COCO image ids (then evaluation images are excluded through them)
    coco_ids: bool = False
    #: a checked image entry -> the category ids verified absent from it (LVIS's ``neg_category_ids``)
    negatives: Callable[[dict], tuple[int, ...]] = lambda image: ()


class _Categories(dict):
    """Usable categories (id -> name), with ``bad``: the categories that broke the contract (id -> why)."""

    def __init__(self, good: dict, bad: dict):
        super().__init__(good)
        self.bad = bad


IMAGE_SPILL = pa.schema([("id", pa.int64()), ("file_name", pa.string()), ("width", pa.int64()),
                         ("height", pa.int64()), ("seq", pa.int64()), ("problem", pa.string()),
                         ("ignored", pa.list_(pa.int64())), ("negatives", pa.list_(pa.int64()))])
ANN_SPILL = pa.schema([("id", pa.int64()), ("image_id", pa.int64()), ("category_id", pa.int64()),
                       ("x", pa.float64()), ("y", pa.float64()), ("w", pa.float64()), ("h", pa.float64()),
                       ("iscrowd", pa.int8()), ("seq", pa.int64()),
                       # the segmentation as JSON text, unchecked until its image is grouped (null: none)
                       ("segmentation", pa.string())])


@dataclass
class CocoReader:
    flavour: CocoFlavour
    path: str
    #: partitions of the streaming path (0: one per 64 MB of input, at least 8)
    partitions: int = 0
    #: take the vocabulary as exhaustive although that is only claimed (Objects365's ``claimed_negatives``)
    claimed_vocab: bool = False
    #: worker processes that check masks (`mask_pool.processes`: -1 auto, 0 none)
    mask_processes: int = -1
    _source: str = field(init=False)
    #: images with an annotation that broke the contract: its category is unknown, so they prove no absence
    _unsure: set = field(init=False, default_factory=set)

    def __post_init__(self):
        self._source = self.flavour.source

    def read(self, stream: bool, work_dir: str) -> Iterator[ReadBatch]:
        yield from gather(self._source, self._read_streaming(work_dir) if stream else self._read_in_memory(work_dir))

    def _results(self, units, categories: _Categories, n_masks: int, work_dir: str,
                 decode=None) -> Iterator[ImageResult]:
        """The image results of ``(image, annotations, duplicate)`` units, in order, their masks checked by
        worker processes when there are many (`mask_pool`), else here. ``decode`` parses a segmentation spilled
        as JSON text (the streaming path)."""
        workers = mask_pool.processes(self.mask_processes, n_masks)
        for (image, anns, duplicate), outcomes in mask_pool.checked(units, self._mask_jobs, workers, work_dir,
                                                                    decode=decode):
            if image is None:  # annotations whose image the file does not hold
                yield self._orphans(*anns)
            else:
                yield self._image_result(image, anns, categories, duplicate, outcomes, decode)

    @staticmethod
    def _mask_jobs(unit) -> list[mask_pool.Job]:
        image, anns, duplicate = unit
        if image is None or duplicate or image.get("problem"):
            return []
        return [mask_pool.Job(a[7], image["width"], image["height"], (a[2], a[3], a[2] + a[4], a[3] + a[5]))
                for a in anns if masks.present(a[7])]

    # -- one image ---------------------------------------------------------------------------------------------
    def _object(self, ann, image: dict, b: ImageBuilder, categories: _Categories, checked=None, decode=None):
        """One annotation that passed the contract, joined to its category and image (``checked``: its mask's
        outcome from a worker process, if one checked it; ``decode``: how to parse a spilled segmentation)."""
        ann_id, category_id, x, y, w, h, iscrowd, segmentation = ann
        desc = f"annotations[id={ann_id}]"
        b.read("object")
        try:
            if category_id in categories.bad:
                raise BadRecord("category_rejected", f"category_id {category_id}: {categories.bad[category_id]}",
                                field="category_id")
            if category_id not in categories:
                raise BadRecord("unknown_category_id", f"category_id {category_id!r} is not in categories",
                                field="category_id")
        except BadRecord as err:
            b.reject("object", err, desc, file=self.path)
            return None
        box = b.box("object", (x, y, x + w, y + h), desc, file=self.path, field="bbox")
        if box is None:
            return None
        if checked is None and decode is not None and segmentation is not None:
            segmentation = decode(segmentation)  # spilled as JSON text, checked here
        return {"id": int(ann_id), "names": [categories[category_id]], "category_id": int(category_id), "box": box,
                "ignore": bool(iscrowd) or category_id in image["ignored"], "attributes": [], "synsets": [],
                "iscrowd": bool(iscrowd), **b.mask(segmentation, box, desc, file=self.path, checked=checked)}

    def _image_result(self, image: dict, anns, categories: _Categories, duplicate: bool,
                      outcomes: list | None = None, decode=None) -> ImageResult:
        image_id = image["id"]
        key = f"{self._source}/{image_id}"
        desc = f"images[id={image_id}]"
        if duplicate:
            return rejected_image(self._source, key, self.path, desc, BadRecord(
                "duplicate_image_id", f"image id {image_id} appears more than once", field="id"),
                items_read=Counter(object=len(anns)))
        if image.get("problem"):
            return rejected_image(self._source, key, self.path, desc, image["problem"],
                                  items_read=Counter(object=len(anns)))
        width, height = image["width"], image["height"]
        b = ImageBuilder(self._source, key, self.path, width, height)
        # the outcomes (from worker processes) are those of the annotations with a segmentation, in order; one
        # that is not there is checked here
        checked = iter(outcomes or ())
        objects = [o for o in (self._object(a, image, b, categories,
                                            next(checked, None) if masks.present(a[7]) else None, decode)
                               for a in anns) if o is not None]
        coco_id = image_id if self.flavour.coco_ids else None
        record = image_record(key, self._source, image_id, str(image["file_name"]), width, height, objects=objects,
                              coco_id=coco_id, absent=self._absent(image, anns, categories))
        return b.finish(record)

    def _absent(self, image: dict, anns, categories: _Categories) -> list[dict]:
        """The categories proven absent from the image (`rcforge.schemas.ABSENT`): its verified negatives
        (LVIS's ``neg_category_ids``: "lvis_neg") and, with ``claimed_vocab``, every category of the vocabulary
        with no annotation in it ("claimed_vocab"). Never a category with an annotation in the image (a rejected
        box still shows it is there), never one not exhaustively annotated there, and none at all for an image
        holding an annotation whose category is unknown (an annotation whose image does not read could be in any
        image: then the file proves no absence)."""
        if image["id"] in self._unsure or None in self._unsure or any(a[1] not in categories for a in anns):
            return []
        present = {a[1] for a in anns}
        present_names = {categories[c] for c in present}
        found: dict[str, str] = {}
        candidates = [(c, "lvis_neg") for c in sorted(image.get("negatives", ()))]
        if self.claimed_vocab:
            candidates += [(c, "claimed_vocab") for c in sorted(categories)]
        for cid, basis in candidates:
            if cid in categories and cid not in present and cid not in image["ignored"] \
                    and categories[cid] not in present_names:
                found.setdefault(categories[cid], basis)
        return [{"name": name, "basis": basis} for name, basis in sorted(found.items())]

    def _orphans(self, image_id, anns) -> ImageResult:
        result = ImageResult(source=self._source, key=f"{self._source}/{image_id}", record=None, orphan=True)
        for ann in anns:
            result.items_read["object"] += 1
            result.items_rejected["object"] += 1
            result.errors.append(ErrorRow(self._source, result.key, self.path, f"annotations[id={ann[0]}]",
                                          "image_id", "join", "object", "unknown_image",
                                          f"image_id {image_id!r} is not in images"))
        return result

    def _bad_annotation(self, seq: int, ann, err: BadRecord, result: ImageResult) -> None:
        """An annotation that breaks the contract: one rejected object, keyed by its image when readable."""
        image_id = ann.get("image_id") if isinstance(ann, dict) else None
        ann_id = ann.get("id") if isinstance(ann, dict) else None
        self._unsure.add(image_id if isinstance(image_id, int) else None)
        key = f"{self._source}/{image_id if isinstance(image_id, int) and not isinstance(image_id, bool) else '?'}"
        result.items_read["object"] += 1
        result.items_rejected["object"] += 1
        result.errors.append(ErrorRow(self._source, key, self.path, f"annotations[{seq}] (id={ann_id!r:.30})",
                                      err.field, "read", "object", err.reason, err.message))

    def _categories(self, items) -> _Categories:
        good, bad = coco_contract.categories(items, self.path)
        if not good:
            raise InputError(f"{self.flavour.what} {self.path}: no usable categories")
        return _Categories({k: self.flavour.category_name(v) for k, v in good.items()}, bad)

    def _image_entry(self, img) -> tuple[int | None, dict]:
        """(image id or None, the checked image: id, file_name, width, height, ignored, and ``problem`` when it
        broke the contract after its id)."""
        if not isinstance(img, dict):
            return None, {"problem": BadRecord("malformed_record", "image entry is not a mapping")}
        try:
            image_id = self.flavour.image.value(img, "id")
        except BadRecord as err:
            return None, {"problem": err}
        try:
            parsed = self.flavour.image.parse(img)
            file_name, ignored = self.flavour.image_fields(parsed)
        except BadRecord as err:
            return image_id, {"id": image_id, "file_name": "", "width": 0, "height": 0, "ignored": frozenset(),
                              "negatives": frozenset(), "problem": err}
        return image_id, {"id": image_id, "file_name": file_name, "width": parsed["width"],
                          "height": parsed["height"], "ignored": frozenset(ignored),
                          "negatives": frozenset(self.flavour.negatives(parsed))}

    # -- in memory ---------------------------------------------------------------------------------------------
    def _read_in_memory(self, work_dir: str) -> Iterator[ImageResult]:
        dataset = fsio.load_json(self.path, self.flavour.what)
        self._check_shape(dataset)
        categories = self._categories(dataset["categories"])
        # grouped here rather than with pycocotools' index, which raises KeyError on one malformed annotation
        # where we must reject that record and go on
        by_image = defaultdict(list)
        bad_anns = ImageResult(source=self._source, key=f"{self._source}/?", record=None, orphan=True)
        for seq, ann in enumerate(dataset["annotations"]):
            try:
                a = coco_contract.annotation(ann)
            except BadRecord as err:
                self._bad_annotation(seq, ann, err, bad_anns)
                continue
            by_image[a["image_id"]].append((a["id"], a["category_id"], *a["bbox"], a["iscrowd"],
                                            ann.get("segmentation")))
        if bad_anns.errors:
            yield bad_anns
        good = []
        for seq, img in enumerate(dataset["images"]):
            image_id, image = self._image_entry(img)
            if image_id is None:
                yield rejected_image(self._source, f"{self._source}/?", self.path, f"images[{seq}]",
                                     image["problem"])
                continue
            good.append((image_id, seq, image))
        seen = set()
        units = []
        for image_id, _, image in sorted(good, key=lambda t: t[:2]):
            duplicate = image_id in seen
            seen.add(image_id)
            # a duplicate image is rejected without its boxes: they were counted with the first occurrence
            units.append((image, [] if duplicate else by_image.get(image_id, []), duplicate))
        n_masks = sum(1 for anns in by_image.values() for a in anns if masks.present(a[7]))
        yield from self._results(units, categories, n_masks, work_dir)
        for image_id in sorted((k for k in by_image if k not in seen), key=str):
            yield self._orphans(image_id, by_image[image_id])

    def _check_shape(self, dataset) -> None:
        """The file-level contract (`coco_contract.FILE`): an object with arrays under images, annotations and
        categories; anything else is an `InputError` naming the file and the expected shape."""
        expected = coco_contract.FILE.describe()
        if not isinstance(dataset, dict):
            raise InputError(f"{self.flavour.what} {self.path}: expected {expected}, found "
                             f"{'an array' if isinstance(dataset, list) else type(dataset).__name__}")
        for key in coco_contract.FILE.arrays:
            if not isinstance(dataset.get(key), list):
                found = "none" if key not in dataset else type(dataset[key]).__name__
                raise InputError(f"{self.flavour.what} {self.path}: expected an array at key {key!r}, found "
                                 f"{found} (the file must be {expected})")

    # -- streaming ---------------------------------------------------------------------------------------------
    def _read_streaming(self, work_dir: str) -> Iterator[ImageResult]:
        path, what = self.path, self.flavour.what
        fsio.check_shape(path, "images.item", what=what)
        fsio.check_shape(path, "annotations.item", what=what)
        categories = self._categories(fsio.iter_json(path, "categories.item", what=what))
        n = self.partitions or max(8, fsio.size(path) // (64 << 20))
        images = _Spill(work_dir, "images", IMAGE_SPILL, n, "id")
        bad_images: list[ImageResult] = []
        for seq, img in enumerate(fsio.iter_json(path, "images.item", what=what)):
            image_id, image = self._image_entry(img)
            if image_id is None:
                bad_images.append(rejected_image(self._source, f"{self._source}/?", path, f"images[{seq}]",
                                                 image["problem"]))
                continue
            problem = image.get("problem")
            images.add(image_id, image["file_name"], image["width"], image["height"], seq,
                       None if problem is None else "\x1f".join((problem.reason, problem.field, problem.message)),
                       sorted(image["ignored"]), sorted(image["negatives"]))
        images.close()
        anns = _Spill(work_dir, "annotations", ANN_SPILL, n, "image_id")
        n_masks = 0
        bad_anns = ImageResult(source=self._source, key=f"{self._source}/?", record=None, orphan=True)
        for seq, ann in enumerate(fsio.iter_json(path, "annotations.item", what=what)):
            try:
                a = coco_contract.annotation(ann)
            except BadRecord as err:
                self._bad_annotation(seq, ann, err, bad_anns)
                continue
            segmentation = ann.get("segmentation")
            n_masks += masks.present(segmentation)
            anns.add(a["id"], a["image_id"], a["category_id"], *a["bbox"], 1 if a["iscrowd"] else 0, seq,
                     _to_spill(segmentation) if masks.present(segmentation) else None)
        anns.close()
        yield from bad_images
        if bad_anns.errors:
            yield bad_anns
        units = (unit for p in range(n) for unit in self._group_partition(images.read(p), anns.read(p)))
        yield from self._results(units, categories, n_masks, work_dir, decode=_from_spill)

    def _group_partition(self, images: pa.Table, anns: pa.Table) -> Iterator[tuple]:
        """The ``(image, annotations, duplicate)`` units of one partition, then its annotations whose image is
        not in the file, as units with the image ``None`` (a segmentation stays JSON text: its check decodes
        it)."""
        images = images.sort_by([("id", "ascending"), ("seq", "ascending")])
        anns = anns.sort_by([("image_id", "ascending"), ("seq", "ascending")])
        img_ids = images.column("id").to_numpy()
        ann_img = anns.column("image_id").to_numpy()
        cols = [anns.column(c).to_pylist() for c in ("id", "category_id", "x", "y", "w", "h", "iscrowd")]
        # spilled as JSON text (`_to_spill`), which keeps what the mask contract must see to reject it
        cols.append(anns.column("segmentation").to_pylist())
        rows = list(zip(*cols))
        starts = np.searchsorted(ann_img, img_ids, side="left")
        ends = np.searchsorted(ann_img, img_ids, side="right")
        file_names, widths, heights, problems, ignored, negatives = (
            images.column(c).to_pylist() for c in ("file_name", "width", "height", "problem", "ignored", "negatives"))
        used = np.zeros(len(rows), dtype=bool)
        previous = None
        for i, image_id in enumerate(img_ids.tolist()):
            duplicate = image_id == previous
            previous = image_id
            s, e = (int(starts[i]), int(ends[i])) if not duplicate else (0, 0)
            used[s:e] = True
            image = {"id": image_id, "file_name": file_names[i], "width": widths[i], "height": heights[i],
                     "ignored": frozenset(ignored[i] or ()), "negatives": frozenset(negatives[i] or ())}
            if problems[i]:
                reason, field_name, message = problems[i].split("\x1f")
                image["problem"] = BadRecord(reason, message, field=field_name)
            yield image, rows[s:e], duplicate
        if not used.all():
            by_image = defaultdict(list)
            for j in np.flatnonzero(~used).tolist():
                by_image[int(ann_img[j])].append(rows[j])
            for image_id in sorted(by_image):
                yield None, (image_id, by_image[image_id]), False


def _to_spill(segmentation) -> str:
    """A segmentation as JSON text for the spill: orjson (a NaN becomes null, which the mask contract rejects as
    it would the NaN), stdlib json for what orjson refuses (a lone surrogate, kept for the contract to reject)."""
    try:
        return orjson.dumps(segmentation).decode()
    except TypeError:
        return json.dumps(segmentation)


def _from_spill(text: str):
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


class _Spill:
    """Rows appended in batches, routed to ``n`` on-disk Arrow IPC streams by ``key % n``."""

    def __init__(self, directory: str, name: str, schema: pa.Schema, n: int, key: str, batch: int = 200_000):
        self.schema, self.n, self.key, self.batch = schema, n, key, batch
        self.paths = [os.path.join(directory, f"{name}-{i:04d}.arrows") for i in range(n)]
        self._writers = [ipc.new_stream(p, schema) for p in self.paths]
        self._cols = {f.name: [] for f in schema}

    def add(self, *values) -> None:
        for col, v in zip(self._cols.values(), values):
            col.append(v)
        if len(self._cols[self.key]) >= self.batch:
            self.flush()

    def flush(self) -> None:
        if not self._cols[self.key]:
            return
        table = pa.Table.from_pydict(self._cols, schema=self.schema)
        self._cols = {f.name: [] for f in self.schema}
        part = np.mod(table.column(self.key).to_numpy(), self.n)
        order = np.argsort(part, kind="stable")
        table = table.take(pa.array(order))
        bounds = np.searchsorted(part[order], np.arange(self.n + 1))
        for i in range(self.n):
            if bounds[i + 1] > bounds[i]:
                self._writers[i].write_table(table.slice(bounds[i], bounds[i + 1] - bounds[i]))

    def close(self) -> None:
        self.flush()
        for w in self._writers:
            w.close()

    def read(self, i: int) -> pa.Table:
        with pa.memory_map(self.paths[i]) as source:
            return ipc.open_stream(source).read_all()
