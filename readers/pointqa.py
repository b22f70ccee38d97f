"""PointQA (Point and Ask, Mani et al.): LocalQA and LookTwiceQA dataset files as released, on VG images.

Both files map a VG image id to a list of entries (see princetonvisualai/pointingqa, ``dataset-code/``):
- LocalQA: ``{"question", "all_ans", "all_objs": [VG objects], "points": [{"x", "y", "ans"}]}``; the i-th point
  is the centre of the i-th object and ``ans`` its answer. Each (point, object) pair becomes one QA item.
- LookTwiceQA: ``{"img_question", "pt_question", "ans", "qtype", "point": {"x","y","ans"}, "bbox": VG object,
  "obj_type"}``; one QA item with the question that names the object and the one that points.
The files are streamed one image at a time (``ijson.kvitems``). Points and boxes are VG pixels; sizes and COCO
ids come from VG's image_data.json (``image_data``), else from the image header. Optional keep-lists (the
release's ``*_imgs.json`` split files) restrict the images read; others are filtered (``not_in_split``).
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Iterator, Literal

from rcforge.readers import ReadContext, register
from rcforge.readers.vqav2 import image_size_from_file

from rcforge import fsio
from rcforge.boxes import check_point, check_size, xywh_to_xyxy
from rcforge.config import path_field
from rcforge.errors import BadRecord
from rcforge.ledger import (
    ImageBuilder,
    ImageResult,
    filtered_image,
    image_record,
    rejected_image,
)

SOURCE = "pointqa"


@dataclass(frozen=True)
class PointQAConfig:
    """PointQA LocalQA / LookTwiceQA.

    local, looktwice: ``localqa_dataset.json`` / ``looktwiceqa_dataset.json`` (either may be omitted).
    images: the VG image folder; image_layout as for visual_genome ("flat": ``<id>.jpg``).
    image_data: VG image_data.json, for sizes and COCO ids (strongly advised: exclusion needs COCO ids).
    local_images, looktwice_images: optional JSON lists of image ids to keep (the release's split files).
    """

    images: str = path_field(must_exist=False)
    image_layout: Literal["url", "flat"] = "url"
    local: str | None = path_field(default=None)
    looktwice: str | None = path_field(default=None)
    image_data: str | None = path_field(default=None)
    local_images: str | None = path_field(default=None)
    looktwice_images: str | None = path_field(default=None)

    def __post_init__(self):
        if not self.local and not self.looktwice:
            raise ValueError("give at least one of 'local' and 'looktwice'")


def _keep_list(path):
    if not path:
        return None
    return {str(v) for v in json.loads(fsio.read_text(path, "image list"))}


def _vg_box(obj: dict, field: str):
    if not isinstance(obj, dict):
        raise BadRecord("missing_field", f"{field} is not a VG object", field=field)
    try:
        return xywh_to_xyxy(obj["x"], obj["y"], obj["w"], obj["h"], field=field)
    except KeyError as err:
        raise BadRecord("missing_field", f"{field} lacks {err}", field=field) from None


@register(SOURCE, PointQAConfig)
def read(config: PointQAConfig, ctx: ReadContext) -> Iterator[ImageResult]:
    """PointQA LocalQA and LookTwiceQA items (question, answer, point, box) grouped per VG image."""
    meta = {}
    if config.image_data:
        for entry in fsio.iter_json(config.image_data, "item", what="VG image_data file"):
            if isinstance(entry, dict):
                image_id = entry.get("image_id", entry.get("id"))
                meta[str(image_id)] = entry
    # Gather both files per image: the released files are dicts keyed by image id (tens of MB).
    items: dict[str, list] = defaultdict(list)
    for kind, path, keep_path in (("localqa", config.local, config.local_images),
                                  ("looktwiceqa", config.looktwice, config.looktwice_images)):
        if not path:
            continue
        keep = _keep_list(keep_path)
        for image_id, entries in fsio.iter_json(path, "", what=f"PointQA {kind} file", kv=True):
            if keep is not None and str(image_id) not in keep:
                items[str(image_id)].append((kind, path, None))  # filtered marker
                continue
            for i, entry in enumerate(entries if isinstance(entries, list) else [entries]):
                items[str(image_id)].append((kind, path, (i, entry)))

    for image_id in sorted(items, key=lambda s: (len(s), s)):
        entries = items[image_id]
        key = f"{SOURCE}/{image_id}"
        n_items = sum(_count(e) for _, _, e in entries if e is not None)
        kept = [(k, p, e) for k, p, e in entries if e is not None]
        if not kept:
            yield filtered_image(SOURCE, key, "not_in_split")
            continue
        m = meta.get(image_id, {})
        try:
            if m:
                width, height = check_size(m.get("width"), m.get("height"))
            else:
                width, height = image_size_from_file(fsio.join(config.images, f"{image_id}.jpg"))
        except BadRecord as err:
            yield rejected_image(SOURCE, key, config.image_data or config.images, f"image_id={image_id}", err,
                                 items_read=Counter(qa=n_items))
            continue
        b = ImageBuilder(SOURCE, key, kept[0][1], width, height)
        qas = []
        for kind, path, (i, entry) in kept:
            for qa in _qa_items(kind, image_id, i, entry, b, path):
                qas.append(qa)
        coco_id = m.get("coco_id") if isinstance(m.get("coco_id"), int) else None
        image = f"{image_id}.jpg"
        url = m.get("url") or ""
        parts = [p for p in url.split("/") if p]
        if config.image_layout == "url" and len(parts) >= 2:
            image = f"{parts[-2]}/{parts[-1]}"
        record = image_record(key, SOURCE, image_id, image, width, height, coco_id=coco_id,
                              vg_id=int(image_id) if image_id.isdigit() else None, qas=qas)
        yield b.finish(record, coco_id=coco_id)


def _count(entry) -> int:
    i, e = entry
    if isinstance(e, dict) and isinstance(e.get("points"), list):
        return max(1, len(e["points"]))
    return 1


def _qa_items(kind: str, image_id: str, i: int, entry, b: ImageBuilder, path: str):
    if kind == "localqa" and isinstance(entry, dict) and isinstance(entry.get("points"), list):
        points = entry["points"] or [None]
        objs = entry.get("all_objs") or []
        for j, point in enumerate(points):
            b.read("qa")
            desc = f"image {image_id} entry {i} point {j}"
            try:
                question = " ".join(str(entry.get("question") or "").split())
                if not question:
                    raise BadRecord("missing_field", "no question", field="question")
                if not isinstance(point, dict):
                    raise BadRecord("missing_field", "no point", field="points")
                if j >= len(objs):
                    raise BadRecord("missing_field", f"no object for point {j}", field="all_objs")
                xy = check_point(point.get("x"), point.get("y"), b.width, b.height, field="point")
                xyxy = _vg_box(objs[j], "all_objs")
            except BadRecord as err:
                b.reject("qa", err, desc, file=path)
                continue
            box = b.box("qa", xyxy, desc, file=path, field="all_objs")
            if box is None:
                continue
            obj = objs[j]
            yield {"id": f"localqa/{image_id}/{i}/{j}", "kind": kind, "question": question, "point_question": None,
                   "answer": str(point.get("ans")), "answers": [str(a) for a in (entry.get("all_ans") or [])],
                   "question_type": None, "answer_type": None, "point": xy, "box": box,
                   "object_ids": [obj["object_id"]] if isinstance(obj.get("object_id"), int) else []}
        return
    b.read("qa")
    desc = f"image {image_id} entry {i}"
    try:
        if not isinstance(entry, dict):
            raise BadRecord("malformed_record", "entry is not a mapping")
        question = " ".join(str(entry.get("img_question") or entry.get("question") or "").split())
        if not question:
            raise BadRecord("missing_field", "no question", field="img_question")
        point = entry.get("point")
        if not isinstance(point, dict):
            raise BadRecord("missing_field", "no point", field="point")
        xy = check_point(point.get("x"), point.get("y"), b.width, b.height, field="point")
        obj = entry.get("bbox")
        xyxy = _vg_box(obj, "bbox")
    except BadRecord as err:
        b.reject("qa", err, desc, file=path)
        return
    box = b.box("qa", xyxy, desc, file=path, field="bbox")
    if box is None:
        return
    answer = str(entry.get("ans", point.get("ans")))
    yield {"id": f"{kind}/{image_id}/{i}", "kind": kind, "question": question,
           "point_question": entry.get("pt_question"), "answer": answer, "answers": [answer],
           "question_type": entry.get("qtype"), "answer_type": None, "point": xy, "box": box,
           "object_ids": [obj["object_id"]] if isinstance(obj.get("object_id"), int) else []}
