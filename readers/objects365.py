"""Objects365 v1 / v2 (COCO format): ``images``, ``annotations`` (``[x, y, w, h]`` floats), ``categories``.

Two paths give the same records:
- in memory, for files up to ``in_memory_max_bytes``: pycocotools indexes the file;
- streaming, for larger files (the v2 train file is one JSON of several GB with ~1.7M images and ~25M boxes):
  three ijson passes (categories, images, annotations) spill rows into on-disk Arrow partitions keyed by
  ``image_id % partitions``; each partition is then grouped by image on its own. Memory holds one partition
  (about 25M / partitions boxes as NumPy columns), never the whole file. Annotations are not grouped by image
  in the file, which is why the spill is needed.

Per box: ``iscrowd`` becomes the ``ignore`` flag, the box is clipped to the image (counted as repaired) and a
zero-area box is rejected with a reason, as is an unknown category id or an annotation naming an unknown image.
"""

from __future__ import annotations

import os
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Iterator, Literal

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc
from rcforge.readers import ReadContext, coco_contract, register

from rcforge import fsio
from rcforge.config import path_field
from rcforge.errors import BadRecord, InputError
from rcforge.ledger import (
    ErrorRow,
    ImageBuilder,
    ImageResult,
    image_record,
    rejected_image,
)

SOURCE = "objects365"


@dataclass(frozen=True)
class Objects365Config:
    """Objects365 in COCO format.

    annotations: the COCO json (``zhiyuan_objv2_train.json``, v1 ``objects365_train.json``; .gz allowed).
    images: the image root; ``file_name`` values are relative to it.
    mode: "auto" streams files larger than ``in_memory_max_bytes``; "memory" always uses pycocotools;
      "stream" always streams.
    partitions: on-disk partitions of the streaming path (0: one per 64 MB of input, at least 8).
    """

    annotations: str = path_field()
    images: str = path_field(must_exist=False)
    mode: Literal["auto", "memory", "stream"] = "auto"
    in_memory_max_bytes: int = 512 * 1024 * 1024
    partitions: int = 0


def _object(ann_id, category_id, x, y, w, h, iscrowd, b: ImageBuilder, categories: dict, file: str):
    """One annotation that passed the contract (`coco_contract.annotation`), joined to its category and image."""
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
        b.reject("object", err, desc, file=file)
        return None
    box = b.box("object", (x, y, x + w, y + h), desc, file=file, field="bbox")
    if box is None:
        return None
    return {"id": int(ann_id), "names": [categories[category_id]], "category_id": int(category_id), "box": box,
            "ignore": bool(iscrowd), "attributes": [], "synsets": []}


def _record(image_id: int, file_name: str, width: int, height: int, objects: list) -> dict:
    return image_record(f"{SOURCE}/{image_id}", SOURCE, image_id, file_name, width, height, objects=objects)


class _Categories(dict):
    """Usable categories (id -> name), with ``bad``: the categories that broke the contract (id -> why)."""

    def __init__(self, good: dict, bad: dict):
        super().__init__(good)
        self.bad = bad


def _bad_annotation(seq: int, ann, err: BadRecord, file: str, result: ImageResult) -> None:
    """An annotation that breaks the contract: one rejected object, keyed by its image when that is readable."""
    image_id = ann.get("image_id") if isinstance(ann, dict) else None
    ann_id = ann.get("id") if isinstance(ann, dict) else None
    key = f"{SOURCE}/{image_id}" if isinstance(image_id, int) and not isinstance(image_id, bool) else f"{SOURCE}/?"
    result.items_read["object"] += 1
    result.items_rejected["object"] += 1
    result.errors.append(ErrorRow(SOURCE, key, file, f"annotations[{seq}] (id={ann_id!r:.30})", err.field, "read",
                                  "object", err.reason, err.message))


def _image_result(image: dict, anns, categories: dict, file: str, duplicate: bool) -> ImageResult:
    image_id = image["id"]
    key = f"{SOURCE}/{image_id}"
    desc = f"images[id={image_id}]"
    if duplicate:
        return rejected_image(SOURCE, key, file, desc, BadRecord("duplicate_image_id",
                              f"image id {image_id} appears more than once", field="id"),
                              items_read=Counter(object=len(anns)))
    if image.get("problem"):
        return rejected_image(SOURCE, key, file, desc, image["problem"], items_read=Counter(object=len(anns)))
    width, height = image["width"], image["height"]
    b = ImageBuilder(SOURCE, key, file, width, height)
    objects = []
    for ann_id, category_id, x, y, w, h, iscrowd in anns:
        obj = _object(ann_id, category_id, x, y, w, h, iscrowd, b, categories, file)
        if obj is not None:
            objects.append(obj)
    return b.finish(_record(image_id, str(image["file_name"]), width, height, objects))


def _orphans(image_id, anns, file: str) -> ImageResult:
    result = ImageResult(source=SOURCE, key=f"{SOURCE}/{image_id}", record=None, orphan=True)
    for ann in anns:
        result.items_read["object"] += 1
        result.items_rejected["object"] += 1
        result.errors.append(ErrorRow(SOURCE, result.key, file, f"annotations[id={ann[0]}]", "image_id", "join",
                                      "object", "unknown_image", f"image_id {image_id!r} is not in images"))
    return result


def _categories(items, file) -> _Categories:
    good, bad = coco_contract.categories(items, file)
    if not good:
        raise InputError(f"Objects365 file {file}: no usable categories")
    return _Categories(good, bad)


def _image_entry(seq: int, img) -> tuple[int | None, dict]:
    """(image id or None, the checked image: id, file_name, width, height, and ``problem`` when it broke the
    contract after its id)."""
    if not isinstance(img, dict):
        return None, {"problem": BadRecord("malformed_record", "image entry is not a mapping")}
    try:
        image_id = coco_contract.IMAGE.value(img, "id")
    except BadRecord as err:
        return None, {"problem": err}
    try:
        return image_id, coco_contract.IMAGE.parse(img)
    except BadRecord as err:
        return image_id, {"id": image_id, "file_name": "", "width": 0, "height": 0, "problem": err}


# -- in memory ---------------------------------------------------------------------------------------------------
def _read_in_memory(path: str) -> Iterator[ImageResult]:
    dataset = fsio.load_json(path, "Objects365 annotation file")
    _check_coco_shape(dataset, path)
    categories = _categories(dataset["categories"], path)
    # Grouped here rather than with pycocotools' index, which raises KeyError on one malformed annotation
    # where we must reject that record and go on.
    by_image = defaultdict(list)
    bad_anns = ImageResult(source=SOURCE, key=f"{SOURCE}/?", record=None, orphan=True)
    for seq, ann in enumerate(dataset["annotations"]):
        try:
            a = coco_contract.annotation(ann)
        except BadRecord as err:
            _bad_annotation(seq, ann, err, path, bad_anns)
            continue
        by_image[a["image_id"]].append((a["id"], a["category_id"], *a["bbox"], a["iscrowd"]))
    if bad_anns.errors:
        yield bad_anns
    good = []
    for seq, img in enumerate(dataset["images"]):
        image_id, image = _image_entry(seq, img)
        if image_id is None:
            yield rejected_image(SOURCE, f"{SOURCE}/?", path, f"images[{seq}]", image["problem"])
            continue
        good.append((image_id, seq, image))
    seen = set()
    for image_id, _, image in sorted(good, key=lambda t: t[:2]):
        duplicate = image_id in seen
        seen.add(image_id)
        # a duplicate image is rejected without its boxes: they were counted with the first occurrence
        anns = [] if duplicate else by_image.get(image_id, [])
        yield _image_result(image, anns, categories, path, duplicate)
    for image_id in sorted((k for k in by_image if k not in seen), key=str):
        yield _orphans(image_id, by_image[image_id], path)


# -- streaming ---------------------------------------------------------------------------------------------------
IMAGE_SPILL = pa.schema([("id", pa.int64()), ("file_name", pa.string()), ("width", pa.int64()),
                         ("height", pa.int64()), ("seq", pa.int64()), ("problem", pa.string())])
ANN_SPILL = pa.schema([("id", pa.int64()), ("image_id", pa.int64()), ("category_id", pa.int64()),
                       ("x", pa.float64()), ("y", pa.float64()), ("w", pa.float64()), ("h", pa.float64()),
                       ("iscrowd", pa.int8()), ("seq", pa.int64())])


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


def _check_coco_shape(dataset, path: str) -> None:
    """The file-level contract (`coco_contract.FILE`): an object with arrays under images, annotations and
    categories; anything else is an `InputError` naming the file and the expected shape."""
    expected = coco_contract.FILE.describe()
    if not isinstance(dataset, dict):
        raise InputError(f"Objects365 annotation file {path}: expected {expected}, found "
                         f"{'an array' if isinstance(dataset, list) else type(dataset).__name__}")
    for key in coco_contract.FILE.arrays:
        if not isinstance(dataset.get(key), list):
            found = "none" if key not in dataset else type(dataset[key]).__name__
            raise InputError(f"Objects365 annotation file {path}: expected an array at key {key!r}, found {found} "
                             f"(the file must be {expected})")


def _read_streaming(path: str, work_dir: str, partitions: int) -> Iterator[ImageResult]:
    what = "Objects365 annotation file"
    fsio.check_shape(path, "images.item", what=what)
    fsio.check_shape(path, "annotations.item", what=what)
    categories = _categories(fsio.iter_json(path, "categories.item", what=what), path)
    n = partitions or max(8, fsio.size(path) // (64 << 20))
    images = _Spill(work_dir, "images", IMAGE_SPILL, n, "id")
    bad_images: list[ImageResult] = []
    for seq, img in enumerate(fsio.iter_json(path, "images.item", what=what)):
        image_id, image = _image_entry(seq, img)
        if image_id is None:
            bad_images.append(rejected_image(SOURCE, f"{SOURCE}/?", path, f"images[{seq}]", image["problem"]))
            continue
        problem = image.get("problem")
        images.add(image_id, image["file_name"], image["width"], image["height"], seq,
                   None if problem is None else "\x1f".join((problem.reason, problem.field, problem.message)))
    images.close()
    anns = _Spill(work_dir, "annotations", ANN_SPILL, n, "image_id")
    bad_anns = ImageResult(source=SOURCE, key=f"{SOURCE}/?", record=None, orphan=True)
    for seq, ann in enumerate(fsio.iter_json(path, "annotations.item", what=what)):
        try:
            a = coco_contract.annotation(ann)
        except BadRecord as err:
            _bad_annotation(seq, ann, err, path, bad_anns)
            continue
        anns.add(a["id"], a["image_id"], a["category_id"], *a["bbox"], 1 if a["iscrowd"] else 0, seq)
    anns.close()
    yield from bad_images
    if bad_anns.errors:
        yield bad_anns
    for p in range(n):
        yield from _group_partition(images.read(p), anns.read(p), categories, path)


def _group_partition(images: pa.Table, anns: pa.Table, categories: dict, path: str) -> Iterator[ImageResult]:
    images = images.sort_by([("id", "ascending"), ("seq", "ascending")])
    anns = anns.sort_by([("image_id", "ascending"), ("seq", "ascending")])
    img_ids = images.column("id").to_numpy()
    ann_img = anns.column("image_id").to_numpy()
    cols = [anns.column(c).to_pylist() for c in ("id", "category_id", "x", "y", "w", "h", "iscrowd")]
    rows = list(zip(*cols))
    starts = np.searchsorted(ann_img, img_ids, side="left")
    ends = np.searchsorted(ann_img, img_ids, side="right")
    file_names = images.column("file_name").to_pylist()
    widths = images.column("width").to_pylist()
    heights = images.column("height").to_pylist()
    problems = images.column("problem").to_pylist()
    used = np.zeros(len(rows), dtype=bool)
    previous = None
    for i, image_id in enumerate(img_ids.tolist()):
        duplicate = image_id == previous
        previous = image_id
        s, e = (int(starts[i]), int(ends[i])) if not duplicate else (0, 0)
        used[s:e] = True
        image = {"id": image_id, "file_name": file_names[i], "width": widths[i], "height": heights[i]}
        if problems[i]:
            reason, field, message = problems[i].split("\x1f")
            image["problem"] = BadRecord(reason, message, field=field)
        yield _image_result(image, rows[s:e], categories, path, duplicate)
    if not used.all():
        orphan_idx = np.flatnonzero(~used)
        by_image = defaultdict(list)
        for j in orphan_idx.tolist():
            by_image[int(ann_img[j])].append(rows[j])
        for image_id in sorted(by_image):
            yield _orphans(image_id, by_image[image_id], path)


@register(SOURCE, Objects365Config, provides=("object_categories", "refs"))
def read(config: Objects365Config, ctx: ReadContext) -> Iterator[ImageResult]:
    """Objects365 (COCO format), parsed whole when small or streamed through on-disk partitions."""
    path = config.annotations
    stream = config.mode == "stream" or (config.mode == "auto" and fsio.size(path) > config.in_memory_max_bytes)
    if stream:
        yield from _read_streaming(path, ctx.work_dir, config.partitions)
    else:
        yield from _read_in_memory(path)
