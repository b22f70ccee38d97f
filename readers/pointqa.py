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

from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Iterator, Literal

from rcforge.core import fsio
from rcforge.core.boxes import check_point, xywh_to_xyxy
from rcforge.core.config import path_field
from rcforge.core.contract import F, FileShape, Int, ItemContract, Num, Scalar, Text, TextList
from rcforge.core.errors import BadRecord, InputError
from rcforge.core.ledger import (
    ImageBuilder,
    ImageResult,
    filtered_image,
    image_record,
    rejected_image,
)
from rcforge.core.ledgerkeeper import ReadBatch, gather
from rcforge.readers import ReadContext, register
from rcforge.readers import visual_genome_contract as vg_contract
from rcforge.readers.vqav2 import image_size_from_file

SOURCE = "pointqa"

#: the contract: each file maps an image id to a list of entries (LocalQA) or to entries (LookTwiceQA)
FILES = {"local": FileShape("object"), "looktwice": FileShape("object"), "image_data": FileShape("array")}
POINT = ItemContract("point", (F("x", Num()), F("y", Num()), F("ans", Scalar(), required=False)))
VG_OBJECT = ItemContract("object", (F("x", Num()), F("y", Num()), F("w", Num()), F("h", Num()),
                                    F("object_id", Int(), required=False)))


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
    values = fsio.load_json(path, "PointQA image list")
    if not isinstance(values, list) or not all(isinstance(v, (int, str)) and not isinstance(v, bool) for v in values):
        raise InputError(f"PointQA image list {path}: expected a JSON array of image ids")
    return {str(v) for v in values}


def _vg_box(obj, field: str):
    if not isinstance(obj, dict):
        raise BadRecord("wrong_type", f"{field} is not a VG object (a mapping with x, y, w, h)", field=field)
    try:
        parsed = VG_OBJECT.parse(obj)
    except BadRecord as err:
        raise BadRecord(err.reason, f"{field}: {err.message}", field=f"{field}.{err.field}") from None
    return xywh_to_xyxy(parsed["x"], parsed["y"], parsed["w"], parsed["h"], field=field), parsed["object_id"]


def _point(point, field: str, width: int, height: int):
    if not isinstance(point, dict):
        raise BadRecord("missing_field", "no point", field=field)
    try:
        parsed = POINT.parse(point)
    except BadRecord as err:
        raise BadRecord(err.reason, f"{field}: {err.message}", field=f"{field}.{err.field}") from None
    return check_point(parsed["x"], parsed["y"], width, height, field=field), parsed["ans"]


def _question(entry: dict, *names: str) -> str:
    for name in names:
        if entry.get(name) is not None:
            return Text(nonempty=True).check(entry[name], name)
    raise BadRecord("missing_field", "no question", field=names[0])


@register(SOURCE, PointQAConfig, provides=("pointqa",))
def read(config: PointQAConfig, ctx: ReadContext) -> Iterator[ReadBatch]:
    """PointQA LocalQA and LookTwiceQA items (question, answer, point, box) grouped per VG image."""
    return gather(SOURCE, _results(config, ctx))


def _results(config: PointQAConfig, ctx: ReadContext) -> Iterator[ImageResult]:
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
        m = meta.get(image_id)
        try:
            vg_id = Int().check(int(image_id), "image_id") if image_id.isdigit() else None
            if m is not None:
                m = vg_contract.IMAGE.parse(m)
                width, height = m["width"], m["height"]
            else:
                m = {"coco_id": None, "url": ""}
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
        coco_id = m["coco_id"]
        image = f"{image_id}.jpg"
        url = m["url"] or ""
        parts = [p for p in url.split("/") if p]
        if config.image_layout == "url" and len(parts) >= 2:
            image = f"{parts[-2]}/{parts[-1]}"
        record = image_record(key, SOURCE, image_id, image, width, height, coco_id=coco_id,
                              vg_id=vg_id, qas=qas)
        yield b.finish(record)


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
                question = _question(entry, "question")
                xy, answer = _point(point, "point", b.width, b.height)
                if not isinstance(objs, list) or j >= len(objs):
                    raise BadRecord("missing_field", f"no object for point {j}", field="all_objs")
                xyxy, object_id = _vg_box(objs[j], "all_objs")
                all_answers = TextList().check(entry.get("all_ans") or [], "all_ans")
            except BadRecord as err:
                b.reject("qa", err, desc, file=path)
                continue
            yield from _qa(b, desc, path, "all_objs", xyxy, id=f"localqa/{image_id}/{i}/{j}", kind=kind,
                           question=question, point_question=None, answer=answer, answers=all_answers,
                           question_type=None, point=xy, object_id=object_id)
        return
    b.read("qa")
    desc = f"image {image_id} entry {i}"
    try:
        if not isinstance(entry, dict):
            raise BadRecord("malformed_record", "entry is not a mapping")
        question = _question(entry, "img_question", "question")
        xy, point_answer = _point(entry.get("point"), "point", b.width, b.height)
        xyxy, object_id = _vg_box(entry.get("bbox"), "bbox")
        answer = Scalar().check(entry["ans"], "ans") if entry.get("ans") is not None else point_answer
        point_question = Text().check(entry["pt_question"], "pt_question") if entry.get("pt_question") else None
        qtype = Text().check(entry["qtype"], "qtype") if entry.get("qtype") is not None else None
    except BadRecord as err:
        b.reject("qa", err, desc, file=path)
        return
    yield from _qa(b, desc, path, "bbox", xyxy, id=f"{kind}/{image_id}/{i}", kind=kind, question=question,
                   point_question=point_question, answer=answer, answers=[answer] if answer is not None else [],
                   question_type=qtype, point=xy, object_id=object_id)


def _qa(b: ImageBuilder, desc: str, path: str, box_field: str, xyxy, *, object_id, **fields):
    """One PointQA item (schema `rcforge.schemas.QA`) once its box passes the box rule; nothing when it does not
    (the builder has recorded why)."""
    box = b.box("qa", xyxy, desc, file=path, field=box_field)
    if box is not None:
        yield {**fields, "answer_type": None, "box": box, "object_ids": [object_id] if object_id is not None else []}
